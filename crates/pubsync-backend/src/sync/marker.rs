//! Telling a key-value store that lost its data from one that kept it.
//!
//! A Redis restarted without persistence, flushed or replaced answers like any empty store:
//! reads find nothing, writes succeed, and the sync path has no way to notice. So pubsync
//! leaves a marker in the store, a token it also records in the database, and compares the
//! two: `setup` and every worker when it starts (writing the first marker when the database
//! records none), the worker again every [`SyncConfig::marker_check_interval`] and right
//! after any of its stages failed (a lost connection is how a restart shows), and
//! `pubsync health`. A store without the recorded marker lost what it held: that is logged as
//! an error and fails the health check, and with [`SyncConfig::resync_on_data_loss`] the
//! worker sends every storage row to the store again (`sync:data`), then writes a new
//! marker. A complete `sync:data` of every table writes a new marker too.
//!
//! [`SyncConfig::marker_check_interval`]: super::SyncConfig::marker_check_interval
//! [`SyncConfig::resync_on_data_loss`]: super::SyncConfig::resync_on_data_loss

use std::sync::atomic::Ordering;

use pubsync_database::Database;
use pubsync_database::names::setting;
use pubsync_queue_extension::Queue;
use pubsync_storage_extension::{KeyValueWriter, StorageError};

use super::SyncError;
use super::switch::{read_setting, write_setting};
use crate::backfill::export::{ExportOptions, sync_data};
use crate::backfill::{Ending, NoProgress, Stop};
use crate::worker::{Worker, WorkerError};

/// What comparing the store's marker with the database's found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerCheck {
    /// The store holds the marker the database records.
    Intact,
    /// The database recorded no marker (a first run, or a database set up anew): the
    /// store's marker is recorded now, or a new one written to both.
    Established,
    /// The store does not hold the recorded marker: it lost its data (or is another store).
    Lost {
        /// The marker the database records.
        expected: String,
        /// What the store holds instead.
        found: Option<String>,
    },
    /// The store keeps no marker, so nothing can be told.
    Unsupported,
}

impl MarkerCheck {
    /// Why the store is not to be trusted, when it lost its data.
    pub fn loss(&self) -> Option<String> {
        match self {
            Self::Lost { expected, found } => Some(format!(
                "the key-value store lost its data: it holds {} where setup left the marker {expected:?} \
                 (run `pubsync sync:data`, or set [sync] resync_on_data_loss = true)",
                match found {
                    Some(found) => format!("the marker {found:?}"),
                    None => "no marker".to_owned(),
                }
            )),
            _ => None,
        }
    }
}

/// Compares `store`'s marker with the one `database` records; when the database records
/// none, records the store's, or writes a new one to both.
pub async fn check_marker<W: KeyValueWriter>(
    database: &Database,
    store: &W,
) -> Result<MarkerCheck, SyncError> {
    let found = match store.read_marker().await {
        Ok(found) => found,
        Err(StorageError::Unsupported { .. }) => return Ok(MarkerCheck::Unsupported),
        Err(error) => return Err(error.into()),
    };
    let expected = database
        .blocking(|db| read_setting(db, setting::KEY_VALUE_MARKER))
        .await?;
    match (expected, found) {
        (Some(expected), Some(found)) if expected == found => Ok(MarkerCheck::Intact),
        (Some(expected), found) => Ok(MarkerCheck::Lost { expected, found }),
        (None, Some(found)) => {
            record(database, found).await?;
            Ok(MarkerCheck::Established)
        }
        (None, None) => {
            renew_marker(database, store).await?;
            Ok(MarkerCheck::Established)
        }
    }
}

/// Writes a new marker into `store`, then records it in `database`: after the store was
/// filled again, it is what the store holds from now on.
pub async fn renew_marker<W: KeyValueWriter>(
    database: &Database,
    store: &W,
) -> Result<(), SyncError> {
    let marker = new_marker();
    match store.write_marker(&marker).await {
        Ok(()) => {}
        Err(StorageError::Unsupported { .. }) => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    record(database, marker).await
}

async fn record(database: &Database, marker: String) -> Result<(), SyncError> {
    database
        .blocking(move |db| write_setting(db, setting::KEY_VALUE_MARKER, &marker))
        .await?;
    Ok(())
}

/// A token no other marker has: the time in nanoseconds and the process.
fn new_marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

impl<Q: Queue, W: KeyValueWriter> Worker<Q, W> {
    /// Checks the key-value store's marker. When the store lost its data, logs it (once until
    /// it is filled again) and, with [`SyncConfig::resync_on_data_loss`], sends every storage
    /// row of the tables that synchronize to it again, then writes a new marker. `stop` ends
    /// a re-sync after its current chunk; the next check starts it over.
    ///
    /// [`SyncConfig::resync_on_data_loss`]: super::SyncConfig::resync_on_data_loss
    pub(crate) async fn check_store(&self, stop: &Stop) -> Result<(), WorkerError> {
        let Some(sync) = &self.sync else {
            return Ok(());
        };
        let Some(store) = &sync.writer else {
            return Ok(());
        };
        let check = check_marker(&self.database, store).await?;
        let Some(loss) = check.loss() else {
            sync.loss_reported.store(false, Ordering::Relaxed);
            return Ok(());
        };
        if !sync.config.resync_on_data_loss {
            if !sync.loss_reported.swap(true, Ordering::Relaxed) {
                tracing::error!("{loss}");
            }
            return Ok(());
        }
        tracing::error!(
            "{loss}; sending every storage row to it again ([sync] resync_on_data_loss)"
        );
        let options = ExportOptions {
            restart: true,
            ..ExportOptions::default()
        };
        let mut rows = 0;
        let tables = sync.relay.tables().definitions();
        for table in tables.filter(|table| table.is_synchronization_enabled(sync.config.enabled)) {
            let report = sync_data(self, table, None, &options, &NoProgress, stop).await?;
            rows += report.exported;
            if report.ending != Some(Ending::Complete) {
                tracing::warn!(
                    table = table.table,
                    "re-sync stopped with the worker; the next check starts it over"
                );
                return Ok(());
            }
        }
        renew_marker(&self.database, store).await?;
        tracing::info!(
            rows,
            "re-sync done: every storage row was sent to the key-value store again"
        );
        Ok(())
    }
}
