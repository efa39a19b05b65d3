//! The triggers of a table as a whole: how they are named, and the statements creating and
//! dropping every trigger the table's behaviours give it.

use super::capture::{Capture, SqliteTriggers};
use super::sync_triggers::SyncTriggers;
use super::{Dialect, quote};
use crate::model::Table;

/// The longest trigger or function name: PostgreSQL's limit (63 bytes) is the smaller one,
/// MySQL allows 64.
pub const MAX_NAME_LENGTH: usize = 63;

pub use pubsync_schema::fingerprint;

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

/// The suffixes of a table's capture triggers ([`trigger_name`]), on every dialect.
pub const CAPTURE_TRIGGERS: [&str; 3] = ["create", "update", "delete"];
pub(crate) const CAPTURE_FUNCTION: &str = "capture";
pub(crate) const SYNC_FUNCTION: &str = "sync";

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

/// The statements dropping a table's capture triggers, whether it has the event behaviour
/// or not (`IF EXISTS`): for `setup` to remove them once a definition drops the behaviour.
pub fn drop_capture_triggers(dialect: Dialect, table: &str) -> Vec<String> {
    drop_sets(dialect, table, &[(&CAPTURE_TRIGGERS, CAPTURE_FUNCTION)])
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
    drop_sets(dialect, &table.name, &sets)
}

/// The statements dropping each set of triggers (suffixes, and the PostgreSQL function).
fn drop_sets(dialect: Dialect, table: &str, sets: &[(&[&str], &str)]) -> Vec<String> {
    let mut statements = Vec::new();
    for (triggers, function) in sets {
        for suffix in *triggers {
            let name = quote(dialect, &trigger_name(table, suffix));
            statements.push(match dialect {
                Dialect::Postgres => format!(
                    "DROP TRIGGER IF EXISTS {name} ON {};",
                    quote(dialect, table)
                ),
                Dialect::Sqlite | Dialect::Mysql => format!("DROP TRIGGER IF EXISTS {name};"),
            });
        }
        if dialect == Dialect::Postgres {
            statements.push(format!(
                "DROP FUNCTION IF EXISTS {}();",
                quote(dialect, &trigger_name(table, function))
            ));
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OUTBOX_TABLE;
    use crate::sql::fixtures::{storage, table};

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
