//! The writer's statements and keys, per dialect.
use super::*;
use pubsync_database::Dialect;
use serde_json::json;

const TABLE: SynchronizationDefinition = SynchronizationDefinition {
    key_suffix_column: Some("fk_x"),
    store: true,
    timestampable: true,
    ..SynchronizationDefinition::new("spy_x_storage", "x", "sync.storage.x")
};

#[test]
fn the_applications_definition_of_a_table_wins_over_the_publishers() {
    static PROJECT: SynchronizationDefinition = SynchronizationDefinition {
        resource: "project_x",
        store: false,
        ..TABLE
    };
    let dir = tempfile::tempdir().unwrap();
    let url = pubsync_database::DatabaseUrl::Sqlite(dir.path().join("x.db"));
    let database = Database::connect(&url, &Default::default()).unwrap();
    let keys = Arc::new(KeyBuilders::new(Default::default()));
    let row = RowKey {
        reference: Reference::Int(7),
        store: Some("DE".into()),
        locale: None,
    };
    let writer = StorageTableWriter::new(database, keys);
    assert_eq!(writer.key(&TABLE, &row), "x:de:7");
    let writer = writer.with_definitions([&PROJECT]);
    assert_eq!(writer.key(&TABLE, &row), "project_x:7");
}

#[test]
fn upsert_rewrites_only_changed_data() {
    let sql = upsert_sql(Dialect::Sqlite, &TABLE, &Columns::of(&TABLE), 2);
    assert_eq!(
        sql,
        "INSERT INTO \"spy_x_storage\" (\"key\", \"data\", \"fk_x\", \"store\") VALUES (?, ?, ?, ?), (?, ?, ?, ?) \
         ON CONFLICT (\"key\") DO UPDATE SET \"data\" = excluded.\"data\", \"fk_x\" = excluded.\"fk_x\", \
         \"store\" = excluded.\"store\", \"updated_at\" = CURRENT_TIMESTAMP \
         WHERE \"spy_x_storage\".\"data\" IS NOT excluded.\"data\""
    );
}

#[test]
fn mysql_upsert_keeps_updated_at_when_data_is_unchanged() {
    let sql = upsert_sql(Dialect::Mysql, &TABLE, &Columns::of(&TABLE), 1);
    assert_eq!(
        sql,
        "INSERT INTO `spy_x_storage` (`key`, `data`, `fk_x`, `store`) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         `updated_at` = IF(`data` <=> VALUES(`data`), `updated_at`, CURRENT_TIMESTAMP), `data` = VALUES(`data`), \
         `fk_x` = VALUES(`fk_x`), `store` = VALUES(`store`)"
    );
}

const MAPPED: SynchronizationDefinition = SynchronizationDefinition {
    key_suffix_column: Some("fk_product_abstract"),
    store: true,
    locale: true,
    mappings: &[
        pubsync_shared::synchronization::Mapping {
            source: "sku",
            destination: "id_product_abstract",
        },
        pubsync_shared::synchronization::Mapping {
            source: "url_id",
            destination: "id_product_abstract",
        },
    ],
    timestampable: true,
    ..SynchronizationDefinition::new(
        "spy_product_abstract_storage",
        "product_abstract",
        "sync.storage.product",
    )
};

#[test]
fn upsert_of_a_mapped_table_rewrites_alias_keys_only_with_changed_data() {
    let columns = Columns::of(&MAPPED);
    assert_eq!(
        upsert_sql(Dialect::Postgres, &MAPPED, &columns, 1),
        "INSERT INTO \"spy_product_abstract_storage\" (\"key\", \"data\", \"fk_product_abstract\", \"store\", \"locale\", \"alias_keys\") \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (\"key\") DO UPDATE SET \"data\" = excluded.\"data\", \
         \"fk_product_abstract\" = excluded.\"fk_product_abstract\", \"store\" = excluded.\"store\", \
         \"locale\" = excluded.\"locale\", \"alias_keys\" = excluded.\"alias_keys\", \"updated_at\" = CURRENT_TIMESTAMP \
         WHERE \"spy_product_abstract_storage\".\"data\" IS DISTINCT FROM excluded.\"data\""
    );
    // MySQL: `alias_keys` is compared before `data` is assigned, and assigned only once.
    assert_eq!(
        upsert_sql(Dialect::Mysql, &MAPPED, &columns, 1),
        "INSERT INTO `spy_product_abstract_storage` (`key`, `data`, `fk_product_abstract`, `store`, `locale`, `alias_keys`) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         `updated_at` = IF(`data` <=> VALUES(`data`), `updated_at`, CURRENT_TIMESTAMP), \
         `alias_keys` = IF(`data` <=> VALUES(`data`), `alias_keys`, VALUES(`alias_keys`)), \
         `data` = VALUES(`data`), `fk_product_abstract` = VALUES(`fk_product_abstract`), \
         `store` = VALUES(`store`), `locale` = VALUES(`locale`)"
    );
}

