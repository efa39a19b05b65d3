//! `verify`: does the read model equal the source?
//!
//! For each chunk of a resource's source ids, the resource's publishers run against a
//! recording writer ([`StorageTableWriter::recording`]): what they would write is what the
//! storage table and the key-value store should hold. The check then has three passes:
//!
//! 1. **By source id**: each expected key is looked up in the storage table (by the rows'
//!    references where the reference column is an integer one, holding source ids; else by
//!    the expected keys) and the key-value store: absent is *missing*, different data is
//!    *stale* (`_timestamp` aside), and a row of one of those references that no publisher
//!    wrote is *orphaned*.
//! 2. **By storage row** (tables whose references are source ids): the storage table is
//!    walked by key; a row whose reference is no id of the source table is orphaned (its
//!    entity is gone).
//! 3. **By stored key** (a key-value store only): its keys of the resource are scanned; one
//!    that is neither a storage row's key nor an alias key, nor expected, is orphaned.
//!
//! With repair, each chunk's differences are fixed before the next chunk: entities whose
//! storage rows differ are re-published (under the publishers' entity locks), keys whose
//! storage row is right but whose stored value is not are re-synced as `sync:data` does, and
//! orphaned keys with no row behind them are deleted from the store at the version they were
//! seen with (one microsecond newer), so that a write racing the repair still wins.
//!
//! [`StorageTableWriter::recording`]: crate::StorageTableWriter::recording

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use pubsync_queue_extension::Queue;
use pubsync_shared::message::TIMESTAMP_FIELD;
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_shared::version::Version;
use pubsync_storage_extension::{KeyValueWriter, StorageChange, StorageError};
use serde_json::Value;

use super::export::{ExportReport, export_keys};
use super::trigger::dispatch;
use super::{Ending, Progress, SourcePages, Stop, TriggerSource, pages};
use crate::listener::PublishContext;
use crate::storage_table_writer::Reference;

use crate::worker::{Worker, WorkerError};

/// What the publishers would write: key → (data, storage table, reference).
type Expected = HashMap<String, (Value, &'static SynchronizationDefinition, Option<i64>)>;

/// How `verify` runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Source ids per chunk.
    pub chunk_size: usize,
    /// Fix what differs.
    pub repair: bool,
    /// How many keys of each kind of difference the report names.
    pub sample: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            repair: false,
            sample: 10,
        }
    }
}

/// Why `verify` could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The database or a queue failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The key-value store failed.
    #[error("reading the key-value store failed: {0}")]
    Storage(#[from] StorageError),
    /// No storage table of the resource is known: nothing could be compared.
    #[error("no storage table has the resource {resource:?} its trigger source names")]
    NoStorageTable {
        /// The resource.
        resource: String,
    },
    /// A publisher failed to recompute a chunk.
    #[error("{listener} could not recompute ids {first} to {last}: {reason}")]
    Publisher {
        /// The listener.
        listener: String,
        /// The chunk's first id.
        first: i64,
        /// The chunk's last id.
        last: i64,
        /// Its error.
        reason: String,
    },
}

impl From<pubsync_database::DatabaseError> for VerifyError {
    fn from(error: pubsync_database::DatabaseError) -> Self {
        Self::Worker(error.into())
    }
}

/// Keys of one kind of difference: how many, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// How many keys.
    pub count: usize,
    /// The first keys, in the order found.
    pub first: Vec<String>,
}

impl Found {
    fn add(&mut self, key: &str, sample: usize) {
        self.count += 1;
        if self.first.len() < sample {
            self.first.push(key.to_owned());
        }
    }
}

/// The differences found in one place (the storage table, or the key-value store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    /// Keys that should be there and are not.
    pub missing: Found,
    /// Keys whose data is not what the source gives.
    pub stale: Found,
    /// Keys that should not be there.
    pub orphaned: Found,
}

impl Differences {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.missing.count + self.stale.count + self.orphaned.count == 0
    }
}

/// What a repair did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Entities re-published.
    pub republished: usize,
    /// Storage rows re-synced.
    pub resynced: usize,
    /// Orphaned keys deleted from the key-value store.
    pub deleted: usize,
    /// Storage rows deleted because their key is not UTF-8.
    pub unreadable_deleted: usize,
}

