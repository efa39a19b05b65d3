//! Redis storage: the key-value read model kept in Redis, as the original's StorageRedis plugin
//! keeps it: under `kv:<key>`, values the JSON the publishers stored.
//!
//! A storage key `message:2` lives in Redis as `<key_prefix>kv:message:2`, `key_prefix` being the
//! optional global prefix (`REDIS:REDIS_KEY_PREFIX`, empty by default). Values are stored exactly
//! as given: the JSON text of the sync message's `value`, `_timestamp` included.
//!
//! - Reads: [`get`](StorageReader::get) is `GET`, [`get_multi`](StorageReader::get_multi) is one
//!   `MGET`, or for more than [`MGET_CHUNK`] keys one per chunk, pipelined in one round trip, and
//!   [`scan`](StorageReader::scan) is `SCAN … MATCH <prefix>kv:<pattern> COUNT 100`.
//! - Writes: [`apply`](KeyValueWriter::apply) sends one Lua script call (`EVALSHA`) per chunk of
//!   [`RedisStorageOptions::chunk_size`] changes, one round trip like `MSET`. The script applies a
//!   change only when its version is newer than the stored one: the value's `_timestamp` for a
//!   live key, its tombstone for a deleted one (kept for [`RedisStorageOptions::tombstone_ttl`]).
//!   So out-of-order messages, several sync workers and redelivered messages never put an older
//!   value back, and an older write arriving after a delete does not bring the key back. The
//!   script is in `src/apply.lua`.
//! - Tombstones: one hash per global prefix, [`RedisStorage::tombstones_key`]
//!   (`<key_prefix>pubsync:tombstones`, field the storage key, value the delete's version as
//!   text), their expiry times in a sorted set beside it,
//!   [`RedisStorage::tombstone_expiries_key`]. Not one key with a TTL per tombstone: the script
//!   would need each one passed in, which cost a third of a call of fresh keys. Each script
//!   call first removes expired tombstones, at most its chunk's size plus 100, and a tombstone
//!   past its expiry counts as gone even before. So expired tombstones keep memory until the
//!   next `apply` (not freed while no changes come), and under an `allkeys-*` eviction policy
//!   Redis would evict all tombstones of a prefix at once (under `volatile-*`, none).
//! - The marker: `<key_prefix>pubsync:marker` ([`MARKER_KEY`]), a token pubsync also records
//!   in its database; a Redis without it lost its data (restarted without persistence,
//!   flushed, replaced).
//! - [`RedisStorage::apply_unchecked`]: the same changes as `MSET`/`DEL` in one pipeline, without
//!   version checks, for bulk loads into an empty store and as the benchmark ceiling.
//!
//! What this crate deliberately does not do:
//! - Redis Cluster: one script call touches every key of its chunk and the prefix's tombstone
//!   hash and expiry set, which cluster mode allows only when they hash to one slot. Not
//!   supported today; a global prefix that is a hash tag (`{shop}:`) would put every key in one
//!   slot, at the price of one node holding them all.
//! - the original's gzip compression of values (`REDIS:REDIS_COMPRESSION_ENABLED`): a compressed
//!   value read here is an error, not garbage.
//! - replication DSNs, Sentinel, Unix sockets beyond what the driver's URL parser gives.
//!
//! TLS (`rediss://`) goes through the driver's `tokio-native-tls-comp` feature, which uses the
//! system OpenSSL on Linux (no cmake, no aws-lc): the system's CAs are trusted, and a URL's
//! `?cacert=<pem>` adds one, `?cert=<pem>&key=<pem>` a client certificate
//! ([`RedisAddress`]). `rediss://…#insecure` skips host name checks.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod address;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use pubsync_shared::key::KV_PREFIX;
use pubsync_storage_extension::{
    BoxError, KeyValueWriter, ScanPage, StorageChange, StorageError, StorageReader,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};

pub use address::{InvalidRedisUrl, RedisAddress, TlsFiles, redact_url};
/// The driver, so that callers use the same version as this crate.
pub use redis;

