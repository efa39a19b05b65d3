//! The Spryker-shaped run: the PostgreSQL + RabbitMQ + Redis pipeline configured the way the
//! original works, against pubsync's defaults, on the same changes.
//!
//! Spryker-shaped means: one event message per event and listener in the original's format
//! (`[worker] spryker_compatible`), consumer chunks of 500 messages for events and sync, one
//! change per sync message (`[sync] changes_per_message = 1`), and the original worker's pace
//! (`[worker] original_pacing`, `idle_poll_ms = 1000`): each stage takes one
//! chunk per round, pauses 100 ms after a round with work and a second after one without, and
//! no stage wakes another. It is still generous to the original: its rounds start a PHP
//! process per chunk, and pubsync's consumer, publisher and Redis writes do the work.

use std::time::Duration;

use anyhow::Context as _;
use pubsync_database::Dialect;

use crate::final_state::Payload;
use crate::report::Figure;
use crate::servers::{Servers, pipeline_run};
use crate::{Size, median, per_second};

/// `pubsync.toml` sections of the Spryker-shaped pipeline.
pub const SPRYKER_SHAPED: &str = "[worker]\nspryker_compatible = true\nchunk_size = 500\n\
                                  idle_poll_ms = 1000\noriginal_pacing = true\n[sync]\n\
                                  changes_per_message = 1\nchunk_size = 500\n";

/// `e2e_postgres_rabbitmq_redis_spryker_shaped` (changes/s) and `spryker_shaped_ratio`
/// (pubsync's changes/s over the Spryker-shaped run's, same changes).
pub async fn run(size: Size) -> anyhow::Result<Vec<Figure>> {
    const SHAPED: &str = "e2e_postgres_rabbitmq_redis_spryker_shaped";
    const RATIO: &str = "spryker_shaped_ratio";
    let servers = match Servers::require(Dialect::Postgres) {
        Ok(servers) => servers,
        Err(note) => {
            return Ok(vec![
                Figure::missing(SHAPED, "changes/s", note.clone()),
                Figure::missing(RATIO, "×", note),
            ]);
        }
    };
    let changes = size.spryker_changes;
    let mut pubsync_runs: Vec<Duration> = Vec::new();
    let mut shaped_runs: Vec<Duration> = Vec::new();
    for run in 0..size.e2e_runs {
        eprintln!("bench:   Spryker-shaped, run {}:", run + 1);
        shaped_runs.push(
            pipeline_run(&servers, Payload::Hello, changes, SPRYKER_SHAPED)
                .await
                .with_context(|| format!("Spryker-shaped run {}", run + 1))?,
        );
        eprintln!("bench:   pubsync defaults, run {}:", run + 1);
        pubsync_runs.push(
            pipeline_run(&servers, Payload::Hello, changes, "")
                .await
                .with_context(|| format!("pubsync run {}", run + 1))?,
        );
    }
    let shaped = per_second(changes, median(shaped_runs));
    let pubsync = per_second(changes, median(pubsync_runs));
    eprintln!(
        "bench:   {changes} changes: pubsync {pubsync:.0} changes/s, Spryker-shaped {shaped:.0} changes/s"
    );
    Ok(vec![
        Figure {
            name: SHAPED.to_owned(),
            value: Some(shaped),
            unit: "changes/s".to_owned(),
            ceiling: None,
            note: None,
        },
        Figure {
            name: RATIO.to_owned(),
            value: Some(pubsync / shaped),
            unit: "×".to_owned(),
            ceiling: None,
            note: None,
        },
    ])
}
