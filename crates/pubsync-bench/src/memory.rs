//! The worker's memory: peak resident set size of the real `pubsync` binary, run as its own
//! process (`pubsync --config … queue:worker:start --stop-when-empty`), on the embedded
//! default (SQLite, database queue, database storage).
//!
//! The changes are written before the worker starts, so it works at full speed from its first
//! step to its last. They wait either in the outbox (the worker's relay moves 1000 rows per
//! step into the event queue, and its consumer takes them from there) or, for
//! `worker_rss_backlog_1m_queued`, already relayed into the event queue (as after a consumer
//! outage while the relay kept running), where the consumer takes 500 messages per chunk.
//! the peak is the kernel's high-water mark of the process's resident set
//! (`VmHWM` in `/proc/<pid>/status`), read every 5 ms while it runs. The mark only grows, so
//! a poll misses nothing but growth in the last 5 ms before the process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use pubsync_backend::OutboxRelay;
use pubsync_database::Dialect;

use crate::e2e::{Plan, check};
use crate::report::Figure;
use crate::steps::{OUTBOX, count, database, open_app};

/// The unit of the memory figures: megabytes of 10^6 bytes.
const UNIT: &str = "MB";

/// How often the worker's high-water mark is read.
const POLL: Duration = Duration::from_millis(5);

/// What one worker run used.
#[derive(Debug, Clone, Copy)]
pub struct WorkerRun {
    /// The peak resident set, in bytes.
    pub peak_rss: u64,
    /// From the worker's start until it exited.
    pub elapsed: Duration,
    /// Changes written before the worker started.
    pub changes: usize,
}

impl WorkerRun {
    fn megabytes(self) -> f64 {
        self.peak_rss as f64 / 1e6
    }
}

/// Where the changes wait when the worker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// In the outbox, as the capture triggers left them.
    Outbox,
    /// Relayed into the event queue, 500 events per message.
    Queue,
}

/// `worker_rss_full_speed` (the end-to-end scenario's 100k Hello changes),
/// `worker_rss_backlog_1m` (1M changes in the outbox) and `worker_rss_backlog_1m_queued` (1M
/// changes in the event queue): the worker's peak RSS with `changes` changes waiting in
/// `backlog` when it starts.
pub async fn worker_rss(name: &str, changes: usize, backlog: Backlog) -> anyhow::Result<Figure> {
    let binary = match pubsync_binary() {
        Ok(binary) => binary,
        Err(note) => return Ok(Figure::missing(name, UNIT, note)),
    };
    let run = worker_run(&binary, changes, backlog).await?;
    Ok(Figure {
        name: name.to_owned(),
        value: Some(run.megabytes()),
        unit: UNIT.to_owned(),
        ceiling: None,
        note: Some(format!(
            "{} changes waiting in the {}, drained in {:.1} s ({} changes/s)",
            crate::report::number(run.changes as f64),
            match backlog {
                Backlog::Outbox => "outbox",
                Backlog::Queue => "event queue",
            },
            run.elapsed.as_secs_f64(),
            crate::report::number(crate::per_second(run.changes, run.elapsed)),
        )),
    })
}

/// The release `pubsync` binary next to this benchmark's binary (`cargo xtask bench` builds
/// both), or why there is none.
pub(crate) fn pubsync_binary() -> Result<PathBuf, String> {
    let bench = std::env::current_exe().map_err(|error| format!("no current exe: {error}"))?;
    let binary = bench.with_file_name(format!("pubsync{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p pubsync-cli` \
             (`cargo xtask bench` does)",
            binary.display()
        ))
    }
}

