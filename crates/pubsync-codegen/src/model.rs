//! The merged, validated model of every `*.schema.xml`: tables with their behaviour columns
//! already added, as the generators need them.

use crate::error::Location;

/// The name of the outbox table the capture triggers write to.
pub const OUTBOX_TABLE: &str = pubsync_schema::names::outbox::TABLE;

/// The name of the sync outbox the sync-intent triggers of storage tables write to.
pub const SYNC_OUTBOX_TABLE: &str = pubsync_schema::names::sync_outbox::TABLE;

/// All tables, in the order they were first declared (files in sorted path order).
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The tables.
    pub tables: Vec<Table>,
    /// The triggers as migrated, when the model was read from the snapshot: `None` for a
    /// model read from the definitions, whose triggers are whatever the generator makes of
    /// it. Recording them lets a change of the generator itself (a new dialect, a fixed
    /// trigger body) reach databases through a migration.
    pub migrated_triggers: Option<Vec<MigratedTriggers>>,
}

/// The fingerprint of the triggers one migration created for a table on one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratedTriggers {
    /// The table.
    pub table: String,
    /// The dialect's name (`sqlite`, `postgres`, `mysql`).
    pub dialect: String,
    /// [`crate::sql::fingerprint`] of the trigger statements.
    pub fingerprint: String,
}

impl Model {
    /// The table of that name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|table| table.name == name)
    }
}

/// One table, merged over every file that declares it.
#[derive(Debug, Clone)]
pub struct Table {
    /// The table name.
    pub name: String,
    /// The packages declaring the table, in merge order: the first one defines it, the
    /// others extend or override it.
    pub packages: Vec<String>,
    /// Every file declaring the table, relative to the workspace root.
    pub sources: Vec<String>,
    /// Where the table is first declared.
    pub location: Location,
    /// Declared columns, then behaviour columns.
    pub columns: Vec<Column>,
    /// Indexes and unique constraints (both become `CREATE [UNIQUE] INDEX`).
    pub indexes: Vec<Index>,
    /// Declared foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// The `event` behaviour.
    pub event: Option<EventBehavior>,
    /// The `synchronization` behaviour.
    pub synchronization: Option<Synchronization>,
    /// The `timestampable` behaviour.
    pub timestampable: Option<Timestampable>,
}

impl Table {
    /// The column of that name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// The primary-key columns.
    pub fn primary_key(&self) -> Vec<&Column> {
        self.columns
            .iter()
            .filter(|column| column.primary_key)
            .collect()
    }
}

/// The column types of the schema format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ColumnType {
    Integer,
    BigInt,
    SmallInt,
    TinyInt,
    Boolean,
    Varchar,
    Char,
    LongVarchar,
    Clob,
    Float,
    Real,
    Double,
    Decimal,
    Numeric,
    Date,
    Time,
    Timestamp,
    Blob,
    VarBinary,
    LongVarBinary,
    Binary,
    Enum,
}

impl ColumnType {
    const ALL: [ColumnType; 22] = [
        Self::Integer,
        Self::BigInt,
        Self::SmallInt,
        Self::TinyInt,
        Self::Boolean,
        Self::Varchar,
        Self::Char,
        Self::LongVarchar,
        Self::Clob,
        Self::Float,
        Self::Real,
        Self::Double,
        Self::Decimal,
        Self::Numeric,
        Self::Date,
        Self::Time,
        Self::Timestamp,
        Self::Blob,
        Self::VarBinary,
        Self::LongVarBinary,
        Self::Binary,
        Self::Enum,
    ];

    /// The name as written in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integer => "INTEGER",
            Self::BigInt => "BIGINT",
            Self::SmallInt => "SMALLINT",
            Self::TinyInt => "TINYINT",
            Self::Boolean => "BOOLEAN",
            Self::Varchar => "VARCHAR",
            Self::Char => "CHAR",
            Self::LongVarchar => "LONGVARCHAR",
            Self::Clob => "CLOB",
            Self::Float => "FLOAT",
            Self::Real => "REAL",
            Self::Double => "DOUBLE",
            Self::Decimal => "DECIMAL",
            Self::Numeric => "NUMERIC",
            Self::Date => "DATE",
            Self::Time => "TIME",
            Self::Timestamp => "TIMESTAMP",
            Self::Blob => "BLOB",
            Self::VarBinary => "VARBINARY",
            Self::LongVarBinary => "LONGVARBINARY",
            Self::Binary => "BINARY",
            Self::Enum => "ENUM",
        }
    }

    /// Parses a schema type name (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|ty| ty.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether values are whole numbers (ENUM is stored as its index, as Propel does).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::BigInt | Self::SmallInt | Self::TinyInt | Self::Enum
        )
    }

    /// Whether values are floating-point or decimal numbers.
    pub fn is_fractional(self) -> bool {
        matches!(
            self,
            Self::Float | Self::Real | Self::Double | Self::Decimal | Self::Numeric
        )
    }

    /// Whether values are bytes.
    pub fn is_binary(self) -> bool {
        matches!(
            self,
            Self::Blob | Self::VarBinary | Self::LongVarBinary | Self::Binary
        )
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// The type.
    pub ty: ColumnType,
    /// `size` (VARCHAR defaults to 255).
    pub size: Option<u32>,
    /// `scale` of DECIMAL/NUMERIC.
    pub scale: Option<u32>,
    /// `required="true"`: NOT NULL.
    pub required: bool,
    /// `primaryKey="true"`.
    pub primary_key: bool,
    /// `autoIncrement="true"`.
    pub auto_increment: bool,
    /// `defaultValue`, as written.
    pub default_value: Option<DefaultValue>,
}

