//! The statements the triggers of PostgreSQL and MySQL are written in: a PL/pgSQL trigger
//! function with statement triggers over transition tables, and a row trigger with a compound
//! body.

use super::triggers::trigger_name;
use super::{Dialect, quote};
use crate::model::Table;

/// `CREATE FUNCTION <name>() RETURNS trigger` around PL/pgSQL branches. The body is
/// dollar-quoted with a tag no schema literal is likely to hold.
///
/// Nested loops are off inside: PL/pgSQL plans a statement once, on its first call, and
/// keeps the plan. Planned for a transition table of one row, the join of an update's old
/// and new rows became a nested loop, which a statement of a thousand rows then ran as a
/// million comparisons (a quarter of the server's CPU time in the benchmark). A hash join
/// is right for any size.
pub(crate) fn postgres_function(name: &str, branches: &str) -> String {
    format!(
        "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql\nSET enable_nestloop = off\nAS $pubsync$\nBEGIN\n{branches}    RETURN NULL;\nEND;\n$pubsync$;",
        quote(Dialect::Postgres, name)
    )
}

/// The transition tables of PostgreSQL's statement triggers and their aliases in the trigger
/// functions' statements.
pub(crate) const NEW_ROWS: &str = "pubsync_new";
pub(crate) const OLD_ROWS: &str = "pubsync_old";
pub(crate) const NEW_ALIAS: &str = "n";
pub(crate) const OLD_ALIAS: &str = "o";

/// A statement-level trigger after `event` (`INSERT`, `UPDATE` or `DELETE`) with its
/// transition tables. One trigger call per statement writes the outbox rows of all the
/// statement's rows with one `INSERT … SELECT`, where a row trigger ran PL/pgSQL and an
/// `INSERT` per row: that was 40% of the server's CPU time in the benchmark.
///
/// Like every statement trigger, it fires for statements that name its table: a table that
/// is a partition or an inheritance child is not captured when a statement names the parent
/// (give the parent the behaviour), and a parent's triggers see its children's rows.
pub(crate) fn postgres_trigger(table: &Table, suffix: &str, event: &str, function: &str) -> String {
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
pub(crate) fn mysql_trigger(table: &Table, suffix: &str, timing: &str, body: &str) -> String {
    let dialect = Dialect::Mysql;
    format!(
        "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW\nBEGIN\n{body}END;",
        quote(dialect, &trigger_name(&table.name, suffix)),
        quote(dialect, &table.name)
    )
}
