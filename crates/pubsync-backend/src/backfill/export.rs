//! `sync:data`: sends storage rows, as they are, to the key-value store.
//!
//! Publishing skips rows whose data did not change, so re-publishing never refills a key-value
//! store that lost its keys; this does. Each chunk of a storage table's rows is recorded in the
//! sync outbox as writes (their data, store and locale, a fresh version, under a shared lock
//! so that no publisher's change in flight is overtaken, see [`pages::export`]), and the
//! sync outbox is relayed: to the sync queues, or, in direct mode, straight into the store.
//! Alias keys follow from the data, as on the sync path.
//!
//! The original's `sync:data` skips unknown resources silently; here they are an error.

use pubsync_queue_extension::Queue;
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_storage_extension::KeyValueWriter;

use super::{Cursor, Ending, Progress, Stop, pages};
use crate::worker::{Worker, WorkerError};

/// How `sync:data` runs.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Storage rows per chunk.
    pub chunk_size: usize,
    /// Start from the first key even where an earlier run stopped.
    pub restart: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            restart: false,
        }
    }
}

/// What `sync:data` did for one storage table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The storage table.
    pub table: String,
    /// Rows recorded for synchronization.
    pub exported: usize,
    /// Sync outbox rows relayed after the chunks.
    pub sync_relayed: usize,
    /// Rows left out because their key is not UTF-8: no key pubsync writes, and one no
    /// key-value store is given (`verify --repair` deletes them).
    pub unreadable: usize,
    /// The first of those keys, its bytes that are not UTF-8 as `\xNN`.
    pub first_unreadable: Option<String>,
    /// The key an earlier, stopped run was resumed after, if it was.
    pub resumed_after: Option<String>,
    /// Whether every chunk was done.
    pub ending: Option<Ending>,
}

impl ExportReport {
    /// The keys of `rows` to export: those that are UTF-8. The others are counted, and
    /// logged, since no key-value store could be given them.
    fn take_readable(
        &mut self,
        table: &SynchronizationDefinition,
        rows: pages::StoredRows,
    ) -> Vec<String> {
        for row in &rows.unreadable {
            let key = row.shown();
            tracing::warn!(table = table.table, key = %key, "a storage row's key is not UTF-8: left out (pubsync verify --repair deletes it)");
            self.first_unreadable.get_or_insert(key);
        }
        self.unreadable += rows.unreadable.len();
        rows.rows.into_iter().map(|row| row.key).collect()
    }
}

/// How often a chunk is tried again after a transient failure (a deadlock, a lock timeout).
const EXPORT_ATTEMPTS: u32 = 5;

/// Sends the rows of `table` to the key-value store: those whose reference is one of `ids`
/// when given, otherwise every row, keyset-paged by key from where a stopped run left off.
pub async fn sync_data<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    table: &'static SynchronizationDefinition,
    ids: Option<&[i64]>,
    options: &ExportOptions,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<ExportReport, WorkerError> {
    let mut report = ExportReport {
        table: table.table.to_owned(),
        ..ExportReport::default()
    };
    let chunk_size = options.chunk_size.max(1);
    if let Some(ids) = ids {
        progress.start(table.resource, ids.len() as u64, 0);
        let integer = worker
            .database
            .blocking(move |db| pages::integer_reference(db, table))
            .await?;
        for chunk in ids.chunks(chunk_size) {
            if stop.requested() {
                progress.finish();
                report.ending = Some(Ending::Stopped);
                return Ok(report);
            }
            let (count, chunk) = (chunk.len() as u64, chunk.to_vec());
            let rows = worker
                .database
                .blocking(move |db| pages::storage_rows_of(db, table, &chunk, integer))
                .await?;
            let keys = report.take_readable(table, rows);
            export_keys(worker, table, keys, &mut report).await?;
            progress.advance(count);
        }
        progress.finish();
        report.ending = Some(Ending::Complete);
        return Ok(report);
    }
    let cursor = Cursor::new("sync-data", table.table);
    let resumed = cursor.load(&worker.database, options.restart).await?;
    report.resumed_after = resumed.clone();
    let (total, _) = worker
        .database
        .blocking(move |db| pages::count(db, table.table, "key", None))
        .await?;
    progress.start(table.resource, total, 0);
    let mut after = resumed.unwrap_or_default().into_bytes();
    loop {
        if stop.requested() {
            progress.finish();
            report.ending = Some(Ending::Stopped);
            return Ok(report);
        }
        let from = std::mem::take(&mut after);
        let page = worker
            .database
            .blocking(move |db| pages::storage_page(db, table, &from, chunk_size))
            .await?;
        let Some(last) = page.last else {
            break;
        };
        let count = (page.rows.rows.len() + page.rows.unreadable.len()) as u64;
        let keys = report.take_readable(table, page.rows);
        // The cursor keeps the page's last key that is text: a stopped run resumes there, at
        // worst exporting a few rows again.
        let resume_after = keys.last().cloned();
        export_keys(worker, table, keys, &mut report).await?;
        if let Some(resume_after) = resume_after {
            cursor.save(&worker.database, resume_after).await?;
        }
        after = last;
        progress.advance(count);
    }
    cursor.clear(&worker.database).await?;
    progress.finish();
    report.ending = Some(Ending::Complete);
    Ok(report)
}

/// Records the rows of `keys` for synchronization and relays them.
pub(crate) async fn export_keys<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    table: &'static SynchronizationDefinition,
    keys: Vec<String>,
    report: &mut ExportReport,
) -> Result<(), WorkerError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut attempt = 0;
    let exported = loop {
        let keys = keys.clone();
        match worker
            .database
            .blocking(move |db| pages::export(db, table, &keys))
            .await
        {
            // A deadlock with a publisher (its row locks come in row order, these in key
            // order): the database rolled this chunk back, so take it again.
            Err(error) if error.is_transient() && attempt < EXPORT_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(table = table.table, attempt, error = %error, "exporting a chunk failed, trying again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            result => break result?,
        }
    };
    report.exported += exported;
    report.sync_relayed += worker.relay_sync_outbox().await?;
    Ok(())
}
