//! Integration tests of pubsync-codegen: the generated migrations applied to real SQLite,
//! PostgreSQL and MySQL/MariaDB databases, their capture and sync-intent triggers checked
//! by the outbox rows they write. Every case runs on every database through a small driver
//! ([`database::Database`]); a server that cannot be reached is skipped loudly (and fails
//! the run under `CI=true`).

mod database {
    use diesel::connection::SimpleConnection;
    use diesel::mysql::Mysql;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::query_builder::SqlQuery;
    use diesel::sqlite::Sqlite;
    use pubsync_codegen::schema::{SourceFile, parse_schemas};
    use pubsync_codegen::sql::Dialect;
    use pubsync_test_support::{Service, require, unique_name};

    enum Handle {
        Sqlite(SqliteConnection),
        Postgres(PgConnection),
        Mysql(MysqlConnection),
    }

    /// A fresh database of one dialect, dropped again when the value goes out of scope
    /// (also when the test panics).
    pub struct Database {
        pub dialect: Dialect,
        connection: Option<Handle>,
        /// The server URL and database name to drop.
        server: Option<(String, String)>,
    }

    /// The URL with its database replaced by `name`.
    fn with_database(url: &str, name: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a service URL");
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("{scheme}://{authority}/{name}")
    }

    impl Database {
        /// An empty database, or `None` when its server is unreachable (after `SKIPPED:`).
        pub fn empty(dialect: Dialect) -> Option<Database> {
            let (connection, server) = match dialect {
                Dialect::Sqlite => (
                    Handle::Sqlite(SqliteConnection::establish(":memory:").unwrap()),
                    None,
                ),
                Dialect::Postgres => {
                    let url = require(Service::Postgres)?;
                    let name = unique_name("codegen");
                    PgConnection::establish(&url)
                        .unwrap()
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .unwrap();
                    let connection = PgConnection::establish(&with_database(&url, &name));
                    (Handle::Postgres(connection.unwrap()), Some((url, name)))
                }
                Dialect::Mysql => {
                    let url = require(Service::Mysql)?;
                    let name = unique_name("codegen");
                    MysqlConnection::establish(&url)
                        .unwrap()
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .unwrap();
                    let connection = MysqlConnection::establish(&with_database(&url, &name));
                    (Handle::Mysql(connection.unwrap()), Some((url, name)))
                }
            };
            Some(Database {
                dialect,
                connection: Some(connection),
                server,
            })
        }

        /// A database with the first migration of `schema` applied.
        pub fn with_schema(dialect: Dialect, schema: &str) -> Option<Database> {
            let mut database = Database::empty(dialect)?;
            database.execute(&migration_file(schema, dialect, "up.sql"));
            Some(database)
        }

        pub fn try_execute(&mut self, sql: &str) -> QueryResult<()> {
            match self.connection.as_mut().expect("open") {
                Handle::Sqlite(c) => c.batch_execute(sql),
                Handle::Postgres(c) => c.batch_execute(sql),
                Handle::Mysql(c) => c.batch_execute(sql),
            }
        }

        pub fn execute(&mut self, sql: &str) {
            if let Err(error) = self.try_execute(sql) {
                panic!("{:?}: {error}\n{sql}", self.dialect);
            }
        }

        pub fn load<R>(&mut self, sql: &str) -> Vec<R>
        where
            R: QueryableByName<Sqlite> + QueryableByName<Pg> + QueryableByName<Mysql> + 'static,
            SqlQuery: for<'a> diesel::query_dsl::LoadQuery<'a, SqliteConnection, R>
                + for<'a> diesel::query_dsl::LoadQuery<'a, PgConnection, R>
                + for<'a> diesel::query_dsl::LoadQuery<'a, MysqlConnection, R>,
        {
            let query = diesel::sql_query(sql);
            let result = match self.connection.as_mut().expect("open") {
                Handle::Sqlite(c) => query.load(c),
                Handle::Postgres(c) => query.load(c),
                Handle::Mysql(c) => query.load(c),
            };
            result.unwrap_or_else(|error| panic!("{:?}: {error}\n{sql}", self.dialect))
        }

        /// A bytes literal from hex digits.
        pub fn bytes(&self, hex: &str) -> String {
            match self.dialect {
                Dialect::Postgres => format!("decode('{hex}', 'hex')"),
                Dialect::Sqlite | Dialect::Mysql => format!("x'{hex}'"),
            }
        }

