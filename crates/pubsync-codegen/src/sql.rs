//! DDL and capture triggers for SQLite, PostgreSQL and MySQL/MariaDB.

use crate::model::{
    Column, ColumnType, DefaultValue, EventColumn, Index, OUTBOX_TABLE, SYNC_OUTBOX_TABLE, Table,
};

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

/// The longest trigger or function name: PostgreSQL's limit (63 bytes) is the smaller one,
/// MySQL allows 64.
pub const MAX_NAME_LENGTH: usize = 63;

/// A 64-bit FNV-1a hash as 16 hex digits: small, stable across releases and platforms.
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The name of a trigger or trigger function of a table: `pubsync_<table>_<suffix>`, or,
/// when that is longer than [`MAX_NAME_LENGTH`], `pubsync_<table prefix>_<hash>_<suffix>`
/// with the first 8 hex digits of the fingerprint of the whole table name, so that long
/// names stay distinct and deterministic.
pub fn trigger_name(table: &str, suffix: &str) -> String {
    let full = format!("pubsync_{table}_{suffix}");
    if full.len() <= MAX_NAME_LENGTH {
        return full;
    }
    let hash = &fingerprint(table)[..8];
    let keep = MAX_NAME_LENGTH - "pubsync_".len() - 1 - hash.len() - 1 - suffix.len();
    // Table names are ASCII identifiers, so any byte index is a character boundary.
    format!(
        "pubsync_{}_{hash}_{suffix}",
        &table[..keep.min(table.len())]
    )
}

const CAPTURE_TRIGGERS: [&str; 3] = ["create", "update", "delete"];
const CAPTURE_FUNCTION: &str = "capture";
const SYNC_FUNCTION: &str = "sync";

/// The sync-intent triggers per dialect. SQLite has no branching in a trigger body, so a
/// key change gets a trigger of its own.
fn sync_trigger_suffixes(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Sqlite => &[
            "sync_insert",
            "sync_update",
            "sync_key_change",
            "sync_delete",
        ],
        Dialect::Postgres | Dialect::Mysql => &["sync_insert", "sync_update", "sync_delete"],
    }
}

/// The table of database-wide pubsync settings, read by the sync triggers.
pub const SETTING_TABLE: &str = "pubsync_setting";

/// The statements creating the triggers of a table: capture triggers writing to the outbox
/// when it has the event behaviour, sync-intent triggers writing to the sync outbox when it
/// has the synchronization behaviour and synchronization is not switched off for it for good
/// (none for other tables). On PostgreSQL each set is a trigger function and its triggers.
pub fn create_triggers(dialect: Dialect, table: &Table) -> Vec<String> {
    let mut statements = Vec::new();
    if table.event.is_some() {
        match dialect {
            Dialect::Sqlite => statements.extend(SqliteTriggers { table }.all()),
            Dialect::Postgres | Dialect::Mysql => {
                statements.extend(Capture { dialect, table }.all());
            }
        }
    }
    // A table whose synchronization is switched off for good records no sync intents at all.
    if table
        .synchronization
        .as_ref()
        .is_some_and(|sync| sync.synchronization_enabled != Some(false))
    {
        statements.extend(SyncTriggers { dialect, table }.all());
    }
    statements
}

/// The statements dropping what [`create_triggers`] creates (`IF EXISTS`, so that they also
/// clean up after a partly applied migration).
pub fn drop_triggers(dialect: Dialect, table: &Table) -> Vec<String> {
    let mut sets: Vec<(&[&str], &str)> = Vec::new();
    if table.event.is_some() {
        sets.push((&CAPTURE_TRIGGERS, CAPTURE_FUNCTION));
    }
    if table.synchronization.is_some() {
        sets.push((sync_trigger_suffixes(dialect), SYNC_FUNCTION));
    }
    let mut statements = Vec::new();
    for (triggers, function) in sets {
        for suffix in triggers {
            let name = quote(dialect, &trigger_name(&table.name, suffix));
            statements.push(match dialect {
                Dialect::Postgres => format!(
                    "DROP TRIGGER IF EXISTS {name} ON {};",
                    quote(dialect, &table.name)
                ),
                Dialect::Sqlite | Dialect::Mysql => format!("DROP TRIGGER IF EXISTS {name};"),
            });
        }
        if dialect == Dialect::Postgres {
            statements.push(format!(
                "DROP FUNCTION IF EXISTS {}();",
                quote(dialect, &trigger_name(&table.name, function))
            ));
        }
    }
    statements
}

/// Columns marked by `pick` on some event parameter (`*` marks every column), in
/// declaration order.
fn marked_columns(
    table: &Table,
    pick: impl Fn(&crate::model::EventParameter) -> bool,
) -> Vec<&Column> {
    let parameters: &[crate::model::EventParameter] = table
        .event
        .as_ref()
        .map_or(&[], |event| event.parameters.as_slice());
    let all = parameters
        .iter()
        .any(|p| pick(p) && p.column == EventColumn::All);
    table
        .columns
        .iter()
        .filter(|column| {
            all || parameters
                .iter()
                .any(|p| pick(p) && p.column == EventColumn::Column(column.name.clone()))
        })
        .collect()
}

