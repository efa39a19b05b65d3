//! Error queues, for the operator: what failed and why ([`list`]), and sending it back once
//! the cause is fixed ([`replay`]).
//!
//! An error queue `<queue>.error` holds three shapes of message, each with its reason in
//! `errorMessage`:
//! - an event message a listener gave up on, in its own format: replayed as it is, without
//!   the reason and retry count, so it gets a full set of retries again;
//! - a message that could not be read, kept under `body` (text, or the JSON it was): replayed
//!   as that body;
//! - an outbox or sync-outbox row that was not a usable change, kept as its columns: not a
//!   message of the queue, so it is not replayed; `publish:trigger-events` or `sync:data`
//!   re-create what it should have been.
//!
//! Listing takes the messages and gives them back, so it changes nothing but their delivery
//! count. Replaying sends to the queue first and acknowledges after, so a crash in between
//! duplicates a message but never loses one.

use std::time::{Duration, SystemTime};

use pubsync_queue_extension::{Delivery, Queue, QueueError, Settlement, error_queue_name};
use pubsync_shared::message::EventQueueMessage;
use serde_json::Value;

/// How long a listing waits for the first message of an error queue.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);

/// Messages taken from an error queue at once.
const CHUNK: usize = 100;

/// One message of an error queue, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedMessage {
    /// Why it failed, when the message says (`errorMessage`).
    pub reason: Option<String>,
    /// How long it has been in the error queue, where the queue records it.
    pub age: Option<Duration>,
    /// The message as it is in the error queue.
    pub body: Vec<u8>,
    /// What replaying it sends.
    pub replay: Replay,
}

/// What replaying an error-queue message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Sends this body to the queue.
    Send(Vec<u8>),
    /// Leaves it in the error queue, for this reason.
    Keep(&'static str),
}

impl FailedMessage {
    /// Reads an error-queue message.
    pub fn read(delivery: &Delivery, now: SystemTime) -> Self {
        let (reason, replay) = inspect(&delivery.body);
        Self {
            reason,
            age: delivery
                .available_at
                .and_then(|at| now.duration_since(at).ok()),
            body: delivery.body.clone(),
            replay,
        }
    }
}

