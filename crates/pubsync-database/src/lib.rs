//! Database plumbing shared by the backend, the database queue and the database storage:
//! connection URLs, pooled connections for each supported database, and the dialect facts
//! that generated SQL depends on.
//!
//! Code that must run on every database is written once inside [`with_connection!`], which
//! expands it for each connection type (diesel's backends are distinct types; a function
//! generic over the connection runs into higher-ranked trait bounds that diesel's query
//! traits cannot satisfy). Lists of ids or keys are bound by [`bind_list`].
//!
//! This crate reads no environment variables: callers pass a [`DatabaseUrl`].
#![warn(unreachable_pub)]

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use diesel::RunQueryDsl as _;
use diesel::connection::SimpleConnection as _;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use diesel::sqlite::SqliteConnection;

pub use catalog::{CatalogColumn, TypeFamily};
pub use diesel;
pub use list::{BoundList, ListValue, MAX_LIST_CHUNK, bind_list};
pub use pubsync_schema::{
    Dialect, DialectFingerprints, DialectStatements, SourceColumn, SourceTable, fingerprint, names,
};
pub use row::{FromMysqlRow, FromPostgresRow, FromRow};
pub use statement::{
    Bind, Statement, bucketed, index_order, postgres_any, postgres_array, select_by_ids,
    stored_text,
};

mod catalog;
mod list;
mod row;
mod statement;
#[cfg(feature = "testing")]
pub mod testing;

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    /// The URL cannot be used.
    #[error("invalid database url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (password removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL (password removed).
        url: String,
        /// The pool's error.
        #[source]
        source: r2d2::Error,
    },
    /// The first connection failed: the server refused it or could not be reached.
    #[error(
        "cannot connect to {url}: {reason} (check the host, port, user, password and database name{tls})"
    )]
    Unreachable {
        /// The URL (password removed).
        url: String,
        /// What the driver said.
        reason: String,
        /// A word on TLS where the URL asks for it.
        tls: &'static str,
    },
    /// A statement failed.
    #[error("{operation} failed: {source}")]
    Query {
        /// What was attempted.
        operation: String,
        /// diesel's error.
        #[source]
        source: diesel::result::Error,
    },
    /// A write was refused before it reached the database: what it would store breaks a
    /// limit of pubsync's own.
    #[error("{operation} refused: {reason}")]
    Refused {
        /// What was attempted.
        operation: String,
        /// Which limit, and by how much.
        reason: String,
    },
}

impl DatabaseError {
    /// Wraps a diesel error with what was attempted.
    pub fn query(operation: impl Into<String>) -> impl FnOnce(diesel::result::Error) -> Self {
        let operation = operation.into();
        move |source| Self::Query { operation, source }
    }

    /// Whether trying again later may succeed (unreachable server, locked database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Unreachable { .. } => true,
            Self::Query { source, .. } => is_transient_diesel_error(source),
            Self::InvalidUrl { .. } | Self::Refused { .. } => false,
        }
    }
}

/// Errors of transaction control itself (`BEGIN`, `COMMIT`), which carry no operation name.
impl From<diesel::result::Error> for DatabaseError {
    fn from(source: diesel::result::Error) -> Self {
        Self::Query {
            operation: "transaction".to_owned(),
            source,
        }
    }
}

fn is_transient_diesel_error(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection,
            _,
        ) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("deadlock")
                || message.contains("Lock wait")
        }
        _ => false,
    }
}

/// Where the database is: `sqlite://pubsync.db`, `postgres://…`, `mysql://…`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
    /// A MySQL/MariaDB URL.
    Mysql(String),
}

impl DatabaseUrl {
    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
            Self::Mysql(_) => Dialect::Mysql,
        }
    }

    /// The full URL, password included, to hand to another process or configuration.
    pub fn to_connection_string(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) | Self::Mysql(url) => url.clone(),
        }
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) | Self::Mysql(url) => redact(url),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with its password replaced by `***`, for messages and logs, whatever its scheme:
/// the one after `user:` in `scheme://user:password@host`, and any `password=` parameter.
pub fn redact_url(url: &str) -> String {
    let mut redacted = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    for key in ["password=", "pass=", "pwd="] {
        let mut from = 0;
        while let Some(found) = redacted[from..].find(key) {
            let start = from + found;
            let before = redacted[..start].chars().next_back();
            let value_start = start + key.len();
            from = value_start;
            if !matches!(before, None | Some('?' | '&' | ';' | ' ')) {
                continue;
            }
            let end = redacted[value_start..]
                .find(['&', ';', ' '])
                .map_or(redacted.len(), |offset| value_start + offset);
            redacted.replace_range(value_start..end, "***");
            from = value_start + 3;
        }
    }
    redacted
}

