//! The worker's `GET /health-check` and `GET /metrics`, over real HTTP: the metrics move when
//! changes flow, and the health check turns 503 while synchronization is stalled (another
//! session holds the write lock or a storage row) and 200 again once it flows. On the embedded
//! default, and on PostgreSQL with RabbitMQ and Redis.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::Write as _;

use common::http_get;
use pubsync_test_support::private::free_port;
use serde_json::Value;

/// Kills the child when dropped, so a failing test leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `GET /health-check` until its status is `want`; the last body.
fn health_becomes(port: u16, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some((status, body)) = http_get(port, "/health-check") {
            if status == want {
                return serde_json::from_str(&body).unwrap();
            }
            last = Some((status, body));
        }
        assert!(
            Instant::now() < deadline,
            "GET /health-check did not turn {want} within {within:?}; last: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the sample `series` (name and labels as rendered) in `GET /metrics`; 0 when
/// it is not there yet.
fn metric(port: u16, series: &str) -> f64 {
    let (status, body) = http_get(port, "/metrics").expect("the worker serves /metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Polls the sample `series` until it is at least `want`.
fn metric_reaches(port: u16, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(port, series) < want {
        assert!(
            Instant::now() < deadline,
            "{series} did not reach {want}: {}",
            http_get(port, "/metrics").unwrap().1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const HTTP_CONFIG: &str = "[health]\nprobe_interval_seconds = 1\nmax_age_seconds = 3\n";

#[test]
fn on_the_embedded_default_metrics_move_and_health_follows_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("pubsync.toml"),
        format!("{HTTP_CONFIG}[http]\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let pubsync = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pubsync"));
        command
            .args(args)
            .current_dir(dir.path())
            .env("PUBSYNC_LOG", "warn")
            .env_remove("PUBSYNC_DATABASE_URL")
            .env_remove("PUBSYNC_QUEUE_URL")
            .env_remove("PUBSYNC_STORAGE_URL");
        command
    };
    let sqlite = |sql: &str| {
        let status = Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(dir.path().join("pubsync.db"))
            .arg(sql)
            .status()
            .expect("the sqlite3 shell is installed (cargo xtask test installs it)");
        assert!(status.success(), "{sql}");
    };
    assert!(pubsync(&["setup"]).status().unwrap().success());
    let _worker = KillOnDrop(
        pubsync(&["queue:worker:start"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let body = health_becomes(port, 200, Duration::from_secs(30));
    assert_eq!(body["status"], 200, "{body}");
    assert!(
        body["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|service| service["healthy"] == true),
        "{body}"
    );
    assert_eq!(http_get(port, "/nothing").unwrap().0, 404);

    let published =
        "pubsync_events_published_total{listener=\"HelloSpryker.MessageStoragePublisher\"}";
    let captured = "pubsync_changes_captured_total{table=\"spy_hello_spryker_message\"}";
    assert_eq!(metric(port, published), 0.0);
    sqlite(
        "INSERT INTO spy_hello_spryker_message (name) VALUES ('a'), ('b'), ('c'), ('d'), ('e');",
    );
    metric_reaches(port, published, 5.0);
    assert_eq!(metric(port, captured), 5.0);
    assert_eq!(
        metric(
            port,
            "pubsync_queue_messages{queue=\"event\",state=\"error\"}"
        ),
        0.0
    );

    // Another connection takes the write lock and keeps it: nothing is written, the probe
    // in storage ages past its three seconds.
    let mut holder = KillOnDrop(
        Command::new("sqlite3")
            .arg(dir.path().join("pubsync.db"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdin = holder.0.stdin.as_mut().unwrap();
    writeln!(stdin, "BEGIN IMMEDIATE;").unwrap();
    stdin.flush().unwrap();
    let body = health_becomes(port, 503, Duration::from_secs(30));
    let storage = &body["services"][1];
    assert_eq!(storage["name"], "publish-and-synchronize-storage", "{body}");
    assert_eq!(storage["healthy"], false, "{body}");

    writeln!(stdin, "COMMIT;").unwrap();
    writeln!(stdin, ".quit").unwrap();
    stdin.flush().unwrap();
    holder.0.wait().unwrap();
    health_becomes(port, 200, Duration::from_secs(60));
}

#[cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]
#[test]
fn on_postgres_rabbitmq_and_redis_metrics_move_and_health_follows_a_stall() {
    use common::Setup;
    use pubsync_database::Dialect;

    let Some(amqp) = pubsync_test_support::require(pubsync_test_support::Service::Rabbitmq) else {
        return;
    };
    let Some(s) = Setup::new(Dialect::Postgres, &amqp) else {
        return;
    };
    let port = free_port();
    s.append_config(&format!(
        "{HTTP_CONFIG}[http]\naddress = \"127.0.0.1:{port}\"\n"
    ));
    s.ok(&["setup"]);
    let _worker = KillOnDrop(
        s.command(&["queue:worker:start"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    health_becomes(port, 200, Duration::from_secs(60));

    // The queue prefix is a label of every series.
    let synced_value = |port| {
        let (_, body) = http_get(port, "/metrics").unwrap();
        body.lines()
            .find(|line| {
                line.starts_with("pubsync_keys_synced_total{")
                    && line.contains("resource=\"message\"")
            })
            .and_then(|line| line.rsplit(' ').next())
            .map_or(0.0, |value| value.parse::<f64>().unwrap())
    };
    assert_eq!(synced_value(port), 0.0);
    s.shell(
        "INSERT INTO spy_hello_spryker_message (name) SELECT 'n' || i FROM generate_series(1, 5) i",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while synced_value(port) < 5.0 {
        assert!(
            Instant::now() < deadline,
            "five keys synced to Redis: {}",
            http_get(port, "/metrics").unwrap().1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, body) = http_get(port, "/metrics").unwrap();
    assert!(
        body.contains("pubsync_commit_to_storage_seconds_count"),
        "the latency histogram: {body}"
    );

    // Another session holds the probe's storage row: its publisher waits, the probe in Redis
    // ages.
    let url = s.database.url().to_connection_string();
    let _holder = KillOnDrop(
        Command::new("psql")
            .args([url.as_str(), "-qAt", "-c"])
            .arg(
                "BEGIN; SELECT 1 FROM spy_publish_and_synchronize_health_check_storage FOR UPDATE; \
                 SELECT pg_sleep(300);",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let body = health_becomes(port, 503, Duration::from_secs(60));
    assert!(
        body["services"][1]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allowed"),
        "{body}"
    );
    // Ending the session (killing psql does not end its backend) lets the publisher through.
    s.shell(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event = 'PgSleep'",
    );
    health_becomes(port, 200, Duration::from_secs(60));
}
