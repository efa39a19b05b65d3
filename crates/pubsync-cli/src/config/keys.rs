//! Every configuration key: its name in `pubsync.toml`, its environment variable, its type
//! and range, its default and what it does. The loader checks files and variables against
//! this table, and `docs/configuration.md` is generated from it.

/// What values a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number within `min..=max`.
    Integer {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
    },
    /// A string.
    Text,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// `section.key`, or `key` at the top of the file.
    pub name: &'static str,
    /// The values it takes.
    pub kind: Kind,
    /// The default, as the reference shows it.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

impl Key {
    /// The environment variable that overrides it: `PUBSYNC_SECTION__KEY`.
    pub fn env(&self) -> String {
        env_name(self.name)
    }

    /// The section of the file it is in (`""` at the top).
    pub fn section(&self) -> &'static str {
        self.name.split_once('.').map_or("", |(section, _)| section)
    }
}

/// `PUBSYNC_` and `name` upper-cased, with `__` between a section and its key.
pub fn env_name(name: &str) -> String {
    format!("PUBSYNC_{}", name.replace('.', "__").to_uppercase())
}

const fn key(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default,
        doc,
    }
}

const fn int(min: u64, max: u64) -> Kind {
    Kind::Integer { min, max }
}

/// The sections of `pubsync.toml`, in the order the reference lists them, with what they hold.
pub const SECTIONS: &[(&str, &str)] = &[
    ("", "Where things are."),
    (
        "worker",
        "The worker: `queue:worker:start` and `queue:task:start`.",
    ),
    (
        "sync",
        "Synchronization: storage rows to the key-value store.",
    ),
    ("queue", "The queue."),
    ("storage", "The key-value store."),
    ("keys", "Storage keys."),
    (
        "health",
        "The health check: a probe row published and synchronized like any other, read back through the storage client.",
    ),
    (
        "http",
        "The worker's HTTP endpoints: `GET /health-check` and `GET /metrics`.",
    ),
];

/// The most milliseconds of a first retry delay: an hour.
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;
/// The most retries of a failing event.
pub const MAX_RETRIES: u64 = 20;
/// The most messages or rows of one chunk.
pub const MAX_CHUNK: u64 = 100_000;
/// The most chunks of one queue processed at once by one worker.
pub const MAX_WORKERS: u64 = 64;