fn redact(url: &str) -> String {
    redact_url(url)
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| DatabaseError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://…, e.g. sqlite://pubsync.db, postgres://host/db, mysql://host/db"))?;
        match scheme {
            "sqlite" => {
                if rest.is_empty() {
                    return Err(invalid(
                        "sqlite:// needs a file path, e.g. sqlite://pubsync.db",
                    ));
                }
                Ok(Self::Sqlite(PathBuf::from(rest)))
            }
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_owned())),
            "mysql" | "mariadb" => Ok(Self::Mysql(url.replacen("mariadb://", "mysql://", 1))),
            other => Err(invalid(&format!(
                "unknown scheme {other:?}; use sqlite, postgres or mysql"
            ))),
        }
    }
}

/// A pool of connections to one database. PostgreSQL and MySQL are cargo features
/// (`postgres`, `mysql`), so the embedded default builds without their client libraries.
#[derive(Clone)]
#[non_exhaustive]
pub enum Pool {
    /// SQLite connections.
    Sqlite(r2d2::Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL connections.
    #[cfg(feature = "postgres")]
    Postgres(r2d2::Pool<ConnectionManager<diesel::pg::PgConnection>>),
    /// MySQL/MariaDB connections.
    #[cfg(feature = "mysql")]
    Mysql(r2d2::Pool<ConnectionManager<diesel::mysql::MysqlConnection>>),
}

/// Begins a transaction that writes. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so two writers wait on the busy timeout instead of failing to upgrade a read lock.
pub trait WriteTransaction {
    /// Runs `f` in a write transaction, committing when it returns `Ok`.
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>;
}

impl WriteTransaction for SqliteConnection {
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.immediate_transaction(f)
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of `$database`, whichever database
/// it is. `$body` is compiled once for each database compiled in (SQLite always, PostgreSQL and
/// MySQL with their features); it evaluates to a `Result` whose error converts from
/// [`DatabaseError`].
#[macro_export]
macro_rules! with_connection {
    ($database:expr, |$conn:ident| $body:expr) => {{
        let database: &$crate::Database = &$database;
        'with_connection: {
            $crate::__with_sqlite!(database, $conn, $body, 'with_connection);
            $crate::__with_postgres!(database, $conn, $body, 'with_connection);
            $crate::__with_mysql!(database, $conn, $body, 'with_connection);
            unreachable!("every pool variant has an arm")
        }
    }};
}

// One helper macro per database, defined according to this crate's features: a `#[cfg]`
// written inside `with_connection!` would be evaluated in the calling crate instead.

#[doc(hidden)]
#[macro_export]
macro_rules! __with_pool {
    ($variant:ident, $connection:ty, $database:ident, $conn:ident, $body:expr, $label:lifetime) => {
        #[allow(irrefutable_let_patterns)]
        if let $crate::Pool::$variant(pool) = $database.pool() {
            break $label match pool.get() {
                Ok(mut pooled) => {
                    let $conn: &mut $connection = &mut *pooled;
                    $body
                }
                Err(source) => Err($crate::DatabaseError::Connect { url: $database.url().redacted(), source }.into()),
            };
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __with_sqlite {
    ($database:ident, $conn:ident, $body:expr, $label:lifetime) => {
        $crate::__with_pool!(
            Sqlite,
            $crate::diesel::sqlite::SqliteConnection,
            $database,
            $conn,
            $body,
            $label
        )
    };
}

#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_postgres {
    ($database:ident, $conn:ident, $body:expr, $label:lifetime) => {
        $crate::__with_pool!(
            Postgres,
            $crate::diesel::pg::PgConnection,
            $database,
            $conn,
            $body,
            $label
        )
    };
}

#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_postgres {
    ($($ignored:tt)*) => {};
}

#[cfg(feature = "mysql")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_mysql {
    ($database:ident, $conn:ident, $body:expr, $label:lifetime) => {
        $crate::__with_pool!(
            Mysql,
            $crate::diesel::mysql::MysqlConnection,
            $database,
            $conn,
            $body,
            $label
        )
    };
}

#[cfg(not(feature = "mysql"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_mysql {
    ($($ignored:tt)*) => {};
}

/// Settings of a pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long to wait for a free connection (and, on SQLite, for a lock).
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A database: its URL and a pool of connections to it. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    url: DatabaseUrl,
    pool: Pool,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct SqliteSettings {
    busy_timeout: Duration,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let pragmas = format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            self.busy_timeout.as_millis()
        );
        conn.batch_execute(&pragmas)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn build_pool<C>(
    url: &DatabaseUrl,
    connection_url: &str,
    options: &PoolOptions,
    customizer: Option<Box<dyn CustomizeConnection<C, diesel::r2d2::Error>>>,
) -> Result<r2d2::Pool<ConnectionManager<C>>, DatabaseError>
where
    C: diesel::r2d2::R2D2Connection + 'static,
{
    // One connection first, outside the pool: a refused password or a missing database is
    // one clear error at once, rather than the pool retrying (and logging) until its timeout.
    if let Err(error) = <C as diesel::Connection>::establish(connection_url) {
        let asks_for_tls = [
            "sslmode=require",
            "sslmode=verify",
            "ssl-mode=",
            "ssl_mode=",
        ]
        .iter()
        .any(|parameter| connection_url.contains(parameter));
        return Err(DatabaseError::Unreachable {
            url: url.redacted(),
            reason: error.to_string().trim().replace('\n', " "),
            tls: if asks_for_tls {
                ", and that the server accepts TLS"
            } else {
                ""
            },
        });
    }
    let mut builder = r2d2::Pool::builder()
        .max_size(options.max_connections)
        .connection_timeout(options.timeout)
        .error_handler(Box::new(QuietPoolErrors));
    if let Some(customizer) = customizer {
        builder = builder.connection_customizer(customizer);
    }
    builder
        .build(ConnectionManager::<C>::new(connection_url))
        .map_err(|source| DatabaseError::Connect {
            url: url.redacted(),
            source,
        })
}

/// The pool's connection failures go to the debug log: whoever waits on the pool reports the
/// failure once, with what was attempted, instead of one line per attempt.
#[derive(Debug)]
struct QuietPoolErrors;

impl<E: fmt::Display> r2d2::HandleError<E> for QuietPoolErrors {
    fn handle_error(&self, error: E) {
        tracing::debug!(%error, "a database connection failed");
    }
}

/// Session settings of every MySQL connection: full Unicode, and READ COMMITTED so that
/// concurrent queue consumers (`FOR UPDATE SKIP LOCKED`) do not deadlock on InnoDB's gap locks.
#[cfg(feature = "mysql")]
#[derive(Debug)]
struct MysqlSettings;

#[cfg(feature = "mysql")]
impl CustomizeConnection<diesel::mysql::MysqlConnection, diesel::r2d2::Error> for MysqlSettings {
    fn on_acquire(
        &self,
        conn: &mut diesel::mysql::MysqlConnection,
    ) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "SET NAMES utf8mb4; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[cfg(feature = "postgres")]
impl WriteTransaction for diesel::pg::PgConnection {
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        diesel::Connection::transaction(self, f)
    }
}

#[cfg(feature = "mysql")]
impl WriteTransaction for diesel::mysql::MysqlConnection {
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        diesel::Connection::transaction(self, f)
    }
}

impl Database {
    /// Opens a pool to `url`, checking that a connection can be made.
    pub fn connect(url: &DatabaseUrl, options: &PoolOptions) -> Result<Self, DatabaseError> {
        let pool = match url {
            DatabaseUrl::Sqlite(path) => {
                let settings = SqliteSettings {
                    busy_timeout: options.timeout,
                };
                let pool = build_pool(
                    url,
                    &path.to_string_lossy(),
                    options,
                    Some(Box::new(settings)),
                )?;
                // WAL is a property of the file: set it once, not on every new connection (which
                // would need a lock each time and fail while another connection writes).
                let mut conn = pool.get().map_err(|source| DatabaseError::Connect {
                    url: url.redacted(),
                    source,
                })?;
                conn.batch_execute("PRAGMA journal_mode = WAL")
                    .map_err(DatabaseError::query("enable the WAL journal"))?;
                Pool::Sqlite(pool)
            }
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(postgres_url) => {
                Pool::Postgres(build_pool(url, postgres_url, options, None)?)
            }
            #[cfg(feature = "mysql")]
            DatabaseUrl::Mysql(mysql_url) => Pool::Mysql(build_pool(
                url,
                mysql_url,
                options,
                Some(Box::new(MysqlSettings)),
            )?),
            #[allow(unreachable_patterns)]
            other => {
                let dialect = other.dialect();
                return Err(DatabaseError::InvalidUrl {
                    url: other.redacted(),
                    reason: format!(
                        "this build of pubsync does not include {dialect} support (build with `--features {dialect}`)"
                    ),
                });
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                pool,
            }),
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.inner.url
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.url.dialect()
    }

