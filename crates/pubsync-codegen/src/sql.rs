//! DDL and capture triggers for SQLite, PostgreSQL and MySQL/MariaDB.

use crate::model::{Column, ColumnType, DefaultValue, EventColumn, Index, OUTBOX_TABLE, Table};

/// The databases migrations are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35 or newer.
    Sqlite,
    /// PostgreSQL 12 or newer.
    Postgres,
    /// MySQL 8 / MariaDB 10.5 or newer.
    Mysql,
}

impl Dialect {
    /// Every dialect, in the order migrations are written.
    pub const ALL: [Dialect; 3] = [Self::Sqlite, Self::Postgres, Self::Mysql];

    /// The folder under `migrations/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// Quotes an identifier (MySQL: backticks, others: double quotes).
pub fn quote(dialect: Dialect, identifier: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("`{}`", identifier.replace('`', "``")),
        Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", identifier.replace('"', "\"\"")),
    }
}

/// A SQL string literal.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn sized(name: &str, size: Option<u32>, scale: Option<u32>) -> String {
    match (size, scale) {
        (Some(size), Some(scale)) => format!("{name}({size},{scale})"),
        (Some(size), None) => format!("{name}({size})"),
        _ => name.to_owned(),
    }
}

/// The SQL type of a column.
pub fn column_type(dialect: Dialect, column: &Column) -> String {
    use ColumnType as T;
    let size = column.size;
    match dialect {
        Dialect::Sqlite => match column.ty {
            T::Integer => "INTEGER".into(),
            T::BigInt => "BIGINT".into(),
            T::SmallInt => "SMALLINT".into(),
            T::TinyInt | T::Enum => "TINYINT".into(),
            T::Boolean => "BOOLEAN".into(),
            T::Varchar => sized("VARCHAR", size, None),
            T::Char => sized("CHAR", size, None),
            T::LongVarchar | T::Clob => "TEXT".into(),
            T::Float => "FLOAT".into(),
            T::Real => "REAL".into(),
            T::Double => "DOUBLE".into(),
            T::Decimal => sized("DECIMAL", size, column.scale),
            T::Numeric => sized("NUMERIC", size, column.scale),
            T::Date => "DATE".into(),
            T::Time => "TIME".into(),
            T::Timestamp => "TIMESTAMP".into(),
            T::Blob | T::VarBinary | T::LongVarBinary | T::Binary => "BLOB".into(),
        },
        Dialect::Postgres => match column.ty {
            T::Integer => "INTEGER".into(),
            T::BigInt => "BIGINT".into(),
            T::SmallInt | T::TinyInt | T::Enum => "SMALLINT".into(),
            T::Boolean => "BOOLEAN".into(),
            T::Varchar => sized("VARCHAR", size, None),
            T::Char => sized("CHAR", size, None),
            T::LongVarchar | T::Clob => "TEXT".into(),
            T::Float | T::Real => "REAL".into(),
            T::Double => "DOUBLE PRECISION".into(),
            T::Decimal | T::Numeric => sized("NUMERIC", size, column.scale),
            T::Date => "DATE".into(),
            T::Time => "TIME".into(),
            T::Timestamp => "TIMESTAMP".into(),
            T::Blob | T::VarBinary | T::LongVarBinary | T::Binary => "BYTEA".into(),
        },
        Dialect::Mysql => match column.ty {
            T::Integer => "INT".into(),
            T::BigInt => "BIGINT".into(),
            T::SmallInt => "SMALLINT".into(),
            T::TinyInt | T::Enum => "TINYINT".into(),
            T::Boolean => "TINYINT(1)".into(),
            T::Varchar => sized("VARCHAR", size, None),
            T::Char => sized("CHAR", size, None),
            T::LongVarchar | T::Clob => "LONGTEXT".into(),
            T::Float | T::Real => "FLOAT".into(),
            T::Double => "DOUBLE".into(),
            T::Decimal => sized("DECIMAL", size, column.scale),
            T::Numeric => sized("NUMERIC", size, column.scale),
            T::Date => "DATE".into(),
            T::Time => "TIME".into(),
            T::Timestamp => "DATETIME(6)".into(),
            T::VarBinary if size.is_some() => sized("VARBINARY", size, None),
            T::Binary if size.is_some() => sized("BINARY", size, None),
            T::Blob | T::VarBinary | T::LongVarBinary | T::Binary => "LONGBLOB".into(),
        },
    }
}

