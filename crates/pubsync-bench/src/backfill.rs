//! The backfill: a shop table whose rows no capture trigger saw, brought into storage and
//! Redis by the release `pubsync` binary, `pubsync publish:trigger-events -r message`, run as
//! its own process.
//!
//! On a fresh database (an SQLite file, or a PostgreSQL or MySQL/MariaDB database of its own)
//! the shop's `spy_hello_spryker_message` is created as adoption creates it, but before
//! `pubsync setup`, and filled with N rows whose ids have gaps (2, 4, …, 2N) in one set-based
//! statement (a recursive CTE on SQLite, `generate_series` on PostgreSQL) or multi-row INSERTs
//! of 1000 (MySQL). Setup then adopts the table and installs the capture triggers: the outbox
//! stays empty and setup reports the N rows as uncaptured. The binary runs with Redis as the
//! storage (a key prefix of its own) and `[sync] direct = true`, so after each chunk of 1000
//! ids its sync relay writes the keys to Redis straight away; no worker runs. One scenario,
//! `backfill_sqlite_database`, runs it with database storage instead (the embedded default:
//! the storage table alone, no synchronization). It is timed from its start until it exits,
//! and its peak RSS read as [`crate::memory`] reads the worker's. Before a figure is reported,
//! the storage table must hold N rows (and Redis, where it is the storage, N `kv:message:*`
//! keys under the prefix), sampled values must match their source rows, and no outbox, sync
//! outbox or queue row may be left.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use diesel::RunQueryDsl as _;
use diesel::sql_types::{Nullable, Text};
use pubsync_backend::adopt::Plan;
use pubsync_cli::config::StorageUrl;
use pubsync_cli::{App, Settings};
use pubsync_database::names::{queue_message, sync_outbox};
use pubsync_database::{Database, DatabaseError, Dialect, with_connection};
use pubsync_storage_redis::redis;
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};

use crate::final_state::mget;
use crate::memory::{measure, pubsync_binary, pubsync_command};
use crate::report::{Figure, number};
use crate::steps::{OUTBOX, count};

/// The unit of the throughput figure.
const UNIT: &str = "rows/s";
/// The unit of the memory figure: megabytes of 10^6 bytes.
const RSS_UNIT: &str = "MB";
/// The shop's table the backfill walks.
const SOURCE: &str = "spy_hello_spryker_message";
/// The storage table the Hello publisher writes.
const STORAGE: &str = "spy_hello_spryker_message_storage";
/// Rows per INSERT where the rows are written in batches (MySQL).
const BATCH: usize = 1000;
/// Keys per SCAN step while counting the keys in Redis.
const SCAN_COUNT: usize = 10_000;

/// Where a backfill writes what it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Redis under a key prefix of the run's own, with `[sync] direct = true`.
    Redis,
    /// The storage table alone: the embedded default, no synchronization.
    Database,
}

/// One backfill scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The scenario and its figure; `<name>_rss` is its other figure.
    pub name: &'static str,
    pub dialect: Dialect,
    pub storage: Storage,
    /// The end-to-end figure with the same database and storage, whose value in the same run
    /// is the backfill's ceiling (the target is the backfill at least as fast as live
    /// changes); its scenario runs before this one.
    pub ceiling: &'static str,
}

/// Every backfill scenario.
pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "backfill_sqlite_database",
        dialect: Dialect::Sqlite,
        storage: Storage::Database,
        ceiling: "e2e_sqlite_hello",
    },
    Scenario {
        name: "backfill_sqlite",
        dialect: Dialect::Sqlite,
        storage: Storage::Redis,
        ceiling: "e2e_sqlite_redis_hello",
    },
    Scenario {
        name: "backfill_postgres",
        dialect: Dialect::Postgres,
        storage: Storage::Redis,
        ceiling: "e2e_postgres_rabbitmq_redis_hello",
    },
    Scenario {
        name: "backfill_mysql",
        dialect: Dialect::Mysql,
        storage: Storage::Redis,
        ceiling: "e2e_mysql_rabbitmq_redis_hello",
    },
];

