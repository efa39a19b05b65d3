//! `pubsync`: set up the schema, run the queue workers, read storage, and see it all in the demo.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pubsync_cli::{App, Settings, demo};
use pubsync_queue_extension::Queue as _;
use pubsync_storage_extension::StorageReader as _;

/// Publish & Synchronize: keeps a key-value read model of your database's tables in step.
///
/// Configuration: PUBSYNC_DATABASE_URL (default sqlite://pubsync.db), PUBSYNC_QUEUE_URL
/// (default database), PUBSYNC_STORAGE_URL (default database), and pubsync.toml or --config.
/// Logging: PUBSYNC_LOG (e.g. debug, pubsync_backend=trace; default info).
#[derive(Debug, Parser)]
#[command(name = "pubsync", version)]
struct Cli {
    /// A pubsync.toml to read instead of ./pubsync.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or migrate the schema and declare the queues.
    #[command(name = "setup")]
    Setup,
    /// Relay captured changes and process every event queue until stopped (Ctrl-C).
    #[command(name = "queue:worker:start")]
    WorkerStart {
        /// Exit once the outbox and every queue are empty.
        #[arg(short = 's', long)]
        stop_when_empty: bool,
    },
    /// Relay captured changes, then process one chunk of one queue.
    #[command(name = "queue:task:start")]
    TaskStart {
        /// The queue, e.g. `event`.
        queue: String,
        /// Leave the messages in the queue after processing (debugging).
        #[arg(short = 'k', long)]
        keep: bool,
    },
    /// Print the value stored under a key as one line of JSON; exit 1 when there is none.
    #[command(name = "storage:get")]
    StorageGet {
        /// The storage key, e.g. `message:1`.
        key: String,
    },
    /// List which listener handles which event, on which queue.
    #[command(name = "event:dump:listener")]
    DumpListeners,
    /// Walk through the Hello Spryker tutorial end to end, saying what happens at each step.
    #[command(name = "demo")]
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PUBSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
    let app = App::open(settings)?;
    match cli.command {
        Command::Setup => {
            let applied = app.setup()?;
            if applied.is_empty() {
                println!("schema of {} is up to date", app.database().url());
            }
            for version in applied {
                println!("applied migration {version}");
            }
            let worker = app.worker().await?;
            worker.declare().await.context("declaring queues")?;
            println!("queues declared: {}", worker.queues().join(", "));
        }
        Command::WorkerStart { stop_when_empty } => {
            app.require_schema()?;
            let stop = Arc::new(AtomicBool::new(false));
            let on_signal = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!("stopping after the current step");
                    on_signal.store(true, Ordering::Relaxed);
                }
            });
            let report = app.worker().await?.run(stop_when_empty, &stop).await?;
            tracing::info!(
                relayed = report.relayed,
                messages = report.messages,
                handled = report.handled,
                collapsed = report.collapsed,
                retried = report.retried,
                failed = report.failed,
                "worker stopped"
            );
        }
        Command::TaskStart { queue, keep } => {
            app.require_schema()?;
            let worker = app.worker().await?;
            if !app.listeners().queues().contains(&queue) {
                anyhow::bail!(
                    "no listener is registered on queue {queue:?}; queues: {}",
                    app.listeners().queues().join(", ")
                );
            }
            let outcome = worker.run_task(&queue, keep).await?;
            println!(
                "{queue}: {} messages, {} events handled, {} collapsed, {} retried, {} failed{}",
                outcome.messages,
                outcome.handled,
                outcome.collapsed,
                outcome.retried,
                outcome.failed,
                if keep { " (kept in the queue)" } else { "" }
            );
            let depth = worker.queue().depth(&queue).await?;
            println!("{queue}: {} ready, {} pending", depth.ready, depth.pending);
        }
        Command::StorageGet { key } => {
            let storage = app.storage().await?;
            match storage.get(&key).await? {
                Some(value) => {
                    let line = match serde_json::from_str::<serde_json::Value>(&value) {
                        Ok(json) => json.to_string(),
                        Err(_) => value,
                    };
                    println!("{line}");
                }
                None => return Ok(ExitCode::from(1)),
            }
        }
        Command::DumpListeners => {
            for (event, listener, queue) in app.listeners().dump() {
                println!("{event}\t{listener}\t{queue}");
            }
        }
        Command::Demo => demo::run(&app).await?,
    }
    Ok(ExitCode::SUCCESS)
}
