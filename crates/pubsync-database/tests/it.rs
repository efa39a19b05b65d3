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

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// `postgres_array` text comes back from PostgreSQL as the same strings, whatever they hold.
#[test]
fn postgres_arrays_carry_any_text() {
    let Some(test_database) = TestDatabase::create(pubsync_database::Dialect::Postgres) else {
        return;
    };
    let database = test_database.connect();
    let items = [
        "plain",
        "with,comma",
        "with \"quotes\"",
        r"back\slash",
        "{braces}",
        " spaced ",
        "NULL",
        "",
        "ünïcödé",
    ];
    #[derive(diesel::QueryableByName)]
    struct Item {
        #[diesel(sql_type = Text)]
        item: String,
    }
    let got: Vec<Item> = with_connection!(database, |conn| diesel::sql_query(
        "SELECT unnest(CAST($1 AS TEXT[])) AS item"
    )
    .bind::<Text, _>(pubsync_database::postgres_array(items))
    .load::<Item>(conn)
    .map_err(DatabaseError::query("unnest")))
    .unwrap();
    let got: Vec<&str> = got.iter().map(|i| i.item.as_str()).collect();
    assert_eq!(got, items);
}

/// A table that autovacuum last saw empty (a queue table after it drained) has statistics
/// of "no rows" however much it holds since. A list of keys bound the `postgres_array` way
/// still finds its rows through the unique index, not with a sequential scan of everything.
#[test]
fn a_bound_key_list_takes_the_index_when_statistics_say_the_table_is_empty() {
    let Some(test_database) = TestDatabase::create(pubsync_database::Dialect::Postgres) else {
        return;
    };
    let database = test_database.connect();
    let fill = "INSERT INTO q (key, data) \
                SELECT 'key:' || g, repeat('x', 200) FROM generate_series(1, 20000) AS g";
    // One statement per call: a multi-statement string is one transaction, and VACUUM
    // cannot run in one.
    for statement in [
        "CREATE TABLE q (id BIGSERIAL PRIMARY KEY, key VARCHAR(255) NOT NULL UNIQUE, data TEXT)",
        fill,
        "DELETE FROM q",
        "VACUUM q",
        fill,
    ] {
        database.batch_execute(statement).unwrap();
    }
    let keys: Vec<String> = (1..=1000).map(|n| format!("key:{n}")).collect();
    let sql = format!(
        "EXPLAIN DELETE FROM q WHERE {}",
        pubsync_database::postgres_any("key", "TEXT", "$1")
    );
    let plan: Vec<PlanLine> = with_connection!(database, |conn| diesel::sql_query(&sql)
        .bind::<Text, _>(pubsync_database::postgres_array(&keys))
        .load::<PlanLine>(conn)
        .map_err(DatabaseError::query("explain")))
    .unwrap();
    let plan: Vec<&str> = plan.iter().map(|l| l.line.as_str()).collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

/// `select_by_ids` finds exactly the rows whose id is listed, each once, whatever the number
/// of ids (more than one MySQL chunk), repeated or missing ones included.
#[test]
fn select_by_ids_finds_each_listed_row_once() {
    for dialect in dialects() {
        let Some(test_database) = TestDatabase::create(dialect) else {
            continue;
        };
        let database = test_database.connect();
        database
            .batch_execute(&format!(
                "CREATE TABLE {} (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
                dialect.quote("t")
            ))
            .unwrap();
        let values: Vec<String> = (1..=1500).map(|id| format!("({id}, 'n{id}')")).collect();
        database
            .batch_execute(&format!(
                "INSERT INTO {} (id, name) VALUES {}",
                dialect.quote("t"),
                values.join(", ")
            ))
            .unwrap();
        // Every third id from 3 to 1800 (the last 100 missing), 42 twice.
        let mut ids: Vec<i64> = (1..=600).map(|n| n * 3).collect();
        ids.push(42);
        let statements = pubsync_database::select_by_ids(dialect, "t", &["id", "name"], "id", &ids);
        let mut found: Vec<Row> = with_connection!(database, |conn| {
            let mut found = Vec::new();
            for statement in &statements {
                found.extend(
                    statement
                        .clone()
                        .load::<Row>(conn)
                        .map_err(DatabaseError::query("select by ids"))
                        .unwrap(),
                );
            }
            Ok::<_, DatabaseError>(found)
        })
        .unwrap();
        found.sort_by_key(|row| row.id);
        let expected: Vec<Row> = (1..=500)
            .map(|n| Row {
                id: n * 3,
                name: format!("n{}", n * 3),
            })
            .collect();
        assert!(
            found == expected,
            "{dialect}: {} rows found, {} expected",
            found.len(),
            expected.len()
        );
    }
}

#[path = "it/catalog.rs"]
mod catalog;

/// A PostgreSQL URL's libpq parameters reach the connection: with `sslmode=require` every
/// connection of the pool is encrypted, and `sslmode=verify-full` against a CA file that is
/// not there is an error naming it (the shared server has TLS on, as Debian sets it up).
#[cfg(feature = "postgres")]
#[test]
fn postgres_takes_its_tls_settings_from_the_url() {
    use pubsync_database::{DatabaseUrl, Dialect, PoolOptions};
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let Some(test_database) = TestDatabase::create(Dialect::Postgres) else {
        return;
    };
    let base = test_database.url().to_connection_string();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = DatabaseUrl::Postgres(format!("{base}{separator}sslmode=require"));
    let database = Database::connect(&url, &PoolOptions::default()).expect("sslmode=require");
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let row: Ssl = with_connection!(database, |conn| diesel::sql_query(sql)
        .get_result(conn)
        .map_err(DatabaseError::query(sql)))
    .unwrap();
    assert!(row.ssl, "the connection is encrypted");

    let url = DatabaseUrl::Postgres(format!(
        "{base}{separator}sslmode=verify-full&sslrootcert=/nonexistent/root.crt"
    ));
    let error = Database::connect(&url, &PoolOptions::default())
        .and_then(|database| database.batch_execute("SELECT 1"))
        .expect_err("no such root certificate");
    assert!(
        format!("{error}").contains("/nonexistent/root.crt"),
        "{error}"
    );
}