/// The backfill scenario named `name`.
pub fn scenario(name: &str) -> Option<Scenario> {
    SCENARIOS.into_iter().find(|scenario| scenario.name == name)
}

/// Redis as a backfill's storage.
struct Redis {
    url: String,
    key_prefix: String,
    /// Redis with the run's key prefix.
    storage: RedisStorage,
}

/// `backfill_<db>[_database]` (rows/s, with the value of `e2e`, the end-to-end figure of this
/// run named by [`Scenario::ceiling`], as its ceiling) and `<name>_rss` (the command's peak
/// RSS) for `rows` uncaptured rows.
pub async fn run(
    scenario: Scenario,
    rows: usize,
    e2e: Option<&Figure>,
) -> anyhow::Result<Vec<Figure>> {
    let Scenario {
        name,
        dialect,
        storage,
        ceiling: ceiling_name,
    } = scenario;
    let rss_name = format!("{name}_rss");
    let missing = |note: String| {
        Ok(vec![
            Figure::missing(name, UNIT, note.clone()),
            Figure::missing(&rss_name, RSS_UNIT, note),
        ])
    };
    if storage == Storage::Redis && !cfg!(feature = "redis") {
        return missing(
            "built without the redis feature (cargo xtask bench turns it on)".to_owned(),
        );
    }
    let binary = match pubsync_binary() {
        Ok(binary) => binary,
        Err(note) => return missing(note),
    };
    let redis = match storage {
        Storage::Database => None,
        Storage::Redis => {
            let Some(url) = require(Service::Redis) else {
                return missing(format!("Redis unreachable at {}", Service::Redis.url()));
            };
            let key_prefix = format!("{}:", unique_name("pubsync_bench"));
            let storage = RedisStorage::connect(
                &url,
                RedisStorageOptions::with_key_prefix(key_prefix.clone()),
            )
            .await
            .context("connecting to Redis")?;
            Some(Redis {
                url,
                key_prefix,
                storage,
            })
        }
    };
    let test_database = match crate::steps::database(dialect) {
        Ok(database) => database,
        Err(note) => return missing(note),
    };
    let run = Run {
        binary: &binary,
        database_url: test_database.url().to_connection_string(),
        redis: redis.as_ref(),
        rows,
    };
    let result = run.measure().await;
    let cleaned = match &redis {
        Some(redis) => {
            crate::sync::delete_keys(&redis.storage, &format!("{}*", redis.key_prefix)).await
        }
        None => Ok(()),
    };
    let measured = result?;
    cleaned.context("deleting the benchmark's Redis keys")?;
    drop(test_database);

    let rate = crate::per_second(rows, measured.elapsed);
    let (ceiling, against) = match e2e {
        Some(figure) => match figure.value {
            Some(value) => (
                Some(value),
                format!(
                    "ceiling: `{}` of this run ({} {}{})",
                    figure.name,
                    number(value),
                    figure.unit,
                    figure.ceiling.map_or_else(String::new, |raw| format!(
                        "; its own raw-INSERT ceiling {} {}",
                        number(raw),
                        figure.unit
                    )),
                ),
            ),
            None => (
                None,
                format!("no ceiling: `{}` is missing in this run", figure.name),
            ),
        },
        None => (
            None,
            format!("no ceiling: `{ceiling_name}` did not run in this run (`--scenario`)"),
        ),
    };
    let what = format!(
        "{} uncaptured rows (ids 2, 4, …, {}) backfilled by `pubsync publish:trigger-events -r \
         message` into {} in {:.1} s",
        number(rows as f64),
        number(2.0 * rows as f64),
        match storage {
            Storage::Redis => "Redis (`[sync] direct = true`)",
            Storage::Database => "the storage table (database storage)",
        },
        measured.elapsed.as_secs_f64(),
    );
    Ok(vec![
        Figure {
            name: name.to_owned(),
            value: Some(rate),
            unit: UNIT.to_owned(),
            ceiling,
            note: Some(format!("{what}; {against}")),
        },
        Figure {
            name: rss_name,
            value: Some(measured.peak_rss as f64 / 1e6),
            unit: RSS_UNIT.to_owned(),
            ceiling: None,
            note: Some(format!("peak RSS of the command over {what}")),
        },
    ])
}

