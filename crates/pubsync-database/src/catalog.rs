//! Catalog introspection: the columns of an existing table as the database describes them,
//! so that a shop's table can be checked against its schema definition before pubsync
//! installs triggers on it.
//!
//! Each dialect reads its own catalog: SQLite `pragma_table_info`, PostgreSQL and MySQL/MariaDB
//! `information_schema` (the current schema, the current database). [`TypeFamily::of`] sorts the
//! declared type names into families that compare across dialects.

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};

use crate::{Database, DatabaseError, Dialect, with_connection};

/// A column of an existing table, as the database's catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    /// The column's name.
    pub name: String,
    /// The declared type as the catalog spells it, lower-case, e.g. "integer",
    /// "character varying", "varchar(255)", "bigint", "text", "tinyint(1)", "longtext",
    /// "json", "timestamp without time zone".
    pub declared_type: String,
    /// The type family of [`declared_type`](Self::declared_type).
    pub family: TypeFamily,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// Position in the primary key (0-based) when the column is part of it.
    pub primary_key: Option<usize>,
}

/// What kind of values a column holds, whatever the dialect's name for its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TypeFamily {
    /// Integers of any width (`integer`, `bigint`, `int(11)`, `smallint`, …).
    Integer,
    /// Booleans (`boolean`; MySQL's `tinyint(1)`).
    Boolean,
    /// Character strings (`varchar`, `text`, `character`, `longtext`; MySQL's `enum`, `set`).
    Text,
    /// Exact numbers (`decimal`, `numeric`).
    Decimal,
    /// Floating-point numbers (`real`, `double precision`, `float`).
    Float,
    /// Dates without a time of day.
    Date,
    /// Times of day without a date.
    Time,
    /// Dates with a time of day (`timestamp`, `datetime`, with or without a time zone).
    Timestamp,
    /// Byte strings (`blob`, `bytea`, `binary`, `varbinary`).
    Binary,
    /// JSON documents (`json`, `jsonb`). MariaDB reports its JSON columns as `longtext`,
    /// which is [`Text`](Self::Text).
    Json,
    /// Anything else (arrays, `uuid`, `interval`, user-defined types, an untyped SQLite column).
    Other,
}

impl TypeFamily {
    /// The family of a type named `declared_type` in `dialect` (any case, length or precision
    /// included or not: "VARCHAR(255)", "timestamp(3) without time zone", "int(10) unsigned").
    pub fn of(dialect: Dialect, declared_type: &str) -> Self {
        let declared = declared_type.trim().to_lowercase();
        match dialect {
            Dialect::Sqlite => Self::of_sqlite(&declared.to_uppercase()),
            Dialect::Postgres => Self::of_postgres(&declared),
            Dialect::Mysql => Self::of_mysql(&declared),
        }
    }

    /// SQLite's affinity rules (a substring of the declared type decides), refined into
    /// families. `declared` is upper-case.
    fn of_sqlite(declared: &str) -> Self {
        let has = |part: &str| declared.contains(part);
        if declared.is_empty() {
            Self::Other
        } else if has("BOOL") {
            Self::Boolean
        } else if has("INT") {
            Self::Integer
        } else if has("CHAR") || has("CLOB") || has("TEXT") {
            Self::Text
        } else if has("JSON") {
            Self::Json
        } else if has("BLOB") || has("BINARY") {
            Self::Binary
        } else if has("DECIMAL") || has("NUMERIC") {
            Self::Decimal
        } else if has("REAL") || has("FLOA") || has("DOUB") {
            Self::Float
        } else if has("DATETIME") || has("TIMESTAMP") {
            Self::Timestamp
        } else if has("DATE") {
            Self::Date
        } else if has("TIME") {
            Self::Time
        } else {
            Self::Other
        }
    }

    /// PostgreSQL's type names (`information_schema` spellings and their aliases), lower-case.
    fn of_postgres(declared: &str) -> Self {
        if declared.ends_with("[]") {
            return Self::Other;
        }
        // "timestamp(3) with time zone" → "timestamp with time zone".
        let mut base = String::with_capacity(declared.len());
        let mut depth = 0_usize;
        for c in declared.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => base.push(c),
                _ => {}
            }
        }
        let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
        match base.as_str() {
            "smallint" | "integer" | "int" | "bigint" | "int2" | "int4" | "int8"
            | "smallserial" | "serial" | "bigserial" | "serial2" | "serial4" | "serial8" => {
                Self::Integer
            }
            "boolean" | "bool" => Self::Boolean,
            "character varying" | "varchar" | "character" | "char" | "bpchar" | "text"
            | "citext" | "name" => Self::Text,
            "numeric" | "decimal" => Self::Decimal,
            "real" | "double precision" | "float" | "float4" | "float8" => Self::Float,
            "date" => Self::Date,
            "time" | "timetz" | "time without time zone" | "time with time zone" => Self::Time,
            "timestamp"
            | "timestamptz"
            | "timestamp without time zone"
            | "timestamp with time zone" => Self::Timestamp,
            "bytea" => Self::Binary,
            "json" | "jsonb" => Self::Json,
            _ => Self::Other,
        }
    }

    /// MySQL/MariaDB's type names (`COLUMN_TYPE` spellings), lower-case.
    fn of_mysql(declared: &str) -> Self {
        if declared.starts_with("tinyint(1)") {
            return Self::Boolean;
        }
        // "int(10) unsigned" → "int", "double precision" → "double".
        let base = declared
            .split(|c: char| c == '(' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        match base {
            "bool" | "boolean" => Self::Boolean,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "serial" => {
                Self::Integer
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
            | "set" => Self::Text,
            "decimal" | "numeric" | "dec" | "fixed" => Self::Decimal,
            "float" | "double" | "real" => Self::Float,
            "date" => Self::Date,
            "time" => Self::Time,
            "datetime" | "timestamp" => Self::Timestamp,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Self::Binary
            }
            "json" => Self::Json,
            _ => Self::Other,
        }
    }
}

