//! Parsing `amqp://user:password@host:port/vhost`.

use std::fmt;
use std::str::FromStr;

use crate::RabbitQueueError;

/// Where the broker is and how to log in, parsed from an AMQP URL.
///
/// `amqp://user:password@host:port/vhost`, with RabbitMQ's defaults for what is left out: user
/// and password `guest`, port 5672, vhost `/`. User, password and vhost are percent-decoded, so
/// the vhost `/` is written `%2f` (`amqp://guest:guest@127.0.0.1:5672/%2f`); an empty path
/// (`amqp://host` or `amqp://host/`) also means `/`. `amqps` (TLS) and query parameters are
/// refused. The password never appears in [`Display`](fmt::Display), `Debug` or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpAddress {
    /// The host name or address (without brackets for IPv6).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
    /// The virtual host, decoded (`/` by default).
    pub vhost: String,
}

impl AmqpAddress {
    /// Parses an AMQP URL; see the type's documentation for the accepted form.
    pub fn parse(url: &str) -> Result<Self, RabbitQueueError> {
        let invalid = |reason: String| RabbitQueueError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected amqp://user:password@host:port/vhost".into()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "amqp" => {}
            "amqps" => return Err(invalid("amqps (TLS) is not supported".into())),
            other => return Err(invalid(format!("unknown scheme {other:?}, expected amqp"))),
        }
        if rest.contains(['?', '#']) {
            return Err(invalid(
                "query parameters and fragments are not supported".into(),
            ));
        }
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let (user_info, host_port) = match authority.rsplit_once('@') {
            Some((user_info, host_port)) => (Some(user_info), host_port),
            None => (None, authority),
        };
        let (user, password) = match user_info {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(user_info) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                (
                    percent_decode(user).map_err(|reason| invalid(format!("user: {reason}")))?,
                    percent_decode(password)
                        .map_err(|reason| invalid(format!("password: {reason}")))?,
                )
            }
        };
        let (host, port) = split_host_port(host_port).map_err(invalid)?;
        if host.is_empty() {
            return Err(invalid("the host is missing".into()));
        }
        let vhost = match path {
            None | Some("") => "/".to_owned(),
            Some(path) => {
                if path.contains('/') {
                    return Err(invalid(
                        "the vhost must be one path segment (write `/` as %2f)".into(),
                    ));
                }
                percent_decode(path).map_err(|reason| invalid(format!("vhost: {reason}")))?
            }
        };
        Ok(Self {
            host,
            port,
            user,
            password,
            vhost,
        })
    }
}

impl FromStr for AmqpAddress {
    type Err = RabbitQueueError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

/// `amqp://user@host:port/vhost`, without the password.
impl fmt::Display for AmqpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let vhost = if self.vhost == "/" {
            "%2f"
        } else {
            &self.vhost
        };
        write!(f, "amqp://{}@{host}:{}/{vhost}", self.user, self.port)
    }
}

impl fmt::Debug for AmqpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// The URL with any password replaced by `***`, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

fn split_host_port(host_port: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "unclosed [ in the host".to_owned())?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err("unexpected text after the IPv6 host".to_owned()),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => 5672,
        Some(port) => port.parse().map_err(|_| format!("invalid port {port:?}"))?,
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| "invalid percent-encoding".to_owned())?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| "percent-encoding is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_test_broker_url() {
        let address = AmqpAddress::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(address.host, "127.0.0.1");
        assert_eq!(address.port, 5672);
        assert_eq!(
            (address.user.as_str(), address.password.as_str()),
            ("guest", "guest")
        );
        assert_eq!(address.vhost, "/");
        assert_eq!(address.to_string(), "amqp://guest@127.0.0.1:5672/%2f");
    }

    #[test]
    fn fills_in_rabbitmq_defaults() {
        for url in [
            "amqp://localhost",
            "amqp://localhost/",
            "amqp://localhost:5672",
        ] {
            let address = AmqpAddress::parse(url).unwrap();
            assert_eq!(address.host, "localhost");
            assert_eq!(address.port, 5672);
            assert_eq!(address.user, "guest");
            assert_eq!(address.vhost, "/");
        }
    }

    #[test]
    fn decodes_user_password_and_vhost() {
        let address = AmqpAddress::parse("amqp://us%40er:p%3Ass@[::1]:5673/shop%2Fde").unwrap();
        assert_eq!(address.user, "us@er");
        assert_eq!(address.password, "p:ss");
        assert_eq!(address.host, "::1");
        assert_eq!(address.port, 5673);
        assert_eq!(address.vhost, "shop/de");
    }

    #[test]
    fn errors_are_clear_and_never_show_the_password() {
        for (url, expected) in [
            ("http://u:secret@host/", "unknown scheme"),
            ("amqps://u:secret@host/", "amqps"),
            ("amqp://u:secret@host:port/", "invalid port"),
            ("amqp://u:secret@/", "host is missing"),
            ("amqp://u:secret@host/a/b", "one path segment"),
            ("amqp://u:secret@host/%zz", "percent-encoding"),
            ("amqp://u:secret@host/?heartbeat=10", "query"),
            ("u:secret@host", "expected amqp://"),
        ] {
            let message = AmqpAddress::parse(url).unwrap_err().to_string();
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("secret"), "{url}: {message}");
        }
        let debug = format!("{:?}", AmqpAddress::parse("amqp://u:secret@host/").unwrap());
        assert!(!debug.contains("secret"), "{debug}");
    }
}
