//! Integration tests of pubsync-codegen: the generated SQLite migration applied to a real
//! database, its capture triggers checked by the outbox rows they write.

mod sqlite_triggers {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use pubsync_codegen::schema::{SourceFile, parse_schemas};
    use serde_json::{Value, json};

    const SCHEMA: &str = r#"<database name="zed">
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
</database>"#;

    #[derive(QueryableByName)]
    struct OutboxRow {
        #[diesel(sql_type = Text)]
        data: String,
    }

    fn database() -> SqliteConnection {
        let model = parse_schemas(&[SourceFile::new("crates/t/schema/t.schema.xml", SCHEMA)])
            .expect("the test schema is valid");
        let migration = pubsync_codegen::new_migration(None, &model, "20250101000000", &[])
            .unwrap()
            .expect("a first migration");
        let up = migration
            .files
            .iter()
            .find(|file| file.path == "migrations/sqlite/20250101000000_initial/up.sql")
            .expect("the sqlite up.sql");
        let mut connection = SqliteConnection::establish(":memory:").unwrap();
        connection.batch_execute(&up.contents).unwrap();
        connection
    }

    /// Every outbox row written since the last call, parsed; the outbox is emptied.
    fn take_events(connection: &mut SqliteConnection) -> Vec<Value> {
        let rows: Vec<OutboxRow> = diesel::sql_query(
            "SELECT data FROM spy_event_behavior_entity_change ORDER BY id_event_behavior_entity_change",
        )
        .load(connection)
        .unwrap();
        connection
            .batch_execute("DELETE FROM spy_event_behavior_entity_change")
            .unwrap();
        rows.iter()
            .map(|row| serde_json::from_str(&row.data).unwrap())
            .collect()
    }

    fn execute(connection: &mut SqliteConnection, sql: &str) {
        connection.batch_execute(sql).unwrap();
    }

    fn with_item() -> SqliteConnection {
        let mut connection = database();
        execute(
            &mut connection,
            "INSERT INTO spy_parent DEFAULT VALUES;
             INSERT INTO spy_item (fk_parent, name, quantity, sku) VALUES (1, 'first', 5, 'S1');",
        );
        take_events(&mut connection);
        connection
    }