/// Most keys sent in one `MGET`.
pub const MGET_CHUNK: usize = 1000;

/// The `COUNT` hint of each `SCAN` step, as the original.
pub const SCAN_COUNT: u64 = 100;

/// The hash of tombstones (field: key, value: the delete's version), after the global prefix:
/// outside `kv:`, so scans do not see it.
pub const TOMBSTONES_KEY: &str = "pubsync:tombstones";

/// The sorted set of tombstone expiry times (member: key, score: Unix time in milliseconds),
/// after the global prefix.
pub const TOMBSTONE_EXPIRIES_KEY: &str = "pubsync:tombstone-expiries";

/// The key of the marker ([`KeyValueWriter::write_marker`]) after the global prefix: beside
/// the storage keys, never read by the original's clients, which read only `kv:` keys.
pub const MARKER_KEY: &str = "pubsync:marker";

/// The Lua script of [`KeyValueWriter::apply`].
pub const APPLY_SCRIPT: &str = include_str!("apply.lua");

static APPLY: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(APPLY_SCRIPT));

/// How a [`RedisStorage`] behaves. `Default` gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStorageOptions {
    /// The global key prefix put before `kv:` (`REDIS:REDIS_KEY_PREFIX`); empty by default.
    pub key_prefix: String,
    /// How long a delete's tombstone is kept: an older write arriving later than this after a
    /// delete brings the key back. Expired tombstones are removed by the next
    /// [`apply`](KeyValueWriter::apply) calls, not by Redis. 1 day by default.
    pub tombstone_ttl: Duration,
    /// Most changes per script call of [`KeyValueWriter::apply`]; 1000 by default. The script
    /// blocks Redis while it runs, the longer the more changes (and the larger values) it carries.
    pub chunk_size: usize,
    /// How long one connection attempt may take; 5 s by default.
    pub connection_timeout: Duration,
    /// How long a command may wait for its answer; 5 s by default.
    pub response_timeout: Duration,
    /// How often a lost connection is retried (with exponential back-off from 100 ms) before a
    /// command fails as unavailable; also applies to the first connection. 6 by default.
    pub reconnect_retries: usize,
}

impl Default for RedisStorageOptions {
    fn default() -> Self {
        Self {
            key_prefix: String::new(),
            tombstone_ttl: Duration::from_secs(24 * 60 * 60),
            chunk_size: 1000,
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 6,
        }
    }
}

impl RedisStorageOptions {
    /// Options with the global key prefix `key_prefix` and defaults otherwise.
    pub fn with_key_prefix(key_prefix: impl Into<String>) -> Self {
        Self {
            key_prefix: key_prefix.into(),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), InvalidOption> {
        if self.chunk_size == 0 {
            return Err(InvalidOption {
                option: "chunk_size",
                reason: "must be at least 1",
            });
        }
        if self.tombstone_ttl < Duration::from_millis(1) {
            return Err(InvalidOption {
                option: "tombstone_ttl",
                reason: "must be at least 1 ms",
            });
        }
        Ok(())
    }
}

/// An option of [`RedisStorageOptions`] that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid redis storage option {option}: {reason}")]
pub struct InvalidOption {
    /// The option's field name.
    pub option: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Storage in Redis. Cheap to clone: clones share one auto-reconnecting multiplexed connection.
#[derive(Clone)]
pub struct RedisStorage {
    connection: ConnectionManager,
    inner: Arc<Inner>,
}

struct Inner {
    address: RedisAddress,
    /// `redis <address>`, for errors.
    backend: String,
    options: RedisStorageOptions,
    /// `<key_prefix>kv:`.
    kv_prefix: String,
    /// `<key_prefix>pubsync:tombstones`.
    tombstones_key: String,
    /// `<key_prefix>pubsync:tombstone-expiries`.
    expiries_key: String,
    /// `<key_prefix>pubsync:marker`.
    marker_key: String,
    /// The `SCAN MATCH` prefix: `kv_prefix` with glob characters escaped.
    match_prefix: String,
    /// The tombstone TTL in milliseconds, as the script's first argument.
    tombstone_ttl_ms: String,
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection manager: its Debug shows the password.
        f.debug_struct("RedisStorage")
            .field("address", &self.inner.address)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// Connects to the server at `url` (`redis://[user][:password@]host[:port][/db]`, or
    /// `rediss://` for TLS) and keeps the connection, reconnecting when it is lost.
    ///
    /// A bad URL or option is [`StorageError::Operation`] (not transient), its message showing
    /// the URL without the password; a server that cannot be reached (after
    /// [`RedisStorageOptions::reconnect_retries`]) is [`StorageError::Unavailable`].
    pub async fn connect(url: &str, options: RedisStorageOptions) -> Result<Self, StorageError> {
        let address = RedisAddress::parse(url).map_err(|error| StorageError::Operation {
            operation: "connect",
            source: Box::new(error),
        })?;
        Self::connect_to(address, options).await
    }

