//! Why a sync step failed: the relay's outbox or queue, or the consumer's storage.

use pubsync_database::DatabaseError;
use pubsync_queue_extension::{QueueError, SendError};
use pubsync_storage_extension::StorageError;

/// Why a sync relay pass or a sync chunk failed. A relay pass leaves its outbox rows for a
/// later pass; a consumer chunk's messages are released and come back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Reading or deleting sync outbox rows failed.
    #[error("sync outbox: {0}")]
    Database(#[from] DatabaseError),
    /// A sync queue did not take the messages.
    #[error("relaying the sync outbox: {0}")]
    Send(#[from] SendError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The storage failed for the whole chunk.
    #[error("writing storage: {0}")]
    Storage(#[from] StorageError),
}

impl SyncError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => error.is_transient(),
            Self::Send(error) => error.source.is_transient(),
            Self::Queue(error) => error.is_transient(),
            Self::Storage(error) => error.is_transient(),
        }
    }
}