    #[test]
    fn insert_records_a_create_event_with_set_columns_foreign_keys_and_additional_values() {
        let mut connection = database();
        execute(
            &mut connection,
            "INSERT INTO spy_parent DEFAULT VALUES;
             INSERT INTO spy_item (fk_parent, name, sku) VALUES (1, 'first', 'S1');",
        );
        assert_eq!(
            take_events(&mut connection),
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

    #[test]
    fn update_of_one_watched_column_records_it_with_its_original_value() {
        let mut connection = with_item();
        execute(
            &mut connection,
            "UPDATE spy_item SET name = 'second' WHERE id_item = 1",
        );
        assert_eq!(
            take_events(&mut connection),
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

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        let mut connection = with_item();
        execute(
            &mut connection,
            "UPDATE spy_item SET name = name, sku = 'S1'",
        );
        assert_eq!(take_events(&mut connection), Vec::<Value>::new());
    }

    #[test]
    fn update_of_unwatched_column_records_nothing() {
        let mut connection = with_item();
        execute(&mut connection, "UPDATE spy_item SET note = 'changed'");
        assert_eq!(take_events(&mut connection), Vec::<Value>::new());
    }

    #[test]
    fn update_of_watched_and_unwatched_columns_lists_every_changed_column() {
        let mut connection = with_item();
        execute(
            &mut connection,
            "UPDATE spy_item SET note = 'n', sku = 'S2'",
        );
        let events = take_events(&mut connection);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0]["modifiedColumns"],
            json!(["spy_item.note", "spy_item.sku"])
        );
        assert_eq!(events[0]["originalValues"], json!({}));
        assert_eq!(events[0]["additionalValues"], json!({"spy_item.sku": "S2"}));
    }

    #[test]
    fn bulk_update_records_one_event_per_row() {
        let mut connection = database();
        execute(
            &mut connection,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO spy_item (name) SELECT 'item' || i FROM n;",
        );
        assert_eq!(take_events(&mut connection).len(), 10_000);
        execute(&mut connection, "UPDATE spy_item SET name = name || '!'");
        let events = take_events(&mut connection);
        assert_eq!(events.len(), 10_000);
        assert!(events.iter().enumerate().all(|(index, event)| {
            event["id"] == json!(index + 1) && event["event"] == "Entity.spy_item.update"
        }));
    }

    #[test]
    fn delete_records_a_delete_event_without_modified_columns() {
        let mut connection = with_item();
        execute(&mut connection, "DELETE FROM spy_item WHERE id_item = 1");
        assert_eq!(
            take_events(&mut connection),
            [json!({
                "name": "spy_item",
                "id": 1,
                "event": "Entity.spy_item.delete",
                "foreignKeys": {"spy_item.fk_parent": 1},
                "additionalValues": {"spy_item.sku": "S1"}
            })]
        );
    }

    #[test]
    fn rolled_back_transaction_records_nothing() {
        let mut connection = database();
        execute(
            &mut connection,
            "BEGIN;
             INSERT INTO spy_item (name) VALUES ('gone');
             UPDATE spy_item SET name = 'still gone';
             ROLLBACK;",
        );
        assert_eq!(take_events(&mut connection), Vec::<Value>::new());
    }

    #[test]
    fn value_filter_records_only_when_the_comparison_flips() {
        let mut connection = with_item();
        let mut events_after = |sql: &str| {
            execute(&mut connection, sql);
            take_events(&mut connection).len()
        };
        // quantity === 0: 5 → 3 keeps it false, 3 → 0 makes it true, 0 → 2 false again.
        assert_eq!(events_after("UPDATE spy_item SET quantity = 3"), 0);
        assert_eq!(events_after("UPDATE spy_item SET quantity = 0"), 1);
        assert_eq!(events_after("UPDATE spy_item SET quantity = 2"), 1);
        // Null-ness flipping counts as a change.
        assert_eq!(events_after("UPDATE spy_item SET quantity = NULL"), 1);
        assert_eq!(events_after("UPDATE spy_item SET quantity = 7"), 1);
    }

    #[test]
    fn star_with_keep_original_keeps_every_changed_column_and_any_change_counts() {
        let mut connection = database();
        execute(
            &mut connection,
            "INSERT INTO spy_all (a, b, payload) VALUES ('x', 1, x'00ff');",
        );
        let created = take_events(&mut connection);
        assert_eq!(
            created[0]["modifiedColumns"],
            json!(["spy_all.a", "spy_all.b", "spy_all.payload"])
        );
        execute(
            &mut connection,
            "UPDATE spy_all SET b = NULL, payload = x'01'",
        );
        let events = take_events(&mut connection);
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
        execute(&mut connection, "UPDATE spy_all SET a = 'x'");
        assert_eq!(take_events(&mut connection), Vec::<Value>::new());
    }

    #[test]
    fn down_migration_removes_everything() {
        let model =
            parse_schemas(&[SourceFile::new("crates/t/schema/t.schema.xml", SCHEMA)]).unwrap();
        let migration = pubsync_codegen::new_migration(None, &model, "1", &[])
            .unwrap()
            .unwrap();
        let sql = |name: &str| {
            migration
                .files
                .iter()
                .find(|file| file.path == format!("migrations/sqlite/1_initial/{name}"))
                .unwrap()
                .contents
                .clone()
        };
        let mut connection = SqliteConnection::establish(":memory:").unwrap();
        execute(&mut connection, &sql("up.sql"));
        execute(&mut connection, &sql("down.sql"));
        execute(&mut connection, &sql("up.sql"));
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
