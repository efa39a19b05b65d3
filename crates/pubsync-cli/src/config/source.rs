//! Reading the configuration's sources: `pubsync.toml` and the `PUBSYNC_*` variables, checked
//! against the key table ([`super::keys`]) for names, types and ranges, each value remembering
//! where it came from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::keys::{self, KEYS, Key, Kind, OTHER_VARIABLES, QUEUE_KEYS};

/// A checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    Integer(u64),
    Text(String),
}

/// Which queue a `[queues."<queue>"]` value is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueRef {
    /// By name, from the file.
    Name(String),
    /// By the `<QUEUE>` of a `PUBSYNC_QUEUES__<QUEUE>__<KEY>` variable.
    Token(String),
}

/// One per-queue value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueValue {
    /// The queue.
    pub queue: QueueRef,
    /// The key, from [`QUEUE_KEYS`].
    pub key: &'static str,
    /// The value, within its key's range.
    pub value: u64,
    /// Where it came from: the file or the variable.
    pub origin: String,
}

/// Every value set, the variables' over the file's.
#[derive(Debug, Default)]
pub(crate) struct Values {
    keys: BTreeMap<&'static str, (Value, String)>,
    /// In the order they apply: the file's, then the variables'.
    pub(crate) queues: Vec<QueueValue>,
}

