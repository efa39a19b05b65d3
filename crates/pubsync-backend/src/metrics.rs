//! The metrics the backend records, through the [`metrics`] facade: a binary that installs a
//! recorder (pubsync's worker exports them as Prometheus text on `GET /metrics`) sees them; a
//! library user that installs none pays next to nothing. Counts are added once per chunk,
//! not once per event.
//!
//! Queue labels are the queue names as the modules give them, without the configured prefix.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pubsync_storage_extension::StorageChange;

use crate::status::Status;

/// A metric: its name, kind and what it counts, for `describe` and the documentation.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its labels.
    pub labels: &'static str,
    /// What it measures.
    pub help: &'static str,
}

/// Captured changes relayed from the outbox.
pub const CHANGES_CAPTURED: &str = "pubsync_changes_captured_total";
/// Events a listener handled successfully.
pub const EVENTS_PUBLISHED: &str = "pubsync_events_published_total";
/// Events sent back for a retry.
pub const EVENT_RETRIES: &str = "pubsync_event_retries_total";
/// Events and messages sent to an error queue.
pub const ERRORS: &str = "pubsync_errors_total";
/// Changes handed to the key-value store.
pub const KEYS_SYNCED: &str = "pubsync_keys_synced_total";
/// How long a stage's pass over a chunk took.
pub const CHUNK_DURATION: &str = "pubsync_chunk_duration_seconds";
/// From a storage-row change to its key in the key-value store.
pub const COMMIT_TO_STORAGE: &str = "pubsync_commit_to_storage_seconds";
/// Messages in a queue, by state.
pub const QUEUE_MESSAGES: &str = "pubsync_queue_messages";
/// Rows waiting in an outbox.
pub const OUTBOX_ROWS: &str = "pubsync_outbox_rows";
/// The age of an outbox's oldest row.
pub const OUTBOX_OLDEST_AGE: &str = "pubsync_outbox_oldest_age_seconds";
/// The age of the health-check probe in the key-value store (set by the application).
pub const READ_MODEL_AGE: &str = "pubsync_read_model_age_seconds";

/// Every metric the backend records.
pub const METRICS: &[Metric] = &[
    Metric {
        name: CHANGES_CAPTURED,
        kind: "counter",
        labels: "table",
        help: "Captured changes relayed from the outbox, by source table.",
    },
    Metric {
        name: EVENTS_PUBLISHED,
        kind: "counter",
        labels: "listener",
        help: "Events a listener handled successfully.",
    },
    Metric {
        name: EVENT_RETRIES,
        kind: "counter",
        labels: "queue",
        help: "Events sent back to their queue for a retry after failing.",
    },
    Metric {
        name: ERRORS,
        kind: "counter",
        labels: "queue",
        help: "Events and messages sent to the error queue of a queue (the queue whose `.error` queue got them).",
    },
    Metric {
        name: KEYS_SYNCED,
        kind: "counter",
        labels: "resource",
        help: "Storage changes (writes and deletes) handed to the key-value store, by resource; a change older than the stored one counts, though it is skipped.",
    },
    Metric {
        name: CHUNK_DURATION,
        kind: "histogram",
        labels: "stage",
        help: "How long one pass of a worker stage over a chunk took: `outbox`, `event_queues`, `sync_relay`, `sync_queues`.",
    },
    Metric {
        name: COMMIT_TO_STORAGE,
        kind: "histogram",
        labels: "",
        help: "From the commit of a storage-row change (its sync version) to its key written in the key-value store.",
    },
    Metric {
        name: QUEUE_MESSAGES,
        kind: "gauge",
        labels: "queue, state",
        help: "Messages of a queue at the last scrape: `ready`, `in_flight` (taken and not settled, or waiting out a retry delay) and `error` (in its error queue).",
    },
    Metric {
        name: OUTBOX_ROWS,
        kind: "gauge",
        labels: "outbox",
        help: "Rows waiting in the `event` outbox (captured changes) or the `sync` outbox (storage-row changes) at the last scrape.",
    },
    Metric {
        name: OUTBOX_OLDEST_AGE,
        kind: "gauge",
        labels: "outbox",
        help: "How long the oldest row of the outbox has waited, at the last scrape; 0 when it is empty.",
    },
    Metric {
        name: READ_MODEL_AGE,
        kind: "gauge",
        labels: "",
        help: "The age of the health-check probe read back from storage at the last scrape (NaN when there is none): how far behind the read model is, at most.",
    },
];

