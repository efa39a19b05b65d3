//! `pubsync status [--json]`: what waits in every queue and outbox, and how fresh the read
//! model is, for a person or, as one stable JSON object, for a script.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use pubsync_backend::status::{Backlog, Status};
use serde_json::{Value, json};

use crate::App;
use crate::health::{self, Health};

/// `pubsync status`.
pub(crate) async fn command(app: &App, as_json: bool) -> anyhow::Result<ExitCode> {
    let worker = app.build_worker().await?;
    let status = worker
        .status()
        .await
        .context("reading the queues and outboxes")?;
    let client = app.client().await.context("opening the storage")?;
    let health = health::read(app, &client, app.settings().health.max_age).await;
    if as_json {
        println!("{}", to_json(app, &status, &health));
    } else {
        print_human(app, &status, &health);
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds(age: Option<Duration>) -> Value {
    age.map_or(Value::Null, |age| {
        json!((age.as_secs_f64() * 1000.0).round() / 1000.0)
    })
}

fn backlog_json(backlog: &Backlog) -> Value {
    json!({ "rows": backlog.rows, "oldest_age_seconds": seconds(backlog.oldest_age) })
}

/// `{queues: [{name, ready, in_flight, error}], outbox: {rows, oldest_age_seconds},
/// sync_outbox: {…}, read_model: {healthy, probe_age_seconds, max_age_seconds, message}}`;
/// queue names with the configured prefix.
fn to_json(app: &App, status: &Status, health: &Health) -> Value {
    let queues: Vec<Value> = status
        .queues
        .iter()
        .map(|queue| {
            json!({
                "name": app.queue_display(&queue.name),
                "ready": queue.ready,
                "in_flight": queue.in_flight,
                "error": queue.error,
            })
        })
        .collect();
    json!({
        "queues": queues,
        "outbox": backlog_json(&status.outbox),
        "sync_outbox": backlog_json(&status.sync_outbox),
        "read_model": {
            "healthy": health.storage.is_ok(),
            "probe_age_seconds": seconds(health.age()),
            "max_age_seconds": health.max_age.as_secs(),
            "message": health.storage.as_ref().err().map(ToString::to_string),
        },
        "key_value_store": health.store.as_ref().map(|store| json!({
            "healthy": store.is_ok(),
            "message": store.as_ref().err(),
        })),
    })
}

fn print_human(app: &App, status: &Status, health: &Health) {
    let width = status
        .queues
        .iter()
        .map(|queue| app.queue_display(&queue.name).len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:width$}  {:>9}  {:>9}  {:>9}",
        "queue", "ready", "in flight", "error"
    );
    for queue in &status.queues {
        println!(
            "{:width$}  {:>9}  {:>9}  {:>9}",
            app.queue_display(&queue.name),
            queue.ready,
            queue.in_flight,
            queue.error
        );
    }
    println!();
    for (name, backlog) in [
        ("outbox", &status.outbox),
        ("sync outbox", &status.sync_outbox),
    ] {
        match backlog.oldest_age {
            Some(age) => println!(
                "{name}: {} rows, the oldest {:.1}s old",
                backlog.rows,
                age.as_secs_f64()
            ),
            None => println!("{name}: empty"),
        }
    }
    match &health.storage {
        Ok(freshness) => println!(
            "read model: fresh (health-check probe {:.1}s old, at most {}s allowed)",
            freshness.age.as_secs_f64(),
            health.max_age.as_secs()
        ),
        Err(error) => println!("read model: NOT FRESH: {error}"),
    }
    if let Some(Err(error)) = &health.store {
        println!("key-value store: {error}");
    }
}
