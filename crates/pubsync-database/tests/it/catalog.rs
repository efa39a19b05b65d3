//! Catalog introspection (`Database::table_columns`) on every database compiled in
//! (`--features postgres,mysql`), against the real servers.

use pubsync_database::testing::{TestDatabase, dialects};
use pubsync_database::{CatalogColumn, Dialect, TypeFamily};

/// A column's facts as the tests compare them.
fn facts(column: &CatalogColumn) -> (&str, TypeFamily, bool, Option<usize>) {
    (
        column.name.as_str(),
        column.family,
        column.nullable,
        column.primary_key,
    )
}

#[test]
fn table_columns_describe_an_existing_table() {
    for dialect in dialects() {
        let Some(test_database) = TestDatabase::create(dialect) else {
            continue;
        };
        let database = test_database.connect();
        let q = |name: &str| dialect.quote(name);
        assert_eq!(
            database.table_columns("shop_product").unwrap(),
            None,
            "{dialect}"
        );
        database
            .batch_execute(&format!(
                "CREATE TABLE {} (id INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, \
                 note TEXT, active BOOLEAN NOT NULL, price DECIMAL(10,2), \
                 changed_at TIMESTAMP NULL)",
                q("shop_product")
            ))
            .unwrap();
        let columns = database.table_columns("shop_product").unwrap().unwrap();
        use TypeFamily::*;
        assert_eq!(
            columns.iter().map(facts).collect::<Vec<_>>(),
            [
                ("id", Integer, false, Some(0)),
                ("name", Text, false, None),
                ("note", Text, true, None),
                ("active", Boolean, false, None),
                ("price", Decimal, true, None),
                ("changed_at", Timestamp, true, None),
            ],
            "{dialect}: {columns:#?}"
        );
        let types: Vec<&str> = columns.iter().map(|c| c.declared_type.as_str()).collect();
        match dialect {
            Dialect::Sqlite => assert_eq!(
                types,
                [
                    "integer",
                    "varchar(255)",
                    "text",
                    "boolean",
                    "decimal(10,2)",
                    "timestamp"
                ]
            ),
            Dialect::Postgres => assert_eq!(
                types,
                [
                    "integer",
                    "character varying",
                    "text",
                    "boolean",
                    "numeric",
                    "timestamp without time zone"
                ]
            ),
            // MySQL 8 drops the display width of int ("int"), MariaDB keeps it ("int(11)").
            Dialect::Mysql => {
                assert!(types[0].starts_with("int"), "{types:?}");
                assert_eq!(
                    types[1..],
                    [
                        "varchar(255)",
                        "text",
                        "tinyint(1)",
                        "decimal(10,2)",
                        "timestamp"
                    ]
                );
            }
        }

        // A composite key declared in another order than its columns.
        database
            .batch_execute(&format!(
                "CREATE TABLE {} (order_id BIGINT NOT NULL, line_no INTEGER NOT NULL, \
                 sku VARCHAR(64), PRIMARY KEY (line_no, order_id))",
                q("order_line")
            ))
            .unwrap();
        let columns = database.table_columns("order_line").unwrap().unwrap();
        assert_eq!(
            columns.iter().map(facts).collect::<Vec<_>>(),
            [
                ("order_id", Integer, false, Some(1)),
                ("line_no", Integer, false, Some(0)),
                ("sku", Text, true, None),
            ],
            "{dialect}: {columns:#?}"
        );

        // Still nothing for a table that does not exist, and other tables are not mixed in.
        assert_eq!(
            database.table_columns("missing").unwrap(),
            None,
            "{dialect}"
        );
        assert_eq!(
            database
                .table_columns("shop_product")
                .unwrap()
                .unwrap()
                .len(),
            6
        );
    }
}