/// What `verify` found for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The resource.
    pub resource: String,
    /// Source entities checked.
    pub entities: usize,
    /// Keys the source gives.
    pub expected: usize,
    /// In the storage tables.
    pub storage: Differences,
    /// In the key-value store; `None` when the storage is the database.
    pub key_value: Option<Differences>,
    /// What the repair did, when asked for.
    pub repairs: Option<Repairs>,
    /// Whether every chunk was checked.
    pub ending: Option<Ending>,
    /// Whether the key-value store's keys were not scanned for orphans: more expected keys
    /// were missing from the storage table than the check keeps in memory (repair first).
    pub orphan_scan_skipped: bool,
}

impl VerifyReport {
    /// Whether the read model equals the source.
    pub fn is_clean(&self) -> bool {
        self.storage.is_empty() && self.key_value.as_ref().is_none_or(Differences::is_empty)
    }
}

/// How many expected keys missing from the storage table the check keeps, so that the key
/// scan does not call them orphans; beyond that (a storage table emptied or never filled) the
/// scan is skipped rather than holding millions of keys.
const MAX_REMEMBERED_MISSING: usize = 100_000;

/// What one chunk asks the repair to do.
#[derive(Default)]
struct Fixes {
    republish: BTreeSet<i64>,
    resync: BTreeMap<&'static str, (&'static SynchronizationDefinition, Vec<String>)>,
    delete: Vec<StorageChange>,
    /// Storage rows whose key is not UTF-8, by table.
    unreadable: Vec<(&'static SynchronizationDefinition, Vec<u8>)>,
}

