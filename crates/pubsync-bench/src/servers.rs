//! End to end on the production servers: PostgreSQL or MySQL/MariaDB + RabbitMQ + Redis.
//!
//! Each run gets a fresh database ([`TestDatabase`]), its own queue-name prefix and Redis key
//! prefix, and builds the real pipeline with [`App`] from a temporary `pubsync.toml`. The worker
//! is started before the writes, as in production; the changes are then written with plain SQL
//! and the run is timed from the first write until the last change is visible in Redis. The
//! final state is checked key by key (values, deletions) before a figure is reported.
//!
//! The changes, the final state they leave in Redis and the wait for it are in
//! [`crate::final_state`], which the SQLite + Redis scenario shares. The latency scenario
//! ([`crate::latency`]), the Spryker-shaped run ([`crate::spryker`]) and the RabbitMQ step
//! ([`crate::queue`]) live beside this module and use its [`Pipeline`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use diesel::RunQueryDsl as _;
use diesel::sql_types::BigInt;
use pubsync_backend::WorkerReport;
use pubsync_cli::{App, Settings};
use pubsync_database::testing::TestDatabase;
use pubsync_database::{Database, DatabaseError, Dialect, with_connection};
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};
use tokio::task::JoinHandle;

use crate::e2e::BATCH;
use crate::final_state::{Payload, Plan, both, insert_statement, wait_for};
use crate::report::Figure;
use crate::{Size, median, per_second, throughput};

/// Runs server scenario `name` (see `SCENARIOS` in `main.rs`).
pub async fn run(name: &str, size: Size) -> anyhow::Result<Vec<Figure>> {
    Ok(match name {
        "e2e_postgres_rabbitmq_redis_hello" => {
            vec![e2e(name, Dialect::Postgres, Payload::Hello, size).await?]
        }
        "e2e_postgres_rabbitmq_redis_1kb" => {
            vec![e2e(name, Dialect::Postgres, Payload::OneKb, size).await?]
        }
        "e2e_mysql_rabbitmq_redis_hello" => {
            vec![e2e(name, Dialect::Mysql, Payload::Hello, size).await?]
        }
        "latency_postgres_rabbitmq_redis_1k" => {
            crate::latency::run(size, crate::latency::Load::Paced).await?
        }
        "latency_postgres_rabbitmq_redis_full" => {
            crate::latency::run(size, crate::latency::Load::FullSpeed).await?
        }
        "spryker_shaped_ratio" => crate::spryker::run(size).await?,
        "queue_rabbitmq" => vec![crate::queue::run(size).await?],
        other => bail!("{other} is not a server scenario"),
    })
}

/// The addresses of the servers a pipeline needs.
#[derive(Debug, Clone)]
pub struct Servers {
    /// The database server.
    pub dialect: Dialect,
    /// RabbitMQ.
    pub amqp_url: String,
    /// Redis.
    pub redis_url: String,
}

impl Servers {
    /// The servers, or why a figure is missing (outside CI; under `CI=true` an unreachable
    /// server fails, see [`require`]).
    pub fn require(dialect: Dialect) -> Result<Self, String> {
        let service = match dialect {
            Dialect::Postgres => Service::Postgres,
            Dialect::Mysql => Service::Mysql,
            Dialect::Sqlite => return Err("SQLite has no server".to_owned()),
        };
        let mut unreachable = Vec::new();
        for service in [service, Service::Rabbitmq, Service::Redis] {
            if require(service).is_none() {
                unreachable.push(format!("{service:?} unreachable at {}", service.url()));
            }
        }
        if !unreachable.is_empty() {
            return Err(unreachable.join(", "));
        }
        Ok(Self {
            dialect,
            amqp_url: Service::Rabbitmq.url(),
            redis_url: Service::Redis.url(),
        })
    }
}

/// One pipeline on the servers: a fresh database, queues and Redis keys of its own, and the
/// worker running on a task.
pub struct Pipeline {
    app: App,
    storage: RedisStorage,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<anyhow::Result<WorkerReport>>>,
    /// Every queue the worker declared (with the prefix), to delete at the end.
    queues: Vec<String>,
    servers: Servers,
    key_prefix: String,
    _dir: tempfile::TempDir,
    /// Dropped last: dropping it drops the database.
    _database: TestDatabase,
}

