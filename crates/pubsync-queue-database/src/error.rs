//! What can go wrong in this crate, and how callers of the queue contract see it: a transient
//! database error as [`QueueError::Unavailable`], any other as [`QueueError::Operation`], with
//! a [`DatabaseQueueError::MissingTable`] source when the queue table is missing.

use pubsync_database::DatabaseError;
use pubsync_queue_extension::QueueError;

use crate::TABLE;
use crate::queue::DatabaseQueue;

/// What can go wrong in this crate beyond the driver's own errors; found as the `source` of a
/// [`QueueError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseQueueError {
    /// The queue table has not been created.
    #[error("table {table} does not exist in {url}; run `pubsync setup` to create it")]
    MissingTable {
        /// The missing table.
        table: &'static str,
        /// The database (password removed).
        url: String,
    },
}

impl DatabaseQueue {
    /// Turns a database error into a queue error: transient ones into `Unavailable`, a missing
    /// table into an error that says what to do.
    pub(crate) fn queue_error(
        &self,
        queue: &str,
        operation: &'static str,
        error: DatabaseError,
    ) -> QueueError {
        if error.is_transient() {
            return QueueError::Unavailable {
                backend: format!("database {}", self.database.url()),
                source: Box::new(error),
            };
        }
        let source: pubsync_queue_extension::BoxError = if self.statements.is_missing_table(&error)
        {
            Box::new(self.missing_table())
        } else {
            Box::new(error)
        };
        QueueError::Operation {
            queue: queue.to_owned(),
            operation,
            source,
        }
    }

    pub(crate) fn missing_table(&self) -> DatabaseQueueError {
        DatabaseQueueError::MissingTable {
            table: TABLE,
            url: self.database.url().redacted(),
        }
    }
}
