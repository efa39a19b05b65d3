//! Alias (mapping) keys: keys no storage row holds are looked up by primary key in the side
//! table the storage writer keeps, and read `{"id":…,"_timestamp":…}` as from Redis.

use pubsync_database::diesel::{self, RunQueryDsl as _};
use pubsync_database::{Database, DatabaseError, with_connection};
use pubsync_storage_database::{DatabaseStorage, TableResolver, sql};
use pubsync_storage_extension::StorageReader;

use super::{TABLE, create_storage_table, databases, insert, sqlite_database};

/// The side table as the migrations create it.
fn create_alias_table(database: &Database) {
    let q = |name: &str| database.dialect().quote(name);
    database
        .batch_execute(&format!(
            "CREATE TABLE {t} ({alias_key} VARCHAR(255) NOT NULL PRIMARY KEY, \
             {storage_table} VARCHAR(255) NOT NULL, {storage_key} VARCHAR(255) NOT NULL, \
             {data} TEXT NOT NULL); \
             CREATE INDEX {index} ON {t} ({storage_key});",
            t = q(sql::ALIAS_TABLE),
            alias_key = q("alias_key"),
            storage_table = q("storage_table"),
            storage_key = q("storage_key"),
            data = q("data"),
            index = q(&format!("{}-storage_key", sql::ALIAS_TABLE)),
        ))
        .expect("create alias table");
}

/// Inserts `(alias_key, storage_table, storage_key, data)` rows.
fn insert_aliases(database: &Database, rows: &[(&str, &str, &str, &str)]) {
    let dialect = database.dialect();
    let statement = format!(
        "INSERT INTO {} ({}, {}, {}, {}) VALUES ({})",
        dialect.quote(sql::ALIAS_TABLE),
        dialect.quote("alias_key"),
        dialect.quote("storage_table"),
        dialect.quote("storage_key"),
        dialect.quote("data"),
        dialect.placeholders(1, 4)
    );
    with_connection!(database, |conn| {
        rows.iter()
            .try_for_each(|(alias_key, storage_table, storage_key, data)| {
                diesel::sql_query(&statement)
                    .bind::<diesel::sql_types::Text, _>(*alias_key)
                    .bind::<diesel::sql_types::Text, _>(*storage_table)
                    .bind::<diesel::sql_types::Text, _>(*storage_key)
                    .bind::<diesel::sql_types::Text, _>(*data)
                    .execute(conn)
                    .map(drop)
                    .map_err(DatabaseError::query("insert alias fixture"))
            })
    })
    .expect("insert alias fixture");
}

const ALIAS: &str = r#"{"id":1,"_timestamp":1599741494.267689}"#;