#[test]
fn alias_statements_per_dialect() {
    let keys = ["x:1".to_owned(), "x:2".to_owned()];
    let sqlite = &bind_list(Dialect::Sqlite, &keys)[0];
    assert_eq!(
        delete_aliases(Dialect::Sqlite, "spy_x_storage", sqlite).sql(),
        "DELETE FROM \"pubsync_storage_alias\" WHERE \"storage_table\" = ? AND \"storage_key\" IN (SELECT value FROM json_each(?))"
    );
    let mysql = &bind_list(Dialect::Mysql, &keys)[0];
    assert_eq!(
        delete_aliases(Dialect::Mysql, "spy_x_storage", mysql).sql(),
        "DELETE FROM `pubsync_storage_alias` WHERE `storage_table` = ? AND `storage_key` IN (?, ?)"
    );
    assert_eq!(
        insert_aliases_sql(Dialect::Postgres, 2),
        "INSERT INTO \"pubsync_storage_alias\" (\"alias_key\", \"storage_table\", \"storage_key\", \"data\") \
         VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) ON CONFLICT (\"alias_key\") DO UPDATE SET \
         \"storage_table\" = excluded.\"storage_table\", \"storage_key\" = excluded.\"storage_key\", \
         \"data\" = excluded.\"data\""
    );
    assert_eq!(
        insert_aliases_sql(Dialect::Mysql, 1),
        "INSERT INTO `pubsync_storage_alias` (`alias_key`, `storage_table`, `storage_key`, `data`) \
         VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE `storage_table` = VALUES(`storage_table`), \
         `storage_key` = VALUES(`storage_key`), `data` = VALUES(`data`)"
    );
}

#[test]
fn tables_without_mappings_have_no_alias_column() {
    assert_eq!(
        Columns::of(&TABLE).names(&TABLE),
        ["key", "data", "fk_x", "store"]
    );
}

fn mapped_row(data: Value) -> StorageRow {
    StorageRow {
        key: RowKey {
            reference: Reference::Int(100),
            store: Some("DE".into()),
            locale: Some("de_DE".into()),
        },
        data,
    }
}

#[test]
fn aliases_need_source_and_destination_and_use_the_rows_store_and_locale() {
    let keys = KeyBuilders::default();
    let row = mapped_row(json!({"sku": "AB 001", "url_id": 7, "id_product_abstract": 100}));
    let (aliases, column) = row_aliases(&MAPPED, &keys, &row, 1599741494.25);
    assert_eq!(
        aliases,
        [
            (
                "product_abstract:de:de_de:sku:ab-001".to_owned(),
                r#"{"id":100,"_timestamp":1599741494.25}"#.to_owned()
            ),
            (
                "product_abstract:de:de_de:url_id:7".to_owned(),
                r#"{"id":100,"_timestamp":1599741494.25}"#.to_owned()
            ),
        ]
    );
    assert_eq!(
        serde_json::from_str::<Value>(&column).unwrap(),
        json!({
            "product_abstract:de:de_de:sku:ab-001": {"id": 100, "_timestamp": 1599741494.25},
            "product_abstract:de:de_de:url_id:7": {"id": 100, "_timestamp": 1599741494.25},
        })
    );
    for data in [
        json!({"sku": null, "id_product_abstract": 100}),
        json!({"sku": "001", "id_product_abstract": null}),
        json!({"sku": "001"}),
        json!([1, 2]),
    ] {
        let (aliases, column) = row_aliases(&MAPPED, &keys, &mapped_row(data.clone()), 1.0);
        assert!(aliases.is_empty(), "{data}");
        assert_eq!(column, "{}");
    }
}

#[test]
fn an_alias_claimed_twice_in_a_chunk_goes_to_the_last_row() {
    let row = mapped_row(json!({}));
    let upsert = |key: &str, aliases: &[(&str, &str)]| Upsert {
        key: key.to_owned(),
        data: String::new(),
        alias_keys: None,
        aliases: aliases
            .iter()
            .map(|(alias, value)| ((*alias).to_owned(), (*value).to_owned()))
            .collect(),
        row: &row,
    };
    let chunk = [
        upsert("p:1", &[("p:sku:a", "1"), ("p:sku:b", "1")]),
        upsert("p:2", &[("p:sku:a", "2")]),
    ];
    assert_eq!(
        distinct_aliases(&chunk),
        [("p:sku:a", "p:2", "2"), ("p:sku:b", "p:1", "1")]
    );
}

#[test]
fn keys_use_store_only_when_the_table_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = pubsync_database::DatabaseUrl::Sqlite(dir.path().join("k.db"));
    let database = Database::connect(&url, &Default::default()).unwrap();
    let writer = StorageTableWriter::new(database, Arc::default());
    let row = RowKey {
        reference: Reference::Int(7),
        store: Some("DE".into()),
        locale: Some("de_DE".into()),
    };
    assert_eq!(writer.key(&TABLE, &row), "x:de:7");
}