/// Every key, by section.
pub const KEYS: &[Key] = &[
    key(
        "database_url",
        Kind::Text,
        "`sqlite://pubsync.db`",
        "The application database: `sqlite://path`, `postgres://user:password@host:port/database` or `mysql://user:password@host:port/database`. TLS by the drivers' own URL parameters: `?sslmode=require` (or `verify-full&sslrootcert=ca.pem`) on PostgreSQL, `?ssl_mode=REQUIRED` (or `VERIFY_IDENTITY&ssl_ca=ca.pem`) on MySQL/MariaDB.",
    ),
    key(
        "queue_url",
        Kind::Text,
        "`database`",
        "Where queue messages live: `database` (tables of the application database) or `amqp://user:password@host:port/vhost` (RabbitMQ); `amqps://` for TLS (port 5671), trusting the Mozilla roots or `?cacertfile=ca.pem`, with `&certfile=…&keyfile=…` for a client certificate and `&server_name_indication=…` when the certificate names another host.",
    ),
    key(
        "storage_url",
        Kind::Text,
        "`database`",
        "Where frontends read: `database` (the storage tables themselves, the key-value bypass) or `redis://[user:password@]host:port/db`; `rediss://` for TLS, trusting the system's CAs and `?cacert=ca.pem`, with `&cert=…&key=…` for a client certificate.",
    ),
    key(
        "worker.chunk_size",
        int(1, MAX_CHUNK),
        "500",
        "Event queue messages taken per chunk (the original's `EVENT_CHUNK`); fewer when messages carry many events.",
    ),
    key(
        "worker.events_per_message",
        int(1, 10_000),
        "500",
        "Events carried in one event queue message.",
    ),
    key(
        "worker.relay_chunk_size",
        int(1, MAX_CHUNK),
        "1000",
        "Outbox rows relayed per pass (the original's `TRIGGER_CHUNK_SIZE`).",
    ),
    key(
        "worker.max_retries",
        int(0, MAX_RETRIES),
        "3",
        "Retries of a failing event before it goes to the error queue.",
    ),
    key(
        "worker.retry_delay_ms",
        int(0, MAX_RETRY_DELAY_MS),
        "1000",
        "Delay before the first retry, in milliseconds; it doubles with each further retry, up to a day.",
    ),
    key(
        "worker.idle_poll_ms",
        int(1, 60_000),
        "100",
        "Longest pause of an idle worker before it looks for work again, in milliseconds.",
    ),
    key(
        "worker.lease_seconds",
        int(1, 86_400),
        "30",
        "Database queue: how long a taken message stays with its worker before it is delivered again.",
    ),
    key(
        "worker.shutdown_timeout_seconds",
        int(0, 3600),
        "30",
        "After SIGTERM or Ctrl-C, how long the step in hand may take to finish before the worker gives it up (its messages are given back) and exits.",
    ),
    key(
        "worker.spryker_compatible",
        Kind::Bool,
        "false",
        "Send one message per event and listener, and one per sync change, in the original's format.",
    ),
    key(
        "worker.direct_publish",
        Kind::Bool,
        "true with the database queue, false with RabbitMQ",
        "Hand outbox events to their listeners in the worker's process; the event queue then carries only retries. Off, the event queue shares the work among workers.",
    ),
    key(
        "worker.original_pacing",
        Kind::Bool,
        "false",
        "Pace the worker like the original's queue worker (100 ms after every busy pass, no stage waking another): for comparisons only.",
    ),
    key(
        "sync.enabled",
        Kind::Bool,
        "true with a key-value store, false with database storage",
        "The global synchronization switch; a storage table's `synchronization_enabled` overrides it.",
    ),
    key(
        "sync.direct",
        Kind::Bool,
        "false",
        "Write the key-value store right after publishing, falling back to the sync queue when that fails.",
    ),
    key(
        "sync.changes_per_message",
        int(1, 10_000),
        "500",
        "Changes carried in one sync queue message.",
    ),
    key(
        "sync.chunk_size",
        int(1, MAX_CHUNK),
        "100",
        "Sync queue messages taken per chunk; fewer when messages carry many changes.",
    ),
    key(
        "sync.max_payload_bytes",
        int(1024, 64 * 1024 * 1024),
        "262144",
        "The largest `data` of one storage row, in bytes of JSON. A larger one is not written or sent: its event goes to the error queue with a reason naming the key, and a sync message writing a larger value goes to its error queue. The original warns at 256 KB.",
    ),
    key(
        "sync.max_clock_skew_seconds",
        int(1, 86_400),
        "300",
        "How far ahead of the worker's clock a sync message's `_timestamp` may be. A message further ahead goes to the error queue: applied, it would make its key ignore every later change.",
    ),
    key(
        "sync.resync_on_data_loss",
        Kind::Bool,
        "false",
        "When the key-value store lost its data (its marker, left by setup and the worker, is gone: restarted without persistence, flushed, replaced), the worker sends every storage row to it again by itself. Otherwise the loss is logged as an error and `pubsync health` fails until `pubsync sync:data` is run.",
    ),
    key(
        "queue.prefix",
        Kind::Text,
        "empty",
        "Put before every queue name, so that several applications can share one broker. Commands print and accept the names with it.",
    ),
    key(
        "queue.quorum",
        Kind::Bool,
        "false",
        "RabbitMQ: declare quorum queues, for a cluster. An existing queue cannot change its type.",
    ),
    key(
        "storage.key_prefix",
        Kind::Text,
        "empty",
        "Put before `kv:` in every key-value store key (the original's `REDIS_KEY_PREFIX`).",
    ),
    key(
        "keys.single_key_format_normalized",
        Kind::Bool,
        "false",
        "Keys without a suffix as `resource` instead of the original's `resource:`.",
    ),
    key(
        "health.max_age_seconds",
        int(1, 86_400),
        "300",
        "The health check fails when the probe read back from storage is older than this (the original's 5 minutes).",
    ),
    key(
        "health.probe_interval_seconds",
        int(1, 3600),
        "10",
        "How often a worker serving HTTP writes the probe row.",
    ),
    key(
        "http.address",
        Kind::Text,
        "none: not served",
        "`host:port` on which `queue:worker:start` serves `GET /health-check` and `GET /metrics`, e.g. `127.0.0.1:9464`.",
    ),
];

/// The keys of one `[queues."<queue>"]` table, where a queue's settings differ from the
/// worker's. Their variables are `PUBSYNC_QUEUES__<QUEUE>__<KEY>`, `<QUEUE>` being the queue
/// name upper-cased with every other character than a letter or digit as `_`.
pub const QUEUE_KEYS: &[Key] = &[
    key(
        "chunk_size",
        int(1, MAX_CHUNK),
        "`worker.chunk_size`, or `sync.chunk_size` for a sync queue",
        "Messages taken per chunk of this queue.",
    ),
    key(
        "workers",
        int(1, MAX_WORKERS),
        "1",
        "Chunks of this queue one worker process handles at the same time.",
    ),
    key(
        "max_retries",
        int(0, MAX_RETRIES),
        "`worker.max_retries`",
        "Event queues: retries of a failing event before it goes to the error queue.",
    ),
    key(
        "retry_delay_ms",
        int(0, MAX_RETRY_DELAY_MS),
        "`worker.retry_delay_ms`",
        "Event queues: delay before the first retry, in milliseconds, doubling with each further one.",
    ),
];

