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
mod capture_triggers {
    use crate::database::{Database, on_every_database};
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use pubsync_codegen::sql::Dialect;
    use pubsync_shared::event::EventEntityTransfer;
    use serde_json::{Value, json};

    pub const SCHEMA: &str = r#"<database name="zed">
    <table name="spy_event_behavior_entity_change">
        <column name="id_event_behavior_entity_change" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="data" type="LONGVARCHAR" required="true"/>
        <column name="process_id" type="VARCHAR" size="255"/>
        <behavior name="timestampable"><parameter name="disable_updated_at" value="true"/></behavior>
    </table>
    <table name="spy_parent">
        <column name="id_parent" type="INTEGER" primaryKey="true" autoIncrement="true"/>
    </table>
    <table name="spy_item">
        <column name="id_item" type="INTEGER" primaryKey="true" autoIncrement="true"/>
        <column name="fk_parent" type="INTEGER"/>
        <column name="name" type="VARCHAR" required="true"/>
        <column name="quantity" type="INTEGER"/>
        <column name="note" type="LONGVARCHAR"/>
        <column name="sku" type="VARCHAR" size="64"/>
        <foreign-key foreignTable="spy_parent" onDelete="CASCADE">
            <reference local="fk_parent" foreign="id_parent"/>
        </foreign-key>
        <behavior name="event">
            <parameter name="spy_item_name" column="name" keep-original="true"/>
            <parameter name="spy_item_quantity" column="quantity" value="0" operator="==="/>
            <parameter name="spy_item_sku" column="sku" keep-additional="true"/>
        </behavior>
    </table>
    <table name="spy_all">
        <column name="id_all" type="BIGINT" primaryKey="true" autoIncrement="true"/>
        <column name="a" type="VARCHAR"/>
        <column name="b" type="INTEGER"/>
        <column name="payload" type="BLOB"/>
        <behavior name="event">
            <parameter name="spy_all_all" column="*" keep-original="true"/>
        </behavior>
    </table>
    <table name="spy_table_whose_name_is_long_enough_to_need_short_trigger_na">
        <column name="id" type="INTEGER" primaryKey="true" autoIncrement="true"/>
        <column name="name" type="VARCHAR"/>
        <behavior name="event"><parameter name="all" column="*"/></behavior>
    </table>
</database>"#;

    #[derive(QueryableByName)]
    struct OutboxRow {
        #[diesel(sql_type = Text)]
        data: String,
    }

    fn database(dialect: Dialect) -> Option<Database> {
        Database::with_schema(dialect, SCHEMA)
    }

    /// Every outbox row written since the last call, read as the relay reads it and written
    /// out in the original's outbox spelling (so these cases hold the compact rows to the
    /// original's content); the outbox is emptied.
    fn take_events(database: &mut Database) -> Vec<Value> {
        let rows: Vec<OutboxRow> = database.load(
            "SELECT data FROM spy_event_behavior_entity_change ORDER BY id_event_behavior_entity_change",
        );
        database.execute("DELETE FROM spy_event_behavior_entity_change");
        rows.iter()
            .map(|row| {
                assert!(row.data.starts_with('['), "not a compact row: {}", row.data);
                EventEntityTransfer::from_outbox(&row.data)
                    .unwrap_or_else(|error| panic!("{error}: {}", row.data))
                    .to_original_outbox_json()
            })
            .collect()
    }

    fn with_item(dialect: Dialect) -> Option<Database> {
        let mut database = database(dialect)?;
        database.execute(
            "INSERT INTO spy_parent (id_parent) VALUES (1);
             INSERT INTO spy_item (fk_parent, name, quantity, sku) VALUES (1, 'first', 5, 'S1');",
        );
        take_events(&mut database);
        Some(database)
    }

    on_every_database!(crate::capture_triggers::cases:
        insert_records_a_create_event_with_set_columns_foreign_keys_and_additional_values,
        update_of_one_watched_column_records_it_with_its_original_value,
        update_that_changes_nothing_records_nothing,
        update_of_unwatched_column_records_nothing,
        update_of_watched_and_unwatched_columns_lists_every_changed_column,
        bulk_update_records_one_event_per_row,
        delete_records_a_delete_event_without_modified_columns,
        rolled_back_transaction_records_nothing,
        value_filter_records_only_when_the_comparison_flips,
        star_with_keep_original_keeps_every_changed_column_and_any_change_counts,
        primary_key_change_records_an_update_of_the_new_id,
        primary_key_change_with_a_watched_column_set_to_null_is_captured,
        table_with_a_long_name_gets_shortened_trigger_names,
        down_migration_removes_everything,
    );

