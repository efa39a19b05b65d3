//! The benchmark behind `cargo xtask bench`: pubsync's throughput measured beside the same work
//! done with the raw clients on the same machine (the ceiling), so that noise on a shared
//! machine cancels out in the ratio.
//!
//! Writes `target/bench/results.json` (`{"machine": …, "figures": [{"name", "value", "unit",
//! "ceiling", "ratio"}]}`) and a Markdown table: `docs/benchmarks.md` after a full run of every
//! scenario, `target/bench/benchmarks.md` after `--quick` or `--scenario`, so a quick run never
//! replaces the committed figures.
//!
//! A scenario whose server (Redis, PostgreSQL, MySQL, RabbitMQ) is unreachable records its
//! figures as missing (`value` null) with a note on stderr, or fails under `CI=true`, as the
//! tests do ([`pubsync_test_support::require`]).
//!
//! The server scenarios (`servers`, `latency`, `spryker`, `queue`: PostgreSQL/MySQL +
//! RabbitMQ + Redis end to end, latency at a fixed offered load, the Spryker-shaped run and the
//! RabbitMQ step) need the `postgres`, `mysql`, `rabbitmq` and `redis` features, which
//! `cargo xtask bench` turns on; without them their figures are missing.
//!
//! Figures with a target are judged against it in the report ([`report::TARGETS`]),
//! never in a test.
//!
//! What it deliberately does not do (yet): the capture and publish steps on MySQL; the worker's
//! memory on PostgreSQL + RabbitMQ + Redis.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

mod backfill;
mod e2e;
mod final_state;
mod memory;
mod poison;
mod read;
mod report;
mod steps;
mod sync;

#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "rabbitmq",
    feature = "redis"
))]
mod latency;
#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "rabbitmq",
    feature = "redis"
))]
mod queue;
#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "rabbitmq",
    feature = "redis"
))]
mod servers;
#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "rabbitmq",
    feature = "redis"
))]
mod spryker;

/// Without the server features: the server scenarios' figures are missing.
#[cfg(not(all(
    feature = "postgres",
    feature = "mysql",
    feature = "rabbitmq",
    feature = "redis"
)))]
mod servers {
    use crate::Size;
    use crate::report::Figure;

    pub async fn run(name: &str, _size: Size) -> anyhow::Result<Vec<Figure>> {
        Ok(vec![Figure::missing(
            name,
            "",
            "built without the postgres, mysql, rabbitmq and redis features \
             (cargo xtask bench turns them on)",
        )])
    }
}

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pubsync_database::Dialect;
use report::{Figure, Report};

const USAGE: &str = "usage: pubsync-bench [--quick] [--scenario NAME]...

  --quick          small N, for CI: the benchmark keeps running, its figures mean little
  --scenario NAME  run only the scenarios named (a backfill with its end-to-end ceiling,
                   whose figure its ratio needs); NAME is one of:
                   e2e_sqlite_hello, backfill_sqlite_database, e2e_sqlite_redis_hello,
                   backfill_sqlite, poison_1pct_ratio, e2e_postgres_rabbitmq_redis_hello,
                   e2e_postgres_rabbitmq_redis_1kb, backfill_postgres,
                   e2e_mysql_rabbitmq_redis_hello, backfill_mysql,
                   latency_postgres_rabbitmq_redis_1k, latency_postgres_rabbitmq_redis_full,
                   spryker_shaped_ratio,
                   capture_sqlite, capture_postgres, publish_sqlite, publish_postgres,
                   sync_redis, queue_rabbitmq, get_multi_redis, get_multi_sqlite,
                   get_multi_postgres, worker_rss_full_speed, worker_rss_backlog_1m,
                   worker_rss_backlog_1m_queued";