impl Column {
    /// Whether the column accepts NULL.
    pub fn is_nullable(&self) -> bool {
        !self.required && !self.primary_key
    }
}

/// A column default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    /// A literal, as written in `defaultValue`, checked against the column type.
    Literal(String),
    /// The current time (the timestamp columns of `timestampable`).
    CurrentTimestamp,
}

/// An index or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The name, as declared.
    pub name: String,
    /// Whether it is a `<unique>`.
    pub unique: bool,
    /// The columns, in order.
    pub columns: Vec<String>,
}

/// A declared foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The constraint name, if declared.
    pub name: Option<String>,
    /// The referenced table.
    pub foreign_table: String,
    /// `(local, foreign)` column pairs.
    pub references: Vec<(String, String)>,
    /// `ON DELETE` action, as SQL (`CASCADE`, `SET NULL`, …).
    pub on_delete: Option<String>,
    /// `ON UPDATE` action, as SQL.
    pub on_update: Option<String>,
}

/// The `event` behaviour: which changes of the table are captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventBehavior {
    /// The parameters, in declaration order.
    pub parameters: Vec<EventParameter>,
}

/// One `<parameter>` of the `event` behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParameter {
    /// The label.
    pub name: String,
    /// `*` or a column of the table.
    pub column: EventColumn,
    /// A value the column is compared with; the update is captured only when the truth of
    /// `column OP value` changes.
    pub value: Option<String>,
    /// The comparison operator.
    pub operator: Operator,
    /// Whether the value before the update goes into `originalValues`.
    pub keep_original: bool,
    /// Whether the current value goes into `additionalValues`.
    pub keep_additional: bool,
}

/// The column an event parameter watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventColumn {
    /// `*`: every column.
    All,
    /// One column.
    Column(String),
}

/// The comparison operators of event parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Operator {
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    /// `<>`
    NotEqualSql,
    /// `!=`
    NotEqual,
    /// `==`
    Equal,
    /// `!==`
    NotIdentical,
    /// `===`, the default.
    Identical,
}

impl Operator {
    /// Parses an operator as written in the schema.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "<" => Self::Less,
            ">" => Self::Greater,
            "<=" => Self::LessOrEqual,
            ">=" => Self::GreaterOrEqual,
            "<>" => Self::NotEqualSql,
            "!=" => Self::NotEqual,
            "==" => Self::Equal,
            "!==" => Self::NotIdentical,
            "===" => Self::Identical,
            _ => return None,
        })
    }

    /// The operator as written in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Less => "<",
            Self::Greater => ">",
            Self::LessOrEqual => "<=",
            Self::GreaterOrEqual => ">=",
            Self::NotEqualSql => "<>",
            Self::NotEqual => "!=",
            Self::Equal => "==",
            Self::NotIdentical => "!==",
            Self::Identical => "===",
        }
    }

    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Less => "<",
            Self::Greater => ">",
            Self::LessOrEqual => "<=",
            Self::GreaterOrEqual => ">=",
            Self::NotEqualSql | Self::NotEqual | Self::NotIdentical => "<>",
            Self::Equal | Self::Identical => "=",
        }
    }
}

/// The `synchronization` behaviour of a storage table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synchronization {
    /// `resource`.
    pub resource: String,
    /// `key_suffix_column`.
    pub key_suffix_column: Option<String>,
    /// `store`: `Some(required)` when present.
    pub store: Option<bool>,
    /// `locale`: `Some(required)` when present.
    pub locale: Option<bool>,
    /// `queue_group`, defaulting to the resource.
    pub queue_group: String,
    /// `queue_pool`.
    pub queue_pool: Option<String>,
    /// `params`, the JSON text as written.
    pub params: Option<String>,
    /// `mappings`, as `(source, destination)` pairs.
    pub mappings: Vec<(String, String)>,
    /// `synchronization_enabled`.
    pub synchronization_enabled: Option<bool>,
    /// `direct_sync_disabled`.
    pub direct_sync_disabled: bool,
}

/// The `timestampable` behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestampable {
    /// `disable_updated_at`: only `created_at` is added.
    pub disable_updated_at: bool,
}
