//! End to end on SQLite: changes written with plain SQL while the real worker runs in the
//! same process, with the database queue.
//!
//! - `e2e_sqlite_hello`, the embedded default (database storage): until the last change is in
//!   the storage table.
//! - `e2e_sqlite_redis_hello`: Redis as the storage with `[sync] direct = true`, as the
//!   SQLite backfill writes it; the changes and their end are those of the server scenarios
//!   ([`crate::final_state`]: a sentinel row, then every key checked in Redis).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use diesel::connection::SimpleConnection as _;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection as _, RunQueryDsl as _, SqliteConnection};
use pubsync_backend::{Worker, WorkerReport};
use pubsync_cli::backends::AnyKeyValueStore;
use pubsync_cli::config::{QueueUrl, StorageUrl};
use pubsync_cli::{App, AppQueue, Settings};
use pubsync_database::{Database, DatabaseError, DatabaseUrl, PoolOptions, with_connection};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::final_state::{self, Payload, both, wait_for};
use crate::report::Figure;
use crate::{Size, median, per_second, throughput};

/// Rows per written statement.
pub(crate) const BATCH: usize = 1000;

/// How the application's own connection is set up (the ceiling's pool does the same): WAL
/// (already the file's journal mode), `synchronous = NORMAL`, and a busy timeout so that it
/// waits for the worker's transactions instead of failing.
const APPLICATION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;";

/// `e2e_sqlite_hello`, against raw batched INSERTs into a plain table.
pub async fn sqlite_hello(size: Size) -> anyhow::Result<Figure> {
    let changes = size.e2e_changes;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let elapsed = pubsync_run(dir.path(), changes)
            .await
            .with_context(|| format!("end-to-end run {}", run + 1))?;
        pubsync_runs.push(elapsed);
        let dir = tempfile::tempdir().context("temporary directory")?;
        ceiling_runs.push(ceiling_run(dir.path(), changes)?);
    }
    Ok(throughput(
        "e2e_sqlite_hello",
        "changes/s",
        per_second(changes, median(pubsync_runs)),
        per_second(changes, median(ceiling_runs)),
    ))
}

/// The three phases of `changes` entity changes: ids `1..=inserts` are inserted, `1..=updates`
/// updated, and the last `deletes` of the inserted ids deleted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) inserts: usize,
    pub(crate) updates: usize,
    pub(crate) deletes: usize,
    /// One message in each hundred ([`Plan::is_long`]) made long, or `None`.
    pub(crate) long: Option<Long>,
}

/// How long the long messages of a [`Plan`] are, against the limit of [`POISON_CONFIG`].
/// Updates leave them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Long {
    /// Just under the limit: published as any other.
    UnderLimit,
    /// Just over it: poison. The storage row is refused, and the events end in the error
    /// queue.
    Poison,
}

impl Long {
    /// The message's length; a row's data is its message and about 50 bytes more.
    fn bytes(self) -> usize {
        match self {
            Self::UnderLimit => 900,
            Self::Poison => 1100,
        }
    }
}

/// `pubsync.toml` lines of a run with long messages: a storage row's data is refused over
/// 1 KB, and a failing event is retried after 1, 2 and 4 ms (three retries, the default)
/// before the error queue, so that the run is not timed waiting.
pub(crate) const POISON_CONFIG: &str =
    "[sync]\nmax_payload_bytes = 1024\n[worker]\nretry_delay_ms = 1\n";

impl Plan {
    pub(crate) fn new(changes: usize) -> Self {
        let inserts = changes / 2;
        let updates = changes / 4;
        Self {
            inserts,
            updates,
            deletes: changes - inserts - updates,
            long: None,
        }
    }

    /// The same changes with one message in each hundred `long`.
    pub(crate) fn with_long(self, long: Long) -> Self {
        Self {
            long: Some(long),
            ..self
        }
    }

    /// Whether message `id` is long in a plan with long messages.
    fn is_long(id: usize) -> bool {
        id % 100 == 37
    }

    /// Whether the plan's long messages are poison.
    pub(crate) fn poisoned(self) -> bool {
        self.long == Some(Long::Poison)
    }

    /// Long messages among `ids`.
    fn long_among(self, ids: std::ops::RangeInclusive<usize>) -> usize {
        match self.long {
            Some(_) => ids.filter(|id| Self::is_long(*id)).count(),
            None => 0,
        }
    }

    /// Poison messages among `ids`.
    fn poison_among(self, ids: std::ops::RangeInclusive<usize>) -> usize {
        if self.poisoned() {
            self.long_among(ids)
        } else {
            0
        }
    }