#[test]
fn type_families_follow_each_dialects_names() {
    use Dialect::*;
    use TypeFamily::*;
    let cases = [
        (Sqlite, "INTEGER", Integer),
        (Sqlite, "unsigned big int", Integer),
        (Sqlite, "BOOLEAN", Boolean),
        (Sqlite, "varchar(255)", Text),
        (Sqlite, "CLOB", Text),
        (Sqlite, "json", Json),
        (Sqlite, "DECIMAL(10,2)", Decimal),
        (Sqlite, "double precision", Float),
        (Sqlite, "FLOAT", Float),
        (Sqlite, "DATE", Date),
        (Sqlite, "DATETIME", Timestamp),
        (Sqlite, "TIMESTAMP", Timestamp),
        (Sqlite, "TIME", Time),
        (Sqlite, "BLOB", Binary),
        (Sqlite, "", Other),
        (Postgres, "integer", Integer),
        (Postgres, "bigint", Integer),
        (Postgres, "smallint", Integer),
        (Postgres, "boolean", Boolean),
        (Postgres, "character varying", Text),
        (Postgres, "character", Text),
        (Postgres, "varchar(255)", Text),
        (Postgres, "text", Text),
        (Postgres, "numeric", Decimal),
        (Postgres, "real", Float),
        (Postgres, "double precision", Float),
        (Postgres, "date", Date),
        (Postgres, "time without time zone", Time),
        (Postgres, "timestamp without time zone", Timestamp),
        (Postgres, "timestamp(3) with time zone", Timestamp),
        (Postgres, "timestamptz", Timestamp),
        (Postgres, "bytea", Binary),
        (Postgres, "json", Json),
        (Postgres, "jsonb", Json),
        (Postgres, "uuid", Other),
        (Postgres, "array", Other),
        (Postgres, "integer[]", Other),
        (Mysql, "int(11)", Integer),
        (Mysql, "int", Integer),
        (Mysql, "int(10) unsigned", Integer),
        (Mysql, "bigint(20)", Integer),
        (Mysql, "tinyint(4)", Integer),
        (Mysql, "tinyint(1)", Boolean),
        (Mysql, "bool", Boolean),
        (Mysql, "varchar(255)", Text),
        (Mysql, "longtext", Text),
        (Mysql, "enum('a','int')", Text),
        (Mysql, "decimal(10,2)", Decimal),
        (Mysql, "double", Float),
        (Mysql, "date", Date),
        (Mysql, "time", Time),
        (Mysql, "datetime(6)", Timestamp),
        (Mysql, "timestamp", Timestamp),
        (Mysql, "varbinary(16)", Binary),
        (Mysql, "longblob", Binary),
        (Mysql, "json", Json),
        (Mysql, "point", Other),
    ];
    for (dialect, declared, family) in cases {
        assert_eq!(
            TypeFamily::of(dialect, declared),
            family,
            "{dialect} {declared:?}"
        );
    }
}

#[test]
fn table_triggers_lists_the_triggers_of_a_table() {
    for dialect in dialects() {
        let Some(test_database) = TestDatabase::create(dialect) else {
            continue;
        };
        let database = test_database.connect();
        let q = |name: &str| dialect.quote(name);
        database
            .batch_execute(&format!("CREATE TABLE {} (id INTEGER PRIMARY KEY)", q("t")))
            .unwrap();
        database
            .batch_execute(&format!(
                "CREATE TABLE {} (id INTEGER PRIMARY KEY)",
                q("other")
            ))
            .unwrap();
        assert!(
            database.table_triggers("t").unwrap().is_empty(),
            "{dialect}"
        );
        for (table, trigger) in [("t", "t_b"), ("t", "t_a"), ("other", "o_a")] {
            let sql = match dialect {
                Dialect::Sqlite => format!(
                    "CREATE TRIGGER {} AFTER INSERT ON {} BEGIN SELECT 1; END",
                    q(trigger),
                    q(table)
                ),
                Dialect::Postgres => format!(
                    "CREATE OR REPLACE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
                     CREATE TRIGGER {} AFTER INSERT ON {} FOR EACH ROW EXECUTE FUNCTION noop()",
                    q(trigger),
                    q(table)
                ),
                Dialect::Mysql => format!(
                    "CREATE TRIGGER {} AFTER INSERT ON {} FOR EACH ROW SET @x = 1",
                    q(trigger),
                    q(table)
                ),
            };
            database.batch_execute(&sql).unwrap();
        }
        assert_eq!(
            database.table_triggers("t").unwrap(),
            ["t_a", "t_b"],
            "{dialect}"
        );
        assert!(
            database.table_triggers("missing").unwrap().is_empty(),
            "{dialect}"
        );
    }
}
