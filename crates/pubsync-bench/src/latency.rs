//! Latency from commit to visible in Redis at a fixed offered load, on PostgreSQL + RabbitMQ +
//! Redis: 10 new rows every 10 ms (1,000 changes/s), each batch its own transaction, with the
//! worker running; a poller MGETs the keys not yet visible in a tight loop and records, per
//! key, the time from its commit to the first MGET that returned it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use pubsync_database::Dialect;
use tokio::sync::mpsc;

use crate::Size;
use crate::report::Figure;
use crate::servers::{Payload, Pipeline, Servers, both, insert_statement, mget};

/// Rows per transaction.
const ROWS_PER_COMMIT: usize = 10;
/// The pause between two transactions' starts.
const TICK: Duration = Duration::from_millis(10);
/// How long one key may take before the run is declared stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// `latency_p50_postgres_rabbitmq_redis_1k` and `latency_p99_postgres_rabbitmq_redis_1k`.
pub async fn run(size: Size) -> anyhow::Result<Vec<Figure>> {
    const P50: &str = "latency_p50_postgres_rabbitmq_redis_1k";
    const P99: &str = "latency_p99_postgres_rabbitmq_redis_1k";
    let servers = match Servers::require(Dialect::Postgres) {
        Ok(servers) => servers,
        Err(note) => {
            return Ok(vec![
                Figure::missing(P50, "ms", note.clone()),
                Figure::missing(P99, "ms", note),
            ]);
        }
    };
    let pipeline = Pipeline::start(&servers, "").await?;
    let result = measure(&pipeline, size.latency_seconds).await;
    let (mut latencies, report) = both(result, pipeline.finish().await)?;
    ensure!(
        report.failed == 0 && report.retried == 0,
        "the worker failed or retried events: {report:?}"
    );
    latencies.sort();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    eprintln!(
        "bench:   {} keys: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(p50),
        ms(percentile(&latencies, 90.0)),
        ms(p99),
        ms(*latencies.last().context("no latencies")?),
    );
    Ok(vec![
        Figure {
            name: P50.to_owned(),
            value: Some(ms(p50)),
            unit: "ms".to_owned(),
            ceiling: None,
            note: None,
        },
        Figure {
            name: P99.to_owned(),
            value: Some(ms(p99)),
            unit: "ms".to_owned(),
            ceiling: None,
            note: None,
        },
    ])
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Offers the load for `seconds` and returns every key's latency.
async fn measure(pipeline: &Pipeline, seconds: u64) -> anyhow::Result<Vec<Duration>> {
    let ticks = (Duration::from_secs(seconds).as_nanos() / TICK.as_nanos()) as usize;
    let (commits, mut committed) = mpsc::unbounded_channel::<(usize, Instant)>();
    let writer = pipeline.database().blocking(move |database| {
        let started = Instant::now();
        for tick in 0..ticks {
            let due = started + TICK * tick as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let first = tick * ROWS_PER_COMMIT + 1;
            database.batch_execute(&insert_statement(
                "spy_hello_spryker_message",
                "id_hello_spryker_message",
                Payload::Hello,
                first,
                first + ROWS_PER_COMMIT - 1,
            ))?;
            let at = Instant::now();
            for id in first..first + ROWS_PER_COMMIT {
                // The poller only stops early on an error, which the writer then ignores.
                let _ = commits.send((id, at));
            }
        }
        anyhow::Ok(started.elapsed())
    });

    let storage = pipeline.storage();
    let mut outstanding: VecDeque<(usize, Instant, String)> = VecDeque::new();
    let mut latencies = Vec::with_capacity(ticks * ROWS_PER_COMMIT);
    let mut open = true;
    let poll = async {
        while open || !outstanding.is_empty() {
            loop {
                match committed.try_recv() {
                    Ok((id, at)) => {
                        outstanding.push_back((id, at, storage.redis_key(&format!("message:{id}"))))
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if !outstanding.is_empty() {
                let keys: Vec<String> = outstanding.iter().map(|(_, _, key)| key.clone()).collect();
                let values = mget(storage, &keys).await?;
                let seen = Instant::now();
                let mut still = VecDeque::with_capacity(outstanding.len());
                for (item, value) in outstanding.drain(..).zip(values) {
                    if value.is_some() {
                        latencies.push(seen - item.1);
                    } else {
                        ensure!(
                            seen - item.1 < STUCK_AFTER,
                            "message:{} not in Redis {STUCK_AFTER:?} after its commit",
                            item.0
                        );
                        still.push_back(item);
                    }
                }
                outstanding = still;
            }
            pipeline.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        anyhow::Ok(())
    };
    let (written, polled) = tokio::join!(writer, poll);
    let written = written.context("offering the load")?;
    polled?;
    eprintln!(
        "bench:   offered {} changes in {:.2} s ({:.0} changes/s)",
        ticks * ROWS_PER_COMMIT,
        written.as_secs_f64(),
        (ticks * ROWS_PER_COMMIT) as f64 / written.as_secs_f64()
    );
    ensure!(
        latencies.len() == ticks * ROWS_PER_COMMIT,
        "{} of {} keys seen",
        latencies.len(),
        ticks * ROWS_PER_COMMIT
    );
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 99.0), Duration::from_millis(1));
    }
}