/// Verifies `source`'s resource in `tables` (its storage tables) and, with a key-value store,
/// in the store; repairs what differs when `options.repair`.
pub async fn verify<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    tables: &[&'static SynchronizationDefinition],
    options: &VerifyOptions,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<VerifyReport, VerifyError> {
    if tables.is_empty() {
        return Err(VerifyError::NoStorageTable {
            resource: source.resource.to_owned(),
        });
    }
    let global = worker.synchronization_enabled();
    let syncs = |table: &SynchronizationDefinition| table.is_synchronization_enabled(global);
    // The key-value store is compared only where the tables synchronize into it.
    let store = worker
        .key_value_store()
        .filter(|_| tables.iter().any(|table| syncs(table)));
    let mut report = VerifyReport {
        resource: source.resource.to_owned(),
        key_value: store.map(|_| Differences::default()),
        repairs: options.repair.then(Repairs::default),
        ..VerifyReport::default()
    };
    let by_table: HashMap<&str, &'static SynchronizationDefinition> =
        tables.iter().map(|table| (table.table, *table)).collect();
    // The tables whose rows are found by their reference, an integer column of source ids;
    // the others by the keys expected in them.
    let mut by_reference: HashSet<&'static str> = HashSet::new();
    for table in tables {
        let table = *table;
        if worker
            .database
            .blocking(move |db| pages::integer_reference(db, table))
            .await?
        {
            by_reference.insert(table.table);
        }
    }
    let chunk_size = options.chunk_size.max(1);
    let (table, column) = (source.table, source.id_column);
    let (total, _) = worker
        .database
        .blocking(move |db| pages::count(db, table, column, None))
        .await?;
    progress.start(source.resource, total, 0);
    // Expected keys missing from the storage table: pass 3 must not call them orphans.
    let mut missing_rows: HashSet<String> = HashSet::new();
    let mut source_pages = SourcePages::new(source, None, chunk_size);
    loop {
        if stop.requested() {
            progress.finish();
            report.ending = Some(Ending::Stopped);
            return Ok(report);
        }
        let Some(ids) = source_pages.next(&worker.database).await? else {
            break;
        };
        report.entities += ids.len();
        let expected = recompute(worker, source, &ids, &by_table).await?;
        report.expected += expected.len();
        let mut fixes = Fixes::default();
        let mut stored: HashMap<
            String,
            (
                Option<String>,
                Option<i64>,
                &'static SynchronizationDefinition,
            ),
        > = HashMap::new();
        for table in tables {
            let table = *table;
            let references = ids.clone();
            let by_reference = by_reference.contains(table.table);
            let keys: Vec<String> = expected
                .iter()
                .filter(|(_, (_, of, _))| of.table == table.table)
                .map(|(key, _)| key.clone())
                .collect();
            let rows = worker
                .database
                .blocking(move |db| match by_reference {
                    true => pages::storage_rows_of(db, table, &references, true),
                    false => pages::storage_rows_by_key(db, table, &keys),
                })
                .await?;
            for row in rows.rows {
                let data = row.data();
                stored.insert(row.key, (data, row.reference, table));
            }
            // Rows of these (existing) references whose key no publisher could write.
            for row in rows.unreadable {
                report.storage.orphaned.add(&row.shown(), options.sample);
                fixes.unreadable.push((table, row.key));
            }
        }
        let mut keys: Vec<String> = expected.keys().cloned().collect();
        keys.extend(
            stored
                .keys()
                .filter(|key| !expected.contains_key(*key))
                .cloned(),
        );
        let values = match store {
            Some(store) => Some(store.get_multi(&keys).await?),
            None => None,
        };
        for (index, key) in keys.iter().enumerate() {
            let table_of_key = expected
                .get(key)
                .map(|(_, table, _)| *table)
                .or_else(|| stored.get(key).map(|(_, _, table)| *table));
            let in_kv = values
                .as_ref()
                .filter(|_| table_of_key.is_some_and(syncs))
                .map(|values| values[index].as_deref());
            match (expected.get(key), stored.get(key)) {
                (Some((value, table, reference)), row) => {
                    let storage_right = match row {
                        None => {
                            report.storage.missing.add(key, options.sample);
                            if missing_rows.len() < MAX_REMEMBERED_MISSING {
                                missing_rows.insert(key.clone());
                            } else {
                                report.orphan_scan_skipped = true;
                            }
                            false
                        }
                        Some((data, _, _)) if !same_data(data.as_deref(), value) => {
                            report.storage.stale.add(key, options.sample);
                            false
                        }
                        Some(_) => true,
                    };
                    if !storage_right {
                        fixes.republish.extend(*reference);
                    }
                    if let (Some(differences), Some(in_kv)) = (report.key_value.as_mut(), in_kv) {
                        let kv_right = match in_kv {
                            None => {
                                differences.missing.add(key, options.sample);
                                false
                            }
                            Some(text) if !same_value(text, value) => {
                                differences.stale.add(key, options.sample);
                                false
                            }
                            Some(_) => true,
                        };
                        if !kv_right && storage_right {
                            fixes
                                .resync
                                .entry(table.table)
                                .or_insert_with(|| (*table, Vec::new()))
                                .1
                                .push(key.clone());
                        }
                    }
                }
                (None, Some((_, reference, _))) => {
                    report.storage.orphaned.add(key, options.sample);
                    fixes.republish.extend(*reference);
                    if let (Some(differences), Some(Some(_))) = (report.key_value.as_mut(), in_kv) {
                        differences.orphaned.add(key, options.sample);
                    }
                }
                (None, None) => unreachable!("every key is expected or stored"),
            }
        }
        if options.repair {
            repair(worker, source, fixes, &mut report).await?;
        }
        progress.advance(ids.len() as u64);
    }
    progress.finish();
    for table in tables
        .iter()
        .filter(|table| by_reference.contains(table.table))
    {
        orphaned_rows(worker, source, table, options, &mut report, stop).await?;
    }
    if store.is_some() && !report.orphan_scan_skipped {
        orphaned_keys(
            worker,
            source,
            tables,
            &missing_rows,
            options,
            &mut report,
            stop,
        )
        .await?;
    }
    report.ending = Some(if stop.requested() {
        Ending::Stopped
    } else {
        Ending::Complete
    });
    Ok(report)
}

/// Pass 2: the rows of `table` (one whose reference column holds source ids) whose reference
/// is no id of the source table.
async fn orphaned_rows<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    table: &'static SynchronizationDefinition,
    options: &VerifyOptions,
    report: &mut VerifyReport,
    stop: &Stop,
) -> Result<(), VerifyError> {
    let (source_table, column) = (source.table, source.id_column);
    let mut after = Vec::new();
    let chunk_size = options.chunk_size.max(1);
    while !stop.requested() {
        let from = std::mem::take(&mut after);
        let page = worker
            .database
            .blocking(move |db| pages::storage_page(db, table, &from, chunk_size))
            .await?;
        let Some(last) = page.last else {
            break;
        };
        after = last;
        let (page, unreadable) = (page.rows.rows, page.rows.unreadable);
        let references: Vec<i64> = page
            .iter()
            .map(|row| row.reference)
            .chain(unreadable.iter().map(|row| row.reference))
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let existing: HashSet<i64> = worker
            .database
            .blocking(move |db| pages::existing_ids(db, source_table, column, &references))
            .await?
            .into_iter()
            .collect();
        let orphans: Vec<&pages::StoredRow> = page
            .iter()
            .filter(|row| row.reference.is_some_and(|r| !existing.contains(&r)))
            .collect();
        let mut fixes = Fixes::default();
        // A row whose key is not UTF-8 is orphaned whatever its reference; pass 1 found those
        // of existing references.
        for row in unreadable {
            if row.reference.is_none_or(|r| !existing.contains(&r)) {
                report.storage.orphaned.add(&row.shown(), options.sample);
                fixes.unreadable.push((table, row.key));
            }
        }
        if orphans.is_empty() {
            if options.repair && !fixes.unreadable.is_empty() {
                repair(worker, source, fixes, report).await?;
            }
            continue;
        }
        let keys: Vec<String> = orphans.iter().map(|row| row.key.clone()).collect();
        let in_store = match worker
            .key_value_store()
            .filter(|_| table.is_synchronization_enabled(worker.synchronization_enabled()))
        {
            Some(store) => Some(store.get_multi(&keys).await?),
            None => None,
        };
        for (index, row) in orphans.iter().enumerate() {
            report.storage.orphaned.add(&row.key, options.sample);
            fixes.republish.extend(row.reference);
            if let (Some(differences), Some(values)) = (report.key_value.as_mut(), &in_store)
                && values[index].is_some()
            {
                differences.orphaned.add(&row.key, options.sample);
            }
        }
        if options.repair {
            repair(worker, source, fixes, report).await?;
        }
    }
    Ok(())
}

