//! What can go wrong in this crate, and how it reaches callers of the queue contract: as
//! [`QueueError::Unavailable`] when the connection is the problem (the instance reconnects),
//! as [`QueueError::Operation`] otherwise.

use std::time::Duration;

use pubsync_queue_extension::QueueError;

use crate::rabbit_queue::Inner;

/// What can go wrong in this crate; found as the `source` of a [`QueueError`], or returned by
/// [`AmqpAddress::parse`].
///
/// [`AmqpAddress::parse`]: crate::AmqpAddress::parse
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitQueueError {
    /// The AMQP URL cannot be used.
    #[error("invalid AMQP URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings of an `amqps://` URL cannot be used (a certificate file that is
    /// missing or holds no certificate).
    #[error("TLS settings of the AMQP URL: {0}")]
    Tls(String),
    /// The settings cannot be used.
    #[error("invalid RabbitMQ queue options: {0}")]
    InvalidOptions(&'static str),
    /// The connection is closed; a background task is reconnecting.
    #[error("not connected to the broker (reconnecting)")]
    Disconnected,
    /// The broker did not answer in time.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// How long it waited.
        timeout: Duration,
    },
    /// The broker closed the channel (for example 404 for a missing queue or exchange, 406 for
    /// a queue declared again with different arguments).
    #[error("the broker closed the channel: {code} {text}")]
    ChannelClosed {
        /// AMQP reply code.
        code: u16,
        /// The broker's reason.
        text: String,
    },
    /// The broker refused (nacked) messages.
    #[error("the broker nacked {count} message(s)")]
    Nacked {
        /// How many.
        count: usize,
    },
    /// Messages matched no queue (the queue was deleted, or never declared).
    #[error("{count} message(s) could not be routed to a queue; declare the queue first")]
    Unroutable {
        /// How many.
        count: usize,
    },
    /// Publisher confirms did not all arrive in time.
    #[error("{unconfirmed} message(s) not confirmed within {timeout:?}")]
    ConfirmTimeout {
        /// The confirm timeout.
        timeout: Duration,
        /// How many were still unconfirmed.
        unconfirmed: usize,
    },
    /// An error from amqprs.
    #[error("amqp: {0}")]
    Amqp(#[from] amqprs::error::Error),
}

impl RabbitQueueError {
    /// Whether the connection is the problem (trying again after reconnecting may succeed).
    pub fn is_connection_problem(&self) -> bool {
        match self {
            Self::Disconnected | Self::Timeout { .. } | Self::ConfirmTimeout { .. } => true,
            Self::Amqp(error) => matches!(
                error,
                amqprs::error::Error::NetworkError(_)
                    | amqprs::error::Error::ConnectionOpenError(_)
                    | amqprs::error::Error::ConnectionCloseError(_)
                    | amqprs::error::Error::InternalChannelError(_)
            ),
            // 320 CONNECTION_FORCED: the broker is shutting down.
            Self::ChannelClosed { code, .. } => *code == 320,
            _ => false,
        }
    }
}

impl Inner {
    pub(crate) fn unavailable(&self, error: RabbitQueueError) -> QueueError {
        QueueError::Unavailable {
            backend: format!("rabbitmq {}", self.address),
            source: Box::new(error),
        }
    }

    pub(crate) fn queue_error(
        &self,
        queue: &str,
        operation: &'static str,
        error: RabbitQueueError,
    ) -> QueueError {
        if error.is_connection_problem() {
            self.unavailable(error)
        } else {
            QueueError::Operation {
                queue: queue.to_owned(),
                operation,
                source: Box::new(error),
            }
        }
    }
}
