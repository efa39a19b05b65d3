//! A Redis that lost its data (restarted without persistence, flushed) is noticed: `setup`
//! and the worker leave a marker in it, `health` and `status` fail without it, `sync:data`
//! refills it, and with `[sync] resync_on_data_loss` the worker refills it by itself, when
//! it starts and while it runs.
#![cfg(all(feature = "redis", any(feature = "postgres", feature = "mysql")))]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Setup;
use pubsync_database::Dialect;

const ROWS: usize = 50;

/// The `key-value-store` line of `pubsync health`, with its exit status.
fn health(s: &Setup) -> (Option<i32>, String) {
    let output = s.pubsync(&["health"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|line| line.starts_with("key-value-store:"))
        .unwrap_or_else(|| panic!("no key-value-store line in: {stdout}"))
        .to_owned();
    (output.status.code(), line)
}

/// The messages' keys in Redis (`health` adds a key of its own).
fn messages(s: &Setup) -> usize {
    s.redis_keys()
        .iter()
        .filter(|key| key.contains("kv:message:"))
        .count()
}

/// Waits up to 20 s for `ROWS` messages in Redis.
fn wait_for_messages(s: &Setup) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if messages(s) == ROWS {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[cfg(feature = "postgres")]
#[test]
fn on_postgres_a_redis_that_lost_its_data_fails_the_health_check_and_is_refilled() {
    lost_and_refilled(Dialect::Postgres);
}

#[cfg(feature = "mysql")]
#[test]
fn on_mysql_a_redis_that_lost_its_data_fails_the_health_check_and_is_refilled() {
    lost_and_refilled(Dialect::Mysql);
}

fn lost_and_refilled(dialect: Dialect) {
    let Some(s) = Setup::new(dialect, "database") else {
        return;
    };
    let setup = s.ok(&["setup"]);
    assert!(setup.contains("key-value store: marker written"), "{setup}");
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 'row {i}')")).collect();
    s.shell(&format!(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES {}",
        values.join(", ")
    ));
    s.work();
    assert_eq!(messages(&s), ROWS);
    assert_eq!(
        health(&s).1,
        "key-value-store: ok (its marker is the one recorded)"
    );

    s.lose_redis_data();
    let (code, line) = health(&s);
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.contains("FAILING: the key-value store lost its data"),
        "{line}"
    );
    assert!(line.contains("sync:data"), "the way out is named: {line}");
    let status: serde_json::Value = serde_json::from_str(&s.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["key_value_store"]["healthy"], false, "{status}");
    // The worker without re-sync says so, and leaves the store as it is.
    let output = s.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lost its data"), "{stderr}");
    assert_eq!(messages(&s), 0);
    // Setup does not paper over the loss with a new marker.
    let setup = s.ok(&["setup"]);
    assert!(
        setup.contains("WARNING: the key-value store lost its data"),
        "{setup}"
    );
    assert_eq!(health(&s).0, Some(1));

    // An operator refills it.
    let synced = s.ok(&["sync:data"]);
    assert!(
        synced.contains("key-value store: marker renewed"),
        "{synced}"
    );
    s.work();
    assert_eq!(messages(&s), ROWS);
    assert_eq!(
        health(&s).1,
        "key-value-store: ok (its marker is the one recorded)"
    );

    // With re-sync on, a worker refills it when it starts ...
    s.append_config("[sync]\nresync_on_data_loss = true\n");
    s.lose_redis_data();
    s.work();
    assert_eq!(messages(&s), ROWS, "refilled by the worker at its start");
    assert!(health(&s).1.starts_with("key-value-store: ok"));

    // ... and while it runs.
    let mut worker = s
        .command(&["queue:worker:start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.lose_redis_data();
    let refilled = wait_for_messages(&s);
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    assert!(
        refilled,
        "a running worker refills the store within its check interval"
    );
    assert_eq!(s.get("message:7").unwrap()["name"], "row 7");
}
