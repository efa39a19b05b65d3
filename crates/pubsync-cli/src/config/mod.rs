//! Configuration: `pubsync.toml` (optional) overridden by `PUBSYNC_*` environment variables,
//! checked at start so a bad value fails at once, naming where it came from.
//!
//! [`keys`] lists every key; [`source`] reads and checks the file and the variables against
//! it; [`Settings::load`] turns the values into the settings of each part.

pub mod keys;
mod source;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pubsync_backend::sync::SyncConfig;
use pubsync_backend::{QueuePolicies, WorkerConfig};
use pubsync_database::DatabaseUrl;
use pubsync_shared::key::KeyBuilder;

use source::Values;
pub use source::{QueueRef, QueueValue};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "pubsync.toml";
/// The database when nothing is configured: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pubsync.db";

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
    /// The worker. Its per-queue policies are set by [`Settings::resolve_queues`], once the
    /// modules' queues are known.
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
    /// The largest `data` of one storage row, in bytes.
    pub max_payload_bytes: usize,
    /// The health check.
    pub health: HealthSettings,
    /// Where the worker serves `/health-check` and `/metrics`, if anywhere.
    pub http_address: Option<String>,
    /// The `[queues."<queue>"]` values, applied by [`Settings::resolve_queues`].
    pub queue_values: Vec<QueueValue>,
}

/// `[health]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// The oldest a probe read back from storage may be.
    pub max_age: Duration,
    /// How often a worker serving HTTP writes the probe.
    pub probe_interval: Duration,
}

