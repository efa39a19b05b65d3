//! Test helpers shared by pubsync's crates, per `shared/services.md`:
//!
//! - where each service is (`PUBSYNC_TEST_*_URL`, defaulting to the loopback services);
//! - [`require`]: a test that needs a service it cannot reach prints a loud
//!   `SKIPPED: <service> unreachable at <url>` and returns, or fails under `CI=true`;
//! - [`unique_name`]: names for databases, key prefixes and queues, so tests run in parallel;
//! - [`private`]: Redis and RabbitMQ servers of a test's own, for tests that restart or kill
//!   one, or need one with TLS;
//! - [`tls`]: a test CA and a server certificate it signed, made with `openssl`.
//!
//! Only std (and the `redis-server`, `rabbitmq-server` and `openssl` commands the machines
//! have): every crate can take it as a dev-dependency.
#![warn(unreachable_pub)]
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

pub mod corpus;
pub mod private;
pub mod tls;

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A server the tests talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// Redis.
    Redis,
    /// RabbitMQ.
    Rabbitmq,
}

impl Service {
    /// The environment variable that overrides the address.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "PUBSYNC_TEST_POSTGRES_URL",
            Self::Mysql => "PUBSYNC_TEST_MYSQL_URL",
            Self::Redis => "PUBSYNC_TEST_REDIS_URL",
            Self::Rabbitmq => "PUBSYNC_TEST_AMQP_URL",
        }
    }

    /// The address on every development and CI machine.
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Postgres => "postgres://root@127.0.0.1:5432/test",
            Self::Mysql => "mysql://root@127.0.0.1:3306/test",
            Self::Redis => "redis://127.0.0.1:6379/0",
            Self::Rabbitmq => "amqp://guest:guest@127.0.0.1:5672/%2f",
        }
    }

    /// The configured address.
    pub fn url(self) -> String {
        std::env::var(self.variable()).unwrap_or_else(|_| self.default_url().to_owned())
    }

    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MySQL/MariaDB",
            Self::Redis => "Redis",
            Self::Rabbitmq => "RabbitMQ",
        }
    }
}

/// The service's URL when it accepts connections. Otherwise prints
/// `SKIPPED: <service> unreachable at <url>` and returns `None`, or panics when `CI` is set
/// (`CI=true`), so a missing service fails CI instead of passing silently.
pub fn require(service: Service) -> Option<String> {
    let url = service.url();
    if reachable(&url) {
        return Some(url);
    }
    let message = format!("{} unreachable at {url}", service.name());
    if std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0") {
        panic!("{message} (CI is set: a service test may not skip)");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// Whether something accepts TCP connections at the URL's host and port.
pub fn reachable(url: &str) -> bool {
    let Some((host, port)) = host_port(url) else {
        return false;
    };
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok())
}

/// Host and port of `scheme://[user[:password]@]host[:port][/…]`, with the scheme's default port.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default_port = match scheme {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "redis" => 6379,
        "rediss" => 6380,
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return None,
    };
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), default_port)),
    }
}

/// A name no other test (in this or a parallel process) uses: `<prefix>_<pid>_<time>_<n>`,
/// lower case, safe as a database, queue or key-prefix name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_every_service_url() {
        assert_eq!(
            host_port("postgres://root@127.0.0.1:5432/test"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            host_port("mysql://root:pw@db/test"),
            Some(("db".into(), 3306))
        );
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some(("127.0.0.1".into(), 5672))
        );
        assert_eq!(
            host_port("redis://127.0.0.1/0"),
            Some(("127.0.0.1".into(), 6379))
        );
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("Queue").starts_with("queue_"));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        assert!(!reachable("redis://127.0.0.1:1/0"));
    }
}