    /// Like [`connect`](Self::connect), with an address already parsed.
    pub async fn connect_to(
        address: RedisAddress,
        options: RedisStorageOptions,
    ) -> Result<Self, StorageError> {
        options
            .validate()
            .map_err(|error| StorageError::Operation {
                operation: "connect",
                source: Box::new(error),
            })?;
        let backend = format!("redis {address}");
        let client = client(&address).map_err(|source| StorageError::Operation {
            operation: "connect",
            source,
        })?;
        // One attempt first: refused credentials or a server that does not answer are one
        // clear error at once, not the connection manager's retries.
        let first = tokio::time::timeout(
            options.connection_timeout,
            client.get_multiplexed_async_connection(),
        )
        .await;
        match first {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == ErrorKind::AuthenticationFailed => {
                return Err(StorageError::Operation {
                    operation: "connect",
                    source: format!("{error} (check the user name and password in the URL)").into(),
                });
            }
            Ok(Err(error)) => {
                return Err(StorageError::Unavailable {
                    backend: backend.clone(),
                    source: format!("{error} (check the host and port and that Redis runs; rediss:// needs a TLS port)").into(),
                });
            }
            Err(_) => {
                return Err(StorageError::Unavailable {
                    backend: backend.clone(),
                    source: format!(
                        "no answer within {:?} (check the host and port; a rediss:// URL against a plain port, or redis:// against a TLS port, looks like this)",
                        options.connection_timeout
                    )
                    .into(),
                });
            }
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(options.reconnect_retries);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|error| {
                if error.kind() == ErrorKind::AuthenticationFailed {
                    // Wrong credentials do not get better by waiting.
                    StorageError::Operation {
                        operation: "connect",
                        source: Box::new(error),
                    }
                } else {
                    StorageError::Unavailable {
                        backend: backend.clone(),
                        source: Box::new(error),
                    }
                }
            })?;
        let kv_prefix = format!("{}{KV_PREFIX}", options.key_prefix);
        let inner = Inner {
            tombstones_key: format!("{}{TOMBSTONES_KEY}", options.key_prefix),
            expiries_key: format!("{}{TOMBSTONE_EXPIRIES_KEY}", options.key_prefix),
            marker_key: format!("{}{MARKER_KEY}", options.key_prefix),
            match_prefix: escape_glob(&kv_prefix),
            kv_prefix,
            tombstone_ttl_ms: options.tombstone_ttl.as_millis().to_string(),
            address,
            backend,
            options,
        };
        Ok(Self {
            connection,
            inner: Arc::new(inner),
        })
    }

    /// The server connected to.
    pub fn address(&self) -> &RedisAddress {
        &self.inner.address
    }

    /// The options in use.
    pub fn options(&self) -> &RedisStorageOptions {
        &self.inner.options
    }

    /// The Redis key of storage key `key`: `<key_prefix>kv:<key>`.
    pub fn redis_key(&self, key: &str) -> String {
        let mut redis_key = String::with_capacity(self.inner.kv_prefix.len() + key.len());
        redis_key.push_str(&self.inner.kv_prefix);
        redis_key.push_str(key);
        redis_key
    }