impl Settings {
    /// Reads `config` (or `pubsync.toml` when present) and the `PUBSYNC_*` variables among
    /// `vars`, which override it.
    pub fn load(
        config: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let file = match config {
            Some(path) => Some(path),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Some(Path::new(DEFAULT_CONFIG_FILE)),
            None => None,
        };
        let values = Values::read(file, vars)?;
        let text = |name: &str, default: &str| -> (String, String) {
            match values.text(name) {
                Some((value, origin)) => (value.to_owned(), origin.to_owned()),
                None => (default.to_owned(), "default".to_owned()),
            }
        };
        let (database, from) = text("database_url", DEFAULT_DATABASE_URL);
        let database = database
            .parse::<DatabaseUrl>()
            .with_context(|| format!("database url (from {from})"))?;
        let (queue, from) = text("queue_url", "database");
        let queue = parse_queue_url(&queue).with_context(|| format!("queue url (from {from})"))?;
        let (storage, from) = text("storage_url", "database");
        let storage =
            parse_storage_url(&storage).with_context(|| format!("storage url (from {from})"))?;
        let integer = |name: &str| values.integer(name);
        let size = |name: &str| integer(name).map(|value| value as usize);

        let mut worker = WorkerConfig::default();
        if let Some(chunk_size) = size("worker.chunk_size") {
            worker.consumer.chunk_size = chunk_size;
        }
        if let Some(events) = size("worker.events_per_message") {
            worker.relay.events_per_message = events;
        }
        if let Some(chunk_size) = size("worker.relay_chunk_size") {
            worker.relay.chunk_size = chunk_size;
        }
        if let Some(retries) = integer("worker.max_retries") {
            worker.consumer.max_retries = retries as u32;
        }
        if let Some(delay) = integer("worker.retry_delay_ms") {
            worker.consumer.retry_delay = Duration::from_millis(delay);
        }
        if let Some(poll) = integer("worker.idle_poll_ms") {
            worker.idle_poll = Duration::from_millis(poll);
        }
        if let Some(compatible) = values.bool("worker.spryker_compatible") {
            worker.relay.spryker_compatible = compatible;
        }
        worker.original_pacing = values.bool("worker.original_pacing").unwrap_or(false);
        // Messages in the original's format are for someone to read: send them.
        worker.direct_publish = values
            .bool("worker.direct_publish")
            .unwrap_or(queue == QueueUrl::Database && !worker.relay.spryker_compatible);
        let mut sync = SyncConfig {
            enabled: values
                .bool("sync.enabled")
                .unwrap_or(storage != StorageUrl::Database),
            direct: values.bool("sync.direct").unwrap_or(false),
            spryker_compatible: worker.relay.spryker_compatible,
            resync_on_data_loss: values.bool("sync.resync_on_data_loss").unwrap_or(false),
            ..SyncConfig::default()
        };
        if let Some(changes) = size("sync.changes_per_message") {
            sync.changes_per_message = changes;
        }
        if let Some(chunk_size) = size("sync.chunk_size") {
            sync.consumer_chunk_size = chunk_size;
        }
        if let Some(seconds) = integer("sync.max_clock_skew_seconds") {
            sync.max_clock_skew = Duration::from_secs(seconds);
        }
        let max_payload_bytes = size("sync.max_payload_bytes").unwrap_or(DEFAULT_MAX_PAYLOAD_BYTES);
        sync.max_value_bytes = Some(max_payload_bytes);
        let http_address = match values.text("http.address") {
            Some((address, origin)) => Some(
                check_address(address).with_context(|| format!("http.address (from {origin})"))?,
            ),
            None => None,
        };
        let queue_prefix = values
            .text("queue.prefix")
            .map(|(prefix, _)| prefix.to_owned())
            .unwrap_or_default();
        if let Some(bad) = queue_prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            bail!(
                "queue.prefix (from {}) is {queue_prefix:?}: {bad:?} is not allowed in a queue name \
                 (letters, digits, `.`, `_` and `-` are)",
                values.origin("queue.prefix")
            );
        }
        Ok(Self {
            database,
            queue,
            storage,
            worker,
            queue_lease: Duration::from_secs(integer("worker.lease_seconds").unwrap_or(30)),
            shutdown_timeout: Duration::from_secs(
                integer("worker.shutdown_timeout_seconds").unwrap_or(30),
            ),
            key_builder: KeyBuilder {
                single_key_format_normalized: values
                    .bool("keys.single_key_format_normalized")
                    .unwrap_or(false),
            },
            sync,
            queue_prefix,
            quorum_queues: values.bool("queue.quorum").unwrap_or(false),
            key_prefix: values
                .text("storage.key_prefix")
                .map(|(prefix, _)| prefix.to_owned())
                .unwrap_or_default(),
            max_payload_bytes,
            health: HealthSettings {
                max_age: Duration::from_secs(integer("health.max_age_seconds").unwrap_or(300)),
                probe_interval: Duration::from_secs(
                    integer("health.probe_interval_seconds").unwrap_or(10),
                ),
            },
            http_address,
            queue_values: values.queues,
        })
    }

    /// Applies the `[queues."<queue>"]` values to the worker, now that `queues` (the event and
    /// sync queues of the modules, without prefix) are known; a value for another queue, or a
    /// retry setting for a sync queue, is an error naming where it came from.
    pub fn resolve_queues(
        &mut self,
        event_queues: &[String],
        sync_queues: &[String],
    ) -> anyhow::Result<()> {
        let mut policies = QueuePolicies::default();
        let known = || {
            event_queues
                .iter()
                .chain(sync_queues)
                .map(|queue| self.queue_name(queue))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for value in &self.queue_values {
            let queue = match &value.queue {
                QueueRef::Name(name) => event_queues
                    .iter()
                    .chain(sync_queues)
                    .find(|queue| *queue == name),
                QueueRef::Token(token) => event_queues
                    .iter()
                    .chain(sync_queues)
                    .find(|queue| keys::queue_env_token(queue) == *token),
            }
            .with_context(|| {
                let named = match &value.queue {
                    QueueRef::Name(name) => format!("[queues.{name:?}]"),
                    QueueRef::Token(token) => format!("queue {token}"),
                };
                format!(
                    "{named} (from {}): no module uses this queue; the queues are {}",
                    value.origin,
                    known()
                )
            })?;
            let policy = policies.entry(queue);
            match value.key {
                "chunk_size" => policy.chunk_size = Some(value.value as usize),
                "workers" => policy.workers = Some(value.value as usize),
                retry if sync_queues.contains(queue) => bail!(
                    "{retry} for {queue} (from {}): sync queues are not retried, \
                     a change that cannot be written is redelivered",
                    value.origin
                ),
                "max_retries" => policy.max_retries = Some(value.value as u32),
                "retry_delay_ms" => policy.retry_delay = Some(Duration::from_millis(value.value)),
                other => unreachable!("{other} is not a queue key"),
            }
        }
        self.worker.consumer.queues = policies;
        Ok(())
    }

    /// `name` as the broker knows it: with the queue prefix.
    pub fn queue_name(&self, name: &str) -> String {
        format!("{}{name}", self.queue_prefix)
    }
}

/// The largest storage `data` by default: the original's 256 KB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Checks a `host:port` address.
fn check_address(address: &str) -> anyhow::Result<String> {
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("{address:?} is not host:port (e.g. 127.0.0.1:9464)"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        bail!("{address:?} is not host:port (e.g. 127.0.0.1:9464)");
    }
    Ok(address.to_owned())
}

/// The variables pubsync reads, each named in the reference.
pub fn environment() -> Vec<String> {
    source::known_variables()
}

