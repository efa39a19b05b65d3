//! The database storage over a temporary SQLite file: the contract's conformance cases, the
//! query plan of key look-ups, and chunked binds.

use pubsync_database::diesel::{self, RunQueryDsl as _};
use pubsync_database::{
    Database, DatabaseError, DatabaseUrl, Dialect, PoolOptions, with_connection,
};
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_storage_database::{DatabaseStorage, TableName, TableResolver, sql};
use pubsync_storage_extension::conformance::{self, FIXTURE};
use pubsync_storage_extension::{StorageError, StorageReader};

const TABLE: &str = "spy_conformance_storage";

/// A database in a fresh temporary file; the directory lives as long as the guard.
fn database() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("storage.db"));
    let database = Database::connect(&url, &PoolOptions::default()).expect("connect");
    (dir, database)
}

/// A storage table in the shape codegen gives every storage table.
fn create_storage_table(database: &Database, table: &str) {
    database
        .batch_execute(&format!(
            r#"CREATE TABLE "{table}" (
                "id_{table}" INTEGER PRIMARY KEY AUTOINCREMENT,
                "key" VARCHAR(255) NOT NULL,
                "data" TEXT,
                "alias_keys" TEXT,
                "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
            );
            CREATE UNIQUE INDEX "{table}-unique-key" ON "{table}" ("key");"#
        ))
        .expect("create storage table");
}

fn insert(database: &Database, table: &str, rows: &[(&str, &str)]) {
    with_connection!(database, |conn| {
        rows.iter().try_for_each(|(key, data)| {
            diesel::sql_query(format!(
                r#"INSERT INTO "{table}" ("key", "data") VALUES (?, ?)"#
            ))
            .bind::<diesel::sql_types::Text, _>(*key)
            .bind::<diesel::sql_types::Text, _>(*data)
            .execute(conn)
            .map(drop)
            .map_err(DatabaseError::query("insert fixture"))
        })
    })
    .expect("insert fixture");
}

fn conformance_storage() -> (tempfile::TempDir, Database, DatabaseStorage) {
    let (dir, database) = database();
    create_storage_table(&database, TABLE);
    insert(&database, TABLE, FIXTURE);
    let storage = DatabaseStorage::new(database.clone(), TableResolver::new());
    (dir, database, storage)
}

#[tokio::test]
async fn passes_the_reader_conformance_cases() {
    let (_dir, _database, storage) = conformance_storage();
    conformance::run_reader_cases(&storage, true).await;
}

#[tokio::test]
async fn unknown_resource_names_the_expected_table() {
    let (_dir, _database, storage) = conformance_storage();
    let keys = vec!["conformance:1".to_owned(), "no_such_resource:1".to_owned()];
    match storage.get_multi(&keys).await {
        Err(StorageError::UnknownResource {
            resource,
            key,
            table,
        }) => {
            assert_eq!(resource, "no_such_resource");
            assert_eq!(key, "no_such_resource:1");
            assert_eq!(table, "spy_no_such_resource_storage");
        }
        other => panic!("expected an unknown-resource error, got {other:?}"),
    }
    // A resource that cannot be a table name is unknown too, without reaching the database.
    let err = storage.get("a\"b:1").await.unwrap_err();
    assert!(matches!(err, StorageError::UnknownResource { .. }), "{err}");
}

#[tokio::test]
async fn missing_tables_are_cached_briefly() {
    let (_dir, database) = database();
    let storage = DatabaseStorage::new(database.clone(), TableResolver::new());
    assert!(storage.get("conformance:1").await.is_err());
    create_storage_table(&database, TABLE);
    insert(&database, TABLE, FIXTURE);
    // The storage remembers the table as missing for a few seconds; a fresh one finds it.
    assert!(matches!(
        storage.get("conformance:1").await,
        Err(StorageError::UnknownResource { .. })
    ));
    let storage = DatabaseStorage::new(database, TableResolver::new());
    assert_eq!(
        storage.get("conformance:1").await.unwrap().as_deref(),
        Some(FIXTURE[0].1)
    );
}

