//! A writer that records instead of writing: what `verify` compares the storage with.
//!
//! A publisher handed a recording writer runs as it always does (it re-reads its entities and
//! computes their rows) but nothing reaches the database: each write it asks for is kept, by
//! key, for whoever holds the [`Recording`].

use std::sync::{Arc, Mutex, PoisonError};

use pubsync_shared::synchronization::SynchronizationDefinition;
use serde_json::Value;

use super::{Reference, RowKey, StorageRow, StorageTableWriter};

/// One write a publisher asked a recording writer for.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedWrite {
    /// The storage table.
    pub table: String,
    /// The rows it would upsert.
    pub rows: Vec<RecordedRow>,
    /// The keys of the rows it would delete.
    pub deleted: Vec<String>,
    /// The references whose other rows it would delete (a replace).
    pub replaced: Vec<Reference>,
}

/// One row a recorded write would upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRow {
    /// Its key.
    pub key: String,
    /// Its data.
    pub data: Value,
    /// Its reference.
    pub reference: Reference,
}

/// The writes recorded by the writers of [`StorageTableWriter::recording`].
#[derive(Debug, Clone, Default)]
pub struct Recording {
    writes: Arc<Mutex<Vec<RecordedWrite>>>,
}

impl Recording {
    /// The writes recorded since the last call, in order.
    pub fn take(&self) -> Vec<RecordedWrite> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn record(
        &self,
        writer: &StorageTableWriter,
        table: &SynchronizationDefinition,
        rows: &[StorageRow],
        deletes: &[RowKey],
        replaced: &[Reference],
    ) {
        let table = writer.definition(table);
        let write = RecordedWrite {
            table: table.table.to_owned(),
            rows: rows
                .iter()
                .map(|row| RecordedRow {
                    key: writer.key(table, &row.key),
                    data: row.data.clone(),
                    reference: row.key.reference.clone(),
                })
                .collect(),
            deleted: deletes.iter().map(|key| writer.key(table, key)).collect(),
            replaced: replaced.to_vec(),
        };
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(write);
    }
}
