//! The probe's publisher: `spy_publish_and_synchronize_health_check` →
//! `spy_publish_and_synchronize_health_check_storage`.

use diesel::prelude::*;
use pubsync_backend::listener::{HandlerError, PublishContext, Publisher};
use pubsync_backend::storage_table_writer::{Publication, Reference, RowKey, StorageRow};
use pubsync_database::{Bind, DatabaseError, Statement, with_connection};
use pubsync_shared::event::{EntityAction, EventEntityTransfer, entity_event_name};
use pubsync_shared::transfer::PublishAndSynchronizeHealthCheckStorageTransfer;

use crate::generated::synchronization::SPY_PUBLISH_AND_SYNCHRONIZE_HEALTH_CHECK_STORAGE;
use crate::{PROBE_KEY, PROBE_TABLE};

/// The probe row as the publisher reads it.
#[derive(diesel::QueryableByName)]
#[diesel(table_name = crate::generated::tables::spy_publish_and_synchronize_health_check)]
struct ProbeRow {
    health_check_data: Option<String>,
}

/// Publishes the probe into its storage table under `publish_and_synchronize_health_check:
/// health-check` (the original's `PublishAndSynchronizeHealthCheckStorageWritePublisherPlugin`).
///
/// There is one probe row, so whatever the event it re-reads the row keyed `health-check`:
/// present, it is upserted; gone, its storage row is removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthCheckStoragePublisher;

impl HealthCheckStoragePublisher {
    /// The listener name carried in event messages.
    pub const NAME: &str = "PublishAndSynchronizeHealthCheck.StoragePublisher";
}

impl Publisher for HealthCheckStoragePublisher {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn subscribed_events(&self) -> Vec<String> {
        [
            EntityAction::Create,
            EntityAction::Update,
            EntityAction::Delete,
        ]
        .map(|action| entity_event_name(PROBE_TABLE, action))
        .to_vec()
    }

    fn handle_bulk(
        &self,
        context: &PublishContext,
        _event_name: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        if transfers.is_empty() {
            return Ok(());
        }
        let reference = Reference::Text(PROBE_KEY.to_owned());
        context.storage.publish(
            &SPY_PUBLISH_AND_SYNCHRONIZE_HEALTH_CHECK_STORAGE,
            std::slice::from_ref(&reference),
            || {
                let key = RowKey::reference(reference.clone());
                Ok(match read_probe(context)? {
                    Some(data) => Publication::apply(
                        vec![StorageRow {
                            key,
                            data: serde_json::to_value(
                                PublishAndSynchronizeHealthCheckStorageTransfer {
                                    health_check_key: Some(PROBE_KEY.to_owned()),
                                    health_check_data: data,
                                },
                            )
                            .expect("a transfer serialises"),
                        }],
                        Vec::new(),
                    ),
                    None => Publication::apply(Vec::new(), vec![key]),
                })
            },
        )?;
        Ok(())
    }
}

/// The probe row's data, `None` when there is no probe row.
fn read_probe(context: &PublishContext) -> Result<Option<Option<String>>, DatabaseError> {
    let sql = format!(
        "SELECT health_check_data FROM {} WHERE health_check_key = ?",
        context.database.dialect().quote(PROBE_TABLE)
    );
    let statement = Statement::new(sql).bind(Bind::Text(PROBE_KEY.to_owned()));
    with_connection!(context.database, |conn| {
        statement
            .load::<ProbeRow>(conn)
            .map(|rows| rows.into_iter().next().map(|row| row.health_check_data))
            .map_err(DatabaseError::query("read the health-check probe"))
    })
}
