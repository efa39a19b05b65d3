//! `cargo xtask`: the workspace's tasks beyond build and test.
//!
//! - `cargo xtask codegen [--check] [--update-snapshot]`: generate migrations, diesel tables,
//!   synchronization definitions and transfer structs from the definition files.
//! - `cargo xtask bench [--quick] [--scenario NAME]`: build and run the benchmark
//!   (`crates/pubsync-bench`, release) and write its figures.
//!
//! - `cargo xtask test`: install the system packages when missing, then run every test.
//! - `cargo xtask chaos`: the fault suite's long mode.
//! - `cargo xtask system-packages [--check]`: install (or check) those packages alone.
//! - `cargo xtask shell-integration [DIR]`: write the completion scripts and the man page.
//!
//! Each subcommand is a module with a `run(args)` function.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  codegen [--check] [--update-snapshot]
      generate migrations, crates/*/src/generated/ and the transfer structs from the
      crates' schema/*.schema.xml and transfer/*.transfer.xml; --check writes nothing and
      fails when anything generated is stale or orphaned; --update-snapshot records the
      definitions as migrated (after a manual migration)
  test [-- TEST-ARGS]
      install the system packages when missing, then run cargo test --workspace
      --all-features here and in examples/shop (the README's test command)
  chaos
      the fault suite's long mode: 100,000 changes through PostgreSQL (and MySQL) +
      RabbitMQ + Redis of its own while it restarts, crashes and kills them, with its
      figures (the short mode runs with the tests)
  system-packages [--check]
      install the Debian packages the server backends link, when missing (apt-get, as
      root); --check only reports them
  shell-integration [DIR]
      write pubsync's completion scripts (bash, zsh, fish, elvish, powershell) and its man
      page pubsync.1 into DIR (default target/shell)
  bench [--quick] [--scenario NAME]
      build crates/pubsync-bench in release and run it: pubsync's figures beside the raw
      clients' ceilings, written to target/bench/results.json and docs/benchmarks.md
      (target/bench/benchmarks.md for --quick or --scenario); --quick uses a small N (CI);
      NAME is one of e2e_sqlite_hello, backfill_sqlite_database, e2e_sqlite_redis_hello,
      backfill_sqlite, e2e_postgres_rabbitmq_redis_hello, e2e_postgres_rabbitmq_redis_1kb,
      backfill_postgres, e2e_mysql_rabbitmq_redis_hello, backfill_mysql,
      latency_postgres_rabbitmq_redis_1k, latency_postgres_rabbitmq_redis_full,
      spryker_shaped_ratio, capture_sqlite, capture_postgres, publish_sqlite,
      publish_postgres, sync_redis, queue_rabbitmq, get_multi_redis, get_multi_sqlite,
      get_multi_postgres, worker_rss_full_speed, worker_rss_backlog_1m,
      worker_rss_backlog_1m_queued";

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

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match command.as_str() {
        "codegen" => codegen::run(rest),
        "bench" => bench::run(rest),
        "test" => test::run(rest),
        "chaos" => chaos::run(rest),
        "system-packages" => system::run(rest),
        "shell-integration" => shell::run(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root: the parent of xtask's own directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

mod bench;
mod chaos;
mod codegen;
mod shell;
mod system;
mod test;
