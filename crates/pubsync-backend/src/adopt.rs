//! Adopting the shop's tables: what `setup` does with the tables modules read and watch.
//!
//! A source table that exists is checked against its definition (primary key, and every
//! column the definition declares: present, of a compatible type, not nullable where the
//! definition requires a value); any mismatch fails the whole setup before anything is
//! changed, naming table, column and definition file. A missing one is created. Then the
//! capture triggers are installed: when one is missing (never installed, or dropped since), or
//! when the definition changed since they were (their fingerprint is kept in the settings
//! table), so that running setup again changes nothing. Rows are never touched: the rows that
//! existed before the triggers reach storage only through a backfill.

use diesel::RunQueryDsl as _;
use diesel::connection::SimpleConnection as _;
use diesel::sql_types::BigInt;
use pubsync_database::{
    CatalogColumn, Database, DatabaseError, SourceTable, TypeFamily, WriteTransaction as _,
    with_connection,
};

/// Why the shop's tables cannot be adopted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// Existing tables differ from their definitions.
    #[error("{} existing table(s) do not match their definitions (nothing was changed):\n{}", count_tables(.0), format_mismatches(.0))]
    Mismatch(Vec<Mismatch>),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// One difference between an existing table and its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The table.
    pub table: &'static str,
    /// The column, when the difference is about one.
    pub column: Option<String>,
    /// What differs, naming the definition file.
    pub reason: String,
}

fn count_tables(mismatches: &[Mismatch]) -> usize {
    let mut tables: Vec<&str> = mismatches.iter().map(|m| m.table).collect();
    tables.dedup();
    tables.len()
}

