//! The figures, the machine they were measured on, and how they are written out.

use std::fmt::Write as _;

use serde_json::json;

use crate::Size;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The figure's name (`e2e_sqlite_hello`).
    pub name: String,
    /// The measured value; `None` when it could not be measured (see `note`).
    pub value: Option<f64>,
    /// The unit (`changes/s`).
    pub unit: String,
    /// The same work with the raw client, in the same unit; `None` where there is none.
    pub ceiling: Option<f64>,
    /// A remark printed under the table: why the figure is missing, or what else its run saw.
    pub note: Option<String>,
}

/// Which number of a figure a target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The measured value, in the figure's unit.
    Value,
    /// The value divided by its ceiling.
    Ratio,
}

/// Which side of its limit a figure must be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// At least the limit (throughput, ratios).
    AtLeast,
    /// At most the limit (latency, memory).
    AtMost,
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The number the target applies to.
    pub measure: Measure,
    /// Which side of the limit is good.
    pub bound: Bound,
    /// The limit, in the figure's unit (or as a plain ratio).
    pub limit: f64,
}

impl Target {
    const fn value_at_least(limit: f64) -> Self {
        Self {
            measure: Measure::Value,
            bound: Bound::AtLeast,
            limit,
        }
    }

    const fn value_at_most(limit: f64) -> Self {
        Self {
            measure: Measure::Value,
            bound: Bound::AtMost,
            limit,
        }
    }

    const fn ratio_at_least(limit: f64) -> Self {
        Self {
            measure: Measure::Ratio,
            bound: Bound::AtLeast,
            limit,
        }
    }

    /// Whether `figure` meets the target; `None` when the number it applies to is missing.
    pub fn met_by(&self, figure: &Figure) -> Option<bool> {
        let measured = match self.measure {
            Measure::Value => figure.value?,
            Measure::Ratio => figure.ratio()?,
        };
        Some(match self.bound {
            Bound::AtLeast => measured >= self.limit,
            Bound::AtMost => measured <= self.limit,
        })
    }

    /// `≥ 25,000 changes/s`, `ratio ≥ 0.50`.
    pub fn describe(&self, unit: &str) -> String {
        let comparison = match self.bound {
            Bound::AtLeast => "≥",
            Bound::AtMost => "≤",
        };
        // Limits are round: 50, 0.5, 25,000.
        let limit = if self.limit.fract() == 0.0 {
            number(self.limit).trim_end_matches(".00").to_owned()
        } else {
            self.limit.to_string()
        };
        match self.measure {
            Measure::Value => format!("{comparison} {limit} {unit}"),
            Measure::Ratio => format!("ratio {comparison} {limit}"),
        }
    }

    fn json(&self, met: Option<bool>) -> serde_json::Value {
        json!({
            "of": match self.measure {
                Measure::Value => "value",
                Measure::Ratio => "ratio",
            },
            "comparison": match self.bound {
                Bound::AtLeast => ">=",
                Bound::AtMost => "<=",
            },
            "limit": self.limit,
            "met": met,
        })
    }
}

