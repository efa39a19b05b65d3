//! The queue contract on RabbitMQ, with [amqprs]: [`RabbitQueue`].
//!
//! # Topology
//! For every declared queue `q` (following the original's RabbitMQ adapter):
//! - a durable direct exchange `q`, through which every message of `q` is published;
//! - the durable queue `q`, bound with the routing key `""`;
//! - the durable error queue `q.error`, bound with `error`;
//! - retry queues `q.retry.<ms>`, bound with `retry.<ms>`, declared when a retry first needs
//!   them: messages wait there for `x-message-ttl` = `<ms>` and are then dead-lettered to the
//!   exchange `q` with the routing key `""`, back into `q`. Delays are rounded up to the ladder
//!   125 ms × 2^n ([`retry_delay_rung`]; the backend's 1 s × 2^n fall exactly on it), so a
//!   queue has at most 21 retry queues and every message of one retry queue has the same TTL
//!   (a queue only expires messages at its head).
//!
//! With [`RabbitQueueOptions::quorum`] all of them are quorum queues (`x-queue-type: quorum`)
//! for clusters, and the retry queues dead-letter at least once (`x-dead-letter-strategy`,
//! RabbitMQ 3.10+). Switching an existing queue between classic and quorum fails its
//! declaration (RabbitMQ refuses different arguments): delete the queues first.
//!
//! # Guarantees
//! - Every message is persistent (delivery mode 2) and published `mandatory` on a channel in
//!   confirm mode; `send` and `settle` return only when the broker confirmed every message (a
//!   nack, an unroutable message, a closed channel or [`RabbitQueueOptions::confirm_timeout`]
//!   fail the call, and a failed `send` hands every body back).
//! - `settle` publishes retries and errors (confirmed) first and acknowledges afterwards: a
//!   crash in between duplicates a message, never loses one.
//! - Consumers acknowledge manually; what a consumer received and did not settle is delivered
//!   again when its channel or connection closes (a killed worker loses nothing).
//! - amqprs does not reconnect; this crate does. A background task watches the connection and,
//!   when it drops (a broker restart, a network failure), reconnects with backoff, declares
//!   again what was declared, and consumers are re-created on the next `receive`. Meanwhile
//!   every operation fails with [`QueueError::Unavailable`], which the backend's worker retries.
//!
//! - `amqps://` connects with TLS (rustls on the ring provider), trusting the compiled-in
//!   Mozilla roots or the URL's `cacertfile`, with an optional client certificate
//!   (`certfile`, `keyfile`): see [`AmqpAddress`].
//!
//! # Not done here
//! No management API, no queue pools fanning out to several brokers, no
//! bodies decoded. `depth` cannot see other consumers' unacknowledged messages (AMQP does not
//! report them); see [`RabbitQueue`].
//!
//! Dropping a [`RabbitQueue`] closes its connection (amqprs spawns the close, so drop it inside
//! the Tokio runtime).
//!
//! [amqprs]: https://docs.rs/amqprs
//! [`QueueError::Unavailable`]: pubsync_queue_extension::QueueError::Unavailable
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod address;
mod channel;
mod config;
mod connection;
mod declare;
mod error;
mod queue;
mod rabbit_queue;
mod tls;
mod topology;

pub use address::{AmqpAddress, TlsSettings};
pub use config::RabbitQueueOptions;
pub use error::RabbitQueueError;
pub use rabbit_queue::RabbitQueue;
pub use topology::{MAX_QUEUE_NAME_BYTES, retry_delay_rung, retry_queue_name};