/// A literal of the column's type, for defaults and event filters.
pub fn typed_literal(dialect: Dialect, ty: ColumnType, value: &str) -> String {
    if ty.is_integer() || ty.is_fractional() {
        value.trim().to_owned()
    } else if ty == ColumnType::Boolean {
        let truth = matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1");
        match (dialect, truth) {
            (Dialect::Postgres, true) => "TRUE".into(),
            (Dialect::Postgres, false) => "FALSE".into(),
            (_, true) => "1".into(),
            (_, false) => "0".into(),
        }
    } else {
        string_literal(value)
    }
}

/// One column as it appears in CREATE TABLE or ADD COLUMN.
pub fn column_definition(dialect: Dialect, table: &Table, column: &Column) -> String {
    let single_primary_key = column.primary_key && table.primary_key().len() == 1;
    let name = quote(dialect, &column.name);
    let ty = column_type(dialect, column);
    let mut definition = if column.auto_increment && single_primary_key {
        match dialect {
            Dialect::Sqlite => return format!("{name} INTEGER PRIMARY KEY AUTOINCREMENT"),
            Dialect::Postgres => format!("{name} {ty} GENERATED BY DEFAULT AS IDENTITY"),
            Dialect::Mysql => format!("{name} {ty} NOT NULL AUTO_INCREMENT"),
        }
    } else {
        let mut definition = format!("{name} {ty}");
        if column.required || column.primary_key {
            definition.push_str(" NOT NULL");
        }
        definition
    };
    if single_primary_key {
        definition.push_str(" PRIMARY KEY");
    }
    match &column.default_value {
        None => {}
        Some(DefaultValue::Literal(value)) => {
            definition.push_str(" DEFAULT ");
            definition.push_str(&typed_literal(dialect, column.ty, value));
        }
        Some(DefaultValue::CurrentTimestamp) => definition.push_str(match dialect {
            Dialect::Mysql => " DEFAULT CURRENT_TIMESTAMP(6)",
            Dialect::Sqlite | Dialect::Postgres => " DEFAULT CURRENT_TIMESTAMP",
        }),
    }
    definition
}