/// The local columns of every foreign key, each once, in declaration order.
fn foreign_key_columns(table: &Table) -> Vec<&Column> {
    let mut columns: Vec<&Column> = Vec::new();
    for foreign_key in &table.foreign_keys {
        for (local, _) in &foreign_key.references {
            if let Some(column) = table.column(local)
                && !columns.iter().any(|c| c.name == column.name)
            {
                columns.push(column);
            }
        }
    }
    columns
}

/// The capture triggers of PostgreSQL and MySQL/MariaDB: the same events and the same JSON
/// as [`SqliteTriggers`], each trigger one `INSERT` into the outbox with no lookups.
/// PostgreSQL gets one PL/pgSQL function per table, branching on `TG_OP`, and three
/// triggers (the update trigger's `WHEN` holds the watched condition); MySQL gets three
/// triggers with compound bodies (no `DELIMITER`: the server parses them as sent).
struct Capture<'a> {
    dialect: Dialect,
    table: &'a Table,
}

impl Capture<'_> {
    fn all(&self) -> Vec<String> {
        let create = self.insert("create", None);
        let update = self
            .watched()
            .map(|condition| (self.insert("update", Some(&condition)), condition));
        let delete = self.insert("delete", None);
        match self.dialect {
            Dialect::Postgres => {
                let function = trigger_name(&self.table.name, CAPTURE_FUNCTION);
                let mut branches = format!("    IF TG_OP = 'INSERT' THEN\n        {create}\n");
                if let Some((insert, _)) = &update {
                    branches.push_str(&format!(
                        "    ELSIF TG_OP = 'UPDATE' THEN\n        {insert}\n"
                    ));
                }
                branches.push_str(&format!(
                    "    ELSIF TG_OP = 'DELETE' THEN\n        {delete}\n    END IF;\n"
                ));
                let mut statements = vec![postgres_function(&function, &branches)];
                statements.push(postgres_trigger(self.table, "create", "INSERT", &function));
                if update.is_some() {
                    statements.push(postgres_trigger(self.table, "update", "UPDATE", &function));
                }
                statements.push(postgres_trigger(self.table, "delete", "DELETE", &function));
                statements
            }
            Dialect::Mysql | Dialect::Sqlite => {
                let mut statements = vec![mysql_trigger(
                    self.table,
                    "create",
                    "AFTER INSERT",
                    &format!("    {create}\n"),
                )];
                if let Some((insert, condition)) = update {
                    statements.push(mysql_trigger(
                        self.table,
                        "update",
                        "AFTER UPDATE",
                        &format!("    IF {condition} THEN\n        {insert}\n    END IF;\n"),
                    ));
                }
                statements.push(mysql_trigger(
                    self.table,
                    "delete",
                    "AFTER DELETE",
                    &format!("    {delete}\n"),
                ));
                statements
            }
        }
    }

    /// How the old and the new row are named: `OLD` and `NEW` in MySQL's row triggers, the
    /// aliases of the transition tables in PostgreSQL's statement triggers (not `OLD`/`NEW`,
    /// which PL/pgSQL would take for its own variables).
    fn rows(&self) -> (&'static str, &'static str) {
        match self.dialect {
            Dialect::Postgres => (OLD_ALIAS, NEW_ALIAS),
            Dialect::Mysql | Dialect::Sqlite => ("OLD", "NEW"),
        }
    }

    fn quoted(&self, name: &str) -> String {
        quote(self.dialect, name)
    }

    /// The column's value as it goes into the JSON, the same on every database: bytes as
    /// upper-case hex (JSON cannot hold bytes), booleans as 0/1 (as SQLite and MySQL store
    /// them), timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`.
    fn value(&self, row: &str, column: &Column) -> String {
        let reference = format!("{row}.{}", self.quoted(&column.name));
        match (self.dialect, column.ty) {
            (Dialect::Postgres, ty) if ty.is_binary() => {
                format!("upper(encode({reference}, 'hex'))")
            }
            (Dialect::Postgres, ColumnType::Boolean) => format!("{reference}::int"),
            (Dialect::Postgres, ColumnType::Timestamp) => {
                format!("to_char({reference}, 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            (_, ty) if ty.is_binary() => format!("HEX({reference})"),
            (_, ColumnType::Timestamp) => {
                format!("DATE_FORMAT({reference}, '%Y-%m-%d %H:%i:%s.%f')")
            }
            _ => reference,
        }
    }

    /// Whether two values differ, NULL-safe.
    fn differ(&self, left: &str, right: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("{left} IS DISTINCT FROM {right}"),
            Dialect::Mysql | Dialect::Sqlite => format!("NOT ({left} <=> {right})"),
        }
    }

    fn changed(&self, column: &Column) -> String {
        let name = self.quoted(&column.name);
        let (old, new) = self.rows();
        let changed = self.differ(&format!("{old}.{name}"), &format!("{new}.{name}"));
        match self.unpaired() {
            Some(unpaired) => format!("({unpaired} OR {changed})"),
            None => changed,
        }
    }

    /// PostgreSQL: the condition that an updated row found no old version with its primary
    /// key (the update changed the key): every column of such a row counts as changed, and
    /// the row is captured whatever the watched columns say. `None` elsewhere.
    fn unpaired(&self) -> Option<String> {
        (self.dialect == Dialect::Postgres).then(|| {
            let first = self.table.primary_key()[0];
            format!("{OLD_ALIAS}.{} IS NULL", self.quoted(&first.name))
        })
    }

    /// A JSON object of `"<column>": value`; with a condition, a column is left out when its
    /// condition is false.
    fn object(
        &self,
        row: &str,
        columns: &[&Column],
        condition: Option<&dyn Fn(&Column) -> String>,
    ) -> String {
        match self.dialect {
            Dialect::Postgres => {
                if columns.is_empty() {
                    return "'{}'::json".into();
                }
                // Text assembly instead of json_build_object, which takes at most 100
                // arguments; array_to_string skips the NULLs of left-out columns.
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        let pair = format!(
                            "{} || coalesce(to_json({})::text, 'null')",
                            string_literal(&format!("\"{}\":", column.name)),
                            self.value(row, column)
                        );
                        match condition {
                            Some(condition) => {
                                format!("CASE WHEN {} THEN {pair} END", condition(column))
                            }
                            None => pair,
                        }
                    })
                    .collect();
                format!(
                    "('{{' || array_to_string(ARRAY[\n            {}\n        ]::text[], ',') || '}}')::json",
                    parts.join(",\n            ")
                )
            }
            Dialect::Mysql | Dialect::Sqlite => {
                let pairs: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "{}, {}",
                            string_literal(&column.name),
                            self.value(row, column)
                        )
                    })
                    .collect();
                let object = format!("JSON_OBJECT({})", pairs.join(", "));
                let Some(condition) = condition else {
                    return object;
                };
                if columns.is_empty() {
                    return object;
                }
                // The object holds every column; those whose condition is false are removed
                // again. Removing the absent path `$."0"` leaves the object as it is (no
                // column name starts with a digit; MariaDB rejects `$."-"`).
                let removals: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "IF({}, '$.\"0\"', {})",
                            condition(column),
                            string_literal(&format!("$.\"{}\"", column.name))
                        )
                    })
                    .collect();
                format!(
                    "JSON_REMOVE({object},\n            {})",
                    removals.join(",\n            ")
                )
            }
        }
    }

    /// A JSON array of the names of the columns where `condition` holds.
    fn column_array(&self, columns: &[&Column], condition: impl Fn(&Column) -> String) -> String {
        match self.dialect {
            Dialect::Postgres => {
                if columns.is_empty() {
                    return "'[]'::json".into();
                }
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "CASE WHEN {} THEN {} END",
                            condition(column),
                            string_literal(&column.name)
                        )
                    })
                    .collect();
                format!(
                    "to_json(array_remove(ARRAY[\n            {}\n        ]::text[], NULL))",
                    parts.join(",\n            ")
                )
            }
            Dialect::Mysql | Dialect::Sqlite => {
                if columns.is_empty() {
                    return "JSON_ARRAY()".into();
                }
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "IF({}, {}, '')",
                            condition(column),
                            string_literal(&format!("\"{}\",", column.name))
                        )
                    })
                    .collect();
                // JSON_EXTRACT turns the text into JSON, so JSON_OBJECT embeds it as an
                // array on MySQL and MariaDB alike.
                format!(
                    "JSON_EXTRACT(CONCAT('[', TRIM(TRAILING ',' FROM CONCAT(''\n            , {}\n        )), ']'), '$')",
                    parts.join("\n            , ")
                )
            }
        }
    }

    /// The condition under which an update is captured (see [`watched_condition`]).
    fn watched(&self) -> Option<String> {
        let watched = watched_condition(
            self.table,
            self.dialect,
            self.rows(),
            |left, right| self.differ(left, right),
            "\n        OR ",
        )?;
        Some(match self.unpaired() {
            Some(unpaired) => format!("{unpaired}\n        OR {watched}"),
            None => watched,
        })
    }

    /// The `INSERT` into the outbox for one action: of the row in a MySQL trigger, of every
    /// row of the statement's transition table in a PostgreSQL one, where `condition` (the
    /// watched columns of an update) filters them.
    fn insert(&self, action: &str, condition: Option<&str>) -> String {
        let table = self.table;
        let (old, new) = self.rows();
        let row = if action == "delete" { old } else { new };
        let primary_key = table.primary_key()[0];
        let foreign_keys = foreign_key_columns(table);
        let additional = marked_columns(table, |p| p.keep_additional);
        let modified = match action {
            "create" => {
                let columns: Vec<&Column> = table
                    .columns
                    .iter()
                    .filter(|column| !(column.primary_key && column.auto_increment))
                    .collect();
                (!columns.is_empty()).then(|| {
                    self.column_array(&columns, |column| {
                        format!("{new}.{} IS NOT NULL", self.quoted(&column.name))
                    })
                })
            }
            "update" => {
                let columns: Vec<&Column> = table.columns.iter().collect();
                Some(self.column_array(&columns, |column| self.changed(column)))
            }
            _ => None,
        };
        let kept = marked_columns(table, |p| p.keep_original);
        let original = (action == "update" && !kept.is_empty()).then(|| {
            let changed = |column: &Column| self.changed(column);
            self.object(old, &kept, Some(&changed))
        });
        let (empty_array, empty_object) = match self.dialect {
            Dialect::Postgres => ("'[]'::json", "'{}'::json"),
            Dialect::Mysql | Dialect::Sqlite => ("JSON_ARRAY()", "JSON_OBJECT()"),
        };
        let elements = compact_elements(
            [
                string_literal(&table.name),
                string_literal(action),
                self.value(row, primary_key),
            ],
            [
                (modified, empty_array),
                (
                    (!foreign_keys.is_empty()).then(|| self.object(row, &foreign_keys, None)),
                    empty_object,
                ),
                (original, empty_object),
                (
                    (!additional.is_empty()).then(|| self.object(row, &additional, None)),
                    empty_object,
                ),
            ],
        );
        let object = match self.dialect {
            Dialect::Postgres => format!(
                "json_build_array(\n        {}\n    )::text",
                elements.join(",\n        ")
            ),
            Dialect::Mysql | Dialect::Sqlite => {
                format!(
                    "JSON_ARRAY(\n        {}\n    )",
                    elements.join(",\n        ")
                )
            }
        };
        let into = format!(
            "INSERT INTO {} ({})",
            self.quoted(OUTBOX_TABLE),
            self.quoted("data")
        );
        match self.dialect {
            Dialect::Postgres => {
                let from = match action {
                    "create" => format!("{NEW_ROWS} AS {new}"),
                    "delete" => format!("{OLD_ROWS} AS {old}"),
                    _ => transition_join(table),
                };
                let filter = condition.map_or(String::new(), |condition| {
                    format!("\n    WHERE {condition}")
                });
                format!("{into}\n    SELECT {object}\n    FROM {from}{filter};")
            }
            Dialect::Mysql | Dialect::Sqlite => format!("{into} VALUES ({object});"),
        }
    }
}

