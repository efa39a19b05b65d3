//! The sync relay: moves the sync outbox to the sync queues, or, in direct mode, to the
//! key-value store, falling back to the queues when the store refuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use pubsync_database::{Database, DatabaseError};
use pubsync_queue_extension::{Queue, error_queue_name};
use pubsync_shared::key::KeyBuilders;
use pubsync_shared::message::SyncMessage;
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_shared::version::Version;
use pubsync_storage_extension::{KeyValueWriter, StorageChange};

use super::changes::{RowChanges, StoredSyncRow, SyncRow};
use super::{SyncConfig, SyncError, SyncTables, UNROUTABLE_QUEUE};
use crate::outbox::{Claim, SYNC_OUTBOX};

/// What one sync relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncPass {
    /// Outbox rows read and deleted.
    pub rows: usize,
    /// Key changes the rows made.
    pub changes: usize,
    /// Changes written to storage directly.
    pub direct: usize,
    /// Rows that could not be turned into changes and went to an error queue.
    pub failed: usize,
}

/// Moves the sync outbox to the sync queues (or, in direct mode, to storage).
#[derive(Debug, Clone)]
pub struct SyncRelay {
    database: Database,
    tables: SyncTables,
    keys: Arc<KeyBuilders>,
    config: SyncConfig,
    /// By key: the outbox id and version of the last row relayed. Looked up for every row
    /// relayed, so hashed with foldhash, several times faster than std's SipHash on short
    /// keys and, like it, seeded at random per process.
    last_versions: Arc<Mutex<foldhash::HashMap<String, (i64, Version)>>>,
}

/// How many keys' last versions the relay remembers before it forgets them all.
const REMEMBERED_VERSIONS: usize = 100_000;

impl SyncRelay {
    /// The storage tables it relays.
    pub(crate) fn tables(&self) -> &SyncTables {
        &self.tables
    }

    /// A relay over `database`'s sync outbox for `tables`.
    pub fn new(
        database: Database,
        tables: SyncTables,
        keys: Arc<KeyBuilders>,
        config: SyncConfig,
    ) -> Self {
        Self {
            database,
            tables,
            keys,
            config,
            last_versions: Arc::default(),
        }
    }

    /// Makes the versions of each key strictly increase in outbox order. SQLite's clock has
    /// millisecond resolution, so two changes of one key within a millisecond carry the same
    /// version, and storage keeps only the first of two equal versions.
    ///
    /// Only a row later in the outbox than the last one relayed of its key is moved past it.
    /// An earlier row relayed late (another worker's claim on it was given up, so this relay
    /// took it after the rows it had skipped) stays older than that one: moved past the newer
    /// change, it would overwrite it, a write bringing back a deleted key. The last row
    /// itself, relayed again after a failed send, keeps the version it was given.
    fn order_versions(&self, rows: &mut [SyncRow]) {
        let mut last_versions = self
            .last_versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last_versions.len() > REMEMBERED_VERSIONS {
            last_versions.clear();
        }
        for row in rows {
            match last_versions.get_mut(&row.storage_key) {
                Some((last_id, last)) if row.id_sync_outbox > *last_id => {
                    let version = row.version().max(last.next());
                    row.version = version.as_micros();
                    (*last_id, *last) = (row.id_sync_outbox, version);
                }
                Some((last_id, last)) if row.id_sync_outbox == *last_id => {
                    row.version = last.as_micros();
                }
                Some((_, last)) => {
                    row.version = row.version.min(last.as_micros() - 1);
                }
                None => {
                    last_versions
                        .insert(row.storage_key.clone(), (row.id_sync_outbox, row.version()));
                }
            }
        }
    }

    /// Relays one chunk of the sync outbox; `writer`, when there is one, is the key-value
    /// store of direct mode.
    pub async fn relay_once<Q: Queue, W: KeyValueWriter>(
        &self,
        queue: &Q,
        writer: Option<&W>,
    ) -> Result<SyncPass, SyncError> {
        self.prepare(writer.is_some(), None)
            .await?
            .deliver(queue, writer)
            .await
    }

