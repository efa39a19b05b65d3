//! Capture: the generated triggers record every change of a watched table in the outbox, in
//! the same transaction, whoever writes it, on every database.

use pubsync_tests::on_every_database;
use serde_json::json;

on_every_database! {
    async fn insert_update_delete_become_entity_events(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!')");
        t.sql("UPDATE spy_hello_spryker_message SET message = 'Hi' WHERE id_hello_spryker_message = 1");
        t.sql("DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = 1");
        let events = t.outbox();
        assert_eq!(events.len(), 3, "{events:#?}");
        assert_eq!(events[0]["event"], "Entity.spy_hello_spryker_message.create");
        assert_eq!(events[0]["name"], "spy_hello_spryker_message");
        assert_eq!(events[0]["id"], 1);
        assert_eq!(
            events[0]["modifiedColumns"],
            json!(["spy_hello_spryker_message.name", "spy_hello_spryker_message.message"])
        );
        assert_eq!(events[1]["event"], "Entity.spy_hello_spryker_message.update");
        assert_eq!(events[1]["modifiedColumns"], json!(["spy_hello_spryker_message.message"]));
        assert_eq!(events[2]["event"], "Entity.spy_hello_spryker_message.delete");
        assert_eq!(events[2]["id"], 1);
        assert!(events[2].get("modifiedColumns").is_none(), "a delete carries no modified columns");
    }

    async fn an_update_that_changes_nothing_records_nothing(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello')");
        t.sql("UPDATE spy_hello_spryker_message SET name = 'John', message = 'Hello'");
        assert_eq!(t.outbox().len(), 1, "only the create");
    }

    async fn a_bulk_update_records_one_event_per_changed_row(t: TestApp) {
        t.insert_messages(1, 500, Some("message"));
        t.sql("UPDATE spy_hello_spryker_message SET message = 'changed' WHERE id_hello_spryker_message <= 300");
        let events = t.outbox();
        let updates: Vec<_> =
            events.iter().filter(|e| e["event"] == "Entity.spy_hello_spryker_message.update").collect();
        assert_eq!(events.len(), 800);
        assert_eq!(updates.len(), 300);
        assert!(updates.iter().all(|e| e["modifiedColumns"] == json!(["spy_hello_spryker_message.message"])));
    }

    async fn a_rolled_back_transaction_leaves_no_event(t: TestApp) {
        t.sql("BEGIN; INSERT INTO spy_hello_spryker_message (name) VALUES ('ghost'); ROLLBACK;");
        assert!(t.outbox().is_empty());
        assert_eq!(t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message"), 0);
    }

    async fn a_primary_key_change_moves_the_storage_row_to_the_new_key(t: TestApp) {
        t.insert_messages(1, 2, Some("message"));
        t.work().await;
        t.sql("UPDATE spy_hello_spryker_message SET id_hello_spryker_message = 100 WHERE id_hello_spryker_message = 1");
        t.work().await;
        let keys: Vec<String> = t.message_storage().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["message:2", "message:100"], "the old key is gone, the new one written");
    }
}
