//! The Hello changes of the end-to-end scenarios that end in Redis (PostgreSQL or MySQL +
//! RabbitMQ + Redis in [`crate::servers`], SQLite + Redis in [`crate::e2e`]), the state they
//! leave in Redis key by key, and waiting until Redis holds it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use pubsync_storage_redis::RedisStorage;
use pubsync_storage_redis::redis;

use crate::e2e::BATCH;

/// Keys per MGET while checking the final state.
const CHECK_CHUNK: usize = 1000;

/// How long the final state may stay unchanged before the run is declared stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// What the `message` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// `Hello Spryker! <id>`: a stored value of about 80 bytes, a row of about 200.
    Hello,
    /// The same text followed by filler, so that the stored JSON is about 1 KB (only the
    /// server scenarios write it).
    #[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
    OneKb,
}

/// Filler that makes a Hello message's stored JSON about 1 KB: 950 characters, no quotes.
fn filler() -> String {
    "lorem ipsum dolor sit amet consectetur adipiscing elit "
        .repeat(18)
        .chars()
        .take(950)
        .collect()
}

impl Payload {
    /// What `message` holds when row `id` is inserted.
    fn inserted(self, id: usize) -> String {
        match self {
            Self::Hello => format!("Hello Spryker! {id}"),
            Self::OneKb => format!("Hello Spryker! {id} {}", filler()),
        }
    }

    /// What follows `updated <id>` in an updated row's message.
    fn update_suffix(self) -> String {
        match self {
            Self::Hello => String::new(),
            Self::OneKb => format!(" {}", filler()),
        }
    }

    /// What `message` holds after row `id` was updated.
    fn updated(self, id: usize) -> String {
        format!("updated {id}{}", self.update_suffix())
    }
}

/// A multi-row INSERT of rows `first..=last` into `table` (`id`, `name`, `message` columns).
pub fn insert_statement(
    table: &str,
    id_column: &str,
    payload: Payload,
    first: usize,
    last: usize,
) -> String {
    let mut sql = format!("INSERT INTO {table} ({id_column}, name, message) VALUES ");
    for id in first..=last {
        if id > first {
            sql.push_str(", ");
        }
        let _ = write!(sql, "({id}, 'name {id}', '{}')", payload.inserted(id));
    }
    sql
}

/// The three phases of `changes` entity changes: ids `1..=inserts` are inserted, `1..=updates`
/// updated, and the last `deletes` of the inserted ids deleted (as `e2e_sqlite_hello` does);
/// then one more row, the sentinel, is inserted to mark the end.
///
/// A deleted key is absent from Redis both before its insert arrives and after its delete (a
/// delete that meets its insert in one chunk leaves no trace at all), so absence alone says
/// nothing. With one worker the changes reach Redis in commit order, so once the sentinel is
/// there every earlier change is too, and absence then means deleted.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// How many inserts, updates and deletes: the SQLite scenario's split.
    pub counts: crate::e2e::Plan,
    payload: Payload,
}

impl Plan {
    /// The plan for `changes` changes of `payload` rows.
    pub fn new(changes: usize, payload: Payload) -> Self {
        Self {
            counts: crate::e2e::Plan::new(changes),
            payload,
        }
    }

    /// Keys left at the end, the sentinel not counted.
    pub fn remaining(self) -> usize {
        self.counts.remaining()
    }

    /// The id of the row inserted last.
    fn sentinel(self) -> usize {
        self.counts.inserts + 1
    }

    /// The statements that write the changes, in order, at most [`BATCH`] rows each; plain
    /// SQL that PostgreSQL, MySQL and SQLite (`CONCAT` since 3.44) all accept.
    pub fn statements(self) -> Vec<String> {
        let mut statements = Vec::new();
        for first in (1..=self.counts.inserts).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.counts.inserts);
            statements.push(insert_statement(
                "spy_hello_spryker_message",
                "id_hello_spryker_message",
                self.payload,
                first,
                last,
            ));
        }
        let suffix = self.payload.update_suffix();
        for first in (1..=self.counts.updates).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.counts.updates);
            statements.push(format!(
                "UPDATE spy_hello_spryker_message \
                 SET message = CONCAT('updated ', id_hello_spryker_message, '{suffix}') \
                 WHERE id_hello_spryker_message BETWEEN {first} AND {last}"
            ));
        }
        let first_deleted = self.counts.inserts - self.counts.deletes + 1;
        for first in (first_deleted..=self.counts.inserts).step_by(BATCH) {
            let last = (first + BATCH - 1).min(self.counts.inserts);
            statements.push(format!(
                "DELETE FROM spy_hello_spryker_message \
                 WHERE id_hello_spryker_message BETWEEN {first} AND {last}"
            ));
        }
        statements.push(insert_statement(
            "spy_hello_spryker_message",
            "id_hello_spryker_message",
            self.payload,
            self.sentinel(),
            self.sentinel(),
        ));
        statements
    }

    /// What Redis must hold at the end, key by key; the sentinel last.
    pub fn expected(self) -> Vec<Expected> {
        let mut expected: Vec<Expected> = (1..=self.remaining())
            .map(|id| Expected::Value {
                id,
                message: if id <= self.counts.updates {
                    self.payload.updated(id)
                } else {
                    self.payload.inserted(id)
                },
            })
            .collect();
        expected.extend(
            (self.remaining() + 1..=self.counts.inserts).map(|id| Expected::Deleted { id }),
        );
        expected.push(Expected::Value {
            id: self.sentinel(),
            message: self.payload.inserted(self.sentinel()),
        });
        expected
    }
}

/// The final state of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// `kv:message:<id>` holds `{"name": "name <id>", "message": <message>, …}`.
    Value { id: usize, message: String },
    /// `kv:message:<id>` is absent (once the sentinel is there, see [`Plan`]).
    Deleted { id: usize },
}