    /// The Redis hash holding the tombstones deletes leave, field `key`, value the delete's
    /// version: `<key_prefix>pubsync:tombstones`.
    pub fn tombstones_key(&self) -> &str {
        &self.inner.tombstones_key
    }

    /// The Redis sorted set of the tombstones' expiry times, member `key`, score the expiry as
    /// Unix time in milliseconds: `<key_prefix>pubsync:tombstone-expiries`.
    pub fn tombstone_expiries_key(&self) -> &str {
        &self.inner.expiries_key
    }

    /// A handle on the shared connection, for what the contract does not cover (administration,
    /// tests). Commands sent through it see raw Redis keys, prefix included.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Applies `changes` in order without any version check: consecutive writes as one `MSET`,
    /// consecutive deletes as one `DEL`, everything in one pipeline (one round trip). No
    /// tombstones are written or removed. Meant for loading an empty store and for measuring
    /// the ceiling; the sync path uses [`KeyValueWriter::apply`]. Returns `changes.len()`.
    pub async fn apply_unchecked(
        &self,
        changes: Vec<StorageChange>,
    ) -> Result<usize, StorageError> {
        let count = changes.len();
        if count == 0 {
            return Ok(0);
        }
        let mut pipeline = redis::pipe();
        let mut writes: Vec<(String, String)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for change in changes {
            match change {
                StorageChange::Write { key, value, .. } => {
                    if !deletes.is_empty() {
                        pipeline.del(std::mem::take(&mut deletes)).ignore();
                    }
                    writes.push((self.redis_key(&key), value));
                }
                StorageChange::Delete { key, .. } => {
                    if !writes.is_empty() {
                        pipeline.mset(&std::mem::take(&mut writes)).ignore();
                    }
                    deletes.push(self.redis_key(&key));
                }
            }
        }
        if !writes.is_empty() {
            pipeline.mset(&writes).ignore();
        }
        if !deletes.is_empty() {
            pipeline.del(deletes).ignore();
        }
        let mut connection = self.connection.clone();
        let _: () = pipeline
            .query_async(&mut connection)
            .await
            .map_err(|error| self.error("apply_unchecked", error))?;
        Ok(count)
    }

    /// One script call for `chunk`: `EVALSHA`, loading the script first when the server does
    /// not know it (a restart, `SCRIPT FLUSH`). The command is built in place, each argument
    /// copied once into its buffer.
    async fn apply_chunk(&self, chunk: &[StorageChange]) -> Result<usize, StorageError> {
        let mut operations = String::with_capacity(chunk.len());
        for change in chunk {
            operations.push(match change {
                StorageChange::Write { .. } => 'w',
                StorageChange::Delete { .. } => 'd',
            });
        }
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(APPLY.get_hash())
            .arg(2 + chunk.len())
            .arg(&self.inner.tombstones_key)
            .arg(&self.inner.expiries_key);
        let mut key = String::new();
        for change in chunk {
            key.clear();
            key.push_str(&self.inner.kv_prefix);
            key.push_str(change.key());
            command.arg(key.as_str());
        }
        let mut versions = Vec::with_capacity(8 * chunk.len());
        for change in chunk {
            versions.extend_from_slice(&change.version().as_seconds().to_le_bytes());
        }
        command
            .arg(&self.inner.tombstone_ttl_ms)
            .arg(operations)
            .arg(versions)
            .arg(self.inner.kv_prefix.len());
        let mut version = String::new();
        for change in chunk {
            match change {
                StorageChange::Write { value, .. } => {
                    command.arg(value.as_str());
                }
                StorageChange::Delete {
                    version: number, ..
                } => {
                    // The tombstone keeps the version as text.
                    version.clear();
                    write_version(&mut version, number.as_seconds());
                    command.arg(version.as_str());
                }
            }
        }
        let mut connection = self.connection.clone();
        let applied: u64 = match command.query_async(&mut connection).await {
            Ok(applied) => applied,
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let _: String = APPLY
                    .load_async(&mut connection)
                    .await
                    .map_err(|error| self.error("apply", error))?;
                command
                    .query_async(&mut connection)
                    .await
                    .map_err(|error| self.error("apply", error))?
            }
            Err(error) => return Err(self.error("apply", error)),
        };
        Ok(usize::try_from(applied).unwrap_or(usize::MAX))
    }

