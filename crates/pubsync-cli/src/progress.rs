//! Progress of a long run: a bar with rate and ETA on a terminal, a plain line every few
//! seconds otherwise (logs, CI).

use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pubsync_backend::backfill::Progress;

/// How often a plain progress line is printed, at most.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Reports progress on stdout: a bar when stdout is a terminal, lines otherwise.
pub(crate) struct Reporter {
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
    done: u64,
    /// Done when the run (or its resumption) started, for the rate.
    start_done: u64,
    started: Option<Instant>,
    last_line: Option<Instant>,
}

impl Reporter {
    /// A reporter that draws a bar when stdout is a terminal.
    pub(crate) fn stdout() -> Self {
        Self {
            terminal: std::io::stdout().is_terminal(),
            state: Mutex::default(),
        }
    }

    fn line(state: &State) {
        let elapsed = state
            .started
            .map_or(0.0, |started| started.elapsed().as_secs_f64());
        let rate = if elapsed > 0.0 {
            (state.done - state.start_done) as f64 / elapsed
        } else {
            0.0
        };
        println!(
            "{}: {}/{} ({:.0}/s)",
            state.what, state.done, state.total, rate
        );
    }
}

impl Progress for Reporter {
    fn start(&self, what: &str, total: u64, done: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = State {
            what: what.to_owned(),
            total,
            done,
            start_done: done,
            started: Some(Instant::now()),
            ..State::default()
        };
        if self.terminal {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:40}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_owned());
            bar.set_position(done);
            bar.reset_eta();
            state.bar = Some(bar);
        }
    }

    fn advance(&self, count: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.done += count;
        if state.done > state.total {
            state.total = state.done;
        }
        if let Some(bar) = &state.bar {
            bar.set_length(state.total);
            bar.inc(count);
        } else if state
            .last_line
            .is_none_or(|last| last.elapsed() >= LINE_EVERY)
        {
            state.last_line = Some(Instant::now());
            Self::line(&state);
        }
    }

    fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.bar.take() {
            Some(bar) => bar.finish(),
            None if state.started.is_some() => Self::line(&state),
            None => {}
        }
    }
}
