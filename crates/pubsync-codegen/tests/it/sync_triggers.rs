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

        database
            .execute("INSERT INTO pubsync_setting (name, value) VALUES ('synchronization', 'off')");
        write_all(&mut database, 2);
        database.execute(&format!(
            "DELETE FROM spy_plain_storage WHERE {key} = 'plain:1'"
        ));
        assert_eq!(
            tables(&take_intents(&mut database)),
            ["spy_forced_storage"],
            "switched off"
        );

        database.execute("UPDATE pubsync_setting SET value = 'on' WHERE name = 'synchronization'");
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
