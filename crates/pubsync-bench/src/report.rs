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
    /// Why the figure is missing.
    pub note: Option<String>,
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
}

impl Report {
    /// The figures measured on `machine`.
    pub fn new(machine: String, figures: Vec<Figure>) -> Self {
        Self { machine, figures }
    }

    /// `results.json`, in the format of issue 4.
    pub fn json(&self) -> anyhow::Result<String> {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|figure| {
                json!({
                    "name": figure.name,
                    "value": figure.value,
                    "unit": figure.unit,
                    "ceiling": figure.ceiling,
                    "ratio": figure.ratio(),
                })
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&json!({
            "machine": self.machine,
            "figures": figures,
        }))?;
        text.push('\n');
        Ok(text)
    }

    /// The figures as a Markdown table.
    pub fn table(&self) -> String {
        let mut table =
            String::from("| figure | value | unit | ceiling | ratio |\n|---|---:|---|---:|---:|\n");
        for figure in &self.figures {
            let value = figure.value.map_or_else(|| "missing".to_owned(), number);
            let ceiling = figure.ceiling.map_or_else(|| "–".to_owned(), number);
            let ratio = figure
                .ratio()
                .map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.2}"));
            let _ = writeln!(
                table,
                "| `{}` | {value} | {} | {ceiling} | {ratio} |",
                figure.name, figure.unit
            );
        }
        table
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
                    "- `{}` is missing: {}",
                    figure.name,
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
             updates, then a quarter deletes), then the real worker (`pubsync_cli::App`, \
             `Worker::run` until empty); timed from the first write until the last change is in \
             the storage table, median of {e2e_runs} runs. The result is checked (row count, \
             values, empty outbox) before a figure is reported. Ceiling: the same number of rows \
             written with multi-row INSERTs of 1000 rows into a plain table (WAL, \
             synchronous=NORMAL).\n\
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
             - `spryker_shaped_ratio`: {spryker} changes on PostgreSQL + RabbitMQ + Redis with \
             pubsync's defaults, over the same pipeline configured like the original \
             (`e2e_postgres_rabbitmq_redis_spryker_shaped`: one message per event and listener \
             in the original's format, chunks of 500 messages, one change per sync message, an \
             idle poll of 1 s); medians of {e2e_runs} runs each. Generous to the original, whose \
             worker takes one chunk per queue per second.\n\
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
             same connection; on a database: `SELECT \"key\", \"data\" … WHERE \"key\" IN (…)` \
             with bound keys on the same kind of pooled diesel connection.\n\
             \n## Machine\n\n{machine}\n\n## Command\n\n```\n{command}\n```\n",
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
fn number(value: f64) -> String {
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

    #[test]
    fn json_has_the_issue_format_with_nulls_where_missing() {
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