#[tokio::test]
async fn alias_keys_read_their_side_table_value() {
    for (_dir, database) in databases() {
        create_storage_table(&database, TABLE);
        insert(&database, TABLE, &[("conformance:1", r#"{"sku":"001"}"#)]);
        create_alias_table(&database);
        insert_aliases(
            &database,
            &[
                ("conformance:sku:001", TABLE, "conformance:1", ALIAS),
                // An alias kept for another table is not this resource's.
                (
                    "conformance:sku:002",
                    "spy_other_storage",
                    "conformance:2",
                    ALIAS,
                ),
                // A storage row wins over an alias row of the same key.
                ("conformance:1", TABLE, "conformance:9", ALIAS),
            ],
        );
        let storage = DatabaseStorage::new(database, TableResolver::new());
        let keys = [
            "conformance:sku:001",
            "conformance:1",
            "conformance:sku:002",
            "conformance:sku:missing",
            "conformance:sku:001",
        ]
        .map(str::to_owned);
        assert_eq!(
            storage.get_multi(&keys).await.unwrap(),
            vec![
                Some(ALIAS.to_owned()),
                Some(r#"{"sku":"001"}"#.to_owned()),
                None,
                None,
                Some(ALIAS.to_owned()),
            ]
        );
        assert_eq!(
            storage.get("conformance:sku:001").await.unwrap().as_deref(),
            Some(ALIAS)
        );
    }
}

#[tokio::test]
async fn without_the_side_table_there_are_no_aliases() {
    for (_dir, database) in databases() {
        create_storage_table(&database, TABLE);
        insert(&database, TABLE, &[("conformance:1", "1")]);
        let storage = DatabaseStorage::new(database.clone(), TableResolver::new());
        let keys = ["conformance:1", "conformance:sku:001"].map(str::to_owned);
        assert_eq!(
            storage.get_multi(&keys).await.unwrap(),
            vec![Some("1".to_owned()), None]
        );
        // The missing side table is remembered: one created meanwhile is found by a fresh
        // storage (or by this one a few seconds later).
        create_alias_table(&database);
        insert_aliases(
            &database,
            &[("conformance:sku:001", TABLE, "conformance:1", ALIAS)],
        );
        assert_eq!(storage.get("conformance:sku:001").await.unwrap(), None);
        let storage = DatabaseStorage::new(database, TableResolver::new());
        assert_eq!(
            storage.get("conformance:sku:001").await.unwrap().as_deref(),
            Some(ALIAS)
        );
    }
}

#[tokio::test]
async fn alias_look_ups_of_many_keys_are_chunked() {
    for (_dir, database) in databases() {
        create_storage_table(&database, TABLE);
        create_alias_table(&database);
        let rows: Vec<(String, String, String)> = (0..1_200)
            .filter(|i: &u32| i.is_multiple_of(2))
            .map(|i| {
                (
                    format!("conformance:sku:{i}"),
                    format!("conformance:{i}"),
                    format!(r#"{{"id":{i},"_timestamp":1.5}}"#),
                )
            })
            .collect();
        let borrowed: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|(alias_key, key, data)| (alias_key.as_str(), TABLE, key.as_str(), data.as_str()))
            .collect();
        insert_aliases(&database, &borrowed);
        let storage = DatabaseStorage::new(database, TableResolver::new());
        let keys: Vec<String> = (0..1_200)
            .rev()
            .map(|i| format!("conformance:sku:{i}"))
            .collect();
        assert!(keys.len() > pubsync_database::MAX_LIST_CHUNK);
        let values = storage.get_multi(&keys).await.unwrap();
        for (key, value) in keys.iter().zip(&values) {
            let i: u32 = key["conformance:sku:".len()..].parse().unwrap();
            let expected = i
                .is_multiple_of(2)
                .then(|| format!(r#"{{"id":{i},"_timestamp":1.5}}"#));
            assert_eq!(value, &expected, "{key}");
        }
    }
}

#[test]
fn alias_look_ups_use_the_primary_key() {
    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let (_dir, database) = sqlite_database();
    create_alias_table(&database);
    for key_count in [1, 3] {
        let statement = sql::select_aliases_json();
        let keys: Vec<String> = (0..key_count)
            .map(|i| format!("conformance:sku:{i}"))
            .collect();
        let plan = with_connection!(database, |conn| {
            diesel::sql_query(format!("EXPLAIN QUERY PLAN {statement}"))
                .bind::<diesel::sql_types::Text, _>(serde_json::to_string(&keys).unwrap())
                .load::<PlanRow>(conn)
                .map_err(DatabaseError::query("explain"))
        })
        .expect("explain");
        let details: Vec<&str> = plan.iter().map(|row| row.detail.as_str()).collect();
        // A non-integer primary key is served by SQLite's automatic unique index on it.
        assert!(
            details.iter().any(|d| d.starts_with("SEARCH")
                && d.ends_with(&format!(
                    "USING INDEX sqlite_autoindex_{}_1 (alias_key=?)",
                    sql::ALIAS_TABLE
                ))),
            "{statement}: {details:?}"
        );
        assert!(
            // The key list itself is scanned (`SCAN json_each`); the table never is.
            !details
                .iter()
                .any(|d| d.starts_with(&format!("SCAN {}", sql::ALIAS_TABLE))),
            "{statement}: {details:?}"
        );
    }
}
