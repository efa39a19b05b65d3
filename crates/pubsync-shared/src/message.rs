//! Wire formats: the bodies of event queue and sync queue messages.
//!
//! Readers accept unknown fields, so formats can grow additively.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::EventEntityTransfer;
use crate::version::Version;

/// The field of a stored value (and of a sync message's `value`) that carries the change's
/// version, in seconds since the Unix epoch.
pub const TIMESTAMP_FIELD: &str = "_timestamp";

/// Why a message body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not the JSON this queue carries.
    #[error("malformed {kind} message body: {source}")]
    Malformed {
        /// Which kind of message was expected (`event`, `sync`).
        kind: &'static str,
        /// What the JSON parser said, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The body is JSON but misses what a message of this kind needs.
    #[error("invalid {kind} message body: {reason}")]
    Invalid {
        /// Which kind of message was expected.
        kind: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
}

/// An event queue message: events for one listener and one event name.
///
/// pubsync sends a batch of events in one message (`transfers`), because a broker carries
/// messages, not events, per second. The original's one-event format (`listenerClassName`,
/// `transferData`) is read as well, and written in compatibility mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventQueueMessage {
    /// The listener that handles these events, as registered.
    #[serde(alias = "listenerClassName")]
    pub listener_name: String,
    /// The event all transfers are instances of.
    pub event_name: String,
    /// The events of a batch message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<EventEntityTransfer>,
    /// The one event of an original-format message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_data: Option<EventEntityTransfer>,
    /// Kept from original-format messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_class_name: Option<String>,
    /// How often handling these events has been retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
    /// Why the last attempt failed, while retries remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_message: Option<String>,
    /// Why the events were given up on, in the error queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl EventQueueMessage {
    /// A batch message carrying `transfers`.
    pub fn batch(
        listener_name: &str,
        event_name: &str,
        transfers: Vec<EventEntityTransfer>,
    ) -> Self {
        Self {
            listener_name: listener_name.to_owned(),
            event_name: event_name.to_owned(),
            transfers,
            transfer_data: None,
            transfer_class_name: None,
            retry: 0,
            retry_message: None,
            error_message: None,
        }
    }

    /// A message in the original's one-event format.
    pub fn spryker_compatible(
        listener_name: &str,
        event_name: &str,
        transfer: EventEntityTransfer,
    ) -> Self {
        Self {
            transfer_data: Some(transfer),
            transfer_class_name: Some(
                "Generated\\Shared\\Transfer\\EventEntityTransfer".to_owned(),
            ),
            ..Self::batch(listener_name, event_name, Vec::new())
        }
    }

    /// Reads a body of either format.
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        let message: Self =
            serde_json::from_slice(body).map_err(|source| MessageError::Malformed {
                kind: "event",
                source,
            })?;
        if message.listener_name.is_empty() {
            return Err(MessageError::Invalid {
                kind: "event",
                reason: "listener name is empty".into(),
            });
        }
        if message.transfers.is_empty() && message.transfer_data.is_none() {
            return Err(MessageError::Invalid {
                kind: "event",
                reason: "no transfers".into(),
            });
        }
        Ok(message)
    }

    /// The body of this message.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event message always serialises")
    }

    /// All events of the message, whichever format it came in.
    pub fn into_transfers(self) -> Vec<EventEntityTransfer> {
        let mut transfers = self.transfers;
        transfers.extend(self.transfer_data);
        transfers
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A message of an error queue (`<queue>.error`) for what could not be processed: the reason
/// (`errorMessage`) beside what failed, kept as it came (the message `body`, or the columns of
/// an outbox row), so that nothing is lost and it can be looked at or replayed.
///
/// Event messages that fail in a listener go to the error queue in their own format instead,
/// with their `errorMessage` set ([`EventQueueMessage::error_message`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorQueueMessage {
    /// Why it could not be processed.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
    /// What could not be processed, by field name, in the order added.
    #[serde(flatten)]
    pub subject: Map<String, Value>,
}

impl ErrorQueueMessage {
    /// A message saying `reason`, with nothing beside it yet.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            error_message: reason.into(),
            subject: Map::new(),
        }
    }

    /// Adds `field` with `value`.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.subject.insert(field.to_owned(), value.into());
        self
    }

    /// Adds `field` with `bytes` as text when they are UTF-8, and otherwise, since JSON holds
    /// no other text, as `<field>Hex`: the bytes exactly, two lowercase hex digits each.
    pub fn with_bytes(self, field: &str, bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.with(field, text),
            Err(_) => self.with(&format!("{field}Hex"), hex(bytes)),
        }
    }

    /// The body of this message.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an error queue message always serialises")
    }
}

