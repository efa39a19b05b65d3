//! pubsync's command line: the commands every pubsync binary has, whatever modules it links.
//!
//! A shop's binary calls [`main`] with its modules. A binary with commands of its own (as
//! pubsync's, with `demo`) flattens [`GlobalArgs`] and [`Command`] into its own clap parser,
//! and hands [`Command`]s to [`execute`] inside [`run`].
#![allow(clippy::disallowed_methods)] // the command line reads the environment

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pubsync_backend::Modules;
use pubsync_database::DatabaseUrl;
use pubsync_queue_extension::Queue as _;
use pubsync_storage_extension::StorageReader as _;

use pubsync_backend::backfill::export::ExportOptions;
use pubsync_backend::backfill::trigger::TriggerOptions;
use pubsync_backend::backfill::verify::VerifyOptions;

use crate::{App, Settings, SetupReport, backfill};

/// Publish & Synchronize: keeps a key-value read model of your database's tables in step.
///
/// Configuration: pubsync.toml (or --config), every key of which a variable overrides:
/// PUBSYNC_DATABASE_URL (default sqlite://pubsync.db), PUBSYNC_QUEUE_URL and PUBSYNC_STORAGE_URL
/// (default database), PUBSYNC_<SECTION>__<KEY> for the rest (docs/configuration.md).
/// Logging: PUBSYNC_LOG (e.g. debug, pubsync_backend=trace; default info).
#[derive(Debug, Parser)]
#[command(name = "pubsync", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// A pubsync.toml to read instead of ./pubsync.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines look on stderr: `human` (colour only on a terminal) or `json`, one
    /// object a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people; coloured on a terminal only.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the log subscriber: `PUBSYNC_LOG` (a tracing filter, default `info`) in
/// `format`; an invalid filter is an error naming it.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("PUBSYNC_LOG") {
        Ok(value) => tracing_subscriber::EnvFilter::try_new(&value).map_err(|error| {
            anyhow::anyhow!(
                "PUBSYNC_LOG={value:?} is not a log filter ({error}); for example `info`, `warn` or `info,pubsync_backend=debug`"
            )
        })?,
        Err(std::env::VarError::NotPresent) => tracing_subscriber::EnvFilter::new("info"),
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("PUBSYNC_LOG is not UTF-8"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// pubsync's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or migrate pubsync's tables, adopt the shop's tables (check or create them,
    /// install the capture triggers) and declare the queues.
    #[command(name = "setup")]
    Setup,
    /// Relay captured changes and process every event queue until stopped.
    ///
    /// SIGTERM or Ctrl-C stops it after the step in hand (at most
    /// `worker.shutdown_timeout_seconds`, default 30, after which the step is given up and its
    /// messages given back); a second signal stops it at once. Nothing is lost either way.
    #[command(name = "queue:worker:start")]
    WorkerStart {
        /// Exit once the outbox and every queue are empty; exit status 1 when anything went
        /// to an error queue during the run.
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
    /// List the messages of a queue's error queue: why each failed, how long ago, and whether
    /// it can be replayed. They stay where they are.
    #[command(name = "queue:error:list")]
    QueueErrorList {
        /// The queue (`event`) or its error queue (`event.error`).
        queue: String,
        /// At most this many, oldest first.
        #[arg(short = 'l', long, default_value_t = 20)]
        limit: usize,
        /// One JSON object: `queue`, and `messages` with `reason`, `age_seconds`,
        /// `replayable`, `kept_because` and `body` each.
        #[arg(long)]
        json: bool,
    },
    /// Send the messages of a queue's error queue back to the queue, after the cause of their
    /// failure is fixed. Outbox rows kept there are not messages and stay.
    #[command(name = "queue:error:replay")]
    QueueErrorReplay {
        /// The queue (`event`) or its error queue (`event.error`).
        queue: String,
        /// At most this many, oldest first (default: all there are now).
        #[arg(short = 'l', long)]
        limit: Option<usize>,
    },
    /// Print the value stored under a key as one line of JSON; exit 1 when there is none.
    #[command(name = "storage:get")]
    StorageGet {
        /// The storage key, e.g. `message:1`.
        key: String,
    },
    /// Re-publish resources from their source tables, every entity or the given ids (use it to
    /// bring rows that were there before capture started into storage).
    #[command(name = "publish:trigger-events", visible_alias = "event:trigger")]
    TriggerEvents {
        /// Resources to re-publish, comma-separated (default: every resource).
        #[arg(
            short = 'r',
            long = "resource",
            value_delimiter = ',',
            value_name = "RESOURCE"
        )]
        resources: Vec<String>,
        /// Only these ids, comma-separated.
        #[arg(short = 'i', long = "ids", value_delimiter = ',', value_name = "ID")]
        ids: Vec<i64>,
        /// Send the events to the event queues for the workers instead of publishing here.
        #[arg(long)]
        enqueue: bool,
        /// Start from the first id even where an earlier run was stopped.
        #[arg(long)]
        restart: bool,
        /// Ids per chunk.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        chunk_size: usize,
    },
    /// Send the storage rows, as they are, to the key-value store (refills a flushed Redis).
    #[command(name = "sync:data")]
    SyncData {
        /// Resources to send, comma-separated (default: every resource).
        #[arg(value_delimiter = ',', value_name = "RESOURCE")]
        resources: Vec<String>,
        /// Only the rows of these references (ids), comma-separated.
        #[arg(short = 'i', long = "ids", value_delimiter = ',', value_name = "ID")]
        ids: Vec<i64>,
        /// Start from the first row even where an earlier run was stopped.
        #[arg(long)]
        restart: bool,
        /// Rows per chunk.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        chunk_size: usize,
    },
    /// Check that storage equals what the source tables give, and report the missing, stale
    /// and orphaned keys; exit status 1 when anything differs.
    #[command(name = "verify")]
    Verify {
        /// Resources to check, comma-separated (default: every resource).
        #[arg(value_delimiter = ',', value_name = "RESOURCE")]
        resources: Vec<String>,
        /// Re-publish and re-sync exactly what differs.
        #[arg(long)]
        repair: bool,
        /// Source ids per chunk.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        chunk_size: usize,
        /// How many keys of each kind to name.
        #[arg(long, default_value_t = 10, value_name = "N")]
        sample: usize,
    },
    /// Hand events to one listener in this process and report what it did (for debugging a
    /// publisher); what it writes is synchronized as usual.
    #[command(name = "event:trigger:listener")]
    TriggerListener {
        /// The listener, as `event:dump:listener` names it.
        listener: String,
        /// The events: one JSON object (`{"id": 1}`, or with `name`, `event`,
        /// `foreignKeys`, `modifiedColumns`), or an array of them.
        data: String,
        /// The event they are instances of (default: their own `event`, else the listener's
        /// first).
        #[arg(short = 'e', long)]
        event: Option<String>,
    },
    /// List which listener handles which event, on which queue.
    #[command(name = "event:dump:listener")]
    DumpListeners {
        /// Only the listeners of this event.
        #[arg(short = 'e', long)]
        event: Option<String>,
        /// Only the listeners on this queue.
        #[arg(short = 'q', long)]
        queue: Option<String>,
    },
    /// Declare every queue the workers use (and their error queues and retry paths), without
    /// touching the database schema.
    #[command(name = "queue:setup")]
    QueueSetup,
    /// Show what waits in every queue and outbox, and how fresh the read model is.
    #[command(name = "status")]
    Status {
        /// One JSON object: `queues` (`name`, `ready`, `in_flight`, `error`), `outbox` and
        /// `sync_outbox` (`rows`, `oldest_age_seconds`), `read_model` (`healthy`,
        /// `probe_age_seconds`, `max_age_seconds`, `message`).
        #[arg(long)]
        json: bool,
    },
    /// The Publish & Synchronize health check: write a probe, then check that the probe in
    /// storage is younger than `[health] max_age_seconds`; exit status 1 when not.
    #[command(name = "health")]
    Health {
        /// The result as JSON, as `GET /health-check` gives it.
        #[arg(long)]
        json: bool,
        /// Wait up to this many seconds for the probe just written to reach storage.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    #[command(name = "completions")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(name = "man")]
    Man,
}

