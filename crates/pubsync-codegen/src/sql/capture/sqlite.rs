//! The SQLite capture triggers: a row trigger per action, each one `INSERT` into the outbox.

use super::{compact_elements, foreign_key_columns, marked_columns, watched_condition};
use crate::model::{Column, OUTBOX_TABLE, Table};
use crate::sql::triggers::trigger_name;
use crate::sql::{Dialect, quote, string_literal};

/// The SQLite capture triggers: each one `INSERT` into the outbox, no lookups.
pub(crate) struct SqliteTriggers<'a> {
    pub(crate) table: &'a Table,
}

impl SqliteTriggers<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    pub(crate) fn all(&self) -> Vec<String> {
        let mut triggers = vec![self.create()];
        triggers.extend(self.update());
        triggers.push(self.delete());
        triggers
    }

    fn column(&self, row: &str, column: &Column) -> String {
        let reference = format!("{row}.{}", quote(Self::DIALECT, &column.name));
        if column.ty.is_binary() {
            // JSON cannot hold bytes; binary values travel as hex.
            format!("hex({reference})")
        } else {
            reference
        }
    }

    fn primary_key(&self) -> &Column {
        self.table.primary_key()[0]
    }

    /// Columns marked by `pick` on some parameter (`*` marks every column), in declaration order.
    fn marked(&self, pick: impl Fn(&crate::model::EventParameter) -> bool) -> Vec<&Column> {
        marked_columns(self.table, pick)
    }

    fn object(&self, row: &str, columns: &[&Column]) -> String {
        if columns.is_empty() {
            return "json_object()".into();
        }
        let pairs: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "{}, {}",
                    string_literal(&column.name),
                    self.column(row, column)
                )
            })
            .collect();
        format!("json_object({})", pairs.join(", "))
    }

    /// The foreign keys, `None` for a table without any.
    fn foreign_keys(&self, row: &str) -> Option<String> {
        let columns = foreign_key_columns(self.table);
        (!columns.is_empty()).then(|| self.object(row, &columns))
    }

    /// The `keep-additional` values, `None` for a table without such columns.
    fn additional_values(&self, row: &str) -> Option<String> {
        let columns = self.marked(|p| p.keep_additional);
        (!columns.is_empty()).then(|| self.object(row, &columns))
    }

    /// A JSON array of the names of the columns where `condition` holds.
    fn column_array(&self, columns: &[&Column], condition: impl Fn(&Column) -> String) -> String {
        if columns.is_empty() {
            return "json_array()".into();
        }
        let parts: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN {} THEN {} ELSE '' END",
                    condition(column),
                    string_literal(&format!("\"{}\",", column.name))
                )
            })
            .collect();
        format!(
            "json('[' || rtrim({}, ',') || ']')",
            parts.join("\n            || ")
        )
    }

    fn changed(&self, column: &Column) -> String {
        let name = quote(Self::DIALECT, &column.name);
        format!("OLD.{name} IS NOT NEW.{name}")
    }

    /// The elements of the compact outbox row of `action` on `row` (see [`compact_elements`]).
    fn elements(&self, action: &str, row: &str, tail: [Option<String>; 4]) -> Vec<String> {
        let [modified, foreign_keys, original, additional] = tail;
        compact_elements(
            [
                string_literal(&self.table.name),
                string_literal(action),
                self.column(row, self.primary_key()),
            ],
            [
                (modified, "json_array()"),
                (foreign_keys, "json_object()"),
                (original, "json_object()"),
                (additional, "json_object()"),
            ],
        )
    }

    /// The trigger that writes one compact outbox row (see [`compact_elements`]) for `action`.
    fn insert(
        &self,
        action: &str,
        timing: &str,
        when: Option<String>,
        row: &str,
        tail: [Option<String>; 4],
    ) -> String {
        let body = self.outbox_insert(self.elements(action, row, tail), None);
        self.trigger(action, timing, when, &body)
    }

    /// The `INSERT` of one compact outbox row made of `elements`, where `condition` holds.
    fn outbox_insert(&self, elements: Vec<String>, condition: Option<&str>) -> String {
        let (values, close) = match condition {
            None => ("VALUES (json_array(", "));".to_owned()),
            Some(condition) => ("SELECT json_array(", format!(") WHERE {condition};")),
        };
        format!(
            "    INSERT INTO {} ({}) {values}\n        {}\n    {close}",
            quote(Self::DIALECT, OUTBOX_TABLE),
            quote(Self::DIALECT, "data"),
            elements.join(",\n        ")
        )
    }

    /// The row trigger of `action` running `body`.
    fn trigger(&self, action: &str, timing: &str, when: Option<String>, body: &str) -> String {
        let when = when.map_or(String::new(), |when| format!("\nWHEN {when}"));
        format!(
            "CREATE TRIGGER {} {timing} ON {} FOR EACH ROW{when}\nBEGIN\n{body}\nEND;",
            quote(Self::DIALECT, &trigger_name(&self.table.name, action)),
            quote(Self::DIALECT, &self.table.name),
        )
    }

    fn create(&self) -> String {
        let columns: Vec<&Column> = self
            .table
            .columns
            .iter()
            .filter(|column| !(column.primary_key && column.auto_increment))
            .collect();
        let modified = (!columns.is_empty()).then(|| {
            self.column_array(&columns, |column| {
                format!("NEW.{} IS NOT NULL", quote(Self::DIALECT, &column.name))
            })
        });
        self.insert(
            "create",
            "AFTER INSERT",
            None,
            "NEW",
            [
                modified,
                self.foreign_keys("NEW"),
                None,
                self.additional_values("NEW"),
            ],
        )
    }

    /// The condition under which an update is captured (see [`watched_condition`]).
    fn watched(&self) -> Option<String> {
        watched_condition(
            self.table,
            Self::DIALECT,
            ("OLD", "NEW"),
            |left, right| format!("{left} IS NOT {right}"),
            "\n    OR ",
        )
    }

    /// The `keep-original` values of the columns that changed, `None` for a table without
    /// such columns.
    fn original_values(&self) -> Option<String> {
        let kept = self.marked(|p| p.keep_original);
        if kept.is_empty() {
            return None;
        }
        // The object holds every kept column; unchanged ones are removed again
        // (a removal of the absent path `$."-"` leaves the object as it is: no column is `-`).
        let removals: Vec<String> = kept
            .iter()
            .map(|column| {
                format!(
                    "CASE WHEN {} THEN '$.\"-\"' ELSE {} END",
                    self.changed(column),
                    string_literal(&format!("$.\"{}\"", column.name))
                )
            })
            .collect();
        Some(format!(
            "json_remove({},\n            {})",
            self.object("OLD", &kept),
            removals.join(",\n            ")
        ))
    }

    /// The update trigger: the update of the new key, and when the primary key changed, the
    /// delete of the old one (the update alone would leave the old key's storage row and
    /// its key in the key-value store for ever).
    fn update(&self) -> Option<String> {
        let when = self.watched()?;
        let columns: Vec<&Column> = self.table.columns.iter().collect();
        let update = self.elements(
            "update",
            "NEW",
            [
                Some(self.column_array(&columns, |c| self.changed(c))),
                self.foreign_keys("NEW"),
                self.original_values(),
                self.additional_values("NEW"),
            ],
        );
        let delete = self.elements(
            "delete",
            "OLD",
            [
                None,
                self.foreign_keys("OLD"),
                None,
                self.additional_values("OLD"),
            ],
        );
        let key = quote(Self::DIALECT, &self.primary_key().name);
        let body = format!(
            "{}\n{}",
            self.outbox_insert(update, None),
            self.outbox_insert(delete, Some(&format!("OLD.{key} IS NOT NEW.{key}")))
        );
        Some(self.trigger("update", "AFTER UPDATE", Some(when), &body))
    }

    fn delete(&self) -> String {
        self.insert(
            "delete",
            "AFTER DELETE",
            None,
            "OLD",
            [
                None,
                self.foreign_keys("OLD"),
                None,
                self.additional_values("OLD"),
            ],
        )
    }
}