/// The elements of a compact outbox row (see `EventEntityTransfer::from_outbox`): the table,
/// the action and the id, then modified columns, foreign keys, original and additional values,
/// each `None` where the table never has one. Trailing `None`s are left out, the others
/// written as their empty value, so that the position of each part stays fixed.
fn compact_elements(head: [String; 3], tail: [(Option<String>, &str); 4]) -> Vec<String> {
    let kept = tail
        .iter()
        .rposition(|(element, _)| element.is_some())
        .map_or(0, |last| last + 1);
    head.into_iter()
        .chain(
            tail.into_iter()
                .take(kept)
                .map(|(element, empty)| element.unwrap_or_else(|| empty.to_owned())),
        )
        .collect()
}

/// `CREATE FUNCTION <name>() RETURNS trigger` around PL/pgSQL branches. The body is
/// dollar-quoted with a tag no schema literal is likely to hold.
///
/// Nested loops are off inside: PL/pgSQL plans a statement once, on its first call, and
/// keeps the plan. Planned for a transition table of one row, the join of an update's old
/// and new rows became a nested loop, which a statement of a thousand rows then ran as a
/// million comparisons (a quarter of the server's CPU time in the benchmark). A hash join
/// is right for any size.
fn postgres_function(name: &str, branches: &str) -> String {
    format!(
        "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql\nSET enable_nestloop = off\nAS $pubsync$\nBEGIN\n{branches}    RETURN NULL;\nEND;\n$pubsync$;",
        quote(Dialect::Postgres, name)
    )
}

