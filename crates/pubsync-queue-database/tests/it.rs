//! Integration tests of the database queue on SQLite: the conformance suite, plus what only a
//! durable, leasing queue promises.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pubsync_database::testing::dialects;
use pubsync_database::{Database, Dialect, PoolOptions};
use pubsync_queue_database::{DatabaseQueue, DatabaseQueueError, DatabaseQueueOptions, testing};
use pubsync_queue_extension::{Queue, QueueError, Settlement};

/// A fresh database with the schema, on one of the dialects compiled in; it is dropped with
/// the value.
struct TestDatabase {
    test_database: pubsync_database::testing::TestDatabase,
    database: Database,
}

impl TestDatabase {
    /// One database with the schema per dialect compiled in (servers that are unreachable
    /// outside CI are skipped loudly).
    fn all() -> Vec<Self> {
        dialects()
            .into_iter()
            .filter_map(|dialect| Self::on(dialect, true))
            .collect()
    }

    /// One database without the schema per dialect.
    fn all_empty() -> Vec<Self> {
        dialects()
            .into_iter()
            .filter_map(|dialect| Self::on(dialect, false))
            .collect()
    }

    fn on(dialect: Dialect, schema: bool) -> Option<Self> {
        let test_database = pubsync_database::testing::TestDatabase::create(dialect)?;
        let database = test_database.connect();
        if schema {
            testing::create_schema(&database).expect("create schema");
        }
        Some(Self {
            test_database,
            database,
        })
    }

    /// SQLite with the schema, for what only SQLite shows (its database-wide write lock).
    fn sqlite() -> Self {
        Self::on(Dialect::Sqlite, true).expect("sqlite needs no server")
    }

    /// Another pool on the same database, as a second process would have.
    fn connect_again(&self, options: &PoolOptions) -> Database {
        Database::connect(self.test_database.url(), options).expect("connect")
    }

    fn queue(&self) -> DatabaseQueue {
        DatabaseQueue::new(self.database.clone(), DatabaseQueueOptions::default())
    }

    fn queue_with_lease(&self, lease: Duration) -> DatabaseQueue {
        DatabaseQueue::new(
            self.connect_again(&PoolOptions::default()),
            DatabaseQueueOptions {
                lease,
                ..Default::default()
            },
        )
    }
}