    /// The contract's error for a driver error: unavailable when the connection is at fault or
    /// the server asks to retry (loading, busy, failover), a failed operation otherwise.
    fn error(&self, operation: &'static str, error: RedisError) -> StorageError {
        let transient =
            error.is_io_error() || !matches!(error.retry_method(), RetryMethod::NoRetry);
        if transient {
            StorageError::Unavailable {
                backend: self.inner.backend.clone(),
                source: Box::new(error),
            }
        } else {
            StorageError::Operation {
                operation,
                source: Box::new(error),
            }
        }
    }

    /// The stored bytes of `key` as text.
    fn text(key: &str, bytes: Vec<u8>) -> Result<String, StorageError> {
        String::from_utf8(bytes).map_err(|error| {
            let compressed = error.as_bytes().starts_with(b"\x1f\x8b\x08");
            let source: BoxError = if compressed {
                format!("value of {key:?} is gzip-compressed, which this storage does not read")
                    .into()
            } else {
                format!("value of {key:?} is not UTF-8 text").into()
            };
            StorageError::Operation {
                operation: "get",
                source,
            }
        })
    }
}

impl StorageReader for RedisStorage {
    async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await
            .map_err(|error| self.error("get", error))?;
        value.map(|bytes| Self::text(key, bytes)).transpose()
    }

    async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let values: Vec<Option<Vec<u8>>> = if keys.len() <= MGET_CHUNK {
            // One `MGET`, as the original; `cmd("MGET")` rather than `mget()`: the driver sends
            // one key as `GET`, whose reply is not a list.
            let mut command = redis::cmd("MGET");
            for key in keys {
                command.arg(self.redis_key(key));
            }
            command
                .query_async(&mut connection)
                .await
                .map_err(|error| self.error("get_multi", error))?
        } else {
            let mut pipeline = redis::pipe();
            for chunk in keys.chunks(MGET_CHUNK) {
                let command = pipeline.cmd("MGET");
                for key in chunk {
                    command.arg(self.redis_key(key));
                }
            }
            let chunks: Vec<Vec<Option<Vec<u8>>>> = pipeline
                .query_async(&mut connection)
                .await
                .map_err(|error| self.error("get_multi", error))?;
            chunks.into_iter().flatten().collect()
        };
        if values.len() != keys.len() {
            return Err(StorageError::Operation {
                operation: "get_multi",
                source: format!("asked {} keys, got {} values", keys.len(), values.len()).into(),
            });
        }
        keys.iter()
            .zip(values)
            .map(|(key, value)| value.map(|bytes| Self::text(key, bytes)).transpose())
            .collect()
    }

    /// `SCAN` steps of `COUNT 100` from `cursor` until about `limit` keys are found or the scan
    /// is complete (cursor `0`), at least one step, as the original's `scanKeys`. A step may
    /// return more keys than asked: all are kept, so the next page loses none.
    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
        cursor: u64,
    ) -> Result<ScanPage, StorageError> {
        let pattern = format!("{}{pattern}", self.inner.match_prefix);
        let mut connection = self.connection.clone();
        let mut page = ScanPage {
            cursor,
            keys: Vec::new(),
        };
        loop {
            let (next, redis_keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(page.cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut connection)
                .await
                .map_err(|error| self.error("scan", error))?;
            page.cursor = next;
            let kv_prefix = self.inner.kv_prefix.as_bytes();
            page.keys.extend(redis_keys.iter().filter_map(|redis_key| {
                redis_key
                    .strip_prefix(kv_prefix)
                    .map(|key| String::from_utf8_lossy(key).into_owned())
            }));
            if page.cursor == 0 || page.keys.len() >= limit {
                return Ok(page);
            }
        }
    }
}

