//! Binding a list of ids or keys into a statement, the one way every caller does it: the
//! statement stays prepared (few distinct texts, whatever the list's length) and the
//! database keeps using the column's index.
//!
//! - **SQLite**: the whole list as one JSON array parameter. A statement of a thousand
//!   placeholders is parsed anew on every run, at a cost comparable to the work itself.
//!   A condition reads `column IN (SELECT value FROM json_each(?))`; a `SELECT` makes the
//!   list the outer loop of a join into the index (`json_each(?) AS k CROSS JOIN t ON …`),
//!   which SQLite does not reorder, so each value is one index look-up with no temporary
//!   index built from the list first.
//! - **PostgreSQL**: the whole list as one array parameter the planner does not see
//!   ([`postgres_any`]), so tables whose statistics lag behind their contents (queue tables,
//!   freshly filled storage tables) keep their indexes.
//! - **MySQL/MariaDB**: placeholders, at most a thousand per statement, the list padded to
//!   the next size of a short ladder by repeating its last value (which `IN` ignores), so a
//!   statement comes in few shapes and a list of up to a thousand values is one statement.
//!   After an `UPDATE` or `DELETE` on a unique column, [`BoundList::index_order`] makes
//!   MariaDB take the index.
//!
//! Statements use `?` for every placeholder ([`Statement`]); the list's come last.

use crate::Dialect;
use crate::statement::{Bind, Statement, index_order, postgres_any};

/// The statement sizes of a MySQL list: a chunk of `n` values is padded to the first size
/// not below `n`.
const MYSQL_SIZES: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, MAX_LIST_CHUNK];

/// The most values one statement binds of a list on MySQL; longer lists take several.
pub const MAX_LIST_CHUNK: usize = 1000;

/// A value of a list: an id or a key.
pub trait ListValue {
    /// The PostgreSQL element type of an array of such values.
    const POSTGRES_TYPE: &'static str;

    /// Appends the value as an element of a JSON array.
    fn push_json(&self, out: &mut String);

    /// Appends the value as an element of a PostgreSQL array literal.
    fn push_postgres(&self, out: &mut String);

    /// The value as one bound parameter.
    fn to_bind(&self) -> Bind;
}

impl ListValue for i64 {
    const POSTGRES_TYPE: &'static str = "BIGINT";

    fn push_json(&self, out: &mut String) {
        push_integer(*self, out);
    }

    fn push_postgres(&self, out: &mut String) {
        push_integer(*self, out);
    }

    fn to_bind(&self) -> Bind {
        Bind::BigInt(*self)
    }
}

impl ListValue for String {
    const POSTGRES_TYPE: &'static str = "TEXT";

    fn push_json(&self, out: &mut String) {
        self.as_str().push_json(out);
    }

    fn push_postgres(&self, out: &mut String) {
        self.as_str().push_postgres(out);
    }

    fn to_bind(&self) -> Bind {
        Bind::Text(self.clone())
    }
}

impl ListValue for &str {
    const POSTGRES_TYPE: &'static str = "TEXT";

