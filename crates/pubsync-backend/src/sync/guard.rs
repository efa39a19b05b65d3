//! What a sync message must be before the sync consumer applies it to the key-value store.
//!
//! The sync queue is an interface: anything that can reach the broker can put a message on it.
//! The guard checks each message against the storage tables of the linked modules and against
//! this worker's clock, and what fails goes to the queue's error queue with the reason:
//!
//! - The **resource** must be one a linked module synchronizes, and the key must belong to it
//!   (start with `<resource>:`, or be the resource itself for one-key tables). A message
//!   without `resource` is read as the original sends some of them: the resource is the key's
//!   first part.
//! - A **`_timestamp`** (seconds) more than the allowed clock skew ahead of this worker's clock
//!   is refused: applied, it would make the key ignore every later change.
//! - A **delete without `_timestamp`** is refused: it would remove the key however new the
//!   value stored there is. A **write without `_timestamp`** is stamped with the time this
//!   worker reads it, each message of a chunk one microsecond after the one before: the last
//!   one read wins, as every write wins in the original.
//! - A **value** larger than the payload limit (with room for its `_timestamp`) is refused:
//!   no publisher could have sent it, since the storage table writer refuses such data.

use std::collections::BTreeSet;
use std::time::Duration;

use pubsync_shared::key::resource_of;
use pubsync_shared::message::{SyncMessage, TIMESTAMP_FIELD};
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_shared::version::Version;
use pubsync_storage_extension::StorageChange;

/// The default of how far ahead of the worker's clock a `_timestamp` may be.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Checks sync messages and turns them into storage changes.
#[derive(Debug, Clone)]
pub struct SyncGuard {
    resources: BTreeSet<&'static str>,
    max_clock_skew: Duration,
    max_value_bytes: Option<usize>,
}

/// Room a value may take beyond the payload limit: the storage row's data is within it, the
/// sync message's value adds its `_timestamp`.
const TIMESTAMP_ROOM: usize = 64;

impl SyncGuard {
    /// A guard for the storage tables of `definitions`, refusing `_timestamp`s more than
    /// `max_clock_skew` ahead.
    pub fn new(
        definitions: impl IntoIterator<Item = &'static SynchronizationDefinition>,
        max_clock_skew: Duration,
    ) -> Self {
        Self {
            resources: definitions.into_iter().map(|d| d.resource).collect(),
            max_clock_skew,
            max_value_bytes: None,
        }
    }

    /// The guard refusing writes whose value is longer than `limit` bytes of JSON (and room
    /// for a `_timestamp`); `None` refuses none.
    pub fn with_max_value_bytes(mut self, limit: Option<usize>) -> Self {
        self.max_value_bytes = limit;
        self
    }

    /// A stamp for the unversioned writes of a chunk read now.
    pub fn stamp(&self) -> Stamp {
        Stamp(Version::now())
    }

    /// The change `message` asks for, or why it may not be applied.
    pub fn check(&self, message: &SyncMessage, stamp: &mut Stamp) -> Result<StorageChange, String> {
        let payload = message.payload();
        let key = &payload.key;
        let resource = if payload.resource.is_empty() {
            resource_of(key)
        } else {
            payload.resource.as_str()
        };
        if !self.resources.contains(resource) {
            let known: Vec<&str> = self.resources.iter().copied().collect();
            return Err(format!(
                "unknown resource {resource:?} of key {key:?} (the linked modules synchronize: {})",
                known.join(", ")
            ));
        }
        if resource_of(key) != resource {
            return Err(format!(
                "key {key:?} does not belong to resource {resource:?} (its keys start with \"{resource}:\")"
            ));
        }
        let version = match payload.value.get(TIMESTAMP_FIELD) {
            None => None,
            Some(timestamp) => match message.version() {
                Some(version) => Some(version),
                None => {
                    return Err(format!(
                        "{TIMESTAMP_FIELD} of key {key:?} is {timestamp}, not a number of seconds"
                    ));
                }
            },
        };
        if let Some(version) = version {
            let limit = stamp.0.as_micros() + self.max_clock_skew.as_micros() as i64;
            if version.as_micros() > limit {
                return Err(format!(
                    "{TIMESTAMP_FIELD} of key {key:?} is {} s ahead of this worker's clock, more than the {} s allowed: applied, it would hide every later change of the key",
                    (version.as_micros() - stamp.0.as_micros()) / 1_000_000,
                    self.max_clock_skew.as_secs()
                ));
            }
        }
        match message {
            SyncMessage::Write(payload) => {
                let value = serde_json::to_string(&payload.value).expect("json serialises");
                if let Some(limit) = self.max_value_bytes
                    && value.len() > limit + TIMESTAMP_ROOM
                {
                    return Err(format!(
                        "the value of key {key:?} is {} bytes of JSON, more than the {limit} allowed ([sync] max_payload_bytes)",
                        value.len()
                    ));
                }
                Ok(StorageChange::Write {
                    key: key.clone(),
                    value,
                    version: version.unwrap_or_else(|| stamp.next()),
                })
            }
            SyncMessage::Delete(_) => match version {
                Some(version) => Ok(StorageChange::Delete {
                    key: key.clone(),
                    version,
                }),
                None => Err(format!(
                    "delete of key {key:?} without {TIMESTAMP_FIELD}: it would remove the key whatever its age"
                )),
            },
        }
    }
}