impl Pipeline {
    /// Sets up a fresh pipeline configured with `extra` (TOML sections appended to
    /// `pubsync.toml`) and starts its worker.
    pub async fn start(servers: &Servers, extra: &str) -> anyhow::Result<Self> {
        let database = TestDatabase::create(servers.dialect)
            .with_context(|| format!("{} is unreachable", servers.dialect))?;
        let name = unique_name("pubsync_bench");
        let key_prefix = format!("{name}:");
        let dir = tempfile::tempdir().context("temporary directory")?;
        let config = dir.path().join("pubsync.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = {:?}\nqueue_url = {:?}\nstorage_url = {:?}\n\
                 [queue]\nprefix = {:?}\n[storage]\nkey_prefix = {key_prefix:?}\n{extra}",
                database.url().to_connection_string(),
                servers.amqp_url,
                servers.redis_url,
                format!("{name}."),
            ),
        )?;
        let settings = Settings::load(Some(&config), []).context("settings")?;
        let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
        app.database()
            .blocking({
                let app = app.clone();
                move |_| app.setup()
            })
            .await
            .context("setting up the schema")?;
        let worker = app.worker().await?;
        worker.declare().await.context("declaring the queues")?;
        let mut queues: Vec<String> = worker
            .queues()
            .into_iter()
            .chain([pubsync_backend::sync::UNROUTABLE_QUEUE.to_owned()])
            .map(|queue| format!("{name}.{queue}"))
            .collect();
        queues.sort();
        queues.dedup();
        let storage = RedisStorage::connect(
            &servers.redis_url,
            RedisStorageOptions::with_key_prefix(key_prefix.clone()),
        )
        .await
        .context("connecting to Redis")?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            tokio::spawn(
                async move { worker.run(false, &stop).await.context("running the worker") },
            )
        };
        Ok(Self {
            app,
            storage,
            stop,
            worker: Some(worker),
            queues,
            servers: servers.clone(),
            key_prefix,
            _dir: dir,
            _database: database,
        })
    }

    /// The application database.
    pub fn database(&self) -> &Database {
        self.app.database()
    }

    /// Redis with the pipeline's key prefix.
    pub fn storage(&self) -> &RedisStorage {
        &self.storage
    }

    /// Executes `statements` in order, each its own transaction, on a blocking thread.
    pub async fn write(&self, statements: Vec<String>) -> anyhow::Result<()> {
        self.database()
            .blocking(move |database| {
                for statement in &statements {
                    database.batch_execute(statement).with_context(|| {
                        format!("writing changes: {}", &statement[..statement.len().min(60)])
                    })?;
                }
                anyhow::Ok(())
            })
            .await
    }

    /// Stops the worker and returns its report; then deletes the queues and the Redis keys
    /// (the database goes when the pipeline is dropped). Cleans up even when the worker
    /// failed.
    pub async fn finish(mut self) -> anyhow::Result<WorkerReport> {
        self.stop.store(true, Ordering::Relaxed);
        let report = match self.worker.take() {
            Some(worker) => worker.await.context("the worker task panicked")?,
            None => bail!("the worker was already stopped"),
        };
        let cleaned = self.clean_up().await;
        let report = report?;
        cleaned?;
        Ok(report)
    }

    async fn clean_up(&self) -> anyhow::Result<()> {
        let queue = RabbitQueue::connect_url(&self.servers.amqp_url, RabbitQueueOptions::default())
            .await
            .context("connecting to RabbitMQ to delete the queues")?;
        for name in &self.queues {
            queue
                .delete(name)
                .await
                .with_context(|| format!("deleting queue {name}"))?;
        }
        crate::sync::delete_keys(&self.storage, &format!("{}*", self.key_prefix)).await
    }

    /// Fails when the worker has stopped (it only stops on an error before [`finish`]).
    ///
    /// [`finish`]: Self::finish
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        ensure!(
            self.worker
                .as_ref()
                .is_some_and(|worker| !worker.is_finished()),
            "the worker stopped (its error follows when the pipeline finishes)"
        );
        Ok(())
    }

    /// How many `kv:` keys the pipeline's prefix holds.
    pub async fn count_keys(&self) -> anyhow::Result<usize> {
        Ok(
            crate::sync::scan(&self.storage, &format!("{}kv:*", self.key_prefix))
                .await?
                .len(),
        )
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One end-to-end run of `changes` changes of `payload` rows through a pipeline configured
/// with `extra`: timed from the first write until the last change is visible in Redis, and
/// checked.
pub async fn pipeline_run(
    servers: &Servers,
    payload: Payload,
    changes: usize,
    extra: &str,
) -> anyhow::Result<Duration> {
    let plan = Plan::new(changes, payload);
    ensure!(
        plan.counts.updates <= plan.remaining(),
        "the plan updates only messages it keeps"
    );
    let pipeline = Pipeline::start(servers, extra).await?;
    let result = async {
        let statements = plan.statements();
        let started = Instant::now();
        pipeline.write(statements).await?;
        let written = started.elapsed();
        let visible = wait_for(pipeline.storage(), plan.expected(), || {
            pipeline.ensure_running()
        })
        .await?
            - started;
        let keys = pipeline.count_keys().await?;
        ensure!(
            keys == plan.remaining() + 1,
            "{keys} kv: keys in Redis, expected {} and the sentinel",
            plan.remaining()
        );
        anyhow::Ok((written, visible))
    }
    .await;
    let ((written, visible), report) = both(result, pipeline.finish().await)?;
    crate::final_state::report_run(changes, written, visible, &report)?;
    Ok(visible)
}

/// An `e2e_*` figure: the median of [`Size::e2e_runs`] pipeline runs against the median of as
/// many raw-INSERT ceilings on the same server.
async fn e2e(name: &str, dialect: Dialect, payload: Payload, size: Size) -> anyhow::Result<Figure> {
    let servers = match Servers::require(dialect) {
        Ok(servers) => servers,
        Err(note) => return Ok(Figure::missing(name, "changes/s", note)),
    };
    let changes = size.e2e_changes;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        pubsync_runs.push(
            pipeline_run(&servers, payload, changes, "")
                .await
                .with_context(|| format!("end-to-end run {}", run + 1))?,
        );
        ceiling_runs.push(ceiling_run(dialect, payload, changes).await?);
    }
    Ok(throughput(
        name,
        "changes/s",
        per_second(changes, median(pubsync_runs)),
        per_second(changes, median(ceiling_runs)),
    ))
}