/// Refuses a `PUBSYNC_*` variable among `names` that pubsync does not read, naming it and the
/// ones it does.
pub fn check_environment(
    names: impl IntoIterator<Item = std::ffi::OsString>,
) -> anyhow::Result<()> {
    source::check_names(
        names
            .into_iter()
            .map(|name| name.to_string_lossy().into_owned()),
    )
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

    fn vars(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// Loads `toml` as the config file, with `env`.
    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pubsync.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path), vars(env))
    }

    fn error(toml: &str, env: &[(&str, &str)]) -> String {
        format!("{:#}", load(toml, env).expect_err("an error"))
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let settings = load("", &[]).unwrap();
        assert_eq!(settings.database, DatabaseUrl::Sqlite("pubsync.db".into()));
        assert_eq!(settings.queue, QueueUrl::Database);
        assert_eq!(settings.storage, StorageUrl::Database);
        assert_eq!(settings.worker.consumer.chunk_size, 500);
        assert_eq!(settings.max_payload_bytes, 256 * 1024);
        assert_eq!(settings.health.max_age, Duration::from_secs(300));
        assert_eq!(settings.http_address, None);
        assert!(
            settings.worker.direct_publish,
            "the database queue publishes in the worker's process"
        );
    }

    #[test]
    fn direct_publishing_follows_the_queue_unless_set() {
        let worker = |toml: &str| load(toml, &[]).unwrap().worker;
        assert!(!worker("[worker]\nspryker_compatible = true\n").direct_publish);
        assert!(!worker("[worker]\ndirect_publish = false\n").direct_publish);
        assert!(
            !worker("").original_pacing,
            "pubsync's own pace unless asked"
        );
        assert!(worker("[worker]\noriginal_pacing = true\n").original_pacing);
        if cfg!(feature = "rabbitmq") {
            let amqp = "queue_url = \"amqp://guest:guest@localhost:5672\"\n";
            assert!(
                !worker(amqp).direct_publish,
                "RabbitMQ shares the work among workers"
            );
            assert!(worker(&format!("{amqp}[worker]\ndirect_publish = true\n")).direct_publish);
        }
    }

    #[test]
    fn every_key_can_be_set_from_the_environment_over_the_file() {
        let settings = load(
            "database_url = \"sqlite://a.db\"\n[worker]\nchunk_size = 7\nmax_retries = 0\n",
            &[
                ("PUBSYNC_DATABASE_URL", "sqlite://b.db"),
                ("PUBSYNC_WORKER__MAX_RETRIES", "5"),
                ("PUBSYNC_WORKER__RETRY_DELAY_MS", "250"),
                ("PUBSYNC_SYNC__ENABLED", "true"),
                ("PUBSYNC_QUEUE__PREFIX", "shop."),
                ("PUBSYNC_HEALTH__MAX_AGE_SECONDS", "60"),
                ("PUBSYNC_HTTP__ADDRESS", "127.0.0.1:9464"),
            ],
        )
        .unwrap();
        assert_eq!(settings.database, DatabaseUrl::Sqlite("b.db".into()));
        assert_eq!(settings.worker.consumer.chunk_size, 7, "the file's");
        assert_eq!(settings.worker.consumer.max_retries, 5, "the variable's");
        assert_eq!(
            settings.worker.consumer.retry_delay,
            Duration::from_millis(250)
        );
        assert!(settings.sync.enabled);
        assert_eq!(settings.queue_name("event"), "shop.event");
        assert_eq!(settings.health.max_age, Duration::from_secs(60));
        assert_eq!(settings.http_address.as_deref(), Some("127.0.0.1:9464"));
    }

    #[test]
    fn every_key_in_the_table_changes_the_settings() {
        // A key the table lists but the loader forgot would be accepted and ignored.
        let default = format!("{:?}", load("", &[]).unwrap());
        for key in keys::KEYS {
            let candidates: Vec<String> = match key.kind {
                keys::Kind::Bool => vec!["true".into(), "false".into()],
                keys::Kind::Integer { min, max } => vec![min.to_string(), max.to_string()],
                keys::Kind::Text => vec![
                    match key.name {
                        "database_url" => "sqlite://elsewhere.db",
                        "queue_url" if cfg!(feature = "rabbitmq") => "amqp://localhost:5672",
                        "storage_url" if cfg!(feature = "redis") => "redis://localhost:6379",
                        "queue_url" | "storage_url" => continue,
                        "http.address" => "127.0.0.1:1",
                        _ => "x",
                    }
                    .to_owned(),
                ],
            };
            let env = key.env();
            let changed = candidates.iter().any(|value| {
                let settings = load("", &[(env.as_str(), value.as_str())])
                    .unwrap_or_else(|error| panic!("{env}={value}: {error:#}"));
                format!("{settings:?}") != default
            });
            assert!(changed, "{env} is read but changes nothing");
        }
    }

    #[test]
    fn values_out_of_range_are_refused_naming_key_and_source() {
        let message = error(
            "",
            &[("PUBSYNC_WORKER__RETRY_DELAY_MS", "18446744073709551615")],
        );
        assert!(
            message.contains("PUBSYNC_WORKER__RETRY_DELAY_MS")
                && message.contains("from 0 to 3600000"),
            "{message}"
        );
        let message = error("[worker]\nchunk_size = 0\n", &[]);
        assert!(
            message.contains("worker.chunk_size in ") && message.contains("pubsync.toml"),
            "{message}"
        );
        let message = error("[worker]\nmax_retries = -1\n", &[]);
        assert!(message.contains("worker.max_retries"), "{message}");
        let message = error("[sync]\nenabled = \"yes\"\n", &[]);
        assert!(
            message.contains("sync.enabled") && message.contains("true or false"),
            "{message}"
        );
        let message = error("", &[("PUBSYNC_SYNC__DIRECT", "yes")]);
        assert!(message.contains("PUBSYNC_SYNC__DIRECT"), "{message}");
        let message = error("[http]\naddress = \"9464\"\n", &[]);
        assert!(message.contains("http.address"), "{message}");
        let message = error("[queue]\nprefix = \"a b\"\n", &[]);
        assert!(message.contains("queue.prefix"), "{message}");
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let message = error("[worker]\nchunk_sise = 5\n", &[]);
        assert!(
            message.contains("unknown key worker.chunk_sise") && message.contains("chunk_size"),
            "{message}"
        );
        let message = error("[wroker]\nchunk_size = 5\n", &[]);
        assert!(message.contains("unknown section [wroker]"), "{message}");
        let message = error("databse_url = \"x\"\n", &[]);
        assert!(message.contains("unknown key databse_url"), "{message}");
        let message = error("", &[("PUBSYNC_WORKER__CHUNK_SIZ", "5")]);
        assert!(
            message.contains("PUBSYNC_WORKER__CHUNK_SIZ")
                && message.contains("PUBSYNC_WORKER__CHUNK_SIZE"),
            "{message}"
        );
        assert!(check_environment(["PUBSYNC_DATABSE_URL".into()]).is_err());
        assert!(
            check_environment(["PUBSYNC_TEST_POSTGRES_URL".into(), "PUBSYNC_LOG".into()]).is_ok()
        );
        let message = error("", &[("PUBSYNC_QUEUE_URL", "kafka://user:secret@x")]);
        assert!(message.contains("unknown queue url"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn queue_tables_apply_to_their_queue_and_only_to_queues_that_exist() {
        let events = vec!["event".to_owned()];
        let syncs = vec!["sync.storage.hello".to_owned()];
        let mut settings = load(
            "[queues.\"event\"]\nchunk_size = 50\nmax_retries = 9\n\
             [queues.\"sync.storage.hello\"]\nworkers = 4\n",
            &[("PUBSYNC_QUEUES__EVENT__RETRY_DELAY_MS", "10")],
        )
        .unwrap();
        settings.resolve_queues(&events, &syncs).unwrap();
        let policies = &settings.worker.consumer.queues;
        assert_eq!(policies.get("event").chunk_size, Some(50));
        assert_eq!(policies.get("event").max_retries, Some(9));
        assert_eq!(
            policies.get("event").retry_delay,
            Some(Duration::from_millis(10))
        );
        assert_eq!(policies.workers("sync.storage.hello"), 4);
        assert_eq!(policies.workers("event"), 1);

        let mut settings = load("[queues.\"evnt\"]\nworkers = 2\n", &[]).unwrap();
        let message = format!(
            "{:#}",
            settings.resolve_queues(&events, &syncs).unwrap_err()
        );
        assert!(
            message.contains("[queues.\"evnt\"]") && message.contains("event, sync.storage.hello"),
            "{message}"
        );
        let mut settings = load("[queues.\"sync.storage.hello\"]\nmax_retries = 2\n", &[]).unwrap();
        assert!(settings.resolve_queues(&events, &syncs).is_err());
        let message = error("[queues.\"event\"]\nworkers = 65\n", &[]);
        assert!(message.contains("from 1 to 64"), "{message}");
        let message = error("", &[("PUBSYNC_QUEUES__EVENT__WORKER", "2")]);
        assert!(message.contains("workers"), "{message}");
    }
}
