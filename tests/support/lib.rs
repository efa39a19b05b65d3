//! Support for the end-to-end tests: a fresh pubsync application per test, on its own SQLite
//! file, so tests run in parallel and leave nothing behind.

use std::path::{Path, PathBuf};

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};
use pubsync_cli::{App, Settings};
use pubsync_database::{DatabaseError, with_connection};

/// A migrated application on a temporary SQLite file.
pub struct TestApp {
    /// The application.
    pub app: App,
    dir: tempfile::TempDir,
}

/// One outbox row's `data`, decoded.
pub type OutboxEvent = serde_json::Value;

impl TestApp {
    /// A new application with the default settings and `toml` as its `pubsync.toml`.
    pub fn with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("pubsync.toml");
        let database = dir.path().join("pubsync.db");
        std::fs::write(
            &config,
            format!("database_url = \"sqlite://{}\"\n{toml}", database.display()),
        )
        .unwrap();
        let settings = Settings::load(Some(&config), |_| None).expect("settings");
        let app = App::open(settings).expect("open app");
        app.setup().expect("setup");
        Self { app, dir }
    }

    /// A new application with the default settings.
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// The directory holding the database and the config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("pubsync.db")
    }

    /// Executes `sql` (several statements allowed), as any writer of the database would.
    pub fn sql(&self, sql: &str) {
        self.app
            .database()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
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
            .map(|row| serde_json::from_str(&row.data).expect("outbox data is JSON"))
            .collect()
    }

    /// `(key, data)` of every Hello storage row, by key.
    pub fn message_storage(&self) -> Vec<(String, serde_json::Value)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            key: String,
            #[diesel(sql_type = Text)]
            data: String,
        }
        let database = self.app.database();
        let sql = "SELECT \"key\", data FROM spy_hello_spryker_message_storage ORDER BY \"key\"";
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(sql)
            .load(conn)
            .map_err(DatabaseError::query(sql)))
        .unwrap();
        rows.into_iter()
            .map(|row| (row.key, serde_json::from_str(&row.data).unwrap()))
            .collect()
    }

    /// Runs the worker until the outbox and the queues are empty.
    pub async fn work(&self) -> pubsync_backend::WorkerReport {
        self.app
            .worker()
            .run(true, &std::sync::atomic::AtomicBool::new(false))
            .await
            .expect("worker")
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}
