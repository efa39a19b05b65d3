//! Synchronization: storage-table changes to the key-value store.
//!
//! The storage tables' generated triggers record every change in the sync outbox
//! (`pubsync_sync_outbox`) in the publisher's own transaction, so a publish that rolls back
//! sends nothing and one that commits cannot be lost (no dual write). The [`SyncRelay`] turns
//! outbox rows into the reference's `{"write":…}` / `{"delete":…}` messages (plus alias-key
//! messages for `mappings`), many per queue message, and sends them to each table's
//! `queue_group`; in direct mode it writes them to storage at once and falls back to the queue
//! when that fails. The [`SyncConsumer`] applies a chunk of sync messages in one versioned call:
//! `_timestamp` is the change's clock time in microseconds, and the storage never lets an older
//! change replace a newer one.

use std::collections::{BTreeMap, HashMap};

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Nullable, Text};
use pubsync_database::{Database, DatabaseError, with_connection};
use pubsync_queue_extension::{Delivery, Queue, QueueError, Settlement, error_queue_name};
use pubsync_shared::key::{KeyBuilders, SynchronizationData};
use pubsync_shared::message::{SyncMessage, SyncPayload};
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_storage_extension::{StorageChange, StorageError, StorageWriter as KeyValueWriter};
use serde_json::{Map, Value, json};

use crate::relay::RelayError;
use crate::storage_writer::alias_entries;

/// The sync outbox table.
pub const SYNC_OUTBOX_TABLE: &str = "pubsync_sync_outbox";

/// Where outbox rows of a table no linked module declares go (`sync.error`).
pub const UNROUTABLE_QUEUE: &str = "sync";

/// Settings of synchronization.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The global switch; a table's `synchronization_enabled` overrides it.
    pub enabled: bool,
    /// Write to storage right after publishing instead of through the sync queue, falling
    /// back to the queue when the write fails.
    pub direct: bool,
    /// Outbox rows read per pass.
    pub chunk_size: usize,
    /// Sync messages carried in one queue message (1 with `spryker_compatible`).
    pub changes_per_message: usize,
    /// One sync message per queue message, as the original sends them.
    pub spryker_compatible: bool,
    /// Queue messages taken per chunk by the consumer, at most: a chunk holds about
    /// `max_chunk_changes` changes ([`SyncConfig::messages_per_chunk`]).
    pub consumer_chunk_size: usize,
    /// About how many changes a consumer chunk may hold, whatever the number of messages.
    pub max_chunk_changes: usize,
}

impl SyncConfig {
    /// Sync queue messages the consumer takes per chunk.
    pub fn messages_per_chunk(&self) -> usize {
        let per_message = if self.spryker_compatible {
            1
        } else {
            self.changes_per_message.max(1)
        };
        self.consumer_chunk_size
            .min(self.max_chunk_changes / per_message)
            .max(1)
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            direct: false,
            chunk_size: 1000,
            changes_per_message: 500,
            spryker_compatible: false,
            consumer_chunk_size: 100,
            max_chunk_changes: 10_000,
        }
    }
}

/// The storage tables of the linked modules, by table name.
#[derive(Debug, Clone, Default)]
pub struct SyncTables {
    by_table: HashMap<&'static str, &'static SynchronizationDefinition>,
}

impl SyncTables {
    /// The tables of `definitions`.
    pub fn new(definitions: impl IntoIterator<Item = &'static SynchronizationDefinition>) -> Self {
        Self {
            by_table: definitions
                .into_iter()
                .map(|definition| (definition.table, definition))
                .collect(),
        }
    }

    /// The sync queues of the tables that synchronize, sorted, without repeats.
    pub fn queues(&self, config: &SyncConfig) -> Vec<String> {
        let mut queues: Vec<String> = self
            .by_table
            .values()
            .filter(|definition| definition.is_synchronization_enabled(config.enabled))
            .map(|definition| definition.queue_group.to_owned())
            .collect();
        queues.sort();
        queues.dedup();
        queues
    }

    fn get(&self, table: &str) -> Option<&'static SynchronizationDefinition> {
        self.by_table.get(table).copied()
    }
}