fn bodies(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

fn acknowledge_all(chunk: &[pubsync_queue_extension::Delivery]) -> Settlement {
    Settlement {
        acknowledge: chunk.iter().map(|d| d.tag).collect(),
        ..Default::default()
    }
}

const WAIT: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread")]
async fn passes_the_conformance_suite() {
    for db in TestDatabase::all() {
        pubsync_queue_extension::conformance::run_all(&db.queue(), "conformance").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_worker_loses_nothing() {
    for db in TestDatabase::all() {
        let lease = Duration::from_millis(300);
        let killed = db.queue_with_lease(lease);
        killed.send("event", bodies(5, "k")).await.unwrap();
        let taken = killed.receive("event", 10, WAIT).await.unwrap();
        assert_eq!(taken.len(), 5);
        drop(killed);

        let survivor = db.queue_with_lease(lease);
        assert!(
            survivor
                .receive("event", 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "leased messages stay invisible until the lease runs out"
        );
        let again = survivor.receive("event", 10, lease * 10).await.unwrap();
        assert_eq!(
            again.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
            bodies(5, "k")
        );
        assert!(again.iter().all(|d| d.redelivered));
        survivor
            .settle("event", acknowledge_all(&again))
            .await
            .unwrap();
        assert!(survivor.depth("event").await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn late_settle_after_the_lease_ran_out_leaves_the_new_holders_messages_alone() {
    for db in TestDatabase::all() {
        let lease = Duration::from_millis(300);
        let stalled = db.queue_with_lease(lease);
        stalled.send("event", bodies(3, "s")).await.unwrap();
        let first = stalled.receive("event", 10, WAIT).await.unwrap();
        assert_eq!(first.len(), 3);
        tokio::time::sleep(lease + Duration::from_millis(50)).await;

        let holder = db.queue_with_lease(Duration::from_secs(30));
        let second = holder.receive("event", 10, WAIT).await.unwrap();
        assert_eq!(second.len(), 3);
        assert!(second.iter().all(|d| d.redelivered));

        // The stalled consumer wakes up and settles what it no longer holds.
        stalled
            .settle("event", acknowledge_all(&first))
            .await
            .unwrap();
        stalled
            .settle(
                "event",
                Settlement {
                    release: first.iter().map(|d| d.tag).collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let depth = holder.depth("event").await.unwrap();
        assert_eq!(
            (depth.ready, depth.pending),
            (0, 3),
            "still held by the new consumer"
        );
        assert!(
            stalled
                .receive("event", 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );

        holder
            .settle("event", acknowledge_all(&second))
            .await
            .unwrap();
        assert!(holder.depth("event").await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_do_not_see_each_others_messages() {
    for db in TestDatabase::all() {
        let queue = db.queue();
        queue.declare(&["a".into(), "b".into()]).await.unwrap();
        queue.send("a", bodies(3, "a")).await.unwrap();
        queue.send("b", bodies(2, "b")).await.unwrap();
        assert_eq!(queue.depth("a").await.unwrap().ready, 3);
        assert_eq!(queue.depth("b").await.unwrap().ready, 2);

        let from_b = queue.receive("b", 10, WAIT).await.unwrap();
        assert_eq!(
            from_b.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
            bodies(2, "b")
        );
        assert!(from_b.iter().all(|d| d.queue == "b"));
        // Tags of `b` settled as `a` touch nothing.
        queue.settle("a", acknowledge_all(&from_b)).await.unwrap();
        assert_eq!(queue.depth("b").await.unwrap().pending, 2);
        queue.settle("b", acknowledge_all(&from_b)).await.unwrap();
        assert!(queue.depth("b").await.unwrap().is_empty());

        let from_a = queue.receive("a", 10, WAIT).await.unwrap();
        assert_eq!(
            from_a.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
            bodies(3, "a")
        );
        assert!(
            queue
                .receive("a.error", 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_receivers_never_get_the_same_message_twice() {
    const MESSAGES: usize = 2_000;
    for db in TestDatabase::all() {
        db.queue()
            .send("sync", bodies(MESSAGES, "c"))
            .await
            .unwrap();

        let receivers = (0..2).map(|_| {
            let queue = Arc::new(db.queue_with_lease(Duration::from_secs(30)));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let chunk = queue.receive("sync", 50, WAIT).await.unwrap();
                    if chunk.is_empty() {
                        return seen;
                    }
                    assert!(chunk.iter().all(|d| !d.redelivered));
                    queue.settle("sync", acknowledge_all(&chunk)).await.unwrap();
                    seen.extend(chunk.into_iter().map(|d| d.body));
                }
            })
        });
        let mut all = Vec::new();
        let mut counts = Vec::new();
        for receiver in receivers.collect::<Vec<_>>() {
            let seen = receiver.await.unwrap();
            counts.push(seen.len());
            all.extend(seen);
        }
        let unique: HashSet<_> = all.iter().cloned().collect();
        assert_eq!(unique.len(), all.len(), "no message delivered twice");
        assert_eq!(
            unique,
            bodies(MESSAGES, "c").into_iter().collect::<HashSet<_>>()
        );
        assert!(db.queue().depth("sync").await.unwrap().is_empty());
        eprintln!("messages per receiver: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_ten_thousand_bodies_in_one_call() {
    for db in TestDatabase::all() {
        let queue = db.queue();
        let sent = bodies(10_000, "big");
        queue.send("bulk", sent.clone()).await.unwrap();
        assert_eq!(queue.depth("bulk").await.unwrap().ready, 10_000);
        let received = queue.receive("bulk", 20_000, WAIT).await.unwrap();
        assert_eq!(
            received.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
            sent,
            "all of them, in order"
        );
        queue
            .settle("bulk", acknowledge_all(&received))
            .await
            .unwrap();
        assert!(queue.depth("bulk").await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_table_says_to_run_pubsync_setup() {
    for db in TestDatabase::all_empty() {
        let queue = db.queue();
        let error = queue.declare(&["event".into()]).await.unwrap_err();
        assert!(!error.is_transient());
        assert!(error.to_string().contains("run `pubsync setup`"), "{error}");
        let source = std::error::Error::source(&error).expect("source");
        assert!(
            source.downcast_ref::<DatabaseQueueError>().is_some(),
            "{source:?}"
        );

        let error = queue
            .receive("event", 10, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("run `pubsync setup`"), "{error}");
        let error = queue.send("event", bodies(2, "m")).await.unwrap_err();
        assert_eq!(
            error.bodies,
            bodies(2, "m"),
            "a failed send hands the bodies back"
        );
        assert!(error.to_string().contains("run `pubsync setup`"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn declare_refuses_names_the_table_cannot_hold() {
    for db in TestDatabase::all() {
        let queue = db.queue();
        queue.declare(&["event".into()]).await.unwrap();
        queue.declare(&["event".into()]).await.unwrap();
        for name in [String::new(), "q".repeat(256), "q".repeat(250)] {
            let error = queue
                .declare(std::slice::from_ref(&name))
                .await
                .unwrap_err();
            assert!(
                matches!(error, QueueError::InvalidName { .. }),
                "{}: {error}",
                name.len()
            );
        }
        let error = queue.send("", bodies(1, "x")).await.unwrap_err();
        assert!(matches!(error.source, QueueError::InvalidName { .. }));
        assert_eq!(error.bodies.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_database_is_transient_and_send_hands_bodies_back() {
    let db = TestDatabase::sqlite();
    let short = PoolOptions {
        timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let queue = DatabaseQueue::new(db.connect_again(&short), DatabaseQueueOptions::default());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = db.connect_again(&PoolOptions::default());
    let lock = std::thread::spawn(move || {
        pubsync_database::with_connection!(holder, |conn| {
            use pubsync_database::diesel::connection::SimpleConnection as _;
            conn.batch_execute("BEGIN IMMEDIATE")
                .map_err(pubsync_database::DatabaseError::query("begin"))?;
            locked_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            conn.batch_execute("ROLLBACK")
                .map_err(pubsync_database::DatabaseError::query("rollback"))
        })
    });
    locked_rx.recv().unwrap();

    let error = queue.send("event", bodies(3, "l")).await.unwrap_err();
    assert!(error.source.is_transient(), "{error:?}");
    assert!(matches!(error.source, QueueError::Unavailable { .. }));
    assert_eq!(error.bodies, bodies(3, "l"));
    let error = queue
        .receive("event", 10, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");

    done_tx.send(()).unwrap();
    lock.join().unwrap().unwrap();
    queue.send("event", bodies(3, "l")).await.unwrap();
    assert_eq!(queue.depth("event").await.unwrap().ready, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_and_settle_round_trips() {
    // A quick measurement, printed with `--nocapture`; asserts only that it finishes.
    for db in TestDatabase::all() {
        let queue = db.queue();
        let rounds = 500;
        queue.send("rt", bodies(rounds, "rt")).await.unwrap();
        let started = Instant::now();
        for _ in 0..rounds {
            let chunk = queue.receive("rt", 1, WAIT).await.unwrap();
            assert_eq!(chunk.len(), 1);
            queue.settle("rt", acknowledge_all(&chunk)).await.unwrap();
        }
        let elapsed = started.elapsed();
        eprintln!(
            "{rounds} receive+settle round trips in {elapsed:?}: {:.0}/s",
            rounds as f64 / elapsed.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prefixed_queues_pass_the_conformance_suite_and_stay_apart() {
    let db = TestDatabase::sqlite();
    let a = pubsync_queue_extension::Prefixed::new(db.queue(), "tenant_a.");
    let b = pubsync_queue_extension::Prefixed::new(db.queue(), "tenant_b.");
    pubsync_queue_extension::conformance::run_all(&a, "prefixed").await;
    a.send("event", bodies(3, "a")).await.unwrap();
    assert!(
        b.receive("event", 10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "b does not see a's queue"
    );
    let taken = a
        .receive("event", 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(taken.len(), 3);
    assert!(
        taken.iter().all(|d| d.queue == "event"),
        "deliveries carry the unprefixed name"
    );
    assert_eq!(
        db.queue().depth("tenant_a.event").await.unwrap().pending,
        3,
        "the prefix is in the real name"
    );
}

/// Acknowledging a full chunk does not wait for a producer whose transaction has not yet
/// committed its message. (On MySQL a thousand ids made the delete a table scan, and a
/// scanning delete waits on every row another transaction holds: here, until the producer
/// gives up.)
#[tokio::test(flavor = "multi_thread")]
async fn settling_a_chunk_does_not_wait_for_a_producers_open_transaction() {
    for db in TestDatabase::all() {
        if db.database.dialect() == Dialect::Sqlite {
            // One writer at a time is SQLite's model: an open write transaction holds up
            // every other writer until it ends.
            continue;
        }
        let queue = db.queue();
        queue.send("open", bodies(1000, "open")).await.unwrap();
        let mut chunk = Vec::new();
        while chunk.len() < 1000 {
            chunk.extend(queue.receive("open", 1000, WAIT).await.unwrap());
        }
        let producer = pubsync_database::testing::OpenTransaction::begin(
            &db.database,
            "INSERT INTO pubsync_queue_message (queue_name, body, available_at) \
             VALUES ('open', 'in flight', 0)",
        );
        tokio::time::timeout(
            Duration::from_secs(20),
            queue.settle("open", acknowledge_all(&chunk)),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{:?}: settling waited for the open transaction",
                db.database.dialect()
            )
        })
        .unwrap();
        drop(producer);
        assert!(queue.depth("open").await.unwrap().is_empty());
    }
}