/// The command line of a binary linking `modules` (core modules first): parses the
/// arguments, runs the command and returns its exit status.
pub fn main(modules: Modules) -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = crate::shell::handle(&cli.command, <Cli as clap::CommandFactory>::command) {
        return code;
    }
    let creates = cli.command.creates_database();
    run(&cli.global, modules, creates, move |app| async move {
        execute(&app, cli.command).await
    })
}

/// Sets up logging and the runtime, loads the settings, opens the application over
/// `modules` and runs `body` with it; an error is printed and gives exit status 2. Only a
/// command that `creates` the database may find the embedded database's file missing: for
/// any other, a missing file is an error (a typo in a path or variable name then leaves no
/// empty database behind).
pub fn run<F, Fut>(global: &GlobalArgs, modules: Modules, creates: bool, body: F) -> ExitCode
where
    F: FnOnce(App) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    if let Err(error) = init_logging(global.log_format) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        crate::config::check_environment(std::env::vars_os().map(|(name, _)| name))?;
        let settings = Settings::load(
            global.config.as_deref(),
            std::env::vars_os().map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            }),
        )?;
        if let DatabaseUrl::Sqlite(path) = &settings.database
            && !creates
            && path.as_os_str() != ":memory:"
            && !path.exists()
        {
            anyhow::bail!(
                "the database file {} does not exist: run `pubsync setup` first to create it, or set the database URL (PUBSYNC_DATABASE_URL, or database_url in pubsync.toml) to an existing one",
                path.display()
            );
        }
        let app = App::open(settings, modules)?;
        body(app).await
    });
    // A step given up on a signal may still wait on a blocking thread: the process ends
    // without it (an uncommitted transaction is rolled back by its server).
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(2)
        }
    }
}

/// `error` and its causes in one line, each cause once: many errors repeat their source in
/// their own message, which a plain `{:#}` would print twice.
pub fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text.trim());
    }
    line
}

impl Command {
    /// Whether the command creates the embedded database's file when it is missing.
    pub fn creates_database(&self) -> bool {
        matches!(self, Self::Setup)
    }
}