/// Every scenario, in the order they run; each yields the figure of the same name, except
/// `latency_postgres_rabbitmq_redis_1k|full` (`latency_p50_…`, `latency_p99_…`),
/// `spryker_shaped_ratio` (also `e2e_postgres_rabbitmq_redis_spryker_shaped`) and
/// `backfill_*` (also `backfill_*_rss`). Each `backfill_*` runs after the end-to-end scenario
/// of its database and storage ([`backfill::Scenario::ceiling`]), whose figure of the same
/// run is its ceiling.
pub const SCENARIOS: [&str; 25] = [
    "e2e_sqlite_hello",
    "backfill_sqlite_database",
    "e2e_sqlite_redis_hello",
    "backfill_sqlite",
    "poison_1pct_ratio",
    "e2e_postgres_rabbitmq_redis_hello",
    "e2e_postgres_rabbitmq_redis_1kb",
    "backfill_postgres",
    "e2e_mysql_rabbitmq_redis_hello",
    "backfill_mysql",
    "latency_postgres_rabbitmq_redis_1k",
    "latency_postgres_rabbitmq_redis_full",
    "spryker_shaped_ratio",
    "capture_sqlite",
    "capture_postgres",
    "publish_sqlite",
    "publish_postgres",
    "sync_redis",
    "queue_rabbitmq",
    "get_multi_redis",
    "get_multi_sqlite",
    "get_multi_postgres",
    "worker_rss_full_speed",
    "worker_rss_backlog_1m",
    "worker_rss_backlog_1m_queued",
];

/// How much work each scenario does.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Entity changes of the end-to-end scenario.
    pub e2e_changes: usize,
    /// Runs of the end-to-end scenario (and its ceiling); the median is reported.
    pub e2e_runs: usize,
    /// Versioned writes of the synchronize scenario.
    pub sync_keys: usize,
    /// `get_multi` calls of 100 keys per run.
    pub get_multi_calls: usize,
    /// Runs of the short scenarios; the median is reported.
    pub runs: usize,
    /// Entity changes waiting when the worker starts, for `worker_rss_backlog_1m`.
    pub backlog_changes: usize,
    /// Seconds of offered load in the latency scenario.
    pub latency_seconds: u64,
    /// Entity changes of each side of the Spryker-shaped ratio.
    pub spryker_changes: usize,
    /// Messages through the queue step.
    pub queue_messages: usize,
    /// Uncaptured rows of the backfill scenarios.
    pub backfill_rows: usize,
}

