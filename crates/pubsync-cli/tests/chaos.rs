//! The fault suite: a stream of changes (inserts, updates, deletes, primary-key changes, 1 %
//! of them poison) through PostgreSQL + RabbitMQ + Redis servers of the suite's own, while it
//! restarts RabbitMQ and Redis (once losing its data), crashes the database, kills workers
//! with SIGKILL, runs four workers at once and feeds malformed and hostile messages into the
//! queues. At the end `pubsync verify` must find nothing but the poison rows, and those and
//! the malformed messages must sit in error queues with their reasons. The workers' counters
//! (read just before each is killed or stopped) against the rows the outboxes ever held
//! (logged by triggers of the run's own) say what was relayed or written twice: at least
//! that much, since what a worker finished in the moment between the reading and the kill
//! is not counted.
//!
//! The short mode runs in CI with every test; `cargo xtask chaos` runs the long one
//! (`PUBSYNC_TEST_CHAOS=long`) and prints the figures `docs/reliability.md` reports.
#![cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pubsync_queue_extension::Queue as _;
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::private::{PrivatePostgres, PrivateRabbit, PrivateRedis, free_port};

/// How much of everything a run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    changes: usize,
    worker_kills: usize,
    rabbit_restarts: usize,
    /// Redis restarts, the last of which loses its data.
    redis_restarts: usize,
    database_crashes: usize,
}

impl Plan {
    fn from_environment() -> Self {
        if std::env::var("PUBSYNC_TEST_CHAOS").is_ok_and(|mode| mode == "long") {
            Self {
                changes: 100_000,
                worker_kills: 20,
                rabbit_restarts: 3,
                redis_restarts: 3,
                database_crashes: 1,
            }
        } else {
            Self {
                changes: 4_000,
                worker_kills: 4,
                rabbit_restarts: 1,
                redis_restarts: 2,
                database_crashes: 1,
            }
        }
    }
}

/// A poison message: longer than the run's `max_payload_bytes`, so its storage row is refused.
const POISON_BYTES: usize = 1100;

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The database of a run: a PostgreSQL cluster of the run's own, which it crashes, or a
/// database on the shared MariaDB, which no test may stop.
enum Database {
    Postgres(PrivatePostgres),
    Mysql(pubsync_database::testing::TestDatabase),
}