/// Every target, by figure name. A figure named here is judged whenever a scenario
/// reports it; a name no scenario reports yet costs nothing.
pub const TARGETS: &[(&str, Target)] = &[
    (
        "e2e_postgres_rabbitmq_redis_hello",
        Target::value_at_least(25_000.0),
    ),
    (
        "e2e_postgres_rabbitmq_redis_1kb",
        Target::value_at_least(10_000.0),
    ),
    ("e2e_sqlite_hello", Target::value_at_least(100_000.0)),
    (
        "latency_p99_postgres_rabbitmq_redis_1k",
        Target::value_at_most(50.0),
    ),
    ("sync_redis", Target::ratio_at_least(0.5)),
    ("get_multi_redis", Target::ratio_at_least(0.8)),
    ("get_multi_postgres", Target::ratio_at_least(0.8)),
    ("get_multi_sqlite", Target::ratio_at_least(0.8)),
    ("spryker_shaped_ratio", Target::value_at_least(5.0)),
    ("poison_1pct_ratio", Target::value_at_least(0.95)),
    ("worker_rss_full_speed", Target::value_at_most(50.0)),
    ("worker_rss_backlog_1m", Target::value_at_most(100.0)),
    // Our reading of "a backlog of 1M messages" where they wait in the queue, not the outbox.
    ("worker_rss_backlog_1m_queued", Target::value_at_most(100.0)),
    // A backfill at least as fast as live changes on the same database and storage: its
    // ceiling is the `e2e_*` figure of that database and storage in the same run.
    ("backfill_sqlite", Target::ratio_at_least(1.0)),
    ("backfill_sqlite_database", Target::ratio_at_least(1.0)),
    ("backfill_postgres", Target::ratio_at_least(1.0)),
    ("backfill_mysql", Target::ratio_at_least(1.0)),
    ("backfill_sqlite_rss", Target::value_at_most(100.0)),
    ("backfill_sqlite_database_rss", Target::value_at_most(100.0)),
    ("backfill_postgres_rss", Target::value_at_most(100.0)),
    ("backfill_mysql_rss", Target::value_at_most(100.0)),
];

/// The target of the figure named `name`, if it has one.
pub fn target(name: &str) -> Option<Target> {
    TARGETS
        .iter()
        .find(|(figure, _)| *figure == name)
        .map(|(_, target)| *target)
}

impl Figure {
    /// A figure that could not be measured, and why.
    pub fn missing(name: &str, unit: &str, note: impl Into<String>) -> Self {
        let note = note.into();
        eprintln!("bench: {name} is missing: {note}");
        Self {
            name: name.to_owned(),
            value: None,
            unit: unit.to_owned(),
            ceiling: None,
            note: Some(note),
        }
    }

    /// `value / ceiling`, when both are there.
    pub fn ratio(&self) -> Option<f64> {
        match (self.value, self.ceiling) {
            (Some(value), Some(ceiling)) if ceiling > 0.0 => Some(value / ceiling),
            _ => None,
        }
    }

    /// One line for the progress output.
    pub fn summary(&self) -> String {
        match (self.value, self.ceiling, self.ratio()) {
            (Some(value), Some(ceiling), Some(ratio)) => format!(
                "{} {unit}, ceiling {} {unit}, ratio {ratio:.2}",
                number(value),
                number(ceiling),
                unit = self.unit
            ),
            (Some(value), _, _) => format!("{} {}", number(value), self.unit),
            _ => format!("missing ({})", self.note.as_deref().unwrap_or("no value")),
        }
    }
}

/// A whole run's figures.
#[derive(Debug)]
pub struct Report {
    machine: String,
    figures: Vec<Figure>,
    judged: bool,
}

impl Report {
    /// The figures measured on `machine`, judged against their targets.
    pub fn new(machine: String, figures: Vec<Figure>) -> Self {
        Self {
            machine,
            figures,
            judged: true,
        }
    }

    /// Whether figures are judged against their targets (not in a `--quick` run, whose small
    /// N says little about throughput or memory). Targets are shown either way.
    pub fn judged(mut self, judged: bool) -> Self {
        self.judged = judged;
        self
    }

    /// The verdict on `figure`: `None` when it has no target, or the run is not judged.
    fn verdict(&self, figure: &Figure) -> Option<(Target, Option<bool>)> {
        let target = target(&figure.name)?;
        Some((target, self.judged.then(|| target.met_by(figure)).flatten()))
    }

    /// `results.json`, in the format scripts read.
    pub fn json(&self) -> anyhow::Result<String> {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|figure| {
                let mut entry = json!({
                    "name": figure.name,
                    "value": figure.value,
                    "unit": figure.unit,
                    "ceiling": figure.ceiling,
                    "ratio": figure.ratio(),
                });
                if let Some((target, met)) = self.verdict(figure) {
                    entry["target"] = target.json(met);
                }
                entry
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&json!({
            "machine": self.machine,
            "figures": figures,
        }))?;
        text.push('\n');
        Ok(text)
    }

