//! The backend layer of pubsync (Spryker's "Zed"): everything between a captured change and a
//! storage row.
//!
//! - [`listener`]: modules register publishers for event names ([`EventCollection`]).
//! - [`relay`]: moves the outbox (`spy_event_behavior_entity_change`, filled by the capture
//!   triggers) to the event queues, many events per message.
//! - [`consumer`]: handles a chunk of event messages: collapses repeats, calls each listener in
//!   bulk, falls back to item by item, retries, and sends what keeps failing to `<queue>.error`.
//! - [`storage_writer`]: upserts and deletes storage-table rows, building keys with the key
//!   builder and leaving rows whose data did not change untouched.
//! - [`worker`]: the loop behind `queue:worker:start` and `queue:task:start`.
//!
//! The backend knows no concrete queue or storage: it is generic over the queue contract and
//! writes storage tables through [`pubsync_database`].

pub mod consumer;
pub mod listener;
pub mod relay;
pub mod storage_writer;
pub mod sync;
pub mod worker;

pub use consumer::{ConsumerConfig, EventConsumer};
pub use listener::{EventCollection, HandlerError, PublishContext, Publisher};
pub use relay::{OutboxRelay, RelayConfig};
pub use storage_writer::{StorageRow, StorageWriter};
pub use worker::{Worker, WorkerConfig, WorkerReport};

/// The default event queue, as in the original.
pub const DEFAULT_EVENT_QUEUE: &str = "event";

/// The outbox table the capture triggers write.
pub const OUTBOX_TABLE: &str = "spy_event_behavior_entity_change";
