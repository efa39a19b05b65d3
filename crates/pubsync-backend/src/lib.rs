//! The backend layer of pubsync (Spryker's "Zed"): everything between a captured change and a
//! key in the key-value store.
//!
//! - [`module`]: what a module crate hands the application ([`Module`]), and the
//!   application's modules combined ([`Modules`]).
//! - [`listener`]: modules register publishers for event names ([`EventCollection`]).
//! - [`adopt`]: checks, creates and captures the shop's tables that modules read and watch.
//! - [`outbox`] (private): reading and emptying the two outboxes, the same way for both.
//! - [`relay`]: moves the outbox (filled by the capture triggers) to the event queues, many
//!   events per message, or hands its events to the listeners directly.
//! - [`consumer`]: handles a chunk of event messages: collapses repeats, calls each listener in
//!   bulk, falls back to item by item, retries, and sends what keeps failing to `<queue>.error`.
//! - [`storage_table_writer`]: upserts and deletes storage-table rows, building keys with the
//!   key builder and leaving rows whose data did not change untouched.
//! - [`sync`]: the sync outbox (filled by the storage tables' triggers) to the key-value store,
//!   through the sync queues or directly.
//! - [`queue_policy`]: per-queue chunk size, concurrency and retries.
//! - [`metrics`]: what the backend counts and times, through the `metrics` facade.
//! - [`status`]: outbox backlogs and queue depths, for `status` and the metrics.
//! - [`worker`]: the loop behind `queue:worker:start` and `queue:task:start`.
//! - [`backfill`]: `publish:trigger-events`, `sync:data` and `verify`, over whole tables.
//!
//! The backend knows no concrete queue or storage: it is generic over the queue and key-value
//! contracts, and writes storage tables through [`pubsync_database`].
#![warn(unreachable_pub)]

pub mod adopt;
pub mod backfill;
pub mod consumer;
pub mod error_queue;
pub mod listener;
pub mod metrics;
pub mod module;
mod outbox;
pub mod queue_policy;
pub mod relay;
pub mod status;
pub mod storage_table_writer;
pub mod sync;
pub mod worker;

pub use consumer::{ConsumerConfig, EventConsumer};
pub use listener::{EventCollection, HandlerError, PublishContext, Publisher};
pub use module::{Module, Modules};
pub use queue_policy::{QueuePolicies, QueuePolicy};
pub use relay::{OutboxRelay, RelayConfig};
pub use storage_table_writer::{Publication, StorageRow, StorageTableWriter};
pub use worker::{Worker, WorkerConfig, WorkerReport};

/// The default event queue, as in the original.
pub const DEFAULT_EVENT_QUEUE: &str = "event";