    /// Relays chunk after chunk until one is short of a full chunk, or `max_passes` were
    /// relayed, adding each chunk's rows to `relayed` once it is handed on. Each chunk is
    /// read and turned into changes while the one before is being handed on, so that the
    /// database and the queue or key-value store work at once; they are handed on in order.
    pub async fn relay_pending<Q: Queue, W: KeyValueWriter>(
        &self,
        queue: &Q,
        writer: Option<&W>,
        max_passes: usize,
        relayed: &mut usize,
    ) -> Result<(), SyncError> {
        let direct = writer.is_some();
        let mut current = self.prepare(direct, None).await?;
        for _ in 1..max_passes {
            if current.pass.rows < self.config.chunk_size {
                break;
            }
            let after = current.claim.ids().last().copied();
            let (delivered, next) =
                tokio::join!(current.deliver(queue, writer), self.prepare(direct, after));
            // When handing on failed, the chunk read beside it is given back untouched.
            *relayed += delivered?.rows;
            current = next?;
        }
        *relayed += current.deliver(queue, writer).await?.rows;
        Ok(())
    }

    /// Reads the next chunk of the sync outbox (above `after`, see [`crate::outbox::Outbox::claim`])
    /// and turns it into what is handed on: changes for the key-value store with `direct`,
    /// messages for the sync queues otherwise, and the rows that cannot be synchronized for
    /// the error queues.
    async fn prepare(&self, direct: bool, after: Option<i64>) -> Result<Prepared<'_>, SyncError> {
        let mut claim = SYNC_OUTBOX
            .claim(
                &self.database,
                self.config.chunk_size,
                after,
                |row: &StoredSyncRow| row.id_sync_outbox,
            )
            .await?;
        let stored = std::mem::take(&mut claim.rows);
        let mut prepared = Prepared {
            claim,
            relay: self,
            pass: SyncPass {
                rows: stored.len(),
                ..SyncPass::default()
            },
            errors: BTreeMap::new(),
            by_queue: BTreeMap::new(),
            direct: Vec::new(),
            direct_rows: Vec::new(),
        };
        let mut rows = Vec::with_capacity(stored.len());
        for stored in stored {
            match stored.decode() {
                Ok(row) => rows.push(row),
                Err((table, message)) => {
                    prepared.pass.failed += 1;
                    let group = table
                        .and_then(|table| self.tables.get(&table))
                        .map_or(UNROUTABLE_QUEUE, |definition| definition.queue_group);
                    prepared
                        .errors
                        .entry(error_queue_name(group))
                        .or_default()
                        .push(message);
                }
            }
        }
        self.order_versions(&mut rows);
        for row in rows {
            let Some(definition) = self.tables.get(&row.storage_table) else {
                prepared.pass.failed += 1;
                let reason = format!(
                    "no linked module declares storage table {:?}",
                    row.storage_table
                );
                tracing::error!(table = %row.storage_table, key = %row.storage_key, "{reason}");
                prepared
                    .errors
                    .entry(error_queue_name(UNROUTABLE_QUEUE))
                    .or_default()
                    .push(row.error_message(&reason));
                continue;
            };
            if !definition.is_synchronization_enabled(self.config.enabled) {
                continue;
            }
            if direct && self.config.direct && !definition.direct_sync_disabled {
                match RowChanges::storage_changes_of(definition, &row, &self.keys) {
                    Ok(changes) => {
                        prepared.pass.changes += changes.len();
                        prepared.direct.extend(changes);
                        prepared.direct_rows.push((definition, row));
                    }
                    Err(reason) => prepared.unusable(definition, &row, &reason),
                }
            } else {
                match RowChanges::of(definition, &row, &self.keys) {
                    Ok(changes) => {
                        prepared.pass.changes += changes.len();
                        prepared
                            .by_queue
                            .entry(definition.queue_group)
                            .or_default()
                            .extend(changes.into_messages());
                    }
                    Err(reason) => prepared.unusable(definition, &row, &reason),
                }
            }
        }
        Ok(prepared)
    }

    /// Whether the sync outbox holds no row.
    pub async fn is_empty(&self) -> Result<bool, DatabaseError> {
        self.database.blocking(|db| SYNC_OUTBOX.is_empty(db)).await
    }

    fn bodies(&self, messages: &[SyncMessage]) -> Vec<Vec<u8>> {
        if self.config.spryker_compatible {
            messages.iter().map(SyncMessage::encode).collect()
        } else {
            messages
                .chunks(self.config.changes_per_message.max(1))
                .map(SyncMessage::encode_batch)
                .collect()
        }
    }
}