    /// Messages left at the end.
    pub(crate) fn remaining(self) -> usize {
        self.inserts - self.deletes
    }

    /// The statements that write the changes, in order, at most [`BATCH`] rows each.
    pub(crate) fn statements(self) -> Vec<String> {
        let mut statements = Vec::new();
        for first in (1..=self.inserts).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.inserts);
            let mut sql =
                String::from("INSERT INTO spy_hello_spryker_message (name, message) VALUES ");
            for i in first..=last {
                if i > first {
                    sql.push_str(", ");
                }
                if let Some(long) = self.long.filter(|_| Self::is_long(i)) {
                    let _ = write!(sql, "('name {i}', '{}')", "x".repeat(long.bytes()));
                } else {
                    let _ = write!(sql, "('name {i}', 'Hello Spryker! {i}')");
                }
            }
            statements.push(sql);
        }
        let message = if self.long.is_some() {
            "CASE WHEN id_hello_spryker_message % 100 = 37 THEN message \
             ELSE 'updated ' || id_hello_spryker_message END"
        } else {
            "'updated ' || id_hello_spryker_message"
        };
        for first in (1..=self.updates).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.updates);
            statements.push(format!(
                "UPDATE spy_hello_spryker_message SET message = {message} \
                 WHERE id_hello_spryker_message BETWEEN {first} AND {last}"
            ));
        }
        let first_deleted = self.inserts - self.deletes + 1;
        for first in (first_deleted..=self.inserts).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.inserts);
            statements.push(format!(
                "DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message BETWEEN {first} AND {last}"
            ));
        }
        statements
    }
}

/// The name of the SQLite + Redis figure.
const REDIS_NAME: &str = "e2e_sqlite_redis_hello";

/// `e2e_sqlite_redis_hello`: the changes of `e2e_sqlite_hello` (and one sentinel row) on SQLite
/// with the database queue, but Redis as the storage and `[sync] direct = true`, timed until
/// Redis holds their final state; against the same raw-INSERT ceiling.
pub async fn sqlite_redis_hello(size: Size) -> anyhow::Result<Figure> {
    if !cfg!(feature = "redis") {
        return Ok(Figure::missing(
            REDIS_NAME,
            "changes/s",
            "built without the redis feature (cargo xtask bench turns it on)",
        ));
    }
    let Some(redis_url) = require(Service::Redis) else {
        return Ok(Figure::missing(
            REDIS_NAME,
            "changes/s",
            format!("Redis unreachable at {}", Service::Redis.url()),
        ));
    };
    let changes = size.e2e_changes;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let elapsed = redis_run(dir.path(), &redis_url, changes)
            .await
            .with_context(|| format!("end-to-end run {}", run + 1))?;
        pubsync_runs.push(elapsed);
        let dir = tempfile::tempdir().context("temporary directory")?;
        ceiling_runs.push(ceiling_run(dir.path(), changes)?);
    }
    Ok(throughput(
        REDIS_NAME,
        "changes/s",
        per_second(changes, median(pubsync_runs)),
        per_second(changes, median(ceiling_runs)),
    ))
}

/// The application's worker on a task of its own, running while the changes are written, as
/// in production.
struct Live {
    worker: Arc<Worker<AppQueue, AnyKeyValueStore>>,
    stop: Arc<AtomicBool>,
    running: JoinHandle<anyhow::Result<WorkerReport>>,
}

impl Live {
    async fn start(app: &App) -> anyhow::Result<Self> {
        let worker = Arc::new(app.worker().await?);
        let stop = Arc::new(AtomicBool::new(false));
        let running = tokio::spawn({
            let (worker, stop) = (worker.clone(), stop.clone());
            async move { worker.run(false, &stop).await.context("running the worker") }
        });
        Ok(Self {
            worker,
            stop,
            running,
        })
    }

    /// Fails when the worker has stopped (it only stops on an error before [`finish`]).
    ///
    /// [`finish`]: Self::finish
    fn ensure_running(&self) -> anyhow::Result<()> {
        ensure!(
            !self.running.is_finished(),
            "the worker stopped (its error follows when it is finished)"
        );
        Ok(())
    }

    /// Stops the worker and returns its report.
    async fn finish(self) -> anyhow::Result<WorkerReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.running.await.context("the worker task")?
    }
}

