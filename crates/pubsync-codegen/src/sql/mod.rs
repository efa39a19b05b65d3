//! DDL and capture triggers for SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! `dialect` names the databases and quotes for them, `ddl` writes tables, indexes and columns,
//! and `triggers` names the triggers of a table and creates or drops them all: the capture
//! triggers of `capture`, which write every change of an `event` table to the outbox, and the
//! sync-intent triggers of `sync_triggers`, which write every change of a storage table to the
//! sync outbox, both in the statements of `trigger_statements` on PostgreSQL and MySQL.

mod capture;
mod ddl;
mod dialect;
#[cfg(test)]
mod fixtures;
mod sync_triggers;
mod trigger_statements;
mod triggers;

pub use ddl::{
    add_column, column_definition, column_type, create_index, create_table, drop_column,
    drop_index, drop_table, typed_literal,
};
pub use dialect::{Dialect, quote, string_literal};
pub use sync_triggers::SETTING_TABLE;
pub use triggers::{
    CAPTURE_TRIGGERS, MAX_NAME_LENGTH, create_triggers, drop_capture_triggers, drop_triggers,
    fingerprint, trigger_name,
};