    fn push_json(&self, out: &mut String) {
        use std::fmt::Write as _;
        // serde_json would do, but this crate does not depend on it for one string.
        out.push('"');
        for c in self.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn push_postgres(&self, out: &mut String) {
        out.push('"');
        for c in self.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }

    fn to_bind(&self) -> Bind {
        Bind::Text((*self).to_owned())
    }
}

fn push_integer(value: i64, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// One statement's share of a list, bound for its dialect: the SQL that names the list and
/// the values it binds. Made by [`bind_list`].
#[derive(Debug, Clone)]
pub struct BoundList {
    dialect: Dialect,
    postgres_type: &'static str,
    /// The values of the list this share holds (before any padding).
    len: usize,
    binds: Vec<Bind>,
}

/// `values` as the shares of as few statements as `dialect` allows: one on SQLite and
/// PostgreSQL (none for an empty list), chunks of up to a thousand on MySQL.
pub fn bind_list<V: ListValue>(dialect: Dialect, values: &[V]) -> Vec<BoundList> {
    if values.is_empty() {
        return Vec::new();
    }
    let share = |len: usize, binds: Vec<Bind>| BoundList {
        dialect,
        postgres_type: V::POSTGRES_TYPE,
        len,
        binds,
    };
    match dialect {
        Dialect::Sqlite => {
            let mut json = String::with_capacity(values.len() * 8 + 2);
            json.push('[');
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                value.push_json(&mut json);
            }
            json.push(']');
            vec![share(values.len(), vec![Bind::Text(json)])]
        }
        Dialect::Postgres => {
            let mut array = String::with_capacity(values.len() * 8 + 2);
            array.push('{');
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    array.push(',');
                }
                value.push_postgres(&mut array);
            }
            array.push('}');
            vec![share(values.len(), vec![Bind::Text(array)])]
        }
        Dialect::Mysql => values
            .chunks(MYSQL_SIZES[MYSQL_SIZES.len() - 1])
            .map(|chunk| {
                let size = mysql_size(chunk.len());
                let mut binds: Vec<Bind> = chunk.iter().map(ListValue::to_bind).collect();
                let last = binds.last().cloned().expect("chunks are not empty");
                binds.resize(size, last);
                share(chunk.len(), binds)
            })
            .collect(),
    }
}

fn mysql_size(len: usize) -> usize {
    MYSQL_SIZES
        .iter()
        .copied()
        .find(|&size| size >= len)
        .unwrap_or(len)
}