/// Runs one of pubsync's commands.
pub async fn execute(app: &App, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Setup => {
            let report = app.setup()?;
            print_setup(app, &report);
            let worker = app.worker().await?;
            worker.declare().await.context("declaring queues")?;
            println!("queues declared: {}", app.queue_list(&worker.queues()));
            crate::health::report_marker(app).await;
        }
        Command::WorkerStart { stop_when_empty } => {
            app.require_schema()?;
            return crate::worker::start(app, stop_when_empty).await;
        }
        Command::QueueErrorList { queue, limit, json } => {
            app.require_schema()?;
            return crate::error_queue::list(app, &queue, limit, json).await;
        }
        Command::QueueErrorReplay { queue, limit } => {
            app.require_schema()?;
            return crate::error_queue::replay(app, &queue, limit).await;
        }
        Command::TaskStart { queue, keep } => {
            app.require_schema()?;
            let worker = app.worker().await?;
            let shown = queue;
            let queue = app.queue_argument(&shown);
            if !app.listeners().queues().contains(&queue) {
                anyhow::bail!(
                    "no listener is registered on queue {shown:?}; queues: {}",
                    app.queue_list(&app.listeners().queues())
                );
            }
            let shown = app.queue_display(&queue);
            let outcome = worker.run_task(&queue, keep).await?;
            println!(
                "{shown}: {} messages, {} events handled, {} collapsed, {} retried, {} failed{}",
                outcome.messages,
                outcome.handled,
                outcome.collapsed,
                outcome.retried,
                outcome.failed,
                if keep { " (kept in the queue)" } else { "" }
            );
            let depth = worker.queue().depth(&queue).await?;
            println!("{shown}: {} ready, {} pending", depth.ready, depth.pending);
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
        Command::TriggerEvents {
            resources,
            ids,
            enqueue,
            restart,
            chunk_size,
        } => {
            let options = TriggerOptions {
                chunk_size,
                enqueue,
                restart,
            };
            return backfill::trigger(app, &resources, &ids, options).await;
        }
        Command::SyncData {
            resources,
            ids,
            restart,
            chunk_size,
        } => {
            let options = ExportOptions {
                chunk_size,
                restart,
            };
            return backfill::sync(app, &resources, &ids, options).await;
        }
        Command::Verify {
            resources,
            repair,
            chunk_size,
            sample,
        } => {
            let options = VerifyOptions {
                chunk_size,
                repair,
                sample,
            };
            return backfill::check(app, &resources, options).await;
        }
        Command::DumpListeners { event, queue } => {
            let queue = queue.map(|queue| app.queue_argument(&queue));
            for (listed_event, listener, listed_queue) in app.listeners().dump() {
                if event
                    .as_ref()
                    .is_some_and(|event| event.as_str() != listed_event)
                    || queue
                        .as_ref()
                        .is_some_and(|queue| queue.as_str() != listed_queue)
                {
                    continue;
                }
                println!(
                    "{listed_event}\t{listener}\t{}",
                    app.queue_display(&listed_queue)
                );
            }
        }
        Command::TriggerListener {
            listener,
            data,
            event,
        } => {
            app.require_schema()?;
            return crate::trigger_listener::command(app, &listener, &data, event).await;
        }
        Command::Status { json } => {
            app.require_schema()?;
            return crate::status::command(app, json).await;
        }
        Command::Health { json, wait } => {
            app.require_schema()?;
            return crate::health::command(app, json, wait.map(Duration::from_secs)).await;
        }
        Command::QueueSetup => {
            let worker = app.build_worker().await?;
            worker.declare().await.context("declaring queues")?;
            println!(
                "queues declared: {}",
                app.queue_list(&worker.declared_queues())
            );
        }
        Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the application opens (shell::handle)")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What setup did, for a person: migrations, the shop's tables, and the rows no trigger saw.
fn print_setup(app: &App, report: &SetupReport) {
    if report.migrations.is_empty() {
        println!("schema of {} is up to date", app.database().url());
    }
    for migration in &report.migrations {
        println!("applied migration {migration}");
    }
    let adoption = &report.adoption;
    for table in &adoption.created {
        println!("created table {table} (it did not exist)");
    }
    for table in &adoption.triggers_installed {
        println!("installed the capture triggers of {table}");
    }
    for table in &adoption.triggers_removed {
        println!("removed the capture triggers of {table} (its definition no longer captures it)");
    }
    if !adoption.existing.is_empty() {
        println!(
            "adopted existing tables, rows untouched: {}",
            adoption.existing.join(", ")
        );
    }
    let unseen: Vec<String> = adoption
        .uncaptured_rows
        .iter()
        .filter(|(_, rows)| *rows > 0)
        .map(|(table, rows)| match rows {
            1 => format!("{table} (1 row)"),
            rows => format!("{table} ({rows} rows)"),
        })
        .collect();
    if !unseen.is_empty() {
        println!(
            "capture starts now on {}: the rows that were there before are not in storage \
             until `pubsync publish:trigger-events` publishes them",
            unseen.join(", ")
        );
    }
}