fn format_mismatches(mismatches: &[Mismatch]) -> String {
    mismatches
        .iter()
        .map(|m| match &m.column {
            Some(column) => format!("  {}.{column}: {}", m.table, m.reason),
            None => format!("  {}: {}", m.table, m.reason),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What adoption did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Tables that did not exist and were created.
    pub created: Vec<&'static str>,
    /// Tables that existed: checked, and left as they were.
    pub existing: Vec<&'static str>,
    /// Existing tables whose capture started now, with their row count then: rows no
    /// trigger has seen, which only a backfill publishes.
    pub uncaptured_rows: Vec<(&'static str, i64)>,
    /// Tables whose capture triggers were installed or replaced.
    pub triggers_installed: Vec<&'static str>,
    /// Tables whose definition no longer has the `event` behaviour: their triggers were
    /// removed.
    pub triggers_removed: Vec<&'static str>,
}

/// Adoption in its steps, for a setup that runs migrations between them: [`Plan::check`]
/// changes nothing, [`Plan::create_missing`] creates the missing tables (before migrations
/// that may refer to them), [`Plan::install_triggers`] captures (after the outbox exists).
#[derive(Debug)]
pub struct Plan<'a> {
    database: &'a Database,
    tables: Vec<&'static SourceTable>,
    missing: Vec<&'static SourceTable>,
    adoption: Adoption,
}

impl<'a> Plan<'a> {
    /// Checks every existing table of `tables` (referenced tables first) against its
    /// definition: any mismatch is an error, and nothing has changed.
    pub fn check(
        database: &'a Database,
        tables: &[&'static SourceTable],
    ) -> Result<Self, AdoptError> {
        let mut missing = Vec::new();
        let mut adoption = Adoption::default();
        let mut mismatches = Vec::new();
        for table in tables {
            match database.table_columns(table.name)? {
                None => missing.push(*table),
                Some(columns) => {
                    mismatches.extend(check(table, &columns));
                    adoption.existing.push(table.name);
                }
            }
        }
        if !mismatches.is_empty() {
            return Err(AdoptError::Mismatch(mismatches));
        }
        Ok(Self {
            database,
            tables: tables.to_vec(),
            missing,
            adoption,
        })
    }

    /// Creates the tables that do not exist.
    pub fn create_missing(&mut self) -> Result<(), DatabaseError> {
        let dialect = self.database.dialect();
        for table in std::mem::take(&mut self.missing) {
            execute(
                self.database,
                &format!("create table {}", table.name),
                table.create.get(dialect),
            )?;
            self.adoption.created.push(table.name);
        }
        Ok(())
    }

    /// Installs the capture triggers where they are missing or not today's (the settings
    /// table keeps the fingerprint of those installed), and says what adoption did.
    pub fn install_triggers(mut self) -> Result<Adoption, DatabaseError> {
        let database = self.database;
        let dialect = database.dialect();
        for table in &self.tables {
            let statements = table.triggers.get(dialect);
            let name = setting_name(table.name);
            if statements.is_empty() {
                // No capture (any more): remove the triggers an earlier definition had.
                if crate::sync::read_setting(database, &name)?.is_some() {
                    execute(
                        database,
                        &format!("remove the capture triggers of {}", table.name),
                        table.drop_triggers.get(dialect),
                    )?;
                    crate::sync::delete_setting(database, &name)?;
                    self.adoption.triggers_removed.push(table.name);
                }
                continue;
            }
            let fingerprint = table.trigger_fingerprints.get(dialect);
            let current =
                crate::sync::read_setting(database, &name)?.as_deref() == Some(fingerprint);
            let installed = database.table_triggers(table.name)?;
            let complete = table
                .trigger_names
                .iter()
                .all(|trigger| installed.iter().any(|name| name == trigger));
            if current && complete {
                continue;
            }
            let created = self.adoption.created.contains(&table.name);
            // Rows present before capture starts: only a backfill publishes them.
            if !created && !complete {
                let rows = count_rows(database, table.name)?;
                self.adoption.uncaptured_rows.push((table.name, rows));
            }
            execute(
                database,
                &format!("install the capture triggers of {}", table.name),
                statements,
            )?;
            crate::sync::write_setting(database, &name, fingerprint)?;
            self.adoption.triggers_installed.push(table.name);
        }
        Ok(self.adoption)
    }
}

/// Checks, creates and captures `tables` (referenced tables first) in `database`, whose
/// pubsync schema (outbox, settings) must exist.
pub fn adopt(database: &Database, tables: &[&'static SourceTable]) -> Result<Adoption, AdoptError> {
    let mut plan = Plan::check(database, tables)?;
    plan.create_missing()?;
    Ok(plan.install_triggers()?)
}

/// The differences between an existing table's `columns` and its definition.
pub fn check(table: &SourceTable, columns: &[CatalogColumn]) -> Vec<Mismatch> {
    let file = table.sources.join(", ");
    let mut mismatches = Vec::new();
    let mut mismatch = |column: Option<&str>, reason: String| {
        mismatches.push(Mismatch {
            table: table.name,
            column: column.map(str::to_owned),
            reason,
        });
    };
    for declared in table.columns {
        let Some(actual) = columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(declared.name))
        else {
            mismatch(
                Some(declared.name),
                format!(
                    "the column is missing; {file} declares it ({})",
                    declared.schema_type
                ),
            );
            continue;
        };
        if !compatible(declared.schema_type, actual.family) {
            mismatch(
                Some(declared.name),
                format!(
                    "the column is `{}` in the database, which does not hold {} values as {file} declares",
                    actual.declared_type, declared.schema_type
                ),
            );
        }
        if declared.required && !declared.primary_key && actual.nullable {
            mismatch(
                Some(declared.name),
                format!("the column allows NULL, but {file} declares it required"),
            );
        }
    }
    let mut actual_key: Vec<&CatalogColumn> =
        columns.iter().filter(|c| c.primary_key.is_some()).collect();
    actual_key.sort_by_key(|c| c.primary_key);
    let actual_key: Vec<String> = actual_key.iter().map(|c| c.name.to_lowercase()).collect();
    let declared_key: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.to_lowercase())
        .collect();
    if actual_key != declared_key {
        mismatch(
            None,
            format!(
                "the primary key is ({}) in the database, but ({}) in {file}",
                actual_key.join(", "),
                declared_key.join(", ")
            ),
        );
    }
    mismatches
}

/// Whether a column of `family` holds the values of the schema type `schema_type`.
fn compatible(schema_type: &str, family: TypeFamily) -> bool {
    use TypeFamily as F;
    let accepted: &[TypeFamily] = match schema_type {
        "INTEGER" | "BIGINT" | "SMALLINT" | "ENUM" => &[F::Integer],
        "TINYINT" | "BOOLEAN" => &[F::Integer, F::Boolean],
        "VARCHAR" | "CHAR" | "LONGVARCHAR" | "CLOB" => &[F::Text, F::Json],
        "FLOAT" | "REAL" | "DOUBLE" | "DECIMAL" | "NUMERIC" => &[F::Float, F::Decimal],
        "DATE" => &[F::Date, F::Timestamp],
        "TIME" => &[F::Time],
        "TIMESTAMP" => &[F::Timestamp],
        "BLOB" | "VARBINARY" | "LONGVARBINARY" | "BINARY" => &[F::Binary],
        _ => return true,
    };
    // A type pubsync cannot classify (a domain, an untyped SQLite column) is the shop's call.
    family == F::Other || accepted.contains(&family)
}

/// The settings row holding the fingerprint of a table's capture triggers (the setting name
/// has room for 64 characters; longer table names are shortened with a hash).
fn setting_name(table: &str) -> String {
    let name = format!("capture:{table}");
    if name.len() <= 64 {
        name
    } else {
        format!(
            "capture:{}:{}",
            &table[..39],
            pubsync_database::fingerprint(table)
        )
    }
}

fn execute(database: &Database, operation: &str, statements: &[&str]) -> Result<(), DatabaseError> {
    // MySQL commits every DDL statement on its own; the others run them as one transaction.
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| {
            for statement in statements {
                conn.batch_execute(statement)
                    .map_err(DatabaseError::query(operation))?;
            }
            Ok::<_, DatabaseError>(())
        })
    })
}

fn count_rows(database: &Database, table: &str) -> Result<i64, DatabaseError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT COUNT(*) AS n FROM {}",
        database.dialect().quote(table)
    );
    with_connection!(database, |conn| {
        diesel::sql_query(&sql)
            .get_result::<Count>(conn)
            .map(|count| count.n)
            .map_err(DatabaseError::query(format!("count the rows of {table}")))
    })
}
