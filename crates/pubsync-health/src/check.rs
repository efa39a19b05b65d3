//! Reading the probe back: how old is the newest probe the key-value store holds?

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pubsync_client::StorageClient;
use pubsync_shared::key::SynchronizationData;
use pubsync_shared::transfer::PublishAndSynchronizeHealthCheckStorageTransfer;
use pubsync_storage_extension::StorageReader;

use crate::{PROBE_KEY, RESOURCE};

/// How fresh the read model is, by the probe it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the probe found in storage was written.
    pub written_at: SystemTime,
    /// How long ago that was (zero when the writer's clock is ahead of this one).
    pub age: Duration,
}

/// Why the health check fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The storage holds no probe: no probe was written, or none got through.
    #[error(
        "the storage has no {key}: no probe has reached it (is a worker running, and has a probe been written?)"
    )]
    Missing {
        /// The key looked up.
        key: String,
    },
    /// The probe in storage is older than allowed: the pipeline is stalled or far behind.
    #[error(
        "the probe in storage is {}s old, more than the {}s allowed: changes are not getting through",
        age.as_secs(), max_age.as_secs()
    )]
    Stale {
        /// Its age.
        age: Duration,
        /// The most allowed.
        max_age: Duration,
    },
    /// The stored probe is not one this crate wrote.
    #[error("the probe in storage cannot be read: {0}")]
    Unreadable(String),
    /// The storage could not be read.
    #[error("reading the probe from storage failed: {0}")]
    Storage(String),
}

/// The probe's storage key, as the client builds it.
pub fn probe_key<S: StorageReader>(client: &StorageClient<S>) -> String {
    client.key(RESOURCE, &SynchronizationData::reference(PROBE_KEY))
}

/// Reads the probe through `client` and checks that it is at most `max_age` old.
pub async fn check<S: StorageReader>(
    client: &StorageClient<S>,
    max_age: Duration,
) -> Result<Freshness, HealthError> {
    let key = probe_key(client);
    let value = client
        .get(&key)
        .await
        .map_err(|error| HealthError::Storage(error.to_string()))?
        .ok_or(HealthError::Missing { key: key.clone() })?;
    let probe: PublishAndSynchronizeHealthCheckStorageTransfer = serde_json::from_value(value)
        .map_err(|error| HealthError::Unreadable(error.to_string()))?;
    let written_at = probe
        .health_check_data
        .as_deref()
        .and_then(|data| data.parse::<u64>().ok())
        .map(|millis| UNIX_EPOCH + Duration::from_millis(millis))
        .ok_or_else(|| {
            HealthError::Unreadable(format!(
                "health_check_data {:?} is not a write time in milliseconds",
                probe.health_check_data
            ))
        })?;
    let age = SystemTime::now()
        .duration_since(written_at)
        .unwrap_or_default();
    if age > max_age {
        return Err(HealthError::Stale { age, max_age });
    }
    Ok(Freshness { written_at, age })
}