    /// The pool, for [`with_connection!`].
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Runs blocking database work `f` off the async runtime's threads.
    pub async fn blocking<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&Database) -> T + Send + 'static,
        T: Send + 'static,
    {
        let database = self.clone();
        match tokio::task::spawn_blocking(move || f(&database)).await {
            Ok(value) => value,
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
    }

    /// Runs short blocking database work `f` where the calling task is, telling a
    /// multi-threaded runtime to move its other tasks to another thread meanwhile
    /// (`block_in_place`); elsewhere (a current-thread runtime) as [`blocking`](Self::blocking)
    /// does. For reads on a request's path: a hand-off to the blocking pool and back costs two
    /// thread wake-ups per call, a good part of a short read such as a `get_multi` on SQLite.
    ///
    /// Panics where `block_in_place` does: on a thread that entered a multi-threaded
    /// runtime's handle from inside a current-thread runtime. A `LocalSet` on a worker
    /// thread waits while `f` runs.
    pub async fn blocking_in_place<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&Database) -> T + Send + 'static,
        T: Send + 'static,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| f(self)),
            _ => self.blocking(f).await,
        }
    }

    /// Executes `sql` (one or more statements, no parameters).
    pub fn batch_execute(&self, sql: &str) -> Result<(), DatabaseError> {
        with_connection!(self, |conn| conn
            .batch_execute(sql)
            .map_err(DatabaseError::query("batch execute")))
    }

    /// Whether `table` exists.
    pub fn table_exists(&self, table: &str) -> Result<bool, DatabaseError> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Dialect::Mysql => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        with_connection!(self, |conn| {
            diesel::sql_query(sql)
                .bind::<diesel::sql_types::Text, _>(table)
                .get_result::<Count>(conn)
                .map(|c| c.n > 0)
                .map_err(DatabaseError::query(format!("look up table {table}")))
        })
    }
}

