//! The consumer's failure paths: a failing bulk is halved until the failing items are found,
//! which are retried and then moved to `<queue>.error` with the reason; nothing is lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pubsync_backend::listener::{HandlerError, PublishContext, Publisher};
use pubsync_backend::{EventCollection, StorageTableWriter, Worker, WorkerConfig};
use pubsync_cli::AppQueue;
use pubsync_queue_extension::{Queue, Settlement};
use pubsync_shared::event::{EventEntityTransfer, event_transfer_ids};
use pubsync_shared::message::EventQueueMessage;
use pubsync_tests::{TestApp, on_every_database};

pub(crate) const CREATE: &str = "Entity.spy_hello_spryker_message.create";

/// Fails for the ids in `fail`, panics for the ids in `panic`, and records every call.
pub(crate) struct Flaky {
    pub(crate) fail: HashSet<i64>,
    pub(crate) panic: HashSet<i64>,
    pub(crate) calls: Mutex<Vec<Vec<i64>>>,
}

impl Publisher for Flaky {
    fn name(&self) -> &str {
        "test.Flaky"
    }

    fn subscribed_events(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    fn handle_bulk(
        &self,
        _: &PublishContext,
        _: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        let ids = event_transfer_ids(transfers);
        self.calls.lock().unwrap().push(ids.clone());
        if let Some(id) = ids.iter().find(|id| self.panic.contains(id)) {
            panic!("publisher blew up on {id}");
        }
        match ids.iter().find(|id| self.fail.contains(id)) {
            Some(id) => Err(format!("cannot publish message {id}").into()),
            None => Ok(()),
        }
    }
}

pub(crate) async fn worker(
    t: &TestApp,
    publisher: Arc<Flaky>,
    max_retries: u32,
) -> Worker<AppQueue> {
    worker_publishing(t, publisher, max_retries, false).await
}

/// With `direct`, outbox events go to the listeners in the worker's process, not through the
/// event queue; failures take the queue from there.
async fn worker_publishing(
    t: &TestApp,
    publisher: Arc<Flaky>,
    max_retries: u32,
    direct: bool,
) -> Worker<AppQueue> {
    let mut events = EventCollection::new();
    events.add_publisher(publisher);
    let mut config = WorkerConfig {
        direct_publish: direct,
        ..WorkerConfig::default()
    };
    config.consumer.max_retries = max_retries;
    config.consumer.retry_delay = Duration::from_millis(20);
    let storage = StorageTableWriter::new(t.app.database().clone(), Arc::default());
    Worker::new(
        t.app.database().clone(),
        t.app.queue().await.unwrap(),
        Arc::new(events),
        storage,
        config,
    )
}

pub(crate) async fn drain_error_queue(t: &TestApp) -> Vec<serde_json::Value> {
    let queue = t.app.queue().await.unwrap();
    let deliveries = queue
        .receive("event.error", 100, Duration::from_millis(50))
        .await
        .unwrap();
    let settlement = Settlement {
        acknowledge: deliveries.iter().map(|d| d.tag).collect(),
        ..Default::default()
    };
    queue.settle("event.error", settlement).await.unwrap();
    deliveries
        .iter()
        .map(|d| serde_json::from_slice(&d.body).unwrap())
        .collect()
}

/// Ids 3 (fails) and 4 (panics) are retried twice each, then end in the error queue with the
/// reason, while 1, 2 and 5 are published; through the event queue or `direct`ly.
async fn failing_events_are_retried_then_sent_to_the_error_queue(t: &TestApp, direct: bool) {
    let flaky = Arc::new(Flaky {
        fail: [3].into(),
        panic: [4].into(),
        calls: Mutex::default(),
    });
    let worker = worker_publishing(t, flaky.clone(), 2, direct).await;
    t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('1'), ('2'), ('3'), ('4'), ('5')");
    let report = worker.run(true, &Default::default()).await.unwrap();

    let calls = flaky.calls.lock().unwrap().clone();
    let halves: [&[i64]; 7] = [
        &[1, 2, 3, 4, 5],
        &[1, 2],
        &[3, 4, 5],
        &[3],
        &[4, 5],
        &[4],
        &[5],
    ];
    assert_eq!(
        calls[..7],
        halves,
        "one bulk call, then halves of the halves that fail, down to the failing events"
    );
    assert_eq!(
        calls.iter().filter(|call| *call == &[3]).count(),
        3,
        "id 3: the single call and 2 retries"
    );
    assert_eq!(
        report.handled, 3,
        "ids 1, 2 and 5 are not held back by the failing ones"
    );
    assert_eq!(report.retried, 4);
    assert_eq!(report.failed, 2);

    let mut errors = drain_error_queue(t).await;
    errors.sort_by_key(|e| e["transfers"][0]["id"].as_i64());
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0]["transfers"][0]["id"], 3);
    assert_eq!(errors[0]["listenerName"], "test.Flaky");
    assert_eq!(errors[0]["retry"], 2);
    assert_eq!(errors[0]["errorMessage"], "cannot publish message 3");
    assert_eq!(errors[1]["transfers"][0]["id"], 4);
    assert!(
        errors[1]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("publisher blew up on 4"),
        "{:#?}",
        errors[1]
    );
    assert!(
        t.app
            .queue()
            .await
            .unwrap()
            .depth("event")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Records how many calls are in flight at once; each takes a moment.
#[derive(Default)]
struct Overlap {
    in_flight: Mutex<(usize, usize)>,
}

impl Publisher for Overlap {
    fn name(&self) -> &str {
        "test.Overlap"
    }

    fn subscribed_events(&self) -> Vec<String> {
        vec![CREATE.to_owned()]
    }

    fn handle_bulk(
        &self,
        _: &PublishContext,
        _: &str,
        _: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        {
            let mut counts = self.in_flight.lock().unwrap();
            counts.0 += 1;
            counts.1 = counts.1.max(counts.0);
        }
        std::thread::sleep(Duration::from_millis(150));
        self.in_flight.lock().unwrap().0 -= 1;
        Ok(())
    }
}

/// The most chunks of `event` in flight at once with `workers` for the queue, one message of
/// one event per chunk, over six events.
async fn most_chunks_at_once(t: &TestApp, workers: Option<usize>) -> usize {
    let overlap = Arc::new(Overlap::default());
    let mut events = EventCollection::new();
    events.add_publisher(overlap.clone());
    let mut config = WorkerConfig::default();
    config.relay.events_per_message = 1;
    let policy = config.consumer.queues.entry("event");
    policy.chunk_size = Some(1);
    policy.workers = workers;
    let worker = Worker::new(
        t.app.database().clone(),
        t.app.queue().await.unwrap(),
        Arc::new(events),
        StorageTableWriter::new(t.app.database().clone(), Arc::default()),
        config,
    );
    t.sql("DELETE FROM spy_hello_spryker_message");
    t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('1'), ('2'), ('3'), ('4'), ('5'), ('6')");
    let report = worker.run(true, &Default::default()).await.unwrap();
    assert_eq!(report.handled, 6, "{report}");
    overlap.in_flight.lock().unwrap().1
}

on_every_database! {
    async fn a_queue_with_two_workers_processes_two_chunks_at_once(t: TestApp) {
        assert_eq!(most_chunks_at_once(&t, None).await, 1, "one at a time by default");
        assert_eq!(most_chunks_at_once(&t, Some(2)).await, 2);
    }

    async fn a_failing_event_is_retried_then_sent_to_the_error_queue_with_its_reason(t: TestApp) {
        failing_events_are_retried_then_sent_to_the_error_queue(&t, false).await;
    }

    async fn a_failing_event_published_directly_is_retried_through_the_queue_then_sent_to_the_error_queue(t: TestApp) {
        failing_events_are_retried_then_sent_to_the_error_queue(&t, true).await;
    }

    async fn unreadable_messages_go_to_the_error_queue_with_the_reason(t: TestApp) {
        let flaky = Flaky { fail: HashSet::new(), panic: HashSet::new(), calls: Mutex::default() };
        let worker = worker(&t, Arc::new(flaky), 0).await;
        let stranger = EventQueueMessage::batch(
            "nobody.Listener",
            CREATE,
            vec![EventEntityTransfer {
                id: Some(9),
                ..Default::default()
            }],
        );
        t.app
            .queue()
            .await
            .unwrap()
            .send("event", vec![b"{not json".to_vec(), stranger.encode()])
            .await
            .unwrap();
        worker.run(true, &Default::default()).await.unwrap();

        let errors = drain_error_queue(&t).await;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("malformed event message body"),
            "{errors:#?}"
        );
        assert_eq!(errors[0]["body"], "{not json", "the original body is kept");
        assert!(
            errors[1]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("nobody.Listener"),
            "{errors:#?}"
        );
        assert_eq!(errors[1]["transfers"][0]["id"], 9, "the events are kept");
    }

    async fn outbox_rows_in_the_original_form_are_read_and_those_that_are_no_event_go_to_the_error_queue(t: TestApp) {
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello')");
        t.work().await;
        // Storage goes stale behind pubsync's back; only the event below brings it back.
        t.sql("UPDATE spy_hello_spryker_message_storage SET data = '{}'");
        // A row in the original's spelling (left by an older pubsync, or written by hand), and
        // two that are no event.
        t.sql(
            r#"INSERT INTO spy_event_behavior_entity_change (data) VALUES
            ('{"name":"spy_hello_spryker_message","id":1,"event":"Entity.spy_hello_spryker_message.update","foreignKeys":[],"modifiedColumns":["spy_hello_spryker_message.message"],"originalValues":[],"additionalValues":[]}'),
            ('["spy_hello_spryker_message","upsert",1]'),
            ('{not json')"#,
        );
        let report = t.work().await;
        assert_eq!(report.relayed, 3);
        assert_eq!(
            t.message_storage(),
            [("message:1".to_owned(), serde_json::json!({"name": "John", "message": "Hello"}))]
        );
        assert!(t.outbox().is_empty(), "every row leaves the outbox");
        let errors = drain_error_queue(&t).await;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        let reason = |error: &serde_json::Value| error["errorMessage"].as_str().unwrap().to_owned();
        assert!(reason(&errors[0]).contains("unknown action `upsert`"), "{errors:#?}");
        assert_eq!(errors[0]["data"], r#"["spy_hello_spryker_message","upsert",1]"#, "the row is kept");
        assert!(reason(&errors[1]).contains("is not an event"), "{errors:#?}");
        assert_eq!(errors[1]["data"], "{not json");
    }

    async fn task_with_keep_leaves_the_messages_in_the_queue(t: TestApp) {
        let flaky = Arc::new(Flaky {
            fail: HashSet::new(),
            panic: HashSet::new(),
            calls: Mutex::default(),
        });
        let worker = worker(&t, flaky.clone(), 0).await;
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('1'), ('2')");
        let outcome = worker.run_task("event", true).await.unwrap();
        assert_eq!(outcome.handled, 2);
        assert_eq!(
            t.app.queue().await.unwrap().depth("event").await.unwrap().ready,
            1,
            "one message carrying both events is kept"
        );
        let outcome = worker.run_task("event", false).await.unwrap();
        assert_eq!(outcome.handled, 2);
        assert!(t.app.queue().await.unwrap().depth("event").await.unwrap().is_empty());
        assert_eq!(flaky.calls.lock().unwrap().len(), 2);
    }
}
