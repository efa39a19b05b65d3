//! Error queues on the production servers: a message a listener gave up on is listed with its
//! reason and age by `queue:error:list`, stays there, and `queue:error:replay` sends it back
//! once the cause is fixed; on PostgreSQL with RabbitMQ, and with the database queue.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use common::*;
use pubsync_database::Dialect;

fn a_failed_event_is_listed_and_replayed_after_the_fix(queue_url: &str) {
    let Some(s) = Setup::new(Dialect::Postgres, queue_url) else {
        return;
    };
    s.append_config("[worker]\ndirect_publish = false\nmax_retries = 1\nretry_delay_ms = 1\n");
    s.ok(&["setup"]);
    s.shell("ALTER TABLE spy_hello_spryker_message_storage RENAME TO hidden_storage");
    s.shell("INSERT INTO spy_hello_spryker_message (name) VALUES ('John')");
    let failed = s.pubsync(&["queue:worker:start", "--stop-when-empty"]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );

    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["queue:error:list", "event", "--json"])).unwrap();
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{json}");
    let reason = messages[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("spy_hello_spryker_message_storage"),
        "{reason}"
    );
    assert!(messages[0]["age_seconds"].is_u64(), "{json}");
    assert_eq!(messages[0]["replayable"], true);
    // Queue names are shown with the test's queue prefix, as the broker has them.
    let prefix = format!("{}.", s.key_prefix.trim_end_matches(':'));
    let again = s.ok(&["queue:error:list", "event"]);
    assert!(
        again.starts_with(&format!("{prefix}event.error: 1 messages\n")),
        "listing leaves it there: {again}"
    );

    s.shell("ALTER TABLE hidden_storage RENAME TO spy_hello_spryker_message_storage");
    let replayed = s.ok(&["queue:error:replay", "event.error"]);
    assert!(
        replayed.contains(&format!(
            "{prefix}event.error: 1 messages sent back to {prefix}event"
        )),
        "{replayed}"
    );
    s.work();
    assert_eq!(s.get("message:1"), message("John", None));
    assert_eq!(
        s.ok(&["queue:error:list", "event"]),
        format!("{prefix}event.error: empty\n")
    );
}

#[test]
fn postgres_database_queue() {
    a_failed_event_is_listed_and_replayed_after_the_fix("database");
}

#[cfg(feature = "rabbitmq")]
#[test]
fn postgres_rabbitmq() {
    if let Some(amqp) = amqp() {
        a_failed_event_is_listed_and_replayed_after_the_fix(&amqp);
    }
}