    pub mod cases {
        use super::*;

        pub fn insert_records_a_create_event_with_set_columns_foreign_keys_and_additional_values(
            dialect: Dialect,
        ) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            database.execute(
                "INSERT INTO spy_parent (id_parent) VALUES (1);
                 INSERT INTO spy_item (fk_parent, name, sku) VALUES (1, 'first', 'S1');",
            );
            assert_eq!(
                take_events(&mut database),
                [json!({
                    "name": "spy_item",
                    "id": 1,
                    "event": "Entity.spy_item.create",
                    "foreignKeys": {"spy_item.fk_parent": 1},
                    "modifiedColumns": ["spy_item.fk_parent", "spy_item.name", "spy_item.sku"],
                    "originalValues": {},
                    "additionalValues": {"spy_item.sku": "S1"}
                })]
            );
        }

        pub fn update_of_one_watched_column_records_it_with_its_original_value(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("UPDATE spy_item SET name = 'second' WHERE id_item = 1");
            assert_eq!(
                take_events(&mut database),
                [json!({
                    "name": "spy_item",
                    "id": 1,
                    "event": "Entity.spy_item.update",
                    "foreignKeys": {"spy_item.fk_parent": 1},
                    "modifiedColumns": ["spy_item.name"],
                    "originalValues": {"spy_item.name": "first"},
                    "additionalValues": {"spy_item.sku": "S1"}
                })]
            );
        }

        pub fn update_that_changes_nothing_records_nothing(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("UPDATE spy_item SET name = name, sku = 'S1'");
            assert_eq!(take_events(&mut database), Vec::<Value>::new());
        }

        pub fn update_of_unwatched_column_records_nothing(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("UPDATE spy_item SET note = 'changed'");
            assert_eq!(take_events(&mut database), Vec::<Value>::new());
        }

