//! The configuration and the logs, as a user meets them: errors that name the key and where
//! it came from, variables refused by name, the queue prefix in every queue name shown,
//! per-queue settings, and logs fit for a terminal or a collector.

mod embedded;

use embedded::*;

#[test]
fn a_bad_configuration_is_a_clear_error_at_start() {
    let w = Workdir::new("");
    let output = w
        .command(&["setup"])
        .env("PUBSYNC_QUEUE_URL", "kafka://localhost")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PUBSYNC_QUEUE_URL") && stderr.contains("unknown queue url"),
        "{stderr}"
    );

    let w = Workdir::new("[worker]\nchunk = 5\n");
    let output = w.pubsync(&["setup"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pubsync.toml") && stderr.contains("unknown key worker.chunk in"),
        "{stderr}"
    );
}

#[test]
fn only_setup_creates_the_database_file_and_a_misspelt_variable_is_refused() {
    let w = Workdir::new("");
    let db = w.path().join("pubsync.db");
    for args in [
        &["queue:worker:start", "--stop-when-empty"][..],
        &["storage:get", "message:1"],
        &["verify"],
    ] {
        let output = w.pubsync(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("does not exist: run `pubsync setup` first"),
            "{args:?}: {stderr}"
        );
        assert!(!db.exists(), "{args:?} left an empty database behind");
    }

    let output = w
        .command(&["setup"])
        .env("PUBSYNC_DATABSE_URL", "sqlite://elsewhere.db")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown environment variable PUBSYNC_DATABSE_URL")
            && stderr.contains("PUBSYNC_DATABASE_URL"),
        "{stderr}"
    );
    assert!(!db.exists());

    w.ok(&["setup"]);
    assert!(db.exists(), "setup creates it");
}

#[test]
fn logs_have_no_colour_when_redirected_json_on_request_and_a_bad_filter_is_an_error() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    let human = w
        .command(&["queue:worker:start", "--stop-when-empty"])
        .env("PUBSYNC_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert!(human.status.success(), "{stderr}");
    assert!(!stderr.is_empty(), "info lines are logged");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in a file: {stderr}"
    );

    let json = w
        .command(&[
            "queue:worker:start",
            "--stop-when-empty",
            "--log-format",
            "json",
        ])
        .env("PUBSYNC_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(json.status.success(), "{stderr}");
    assert!(stderr.lines().count() > 0);
    for line in stderr.lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        assert!(
            record["level"].is_string() && record["fields"].is_object(),
            "{line}"
        );
    }

    let bad = w
        .command(&["storage:get", "message:1"])
        .env("PUBSYNC_LOG", "pubsync=loud")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PUBSYNC_LOG=\"pubsync=loud\" is not a log filter"),
        "{stderr}"
    );
}

#[test]
fn queue_names_carry_the_prefix_and_each_queue_takes_its_own_chunk_size() {
    let w = Workdir::new(
        "[queue]\nprefix = \"shop.\"\n\
         [worker]\ndirect_publish = false\nevents_per_message = 1\n\
         [queues.\"event\"]\nchunk_size = 1\n",
    );
    w.ok(&["setup"]);
    assert_eq!(
        w.ok(&["queue:setup"]),
        "queues declared: shop.event, shop.sync\n"
    );
    let listed = w.ok(&["event:dump:listener", "--queue", "shop.event"]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
    assert!(
        listed.lines().all(|line| line.ends_with("\tshop.event")),
        "{listed}"
    );
    w.sqlite("INSERT INTO spy_hello_spryker_message (name) VALUES ('a'), ('b'), ('c'), ('d');");
    let out = w.ok(&["queue:task:start", "shop.event"]);
    assert!(
        out.starts_with("shop.event: 1 messages, 1 events handled"),
        "{out}"
    );
    assert!(out.contains("shop.event: 3 ready"), "{out}");
    let output = w
        .command(&["queue:task:start", "event"])
        .env("PUBSYNC_QUEUES__EVENT__CHUNK_SIZE", "2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.starts_with("shop.event: 2 messages"), "{out}");

    let output = w
        .command(&["queue:task:start", "event"])
        .env("PUBSYNC_WORKER__RETRY_DELAY_MS", "18446744073709551615")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PUBSYNC_WORKER__RETRY_DELAY_MS") && stderr.contains("from 0 to 3600000"),
        "{stderr}"
    );
    let output = w
        .command(&["queue:task:start", "event"])
        .env("PUBSYNC_QUEUES__EVNT__WORKERS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PUBSYNC_QUEUES__EVNT__WORKERS") && stderr.contains("shop.event"),
        "{stderr}"
    );
}