/// Writes `statements`, each its own transaction, as the application does: on a connection
/// of its own to the SQLite file `database`, set up as the ceiling's. Returns when the first
/// write started.
async fn write(database: &Path, statements: Vec<String>) -> anyhow::Result<Instant> {
    let mut application = SqliteConnection::establish(&database.display().to_string())
        .context("the application's connection")?;
    application.batch_execute(APPLICATION_PRAGMAS)?;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        for statement in &statements {
            application.batch_execute(statement).with_context(|| {
                format!("writing changes: {}", &statement[..statement.len().min(60)])
            })?;
        }
        anyhow::Ok(())
    })
    .await??;
    Ok(started)
}

async fn pubsync_run(dir: &Path, changes: usize) -> anyhow::Result<Duration> {
    pubsync_plan_run(dir, Plan::new(changes), "").await
}

/// `plan` through the embedded default in `dir`, with `config` (`pubsync.toml` lines) added:
/// from the first write until nothing is left to do, the storage table checked.
pub(crate) async fn pubsync_plan_run(
    dir: &Path,
    plan: Plan,
    config: &str,
) -> anyhow::Result<Duration> {
    let changes = plan.inserts + plan.updates + plan.deletes;
    ensure!(
        plan.updates <= plan.remaining(),
        "the plan updates only messages it keeps"
    );
    let toml = config;
    let config = dir.join("pubsync.toml");
    let database = dir.join("bench.db");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\n{toml}",
            format!("sqlite://{}", database.display())
        ),
    )?;
    let settings = Settings::load(Some(&config), []).context("settings")?;
    let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
    app.setup()?;
    let live = Live::start(&app).await?;
    let started = write(&database, plan.statements()).await?;
    let written = started.elapsed();
    while !live.worker.is_empty().await.context("asking the worker")? {
        if live.running.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = started.elapsed();
    let report = live.finish().await?;
    eprintln!(
        "bench:   {changes} changes: written in {:.2} s, all in storage after {:.2} s ({report})",
        written.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    if plan.poisoned() {
        let poison = plan.poison_among(1..=plan.remaining());
        ensure!(
            report.failed >= poison,
            "{} events failed, expected one at least for each of the {poison} poison messages kept",
            report.failed
        );
    } else {
        final_state::ensure_clean(&report)?;
    }
    check(app.database(), plan)?;
    Ok(elapsed)
}

/// One run of `e2e_sqlite_redis_hello` in `dir`, with Redis at `redis_url` under a key prefix
/// of its own, whose keys are deleted afterwards, failed or not.
async fn redis_run(dir: &Path, redis_url: &str, changes: usize) -> anyhow::Result<Duration> {
    let plan = final_state::Plan::new(changes, Payload::Hello);
    ensure!(
        plan.counts.updates <= plan.remaining(),
        "the plan updates only messages it keeps"
    );
    let key_prefix = format!("{}:", unique_name("pubsync_bench"));
    let config = dir.join("pubsync.toml");
    let database = dir.join("bench.db");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\nstorage_url = {redis_url:?}\n\
             [storage]\nkey_prefix = {key_prefix:?}\n[sync]\ndirect = true\n",
            format!("sqlite://{}", database.display())
        ),
    )?;
    let settings = Settings::load(Some(&config), []).context("settings")?;
    ensure!(
        settings.queue == QueueUrl::Database
            && matches!(settings.storage, StorageUrl::Redis(_))
            && settings.sync.enabled
            && settings.sync.direct,
        "the run uses the database queue and Redis with direct synchronization"
    );
    let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
    app.setup()?;
    let storage = RedisStorage::connect(
        redis_url,
        RedisStorageOptions::with_key_prefix(key_prefix.clone()),
    )
    .await
    .context("connecting to Redis")?;
    let result = async {
        let live = Live::start(&app).await?;
        let result = async {
            let started = write(&database, plan.statements()).await?;
            let written = started.elapsed();
            let visible =
                wait_for(&storage, plan.expected(), || live.ensure_running()).await? - started;
            let keys = crate::sync::scan(&storage, &format!("{key_prefix}kv:*"))
                .await?
                .len();
            ensure!(
                keys == plan.remaining() + 1,
                "{keys} kv: keys in Redis, expected {} and the sentinel",
                plan.remaining()
            );
            anyhow::Ok((written, visible))
        }
        .await;
        both(result, live.finish().await)
    }
    .await;
    let cleaned = crate::sync::delete_keys(&storage, &format!("{key_prefix}*")).await;
    let ((written, visible), report) = result?;
    cleaned.context("deleting the benchmark's Redis keys")?;
    final_state::report_run(changes, written, visible, &report)?;
    Ok(visible)
}

