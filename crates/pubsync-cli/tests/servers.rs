//! The `pubsync` binary on the production servers: rows changed with `psql` or `mariadb` reach
//! Redis under `kv:message:<id>` after `queue:worker:start --stop-when-empty`, and database
//! storage (the bypass) reads the same. Each test has its own database, queue-name prefix and
//! Redis key prefix, so tests run in parallel on shared servers.
#![cfg(all(feature = "redis", any(feature = "postgres", feature = "mysql")))]

mod common;

use std::process::{Command, Stdio};

use common::*;
use pubsync_database::Dialect;
use serde_json::Value;

/// Rows changed in the database shell, one by one and in bulk, reach Redis: on one database
/// and one queue.
fn rows_changed_in_the_shell_reach_redis(dialect: Dialect, queue_url: &str) {
    let Some(s) = Setup::new(dialect, queue_url) else {
        return;
    };
    s.ok(&["setup"]);

    // One by one.
    s.shell(
        "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!')",
    );
    s.work();
    assert_eq!(s.get("message:1"), message("John", Some("Hello Spryker!")));
    assert_eq!(s.redis_keys(), [format!("{}kv:message:1", s.key_prefix)]);
    s.shell(
        "UPDATE spy_hello_spryker_message SET message = 'Bye' WHERE id_hello_spryker_message = 1",
    );
    s.work();
    assert_eq!(s.get("message:1"), message("John", Some("Bye")));
    s.shell("DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = 1");
    s.work();
    assert_eq!(s.get("message:1"), None);

    // In bulk.
    let values: Vec<String> = (2..=201).map(|i| format!("({i}, 'bulk {i}')")).collect();
    s.shell(&format!(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES {}",
        values.join(", ")
    ));
    s.work();
    assert_eq!(s.redis_keys().len(), 200);
    s.shell(
        "UPDATE spy_hello_spryker_message SET message = 'all' WHERE id_hello_spryker_message > 100",
    );
    s.work();
    assert_eq!(s.get("message:100"), message("bulk 100", None));
    assert_eq!(s.get("message:150"), message("bulk 150", Some("all")));
    s.shell("DELETE FROM spy_hello_spryker_message WHERE MOD(id_hello_spryker_message, 2) = 0");
    s.work();
    assert_eq!(s.get("message:150"), None);
    assert_eq!(s.get("message:151"), message("bulk 151", Some("all")));
    assert_eq!(s.redis_keys().len(), 100);

    // A rolled-back transaction.
    s.shell("BEGIN; INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES (999, 'ghost'); ROLLBACK;");
    s.work();
    assert_eq!(s.get("message:999"), None);

    // The bypass reads the same from the storage tables.
    let from_redis: Vec<Option<Value>> = (140..=160)
        .map(|id| s.get(&format!("message:{id}")))
        .collect();
    s.write_config("database");
    let from_tables: Vec<Option<Value>> = (140..=160)
        .map(|id| s.get(&format!("message:{id}")))
        .collect();
    assert_eq!(from_tables, from_redis);
}

#[cfg(all(feature = "postgres", feature = "rabbitmq"))]
#[test]
fn postgres_rabbitmq_redis() {
    if let Some(amqp) = amqp() {
        rows_changed_in_the_shell_reach_redis(Dialect::Postgres, &amqp);
    }
}

#[cfg(all(feature = "mysql", feature = "rabbitmq"))]
#[test]
fn mysql_rabbitmq_redis() {
    if let Some(amqp) = amqp() {
        rows_changed_in_the_shell_reach_redis(Dialect::Mysql, &amqp);
    }
}