/// Variables read besides the keys.
pub const OTHER_VARIABLES: &[(&str, &str)] = &[(
    "PUBSYNC_LOG",
    "What to log, as a `tracing` filter: `info` (the default), `debug`, `pubsync_backend=debug,warn`, …",
)];

/// The key named `name` (`section.key`).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// The key of a `[queues."<queue>"]` table named `name`.
pub fn find_queue_key(name: &str) -> Option<&'static Key> {
    QUEUE_KEYS.iter().find(|key| key.name == name)
}

/// `<QUEUE>` of `PUBSYNC_QUEUES__<QUEUE>__<KEY>` for `queue`.
pub fn queue_env_token(queue: &str) -> String {
    queue
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn describe_kind(kind: Kind) -> String {
    match kind {
        Kind::Bool => "boolean".to_owned(),
        Kind::Integer { min, max } => format!("integer, {min} to {max}"),
        Kind::Text => "string".to_owned(),
    }
}

/// `docs/configuration.md`.
pub fn reference() -> String {
    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Generated from crates/pubsync-cli/src/config/keys.rs by its tests: edit there. -->\n\n\
         pubsync reads `pubsync.toml` in the working directory (or the file given by `--config`), \
         when there is one; every key is optional. An environment variable overrides each key: \
         `PUBSYNC_` followed by the section and the key, upper-cased, with `__` between them \
         (`[worker] chunk_size` is `PUBSYNC_WORKER__CHUNK_SIZE`). \
         Unknown keys, unknown `PUBSYNC_*` variables and values out of range are errors that \
         name the key and where it came from. Booleans in variables are `true` or `false`.\n",
    );
    for (section, about) in SECTIONS {
        if section.is_empty() {
            out.push_str("\n## Top level\n\n");
        } else {
            out.push_str(&format!("\n## `[{section}]`\n\n"));
        }
        out.push_str(&format!("{about}\n\n"));
        out.push_str("| Key | Variable | Type | Default | |\n|---|---|---|---|---|\n");
        for key in KEYS.iter().filter(|key| key.section() == *section) {
            let short = key.name.rsplit('.').next().unwrap_or(key.name);
            out.push_str(&format!(
                "| `{short}` | `{}` | {} | {} | {} |\n",
                key.env(),
                describe_kind(key.kind),
                key.default,
                key.doc
            ));
        }
    }
    out.push_str(
        "\n## `[queues.\"<queue>\"]`\n\n\
         Where one queue is consumed differently from the rest, e.g. `[queues.\"sync.storage.hello\"]`. \
         `<queue>` is the name without `queue.prefix`; a queue no module uses is an error. \
         The variables are `PUBSYNC_QUEUES__<QUEUE>__<KEY>`, `<QUEUE>` being the queue name \
         upper-cased with every character other than a letter or a digit as `_` \
         (`PUBSYNC_QUEUES__SYNC_STORAGE_HELLO__WORKERS`).\n\n\
         | Key | Type | Default | |\n|---|---|---|---|\n",
    );
    for key in QUEUE_KEYS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            key.name,
            describe_kind(key.kind),
            key.default,
            key.doc
        ));
    }
    out.push_str("\n## Other variables\n\n| Variable | |\n|---|---|\n");
    for (name, doc) in OTHER_VARIABLES {
        out.push_str(&format!("| `{name}` | {doc} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference in `docs/` is what this table says; when not, the test writes it anew
    /// and fails, so that the change is committed with the code.
    #[test]
    fn the_configuration_reference_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let expected = reference();
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != expected {
            std::fs::write(&path, &expected).unwrap();
            panic!(
                "{} was out of date and has been written anew: commit it",
                path.display()
            );
        }
    }

    #[test]
    fn every_key_is_in_a_listed_section_and_named_once() {
        let mut names = std::collections::BTreeSet::new();
        for key in KEYS {
            assert!(names.insert(key.name), "{} twice", key.name);
            assert!(
                SECTIONS
                    .iter()
                    .any(|(section, _)| *section == key.section()),
                "{} is in no section",
                key.name
            );
        }
        assert_eq!(
            find("worker.chunk_size").unwrap().env(),
            "PUBSYNC_WORKER__CHUNK_SIZE"
        );
        assert_eq!(find("database_url").unwrap().env(), "PUBSYNC_DATABASE_URL");
        assert_eq!(queue_env_token("sync.storage.hello"), "SYNC_STORAGE_HELLO");
    }
}