impl BoundList {
    /// How many values of the list this share holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the share holds no value (never, for shares [`bind_list`] makes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `column` (quoted as needed) is in the list, for a `WHERE` clause.
    pub fn condition(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each(?))"),
            Dialect::Postgres => postgres_any(column, self.postgres_type, "?"),
            Dialect::Mysql => {
                format!(
                    "{column} IN ({})",
                    Statement::placeholders(self.binds.len())
                )
            }
        }
    }

    /// What follows an `UPDATE` or `DELETE` whose condition is this list on a unique
    /// `column`: MySQL's `ORDER BY column LIMIT n` ([`index_order`]), nothing elsewhere. The
    /// limit counts the padding too; the column is unique, so no more rows than values match.
    pub fn index_order(&self, column: &str) -> String {
        index_order(self.dialect, column, self.binds.len())
    }

    /// `SELECT <columns> FROM <table> …` of the rows whose `column` is in the list, names
    /// unquoted (they are quoted here); on SQLite the list drives a join into `column`'s index.
    /// A value that repeats finds its row once on PostgreSQL and MySQL, once per repeat on
    /// SQLite.
    pub fn select(&self, columns: &[&str], table: &str, column: &str) -> String {
        let dialect = self.dialect;
        let (table, column) = (dialect.quote(table), dialect.quote(column));
        match dialect {
            Dialect::Sqlite => {
                let columns: Vec<String> = columns
                    .iter()
                    .map(|name| format!("t.{}", dialect.quote(name)))
                    .collect();
                format!(
                    "SELECT {} FROM json_each(?) AS k CROSS JOIN {table} AS t ON t.{column} = k.value",
                    columns.join(", ")
                )
            }
            Dialect::Postgres | Dialect::Mysql => {
                let columns: Vec<String> = columns.iter().map(|name| dialect.quote(name)).collect();
                format!(
                    "SELECT {} FROM {table} WHERE {}",
                    columns.join(", "),
                    self.condition(&column)
                )
            }
        }
    }

    /// Binds the list's values to `statement`'s next placeholders.
    pub fn bind_to(&self, statement: &mut Statement) {
        for bind in &self.binds {
            statement.push(bind.clone());
        }
    }

    /// A statement of `sql`, whose only placeholders are the list's.
    pub fn statement(&self, sql: impl Into<String>) -> Statement {
        let mut statement = Statement::new(sql);
        self.bind_to(&mut statement);
        statement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_binds_one_json_array() {
        let keys = ["a\"b".to_owned(), "c\\d".to_owned(), "é\n".to_owned()];
        let shares = bind_list(Dialect::Sqlite, &keys);
        assert_eq!(shares.len(), 1);
        assert_eq!(
            shares[0].binds,
            [Bind::Text(r#"["a\"b","c\\d","é\u000a"]"#.into())]
        );
        assert_eq!(
            shares[0].condition("\"key\""),
            "\"key\" IN (SELECT value FROM json_each(?))"
        );
        assert_eq!(
            shares[0].select(&["key", "data"], "spy_x_storage", "key"),
            r#"SELECT t."key", t."data" FROM json_each(?) AS k CROSS JOIN "spy_x_storage" AS t ON t."key" = k.value"#
        );
        assert_eq!(shares[0].index_order("id"), "");
        let ids = bind_list(Dialect::Sqlite, &[3_i64, -1, 5]);
        assert_eq!(ids[0].binds, [Bind::Text("[3,-1,5]".into())]);
    }

    #[test]
    fn postgres_binds_one_array_the_planner_does_not_see() {
        let shares = bind_list(Dialect::Postgres, &["a\"b", "c\\d"]);
        assert_eq!(shares[0].binds, [Bind::Text(r#"{"a\"b","c\\d"}"#.into())]);
        assert_eq!(
            shares[0].select(&["key", "data"], "spy_x_storage", "key"),
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" = ANY((SELECT CAST(? AS TEXT[]))::TEXT[])"#
        );
        let ids = bind_list(Dialect::Postgres, &[1_i64, 2]);
        assert_eq!(ids[0].binds, [Bind::Text("{1,2}".into())]);
        assert_eq!(
            ids[0].condition("id"),
            "id = ANY((SELECT CAST(? AS BIGINT[]))::BIGINT[])"
        );
    }

    #[test]
    fn mysql_pads_chunks_to_few_shapes_and_orders_by_the_index() {
        let ids: Vec<i64> = (1..=1003).collect();
        let shares = bind_list(Dialect::Mysql, &ids);
        let lengths: Vec<(usize, usize)> = shares
            .iter()
            .map(|share| (share.len(), share.binds.len()))
            .collect();
        assert_eq!(lengths, [(1000, 1000), (3, 4)]);
        assert_eq!(
            shares[1].binds.last(),
            Some(&Bind::BigInt(1003)),
            "padded with the last"
        );
        assert_eq!(shares[1].condition("`id`"), "`id` IN (?, ?, ?, ?)");
        assert_eq!(shares[1].index_order("`id`"), " ORDER BY `id` LIMIT 4");
        assert_eq!(
            shares[1].select(&["key"], "t", "id"),
            "SELECT `key` FROM `t` WHERE `id` IN (?, ?, ?, ?)"
        );
        let mut texts: Vec<usize> = (1..=1000).map(mysql_size).collect();
        texts.dedup();
        assert_eq!(texts.len(), MYSQL_SIZES.len());
    }

    #[test]
    fn sqlite_reads_back_every_key_of_the_json_array() {
        use diesel::Connection as _;
        use diesel::RunQueryDsl as _;
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let keys = [
            "plain",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "tab\t",
            "\u{1}",
            "ä ö ü",
            "日本",
        ];
        let mut conn = diesel::sqlite::SqliteConnection::establish(":memory:").unwrap();
        let list = &bind_list(Dialect::Sqlite, &keys)[0];
        let read: Vec<Value> = list
            .statement("SELECT value FROM json_each(?) ORDER BY key")
            .load(&mut conn)
            .unwrap();
        let read: Vec<&str> = read.iter().map(|row| row.value.as_str()).collect();
        assert_eq!(read, keys);
    }

    #[test]
    fn an_empty_list_binds_no_statement() {
        for dialect in Dialect::ALL {
            assert!(bind_list::<i64>(dialect, &[]).is_empty());
        }
    }
}
