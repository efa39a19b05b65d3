//! Redis URLs: parsing them into what the driver connects to, and showing them without the
//! password.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};

/// Where a Redis server is, as read from `redis://[user][:password@]host[:port][/db]` or
/// `rediss://…` (TLS). Its [`Display`](fmt::Display) never shows the password.
#[derive(Clone)]
pub struct RedisAddress {
    info: ConnectionInfo,
}

impl RedisAddress {
    /// Parses `url`. The error message repeats the URL with its password replaced by `***`.
    pub fn parse(url: &str) -> Result<Self, InvalidRedisUrl> {
        let invalid = |reason: String| InvalidRedisUrl {
            url: redact_url(url),
            reason,
        };
        let info = url
            .into_connection_info()
            .map_err(|error| invalid(error.to_string()))?;
        if !info.addr().is_supported() {
            return Err(invalid(
                "this build cannot connect to such an address".to_owned(),
            ));
        }
        Ok(Self { info })
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        matches!(self.info.addr(), ConnectionAddr::TcpTls { .. })
    }

    /// The host name or address, or the socket path of a Unix socket.
    pub fn host(&self) -> String {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            ConnectionAddr::Unix(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }

    /// The TCP port; `0` for a Unix socket.
    pub fn port(&self) -> u16 {
        match self.info.addr() {
            ConnectionAddr::Tcp(_, port) | ConnectionAddr::TcpTls { port, .. } => *port,
            _ => 0,
        }
    }

    /// The database number (`SELECT`).
    pub fn db(&self) -> i64 {
        self.info.redis_settings().db()
    }

    /// The user name (Redis 6 ACL), if the URL has one.
    pub fn username(&self) -> Option<&str> {
        self.info.redis_settings().username()
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        self.info.redis_settings().password().is_some()
    }

    /// What the driver connects with.
    pub(crate) fn connection_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ConnectionAddr::Unix(path) = self.info.addr() {
            return write!(f, "unix://{}?db={}", path.display(), self.db());
        }
        let scheme = if self.tls() { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (self.username(), self.has_password()) {
            (Some(user), true) => write!(f, "{user}:***@")?,
            (Some(user), false) => write!(f, "{user}@")?,
            (None, true) => write!(f, ":***@")?,
            (None, false) => {}
        }
        let host = self.host();
        if host.contains(':') {
            // An IPv6 address.
            write!(f, "[{host}]")?;
        } else {
            write!(f, "{host}")?;
        }
        write!(f, ":{}/{}", self.port(), self.db())
    }
}

impl fmt::Debug for RedisAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The driver's own Debug would print the password.
        f.debug_tuple("RedisAddress")
            .field(&self.to_string())
            .finish()
    }
}

/// A Redis URL that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid redis url {url:?}: {reason}")]
pub struct InvalidRedisUrl {
    /// The URL with its password replaced by `***`.
    pub url: String,
    /// What is wrong with it, as the driver says.
    pub reason: String,
}

/// `url` with the password of its user info (`user:password@`) replaced by `***`; works on
/// strings that are not valid URLs too, since it is used for the messages about those.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let user = user_info.split_once(':').map_or("", |(user, _)| user);
    let password_present = user_info.contains(':');
    let mut redacted = String::with_capacity(url.len());
    redacted.push_str(&url[..rest_start]);
    if password_present {
        redacted.push_str(user);
        redacted.push_str(":***");
    } else {
        // `redis://secret@host`: whatever stands there may be a password, so hide it too.
        redacted.push_str("***");
    }
    redacted.push_str(&rest[at..]);
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_only() {
        assert_eq!(
            redact_url("rediss://user:pass@host:6380/2"),
            "rediss://user:***@host:6380/2"
        );
        assert_eq!(redact_url("redis://:pw@h/0"), "redis://:***@h/0");
        assert_eq!(redact_url("redis://pw@h/0"), "redis://***@h/0");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact_url("redis://h/0?x=a@b"), "redis://h/0?x=a@b");
        assert_eq!(redact_url("nonsense"), "nonsense");
        assert_eq!(
            redact_url("redis://u:p@ss:w@rd@h:1/0"),
            "redis://u:***@h:1/0"
        );
    }

    #[test]
    fn plain_url_without_credentials() {
        let address = RedisAddress::parse("redis://127.0.0.1:6379/3").expect("parse");
        assert!(!address.tls());
        assert_eq!(address.host(), "127.0.0.1");
        assert_eq!(address.port(), 6379);
        assert_eq!(address.db(), 3);
        assert_eq!(address.username(), None);
        assert!(!address.has_password());
        assert_eq!(address.to_string(), "redis://127.0.0.1:6379/3");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for url in [
            "redis://user:secret@host:6379/notadb",
            "http://user:secret@host/0",
            "redis://user:secret@:6379/0",
        ] {
            let error = RedisAddress::parse(url).expect_err(url).to_string();
            assert!(!error.contains("secret"), "{error}");
            assert!(error.starts_with("invalid redis url"), "{error}");
        }
    }
}