        pub fn update_of_watched_and_unwatched_columns_lists_every_changed_column(
            dialect: Dialect,
        ) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("UPDATE spy_item SET note = 'n', sku = 'S2'");
            let events = take_events(&mut database);
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0]["modifiedColumns"],
                json!(["spy_item.note", "spy_item.sku"])
            );
            assert_eq!(events[0]["originalValues"], json!({}));
            assert_eq!(events[0]["additionalValues"], json!({"spy_item.sku": "S2"}));
        }

        pub fn bulk_update_records_one_event_per_row(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            // 10,000 rows from a cross join of digits: portable, unlike recursive CTEs.
            let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                 UNION ALL SELECT 8 UNION ALL SELECT 9)";
            let number = "a.d + 10 * b.d + 100 * c.d + 1000 * e.d";
            let name = database.concat("'item'", &format!("CAST({number} AS CHAR(8))"));
            database.execute(&format!(
                "INSERT INTO spy_item (name) SELECT {name} \
                 FROM {digits} a, {digits} b, {digits} c, {digits} e"
            ));
            assert_eq!(take_events(&mut database).len(), 10_000);
            let bang = database.concat("name", "'!'");
            database.execute(&format!("UPDATE spy_item SET name = {bang}"));
            let events = take_events(&mut database);
            assert_eq!(events.len(), 10_000);
            assert!(
                events
                    .iter()
                    .all(|event| event["event"] == "Entity.spy_item.update"
                        && event["modifiedColumns"] == json!(["spy_item.name"]))
            );
            let mut ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), 10_000);
        }

        pub fn delete_records_a_delete_event_without_modified_columns(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("DELETE FROM spy_item WHERE id_item = 1");
            assert_eq!(
                take_events(&mut database),
                [json!({
                    "name": "spy_item",
                    "id": 1,
                    "event": "Entity.spy_item.delete",
                    "foreignKeys": {"spy_item.fk_parent": 1},
                    "additionalValues": {"spy_item.sku": "S1"}
                })]
            );
        }

        pub fn rolled_back_transaction_records_nothing(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            database.execute(
                "BEGIN;
                 INSERT INTO spy_item (name) VALUES ('gone');
                 UPDATE spy_item SET name = 'still gone';
                 ROLLBACK;",
            );
            assert_eq!(take_events(&mut database), Vec::<Value>::new());
        }

        pub fn value_filter_records_only_when_the_comparison_flips(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            let mut events_after = |sql: &str| {
                database.execute(sql);
                take_events(&mut database).len()
            };
            // quantity === 0: 5 → 3 keeps it false, 3 → 0 makes it true, 0 → 2 false again.
            assert_eq!(events_after("UPDATE spy_item SET quantity = 3"), 0);
            assert_eq!(events_after("UPDATE spy_item SET quantity = 0"), 1);
            assert_eq!(events_after("UPDATE spy_item SET quantity = 2"), 1);
            // Null-ness flipping counts as a change.
            assert_eq!(events_after("UPDATE spy_item SET quantity = NULL"), 1);
            assert_eq!(events_after("UPDATE spy_item SET quantity = 7"), 1);
        }

        pub fn star_with_keep_original_keeps_every_changed_column_and_any_change_counts(
            dialect: Dialect,
        ) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            let bytes = database.bytes("00ff");
            database.execute(&format!(
                "INSERT INTO spy_all (a, b, payload) VALUES ('x', 1, {bytes});"
            ));
            let created = take_events(&mut database);
            assert_eq!(
                created[0]["modifiedColumns"],
                json!(["spy_all.a", "spy_all.b", "spy_all.payload"])
            );
            let bytes = database.bytes("01");
            database.execute(&format!("UPDATE spy_all SET b = NULL, payload = {bytes}"));
            let events = take_events(&mut database);
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0]["modifiedColumns"],
                json!(["spy_all.b", "spy_all.payload"])
            );
            assert_eq!(
                events[0]["originalValues"],
                json!({"spy_all.b": 1, "spy_all.payload": "00FF"})
            );
            assert_eq!(events[0]["foreignKeys"], json!({}));
            database.execute("UPDATE spy_all SET a = 'x'");
            assert_eq!(take_events(&mut database), Vec::<Value>::new());
        }

        /// A row given a new primary key is recorded as an update of its new id. PostgreSQL's
        /// statement triggers pair an update's old and new rows by primary key, so there the
        /// old version is not found and every set column counts as changed.
        pub fn primary_key_change_records_an_update_of_the_new_id(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            database.execute("INSERT INTO spy_all (a, b) VALUES ('x', 1), ('y', 2);");
            take_events(&mut database);
            database.execute("UPDATE spy_all SET id_all = id_all + 10");
            let events = take_events(&mut database);
            let mut ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
            ids.sort_unstable();
            assert_eq!(ids, [11, 12], "{events:#?}");
            for event in &events {
                assert_eq!(event["event"], "Entity.spy_all.update");
                let modified = event["modifiedColumns"].as_array().unwrap();
                assert!(modified.contains(&json!("spy_all.id_all")), "{event}");
            }
        }

        /// A row given a new primary key while a watched column goes to NULL is captured,
        /// also where the old version cannot be paired with the new one by primary key.
        pub fn primary_key_change_with_a_watched_column_set_to_null_is_captured(dialect: Dialect) {
            let Some(mut database) = with_item(dialect) else {
                return;
            };
            database.execute("UPDATE spy_item SET id_item = 100, quantity = 7 WHERE id_item = 1");
            take_events(&mut database);
            database
                .execute("UPDATE spy_item SET id_item = 200, quantity = NULL WHERE id_item = 100");
            let events = take_events(&mut database);
            assert_eq!(events.len(), 1, "{events:#?}");
            assert_eq!(events[0]["event"], "Entity.spy_item.update");
            assert_eq!(events[0]["id"], 200);
            let modified = events[0]["modifiedColumns"].as_array().unwrap();
            assert!(
                modified.contains(&json!("spy_item.quantity")),
                "{modified:?}"
            );
        }

        pub fn table_with_a_long_name_gets_shortened_trigger_names(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            let table = "spy_table_whose_name_is_long_enough_to_need_short_trigger_na";
            database.execute(&format!("INSERT INTO {table} (name) VALUES ('a')"));
            database.execute(&format!("UPDATE {table} SET name = 'b'"));
            database.execute(&format!("DELETE FROM {table}"));
            let events: Vec<Value> = take_events(&mut database)
                .into_iter()
                .map(|event| event["event"].clone())
                .collect();
            assert_eq!(
                events,
                ["create", "update", "delete"].map(|a| json!(format!("Entity.{table}.{a}")))
            );
        }

        pub fn down_migration_removes_everything(dialect: Dialect) {
            let Some(mut database) = Database::empty(dialect) else {
                return;
            };
            let up = crate::database::migration_file(SCHEMA, dialect, "up.sql");
            let down = crate::database::migration_file(SCHEMA, dialect, "down.sql");
            database.execute(&up);
            database.execute(&down);
            assert_eq!(
                crate::migration_set::leftovers(&mut database),
                Vec::<String>::new()
            );
            database.execute(&up);
        }
    }
}