/// Two workers on the same queues, while rows keep changing, leave every key at the rows'
/// last data: no older change overwrites a newer one, whichever worker applies it.
#[cfg(all(feature = "postgres", feature = "rabbitmq"))]
#[test]
fn two_workers_at_once_leave_no_stale_key() {
    let Some(amqp) = amqp() else { return };
    let Some(s) = Setup::new(Dialect::Postgres, &amqp) else {
        return;
    };
    s.ok(&["setup"]);
    let values: Vec<String> = (1..=50).map(|i| format!("({i}, 'row {i}')")).collect();
    s.shell(&format!(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES {}",
        values.join(", ")
    ));
    let spawn = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pubsync"));
        command
            .arg("queue:worker:start")
            .current_dir(s.dir.path())
            .env("PUBSYNC_LOG", "warn");
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut workers = [spawn(), spawn()];
    for round in 0..30 {
        s.shell(&format!(
            "UPDATE spy_hello_spryker_message SET message = 'round {round}'"
        ));
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    s.work(); // a third worker drains what is left, competing with the two
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    s.work();
    for id in 1..=50 {
        assert_eq!(
            s.get(&format!("message:{id}")),
            message(&format!("row {id}"), Some("round 29")),
            "message:{id}"
        );
    }
}

/// Four workers started at once on a full outbox share it: each outbox row and each sync
/// outbox row is relayed by one of them, once, and every key arrives.
fn four_workers_relay_each_row_once(dialect: Dialect) {
    const ROWS: usize = 20_000;
    let Some(amqp) = amqp() else { return };
    let Some(s) = Setup::new(dialect, &amqp) else {
        return;
    };
    s.ok(&["setup"]);
    for first in (1..=ROWS).step_by(2_000) {
        let values: Vec<String> = (first..first + 2_000)
            .map(|i| format!("({i}, 'row {i}')"))
            .collect();
        s.shell(&format!(
            "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES {}",
            values.join(", ")
        ));
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            s.command(&["queue:worker:start", "--stop-when-empty"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut relayed, mut sync_relayed) = (0, 0);
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let summary = String::from_utf8(output.stdout).unwrap();
        relayed += count_before(&summary, " outbox rows relayed");
        sync_relayed += count_before(&summary, " sync rows relayed");
    }
    assert_eq!(
        relayed, ROWS,
        "outbox rows relayed by the four workers together"
    );
    assert_eq!(
        sync_relayed, ROWS,
        "sync outbox rows relayed by the four workers together"
    );
    assert_eq!(s.redis_keys().len(), ROWS);
}

/// The number right before `label` in a worker's summary line.
fn count_before(summary: &str, label: &str) -> usize {
    let head = &summary[..summary
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {summary}"))];
    let digits = head.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap();
    digits.parse().unwrap()
}

#[cfg(all(feature = "postgres", feature = "rabbitmq"))]
#[test]
fn four_workers_on_postgres_relay_each_row_once() {
    four_workers_relay_each_row_once(Dialect::Postgres);
}

#[cfg(all(feature = "mysql", feature = "rabbitmq"))]
#[test]
fn four_workers_on_mysql_relay_each_row_once() {
    four_workers_relay_each_row_once(Dialect::Mysql);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_database_queue_redis() {
    rows_changed_in_the_shell_reach_redis(Dialect::Postgres, "database");
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_database_queue_redis() {
    rows_changed_in_the_shell_reach_redis(Dialect::Mysql, "database");
}

/// `url` with `password` as its password (`scheme://user:password@host…`).
#[cfg(all(feature = "mysql", feature = "rabbitmq"))]
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap(), host),
        None => ("", rest),
    };
    format!("{scheme}://{user}:{password}@{host}")
}

/// A wrong password in the database, queue or storage URL is one line naming what to check,
/// within seconds, and the password appears nowhere in the output.
#[cfg(all(feature = "mysql", feature = "rabbitmq"))]
#[test]
fn a_wrong_password_in_each_url_is_one_clear_error_without_the_password() {
    const SECRET: &str = "Wr0ngSecret";
    let Some(s) = Setup::new(Dialect::Postgres, "database") else {
        return;
    };
    s.ok(&["setup"]);
    let (Some(mysql), Some(amqp)) = (
        pubsync_test_support::require(pubsync_test_support::Service::Mysql),
        amqp(),
    ) else {
        return;
    };
    for (variable, url, check) in [
        (
            "PUBSYNC_DATABASE_URL",
            with_password(&mysql, SECRET),
            "password",
        ),
        (
            "PUBSYNC_QUEUE_URL",
            with_password(&amqp, SECRET),
            "password",
        ),
        (
            "PUBSYNC_STORAGE_URL",
            with_password(&s.redis_url, SECRET),
            "password",
        ),
    ] {
        let started = std::time::Instant::now();
        let output = s
            .command(&["queue:worker:start", "--stop-when-empty"])
            .env(variable, &url)
            .env("PUBSYNC_LOG", "info")
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}: {stderr}");
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{variable}: the password shows: {stdout}{stderr}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{variable}: one line: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(check),
            "{variable}: says to check the {check}: {stderr}"
        );
        let causes: Vec<&str> = lines[0].split(": ").collect();
        let mut distinct = causes.clone();
        distinct.dedup();
        assert_eq!(causes, distinct, "{variable}: no cause twice: {stderr}");
        assert!(
            elapsed < std::time::Duration::from_secs(10),
            "{variable}: answered in {elapsed:?}"
        );
    }
}
