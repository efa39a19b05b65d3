//! The storage contract: how pubsync reads (and, on the sync path, writes) the key-value read
//! model, whichever store holds it: Redis, or the storage tables themselves (key-value bypass).
//!
//! Keys are storage keys as the key builder makes them (`message:2`); an implementation adds
//! whatever it needs (`kv:` in Redis) or maps them (to a storage table). Values are the JSON
//! text stored for the key; the client decodes them.
//!
//! Reading and writing are separate traits so that a frontend can be handed a reader only.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

use std::future::Future;

pub use pubsync_shared::version::Version;

#[cfg(feature = "testing")]
pub mod conformance;

/// A boxed error from an implementation's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong reading or writing storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store could not be reached.
    #[error("storage unavailable ({backend}): {source}")]
    Unavailable {
        /// Which backend, with its address where known.
        backend: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// No storage table is known for the key's resource.
    #[error("no storage table for resource {resource:?} (key {key:?}): expected table {table:?}")]
    UnknownResource {
        /// The resource part of the key.
        resource: String,
        /// The key asked for.
        key: String,
        /// The table the default mapping points to, which does not exist.
        table: String,
    },
    /// A query or command failed.
    #[error("storage {operation} failed: {source}")]
    Operation {
        /// What was attempted.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The implementation does not offer this operation.
    #[error("{operation} is not supported by {backend} storage")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// Which storage.
        backend: &'static str,
    },
}

impl StorageError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// One page of a key scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Where the next page starts; `0` when the scan is complete.
    pub cursor: u64,
    /// Storage keys matching the pattern (without any store-specific prefix).
    pub keys: Vec<String>,
}

/// Reads storage.
pub trait StorageReader: Send + Sync + 'static {
    /// The value stored under `key`, or `Ok(None)` when there is none. A missing key is not an
    /// error; an unknown resource (no table for it) is.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// The values of `keys`, in the order asked, `None` for each absent key, in one round trip
    /// where the store allows.
    fn get_multi(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StorageError>> + Send;

    /// Up to about `limit` keys matching the glob `pattern` (`message:*`), from `cursor` on
    /// (`0` starts). Stores that cannot scan answer [`StorageError::Unsupported`].
    fn scan(
        &self,
        pattern: &str,
        limit: usize,
        cursor: u64,
    ) -> impl Future<Output = Result<ScanPage, StorageError>> + Send;
}

/// One versioned change to a key-value store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageChange {
    /// Store `value` (JSON text) under `key`.
    Write {
        /// The storage key.
        key: String,
        /// The JSON text; its `_timestamp` is `version` in seconds.
        value: String,
        /// The change's version; a change never replaces a newer one.
        version: Version,
    },
    /// Remove `key`.
    Delete {
        /// The storage key.
        key: String,
        /// The change's version; an older write arriving later does not bring the key back.
        version: Version,
    },
}

impl StorageChange {
    /// The key the change is for.
    pub fn key(&self) -> &str {
        match self {
            Self::Write { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// The change's version.
    pub fn version(&self) -> Version {
        match self {
            Self::Write { version, .. } | Self::Delete { version, .. } => *version,
        }
    }
}

/// Writes a key-value store (the sync path). The storage tables are written by the backend,
/// never through this trait.
pub trait KeyValueWriter: StorageReader {
    /// Applies `changes`, skipping each one older than what the store holds for its key.
    /// Returns how many were applied.
    fn apply(
        &self,
        changes: Vec<StorageChange>,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;

    /// The marker the store keeps beside its keys (see [`write_marker`](Self::write_marker)),
    /// `Ok(None)` when it holds none. A store that keeps no marker answers
    /// [`StorageError::Unsupported`], the default.
    fn read_marker(&self) -> impl Future<Output = Result<Option<String>, StorageError>> + Send {
        std::future::ready(Err(StorageError::Unsupported {
            operation: "read_marker",
            backend: "this",
        }))
    }

    /// Keeps `marker` in the store, outside the storage keys, where it lasts exactly as long
    /// as they do: a store that lost its data (restarted without persistence, flushed,
    /// replaced) has lost its marker too, which is how pubsync tells. A store that keeps no
    /// marker answers [`StorageError::Unsupported`], the default.
    fn write_marker(&self, marker: &str) -> impl Future<Output = Result<(), StorageError>> + Send {
        let _ = marker;
        std::future::ready(Err(StorageError::Unsupported {
            operation: "write_marker",
            backend: "this",
        }))
    }
}

/// The key-value store that cannot exist: the writer type of a worker that synchronizes into
/// none (its writer is `None`). No value of it can be made, so none of these run.
impl StorageReader for std::convert::Infallible {
    async fn get(&self, _key: &str) -> Result<Option<String>, StorageError> {
        match *self {}
    }

    async fn get_multi(&self, _keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        match *self {}
    }

    async fn scan(
        &self,
        _pattern: &str,
        _limit: usize,
        _cursor: u64,
    ) -> Result<ScanPage, StorageError> {
        match *self {}
    }
}

impl KeyValueWriter for std::convert::Infallible {
    async fn apply(&self, _changes: Vec<StorageChange>) -> Result<usize, StorageError> {
        match *self {}
    }
}
