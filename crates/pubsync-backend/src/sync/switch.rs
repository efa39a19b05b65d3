//! The global synchronization switch, recorded in the database for the sync triggers: with
//! synchronization off, the tables that follow the global switch record no sync outbox rows
//! at all (nothing to write, relay and delete). Written by `pubsync setup` and at every
//! worker start.

use diesel::RunQueryDsl as _;
use pubsync_database::names::setting;
use pubsync_database::{Bind, Database, DatabaseError, Dialect, Statement, with_connection};

/// Records the global synchronization switch in `database` for its sync triggers.
pub fn record_switch(database: &Database, enabled: bool) -> Result<(), DatabaseError> {
    write_setting(
        database,
        setting::SYNCHRONIZATION,
        if enabled { "on" } else { "off" },
    )
}

/// Writes the setting `name` (inserted or replaced).
pub(crate) fn write_setting(
    database: &Database,
    name: &str,
    value: &str,
) -> Result<(), DatabaseError> {
    let dialect = database.dialect();
    let (table, name_column, value_column) = (
        dialect.quote(setting::TABLE),
        dialect.quote(setting::NAME),
        dialect.quote(setting::VALUE),
    );
    let sql = match dialect {
        Dialect::Mysql => format!(
            "INSERT INTO {table} ({name_column}, {value_column}) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE {value_column} = VALUES({value_column})"
        ),
        Dialect::Sqlite | Dialect::Postgres => format!(
            "INSERT INTO {table} ({name_column}, {value_column}) VALUES (?, ?) \
             ON CONFLICT ({name_column}) DO UPDATE SET {value_column} = excluded.{value_column}"
        ),
    };
    let statement = Statement::new(sql)
        .bind(Bind::Text(name.to_owned()))
        .bind(Bind::Text(value.to_owned()));
    with_connection!(database, |conn| {
        statement
            .execute(conn)
            .map(drop)
            .map_err(DatabaseError::query(format!("write the setting {name}")))
    })
}

/// Deletes the setting `name`, if there is one.
pub(crate) fn delete_setting(database: &Database, name: &str) -> Result<(), DatabaseError> {
    let dialect = database.dialect();
    let sql = format!(
        "DELETE FROM {} WHERE {} = ?",
        dialect.quote(setting::TABLE),
        dialect.quote(setting::NAME)
    );
    let statement = Statement::new(sql).bind(Bind::Text(name.to_owned()));
    with_connection!(database, |conn| {
        statement
            .execute(conn)
            .map(drop)
            .map_err(DatabaseError::query(format!("delete the setting {name}")))
    })
}
