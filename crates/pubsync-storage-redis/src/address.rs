//! Redis URLs: parsing them into what the driver connects to, and showing them without the
//! password.

use std::fmt;
use std::path::PathBuf;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};

/// Where a Redis server is, as read from `redis://[user][:password@]host[:port][/db]` or
/// `rediss://…` (TLS). Its [`Display`](fmt::Display) never shows the password.
///
/// A `rediss://` URL may name PEM files in its query, as `redis-cli`'s options do:
/// `cacert` (a CA to trust besides the system's), `cert` and `key` (a client certificate).
/// The driver's own parameters (`protocol`, …) pass through.
#[derive(Clone)]
pub struct RedisAddress {
    info: ConnectionInfo,
    tls_files: TlsFiles,
}

/// The PEM files of a `rediss://` URL's query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `cacert`: a CA to trust besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// `cert`: the client certificate, with `key`.
    pub cert: Option<PathBuf>,
    /// `key`: the client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether the URL named any.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl RedisAddress {
    /// Parses `url`. The error message repeats the URL with its password replaced by `***`.
    pub fn parse(url: &str) -> Result<Self, InvalidRedisUrl> {
        let invalid = |reason: String| InvalidRedisUrl {
            url: redact_url(url),
            reason,
        };
        let (url_for_driver, tls_files) = take_tls_files(url).map_err(invalid)?;
        let info = url_for_driver
            .as_str()
            .into_connection_info()
            .map_err(|error| invalid(error.to_string()))?;
        if !info.addr().is_supported() {
            return Err(invalid(
                "this build cannot connect to such an address".to_owned(),
            ));
        }
        if !tls_files.is_empty() && !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            return Err(invalid(
                "cacert, cert and key are TLS settings: they need rediss://".to_owned(),
            ));
        }
        if tls_files.cert.is_some() != tls_files.key.is_some() {
            return Err(invalid("cert and key go together".to_owned()));
        }
        Ok(Self { info, tls_files })
    }

    /// The PEM files the URL named (`cacert`, `cert`, `key`).
    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls_files
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

/// `url` without the query parameters `cacert`, `cert` and `key`, and their values
/// (percent-decoded).
fn take_tls_files(url: &str) -> Result<(String, TlsFiles), String> {
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let Some((base, query)) = head.split_once('?') else {
        return Ok((url.to_owned(), TlsFiles::default()));
    };
    let mut files = TlsFiles::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "cacert" => &mut files.ca_cert,
            "cert" => &mut files.cert,
            "key" => &mut files.key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("{name}: percent-encoding is not UTF-8"))?
            .into_owned();
        if value.is_empty() {
            return Err(format!("{name} needs a file"));
        }
        *slot = Some(PathBuf::from(value));
    }
    let mut rebuilt = base.to_owned();
    if !kept.is_empty() {
        rebuilt.push('?');
        rebuilt.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        rebuilt.push('#');
        rebuilt.push_str(fragment);
    }
    Ok((rebuilt, files))
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
    fn rediss_takes_pem_files_and_passes_the_drivers_own_parameters_on() {
        let address = RedisAddress::parse(
            "rediss://u:secret@localhost:6380/2?cacert=/etc/my%20ca.pem&protocol=resp3",
        )
        .expect("parse");
        assert!(address.tls());
        assert_eq!(address.db(), 2);
        assert_eq!(
            address.tls_files(),
            &TlsFiles {
                ca_cert: Some("/etc/my ca.pem".into()),
                ..TlsFiles::default()
            }
        );
        let address = RedisAddress::parse("rediss://h/0?cert=/c.pem&key=/c.key#insecure").unwrap();
        assert_eq!(address.tls_files().key, Some("/c.key".into()));
        for (url, expected) in [
            ("redis://u:secret@h/0?cacert=/ca.pem", "need rediss://"),
            ("rediss://u:secret@h/0?cert=/c.pem", "go together"),
            ("rediss://u:secret@h/0?cacert=", "needs a file"),
        ] {
            let error = RedisAddress::parse(url).expect_err(url).to_string();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
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