        /// String concatenation (`||` is OR on MySQL, SQLite before 3.44 has no CONCAT).
        pub fn concat(&self, left: &str, right: &str) -> String {
            match self.dialect {
                Dialect::Mysql => format!("CONCAT({left}, {right})"),
                Dialect::Sqlite | Dialect::Postgres => format!("{left} || {right}"),
            }
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            self.connection.take();
            let Some((url, name)) = self.server.take() else {
                return;
            };
            let result = match self.dialect {
                Dialect::Postgres => PgConnection::establish(&url).map(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                }),
                _ => MysqlConnection::establish(&url)
                    .map(|mut c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))),
            };
            if !matches!(result, Ok(Ok(()))) {
                eprintln!("could not drop test database {name}: {result:?}");
            }
        }
    }

    /// A file of the first migration generated from `schema`.
    pub fn migration_file(schema: &str, dialect: Dialect, file: &str) -> String {
        let model = parse_schemas(&[SourceFile::new("crates/t/schema/t.schema.xml", schema)])
            .expect("the test schema is valid");
        let migration = pubsync_codegen::new_migration(None, &model, "1", &[], "migrations")
            .unwrap()
            .expect("a first migration");
        let path = format!("migrations/{}/1_initial/{file}", dialect.name());
        migration
            .files
            .into_iter()
            .find(|generated| generated.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
            .contents
    }

    /// Runs each case on every database: `<module>::<dialect>::<case>`.
    macro_rules! on_every_database {
        ($cases:path: $($case:ident),* $(,)?) => {
            mod sqlite {
                $(#[test] fn $case() { use $cases as cases; cases::$case(pubsync_codegen::sql::Dialect::Sqlite) })*
            }
            mod postgres {
                $(#[test] fn $case() { use $cases as cases; cases::$case(pubsync_codegen::sql::Dialect::Postgres) })*
            }
            mod mysql {
                $(#[test] fn $case() { use $cases as cases; cases::$case(pubsync_codegen::sql::Dialect::Mysql) })*
            }
        };
    }
    pub(crate) use on_every_database;
}

/// The capture triggers: the outbox JSON is the same on every database.
#[path = "it/capture_triggers.rs"]
mod capture_triggers;

/// The sync-intent triggers of storage tables.
#[path = "it/sync_triggers.rs"]
mod sync_triggers;

/// The committed migrations (pubsync's own, then the Hello module's), applied in order to a
/// fresh database, and undone again by their down.sql files.
pub mod migration_set {
    use crate::database::{Database, on_every_database};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    use pubsync_codegen::schema::{SourceFile, parse_schemas};
    use pubsync_codegen::sql::{self, Dialect};
    use std::path::PathBuf;

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }

    /// Tables, triggers and functions left in the database.
    pub fn leftovers(database: &mut Database) -> Vec<String> {
        let sql = match database.dialect {
            Dialect::Sqlite => {
                "SELECT type || ' ' || name AS name FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Dialect::Postgres => {
                "SELECT 'table ' || table_name::text AS name FROM information_schema.tables \
                     WHERE table_schema = 'public' \
                 UNION ALL SELECT 'function ' || proname::text FROM pg_proc \
                     WHERE pronamespace = 'public'::regnamespace \
                 UNION ALL SELECT 'trigger ' || tgname::text FROM pg_trigger WHERE NOT tgisinternal \
                 ORDER BY 1"
            }
            Dialect::Mysql => {
                "SELECT CONCAT('table ', table_name) AS name FROM information_schema.tables \
                     WHERE table_schema = DATABASE() \
                 UNION ALL SELECT CONCAT('trigger ', trigger_name) FROM information_schema.triggers \
                     WHERE trigger_schema = DATABASE() \
                 UNION ALL SELECT CONCAT('routine ', routine_name) FROM information_schema.routines \
                     WHERE routine_schema = DATABASE() \
                 ORDER BY 1"
            }
        };
        database
            .load::<Name>(sql)
            .into_iter()
            .map(|row| row.name)
            .filter(|name| name != "table __diesel_schema_migrations")
            .collect()
    }

    /// The migration directories of a dialect in a migrations folder (relative to the
    /// workspace root), oldest first.
    fn migrations(folder: &str, dialect: Dialect) -> Vec<PathBuf> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(folder);
        let mut directories: Vec<PathBuf> = std::fs::read_dir(root.join(dialect.name()))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.join("up.sql").is_file())
            .collect();
        directories.sort();
        directories
    }

    /// The Hello module's message table with its capture triggers, as `setup` installs them
    /// from its definition (it is the shop's table: no migration creates it).
    fn hello_source_table(dialect: Dialect) -> Vec<String> {
        // The outbox's definition first: the event behaviour writes to it.
        let files: Vec<SourceFile> = [
            "crates/pubsync-backend/schema/pubsync_event_behavior.schema.xml",
            "crates/pubsync-hello/schema/spy_hello_spryker.schema.xml",
        ]
        .into_iter()
        .map(|path| {
            let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(path);
            SourceFile::new(path, std::fs::read_to_string(full).unwrap())
        })
        .collect();
        let model = parse_schemas(&files).unwrap();
        let table = model.table("spy_hello_spryker_message").unwrap();
        let mut statements = vec![sql::create_table(dialect, table)];
        statements.extend(sql::create_triggers(dialect, table));
        statements
    }

    fn count(database: &mut Database, sql: &str) -> i64 {
        database.load::<Count>(sql)[0].count
    }

    on_every_database!(crate::migration_set::cases:
        committed_migrations_apply_capture_and_sync_then_down_removes_everything,
    );

    pub mod cases {
        use super::*;

        pub fn committed_migrations_apply_capture_and_sync_then_down_removes_everything(
            dialect: Dialect,
        ) {
            let Some(mut database) = Database::empty(dialect) else {
                return;
            };
            // pubsync's own, then the module's.
            let mut migrations = migrations("migrations", dialect);
            assert!(!migrations.is_empty());
            migrations.extend(super::migrations(
                "crates/pubsync-hello/migrations",
                dialect,
            ));
            for directory in &migrations {
                database.execute(&std::fs::read_to_string(directory.join("up.sql")).unwrap());
            }
            for statement in hello_source_table(dialect) {
                database.execute(&statement);
            }
            let quote = if dialect == Dialect::Mysql { "`" } else { "\"" };
            database.execute(&format!(
                "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('n', 'hello');
                 INSERT INTO spy_hello_spryker_message_storage (fk_hello_spryker_message, data, {quote}key{quote})
                     VALUES (1, '{{}}', 'message:1');"
            ));
            assert_eq!(
                count(
                    &mut database,
                    "SELECT COUNT(*) AS count FROM spy_event_behavior_entity_change"
                ),
                1,
                "the hello message table has capture triggers"
            );
            assert_eq!(
                count(
                    &mut database,
                    "SELECT COUNT(*) AS count FROM pubsync_sync_outbox"
                ),
                1,
                "the hello storage table has sync triggers"
            );
            for directory in migrations.iter().rev() {
                database.execute(&std::fs::read_to_string(directory.join("down.sql")).unwrap());
            }
            // Only the shop's table is left: no migration owns it.
            let left: Vec<String> = leftovers(&mut database)
                .into_iter()
                .filter(|name| {
                    !name.contains("spy_hello_spryker_message") || name.contains("storage")
                })
                .collect();
            assert_eq!(left, Vec::<String>::new());
        }
    }
}

/// The committed generated Rust compiles on its own (with only diesel and pubsync-shared).
mod generated_rust_compiles {
    mod hello_tables {
        include!("../../pubsync-hello/src/generated/tables.rs");
    }
    mod hello_synchronization {
        include!("../../pubsync-hello/src/generated/synchronization.rs");
    }
    mod backend_tables {
        include!("../../pubsync-backend/src/generated/tables.rs");
    }
    mod queue_tables {
        include!("../../pubsync-queue-database/src/generated/tables.rs");
    }

    #[test]
    fn hello_synchronization_definition_is_the_tutorials() {
        let definition = hello_synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;
        assert_eq!(hello_synchronization::ALL, [definition]);
        assert_eq!(definition.resource, "message");
        assert_eq!(
            definition.key_suffix_column,
            Some("fk_hello_spryker_message")
        );
        assert_eq!(definition.queue_group, "sync.storage.hello");
        assert!(definition.timestampable);
        let _ = (
            hello_tables::spy_hello_spryker_message::table,
            backend_tables::spy_event_behavior_entity_change::table,
            queue_tables::pubsync_queue_message::table,
        );
    }
}

#[path = "it/workspace.rs"]
mod workspace;
