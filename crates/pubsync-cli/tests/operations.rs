//! The operator's commands, on the embedded default and on PostgreSQL with RabbitMQ and
//! Redis: `queue:setup`, `event:dump:listener`, `status` (people and `--json`), `health`,
//! `event:trigger:listener`, and the payload limit, whose refusals land in the error queue
//! with a reason naming the key.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Where the commands run, and how to change the shop's tables there.
struct Shop<'a> {
    pubsync: &'a dyn Fn(&[&str]) -> Output,
    sql: &'a dyn Fn(&str) -> String,
}

impl Shop<'_> {
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = (self.pubsync)(args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, Some(0), "pubsync {args:?}: {stdout}{stderr}");
        stdout
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }
}

/// The payload limit in the scenario's configuration, and a message longer than it.
const LIMITS: &str = "[sync]\nmax_payload_bytes = 1024\n[worker]\nmax_retries = 0\n";

fn scenario(shop: &Shop<'_>, prefix: &str) {
    let status = shop.status();
    let queues = status["queues"].as_array().unwrap();
    let event = queues
        .iter()
        .find(|queue| queue["name"] == format!("{prefix}event"))
        .unwrap_or_else(|| panic!("the event queue, with its prefix: {status}"));
    assert_eq!(
        (event["ready"].as_u64(), event["error"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(status["outbox"]["rows"], 0, "{status}");
    assert_eq!(status["outbox"]["oldest_age_seconds"], Value::Null);
    assert_eq!(
        status["read_model"]["healthy"], false,
        "no probe yet: {status}"
    );

    let declared = shop.ok(&["queue:setup"]);
    assert!(
        declared.starts_with("queues declared: ") && declared.contains(&format!("{prefix}event")),
        "{declared}"
    );
    let listeners = shop.ok(&["event:dump:listener", "--queue", &format!("{prefix}event")]);
    assert!(
        listeners.contains(&format!(
            "Entity.spy_hello_spryker_message.update\tHelloSpryker.MessageStoragePublisher\t{prefix}event"
        )),
        "{listeners}"
    );

    let (code, stdout, _) = shop.run(&["health"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("publish-and-synchronize-storage: FAILING"),
        "{stdout}"
    );

    (shop.sql)(&format!(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) VALUES \
         (1, 'one', 'short'), (2, 'two', 'short'), (3, 'three', '{}')",
        "x".repeat(2000)
    ));
    let status = shop.status();
    assert!(status["outbox"]["rows"].as_u64().unwrap() >= 3, "{status}");
    assert!(
        status["outbox"]["oldest_age_seconds"].is_number(),
        "{status}"
    );
    let human = shop.ok(&["status"]);
    assert!(
        human.contains(&format!("{prefix}event")) && human.contains("outbox:"),
        "{human}"
    );

    let (code, _, stderr) = shop.run(&["queue:worker:start", "--stop-when-empty"]);
    assert_eq!(code, Some(1), "the refused payload failed: {stderr}");
    let listed: Value =
        serde_json::from_str(&shop.ok(&["queue:error:list", "event", "--json"])).unwrap();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{listed}");
    let reason = messages[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("message:3") && reason.contains("max_payload_bytes"),
        "{reason}"
    );
    assert_eq!(
        shop.run(&["storage:get", "message:3"]).0,
        Some(1),
        "never stored"
    );
    assert!(shop.ok(&["storage:get", "message:1"]).contains("short"));

    // The worker published health's probe: the read model is fresh.
    shop.ok(&["queue:worker:start", "--stop-when-empty"]);
    let stdout = shop.ok(&["health"]);
    assert!(
        stdout.contains("publish-and-synchronize-storage: ok"),
        "{stdout}"
    );
    let health: Value = serde_json::from_str(&shop.ok(&["health", "--json"])).unwrap();
    assert_eq!(health["status"], 200, "{health}");
    let status = shop.status();
    assert_eq!(status["read_model"]["healthy"], true, "{status}");
    assert!(
        status["read_model"]["probe_age_seconds"].is_number(),
        "{status}"
    );
    let event = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["name"] == format!("{prefix}event"))
        .unwrap()
        .clone();
    assert_eq!(event["error"], 1, "the refused event waits there: {status}");

    // A listener run by hand re-publishes the row as it is now, whatever was captured.
    (shop.sql)(
        "UPDATE spy_hello_spryker_message SET message = 'by hand' WHERE id_hello_spryker_message = 2",
    );
    (shop.sql)("DELETE FROM spy_event_behavior_entity_change");
    let stdout = shop.ok(&[
        "event:trigger:listener",
        "HelloSpryker.MessageStoragePublisher",
        r#"{"id": 2}"#,
    ]);
    assert!(
        stdout.contains("handled 1 events of Entity.spy_hello_spryker_message.create"),
        "{stdout}"
    );
    let stored = (shop.sql)(
        "SELECT data FROM spy_hello_spryker_message_storage WHERE fk_hello_spryker_message = 2",
    );
    assert!(stored.contains("by hand"), "{stored}");
    let (code, _, stderr) = shop.run(&["event:trigger:listener", "Nobody", "{}"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no listener named \"Nobody\"")
            && stderr.contains("HelloSpryker.MessageStoragePublisher"),
        "{stderr}"
    );
    let (code, _, stderr) = shop.run(&[
        "event:trigger:listener",
        "HelloSpryker.MessageStoragePublisher",
        "{id:",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not JSON"), "{stderr}");
}

fn embedded(dir: &Path) -> impl Fn(&[&str]) -> Output + '_ {
    move |args| {
        Command::new(env!("CARGO_BIN_EXE_pubsync"))
            .args(args)
            .current_dir(dir)
            .env("PUBSYNC_LOG", "warn")
            .env_remove("PUBSYNC_DATABASE_URL")
            .env_remove("PUBSYNC_QUEUE_URL")
            .env_remove("PUBSYNC_STORAGE_URL")
            .output()
            .expect("run pubsync")
    }
}

#[test]
fn operators_commands_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pubsync.toml"), LIMITS).unwrap();
    let pubsync = embedded(dir.path());
    let sql = |sql: &str| {
        let output = Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(dir.path().join("pubsync.db"))
            .arg(sql)
            .output()
            .expect("the sqlite3 shell is installed (cargo xtask test installs it)");
        assert!(output.status.success(), "{sql}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let shop = Shop {
        pubsync: &pubsync,
        sql: &sql,
    };
    shop.ok(&["setup"]);
    scenario(&shop, "");

    // A storage that cannot be reached is an unhealthy pipeline: exit 1, saying so.
    if cfg!(feature = "redis") {
        let output = Command::new(env!("CARGO_BIN_EXE_pubsync"))
            .args(["health"])
            .current_dir(dir.path())
            .env("PUBSYNC_LOG", "off")
            .env("PUBSYNC_STORAGE_URL", "redis://127.0.0.1:1")
            .env("PUBSYNC_SYNC__ENABLED", "false")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("publish-and-synchronize-storage: FAILING")
                && stdout.contains("127.0.0.1:1"),
            "{stdout}"
        );
    }
}

#[cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]
#[test]
fn operators_commands_on_postgres_rabbitmq_and_redis() {
    let Some(amqp) = common::amqp() else {
        return;
    };
    let Some(s) = common::Setup::new(pubsync_database::Dialect::Postgres, &amqp) else {
        return;
    };
    s.append_config(LIMITS);
    let pubsync = |args: &[&str]| s.pubsync(args);
    let sql = |sql: &str| s.shell(sql);
    let shop = Shop {
        pubsync: &pubsync,
        sql: &sql,
    };
    shop.ok(&["setup"]);
    let prefix = format!("{}.", s.key_prefix.trim_end_matches(':'));
    scenario(&shop, &prefix);
}
