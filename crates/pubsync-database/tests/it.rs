//! The database plumbing on every database compiled in (`--features postgres,mysql`), against
//! the real servers.

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};
use pubsync_database::testing::{TestDatabase, dialects};
use pubsync_database::{Database, DatabaseError, WriteTransaction as _, with_connection};

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

fn rows(database: &Database) -> Vec<Row> {
    let sql = format!(
        "SELECT id, name FROM {} ORDER BY id",
        database.dialect().quote("t")
    );
    with_connection!(database, |conn| diesel::sql_query(&sql)
        .load::<Row>(conn)
        .map_err(DatabaseError::query("select")))
    .unwrap()
}

#[test]
fn every_database_runs_the_same_code() {
    for dialect in dialects() {
        let Some(test_database) = TestDatabase::create(dialect) else {
            continue;
        };
        let database = test_database.connect();
        assert_eq!(database.dialect(), dialect);
        assert!(!database.table_exists("t").unwrap(), "{dialect}");
        database
            .batch_execute(&format!(
                "CREATE TABLE {} (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
                dialect.quote("t")
            ))
            .unwrap();
        assert!(database.table_exists("t").unwrap(), "{dialect}");

        let insert = format!(
            "INSERT INTO {} (id, name) VALUES ({})",
            dialect.quote("t"),
            dialect.placeholders(1, 2)
        );
        with_connection!(database, |conn| diesel::sql_query(&insert)
            .bind::<BigInt, _>(1)
            .bind::<Text, _>("one")
            .execute(conn)
            .map_err(DatabaseError::query("insert")))
        .unwrap();

        // A failed write transaction leaves nothing behind.
        let result: Result<(), DatabaseError> = with_connection!(database, |conn| conn
            .write_transaction(|conn| {
                diesel::sql_query(&insert)
                    .bind::<BigInt, _>(2)
                    .bind::<Text, _>("two")
                    .execute(conn)?;
                diesel::sql_query(&insert)
                    .bind::<BigInt, _>(1)
                    .bind::<Text, _>("duplicate")
                    .execute(conn)?;
                Ok(())
            }));
        assert!(
            result.is_err(),
            "{dialect}: the duplicate key fails the transaction"
        );
        assert_eq!(
            rows(&database),
            [Row {
                id: 1,
                name: "one".into()
            }],
            "{dialect}: rolled back"
        );
    }
}

#[test]
fn unreachable_servers_are_transient_connect_errors() {
    for url in [
        "postgres://root@127.0.0.1:1/test",
        "mysql://root@127.0.0.1:1/test",
    ] {
        let url: pubsync_database::DatabaseUrl = url.parse().unwrap();
        if !dialects().contains(&url.dialect()) {
            continue;
        }
        let options = pubsync_database::PoolOptions {
            timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        };
        let error = Database::connect(&url, &options).unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }
}
