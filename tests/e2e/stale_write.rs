//! Two publishers of one entity at once never leave the older read in storage. Publisher A
//! re-reads a message and is held between its read and its commit; meanwhile the shop
//! updates the message and publisher B publishes it. Without entity locks B reads the new
//! message and commits first, and A then commits its older read over it, for good. With them
//! B waits for A before it reads, and the newer data is what stays.

use std::sync::mpsc;
use std::time::Duration;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{Integer, Text};
use pubsync_backend::storage_table_writer::{Publication, Reference, RowKey, StorageRow};
use pubsync_database::{Database, DatabaseError, with_connection};
use pubsync_hello::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE as TABLE;
use pubsync_tests::on_every_database;

#[derive(diesel::QueryableByName)]
struct Message {
    #[diesel(sql_type = Integer)]
    id_hello_spryker_message: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

/// What a publisher reads of message 1, as its storage row.
fn read(database: &Database) -> Publication {
    let rows: Vec<Message> = with_connection!(database, |conn| diesel::sql_query(
        "SELECT id_hello_spryker_message, name FROM spy_hello_spryker_message WHERE id_hello_spryker_message = 1"
    )
    .load(conn)
    .map_err(DatabaseError::query("read message 1")))
    .unwrap();
    let rows = rows
        .into_iter()
        .map(|message| StorageRow {
            key: RowKey::reference(Reference::Int(message.id_hello_spryker_message.into())),
            data: serde_json::json!({ "name": message.name }),
        })
        .collect();
    Publication::apply(rows, Vec::new())
}

on_every_database! {
    async fn two_publishers_of_one_entity_end_with_the_newer_data(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES (1, 'old')");
        let storage = pubsync_backend::StorageTableWriter::new(t.app.database().clone(), Default::default())
            .with_definitions([&TABLE]);
        let (a_read, a_has_read) = mpsc::channel::<()>();
        let (b_done, b_is_done) = mpsc::channel::<()>();

        // A: reads, then holds until B is done (or has waited long enough), then commits.
        let (a_storage, a_database) = (storage.clone(), t.app.database().clone());
        let a = std::thread::spawn(move || {
            a_storage
                .publish(&TABLE, &[Reference::Int(1)], || {
                    let publication = read(&a_database);
                    a_read.send(()).unwrap();
                    // B finishing while A holds its read is the interleaving that went stale.
                    let _ = b_is_done.recv_timeout(Duration::from_secs(2));
                    Ok(publication)
                })
                .unwrap();
        });
        a_has_read.recv().unwrap();

        // The shop's update: on PostgreSQL and MySQL it commits at once (a publisher never
        // blocks the shop's writers); SQLite's one writer waits for A's commit.
        t.sql("UPDATE spy_hello_spryker_message SET name = 'new' WHERE id_hello_spryker_message = 1");

        // B: the update's publisher.
        let (b_storage, b_database) = (storage.clone(), t.app.database().clone());
        let b = std::thread::spawn(move || {
            b_storage
                .publish(&TABLE, &[Reference::Int(1)], || Ok(read(&b_database)))
                .unwrap();
            let _ = b_done.send(());
        });
        a.join().unwrap();
        b.join().unwrap();
        let storage = t.message_storage();
        assert_eq!(storage, [("message:1".to_owned(), serde_json::json!({"name": "new"}))]);
    }
}