/// Pass 3: the store's keys of the resource that no storage row (or alias of one) holds and
/// the source does not give.
async fn orphaned_keys<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    tables: &[&'static SynchronizationDefinition],
    missing_rows: &HashSet<String>,
    options: &VerifyOptions,
    report: &mut VerifyReport,
    stop: &Stop,
) -> Result<(), VerifyError> {
    let Some(store) = worker.key_value_store() else {
        return Ok(());
    };
    let pattern = format!("{}:*", source.resource);
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor = 0;
    loop {
        if stop.requested() {
            return Ok(());
        }
        let page = store
            .scan(&pattern, options.chunk_size.max(1), cursor)
            .await?;
        let keys: Vec<String> = page
            .keys
            .into_iter()
            .filter(|key| !missing_rows.contains(key) && !seen.contains(key))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut known: HashSet<String> = HashSet::new();
        for table in tables {
            let (table, lookup) = (*table, keys.clone());
            let (rows, aliases) = worker
                .database
                .blocking(move |db| {
                    Ok::<_, pubsync_database::DatabaseError>((
                        pages::storage_rows_by_key(db, table, &lookup)?,
                        pages::alias_keys(db, table, &lookup)?,
                    ))
                })
                .await?;
            known.extend(rows.rows.into_iter().map(|row| row.key));
            known.extend(aliases);
        }
        let orphans: Vec<String> = keys
            .into_iter()
            .filter(|key| !known.contains(key))
            .collect();
        if !orphans.is_empty() {
            let values = store.get_multi(&orphans).await?;
            let mut fixes = Fixes::default();
            for (key, value) in orphans.into_iter().zip(values) {
                let Some(value) = value else {
                    continue; // gone since the scan
                };
                if let Some(differences) = report.key_value.as_mut() {
                    differences.orphaned.add(&key, options.sample);
                }
                fixes.delete.push(StorageChange::Delete {
                    version: stored_version(&value).next(),
                    key: key.clone(),
                });
                seen.insert(key);
            }
            if options.repair {
                repair(worker, source, fixes, report).await?;
            }
        }
        cursor = page.cursor;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// What the publishers of `source` would write for `ids`: expected key → (data, table,
/// reference).
async fn recompute<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    ids: &[i64],
    by_table: &HashMap<&str, &'static SynchronizationDefinition>,
) -> Result<Expected, VerifyError> {
    let (storage, recording) = worker.consumer.context.storage.recording();
    let context = PublishContext {
        database: worker.database.clone(),
        storage,
    };
    let transfers = source.events(ids.iter().copied());
    for registration in worker.listeners.listeners(source.event) {
        let (publisher, context, transfers) = (
            registration.publisher.clone(),
            context.clone(),
            transfers.clone(),
        );
        let event = source.event;
        tokio::task::spawn_blocking(move || publisher.handle_bulk(&context, event, &transfers))
            .await
            .map_err(|error| error.to_string())
            .and_then(|result| result.map_err(|error| error.to_string()))
            .map_err(|reason| VerifyError::Publisher {
                listener: registration.publisher.name().to_owned(),
                first: ids[0],
                last: ids[ids.len() - 1],
                reason,
            })?;
    }
    let mut expected = HashMap::new();
    for write in recording.take() {
        let Some(table) = by_table.get(write.table.as_str()) else {
            continue;
        };
        for row in write.rows {
            let reference = match row.reference {
                Reference::Int(value) => Some(value),
                Reference::Text(_) | Reference::None => None,
            };
            expected.insert(row.key, (row.data, *table, reference));
        }
    }
    Ok(expected)
}

/// Carries out a chunk's fixes, in order: re-publish, re-sync, delete orphaned keys.
async fn repair<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    fixes: Fixes,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let repairs = report.repairs.get_or_insert_with(Repairs::default);
    let mut unreadable: BTreeMap<&str, (&'static SynchronizationDefinition, Vec<Vec<u8>>)> =
        BTreeMap::new();
    for (table, key) in fixes.unreadable {
        unreadable
            .entry(table.table)
            .or_insert_with(|| (table, Vec::new()))
            .1
            .push(key);
    }
    for (table, keys) in unreadable.into_values() {
        repairs.unreadable_deleted += worker
            .database
            .blocking(move |db| pages::delete_unreadable(db, table, &keys))
            .await?;
    }
    if !fixes.republish.is_empty() {
        let transfers = source.events(fixes.republish.iter().copied());
        repairs.republished += dispatch(worker, source.event, transfers, false)
            .await?
            .handled;
        worker.relay_sync_outbox().await?;
    }
    for (table, keys) in fixes.resync.into_values() {
        let mut exported = ExportReport::default();
        export_keys(worker, table, keys, &mut exported).await?;
        repairs.resynced += exported.exported;
    }
    if let (Some(store), false) = (worker.key_value_store(), fixes.delete.is_empty()) {
        repairs.deleted += fixes.delete.len();
        store.apply(fixes.delete).await?;
    }
    Ok(())
}

/// Whether a storage row's `data` is `expected`.
fn same_data(data: Option<&str>, expected: &Value) -> bool {
    data.and_then(|text| serde_json::from_str::<Value>(text).ok())
        .is_some_and(|value| value == *expected)
}

/// Whether a stored value is `expected`, its `_timestamp` aside.
fn same_value(text: &str, expected: &Value) -> bool {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => {
            map.remove(TIMESTAMP_FIELD);
            Value::Object(map) == *expected
        }
        _ => false,
    }
}

