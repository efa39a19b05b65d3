//! The `pubsync` binary, driven as a user would: rows changed in the `sqlite3` shell reach
//! storage through `queue:worker:start` and are read back with `storage:get`.

mod embedded;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use embedded::*;

#[test]
fn rows_changed_in_the_sqlite_shell_reach_storage() {
    let w = Workdir::new("");
    w.ok(&["setup"]);

    // One by one.
    w.sqlite(
        "INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!');",
    );
    w.work();
    assert_eq!(w.get("message:1"), message("John", Some("Hello Spryker!")));
    w.sqlite(
        "UPDATE spy_hello_spryker_message SET message = 'Bye' WHERE id_hello_spryker_message = 1;",
    );
    w.work();
    assert_eq!(w.get("message:1"), message("John", Some("Bye")));
    w.sqlite("DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message = 1;");
    w.work();
    assert_eq!(w.get("message:1"), None);

    // In bulk.
    w.sqlite(
        "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 201) \
         INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) SELECT i, 'bulk ' || i FROM n;",
    );
    w.work();
    assert_eq!(w.get("message:2"), message("bulk 2", None));
    assert_eq!(w.get("message:201"), message("bulk 201", None));
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;"),
        "200"
    );
    w.sqlite("UPDATE spy_hello_spryker_message SET message = 'all' WHERE id_hello_spryker_message > 100;");
    w.work();
    assert_eq!(w.get("message:100"), message("bulk 100", None));
    assert_eq!(w.get("message:150"), message("bulk 150", Some("all")));
    w.sqlite("DELETE FROM spy_hello_spryker_message WHERE id_hello_spryker_message % 2 = 0;");
    w.work();
    assert_eq!(w.get("message:150"), None);
    assert_eq!(w.get("message:151"), message("bulk 151", Some("all")));
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;"),
        "100"
    );

    // A rolled-back transaction.
    w.sqlite("BEGIN; INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name) VALUES (999, 'ghost'); ROLLBACK;");
    w.work();
    assert_eq!(w.get("message:999"), None);
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM spy_event_behavior_entity_change;"),
        "0"
    );
}

