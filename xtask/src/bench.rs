//! `cargo xtask bench`: builds the benchmark and the `pubsync` binary in release and runs it.

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
        .context("running cargo build --release --package pubsync-bench --package pubsync-cli")?;
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