/// The transition tables of PostgreSQL's statement triggers and their aliases in the trigger
/// functions' statements.
const NEW_ROWS: &str = "pubsync_new";
const OLD_ROWS: &str = "pubsync_old";
const NEW_ALIAS: &str = "n";
const OLD_ALIAS: &str = "o";

/// `pubsync_new AS n LEFT JOIN pubsync_old AS o ON` the primary key: an update's new rows
/// with their old versions, for the capture triggers. A row whose primary key the update
/// changed finds no old version (see `Capture::unpaired`).
fn transition_join(table: &Table) -> String {
    let on: Vec<String> = table
        .primary_key()
        .iter()
        .map(|column| {
            let name = quote(Dialect::Postgres, &column.name);
            format!("{OLD_ALIAS}.{name} = {NEW_ALIAS}.{name}")
        })
        .collect();
    format!(
        "{NEW_ROWS} AS {NEW_ALIAS} LEFT JOIN {OLD_ROWS} AS {OLD_ALIAS} ON {}",
        on.join(" AND ")
    )
}

/// A statement-level trigger after `event` (`INSERT`, `UPDATE` or `DELETE`) with its
/// transition tables. One trigger call per statement writes the outbox rows of all the
/// statement's rows with one `INSERT … SELECT`, where a row trigger ran PL/pgSQL and an
/// `INSERT` per row: that was 40% of the server's CPU time in the benchmark.
///
/// Like every statement trigger, it fires for statements that name its table: a table that
/// is a partition or an inheritance child is not captured when a statement names the parent
/// (give the parent the behaviour), and a parent's triggers see its children's rows.
fn postgres_trigger(table: &Table, suffix: &str, event: &str, function: &str) -> String {
    let dialect = Dialect::Postgres;
    let referencing = match event {
        "INSERT" => format!("NEW TABLE AS {NEW_ROWS}"),
        "UPDATE" => format!("OLD TABLE AS {OLD_ROWS} NEW TABLE AS {NEW_ROWS}"),
        _ => format!("OLD TABLE AS {OLD_ROWS}"),
    };
    format!(
        "CREATE TRIGGER {} AFTER {event} ON {}\nREFERENCING {referencing}\nFOR EACH STATEMENT EXECUTE FUNCTION {}();",
        quote(dialect, &trigger_name(&table.name, suffix)),
        quote(dialect, &table.name),
        quote(dialect, function)
    )
}

