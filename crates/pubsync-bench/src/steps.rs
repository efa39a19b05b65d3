//! The capture and publish steps alone, each beside the same work done with raw SQL.
//!
//! - Capture: the Hello changes of the end-to-end scenario ([`Plan`]) written into a set-up
//!   pubsync database, whose triggers fill the outbox. Ceiling: the same statements against a
//!   plain copy of the table without triggers, in the same database.
//! - Publish: the outbox filled the same way (not timed), then the real worker with
//!   synchronization off until it is empty: relay, event queue, consumer, publisher, storage
//!   table. Ceiling: what the publisher cannot avoid, done with raw SQL: per 1000 events, read
//!   the source rows by id and write the storage rows (one multi-row upsert, one delete of the
//!   keys whose source row is gone) in one transaction, into a plain copy of the storage table.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use pubsync_cli::{App, Settings};
use pubsync_database::testing::TestDatabase;
use pubsync_database::{
    Database, DatabaseError, DatabaseUrl, Dialect, WriteTransaction as _, with_connection,
};

use crate::e2e::{BATCH, Plan, check};
use crate::report::Figure;
use crate::{Size, median, per_second, throughput};

/// The source table the Hello changes are written to.
const SOURCE: &str = "spy_hello_spryker_message";
/// Its plain copy without triggers, for the capture ceiling.
const PLAIN_SOURCE: &str = "bench_plain_message";
/// The storage table the Hello publisher writes.
const STORAGE: &str = "spy_hello_spryker_message_storage";
/// A plain copy of the storage table without triggers, for the publish ceiling.
const PLAIN_STORAGE: &str = "bench_plain_message_storage";
/// The outbox the capture triggers write.
pub(crate) const OUTBOX: &str = "spy_event_behavior_entity_change";

/// A fresh database of `dialect`, or why there is none in this run.
pub(crate) fn database(dialect: Dialect) -> Result<TestDatabase, String> {
    if dialect == Dialect::Postgres && !cfg!(feature = "postgres") {
        return Err("this build has no PostgreSQL support (feature `postgres`)".to_owned());
    }
    if dialect == Dialect::Mysql && !cfg!(feature = "mysql") {
        return Err("this build has no MySQL support (feature `mysql`)".to_owned());
    }
    TestDatabase::create(dialect).ok_or_else(|| format!("{dialect} unreachable"))
}

/// The application on `url` with default settings (database queue and storage, so
/// synchronization is off), configured through a `pubsync.toml` in `dir`.
pub(crate) fn open_app(dir: &Path, url: &DatabaseUrl) -> anyhow::Result<App> {
    let config = dir.join("pubsync.toml");
    std::fs::write(&config, "").context("writing pubsync.toml")?;
    let url = url.to_connection_string();
    let settings = Settings::load(
        Some(&config),
        [("PUBSYNC_DATABASE_URL".to_owned(), url.clone())],
    )
    .context("settings")?;
    let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
    app.setup().context("pubsync setup")?;
    Ok(app)
}

/// `SELECT COUNT(*)` of `table`.
pub(crate) fn count(database: &Database, table: &str) -> anyhow::Result<usize> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    let row: N = with_connection!(database, |conn| diesel::sql_query(&sql)
        .get_result(conn)
        .map_err(DatabaseError::query(&sql)))?;
    Ok(usize::try_from(row.n)?)
}

/// Runs `statements` one after the other, each its own transaction, and returns how long
/// that took.
fn write(database: &Database, statements: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for statement in statements {
        database
            .batch_execute(statement)
            .with_context(|| format!("writing changes: {}", &statement[..60]))?;
    }
    Ok(started.elapsed())
}

/// `capture_<dialect>`: outbox rows per second.
pub async fn capture(name: &str, dialect: Dialect, size: Size) -> anyhow::Result<Figure> {
    const UNIT: &str = "rows/s";
    let changes = size.e2e_changes;
    let plan = Plan::new(changes);
    let statements = plan.statements();
    let plain: Vec<String> = statements
        .iter()
        .map(|statement| statement.replace(SOURCE, PLAIN_SOURCE))
        .collect();
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        let test_database = match database(dialect) {
            Ok(database) => database,
            Err(note) => return Ok(Figure::missing(name, UNIT, note)),
        };
        let dir = tempfile::tempdir().context("temporary directory")?;
        let app = open_app(dir.path(), test_database.url())?;
        let database = app.database();
        database.batch_execute(&plain_source_ddl(dialect))?;

        let elapsed = write(database, &statements)?;
        let outbox = count(database, OUTBOX)?;
        ensure!(
            outbox == changes,
            "{outbox} outbox rows after {changes} changes"
        );
        let ceiling = write(database, &plain)?;
        let kept = count(database, PLAIN_SOURCE)?;
        ensure!(
            kept == plan.remaining(),
            "the ceiling kept {kept} rows, expected {}",
            plan.remaining()
        );
        eprintln!(
            "bench:   run {}: {changes} changes captured in {:.2} s; without triggers {:.2} s",
            run + 1,
            elapsed.as_secs_f64(),
            ceiling.as_secs_f64()
        );
        pubsync_runs.push(elapsed);
        ceiling_runs.push(ceiling);
    }
    Ok(throughput(
        name,
        UNIT,
        per_second(changes, median(pubsync_runs)),
        per_second(changes, median(ceiling_runs)),
    ))
}

