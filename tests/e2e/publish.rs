//! Publish and read: events become exactly one storage row per message, readable through the
//! client, on the embedded default.

use pubsync_hello::reader::MessageStorageReader;
use pubsync_shared::transfer::HelloSprykerStorageTransfer;
use pubsync_tests::on_every_database;
use serde_json::json;

on_every_database! {
    async fn messages_are_published_as_one_storage_row_each(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!'), ('Jane', NULL)");
        let report = t.work().await;
        assert_eq!(report.relayed, 2);
        assert_eq!(
            t.message_storage(),
            [
                (
                    "message:1".to_owned(),
                    json!({"name": "John", "message": "Hello Spryker!"})
                ),
                (
                    "message:2".to_owned(),
                    json!({"name": "Jane", "message": null})
                ),
            ]
        );
        // Publishing the same rows again (the tutorial's writer would add rows) keeps one row each.
        t.sql("UPDATE spy_hello_spryker_message SET message = 'Hi'");
        t.work().await;
        t.work().await;
        assert_eq!(
            t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage"),
            2
        );
        assert_eq!(
            t.message_storage()[1].1,
            json!({"name": "Jane", "message": "Hi"})
        );
        assert!(t.outbox().is_empty(), "the relay empties the outbox");
    }

    async fn a_writers_open_transaction_does_not_hold_up_the_worker(t: TestApp) {
        if t.dialect() == pubsync_database::Dialect::Sqlite {
            // One writer at a time is SQLite's model: an open write transaction holds up
            // every other writer, the worker's too, until it ends.
            return;
        }
        // A full chunk (a thousand outbox rows), whose delete MariaDB would make a table scan.
        t.insert_messages(1, 1000, Some("committed"));
        // Another writer's transaction, whose capture trigger has written an outbox row it
        // has not committed yet.
        let writer = pubsync_database::testing::OpenTransaction::begin(
            t.app.database(),
            "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('name 1001', 'in flight')",
        );
        tokio::time::timeout(std::time::Duration::from_secs(20), t.work())
            .await
            .expect("the worker finishes the committed changes without waiting for the open transaction");
        assert_eq!(t.message_storage().len(), 1000);
        writer.commit();
        t.work().await;
        assert_eq!(t.message_storage().len(), 1001, "the change is published once committed");
    }

    async fn deleted_messages_leave_storage(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('a'), ('b'), ('c')");
        t.work().await;
        t.sql("DELETE FROM spy_hello_spryker_message WHERE name IN ('a', 'c')");
        t.work().await;
        let keys: Vec<String> = t
            .message_storage()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["message:2"]);
    }

    async fn unchanged_data_is_not_rewritten(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello')");
        t.work().await;
        t.sql("UPDATE spy_hello_spryker_message_storage SET updated_at = '2000-01-01 00:00:00'");
        // Two real changes that end where they started: events, but the same data.
        t.sql("UPDATE spy_hello_spryker_message SET message = 'changed'; UPDATE spy_hello_spryker_message SET message = 'Hello';");
        let report = t.work().await;
        assert_eq!(report.relayed, 2);
        assert_eq!(
            t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage WHERE updated_at = '2000-01-01 00:00:00'"),
            1,
            "a row whose data did not change is not rewritten"
        );
        t.sql("UPDATE spy_hello_spryker_message SET message = 'new'");
        t.work().await;
        assert_eq!(
            t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage WHERE updated_at = '2000-01-01 00:00:00'"),
            0,
            "a changed row is rewritten with a new updated_at"
        );
    }

    async fn repeated_events_of_one_entity_are_collapsed(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('x')");
        t.work().await;
        for i in 0..10 {
            t.sql(&format!(
                "UPDATE spy_hello_spryker_message SET message = 'v{i}'"
            ));
        }
        let report = t.work().await;
        assert_eq!(report.relayed, 10);
        assert_eq!(
            report.handled, 1,
            "ten updates of one message in a chunk are handled once"
        );
        assert_eq!(report.collapsed, 9);
        assert_eq!(
            t.message_storage()[0].1,
            json!({"name": "x", "message": "v9"})
        );
    }

    async fn the_reader_returns_the_typed_transfer(t: TestApp) {
        t.sql(
            "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!')",
        );
        t.work().await;
        let reader = MessageStorageReader::new(t.app.client().await.unwrap());
        assert_eq!(
            reader.get_message_by_id(1).await.unwrap(),
            Some(HelloSprykerStorageTransfer {
                name: Some("John".into()),
                message: Some("Hello Spryker!".into())
            })
        );
        assert_eq!(reader.get_message_by_id(2).await.unwrap(), None);
        let client = t.app.client().await.unwrap();
        let values = client
            .get_multi(&["message:404".to_owned(), "message:1".to_owned()])
            .await
            .unwrap();
        assert_eq!(
            values,
            [
                None,
                Some(json!({"name": "John", "message": "Hello Spryker!"}))
            ]
        );
    }
}