impl Expected {
    fn id(&self) -> usize {
        match self {
            Self::Value { id, .. } | Self::Deleted { id } => *id,
        }
    }

    /// Whether `value` (of the `kv:` key) shows the final state.
    fn holds(&self, value: Option<&str>) -> bool {
        match self {
            Self::Value { id, message } => value
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                .is_some_and(|json| {
                    json["name"].as_str() == Some(&format!("name {id}"))
                        && json["message"].as_str() == Some(message)
                }),
            Self::Deleted { .. } => value.is_none(),
        }
    }
}

/// Both results, or the first error; when both failed, the worker's error (which usually
/// explains the run's) with the run's as context.
pub fn both<T, U>(run: anyhow::Result<T>, worker: anyhow::Result<U>) -> anyhow::Result<(T, U)> {
    match (run, worker) {
        (Ok(run), Ok(worker)) => Ok((run, worker)),
        (Err(run), Err(worker)) => Err(worker.context(format!("{run:#}"))),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
    }
}

/// Values of `keys` (MGET).
pub async fn mget(storage: &RedisStorage, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
    let mut connection = storage.connection();
    Ok(redis::cmd("MGET")
        .arg(keys)
        .query_async(&mut connection)
        .await?)
}

/// Waits until Redis holds `expected`, and returns when the last key was seen in its final
/// state. First polls the sentinel (the last item, cheap, every millisecond), then checks every
/// key, again and again for those not there yet, in `storage` (Redis with the run's key
/// prefix). Fails when `running` does (the worker stopped), or nothing moves for
/// [`STUCK_AFTER`].
pub async fn wait_for(
    storage: &RedisStorage,
    expected: Vec<Expected>,
    running: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<Instant> {
    let keys = |items: &[Expected]| -> Vec<String> {
        items
            .iter()
            .map(|item| storage.redis_key(&format!("message:{}", item.id())))
            .collect()
    };
    let sentinel = expected.last().context("nothing expected")?.clone();
    let sentinel_key = keys(std::slice::from_ref(&sentinel));
    let started = Instant::now();
    loop {
        let values = mget(storage, &sentinel_key).await?;
        if sentinel.holds(values[0].as_deref()) {
            break;
        }
        running()?;
        ensure!(
            started.elapsed() < STUCK_AFTER * 5,
            "the last change did not reach Redis within {:?}",
            STUCK_AFTER * 5
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let mut outstanding = expected;
    let mut last_seen = Instant::now();
    let mut progress = Instant::now();
    loop {
        let mut next = Vec::new();
        for chunk in outstanding.chunks(CHECK_CHUNK) {
            let values = mget(storage, &keys(chunk)).await?;
            let now = Instant::now();
            for (item, value) in chunk.iter().zip(values) {
                if item.holds(value.as_deref()) {
                    last_seen = now;
                } else {
                    next.push(item.clone());
                }
            }
        }
        if next.is_empty() {
            return Ok(last_seen);
        }
        if next.len() < outstanding.len() {
            progress = Instant::now();
        }
        running()?;
        ensure!(
            progress.elapsed() < STUCK_AFTER,
            "{} keys did not reach their final state within {STUCK_AFTER:?}, e.g. {:?}",
            next.len(),
            &next[..next.len().min(3)]
        );
        outstanding = next;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Logs what a run to Redis did, and fails when its worker failed or retried events.
pub fn report_run(
    changes: usize,
    written: Duration,
    visible: Duration,
    report: &pubsync_backend::WorkerReport,
) -> anyhow::Result<()> {
    eprintln!(
        "bench:   {changes} changes: written in {:.2} s, visible in Redis after {:.2} s ({report})",
        written.as_secs_f64(),
        visible.as_secs_f64(),
    );
    ensure_clean(report)
}

/// Fails when the worker failed or retried events.
pub fn ensure_clean(report: &pubsync_backend::WorkerReport) -> anyhow::Result<()> {
    ensure!(
        report.failed == 0 && report.retried == 0,
        "the worker failed or retried events: {report:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_adds_up_and_expects_every_key() {
        let plan = Plan::new(2_000, Payload::Hello);
        assert_eq!(plan.statements().len(), 3 + 1);
        let expected = plan.expected();
        assert_eq!(expected.len(), plan.counts.inserts + 1);
        assert_eq!(
            expected[0],
            Expected::Value {
                id: 1,
                message: "updated 1".into()
            }
        );
        assert_eq!(expected[999], Expected::Deleted { id: 1000 });
        assert_eq!(
            expected.last(),
            Some(&Expected::Value {
                id: 1001,
                message: "Hello Spryker! 1001".into()
            })
        );
        assert_eq!(Plan::new(100_000, Payload::Hello).statements().len(), 101);
    }

    #[test]
    fn a_one_kb_message_stores_about_a_kilobyte() {
        let json = serde_json::json!({
            "name": "name 12345",
            "message": Payload::OneKb.updated(12345),
            "_timestamp": 1_763_000_000.123_456,
        })
        .to_string();
        assert!((1000..1100).contains(&json.len()), "{}", json.len());
    }

    #[test]
    fn expected_values_are_checked_field_by_field() {
        let value = Expected::Value {
            id: 7,
            message: "updated 7".into(),
        };
        assert!(value.holds(Some(
            r#"{"name":"name 7","message":"updated 7","_timestamp":1.5}"#
        )));
        assert!(!value.holds(Some(r#"{"name":"name 7","message":"Hello"}"#)));
        assert!(!value.holds(None));
        let deleted = Expected::Deleted { id: 7 };
        assert!(deleted.holds(None));
        assert!(!deleted.holds(Some("{}")));
    }
}
