//! The sync-intent triggers of a table with the synchronization behaviour: every change the
//! storage sees becomes a row of the sync outbox, in the writer's transaction.

use super::trigger_statements::{
    NEW_ALIAS, NEW_ROWS, OLD_ALIAS, OLD_ROWS, mysql_trigger, postgres_function, postgres_trigger,
};
use super::triggers::{SYNC_FUNCTION, trigger_name};
use super::{Dialect, quote, string_literal};
use crate::model::{SYNC_OUTBOX_TABLE, Table};

/// The table of database-wide pubsync settings, read by the sync triggers.
pub const SETTING_TABLE: &str = pubsync_schema::names::setting::TABLE;

/// The sync-intent triggers of a storage table: every change of `data`, `key`, `store` or
/// `locale` becomes a row of the sync outbox in the writer's transaction (a `write` of the
/// new key, a `delete` of the old key when the key changes or the row goes away), with the
/// clock time of the change in microseconds as `version`.
pub(crate) struct SyncTriggers<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) table: &'a Table,
}

impl SyncTriggers<'_> {
    fn quoted(&self, name: &str) -> String {
        quote(self.dialect, name)
    }

    /// The clock time when the trigger runs, in microseconds ([`Dialect::clock_micros`]).
    fn version(&self) -> &'static str {
        self.dialect.clock_micros()
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
        use pubsync_schema::names::setting;
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE {} = '{}' AND {} = 'off')",
            self.quoted(SETTING_TABLE),
            self.quoted(setting::NAME),
            setting::SYNCHRONIZATION,
            self.quoted(setting::VALUE)
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

    pub(crate) fn all(&self) -> Vec<String> {
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
