//! Statements whose SQL is built at run time but which diesel still keeps prepared.
//!
//! `diesel::sql_query` marks itself unsafe to cache, so its SQL is parsed again on every run;
//! for a multi-row upsert on SQLite that parse costs about as much as the writes. A
//! [`Statement`] lets diesel cache it by its SQL text, per connection. Keep the number of
//! distinct texts small (for example with [`bucketed`] chunk sizes), since every distinct text
//! stays prepared on every pooled connection that ran it.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Nullable, Text, Untyped};
use diesel::{QueryResult, RunQueryDsl};

use crate::Dialect;

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A `TEXT` value.
    Text(String),
    /// A `BIGINT` value.
    BigInt(i64),
    /// A `TEXT` value that may be `NULL`.
    NullableText(Option<String>),
    /// Bytes, bound as a binary value (see [`stored_text`]).
    Bytes(Vec<u8>),
}

/// SQL with its bound values, cached as a prepared statement by its text.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    sql: String,
    binds: Vec<Bind>,
}

impl Statement {
    /// A statement of `sql`, where each `?` stands for the value bound next, in order, on
    /// every database (diesel writes PostgreSQL's `$n`). `?` must appear nowhere else, not
    /// even in a string literal.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, value: Bind) -> Self {
        self.binds.push(value);
        self
    }

    /// Binds the next placeholder, in place.
    pub fn push(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// `count` comma-separated `?`: a row of placeholders for [`Statement::new`].
    pub fn placeholders(count: usize) -> String {
        vec!["?"; count].join(", ")
    }
}

impl Query for Statement {
    // Rows are read by column name (`QueryableByName`), as with `sql_query`.
    type SqlType = Untyped;
}

impl QueryId for Statement {
    type QueryId = ();
    // No static id: diesel keys its statement cache by the SQL text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for Statement
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Binary>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    Option<String>: ToSql<Nullable<Text>, DB>,
    Vec<u8>: ToSql<Binary, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut parts = self.sql.split('?');
        out.push_sql(parts.next().unwrap_or_default());
        let mut binds = self.binds.iter();
        for part in parts {
            let bind = binds.next().ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(
                    format!("more placeholders than bound values in {}", self.sql).into(),
                )
            })?;
            match bind {
                Bind::Text(value) => out.push_bind_param::<Text, String>(value)?,
                Bind::BigInt(value) => out.push_bind_param::<BigInt, i64>(value)?,
                Bind::NullableText(value) => {
                    out.push_bind_param::<Nullable<Text>, Option<String>>(value)?;
                }
                Bind::Bytes(value) => out.push_bind_param::<Binary, Vec<u8>>(value)?,
            }
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!("more bound values than placeholders in {}", self.sql).into(),
            ));
        }
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Statement {}

/// The placeholder and the value that give back a text value as the database stored it,
/// from its bytes, which need not be UTF-8: SQLite keeps whatever text it is given, and a
/// bound blob never equals a text value there, so it is bound as one and cast. PostgreSQL
/// and MySQL keep only valid text, which is bound as it is.
pub fn stored_text(dialect: Dialect, bytes: &[u8]) -> (&'static str, Bind) {
    match dialect {
        Dialect::Sqlite => ("CAST(? AS TEXT)", Bind::Bytes(bytes.to_vec())),
        Dialect::Postgres | Dialect::Mysql => {
            ("?", Bind::Text(String::from_utf8_lossy(bytes).into_owned()))
        }
    }
}

/// A PostgreSQL array literal of `items` as text (`{"a","b\\"c"}`), every element quoted and
/// escaped, to bind as one `TEXT` value for [`postgres_any`]: the form
/// [`bind_list`](crate::bind_list) binds keys in on PostgreSQL.
pub fn postgres_array<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    use crate::ListValue as _;
    let mut literal = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        item.as_ref().push_postgres(&mut literal);
    }
    literal.push('}');
    literal
}

/// What follows an `UPDATE` or `DELETE … WHERE <column> IN (<count> values)` on a unique or
/// primary key: on MySQL `ORDER BY <column> LIMIT <count>`, which makes MariaDB take the
/// index; nothing elsewhere.
///
/// Without it, MariaDB scans the whole table once the list is a large part of it (a thousand
/// ids of a queue table holding a few thousand rows; a list of a thousand or more becomes a
/// sub-query whose plan is a scan), or whenever the statistics still describe the empty table
/// of the last analysis. In READ COMMITTED a scanning `DELETE` locks every row it looks at,
/// so it waits for any transaction with an uncommitted insert into the table, such as a
/// writer whose capture trigger filled the outbox: up to `innodb_lock_wait_timeout`. The limit
/// is exact: the column is unique, so at most `count` rows match.
pub fn index_order(dialect: crate::Dialect, column: &str, count: usize) -> String {
    match dialect {
        crate::Dialect::Mysql => format!(" ORDER BY {column} LIMIT {count}"),
        crate::Dialect::Sqlite | crate::Dialect::Postgres => String::new(),
    }
}

