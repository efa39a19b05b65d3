//! What one sync outbox row means for the key-value store: a write or delete of the row's key,
//! and of each alias key its `mappings` give it or take from it.
//!
//! The row becomes [`RowChanges`] once; direct mode turns them into [`StorageChange`]s for the
//! store, the queue path into the original's sync messages. A stored value carries the
//! change's version as its `_timestamp`, in seconds, as the original's do.

use diesel::sql_types::{BigInt, Binary, Nullable};
use pubsync_shared::key::{KeyBuilders, SynchronizationData};
use pubsync_shared::message::{ErrorQueueMessage, SyncMessage, SyncPayload, TIMESTAMP_FIELD};
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_shared::version::Version;
use pubsync_storage_extension::StorageChange;
use serde_json::{Map, Value, json};

use pubsync_database::names::sync_outbox;

use super::stamp::stamped;

/// One row of the sync outbox.
#[derive(Debug, Clone)]
pub(crate) struct SyncRow {
    pub(crate) id_sync_outbox: i64,
    pub(crate) storage_table: String,
    pub(crate) storage_key: String,
    pub(crate) operation: String,
    pub(crate) data: Option<String>,
    pub(crate) previous_data: Option<String>,
    pub(crate) store: Option<String>,
    pub(crate) locale: Option<String>,
    /// The change's [`Version`] in microseconds, as the trigger recorded it.
    pub(crate) version: i64,
}

/// A sync outbox row as stored, its text columns as bytes: SQLite keeps whatever it is given,
/// and a row that is not UTF-8 must reach the error queue as it is instead of failing its
/// chunk for ever.
#[derive(diesel::QueryableByName, Debug)]
pub(crate) struct StoredSyncRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id_sync_outbox: i64,
    #[diesel(sql_type = Binary)]
    storage_table: Vec<u8>,
    #[diesel(sql_type = Binary)]
    storage_key: Vec<u8>,
    #[diesel(sql_type = Binary)]
    operation: Vec<u8>,
    #[diesel(sql_type = Nullable<Binary>)]
    data: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    previous_data: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    store: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    locale: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

impl StoredSyncRow {
    /// The row, or, when a text column is not UTF-8, its error-queue message (every column
    /// kept, the bytes exactly) and the storage table it names when that one is readable.
    pub(crate) fn decode(self) -> Result<SyncRow, (Option<String>, Vec<u8>)> {
        fn text(bytes: &[u8]) -> Option<String> {
            std::str::from_utf8(bytes).ok().map(str::to_owned)
        }
        let optional = |bytes: &Option<Vec<u8>>| match bytes {
            None => Some(None),
            Some(bytes) => text(bytes).map(Some),
        };
        let decoded = (|| {
            Some(SyncRow {
                id_sync_outbox: self.id_sync_outbox,
                storage_table: text(&self.storage_table)?,
                storage_key: text(&self.storage_key)?,
                operation: text(&self.operation)?,
                data: optional(&self.data)?,
                previous_data: optional(&self.previous_data)?,
                store: optional(&self.store)?,
                locale: optional(&self.locale)?,
                version: self.version,
            })
        })();
        decoded.ok_or_else(|| {
            let columns = [
                ("storageTable", Some(&self.storage_table)),
                ("key", Some(&self.storage_key)),
                ("operation", Some(&self.operation)),
                ("data", self.data.as_ref()),
                ("previousData", self.previous_data.as_ref()),
                ("store", self.store.as_ref()),
                ("locale", self.locale.as_ref()),
            ];
            let unreadable: Vec<&str> = columns
                .iter()
                .filter(|(_, bytes)| bytes.is_some_and(|bytes| std::str::from_utf8(bytes).is_err()))
                .map(|(name, _)| *name)
                .collect();
            let id = self.id_sync_outbox;
            let reason = format!(
                "sync outbox row {id} is not valid UTF-8 in {}",
                unreadable.join(", ")
            );
            tracing::error!(
                sync_outbox_id = id,
                reason,
                "sync outbox row cannot be read"
            );
            let mut message = ErrorQueueMessage::new(reason).with("syncOutboxId", id);
            for (name, bytes) in columns {
                if let Some(bytes) = bytes {
                    message = message.with_bytes(name, bytes);
                }
            }
            let message = message.with("version", self.version).encode();
            (text(&self.storage_table), message)
        })
    }
}

impl SyncRow {
    pub(crate) fn version(&self) -> Version {
        Version::from_micros(self.version)
    }