#[test]
fn a_worker_killed_mid_chunk_loses_nothing() {
    let w = Workdir::new("[worker]\nchunk_size = 20\nevents_per_message = 5\nlease_seconds = 1\n");
    w.ok(&["setup"]);
    let total = 40_000;
    w.sqlite(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {total}) \
         INSERT INTO spy_hello_spryker_message (name, message) SELECT 'name ' || i, 'message ' || i FROM n;"
    ));
    let mut worker = KillOnDrop(
        w.command(&["queue:worker:start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let published_at_kill = loop {
        let published: i64 = w
            .sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;")
            .parse()
            .unwrap();
        if published > 0 {
            worker.0.kill().unwrap(); // SIGKILL: no chance to settle or clean up
            worker.0.wait().unwrap();
            break published;
        }
        assert!(
            Instant::now() < deadline,
            "the worker published nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        published_at_kill < total,
        "the worker finished before it could be killed; raise `total`"
    );

    w.work();
    let correct = w.sqlite(
        "SELECT COUNT(*) FROM spy_hello_spryker_message_storage s JOIN spy_hello_spryker_message m \
         ON s.fk_hello_spryker_message = m.id_hello_spryker_message AND s.\"key\" = 'message:' || m.id_hello_spryker_message \
         WHERE json_extract(s.data, '$.name') = m.name AND json_extract(s.data, '$.message') = m.message;",
    );
    assert_eq!(
        correct,
        total.to_string(),
        "every message is published exactly once, after the kill"
    );
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;"),
        total.to_string()
    );
    assert_eq!(w.sqlite("SELECT COUNT(*) FROM pubsync_queue_message;"), "0");
}

#[test]
fn storage_get_of_an_absent_key_prints_nothing_and_exits_1() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    let output = w.pubsync(&["storage:get", "message:42"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let output = w.pubsync(&["storage:get", "no_such_resource:1"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown resource is an error, not an absent key"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("no_such_resource"));
}

#[test]
fn the_worker_before_setup_says_to_run_setup() {
    let w = Workdir::new("");
    let output = w.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("run `pubsync setup` first"));
}

#[test]
fn queue_task_start_processes_one_chunk_and_keep_leaves_it() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    w.sqlite("INSERT INTO spy_hello_spryker_message (name) VALUES ('a'), ('b');");
    let out = w.ok(&["queue:task:start", "event", "-k"]);
    assert!(
        out.contains("2 events handled")
            && out.contains("kept in the queue")
            && out.contains("1 ready"),
        "{out}"
    );
    let out = w.ok(&["queue:task:start", "event"]);
    assert!(
        out.contains("2 events handled") && out.contains("0 ready, 0 pending"),
        "{out}"
    );
    assert_eq!(w.get("message:2"), message("b", None));
    let output = w.pubsync(&["queue:task:start", "nope"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_demo_runs_on_a_fresh_directory_without_any_server() {
    let w = Workdir::new("");
    let out = w.ok(&["demo"]);
    assert!(
        out.contains("get_message_by_id(1) = Some(HelloSprykerStorageTransfer"),
        "{out}"
    );
    assert!(out.contains("get_message_by_id(1) = None"), "{out}");
    assert!(w.path().join("pubsync.db").exists());
}

#[test]
fn the_backfill_commands_explain_themselves_and_name_the_known_resources() {
    let w = Workdir::new("");
    for (command, option) in [
        ("publish:trigger-events", "--resource"),
        ("event:trigger", "--ids"),
        ("sync:data", "--ids"),
        ("verify", "--repair"),
    ] {
        let help = w.ok(&[command, "--help"]);
        assert!(help.contains(option), "{command} --help: {help}");
    }
    w.ok(&["setup"]);
    for args in [
        &["publish:trigger-events", "-r", "message,nope"][..],
        &["sync:data", "nope"],
        &["verify", "nope"],
    ] {
        let output = w.pubsync(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr
                .contains("there is no resource with the name \"nope\"; known resources: message"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_backfill_stopped_by_ctrl_c_resumes_and_verify_judges_the_result() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    let total = 30_000;
    // Rows that were there before capture: their events are dropped.
    w.sqlite(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {total}) \
         INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) \
         SELECT 2 * i, 'name ' || i, 'message ' || i FROM n; \
         DELETE FROM spy_event_behavior_entity_change;"
    ));
    let count = || -> i64 {
        w.sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;")
            .parse()
            .unwrap()
    };
    let run = w
        .command(&["publish:trigger-events", "--chunk-size", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() == 0 {
        assert!(Instant::now() < deadline, "nothing published in 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "stopped: {stdout}");
    assert!(
        stdout.contains("stopped: run the same command again to resume"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("/{total} (")),
        "plain progress lines: {stdout}"
    );
    let published = count();
    assert!(published < total, "stopped before the end ({published})");
    assert_eq!(published % 100, 0, "after a whole chunk ({published})");

    let resumed = w.ok(&["publish:trigger-events"]);
    assert!(
        resumed.contains(&format!("message: resumed after id {}", 2 * published)),
        "{resumed}"
    );
    assert!(
        resumed.contains(&format!("message: {} events triggered", total - published)),
        "none twice: {resumed}"
    );
    assert_eq!(count(), total);

    let clean = w.pubsync(&["verify"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    w.sqlite(r#"UPDATE spy_hello_spryker_message_storage SET data = '{"name":"edited"}' WHERE fk_hello_spryker_message = 4;"#);
    let differs = w.pubsync(&["verify"]);
    let report = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{report}");
    assert!(report.contains("message: DIFFERS"), "{report}");
    assert!(report.contains("stale: message:4"), "{report}");
    let repaired = w.pubsync(&["verify", "--repair"]);
    assert!(
        String::from_utf8_lossy(&repaired.stdout).contains("1 entities re-published"),
        "{}",
        String::from_utf8_lossy(&repaired.stdout)
    );
    assert_eq!(w.pubsync(&["verify"]).status.code(), Some(0));
}

#[test]
fn the_one_off_commands_leave_the_workers_synchronization_switch_alone() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    // The workers run with synchronization on; this process's configuration says off. Its
    // relay would drop their sync outbox rows, and recording its switch would stop them all.
    w.sqlite("UPDATE pubsync_setting SET value = 'on' WHERE name = 'synchronization';");
    for command in ["publish:trigger-events", "verify", "sync:data"] {
        let output = w.pubsync(&[command]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "the database records synchronization on, but this configuration has it off"
            ),
            "{command}: {stderr}"
        );
    }
    assert_eq!(
        w.sqlite("SELECT value FROM pubsync_setting WHERE name = 'synchronization';"),
        "on"
    );
    w.sqlite("UPDATE pubsync_setting SET value = 'off' WHERE name = 'synchronization';");
    let output = w.pubsync(&["publish:trigger-events", "-i", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--ids needs --resource"));
}

/// The number before `what` in the worker's summary line (`… 12 events handled, …`).
fn summary_count(stdout: &str, what: &str) -> usize {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("worker stopped: "))
        .unwrap_or_else(|| panic!("a summary line: {stdout}"));
    let before = &line[..line
        .find(what)
        .unwrap_or_else(|| panic!("{what} in {line}"))];
    before
        .trim_end()
        .rsplit([' ', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("a count before {what} in {line}"))
}

#[test]
fn sigterm_during_a_busy_run_stops_after_the_chunk_and_loses_and_duplicates_nothing() {
    let w =
        Workdir::new("[worker]\nchunk_size = 20\nevents_per_message = 5\nrelay_chunk_size = 100\n");
    w.ok(&["setup"]);
    let total = 40_000;
    w.sqlite(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {total}) \
         INSERT INTO spy_hello_spryker_message (name, message) SELECT 'name ' || i, 'message ' || i FROM n;"
    ));
    let published = || -> usize {
        w.sqlite("SELECT COUNT(*) FROM spy_hello_spryker_message_storage;")
            .parse()
            .unwrap()
    };
    let mut worker = KillOnDrop(
        w.command(&["queue:worker:start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while published() == 0 {
        assert!(Instant::now() < deadline, "nothing published in 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let terminated = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let signalled = Instant::now();
    while worker.0.try_wait().unwrap().is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "the worker is still running 30 s after SIGTERM (its shutdown timeout)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut worker.0.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = worker.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(
        !stdout.contains("given up"),
        "the chunk was finished: {stdout}"
    );
    let handled_before = summary_count(&stdout, "events handled");
    let at_stop = published();
    assert!(at_stop < total, "stopped before the end; raise `total`");
    assert_eq!(
        handled_before, at_stop,
        "what it handled is what it published"
    );
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM pubsync_queue_message WHERE lease_owner IS NOT NULL;"),
        "0",
        "nothing left leased"
    );

    let rest = w.ok(&["queue:worker:start", "--stop-when-empty"]);
    let handled_after = summary_count(&rest, "events handled");
    assert_eq!(
        handled_before + handled_after,
        total,
        "every event handled once: none lost, none twice"
    );
    let correct = w.sqlite(
        "SELECT COUNT(*) FROM spy_hello_spryker_message_storage s JOIN spy_hello_spryker_message m \
         ON s.fk_hello_spryker_message = m.id_hello_spryker_message \
         WHERE json_extract(s.data, '$.message') = m.message;",
    );
    assert_eq!(correct, total.to_string());
}

#[test]
fn stop_when_empty_exits_1_when_messages_went_to_an_error_queue() {
    let w = Workdir::new("[worker]\ndirect_publish = false\n");
    w.ok(&["setup"]);
    w.sqlite("INSERT INTO spy_hello_spryker_message (name) VALUES ('fine');");
    let clean = w.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    assert_eq!(clean.status.code(), Some(0), "nothing failed");
    w.sqlite(
        "INSERT INTO spy_hello_spryker_message (name) VALUES ('also fine'); \
         INSERT INTO pubsync_queue_message (queue_name, body, available_at) \
         VALUES ('event', CAST('not a message' AS BLOB), 0);",
    );
    let failed = w.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("went to error queues"), "{stderr}");
    assert_eq!(
        summary_count(&String::from_utf8_lossy(&failed.stdout), "failed"),
        1
    );
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM pubsync_queue_message WHERE queue_name = 'event.error';"),
        "1",
        "the malformed message is kept in the error queue"
    );
    assert!(w.get("message:2").is_some(), "the rest flowed");
}

#[test]
fn error_queues_are_listed_with_reasons_and_replayed_after_the_fix() {
    let w = Workdir::new("[worker]\ndirect_publish = false\nmax_retries = 1\nretry_delay_ms = 1\n");
    w.ok(&["setup"]);
    // The publisher cannot write: its storage table is gone for now.
    w.sqlite("ALTER TABLE spy_hello_spryker_message_storage RENAME TO hidden_storage;");
    w.sqlite("INSERT INTO spy_hello_spryker_message (name) VALUES ('John');");
    let failed = w.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    assert_eq!(failed.status.code(), Some(1));

    let listed = w.ok(&["queue:error:list", "event"]);
    assert!(listed.starts_with("event.error: 1 messages\n"), "{listed}");
    assert!(listed.contains("s ago: "), "an age: {listed}");
    assert!(
        listed.contains("spy_hello_spryker_message_storage"),
        "the reason: {listed}"
    );
    assert!(listed.contains("replayable"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&w.ok(&["queue:error:list", "event.error", "--json"])).unwrap();
    assert_eq!(json["queue"], "event.error");
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["replayable"], true);
    assert!(messages[0]["age_seconds"].is_u64());
    assert_eq!(
        messages[0]["body"]["eventName"],
        "Entity.spy_hello_spryker_message.create"
    );
    assert_eq!(
        w.sqlite("SELECT COUNT(*) FROM pubsync_queue_message WHERE queue_name = 'event.error';"),
        "1",
        "listing leaves the message where it is"
    );

    let unknown = w.pubsync(&["queue:error:list", "evnt"]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown queue \"evnt\"") && stderr.contains("event"),
        "{stderr}"
    );

    w.sqlite("ALTER TABLE hidden_storage RENAME TO spy_hello_spryker_message_storage;");
    let replayed = w.ok(&["queue:error:replay", "event"]);
    assert!(
        replayed.contains("event.error: 1 messages sent back to event"),
        "{replayed}"
    );
    w.work();
    assert_eq!(w.get("message:1"), message("John", None));
    assert_eq!(w.ok(&["queue:error:list", "event"]), "event.error: empty\n");
}

#[test]
fn completions_and_the_man_page_follow_the_command_line_without_a_database() {
    let w = Workdir::new("");
    let bash = w.ok(&["completions", "bash"]);
    assert!(bash.contains("_pubsync()"), "a bash completion function");
    for command in [
        "queue:worker:start",
        "queue:error:replay",
        "publish:trigger-events",
    ] {
        assert!(bash.contains(command), "completes {command}");
    }
    assert!(
        w.ok(&["completions", "zsh"])
            .starts_with("#compdef pubsync")
    );
    let man = w.ok(&["man"]);
    assert!(man.contains(".TH pubsync 1"), "a roff man page: {man}");
    assert!(man.contains("queue:error:list"), "listing the commands");
    let unknown = w.pubsync(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("possible values: bash"));
    assert!(
        !w.path().join("pubsync.db").exists(),
        "no database opened, none created"
    );
}

#[test]
fn queue_setup_declares_the_queues_and_dump_listener_filters() {
    let w = Workdir::new("");
    w.ok(&["setup"]);
    assert_eq!(w.ok(&["queue:setup"]), "queues declared: event, sync\n");
    let all = w.ok(&["event:dump:listener"]);
    assert_eq!(
        all.lines().count(),
        6,
        "hello's and the health check's: {all}"
    );
    let deletes = w.ok(&[
        "event:dump:listener",
        "--event",
        "Entity.spy_hello_spryker_message.delete",
    ]);
    assert_eq!(
        deletes,
        "Entity.spy_hello_spryker_message.delete\tHelloSpryker.MessageStoragePublisher\tevent\n"
    );
    assert_eq!(w.ok(&["event:dump:listener", "--queue", "event"]), all);
    assert_eq!(w.ok(&["event:dump:listener", "--queue", "nothing"]), "");
}