impl KeyValueWriter for RedisStorage {
    /// One script call per chunk of [`RedisStorageOptions::chunk_size`] changes, in order; see
    /// the crate documentation. A change is applied only when its version is greater than the
    /// stored one; an equal version (a redelivered message) is not applied and not counted.
    /// `version` must be the value's `_timestamp`, as the sync consumer takes it from there.
    ///
    /// Each chunk is atomic towards other clients. When a later chunk fails, the earlier ones
    /// stay applied; applying the same changes again is harmless, since they are versioned.
    async fn apply(&self, changes: Vec<StorageChange>) -> Result<usize, StorageError> {
        let mut applied = 0;
        for chunk in changes.chunks(self.inner.options.chunk_size) {
            applied += self.apply_chunk(chunk).await?;
        }
        Ok(applied)
    }

    /// `GET <key_prefix>pubsync:marker`.
    async fn read_marker(&self) -> Result<Option<String>, StorageError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.inner.marker_key)
            .query_async(&mut connection)
            .await
            .map_err(|error| self.error("read_marker", error))?;
        Ok(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// `SET <key_prefix>pubsync:marker <marker>`, without expiry: it lasts as long as the data.
    async fn write_marker(&self, marker: &str) -> Result<(), StorageError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(&self.inner.marker_key)
            .arg(marker)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|error| self.error("write_marker", error))
    }
}

/// The driver's client for `address`, with the PEM files its URL names read in.
fn client(address: &RedisAddress) -> Result<redis::Client, BoxError> {
    let files = address.tls_files();
    if files.is_empty() {
        return Ok(redis::Client::open(address.connection_info())?);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| format!("reading {}: {error}", path.display()))
    };
    let root_cert = files.ca_cert.as_deref().map(read).transpose()?;
    let client_tls = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    Ok(redis::Client::build_with_tls(
        address.connection_info(),
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )?)
}

/// A version as decimal text that Lua's `tonumber` reads back as the same double: Rust prints
/// the shortest text that round-trips, never in exponent form.
#[cfg(test)]
fn version_text(version: f64) -> String {
    let mut text = String::new();
    write_version(&mut text, version);
    text
}

/// Appends [`version_text`] of `version` to `text`.
fn write_version(text: &mut String, version: f64) {
    use std::fmt::Write as _;
    let _ = write!(text, "{version}");
}

/// `text` with the glob characters of `SCAN MATCH` escaped, so a prefix matches literally.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_keep_microseconds_as_text() {
        for text in [
            "1700000000.123456",
            "1700000000.123457",
            "1799999999.999999",
            "1599741494.31",
            "1",
        ] {
            let version: f64 = text.parse().expect("number");
            assert_eq!(version_text(version), text);
        }
        // PHP's json_encode writes microtime(true) with 17 digits; the shortest text of the
        // same double is shorter, and reads back as the same double.
        let php: f64 = "1599741494.2676899".parse().expect("number");
        assert_eq!(version_text(php), "1599741494.26769");
        assert_eq!(version_text(php).parse::<f64>().expect("number"), php);
        assert_eq!(version_text(0.0000001), "0.0000001");
        let earlier: f64 = "1700000000.123456".parse().expect("number");
        let later: f64 = "1700000000.123457".parse().expect("number");
        assert!(later > earlier);
    }

    #[test]
    fn glob_characters_of_the_prefix_are_escaped() {
        assert_eq!(escape_glob("shop[1]*?:kv:"), r"shop\[1\]\*\?:kv:");
        assert_eq!(escape_glob(r"a\b"), r"a\\b");
        assert_eq!(escape_glob("plain:kv:"), "plain:kv:");
    }

    #[test]
    fn default_options_are_valid_and_zero_chunks_are_not() {
        assert!(RedisStorageOptions::default().validate().is_ok());
        let options = RedisStorageOptions {
            chunk_size: 0,
            ..RedisStorageOptions::default()
        };
        assert_eq!(
            options.validate().expect_err("invalid").option,
            "chunk_size"
        );
    }
}
