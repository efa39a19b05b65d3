//! `cargo xtask`: the workspace's tasks beyond build and test.
//!
//! - `cargo xtask codegen [--check] [--update-snapshot]`: generate migrations, diesel tables,
//!   synchronization definitions and transfer structs from the definition files.
//! - `cargo xtask bench [--quick] [--scenario NAME]`: build and run the benchmark
//!   (`crates/pubsync-bench`, release) and write its figures.
//!
//! Each subcommand is a module with a `run(args)` function; add `setup` the same way.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  codegen [--check] [--update-snapshot]
      generate migrations/, crates/*/src/generated/ and the transfer structs from
      crates/*/schema/*.schema.xml and crates/*/transfer/*.transfer.xml;
      --check writes nothing and fails when anything generated is stale;
      --update-snapshot records the definitions as migrated (after a manual migration)
  bench [--quick] [--scenario NAME]
      build crates/pubsync-bench in release and run it: pubsync's figures beside the raw
      clients' ceilings, written to target/bench/results.json and docs/benchmarks.md
      (target/bench/benchmarks.md for --quick or --scenario); --quick uses a small N (CI);
      NAME is one of e2e_sqlite_hello, e2e_postgres_rabbitmq_redis_hello,
      e2e_postgres_rabbitmq_redis_1kb, e2e_mysql_rabbitmq_redis_hello,
      latency_postgres_rabbitmq_redis_1k, spryker_shaped_ratio, capture_sqlite,
      capture_postgres, publish_sqlite, publish_postgres, sync_redis, queue_rabbitmq,
      get_multi_redis, get_multi_sqlite, get_multi_postgres, worker_rss_full_speed,
      worker_rss_backlog_1m, worker_rss_backlog_1m_queued";

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

mod bench {
    use std::process::{Command, ExitCode};

    use anyhow::{Context, Result};

    /// The features the benchmark is built with: every backend it can measure (the server
    /// scenarios need all four).
    const FEATURES: &str = "postgres,mysql,rabbitmq,redis";

    /// Builds `pubsync-bench` and the `pubsync` binary (whose worker the memory scenarios run
    /// as a process of its own; built in the same invocation, so it shares the bench's
    /// features) in release, then runs the bench from the workspace root; it checks its own
    /// arguments.
    pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let features = FEATURES
            .split(',')
            .map(|feature| format!("pubsync-bench/{feature}"))
            .collect::<Vec<_>>()
            .join(",");
        let status = Command::new(&cargo)
            .current_dir(super::workspace_root())
            .args(["build", "--quiet", "--release"])
            .args(["--package", "pubsync-bench", "--package", "pubsync-cli"])
            .args(["--features", &features])
            .status()
            .context(
                "running cargo build --release --package pubsync-bench --package pubsync-cli",
            )?;
        if !status.success() {
            return Ok(ExitCode::FAILURE);
        }
        let status = Command::new(cargo)
            .current_dir(super::workspace_root())
            .args(["run", "--quiet", "--release", "--package", "pubsync-bench"])
            .args(["--features", FEATURES, "--"])
            .args(args)
            .status()
            .context("running cargo run --release --package pubsync-bench")?;
        Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

mod codegen {
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, ExitCode, Stdio};
    use std::time::SystemTime;

    use anyhow::{Context, Result, bail};
    use pubsync_codegen::{Error, GeneratedFile, Options};

    pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
        let mut check = false;
        let mut update_snapshot = false;
        for arg in args {
            match arg.as_str() {
                "--check" => check = true,
                "--update-snapshot" => update_snapshot = true,
                other => bail!("unknown codegen option `{other}`\n\n{}", super::USAGE),
            }
        }
        if check && update_snapshot {
            bail!("--check and --update-snapshot exclude each other");
        }
        let root = super::workspace_root();
        let options = Options {
            version: pubsync_codegen::migration_version(SystemTime::now()),
            update_snapshot,
        };
        let output = match pubsync_codegen::generate(&root, &options) {
            Ok(output) => output,
            Err(Error::Definitions(errors)) => {
                for error in &errors {
                    eprintln!("{error}");
                }
                eprintln!("error: {} problem(s) in the definition files", errors.len());
                return Ok(ExitCode::FAILURE);
            }
            Err(error) => return Err(error.into()),
        };

        let mut files = Vec::new();
        for file in &output.files {
            files.push((file.path.clone(), contents(&root, file)?));
        }
        if let Some(migration) = &output.migration {
            for file in &migration.files {
                files.push((file.path.clone(), file.contents.clone()));
            }
        }
        if output.migration.is_some() || update_snapshot {
            files.push((
                output.snapshot.path.clone(),
                output.snapshot.contents.clone(),
            ));
        }

        let stale: Vec<&(String, String)> = files
            .iter()
            .filter(|(path, contents)| {
                std::fs::read_to_string(root.join(path)).ok().as_ref() != Some(contents)
            })
            .collect();
        if check {
            for (path, _) in &stale {
                eprintln!("stale: {path}");
            }
            if let Some(migration) = &output.migration {
                eprintln!(
                    "the schema files differ from {}: `cargo xtask codegen` would write migration {}",
                    output.snapshot.path, migration.directory
                );
            }
            if stale.is_empty() {
                println!("codegen: everything generated is up to date");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("error: generated files are stale, run `cargo xtask codegen`");
            return Ok(ExitCode::FAILURE);
        }
        for (path, contents) in &stale {
            let full = root.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&full, contents)
                .with_context(|| format!("cannot write {}", full.display()))?;
            println!("wrote {path}");
        }
        if let Some(migration) = &output.migration {
            println!("new migration: {}", migration.directory);
        }
        println!(
            "codegen: {} file(s) written, {} up to date",
            stale.len(),
            files.len() - stale.len()
        );
        Ok(ExitCode::SUCCESS)
    }

    /// The file's contents as written: Rust goes through rustfmt so that the generated files
    /// pass `cargo fmt --check`.
    fn contents(root: &Path, file: &GeneratedFile) -> Result<String> {
        if !file.is_rust {
            return Ok(file.contents.clone());
        }
        rustfmt(root, &file.contents).with_context(|| format!("cannot format {}", file.path))
    }

    fn rustfmt(root: &Path, source: &str) -> Result<String> {
        let mut child = Command::new("rustfmt")
            .args(["--edition", "2024", "--emit", "stdout"])
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run rustfmt (install it with `rustup component add rustfmt`)")?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(source.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "rustfmt failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }
}