/// Milliseconds since the Unix epoch, the time unit of queue and outbox columns.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_whatever_the_scheme() {
        for (url, shown) in [
            ("kafka://user:pw@host:9092", "kafka://user:***@host:9092"),
            (
                "amqps://guest:s3cr@t@rabbit/%2f",
                "amqps://guest:***@rabbit/%2f",
            ),
            (
                "redis://:pw@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "postgres://host/db?sslmode=require&password=pw&user=u",
                "postgres://host/db?sslmode=require&password=***&user=u",
            ),
            (
                "host=x password=pw dbname=y",
                "host=x password=*** dbname=y",
            ),
            (
                "postgres://host/db?mypassword=x",
                "postgres://host/db?mypassword=x",
            ),
            ("sqlite://pubsync.db", "sqlite://pubsync.db"),
            ("database", "database"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn parses_urls_of_every_database() {
        assert_eq!(
            "sqlite://pubsync.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("pubsync.db".into())
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "postgres://u:p@h/db"
                .parse::<DatabaseUrl>()
                .unwrap()
                .dialect(),
            Dialect::Postgres
        );
        assert_eq!(
            "mariadb://root@h/test".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Mysql("mysql://root@h/test".into())
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let err = "redis://u:secret@h"
            .parse::<DatabaseUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scheme \"redis\""), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = "pubsync.db".parse::<DatabaseUrl>().unwrap_err().to_string();
        assert!(err.contains("expected scheme://"), "{err}");
        assert!("sqlite://".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn sqlite_pool_opens_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let db = Database::connect(&url, &PoolOptions::default()).unwrap();
        db.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert!(db.table_exists("t").unwrap());
        assert!(!db.table_exists("u").unwrap());
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let mode = with_connection!(db, |conn| diesel::sql_query("PRAGMA journal_mode")
            .get_result::<Mode>(conn)
            .map_err(DatabaseError::query("pragma")))
        .unwrap();
        assert_eq!(mode.journal_mode, "wal");
    }
}