#[tokio::test]
async fn reads_registered_tables_and_overrides() {
    let (_dir, database) = database();
    create_storage_table(&database, "spy_hello_spryker_message_storage");
    create_storage_table(&database, "spy_glossary_storage");
    insert(
        &database,
        "spy_hello_spryker_message_storage",
        &[("message:1", r#"{"name":"hi"}"#)],
    );
    insert(
        &database,
        "spy_glossary_storage",
        &[("translation:de_de:cart.title", r#""Warenkorb""#)],
    );
    const MESSAGE: SynchronizationDefinition = SynchronizationDefinition {
        table: "spy_hello_spryker_message_storage",
        resource: "message",
        key_suffix_column: Some("fk_hello_spryker_message"),
        store: false,
        locale: false,
        queue_group: "sync.storage.hello",
        queue_pool: None,
        params: None,
        mappings: &[],
        synchronization_enabled: None,
        timestampable: true,
        direct_sync_disabled: false,
    };
    let tables = TableResolver::new()
        .with_definition(&MESSAGE)
        .unwrap()
        .with_override("translation", TableName::name("glossary"))
        .unwrap();
    let storage = DatabaseStorage::new(database, tables);
    let keys = [
        "translation:de_de:cart.title",
        "message:1",
        "message:2",
        "translation:de_de:missing",
    ]
    .map(str::to_owned);
    assert_eq!(
        storage.get_multi(&keys).await.unwrap(),
        vec![
            Some(r#""Warenkorb""#.to_owned()),
            Some(r#"{"name":"hi"}"#.to_owned()),
            None,
            None
        ]
    );
}

#[tokio::test]
async fn rows_without_data_are_absent() {
    let (_dir, database) = database();
    create_storage_table(&database, TABLE);
    database
        .batch_execute(&format!(
            r#"INSERT INTO "{TABLE}" ("key", "data") VALUES ('conformance:null', NULL)"#
        ))
        .unwrap();
    let storage = DatabaseStorage::new(database, TableResolver::new());
    assert_eq!(storage.get("conformance:null").await.unwrap(), None);
}

#[tokio::test]
async fn get_multi_of_a_thousand_keys_is_chunked() {
    let (_dir, database) = database();
    create_storage_table(&database, TABLE);
    let rows: Vec<(String, String)> = (0..1_000)
        .filter(|i: &u32| !i.is_multiple_of(3))
        .map(|i| (format!("conformance:{i}"), format!(r#"{{"n":{i}}}"#)))
        .collect();
    let borrowed: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    insert(&database, TABLE, &borrowed);
    let storage = DatabaseStorage::new(database, TableResolver::new());
    // Asked backwards, so order is not the table's.
    let keys: Vec<String> = (0..1_000)
        .rev()
        .map(|i| format!("conformance:{i}"))
        .collect();
    assert!(keys.len() > sql::MAX_KEYS_PER_STATEMENT);
    let values = storage.get_multi(&keys).await.unwrap();
    assert_eq!(values.len(), 1_000);
    for (key, value) in keys.iter().zip(&values) {
        let i: u32 = key["conformance:".len()..].parse().unwrap();
        let expected = (!i.is_multiple_of(3)).then(|| format!(r#"{{"n":{i}}}"#));
        assert_eq!(value, &expected, "{key}");
    }
}

#[test]
fn key_look_ups_use_the_unique_key_index() {
    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let (_dir, database) = database();
    create_storage_table(&database, TABLE);
    insert(&database, TABLE, FIXTURE);
    for key_count in [1, 3] {
        let statement = sql::select_by_keys(Dialect::Sqlite, TABLE, key_count);
        let plan = with_connection!(database, |conn| {
            let mut query =
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {statement}")).into_boxed();
            for i in 0..key_count {
                query = query.bind::<diesel::sql_types::Text, _>(format!("conformance:{i}"));
            }
            query
                .load::<PlanRow>(conn)
                .map_err(DatabaseError::query("explain"))
        })
        .expect("explain");
        let details: Vec<&str> = plan.iter().map(|row| row.detail.as_str()).collect();
        assert!(
            details
                .iter()
                .any(|d| d.contains("SEARCH") && d.contains(&format!("INDEX {TABLE}-unique-key"))),
            "{statement}: {details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN")),
            "{statement}: {details:?}"
        );
    }
}

#[tokio::test]
async fn scan_is_unsupported() {
    let (_dir, _database, storage) = conformance_storage();
    let err = storage.scan("conformance:*", 10, 0).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Unsupported {
                operation: "scan",
                ..
            }
        ),
        "{err}"
    );
}
