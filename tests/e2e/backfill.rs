//! Existing data in, lost data back: `publish:trigger-events` backfills rows no trigger saw,
//! `sync:data` refills a flushed key-value store, and `verify` finds what differs and repairs
//! exactly that; all of it while the shop keeps writing. Every case runs on every database,
//! with database storage and with Redis (direct synchronization).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pubsync_backend::backfill::export::{ExportOptions, sync_data};
use pubsync_backend::backfill::trigger::{TriggerOptions, TriggerReport, trigger_events};
use pubsync_backend::backfill::verify::{VerifyOptions, VerifyReport, verify};
use pubsync_backend::backfill::{Ending, NoProgress, Progress, Stop};
use pubsync_database::Dialect;
use pubsync_test_support::{Service, require, unique_name};
use pubsync_tests::TestApp;

/// Rows the shop had before pubsync came.
const ROWS: i64 = 10_000;

/// The storage a case runs with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Storage {
    Database,
    Redis,
}

/// A case's application, before setup, with its storage (and Redis prefix, removed after).
struct Case {
    t: TestApp,
    redis: Option<Redis>,
}

struct Redis {
    url: String,
    prefix: String,
}

impl Redis {
    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-u", &self.url])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Removes every key of the prefix: a flushed (or lost) Redis.
    fn flush(&self) {
        self.cli(&[
            "EVAL",
            "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1",
            "0",
            &format!("{}*", self.prefix),
        ]);
    }