#[derive(diesel::QueryableByName, Debug)]
struct SyncRow {
    #[diesel(sql_type = BigInt)]
    id_sync_outbox: i64,
    #[diesel(sql_type = Text)]
    storage_table: String,
    #[diesel(sql_type = Text)]
    storage_key: String,
    #[diesel(sql_type = Text)]
    operation: String,
    #[diesel(sql_type = Nullable<Text>)]
    data: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    previous_data: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    store: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    locale: Option<String>,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// The database-wide setting that the sync triggers read: with synchronization switched off,
/// tables that follow the global switch record no sync intents at all (no outbox rows to write,
/// relay and delete). Written by `pubsync setup` and at every worker start.
pub const SETTING_TABLE: &str = "pubsync_setting";

/// Records the global synchronization switch in `database` for its sync triggers.
pub fn record_switch(database: &Database, enabled: bool) -> Result<(), DatabaseError> {
    let dialect = database.dialect();
    let (table, name, value) = (
        dialect.quote(SETTING_TABLE),
        dialect.quote("name"),
        dialect.quote("value"),
    );
    let placeholders = dialect.placeholders(1, 2);
    let sql = match dialect {
        pubsync_database::Dialect::Mysql => {
            format!(
                "INSERT INTO {table} ({name}, {value}) VALUES ({placeholders}) ON DUPLICATE KEY UPDATE {value} = VALUES({value})"
            )
        }
        _ => format!(
            "INSERT INTO {table} ({name}, {value}) VALUES ({placeholders}) ON CONFLICT ({name}) DO UPDATE SET {value} = excluded.{value}"
        ),
    };
    let setting = if enabled { "on" } else { "off" };
    with_connection!(database, |conn| {
        diesel::sql_query(&sql)
            .bind::<Text, _>("synchronization")
            .bind::<Text, _>(setting)
            .execute(conn)
            .map(drop)
            .map_err(DatabaseError::query("record the synchronization switch"))
    })
}

/// What one sync relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncPass {
    /// Outbox rows read and deleted.
    pub rows: usize,
    /// Sync messages produced.
    pub changes: usize,
    /// Changes written to storage directly.
    pub direct: usize,
    /// Rows that could not be turned into messages and went to an error queue.
    pub failed: usize,
}

/// Moves the sync outbox to the sync queues (or, in direct mode, to storage).
#[derive(Debug, Clone)]
pub struct SyncRelay {
    database: Database,
    tables: SyncTables,
    keys: std::sync::Arc<KeyBuilders>,
    config: SyncConfig,
    last_versions: std::sync::Arc<std::sync::Mutex<HashMap<String, i64>>>,
}

/// How many keys' last versions the relay remembers before it forgets them all.
const REMEMBERED_VERSIONS: usize = 100_000;

impl SyncRelay {
    /// A relay over `database`'s sync outbox for `tables`.
    pub fn new(
        database: Database,
        tables: SyncTables,
        keys: std::sync::Arc<KeyBuilders>,
        config: SyncConfig,
    ) -> Self {
        Self {
            database,
            tables,
            keys,
            config,
            last_versions: std::sync::Arc::default(),
        }
    }

    /// Makes the versions of each key strictly increase in outbox order. SQLite's clock has
    /// millisecond resolution, so two changes of one key within a millisecond carry the same
    /// version, and storage keeps only the first of two equal versions.
    fn order_versions(&self, rows: &mut [SyncRow]) {
        let mut last_versions = self
            .last_versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last_versions.len() > REMEMBERED_VERSIONS {
            last_versions.clear();
        }
        for row in rows {
            let last = last_versions
                .entry(row.storage_key.clone())
                .or_insert(i64::MIN);
            row.version = row.version.max(last.saturating_add(1));
            *last = row.version;
        }
    }