/// One catalog row, spelt alike by every dialect's query.
#[derive(diesel::QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared_type: String,
    /// 1 when the column is declared NOT NULL.
    #[diesel(sql_type = BigInt)]
    not_null: i64,
    /// 1-based position in the primary key, 0 when not part of it.
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

const SQLITE_COLUMNS: &str = r#"SELECT name, type AS declared_type, "notnull" AS not_null, pk
FROM pragma_table_info(?) ORDER BY cid"#;

const POSTGRES_COLUMNS: &str = "SELECT CAST(c.column_name AS TEXT) AS name,
    CAST(c.data_type AS TEXT) AS declared_type,
    CAST(CASE WHEN c.is_nullable = 'NO' THEN 1 ELSE 0 END AS BIGINT) AS not_null,
    CAST(COALESCE(k.ordinal_position, 0) AS BIGINT) AS pk
FROM information_schema.columns c
LEFT JOIN (
    SELECT kcu.column_name, kcu.ordinal_position
    FROM information_schema.table_constraints tc
    JOIN information_schema.key_column_usage kcu
        ON kcu.constraint_schema = tc.constraint_schema
        AND kcu.constraint_name = tc.constraint_name
        AND kcu.table_name = tc.table_name
    WHERE tc.constraint_type = 'PRIMARY KEY'
        AND tc.table_schema = current_schema() AND tc.table_name = $1
) k ON k.column_name = c.column_name
WHERE c.table_schema = current_schema() AND c.table_name = $1
ORDER BY c.ordinal_position";

// information_schema columns may come back as binary strings or with upper-case names:
// every column is cast and aliased.
const MYSQL_COLUMNS: &str = "SELECT CAST(c.COLUMN_NAME AS CHAR) AS name,
    CAST(LOWER(c.COLUMN_TYPE) AS CHAR) AS declared_type,
    CAST(CASE WHEN c.IS_NULLABLE = 'NO' THEN 1 ELSE 0 END AS SIGNED) AS not_null,
    CAST(COALESCE(k.ORDINAL_POSITION, 0) AS SIGNED) AS pk
FROM information_schema.COLUMNS c
LEFT JOIN information_schema.KEY_COLUMN_USAGE k
    ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME
    AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ?
ORDER BY c.ORDINAL_POSITION";

impl Database {
    /// The columns of `table` in declaration order, or `None` when the table does not exist.
    ///
    /// Looks in the current schema (PostgreSQL) or database (MySQL). A view's columns are
    /// listed as a table's are. On SQLite, a primary-key column is reported NOT NULL even when
    /// not declared so (an `INTEGER PRIMARY KEY` is the rowid, never NULL).
    pub fn table_columns(&self, table: &str) -> Result<Option<Vec<CatalogColumn>>, DatabaseError> {
        let dialect = self.dialect();
        let sql = match dialect {
            Dialect::Sqlite => SQLITE_COLUMNS,
            Dialect::Postgres => POSTGRES_COLUMNS,
            Dialect::Mysql => MYSQL_COLUMNS,
        };
        let rows: Vec<ColumnRow> = with_connection!(self, |conn| {
            diesel::sql_query(sql)
                .bind::<Text, _>(table)
                .load::<ColumnRow>(conn)
                .map_err(DatabaseError::query(format!(
                    "read the columns of table {table}"
                )))
        })?;
        if rows.is_empty() {
            // Every table has a column: no rows, no table.
            return Ok(None);
        }
        let columns = rows
            .into_iter()
            .map(|row| {
                let declared_type = row.declared_type.to_lowercase();
                let primary_key = usize::try_from(row.pk - 1).ok();
                let not_null = row.not_null != 0 || (dialect == Dialect::Sqlite && row.pk > 0);
                CatalogColumn {
                    name: row.name,
                    family: TypeFamily::of(dialect, &declared_type),
                    declared_type,
                    nullable: !not_null,
                    primary_key,
                }
            })
            .collect();
        Ok(Some(columns))
    }
}

/// One trigger name, spelt alike by every dialect's query.
#[derive(diesel::QueryableByName)]
struct TriggerRow {
    #[diesel(sql_type = Text)]
    name: String,
}

const SQLITE_TRIGGERS: &str =
    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name";

const POSTGRES_TRIGGERS: &str = "SELECT CAST(t.tgname AS TEXT) AS name FROM pg_trigger t
WHERE t.tgrelid = to_regclass(quote_ident($1)) AND NOT t.tgisinternal ORDER BY 1";

const MYSQL_TRIGGERS: &str = "SELECT CAST(TRIGGER_NAME AS CHAR) AS name
FROM information_schema.TRIGGERS
WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? ORDER BY 1";

impl Database {
    /// The names of the triggers on `table`, sorted (none when the table does not exist).
    pub fn table_triggers(&self, table: &str) -> Result<Vec<String>, DatabaseError> {
        let sql = match self.dialect() {
            Dialect::Sqlite => SQLITE_TRIGGERS,
            Dialect::Postgres => POSTGRES_TRIGGERS,
            Dialect::Mysql => MYSQL_TRIGGERS,
        };
        let rows: Vec<TriggerRow> = with_connection!(self, |conn| {
            diesel::sql_query(sql)
                .bind::<Text, _>(table)
                .load::<TriggerRow>(conn)
                .map_err(DatabaseError::query(format!(
                    "read the triggers of table {table}"
                )))
        })?;
        Ok(rows.into_iter().map(|row| row.name).collect())
    }
}
