//! The global synchronization switch, recorded in the database for the sync triggers: with
//! synchronization off, the tables that follow the global switch record no sync outbox rows
//! at all (nothing to write, relay and delete). Written by `pubsync setup` and at every
//! worker start.

use diesel::RunQueryDsl as _;
use pubsync_database::names::setting;
use pubsync_database::{Bind, Database, DatabaseError, Dialect, Statement, with_connection};

/// Records the global synchronization switch in `database` for its sync triggers.
pub fn record_switch(database: &Database, enabled: bool) -> Result<(), DatabaseError> {
    let dialect = database.dialect();
    let (table, name, value) = (
        dialect.quote(setting::TABLE),
        dialect.quote(setting::NAME),
        dialect.quote(setting::VALUE),
    );
    let sql = match dialect {
        Dialect::Mysql => format!(
            "INSERT INTO {table} ({name}, {value}) VALUES (?, ?) ON DUPLICATE KEY UPDATE {value} = VALUES({value})"
        ),
        Dialect::Sqlite | Dialect::Postgres => format!(
            "INSERT INTO {table} ({name}, {value}) VALUES (?, ?) ON CONFLICT ({name}) DO UPDATE SET {value} = excluded.{value}"
        ),
    };
    let statement = Statement::new(sql)
        .bind(Bind::Text(setting::SYNCHRONIZATION.to_owned()))
        .bind(Bind::Text(if enabled { "on" } else { "off" }.to_owned()));
    with_connection!(database, |conn| {
        statement
            .execute(conn)
            .map(drop)
            .map_err(DatabaseError::query("record the synchronization switch"))
    })
}
