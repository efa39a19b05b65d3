//! The Hello module's reader: messages from message storage, by id (the tutorial's
//! `HelloSprykerStorageClient`).

use pubsync_client::{ClientError, StorageClient};
use pubsync_shared::key::SynchronizationData;
use pubsync_shared::transfer::HelloSprykerStorageTransfer;
use pubsync_storage_extension::StorageReader;

use crate::RESOURCE;

/// Reads published messages through a [`StorageClient`], whichever storage it reads.
#[derive(Debug, Clone)]
pub struct MessageStorageReader<S> {
    client: StorageClient<S>,
}

impl<S: StorageReader> MessageStorageReader<S> {
    /// A reader over `client`.
    pub fn new(client: StorageClient<S>) -> Self {
        Self { client }
    }

    /// The client read through.
    pub fn client(&self) -> &StorageClient<S> {
        &self.client
    }

    /// The storage key of message `id`: `message:<id>`. As in the original, an id of `0` counts
    /// as no reference and gives `message:`.
    pub fn message_key(&self, id: i64) -> String {
        self.client
            .key(RESOURCE, &SynchronizationData::reference(id.to_string()))
    }

    /// The published message `id`, or `None` when there is none.
    pub async fn get_message_by_id(
        &self,
        id: i64,
    ) -> Result<Option<HelloSprykerStorageTransfer>, ClientError> {
        self.client.get_as(&self.message_key(id)).await
    }
}

#[cfg(test)]
mod tests {
    use pubsync_database::{Database, DatabaseUrl, PoolOptions};
    use pubsync_shared::key::{KeyBuilder, KeyBuilders};
    use pubsync_shared::synchronization::SynchronizationDefinition;
    use pubsync_storage_database::{DatabaseStorage, TableResolver};
    use pubsync_storage_extension::StorageError;

    use super::*;

    const STORAGE_TABLE: &str = "spy_hello_spryker_message_storage";

    const MESSAGE_STORAGE: SynchronizationDefinition =
        crate::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;

    /// A temporary SQLite database with a hand-made message storage table holding messages 1
    /// and 2 and a broken row 3.
    fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("hello.db"));
        let database = Database::connect(&url, &PoolOptions::default()).expect("connect");
        database
            .batch_execute(&format!(
                r#"CREATE TABLE "{STORAGE_TABLE}" (
                    "id_hello_spryker_message_storage" INTEGER PRIMARY KEY AUTOINCREMENT,
                    "fk_hello_spryker_message" INTEGER NOT NULL,
                    "key" VARCHAR(255) NOT NULL,
                    "data" TEXT,
                    "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                );
                CREATE UNIQUE INDEX "{STORAGE_TABLE}-unique-key" ON "{STORAGE_TABLE}" ("key");
                INSERT INTO "{STORAGE_TABLE}" ("fk_hello_spryker_message", "key", "data") VALUES
                    (1, 'message:1', '{{"name":"Hello","message":"Spryker"}}'),
                    (2, 'message:2', '{{"name":"Only a name","unknown_field":true}}'),
                    (3, 'message:3', '{{"name":3}}');"#
            ))
            .expect("create storage table");
        (dir, database)
    }

    fn reader(database: Database, tables: TableResolver) -> MessageStorageReader<DatabaseStorage> {
        MessageStorageReader::new(StorageClient::new(
            DatabaseStorage::new(database, tables),
            KeyBuilders::new(KeyBuilder::default()),
        ))
    }

    #[tokio::test]
    async fn reads_published_messages_from_the_storage_table() {
        let (_dir, database) = database();
        let tables = TableResolver::new()
            .with_definition(&MESSAGE_STORAGE)
            .unwrap();
        let reader = reader(database, tables);
        assert_eq!(reader.message_key(2), "message:2");

        let message = reader.get_message_by_id(1).await.unwrap().unwrap();
        assert_eq!(message.name.as_deref(), Some("Hello"));
        assert_eq!(message.message.as_deref(), Some("Spryker"));
        // Unknown fields are accepted; missing ones are `None`.
        let message = reader.get_message_by_id(2).await.unwrap().unwrap();
        assert_eq!(message.name.as_deref(), Some("Only a name"));
        assert_eq!(message.message, None);
        assert!(reader.get_message_by_id(404).await.unwrap().is_none());

        let err = reader.get_message_by_id(3).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Decode { key, .. } if key == "message:3"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_the_registration_the_default_table_is_named() {
        let (_dir, database) = database();
        let reader = reader(database, TableResolver::new());
        match reader.get_message_by_id(1).await {
            Err(ClientError::Storage(StorageError::UnknownResource { table, .. })) => {
                assert_eq!(table, "spy_message_storage");
            }
            other => panic!("expected an unknown-resource error, got {other:?}"),
        }
    }
}