impl Size {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                e2e_changes: 2_000,
                e2e_runs: 3,
                sync_keys: 10_000,
                get_multi_calls: 200,
                runs: 3,
                backlog_changes: 20_000,
                latency_seconds: 1,
                spryker_changes: 2_000,
                queue_messages: 5_000,
                backfill_rows: 20_000,
            }
        } else {
            Self {
                e2e_changes: 100_000,
                e2e_runs: 3,
                sync_keys: 100_000,
                get_multi_calls: 2_000,
                runs: 5,
                backlog_changes: 1_000_000,
                latency_seconds: 10,
                spryker_changes: 10_000,
                queue_messages: 100_000,
                backfill_rows: 1_000_000,
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut quick = false;
    let mut chosen: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--scenario" => {
                let name = rest.next().context("--scenario needs a NAME")?;
                let Some(name) = SCENARIOS.iter().find(|known| **known == name.as_str()) else {
                    bail!("unknown scenario `{name}`\n\n{USAGE}");
                };
                chosen.push(name);
                // A backfill's figure is a ratio to its end-to-end ceiling of the same run.
                if let Some(backfill) = backfill::scenario(name) {
                    chosen.push(backfill.ceiling);
                }
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    let size = Size::new(quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let mut figures = Vec::new();
    for name in SCENARIOS {
        if !chosen.is_empty() && !chosen.contains(&name) {
            continue;
        }
        eprintln!("bench: {name} …");
        let started = Instant::now();
        let scenario_figures = match name {
            "e2e_sqlite_hello" => vec![runtime.block_on(e2e::sqlite_hello(size))?],
            "e2e_sqlite_redis_hello" => vec![runtime.block_on(e2e::sqlite_redis_hello(size))?],
            poison::NAME => vec![runtime.block_on(poison::run(size))?],
            "capture_sqlite" => {
                vec![runtime.block_on(steps::capture(name, Dialect::Sqlite, size))?]
            }
            "capture_postgres" => {
                vec![runtime.block_on(steps::capture(name, Dialect::Postgres, size))?]
            }
            "publish_sqlite" => {
                vec![runtime.block_on(steps::publish(name, Dialect::Sqlite, size))?]
            }
            "publish_postgres" => {
                vec![runtime.block_on(steps::publish(name, Dialect::Postgres, size))?]
            }
            "worker_rss_full_speed" => vec![runtime.block_on(memory::worker_rss(
                name,
                size.e2e_changes,
                memory::Backlog::Outbox,
            ))?],
            "worker_rss_backlog_1m" => vec![runtime.block_on(memory::worker_rss(
                name,
                size.backlog_changes,
                memory::Backlog::Outbox,
            ))?],
            "worker_rss_backlog_1m_queued" => vec![runtime.block_on(memory::worker_rss(
                name,
                size.backlog_changes,
                memory::Backlog::Queue,
            ))?],
            "backfill_sqlite_database"
            | "backfill_sqlite"
            | "backfill_postgres"
            | "backfill_mysql" => {
                let backfill = backfill::scenario(name).context("a backfill scenario")?;
                let e2e = figures
                    .iter()
                    .find(|figure: &&Figure| figure.name == backfill.ceiling);
                runtime.block_on(backfill::run(backfill, size.backfill_rows, e2e))?
            }
            "sync_redis" => vec![runtime.block_on(sync::redis(size))?],
            "get_multi_redis" => vec![runtime.block_on(read::redis(size))?],
            "get_multi_sqlite" => {
                vec![runtime.block_on(read::database(Dialect::Sqlite, name, size))?]
            }
            "get_multi_postgres" => vec![runtime.block_on(read::postgres(name, size))?],
            "e2e_postgres_rabbitmq_redis_hello"
            | "e2e_postgres_rabbitmq_redis_1kb"
            | "e2e_mysql_rabbitmq_redis_hello"
            | "latency_postgres_rabbitmq_redis_1k"
            | "latency_postgres_rabbitmq_redis_full"
            | "spryker_shaped_ratio"
            | "queue_rabbitmq" => runtime.block_on(servers::run(name, size))?,
            _ => unreachable!("every scenario has an arm"),
        };
        for figure in scenario_figures {
            eprintln!(
                "bench: {}: {} ({:.1} s)",
                figure.name,
                figure.summary(),
                started.elapsed().as_secs_f64()
            );
            figures.push(figure);
        }
    }

    let root = workspace_root();
    let command = std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let report = Report::new(report::machine(), figures).judged(!quick);
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("results.json");
    std::fs::write(&json_path, report.json()?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let markdown_path = if quick || !chosen.is_empty() {
        out.join("benchmarks.md")
    } else {
        root.join("docs/benchmarks.md")
    };
    std::fs::write(&markdown_path, report.markdown(&command, size, quick))
        .with_context(|| format!("writing {}", markdown_path.display()))?;
    println!("{}", report.table());
    let (met, missed) = report.verdicts();
    if met + missed > 0 {
        println!("targets: {met} met, {missed} missed");
    }
    println!(
        "wrote {} and {}",
        json_path.display(),
        markdown_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The workspace root: two levels above this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate lives in crates/ of the workspace")
        .to_path_buf()
}

/// The median of `durations` (the upper middle one for an even count).
pub fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// Items per second for `count` items in `elapsed`.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// A figure measured against its ceiling, both in items per second.
pub fn throughput(name: &str, unit: &str, value: f64, ceiling: f64) -> Figure {
    Figure {
        name: name.to_owned(),
        value: Some(value),
        unit: unit.to_owned(),
        ceiling: Some(ceiling),
        note: None,
    }
}
