//! The `pubsync` binary on the production servers: rows changed with `psql` or `mariadb` reach
//! Redis under `kv:message:<id>` after `queue:worker:start --stop-when-empty`, and database
//! storage (the bypass) reads the same. Each test has its own database, queue-name prefix and
//! Redis key prefix, so tests run in parallel on shared servers.
#![cfg(all(feature = "redis", any(feature = "postgres", feature = "mysql")))]

use std::process::{Command, Output, Stdio};

use pubsync_database::Dialect;
use pubsync_database::testing::TestDatabase;
use pubsync_test_support::{Service, require, unique_name};
use serde_json::{Value, json};

/// A working directory whose `pubsync.toml` points at one test database, Redis, and a queue.
struct Setup {
    dir: tempfile::TempDir,
    database: TestDatabase,
    redis_url: String,
    key_prefix: String,
    queue_url: String,
}

impl Setup {
    /// `None` when a server is unreachable outside CI.
    fn new(dialect: Dialect, queue_url: &str) -> Option<Self> {
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
    fn write_config(&self, storage: &str) {
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

    fn pubsync(&self, args: &[&str]) -> Output {
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
        command.output().expect("run pubsync")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.pubsync(args);
        assert!(
            output.status.success(),
            "pubsync {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn work(&self) {
        self.ok(&["queue:worker:start", "--stop-when-empty"]);
    }

    /// The stored value without `_timestamp` (which only key-value stores add), or `None`.
    fn get(&self, key: &str) -> Option<Value> {
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
    fn shell(&self, sql: &str) -> String {
        let url = self.database.url().to_connection_string();
        let output = match self.database.url().dialect() {
            Dialect::Postgres => Command::new("psql")
                .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
                .output(),
            Dialect::Mysql => {
                let (host, port, user, name) = mysql_parts(&url);
                Command::new("mariadb")
                    .args([
                        format!("--host={host}"),
                        format!("--port={port}"),
                        format!("--user={user}"),
                    ])
                    .args(["--batch", "--skip-column-names", &name, "-e", sql])
                    .stdin(Stdio::null())
                    .output()
            }
            Dialect::Sqlite => unreachable!("the sqlite3 shell is tested in cli.rs"),
        }
        .expect("the database shell is installed with the server");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn redis_keys(&self) -> Vec<String> {
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
                    for name in ["event", "sync.storage.hello", "sync"] {
                        let _ = queue.delete(&format!("{prefix}{name}")).await;
                    }
                }
            });
        }
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r redis-cli -u '{url}' del >/dev/null",
            url = self.redis_url,
            prefix = self.key_prefix
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
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

fn message(name: &str, message: Option<&str>) -> Option<Value> {
    Some(json!({ "name": name, "message": message }))
}

/// The scenario on one database and one queue.
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

/// Sets up RabbitMQ's address, or `None` when it is unreachable outside CI.
#[cfg(feature = "rabbitmq")]
fn amqp() -> Option<String> {
    require(Service::Rabbitmq)
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