/// The reason an error-queue body gives and what replaying it sends.
pub fn inspect(body: &[u8]) -> (Option<String>, Replay) {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return (None, Replay::Send(body.to_vec()));
    };
    let reason = match fields.get("errorMessage") {
        Some(Value::String(reason)) => Some(reason.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    if reason.is_none() {
        return (None, Replay::Send(body.to_vec()));
    }
    if let Ok(mut message) = serde_json::from_slice::<EventQueueMessage>(body) {
        message.error_message = None;
        message.retry = 0;
        message.retry_message = None;
        return (reason, Replay::Send(message.encode()));
    }
    match fields.remove("body") {
        Some(Value::String(text)) => (reason, Replay::Send(text.into_bytes())),
        Some(value) => (reason, Replay::Send(value.to_string().into_bytes())),
        None if fields.contains_key("storageTable") => (
            reason,
            Replay::Keep(
                "a sync outbox row, not a message: `pubsync sync:data` re-sends its resource",
            ),
        ),
        None => (
            reason,
            Replay::Keep(
                "an outbox row, not a message: `pubsync publish:trigger-events` re-publishes its resource",
            ),
        ),
    }
}

/// The error queue of `queue`: `queue` itself when it already ends in `.error`.
pub fn error_queue_of(queue: &str) -> (String, String) {
    match queue.strip_suffix(".error") {
        Some(main) => (main.to_owned(), queue.to_owned()),
        None => (queue.to_owned(), error_queue_name(queue)),
    }
}

/// Up to `limit` messages of `queue`'s error queue, oldest first, left where they are.
pub async fn list<Q: Queue>(
    queue: &Q,
    queue_name: &str,
    limit: usize,
) -> Result<Vec<FailedMessage>, QueueError> {
    let (_, error_queue) = error_queue_of(queue_name);
    let mut taken: Vec<Delivery> = Vec::new();
    let outcome = async {
        while taken.len() < limit {
            let chunk = queue
                .receive(&error_queue, (limit - taken.len()).min(CHUNK), RECEIVE_WAIT)
                .await?;
            if chunk.is_empty() {
                break;
            }
            taken.extend(chunk);
        }
        Ok::<_, QueueError>(())
    }
    .await;
    let now = SystemTime::now();
    let messages = taken
        .iter()
        .map(|delivery| FailedMessage::read(delivery, now))
        .collect();
    let settlement = Settlement {
        release: taken.iter().map(|delivery| delivery.tag).collect(),
        ..Settlement::default()
    };
    queue.settle(&error_queue, settlement).await?;
    outcome?;
    Ok(messages)
}

/// What [`replay`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages sent back to the queue.
    pub replayed: usize,
    /// Messages left in the error queue, with why.
    pub kept: Vec<(Option<String>, &'static str)>,
}

/// Sends up to `limit` messages (all, without one) of `queue`'s error queue back to
/// `queue`, oldest first; what cannot be replayed stays.
pub async fn replay<Q: Queue>(
    queue: &Q,
    queue_name: &str,
    limit: Option<usize>,
) -> Result<ReplayReport, QueueError> {
    let (main, error_queue) = error_queue_of(queue_name);
    // At most what is there now: a message that fails again while this runs (a worker is
    // processing the queue) is not replayed twice.
    let present = usize::try_from(queue.depth(&error_queue).await?.ready).unwrap_or(usize::MAX);
    let limit = Some(limit.map_or(present, |limit| limit.min(present)));
    let mut report = ReplayReport::default();
    let mut kept = Vec::new();
    let mut done = 0;
    let outcome = async {
        while limit.is_none_or(|limit| done < limit) {
            let max = limit.map_or(CHUNK, |limit| (limit - done).min(CHUNK));
            let chunk = queue.receive(&error_queue, max, RECEIVE_WAIT).await?;
            if chunk.is_empty() {
                break;
            }
            done += chunk.len();
            let mut bodies = Vec::new();
            let mut acknowledge = Vec::new();
            for delivery in chunk {
                match inspect(&delivery.body) {
                    (_, Replay::Send(body)) => {
                        bodies.push(body);
                        acknowledge.push(delivery.tag);
                    }
                    (reason, Replay::Keep(why)) => {
                        report.kept.push((reason, why));
                        kept.push(delivery.tag);
                    }
                }
            }
            let count = bodies.len();
            queue
                .send(&main, bodies)
                .await
                .map_err(|error| error.source)?;
            queue
                .settle(
                    &error_queue,
                    Settlement {
                        acknowledge,
                        ..Settlement::default()
                    },
                )
                .await?;
            report.replayed += count;
        }
        Ok::<_, QueueError>(())
    }
    .await;
    // What stays is given back only at the end, so one run does not take it twice.
    queue
        .settle(
            &error_queue,
            Settlement {
                release: kept,
                ..Settlement::default()
            },
        )
        .await?;
    outcome?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use pubsync_shared::event::EventEntityTransfer;
    use pubsync_shared::message::ErrorQueueMessage;

    use super::*;

    #[test]
    fn a_failed_event_message_is_replayed_without_its_reason_and_retries() {
        let mut message = EventQueueMessage::batch(
            "Hello",
            "Entity.spy_hello_spryker_message.update",
            vec![EventEntityTransfer::default()],
        );
        message.retry = 3;
        message.error_message = Some("the listener failed".to_owned());
        let (reason, replay) = inspect(&message.encode());
        assert_eq!(reason.as_deref(), Some("the listener failed"));
        message.retry = 0;
        message.error_message = None;
        assert_eq!(replay, Replay::Send(message.encode()));
    }

    #[test]
    fn an_unreadable_message_is_replayed_as_it_came() {
        let body = ErrorQueueMessage::new("not JSON")
            .with("body", "not a message")
            .encode();
        assert_eq!(
            inspect(&body),
            (
                Some("not JSON".to_owned()),
                Replay::Send(b"not a message".to_vec())
            )
        );
        let json = ErrorQueueMessage::new("unknown resource")
            .with("body", serde_json::json!({"write": {"key": "x"}}))
            .encode();
        assert_eq!(
            inspect(&json).1,
            Replay::Send(br#"{"write":{"key":"x"}}"#.to_vec())
        );
    }

    #[test]
    fn outbox_rows_stay_in_the_error_queue() {
        let sync_row = ErrorQueueMessage::new("no linked module")
            .with("storageTable", "x")
            .with("key", "k")
            .encode();
        assert!(matches!(inspect(&sync_row).1, Replay::Keep(why) if why.contains("sync:data")));
        let outbox_row = ErrorQueueMessage::new("outbox row 7 is not an event")
            .with("data", "[]")
            .encode();
        assert!(
            matches!(inspect(&outbox_row).1, Replay::Keep(why) if why.contains("trigger-events"))
        );
    }

    #[test]
    fn a_body_without_a_reason_is_replayed_untouched() {
        assert_eq!(
            inspect(b"\xff raw"),
            (None, Replay::Send(b"\xff raw".to_vec()))
        );
        assert_eq!(
            error_queue_of("event.error"),
            ("event".to_owned(), "event.error".to_owned())
        );
        assert_eq!(
            error_queue_of("event"),
            ("event".to_owned(), "event.error".to_owned())
        );
    }
}
