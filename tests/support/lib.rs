//! Support for the end-to-end tests: a fresh pubsync application per test, on its own database
//! (a temporary SQLite file, or a new database on the PostgreSQL/MariaDB test servers), so tests
//! run in parallel and leave nothing behind.

use std::path::Path;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};
use pubsync_cli::{App, Settings};
use pubsync_database::testing::TestDatabase;
use pubsync_database::{DatabaseError, Dialect, with_connection};
use pubsync_shared::event::EventEntityTransfer;

pub use pubsync_database::testing::dialects;

/// Expands each `async fn name(t: TestApp) { … }` into a module `name` with one test per
/// database compiled in (`sqlite`, and `postgres`/`mysql` with the crate's features).
#[macro_export]
macro_rules! on_every_database {
    ($(async fn $name:ident($t:ident: TestApp) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($t: $crate::TestApp) $body

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                case($crate::TestApp::on(pubsync_database::Dialect::Sqlite).expect("sqlite needs no server")).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                if let Some(t) = $crate::TestApp::on(pubsync_database::Dialect::Postgres) {
                    case(t).await;
                }
            }

            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql() {
                if let Some(t) = $crate::TestApp::on(pubsync_database::Dialect::Mysql) {
                    case(t).await;
                }
            }
        }
    )*};
}

/// A migrated application on a database of its own.
pub struct TestApp {
    /// The application.
    pub app: App,
    dir: tempfile::TempDir,
    // Dropped last: the database outlives the application's pool.
    _database: TestDatabase,
}

/// One outbox row's `data`, decoded as the relay decodes it and written out in the original's
/// outbox spelling (`EventEntityTransfer::to_original_outbox_json`).
pub type OutboxEvent = serde_json::Value;

impl TestApp {
    /// A new application on a new database of `dialect`, with `toml` as its `pubsync.toml`;
    /// `None` when the database server is unreachable outside CI.
    pub fn with_config(dialect: Dialect, toml: &str) -> Option<Self> {
        let t = Self::before_setup(dialect, toml)?;
        t.app.setup().expect("setup");
        Some(t)
    }

    /// A new application as [`with_config`](Self::with_config) makes it, before `setup`: the
    /// database is empty.
    pub fn before_setup(dialect: Dialect, toml: &str) -> Option<Self> {
        let database = TestDatabase::create(dialect)?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("pubsync.toml");
        let url = database.url().to_connection_string();
        std::fs::write(&config, format!("database_url = {url:?}\n{toml}")).unwrap();
        let settings = Settings::load(Some(&config), []).expect("settings");
        let modules = pubsync_cli::Modules::new([pubsync_hello::MODULE]);
        let app = App::open(settings, modules).expect("open app");
        Some(Self {
            app,
            dir,
            _database: database,
        })
    }

    /// A new application with the default settings on a new database of `dialect`.
    pub fn on(dialect: Dialect) -> Option<Self> {
        Self::with_config(dialect, "")
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.app.database().dialect()
    }

    /// `name` quoted for this database.
    pub fn quote(&self, name: &str) -> String {
        self.dialect().quote(name)
    }

    /// A directory for the test's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Executes `sql` (several statements allowed), as any writer of the database would.
    pub fn sql(&self, sql: &str) {
        self.app
            .database()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts messages `name <first>` … `name <last>` with `message`, in one statement.
    pub fn insert_messages(&self, first: i64, last: i64, message: Option<&str>) {
        let message = message.map_or_else(|| "NULL".to_owned(), |m| format!("'{m}'"));
        let values: Vec<String> = (first..=last)
            .map(|i| format!("('name {i}', {message})"))
            .collect();
        self.sql(&format!(
            "INSERT INTO spy_hello_spryker_message (name, message) VALUES {}",
            values.join(", ")
        ));
    }

    /// The count `sql` (a `SELECT COUNT(*) AS n …`) returns.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let database = self.app.database();
        let row: N = with_connection!(database, |conn| diesel::sql_query(sql)
            .get_result(conn)
            .map_err(DatabaseError::query(sql)))
        .unwrap();
        row.n
    }

    /// The outbox's events, oldest first.
    pub fn outbox(&self) -> Vec<OutboxEvent> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            data: String,
        }
        let database = self.app.database();
        let sql = "SELECT data FROM spy_event_behavior_entity_change ORDER BY id_event_behavior_entity_change";
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(sql)
            .load(conn)
            .map_err(DatabaseError::query(sql)))
        .unwrap();
        rows.into_iter()
            .map(|row| {
                EventEntityTransfer::from_outbox(&row.data)
                    .unwrap_or_else(|error| panic!("outbox row {}: {error}", row.data))
                    .to_original_outbox_json()
            })
            .collect()
    }

    /// `(key, data)` of every Hello storage row, by message id.
    pub fn message_storage(&self) -> Vec<(String, serde_json::Value)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            key: String,
            #[diesel(sql_type = Text)]
            data: String,
        }
        let database = self.app.database();
        let sql = format!(
            "SELECT {key} AS {key}, data FROM spy_hello_spryker_message_storage ORDER BY fk_hello_spryker_message",
            key = self.quote("key")
        );
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(&sql)
            .load(conn)
            .map_err(DatabaseError::query(&sql)))
        .unwrap();
        rows.into_iter()
            .map(|row| (row.key, serde_json::from_str(&row.data).unwrap()))
            .collect()
    }

    /// Runs the worker until the outbox and the queues are empty.
    pub async fn work(&self) -> pubsync_backend::WorkerReport {
        self.app
            .worker()
            .await
            .expect("worker")
            .run(true, &std::sync::atomic::AtomicBool::new(false))
            .await
            .expect("worker")
    }
}