    /// Relays one chunk of the sync outbox; `writer` is used in direct mode.
    pub async fn relay_once<Q: Queue, W: KeyValueWriter>(
        &self,
        queue: &Q,
        writer: Option<&W>,
    ) -> Result<SyncPass, RelayError> {
        let limit = self.config.chunk_size as i64;
        let mut rows = self
            .database
            .blocking(move |db| read_sync_outbox(db, limit))
            .await?;
        if rows.is_empty() {
            return Ok(SyncPass::default());
        }
        self.order_versions(&mut rows);
        let ids: Vec<i64> = rows.iter().map(|row| row.id_sync_outbox).collect();
        let mut pass = SyncPass {
            rows: rows.len(),
            ..SyncPass::default()
        };
        let mut by_queue: BTreeMap<String, Vec<SyncMessage>> = BTreeMap::new();
        let mut direct: Vec<(String, Vec<SyncMessage>)> = Vec::new();
        let mut errors: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for row in rows {
            let Some(definition) = self.tables.get(&row.storage_table) else {
                pass.failed += 1;
                let reason = format!(
                    "no linked module declares storage table {:?}",
                    row.storage_table
                );
                tracing::error!(table = %row.storage_table, key = %row.storage_key, "{reason}");
                errors
                    .entry(error_queue_name(UNROUTABLE_QUEUE))
                    .or_default()
                    .push(row_error(&row, &reason));
                continue;
            };
            if !definition.is_synchronization_enabled(self.config.enabled) {
                continue;
            }
            match messages_for(definition, &row, &self.keys) {
                Ok(messages) => {
                    pass.changes += messages.len();
                    if self.config.direct && !definition.direct_sync_disabled && writer.is_some() {
                        direct.push((definition.queue_group.to_owned(), messages));
                    } else {
                        by_queue
                            .entry(definition.queue_group.to_owned())
                            .or_default()
                            .extend(messages);
                    }
                }
                Err(reason) => {
                    pass.failed += 1;
                    tracing::error!(table = %row.storage_table, key = %row.storage_key, reason, "sync outbox row is unusable");
                    errors
                        .entry(error_queue_name(definition.queue_group))
                        .or_default()
                        .push(row_error(&row, &reason));
                }
            }
        }
        if let (Some(writer), false) = (writer, direct.is_empty()) {
            let changes: Vec<StorageChange> = direct
                .iter()
                .flat_map(|(_, messages)| messages.iter().map(to_change))
                .collect();
            let count = changes.len();
            match writer.apply(changes).await {
                Ok(_) => pass.direct += count,
                Err(error) => {
                    tracing::warn!(error = %error, changes = count, "direct synchronization failed, sending through the sync queue");
                    for (queue_name, messages) in direct {
                        by_queue.entry(queue_name).or_default().extend(messages);
                    }
                }
            }
        }
        for (queue_name, messages) in by_queue {
            queue.send(&queue_name, self.bodies(&messages)).await?;
        }
        for (queue_name, bodies) in errors {
            queue.send(&queue_name, bodies).await?;
        }
        self.database
            .blocking(move |db| delete_sync_rows(db, &ids))
            .await?;
        Ok(pass)
    }

    /// Whether the sync outbox holds rows.
    pub async fn is_empty(&self) -> Result<bool, DatabaseError> {
        Ok(self
            .database
            .blocking(|db| read_sync_outbox(db, 1))
            .await?
            .is_empty())
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

/// The messages of one outbox row: the row's write or delete, and its alias keys' messages.
fn messages_for(
    definition: &SynchronizationDefinition,
    row: &SyncRow,
    keys: &KeyBuilders,
) -> Result<Vec<SyncMessage>, String> {
    let timestamp = row.version as f64 / 1_000_000.0;
    let params = match definition.params {
        Some(params) => serde_json::from_str(params)
            .map_err(|e| format!("params of {} are not JSON: {e}", definition.table))?,
        None => json!([]),
    };
    let payload = |key: String, value: Map<String, Value>| SyncPayload {
        key,
        value,
        resource: definition.resource.to_owned(),
        store: Some(row.store.clone().unwrap_or_default()),
        params: Some(params.clone()),
    };
    let stamp = |mut value: Map<String, Value>| {
        value.insert("_timestamp".to_owned(), json!(timestamp));
        value
    };
    let key_data = SynchronizationData {
        reference: None,
        store: row.store.clone(),
        locale: row.locale.clone(),
    };
    let aliases = |data: &Map<String, Value>| alias_entries(definition, keys, &key_data, data);
    let previous = row
        .previous_data
        .as_deref()
        .map(parse_object)
        .transpose()?
        .unwrap_or_default();
    let mut messages = Vec::new();
    match row.operation.as_str() {
        "write" => {
            let data = parse_object(row.data.as_deref().ok_or("a write without data")?)?;
            let current = aliases(&data);
            messages.push(SyncMessage::Write(payload(
                row.storage_key.clone(),
                stamp(data),
            )));
            for (key, id) in &current {
                messages.push(SyncMessage::Write(alias_payload(
                    definition,
                    key,
                    json!({"id": id, "_timestamp": timestamp}),
                )));
            }
            for (key, _) in aliases(&previous) {
                if !current.iter().any(|(current_key, _)| *current_key == key) {
                    messages.push(SyncMessage::Delete(alias_payload(
                        definition,
                        &key,
                        json!({"_timestamp": timestamp}),
                    )));
                }
            }
        }
        "delete" => {
            messages.push(SyncMessage::Delete(payload(
                row.storage_key.clone(),
                stamp(Map::new()),
            )));
            for (key, _) in aliases(&previous) {
                messages.push(SyncMessage::Delete(alias_payload(
                    definition,
                    &key,
                    json!({"_timestamp": timestamp}),
                )));
            }
        }
        other => return Err(format!("unknown operation {other:?}")),
    }
    Ok(messages)
}

/// Mapping messages have no store or params (reference 5.4).
fn alias_payload(definition: &SynchronizationDefinition, key: &str, value: Value) -> SyncPayload {
    let Value::Object(value) = value else {
        unreachable!("alias values are objects")
    };
    SyncPayload {
        key: key.to_owned(),
        value,
        resource: definition.resource.to_owned(),
        store: None,
        params: None,
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("storage data is not a JSON object".to_owned()),
        Err(error) => Err(format!("storage data is not JSON: {error}")),
    }
}

fn row_error(row: &SyncRow, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "errorMessage": reason,
        "storageTable": row.storage_table,
        "key": row.storage_key,
        "operation": row.operation,
        "data": row.data,
        "version": row.version,
    }))
    .expect("json serialises")
}

