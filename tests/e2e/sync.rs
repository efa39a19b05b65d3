//! Synchronization into real Redis: storage-table changes travel through the sync queue (or
//! directly) to `kv:<key>`; switched off, nothing is sent; what cannot be written goes to the
//! error queue with the reason, never into the void.
#![cfg(feature = "redis")]

use std::process::Command;

use pubsync_queue_extension::{Queue, Settlement};
use pubsync_storage_extension::StorageReader;
use pubsync_test_support::{Service, require, unique_name};
use pubsync_tests::{TestApp, on_every_database};
use serde_json::Value;

/// A Redis key prefix of the test's own, removed afterwards, and an optional ACL user.
struct Redis {
    url: String,
    prefix: String,
    user: Option<String>,
}

impl Redis {
    fn new() -> Option<Self> {
        let url = require(Service::Redis)?;
        Some(Self {
            url,
            prefix: format!("{}:", unique_name("sync")),
            user: None,
        })
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-u", &self.url])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The raw value of storage key `key`.
    fn get(&self, key: &str) -> Option<Value> {
        let raw = self.cli(&["GET", &format!("{}kv:{key}", self.prefix)]);
        (!raw.is_empty()).then(|| serde_json::from_str(&raw).unwrap())
    }

    /// A user that may read this test's keys but not write them.
    fn read_only_url(&mut self) -> String {
        let user = unique_name("readonly");
        let pattern = format!("~{}*", self.prefix);
        self.cli(&[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">secret",
            &pattern,
            "+@read",
            "+@connection",
            "+evalsha",
            "+eval",
            "+script",
        ]);
        self.user = Some(user.clone());
        self.url
            .replacen("redis://", &format!("redis://{user}:secret@"), 1)
    }

    fn config(&self, url: &str, extra: &str) -> String {
        format!(
            "storage_url = {url:?}\n[storage]\nkey_prefix = {:?}\n{extra}",
            self.prefix
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(user) = &self.user {
            self.cli(&["ACL", "DELUSER", user]);
        }
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r redis-cli -u '{url}' del >/dev/null",
            url = self.url,
            prefix = self.prefix
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

async fn drain(t: &TestApp, queue_name: &str) -> Vec<Value> {
    let queue = t.app.queue().await.unwrap();
    let deliveries = queue
        .receive(queue_name, 100, std::time::Duration::from_millis(50))
        .await
        .unwrap();
    let settlement = Settlement {
        acknowledge: deliveries.iter().map(|d| d.tag).collect(),
        ..Default::default()
    };
    queue.settle(queue_name, settlement).await.unwrap();
    deliveries
        .iter()
        .map(|d| serde_json::from_slice(&d.body).unwrap())
        .collect()
}

fn app(dialect: pubsync_database::Dialect, config: &str) -> Option<TestApp> {
    TestApp::with_config(dialect, config)
}

on_every_database! {
    async fn changes_reach_redis_through_the_sync_queue(t: TestApp) {
        let Some(redis) = Redis::new() else { return };
        let t = app(t.dialect(), &redis.config(&redis.url, "")).unwrap();
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('John', 'Hello Spryker!')");
        let report = t.work().await;
        assert_eq!(report.sync_relayed, 1);
        assert_eq!(report.synchronized, 1);
        let value = redis.get("message:1").expect("kv:message:1");
        assert_eq!(value["name"], "John");
        assert_eq!(value["message"], "Hello Spryker!");
        assert!(value["_timestamp"].as_f64().unwrap() > 1.7e9, "{value}");
        // The client reads Redis through the same contract.
        let storage = t.app.storage().await.unwrap();
        let raw = storage.get("message:1").await.unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), value);

        t.sql("DELETE FROM spy_hello_spryker_message");
        t.work().await;
        assert_eq!(redis.get("message:1"), None);
        assert_eq!(t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox"), 0);
    }

    async fn with_synchronization_off_nothing_is_sent(t: TestApp) {
        let Some(redis) = Redis::new() else { return };
        let t = app(t.dialect(), &redis.config(&redis.url, "[sync]\nenabled = false\n")).unwrap();
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('quiet')");
        let report = t.work().await;
        assert_eq!(report.handled, 1, "publishing still happens");
        assert_eq!(t.message_storage().len(), 1);
        assert_eq!(report.synchronized, 0);
        assert_eq!(report.sync_relayed, 0, "the storage table's triggers recorded no sync intent");
        assert_eq!(redis.get("message:1"), None, "nothing reaches Redis");
        let depth = t.app.queue().await.unwrap().depth("sync.storage.hello").await.unwrap();
        assert!(depth.is_empty(), "nothing is sent to the sync queue");
        assert_eq!(t.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox"), 0, "the outbox does not grow");
    }

    async fn direct_mode_writes_storage_without_the_sync_queue(t: TestApp) {
        let Some(redis) = Redis::new() else { return };
        let t = app(t.dialect(), &redis.config(&redis.url, "[sync]\ndirect = true\n")).unwrap();
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('direct')");
        let report = t.work().await;
        assert_eq!(
            report.messages, 0,
            "nothing travelled through a queue: with the database queue the worker publishes \
             events itself, and the change went to storage directly"
        );
        assert_eq!(report.synchronized, 1);
        assert_eq!(redis.get("message:1").unwrap()["name"], "direct");
    }

    async fn when_storage_refuses_writes_changes_end_in_the_error_queue_with_the_reason(t: TestApp) {
        let Some(mut redis) = Redis::new() else { return };
        let read_only = redis.read_only_url();
        let t = app(t.dialect(), &redis.config(&read_only, "[sync]\ndirect = true\n")).unwrap();
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('a'), ('b')");
        let report = t.work().await;
        assert_eq!(report.synchronized, 0);
        assert_eq!(redis.get("message:1"), None);
        // Direct mode fell back to the sync queue; the consumer could not write either and
        // moved the message to the error queue with Redis's reason.
        let errors = drain(&t, "sync.storage.hello.error").await;
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let reason = errors[0]["errorMessage"].as_str().unwrap();
        assert!(reason.contains("can't run this command"), "Redis's own reason: {reason}");
        let keys: Vec<&str> = errors[0]["body"].as_array().unwrap().iter().map(|m| m["write"]["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["message:1", "message:2"], "the changes are kept, not lost");
    }

    async fn a_malformed_sync_message_goes_to_the_error_queue_and_the_rest_is_written(t: TestApp) {
        let Some(redis) = Redis::new() else { return };
        let t = app(t.dialect(), &redis.config(&redis.url, "")).unwrap();
        let good = br#"[{"write":{"key":"message:7","value":{"name":"seven","_timestamp":1700000000.5},"resource":"message","store":"","params":[]}}]"#;
        t.app.queue().await.unwrap()
            .send("sync.storage.hello", vec![b"{\"upsert\":{}}".to_vec(), good.to_vec()])
            .await
            .unwrap();
        t.work().await;
        assert_eq!(redis.get("message:7").unwrap()["name"], "seven");
        let errors = drain(&t, "sync.storage.hello.error").await;
        assert_eq!(errors.len(), 1);
        assert!(errors[0]["errorMessage"].as_str().unwrap().contains("invalid sync message body"), "{errors:#?}");
        assert_eq!(errors[0]["body"], serde_json::json!({"upsert": {}}), "the original body is kept");
    }

    async fn hostile_sync_messages_go_to_the_error_queue_with_their_reasons(t: TestApp) {
        let Some(redis) = Redis::new() else { return };
        let t = app(t.dialect(), &redis.config(&redis.url, "")).unwrap();
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('one'), ('two')");
        t.work().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let ahead = now + 86_400.0;
        let body = format!(
            r#"[{{"write":{{"key":"message:1","value":{{"name":"frozen","_timestamp":{ahead}}},"resource":"message"}}}},
                {{"write":{{"key":"price:1","value":{{"_timestamp":{now}}},"resource":"price"}}}},
                {{"write":{{"key":"price:1","value":{{"_timestamp":{now}}},"resource":"message"}}}},
                {{"delete":{{"key":"message:2","value":{{}},"resource":"message"}}}},
                {{"write":{{"key":"message:3","value":{{"name":"first"}}}}}},
                {{"write":{{"key":"message:3","value":{{"name":"second"}}}}}}]"#
        );
        t.app.queue().await.unwrap()
            .send("sync.storage.hello", vec![body.into_bytes()])
            .await
            .unwrap();
        let report = t.work().await;
        assert_eq!(report.failed, 4, "{report}");
        assert_eq!(redis.get("message:1").unwrap()["name"], "one", "a far-future write is not applied");
        assert_eq!(redis.get("message:2").unwrap()["name"], "two", "a delete without _timestamp removes nothing");
        assert_eq!(redis.get("price:1"), None, "unknown resources and keys outside theirs are not written");
        assert_eq!(redis.get("message:3").unwrap()["name"], "second", "unversioned writes: the last one read wins");
        let reasons: Vec<String> = drain(&t, "sync.storage.hello.error")
            .await
            .iter()
            .map(|error| error["errorMessage"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        for expected in ["ahead of this worker's clock", "unknown resource \"price\"", "does not belong to resource \"message\"", "without _timestamp"] {
            assert!(reasons.iter().any(|reason| reason.contains(expected)), "{expected:?} in {reasons:#?}");
        }
        // The key the far-future write aimed at still follows the source.
        t.sql("UPDATE spy_hello_spryker_message SET name = 'later' WHERE id_hello_spryker_message = 1");
        t.work().await;
        assert_eq!(redis.get("message:1").unwrap()["name"], "later");
    }
}
