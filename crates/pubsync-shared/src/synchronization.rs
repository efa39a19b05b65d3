//! What a storage table's `synchronization` behaviour declares, as plain data.
//!
//! Codegen writes one [`SynchronizationDefinition`] constant per storage table into the module
//! that declares it; the storage writer, the sync path and the database storage read them.

/// One `source:destination` pair of the `mappings` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The data field whose value forms the alias key (`sku`).
    pub source: &'static str,
    /// The data field the alias points to (`id_product_abstract`).
    pub destination: &'static str,
}

/// The `synchronization` behaviour of one storage table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynchronizationDefinition {
    /// The storage table, e.g. `spy_hello_spryker_message_storage`.
    pub table: &'static str,
    /// The resource: the key's first part and the `resource` of sync messages.
    pub resource: &'static str,
    /// The column whose value is the key's reference; `None` means one key for all rows.
    pub key_suffix_column: Option<&'static str>,
    /// Whether the table has a `store` column that goes into the key.
    pub store: bool,
    /// Whether the table has a `locale` column that goes into the key.
    pub locale: bool,
    /// The sync queue, `sync.storage.<group>`; defaults to the resource.
    pub queue_group: &'static str,
    /// The queue pool of store-less tables.
    pub queue_pool: Option<&'static str>,
    /// The `params` JSON copied into sync messages.
    pub params: Option<&'static str>,
    /// Alias keys to maintain.
    pub mappings: &'static [Mapping],
    /// The per-table override of the global synchronization switch.
    pub synchronization_enabled: Option<bool>,
    /// Whether the table has the `timestampable` behaviour's `updated_at` column.
    pub timestampable: bool,
    /// `direct_sync_disabled`: changes always travel through the sync queue, even in direct mode.
    pub direct_sync_disabled: bool,
}

impl SynchronizationDefinition {
    /// The storage table `table` of `resource`, synchronized on `queue_group`, with one key
    /// for all rows and no store, locale, params, mappings, `timestampable` or overrides. Set
    /// the rest by struct update:
    /// `SynchronizationDefinition { store: true, ..SynchronizationDefinition::new(…) }`.
    pub const fn new(
        table: &'static str,
        resource: &'static str,
        queue_group: &'static str,
    ) -> Self {
        Self {
            table,
            resource,
            key_suffix_column: None,
            store: false,
            locale: false,
            queue_group,
            queue_pool: None,
            params: None,
            mappings: &[],
            synchronization_enabled: None,
            timestampable: false,
            direct_sync_disabled: false,
        }
    }

    /// Whether changes of this table go to its sync queue, given the global switch.
    pub fn is_synchronization_enabled(&self, globally_enabled: bool) -> bool {
        self.synchronization_enabled.unwrap_or(globally_enabled)
    }
}