/// Registers the descriptions of [`METRICS`] with the installed recorder.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            "counter" => metrics::describe_counter!(metric.name, metric.help),
            "gauge" => metrics::describe_gauge!(metric.name, metric.help),
            _ => metrics::describe_histogram!(metric.name, metrics::Unit::Seconds, metric.help),
        }
    }
}

/// Changes captured, counted by table (`counts`).
pub(crate) fn captured(counts: BTreeMap<String, u64>) {
    for (table, count) in counts {
        metrics::counter!(CHANGES_CAPTURED, "table" => table).increment(count);
    }
}

/// `count` events handled by `listener`.
pub(crate) fn published(listener: &str, count: usize) {
    if count > 0 {
        metrics::counter!(EVENTS_PUBLISHED, "listener" => listener.to_owned())
            .increment(count as u64);
    }
}

/// `count` events of `queue` retried.
pub(crate) fn retried(queue: &str, count: usize) {
    if count > 0 {
        metrics::counter!(EVENT_RETRIES, "queue" => queue.to_owned()).increment(count as u64);
    }
}

/// `count` events or messages sent to the error queue of `queue`.
pub(crate) fn failed(queue: &str, count: usize) {
    if count > 0 {
        metrics::counter!(ERRORS, "queue" => queue.to_owned()).increment(count as u64);
    }
}

/// What a write to the key-value store carries, for [`Synced::record`] once it succeeded:
/// the changes by resource, and their versions.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    by_resource: BTreeMap<String, u64>,
    versions: Vec<i64>,
}

impl Synced {
    /// The summary of `changes`.
    pub(crate) fn of<'a>(changes: impl IntoIterator<Item = &'a StorageChange>) -> Self {
        let mut synced = Self::default();
        for change in changes {
            let (key, version) = match change {
                StorageChange::Write { key, version, .. }
                | StorageChange::Delete { key, version } => (key, version),
            };
            let resource = key.split(':').next().unwrap_or_default();
            match synced.by_resource.get_mut(resource) {
                Some(count) => *count += 1,
                None => {
                    synced.by_resource.insert(resource.to_owned(), 1);
                }
            }
            synced.versions.push(version.as_micros());
        }
        synced
    }

    /// The changes were handed to the key-value store just now.
    pub(crate) fn record(self) {
        if self.versions.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
            });
        let latency = metrics::histogram!(COMMIT_TO_STORAGE);
        for version in self.versions {
            latency.record(now.saturating_sub(version).max(0) as f64 / 1e6);
        }
        for (resource, count) in self.by_resource {
            metrics::counter!(KEYS_SYNCED, "resource" => resource).increment(count);
        }
    }
}

/// A pass of `stage` over a chunk took `elapsed`.
pub(crate) fn chunk(stage: &'static str, elapsed: Duration) {
    metrics::histogram!(CHUNK_DURATION, "stage" => stage).record(elapsed.as_secs_f64());
}

/// Sets the gauges of `status`: queue depths and outbox backlogs.
pub fn record_status(status: &Status) {
    for queue in &status.queues {
        for (state, value) in [
            ("ready", queue.ready),
            ("in_flight", queue.in_flight),
            ("error", queue.error),
        ] {
            metrics::gauge!(QUEUE_MESSAGES, "queue" => queue.name.clone(), "state" => state)
                .set(value as f64);
        }
    }
    for (outbox, backlog) in [("event", &status.outbox), ("sync", &status.sync_outbox)] {
        metrics::gauge!(OUTBOX_ROWS, "outbox" => outbox).set(backlog.rows as f64);
        metrics::gauge!(OUTBOX_OLDEST_AGE, "outbox" => outbox)
            .set(backlog.oldest_age.unwrap_or_default().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operators' guide explains every metric; one added here and not there fails.
    #[test]
    fn every_metric_is_in_the_operations_guide() {
        let guide = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
        )
        .unwrap();
        for metric in METRICS {
            assert!(
                guide.contains(&format!("| `{}` | {} |", metric.name, metric.kind)),
                "docs/operations.md does not list {} as a {}",
                metric.name,
                metric.kind
            );
        }
    }
}
