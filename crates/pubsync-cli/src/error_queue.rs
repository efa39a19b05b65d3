//! `queue:error:list` and `queue:error:replay`: what failed, why and since when, and sending
//! it back after the cause is fixed (see `pubsync_backend::error_queue`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pubsync_backend::error_queue::{self, FailedMessage, Replay};
use serde_json::{Value, json};

use crate::App;

/// How much of a body a person sees in the list.
const BODY_PREVIEW_CHARS: usize = 200;

/// The queue `name` names (`event` or `event.error`), checked against the queues the
/// worker declares; an unknown one is an error that lists them.
async fn checked_worker(
    app: &App,
    name: &str,
) -> anyhow::Result<pubsync_backend::Worker<crate::AppQueue, crate::backends::AnyKeyValueStore>> {
    let worker = app.build_worker().await?;
    let known = worker.declared_queues();
    let (main, _) = error_queue::error_queue_of(&app.queue_argument(name));
    if !known.contains(&main) {
        bail!(
            "unknown queue {name:?}; queues with an error queue: {}",
            app.queue_list(&known)
        );
    }
    Ok(worker)
}

/// `queue:error:list <queue> [--limit N] [--json]`.
pub(crate) async fn list(
    app: &App,
    queue_name: &str,
    limit: usize,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    checked_worker(app, queue_name).await?;
    let queue = app.queue_holding(limit).await?;
    let queue_name = app.queue_argument(queue_name);
    let queue_name = queue_name.as_str();
    let (_, error_queue_name) = error_queue::error_queue_of(queue_name);
    let error_queue_name = app.queue_display(&error_queue_name);
    let messages = error_queue::list(&queue, queue_name, limit)
        .await
        .with_context(|| format!("reading {error_queue_name}"))?;
    if as_json {
        let entries: Vec<Value> = messages.iter().map(entry_json).collect();
        println!(
            "{}",
            json!({ "queue": error_queue_name, "messages": entries })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if messages.is_empty() {
        println!("{error_queue_name}: empty");
        return Ok(ExitCode::SUCCESS);
    }
    let more = if messages.len() == limit {
        format!(" (the first {limit}; --limit shows more)")
    } else {
        String::new()
    };
    println!("{error_queue_name}: {} messages{more}", messages.len());
    for (index, message) in messages.iter().enumerate() {
        let age = message.age.map_or_else(
            || "age unknown".to_owned(),
            |age| format!("{} ago", human(age)),
        );
        let replay = match &message.replay {
            Replay::Send(_) => "replayable".to_owned(),
            Replay::Keep(why) => format!("not replayable: {why}"),
        };
        println!(
            "{:>4}. {age}: {}",
            index + 1,
            message.reason.as_deref().unwrap_or("(no reason given)")
        );
        println!("      {replay}");
        println!("      {}", preview(&message.body));
    }
    Ok(ExitCode::SUCCESS)
}

/// `queue:error:replay <queue> [--limit N]`.
pub(crate) async fn replay(
    app: &App,
    queue_name: &str,
    limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let worker = checked_worker(app, queue_name).await?;
    let queue = worker.queue();
    let queue_name = app.queue_argument(queue_name);
    let queue_name = queue_name.as_str();
    let (main, error_queue_name) = error_queue::error_queue_of(queue_name);
    let (main, error_queue_name) = (
        app.queue_display(&main),
        app.queue_display(&error_queue_name),
    );
    let report = error_queue::replay(queue, queue_name, limit)
        .await
        .with_context(|| format!("replaying {error_queue_name}"))?;
    println!(
        "{error_queue_name}: {} messages sent back to {main}",
        report.replayed
    );
    if !report.kept.is_empty() {
        println!("{error_queue_name}: {} messages kept:", report.kept.len());
        for (reason, why) in &report.kept {
            println!(
                "  {}: {why}",
                reason.as_deref().unwrap_or("(no reason given)")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn entry_json(message: &FailedMessage) -> Value {
    let body = serde_json::from_slice::<Value>(&message.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&message.body).into_owned()));
    let (replayable, kept_because) = match &message.replay {
        Replay::Send(_) => (true, None),
        Replay::Keep(why) => (false, Some(*why)),
    };
    json!({
        "reason": message.reason,
        "age_seconds": message.age.map(|age| age.as_secs()),
        "replayable": replayable,
        "kept_because": kept_because,
        "body": body,
    })
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut preview: String = text.chars().take(BODY_PREVIEW_CHARS).collect();
    if text.chars().count() > BODY_PREVIEW_CHARS {
        preview.push('…');
    }
    preview
}

/// `1h 2m`, `3m 4s`, `5s`.
fn human(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        86_400.. => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3600),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(184)), "3m 4s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 2m");
        assert_eq!(human(Duration::from_secs(90_000)), "1d 1h");
    }
}
