//! [`Statements`]: every SQL text and bound statement of the queue, built once per [`Dialect`]
//! from its placeholders and quoting. Everything that differs between databases (how rows are
//! taken, bind-parameter limits, how a missing table is reported) is here.

use pubsync_database::names::queue_message;
use pubsync_database::{Bind, BoundList, DatabaseError, Dialect, Statement};

use crate::TABLE;

/// Most rows in one multi-row `INSERT`, whatever the bind-parameter limit allows; keeps
/// statement texts small.
const MAX_ROWS_PER_INSERT: usize = 1_000;

/// The statements of the queue, for one dialect. Everything that differs between databases
/// is here.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) dialect: Dialect,
    table: String,
}

impl Statements {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            table: dialect.quote(TABLE),
        }
    }

    /// Most bind parameters one statement may carry. SQLite's default
    /// `SQLITE_MAX_VARIABLE_NUMBER` is 32,766 since 3.32 (the bundled build is newer);
    /// PostgreSQL's and MySQL's protocols count parameters in 16 bits.
    fn bind_limit(&self) -> usize {
        match self.dialect {
            Dialect::Sqlite => 32_766,
            Dialect::Postgres | Dialect::Mysql => 65_535,
        }
    }

    /// Rows per `INSERT`: three parameters each.
    pub(crate) fn rows_per_insert(&self) -> usize {
        (self.bind_limit() / 3).min(MAX_ROWS_PER_INSERT)
    }

    /// `INSERT` of `rows` messages; binds queue name, body, available_at per row.
    pub(crate) fn insert(&self, rows: usize) -> String {
        let values = (0..rows)
            .map(|row| format!("({})", self.dialect.placeholders(row * 3 + 1, 3)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} (queue_name, body, available_at) VALUES {values}",
            self.table
        )
    }

    /// The condition of a message that can be received now; binds queue name, now, now from
    /// parameter `first` on.
    fn receivable(&self, first: usize) -> String {
        let p = |i: usize| self.dialect.placeholder(first + i);
        format!(
            "queue_name = {} AND available_at <= {} AND (lease_until IS NULL OR lease_until < {})",
            p(0),
            p(1),
            p(2)
        )
    }

    /// Whether a message can be received now; binds queue name, now, now.
    pub(crate) fn peek(&self) -> String {
        format!(
            "SELECT id_queue_message FROM {} WHERE {} LIMIT 1",
            self.table,
            self.receivable(1)
        )
    }

    /// Leases and returns up to a limit of receivable messages, oldest first; binds lease
    /// owner, lease until, queue name, now, now, limit. Rows come back in no particular order.
    pub(crate) fn take(&self) -> String {
        let p = |i: usize| self.dialect.placeholder(i);
        let lock = match self.dialect {
            // SQLite has one writer at a time: the write transaction the caller holds is the lock.
            Dialect::Sqlite => "",
            // Concurrent consumers skip each other's rows instead of waiting on them.
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            // MySQL takes in three steps instead (`select_for_take`, `lease_ids`, `fetch_ids`).
            Dialect::Mysql => " FOR UPDATE SKIP LOCKED",
        };
        format!(
            "UPDATE {table} SET lease_owner = {owner}, lease_until = {until}, delivery_count = delivery_count + 1 \
             WHERE id_queue_message IN (SELECT id_queue_message FROM {table} WHERE {receivable} \
             ORDER BY id_queue_message LIMIT {limit}{lock}) \
             RETURNING id_queue_message, body, delivery_count, available_at",
            table = self.table,
            owner = p(1),
            until = p(2),
            receivable = self.receivable(3),
            limit = p(6),
        )
    }

    /// MySQL's first take step: locks up to a limit of receivable messages, oldest first,
    /// skipping rows other consumers hold; binds queue name, now, now, limit.
    pub(crate) fn select_for_take(&self) -> String {
        format!(
            "SELECT id_queue_message FROM {} WHERE {} ORDER BY id_queue_message LIMIT {} FOR UPDATE SKIP LOCKED",
            self.table,
            self.receivable(1),
            self.dialect.placeholder(4)
        )
    }

    /// MySQL's second take step: leases the messages of `ids` to `owner` until `until`.
    pub(crate) fn lease_ids(&self, ids: &BoundList, owner: &str, until: i64) -> Statement {
        let mut statement = Statement::new(format!(
            "UPDATE {} SET lease_owner = ?, lease_until = ?, delivery_count = delivery_count + 1 \
             WHERE {}{}",
            self.table,
            ids.condition(queue_message::ID),
            ids.index_order(queue_message::ID)
        ));
        statement
            .push(Bind::Text(owner.to_owned()))
            .push(Bind::BigInt(until));
        ids.bind_to(&mut statement);
        statement
    }

    /// MySQL's last take step: reads the messages of `ids`.
    pub(crate) fn fetch_ids(&self, ids: &BoundList) -> Statement {
        ids.statement(format!(
            "SELECT id_queue_message, body, delivery_count, available_at FROM {} WHERE {}",
            self.table,
            ids.condition(queue_message::ID)
        ))
    }

    /// Deletes the messages of `ids` that `consumer_id` holds on `queue`.
    pub(crate) fn acknowledge(&self, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        self.held(
            format!("DELETE FROM {} WHERE", self.table),
            ids,
            queue,
            consumer_id,
        )
    }

    /// Clears the lease of the messages of `ids` that `consumer_id` holds on `queue`.
    pub(crate) fn release(&self, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        self.held(
            format!(
                "UPDATE {} SET lease_owner = NULL, lease_until = NULL WHERE",
                self.table
            ),
            ids,
            queue,
            consumer_id,
        )
    }

    /// Clears every lease `consumer_id` holds, on every queue.
    pub(crate) fn release_all(&self, consumer_id: &str) -> Statement {
        let mut statement = Statement::new(format!(
            "UPDATE {} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            self.table
        ));
        statement.push(Bind::Text(consumer_id.to_owned()));
        statement
    }

    /// `<head> queue_name = ? AND lease_owner = ? AND <id in ids>`, bound.
    fn held(&self, head: String, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        let mut statement = Statement::new(format!(
            "{head} queue_name = ? AND lease_owner = ? AND {}{}",
            ids.condition(queue_message::ID),
            ids.index_order(queue_message::ID)
        ));
        statement
            .push(Bind::Text(queue.to_owned()))
            .push(Bind::Text(consumer_id.to_owned()));
        ids.bind_to(&mut statement);
        statement
    }

    /// Counts receivable and all messages of a queue; binds now, now, queue name.
    pub(crate) fn depth(&self) -> String {
        let p = |i: usize| self.dialect.placeholder(i);
        format!(
            "SELECT COUNT(CASE WHEN available_at <= {} AND (lease_until IS NULL OR lease_until < {}) THEN 1 END) AS ready, \
             COUNT(*) AS total FROM {} WHERE queue_name = {}",
            p(1),
            p(2),
            self.table,
            p(3)
        )
    }

    /// Whether `error` says that the queue table does not exist.
    pub(crate) fn is_missing_table(&self, error: &DatabaseError) -> bool {
        let DatabaseError::Query {
            source: diesel::result::Error::DatabaseError(_, info),
            ..
        } = error
        else {
            return false;
        };
        let message = info.message();
        match self.dialect {
            Dialect::Sqlite => message.contains("no such table"),
            Dialect::Postgres => message.contains("does not exist") && message.contains(TABLE),
            Dialect::Mysql => message.contains("doesn't exist") && message.contains(TABLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use pubsync_database::bind_list;

    use super::*;

    #[test]
    fn chunks_respect_every_bind_limit() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
            let statements = Statements::new(dialect);
            assert!(statements.rows_per_insert() * 3 <= statements.bind_limit());
            assert!(statements.rows_per_insert() > 0);
        }
    }

    #[test]
    fn statements_number_postgres_placeholders_in_bind_order() {
        let statements = Statements::new(Dialect::Postgres);
        assert_eq!(
            statements.insert(2),
            "INSERT INTO \"pubsync_queue_message\" (queue_name, body, available_at) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        let take = statements.take();
        for (i, fragment) in [
            "lease_owner = $1",
            "lease_until = $2",
            "queue_name = $3",
            "available_at <= $4",
            "lease_until < $5",
            "LIMIT $6 FOR UPDATE SKIP LOCKED",
        ]
        .iter()
        .enumerate()
        {
            assert!(take.contains(fragment), "{i}: {fragment} in {take}");
        }
        let ids = &bind_list(Dialect::Postgres, &[1_i64, 2])[0];
        assert!(statements.acknowledge(ids, "event", "me").sql().ends_with(
            "lease_owner = ? AND id_queue_message = ANY((SELECT CAST(? AS BIGINT[]))::BIGINT[])"
        ));
        assert!(statements.depth().ends_with("WHERE queue_name = $3"));
    }

    #[test]
    fn sqlite_statements_take_no_row_locks() {
        let take = Statements::new(Dialect::Sqlite).take();
        assert!(!take.contains("FOR UPDATE"), "{take}");
        assert!(take.contains("RETURNING id_queue_message, body, delivery_count, available_at"));
    }
}
