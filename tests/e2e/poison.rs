//! Poison rows: a few entities that cannot be published must cost their own events, not the
//! chunk they arrive in, and must end in the error queue with their reason while every other
//! entity is published.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pubsync_backend::listener::{HandlerError, PublishContext, Publisher};
use pubsync_backend::storage_table_writer::{Publication, Reference, RowKey, StorageRow};
use pubsync_backend::{EventCollection, StorageTableWriter, Worker, WorkerConfig};
use pubsync_cli::AppQueue;
use pubsync_hello::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;
use pubsync_hello::publisher::MessageStoragePublisher;
use pubsync_shared::event::{EventEntityTransfer, event_transfer_ids};
use pubsync_tests::{TestApp, on_every_database};

use crate::consumer::{CREATE, Flaky, drain_error_queue, worker};

/// The storage writer's limit on a row's data in these tests; a poison row's message is
/// longer.
const MAX_DATA_BYTES: usize = 1024;

/// Retries of a failing event before the error queue.
const MAX_RETRIES: u32 = 1;

/// Hands every call to `inner` and records how many events it had.
struct Counting<P> {
    inner: P,
    calls: Mutex<Vec<usize>>,
}

impl<P: Publisher> Publisher for Counting<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn subscribed_events(&self) -> Vec<String> {
        self.inner.subscribed_events()
    }

    fn handle_bulk(
        &self,
        context: &PublishContext,
        event_name: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        self.calls.lock().unwrap().push(transfers.len());
        self.inner.handle_bulk(context, event_name, transfers)
    }
}

/// Publishes the message of event id `n` as storage row `message:<n + 10000>`, a reference
/// that is no event's id, with data over the limit for the ids in `large`.
struct Offset {
    large: HashSet<i64>,
}

impl Publisher for Offset {
    fn name(&self) -> &str {
        "test.Offset"
    }

