//! Latency from commit to visible in Redis on PostgreSQL + RabbitMQ + Redis, with the worker
//! running, at two loads: a fixed offered load of 10 new rows every 10 ms (1,000 changes/s),
//! each batch its own transaction, and full speed, transactions of 100 new rows one after the
//! other. A poller MGETs the keys not yet visible in a tight loop and records the time from a
//! key's commit to the first MGET that returned it: for every key at 1k/s, for the last key
//! of each transaction at full speed (polling every key would take the CPU it measures).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use pubsync_database::Dialect;
use tokio::sync::mpsc;

use crate::Size;
use crate::final_state::{Payload, both, insert_statement, mget};
use crate::report::Figure;
use crate::servers::{Pipeline, Servers};

/// How the load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// 10 rows per transaction, one transaction every 10 ms; every key timed.
    Paced,
    /// 100 rows per transaction, as fast as the database takes them; the last key of each
    /// transaction timed.
    FullSpeed,
}

impl Load {
    fn rows_per_commit(self) -> usize {
        match self {
            Load::Paced => 10,
            Load::FullSpeed => 100,
        }
    }

    /// The pause between two transactions' starts.
    fn tick(self) -> Duration {
        match self {
            Load::Paced => Duration::from_millis(10),
            Load::FullSpeed => Duration::ZERO,
        }
    }

    /// Whether the key of row `index` (0-based) of a transaction is timed.
    fn timed(self, index: usize) -> bool {
        self == Load::Paced || index + 1 == self.rows_per_commit()
    }

    fn suffix(self) -> &'static str {
        match self {
            Load::Paced => "1k",
            Load::FullSpeed => "full",
        }
    }
}
/// How long one key may take before the run is declared stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// `latency_p50_postgres_rabbitmq_redis_<1k|full>` and `latency_p99_…`.
pub async fn run(size: Size, load: Load) -> anyhow::Result<Vec<Figure>> {
    let p50_name = format!("latency_p50_postgres_rabbitmq_redis_{}", load.suffix());
    let p99_name = format!("latency_p99_postgres_rabbitmq_redis_{}", load.suffix());
    let servers = match Servers::require(Dialect::Postgres) {
        Ok(servers) => servers,
        Err(note) => {
            return Ok(vec![
                Figure::missing(&p50_name, "ms", note.clone()),
                Figure::missing(&p99_name, "ms", note),
            ]);
        }
    };
    let pipeline = Pipeline::start(&servers, "").await?;
    let result = measure(&pipeline, size.latency_seconds, load).await;
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
            name: p50_name,
            value: Some(ms(p50)),
            unit: "ms".to_owned(),
            ceiling: None,
            note: None,
        },
        Figure {
            name: p99_name,
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
async fn measure(pipeline: &Pipeline, seconds: u64, load: Load) -> anyhow::Result<Vec<Duration>> {
    let rows = load.rows_per_commit();
    let duration = Duration::from_secs(seconds);
    let (commits, mut committed) = mpsc::unbounded_channel::<(usize, Instant)>();
    let writer = pipeline.database().blocking(move |database| {
        let started = Instant::now();
        let mut commit = 0;
        // Paced: a fixed number of transactions on a schedule; full speed: as many as fit.
        while match load {
            Load::Paced => commit < (duration.as_nanos() / load.tick().as_nanos()) as usize,
            Load::FullSpeed => started.elapsed() < duration,
        } {
            let due = started + load.tick() * commit as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let first = commit * rows + 1;
            database.batch_execute(&insert_statement(
                "spy_hello_spryker_message",
                "id_hello_spryker_message",
                Payload::Hello,
                first,
                first + rows - 1,
            ))?;
            let at = Instant::now();
            for (index, id) in (first..first + rows).enumerate() {
                if load.timed(index) {
                    // The poller only stops early on an error, which the writer then ignores.
                    let _ = commits.send((id, at));
                }
            }
            commit += 1;
        }
        anyhow::Ok((started.elapsed(), commit * rows))
    });

    let storage = pipeline.storage();
    let mut outstanding: VecDeque<(usize, Instant, String)> = VecDeque::new();
    let mut latencies = Vec::new();
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
    let (elapsed, changes) = written.context("offering the load")?;
    polled?;
    eprintln!(
        "bench:   offered {changes} changes in {:.2} s ({:.0} changes/s)",
        elapsed.as_secs_f64(),
        changes as f64 / elapsed.as_secs_f64()
    );
    let timed = (0..changes).filter(|n| load.timed(n % rows)).count();
    ensure!(
        latencies.len() == timed,
        "{} of {timed} keys seen",
        latencies.len(),
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
