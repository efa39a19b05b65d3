//! The capture triggers of PostgreSQL, a trigger function and statement triggers over
//! transition tables, and of MySQL/MariaDB, row triggers with compound bodies.

use super::{compact_elements, foreign_key_columns, marked_columns, watched_condition};
use crate::model::{Column, ColumnType, OUTBOX_TABLE, Table};
use crate::sql::trigger_statements::{
    NEW_ALIAS, NEW_ROWS, OLD_ALIAS, OLD_ROWS, mysql_trigger, postgres_function, postgres_trigger,
};
use crate::sql::triggers::{CAPTURE_FUNCTION, trigger_name};
use crate::sql::{Dialect, quote, string_literal};

/// The capture triggers of PostgreSQL and MySQL/MariaDB: the same events and the same JSON
/// as [`SqliteTriggers`], each trigger one `INSERT` into the outbox with no lookups.
/// PostgreSQL gets one PL/pgSQL function per table, branching on `TG_OP`, and three
/// triggers (the update trigger's `WHEN` holds the watched condition); MySQL gets three
/// triggers with compound bodies (no `DELIMITER`: the server parses them as sent).
///
/// [`SqliteTriggers`]: super::SqliteTriggers
pub(crate) struct Capture<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) table: &'a Table,
}

impl Capture<'_> {
    pub(crate) fn all(&self) -> Vec<String> {
        let create = self.insert("create", None);
        let update = self
            .watched()
            .map(|condition| (self.insert("update", Some(&condition)), condition));
        let delete = self.insert("delete", None);
        match self.dialect {
            Dialect::Postgres => {
                let function = trigger_name(&self.table.name, CAPTURE_FUNCTION);
                let mut branches = format!("    IF TG_OP = 'INSERT' THEN\n        {create}\n");
                if let Some((insert, _)) = &update {
                    branches.push_str(&format!(
                        "    ELSIF TG_OP = 'UPDATE' THEN\n        {insert}\n        {}\n",
                        self.rekeyed()
                    ));
                }
                branches.push_str(&format!(
                    "    ELSIF TG_OP = 'DELETE' THEN\n        {delete}\n    END IF;\n"
                ));
                let mut statements = vec![postgres_function(&function, &branches)];
                statements.push(postgres_trigger(self.table, "create", "INSERT", &function));
                if update.is_some() {
                    statements.push(postgres_trigger(self.table, "update", "UPDATE", &function));
                }
                statements.push(postgres_trigger(self.table, "delete", "DELETE", &function));
                statements
            }
            Dialect::Mysql | Dialect::Sqlite => {
                let mut statements = vec![mysql_trigger(
                    self.table,
                    "create",
                    "AFTER INSERT",
                    &format!("    {create}\n"),
                )];
                if let Some((insert, condition)) = update {
                    statements.push(mysql_trigger(
                        self.table,
                        "update",
                        "AFTER UPDATE",
                        &format!(
                            "    IF {condition} THEN\n        {insert}\n    END IF;\n{}",
                            self.rekeyed()
                        ),
                    ));
                }
                statements.push(mysql_trigger(
                    self.table,
                    "delete",
                    "AFTER DELETE",
                    &format!("    {delete}\n"),
                ));
                statements
            }
        }
    }

    /// How the old and the new row are named: `OLD` and `NEW` in MySQL's row triggers, the
    /// aliases of the transition tables in PostgreSQL's statement triggers (not `OLD`/`NEW`,
    /// which PL/pgSQL would take for its own variables).
    fn rows(&self) -> (&'static str, &'static str) {
        match self.dialect {
            Dialect::Postgres => (OLD_ALIAS, NEW_ALIAS),
            Dialect::Mysql | Dialect::Sqlite => ("OLD", "NEW"),
        }
    }

    fn quoted(&self, name: &str) -> String {
        quote(self.dialect, name)
    }

    /// The column's value as it goes into the JSON, the same on every database: bytes as
    /// upper-case hex (JSON cannot hold bytes), booleans as 0/1 (as SQLite and MySQL store
    /// them), timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`.
    fn value(&self, row: &str, column: &Column) -> String {
        let reference = format!("{row}.{}", self.quoted(&column.name));
        match (self.dialect, column.ty) {
            (Dialect::Postgres, ty) if ty.is_binary() => {
                format!("upper(encode({reference}, 'hex'))")
            }
            (Dialect::Postgres, ColumnType::Boolean) => format!("{reference}::int"),
            (Dialect::Postgres, ColumnType::Timestamp) => {
                format!("to_char({reference}, 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            (_, ty) if ty.is_binary() => format!("HEX({reference})"),
            (_, ColumnType::Timestamp) => {
                format!("DATE_FORMAT({reference}, '%Y-%m-%d %H:%i:%s.%f')")
            }
            _ => reference,
        }
    }

    /// Whether two values differ, NULL-safe.
    fn differ(&self, left: &str, right: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("{left} IS DISTINCT FROM {right}"),
            Dialect::Mysql | Dialect::Sqlite => format!("NOT ({left} <=> {right})"),
        }
    }

    fn changed(&self, column: &Column) -> String {
        let name = self.quoted(&column.name);
        let (old, new) = self.rows();
        let changed = self.differ(&format!("{old}.{name}"), &format!("{new}.{name}"));
        match self.unpaired() {
            Some(unpaired) => format!("({unpaired} OR {changed})"),
            None => changed,
        }
    }

    /// PostgreSQL: the condition that an updated row found no old version with its primary
    /// key (the update changed the key): every column of such a row counts as changed, and
    /// the row is captured whatever the watched columns say. `None` elsewhere.
    fn unpaired(&self) -> Option<String> {
        (self.dialect == Dialect::Postgres).then(|| {
            let first = self.table.primary_key()[0];
            format!("{OLD_ALIAS}.{} IS NULL", self.quoted(&first.name))
        })
    }

    /// A JSON object of `"<column>": value`; with a condition, a column is left out when its
    /// condition is false.
    fn object(
        &self,
        row: &str,
        columns: &[&Column],
        condition: Option<&dyn Fn(&Column) -> String>,
    ) -> String {
        match self.dialect {
            Dialect::Postgres => {
                if columns.is_empty() {
                    return "'{}'::json".into();
                }
                // Text assembly instead of json_build_object, which takes at most 100
                // arguments; array_to_string skips the NULLs of left-out columns.
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        let pair = format!(
                            "{} || coalesce(to_json({})::text, 'null')",
                            string_literal(&format!("\"{}\":", column.name)),
                            self.value(row, column)
                        );
                        match condition {
                            Some(condition) => {
                                format!("CASE WHEN {} THEN {pair} END", condition(column))
                            }
                            None => pair,
                        }
                    })
                    .collect();
                format!(
                    "('{{' || array_to_string(ARRAY[\n            {}\n        ]::text[], ',') || '}}')::json",
                    parts.join(",\n            ")
                )
            }
            Dialect::Mysql | Dialect::Sqlite => {
                let pairs: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "{}, {}",
                            string_literal(&column.name),
                            self.value(row, column)
                        )
                    })
                    .collect();
                let object = format!("JSON_OBJECT({})", pairs.join(", "));
                let Some(condition) = condition else {
                    return object;
                };
                if columns.is_empty() {
                    return object;
                }
                // The object holds every column; those whose condition is false are removed
                // again. Removing the absent path `$."0"` leaves the object as it is (no
                // column name starts with a digit; MariaDB rejects `$."-"`).
                let removals: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "IF({}, '$.\"0\"', {})",
                            condition(column),
                            string_literal(&format!("$.\"{}\"", column.name))
                        )
                    })
                    .collect();
                format!(
                    "JSON_REMOVE({object},\n            {})",
                    removals.join(",\n            ")
                )
            }
        }
    }

    /// A JSON array of the names of the columns where `condition` holds.
    fn column_array(&self, columns: &[&Column], condition: impl Fn(&Column) -> String) -> String {
        match self.dialect {
            Dialect::Postgres => {
                if columns.is_empty() {
                    return "'[]'::json".into();
                }
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "CASE WHEN {} THEN {} END",
                            condition(column),
                            string_literal(&column.name)
                        )
                    })
                    .collect();
                format!(
                    "to_json(array_remove(ARRAY[\n            {}\n        ]::text[], NULL))",
                    parts.join(",\n            ")
                )
            }
            Dialect::Mysql | Dialect::Sqlite => {
                if columns.is_empty() {
                    return "JSON_ARRAY()".into();
                }
                let parts: Vec<String> = columns
                    .iter()
                    .map(|column| {
                        format!(
                            "IF({}, {}, '')",
                            condition(column),
                            string_literal(&format!("\"{}\",", column.name))
                        )
                    })
                    .collect();
                // JSON_EXTRACT turns the text into JSON, so JSON_OBJECT embeds it as an
                // array on MySQL and MariaDB alike.
                format!(
                    "JSON_EXTRACT(CONCAT('[', TRIM(TRAILING ',' FROM CONCAT(''\n            , {}\n        )), ']'), '$')",
                    parts.join("\n            , ")
                )
            }
        }
    }

    /// The condition under which an update is captured (see [`watched_condition`]).
    fn watched(&self) -> Option<String> {
        let watched = watched_condition(
            self.table,
            self.dialect,
            self.rows(),
            |left, right| self.differ(left, right),
            "\n        OR ",
        )?;
        Some(match self.unpaired() {
            Some(unpaired) => format!("{unpaired}\n        OR {watched}"),
            None => watched,
        })
    }

    /// The delete event of the old key of every row whose primary key an update changed:
    /// the update is captured for the new key only, and without this the old key's storage
    /// row (and its key in the key-value store) would stay for ever. On PostgreSQL the old
    /// rows of the statement whose key no new row has; on MySQL the row, when its key
    /// changed.
    fn rekeyed(&self) -> String {
        let key = &self.table.primary_key()[0].name;
        match self.dialect {
            Dialect::Postgres => {
                let key = self.quoted(key);
                self.insert_from(
                    "delete",
                    Some(&format!(
                        "NOT EXISTS (SELECT 1 FROM {NEW_ROWS} AS {NEW_ALIAS} WHERE {NEW_ALIAS}.{key} = {OLD_ALIAS}.{key})"
                    )),
                    &format!("{OLD_ROWS} AS {OLD_ALIAS}"),
                )
            }
            Dialect::Mysql | Dialect::Sqlite => {
                let key = self.quoted(key);
                format!(
                    "    IF NOT (OLD.{key} <=> NEW.{key}) THEN\n        {}\n    END IF;\n",
                    self.insert("delete", None)
                )
            }
        }
    }

    /// The `INSERT` into the outbox for one action: of the row in a MySQL trigger, of every
    /// row of the statement's transition table in a PostgreSQL one, where `condition` (the
    /// watched columns of an update) filters them.
    fn insert(&self, action: &str, condition: Option<&str>) -> String {
        let from = match action {
            "create" => format!("{NEW_ROWS} AS {}", self.rows().1),
            "delete" => format!("{OLD_ROWS} AS {}", self.rows().0),
            _ => transition_join(self.table),
        };
        self.insert_from(action, condition, &from)
    }

    /// [`Capture::insert`], on PostgreSQL selecting `from`.
    fn insert_from(&self, action: &str, condition: Option<&str>, from: &str) -> String {
        let table = self.table;
        let (old, new) = self.rows();
        let row = if action == "delete" { old } else { new };
        let primary_key = table.primary_key()[0];
        let foreign_keys = foreign_key_columns(table);
        let additional = marked_columns(table, |p| p.keep_additional);
        let modified = match action {
            "create" => {
                let columns: Vec<&Column> = table
                    .columns
                    .iter()
                    .filter(|column| !(column.primary_key && column.auto_increment))
                    .collect();
                (!columns.is_empty()).then(|| {
                    self.column_array(&columns, |column| {
                        format!("{new}.{} IS NOT NULL", self.quoted(&column.name))
                    })
                })
            }
            "update" => {
                let columns: Vec<&Column> = table.columns.iter().collect();
                Some(self.column_array(&columns, |column| self.changed(column)))
            }
            _ => None,
        };
        let kept = marked_columns(table, |p| p.keep_original);
        let original = (action == "update" && !kept.is_empty()).then(|| {
            let changed = |column: &Column| self.changed(column);
            self.object(old, &kept, Some(&changed))
        });
        let (empty_array, empty_object) = match self.dialect {
            Dialect::Postgres => ("'[]'::json", "'{}'::json"),
            Dialect::Mysql | Dialect::Sqlite => ("JSON_ARRAY()", "JSON_OBJECT()"),
        };
        let elements = compact_elements(
            [
                string_literal(&table.name),
                string_literal(action),
                self.value(row, primary_key),
            ],
            [
                (modified, empty_array),
                (
                    (!foreign_keys.is_empty()).then(|| self.object(row, &foreign_keys, None)),
                    empty_object,
                ),
                (original, empty_object),
                (
                    (!additional.is_empty()).then(|| self.object(row, &additional, None)),
                    empty_object,
                ),
            ],
        );
        let object = match self.dialect {
            Dialect::Postgres => format!(
                "json_build_array(\n        {}\n    )::text",
                elements.join(",\n        ")
            ),
            Dialect::Mysql | Dialect::Sqlite => {
                format!(
                    "JSON_ARRAY(\n        {}\n    )",
                    elements.join(",\n        ")
                )
            }
        };
        let into = format!(
            "INSERT INTO {} ({})",
            self.quoted(OUTBOX_TABLE),
            self.quoted("data")
        );
        match self.dialect {
            Dialect::Postgres => {
                let filter = condition.map_or(String::new(), |condition| {
                    format!("\n    WHERE {condition}")
                });
                format!("{into}\n    SELECT {object}\n    FROM {from}{filter};")
            }
            Dialect::Mysql | Dialect::Sqlite => format!("{into} VALUES ({object});"),
        }
    }
}

/// `pubsync_new AS n LEFT JOIN pubsync_old AS o ON` the primary key: an update's new rows
/// with their old versions, for the capture triggers. A row whose primary key the update
/// changed finds no old version (see `Capture::unpaired`).
fn transition_join(table: &Table) -> String {
    let on: Vec<String> = table
        .primary_key()
        .iter()
        .map(|column| {
            let name = quote(Dialect::Postgres, &column.name);
            format!("{OLD_ALIAS}.{name} = {NEW_ALIAS}.{name}")
        })
        .collect();
    format!(
        "{NEW_ROWS} AS {NEW_ALIAS} LEFT JOIN {OLD_ROWS} AS {OLD_ALIAS} ON {}",
        on.join(" AND ")
    )
}
