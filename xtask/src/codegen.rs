//! `cargo xtask codegen`: pubsync's own workspace through `pubsync_codegen::cli`.

use std::process::ExitCode;

use anyhow::Result;
use pubsync_codegen::Config;

/// pubsync's own workspace: its transfers go to `pubsync-shared`, and the outbox, queue
/// and settings tables are the framework's, migrated in `migrations/`.
pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    let config = Config {
        root: super::workspace_root(),
        transfers: "crates/pubsync-shared/src/transfer/generated.rs".into(),
        framework: vec!["pubsync-backend".into(), "pubsync-queue-database".into()],
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Ok(pubsync_codegen::cli::run(&config, &cargo, args)?)
}