/// A MySQL trigger with a compound body. No `DELIMITER` line: migrations go to the server
/// as they are (diesel's `batch_execute`), and the server parses `BEGIN … END` itself.
fn mysql_trigger(table: &Table, suffix: &str, timing: &str, body: &str) -> String {
    let dialect = Dialect::Mysql;
    format!(
        "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW\nBEGIN\n{body}END;",
        quote(dialect, &trigger_name(&table.name, suffix)),
        quote(dialect, &table.name)
    )
}

/// The sync-intent triggers of a storage table: every change of `data`, `key`, `store` or
/// `locale` becomes a row of the sync outbox in the writer's transaction (a `write` of the
/// new key, a `delete` of the old key when the key changes or the row goes away), with the
/// clock time of the change in microseconds as `version`.
struct SyncTriggers<'a> {
    dialect: Dialect,
    table: &'a Table,
}

impl SyncTriggers<'_> {
    fn quoted(&self, name: &str) -> String {
        quote(self.dialect, name)
    }

    /// The clock time when the trigger runs, in microseconds since the Unix epoch. Not the
    /// transaction or statement start (`now()`, `NOW(6)`): a transaction that waited on a
    /// row lock would carry an older version than the one it overwrote.
    fn version(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
            Dialect::Postgres => "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
            Dialect::Mysql => "CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)",
        }
    }

    fn has_mappings(&self) -> bool {
        self.table
            .synchronization
            .as_ref()
            .is_some_and(|sync| !sync.mappings.is_empty())
    }

    fn optional(&self, row: &str, column: &str) -> String {
        if self.table.column(column).is_some() {
            format!("{row}.{}", self.quoted(column))
        } else {
            "NULL".into()
        }
    }

    /// The `INSERT` of one sync-outbox row: `write` of `row`'s key, or `delete` of it.
    fn insert(&self, operation: &str, row: &str, old_row: Option<&str>) -> String {
        format!(
            "{}\n        VALUES ({});",
            self.into(),
            self.values(operation, row, old_row)
        )
    }

    /// PostgreSQL: the `INSERT … SELECT` of the sync-outbox rows of every row of `from` (a
    /// transition table, or the join of an update's two) that meets `condition`.
    fn insert_select(
        &self,
        operation: &str,
        (row, old_row): (&str, Option<&str>),
        from: &str,
        condition: Option<&str>,
    ) -> String {
        let filter = condition.map_or(String::new(), |condition| {
            format!("\n        WHERE {condition}")
        });
        format!(
            "{}\n        SELECT {}\n        FROM {from}{filter};",
            self.into(),
            self.values(operation, row, old_row)
        )
    }

    fn into(&self) -> String {
        let columns = [
            "storage_table",
            "storage_key",
            "operation",
            "data",
            "previous_data",
            "store",
            "locale",
            "version",
        ]
        .map(|column| self.quoted(column))
        .join(", ");
        format!("INSERT INTO {} ({columns})", self.quoted(SYNC_OUTBOX_TABLE))
    }

    /// The values of one sync-outbox row.
    fn values(&self, operation: &str, row: &str, old_row: Option<&str>) -> String {
        let data = if operation == "write" {
            format!("{row}.{}", self.quoted("data"))
        } else {
            "NULL".into()
        };
        // The old data lets the backend remove alias keys that no longer apply.
        let previous_data = match old_row {
            Some(old_row) if self.has_mappings() => format!("{old_row}.{}", self.quoted("data")),
            _ => "NULL".into(),
        };
        format!(
            "{}, {row}.{}, {}, {data}, {previous_data}, {}, {}, {}",
            string_literal(&self.table.name),
            self.quoted("key"),
            string_literal(operation),
            self.optional(row, "store"),
            self.optional(row, "locale"),
            self.version()
        )
    }

    fn differ(&self, column: &str) -> String {
        self.differ_rows(column, ("OLD", "NEW"))
    }

    /// Whether `column` differs between the rows named `old` and `new`, NULL-safe.
    fn differ_rows(&self, column: &str, (old, new): (&str, &str)) -> String {
        let name = self.quoted(column);
        match self.dialect {
            Dialect::Sqlite => format!("{old}.{name} IS NOT {new}.{name}"),
            Dialect::Postgres => format!("{old}.{name} IS DISTINCT FROM {new}.{name}"),
            Dialect::Mysql => format!("NOT ({old}.{name} <=> {new}.{name})"),
        }
    }

    /// Whether anything the storage sees changed: data, key, store or locale.
    fn changed(&self, rows: (&str, &str)) -> String {
        ["data", "key", "store", "locale"]
            .into_iter()
            .filter(|column| self.table.column(column).is_some())
            .map(|column| self.differ_rows(column, rows))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// The setting that switches synchronization off for the whole database
    /// (`pubsync_setting`, written from the configuration by `pubsync setup` and every worker).
    fn switched_off(&self) -> String {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE {} = 'synchronization' AND {} = 'off')",
            self.quoted(SETTING_TABLE),
            self.quoted("name"),
            self.quoted("value")
        )
    }

    /// `condition`, and for a table that follows the global switch (no `synchronization_enabled`
    /// of its own), only while synchronization is not switched off.
    fn gated(&self, condition: Option<String>) -> Option<String> {
        let follows_global = self
            .table
            .synchronization
            .as_ref()
            .is_some_and(|sync| sync.synchronization_enabled.is_none());
        match (follows_global, condition) {
            (false, condition) => condition,
            (true, None) => Some(format!("NOT {}", self.switched_off())),
            (true, Some(condition)) => {
                Some(format!("({condition}) AND NOT {}", self.switched_off()))
            }
        }
    }

    fn all(&self) -> Vec<String> {
        let follows_global = self.gated(None).is_some();
        let write_new = self.insert("write", "NEW", None);
        let write_changed = self.insert("write", "NEW", Some("OLD"));
        let delete_old = self.insert("delete", "OLD", Some("OLD"));
        let key_changed = self.differ("key");
        match self.dialect {
            Dialect::Sqlite => {
                let trigger = |suffix: &str, timing: &str, when: Option<String>, body: &[&str]| {
                    let when = when.map_or(String::new(), |when| format!("\nWHEN {when}"));
                    format!(
                        "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW{when}\nBEGIN\n    {}\nEND;",
                        self.quoted(&trigger_name(&self.table.name, suffix)),
                        self.quoted(&self.table.name),
                        body.join("\n    ")
                    )
                };
                let key = self.quoted("key");
                vec![
                    trigger(
                        "sync_insert",
                        "AFTER INSERT",
                        self.gated(None),
                        &[&write_new],
                    ),
                    trigger(
                        "sync_update",
                        "AFTER UPDATE",
                        self.gated(Some(format!(
                            "OLD.{key} IS NEW.{key} AND ({})",
                            self.changed(("OLD", "NEW"))
                        ))),
                        &[&write_changed],
                    ),
                    trigger(
                        "sync_key_change",
                        "AFTER UPDATE",
                        self.gated(Some(key_changed)),
                        &[&delete_old, &write_changed],
                    ),
                    trigger(
                        "sync_delete",
                        "AFTER DELETE",
                        self.gated(None),
                        &[&delete_old],
                    ),
                ]
            }
            Dialect::Postgres => {
                let function = trigger_name(&self.table.name, SYNC_FUNCTION);
                let (old, new) = (OLD_ALIAS, NEW_ALIAS);
                // An update pairs old and new rows by storage key (unique in both): an old
                // key that no new row holds is deleted, and a new row is written when its key
                // is new or what the storage sees of it changed. Deletes come first, so that
                // a key that moved between rows ends up written. No primary key needed, and
                // a key a statement keeps is never deleted and written again.
                let key = self.quoted("key");
                let insert =
                    self.insert_select("write", (new, None), &format!("{NEW_ROWS} AS {new}"), None);
                let delete_changed_keys = self.insert_select(
                    "delete",
                    (old, Some(old)),
                    &format!("{OLD_ROWS} AS {old}"),
                    Some(&format!(
                        "NOT EXISTS (SELECT 1 FROM {NEW_ROWS} AS {new} WHERE {new}.{key} = {old}.{key})"
                    )),
                );
                let write_changed = self.insert_select(
                    "write",
                    (new, Some(old)),
                    &format!(
                        "{NEW_ROWS} AS {new} LEFT JOIN {OLD_ROWS} AS {old} ON {old}.{key} = {new}.{key}"
                    ),
                    Some(&format!(
                        "{old}.{key} IS NULL OR {}",
                        self.changed((old, new))
                    )),
                );
                let delete = self.insert_select(
                    "delete",
                    (old, Some(old)),
                    &format!("{OLD_ROWS} AS {old}"),
                    None,
                );
                let branches = format!(
                    "    IF TG_OP = 'INSERT' THEN\n        {insert}\n    ELSIF TG_OP = 'UPDATE' THEN\n        {delete_changed_keys}\n        {write_changed}\n    ELSIF TG_OP = 'DELETE' THEN\n        {delete}\n    END IF;\n"
                );
                // A statement trigger has no rows to put in a WHEN: the function checks.
                let branches = if follows_global {
                    format!(
                        "    IF {} THEN\n        RETURN NULL;\n    END IF;\n{branches}",
                        self.switched_off()
                    )
                } else {
                    branches
                };
                vec![
                    postgres_function(&function, &branches),
                    postgres_trigger(self.table, "sync_insert", "INSERT", &function),
                    postgres_trigger(self.table, "sync_update", "UPDATE", &function),
                    postgres_trigger(self.table, "sync_delete", "DELETE", &function),
                ]
            }
            Dialect::Mysql => {
                let guard = |body: String| {
                    if follows_global {
                        let indented = body.replace("\n    ", "\n        ");
                        format!(
                            "    IF NOT {} THEN\n        {}    END IF;\n",
                            self.switched_off(),
                            indented.trim_start_matches(' ')
                        )
                    } else {
                        body
                    }
                };
                vec![
                    mysql_trigger(
                        self.table,
                        "sync_insert",
                        "AFTER INSERT",
                        &guard(format!("    {write_new}\n")),
                    ),
                    mysql_trigger(
                        self.table,
                        "sync_update",
                        "AFTER UPDATE",
                        &guard(format!(
                            "    IF {key_changed} THEN\n        {delete_old}\n        {write_changed}\n    ELSEIF {} THEN\n        {write_changed}\n    END IF;\n",
                            self.changed(("OLD", "NEW"))
                        )),
                    ),
                    mysql_trigger(
                        self.table,
                        "sync_delete",
                        "AFTER DELETE",
                        &guard(format!("    {delete_old}\n")),
                    ),
                ]
            }
        }
    }
}