    /// The figures as a Markdown table, each with its target and whether it was met.
    pub fn table(&self) -> String {
        let mut table = String::from(
            "| figure | value | unit | ceiling | ratio | target | met |\n\
             |---|---:|---|---:|---:|---|---|\n",
        );
        for figure in &self.figures {
            let value = figure.value.map_or_else(|| "missing".to_owned(), number);
            let ceiling = figure.ceiling.map_or_else(|| "–".to_owned(), number);
            let ratio = figure
                .ratio()
                .map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.2}"));
            let (target, met) = match self.verdict(figure) {
                None => ("–".to_owned(), "–"),
                Some((target, met)) => (
                    target.describe(&figure.unit),
                    match met {
                        Some(true) => "met",
                        Some(false) => "**missed**",
                        None if !self.judged => "not judged",
                        None => "not measured",
                    },
                ),
            };
            let _ = writeln!(
                table,
                "| `{}` | {value} | {} | {ceiling} | {ratio} | {target} | {met} |",
                figure.name, figure.unit
            );
        }
        table
    }

    /// How many judged figures met and missed their targets.
    pub fn verdicts(&self) -> (usize, usize) {
        let verdicts: Vec<bool> = self
            .figures
            .iter()
            .filter_map(|figure| self.verdict(figure)?.1)
            .collect();
        let met = verdicts.iter().filter(|met| **met).count();
        (met, verdicts.len() - met)
    }

    /// The Markdown page: the table, what each figure measures, the machine and the command.
    pub fn markdown(&self, command: &str, size: Size, quick: bool) -> String {
        let mut page = String::from(
            "# Benchmarks\n\n\
             Written by `cargo xtask bench` (crate `pubsync-bench`); do not edit by hand. \
             Each pubsync figure is measured beside its ceiling, the same work done with the \
             raw client and nothing else, in the same run on the same machine; the ratio is \
             the figure to compare across machines. Figures are medians of several runs.\n\n",
        );
        if quick {
            page.push_str(
                "**`--quick` run: small N, for CI. These figures say little about throughput.**\n\n",
            );
        }
        page.push_str(&self.table());
        let notes: Vec<&Figure> = self.figures.iter().filter(|f| f.note.is_some()).collect();
        if !notes.is_empty() {
            page.push('\n');
            for figure in notes {
                let _ = writeln!(
                    page,
                    "- `{}`{} {}",
                    figure.name,
                    if figure.value.is_some() {
                        ":"
                    } else {
                        " is missing:"
                    },
                    figure.note.as_deref().unwrap_or_default()
                );
            }
        }
        let _ = write!(
            page,
            "\n## What is measured\n\n\
             - `e2e_sqlite_hello`: on a fresh SQLite file with the embedded default (database \
             queue, database storage), {e2e} Hello message changes written with plain SQL in \
             statements of 1000 rows, each its own transaction (half inserts, then a quarter \
             updates, then a quarter deletes), by the application on a connection of its own, \
             while the real worker (`pubsync_cli::App`, `Worker::run`) runs, as in production; \
             timed from the first write until the last change is in the storage table, median \
             of {e2e_runs} runs. The result is checked (row count, \
             values, empty outbox) before a figure is reported. Ceiling: the same number of rows \
             written with multi-row INSERTs of 1000 rows into a plain table (WAL, \
             synchronous=NORMAL).\n\
             - `e2e_sqlite_redis_hello`: the same {e2e} changes on a fresh SQLite file with the \
             database queue, the worker running in the same process as for \
             `e2e_sqlite_hello`, but Redis as the storage (a key prefix of its own, its keys \
             deleted afterwards) with `[sync] direct = true`, so each change's key is written \
             to Redis right after it is published, as the SQLite backfill writes it; then one \
             more row (the sentinel) marks the end, as on the servers below. Timed from the \
             first write until every key is seen in its final state in Redis (values by MGET, \
             deleted keys absent once the sentinel is there, key count), median of {e2e_runs} \
             runs. Ceiling: as for `e2e_sqlite_hello`. No target: it is there to be \
             `backfill_sqlite`'s ceiling.\n\
             - `poison_1pct_ratio`: the {e2e} changes of `e2e_sqlite_hello`, timed the same way \
             (until nothing is left to do), with `[sync] max_payload_bytes = 1024` and one \
             message in each hundred long: 900 bytes in the clean run, 1,100 in the poisoned \
             one, whose storage rows are refused and whose events are retried (1, 2 and 4 ms \
             apart) and then moved to the error queue. Updates leave the long messages as they \
             are. The storage table and the error queue are checked. The figure is the \
             poisoned run's changes/s over the clean run's, medians of {e2e_runs} runs each, \
             taken alternately.\n\
             - `e2e_postgres_rabbitmq_redis_*`, `e2e_mysql_rabbitmq_redis_hello`: the same {e2e} \
             changes on a fresh PostgreSQL or MySQL/MariaDB database with RabbitMQ as the queue \
             and Redis as the storage (`App` from a `pubsync.toml` with its own queue and key \
             prefixes, defaults otherwise), the worker running before the first write; then one \
             more row (the sentinel) marks the end. Timed from the first write until every key \
             is seen in its final state in Redis (values by MGET, deleted keys absent once the \
             sentinel is there, key count), median of {e2e_runs} runs. `_hello`: Hello rows \
             (stored JSON ~80 bytes); `_1kb`: the message padded so the stored JSON is ~1 KB \
             (inserts and updates alike). Ceiling: the same rows as multi-row INSERTs of 1000 \
             into a plain table on the same server.\n\
             - `latency_p50/p99_postgres_rabbitmq_redis_1k`: PostgreSQL + RabbitMQ + Redis, the \
             worker running, an offered load of 1,000 changes/s (10 new rows in one \
             transaction every 10 ms) for {latency} s; a poller MGETs the keys not yet visible \
             every millisecond; commit to first seen in Redis, per key.\n\
             - `latency_p50/p99_postgres_rabbitmq_redis_full`: the same at full speed: \
             transactions of 100 new rows one after the other for {latency} s, the last key of \
             each transaction timed. A backlog that builds up while the writes outrun the \
             worker shows here.\n\
             - `spryker_shaped_ratio`: {spryker} changes on PostgreSQL + RabbitMQ + Redis with \
             pubsync's defaults, over the same pipeline configured like the original \
             (`e2e_postgres_rabbitmq_redis_spryker_shaped`: one message per event and listener \
             in the original's format, chunks of 500 messages, one change per sync message, and \
             the original worker's pace, `[worker] original_pacing`: one chunk per stage per \
             round, 100 ms between rounds with work and 1 s after one without, no stage waking \
             another); medians of {e2e_runs} runs each. Still generous to the \
             original, which starts a PHP process per chunk.\n\
             - `queue_rabbitmq`: {queue} messages of 256 bytes through pubsync's `RabbitQueue` \
             (persistent, `send` in batches of 500 each waiting for its publisher confirms, \
             while `receive` of 500 + `settle` acknowledges on the same connection). Ceiling: \
             the same with raw amqprs (default exchange, confirms per 500, prefetch 500, \
             multiple acks).\n\
             - `sync_redis`: `RedisStorage::apply` (the versioned Lua script) of {sync} writes of \
             new keys in chunks of 1000. Ceiling: pipelined SET of the same keys and values, \
             1000 per pipeline.\n\
             - `get_multi_*`: `StorageClient::get_multi` (values decoded from JSON) of 100 \
             present keys, {calls} calls per run. Ceiling on Redis: MGET of the same keys on the \
             same connection; on a database: `SELECT \"key\", \"data\" … WHERE \"key\" = \
             ANY((SELECT CAST($1 AS TEXT[]))::TEXT[])` (one array parameter, in a sub-select so \
             that the planner takes the unique index: with the keys visible it scans the whole \
             table, freshly analysed or not) on PostgreSQL, `… WHERE \"key\" IN (…)` with \
             bound keys elsewhere, kept prepared, on the same kind of pooled diesel connection. Each \
             ceiling decodes the values into `serde_json::Value` as the client contract does.\n\
             - `capture_*`: the changes of `e2e_sqlite_hello` ({e2e}, in statements of 1000 \
             rows) written into a set-up pubsync database, whose generated triggers write one \
             outbox row per change; rows/s are outbox rows, checked by count, median of \
             {e2e_runs} runs on a fresh database each. Ceiling: the same statements against a \
             plain copy of the table without triggers, in the same database.\n\
             - `publish_*`: the outbox filled by those changes (not timed), then the real worker \
             with synchronization off (database storage) until it is empty: outbox, Hello \
             publisher (published directly, the default with the database queue), storage \
             table; events/s are outbox \
             events turned into storage rows, the storage table checked as in \
             `e2e_sqlite_hello`. Ceiling: what a publisher cannot avoid, with raw SQL: per 1000 \
             events in capture order, one `SELECT … WHERE id IN (…)` of the source rows, then in \
             one transaction one multi-row upsert (`INSERT … ON CONFLICT (key) DO UPDATE … \
             WHERE data changed`) of their storage rows and one `DELETE … WHERE key IN (…)` of \
             the rows whose source is gone, into a plain copy of the storage table; no outbox, \
             queue or message encoding.\n\
             - `worker_rss_*`: the peak resident set (`VmHWM`, the kernel's high-water mark, \
             read every 5 ms; MB = 10^6 bytes) of the release `pubsync` binary run as its own \
             process, `pubsync --config … queue:worker:start --stop-when-empty`, on the \
             embedded default (SQLite, database queue, database storage), with every change \
             written before it starts and the storage table checked after it exits. \
             `worker_rss_full_speed`: the {e2e} changes of `e2e_sqlite_hello`. \
             `worker_rss_backlog_1m`: {backlog} changes (the same mix) waiting in the outbox, \
             that is {backlog} events, which the relay packs 500 to a queue message (about \
             {backlog_messages} event messages, relayed 1000 outbox rows per pass while the \
             worker consumes); in the original's one-event-per-message format it would be \
             {backlog} queue messages. `worker_rss_backlog_1m_queued`: the same {backlog} changes \
             already relayed into the event queue before the worker starts ({backlog_messages} \
             messages of 500 events, as after a consumer outage while the relay kept running), \
             so that the consumer takes full chunks (about 10,000 events); judged against the \
             same target. The notes under the table say how long the worker took.\n\
             - `backfill_sqlite`, `backfill_postgres`, `backfill_mysql`: {backfill} rows of \
             `spy_hello_spryker_message` with ids that have gaps (2, 4, …), written into a \
             fresh database before `pubsync setup` adopts the table, so that no capture trigger \
             saw them (the outbox stays empty), then backfilled by the release `pubsync` \
             binary run as its own process, `pubsync publish:trigger-events -r message` \
             (keyset pages of 1000 ids, each published and its sync outbox relayed), with Redis \
             as the storage under a key prefix of its own and `[sync] direct = true`, so the \
             keys reach Redis as the run goes and no worker runs. Timed from the process's \
             start until it exits; rows/s are source rows, checked before a figure is \
             reported (the storage table and Redis each hold {backfill} rows or `kv:` keys, \
             sampled values, empty outboxes and queue). Ceiling: the end-to-end figure of the \
             same database and storage in the same run (`e2e_sqlite_redis_hello`, \
             `e2e_postgres_rabbitmq_redis_hello`, `e2e_mysql_rabbitmq_redis_hello`, in \
             changes/s), so the ratio says how the backfill compares with live changes that \
             also end in Redis; missing when that scenario did not run. \
             `backfill_sqlite_database`: the same on SQLite with database storage, the \
             embedded default (no Redis, no synchronization), checked the same way without \
             Redis (the storage table holds {backfill} rows, sampled values, empty outbox, \
             sync outbox and queue); ceiling `e2e_sqlite_hello` of the same run. \
             `backfill_*_rss`: the command's peak resident set, read as for `worker_rss_*`.\n\
             \n## Targets\n\nIn `TARGETS` (`crates/pubsync-bench/src/report.rs`), \
             judged in every full run (not under `--quick`); a missed target does not fail the \
             run. `results.json` carries each target beside its figure (`\"target\": {{\"of\", \
             \"comparison\", \"limit\", \"met\"}}`).\n\
             \n## Machine\n\n{machine}\n\n## Command\n\n```\n{command}\n```\n",
            backlog = size.backlog_changes,
            backfill = size.backfill_rows,
            backlog_messages = size.backlog_changes.div_ceil(500),
            e2e = size.e2e_changes,
            e2e_runs = size.e2e_runs,
            sync = size.sync_keys,
            latency = size.latency_seconds,
            spryker = size.spryker_changes,
            queue = size.queue_messages,
            calls = size.get_multi_calls,
            machine = self.machine,
        );
        page
    }
}

