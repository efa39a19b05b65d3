//! `queue:worker:start`: the worker process, with its way of stopping.
//!
//! SIGTERM or Ctrl-C stops it after the step in hand: every stage finishes and settles what it
//! holds, then the worker gives back what it still holds (RabbitMQ's prefetch window), prints
//! its summary and exits 0. A step that cannot finish within `worker.shutdown_timeout_seconds`
//! (blocked on a lock, say) is given up: its messages are given back and come again to the
//! next worker, and the exit is 0 all the same. A second signal exits at once (130 or 143);
//! a SIGKILL loses nothing either, what was taken comes back by itself.
//!
//! With `--stop-when-empty` the exit status says whether anything failed: 1 when events or
//! messages went to an error queue during the run.

use std::process::ExitCode;
use std::time::Duration;

use pubsync_queue_extension::Queue as _;

use crate::App;
use crate::shutdown::Shutdown;

/// The longest wait for giving back what the worker holds: past it, the leases run out or
/// the broker puts the messages back when the connection closes.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the worker until it is stopped (or, with `stop_when_empty`, until there is nothing
/// left to do).
pub(crate) async fn start(app: &App, stop_when_empty: bool) -> anyhow::Result<ExitCode> {
    let grace = app.settings().shutdown_timeout;
    let shutdown = Shutdown::listen(move |signal| {
        tracing::info!(
            signal = signal.name(),
            within_seconds = grace.as_secs(),
            "stopping after the step in hand (a second signal stops at once)"
        );
    })?;
    let worker = app.worker().await?;
    let _http = crate::http::start(app).await?;
    tracing::info!(
        queues = %app.queue_list(&worker.queues()),
        stop_when_empty,
        "worker started"
    );
    let outcome = shutdown
        .bounded(worker.run(stop_when_empty, shutdown.flag()), grace)
        .await;
    let released = match tokio::time::timeout(RELEASE_TIMEOUT, worker.queue().release_held()).await
    {
        Ok(Ok(released)) => released,
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "could not give back the messages this worker holds: they come back when their lease runs out");
            0
        }
        Err(_) => {
            tracing::warn!(
                "giving back the messages this worker holds took more than {} s: they come back when their lease runs out",
                RELEASE_TIMEOUT.as_secs()
            );
            0
        }
    };
    let Some(result) = outcome else {
        println!(
            "worker stopped: the step in hand did not finish within {} s of the stop and was given up; {released} messages given back for the next worker",
            grace.as_secs()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let report = result?;
    println!("worker stopped: {report}");
    if stop_when_empty && report.failed > 0 {
        eprintln!(
            "{} events or messages went to error queues during this run (each in the `.error` queue of its queue)",
            report.failed
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
