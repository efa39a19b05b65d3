//! The read step: `StorageClient::get_multi` of 100 keys, over Redis against raw `MGET` and
//! over database storage against a raw indexed select.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use diesel::RunQueryDsl as _;
use diesel::sql_types::Text;
use pubsync_cli::{App, Settings};
use pubsync_client::StorageClient;
use pubsync_database::testing::TestDatabase;
use pubsync_database::{Bind, Database, DatabaseError, Dialect, Statement, with_connection};
use pubsync_shared::key::{KeyBuilder, KeyBuilders};
use pubsync_storage_extension::{StorageChange, Version};
use pubsync_storage_redis::redis;

use crate::report::Figure;
use crate::{Size, median, per_second, sync, throughput};

/// Keys per `get_multi` call.
const KEYS_PER_CALL: usize = 100;

/// Keys stored; the calls walk through them 100 at a time.
const STORED_KEYS: usize = 10_000;

const UNIT: &str = "keys/s";

/// The keys of call `call`: 100 consecutive stored keys.
fn keys_of_call(call: usize) -> Vec<String> {
    let first = (call * KEYS_PER_CALL) % STORED_KEYS;
    (first..first + KEYS_PER_CALL)
        .map(|i| format!("message:{i}"))
        .collect()
}

/// `get_multi_redis`.
pub async fn redis(size: Size) -> anyhow::Result<Figure> {
    let bench = match sync::connect("get_multi_redis", UNIT).await? {
        Ok(bench) => bench,
        Err(missing) => return Ok(missing),
    };
    let result = measure_redis(&bench, size).await;
    let cleaned = bench.clean_up().await;
    let figure = result?;
    cleaned.context("deleting the benchmark's keys")?;
    Ok(figure)
}

async fn measure_redis(bench: &sync::Bench, size: Size) -> anyhow::Result<Figure> {
    let storage = bench.storage("read").await?;
    let changes = (0..STORED_KEYS)
        .map(|i| StorageChange::Write {
            key: format!("message:{i}"),
            value: sync::value(i, Version::from_micros(1_000_000)),
            version: Version::from_micros(1_000_000),
        })
        .collect();
    storage.apply_unchecked(changes).await?;
    let mut connection = storage.connection();
    let client = StorageClient::new(storage.clone(), KeyBuilders::new(KeyBuilder::default()));
    let calls = size.get_multi_calls;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for _ in 0..size.runs {
        let started = Instant::now();
        for call in 0..calls {
            let keys = keys_of_call(call);
            let values = client.get_multi(&keys).await?;
            ensure!(
                values.iter().all(Option::is_some),
                "get_multi missed keys of call {call}"
            );
        }
        pubsync_runs.push(started.elapsed());

        let started = Instant::now();
        for call in 0..calls {
            let keys: Vec<String> = keys_of_call(call)
                .iter()
                .map(|key| storage.redis_key(key))
                .collect();
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut connection)
                .await?;
            let values = decode(values.iter().map(Option::as_deref))?;
            ensure!(
                values.iter().all(Option::is_some),
                "MGET missed keys of call {call}"
            );
        }
        ceiling_runs.push(started.elapsed());
    }
    Ok(result("get_multi_redis", calls, pubsync_runs, ceiling_runs))
}

/// The values decoded as `StorageClient::get_multi` returns them (`serde_json::Value`), so that
/// the ceiling does the same work as the client contract: only what lies between is measured.
fn decode<'a>(
    values: impl Iterator<Item = Option<&'a [u8]>>,
) -> anyhow::Result<Vec<Option<serde_json::Value>>> {
    values
        .map(|value| value.map(serde_json::from_slice).transpose())
        .collect::<Result<_, _>>()
        .context("decoding a value")
}

fn result(name: &str, calls: usize, pubsync: Vec<Duration>, ceiling: Vec<Duration>) -> Figure {
    let keys = calls * KEYS_PER_CALL;
    throughput(
        name,
        UNIT,
        per_second(keys, median(pubsync)),
        per_second(keys, median(ceiling)),
    )
}

/// `get_multi_postgres`, when this build includes PostgreSQL.
pub async fn postgres(name: &str, size: Size) -> anyhow::Result<Figure> {
    if cfg!(feature = "postgres") {
        database(Dialect::Postgres, name, size).await
    } else {
        Ok(Figure::missing(
            name,
            UNIT,
            "this build has no PostgreSQL support (feature `postgres`)",
        ))
    }
}