fn column_list(dialect: Dialect, columns: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    columns
        .into_iter()
        .map(|column| quote(dialect, column.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE TABLE`, with primary key and foreign keys, without indexes.
pub fn create_table(dialect: Dialect, table: &Table) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|column| column_definition(dialect, table, column))
        .collect();
    let primary_key = table.primary_key();
    if primary_key.len() > 1 {
        lines.push(format!(
            "PRIMARY KEY ({})",
            column_list(dialect, primary_key.iter().map(|c| &c.name))
        ));
    }
    for foreign_key in &table.foreign_keys {
        let mut line = String::new();
        if let Some(name) = &foreign_key.name {
            line.push_str(&format!("CONSTRAINT {} ", quote(dialect, name)));
        }
        line.push_str(&format!(
            "FOREIGN KEY ({}) REFERENCES {} ({})",
            column_list(
                dialect,
                foreign_key.references.iter().map(|(local, _)| local)
            ),
            quote(dialect, &foreign_key.foreign_table),
            column_list(
                dialect,
                foreign_key.references.iter().map(|(_, foreign)| foreign)
            ),
        ));
        if let Some(action) = &foreign_key.on_delete {
            line.push_str(&format!(" ON DELETE {action}"));
        }
        if let Some(action) = &foreign_key.on_update {
            line.push_str(&format!(" ON UPDATE {action}"));
        }
        lines.push(line);
    }
    let suffix = match dialect {
        Dialect::Mysql => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        Dialect::Sqlite | Dialect::Postgres => "",
    };
    format!(
        "CREATE TABLE {} (\n    {}\n){suffix};",
        quote(dialect, &table.name),
        lines.join(",\n    ")
    )
}

/// `DROP TABLE`.
pub fn drop_table(dialect: Dialect, table: &str) -> String {
    format!("DROP TABLE {};", quote(dialect, table))
}

/// `CREATE [UNIQUE] INDEX`.
pub fn create_index(dialect: Dialect, table: &str, index: &Index) -> String {
    format!(
        "CREATE {}INDEX {} ON {} ({});",
        if index.unique { "UNIQUE " } else { "" },
        quote(dialect, &index.name),
        quote(dialect, table),
        column_list(dialect, &index.columns)
    )
}

/// `DROP INDEX`.
pub fn drop_index(dialect: Dialect, table: &str, index: &str) -> String {
    match dialect {
        Dialect::Mysql => format!(
            "DROP INDEX {} ON {};",
            quote(dialect, index),
            quote(dialect, table)
        ),
        Dialect::Sqlite | Dialect::Postgres => format!("DROP INDEX {};", quote(dialect, index)),
    }
}

/// `ALTER TABLE … ADD COLUMN`.
pub fn add_column(dialect: Dialect, table: &Table, column: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {};",
        quote(dialect, &table.name),
        column_definition(dialect, table, column)
    )
}

/// `ALTER TABLE … DROP COLUMN`.
pub fn drop_column(dialect: Dialect, table: &str, column: &str) -> String {
    format!(
        "ALTER TABLE {} DROP COLUMN {};",
        quote(dialect, table),
        quote(dialect, column)
    )
}

/// The name of a capture trigger: `pubsync_<table>_create|update|delete`.
pub fn trigger_name(table: &str, action: &str) -> String {
    format!("pubsync_{table}_{action}")
}

/// The statements creating the capture triggers of a table with the event behaviour (none
/// for other tables, and none yet for PostgreSQL and MySQL).
pub fn create_triggers(dialect: Dialect, table: &Table) -> Vec<String> {
    match dialect {
        Dialect::Sqlite if table.event.is_some() => SqliteTriggers { table }.all(),
        _ => Vec::new(),
    }
}

/// The statements dropping what [`create_triggers`] creates.
pub fn drop_triggers(dialect: Dialect, table: &Table) -> Vec<String> {
    match dialect {
        Dialect::Sqlite if table.event.is_some() => ["create", "update", "delete"]
            .into_iter()
            .map(|action| {
                format!(
                    "DROP TRIGGER IF EXISTS {};",
                    quote(dialect, &trigger_name(&table.name, action))
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The SQLite capture triggers: each one `INSERT` into the outbox, no lookups.
struct SqliteTriggers<'a> {
    table: &'a Table,
}

impl SqliteTriggers<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn all(&self) -> Vec<String> {
        let mut triggers = vec![self.create()];
        triggers.extend(self.update());
        triggers.push(self.delete());
        triggers
    }

    fn column(&self, row: &str, column: &Column) -> String {
        let reference = format!("{row}.{}", quote(Self::DIALECT, &column.name));
        if column.ty.is_binary() {
            // JSON cannot hold bytes; binary values travel as hex.
            format!("hex({reference})")
        } else {
            reference
        }
    }

    fn qualified(&self, column: &str) -> String {
        format!("{}.{column}", self.table.name)
    }

    fn primary_key(&self) -> &Column {
        self.table.primary_key()[0]
    }

    /// Columns marked by `pick` on some parameter (`*` marks every column), in declaration order.
    fn marked(&self, pick: impl Fn(&crate::model::EventParameter) -> bool) -> Vec<&Column> {
        let parameters = &self
            .table
            .event
            .as_ref()
            .expect("event behaviour")
            .parameters;
        let all = parameters
            .iter()
            .any(|p| pick(p) && p.column == EventColumn::All);
        self.table
            .columns
            .iter()
            .filter(|column| {
                all || parameters
                    .iter()
                    .any(|p| pick(p) && p.column == EventColumn::Column(column.name.clone()))
            })
            .collect()
    }

    fn object(&self, row: &str, columns: &[&Column]) -> String {
        if columns.is_empty() {
            return "json_object()".into();
        }
        let pairs: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "{}, {}",
                    string_literal(&self.qualified(&column.name)),
                    self.column(row, column)
                )
            })
            .collect();
        format!("json_object({})", pairs.join(", "))
    }

    fn foreign_keys(&self, row: &str) -> String {
        let mut columns: Vec<&Column> = Vec::new();
        for foreign_key in &self.table.foreign_keys {
            for (local, _) in &foreign_key.references {
                if let Some(column) = self.table.column(local)
                    && !columns.iter().any(|c| c.name == column.name)
                {
                    columns.push(column);
                }
            }
        }
        self.object(row, &columns)
    }

    /// A JSON array of `"<table>.<column>"` for the columns where `condition` holds.
    fn column_array(&self, columns: &[&Column], condition: impl Fn(&Column) -> String) -> String {
        if columns.is_empty() {
            return "json_array()".into();
        }
        let parts: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN {} THEN {} ELSE '' END",
                    condition(column),
                    string_literal(&format!("\"{}\",", self.qualified(&column.name)))
                )
            })
            .collect();
        format!(
            "json('[' || rtrim({}, ',') || ']')",
            parts.join("\n            || ")
        )
    }

    fn changed(&self, column: &Column) -> String {
        let name = quote(Self::DIALECT, &column.name);
        format!("OLD.{name} IS NOT NEW.{name}")
    }

    fn insert(
        &self,
        trigger: &str,
        timing: &str,
        when: Option<String>,
        pairs: &[(&str, String)],
    ) -> String {
        let body: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("{}, {value}", string_literal(key)))
            .collect();
        let when = when.map_or(String::new(), |when| format!("\nWHEN {when}"));
        format!(
            "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW{when}\nBEGIN\n    INSERT INTO {} ({}) VALUES (json_object(\n        {}\n    ));\nEND;",
            quote(Self::DIALECT, &trigger_name(&self.table.name, trigger)),
            quote(Self::DIALECT, &self.table.name),
            quote(Self::DIALECT, OUTBOX_TABLE),
            quote(Self::DIALECT, "data"),
            body.join(",\n        ")
        )
    }

    fn event_name(&self, action: &str) -> String {
        string_literal(&format!("Entity.{}.{action}", self.table.name))
    }

    fn create(&self) -> String {
        let columns: Vec<&Column> = self
            .table
            .columns
            .iter()
            .filter(|column| !(column.primary_key && column.auto_increment))
            .collect();
        let additional = self.marked(|p| p.keep_additional);
        self.insert(
            "create",
            "AFTER INSERT",
            None,
            &[
                ("name", string_literal(&self.table.name)),
                ("id", self.column("NEW", self.primary_key())),
                ("event", self.event_name("create")),
                ("foreignKeys", self.foreign_keys("NEW")),
                (
                    "modifiedColumns",
                    self.column_array(&columns, |column| {
                        format!("NEW.{} IS NOT NULL", quote(Self::DIALECT, &column.name))
                    }),
                ),
                ("originalValues", "json_object()".into()),
                ("additionalValues", self.object("NEW", &additional)),
            ],
        )
    }

    /// The condition under which an update is captured: OR over the parameters.
    fn watched(&self) -> Option<String> {
        let parameters = &self.table.event.as_ref()?.parameters;
        let mut conditions = Vec::new();
        for parameter in parameters {
            match &parameter.column {
                EventColumn::All => {
                    conditions.extend(self.table.columns.iter().map(|c| self.changed(c)));
                }
                EventColumn::Column(name) => {
                    let Some(column) = self.table.column(name) else {
                        continue;
                    };
                    let changed = self.changed(column);
                    match &parameter.value {
                        None => conditions.push(changed),
                        Some(value) => {
                            let quoted = quote(Self::DIALECT, &column.name);
                            let literal = typed_literal(Self::DIALECT, column.ty, value);
                            let operator = parameter.operator.sql();
                            conditions.push(format!(
                                "({changed} AND ((OLD.{quoted} IS NULL) <> (NEW.{quoted} IS NULL) \
                                 OR (OLD.{quoted} {operator} {literal}) IS NOT (NEW.{quoted} {operator} {literal})))"
                            ));
                        }
                    }
                }
            }
        }
        let mut unique: Vec<String> = Vec::new();
        for condition in conditions {
            if !unique.contains(&condition) {
                unique.push(condition);
            }
        }
        if unique.is_empty() {
            None
        } else {
            Some(unique.join("\n    OR "))
        }
    }

    fn original_values(&self) -> String {
        let kept = self.marked(|p| p.keep_original);
        if kept.is_empty() {
            return "json_object()".into();
        }
        // The object holds every kept column; unchanged ones are removed again
        // (a removal of the absent path `$."-"` leaves the object as it is).
        let removals: Vec<String> = kept
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN {} THEN '$.\"-\"' ELSE {} END",
                    self.changed(column),
                    string_literal(&format!("$.\"{}\"", self.qualified(&column.name)))
                )
            })
            .collect();
        format!(
            "json_remove({},\n            {})",
            self.object("OLD", &kept),
            removals.join(",\n            ")
        )
    }

    fn update(&self) -> Option<String> {
        let when = self.watched()?;
        let columns: Vec<&Column> = self.table.columns.iter().collect();
        let additional = self.marked(|p| p.keep_additional);
        Some(self.insert(
            "update",
            "AFTER UPDATE",
            Some(when),
            &[
                ("name", string_literal(&self.table.name)),
                ("id", self.column("NEW", self.primary_key())),
                ("event", self.event_name("update")),
                ("foreignKeys", self.foreign_keys("NEW")),
                (
                    "modifiedColumns",
                    self.column_array(&columns, |c| self.changed(c)),
                ),
                ("originalValues", self.original_values()),
                ("additionalValues", self.object("NEW", &additional)),
            ],
        ))
    }

    fn delete(&self) -> String {
        let additional = self.marked(|p| p.keep_additional);
        self.insert(
            "delete",
            "AFTER DELETE",
            None,
            &[
                ("name", string_literal(&self.table.name)),
                ("id", self.column("OLD", self.primary_key())),
                ("event", self.event_name("delete")),
                ("foreignKeys", self.foreign_keys("OLD")),
                ("additionalValues", self.object("OLD", &additional)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SourceFile, parse_schemas};

    fn table(xml: &str) -> Table {
        let xml = format!("<database name=\"zed\">{xml}</database>");
        let model = parse_schemas(&[SourceFile::new("crates/a/schema/a.schema.xml", xml)]).unwrap();
        model.tables.into_iter().next().unwrap()
    }

    fn storage() -> Table {
        table(
            r#"<table name="spy_foo_storage">
            <column name="id_foo_storage" type="BIGINT" primaryKey="true" autoIncrement="true"/>
            <column name="fk_foo" type="INTEGER" required="true"/>
            <column name="active" type="BOOLEAN" required="true" defaultValue="true"/>
            <column name="label" type="CHAR" size="2" defaultValue="it's"/>
            <column name="raw" type="VARBINARY" size="16"/>
            <behavior name="synchronization">
                <parameter name="resource" value="foo"/>
                <parameter name="store" required="true"/>
                <parameter name="locale"/>
            </behavior>
            <behavior name="timestampable"/>
            </table>"#,
        )
    }

    #[test]
    fn sqlite_create_table() {
        assert_eq!(
            create_table(Dialect::Sqlite, &storage()),
            r#"CREATE TABLE "spy_foo_storage" (
    "id_foo_storage" INTEGER PRIMARY KEY AUTOINCREMENT,
    "fk_foo" INTEGER NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT 1,
    "label" CHAR(2) DEFAULT 'it''s',
    "raw" BLOB,
    "data" TEXT,
    "store" VARCHAR(128) NOT NULL,
    "locale" VARCHAR(16),
    "key" VARCHAR(255) NOT NULL,
    "alias_keys" TEXT,
    "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);"#
        );
    }

    #[test]
    fn postgres_create_table() {
        assert_eq!(
            create_table(Dialect::Postgres, &storage()),
            r#"CREATE TABLE "spy_foo_storage" (
    "id_foo_storage" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "fk_foo" INTEGER NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT TRUE,
    "label" CHAR(2) DEFAULT 'it''s',
    "raw" BYTEA,
    "data" TEXT,
    "store" VARCHAR(128) NOT NULL,
    "locale" VARCHAR(16),
    "key" VARCHAR(255) NOT NULL,
    "alias_keys" TEXT,
    "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);"#
        );
    }

    #[test]
    fn mysql_create_table_quotes_every_identifier() {
        assert_eq!(
            create_table(Dialect::Mysql, &storage()),
            r#"CREATE TABLE `spy_foo_storage` (
    `id_foo_storage` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `fk_foo` INT NOT NULL,
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    `label` CHAR(2) DEFAULT 'it''s',
    `raw` VARBINARY(16),
    `data` LONGTEXT,
    `store` VARCHAR(128) NOT NULL,
    `locale` VARCHAR(16),
    `key` VARCHAR(255) NOT NULL,
    `alias_keys` LONGTEXT,
    `created_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6),
    `updated_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;"#
        );
    }

    #[test]
    fn indexes_as_declared() {
        let table = storage();
        let unique = table.indexes.iter().find(|i| i.unique).unwrap();
        assert_eq!(
            create_index(Dialect::Mysql, &table.name, unique),
            "CREATE UNIQUE INDEX `spy_foo_storage-unique-key` ON `spy_foo_storage` (`key`);"
        );
        assert_eq!(
            drop_index(Dialect::Mysql, &table.name, &unique.name),
            "DROP INDEX `spy_foo_storage-unique-key` ON `spy_foo_storage`;"
        );
        assert_eq!(
            drop_index(Dialect::Postgres, &table.name, &unique.name),
            "DROP INDEX \"spy_foo_storage-unique-key\";"
        );
    }

    #[test]
    fn type_mappings() {
        let column = |ty: ColumnType, size: Option<u32>| Column {
            name: "c".into(),
            ty,
            size,
            scale: None,
            required: false,
            primary_key: false,
            auto_increment: false,
            default_value: None,
        };
        let cases = [
            (ColumnType::Integer, None, "INTEGER", "INTEGER", "INT"),
            (ColumnType::TinyInt, None, "TINYINT", "SMALLINT", "TINYINT"),
            (
                ColumnType::Boolean,
                None,
                "BOOLEAN",
                "BOOLEAN",
                "TINYINT(1)",
            ),
            (
                ColumnType::Varchar,
                Some(10),
                "VARCHAR(10)",
                "VARCHAR(10)",
                "VARCHAR(10)",
            ),
            (ColumnType::Clob, None, "TEXT", "TEXT", "LONGTEXT"),
            (
                ColumnType::Double,
                None,
                "DOUBLE",
                "DOUBLE PRECISION",
                "DOUBLE",
            ),
            (
                ColumnType::Decimal,
                Some(8),
                "DECIMAL(8)",
                "NUMERIC(8)",
                "DECIMAL(8)",
            ),
            (
                ColumnType::Timestamp,
                None,
                "TIMESTAMP",
                "TIMESTAMP",
                "DATETIME(6)",
            ),
            (ColumnType::LongVarBinary, None, "BLOB", "BYTEA", "LONGBLOB"),
            (ColumnType::Enum, None, "TINYINT", "SMALLINT", "TINYINT"),
        ];
        for (ty, size, sqlite, postgres, mysql) in cases {
            let c = column(ty, size);
            assert_eq!(column_type(Dialect::Sqlite, &c), sqlite, "{ty:?}");
            assert_eq!(column_type(Dialect::Postgres, &c), postgres, "{ty:?}");
            assert_eq!(column_type(Dialect::Mysql, &c), mysql, "{ty:?}");
        }
    }

    #[test]
    fn tables_without_event_behaviour_have_no_triggers() {
        assert!(create_triggers(Dialect::Sqlite, &storage()).is_empty());
        assert!(drop_triggers(Dialect::Sqlite, &storage()).is_empty());
    }
}