/// One backfill on a fresh database.
struct Run<'a> {
    binary: &'a Path,
    database_url: String,
    /// The storage when it is Redis; `None` for database storage.
    redis: Option<&'a Redis>,
    rows: usize,
}

/// What the command took.
#[derive(Debug, Clone, Copy)]
struct Measured {
    elapsed: Duration,
    peak_rss: u64,
}

impl Run<'_> {
    /// Prepares the database, runs the command, checks the result.
    async fn measure(&self) -> anyhow::Result<Measured> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let config = dir.path().join("pubsync.toml");
        let mut env = vec![("PUBSYNC_DATABASE_URL", self.database_url.clone())];
        let toml = match self.redis {
            Some(redis) => {
                env.push(("PUBSYNC_STORAGE_URL", redis.url.clone()));
                format!(
                    "[sync]\ndirect = true\n[storage]\nkey_prefix = {:?}\n",
                    redis.key_prefix
                )
            }
            // The defaults: database storage, so no synchronization.
            None => String::new(),
        };
        std::fs::write(&config, toml).context("writing pubsync.toml")?;
        let settings = Settings::load(
            Some(&config),
            env.iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        )
        .context("settings")?;
        match self.redis {
            Some(_) => ensure!(
                matches!(settings.storage, StorageUrl::Redis(_))
                    && settings.sync.enabled
                    && settings.sync.direct,
                "the backfill into Redis runs with direct synchronization"
            ),
            None => ensure!(
                settings.storage == StorageUrl::Database && !settings.sync.enabled,
                "the backfill with database storage runs without synchronization"
            ),
        }
        let app = App::open(settings, pubsync_cli::Modules::new([pubsync_hello::MODULE]))?;
        let started = std::time::Instant::now();
        self.prepare(&app).await?;
        eprintln!(
            "bench:   {} uncaptured rows written and adopted in {:.1} s",
            self.rows,
            started.elapsed().as_secs_f64()
        );

        let stdout_path = dir.path().join("backfill.out");
        let log_path = dir.path().join("backfill.log");
        let mut command = pubsync_command(self.binary);
        command
            .arg("--config")
            .arg(&config)
            .args(["publish:trigger-events", "-r", "message"])
            .current_dir(dir.path())
            .envs(env.iter().map(|(var, value)| (*var, value.as_str())))
            .stdout(std::fs::File::create(&stdout_path).context("creating the output file")?)
            .stderr(std::fs::File::create(&log_path).context("creating the log")?);
        eprintln!(
            "bench:   starting {} publish:trigger-events -r message",
            self.binary.display()
        );
        let run = tokio::task::spawn_blocking(move || measure(&mut command))
            .await
            .context("the measuring thread")??;
        let output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !run.status.success() {
            bail!(
                "`pubsync publish:trigger-events -r message` exited with {}:\n{}\n{}",
                run.status,
                output.trim_end(),
                log.trim_end()
            );
        }
        let summary = output
            .lines()
            .rfind(|line| line.starts_with("message:"))
            .unwrap_or("(no summary line)");
        eprintln!(
            "bench:   backfilled {} rows in {:.2} s, peak RSS {:.1} MB: {summary}",
            self.rows,
            run.elapsed.as_secs_f64(),
            run.peak_rss as f64 / 1e6
        );
        self.check(app.database())
            .await
            .with_context(|| format!("after the backfill (its output: {summary})"))?;
        Ok(Measured {
            elapsed: run.elapsed,
            peak_rss: run.peak_rss,
        })
    }

    /// Creates the shop's table without capture, fills it, then sets up: the triggers come
    /// after the rows, which only a backfill publishes.
    async fn prepare(&self, app: &App) -> anyhow::Result<()> {
        let rows = self.rows;
        let app = app.clone();
        let database = app.database().clone();
        database
            .blocking(move |database| {
                let source_tables = app.modules().source_tables();
                let mut plan =
                    Plan::check(database, &source_tables).context("checking the shop's tables")?;
                plan.create_missing()
                    .context("creating the shop's table before setup")?;
                for statement in fill_statements(database.dialect(), rows) {
                    database
                        .batch_execute(&statement)
                        .with_context(|| format!("filling {SOURCE}"))?;
                }
                let report = app.setup().context("pubsync setup")?;
                let uncaptured = report
                    .adoption
                    .uncaptured_rows
                    .iter()
                    .find(|(table, _)| *table == SOURCE)
                    .map(|(_, rows)| *rows);
                ensure!(
                    uncaptured == Some(rows as i64),
                    "setup reports {uncaptured:?} uncaptured rows of {SOURCE}, expected {rows}"
                );
                ensure!(
                    count(database, SOURCE)? == rows && count(database, OUTBOX)? == 0,
                    "{SOURCE} must hold {rows} rows and the outbox none"
                );
                Ok(())
            })
            .await
    }

    /// The storage table (and Redis, where it is the storage) hold every row, as its source
    /// row says; nothing is left in the outboxes or the queue.
    async fn check(&self, database: &Database) -> anyhow::Result<()> {
        let rows = self.rows;
        database
            .blocking(move |database| {
                let stored = count(database, STORAGE)?;
                ensure!(stored == rows, "{stored} storage rows, expected {rows}");
                for table in [OUTBOX, sync_outbox::TABLE, queue_message::TABLE] {
                    let left = count(database, table)?;
                    ensure!(left == 0, "{left} rows left in {table}");
                }
                for id in samples(rows) {
                    let data = stored_data(database, &format!("message:{id}"))?;
                    ensure!(
                        data.as_deref().is_some_and(|data| holds(id, data)),
                        "storage row message:{id} is {data:?}"
                    );
                }
                let data = stored_data(database, "message:1")?;
                ensure!(
                    data.is_none(),
                    "storage row message:1 (no such id) is {data:?}"
                );
                Ok(())
            })
            .await?;

        let Some(redis) = self.redis else {
            return Ok(());
        };
        let keys = count_keys(&redis.storage, &format!("{}kv:message:*", redis.key_prefix)).await?;
        ensure!(
            keys == rows,
            "{keys} kv:message:* keys in Redis under {}, expected {rows}",
            redis.key_prefix
        );
        let ids: Vec<usize> = samples(rows).chain([1]).collect();
        let keys: Vec<String> = ids
            .iter()
            .map(|id| redis.storage.redis_key(&format!("message:{id}")))
            .collect();
        let values = mget(&redis.storage, &keys).await?;
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            if *id == 1 {
                ensure!(value.is_none(), "{key} (no such id) is {value:?}");
            } else {
                ensure!(
                    value.as_deref().is_some_and(|value| holds(*id, value)),
                    "{key} is {value:?}"
                );
            }
        }
        Ok(())
    }
}

