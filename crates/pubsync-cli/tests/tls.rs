//! The whole pipeline over TLS: PostgreSQL with `sslmode=require`, RabbitMQ by `amqps://` and
//! Redis by `rediss://`, the broker and Redis servers of the test's own with a certificate of
//! a CA the test makes.
#![cfg(all(feature = "postgres", feature = "redis", feature = "rabbitmq"))]

mod common;

use common::*;
use pubsync_database::Dialect;
use pubsync_test_support::private::{PrivateRabbit, PrivateRedis};
use pubsync_test_support::tls::TestCa;

#[test]
fn rows_reach_redis_over_tls_end_to_end() {
    // The shared servers' presence says RabbitMQ and Redis are installed.
    if amqp().is_none() {
        return;
    }
    let servers = tempfile::tempdir().unwrap();
    let ca = TestCa::create(servers.path());
    let rabbit = PrivateRabbit::start(servers.path(), Some(&ca));
    let redis = PrivateRedis::start(servers.path(), Some(&ca), false);
    let Some(mut s) = Setup::new(Dialect::Postgres, &rabbit.tls_url().unwrap()) else {
        return;
    };
    s.redis_url = format!("{}?cacert={}", redis.url(), ca.ca_cert.display());
    s.write_config("redis");
    let database_url = s.database.url().to_connection_string();
    let separator = if database_url.contains('?') { '&' } else { '?' };
    let path = s.dir.path().join("pubsync.toml");
    let config = std::fs::read_to_string(&path).unwrap().replacen(
        &format!("{database_url:?}"),
        &format!("{:?}", format!("{database_url}{separator}sslmode=require")),
        1,
    );
    assert!(config.contains("sslmode=require"), "{config}");
    std::fs::write(path, config).unwrap();
    s.ok(&["setup"]);
    s.shell("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('tls', 'over TLS')");
    s.work();
    assert_eq!(s.get("message:1"), message("tls", Some("over TLS")));
    let health = String::from_utf8(s.pubsync(&["health"]).stdout).unwrap();
    assert!(health.contains("key-value-store: ok"), "{health}");
}