/// The source table's plain copy: same columns and keys, no triggers.
fn plain_source_ddl(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => format!(
            "CREATE TABLE {PLAIN_SOURCE} (id_hello_spryker_message INTEGER PRIMARY KEY \
             AUTOINCREMENT, name VARCHAR(255) NOT NULL, message TEXT)"
        ),
        // `LIKE` copies columns, identity, defaults and indexes, never triggers.
        Dialect::Postgres => format!("CREATE TABLE {PLAIN_SOURCE} (LIKE {SOURCE} INCLUDING ALL)"),
        Dialect::Mysql => format!("CREATE TABLE {PLAIN_SOURCE} LIKE {SOURCE}"),
    }
}

/// The storage table's plain copy: same columns and unique key, no triggers.
fn plain_storage_ddl(dialect: Dialect) -> String {
    let storage = STORAGE;
    match dialect {
        Dialect::Sqlite => format!(
            "CREATE TABLE {PLAIN_STORAGE} (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             fk_hello_spryker_message INTEGER NOT NULL, data TEXT, \"key\" VARCHAR(255) NOT NULL, \
             alias_keys TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP); \
             CREATE INDEX {PLAIN_STORAGE}_fk ON {PLAIN_STORAGE} (fk_hello_spryker_message); \
             CREATE UNIQUE INDEX {PLAIN_STORAGE}_key ON {PLAIN_STORAGE} (\"key\")"
        ),
        Dialect::Postgres => {
            format!("CREATE TABLE {PLAIN_STORAGE} (LIKE {storage} INCLUDING ALL)")
        }
        Dialect::Mysql => format!("CREATE TABLE {PLAIN_STORAGE} LIKE {storage}"),
    }
}

/// `publish_<dialect>`: events turned into storage rows per second.
pub async fn publish(name: &str, dialect: Dialect, size: Size) -> anyhow::Result<Figure> {
    const UNIT: &str = "events/s";
    let changes = size.e2e_changes;
    let plan = Plan::new(changes);
    let statements = plan.statements();
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        let test_database = match database(dialect) {
            Ok(database) => database,
            Err(note) => return Ok(Figure::missing(name, UNIT, note)),
        };
        let dir = tempfile::tempdir().context("temporary directory")?;
        let app = open_app(dir.path(), test_database.url())?;
        ensure!(
            !app.settings().sync.enabled,
            "the publish step runs with synchronization off"
        );
        let database = app.database();
        let worker = app.worker().await?;
        write(database, &statements)?;
        let outbox = count(database, OUTBOX)?;
        ensure!(
            outbox == changes,
            "{outbox} outbox rows after {changes} changes"
        );

        let started = Instant::now();
        let report = worker
            .run(true, &AtomicBool::new(false))
            .await
            .context("running the worker")?;
        let elapsed = started.elapsed();
        ensure!(
            report.failed == 0 && report.retried == 0 && report.relayed == changes,
            "the worker failed, retried or missed events: {report:?}"
        );
        check(database, plan)?;

        database.batch_execute(&plain_storage_ddl(dialect))?;
        let ceiling = raw_publish(database, plan)?;
        let stored = count(database, PLAIN_STORAGE)?;
        ensure!(
            stored == plan.remaining(),
            "the ceiling stored {stored} rows, expected {}",
            plan.remaining()
        );
        eprintln!(
            "bench:   run {}: {changes} events published in {:.2} s ({} messages, {} handled, \
             {} collapsed); raw {:.2} s",
            run + 1,
            elapsed.as_secs_f64(),
            report.messages,
            report.handled,
            report.collapsed,
            ceiling.as_secs_f64()
        );
        pubsync_runs.push(elapsed);
        ceiling_runs.push(ceiling);
    }
    Ok(throughput(
        name,
        UNIT,
        per_second(changes, median(pubsync_runs)),
        per_second(changes, median(ceiling_runs)),
    ))
}

/// The events of `plan` in the order they were captured: `(id, _)` per change, in chunks of
/// [`BATCH`] ids of one kind, as the relay groups them.
fn event_chunks(plan: Plan) -> Vec<Vec<i64>> {
    let first_deleted = plan.inserts - plan.deletes + 1;
    let ranges = [
        1..=plan.inserts,
        1..=plan.updates,
        first_deleted..=plan.inserts,
    ];
    let mut chunks = Vec::new();
    for range in ranges {
        let ids: Vec<i64> = range.map(|id| id as i64).collect();
        chunks.extend(ids.chunks(BATCH).map(<[i64]>::to_vec));
    }
    chunks
}