/// Writes `changes` Hello changes into a fresh SQLite database, runs the worker binary on it
/// until everything is published, checks the result and returns the worker's peak RSS.
pub async fn worker_run(
    binary: &Path,
    changes: usize,
    backlog: Backlog,
) -> anyhow::Result<WorkerRun> {
    let plan = Plan::new(changes);
    let test_database = database(Dialect::Sqlite).map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let app = open_app(dir.path(), test_database.url())?;
    let written = Instant::now();
    for statement in plan.statements() {
        app.database()
            .batch_execute(&statement)
            .context("writing changes")?;
    }
    let outbox = count(app.database(), OUTBOX)?;
    ensure!(
        outbox == changes,
        "{outbox} outbox rows after {changes} changes"
    );
    eprintln!(
        "bench:   {changes} changes written in {:.1} s",
        written.elapsed().as_secs_f64(),
    );
    if backlog == Backlog::Queue {
        let relayed = Instant::now();
        let queue = app.queue().await?;
        let relay = OutboxRelay::new(app.database().clone(), app.settings().worker.relay.clone());
        while relay
            .relay_once(app.listeners(), &queue)
            .await
            .context("relaying the outbox")?
            .rows
            > 0
        {}
        let messages = count(app.database(), "pubsync_queue_message")?;
        ensure!(
            count(app.database(), OUTBOX)? == 0 && messages > 0,
            "the outbox was not relayed"
        );
        eprintln!(
            "bench:   relayed into {messages} event messages in {:.1} s",
            relayed.elapsed().as_secs_f64()
        );
    }
    eprintln!("bench:   starting {}", binary.display());

    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\n",
            test_database.url().to_connection_string()
        ),
    )
    .context("writing the worker's pubsync.toml")?;
    let log_path = dir.path().join("worker.log");
    let log = std::fs::File::create(&log_path).context("creating the worker log")?;
    let mut command = pubsync_command(binary);
    command
        .arg("--config")
        .arg(&config)
        .args(["queue:worker:start", "--stop-when-empty"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log);
    let run = measure(&mut command).context("running the worker")?;
    if !run.status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("the worker exited with {}:\n{log}", run.status);
    }
    check(app.database(), plan).context("after the worker")?;
    eprintln!(
        "bench:   worker drained {changes} changes in {:.1} s, peak RSS {:.1} MB",
        run.elapsed.as_secs_f64(),
        run.peak_rss as f64 / 1e6
    );
    Ok(WorkerRun {
        peak_rss: run.peak_rss,
        elapsed: run.elapsed,
        changes,
    })
}

/// `binary` to run with none of this process's `PUBSYNC_*` variables (the caller sets those
/// it means), warnings only in its log, and no input.
pub(crate) fn pubsync_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command.stdin(Stdio::null()).env("PUBSYNC_LOG", "warn");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PUBSYNC_") && name != "PUBSYNC_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// How a process run by [`measure`] went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    /// How it exited.
    pub(crate) status: ExitStatus,
    /// Its peak resident set, in bytes.
    pub(crate) peak_rss: u64,
    /// From its start until it exited.
    pub(crate) elapsed: Duration,
}

/// Starts `command` and waits for it to exit, reading its high-water mark every [`POLL`]
/// (blocks the calling thread).
pub(crate) fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", command.get_program().to_string_lossy()))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = high_water_mark_kib(&status_path) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().context("waiting for the process")? {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let elapsed = started.elapsed();
    ensure!(
        peak_kib > 0 || !status.success(),
        "no VmHWM in {status_path} (not Linux?)"
    );
    Ok(Measured {
        status,
        peak_rss: peak_kib * 1024,
        elapsed,
    })
}

/// `VmHWM` of `/proc/<pid>/status`, in KiB, while the process is alive.
fn high_water_mark_kib(status_path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_path).ok()?;
    parse_high_water_mark(&status)
}

fn parse_high_water_mark(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_is_read_in_kib() {
        let status = "Name:\tpubsync\nVmPeak:\t  200 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_high_water_mark(status), Some(12_345));
        assert_eq!(parse_high_water_mark("Name:\tzombie\n"), None);
    }

    #[test]
    fn this_process_has_a_high_water_mark() {
        assert!(high_water_mark_kib("/proc/self/status").is_some_and(|kib| kib > 0));
    }
}
