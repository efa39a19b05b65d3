//! Server-side cost of `apply`: runs fresh writes, updates and deletes of `keys` keys (chunks of
//! 1,000) against a Redis server that runs under callgrind, zeroing the counters before each
//! phase and dumping them after it, so each dump holds the server instructions of one phase.
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg/out.%p \
//!     redis-server --port 6399 --save '' --appendonly no &
//! PUBSYNC_TEST_REDIS_URL=redis://127.0.0.1:6399/0 CALLGRIND_PID=<pid> \
//!     cargo run --release -p pubsync-storage-redis --example apply_instructions [keys]
//! callgrind_annotate /tmp/cg/out.<pid>.<n>   # or grep '^summary' of each dump
//! ```
//!
//! Without `CALLGRIND_PID` it only runs the phases. Phases: `fresh` (keys never seen), `update`
//! (newer over the fresh values), `delete` (newer deletes), `rewrite` (newer writes over those
//! tombstones), then `fresh-with-tombstones` (new keys while 10,000 other tombstones exist).
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::process::Command;

use pubsync_storage_extension::{KeyValueWriter as _, StorageChange, Version};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};

const CHUNK: usize = 1000;

fn version(step: usize) -> (String, Version) {
    let version = Version::from_micros(1_700_000_000_000_000 + step as i64);
    (format!("{:.6}", version.as_seconds()), version)
}

fn writes(keys: std::ops::Range<usize>, step: usize) -> Vec<StorageChange> {
    let (text, version) = version(step);
    keys.map(|i| StorageChange::Write {
        key: format!("product_abstract:de:de_de:{i}"),
        value: format!(
            r#"{{"id_product_abstract":{i},"sku":"sku-{i}","name":"Product {i}","price":1999,"attributes":{{"color":"blue"}},"_timestamp":{text}}}"#
        ),
        version,
    })
    .collect()
}

fn deletes(keys: std::ops::Range<usize>, step: usize) -> Vec<StorageChange> {
    let (_, version) = version(step);
    keys.map(|i| StorageChange::Delete {
        key: format!("product_abstract:de:de_de:{i}"),
        version,
    })
    .collect()
}

fn callgrind(action: &str) {
    if let Ok(pid) = std::env::var("CALLGRIND_PID") {
        let status = Command::new("callgrind_control")
            .arg(action)
            .arg(&pid)
            .output()
            .expect("callgrind_control");
        assert!(status.status.success(), "callgrind_control {action} {pid}");
    }
}

async fn phase(storage: &RedisStorage, name: &str, changes: Vec<StorageChange>, expected: usize) {
    let count = changes.len();
    callgrind("-z");
    let mut applied = 0;
    for chunk in changes.chunks(CHUNK) {
        applied += storage.apply(chunk.to_vec()).await.expect("apply");
    }
    callgrind("-d");
    assert_eq!(applied, expected, "{name}");
    println!("{name}: {count} changes, {applied} applied");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("keys"));
    let Some(url) = require(Service::Redis) else {
        return;
    };
    let prefix = format!("{}:", unique_name("apply_instructions"));
    let storage = RedisStorage::connect(&url, RedisStorageOptions::with_key_prefix(&prefix))
        .await
        .expect("connect");
    // Loads the script outside the measures.
    storage
        .apply(writes(keys * 10..keys * 10 + 1, 1))
        .await
        .expect("warm up");

    phase(&storage, "fresh", writes(0..keys, 1), keys).await;
    phase(&storage, "update", writes(0..keys, 2), keys).await;
    phase(&storage, "delete", deletes(0..keys, 3), keys).await;
    phase(&storage, "rewrite", writes(0..keys, 4), keys).await;
    storage
        .apply(deletes(keys * 2..keys * 3, 5))
        .await
        .expect("tombstones");
    phase(
        &storage,
        "fresh-with-tombstones",
        writes(keys..keys * 2, 6),
        keys,
    )
    .await;

    let mut connection = storage.connection();
    let mut cursor = 0_u64;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("scan");
        if !found.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(found)
                .query_async(&mut connection)
                .await
                .expect("del");
        }
        cursor = next;
        if cursor == 0 {
            return;
        }
    }
}