    fn keys(&self) -> usize {
        self.cli(&[
            "EVAL",
            "return #redis.call('KEYS', ARGV[1])",
            "0",
            &format!("{}kv:message:*", self.prefix),
        ])
        .parse()
        .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Case {
    fn new(dialect: Dialect, storage: Storage) -> Option<Self> {
        let redis = match storage {
            Storage::Database => None,
            Storage::Redis => Some(Redis {
                url: require(Service::Redis)?,
                prefix: format!("{}:", unique_name("backfill")),
            }),
        };
        let toml = match &redis {
            None => String::new(),
            Some(redis) => format!(
                "storage_url = {:?}\n[storage]\nkey_prefix = {:?}\n[sync]\ndirect = true\n",
                redis.url, redis.prefix
            ),
        };
        let t = TestApp::before_setup(dialect, &toml)?;
        Some(Self { t, redis })
    }

    /// The shop's table with `ROWS` rows whose ids have gaps (every third id), made before
    /// pubsync's setup, which adopts it: no trigger saw these rows.
    fn shop_with_rows(self) -> Self {
        let id = match self.t.dialect() {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "SERIAL PRIMARY KEY",
            Dialect::Mysql => "INT AUTO_INCREMENT PRIMARY KEY",
        };
        self.t.sql(&format!(
            "CREATE TABLE spy_hello_spryker_message (
                id_hello_spryker_message {id},
                name VARCHAR(400) NOT NULL,
                message TEXT
            )"
        ));
        for first in (0..ROWS).step_by(1000) {
            let values: Vec<String> = (first..(first + 1000).min(ROWS))
                .map(|i| format!("({}, 'name {i}', 'message {i}')", 3 * i + 1))
                .collect();
            self.t.sql(&format!(
                "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) VALUES {}",
                values.join(", ")
            ));
        }
        if self.t.dialect() == Dialect::Postgres {
            self.t.sql(&format!(
                "SELECT setval(pg_get_serial_sequence('spy_hello_spryker_message', 'id_hello_spryker_message'), {})",
                3 * ROWS
            ));
        }
        let report = self.t.app.setup().expect("setup");
        assert_eq!(
            report.adoption.uncaptured_rows,
            [("spy_hello_spryker_message", ROWS)]
        );
        self
    }

    fn storage_rows(&self) -> i64 {
        self.t
            .count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message_storage")
    }

    async fn backfill(&self, options: &TriggerOptions, progress: &dyn Progress) -> Ending {
        self.backfill_report(options, progress)
            .await
            .ending
            .expect("an ending")
    }

    async fn backfill_report(
        &self,
        options: &TriggerOptions,
        progress: &dyn Progress,
    ) -> TriggerReport {
        let worker = self.t.app.worker().await.expect("worker");
        let source = &pubsync_hello::TRIGGER_SOURCE;
        trigger_events(&worker, source, None, options, progress, &Stop::new())
            .await
            .expect("trigger events")
    }

    async fn verify(&self, repair: bool) -> VerifyReport {
        let worker = self.t.app.worker().await.expect("worker");
        let options = VerifyOptions {
            repair,
            ..VerifyOptions::default()
        };
        verify(
            &worker,
            &pubsync_hello::TRIGGER_SOURCE,
            &pubsync_hello::SYNCHRONIZATION.iter().collect::<Vec<_>>(),
            &options,
            &NoProgress,
            &Stop::new(),
        )
        .await
        .expect("verify")
    }

    /// Empties the sync outbox without relaying it: the changes planted by hand since reach
    /// only the storage table, as after a lost message.
    fn drop_sync_outbox(&self) {
        self.t.sql("DELETE FROM pubsync_sync_outbox");
    }
}

/// One test per database and storage.
macro_rules! on_every_database_and_storage {
    ($(async fn $name:ident($case:ident: Case) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($case: Case) $body

            async fn run(dialect: Dialect, storage: Storage) {
                if let Some(c) = Case::new(dialect, storage) {
                    case(c).await;
                }
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite_database() { run(Dialect::Sqlite, Storage::Database).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite_redis() { run(Dialect::Sqlite, Storage::Redis).await }
            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres_database() { run(Dialect::Postgres, Storage::Database).await }
            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres_redis() { run(Dialect::Postgres, Storage::Redis).await }
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql_database() { run(Dialect::Mysql, Storage::Database).await }
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql_redis() { run(Dialect::Mysql, Storage::Redis).await }
        }
    )*};
}

/// Asks to stop when the first chunk is done, as Ctrl-C would.
struct StopAfterFirstChunk(Arc<Stop>);

impl Progress for StopAfterFirstChunk {
    fn start(&self, _what: &str, _total: u64, _done: u64) {}
    fn advance(&self, _count: u64) {
        self.0.request();
    }
    fn finish(&self) {}
}

on_every_database_and_storage! {
    async fn pre_existing_rows_with_gaps_are_backfilled_completely(c: Case) {
        let c = c.shop_with_rows();
        assert_eq!(c.storage_rows(), 0, "setup publishes nothing by itself");
        let report = c.backfill_report(&TriggerOptions::default(), &NoProgress).await;
        assert_eq!(report.ending, Some(Ending::Complete));
        // The sync outbox is relayed beside the publishing, a chunk read while the one
        // before is handed on: each of its rows once, none skipped, none taken twice.
        let recorded = if c.redis.is_some() { ROWS as usize } else { 0 };
        assert_eq!(report.sync_relayed, recorded);
        assert_eq!(c.storage_rows(), ROWS, "every id, none skipped at a gap");
        let storage = c.t.message_storage();
        assert_eq!(storage[0].0, "message:1");
        assert_eq!(storage[0].1, serde_json::json!({"name": "name 0", "message": "message 0"}));
        assert_eq!(storage.last().unwrap().0, format!("message:{}", 3 * (ROWS - 1) + 1));
        if let Some(redis) = &c.redis {
            assert_eq!(redis.keys(), ROWS as usize, "direct synchronization wrote every key");
        }
        let report = c.verify(false).await;
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!((report.entities, report.expected), (ROWS as usize, ROWS as usize));

        // Running it again republishes the same rows and changes nothing.
        c.backfill(&TriggerOptions::default(), &NoProgress).await;
        assert_eq!(c.storage_rows(), ROWS);
        assert_eq!(c.t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox"), 0);
    }

    async fn a_stopped_backfill_resumes_after_its_last_chunk(c: Case) {
        let c = c.shop_with_rows();
        let stop = Arc::new(Stop::new());
        let worker = c.t.app.worker().await.unwrap();
        let options = TriggerOptions { chunk_size: 4000, ..TriggerOptions::default() };
        let source = &pubsync_hello::TRIGGER_SOURCE;
        let first = trigger_events(&worker, source, None, &options, &StopAfterFirstChunk(stop.clone()), &stop)
            .await
            .unwrap();
        assert_eq!(first.ending, Some(Ending::Stopped));
        assert_eq!(first.triggered, 4000);
        assert_eq!(c.storage_rows(), 4000);
        let second = trigger_events(&worker, source, None, &options, &NoProgress, &Stop::new())
            .await
            .unwrap();
        assert_eq!(second.resumed_after, Some(3 * 3999 + 1), "after the first chunk's last id");
        assert_eq!(second.triggered, (ROWS - 4000) as usize, "none sent twice");
        assert_eq!(second.ending, Some(Ending::Complete));
        assert_eq!(c.storage_rows(), ROWS);
        // Complete: the next run starts over.
        let third = trigger_events(&worker, source, None, &options, &NoProgress, &Stop::new())
            .await
            .unwrap();
        assert_eq!((third.resumed_after, third.triggered), (None, ROWS as usize));
    }

    async fn sync_data_refills_a_flushed_key_value_store(c: Case) {
        let c = c.shop_with_rows();
        c.backfill(&TriggerOptions::default(), &NoProgress).await;
        let worker = c.t.app.worker().await.unwrap();
        let table = &pubsync_hello::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;
        let Some(redis) = &c.redis else {
            // Database storage: the storage tables are the read model; sync:data has nothing
            // to send, and verify agrees.
            assert!(worker.key_value_store().is_none());
            assert!(c.verify(false).await.is_clean());
            return;
        };
        redis.flush();
        assert_eq!(redis.keys(), 0);
        let report = c.verify(false).await;
        assert_eq!(report.key_value.as_ref().unwrap().missing.count, ROWS as usize);
        // Publishing again does not refill it: the storage rows did not change.
        c.backfill(&TriggerOptions::default(), &NoProgress).await;
        assert_eq!(redis.keys(), 0);
        let exported = sync_data(&worker, table, None, &ExportOptions::default(), &NoProgress, &Stop::new())
            .await
            .unwrap();
        assert_eq!(exported.exported, ROWS as usize);
        assert_eq!(redis.keys(), ROWS as usize);
        let report = c.verify(false).await;
        assert!(report.is_clean(), "{report:#?}");
        // By ids: only the rows of those references.
        redis.flush();
        let some = sync_data(&worker, table, Some(&[1, 4, 5]), &ExportOptions::default(), &NoProgress, &Stop::new())
            .await
            .unwrap();
        assert_eq!((some.exported, redis.keys()), (2, 2), "id 5 is a gap");
    }

    async fn verify_finds_planted_differences_and_repair_fixes_exactly_those(c: Case) {
        let c = c.shop_with_rows();
        c.backfill(&TriggerOptions::default(), &NoProgress).await;
        assert!(c.verify(false).await.is_clean());
        // An edited storage row, a missing one, and an orphaned one (its entity never existed).
        c.t.sql(r#"UPDATE spy_hello_spryker_message_storage SET data = '{"name":"edited"}' WHERE fk_hello_spryker_message = 4"#);
        c.t.sql("DELETE FROM spy_hello_spryker_message_storage WHERE fk_hello_spryker_message = 7");
        let key = c.t.quote("key");
        c.t.sql(&format!(
            r#"INSERT INTO spy_hello_spryker_message_storage (fk_hello_spryker_message, {key}, data) VALUES (2, 'message:2', '{{"name":"ghost"}}')"#
        ));
        c.drop_sync_outbox();
        if let Some(redis) = &c.redis {
            // A deleted key, and an orphaned key no row stands behind.
            redis.cli(&["DEL", &format!("{}kv:message:10", redis.prefix)]);
            redis.cli(&["SET", &format!("{}kv:message:999999", redis.prefix), r#"{"name":"stray","_timestamp":1.5}"#]);
        }
        let report = c.verify(false).await;
        assert!(!report.is_clean());
        assert_eq!(report.storage.stale.first, ["message:4"]);
        assert_eq!(report.storage.missing.first, ["message:7"]);
        assert_eq!(report.storage.orphaned.first, ["message:2"]);
        assert_eq!(report.storage.stale.count + report.storage.missing.count + report.storage.orphaned.count, 3);
        if c.redis.is_some() {
            let kv = report.key_value.as_ref().unwrap();
            assert_eq!(kv.missing.first, ["message:10"]);
            assert_eq!(kv.orphaned.first, ["message:999999"]);
            assert_eq!(kv.stale.count, 0, "the edited row never reached Redis: {kv:#?}");
        }

        let repaired = c.verify(true).await;
        let repairs = repaired.repairs.unwrap();
        assert_eq!(repairs.republished, 3, "the three entities whose rows differ: {repairs:?}");
        if let Some(redis) = &c.redis {
            assert_eq!((repairs.resynced, repairs.deleted), (1, 1), "{repairs:?}");
            assert_eq!(redis.keys(), ROWS as usize);
        } else {
            assert_eq!((repairs.resynced, repairs.deleted), (0, 0), "{repairs:?}");
        }
        let after = c.verify(false).await;
        assert!(after.is_clean(), "{after:#?}");
        assert_eq!(c.storage_rows(), ROWS);
    }

    async fn a_backfill_beside_live_updates_and_deletes_ends_consistent(c: Case) {
        let c = c.shop_with_rows();
        // A worker publishes the shop's live changes while the backfill runs.
        let stop_worker = Arc::new(AtomicBool::new(false));
        let worker = c.t.app.worker().await.unwrap();
        let stop = stop_worker.clone();
        let live_worker = tokio::spawn(async move { worker.run(false, &stop).await });
        // The shop's writer, updating and deleting the rows being backfilled.
        let database = c.t.app.database().clone();
        let writer = std::thread::spawn(move || {
            for round in 0..150_i64 {
                let id = 1 + 3 * ((round * 67) % ROWS);
                database
                    .batch_execute(&format!(
                        "UPDATE spy_hello_spryker_message SET message = 'live {round}' WHERE id_hello_spryker_message = {id}"
                    ))
                    .unwrap();
                let gone = 1 + 3 * ((round * 131 + 7) % ROWS);
                database
                    .batch_execute(&format!(
                        "DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = {gone}"
                    ))
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let options = TriggerOptions { chunk_size: 500, ..TriggerOptions::default() };
        assert_eq!(c.backfill(&options, &NoProgress).await, Ending::Complete);
        writer.join().unwrap();
        stop_worker.store(true, std::sync::atomic::Ordering::Relaxed);
        live_worker.await.unwrap().expect("live worker");
        c.t.work().await;
        let report = c.verify(false).await;
        assert!(report.is_clean(), "{report:#?}");
        let sources = c.t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message");
        assert!(sources < ROWS, "the writer deleted rows");
        assert_eq!(c.storage_rows(), sources);
    }

    async fn given_ids_go_through_the_event_queue_with_enqueue(c: Case) {
        let c = c.shop_with_rows();
        let worker = c.t.app.worker().await.unwrap();
        let options = TriggerOptions { enqueue: true, ..TriggerOptions::default() };
        let report = trigger_events(&worker, &pubsync_hello::TRIGGER_SOURCE, Some(&[1, 4, 5]), &options, &NoProgress, &Stop::new())
            .await
            .unwrap();
        assert_eq!((report.triggered, report.outcome.messages), (3, 1), "one message of three events");
        assert_eq!(c.storage_rows(), 0, "the workers publish them");
        c.t.work().await;
        let keys: Vec<String> = c.t.message_storage().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["message:1", "message:4"], "id 5 is a gap: nothing to publish");
    }
}

/// SQLite keeps whatever bytes it is given: a storage row whose data is not UTF-8 is stale to
/// `verify`, not a reason to stop, and a repair rewrites it.
#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_storage_data_that_is_not_utf8_as_stale_and_repair_rewrites_it() {
    let c = Case::new(Dialect::Sqlite, Storage::Database)
        .expect("sqlite")
        .shop_with_rows();
    c.backfill(&TriggerOptions::default(), &NoProgress).await;
    c.t.sql("UPDATE spy_hello_spryker_message_storage SET data = CAST(X'7b22ff227d' AS TEXT) WHERE fk_hello_spryker_message = 4");
    c.drop_sync_outbox();
    let report = c.verify(false).await;
    assert_eq!(report.storage.stale.first, ["message:4"], "{report:#?}");
    assert_eq!(report.storage.stale.count, 1);
    let repairs = c.verify(true).await.repairs.unwrap();
    assert_eq!(repairs.republished, 1, "{repairs:?}");
    assert!(c.verify(false).await.is_clean());
}

/// SQLite keeps whatever bytes it is given: a storage row whose key is not UTF-8 (no key
/// pubsync writes) is an orphan to `verify`, whether its entity exists or not; `sync:data`
/// sends every other row and counts it out; a repair deletes it, and its deletion is not sent
/// on to synchronization, where it would only fail.
#[tokio::test(flavor = "multi_thread")]
async fn storage_rows_whose_key_is_not_utf8_are_orphans_that_repair_deletes() {
    for storage in [Storage::Database, Storage::Redis] {
        let Some(c) = Case::new(Dialect::Sqlite, storage) else {
            continue;
        };
        let c = c.shop_with_rows();
        c.backfill(&TriggerOptions::default(), &NoProgress).await;
        // Id 4 exists; id 2 is a gap.
        c.t.sql(
            "INSERT INTO spy_hello_spryker_message_storage (fk_hello_spryker_message, \"key\", data) VALUES \
             (4, CAST(X'6d6573736167653a34ff' AS TEXT), '{}'), (2, CAST(X'6d6573736167653afe32' AS TEXT), '{}')",
        );
        c.drop_sync_outbox();
        let report = c.verify(false).await;
        let mut orphaned = report.storage.orphaned.first.clone();
        orphaned.sort();
        assert_eq!(
            orphaned,
            [r"message:4\xff", r"message:\xfe2"],
            "{storage:?}: {report:#?}"
        );
        assert_eq!(report.storage.orphaned.count, 2);
        assert_eq!(report.storage.missing.count + report.storage.stale.count, 0);

        let worker = c.t.app.worker().await.unwrap();
        let table = &pubsync_hello::generated::synchronization::SPY_HELLO_SPRYKER_MESSAGE_STORAGE;
        let all = sync_data(
            &worker,
            table,
            None,
            &ExportOptions::default(),
            &NoProgress,
            &Stop::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            (all.exported, all.unreadable),
            (ROWS as usize, 2),
            "{storage:?}"
        );
        assert_eq!(all.ending, Some(Ending::Complete));
        let some = sync_data(
            &worker,
            table,
            Some(&[4]),
            &ExportOptions::default(),
            &NoProgress,
            &Stop::new(),
        )
        .await
        .unwrap();
        assert_eq!((some.exported, some.unreadable), (1, 1), "{storage:?}");
        assert_eq!(some.first_unreadable.as_deref(), Some(r"message:4\xff"));
        if let Some(redis) = &c.redis {
            assert_eq!(redis.keys(), ROWS as usize);
        }

        let repairs = c.verify(true).await.repairs.unwrap();
        assert_eq!(repairs.unreadable_deleted, 2, "{storage:?}: {repairs:?}");
        assert_eq!(
            repairs.republished + repairs.resynced + repairs.deleted,
            0,
            "{repairs:?}"
        );
        assert_eq!(c.storage_rows(), ROWS);
        assert_eq!(
            c.t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox"),
            0,
            "{storage:?}: the deletions are not sent"
        );
        let report = c.verify(false).await;
        assert!(report.is_clean(), "{storage:?}: {report:#?}");
    }
}

// The health check's storage rows are referenced by a text column (its key), not by the
// source ids: `verify` looks them up by the keys it expects instead.
pubsync_tests::on_every_database! {
    async fn verify_checks_a_resource_whose_reference_column_is_text(t: TestApp) {
        t.sql("INSERT INTO spy_publish_and_synchronize_health_check (health_check_key, health_check_data) VALUES ('health-check', '{\"written\":1}')");
        t.work().await;
        let worker = t.app.worker().await.unwrap();
        let tables: Vec<_> = pubsync_health::generated::synchronization::ALL.iter().collect();
        let (options, stop) = (VerifyOptions::default(), Stop::new());
        let check = || verify(&worker, &pubsync_health::TRIGGER_SOURCE, &tables, &options, &NoProgress, &stop);
        let report = check().await.expect("verify");
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!((report.entities, report.expected), (1, 1));
        t.sql("UPDATE spy_publish_and_synchronize_health_check_storage SET data = '{}'");
        let report = check().await.expect("verify");
        assert_eq!(report.storage.stale.count, 1, "{report:#?}");
    }
}
