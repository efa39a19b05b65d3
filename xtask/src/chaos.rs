//! `cargo xtask chaos`: the fault suite's long mode. The suite is a test of the `pubsync`
//! binary (`crates/pubsync-cli/tests/chaos.rs`) whose short mode runs with every test; this
//! runs it with `PUBSYNC_TEST_CHAOS=long` (100,000 changes and every fault of the plan, on
//! PostgreSQL and once on MySQL), one database after the other, its figures printed.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Runs the long fault suite.
pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    if let Some(argument) = args.first() {
        bail!("cargo xtask chaos takes no arguments, got `{argument}`");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(super::workspace_root())
        .args(["test", "--release", "--package", "pubsync-cli"])
        .args([
            "--features",
            "postgres,mysql,rabbitmq,redis",
            "--test",
            "chaos",
        ])
        .args(["--", "--nocapture", "--test-threads=1"])
        .env("PUBSYNC_TEST_CHAOS", "long")
        .status()
        .context("running cargo test --test chaos")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
