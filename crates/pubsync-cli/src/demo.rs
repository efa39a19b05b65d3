//! `pubsync demo`: the Hello Spryker tutorial end to end, on whatever is configured (the
//! embedded SQLite file by default), saying what happens at each step.

use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};
use pubsync_database::{DatabaseError, with_connection};
use pubsync_hello::reader::MessageStorageReader;

use pubsync_cli::App;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(diesel::QueryableByName)]
struct Captured {
    #[diesel(sql_type = Text)]
    data: String,
}

/// Runs the demo, printing each step.
pub(crate) async fn run(app: &App) -> anyhow::Result<()> {
    println!("pubsync demo on {}", app.database().url());
    println!();
    println!("1. setup: create the tables, the capture triggers and the queue table");
    let report = app.setup()?;
    println!("   {} migration(s) applied", report.migrations.len());

    println!("2. capture: INSERT a message with plain SQL, as any writer would");
    let id = execute_returning_id(
        app,
        "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!') \
         RETURNING id_hello_spryker_message AS id",
    )?;
    println!(
        "   the trigger recorded, in the same transaction: {}",
        last_outbox_row(app)?
    );

    println!(
        "3. publish: the worker relays the event to the `event` queue and the publisher writes storage"
    );
    work(app).await?;
    println!("   spy_hello_spryker_message_storage now holds key message:{id}");

    println!(
        "4. read: the client builds the key message:{id} and reads the storage table (key-value bypass)"
    );
    let reader = MessageStorageReader::new(app.client().await?);
    let read = reader.get_message_by_id(id).await?;
    println!("   get_message_by_id({id}) = {read:?}");

    println!("5. update: UPDATE the message with plain SQL");
    execute(
        app,
        &format!(
            "UPDATE spy_hello_spryker_message SET message = 'Hello again!' WHERE id_hello_spryker_message = {id}"
        ),
    )?;
    println!("   captured: {}", last_outbox_row(app)?);
    work(app).await?;
    println!(
        "   get_message_by_id({id}) = {:?}",
        reader.get_message_by_id(id).await?
    );

    println!("6. delete: DELETE the message with plain SQL");
    execute(
        app,
        &format!("DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = {id}"),
    )?;
    println!("   captured: {}", last_outbox_row(app)?);
    work(app).await?;
    let gone = reader.get_message_by_id(id).await?;
    println!("   get_message_by_id({id}) = {gone:?}");
    anyhow::ensure!(
        gone.is_none(),
        "message {id} is still in storage after its delete was published"
    );
    println!();
    println!(
        "Done. Try it yourself: `sqlite3 {}` to change spy_hello_spryker_message,",
        sqlite_path(app)
    );
    println!(
        "then `pubsync queue:worker:start --stop-when-empty` and `pubsync storage:get message:<id>`."
    );
    Ok(())
}

async fn work(app: &App) -> anyhow::Result<()> {
    let report = app
        .worker()
        .await?
        .run(true, &AtomicBool::new(false))
        .await
        .context("running the worker")?;
    println!(
        "   worker: {} outbox row(s) relayed, {} message(s), {} event(s) handled, {} failed",
        report.relayed, report.messages, report.handled, report.failed
    );
    Ok(())
}

fn execute(app: &App, sql: &str) -> anyhow::Result<()> {
    let database = app.database();
    with_connection!(database, |conn| diesel::sql_query(sql)
        .execute(conn)
        .map_err(DatabaseError::query(sql)))?;
    Ok(())
}

fn execute_returning_id(app: &App, sql: &str) -> anyhow::Result<i64> {
    let database = app.database();
    let row: Id = with_connection!(database, |conn| diesel::sql_query(sql)
        .get_result(conn)
        .map_err(DatabaseError::query(sql)))?;
    Ok(row.id)
}

fn last_outbox_row(app: &App) -> anyhow::Result<String> {
    let database = app.database();
    let sql = "SELECT data FROM spy_event_behavior_entity_change ORDER BY id_event_behavior_entity_change DESC LIMIT 1";
    let rows: Vec<Captured> = with_connection!(database, |conn| diesel::sql_query(sql)
        .load(conn)
        .map_err(DatabaseError::query(sql)))?;
    Ok(rows
        .into_iter()
        .next()
        .map_or_else(|| "(nothing)".to_owned(), |row| row.data))
}

fn sqlite_path(app: &App) -> String {
    match app.database().url() {
        pubsync_database::DatabaseUrl::Sqlite(path) => path.display().to_string(),
        other => other.redacted(),
    }
}
