//! The tables and columns pubsync owns, as the migrations create them and every crate refers
//! to them. Their definitions are the schema files of `pubsync-backend` (outbox, sync outbox,
//! aliases, settings) and `pubsync-queue-database` (the queue table).

/// The outbox: one row per captured change of a watched table, written by the capture
/// triggers in the writer's transaction. Same name and columns as the original's.
pub mod outbox {
    /// The table.
    pub const TABLE: &str = "spy_event_behavior_entity_change";
    /// Its primary key, in capture order.
    pub const ID: &str = "id_event_behavior_entity_change";
    /// The captured event, as JSON.
    pub const DATA: &str = "data";
}

/// The sync outbox: one row per change of a storage table that synchronizes, written by that
/// table's sync triggers in the publisher's transaction.
pub mod sync_outbox {
    /// The table.
    pub const TABLE: &str = "pubsync_sync_outbox";
    /// Its primary key, in change order.
    pub const ID: &str = "id_sync_outbox";
    /// The storage table the change is of.
    pub const STORAGE_TABLE: &str = "storage_table";
    /// The changed row's key.
    pub const STORAGE_KEY: &str = "storage_key";
    /// `write` or `delete`.
    pub const OPERATION: &str = "operation";
    /// The row's data after a write.
    pub const DATA: &str = "data";
    /// The row's data before the change, for the alias keys it gives up.
    pub const PREVIOUS_DATA: &str = "previous_data";
    /// The row's store.
    pub const STORE: &str = "store";
    /// The row's locale.
    pub const LOCALE: &str = "locale";
    /// The clock time of the change in microseconds: the change's version.
    pub const VERSION: &str = "version";

    /// The operation of a sync outbox row that stores a key.
    pub const WRITE: &str = "write";
    /// The operation of a sync outbox row that removes a key.
    pub const DELETE: &str = "delete";
}

/// The alias (mapping) keys of storage rows, through which database storage resolves them by
/// index.
pub mod storage_alias {
    /// The table.
    pub const TABLE: &str = "pubsync_storage_alias";
    /// The alias key (primary key).
    pub const ALIAS_KEY: &str = "alias_key";
    /// The storage table of the row that owns the alias.
    pub const STORAGE_TABLE: &str = "storage_table";
    /// The key of the row that owns the alias.
    pub const STORAGE_KEY: &str = "storage_key";
    /// The alias's value, `{"id":…,"_timestamp":…}`.
    pub const DATA: &str = "data";
}

/// Settings of the whole database, some of which triggers read.
pub mod setting {
    /// The table.
    pub const TABLE: &str = "pubsync_setting";
    /// The setting's name (primary key).
    pub const NAME: &str = "name";
    /// The setting's value.
    pub const VALUE: &str = "value";
    /// The global synchronization switch, `on` or `off`.
    pub const SYNCHRONIZATION: &str = "synchronization";
    /// The marker last left in the key-value store: a store without it lost its data.
    pub const KEY_VALUE_MARKER: &str = "key_value_marker";
}

/// The durable queue of the embedded default: one row per message.
pub mod queue_message {
    /// The table.
    pub const TABLE: &str = "pubsync_queue_message";
    /// Its primary key, in send order.
    pub const ID: &str = "id_queue_message";
}

/// The columns every storage table has.
pub mod storage_table {
    /// The storage key (unique).
    pub const KEY: &str = "key";
    /// What the frontend reads, as JSON.
    pub const DATA: &str = "data";
    /// The store, for tables with the store parameter.
    pub const STORE: &str = "store";
    /// The locale, for tables with the locale parameter.
    pub const LOCALE: &str = "locale";
    /// The row's alias keys with their values, for tables with mappings.
    pub const ALIAS_KEYS: &str = "alias_keys";
}