/// The versioned storage change of a sync message. A message without `_timestamp` (the
/// original's `sync:data` export sends none) counts as current.
pub fn to_change(message: &SyncMessage) -> StorageChange {
    let version = message
        .timestamp()
        .unwrap_or_else(|| pubsync_database::now_millis() as f64 / 1000.0);
    match message {
        SyncMessage::Write(payload) => StorageChange::Write {
            key: payload.key.clone(),
            value: serde_json::to_string(&payload.value).expect("json serialises"),
            version,
        },
        SyncMessage::Delete(payload) => StorageChange::Delete {
            key: payload.key.clone(),
            version,
        },
    }
}

fn read_sync_outbox(database: &Database, limit: i64) -> Result<Vec<SyncRow>, DatabaseError> {
    let sql = format!(
        "SELECT id_sync_outbox, storage_table, storage_key, operation, data, previous_data, store, locale, version \
         FROM {SYNC_OUTBOX_TABLE} ORDER BY id_sync_outbox LIMIT {}",
        database.dialect().placeholder(1)
    );
    with_connection!(database, |conn| {
        diesel::sql_query(&sql)
            .bind::<BigInt, _>(limit)
            .load::<SyncRow>(conn)
            .map_err(DatabaseError::query("read the sync outbox"))
    })
}

fn delete_sync_rows(database: &Database, ids: &[i64]) -> Result<(), DatabaseError> {
    crate::relay::delete_by_ids(
        database,
        SYNC_OUTBOX_TABLE,
        "id_sync_outbox",
        ids,
        "delete relayed sync outbox rows",
    )
}

/// What one sync chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Queue messages in the chunk.
    pub messages: usize,
    /// Changes applied to storage (older ones skipped are not counted).
    pub applied: usize,
    /// Messages sent to the error queue.
    pub failed: usize,
}

/// Why a sync chunk was not settled. Its messages are released and come back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
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
            Self::Queue(error) => error.is_transient(),
            Self::Storage(error) => error.is_transient(),
        }
    }
}

/// Applies chunks of sync messages to storage.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncConsumer;