/// The version a stored value carries (`_timestamp`), or the oldest there is.
fn stored_version(text: &str) -> Version {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| value.get(TIMESTAMP_FIELD).and_then(Value::as_f64))
        .and_then(Version::from_seconds)
        .unwrap_or(Version::from_micros(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_values_compare_without_their_timestamp() {
        let expected = json!({"name": "a", "message": null});
        assert!(same_value(
            r#"{"name":"a","message":null,"_timestamp":1.5}"#,
            &expected
        ));
        assert!(!same_value(r#"{"name":"b","_timestamp":1.5}"#, &expected));
        assert!(!same_value("not json", &expected));
        assert!(same_data(Some(r#"{"message":null,"name":"a"}"#), &expected));
        assert!(!same_data(None, &expected));
    }

    #[test]
    fn an_orphan_is_deleted_one_microsecond_after_its_version() {
        assert_eq!(
            stored_version(r#"{"_timestamp":1599741494.267689}"#).next(),
            Version::from_micros(1_599_741_494_267_690)
        );
        assert_eq!(stored_version("{}"), Version::from_micros(0));
    }

    #[test]
    fn found_counts_all_and_names_the_first() {
        let mut found = Found::default();
        for key in ["a", "b", "c"] {
            found.add(key, 2);
        }
        assert_eq!(found.count, 3);
        assert_eq!(found.first, ["a", "b"]);
    }
}