impl Database {
    fn url(&self) -> String {
        match self {
            Self::Postgres(postgres) => postgres.url(),
            Self::Mysql(database) => database.url().to_connection_string(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "PostgreSQL",
            Self::Mysql(_) => "MySQL",
        }
    }
}

/// Runs `sql` in the database's own shell (`psql` or `mariadb`) at `url`; the error output
/// when it failed (the database is down, a constraint).
fn run_sql(url: &str, sql: &str) -> Result<String, String> {
    let output = common::database_shell(url, sql).map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Logs every row inserted into the outbox and into the sync outbox in a table of the run's
/// own, by a trigger, in the inserting transaction: the rows ever recorded can be counted
/// after the relays deleted them, and what the workers relayed or wrote beyond that count
/// they did twice.
fn log_recorded_rows(url: &str) {
    use pubsync_database::names::{outbox, sync_outbox};
    let mut sql = String::new();
    for (log, table, id) in [
        ("chaos_captured", outbox::TABLE, outbox::ID),
        ("chaos_recorded", sync_outbox::TABLE, sync_outbox::ID),
    ] {
        sql.push_str(&format!("CREATE TABLE {log} (id BIGINT NOT NULL);"));
        if url.starts_with("mysql://") {
            sql.push_str(&format!(
                "CREATE TRIGGER {log} AFTER INSERT ON {table} FOR EACH ROW INSERT INTO {log} VALUES (NEW.{id});"
            ));
        } else {
            sql.push_str(&format!(
                "CREATE FUNCTION {log}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 INSERT INTO {log} VALUES (NEW.{id}); RETURN NULL; END $$; \
                 CREATE TRIGGER {log} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {log}();"
            ));
        }
    }
    run_sql(url, &sql).unwrap();
}

/// The number right before `label` in a worker's summary line; 0 when it is not there.
fn count_before(summary: &str, label: &str) -> u64 {
    summary.find(label).map_or(0, |end| {
        let digits = summary[..end]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or_default();
        digits.parse().unwrap_or(0)
    })
}

/// What the writer knows of the table: the ids that exist and which of them are poison.
#[derive(Default)]
struct Model {
    live: Vec<i64>,
    poison: HashSet<i64>,
    next_id: i64,
}

impl Model {
    fn reload(&mut self, url: &str) -> Result<(), String> {
        let ids = run_sql(
            url,
            "SELECT id_hello_spryker_message, length(coalesce(message, '')) FROM spy_hello_spryker_message",
        )?;
        self.live.clear();
        self.poison.clear();
        for line in ids.lines().filter(|line| !line.is_empty()) {
            let (id, length) = line.split_once(['|', '\t']).unwrap();
            let id: i64 = id.parse().unwrap();
            self.live.push(id);
            if length.parse::<usize>().unwrap() >= POISON_BYTES {
                self.poison.insert(id);
            }
            self.next_id = self.next_id.max(id + 1);
        }
        Ok(())
    }
}

/// Writes `plan.changes` changes in transactions of 20, retrying through outages; counts
/// them in `written`.
fn write_changes(url: &str, changes: usize, written: &AtomicUsize, seed: u64) {
    let mut random = Random(seed);
    let mut model = Model {
        next_id: 1,
        ..Model::default()
    };
    while written.load(Ordering::Relaxed) < changes {
        let mut sql = String::from("BEGIN;");
        let mut planned = Model {
            live: model.live.clone(),
            poison: model.poison.clone(),
            next_id: model.next_id,
        };
        let mut count = 0;
        while count < 20 {
            let choice = random.below(100);
            if planned.live.is_empty() || choice < 40 {
                let id = planned.next_id;
                planned.next_id += 1;
                let message = if random.below(100) == 0 {
                    planned.poison.insert(id);
                    "p".repeat(POISON_BYTES)
                } else {
                    format!("m{id}")
                };
                sql.push_str(&format!(
                    "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) VALUES ({id}, 'n{id}', '{message}');"
                ));
                planned.live.push(id);
            } else {
                let index = random.below(planned.live.len());
                let id = planned.live[index];
                if choice < 70 {
                    let message = if planned.poison.contains(&id) {
                        "q".repeat(POISON_BYTES)
                    } else {
                        format!("u{}", random.below(1_000_000))
                    };
                    sql.push_str(&format!(
                        "UPDATE spy_hello_spryker_message SET message = '{message}' WHERE id_hello_spryker_message = {id};"
                    ));
                } else if choice < 90 {
                    sql.push_str(&format!(
                        "DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = {id};"
                    ));
                    planned.live.swap_remove(index);
                    planned.poison.remove(&id);
                } else {
                    let new_id = planned.next_id;
                    planned.next_id += 1;
                    sql.push_str(&format!(
                        "UPDATE spy_hello_spryker_message SET id_hello_spryker_message = {new_id} WHERE id_hello_spryker_message = {id};"
                    ));
                    planned.live[index] = new_id;
                    if planned.poison.remove(&id) {
                        planned.poison.insert(new_id);
                    }
                }
            }
            count += 1;
        }
        sql.push_str("COMMIT;");
        match run_sql(url, &sql) {
            Ok(_) => {
                model = planned;
                written.fetch_add(count, Ordering::Relaxed);
            }
            Err(_) => {
                // Down, or the commit's fate is unknown: learn what the table holds.
                std::thread::sleep(Duration::from_millis(200));
                while model.reload(url).is_err() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

/// What the workers did, from their counters: outbox rows relayed and key changes written to
/// the key-value store.
#[derive(Debug, Default, Clone, Copy)]
struct Done {
    relayed: u64,
    synced: u64,
}

impl Done {
    /// The counters of the worker serving HTTP on `port`, asked again for up to 20 s while it
    /// does not answer (its gauges wait on a broker or database coming back); `None` then.
    fn scrape(port: u16) -> Option<Self> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(done) = Self::scrape_once(port) {
                return Some(done);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn scrape_once(port: u16) -> Option<Self> {
        let (status, metrics) = common::http_get(port, "/metrics")?;
        (status == 200).then(|| Self {
            relayed: common::metric_sum(&metrics, "pubsync_changes_captured_total", ""),
            synced: common::metric_sum(&metrics, "pubsync_keys_synced_total", ""),
        })
    }

    fn add(&mut self, other: Self) {
        self.relayed += other.relayed;
        self.synced += other.synced;
    }
}

/// The workers: four at once, one of which is killed and replaced now and then. Each serves
/// its counters on a port of its own, read just before it is killed or stopped.
struct Workers<'a> {
    dir: &'a Path,
    running: Vec<(Child, u16)>,
    started: usize,
    done: Done,
    /// Workers whose counters could not be read: what they did is missing from `done`.
    unread: usize,
}

impl<'a> Workers<'a> {
    fn new(dir: &'a Path, count: usize) -> Self {
        let mut workers = Self {
            dir,
            running: Vec::new(),
            started: 0,
            done: Done::default(),
            unread: 0,
        };
        for _ in 0..count {
            let child = workers.spawn();
            workers.running.push(child);
        }
        workers
    }

    fn spawn(&mut self) -> (Child, u16) {
        self.started += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("worker-{}.log", self.started))).unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_pubsync"))
            .arg("queue:worker:start")
            .current_dir(self.dir)
            .env("PUBSYNC_LOG", "warn")
            .env("PUBSYNC_HTTP__ADDRESS", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        (child, port)
    }

    /// SIGKILLs worker `index` and starts another in its place.
    fn kill(&mut self, index: usize) {
        let index = index % self.running.len();
        let (worker, port) = &mut self.running[index];
        match Done::scrape(*port) {
            Some(done) => self.done.add(done),
            None => self.unread += 1,
        }
        let _ = worker.kill();
        let _ = worker.wait();
        self.running[index] = self.spawn();
    }

    /// Waits until the workers' counters stand still for a second (at most a minute), then
    /// stops every worker with SIGTERM, as an operator does, and waits.
    fn stop(&mut self) {
        let scrape = |running: &[(Child, u16)]| {
            let mut done = Done::default();
            let mut unread = 0;
            for (_, port) in running {
                match Done::scrape(*port) {
                    Some(one) => done.add(one),
                    None => unread += 1,
                }
            }
            (done, unread)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = scrape(&self.running);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = scrape(&self.running);
            let still =
                (now.0.relayed, now.0.synced, now.1) == (last.0.relayed, last.0.synced, last.1);
            last = now;
            if still || Instant::now() > deadline {
                break;
            }
        }
        self.done.add(last.0);
        self.unread += last.1;
        for (worker, _) in &self.running {
            let _ = Command::new("kill")
                .args(["-TERM", &worker.id().to_string()])
                .status();
        }
        for (worker, _) in &mut self.running {
            let _ = worker.wait();
        }
    }
}

impl Drop for Workers<'_> {
    fn drop(&mut self) {
        for (worker, _) in &mut self.running {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

/// The malformed and hostile messages fed into the queues, by queue (without the prefix).
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let oversized = format!(
        r#"{{"write":{{"key":"message:1","value":{{"x":"{}","_timestamp":1}},"resource":"message"}}}}"#,
        "o".repeat(3 * 1024 * 1024)
    );
    vec![
        ("event", b"{not json".to_vec()),
        ("event", vec![0xff, 0xfe, 0x00, 0x81]),
        ("event", b"[1,2,3]".to_vec()),
        (
            "event",
            pubsync_shared::message::EventQueueMessage::batch(
                "Nobody.Listener",
                "Entity.spy_hello_spryker_message.update",
                vec![pubsync_shared::event::EventEntityTransfer {
                    id: Some(1),
                    ..Default::default()
                }],
            )
            .encode(),
        ),
        ("sync.storage.hello", b"{not json".to_vec()),
        ("sync.storage.hello", vec![0xc3, 0x28]),
        (
            "sync.storage.hello",
            br#"{"write":{"key":"product:1","value":{"_timestamp":1},"resource":"product"}}"#.to_vec(),
        ),
        (
            "sync.storage.hello",
            br#"{"write":{"key":"product:1","value":{"_timestamp":1},"resource":"message"}}"#.to_vec(),
        ),
        (
            "sync.storage.hello",
            br#"{"write":{"key":"message:1","value":{"name":"frozen","_timestamp":99999999999},"resource":"message"}}"#.to_vec(),
        ),
        (
            "sync.storage.hello",
            br#"{"delete":{"key":"message:2","resource":"message"}}"#.to_vec(),
        ),
        ("sync.storage.hello", oversized.into_bytes()),
    ]
}

#[test]
fn on_postgres_nothing_is_lost_stale_or_orphaned_under_faults() {
    if common::amqp().is_none() {
        return;
    }
    run(
        Database::Postgres(PrivatePostgres::start()),
        Plan::from_environment(),
    );
}

/// MySQL once: the shared server is never stopped, so no database crash.
#[cfg(feature = "mysql")]
#[test]
fn on_mysql_nothing_is_lost_stale_or_orphaned_under_faults() {
    if common::amqp().is_none() {
        return;
    }
    let Some(database) =
        pubsync_database::testing::TestDatabase::create(pubsync_database::Dialect::Mysql)
    else {
        return;
    };
    let plan = Plan {
        database_crashes: 0,
        ..Plan::from_environment()
    };
    run(Database::Mysql(database), plan);
}

fn run(database: Database, plan: Plan) {
    let servers = tempfile::tempdir().unwrap();
    let rabbit = PrivateRabbit::start(servers.path(), None);
    let redis = PrivateRedis::start(servers.path(), None, true);
    let dir = tempfile::tempdir().unwrap();
    let prefix = "chaos.";
    std::fs::write(
        dir.path().join("pubsync.toml"),
        format!(
            "database_url = {:?}\nqueue_url = {:?}\nstorage_url = {:?}\n\
             [queue]\nprefix = {prefix:?}\n\
             [sync]\nmax_payload_bytes = 1024\nresync_on_data_loss = true\n\
             [worker]\nretry_delay_ms = 100\nmax_retries = 2\n",
            database.url(),
            rabbit.url(),
            redis.url()
        ),
    )
    .unwrap();
    let pubsync = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pubsync"))
            .args(args)
            .current_dir(dir.path())
            .env("PUBSYNC_LOG", "warn")
            .output()
            .unwrap()
    };
    let setup = pubsync(&["setup"]);
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    log_recorded_rows(&database.url());

    let started = Instant::now();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = std::thread::spawn({
        let (url, written, changes) = (database.url(), written.clone(), plan.changes);
        move || write_changes(&url, changes, &written, 0x9E37_79B9_7F4A_7C15)
    });
    let mut workers = Workers::new(dir.path(), 4);

    // The faults, spread over the stream by how much of it is written.
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        KillWorker(usize),
        RestartRabbit,
        RestartRedis { lose_data: bool },
        CrashDatabase,
        Malformed,
    }
    let mut faults: Vec<Fault> = (0..plan.worker_kills).map(Fault::KillWorker).collect();
    faults.extend((0..plan.rabbit_restarts).map(|_| Fault::RestartRabbit));
    faults.extend((0..plan.redis_restarts).map(|i| Fault::RestartRedis {
        lose_data: i + 1 == plan.redis_restarts,
    }));
    faults.extend((0..plan.database_crashes).map(|_| Fault::CrashDatabase));
    faults.push(Fault::Malformed);
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    for i in (1..faults.len()).rev() {
        faults.swap(i, random.below(i + 1));
    }
    let mut injected: Vec<String> = Vec::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (i, fault) in faults.iter().enumerate() {
        let due = plan.changes * (i + 1) / (faults.len() + 1);
        while written.load(Ordering::Relaxed) < due {
            assert!(!writer.is_finished(), "the writer stopped early");
            std::thread::sleep(Duration::from_millis(20));
        }
        match *fault {
            Fault::KillWorker(n) => workers.kill(n + random.below(4)),
            Fault::RestartRabbit => {
                rabbit.stop_app();
                std::thread::sleep(Duration::from_millis(500));
                rabbit.start_app();
            }
            Fault::RestartRedis { lose_data } => {
                if lose_data {
                    redis.restart_losing_data();
                } else {
                    redis.restart();
                }
            }
            Fault::CrashDatabase => {
                let Database::Postgres(postgres) = &database else {
                    unreachable!("only a database of the run's own is crashed")
                };
                postgres.crash();
                std::thread::sleep(Duration::from_millis(500));
                postgres.start_again();
            }
            Fault::Malformed => runtime.block_on(async {
                let queue = RabbitQueue::connect_url(&rabbit.url(), RabbitQueueOptions::default())
                    .await
                    .unwrap();
                for (name, body) in malformed() {
                    queue
                        .send(&format!("{prefix}{name}"), vec![body])
                        .await
                        .unwrap();
                }
            }),
        }
        injected.push(format!("{fault:?}"));
    }
    writer.join().unwrap();
    let written_in = started.elapsed();
    // Let the running workers catch up, stop them, and drain what is left with one more.
    workers.stop();
    let drained = pubsync(&["queue:worker:start", "--stop-when-empty"]);
    let drain_log = String::from_utf8_lossy(&drained.stdout).into_owned();
    let elapsed = started.elapsed();
    let mut done = workers.done;
    done.add(Done {
        relayed: count_before(&drain_log, " outbox rows relayed"),
        synced: count_before(&drain_log, " keys synchronized"),
    });
    let logged = |log: &str| -> u64 {
        run_sql(&database.url(), &format!("SELECT COUNT(*) FROM {log}"))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (captured, recorded) = (logged("chaos_captured"), logged("chaos_recorded"));

    let verified = pubsync(&["verify", "--sample", "1000000"]);
    let report = String::from_utf8_lossy(&verified.stdout).into_owned();
    // Verify ran to its end: 0 when the read model equals the source, 1 when it differs.
    assert!(
        matches!(verified.status.code(), Some(0 | 1))
            && report.lines().any(|line| line.starts_with("message: ")),
        "pubsync verify: {}\n{report}\n{}",
        verified.status,
        String::from_utf8_lossy(&verified.stderr)
    );
    let keys_of = |kind: &str| -> BTreeSet<String> {
        report
            .lines()
            .filter_map(|line| line.trim().strip_prefix(&format!("{kind}: ")))
            .flat_map(|keys| keys.split(", ").map(str::to_owned))
            .filter(|key| key.starts_with("message:"))
            .collect()
    };
    let poison: BTreeSet<String> = run_sql(
        &database.url(),
        &format!(
            "SELECT id_hello_spryker_message FROM spy_hello_spryker_message WHERE length(message) >= {POISON_BYTES}"
        ),
    )
    .unwrap()
    .lines()
    .map(|id| format!("message:{id}"))
    .collect();
    let (missing, stale, orphaned) = (keys_of("missing"), keys_of("stale"), keys_of("orphaned"));
    let lost: Vec<&String> = missing.difference(&poison).collect();
    let errors = |queue: &str| -> serde_json::Value {
        let listed = pubsync(&["queue:error:list", queue, "--json", "--limit", "100000"]);
        serde_json::from_slice(&listed.stdout).unwrap_or_default()
    };
    let event_errors = errors("event");
    let sync_errors = errors("sync.storage.hello");
    let reasons = |listed: &serde_json::Value| -> Vec<String> {
        listed["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(|message| message["reason"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (event_reasons, sync_reasons) = (reasons(&event_errors), reasons(&sync_errors));
    let poison_reasons = event_reasons
        .iter()
        .filter(|reason| reason.contains("max_payload_bytes"))
        .count();

    println!(
        "chaos on {}: {} changes written in {:.1} s, all settled after {:.1} s ({:.0} changes/s); \
         faults: {}; {} poison rows; verify: {} missing ({} of them not poison: lost), {} stale, \
         {} orphaned; error queues: event {} ({} poison refusals), sync {}; outbox rows: {} \
         captured, {} relayed ({} twice); key changes: {} recorded, {} written ({} twice); \
         workers whose counters could not be read: {}",
        database.name(),
        plan.changes,
        written_in.as_secs_f64(),
        elapsed.as_secs_f64(),
        plan.changes as f64 / elapsed.as_secs_f64(),
        injected.join(", "),
        poison.len(),
        missing.len(),
        lost.len(),
        stale.len(),
        orphaned.len(),
        event_reasons.len(),
        poison_reasons,
        sync_reasons.len(),
        captured,
        done.relayed,
        done.relayed.saturating_sub(captured),
        recorded,
        done.synced,
        done.synced.saturating_sub(recorded),
        workers.unread,
    );
    assert!(
        lost.is_empty(),
        "lost keys: {lost:?}\n{report}\n{drain_log}"
    );
    assert!(stale.is_empty(), "stale keys: {stale:?}\n{report}");
    assert!(orphaned.is_empty(), "orphaned keys: {orphaned:?}\n{report}");
    assert!(
        poison_reasons > 0 || poison.is_empty(),
        "the poison rows' events are in the error queue with their reason: {event_reasons:?}"
    );
    for expected in ["malformed", "Nobody.Listener"] {
        assert!(
            event_reasons.iter().any(|reason| reason.contains(expected)),
            "a malformed event message ({expected}) is in the error queue: {event_reasons:?}"
        );
    }
    assert!(
        sync_reasons.len()
            >= malformed()
                .iter()
                .filter(|(queue, _)| queue.starts_with("sync"))
                .count(),
        "every malformed sync message is in the error queue: {sync_reasons:?}"
    );
}