/// The statements that write rows with ids 2, 4, …, 2 × `rows` into the source table, with
/// no trigger on it yet.
fn fill_statements(dialect: Dialect, rows: usize) -> Vec<String> {
    let columns = format!("{SOURCE} (id_hello_spryker_message, name, message)");
    match dialect {
        Dialect::Sqlite => vec![format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows}) \
             INSERT INTO {columns} \
             SELECT 2 * i, 'name ' || (2 * i), 'Hello Spryker! ' || (2 * i) FROM s"
        )],
        Dialect::Postgres => vec![format!(
            "INSERT INTO {columns} \
             SELECT 2 * i, 'name ' || (2 * i), 'Hello Spryker! ' || (2 * i) \
             FROM generate_series(1, {rows}) AS i"
        )],
        Dialect::Mysql => (1..=rows)
            .step_by(BATCH)
            .map(|first| {
                let last = (first + BATCH - 1).min(rows);
                let values: Vec<String> = (first..=last)
                    .map(|i| {
                        let id = 2 * i;
                        format!("({id}, 'name {id}', 'Hello Spryker! {id}')")
                    })
                    .collect();
                format!("INSERT INTO {columns} VALUES {}", values.join(", "))
            })
            .collect(),
    }
}

/// The ids whose values are compared: the first, one in the middle and the last.
fn samples(rows: usize) -> impl Iterator<Item = usize> {
    [1, rows.div_ceil(2), rows]
        .into_iter()
        .filter(|i| *i >= 1)
        .map(|i| 2 * i)
}