    fn subscribed_events(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    fn handle_bulk(
        &self,
        context: &PublishContext,
        _: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        let ids = event_transfer_ids(transfers);
        let references: Vec<Reference> = ids.iter().map(|id| Reference::Int(id + 10_000)).collect();
        context
            .storage
            .publish(&SPY_HELLO_SPRYKER_MESSAGE_STORAGE, &references, || {
                let rows = ids
                    .iter()
                    .map(|id| StorageRow {
                        key: RowKey::reference(Reference::Int(id + 10_000)),
                        data: if self.large.contains(id) {
                            serde_json::json!({ "message": "x".repeat(2 * MAX_DATA_BYTES) })
                        } else {
                            serde_json::json!({ "message": id })
                        },
                    })
                    .collect();
                Ok(Publication::apply(rows, Vec::new()))
            })?;
        Ok(())
    }
}

/// A worker calling only `publisher`, whose storage writer refuses data over
/// [`MAX_DATA_BYTES`], retrying a failing event [`MAX_RETRIES`] times.
async fn limited_worker(t: &TestApp, publisher: Arc<dyn Publisher>) -> Worker<AppQueue> {
    let mut events = EventCollection::new();
    events.add_publisher(publisher);
    let mut config = WorkerConfig::default();
    config.consumer.max_retries = MAX_RETRIES;
    config.consumer.retry_delay = Duration::from_millis(10);
    let storage = StorageTableWriter::new(t.app.database().clone(), Arc::default())
        .with_max_data_bytes(MAX_DATA_BYTES);
    Worker::new(
        t.app.database().clone(),
        t.app.queue().await.unwrap(),
        Arc::new(events),
        storage,
        config,
    )
}

/// Inserts messages 1..=`count`, those of `poison` longer than [`MAX_DATA_BYTES`].
fn insert_messages(t: &TestApp, count: i64, poison: &BTreeSet<i64>) {
    let long = "x".repeat(2 * MAX_DATA_BYTES);
    let values: Vec<String> = (1..=count)
        .map(|i| {
            let message = if poison.contains(&i) {
                long.as_str()
            } else {
                "short"
            };
            format!("('name {i}', '{message}')")
        })
        .collect();
    t.sql(&format!(
        "INSERT INTO spy_hello_spryker_message (name, message) VALUES {}",
        values.join(", ")
    ));
}

/// The ids of the events in the error messages `errors`, sorted.
fn error_ids(errors: &[serde_json::Value]) -> BTreeSet<i64> {
    errors
        .iter()
        .map(|error| error["transfers"][0]["id"].as_i64().expect("an event id"))
        .collect()
}

on_every_database! {
    async fn rows_over_the_size_limit_fail_alone_while_their_chunk_is_published_in_one_pass(t: TestApp) {
        let poison: BTreeSet<i64> = (1..=10).map(|i| i * 97).collect();
        let counting = Arc::new(Counting { inner: MessageStoragePublisher, calls: Mutex::default() });
        let worker = limited_worker(&t, counting.clone()).await;
        insert_messages(&t, 1000, &poison);
        let report = worker.run(true, &Default::default()).await.unwrap();

        let stored = t.message_storage();
        assert_eq!(stored.len(), 990, "every message but the poison ones is stored");
        assert!(
            stored.iter().all(|(key, _)| poison.iter().all(|id| *key != format!("message:{id}"))),
            "no poison message is stored"
        );
        let errors = drain_error_queue(&t).await;
        assert_eq!(error_ids(&errors), poison, "{errors:#?}");
        for error in &errors {
            let id = &error["transfers"][0]["id"];
            let reason = error["errorMessage"].as_str().unwrap();
            assert!(
                reason.contains(&format!("message:{id} refused")) && reason.contains("max_payload_bytes"),
                "{reason}"
            );
        }
        assert_eq!((report.failed, report.retried), (10, 10 * MAX_RETRIES as usize), "{report}");
        // Each clean event is handed over once; each poison one once in its chunk, once alone
        // to confirm the refusal, and once per retry.
        let handed: usize = counting.calls.lock().unwrap().iter().sum();
        assert_eq!(
            handed,
            1000 + 10 * (1 + MAX_RETRIES as usize),
            "calls: {:?}",
            counting.calls.lock().unwrap()
        );
    }

    async fn a_refusal_that_names_no_event_is_found_by_halving(t: TestApp) {
        let worker = limited_worker(&t, Arc::new(Offset { large: [6].into() })).await;
        t.insert_messages(1, 8, None);
        worker.run(true, &Default::default()).await.unwrap();

        let stored: Vec<String> = t.message_storage().into_iter().map(|(key, _)| key).collect();
        let expected: Vec<String> = [1, 2, 3, 4, 5, 7, 8]
            .iter()
            .map(|id| format!("message:{}", id + 10_000))
            .collect();
        assert_eq!(stored, expected);
        let errors = drain_error_queue(&t).await;
        assert_eq!(error_ids(&errors), [6].into(), "{errors:#?}");
        let reason = errors[0]["errorMessage"].as_str().unwrap();
        assert!(reason.contains("message:10006 refused"), "{reason}");
    }

    async fn a_bulk_failing_as_a_whole_finds_its_few_bad_events_in_few_calls(t: TestApp) {
        let bad: BTreeSet<i64> = [100, 500, 900].into();
        let flaky = Arc::new(Flaky {
            fail: bad.iter().copied().collect(),
            panic: HashSet::new(),
            calls: Mutex::default(),
        });
        let worker = worker(&t, flaky.clone(), 0).await;
        t.insert_messages(1, 1000, None);
        let report = worker.run(true, &Default::default()).await.unwrap();

        assert_eq!((report.handled, report.failed), (997, 3), "{report}");
        assert_eq!(error_ids(&drain_error_queue(&t).await), bad);
        let calls = flaky.calls.lock().unwrap();
        // Halving: at most two calls per bad event on each of the ~10 levels, where a call
        // per event made 1,000.
        assert!(calls.len() <= 1 + 2 * bad.len() * 10, "{} calls", calls.len());
        let handled: BTreeSet<i64> = calls
            .iter()
            .filter(|call| !call.iter().any(|id| bad.contains(id)))
            .flatten()
            .copied()
            .collect();
        assert_eq!(handled.len(), 997, "every good event is in a call that succeeded");
    }

    async fn retried_events_are_called_apart_from_new_ones(t: TestApp) {
        let flaky = Arc::new(Flaky { fail: [3].into(), panic: HashSet::new(), calls: Mutex::default() });
        let worker = worker(&t, flaky.clone(), 1).await;
        t.insert_messages(1, 5, None);
        worker.run_task("event", false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        t.insert_messages(6, 7, None);
        let outcome = worker.run_task("event", false).await.unwrap();
        assert_eq!(outcome.handled, 2, "{outcome:?}");

        let calls = flaky.calls.lock().unwrap();
        let second: Vec<&Vec<i64>> = calls.iter().filter(|call| call.iter().any(|id| *id > 5)).collect();
        assert_eq!(second, [&vec![6, 7]], "the new events in a call of their own: {calls:?}");
        assert_eq!(calls.last(), Some(&vec![3]), "the retried event alone: {calls:?}");
    }
}
