//! The global synchronization switch, recorded in the database for the sync triggers: with
//! synchronization off, the tables that follow the global switch record no sync outbox rows
//! at all (nothing to write, relay and delete). Written by `pubsync setup` and at every
//! worker start. The other settings (the capture triggers' fingerprints) are read and written
//! here too.

use diesel::RunQueryDsl as _;
use diesel::sql_types::Text;
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

/// The global synchronization switch as the database records it (`None` before any setup).
pub fn recorded_switch(database: &Database) -> Result<Option<bool>, DatabaseError> {
    Ok(read_setting(database, setting::SYNCHRONIZATION)?.map(|value| value != "off"))
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

/// The value of the setting `name`, if there is one.
pub(crate) fn read_setting(
    database: &Database,
    name: &str,
) -> Result<Option<String>, DatabaseError> {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let dialect = database.dialect();
    let sql = format!(
        "SELECT {} AS value FROM {} WHERE {} = {}",
        dialect.quote(setting::VALUE),
        dialect.quote(setting::TABLE),
        dialect.quote(setting::NAME),
        dialect.placeholder(1)
    );
    with_connection!(database, |conn| {
        diesel::sql_query(&sql)
            .bind::<Text, _>(name)
            .get_results::<Value>(conn)
            .map(|rows| rows.into_iter().next().map(|row| row.value))
            .map_err(DatabaseError::query("read a setting"))
    })
}