/// The sync-intent triggers of storage tables.
mod sync_triggers {
    use crate::database::{Database, on_every_database};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Nullable, Text};
    use pubsync_codegen::sql::Dialect;

    const SCHEMA: &str = r#"<database name="zed">
    <table name="pubsync_sync_outbox">
        <column name="id_sync_outbox" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="storage_table" type="VARCHAR" size="255" required="true"/>
        <column name="storage_key" type="VARCHAR" size="255" required="true"/>
        <column name="operation" type="VARCHAR" size="8" required="true"/>
        <column name="data" type="LONGVARCHAR"/>
        <column name="previous_data" type="LONGVARCHAR"/>
        <column name="store" type="VARCHAR" size="128"/>
        <column name="locale" type="VARCHAR" size="16"/>
        <column name="version" type="BIGINT" required="true"/>
        <behavior name="timestampable"><parameter name="disable_updated_at" value="true"/></behavior>
    </table>
    <table name="pubsync_setting">
        <column name="name" type="VARCHAR" size="64" required="true" primaryKey="true"/>
        <column name="value" type="VARCHAR" size="255" required="true"/>
    </table>
    <table name="spy_forced_storage">
        <column name="id_forced_storage" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="fk_forced" type="INTEGER" required="true"/>
        <behavior name="synchronization">
            <parameter name="resource" value="forced"/>
            <parameter name="key_suffix_column" value="fk_forced"/>
            <parameter name="synchronization_enabled" value="true"/>
        </behavior>
    </table>
    <table name="spy_off_storage">
        <column name="id_off_storage" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="fk_off" type="INTEGER" required="true"/>
        <behavior name="synchronization">
            <parameter name="resource" value="off"/>
            <parameter name="key_suffix_column" value="fk_off"/>
            <parameter name="synchronization_enabled" value="false"/>
        </behavior>
    </table>
    <table name="spy_plain_storage">
        <column name="id_plain_storage" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="fk_plain" type="INTEGER" required="true"/>
        <behavior name="synchronization">
            <parameter name="resource" value="plain"/>
            <parameter name="key_suffix_column" value="fk_plain"/>
        </behavior>
        <behavior name="timestampable"/>
    </table>
    <table name="spy_mapped_storage">
        <column name="id_mapped_storage" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="fk_mapped" type="INTEGER" required="true"/>
        <behavior name="synchronization">
            <parameter name="resource" value="mapped"/>
            <parameter name="store" required="true"/>
            <parameter name="locale" required="true"/>
            <parameter name="key_suffix_column" value="fk_mapped"/>
            <parameter name="mappings" value="sku:id_product"/>
        </behavior>
    </table>
