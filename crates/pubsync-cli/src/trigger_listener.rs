//! `event:trigger:listener <listener> <data>`: hands events to one listener in this process,
//! as the original's command of that name does, to see what a publisher makes of them; what it
//! writes is synchronized as any publish is.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use pubsync_backend::PublishContext;
use pubsync_shared::event::EventEntityTransfer;

use crate::App;

/// Runs `listener` on the events of `data` (one event as a JSON object, or an array of
/// them), as `event` (default: the events' own `event`, else the listener's first).
pub(crate) async fn command(
    app: &App,
    listener: &str,
    data: &str,
    event: Option<String>,
) -> anyhow::Result<ExitCode> {
    let Some(registration) = app.listeners().listener(listener) else {
        let mut known: Vec<String> = app
            .listeners()
            .dump()
            .into_iter()
            .map(|(_, name, _)| name)
            .collect();
        known.sort();
        known.dedup();
        bail!(
            "no listener named {listener:?}; the listeners are {}",
            known.join(", ")
        );
    };
    let transfers = parse(data)?;
    let subscribed = registration.publisher.subscribed_events();
    let event = match event {
        Some(event) => event,
        None => match transfers.first().map(|transfer| transfer.event.clone()) {
            Some(event) if !event.is_empty() => event,
            _ => subscribed
                .first()
                .cloned()
                .context("the listener subscribes to no event: give --event")?,
        },
    };
    if !subscribed.contains(&event) {
        bail!(
            "{listener} does not handle {event}; it handles {}",
            subscribed.join(", ")
        );
    }
    let context = PublishContext {
        database: app.database().clone(),
        storage: app.storage_writer(),
    };
    let publisher = registration.publisher.clone();
    let count = transfers.len();
    let handled_event = event.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        publisher
            .handle_bulk(&context, &handled_event, &transfers)
            .map_err(|error| error.to_string())
    })
    .await
    .map_err(|panic| anyhow::anyhow!("{listener} panicked: {panic}"))?;
    if let Err(reason) = outcome {
        eprintln!("{listener} failed on {count} events of {event}: {reason}");
        return Ok(ExitCode::from(1));
    }
    let relayed = app
        .maintenance_worker()
        .await?
        .relay_sync_outbox()
        .await
        .context("relaying the storage changes")?;
    println!("{listener} handled {count} events of {event}; {relayed} storage changes relayed");
    Ok(ExitCode::SUCCESS)
}

/// The events of `data`: one JSON object, or an array of them.
fn parse(data: &str) -> anyhow::Result<Vec<EventEntityTransfer>> {
    let value: serde_json::Value =
        serde_json::from_str(data).context("the event data is not JSON")?;
    let values = match value {
        serde_json::Value::Array(values) => values,
        object @ serde_json::Value::Object(_) => vec![object],
        other => bail!("the event data is {other}: expected an event object or an array of them"),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value(value)
                .with_context(|| format!("event {} of the data is not an event", index + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_one_event_or_a_list_and_bad_data_says_which() {
        assert_eq!(parse(r#"{"id": 3}"#).unwrap()[0].id, Some(3));
        let events = parse(r#"[{"id": 1, "event": "E"}, {"id": 2}]"#).unwrap();
        assert_eq!((events.len(), events[0].event.as_str()), (2, "E"));
        let error = format!("{:#}", parse("{id:").unwrap_err());
        assert!(error.contains("not JSON"), "{error}");
        let error = format!("{:#}", parse(r#"[{"id": 1}, {"id": "x"}]"#).unwrap_err());
        assert!(error.contains("event 2"), "{error}");
        assert!(parse("7").is_err());
    }
}