    /// The error-queue message of a row that cannot be synchronized, with the row kept.
    pub(crate) fn error_message(&self, reason: &str) -> Vec<u8> {
        ErrorQueueMessage::new(reason)
            .with("syncOutboxId", self.id_sync_outbox)
            .with("storageTable", self.storage_table.as_str())
            .with("key", self.storage_key.as_str())
            .with("operation", self.operation.as_str())
            .with("data", self.data.as_deref())
            .with("version", self.version)
            .encode()
    }
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyChange {
    key: String,
    /// What to store, `_timestamp` included; `None` removes the key.
    value: Option<Map<String, Value>>,
    /// Whether the key is an alias (mapping) key, whose messages carry no store or params.
    alias: bool,
}

/// The changes of one sync outbox row, in order: its own key first, then its alias keys.
#[derive(Debug, Clone)]
pub(crate) struct RowChanges {
    changes: Vec<KeyChange>,
    version: Version,
    /// The row's store, `""` for store-less tables, as messages carry it.
    store: String,
    /// The table's `params`, `[]` when it has none.
    params: Value,
    resource: &'static str,
}

impl RowChanges {
    /// The changes `row` of `definition` makes, or why it cannot be read.
    pub(crate) fn of(
        definition: &SynchronizationDefinition,
        row: &SyncRow,
        keys: &KeyBuilders,
    ) -> Result<Self, String> {
        let version = row.version();
        let params = match definition.params {
            Some(params) => serde_json::from_str(params)
                .map_err(|e| format!("params of {} are not JSON: {e}", definition.table))?,
            None => json!([]),
        };
        let key_data = SynchronizationData {
            reference: None,
            store: row.store.clone(),
            locale: row.locale.clone(),
        };
        let aliases = |data: &Map<String, Value>| keys.alias_entries(definition, &key_data, data);
        // The previous data only tells which alias keys go; a table without alias keys
        // does not read it.
        let previous = match row.previous_data.as_deref() {
            Some(previous) if !definition.mappings.is_empty() => parse_object(previous)?,
            _ => Map::new(),
        };
        let stamp = |mut value: Map<String, Value>| {
            value.insert(TIMESTAMP_FIELD.to_owned(), json!(version.as_seconds()));
            value
        };
        let alias_delete = |key: String| KeyChange {
            key,
            value: None,
            alias: true,
        };
        let mut changes = Vec::new();
        match row.operation.as_str() {
            sync_outbox::WRITE => {
                let data = parse_object(row.data.as_deref().ok_or("a write without data")?)?;
                let current = aliases(&data);
                changes.push(KeyChange {
                    key: row.storage_key.clone(),
                    value: Some(stamp(data)),
                    alias: false,
                });
                for (key, id) in &current {
                    let mut value = Map::new();
                    value.insert("id".to_owned(), id.clone());
                    changes.push(KeyChange {
                        key: key.clone(),
                        value: Some(stamp(value)),
                        alias: true,
                    });
                }
                for (key, _) in aliases(&previous) {
                    if !current.iter().any(|(current_key, _)| *current_key == key) {
                        changes.push(alias_delete(key));
                    }
                }
            }
            sync_outbox::DELETE => {
                changes.push(KeyChange {
                    key: row.storage_key.clone(),
                    value: None,
                    alias: false,
                });
                changes.extend(
                    aliases(&previous)
                        .into_iter()
                        .map(|(key, _)| alias_delete(key)),
                );
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
        Ok(Self {
            changes,
            version,
            store: row.store.clone().unwrap_or_default(),
            params,
            resource: definition.resource,
        })
    }

    /// The changes `row` of `definition` makes, as the key-value store applies them: those of
    /// [`RowChanges::of`] as [`storage_changes`](Self::storage_changes) gives them. A row of a
    /// table without alias keys changes its own key alone, and a write stores its data as it
    /// is with the version spliced in ([`stamped`]), which is most of direct synchronization
    /// made cheap.
    pub(crate) fn storage_changes_of(
        definition: &SynchronizationDefinition,
        row: &SyncRow,
        keys: &KeyBuilders,
    ) -> Result<Vec<StorageChange>, String> {
        if definition.mappings.is_empty() {
            let version = row.version();
            let key = || row.storage_key.clone();
            match row.operation.as_str() {
                sync_outbox::WRITE => {
                    if let Some(value) = row.data.as_deref().and_then(|data| stamped(data, version))
                    {
                        return Ok(vec![StorageChange::Write {
                            key: key(),
                            value,
                            version,
                        }]);
                    }
                }
                sync_outbox::DELETE => {
                    return Ok(vec![StorageChange::Delete {
                        key: key(),
                        version,
                    }]);
                }
                _ => {}
            }
        }
        Ok(Self::of(definition, row, keys)?.storage_changes().collect())
    }

    /// How many keys change.
    pub(crate) fn len(&self) -> usize {
        self.changes.len()
    }

    /// The changes as the key-value store applies them.
    pub(crate) fn storage_changes(&self) -> impl Iterator<Item = StorageChange> + '_ {
        let version = self.version;
        self.changes.iter().map(move |change| match &change.value {
            Some(value) => StorageChange::Write {
                key: change.key.clone(),
                value: serde_json::to_string(value).expect("json serialises"),
                version,
            },
            None => StorageChange::Delete {
                key: change.key.clone(),
                version,
            },
        })
    }

    /// The changes as the original's sync messages: a delete's value is only `_timestamp`,
    /// and alias keys' messages carry no store or params.
    pub(crate) fn into_messages(self) -> impl Iterator<Item = SyncMessage> {
        let Self {
            changes,
            version,
            store,
            params,
            resource,
        } = self;
        changes.into_iter().map(move |change| {
            let (store, params) = if change.alias {
                (None, None)
            } else {
                (Some(store.clone()), Some(params.clone()))
            };
            let deleted = change.value.is_none();
            let value = change.value.unwrap_or_else(|| {
                let mut value = Map::new();
                value.insert(TIMESTAMP_FIELD.to_owned(), json!(version.as_seconds()));
                value
            });
            let payload = SyncPayload {
                key: change.key,
                value,
                resource: resource.to_owned(),
                store,
                params,
            };
            if deleted {
                SyncMessage::Delete(payload)
            } else {
                SyncMessage::Write(payload)
            }
        })
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("storage data is not a JSON object".to_owned()),
        Err(error) => Err(format!("storage data is not JSON: {error}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sync::guard::{DEFAULT_MAX_CLOCK_SKEW, SyncGuard};
    use crate::sync::testing::PRODUCT;

    /// What the sync consumer makes of `message` when it takes it from the queue.
    fn to_change(message: &SyncMessage) -> StorageChange {
        let guard = SyncGuard::new([&PRODUCT], DEFAULT_MAX_CLOCK_SKEW);
        guard
            .check(message, &mut guard.stamp())
            .expect("pubsync's own messages pass the guard")
    }

    pub(crate) fn row(operation: &str, data: Option<&str>, previous: Option<&str>) -> SyncRow {
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

    fn messages_for(
        definition: &SynchronizationDefinition,
        row: &SyncRow,
        keys: &KeyBuilders,
    ) -> Result<Vec<SyncMessage>, String> {
        Ok(RowChanges::of(definition, row, keys)?
            .into_messages()
            .collect())
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
                assert_eq!(version.as_micros(), 1_599_741_494_267_689)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn direct_changes_are_the_messages_without_the_wire() {
        let old = r#"{"sku":"001","id_product_abstract":100}"#;
        let new = r#"{"sku":"002","id_product_abstract":100,"name":"Shoe"}"#;
        let changes = RowChanges::of(
            &PRODUCT,
            &row("write", Some(new), Some(old)),
            &KeyBuilders::default(),
        )
        .unwrap();
        let direct: Vec<StorageChange> = changes.storage_changes().collect();
        let queued: Vec<StorageChange> = changes.into_messages().map(|m| to_change(&m)).collect();
        assert_eq!(direct, queued);
        assert_eq!(direct.len(), 3);
        assert!(
            direct
                .iter()
                .all(|change| change.version().as_micros() == 1_599_741_494_267_689)
        );
    }

    #[test]
    fn a_table_without_alias_keys_changes_its_key_as_the_full_reading_does() {
        const PLAIN: SynchronizationDefinition = SynchronizationDefinition {
            mappings: &[],
            ..PRODUCT
        };
        let data =
            serde_json::to_string(&json!({"sku": "001", "name": "Shoe", "tags": ["ü"]})).unwrap();
        let keys = KeyBuilders::default();
        for row in [
            row("write", Some(&data), Some("{\"sku\":\"000\"}")),
            row("write", Some("{}"), None),
            row("delete", None, Some(&data)),
            row("delete", None, None),
        ] {
            let fast = RowChanges::storage_changes_of(&PLAIN, &row, &keys).unwrap();
            let full: Vec<StorageChange> = RowChanges::of(&PLAIN, &row, &keys)
                .unwrap()
                .storage_changes()
                .collect();
            assert_eq!(fast, full, "{row:?}");
        }
        // Data with a `_timestamp` of its own has it replaced, as the full reading does.
        let own_timestamp = row("write", Some("{\"_timestamp\":1,\"a\":2}"), None);
        let fast = RowChanges::storage_changes_of(&PLAIN, &own_timestamp, &keys).unwrap();
        let full: Vec<StorageChange> = RowChanges::of(&PLAIN, &own_timestamp, &keys)
            .unwrap()
            .storage_changes()
            .collect();
        assert_eq!(fast, full);
        // And data that is not an object is refused with the full reading's reason.
        let array = row("write", Some("[1]"), None);
        assert_eq!(
            RowChanges::storage_changes_of(&PLAIN, &array, &keys).unwrap_err(),
            "storage data is not a JSON object"
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
}
