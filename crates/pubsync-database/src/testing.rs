//! A fresh database per test, on any dialect compiled in (feature `testing`).
//!
//! SQLite gets a file in a temporary directory; PostgreSQL and MySQL get a new database named
//! by [`unique_name`](pubsync_test_support::unique_name) on the test server
//! (`PUBSYNC_TEST_POSTGRES_URL`, `PUBSYNC_TEST_MYSQL_URL`), dropped when the value is dropped.
//! An unreachable server skips loudly, or fails under `CI=true`
//! ([`require`](pubsync_test_support::require)).

use pubsync_test_support::{Service, require, unique_name};

use crate::{Database, DatabaseUrl, Dialect, PoolOptions};

/// Every dialect compiled into this build, SQLite first.
pub fn dialects() -> Vec<Dialect> {
    let mut dialects = vec![Dialect::Sqlite];
    if cfg!(feature = "postgres") {
        dialects.push(Dialect::Postgres);
    }
    if cfg!(feature = "mysql") {
        dialects.push(Dialect::Mysql);
    }
    dialects
}

/// A database that exists for one test.
pub struct TestDatabase {
    url: DatabaseUrl,
    admin: Option<(Database, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A new, empty database of `dialect`; `None` when its server is unreachable outside CI.
    ///
    /// # Panics
    /// When the server is unreachable under `CI=true`, or creating the database fails.
    pub fn create(dialect: Dialect) -> Option<Self> {
        match dialect {
            Dialect::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = DatabaseUrl::Sqlite(dir.path().join("test.db"));
                Some(Self {
                    url,
                    admin: None,
                    _dir: Some(dir),
                })
            }
            Dialect::Postgres => Self::on_server(Service::Postgres),
            Dialect::Mysql => Self::on_server(Service::Mysql),
        }
    }

    fn on_server(service: Service) -> Option<Self> {
        let admin_url = require(service)?;
        let admin = Database::connect(
            &admin_url.parse().expect("test server url"),
            &PoolOptions {
                max_connections: 1,
                ..PoolOptions::default()
            },
        )
        .unwrap_or_else(|error| panic!("connecting to the test server: {error}"));
        let name = unique_name("pubsync_test");
        admin
            .batch_execute(&format!("CREATE DATABASE {}", admin.dialect().quote(&name)))
            .unwrap_or_else(|error| panic!("creating test database {name}: {error}"));
        let url = with_database_name(&admin_url, &name)
            .parse()
            .expect("test database url");
        Some(Self {
            url,
            admin: Some((admin, name)),
            _dir: None,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A pool to the database.
    pub fn connect(&self) -> Database {
        Database::connect(&self.url, &PoolOptions::default()).expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.admin {
            let quoted = admin.dialect().quote(name);
            let sql = match admin.dialect() {
                Dialect::Postgres => format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {quoted}"),
            };
            if let Err(error) = admin.batch_execute(&sql) {
                eprintln!("warning: could not drop test database {name}: {error}");
            }
        }
    }
}

/// `url` with its path (the database name) replaced by `name`, query kept.
fn with_database_name(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme://");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, query)| format!("?{query}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// A transaction held open on a thread of its own, as another process's writer holds one: its
/// statements have run, and it neither commits nor rolls back until told (rolled back when
/// dropped).
pub struct OpenTransaction {
    end: std::sync::mpsc::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OpenTransaction {
    /// Begins a transaction on a connection of `database` and runs `sql` in it; returns once
    /// it has run.
    ///
    /// # Panics
    /// When a statement fails.
    pub fn begin(database: &Database, sql: &str) -> Self {
        let (database, sql) = (database.clone(), sql.to_owned());
        let (ran, has_run) = std::sync::mpsc::channel();
        let (end, to_end) = std::sync::mpsc::channel::<bool>();
        let thread = std::thread::spawn(move || {
            crate::with_connection!(database, |conn| {
                use diesel::connection::SimpleConnection as _;
                conn.batch_execute("BEGIN").expect("BEGIN");
                conn.batch_execute(&sql)
                    .unwrap_or_else(|error| panic!("{sql}: {error}"));
                ran.send(()).expect("the test waits");
                let commit = to_end.recv().unwrap_or(false);
                conn.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
                    .expect("end of the transaction");
                Ok::<_, crate::DatabaseError>(())
            })
            .expect("a connection");
        });
        has_run.recv().expect("the transaction's statements ran");
        Self {
            end,
            thread: Some(thread),
        }
    }

    /// Commits the transaction and waits until it has.
    pub fn commit(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, commit: bool) {
        if let Some(thread) = self.thread.take() {
            let _ = self.end.send(commit);
            // Not a second panic while a failing test unwinds.
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the transaction did not end cleanly");
            }
        }
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            with_database_name("postgres://root@h:5432/test", "x"),
            "postgres://root@h:5432/x"
        );
        assert_eq!(
            with_database_name("mysql://root@h/test?ssl=0", "x"),
            "mysql://root@h/x?ssl=0"
        );
        assert_eq!(
            with_database_name("mysql://root@h", "x"),
            "mysql://root@h/x"
        );
    }
}
