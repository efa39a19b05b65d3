//! Parsing `amqp[s]://user:password@host:port/vhost[?tls parameters]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::RabbitQueueError;

/// Where the broker is and how to log in, parsed from an AMQP URL.
///
/// `amqp://user:password@host:port/vhost`, with RabbitMQ's defaults for what is left out: user
/// and password `guest`, port 5672, vhost `/`. User, password and vhost are percent-decoded, so
/// the vhost `/` is written `%2f` (`amqp://guest:guest@127.0.0.1:5672/%2f`); an empty path
/// (`amqp://host` or `amqp://host/`) also means `/`.
///
/// `amqps://` connects with TLS (port 5671 by default), checking the broker's certificate
/// against the Mozilla roots compiled in, or against the CA of the query parameter
/// `cacertfile`; `certfile` and `keyfile` add a client certificate, and
/// `server_name_indication` names the host the certificate must be for when it is not the
/// URL's. The names are those of RabbitMQ's own URI query parameters; any other parameter is
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
    /// With `amqps://`, how TLS is set up; `None` for plain `amqp://`.
    pub tls: Option<TlsSettings>,
}

/// The TLS settings of an `amqps://` URL, from its query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `cacertfile`: the PEM file of the CA (or CAs) to trust instead of the compiled-in
    /// roots.
    pub ca_cert_file: Option<PathBuf>,
    /// `certfile`: the client certificate (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// `keyfile`: the client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `server_name_indication`: the name the broker's certificate must be for, when not the
    /// URL's host.
    pub server_name: Option<String>,
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
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}, expected amqp or amqps"
                )));
            }
        };
        if rest.contains('#') {
            return Err(invalid("fragments are not supported".into()));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let tls = match (secure, query) {
            (true, query) => Some(tls_settings(query.unwrap_or("")).map_err(invalid)?),
            (false, Some(_)) => {
                return Err(invalid(
                    "query parameters are TLS settings: they need amqps://".into(),
                ));
            }
            (false, None) => None,
        };
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
        let default_port = if secure { 5671 } else { 5672 };
        let (host, port) = split_host_port(host_port, default_port).map_err(invalid)?;
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
            tls,
        })
    }
}

/// The TLS settings of the query `query` (`name=value&…`, values percent-encoded).
fn tls_settings(query: &str) -> Result<TlsSettings, String> {
    let mut settings = TlsSettings::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("query parameter {pair:?} has no value"))?;
        let value = percent_decode(value).map_err(|reason| format!("{name}: {reason}"))?;
        match name {
            "cacertfile" => settings.ca_cert_file = Some(value.into()),
            "certfile" => settings.cert_file = Some(value.into()),
            "keyfile" => settings.key_file = Some(value.into()),
            "server_name_indication" => settings.server_name = Some(value),
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; amqps:// takes cacertfile, certfile, \
                     keyfile and server_name_indication"
                ));
            }
        }
    }
    if settings.cert_file.is_some() != settings.key_file.is_some() {
        return Err("certfile and keyfile go together".into());
    }
    Ok(settings)
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
        let scheme = if self.tls.is_some() { "amqps" } else { "amqp" };
        write!(f, "{scheme}://{}@{host}:{}/{vhost}", self.user, self.port)
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
            .field("tls", &self.tls)
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

fn split_host_port(host_port: &str, default_port: u16) -> Result<(String, u16), String> {
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
        None | Some("") => default_port,
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
    fn amqps_takes_rabbitmqs_tls_parameters() {
        let address = AmqpAddress::parse("amqps://u:secret@broker").unwrap();
        assert_eq!(address.port, 5671);
        assert_eq!(address.tls, Some(TlsSettings::default()));
        assert_eq!(address.to_string(), "amqps://u@broker:5671/%2f");
        let address = AmqpAddress::parse(
            "amqps://u:secret@10.0.0.5:5674/shop?cacertfile=/etc/ca%20s.pem\
             &certfile=/c.pem&keyfile=/c.key&server_name_indication=broker.local",
        )
        .unwrap();
        assert_eq!(address.vhost, "shop");
        assert_eq!(
            address.tls,
            Some(TlsSettings {
                ca_cert_file: Some("/etc/ca s.pem".into()),
                cert_file: Some("/c.pem".into()),
                key_file: Some("/c.key".into()),
                server_name: Some("broker.local".into()),
            })
        );
        assert_eq!(AmqpAddress::parse("amqp://h").unwrap().tls, None);
    }

    #[test]
    fn errors_are_clear_and_never_show_the_password() {
        for (url, expected) in [
            ("http://u:secret@host/", "unknown scheme"),
            (
                "amqps://u:secret@host/?verify=verify_none",
                "unknown query parameter",
            ),
            ("amqps://u:secret@host/?certfile=/c.pem", "go together"),
            ("amqp://u:secret@host:port/", "invalid port"),
            ("amqp://u:secret@/", "host is missing"),
            ("amqp://u:secret@host/a/b", "one path segment"),
            ("amqp://u:secret@host/%zz", "percent-encoding"),
            ("amqp://u:secret@host/?cacertfile=/ca.pem", "need amqps://"),
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