/// Whether `value` is an object holding exactly a `write` and a `delete`.
fn is_write_and_delete(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.len() == 2 && object.contains_key("write") && object.contains_key("delete")
    })
}

/// `{"write":…,"delete":…}` as the two messages `{"write":…}` and `{"delete":…}`; anything
/// else as it is.
fn split_write_and_delete(value: Value) -> Vec<Value> {
    if !is_write_and_delete(&value) {
        return vec![value];
    }
    let Value::Object(mut object) = value else {
        unreachable!("checked to be an object")
    };
    ["write", "delete"]
        .into_iter()
        .filter_map(|operation| {
            let payload = object.remove(operation)?;
            Some(serde_json::json!({ operation: payload }))
        })
        .collect()
}

/// `bytes` as lowercase hexadecimal digits, two per byte.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// A sync queue message in the original's format: `{"write":{…}}` or `{"delete":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMessage {
    /// Store `value` under `key`.
    Write(SyncPayload),
    /// Remove `key`.
    Delete(SyncPayload),
}

/// The body of a write or delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPayload {
    /// The storage key (without `kv:`).
    pub key: String,
    /// The data, with `_timestamp` added; for a delete only `_timestamp`.
    pub value: Map<String, Value>,
    /// The resource the key belongs to; empty when the message did not say (the original
    /// leaves it out of some messages), and then the key's first part is meant.
    #[serde(default)]
    pub resource: String,
    /// The raw store, `""` for store-less tables; absent on mapping messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The table's `params`, `[]` when it has none; absent on mapping messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl SyncMessage {
    /// The payload, whichever the operation.
    pub fn payload(&self) -> &SyncPayload {
        match self {
            Self::Write(payload) | Self::Delete(payload) => payload,
        }
    }

    /// The version of the change: the value's `_timestamp` (seconds), which a stale-write
    /// check compares. `None` when there is none, or it is not a number of the versions' range.
    pub fn version(&self) -> Option<Version> {
        self.payload()
            .value
            .get(TIMESTAMP_FIELD)
            .and_then(Value::as_f64)
            .and_then(Version::from_seconds)
    }

    /// Reads a body.
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        serde_json::from_slice(body).map_err(|source| MessageError::Malformed {
            kind: "sync",
            source,
        })
    }

    /// The body of this message.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a sync message always serialises")
    }

    /// Reads a body carrying one message (the original's format) or a JSON array of them
    /// (pubsync's batch format, many changes per queue message). A body holding both a
    /// `write` and a `delete` is read as the write and then the delete, as the original
    /// reads it.
    pub fn decode_batch(body: &[u8]) -> Result<Vec<Self>, MessageError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<SyncMessage>),
            One(SyncMessage),
        }
        let mut value: Value =
            serde_json::from_slice(body).map_err(|source| MessageError::Malformed {
                kind: "sync",
                source,
            })?;
        // The original reads a body's `write` and then its `delete`, when it holds both.
        if let Value::Array(messages) = &mut value {
            *messages = std::mem::take(messages)
                .into_iter()
                .flat_map(split_write_and_delete)
                .collect();
        } else if is_write_and_delete(&value) {
            value = Value::Array(split_write_and_delete(value));
        }
        match serde_json::from_value::<OneOrMany>(value) {
            Ok(OneOrMany::Many(messages)) => Ok(messages),
            Ok(OneOrMany::One(message)) => Ok(vec![message]),
            Err(_) => Err(MessageError::Invalid {
                kind: "sync",
                reason: "expected {\"write\":{…}}, {\"delete\":{…}} or an array of them, each with key, value and resource"
                    .into(),
            }),
        }
    }

    /// The body of a batch of messages.
    pub fn encode_batch(messages: &[SyncMessage]) -> Vec<u8> {
        serde_json::to_vec(messages).expect("sync messages always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_original_event_message_of_the_tutorial() {
        let body = br#"{
          "listenerClassName":"Spryker\\Zed\\HelloSpryker\\Communication\\Plugin\\Event\\Listener\\HelloSprykerMessageStorageListener",
          "transferClassName":"Generated\\Shared\\Transfer\\EventEntityTransfer",
          "transferData":{"event":"Entity.spy_hello_spryker_message.create","name":"spy_hello_spryker_message","id":1,
            "foreign_keys":[],"modified_columns":["spy_hello_spryker_message.name","spy_hello_spryker_message.message"]},
          "eventName":"Entity.spy_hello_spryker_message.create"}"#;
        let message = EventQueueMessage::decode(body).unwrap();
        assert!(
            message
                .listener_name
                .ends_with("HelloSprykerMessageStorageListener")
        );
        let transfers = message.into_transfers();
        assert_eq!(transfers.len(), 1);
        assert_eq!(transfers[0].id, Some(1));
        assert_eq!(transfers[0].modified_columns.len(), 2);
    }

    #[test]
    fn error_messages_keep_bytes_that_are_not_text_exactly() {
        let message = ErrorQueueMessage::new("bad")
            .with_bytes("data", b"{\"a\":1}")
            .with_bytes("key", &[b'k', 0xff, 0x00]);
        assert_eq!(message.subject["data"], "{\"a\":1}");
        assert_eq!(message.subject["keyHex"], "6bff00");
        assert!(!message.subject.contains_key("key"));
    }

    #[test]
    fn a_body_with_a_write_and_a_delete_is_the_write_then_the_delete() {
        let body = br#"{"delete":{"key":"m:2","value":{"_timestamp":2}},"write":{"key":"m:1","value":{"_timestamp":1}}}"#;
        let messages = SyncMessage::decode_batch(body).unwrap();
        assert!(
            matches!(&messages[..], [SyncMessage::Write(w), SyncMessage::Delete(d)] if w.key == "m:1" && d.key == "m:2"),
            "{messages:?}"
        );
        let in_batch = format!("[{}]", std::str::from_utf8(body).unwrap());
        assert_eq!(
            SyncMessage::decode_batch(in_batch.as_bytes()).unwrap(),
            messages
        );
        // A third field is no such body.
        let three =
            br#"{"write":{"key":"m:1","value":{}},"delete":{"key":"m:2","value":{}},"x":1}"#;
        assert!(SyncMessage::decode_batch(three).is_err());
    }

    #[test]
    fn batch_messages_round_trip() {
        let transfer = EventEntityTransfer {
            id: Some(5),
            name: "t".into(),
            ..Default::default()
        };
        let mut message =
            EventQueueMessage::batch("hello", "Entity.t.update", vec![transfer.clone(); 3]);
        message.retry = 2;
        let decoded = EventQueueMessage::decode(&message.encode()).unwrap();
        assert_eq!(decoded, message);
    }

    #[test]
    fn malformed_and_empty_event_bodies_say_why() {
        let err = EventQueueMessage::decode(b"{not json").unwrap_err();
        assert!(
            err.to_string().contains("malformed event message body"),
            "{err}"
        );
        assert!(err.to_string().contains("line 1"), "{err}");
        let err =
            EventQueueMessage::decode(br#"{"listenerName":"x","eventName":"e"}"#).unwrap_err();
        assert_eq!(err.to_string(), "invalid event message body: no transfers");
    }

    #[test]
    fn error_queue_messages_keep_the_reason_first_and_the_subject_in_order() {
        let body = ErrorQueueMessage::new("outbox row 7 is not an event: no event name")
            .with("outboxId", 7)
            .with("data", "[\"t\"]")
            .encode();
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"errorMessage":"outbox row 7 is not an event: no event name","outboxId":7,"data":"[\"t\"]"}"#
        );
        let read: ErrorQueueMessage = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            read.error_message,
            "outbox row 7 is not an event: no event name"
        );
        assert_eq!(read.subject["outboxId"], 7);
    }

    #[test]
    fn sync_messages_have_the_reference_shape() {
        let write = SyncMessage::Write(SyncPayload {
            key: "message:2".into(),
            value: json!({"name":"John","_timestamp":1599741494.25})
                .as_object()
                .unwrap()
                .clone(),
            resource: "message".into(),
            store: Some(String::new()),
            params: Some(json!([])),
        });
        let body: Value = serde_json::from_slice(&write.encode()).unwrap();
        assert_eq!(
            body,
            json!({"write":{"key":"message:2","value":{"name":"John","_timestamp":1599741494.25},
                   "resource":"message","store":"","params":[]}})
        );
        assert_eq!(
            SyncMessage::decode(&write.encode()).unwrap().version(),
            Some(Version::from_micros(1_599_741_494_250_000))
        );
        let mapping =
            br#"{"delete":{"key":"p:sku:1","value":{"id":1,"_timestamp":2.5},"resource":"p"}}"#;
        let message = SyncMessage::decode(mapping).unwrap();
        assert!(
            matches!(message, SyncMessage::Delete(ref p) if p.store.is_none() && p.params.is_none())
        );
    }
}
