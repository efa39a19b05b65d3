//! A RabbitMQ restart during a run loses nothing: a running worker reconnects by itself, and
//! every change made before, during and after the outage reaches Redis. In its own test binary
//! (cargo runs test binaries one after another), so no other RabbitMQ test sees the outage.
#![cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pubsync_database::Dialect;

/// Starts the RabbitMQ app again when dropped, also when the test fails.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["start_app"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !rabbitmqctl(&["await_startup"]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
        while !pubsync_test_support::reachable("amqp://127.0.0.1:5672") && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_rabbitmq_restart_during_a_run_loses_nothing() {
    let Some(amqp) = amqp() else { return };
    if !rabbitmqctl(&["status"]) {
        assert!(
            std::env::var("CI").is_err(),
            "rabbitmqctl cannot reach the node under CI"
        );
        eprintln!("SKIPPED: rabbitmqctl cannot reach the RabbitMQ node");
        return;
    }
    let Some(s) = Setup::new(Dialect::Postgres, &amqp) else {
        return;
    };
    s.ok(&["setup"]);
    let mut worker = Command::new(env!("CARGO_BIN_EXE_pubsync"))
        .arg("queue:worker:start")
        .current_dir(s.dir.path())
        .env("PUBSYNC_LOG", "warn")
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
    {
        let _restart = StartOnDrop;
        assert!(rabbitmqctl(&["stop_app"]), "stopping RabbitMQ");
        for batch in 5..8 {
            insert(batch); // the database takes changes while the broker is down
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for batch in 8..10 {
        insert(batch);
    }
    // The running worker reconnects and catches up; wait until every key is there.
    let deadline = Instant::now() + Duration::from_secs(90);
    while s.redis_keys().len() < 1000 && Instant::now() < deadline {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker survives the broker restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        s.redis_keys().len(),
        1000,
        "the running worker caught up after the restart"
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