/// The versions given to the unversioned writes of one chunk, strictly increasing.
#[derive(Debug)]
pub struct Stamp(Version);

impl Stamp {
    fn next(&mut self) -> Version {
        let version = self.0;
        self.0 = version.next();
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubsync_shared::message::SyncPayload;
    use serde_json::{Value, json};

    static MESSAGE: SynchronizationDefinition =
        SynchronizationDefinition::new("spy_message_storage", "message", "message");

    fn guard() -> SyncGuard {
        SyncGuard::new([&MESSAGE], Duration::from_secs(60))
    }

    fn payload(key: &str, resource: &str, value: Value) -> SyncPayload {
        let Value::Object(value) = value else {
            unreachable!()
        };
        SyncPayload {
            key: key.into(),
            value,
            resource: resource.into(),
            store: None,
            params: None,
        }
    }

    fn now_seconds() -> f64 {
        Version::now().as_seconds()
    }

    #[test]
    fn a_message_of_a_known_resource_is_applied_and_without_resource_it_comes_from_the_key() {
        let guard = guard();
        let mut stamp = guard.stamp();
        let t = now_seconds();
        for resource in ["message", ""] {
            let message =
                SyncMessage::Write(payload("message:1", resource, json!({"_timestamp": t})));
            assert!(matches!(
                guard.check(&message, &mut stamp),
                Ok(StorageChange::Write { .. })
            ));
        }
    }

    #[test]
    fn a_value_over_the_payload_limit_is_refused_and_one_within_it_applied() {
        let guard = guard().with_max_value_bytes(Some(1024));
        let mut stamp = guard.stamp();
        let t = now_seconds();
        let within = json!({"message": "x".repeat(1000), "_timestamp": t});
        let message = SyncMessage::Write(payload("message:1", "message", within));
        assert!(guard.check(&message, &mut stamp).is_ok());
        let over = json!({"message": "x".repeat(1200), "_timestamp": t});
        let message = SyncMessage::Write(payload("message:1", "message", over));
        let reason = guard.check(&message, &mut stamp).unwrap_err();
        assert!(
            reason.contains("max_payload_bytes") && reason.contains("message:1"),
            "{reason}"
        );
    }

    #[test]
    fn unknown_resources_and_keys_outside_their_resource_are_refused() {
        let guard = guard();
        let mut stamp = guard.stamp();
        let t = now_seconds();
        let unknown = SyncMessage::Write(payload("price:1", "price", json!({"_timestamp": t})));
        let error = guard.check(&unknown, &mut stamp).unwrap_err();
        assert!(
            error.contains("unknown resource \"price\"") && error.contains("message"),
            "{error}"
        );
        let outside = SyncMessage::Write(payload("price:1", "message", json!({"_timestamp": t})));
        let error = guard.check(&outside, &mut stamp).unwrap_err();
        assert!(
            error.contains("does not belong to resource \"message\""),
            "{error}"
        );
    }

    #[test]
    fn a_timestamp_far_ahead_or_not_a_number_is_refused() {
        let guard = guard();
        let mut stamp = guard.stamp();
        let ahead = SyncMessage::Write(payload(
            "message:1",
            "message",
            json!({"_timestamp": now_seconds() + 3600.0}),
        ));
        let error = guard.check(&ahead, &mut stamp).unwrap_err();
        assert!(error.contains("ahead of this worker's clock"), "{error}");
        let close = SyncMessage::Write(payload(
            "message:1",
            "message",
            json!({"_timestamp": now_seconds() + 30.0}),
        ));
        assert!(guard.check(&close, &mut stamp).is_ok(), "within the skew");
        let text = SyncMessage::Delete(payload(
            "message:1",
            "message",
            json!({"_timestamp": "soon"}),
        ));
        let error = guard.check(&text, &mut stamp).unwrap_err();
        assert!(error.contains("not a number of seconds"), "{error}");
    }

    #[test]
    fn a_delete_without_timestamp_is_refused_and_unversioned_writes_are_ordered_as_read() {
        let guard = guard();
        let mut stamp = guard.stamp();
        let delete = SyncMessage::Delete(payload("message:1", "message", json!({})));
        let error = guard.check(&delete, &mut stamp).unwrap_err();
        assert!(error.contains("without _timestamp"), "{error}");
        let versions: Vec<Version> = ["first", "second"]
            .iter()
            .map(|name| {
                let message =
                    SyncMessage::Write(payload("message:1", "message", json!({ "name": name })));
                match guard.check(&message, &mut stamp).unwrap() {
                    StorageChange::Write { version, .. } => version,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert!(versions[0] < versions[1], "{versions:?}");
    }
}
