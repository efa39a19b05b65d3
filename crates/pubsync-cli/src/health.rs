//! The health check as operators use it: `pubsync health`, the read model's freshness in
//! `pubsync status`, and the worker's `GET /health-check`. Two services, named as in the
//! original: `publish-and-synchronize` (a probe can be written) and
//! `publish-and-synchronize-storage` (the probe in storage is fresh); with a key-value store,
//! a third, `key-value-store` (it holds the marker the database records, so it did not lose
//! its data).

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use pubsync_backend::sync::{MarkerCheck, check_marker};
use pubsync_client::StorageClient;
use pubsync_health::{Freshness, HealthError};
use serde_json::{Value, json};

use crate::App;
use crate::backends::AnyStorage;

/// What the health check found.
#[derive(Debug)]
pub(crate) struct Health {
    /// Writing a probe: when it was written, or why it failed; `None` when no probe was
    /// written by this check.
    pub(crate) write: Option<Result<SystemTime, String>>,
    /// The probe in storage.
    pub(crate) storage: Result<Freshness, HealthError>,
    /// The most the probe's age may be.
    pub(crate) max_age: Duration,
    /// The key-value store's marker: intact, or why the store is not to be trusted; `None`
    /// without a key-value store (or one that keeps no marker).
    pub(crate) store: Option<Result<(), String>>,
}

impl Health {
    /// Whether every service is healthy.
    pub(crate) fn is_healthy(&self) -> bool {
        !matches!(self.write, Some(Err(_)))
            && self.storage.is_ok()
            && !matches!(self.store, Some(Err(_)))
    }

    /// The HTTP status of `GET /health-check`: 200 or 503.
    pub(crate) fn http_status(&self) -> u16 {
        if self.is_healthy() { 200 } else { 503 }
    }

    /// The body of `GET /health-check` and of `pubsync health --json`.
    pub(crate) fn to_json(&self) -> Value {
        let mut services = Vec::new();
        if let Some(write) = &self.write {
            services.push(json!({
                "name": "publish-and-synchronize",
                "healthy": write.is_ok(),
                "message": write.as_ref().err(),
            }));
        }
        services.push(json!({
            "name": "publish-and-synchronize-storage",
            "healthy": self.storage.is_ok(),
            "message": self.storage.as_ref().err().map(ToString::to_string),
            "age_seconds": self.age().map(|age| age.as_secs_f64()),
            "max_age_seconds": self.max_age.as_secs(),
        }));
        if let Some(store) = &self.store {
            services.push(json!({
                "name": "key-value-store",
                "healthy": store.is_ok(),
                "message": store.as_ref().err(),
            }));
        }
        json!({ "status": self.http_status(), "services": services })
    }

    /// The probe's age, when the storage has a readable one.
    pub(crate) fn age(&self) -> Option<Duration> {
        match &self.storage {
            Ok(freshness) => Some(freshness.age),
            Err(HealthError::Stale { age, .. }) => Some(*age),
            Err(_) => None,
        }
    }
}

/// Checks the probe in storage through `client`, and the key-value store's marker against
/// `app`'s database, without writing a probe.
pub(crate) async fn read(
    app: &App,
    client: &StorageClient<AnyStorage>,
    max_age: Duration,
) -> Health {
    Health {
        write: None,
        storage: pubsync_health::check(client, max_age).await,
        max_age,
        store: store(app, client.storage()).await,
    }
}

/// Whether the key-value store behind `storage` kept its data ([`check_marker`], which
/// writes the first marker when the database records none); `None` without a key-value
/// store, or with one that keeps no marker.
pub(crate) async fn store(app: &App, storage: &AnyStorage) -> Option<Result<(), String>> {
    let store = storage.key_value_store()?;
    match check_marker(app.database(), &store).await {
        Ok(MarkerCheck::Unsupported) => None,
        Ok(check) => Some(check.loss().map_or(Ok(()), Err)),
        Err(error) => Some(Err(format!(
            "checking the key-value store's marker failed: {error}"
        ))),
    }
}

/// `setup`'s word on the key-value store: its marker written, found intact, or missing (the
/// store lost its data since the last setup or worker run). Never fails setup: a store that
/// cannot be reached is reported, and the worker checks again when it starts.
pub(crate) async fn report_marker(app: &App) {
    let storage = match app.storage().await {
        Ok(storage) => storage,
        Err(error) => {
            println!("key-value store not checked: {error:#}");
            return;
        }
    };
    let Some(store) = storage.key_value_store() else {
        return;
    };
    match check_marker(app.database(), &store).await {
        Ok(MarkerCheck::Established) => println!("key-value store: marker written"),
        Ok(MarkerCheck::Intact) => println!("key-value store: marker intact"),
        Ok(MarkerCheck::Unsupported) => {}
        Ok(lost) => println!("WARNING: {}", lost.loss().unwrap_or_default()),
        Err(error) => println!("key-value store not checked: {error}"),
    }
}

/// Writes a probe into the application database.
pub(crate) async fn write_probe(app: &App) -> Result<SystemTime, String> {
    app.database()
        .blocking(pubsync_health::probe::write)
        .await
        .map_err(|error| format!("writing the probe failed: {error}"))
}

/// `pubsync health [--json] [--wait SECONDS]`: writes a probe, then judges the probe in
/// storage; with `wait`, first waits up to that long for the probe just written to arrive.
/// Exit status 0 when healthy, 1 when not.
pub(crate) async fn command(
    app: &App,
    as_json: bool,
    wait: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let max_age = app.settings().health.max_age;
    let write = write_probe(app).await;
    let client: StorageClient<AnyStorage> = match app.client().await {
        Ok(client) => client,
        Err(error) => {
            // An unreachable storage is an unhealthy pipeline, not a usage error.
            let health = Health {
                write: Some(write),
                storage: Err(HealthError::Storage(format!("{error:#}"))),
                max_age,
                store: None,
            };
            report(&health, as_json);
            return Ok(ExitCode::from(1));
        }
    };
    if let (Ok(written_at), Some(wait)) = (&write, wait) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match pubsync_health::check(&client, Duration::MAX).await {
                Ok(found) if found.written_at >= *written_at - Duration::from_millis(1) => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let health = Health {
        write: Some(write),
        ..read(app, &client, max_age).await
    };
    report(&health, as_json);
    Ok(if health.is_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(health: &Health, as_json: bool) {
    if as_json {
        println!("{}", health.to_json());
    } else {
        print_human(health);
    }
}

fn print_human(health: &Health) {
    match &health.write {
        Some(Ok(_)) => println!("publish-and-synchronize: ok (probe written)"),
        Some(Err(error)) => println!("publish-and-synchronize: FAILING: {error}"),
        None => {}
    }
    match &health.storage {
        Ok(freshness) => println!(
            "publish-and-synchronize-storage: ok (probe {:.1}s old, at most {}s allowed)",
            freshness.age.as_secs_f64(),
            health.max_age.as_secs()
        ),
        Err(error) => println!("publish-and-synchronize-storage: FAILING: {error}"),
    }
    match &health.store {
        Some(Ok(())) => println!("key-value-store: ok (its marker is the one recorded)"),
        Some(Err(error)) => println!("key-value-store: FAILING: {error}"),
        None => {}
    }
}
