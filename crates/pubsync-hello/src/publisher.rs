//! The Hello module's publisher: `spy_hello_spryker_message` → `spy_hello_spryker_message_storage`.

use std::collections::HashSet;

use diesel::prelude::*;
use pubsync_backend::listener::{HandlerError, PublishContext, Publisher};
use pubsync_backend::storage_table_writer::{Publication, Reference, RowKey, StorageRow};
use pubsync_database::{DatabaseError, with_connection};
use pubsync_shared::event::{
    EntityAction, EventEntityTransfer, entity_event_name, event_transfer_ids,
};
use pubsync_shared::transfer::HelloSprykerStorageTransfer;

use crate::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;

/// The table whose changes this module publishes.
pub const MESSAGE_TABLE: &str = "spy_hello_spryker_message";

/// A message as the publisher reads it (column types from the generated table).
#[derive(diesel::QueryableByName)]
#[diesel(table_name = crate::generated::tables::spy_hello_spryker_message)]
struct MessageRow {
    id_hello_spryker_message: i32,
    name: String,
    message: Option<String>,
}

/// Publishes messages into message storage (the tutorial's `MessageStorageWriter`, done right).
///
/// Whatever the event, it re-reads the messages by id: a message that exists is upserted as
/// exactly one storage row (`message:<id>`, data `{"name":…,"message":…}`), one that does not
/// (deleted, maybe after the event was sent) has its storage row removed. That makes handling
/// idempotent and indifferent to the order events arrive in.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageStoragePublisher;

impl MessageStoragePublisher {
    /// The listener name carried in event messages.
    pub const NAME: &str = "HelloSpryker.MessageStoragePublisher";
}

impl Publisher for MessageStoragePublisher {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn subscribed_events(&self) -> Vec<String> {
        [
            EntityAction::Create,
            EntityAction::Update,
            EntityAction::Delete,
        ]
        .map(|action| entity_event_name(MESSAGE_TABLE, action))
        .to_vec()
    }

    fn handle_bulk(
        &self,
        context: &PublishContext,
        _event_name: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        let ids: Vec<i32> = event_transfer_ids(transfers)
            .into_iter()
            .map(|id| i32::try_from(id).map_err(|_| format!("message id {id} is out of range")))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        let lookup: Vec<i64> = ids.iter().map(|id| i64::from(*id)).collect();
        let references: Vec<Reference> = lookup.iter().map(|id| Reference::Int(*id)).collect();
        context
            .storage
            .publish(&SPY_HELLO_SPRYKER_MESSAGE_STORAGE, &references, || {
                let found = read_messages(context, &lookup)?;
                Ok(publication(&ids, &found))
            })?;
        Ok(())
    }
}

/// The messages of `ids` that exist.
fn read_messages(context: &PublishContext, ids: &[i64]) -> Result<Vec<MessageRow>, DatabaseError> {
    let statements = pubsync_database::select_by_ids(
        context.database.dialect(),
        MESSAGE_TABLE,
        &["id_hello_spryker_message", "name", "message"],
        "id_hello_spryker_message",
        ids,
    );
    with_connection!(context.database, |conn| {
        let mut found = Vec::with_capacity(ids.len());
        for statement in statements {
            found.extend(
                statement
                    .load::<MessageRow>(conn)
                    .map_err(DatabaseError::query("read hello messages"))?,
            );
        }
        Ok::<_, DatabaseError>(found)
    })
}

/// One row per message found; the rows of the messages of `ids` not found are deleted.
fn publication(ids: &[i32], found: &[MessageRow]) -> Publication {
    let rows: Vec<StorageRow> = found
        .iter()
        .map(|row| StorageRow {
            key: RowKey::reference(Reference::Int(i64::from(row.id_hello_spryker_message))),
            data: serde_json::to_value(HelloSprykerStorageTransfer {
                name: Some(row.name.clone()),
                message: row.message.clone(),
            })
            .expect("a transfer serialises"),
        })
        .collect();
    let present: HashSet<i32> = found
        .iter()
        .map(|row| row.id_hello_spryker_message)
        .collect();
    let deletes: Vec<RowKey> = ids
        .iter()
        .filter(|id| !present.contains(id))
        .map(|id| RowKey::reference(Reference::Int(i64::from(*id))))
        .collect();
    Publication::apply(rows, deletes)
}
