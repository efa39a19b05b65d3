//! A durable queue kept in the application database: the queue of the embedded default, where
//! pubsync runs on one database and no broker.
//!
//! [`DatabaseQueue`] implements the [`Queue`] contract over one table,
//! `pubsync_queue_message`, with one row per message. A consumer takes rows with a *lease*
//! (`lease_owner`, `lease_until`); a row whose lease runs out before it is settled is delivered
//! again, so a worker that dies loses nothing.
//!
//! This crate does not create the table (`pubsync setup` applies the generated migrations from
//! `schema/pubsync_queue.schema.xml`), does not decode bodies, and does not extend leases: a
//! chunk must be settled within the lease or it is delivered to another consumer as well.
//!
//! It runs on SQLite, PostgreSQL and MySQL/MariaDB. The statements are built in one place
//! (the private `Statements`), from [`Dialect`]'s placeholders and quoting; the
//! database-specific parts (how rows are taken, bind-parameter limits) are marked there, and
//! lists of message ids are bound as `pubsync_database::bind_list` binds them.
//!
//! [`Queue`]: pubsync_queue_extension::Queue
//! [`Dialect`]: pubsync_database::Dialect
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod error;
mod queue;
mod rows;
mod statements;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::DatabaseQueueError;
pub use queue::{DatabaseQueue, DatabaseQueueOptions};

use pubsync_database::names::queue_message;

/// The table that holds the messages.
pub const TABLE: &str = queue_message::TABLE;

/// The longest queue name the table holds (`queue_name VARCHAR(255)`), in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 255;