/// Whether `data` (a storage row's data or a Redis value) is the message of row `id`.
fn holds(id: usize, data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data).is_ok_and(|json| {
        json["name"].as_str() == Some(&format!("name {id}"))
            && json["message"].as_str() == Some(&format!("Hello Spryker! {id}"))
    })
}

/// The data of the storage row under `key`, if there is one.
fn stored_data(database: &Database, key: &str) -> anyhow::Result<Option<String>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        data: Option<String>,
    }
    let sql = format!(
        "SELECT data FROM {STORAGE} WHERE {} = '{key}'",
        database.dialect().quote("key")
    );
    let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(&sql)
        .load(conn)
        .map_err(DatabaseError::query(&sql)))?;
    Ok(rows.into_iter().next().and_then(|row| row.data))
}

/// How many keys match `pattern` (SCAN, without keeping them).
async fn count_keys(storage: &RedisStorage, pattern: &str) -> anyhow::Result<usize> {
    let mut connection = storage.connection();
    let mut found = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut connection)
            .await?;
        found += keys.len();
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_have_gaps_and_the_samples_are_among_them() {
        let statements = fill_statements(Dialect::Mysql, 2_500);
        assert_eq!(statements.len(), 3);
        assert!(statements[0].contains("VALUES (2, 'name 2', 'Hello Spryker! 2'), (4, "));
        assert!(statements[2].ends_with("(5000, 'name 5000', 'Hello Spryker! 5000')"));
        assert_eq!(samples(2_500).collect::<Vec<_>>(), [2, 2_500, 5_000]);
        assert_eq!(fill_statements(Dialect::Postgres, 10).len(), 1);
        assert!(holds(
            4,
            r#"{"name":"name 4","message":"Hello Spryker! 4","_timestamp":1.5}"#
        ));
        assert!(!holds(
            4,
            r#"{"name":"name 2","message":"Hello Spryker! 2"}"#
        ));
    }

    #[test]
    fn every_backfill_runs_after_its_ceiling() {
        let position = |name: &str| crate::SCENARIOS.iter().position(|n| *n == name);
        for scenario in SCENARIOS {
            let (Some(backfill), Some(ceiling)) =
                (position(scenario.name), position(scenario.ceiling))
            else {
                panic!(
                    "{} or {} is not a scenario",
                    scenario.name, scenario.ceiling
                );
            };
            assert!(
                ceiling < backfill,
                "{} runs before its ceiling",
                scenario.name
            );
            assert_eq!(
                scenario.ceiling.contains("redis"),
                scenario.storage == Storage::Redis,
                "{} compares unlike storage",
                scenario.name
            );
        }
        assert!(
            crate::SCENARIOS
                .iter()
                .filter(|name| name.starts_with("backfill_"))
                .all(|name| scenario(name).is_some())
        );
    }
}