/// A chunk of the sync outbox read and turned into what is handed on, not handed on yet:
/// dropping it gives the rows back untouched.
struct Prepared<'a> {
    claim: Claim<StoredSyncRow>,
    relay: &'a SyncRelay,
    pass: SyncPass,
    /// Error-queue messages by error queue.
    errors: BTreeMap<String, Vec<Vec<u8>>>,
    /// Sync messages by sync queue.
    by_queue: BTreeMap<&'static str, Vec<SyncMessage>>,
    /// The changes of direct mode, in outbox order.
    direct: Vec<StorageChange>,
    /// The rows behind `direct`, turned into messages only when the store fails.
    direct_rows: Vec<(&'a SynchronizationDefinition, SyncRow)>,
}

impl Prepared<'_> {
    /// Sends `row`, which cannot be synchronized for `reason`, to its table's error queue.
    fn unusable(&mut self, definition: &SynchronizationDefinition, row: &SyncRow, reason: &str) {
        self.pass.failed += 1;
        tracing::error!(table = %row.storage_table, key = %row.storage_key, reason, "sync outbox row is unusable");
        self.errors
            .entry(error_queue_name(definition.queue_group))
            .or_default()
            .push(row.error_message(reason));
    }

    /// Hands the chunk on: the changes to `writer` (to the sync queues when it fails), the
    /// messages to their queues, the unusable rows to the error queues; then deletes the rows.
    async fn deliver<Q: Queue, W: KeyValueWriter>(
        mut self,
        queue: &Q,
        writer: Option<&W>,
    ) -> Result<SyncPass, SyncError> {
        if self.pass.rows == 0 {
            return Ok(self.pass);
        }
        let direct = std::mem::take(&mut self.direct);
        if let (Some(writer), false) = (writer, direct.is_empty()) {
            let count = direct.len();
            let synced = crate::metrics::Synced::of(&direct);
            match writer.apply(direct).await {
                Ok(_) => {
                    synced.record();
                    self.pass.direct += count;
                }
                Err(error) => {
                    tracing::warn!(error = %error, changes = count, "direct synchronization failed, sending through the sync queue");
                    for (definition, row) in std::mem::take(&mut self.direct_rows) {
                        match RowChanges::of(definition, &row, &self.relay.keys) {
                            Ok(changes) => self
                                .by_queue
                                .entry(definition.queue_group)
                                .or_default()
                                .extend(changes.into_messages()),
                            Err(reason) => self.unusable(definition, &row, &reason),
                        }
                    }
                }
            }
        }
        for (queue_name, messages) in std::mem::take(&mut self.by_queue) {
            queue.send(queue_name, self.relay.bodies(&messages)).await?;
        }
        for (queue_name, bodies) in std::mem::take(&mut self.errors) {
            let count = bodies.len();
            queue.send(&queue_name, bodies).await?;
            if let Some(main) = queue_name.strip_suffix(pubsync_queue_extension::ERROR_QUEUE_SUFFIX)
            {
                crate::metrics::failed(main, count);
            }
        }
        self.claim.relayed().await?;
        Ok(self.pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::changes::tests::row;

    /// A relay over an SQLite file of `dir`'s.
    fn relay(dir: &std::path::Path) -> SyncRelay {
        let url = pubsync_database::DatabaseUrl::Sqlite(dir.join("v.db"));
        let database = Database::connect(&url, &Default::default()).unwrap();
        SyncRelay::new(
            database,
            SyncTables::default(),
            Default::default(),
            SyncConfig::default(),
        )
    }

    #[test]
    fn versions_of_one_key_strictly_increase_even_within_a_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        let mut rows = vec![
            row("write", Some("{}"), None),
            row("write", Some("{}"), None),
            row("delete", None, None),
        ];
        for (id, row) in rows.iter_mut().enumerate() {
            row.id_sync_outbox = id as i64 + 1;
        }
        rows[2].version += 5;
        relay.order_versions(&mut rows);
        let versions: Vec<i64> = rows.iter().map(|row| row.version).collect();
        assert_eq!(
            versions,
            [
                1_599_741_494_267_689,
                1_599_741_494_267_690,
                1_599_741_494_267_694
            ]
        );
        let mut later = vec![row("write", Some("{}"), None)];
        later[0].id_sync_outbox = 4;
        relay.order_versions(&mut later);
        assert_eq!(
            later[0].version, 1_599_741_494_267_695,
            "remembered across passes"
        );
    }

    /// Worker A claims a write of a key; worker B, skipping A's locked row, relays the
    /// delete that followed it; A is killed, and B relays the write after all. The write must
    /// keep its older version, or it would bring the deleted key back.
    #[test]
    fn an_older_row_relayed_after_a_newer_one_keeps_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        let mut delete = vec![row("delete", None, None)];
        (delete[0].id_sync_outbox, delete[0].version) = (8, 2_000);
        relay.order_versions(&mut delete);
        let mut write = vec![row("write", Some("{}"), None)];
        (write[0].id_sync_outbox, write[0].version) = (7, 1_000);
        relay.order_versions(&mut write);
        assert_eq!(
            write[0].version, 1_000,
            "older than the delete, as it was written"
        );
        let mut late_tie = vec![row("write", Some("{}"), None)];
        (late_tie[0].id_sync_outbox, late_tie[0].version) = (6, 2_000);
        relay.order_versions(&mut late_tie);
        assert_eq!(
            late_tie[0].version, 1_999,
            "an older row stays older, even within a microsecond"
        );
        let mut again = vec![row("delete", None, None)];
        (again[0].id_sync_outbox, again[0].version) = (8, 2_000);
        relay.order_versions(&mut again);
        assert_eq!(
            again[0].version, 2_000,
            "the same row again, after a failed send"
        );
        let mut newer = vec![row("write", Some("{}"), None)];
        (newer[0].id_sync_outbox, newer[0].version) = (9, 2_000);
        relay.order_versions(&mut newer);
        assert_eq!(
            newer[0].version, 2_001,
            "a later row still moves past the delete"
        );
    }

    /// Two rows of one key within a millisecond (SQLite), bumped apart, then sent again
    /// after a failed send: they keep distinct versions.
    #[test]
    fn rows_relayed_again_after_a_failed_send_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay(dir.path());
        let chunk = || {
            let mut rows = vec![row("write", Some("{}"), None), row("delete", None, None)];
            (rows[0].id_sync_outbox, rows[1].id_sync_outbox) = (7, 8);
            rows
        };
        let mut first = chunk();
        relay.order_versions(&mut first);
        let mut again = chunk();
        relay.order_versions(&mut again);
        let versions = |rows: &[SyncRow]| rows.iter().map(|row| row.version).collect::<Vec<_>>();
        assert_eq!(versions(&first), versions(&again));
        assert!(
            again[0].version < again[1].version,
            "{:?}",
            versions(&again)
        );
    }
}