impl SyncConsumer {
    /// Applies `deliveries` of `queue_name` to `writer` and settles them. Every change of the
    /// chunk goes in one `apply` call; when storage refuses it for a reason other than being
    /// unreachable, each message is applied alone and those that still fail go to the error
    /// queue with the reason, so one bad message does not hold back the chunk. When storage is
    /// unreachable the chunk is released and the error returned.
    pub async fn process<Q: Queue, W: KeyValueWriter>(
        &self,
        queue: &Q,
        queue_name: &str,
        deliveries: Vec<Delivery>,
        writer: &W,
    ) -> Result<SyncOutcome, SyncError> {
        let mut outcome = SyncOutcome {
            messages: deliveries.len(),
            ..SyncOutcome::default()
        };
        let mut settlement = Settlement::default();
        let mut decoded: Vec<(&Delivery, Vec<StorageChange>)> = Vec::new();
        for delivery in &deliveries {
            match SyncMessage::decode_batch(&delivery.body) {
                Ok(messages) => decoded.push((delivery, messages.iter().map(to_change).collect())),
                Err(error) => {
                    tracing::error!(queue = queue_name, error = %error, "sync message cannot be read");
                    outcome.failed += 1;
                    settlement
                        .error
                        .push(sync_error_body(&delivery.body, &error.to_string()));
                    settlement.acknowledge.push(delivery.tag);
                }
            }
        }
        let all: Vec<StorageChange> = decoded
            .iter()
            .flat_map(|(_, changes)| changes.iter().cloned())
            .collect();
        match writer.apply(all).await {
            Ok(applied) => {
                outcome.applied = applied;
                settlement
                    .acknowledge
                    .extend(decoded.iter().map(|(delivery, _)| delivery.tag));
            }
            Err(error) if error.is_transient() => {
                return Err(release_all(queue, queue_name, &deliveries, error).await);
            }
            Err(error) => {
                tracing::warn!(queue = queue_name, error = %error, "bulk storage write failed, writing messages one by one");
                for (delivery, changes) in decoded {
                    match writer.apply(changes).await {
                        Ok(applied) => outcome.applied += applied,
                        Err(error) if error.is_transient() => {
                            return Err(release_all(queue, queue_name, &deliveries, error).await);
                        }
                        Err(error) => {
                            tracing::error!(queue = queue_name, error = %error, "sync message moved to the error queue");
                            outcome.failed += 1;
                            settlement
                                .error
                                .push(sync_error_body(&delivery.body, &error.to_string()));
                        }
                    }
                    settlement.acknowledge.push(delivery.tag);
                }
            }
        }
        queue.settle(queue_name, settlement).await?;
        Ok(outcome)
    }
}

/// Puts a whole chunk back (storage is unreachable) and returns why.
async fn release_all<Q: Queue>(
    queue: &Q,
    queue_name: &str,
    deliveries: &[Delivery],
    error: StorageError,
) -> SyncError {
    let release = Settlement {
        release: deliveries.iter().map(|d| d.tag).collect(),
        ..Settlement::default()
    };
    match queue.settle(queue_name, release).await {
        Ok(()) => error.into(),
        Err(queue_error) => queue_error.into(),
    }
}

fn sync_error_body(body: &[u8], reason: &str) -> Vec<u8> {
    let original = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    serde_json::to_vec(&json!({ "errorMessage": reason, "body": original }))
        .expect("json serialises")
}

/// The key-value storage of a worker that does not synchronize (database storage, the
/// key-value bypass): every operation is unsupported.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeyValueStorage;

impl pubsync_storage_extension::StorageReader for NoKeyValueStorage {
    async fn get(&self, _key: &str) -> Result<Option<String>, StorageError> {
        Err(StorageError::Unsupported {
            operation: "get",
            backend: "no key-value",
        })
    }

    async fn get_multi(&self, _keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        Err(StorageError::Unsupported {
            operation: "get_multi",
            backend: "no key-value",
        })
    }

    async fn scan(
        &self,
        _pattern: &str,
        _limit: usize,
        _cursor: u64,
    ) -> Result<pubsync_storage_extension::ScanPage, StorageError> {
        Err(StorageError::Unsupported {
            operation: "scan",
            backend: "no key-value",
        })
    }
}

