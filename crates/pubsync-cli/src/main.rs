//! `pubsync`: pubsync's own binary, linking the Hello module of the Publish & Synchronize
//! tutorial, with the tutorial's `demo` on top of pubsync's commands.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pubsync_cli::{GlobalArgs, Modules};

/// Publish & Synchronize: keeps a key-value read model of your database's tables in step.
///
/// Configuration: pubsync.toml (or --config), every key of which a variable overrides:
/// PUBSYNC_DATABASE_URL (default sqlite://pubsync.db), PUBSYNC_QUEUE_URL and PUBSYNC_STORAGE_URL
/// (default database), PUBSYNC_<SECTION>__<KEY> for the rest (docs/configuration.md).
/// Logging: PUBSYNC_LOG (e.g. debug, pubsync_backend=trace; default info), --log-format json.
/// Other PUBSYNC_* variables are refused, and only `setup` creates a missing SQLite file.
#[derive(Debug, Parser)]
#[command(name = "pubsync", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Pubsync(pubsync_cli::Command),
    /// Walk through the Hello Spryker tutorial end to end, saying what happens at each step.
    #[command(name = "demo")]
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Pubsync(command) = &cli.command
        && let Some(code) =
            pubsync_cli::shell::handle(command, <Cli as clap::CommandFactory>::command)
    {
        return code;
    }
    let modules = Modules::new([pubsync_hello::MODULE]);
    let creates = match &cli.command {
        Command::Pubsync(command) => command.creates_database(),
        Command::Demo => true,
    };
    pubsync_cli::command::run(&cli.global, modules, creates, move |app| async move {
        match cli.command {
            Command::Pubsync(command) => pubsync_cli::command::execute(&app, command).await,
            Command::Demo => demo::run(&app).await.map(|()| ExitCode::SUCCESS),
        }
    })
}