</database>"#;

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Intent {
        #[diesel(sql_type = Text)]
        storage_table: String,
        #[diesel(sql_type = Text)]
        storage_key: String,
        #[diesel(sql_type = Text)]
        operation: String,
        #[diesel(sql_type = Nullable<Text>)]
        data: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        previous_data: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        store: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        locale: Option<String>,
        #[diesel(sql_type = BigInt)]
        version: i64,
    }

    /// `(table, key, operation, data, previous_data, store, locale)` of an intent.
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    impl Intent {
        fn row(&self) -> Row<'_> {
            (
                &self.storage_table,
                &self.storage_key,
                &self.operation,
                self.data.as_deref(),
                self.previous_data.as_deref(),
                self.store.as_deref(),
                self.locale.as_deref(),
            )
        }
    }

    /// Every sync intent written since the last call; the sync outbox is emptied.
    fn take_intents(database: &mut Database) -> Vec<Intent> {
        let intents = database.load(
            "SELECT storage_table, storage_key, operation, data, previous_data, store, locale, version \
             FROM pubsync_sync_outbox ORDER BY id_sync_outbox",
        );
        database.execute("DELETE FROM pubsync_sync_outbox");
        intents
    }

    fn rows(intents: &[Intent]) -> Vec<Row<'_>> {
        intents.iter().map(Intent::row).collect()
    }

    /// The current time in microseconds since the Unix epoch.
    fn now_micros() -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_micros()).unwrap()
    }

    fn database(dialect: Dialect) -> Option<Database> {
        Database::with_schema(dialect, SCHEMA)
    }

    /// A database with one plain and one mapped storage row, intents taken.
    fn with_rows(dialect: Dialect) -> Option<Database> {
        let mut database = database(dialect)?;
        database.execute(
            "INSERT INTO spy_plain_storage (fk_plain, data, `key`) VALUES (1, '{\"v\":1}', 'plain:1');
             INSERT INTO spy_mapped_storage (fk_mapped, data, store, locale, `key`)
                 VALUES (1, '{\"v\":1}', 'DE', 'de_DE', 'mapped:de:de_de:1');"
                .replace('`', key_quote(dialect))
                .as_str(),
        );
        take_intents(&mut database);
        Some(database)
    }

    fn key_quote(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Mysql => "`",
            Dialect::Sqlite | Dialect::Postgres => "\"",
        }
    }

    /// `key`, quoted for the dialect (it is a reserved word in MySQL).
    fn key(database: &Database) -> String {
        let quote = key_quote(database.dialect);
        format!("{quote}key{quote}")
    }

    on_every_database!(crate::sync_triggers::cases:
        insert_records_a_write_with_the_clock_time_as_version,
        update_of_data_records_a_write,
        update_that_changes_nothing_the_storage_sees_records_nothing,
        key_change_records_a_delete_of_the_old_key_then_a_write,
        bulk_key_change_records_a_delete_of_every_old_key_and_a_write_of_every_new_one,
        delete_records_a_delete,
        rolled_back_transaction_records_nothing,
        versions_of_successive_updates_of_one_key_strictly_increase,
        previous_data_only_with_mappings,
        the_global_switch_silences_the_tables_that_follow_it,
    );

    pub mod cases {
        use super::*;

        /// `pubsync_setting('synchronization', 'off')` stops the intents of tables without a
        /// `synchronization_enabled` of their own; a table forced on records anyway, one forced
        /// off never does; switched on again, intents are recorded again.
        pub fn the_global_switch_silences_the_tables_that_follow_it(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            let key = key(&database);
            let write_all = |database: &mut Database, n: i32| {
                database.execute(&format!(
                    "INSERT INTO spy_plain_storage (fk_plain, data, {key}) VALUES ({n}, 'p', 'plain:{n}');
                     INSERT INTO spy_forced_storage (fk_forced, data, {key}) VALUES ({n}, 'f', 'forced:{n}');
                     INSERT INTO spy_off_storage (fk_off, data, {key}) VALUES ({n}, 'o', 'off:{n}');"
                ));
            };
            let tables = |intents: &[Intent]| {
                intents
                    .iter()
                    .map(|i| i.storage_table.clone())
                    .collect::<Vec<_>>()
            };

            write_all(&mut database, 1);
            assert_eq!(
                tables(&take_intents(&mut database)),
                ["spy_plain_storage", "spy_forced_storage"],
                "no setting: on"
            );

            database.execute(
                "INSERT INTO pubsync_setting (name, value) VALUES ('synchronization', 'off')",
            );
            write_all(&mut database, 2);
            database.execute(&format!(
                "DELETE FROM spy_plain_storage WHERE {key} = 'plain:1'"
            ));
            assert_eq!(
                tables(&take_intents(&mut database)),
                ["spy_forced_storage"],
                "switched off"
            );

            database
                .execute("UPDATE pubsync_setting SET value = 'on' WHERE name = 'synchronization'");
            write_all(&mut database, 3);
            assert_eq!(
                tables(&take_intents(&mut database)),
                ["spy_plain_storage", "spy_forced_storage"],
                "on again"
            );
        }

        pub fn insert_records_a_write_with_the_clock_time_as_version(dialect: Dialect) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            let before = now_micros();
            let key = key(&database);
            database.execute(&format!(
                "INSERT INTO spy_plain_storage (fk_plain, data, {key}) VALUES (1, 'd1', 'plain:1');
                 INSERT INTO spy_mapped_storage (fk_mapped, data, store, locale, {key})
                     VALUES (1, 'm1', 'DE', 'de_DE', 'mapped:1');"
            ));
            let after = now_micros();
            let intents = take_intents(&mut database);
            assert_eq!(
                rows(&intents),
                [
                    (
                        "spy_plain_storage",
                        "plain:1",
                        "write",
                        Some("d1"),
                        None,
                        None,
                        None
                    ),
                    (
                        "spy_mapped_storage",
                        "mapped:1",
                        "write",
                        Some("m1"),
                        None,
                        Some("DE"),
                        Some("de_DE")
                    ),
                ]
            );
            // The database clock and ours may differ a little; SQLite has milliseconds.
            for intent in &intents {
                assert!(
                    intent.version > before - 2_000_000 && intent.version < after + 2_000_000,
                    "version {} not between {before} and {after}",
                    intent.version
                );
            }
        }

        pub fn update_of_data_records_a_write(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            database.execute("UPDATE spy_plain_storage SET data = 'd2'");
            database.execute("UPDATE spy_mapped_storage SET store = 'AT'");
            assert_eq!(
                rows(&take_intents(&mut database)),
                [
                    (
                        "spy_plain_storage",
                        "plain:1",
                        "write",
                        Some("d2"),
                        None,
                        None,
                        None
                    ),
                    (
                        "spy_mapped_storage",
                        "mapped:de:de_de:1",
                        "write",
                        Some("{\"v\":1}"),
                        Some("{\"v\":1}"),
                        Some("AT"),
                        Some("de_DE")
                    ),
                ]
            );
        }

        pub fn update_that_changes_nothing_the_storage_sees_records_nothing(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            let key = key(&database);
            database.execute(&format!(
                "UPDATE spy_plain_storage SET data = data, {key} = {key};
                 UPDATE spy_plain_storage SET fk_plain = 2, alias_keys = 'x';
                 UPDATE spy_plain_storage SET id_plain_storage = 99;
                 UPDATE spy_mapped_storage SET locale = 'de_DE';"
            ));
            // Not even a new primary key: the key stays, so it is neither deleted nor
            // written again.
            assert!(take_intents(&mut database).is_empty());
        }

        pub fn key_change_records_a_delete_of_the_old_key_then_a_write(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            let key = key(&database);
            database.execute(&format!(
                "UPDATE spy_plain_storage SET {key} = 'plain:2', data = 'd2'"
            ));
            database.execute(&format!(
                "UPDATE spy_mapped_storage SET {key} = 'mapped:2', locale = 'en_US'"
            ));
            let intents = take_intents(&mut database);
            let m = Some("{\"v\":1}");
            // The write's previous data: the row's old data in a row trigger; PostgreSQL's
            // statement triggers pair old and new rows by key, and a new key has no old row
            // (the delete of the old key carries the old data, which is what removes its
            // aliases).
            let previous_of_write = if dialect == Dialect::Postgres {
                None
            } else {
                m
            };
            assert_eq!(
                rows(&intents),
                [
                    (
                        "spy_plain_storage",
                        "plain:1",
                        "delete",
                        None,
                        None,
                        None,
                        None
                    ),
                    (
                        "spy_plain_storage",
                        "plain:2",
                        "write",
                        Some("d2"),
                        None,
                        None,
                        None
                    ),
                    (
                        "spy_mapped_storage",
                        "mapped:de:de_de:1",
                        "delete",
                        None,
                        m,
                        Some("DE"),
                        Some("de_DE")
                    ),
                    (
                        "spy_mapped_storage",
                        "mapped:2",
                        "write",
                        m,
                        previous_of_write,
                        Some("DE"),
                        Some("en_US")
                    ),
                ]
            );
            assert!(intents[0].version <= intents[1].version);
        }

        /// One statement that renames many keys deletes every old key and writes every new
        /// one, with the old data as previous data (PostgreSQL's statement triggers pair the
        /// old and new rows of the statement by primary key).
        pub fn bulk_key_change_records_a_delete_of_every_old_key_and_a_write_of_every_new_one(
            dialect: Dialect,
        ) {
            let Some(mut database) = database(dialect) else {
                return;
            };
            let key = key(&database);
            database.execute(&format!(
                "INSERT INTO spy_plain_storage (fk_plain, data, {key}) VALUES \
                 (1, 'd1', 'plain:1'), (2, 'd2', 'plain:2'), (3, 'd3', 'plain:3')"
            ));
            take_intents(&mut database);
            let renamed = database.concat(&key, "':v2'");
            database.execute(&format!("UPDATE spy_plain_storage SET {key} = {renamed}"));
            let intents = take_intents(&mut database);
            let mut got: Vec<(&str, &str, Option<&str>)> = intents
                .iter()
                .map(|i| {
                    (
                        i.storage_key.as_str(),
                        i.operation.as_str(),
                        i.data.as_deref(),
                    )
                })
                .collect();
            got.sort_unstable();
            assert_eq!(
                got,
                [
                    ("plain:1", "delete", None),
                    ("plain:1:v2", "write", Some("d1")),
                    ("plain:2", "delete", None),
                    ("plain:2:v2", "write", Some("d2")),
                    ("plain:3", "delete", None),
                    ("plain:3:v2", "write", Some("d3")),
                ]
            );
        }

        pub fn delete_records_a_delete(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            database.execute("DELETE FROM spy_plain_storage; DELETE FROM spy_mapped_storage;");
            assert_eq!(
                rows(&take_intents(&mut database)),
                [
                    (
                        "spy_plain_storage",
                        "plain:1",
                        "delete",
                        None,
                        None,
                        None,
                        None
                    ),
                    (
                        "spy_mapped_storage",
                        "mapped:de:de_de:1",
                        "delete",
                        None,
                        Some("{\"v\":1}"),
                        Some("DE"),
                        Some("de_DE")
                    ),
                ]
            );
        }

        pub fn rolled_back_transaction_records_nothing(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            let key = key(&database);
            database.execute(&format!(
                "BEGIN;
                 INSERT INTO spy_plain_storage (fk_plain, data, {key}) VALUES (2, 'x', 'plain:2');
                 UPDATE spy_plain_storage SET data = 'y';
                 DELETE FROM spy_mapped_storage;
                 ROLLBACK;"
            ));
            assert!(take_intents(&mut database).is_empty());
        }

        pub fn versions_of_successive_updates_of_one_key_strictly_increase(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            for n in 0..20 {
                database.execute(&format!("UPDATE spy_plain_storage SET data = 'v{n}'"));
                // SQLite's clock has milliseconds only (see the report of this change).
                if dialect == Dialect::Sqlite {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            let versions: Vec<i64> = take_intents(&mut database)
                .iter()
                .map(|intent| intent.version)
                .collect();
            assert_eq!(versions.len(), 20);
            assert!(
                versions.windows(2).all(|pair| pair[0] < pair[1]),
                "{versions:?}"
            );
        }

        pub fn previous_data_only_with_mappings(dialect: Dialect) {
            let Some(mut database) = with_rows(dialect) else {
                return;
            };
            database.execute("UPDATE spy_plain_storage SET data = 'p2'");
            database.execute("UPDATE spy_mapped_storage SET data = 'm2'");
            let intents = take_intents(&mut database);
            assert_eq!(intents[0].previous_data, None);
            assert_eq!(intents[1].previous_data.as_deref(), Some("{\"v\":1}"));
            assert_eq!(intents[1].data.as_deref(), Some("m2"));
        }
    }
}

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
