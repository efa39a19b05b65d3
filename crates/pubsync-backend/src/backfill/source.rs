//! Trigger sources: which table and id column feed a resource, and which event re-publishes
//! it (the original's publisher trigger plugins).

use pubsync_shared::event::EventEntityTransfer;

/// Where a resource's entities come from, for `publish:trigger-events` and `verify`: the
/// rows of `table`, by `id_column`, each re-published as `event` with that id. A module
/// declares one per resource it publishes:
///
/// ```
/// # use pubsync_backend::backfill::TriggerSource;
/// const MESSAGE: TriggerSource = TriggerSource::new(
///     "message",
///     "spy_hello_spryker_message",
///     "id_hello_spryker_message",
///     "Entity.spy_hello_spryker_message.update",
/// );
/// ```
///
/// The id column must hold integers, and they must be the references (`key_suffix_column`)
/// of the resource's storage rows: `verify` finds orphaned rows by looking their references
/// up in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerSource {
    /// The resource, as its storage keys begin (`message`).
    pub resource: &'static str,
    /// The table whose rows are the resource's entities.
    pub table: &'static str,
    /// Its integer id column.
    pub id_column: &'static str,
    /// The event re-publishing one entity, with the id as the event's id.
    pub event: &'static str,
}

impl TriggerSource {
    /// The source of `resource`: `table`'s rows by `id_column`, published as `event`.
    pub const fn new(
        resource: &'static str,
        table: &'static str,
        id_column: &'static str,
        event: &'static str,
    ) -> Self {
        Self {
            resource,
            table,
            id_column,
            event,
        }
    }

    /// The events that re-publish the entities `ids`: the source's event, carrying only the
    /// id, as the original's triggered events do.
    pub fn events(&self, ids: impl IntoIterator<Item = i64>) -> Vec<EventEntityTransfer> {
        ids.into_iter()
            .map(|id| EventEntityTransfer {
                event: self.event.to_owned(),
                name: self.table.to_owned(),
                id: Some(id),
                ..EventEntityTransfer::default()
            })
            .collect()
    }
}