/// The ceiling of the end-to-end figures: the same number of rows written with multi-row
/// INSERTs of [`BATCH`] rows into a plain table of a fresh database on the same server.
async fn ceiling_run(dialect: Dialect, payload: Payload, rows: usize) -> anyhow::Result<Duration> {
    let test_database =
        TestDatabase::create(dialect).with_context(|| format!("{dialect} is unreachable"))?;
    let database = test_database.connect();
    database
        .blocking(move |database| {
            database.batch_execute(
                "CREATE TABLE bench_ceiling (id INT PRIMARY KEY, name VARCHAR(255) NOT NULL, message TEXT)",
            )?;
            let started = Instant::now();
            for first in (1..=rows).step_by(BATCH) {
                let last = (first + BATCH - 1).min(rows);
                database.batch_execute(&insert_statement("bench_ceiling", "id", payload, first, last))?;
            }
            let elapsed = started.elapsed();
            let stored = count(database, "SELECT COUNT(*) AS n FROM bench_ceiling")?;
            ensure!(stored == rows as i64, "the ceiling wrote {stored} rows, expected {rows}");
            Ok(elapsed)
        })
        .await
}

/// The single number `sql` (`SELECT COUNT(*) AS n …`) returns.
pub fn count(database: &Database, sql: &str) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: N = with_connection!(database, |conn| diesel::sql_query(sql)
        .get_result(conn)
        .map_err(DatabaseError::query(sql)))?;
    Ok(row.n)
}
