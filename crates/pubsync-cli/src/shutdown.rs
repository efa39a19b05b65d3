//! Stopping on a signal: SIGINT (Ctrl-C) or SIGTERM asks a long-running command to stop after
//! the chunk in hand; a second signal ends the process at once. [`Shutdown::bounded`] caps how
//! long the first stop may take, for a step that cannot finish (blocked on a lock, waiting on
//! a server that went away).
//!
//! Ending at once loses nothing: what was taken and not acknowledged comes back, from the
//! broker when the connection closes, from the database queue when the lease runs out.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

/// The exit status of a process ended by a second signal: 128 + the signal's number.
const fn exit_status(kind: SignalKind) -> i32 {
    128 + kind.as_raw_value()
}

/// Which signal asked for the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }
}

/// Listens for SIGINT and SIGTERM for as long as it lives.
#[derive(Debug)]
pub(crate) struct Shutdown {
    requested: Arc<AtomicBool>,
    signalled: Arc<Notify>,
}

impl Shutdown {
    /// Starts listening; `on_first` runs on the first signal (after the flag is set), with the
    /// signal. A second signal prints a line and exits with 128 + its number.
    pub(crate) fn listen(on_first: impl Fn(Signal) + Send + 'static) -> std::io::Result<Self> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let requested = Arc::new(AtomicBool::new(false));
        let signalled = Arc::new(Notify::new());
        let (flag, notify) = (requested.clone(), signalled.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (signal, kind) = tokio::select! {
                    Some(()) = interrupt.recv() => (Signal::Interrupt, SignalKind::interrupt()),
                    Some(()) = terminate.recv() => (Signal::Terminate, SignalKind::terminate()),
                    else => return,
                };
                if first {
                    first = false;
                    flag.store(true, Ordering::SeqCst);
                    notify.notify_waiters();
                    on_first(signal);
                } else {
                    eprintln!(
                        "{}: stopping now; what was taken and not acknowledged is delivered again",
                        signal.name()
                    );
                    std::process::exit(exit_status(kind));
                }
            }
        });
        Ok(Self {
            requested,
            signalled,
        })
    }

    /// The flag the first signal sets.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.requested
    }

    /// Whether a signal asked for the stop.
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Runs `work` to its end, or, once a signal asked for the stop, for at most `grace`
    /// more: `None` when it was given up. What `work` does when given up is dropped where it
    /// waits; a step running on a blocking thread is left to the end of the process.
    pub(crate) async fn bounded<F: Future>(&self, work: F, grace: Duration) -> Option<F::Output> {
        let signalled = async {
            loop {
                let notified = self.signalled.notified();
                if self.requested() {
                    break;
                }
                notified.await;
            }
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            output = work => Some(output),
            () = signalled => None,
        }
    }
}
