//! Configuration: `pubsync.toml` (optional) overridden by `PUBSYNC_*` environment variables,
//! checked at start so a bad value fails at once, naming where it came from.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pubsync_backend::WorkerConfig;
use pubsync_backend::sync::SyncConfig;
use pubsync_database::DatabaseUrl;
use pubsync_shared::key::KeyBuilder;
use serde::Deserialize;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "pubsync.toml";
/// The database when nothing is configured: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pubsync.db";

/// `pubsync.toml`. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Same as `PUBSYNC_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Same as `PUBSYNC_QUEUE_URL`.
    pub queue_url: Option<String>,
    /// Same as `PUBSYNC_STORAGE_URL`.
    pub storage_url: Option<String>,
    /// Worker settings.
    #[serde(default)]
    pub worker: WorkerSection,
    /// Key settings.
    #[serde(default)]
    pub keys: KeySection,
    /// Synchronization settings.
    #[serde(default)]
    pub sync: SyncSection,
    /// Queue settings.
    #[serde(default)]
    pub queue: QueueSection,
    /// Key-value storage settings.
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[storage]` in `pubsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Put before `kv:` in every Redis key (the original's `REDIS_KEY_PREFIX`; default empty).
    pub key_prefix: Option<String>,
}

/// `[queue]` in `pubsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// RabbitMQ: declare quorum queues, for a RabbitMQ cluster (default false: classic queues).
    /// An existing queue cannot change its type.
    pub quorum: Option<bool>,
    /// Put before every queue name, so several applications can share one broker (default
    /// empty: `event`, `sync.storage.hello`, …).
    pub prefix: Option<String>,
}

/// `[sync]` in `pubsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// The global switch (default: on when the storage is a key-value store, off for database
    /// storage); a table's `synchronization_enabled` overrides it.
    pub enabled: Option<bool>,
    /// Write storage right after publishing, falling back to the sync queue (default false).
    pub direct: Option<bool>,
    /// Changes carried in one sync queue message (default 500).
    pub changes_per_message: Option<usize>,
    /// Sync queue messages per chunk (default 100).
    pub chunk_size: Option<usize>,
}

/// `[worker]` in `pubsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// Event messages per chunk (default 500).
    pub chunk_size: Option<usize>,
    /// Events carried in one event message (default 500).
    pub events_per_message: Option<usize>,
    /// Outbox rows relayed per pass (default 1000).
    pub relay_chunk_size: Option<usize>,
    /// Retries of a failing event before it goes to the error queue (default 3).
    pub max_retries: Option<u32>,
    /// Delay before the first retry in milliseconds, doubling each time (default 1000).
    pub retry_delay_ms: Option<u64>,
    /// Longest idle pause in milliseconds (default 100).
    pub idle_poll_ms: Option<u64>,
    /// How long a taken database-queue message stays with its worker before it is delivered
    /// again, in seconds (default 30).
    pub lease_seconds: Option<u64>,
    /// After SIGTERM or Ctrl-C, how long the step in hand may take to finish before the
    /// worker gives it up (its messages are given back) and exits, in seconds (default 30).
    pub shutdown_timeout_seconds: Option<u64>,
    /// Send one message per event and listener, in the original's format (default false).
    pub spryker_compatible: Option<bool>,
    /// Hand outbox events to their listeners in the worker's process instead of through the
    /// event queue, which then carries only retries (default: on with the database queue,
    /// whose messages would live next to the outbox anyway; off with RabbitMQ, which shares
    /// the work among workers).
    pub direct_publish: Option<bool>,
    /// Pace the worker like the original's queue worker (a pause of 100 ms after every pass
    /// that did work, `idle_poll_ms` after one that found none, no stage waking another): for
    /// comparisons only (default false).
    pub original_pacing: Option<bool>,
}

/// `[keys]` in `pubsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// `message` instead of `message:` for keys without a suffix (default false, as the original).
    pub single_key_format_normalized: Option<bool>,
}

/// Where queue messages live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// In the application database (`database`).
    Database,
    /// RabbitMQ: `amqp://user:password@host:port/vhost`.
    Amqp(String),
}

/// Where the storage is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// The storage tables of the application database (`database`, the key-value bypass).
    Database,
    /// Redis: `redis://[user:password@]host:port/db` or `rediss://` for TLS.
    Redis(String),
}

/// The resolved, checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The application database.
    pub database: DatabaseUrl,
    /// The queue.
    pub queue: QueueUrl,
    /// The storage.
    pub storage: StorageUrl,
    /// The worker.
    pub worker: WorkerConfig,
    /// The database queue's lease.
    pub queue_lease: Duration,
    /// How long a stopping worker waits for the step in hand.
    pub shutdown_timeout: Duration,
    /// The key scheme.
    pub key_builder: KeyBuilder,
    /// Synchronization.
    pub sync: SyncConfig,
    /// Put before every queue name.
    pub queue_prefix: String,
    /// RabbitMQ: declare quorum queues.
    pub quorum_queues: bool,
    /// Put before `kv:` in every key-value store key.
    pub key_prefix: String,
}