/// The storage table holds exactly what the changes leave, and nothing is left to do.
pub(crate) fn check(database: &Database, plan: Plan) -> anyhow::Result<()> {
    let count = |sql: &str| -> anyhow::Result<i64> {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let row: N = with_connection!(database, |conn| diesel::sql_query(sql)
            .get_result(conn)
            .map_err(DatabaseError::query(sql)))?;
        Ok(row.n)
    };
    let poison_kept = plan.poison_among(1..=plan.remaining());
    let remaining = (plan.remaining() - poison_kept) as i64;
    let stored = count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage")?;
    ensure!(
        stored == remaining,
        "{stored} storage rows, expected {remaining}"
    );
    let updates = (plan.updates - plan.long_among(1..=plan.updates)) as i64;
    let updated = count(
        "SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage WHERE data LIKE '%\"updated %'",
    )?;
    ensure!(
        updated == updates,
        "{updated} updated storage rows, expected {updates}"
    );
    let outbox = count("SELECT COUNT(*) AS n FROM spy_event_behavior_entity_change")?;
    ensure!(outbox == 0, "{outbox} events left in the outbox");
    let queued = count(
        "SELECT COUNT(*) AS n FROM pubsync_queue_message WHERE queue_name NOT LIKE '%.error'",
    )?;
    ensure!(queued == 0, "{queued} messages left in the queue");
    let errors =
        count("SELECT COUNT(*) AS n FROM pubsync_queue_message WHERE queue_name LIKE '%.error'")?;
    ensure!(
        errors >= poison_kept as i64 && (plan.poisoned() || errors == 0),
        "{errors} messages in the error queue with {poison_kept} poison messages kept"
    );

    let data = |id: usize| -> anyhow::Result<Option<serde_json::Value>> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            data: String,
        }
        let sql = format!(
            "SELECT data FROM spy_hello_spryker_message_storage WHERE \"key\" = 'message:{id}'"
        );
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(&sql)
            .load(conn)
            .map_err(DatabaseError::query(&sql)))?;
        rows.into_iter()
            .next()
            .map(|row| serde_json::from_str(&row.data).context("storage data is JSON"))
            .transpose()
    };
    for id in [1, plan.updates / 2 + 1, plan.updates] {
        let expected = json!({"name": format!("name {id}"), "message": format!("updated {id}")});
        let found = data(id)?;
        ensure!(
            found.as_ref() == Some(&expected),
            "message:{id} is {found:?}, expected {expected}"
        );
    }
    let deleted = plan.remaining() + 1;
    ensure!(
        data(deleted)?.is_none(),
        "message:{deleted} was deleted but is still in storage"
    );
    Ok(())
}

/// The same number of rows, multi-row INSERTs of [`BATCH`] rows into a plain table.
fn ceiling_run(dir: &Path, rows: usize) -> anyhow::Result<Duration> {
    let database = Database::connect(
        &DatabaseUrl::Sqlite(dir.join("ceiling.db")),
        &PoolOptions::default(),
    )?;
    database.batch_execute(
        "CREATE TABLE message (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(255) NOT NULL, message TEXT)",
    )?;
    let started = Instant::now();
    for first in (1..=rows).step_by(BATCH) {
        let last = (first + BATCH - 1).min(rows);
        let mut sql = String::from("INSERT INTO message (name, message) VALUES ");
        for i in first..=last {
            if i > first {
                sql.push_str(", ");
            }
            let _ = write!(sql, "('name {i}', 'Hello Spryker! {i}')");
        }
        database.batch_execute(&sql)?;
    }
    let elapsed = started.elapsed();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = "SELECT COUNT(*) AS n FROM message";
    let row: N = with_connection!(database, |conn| diesel::sql_query(sql)
        .get_result(conn)
        .map_err(DatabaseError::query(sql)))?;
    ensure!(
        row.n == rows as i64,
        "the ceiling wrote {} rows, expected {rows}",
        row.n
    );
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_adds_up_and_keeps_what_it_updates() {
        let plan = Plan::new(2_000);
        assert_eq!(plan.inserts + plan.updates + plan.deletes, 2_000);
        assert_eq!(plan.remaining(), plan.updates);
        assert_eq!(plan.statements().len(), 1 + 1 + 1);
        let plan = Plan::new(100_000);
        assert_eq!(plan.statements().len(), 50 + 25 + 25);
    }
}
