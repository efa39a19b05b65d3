//! What the server tests share: a working directory whose `pubsync.toml` points at a test
//! database, Redis and a queue, each test's own names, and the shells.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pubsync_database::Dialect;
use pubsync_database::testing::TestDatabase;
use pubsync_test_support::{Service, require, unique_name};
use serde_json::{Value, json};

/// A working directory whose `pubsync.toml` points at one test database, Redis, and a queue.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub database: TestDatabase,
    pub redis_url: String,
    pub key_prefix: String,
    pub queue_url: String,
}

impl Setup {
    /// `None` when a server is unreachable outside CI.
    pub fn new(dialect: Dialect, queue_url: &str) -> Option<Self> {
        let redis_url = require(Service::Redis)?;
        let database = TestDatabase::create(dialect)?;
        let dir = tempfile::tempdir().unwrap();
        let key_prefix = format!("{}:", unique_name("cli"));
        let setup = Self {
            dir,
            database,
            redis_url,
            key_prefix,
            queue_url: queue_url.to_owned(),
        };
        setup.write_config("redis");
        Some(setup)
    }

    /// Writes `pubsync.toml` with storage `redis` or `database` (the bypass).
    pub fn write_config(&self, storage: &str) {
        let storage_url = if storage == "redis" {
            self.redis_url.clone()
        } else {
            "database".to_owned()
        };
        let config = format!(
            "database_url = {:?}\nqueue_url = {:?}\nstorage_url = {storage_url:?}\n[queue]\nprefix = {:?}\n[storage]\nkey_prefix = {:?}\n",
            self.database.url().to_connection_string(),
            self.queue_url,
            format!("{}.", self.key_prefix.trim_end_matches(':')),
            self.key_prefix,
        );
        std::fs::write(self.dir.path().join("pubsync.toml"), config).unwrap();
    }

    /// Appends `toml` to `pubsync.toml` (after [`Setup::write_config`]).
    pub fn append_config(&self, toml: &str) {
        let path = self.dir.path().join("pubsync.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(toml);
        std::fs::write(path, config).unwrap();
    }

    /// `pubsync args` in the working directory, the environment's URLs removed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pubsync"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("PUBSYNC_LOG", "warn");
        for var in [
            "PUBSYNC_DATABASE_URL",
            "PUBSYNC_QUEUE_URL",
            "PUBSYNC_STORAGE_URL",
        ] {
            command.env_remove(var);
        }
        command
    }

    pub fn pubsync(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pubsync")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.pubsync(args);
        assert!(
            output.status.success(),
            "pubsync {args:?}: {}\nstderr: {}\nstdout: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn work(&self) {
        self.ok(&["queue:worker:start", "--stop-when-empty"]);
    }

    /// The stored value without `_timestamp` (which only key-value stores add), or `None`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let output = self.pubsync(&["storage:get", key]);
        match output.status.code() {
            Some(0) => {
                let mut value: Value = serde_json::from_slice(&output.stdout).unwrap();
                value.as_object_mut().unwrap().remove("_timestamp");
                Some(value)
            }
            Some(1) => None,
            _ => panic!(
                "storage:get {key}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Runs `sql` in the database's own shell (`psql` or `mariadb`), as a person would.
    pub fn shell(&self, sql: &str) -> String {
        let url = self.database.url().to_connection_string();
        let output =
            database_shell(&url, sql).expect("the database shell is installed with the server");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub fn redis_keys(&self) -> Vec<String> {
        let output = Command::new("redis-cli")
            .args([
                "-u",
                &self.redis_url,
                "--scan",
                "--pattern",
                &format!("{}kv:*", self.key_prefix),
            ])
            .output()
            .expect("redis-cli is installed with the server");
        let mut keys: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    }
}

impl Setup {
    /// Deletes every Redis key of this test's prefix, as a Redis restarted without
    /// persistence (or flushed) would have lost them.
    pub fn lose_redis_data(&self) {
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r redis-cli -u '{url}' del >/dev/null",
            url = self.redis_url,
            prefix = self.key_prefix
        );
        let status = Command::new("sh").args(["-c", &script]).status().unwrap();
        assert!(status.success(), "deleting the test's Redis keys");
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        #[cfg(feature = "rabbitmq")]
        if self.queue_url.starts_with("amqp") {
            // Durable queues outlive the test: remove this test's queues and exchanges.
            let prefix = format!("{}.", self.key_prefix.trim_end_matches(':'));
            let url = self.queue_url.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let options = pubsync_queue_rabbitmq::RabbitQueueOptions::default();
                if let Ok(queue) =
                    pubsync_queue_rabbitmq::RabbitQueue::connect_url(&url, options).await
                {
                    for name in [
                        "event",
                        "sync.storage.hello",
                        "sync.storage.publish_and_synchronize_health_check",
                        "sync",
                    ] {
                        let _ = queue.delete(&format!("{prefix}{name}")).await;
                    }
                }
            });
        }
        self.lose_redis_data();
    }
}

/// Runs `sql` in the shell of the database at `url` (`psql` for `postgres://`, `mariadb`
/// for `mysql://`), as a person would.
pub fn database_shell(url: &str, sql: &str) -> std::io::Result<Output> {
    if url.starts_with("mysql://") {
        let (host, port, user, name) = mysql_parts(url);
        Command::new("mariadb")
            .args([
                format!("--host={host}"),
                format!("--port={port}"),
                format!("--user={user}"),
            ])
            .args(["--batch", "--skip-column-names", &name, "-e", sql])
            .stdin(Stdio::null())
            .output()
    } else {
        Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
    }
}

fn mysql_parts(url: &str) -> (String, String, String, String) {
    let rest = url.strip_prefix("mysql://").expect("mysql url");
    let (authority, name) = rest.split_once('/').expect("database name");
    let (user, host_port) = authority.split_once('@').unwrap_or(("root", authority));
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
    (
        host.to_owned(),
        port.to_owned(),
        user.split(':').next().unwrap().to_owned(),
        name.to_owned(),
    )
}

pub fn message(name: &str, message: Option<&str>) -> Option<Value> {
    Some(json!({ "name": name, "message": message }))
}

/// RabbitMQ's address, or `None` when it is unreachable outside CI.
#[cfg(feature = "rabbitmq")]
pub fn amqp() -> Option<String> {
    require(Service::Rabbitmq)
}

/// `GET path` on `127.0.0.1:port`: the status code and the body; `None` while nothing
/// answers (or not within 30 s).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The sum of the Prometheus counter `metric` over the series whose labels hold `label`
/// (`table="t"`; `""` for every series) in `metrics`, the text of a `GET /metrics`.
pub fn metric_sum(metrics: &str, metric: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(['{', ' ']) && rest.contains(label))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
