//! Entity locks: what keeps two publishers of one entity from interleaving.
//!
//! A publisher re-reads its entities and writes their storage rows. When two publishers
//! handle one entity at once (two workers, or a backfill beside a worker), the one that read
//! first may commit last, and its older read then stays in the storage table: no later event
//! corrects it. [`StorageTableWriter::publish`](super::StorageTableWriter::publish) closes
//! that window by taking its entities' locks (storage table and reference) at the start of
//! its write transaction, re-reading only once it holds them, and releasing them after the
//! commit; a second publisher of the same entity waits before its read, so it reads what the
//! first committed, or later.
//!
//! The locks are the database's own advisory locks, never row locks on the shop's tables: on
//! PostgreSQL and MySQL a shop's writer is never blocked by a publisher (SQLite has one
//! writer at a time, and a publisher holds it for its chunk).
//! - PostgreSQL: `pg_advisory_xact_lock`, released by the commit or rollback.
//! - MySQL/MariaDB: `GET_LOCK`, which belongs to the session, so the writer releases them
//!   (`RELEASE_ALL_LOCKS`) once the transaction is over, whatever its outcome.
//! - SQLite needs none: the write transaction holds the database's one write lock from its
//!   `BEGIN` on, so no other publisher commits between the re-read and the write.
//!
//! A table's entities share [`BUCKETS`] locks (a hash of the reference picks one), so a
//! transaction takes at most that many, however large its chunk: PostgreSQL keeps advisory
//! locks in its shared lock table, which holds `max_locks_per_transaction × max_connections`
//! locks in all (6,400 by default), and a lock per entity, a thousand per chunk, would exhaust
//! it with a handful of workers. The price: publishers of different entities of one table
//! wait for each other when their entities share a bucket, so two large chunks of one table
//! are published one after the other (small ones, as live changes come, mostly not).
//! Locks are taken in the order of their keys, so publishers never wait on each other in a
//! cycle.

use pubsync_database::{Bind, Dialect, Statement, bucketed, postgres_array};

use super::Reference;

/// How long a MySQL publisher waits for another one's lock, in seconds, before it fails (and
/// its events are retried).
pub(super) const MYSQL_LOCK_TIMEOUT_SECONDS: i64 = 60;

/// Locks per MySQL statement: a chunk takes the largest size that fits.
const MYSQL_LOCK_CHUNKS: [usize; 4] = [100, 20, 5, 1];

/// How many locks the entities of one table share.
pub(super) const BUCKETS: u64 = 256;

/// The sorted, distinct lock keys of `references` in `table`: one per bucket they fall in.
pub(super) fn lock_keys(table: &str, references: &[Reference]) -> Vec<i64> {
    let mut keys: Vec<i64> = references
        .iter()
        .map(|reference| {
            let mut hash = Fnv::default();
            match reference {
                Reference::Int(value) => {
                    hash.write(b"\0i");
                    hash.write(&value.to_le_bytes());
                }
                Reference::Text(value) => {
                    hash.write(b"\0t");
                    hash.write(value.as_bytes());
                }
                Reference::None => hash.write(b"\0n"),
            }
            let bucket = hash.0 % BUCKETS;
            let mut key = Fnv::default();
            key.write(table.as_bytes());
            key.write(b"\0");
            key.write(&bucket.to_le_bytes());
            i64::from_ne_bytes(key.0.to_ne_bytes())
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The statements that take the locks `keys` (sorted): on PostgreSQL one statement whose rows
/// lock in array order; on MySQL statements that each return `acquired` = 1 when they took
/// all their locks (0 when one timed out); on SQLite none.
pub(super) fn acquire(dialect: Dialect, keys: &[i64]) -> Vec<Statement> {
    if keys.is_empty() {
        return Vec::new();
    }
    match dialect {
        Dialect::Sqlite => Vec::new(),
        Dialect::Postgres => {
            let statement = Statement::new(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(? AS BIGINT[])) WITH ORDINALITY AS l(k, n) ORDER BY n",
            )
            .bind(Bind::Text(postgres_array(
                keys.iter().map(|key| key.to_string()),
            )));
            vec![statement]
        }
        Dialect::Mysql => bucketed(keys.len(), &MYSQL_LOCK_CHUNKS)
            .into_iter()
            .map(|range| {
                let chunk = &keys[range];
                // `AND` stops at the first lock that times out, so one statement waits for
                // one timeout at most, not one per lock.
                let calls = vec!["GET_LOCK(?, ?)"; chunk.len()].join(" AND ");
                let mut statement = Statement::new(format!("SELECT ({calls}) AS acquired"));
                for key in chunk {
                    statement
                        .push(Bind::Text(mysql_lock_name(*key)))
                        .push(Bind::BigInt(MYSQL_LOCK_TIMEOUT_SECONDS));
                }
                statement
            })
            .collect(),
    }
}

/// The statement that releases the locks after the transaction, where they outlive it.
pub(super) fn release(dialect: Dialect) -> Option<Statement> {
    (dialect == Dialect::Mysql).then(|| Statement::new("DO RELEASE_ALL_LOCKS()"))
}

/// A MySQL lock name (at most 64 characters), distinct from other applications' locks.
fn mysql_lock_name(key: i64) -> String {
    format!("pubsync:{key:016x}")
}

/// What a MySQL lock statement returns.
#[derive(diesel::QueryableByName)]
pub(super) struct Acquired {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    pub(super) acquired: Option<i64>,
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_distinct_and_differ_by_table_and_reference() {
        let keys = lock_keys(
            "spy_a_storage",
            &[Reference::Int(2), Reference::Int(1), Reference::Int(2)],
        );
        assert_eq!(keys.len(), 2);
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_ne!(
            lock_keys("spy_a_storage", &[Reference::Int(1)]),
            lock_keys("spy_b_storage", &[Reference::Int(1)])
        );
        let many: Vec<Reference> = (0..10_000).map(Reference::Int).collect();
        assert_eq!(
            lock_keys("spy_a_storage", &many).len(),
            BUCKETS as usize,
            "at most one lock per bucket, however many entities"
        );
        assert_eq!(
            lock_keys("spy_a_storage", &[Reference::Int(1)]),
            lock_keys("spy_a_storage", &[Reference::Int(1)]),
            "stable"
        );
    }

    #[test]
    fn statements_per_dialect() {
        assert!(acquire(Dialect::Sqlite, &[1, 2]).is_empty());
        assert!(release(Dialect::Sqlite).is_none());
        let postgres = acquire(Dialect::Postgres, &[-3, 7]);
        assert_eq!(postgres.len(), 1);
        assert!(
            postgres[0]
                .sql()
                .starts_with("SELECT pg_advisory_xact_lock(k)")
        );
        let keys: Vec<i64> = (0..23).collect();
        let mysql = acquire(Dialect::Mysql, &keys);
        assert_eq!(mysql.len(), 4, "20, 1, 1, 1");
        assert_eq!(mysql[1].sql(), "SELECT (GET_LOCK(?, ?)) AS acquired");
        assert!(mysql[0].sql().contains("GET_LOCK(?, ?) AND GET_LOCK(?, ?)"));
        assert_eq!(mysql_lock_name(255), "pubsync:00000000000000ff");
        assert!(mysql_lock_name(-1).len() <= 64);
    }
}