/// `column = ANY((SELECT CAST(<placeholder> AS <element_type>[]))::<element_type>[])`: on
/// PostgreSQL, whether `column` is in the list bound (as text, see [`postgres_array`]) to
/// `placeholder`.
///
/// The cast in a sub-select is evaluated once per statement, where a bare
/// `CAST($1 AS TEXT[])` is parsed again at every row a sequential scan visits. And a list the
/// planner cannot see makes it estimate a few matches and take the index, even when the
/// table's statistics are stale: a table filled since autovacuum last looked, or a queue
/// table that autovacuum last saw empty. With the list visible, such a table got a
/// sequential scan that parsed the list at every row, slower by orders of magnitude than the
/// index look-ups.
pub fn postgres_any(column: &str, element_type: &str, placeholder: &str) -> String {
    format!("{column} = ANY((SELECT CAST({placeholder} AS {element_type}[]))::{element_type}[])")
}

/// Prepared statements that select `columns` of the rows of `table` whose `id_column` is one
/// of `ids` (in no particular order; run them all and gather the rows), for publishers that
/// re-read their entities by id. The ids are bound as a list ([`bind_list`]): few statement
/// texts whatever the number of ids, so they stay prepared, where diesel's `eq_any` is parsed
/// again on every run on SQLite and MySQL. Identifiers are quoted for `dialect`; ids that
/// repeat match their row once.
///
/// [`bind_list`]: crate::bind_list
pub fn select_by_ids(
    dialect: crate::Dialect,
    table: &str,
    columns: &[&str],
    id_column: &str,
    ids: &[i64],
) -> Vec<Statement> {
    // Each id once, or a repeated one would find its row twice through SQLite's join.
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    crate::bind_list(dialect, &ids)
        .iter()
        .map(|list| list.statement(list.select(columns, table, id_column)))
        .collect()
}

/// Splits `len` items into consecutive chunks whose lengths are all taken from `sizes`
/// (largest first, and `sizes` must end with 1): `bucketed(763, &[500, 100, 20, 1])` gives
/// chunks of 500, 100, 100, 20, 20, 20, 1, 1, 1. Statements over such chunks come in at
/// most `sizes.len()` shapes, so few stay prepared.
pub fn bucketed(len: usize, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    debug_assert!(sizes.windows(2).all(|pair| pair[0] > pair[1]));
    debug_assert_eq!(sizes.last(), Some(&1));
    let mut chunks = Vec::new();
    let mut start = 0;
    for &size in sizes {
        while len - start >= size {
            chunks.push(start..start + size);
            start += size;
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_everything_in_order_with_few_shapes() {
        let sizes = [500, 100, 20, 1];
        for len in [0, 1, 19, 500, 763, 1000, 1234] {
            let chunks = bucketed(len, &sizes);
            let mut next = 0;
            for chunk in &chunks {
                assert_eq!(chunk.start, next);
                assert!(sizes.contains(&chunk.len()), "{chunk:?}");
                next = chunk.end;
            }
            assert_eq!(next, len);
        }
        let lengths: Vec<usize> = bucketed(763, &sizes).iter().map(|c| c.len()).collect();
        assert_eq!(lengths, [500, 100, 100, 20, 20, 20, 1, 1, 1]);
    }

    #[test]
    fn a_statement_is_prepared_once_per_text_and_binds_in_order() {
        use std::sync::{Arc, Mutex};

        use diesel::connection::{Connection as _, Instrumentation, InstrumentationEvent};
        use diesel::sqlite::SqliteConnection;

        #[derive(Default)]
        struct Cached(Arc<Mutex<Vec<String>>>);
        impl Instrumentation for Cached {
            fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
                if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                    self.0.lock().unwrap().push(sql.to_owned());
                }
            }
        }

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let cached = Cached::default();
        let prepared = cached.0.clone();
        conn.set_instrumentation(cached);
        diesel::sql_query("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, v TEXT)")
            .execute(&mut conn)
            .unwrap();
        let insert = |k: &str, n: i64, v: Option<&str>| {
            Statement::new("INSERT INTO t (k, n, v) VALUES (?, ?, ?)")
                .bind(Bind::Text(k.to_owned()))
                .bind(Bind::BigInt(n))
                .bind(Bind::NullableText(v.map(str::to_owned)))
        };
        for (k, n, v) in [("a", 1, Some("x")), ("b", 2, None), ("c", 3, Some("z"))] {
            assert_eq!(insert(k, n, v).execute(&mut conn).unwrap(), 1);
        }
        assert_eq!(
            prepared.lock().unwrap().as_slice(),
            ["INSERT INTO t (k, n, v) VALUES (?, ?, ?)"],
            "three runs, one preparation"
        );

        #[derive(diesel::QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = Text)]
            k: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
            #[diesel(sql_type = Nullable<Text>)]
            v: Option<String>,
        }
        let rows: Vec<Row> = Statement::new("SELECT k, n, v FROM t WHERE n > ? ORDER BY k")
            .bind(Bind::BigInt(0))
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            rows[1],
            Row {
                k: "b".into(),
                n: 2,
                v: None
            }
        );
        assert_eq!(rows[2].v.as_deref(), Some("z"));

        let error = insert("d", 4, None)
            .bind(Bind::BigInt(5))
            .execute(&mut conn)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("more bound values than placeholders"),
            "{error}"
        );
    }
}