impl Values {
    /// Reads `file` (when given) and the `PUBSYNC_*` variables among `vars`.
    pub(crate) fn read(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut values = Values::default();
        if let Some(path) = file {
            values.read_file(path)?;
        }
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with("PUBSYNC_"))
            .collect();
        vars.sort();
        for (name, text) in vars {
            values.read_variable(&name, &text)?;
        }
        Ok(values)
    }

    fn read_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {origin}"))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("invalid config file {origin}"))?;
        for (name, value) in table {
            match value {
                toml::Value::Table(section) if name == "queues" => {
                    self.read_queue_tables(section, &origin)?;
                }
                toml::Value::Table(section) => {
                    if !keys::SECTIONS.iter().any(|(known, _)| *known == name) {
                        bail!(
                            "unknown section [{name}] in {origin}; the sections are {}",
                            section_list()
                        );
                    }
                    for (short, value) in section {
                        let full = format!("{name}.{short}");
                        let key = keys::find(&full).with_context(|| {
                            format!(
                                "unknown key {full} in {origin}; [{name}] has {}",
                                KEYS.iter()
                                    .filter(|key| key.section() == name)
                                    .map(|key| key.name.rsplit('.').next().unwrap_or(key.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                        let value = from_toml(key.kind, &value)
                            .with_context(|| format!("{full} in {origin}"))?;
                        self.keys.insert(key.name, (value, origin.clone()));
                    }
                }
                value => {
                    let key = keys::find(&name)
                        .filter(|key| key.section().is_empty())
                        .with_context(|| {
                            format!(
                                "unknown key {name} in {origin}; at the top of the file go {}, \
                                 and the sections are {}",
                                top_level_keys(),
                                section_list()
                            )
                        })?;
                    let value = from_toml(key.kind, &value)
                        .with_context(|| format!("{name} in {origin}"))?;
                    self.keys.insert(key.name, (value, origin.clone()));
                }
            }
        }
        Ok(())
    }

    fn read_queue_tables(&mut self, tables: toml::Table, origin: &str) -> anyhow::Result<()> {
        for (queue, table) in tables {
            let toml::Value::Table(table) = table else {
                bail!("queues.{queue:?} in {origin} must be a table: [queues.\"{queue}\"]");
            };
            for (name, value) in table {
                let key = keys::find_queue_key(&name).with_context(|| {
                    format!(
                        "unknown key {name} in [queues.\"{queue}\"] of {origin}; a queue has {}",
                        queue_key_list()
                    )
                })?;
                let Value::Integer(value) = from_toml(key.kind, &value)
                    .with_context(|| format!("{name} of [queues.\"{queue}\"] in {origin}"))?
                else {
                    unreachable!("queue keys are integers")
                };
                self.queues.push(QueueValue {
                    queue: QueueRef::Name(queue.clone()),
                    key: key.name,
                    value,
                    origin: origin.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn read_variable(&mut self, name: &str, text: &str) -> anyhow::Result<()> {
        match Variable::of(name)? {
            Variable::Other => {}
            Variable::Key(key) => {
                let value = from_text(key.kind, text).with_context(|| name.to_owned())?;
                self.keys.insert(key.name, (value, name.to_owned()));
            }
            Variable::Queue { token, key } => {
                let Value::Integer(value) =
                    from_text(key.kind, text).with_context(|| name.to_owned())?
                else {
                    unreachable!("queue keys are integers")
                };
                self.queues.push(QueueValue {
                    queue: QueueRef::Token(token),
                    key: key.name,
                    value,
                    origin: name.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The value of `name`, with where it came from.
    fn get(&self, name: &str) -> Option<(&Value, &str)> {
        debug_assert!(keys::find(name).is_some(), "{name} is not in the key table");
        self.keys
            .get(name)
            .map(|(value, origin)| (value, origin.as_str()))
    }

    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some((Value::Bool(value), _)) => Some(*value),
            _ => None,
        }
    }

    pub(crate) fn integer(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some((Value::Integer(value), _)) => Some(*value),
            _ => None,
        }
    }

    /// A text value and where it came from.
    pub(crate) fn text(&self, name: &str) -> Option<(&str, &str)> {
        match self.get(name) {
            Some((Value::Text(value), origin)) => Some((value.as_str(), origin)),
            _ => None,
        }
    }

    /// Where `name` came from, `default` when nowhere.
    pub(crate) fn origin(&self, name: &str) -> &str {
        self.get(name).map_or("default", |(_, origin)| origin)
    }
}

/// Every variable the key table names, and the others pubsync reads.
pub(crate) fn known_variables() -> Vec<String> {
    KEYS.iter()
        .map(Key::env)
        .chain(OTHER_VARIABLES.iter().map(|(name, _)| (*name).to_owned()))
        .collect()
}

fn section_list() -> String {
    keys::SECTIONS
        .iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, _)| format!("[{name}]"))
        .chain(std::iter::once("[queues.\"<queue>\"]".to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn top_level_keys() -> String {
    KEYS.iter()
        .filter(|key| key.section().is_empty())
        .map(|key| key.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn queue_key_list() -> String {
    QUEUE_KEYS
        .iter()
        .map(|key| key.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_toml(kind: Kind, value: &toml::Value) -> anyhow::Result<Value> {
    match (kind, value) {
        (Kind::Bool, toml::Value::Boolean(value)) => Ok(Value::Bool(*value)),
        (Kind::Integer { min, max }, toml::Value::Integer(value)) => {
            in_range(u64::try_from(*value).ok(), &value.to_string(), min, max)
        }
        (Kind::Text, toml::Value::String(value)) => Ok(Value::Text(value.clone())),
        (kind, value) => bail!(
            "is {} {value}: expected {}",
            value.type_str(),
            expected(kind)
        ),
    }
}

fn from_text(kind: Kind, text: &str) -> anyhow::Result<Value> {
    match kind {
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => bail!("is {other:?}: expected true or false"),
        },
        Kind::Integer { min, max } => in_range(text.trim().parse().ok(), text, min, max),
        Kind::Text => Ok(Value::Text(text.to_owned())),
    }
}

fn in_range(value: Option<u64>, text: &str, min: u64, max: u64) -> anyhow::Result<Value> {
    match value {
        Some(value) if (min..=max).contains(&value) => Ok(Value::Integer(value)),
        _ => bail!(
            "is {text}: expected {}",
            expected(Kind::Integer { min, max })
        ),
    }
}

fn expected(kind: Kind) -> String {
    match kind {
        Kind::Bool => "true or false".to_owned(),
        Kind::Integer { min, max } => format!("a whole number from {min} to {max}"),
        Kind::Text => "a string".to_owned(),
    }
}

/// What a `PUBSYNC_*` variable sets.
enum Variable {
    /// A variable read elsewhere (`PUBSYNC_LOG`), or one of the test suite's (`PUBSYNC_TEST_*`).
    Other,
    /// A key.
    Key(&'static Key),
    /// A key of one queue.
    Queue { token: String, key: &'static Key },
}

impl Variable {
    /// What `name` sets, or an error naming it when pubsync does not read it.
    fn of(name: &str) -> anyhow::Result<Self> {
        if name.starts_with("PUBSYNC_TEST_")
            || OTHER_VARIABLES.iter().any(|(other, _)| *other == name)
        {
            return Ok(Self::Other);
        }
        if let Some(rest) = name.strip_prefix("PUBSYNC_QUEUES__") {
            let (token, key_name) = rest
                .rsplit_once("__")
                .with_context(|| format!("{name} names no key: PUBSYNC_QUEUES__<QUEUE>__<KEY>"))?;
            let key = QUEUE_KEYS
                .iter()
                .find(|key| key.name.to_uppercase() == key_name)
                .with_context(|| {
                    format!(
                        "unknown environment variable {name}: a queue has {}",
                        queue_key_list()
                    )
                })?;
            return Ok(Self::Queue {
                token: token.to_owned(),
                key,
            });
        }
        KEYS.iter()
            .find(|key| key.env() == name)
            .map(Self::Key)
            .with_context(|| {
                format!(
                    "unknown environment variable {name}: pubsync reads {} and \
                     PUBSYNC_QUEUES__<QUEUE>__<KEY> (docs/configuration.md lists them)",
                    known_variables().join(", ")
                )
            })
    }
}

/// Refuses a `PUBSYNC_*` variable among `names` that pubsync does not read, naming it and the
/// ones it does; values are checked when the settings load.
pub(crate) fn check_names(names: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    for name in names
        .into_iter()
        .filter(|name| name.starts_with("PUBSYNC_"))
    {
        Variable::of(&name)?;
    }
    Ok(())
}