/// A number for people: no decimals above 100, two below.
pub(crate) fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{value:.0}");
        let (sign, digits) = digits
            .strip_prefix('-')
            .map_or(("", digits.as_str()), |rest| ("-", rest));
        let mut grouped = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        format!("{sign}{grouped}")
    } else {
        format!("{value:.2}")
    }
}

/// The machine: CPU model and count from `/proc/cpuinfo`, memory from `/proc/meminfo`, the
/// kernel from `/proc/sys/kernel/osrelease`.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|line| {
            line.split(':')
                .next()
                .is_some_and(|k| k.trim() == "processor")
        })
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| format!(", Linux {}", release.trim()))
        .unwrap_or_default();
    format!(
        "{cpus} × {model}, {memory}{kernel}; the database and Redis servers run on the same machine"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.456), "0.46");
    }

    fn figure(name: &str, value: Option<f64>, ceiling: Option<f64>) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: "u".into(),
            ceiling,
            note: None,
        }
    }

    #[test]
    fn targets_judge_the_value_or_the_ratio_on_the_right_side() {
        let throughput = target("e2e_sqlite_hello").unwrap();
        assert_eq!(
            throughput.met_by(&figure("e2e_sqlite_hello", Some(100_000.0), None)),
            Some(true)
        );
        assert_eq!(
            throughput.met_by(&figure("e2e_sqlite_hello", Some(99_999.0), Some(1e6))),
            Some(false)
        );
        let memory = target("worker_rss_full_speed").unwrap();
        assert_eq!(
            memory.met_by(&figure("worker_rss_full_speed", Some(50.0), None)),
            Some(true)
        );
        assert_eq!(
            memory.met_by(&figure("worker_rss_full_speed", Some(50.1), None)),
            Some(false)
        );
        let ratio = target("sync_redis").unwrap();
        assert_eq!(
            ratio.met_by(&figure("sync_redis", Some(60.0), Some(100.0))),
            Some(true)
        );
        assert_eq!(
            ratio.met_by(&figure("sync_redis", Some(40.0), Some(100.0))),
            Some(false)
        );
        assert_eq!(ratio.met_by(&figure("sync_redis", Some(40.0), None)), None);
        assert_eq!(ratio.met_by(&figure("sync_redis", None, Some(1.0))), None);
        assert_eq!(target("publish_sqlite"), None);
    }

    #[test]
    fn every_target_is_in_the_table_once() {
        let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        for name in [
            "e2e_postgres_rabbitmq_redis_hello",
            "e2e_postgres_rabbitmq_redis_1kb",
            "e2e_sqlite_hello",
            "latency_p99_postgres_rabbitmq_redis_1k",
            "sync_redis",
            "get_multi_redis",
            "get_multi_postgres",
            "get_multi_sqlite",
            "spryker_shaped_ratio",
            "poison_1pct_ratio",
            "worker_rss_full_speed",
            "worker_rss_backlog_1m",
            "worker_rss_backlog_1m_queued",
            "backfill_sqlite",
            "backfill_sqlite_database",
            "backfill_postgres",
            "backfill_mysql",
            "backfill_sqlite_rss",
            "backfill_sqlite_database_rss",
            "backfill_postgres_rss",
            "backfill_mysql_rss",
        ] {
            assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
        }
        assert_eq!(names.len(), 21);
        // The SQLite + Redis end-to-end figure is the SQLite backfill's ceiling, with no
        // target of its own: none of the others is about that combination.
        assert_eq!(target("e2e_sqlite_redis_hello"), None);
    }

    #[test]
    fn the_table_shows_targets_and_verdicts() {
        let figures = vec![
            figure("worker_rss_full_speed", Some(60.0), None),
            figure("sync_redis", Some(60.0), Some(100.0)),
            Figure::missing("get_multi_redis", "keys/s", "down"),
            figure("publish_sqlite", Some(1.0), Some(2.0)),
        ];
        let report = Report::new("m".into(), figures.clone());
        let table = report.table();
        assert!(
            table.contains("| `worker_rss_full_speed` | 60.00 | u | – | – | ≤ 50 u | **missed** |"),
            "{table}"
        );
        assert!(
            table.contains("| `sync_redis` | 60.00 | u | 100 | 0.60 | ratio ≥ 0.5 | met |"),
            "{table}"
        );
        assert!(table.contains("| ratio ≥ 0.8 | not measured |"), "{table}");
        assert!(
            table.contains("| `publish_sqlite` | 1.00 | u | 2.00 | 0.50 | – | – |"),
            "{table}"
        );
        assert_eq!(report.verdicts(), (1, 1));

        let quick = Report::new("m".into(), figures).judged(false);
        assert!(quick.table().contains("| ≤ 50 u | not judged |"));
        assert_eq!(quick.verdicts(), (0, 0));
        let json: serde_json::Value = serde_json::from_str(&quick.json().unwrap()).unwrap();
        assert_eq!(
            json["figures"][0]["target"],
            json!({"of": "value", "comparison": "<=", "limit": 50.0, "met": null})
        );
    }

    #[test]
    fn json_carries_targets_beside_the_required_keys() {
        let report = Report::new(
            "m".into(),
            vec![figure("sync_redis", Some(40.0), Some(100.0))],
        );
        let json: serde_json::Value = serde_json::from_str(&report.json().unwrap()).unwrap();
        assert_eq!(
            json["figures"][0],
            json!({"name": "sync_redis", "value": 40.0, "unit": "u", "ceiling": 100.0,
                   "ratio": 0.4, "target": {"of": "ratio", "comparison": ">=", "limit": 0.5,
                   "met": false}})
        );
    }

    #[test]
    fn json_has_the_documented_format_with_nulls_where_missing() {
        let report = Report::new(
            "m".into(),
            vec![
                Figure {
                    name: "a".into(),
                    value: Some(2.0),
                    unit: "keys/s".into(),
                    ceiling: Some(4.0),
                    note: None,
                },
                Figure::missing("b", "keys/s", "down"),
            ],
        );
        let json: serde_json::Value = serde_json::from_str(&report.json().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"machine": "m", "figures": [
                {"name": "a", "value": 2.0, "unit": "keys/s", "ceiling": 4.0, "ratio": 0.5},
                {"name": "b", "value": null, "unit": "keys/s", "ceiling": null, "ratio": null},
            ]})
        );
    }
}
