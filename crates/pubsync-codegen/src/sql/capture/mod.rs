//! The capture triggers, which write every change of a table with the event behaviour to the
//! outbox as one compact row, and the rules they share on every database: which columns a row
//! carries, where each part of it goes, and when an update is captured.

mod postgres_mysql;
mod sqlite;

pub(crate) use postgres_mysql::Capture;
pub(crate) use sqlite::SqliteTriggers;

use super::{Dialect, quote, typed_literal};
use crate::model::{Column, EventColumn, Table};

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

/// The condition under which an update of `table` is captured, the same rule on every database
/// (as the original's event behaviour filters): OR over the event parameters of `*` (any column changed), a column (it
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
