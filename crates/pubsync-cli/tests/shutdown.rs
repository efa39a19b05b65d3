//! Stopping a worker whose step cannot finish: on PostgreSQL, another session holds a storage
//! row the publisher must write. SIGTERM stops the worker within its shutdown timeout all the
//! same, exit 0, with the messages it held given back at once (not after their lease), and
//! the next worker publishes them; a second signal exits at once.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pubsync_database::Dialect;

/// Kills the child when dropped, so a failing test leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name}");
}

/// Waits up to `limit` for `child` to exit; how long it took and what it printed.
fn wait_at_most(mut child: KillOnDrop, limit: Duration) -> (Duration, Output) {
    let started = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < limit,
            "still running {limit:?} after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let stdout = child.0.stdout.take().map(|mut pipe| {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut pipe, &mut text).unwrap();
        text
    });
    let status = child.0.wait().unwrap();
    (
        elapsed,
        Output {
            status,
            stdout: stdout.unwrap_or_default(),
            stderr: Vec::new(),
        },
    )
}

/// Polls `sql` until it returns something other than "0".
fn until_nonzero(s: &Setup, sql: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.shell(sql) == "0" {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How the stopping worker is stopped.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// One SIGTERM: the step is given up after the shutdown timeout.
    Term,
    /// SIGTERM, then SIGINT: the process ends at once.
    TermThenInt,
}

fn a_worker_blocked_on_a_lock_stops_in_time(queue_url: &str, stop: Stop) {
    let Some(s) = Setup::new(Dialect::Postgres, queue_url) else {
        return;
    };
    // Through the event queue, so the blocked step holds messages; a lease far longer than
    // the test, so only giving them back brings them to the next worker in time.
    s.append_config(
        "[worker]\ndirect_publish = false\nlease_seconds = 600\nshutdown_timeout_seconds = 2\n",
    );
    s.ok(&["setup"]);
    s.shell(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) \
         SELECT i, 'n' || i FROM generate_series(1, 50) i",
    );
    s.work();
    assert_eq!(s.get("message:1"), message("n1", None));

    let url = s.database.url().to_connection_string();
    let _holder = KillOnDrop(
        Command::new("psql")
            .args([url.as_str(), "-qAt", "-c"])
            .arg(
                "BEGIN; SELECT 1 FROM spy_hello_spryker_message_storage \
                 WHERE fk_hello_spryker_message = 1 FOR UPDATE; SELECT pg_sleep(300);",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until_nonzero(
        &s,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'",
        "the other session holds the row",
    );
    s.shell(
        "UPDATE spy_hello_spryker_message SET message = 'later' WHERE id_hello_spryker_message <= 10",
    );
    let worker = KillOnDrop(
        s.command(&["queue:worker:start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until_nonzero(
        &s,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        "the worker's publisher waits on the row",
    );
    let database_queue = queue_url == "database";
    if database_queue {
        assert_ne!(
            s.shell("SELECT COUNT(*) FROM pubsync_queue_message WHERE lease_owner IS NOT NULL"),
            "0",
            "the blocked worker holds its chunk"
        );
    }

    // The server notices a killed client only when it next writes to it: end its session.
    let release_row = || {
        s.shell(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
    };

    signal(&worker.0, "TERM");
    if stop == Stop::TermThenInt {
        std::thread::sleep(Duration::from_millis(300));
        signal(&worker.0, "INT");
        let (elapsed, output) = wait_at_most(worker, Duration::from_secs(30));
        release_row();
        assert_eq!(
            output.status.code(),
            Some(130),
            "a second SIGINT exits at once"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "sooner than the shutdown timeout: {elapsed:?}"
        );
        return;
    }
    let (elapsed, output) = wait_at_most(worker, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(12),
        "the step in hand gets the shutdown timeout, the exit follows it: {elapsed:?}"
    );
    assert!(stdout.contains("was given up"), "{stdout}");
    if database_queue {
        assert_eq!(
            s.shell("SELECT COUNT(*) FROM pubsync_queue_message WHERE lease_owner IS NOT NULL"),
            "0",
            "what the stopped worker held is given back"
        );
    }

    release_row();
    drop(_holder);
    let next = KillOnDrop(
        s.command(&["queue:worker:start", "--stop-when-empty"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_, output) = wait_at_most(next, Duration::from_secs(60));
    assert!(output.status.success());
    for id in 1..=10 {
        assert_eq!(
            s.get(&format!("message:{id}")),
            message(&format!("n{id}"), Some("later")),
            "message {id} published by the next worker"
        );
    }
}

#[test]
fn postgres_database_queue_stops_in_time_and_gives_back_its_chunk() {
    a_worker_blocked_on_a_lock_stops_in_time("database", Stop::Term);
}

#[test]
fn postgres_database_queue_second_signal_exits_at_once() {
    a_worker_blocked_on_a_lock_stops_in_time("database", Stop::TermThenInt);
}

#[cfg(feature = "rabbitmq")]
#[test]
fn postgres_rabbitmq_stops_in_time_and_gives_back_its_chunk() {
    if let Some(amqp) = amqp() {
        a_worker_blocked_on_a_lock_stops_in_time(&amqp, Stop::Term);
    }
}
