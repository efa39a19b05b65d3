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
    primary_key_change_records_an_update_of_the_new_id_and_a_delete_of_the_old,
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

    pub fn update_of_watched_and_unwatched_columns_lists_every_changed_column(dialect: Dialect) {
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

    /// A row given a new primary key is recorded as an update of its new id and a delete of
    /// its old one, so that the old id's storage row and key go. PostgreSQL's statement
    /// triggers pair an update's old and new rows by primary key, so there the old version
    /// is not found and every set column counts as changed.
    pub fn primary_key_change_records_an_update_of_the_new_id_and_a_delete_of_the_old(
        dialect: Dialect,
    ) {
        let Some(mut database) = database(dialect) else {
            return;
        };
        database.execute("INSERT INTO spy_all (a, b) VALUES ('x', 1), ('y', 2);");
        take_events(&mut database);
        database.execute("UPDATE spy_all SET id_all = id_all + 10");
        let events = take_events(&mut database);
        let mut seen: Vec<(String, i64)> = events
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["id"].as_i64().unwrap(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("Entity.spy_all.delete".to_owned(), 1),
                ("Entity.spy_all.delete".to_owned(), 2),
                ("Entity.spy_all.update".to_owned(), 11),
                ("Entity.spy_all.update".to_owned(), 12),
            ],
            "{events:#?}"
        );
        for event in events
            .iter()
            .filter(|e| e["event"] == "Entity.spy_all.update")
        {
            let modified = event["modifiedColumns"].as_array().unwrap();
            assert!(modified.contains(&json!("spy_all.id_all")), "{event}");
        }
        // A key moved onto an id another row left: only the vacated key is deleted.
        database.execute("DELETE FROM spy_all WHERE id_all = 12");
        take_events(&mut database);
        database.execute("UPDATE spy_all SET id_all = 12 WHERE id_all = 11");
        let events = take_events(&mut database);
        let deleted: Vec<i64> = events
            .iter()
            .filter(|e| e["event"] == "Entity.spy_all.delete")
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert_eq!(deleted, [11], "{events:#?}");
        // An update that keeps the key deletes nothing.
        database.execute("UPDATE spy_all SET a = 'z'");
        let events = take_events(&mut database);
        assert!(
            events.iter().all(|e| e["event"] == "Entity.spy_all.update"),
            "{events:#?}"
        );
    }

    /// A row given a new primary key while a watched column goes to NULL is captured,
    /// also where the old version cannot be paired with the new one by primary key.
    pub fn primary_key_change_with_a_watched_column_set_to_null_is_captured(dialect: Dialect) {
        let Some(mut database) = with_item(dialect) else {
            return;
        };
        database.execute("UPDATE spy_item SET id_item = 100, quantity = 7 WHERE id_item = 1");
        take_events(&mut database);
        database.execute("UPDATE spy_item SET id_item = 200, quantity = NULL WHERE id_item = 100");
        let events = take_events(&mut database);
        let updates: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "Entity.spy_item.update")
            .collect();
        assert_eq!(updates.len(), 1, "{events:#?}");
        assert_eq!(updates[0]["id"], 200);
        let modified = updates[0]["modifiedColumns"].as_array().unwrap();
        assert!(
            modified.contains(&json!("spy_item.quantity")),
            "{modified:?}"
        );
        let deletes: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "Entity.spy_item.delete")
            .collect();
        assert_eq!(deletes.len(), 1, "{events:#?}");
        assert_eq!(deletes[0]["id"], 100);
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