impl KeyValueWriter for NoKeyValueStorage {
    async fn apply(&self, _changes: Vec<StorageChange>) -> Result<usize, StorageError> {
        Err(StorageError::Unsupported {
            operation: "apply",
            backend: "no key-value",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubsync_shared::synchronization::Mapping;

    const PRODUCT: SynchronizationDefinition = SynchronizationDefinition {
        table: "spy_product_abstract_storage",
        resource: "product_abstract",
        key_suffix_column: Some("fk_product_abstract"),
        store: true,
        locale: true,
        queue_group: "sync.storage.product",
        queue_pool: None,
        params: None,
        mappings: &[Mapping {
            source: "sku",
            destination: "id_product_abstract",
        }],
        synchronization_enabled: None,
        timestampable: true,
        direct_sync_disabled: false,
    };

    fn row(operation: &str, data: Option<&str>, previous: Option<&str>) -> SyncRow {
        SyncRow {
            id_sync_outbox: 1,
            storage_table: PRODUCT.table.to_owned(),
            storage_key: "product_abstract:de:de_de:100".to_owned(),
            operation: operation.to_owned(),
            data: data.map(str::to_owned),
            previous_data: previous.map(str::to_owned),
            store: Some("DE".to_owned()),
            locale: Some("de_DE".to_owned()),
            version: 1_599_741_494_267_689,
        }
    }

    fn bodies(messages: &[SyncMessage]) -> Vec<Value> {
        messages
            .iter()
            .map(|m| serde_json::from_slice(&m.encode()).unwrap())
            .collect()
    }

    #[test]
    fn writes_have_the_reference_format_with_alias_keys() {
        let data = r#"{"sku":"001","id_product_abstract":100,"name":"Shoe"}"#;
        let messages = messages_for(
            &PRODUCT,
            &row("write", Some(data), None),
            &KeyBuilders::default(),
        )
        .unwrap();
        assert_eq!(
            bodies(&messages),
            [
                json!({"write":{"key":"product_abstract:de:de_de:100",
                    "value":{"sku":"001","id_product_abstract":100,"name":"Shoe","_timestamp":1599741494.267689},
                    "resource":"product_abstract","store":"DE","params":[]}}),
                json!({"write":{"key":"product_abstract:de:de_de:sku:001",
                    "value":{"id":100,"_timestamp":1599741494.267689},"resource":"product_abstract"}}),
            ]
        );
    }

    #[test]
    fn a_changed_alias_removes_the_old_alias_key() {
        let old = r#"{"sku":"001","id_product_abstract":100}"#;
        let new = r#"{"sku":"002","id_product_abstract":100}"#;
        let messages = messages_for(
            &PRODUCT,
            &row("write", Some(new), Some(old)),
            &KeyBuilders::default(),
        )
        .unwrap();
        let keys: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| {
                (
                    if matches!(m, SyncMessage::Write(_)) {
                        "write"
                    } else {
                        "delete"
                    },
                    m.payload().key.as_str(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("write", "product_abstract:de:de_de:100"),
                ("write", "product_abstract:de:de_de:sku:002"),
                ("delete", "product_abstract:de:de_de:sku:001"),
            ]
        );
    }

    #[test]
    fn deletes_carry_only_the_timestamp_and_remove_aliases() {
        let old = r#"{"sku":"001","id_product_abstract":100}"#;
        let messages = messages_for(
            &PRODUCT,
            &row("delete", None, Some(old)),
            &KeyBuilders::default(),
        )
        .unwrap();
        assert_eq!(
            bodies(&messages)[0],
            json!({"delete":{"key":"product_abstract:de:de_de:100","value":{"_timestamp":1599741494.267689},
                   "resource":"product_abstract","store":"DE","params":[]}})
        );
        assert_eq!(
            messages[1].payload().key,
            "product_abstract:de:de_de:sku:001"
        );
        match to_change(&messages[0]) {
            StorageChange::Delete { version, .. } => {
                assert_eq!((version * 1e6).round() as i64, 1_599_741_494_267_689)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn versions_of_one_key_strictly_increase_even_within_a_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let url = pubsync_database::DatabaseUrl::Sqlite(dir.path().join("v.db"));
        let database = Database::connect(&url, &Default::default()).unwrap();
        let relay = SyncRelay::new(
            database,
            SyncTables::default(),
            Default::default(),
            SyncConfig::default(),
        );
        let mut rows = vec![
            row("write", Some("{}"), None),
            row("write", Some("{}"), None),
            row("delete", None, None),
        ];
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
        relay.order_versions(&mut later);
        assert_eq!(
            later[0].version, 1_599_741_494_267_695,
            "remembered across passes"
        );
    }

    #[test]
    fn unusable_rows_say_why() {
        let error = messages_for(
            &PRODUCT,
            &row("write", Some("[1]"), None),
            &KeyBuilders::default(),
        )
        .unwrap_err();
        assert_eq!(error, "storage data is not a JSON object");
        let error = messages_for(
            &PRODUCT,
            &row("upsert", Some("{}"), None),
            &KeyBuilders::default(),
        )
        .unwrap_err();
        assert_eq!(error, "unknown operation \"upsert\"");
    }

    #[test]
    fn only_enabled_tables_have_sync_queues() {
        const OFF: SynchronizationDefinition = SynchronizationDefinition {
            table: "t_off",
            queue_group: "sync.storage.off",
            synchronization_enabled: Some(false),
            ..PRODUCT
        };
        const ON: SynchronizationDefinition = SynchronizationDefinition {
            table: "t_on",
            queue_group: "sync.search.on",
            synchronization_enabled: Some(true),
            ..PRODUCT
        };
        let tables = SyncTables::new([&PRODUCT, &OFF, &ON]);
        assert_eq!(
            tables.queues(&SyncConfig::default()),
            ["sync.search.on", "sync.storage.product"]
        );
        let off = SyncConfig {
            enabled: false,
            ..SyncConfig::default()
        };
        assert_eq!(tables.queues(&off), ["sync.search.on"]);
    }
}