impl Settings {
    /// Reads `config` (or `pubsync.toml` when present) and the environment via `env`.
    pub fn load(
        config: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let (file, source) = match config {
            Some(path) => (read_file(path)?, format!("{}", path.display())),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => (
                read_file(Path::new(DEFAULT_CONFIG_FILE))?,
                DEFAULT_CONFIG_FILE.to_owned(),
            ),
            None => (FileConfig::default(), "defaults".to_owned()),
        };
        let pick = |var: &str, from_file: &Option<String>, default: &str| -> (String, String) {
            match env(var) {
                Some(value) => (value, var.to_owned()),
                None => match from_file {
                    Some(value) => (value.clone(), source.clone()),
                    None => (default.to_owned(), "default".to_owned()),
                },
            }
        };
        let (database, from) = pick(
            "PUBSYNC_DATABASE_URL",
            &file.database_url,
            DEFAULT_DATABASE_URL,
        );
        let database = database
            .parse::<DatabaseUrl>()
            .with_context(|| format!("database url (from {from})"))?;
        let (queue, from) = pick("PUBSYNC_QUEUE_URL", &file.queue_url, "database");
        let queue = parse_queue_url(&queue).with_context(|| format!("queue url (from {from})"))?;
        let (storage, from) = pick("PUBSYNC_STORAGE_URL", &file.storage_url, "database");
        let storage =
            parse_storage_url(&storage).with_context(|| format!("storage url (from {from})"))?;

        let section = &file.worker;
        let mut worker = WorkerConfig::default();
        if let Some(chunk_size) = section.chunk_size {
            worker.consumer.chunk_size = positive(chunk_size, "worker.chunk_size", &source)?;
        }
        if let Some(events) = section.events_per_message {
            worker.relay.events_per_message =
                positive(events, "worker.events_per_message", &source)?;
        }
        if let Some(chunk_size) = section.relay_chunk_size {
            worker.relay.chunk_size = positive(chunk_size, "worker.relay_chunk_size", &source)?;
        }
        if let Some(retries) = section.max_retries {
            worker.consumer.max_retries = retries;
        }
        if let Some(delay) = section.retry_delay_ms {
            worker.consumer.retry_delay = Duration::from_millis(delay);
        }
        if let Some(poll) = section.idle_poll_ms {
            worker.idle_poll =
                Duration::from_millis(
                    positive(poll as usize, "worker.idle_poll_ms", &source)? as u64
                );
        }
        if let Some(compatible) = section.spryker_compatible {
            worker.relay.spryker_compatible = compatible;
        }
        worker.original_pacing = section.original_pacing.unwrap_or(false);
        // Messages in the original's format are for someone to read: send them.
        worker.direct_publish = section
            .direct_publish
            .unwrap_or(queue == QueueUrl::Database && !worker.relay.spryker_compatible);
        let section = &file.sync;
        let mut sync = SyncConfig {
            enabled: section.enabled.unwrap_or(storage != StorageUrl::Database),
            direct: section.direct.unwrap_or(false),
            spryker_compatible: worker.relay.spryker_compatible,
            ..SyncConfig::default()
        };
        if let Some(changes) = section.changes_per_message {
            sync.changes_per_message = positive(changes, "sync.changes_per_message", &source)?;
        }
        if let Some(chunk_size) = section.chunk_size {
            sync.consumer_chunk_size = positive(chunk_size, "sync.chunk_size", &source)?;
        }
        let lease = file.worker.lease_seconds.unwrap_or(30);
        positive(lease as usize, "worker.lease_seconds", &source)?;
        let shutdown_timeout = file.worker.shutdown_timeout_seconds.unwrap_or(30);
        if shutdown_timeout > MAX_SHUTDOWN_TIMEOUT_SECONDS {
            bail!(
                "worker.shutdown_timeout_seconds in {source} is {shutdown_timeout}: at most {MAX_SHUTDOWN_TIMEOUT_SECONDS} (an hour)"
            );
        }
        Ok(Self {
            database,
            queue,
            storage,
            worker,
            queue_lease: Duration::from_secs(lease),
            shutdown_timeout: Duration::from_secs(shutdown_timeout),
            key_builder: KeyBuilder {
                single_key_format_normalized: file
                    .keys
                    .single_key_format_normalized
                    .unwrap_or(false),
            },
            sync,
            queue_prefix: file.queue.prefix.clone().unwrap_or_default(),
            quorum_queues: file.queue.quorum.unwrap_or(false),
            key_prefix: file.storage.key_prefix.clone().unwrap_or_default(),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The environment variables pubsync reads. Others starting with `PUBSYNC_` are refused, so
/// that a misspelt one is not silently ignored; `PUBSYNC_TEST_*` belong to the test suite.
pub const ENVIRONMENT: &[&str] = &[
    "PUBSYNC_DATABASE_URL",
    "PUBSYNC_QUEUE_URL",
    "PUBSYNC_STORAGE_URL",
    "PUBSYNC_LOG",
];

/// Refuses a `PUBSYNC_*` variable among `names` that pubsync does not read, naming it and the
/// ones it does.
pub fn check_environment(
    names: impl IntoIterator<Item = std::ffi::OsString>,
) -> anyhow::Result<()> {
    for name in names {
        let name = name.to_string_lossy();
        if name.starts_with("PUBSYNC_")
            && !name.starts_with("PUBSYNC_TEST_")
            && !ENVIRONMENT.contains(&name.as_ref())
        {
            bail!(
                "unknown environment variable {name}: pubsync reads {}",
                ENVIRONMENT.join(", ")
            );
        }
    }
    Ok(())
}

/// The longest `worker.shutdown_timeout_seconds`: a stop that waits longer is a hang.
const MAX_SHUTDOWN_TIMEOUT_SECONDS: u64 = 3600;

fn positive(value: usize, key: &str, source: &str) -> anyhow::Result<usize> {
    if value == 0 {
        bail!("{key} in {source} must be at least 1");
    }
    Ok(value)
}

fn parse_queue_url(url: &str) -> anyhow::Result<QueueUrl> {
    match url {
        "database" => Ok(QueueUrl::Database),
        other if other.starts_with("amqp://") || other.starts_with("amqps://") => {
            if cfg!(feature = "rabbitmq") {
                Ok(QueueUrl::Amqp(other.to_owned()))
            } else {
                bail!(
                    "this build of pubsync does not include RabbitMQ support (build with `--features rabbitmq`)"
                )
            }
        }
        other => bail!(
            "unknown queue url {:?}; expected \"database\" or amqp://user:pass@host:port/vhost",
            pubsync_database::redact_url(other)
        ),
    }
}

fn parse_storage_url(url: &str) -> anyhow::Result<StorageUrl> {
    match url {
        "database" => Ok(StorageUrl::Database),
        other if other.starts_with("redis://") || other.starts_with("rediss://") => {
            if cfg!(feature = "redis") {
                Ok(StorageUrl::Redis(other.to_owned()))
            } else {
                bail!(
                    "this build of pubsync does not include Redis support (build with `--features redis`)"
                )
            }
        }
        other => {
            bail!(
                "unknown storage url {:?}; expected \"database\" or redis://host:port/db",
                pubsync_database::redact_url(other)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        std::fs::write(&missing, "").unwrap();
        let settings = Settings::load(Some(&missing), env(&[])).unwrap();
        assert_eq!(settings.database, DatabaseUrl::Sqlite("pubsync.db".into()));
        assert_eq!(settings.queue, QueueUrl::Database);
        assert_eq!(settings.storage, StorageUrl::Database);
        assert_eq!(settings.worker.consumer.chunk_size, 500);
        assert!(
            settings.worker.direct_publish,
            "the database queue publishes in the worker's process"
        );
    }

    #[test]
    fn direct_publishing_follows_the_queue_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pubsync.toml");
        let load = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            Settings::load(Some(&path), env(&[])).unwrap().worker
        };
        assert!(!load("[worker]\nspryker_compatible = true\n").direct_publish);
        assert!(!load("[worker]\ndirect_publish = false\n").direct_publish);
        assert!(!load("").original_pacing, "pubsync's own pace unless asked");
        assert!(load("[worker]\noriginal_pacing = true\n").original_pacing);
        if cfg!(feature = "rabbitmq") {
            let amqp = "queue_url = \"amqp://guest:guest@localhost:5672\"\n";
            assert!(
                !load(amqp).direct_publish,
                "RabbitMQ shares the work among workers"
            );
            assert!(load(&format!("{amqp}[worker]\ndirect_publish = true\n")).direct_publish);
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pubsync.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite://a.db\"\n[worker]\nchunk_size = 7\nmax_retries = 0\n",
        )
        .unwrap();
        let settings = Settings::load(
            Some(&path),
            env(&[("PUBSYNC_DATABASE_URL", "sqlite://b.db")]),
        )
        .unwrap();
        assert_eq!(settings.database, DatabaseUrl::Sqlite("b.db".into()));
        assert_eq!(settings.worker.consumer.chunk_size, 7);
        assert_eq!(settings.worker.consumer.max_retries, 0);
    }

    #[test]
    fn bad_values_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pubsync.toml");
        std::fs::write(&path, "").unwrap();
        let err =
            Settings::load(Some(&path), env(&[("PUBSYNC_QUEUE_URL", "kafka://x")])).unwrap_err();
        assert!(format!("{err:#}").contains("PUBSYNC_QUEUE_URL"), "{err:#}");
        assert!(format!("{err:#}").contains("unknown queue url"), "{err:#}");
        let err = Settings::load(Some(&path), env(&[("PUBSYNC_DATABASE_URL", "oracle://x")]))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("PUBSYNC_DATABASE_URL"),
            "{err:#}"
        );

        std::fs::write(&path, "[worker]\nchunk_sise = 5\n").unwrap();
        let err = Settings::load(Some(&path), env(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `chunk_sise`"),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("pubsync.toml"), "{err:#}");

        std::fs::write(&path, "[worker]\nchunk_size = 0\n").unwrap();
        let err = Settings::load(Some(&path), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("worker.chunk_size"), "{err:#}");
    }
}
