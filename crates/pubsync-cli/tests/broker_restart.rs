//! A RabbitMQ restart during a run loses nothing: a running worker reconnects by itself, and
//! every change made before, during and after the outage reaches Redis, and its counters
//! count each relayed change once, however often a send failed. The broker is a node of the
//! test's own, so no other test sees the outage.
#![cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pubsync_database::Dialect;
use pubsync_test_support::private::{PrivateRabbit, free_port};

/// The `message:` keys in Redis (the worker's health probes have keys of their own).
fn message_keys(s: &Setup) -> usize {
    s.redis_keys()
        .iter()
        .filter(|key| key.contains("kv:message:"))
        .count()
}

#[test]
fn a_rabbitmq_restart_during_a_run_loses_nothing() {
    // The shared broker's presence says RabbitMQ is installed; the test restarts its own.
    if amqp().is_none() {
        return;
    }
    let broker_dir = tempfile::tempdir().unwrap();
    let rabbit = PrivateRabbit::start(broker_dir.path(), None);
    let Some(s) = Setup::new(Dialect::Postgres, &rabbit.url()) else {
        return;
    };
    s.ok(&["setup"]);
    let port = free_port();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_pubsync"))
        .arg("queue:worker:start")
        .current_dir(s.dir.path())
        .env("PUBSYNC_LOG", "warn")
        .env("PUBSYNC_HTTP__ADDRESS", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let insert = |batch: i64| {
        let values: Vec<String> = (batch * 100 + 1..=batch * 100 + 100)
            .map(|i| format!("({i}, 'row {i}', 'batch {batch}')"))
            .collect();
        s.shell(&format!(
            "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) VALUES {}",
            values.join(", ")
        ));
    };
    for batch in 0..5 {
        insert(batch);
        std::thread::sleep(Duration::from_millis(100));
    }
    rabbit.stop_app();
    for batch in 5..8 {
        insert(batch); // the database takes changes while the broker is down
        std::thread::sleep(Duration::from_millis(300));
    }
    rabbit.start_app();
    for batch in 8..10 {
        insert(batch);
    }
    // The running worker reconnects and catches up; wait until every key is there.
    let deadline = Instant::now() + Duration::from_secs(90);
    while message_keys(&s) < 1000 && Instant::now() < deadline {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker survives the broker restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        message_keys(&s),
        1000,
        "the running worker caught up after the restart"
    );
    let (_, metrics) = http_get(port, "/metrics").expect("the worker serves /metrics");
    assert_eq!(
        metric_sum(
            &metrics,
            "pubsync_changes_captured_total",
            "table=\"spy_hello_spryker_message\""
        ),
        1000,
        "each change counted once, though sends failed during the outage"
    );
    let _ = worker.kill();
    let _ = worker.wait();
    for id in [1, 250, 501, 650, 799, 801, 1000] {
        let batch = (id - 1) / 100;
        assert_eq!(
            s.get(&format!("message:{id}")),
            message(&format!("row {id}"), Some(&format!("batch {batch}"))),
            "message:{id}"
        );
    }
}