/// `get_multi_<database>` on a fresh database of `dialect`.
pub async fn database(dialect: Dialect, name: &str, size: Size) -> anyhow::Result<Figure> {
    let Some(test_database) = TestDatabase::create(dialect) else {
        return Ok(Figure::missing(
            name,
            UNIT,
            format!("{} unreachable", dialect.name()),
        ));
    };
    let dir = tempfile::tempdir().context("temporary directory")?;
    let config = dir.path().join("pubsync.toml");
    let url = test_database.url().to_connection_string();
    std::fs::write(&config, format!("database_url = {url:?}\n"))?;
    let settings = Settings::load(Some(&config), []).context("settings")?;
    let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
    app.setup()?;
    let figure = measure_database(&app, name, size).await;
    // The pool goes before the database it points to is dropped.
    drop(app);
    drop(test_database);
    figure
}

async fn measure_database(app: &App, name: &str, size: Size) -> anyhow::Result<Figure> {
    let database = app.database();
    let dialect = database.dialect();
    for first in (0..STORED_KEYS).step_by(1000) {
        let mut sql = format!(
            "INSERT INTO spy_hello_spryker_message_storage (fk_hello_spryker_message, {}, data) VALUES ",
            dialect.quote("key")
        );
        for i in first..first + 1000 {
            if i > first {
                sql.push_str(", ");
            }
            let _ = write!(
                sql,
                "({i}, 'message:{i}', '{}')",
                sync::value(i, Version::from_micros(1_000_000))
            );
        }
        database.batch_execute(&sql)?;
    }
    if dialect == Dialect::Postgres {
        // Statistics, as a table in use has them (freshly filled, it has none yet).
        database.batch_execute("ANALYZE spy_hello_spryker_message_storage")?;
    }
    let client = app.client().await?;
    let calls = size.get_multi_calls;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for _ in 0..size.runs {
        let started = Instant::now();
        for call in 0..calls {
            let keys = keys_of_call(call);
            let values = client.get_multi(&keys).await?;
            ensure!(
                values.iter().all(Option::is_some),
                "get_multi missed keys of call {call}"
            );
        }
        pubsync_runs.push(started.elapsed());

        let raw = database.clone();
        let elapsed = tokio::task::spawn_blocking(move || raw_selects(&raw, calls))
            .await
            .context("raw select task")??;
        ceiling_runs.push(elapsed);
    }
    Ok(result(name, calls, pubsync_runs, ceiling_runs))
}

/// A row of the raw select.
#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    key: String,
    #[diesel(sql_type = Text)]
    data: String,
}

/// `calls` raw selects of 100 bound keys, each on a pooled connection as the storage takes one,
/// values decoded as the client's: `SELECT "key", "data" … WHERE "key" = ANY(…$1…)` with one
/// array parameter on PostgreSQL, `… WHERE "key" IN (?, …)` elsewhere, kept prepared as a raw
/// client would keep a statement it runs over and over.
fn raw_selects(database: &Database, calls: usize) -> anyhow::Result<Duration> {
    let dialect = database.dialect();
    let key = dialect.quote("key");
    // On PostgreSQL the array goes through a sub-select, so that the planner takes the
    // unique index: with the 100 keys visible it scans the whole table instead (a quarter of
    // the speed here, statistics fresh or not), which would make a poor ceiling.
    let predicate = if dialect == Dialect::Postgres {
        pubsync_database::postgres_any(&key, "TEXT", "$1")
    } else {
        format!("{key} IN ({})", Statement::placeholders(KEYS_PER_CALL))
    };
    let sql = format!(
        "SELECT {key}, {data} FROM spy_hello_spryker_message_storage WHERE {predicate}",
        data = dialect.quote("data"),
    );
    let started = Instant::now();
    for call in 0..calls {
        let keys = keys_of_call(call);
        let rows: Vec<Row> = select(database, &sql, &keys)?;
        let values = decode(rows.iter().map(|row| Some(row.data.as_bytes())))?;
        ensure!(values.len() == rows.len(), "decoded {} rows", values.len());
        ensure!(
            rows.len() == KEYS_PER_CALL,
            "the select found {} of {KEYS_PER_CALL} keys",
            rows.len()
        );
    }
    Ok(started.elapsed())
}

/// Runs `sql` with `keys` bound: one `text[]` parameter on PostgreSQL, one parameter per key
/// elsewhere.
fn select(database: &Database, sql: &str, keys: &[String]) -> anyhow::Result<Vec<Row>> {
    #[cfg(feature = "postgres")]
    if let pubsync_database::Pool::Postgres(pool) = database.pool() {
        let mut conn = pool.get().context("pooled connection")?;
        return Ok(diesel::sql_query(sql)
            .bind::<diesel::sql_types::Array<Text>, _>(keys)
            .load(&mut *conn)
            .map_err(DatabaseError::query(sql))?);
    }
    let mut statement = Statement::new(sql);
    for key in keys {
        statement.push(Bind::Text(key.clone()));
    }
    Ok(with_connection!(database, |conn| statement
        .clone()
        .load(conn)
        .map_err(DatabaseError::query(sql)))?)
}