/// The condition under which an update of `table` is captured, the same rule on every database
/// (reference 2.2): OR over the event parameters of `*` (any column changed), a column (it
/// changed) or a column with value and operator (it changed, and its null-ness flipped or the
/// truth of `column OP value` differs between OLD and NEW). `differ` is the database's NULL-safe
/// "not the same" of two expressions; `separator` joins the alternatives. `None` when the table
/// watches nothing.
fn watched_condition(
    table: &Table,
    dialect: Dialect,
    (old, new): (&str, &str),
    differ: impl Fn(&str, &str) -> String,
    separator: &str,
) -> Option<String> {
    let parameters = &table.event.as_ref()?.parameters;
    let changed = |column: &Column| {
        let name = quote(dialect, &column.name);
        differ(&format!("{old}.{name}"), &format!("{new}.{name}"))
    };
    let mut conditions: Vec<String> = Vec::new();
    for parameter in parameters {
        match &parameter.column {
            EventColumn::All => conditions.extend(table.columns.iter().map(changed)),
            EventColumn::Column(name) => {
                let Some(column) = table.column(name) else {
                    continue;
                };
                let changed = changed(column);
                match &parameter.value {
                    None => conditions.push(changed),
                    Some(value) => {
                        let quoted = quote(dialect, &column.name);
                        let literal = typed_literal(dialect, column.ty, value);
                        let operator = parameter.operator.sql();
                        let flipped = differ(
                            &format!("({old}.{quoted} {operator} {literal})"),
                            &format!("({new}.{quoted} {operator} {literal})"),
                        );
                        conditions.push(format!(
                            "({changed} AND (({old}.{quoted} IS NULL) <> ({new}.{quoted} IS NULL) OR {flipped}))"
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
    (!unique.is_empty()).then(|| unique.join(separator))
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

    fn primary_key(&self) -> &Column {
        self.table.primary_key()[0]
    }

    /// Columns marked by `pick` on some parameter (`*` marks every column), in declaration order.
    fn marked(&self, pick: impl Fn(&crate::model::EventParameter) -> bool) -> Vec<&Column> {
        marked_columns(self.table, pick)
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
                    string_literal(&column.name),
                    self.column(row, column)
                )
            })
            .collect();
        format!("json_object({})", pairs.join(", "))
    }

    /// The foreign keys, `None` for a table without any.
    fn foreign_keys(&self, row: &str) -> Option<String> {
        let columns = foreign_key_columns(self.table);
        (!columns.is_empty()).then(|| self.object(row, &columns))
    }

    /// The `keep-additional` values, `None` for a table without such columns.
    fn additional_values(&self, row: &str) -> Option<String> {
        let columns = self.marked(|p| p.keep_additional);
        (!columns.is_empty()).then(|| self.object(row, &columns))
    }

    /// A JSON array of the names of the columns where `condition` holds.
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
                    string_literal(&format!("\"{}\",", column.name))
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

    /// The trigger that writes one compact outbox row (see [`compact_elements`]) for `action`.
    fn insert(
        &self,
        action: &str,
        timing: &str,
        when: Option<String>,
        row: &str,
        tail: [Option<String>; 4],
    ) -> String {
        let [modified, foreign_keys, original, additional] = tail;
        let elements = compact_elements(
            [
                string_literal(&self.table.name),
                string_literal(action),
                self.column(row, self.primary_key()),
            ],
            [
                (modified, "json_array()"),
                (foreign_keys, "json_object()"),
                (original, "json_object()"),
                (additional, "json_object()"),
            ],
        );
        let when = when.map_or(String::new(), |when| format!("\nWHEN {when}"));
        format!(
            "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW{when}\nBEGIN\n    INSERT INTO {} ({}) VALUES (json_array(\n        {}\n    ));\nEND;",
            quote(Self::DIALECT, &trigger_name(&self.table.name, action)),
            quote(Self::DIALECT, &self.table.name),
            quote(Self::DIALECT, OUTBOX_TABLE),
            quote(Self::DIALECT, "data"),
            elements.join(",\n        ")
        )
    }

    fn create(&self) -> String {
        let columns: Vec<&Column> = self
            .table
            .columns
            .iter()
            .filter(|column| !(column.primary_key && column.auto_increment))
            .collect();
        let modified = (!columns.is_empty()).then(|| {
            self.column_array(&columns, |column| {
                format!("NEW.{} IS NOT NULL", quote(Self::DIALECT, &column.name))
            })
        });
        self.insert(
            "create",
            "AFTER INSERT",
            None,
            "NEW",
            [
                modified,
                self.foreign_keys("NEW"),
                None,
                self.additional_values("NEW"),
            ],
        )
    }

    /// The condition under which an update is captured (see [`watched_condition`]).
    fn watched(&self) -> Option<String> {
        watched_condition(
            self.table,
            Self::DIALECT,
            ("OLD", "NEW"),
            |left, right| format!("{left} IS NOT {right}"),
            "\n    OR ",
        )
    }

    /// The `keep-original` values of the columns that changed, `None` for a table without
    /// such columns.
    fn original_values(&self) -> Option<String> {
        let kept = self.marked(|p| p.keep_original);
        if kept.is_empty() {
            return None;
        }
        // The object holds every kept column; unchanged ones are removed again
        // (a removal of the absent path `$."-"` leaves the object as it is: no column is `-`).
        let removals: Vec<String> = kept
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN {} THEN '$.\"-\"' ELSE {} END",
                    self.changed(column),
                    string_literal(&format!("$.\"{}\"", column.name))
                )
            })
            .collect();
        Some(format!(
            "json_remove({},\n            {})",
            self.object("OLD", &kept),
            removals.join(",\n            ")
        ))
    }

    fn update(&self) -> Option<String> {
        let when = self.watched()?;
        let columns: Vec<&Column> = self.table.columns.iter().collect();
        Some(self.insert(
            "update",
            "AFTER UPDATE",
            Some(when),
            "NEW",
            [
                Some(self.column_array(&columns, |c| self.changed(c))),
                self.foreign_keys("NEW"),
                self.original_values(),
                self.additional_values("NEW"),
            ],
        ))
    }

    fn delete(&self) -> String {
        self.insert(
            "delete",
            "AFTER DELETE",
            None,
            "OLD",
            [
                None,
                self.foreign_keys("OLD"),
                None,
                self.additional_values("OLD"),
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
    fn tables_without_behaviours_have_no_triggers() {
        let plain = table(
            r#"<table name="spy_plain"><column name="id" type="INTEGER" primaryKey="true"/></table>"#,
        );
        for dialect in Dialect::ALL {
            assert!(create_triggers(dialect, &plain).is_empty());
            assert!(drop_triggers(dialect, &plain).is_empty());
        }
    }

    #[test]
    fn storage_tables_get_sync_triggers_only() {
        let storage = storage();
        let sqlite = create_triggers(Dialect::Sqlite, &storage);
        assert_eq!(sqlite.len(), 4);
        assert!(
            sqlite
                .iter()
                .all(|s| s.contains("INSERT INTO \"pubsync_sync_outbox\""))
        );
        assert!(!sqlite.iter().any(|s| s.contains(OUTBOX_TABLE)));
        let postgres = create_triggers(Dialect::Postgres, &storage);
        assert!(postgres[0].contains("clock_timestamp()"), "{}", postgres[0]);
        assert!(!postgres[0].contains("now()"));
        assert_eq!(
            drop_triggers(Dialect::Postgres, &storage).last().unwrap(),
            "DROP FUNCTION IF EXISTS \"pubsync_spy_foo_storage_sync\"();"
        );
        let mysql = create_triggers(Dialect::Mysql, &storage);
        assert!(
            mysql
                .iter()
                .all(|s| s.contains("SYSDATE(6)") && !s.contains("NOW("))
        );
        assert!(mysql.iter().all(|s| !s.contains("DELIMITER")));
        // No mappings: no previous data.
        assert!(mysql.iter().all(|s| !s.contains("OLD.`data`,")));
    }

    #[test]
    fn short_trigger_names_are_kept_long_ones_shortened_deterministically() {
        assert_eq!(trigger_name("spy_foo", "create"), "pubsync_spy_foo_create");
        let table = "spy_product_abstract_page_search_with_a_very_long_name_indeed";
        let name = trigger_name(table, "sync_key_change");
        assert_eq!(name.len(), MAX_NAME_LENGTH);
        assert_eq!(name, trigger_name(table, "sync_key_change"));
        assert!(
            name.starts_with("pubsync_spy_product_abstract_page_sear_"),
            "{name}"
        );
        assert!(name.ends_with(&format!("_{}_sync_key_change", &fingerprint(table)[..8])));
        // Two long names with the same prefix stay apart.
        assert_ne!(
            trigger_name(&format!("{table}_a"), "create"),
            trigger_name(&format!("{table}_b"), "create")
        );
    }
}