/// The publisher's unavoidable work with raw SQL: per chunk of events, read the source rows
/// by id, upsert their storage rows, delete the storage rows of ids that are gone.
fn raw_publish(database: &Database, plan: Plan) -> anyhow::Result<Duration> {
    #[derive(diesel::QueryableByName)]
    struct Source {
        #[diesel(sql_type = Integer)]
        id_hello_spryker_message: i32,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Nullable<Text>)]
        message: Option<String>,
    }
    let dialect = database.dialect();
    let chunks = event_chunks(plan);
    let started = Instant::now();
    for ids in chunks {
        let select = format!(
            "SELECT id_hello_spryker_message, name, message FROM {SOURCE} \
             WHERE id_hello_spryker_message IN ({})",
            dialect.placeholders(1, ids.len())
        );
        let found: Vec<Source> = with_connection!(database, |conn| {
            let mut query = diesel::sql_query(&select).into_boxed();
            for id in &ids {
                query = query.bind::<Integer, _>(*id as i32);
            }
            query
                .load(conn)
                .map_err(DatabaseError::query("read source rows"))
        })?;
        let rows: Vec<(String, String, i64)> = found
            .iter()
            .map(|row| {
                let data = serde_json::json!({"name": row.name, "message": row.message});
                (
                    format!("message:{}", row.id_hello_spryker_message),
                    data.to_string(),
                    i64::from(row.id_hello_spryker_message),
                )
            })
            .collect();
        let found_ids: std::collections::HashSet<i64> = rows.iter().map(|(_, _, id)| *id).collect();
        let gone: Vec<String> = ids
            .iter()
            .filter(|id| !found_ids.contains(id))
            .map(|id| format!("message:{id}"))
            .collect();
        let upsert = upsert_sql(dialect, rows.len());
        let delete = format!(
            "DELETE FROM {PLAIN_STORAGE} WHERE {} IN ({})",
            dialect.quote("key"),
            dialect.placeholders(1, gone.len())
        );
        with_connection!(database, |conn| {
            conn.write_transaction(|conn| {
                if !rows.is_empty() {
                    let mut query = diesel::sql_query(&upsert).into_boxed();
                    for (key, data, id) in &rows {
                        query = query
                            .bind::<Text, _>(key.clone())
                            .bind::<Text, _>(data.clone())
                            .bind::<BigInt, _>(*id);
                    }
                    query
                        .execute(conn)
                        .map_err(DatabaseError::query("upsert storage rows"))?;
                }
                if !gone.is_empty() {
                    let mut query = diesel::sql_query(&delete).into_boxed();
                    for key in &gone {
                        query = query.bind::<Text, _>(key.clone());
                    }
                    query
                        .execute(conn)
                        .map_err(DatabaseError::query("delete storage rows"))?;
                }
                Ok::<_, DatabaseError>(())
            })
        })?;
    }
    Ok(started.elapsed())
}

/// A multi-row upsert of `rows` storage rows that leaves unchanged rows alone, as the
/// storage writer's.
fn upsert_sql(dialect: Dialect, rows: usize) -> String {
    let key = dialect.quote("key");
    let mut sql =
        format!("INSERT INTO {PLAIN_STORAGE} ({key}, data, fk_hello_spryker_message) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "({})", dialect.placeholders(1 + row * 3, 3));
    }
    let _ = match dialect {
        Dialect::Mysql => write!(
            sql,
            " ON DUPLICATE KEY UPDATE data = VALUES(data), \
             fk_hello_spryker_message = VALUES(fk_hello_spryker_message), \
             updated_at = CURRENT_TIMESTAMP"
        ),
        Dialect::Postgres | Dialect::Sqlite => write!(
            sql,
            " ON CONFLICT ({key}) DO UPDATE SET data = excluded.data, \
             fk_hello_spryker_message = excluded.fk_hello_spryker_message, \
             updated_at = CURRENT_TIMESTAMP WHERE {PLAIN_STORAGE}.data {distinct} excluded.data",
            distinct = if dialect == Dialect::Postgres {
                "IS DISTINCT FROM"
            } else {
                "IS NOT"
            }
        ),
    };
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_publisher_sees_every_event_once() {
        let plan = Plan::new(10_000);
        let chunks = event_chunks(plan);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10_000);
        assert!(chunks.iter().all(|chunk| chunk.len() <= BATCH));
    }

    #[test]
    fn the_capture_ceiling_writes_the_plain_copy_only() {
        let plain: Vec<String> = Plan::new(2_000)
            .statements()
            .iter()
            .map(|statement| statement.replace(SOURCE, PLAIN_SOURCE))
            .collect();
        assert!(plain.iter().all(|statement| !statement.contains(SOURCE)));
        assert!(plain[1].contains("id_hello_spryker_message BETWEEN"));
    }
}
