//! The synchronize step on Redis: versioned `apply` against raw pipelined `SET`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use pubsync_storage_extension::{KeyValueWriter as _, StorageChange, Version};
use pubsync_storage_redis::redis::{self, AsyncCommands as _};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};

use crate::report::Figure;
use crate::{Size, median, per_second, throughput};

/// Keys per script call and per ceiling pipeline.
const CHUNK: usize = 1000;

/// The value of key `i`, shaped like a Hello storage value with its version.
pub fn value(i: usize, version: Version) -> String {
    let seconds = version.as_seconds();
    format!(r#"{{"name":"name {i}","message":"Hello Spryker! {i}","_timestamp":{seconds:.6}}}"#)
}

/// Redis at the test address with keys under a prefix of its own, or the figure as missing.
pub async fn connect(name: &str, unit: &str) -> anyhow::Result<Result<Bench, Figure>> {
    let Some(url) = require(Service::Redis) else {
        let url = Service::Redis.url();
        return Ok(Err(Figure::missing(
            name,
            unit,
            format!("Redis unreachable at {url}"),
        )));
    };
    let prefix = format!("{}:", unique_name("pubsync_bench"));
    Ok(Ok(Bench { url, prefix }))
}

/// A Redis server and the key prefix the benchmark owns on it.
#[derive(Debug)]
pub struct Bench {
    url: String,
    prefix: String,
}

impl Bench {
    /// Storage whose keys all start with this benchmark's prefix and `part`.
    pub async fn storage(&self, part: &str) -> anyhow::Result<RedisStorage> {
        RedisStorage::connect(
            &self.url,
            RedisStorageOptions::with_key_prefix(format!("{}{part}:", self.prefix)),
        )
        .await
        .context("connecting to Redis")
    }

    /// Deletes every key under the prefix.
    pub async fn clean_up(&self) -> anyhow::Result<()> {
        let storage = self.storage("cleanup").await?;
        delete_keys(&storage, &format!("{}*", self.prefix)).await
    }
}

/// Every key matching `pattern`.
pub async fn scan(storage: &RedisStorage, pattern: &str) -> anyhow::Result<Vec<String>> {
    let mut connection = storage.connection();
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        found.extend(keys);
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Deletes every key matching `pattern`.
pub async fn delete_keys(storage: &RedisStorage, pattern: &str) -> anyhow::Result<()> {
    let keys = scan(storage, pattern).await?;
    let mut connection = storage.connection();
    for chunk in keys.chunks(1000) {
        let _: () = connection.unlink(chunk).await?;
    }
    Ok(())
}

/// `sync_redis`.
pub async fn redis(size: Size) -> anyhow::Result<Figure> {
    let bench = match connect("sync_redis", "keys/s").await? {
        Ok(bench) => bench,
        Err(missing) => return Ok(missing),
    };
    let result = measure(&bench, size).await;
    let cleaned = bench.clean_up().await;
    let figure = result?;
    cleaned.context("deleting the benchmark's keys")?;
    Ok(figure)
}

async fn measure(bench: &Bench, size: Size) -> anyhow::Result<Figure> {
    let keys = size.sync_keys;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.runs {
        // New keys each run, so every versioned write applies.
        let storage = bench.storage(&format!("apply{run}")).await?;
        pubsync_runs.push(apply_run(&storage, keys).await?);
        let storage = bench.storage(&format!("set{run}")).await?;
        ceiling_runs.push(set_run(&storage, keys).await?);
    }
    Ok(throughput(
        "sync_redis",
        "keys/s",
        per_second(keys, median(pubsync_runs)),
        per_second(keys, median(ceiling_runs)),
    ))
}

async fn apply_run(storage: &RedisStorage, keys: usize) -> anyhow::Result<Duration> {
    let version = Version::now();
    let changes: Vec<StorageChange> = (0..keys)
        .map(|i| StorageChange::Write {
            key: format!("message:{i}"),
            value: value(i, version),
            version,
        })
        .collect();
    let started = Instant::now();
    let mut applied = 0;
    let mut changes = changes.into_iter();
    loop {
        let chunk: Vec<StorageChange> = changes.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        applied += storage.apply(chunk).await?;
    }
    let elapsed = started.elapsed();
    ensure!(applied == keys, "applied {applied} of {keys} writes");
    check(storage, keys, version).await?;
    Ok(elapsed)
}

async fn set_run(storage: &RedisStorage, keys: usize) -> anyhow::Result<Duration> {
    let version = Version::now();
    let pairs: Vec<(String, String)> = (0..keys)
        .map(|i| {
            (
                storage.redis_key(&format!("message:{i}")),
                value(i, version),
            )
        })
        .collect();
    let mut connection = storage.connection();
    let started = Instant::now();
    for chunk in pairs.chunks(CHUNK) {
        let mut pipeline = redis::pipe();
        for (key, value) in chunk {
            pipeline.set(key, value).ignore();
        }
        let _: () = pipeline.query_async(&mut connection).await?;
    }
    let elapsed = started.elapsed();
    check(storage, keys, version).await?;
    Ok(elapsed)
}

/// A few keys hold what was written.
async fn check(storage: &RedisStorage, keys: usize, version: Version) -> anyhow::Result<()> {
    use pubsync_storage_extension::StorageReader as _;
    for i in [0, keys / 2, keys - 1] {
        let found = storage.get(&format!("message:{i}")).await?;
        ensure!(
            found.as_deref() == Some(value(i, version).as_str()),
            "message:{i} holds {found:?}"
        );
    }
    Ok(())
}
