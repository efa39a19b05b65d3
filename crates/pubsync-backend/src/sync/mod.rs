//! Synchronization: storage-table changes to the key-value store.
//!
//! The storage tables' generated triggers record every change in the sync outbox in the
//! publisher's own transaction, so a publish that rolls back sends nothing and one that
//! commits cannot be lost (no dual write). From there:
//!
//! - [`relay`]: the [`SyncRelay`] reads the sync outbox in chunks and sends each row's changes
//!   to its table's `queue_group`, many per queue message; in direct mode it writes them to
//!   the key-value store at once and falls back to the queue when that fails.
//! - [`changes`]: what one outbox row means: the changes of its key and of its alias keys,
//!   as storage changes (direct mode) or as the original's `{"write":…}` / `{"delete":…}`
//!   messages (the queue).
//!   A table without alias keys has its data written as it is, the version spliced in
//!   ([`stamp`]), instead of being taken apart and written out again.
//! - [`guard`]: the [`SyncGuard`] checks each sync message (resource, key, `_timestamp`)
//!   before it is applied.
//! - [`consumer`]: the [`SyncConsumer`] applies a chunk of sync messages in one versioned call,
//!   so an older change never replaces a newer one.
//! - [`marker`]: the marker that tells a key-value store that lost its data from one that
//!   kept it, and the worker's re-sync when it did.
//! - [`switch`]: the global switch as the database records it for the sync triggers.
//! - [`error`]: why a sync step failed.

use std::collections::HashMap;

use pubsync_shared::synchronization::SynchronizationDefinition;

pub mod changes;
pub mod consumer;
pub mod error;
pub mod guard;
pub mod marker;
pub mod relay;
mod stamp;
pub mod switch;

pub use consumer::{SyncConsumer, SyncOutcome};
pub use error::SyncError;
pub use guard::{DEFAULT_MAX_CLOCK_SKEW, SyncGuard};
pub use marker::{MarkerCheck, check_marker, renew_marker};
pub use relay::{SyncPass, SyncRelay};
pub(crate) use switch::{delete_setting, read_setting, write_setting};
pub use switch::{record_switch, recorded_switch};

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
    /// How far ahead of the worker's clock a sync message's `_timestamp` may be.
    pub max_clock_skew: std::time::Duration,
    /// Whether the worker sends every storage row to the key-value store again by itself
    /// when it finds that the store lost its data ([`marker`]); otherwise it logs the loss,
    /// and the health check fails, until an operator runs `sync:data`.
    pub resync_on_data_loss: bool,
    /// How often the worker checks the key-value store's marker, besides when it starts and
    /// right after one of its stages failed.
    pub marker_check_interval: std::time::Duration,
    /// The largest value a sync message may write, in bytes of JSON (besides its
    /// `_timestamp`): the storage writer's payload limit. `None` takes any.
    pub max_value_bytes: Option<usize>,
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
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            resync_on_data_loss: false,
            marker_check_interval: std::time::Duration::from_secs(5),
            max_value_bytes: None,
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

    /// The definitions of the tables.
    pub fn definitions(&self) -> impl Iterator<Item = &'static SynchronizationDefinition> + '_ {
        self.by_table.values().copied()
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

#[cfg(test)]
pub(crate) mod testing {
    use pubsync_shared::synchronization::{Mapping, SynchronizationDefinition};

    /// A product storage table with store, locale and a SKU mapping.
    pub(crate) const PRODUCT: SynchronizationDefinition = SynchronizationDefinition {
        key_suffix_column: Some("fk_product_abstract"),
        store: true,
        locale: true,
        mappings: &[Mapping {
            source: "sku",
            destination: "id_product_abstract",
        }],
        timestampable: true,
        ..SynchronizationDefinition::new(
            "spy_product_abstract_storage",
            "product_abstract",
            "sync.storage.product",
        )
    };
}

#[cfg(test)]
mod tests {
    use super::testing::PRODUCT;
    use super::*;

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