/// SQLite keeps whatever bytes it is given: an outbox row that is not UTF-8 goes to the error
/// queue with its bytes exactly and its reason, and the changes after it are published.
#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_row_that_is_not_utf8_goes_to_the_error_queue_and_the_rest_flows() {
    use pubsync_queue_extension::{Queue, Settlement};
    let t = pubsync_tests::TestApp::on(pubsync_database::Dialect::Sqlite).expect("sqlite");
    t.sql("INSERT INTO spy_event_behavior_entity_change (data) VALUES (CAST(X'7b226e616d65223a22ff227d' AS TEXT))");
    t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('after')");
    t.work().await;
    assert_eq!(
        t.message_storage().len(),
        1,
        "the change after the bad row is published"
    );
    let queue = t.app.queue().await.unwrap();
    let errors = queue
        .receive("event.error", 10, std::time::Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    let error: serde_json::Value = serde_json::from_slice(&errors[0].body).unwrap();
    assert_eq!(
        error["dataHex"], "7b226e616d65223a22ff227d",
        "the bytes as stored: {error}"
    );
    let reason = error["errorMessage"].as_str().unwrap();
    assert!(reason.contains("not valid UTF-8"), "{reason}");
    queue
        .settle(
            "event.error",
            Settlement {
                acknowledge: errors.iter().map(|d| d.tag).collect(),
                ..Settlement::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.outbox().len(), 0, "the bad row left the outbox");
}

/// A sync outbox row that is not UTF-8 goes to its table's sync error queue with every column
/// kept, the bad ones as their exact bytes, and the rows after it are synchronized.
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_outbox_row_that_is_not_utf8_goes_to_the_error_queue_and_the_rest_flows() {
    use pubsync_queue_extension::Queue;
    let t = pubsync_tests::TestApp::on(pubsync_database::Dialect::Sqlite).expect("sqlite");
    t.sql(
        "INSERT INTO pubsync_sync_outbox (storage_table, storage_key, operation, data, version) \
         VALUES ('spy_hello_spryker_message_storage', CAST(X'6d6573736167653aff' AS TEXT), 'write', '{}', 1)",
    );
    t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('after')");
    t.work().await;
    assert_eq!(t.message_storage().len(), 1);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox"),
        0,
        "the bad row and the good one left the sync outbox"
    );
    let errors = t
        .app
        .queue()
        .await
        .unwrap()
        .receive(
            "sync.storage.hello.error",
            10,
            std::time::Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    let error: serde_json::Value = serde_json::from_slice(&errors[0].body).unwrap();
    assert_eq!(error["keyHex"], "6d6573736167653aff", "{error}");
    assert_eq!(error["data"], "{}", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8 in key"),
        "{error}"
    );
}

/// A storage row whose key is not UTF-8 (SQLite keeps what it is given) does not stop its
/// entity's publishing: replacing the entity's rows deletes it with the others it no longer
/// has, and sends only the deletion of those others on to synchronization.
#[tokio::test(flavor = "multi_thread")]
async fn replacing_an_entitys_rows_deletes_one_whose_key_is_not_utf8() {
    use pubsync_backend::StorageRow;
    use pubsync_backend::storage_table_writer::{Reference, RowKey};
    let t = pubsync_tests::TestApp::on(pubsync_database::Dialect::Sqlite).expect("sqlite");
    // Synchronization on, so that the sync triggers record each deletion.
    pubsync_backend::sync::switch::record_switch(t.app.database(), true).unwrap();
    t.sql(
        "INSERT INTO spy_hello_spryker_message_storage (fk_hello_spryker_message, \"key\", data) VALUES \
         (4, CAST(X'6d6573736167653a34ff' AS TEXT), '{}'), (4, 'message:old-4', '{}'), (5, 'message:5', '{}')",
    );
    t.sql("DELETE FROM pubsync_sync_outbox");
    let table = &pubsync_hello::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;
    let row = StorageRow {
        key: RowKey::reference(Reference::Int(4)),
        data: json!({"name": "four", "message": null}),
    };
    let outcome =
        pubsync_backend::StorageTableWriter::new(t.app.database().clone(), Default::default())
            .replace(table, &[Reference::Int(4)], &[row])
            .unwrap();
    assert_eq!((outcome.written, outcome.deleted), (1, 2), "{outcome:?}");
    let keys: Vec<String> = t
        .message_storage()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["message:4", "message:5"]);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox WHERE operation = 'delete' AND storage_key = 'message:old-4'"),
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox WHERE operation = 'delete'"),
        1,
        "the row whose key is not UTF-8 is not sent"
    );
}
