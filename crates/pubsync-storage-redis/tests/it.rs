//! The Redis storage against a Redis server (`PUBSYNC_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379/0`): the contract's conformance cases, stale-write protection, two
//! concurrent writers, scans, prefixes and connection errors. Each test works under its own global
//! key prefix and removes every key under it when it ends, even when it fails.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use pubsync_storage_extension::conformance::{self, FIXTURE};
use pubsync_storage_extension::{
    KeyValueWriter, StorageChange, StorageError, StorageReader, Version,
};
use pubsync_storage_redis::{RedisAddress, RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};
use redis::AsyncCommands as _;

/// Removes every key under `prefix` when dropped (SCAN + DEL over a blocking connection, so it
/// also runs when the test panics).
struct PrefixCleanup {
    url: String,
    prefix: String,
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0_u64;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut connection)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
            cursor = next;
            if cursor == 0 {
                return;
            }
        }
    }
}

/// A storage under a fresh prefix, and the guard that removes its keys; `None` when Redis is
/// unreachable outside CI (`require` has printed SKIPPED).
async fn storage(name: &str) -> Option<(RedisStorage, PrefixCleanup)> {
    storage_with(name, RedisStorageOptions::default()).await
}

async fn storage_with(
    name: &str,
    options: RedisStorageOptions,
) -> Option<(RedisStorage, PrefixCleanup)> {
    let url = require(Service::Redis)?;
    let prefix = format!("{}:", unique_name(name));
    let options = RedisStorageOptions {
        key_prefix: prefix.clone(),
        ..options
    };
    let storage = RedisStorage::connect(&url, options)
        .await
        .expect("connect to redis");
    Some((storage, PrefixCleanup { url, prefix }))
}

/// A write of `{"n":n,"_timestamp":<version>}`, the version given as the message's text.
fn write(key: &str, version: &str, n: u32) -> StorageChange {
    StorageChange::Write {
        key: key.to_owned(),
        value: value(version, n),
        version: version_of(version),
    }
}

/// The version of a `_timestamp` text (seconds).
fn version_of(text: &str) -> Version {
    Version::from_seconds(text.parse().expect("version")).expect("version in range")
}

fn value(version: &str, n: u32) -> String {
    format!(r#"{{"n":{n},"_timestamp":{version}}}"#)
}

fn delete(key: &str, version: &str) -> StorageChange {
    StorageChange::Delete {
        key: key.to_owned(),
        version: version_of(version),
    }
}

async fn raw_get(storage: &RedisStorage, redis_key: &str) -> Option<String> {
    storage.connection().get(redis_key).await.expect("raw get")
}

/// The version text of the tombstone of `key`, if there is one.
async fn tombstone(storage: &RedisStorage, key: &str) -> Option<String> {
    storage
        .connection()
        .hget(storage.tombstones_key(), key)
        .await
        .expect("hget")
}

/// How many milliseconds the tombstone of `key` has left, by the server's clock.
async fn tombstone_ttl_ms(storage: &RedisStorage, key: &str) -> Option<i64> {
    let mut connection = storage.connection();
    let expiry: Option<f64> = connection
        .zscore(storage.tombstone_expiries_key(), key)
        .await
        .expect("zscore");
    let (seconds, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .expect("time");
    expiry.map(|expiry| expiry as i64 - (seconds * 1000 + micros / 1000))
}

/// How many tombstones and expiry entries there are.
async fn tombstone_counts(storage: &RedisStorage) -> (usize, usize) {
    let mut connection = storage.connection();
    let tombstones: usize = connection
        .hlen(storage.tombstones_key())
        .await
        .expect("hlen");
    let expiries: usize = connection
        .zcard(storage.tombstone_expiries_key())
        .await
        .expect("zcard");
    (tombstones, expiries)
}

#[tokio::test]
async fn reader_conformance() {
    let Some((storage, _cleanup)) = storage("redis_conformance").await else {
        return;
    };
    let mut connection = storage.connection();
    for (key, value) in FIXTURE {
        let _: () = connection
            .set(storage.redis_key(key), *value)
            .await
            .expect("set fixture");
    }
    conformance::run_reader_cases(&storage, false).await;
}

/// The writer cases of the storage contract: versioned writes and deletes, out of order,
/// redelivered.
#[tokio::test]
async fn writer_conformance() {
    let Some((storage, _cleanup)) = storage("redis_writer_conformance").await else {
        return;
    };
    conformance::run_writer_cases(&storage).await;
}

#[tokio::test]
async fn keys_carry_the_prefix_and_kv() {
    let Some((storage, cleanup)) = storage("redis_keys").await else {
        return;
    };
    assert_eq!(
        storage.redis_key("message:2"),
        format!("{}kv:message:2", cleanup.prefix)
    );
    assert_eq!(
        storage.tombstones_key(),
        format!("{}pubsync:tombstones", cleanup.prefix)
    );
    assert_eq!(
        storage.tombstone_expiries_key(),
        format!("{}pubsync:tombstone-expiries", cleanup.prefix)
    );
    let change = write("message:2", "1700000000.000001", 1);
    assert_eq!(storage.apply(vec![change]).await.expect("apply"), 1);
    assert_eq!(
        raw_get(&storage, &format!("{}kv:message:2", cleanup.prefix)).await,
        Some(value("1700000000.000001", 1))
    );
}

#[tokio::test]
async fn apply_loads_the_script_when_the_server_has_forgotten_it() {
    let Some((storage, _cleanup)) = storage("redis_script_flush").await else {
        return;
    };
    // Every client of this server loses its cached scripts; the driver's and ours reload them.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut storage.connection())
        .await
        .expect("script flush");
    let change = write("message:1", "1700000000.000001", 1);
    assert_eq!(storage.apply(vec![change]).await.expect("apply"), 1);
    assert_eq!(
        storage.get("message:1").await.expect("get"),
        Some(value("1700000000.000001", 1))
    );
}

#[tokio::test]
async fn delete_then_older_write_stays_deleted() {
    let Some((storage, _cleanup)) = storage("redis_delete_older").await else {
        return;
    };
    let key = "message:1";
    storage
        .apply(vec![write(key, "1700000000.000001", 1)])
        .await
        .expect("apply");
    assert_eq!(
        storage
            .apply(vec![delete(key, "1700000000.000003")])
            .await
            .expect("apply"),
        1
    );
    assert_eq!(storage.get(key).await.expect("get"), None);
    // The tombstone holds the delete's version as sent, with the TTL.
    assert_eq!(
        tombstone(&storage, key).await.as_deref(),
        Some("1700000000.000003")
    );
    let ttl_ms = tombstone_ttl_ms(&storage, key).await.expect("expiry");
    assert!(
        ttl_ms > 24 * 3600 * 1000 - 60_000 && ttl_ms <= 24 * 3600 * 1000,
        "tombstone ttl {ttl_ms} ms"
    );

    assert_eq!(
        storage
            .apply(vec![write(key, "1700000000.000002", 2)])
            .await
            .expect("apply"),
        0
    );
    assert_eq!(storage.get(key).await.expect("get"), None);
    // Tombstones live outside `kv:`, so scans do not see them.
    let page = storage.scan("*", 100, 0).await.expect("scan");
    assert!(page.keys.is_empty(), "{:?}", page.keys);
}

#[tokio::test]
async fn delete_then_newer_write_is_applied() {
    let Some((storage, _cleanup)) = storage("redis_delete_newer").await else {
        return;
    };
    let key = "message:1";
    // A delete of a key never written still leaves its tombstone.
    assert_eq!(
        storage
            .apply(vec![delete(key, "1700000000.000002")])
            .await
            .expect("apply"),
        1
    );
    assert_eq!(
        storage
            .apply(vec![write(key, "1700000000.000003", 3)])
            .await
            .expect("apply"),
        1
    );
    assert_eq!(
        storage.get(key).await.expect("get"),
        Some(value("1700000000.000003", 3))
    );
    assert_eq!(
        tombstone(&storage, key).await,
        None,
        "a newer write removes the tombstone"
    );
}

#[tokio::test]
async fn versions_one_microsecond_apart_are_ordered() {
    let Some((storage, _cleanup)) = storage("redis_microsecond").await else {
        return;
    };
    // Late in a second, where a double has the fewest bits left for the fraction; and the
    // 17-digit form PHP's json_encode gives microtime(true) (`%.17g` of a microsecond time).
    for (key, earlier, later, latest) in [
        (
            "a:1",
            "1799999999.999997",
            "1799999999.999998",
            "1799999999.999999",
        ),
        (
            "b:1",
            "1599741494.2676899",
            "1599741494.2676909",
            "1599741494.2676921",
        ),
    ] {
        assert_eq!(
            storage
                .apply(vec![write(key, later, 2)])
                .await
                .expect("apply"),
            1
        );
        assert_eq!(
            storage
                .apply(vec![write(key, earlier, 1)])
                .await
                .expect("apply"),
            0,
            "{earlier} after {later}"
        );
        assert_eq!(
            storage
                .apply(vec![delete(key, latest)])
                .await
                .expect("apply"),
            1
        );
        let tombstone = tombstone(&storage, key).await.expect("tombstone");
        assert_eq!(
            tombstone.parse::<f64>().expect("number"),
            latest.parse::<f64>().expect("number"),
            "the tombstone {tombstone} keeps the version {latest} to the last bit"
        );
        assert_eq!(
            storage
                .apply(vec![write(key, later, 2)])
                .await
                .expect("apply"),
            0,
            "{later} after the delete at {latest}"
        );
        assert_eq!(storage.get(key).await.expect("get"), None);
    }
}

#[tokio::test]
async fn stored_values_keep_their_text_and_their_timestamp_is_found() {
    let Some((storage, _cleanup)) = storage("redis_value_text").await else {
        return;
    };
    // Stored exactly as given, whatever the spacing, key order or nesting.
    let spaced =
        r#"{ "_timestamp" : 1700000000.000005, "name": "ä \" '", "nested": {"_timestamp": 1} }"#;
    let change = StorageChange::Write {
        key: "x:1".into(),
        value: spaced.into(),
        version: version_of("1700000000.000005"),
    };
    assert_eq!(storage.apply(vec![change]).await.expect("apply"), 1);
    assert_eq!(
        storage.get("x:1").await.expect("get").as_deref(),
        Some(spaced)
    );

    // The script reads the last `_timestamp` of the text (above: the nested 1). The original
    // and our message builder put the top-level one last, as here: an older change then stays
    // out even though a nested `_timestamp` comes first.
    let last = r#"{"nested":{"_timestamp":1},"_timestamp":1700000000.000005}"#;
    let change = StorageChange::Write {
        key: "y:1".into(),
        value: last.into(),
        version: version_of("1700000000.000005"),
    };
    assert_eq!(storage.apply(vec![change]).await.expect("apply"), 1);
    assert_eq!(
        storage
            .apply(vec![write("y:1", "1700000000.000004", 4)])
            .await
            .expect("apply"),
        0
    );

    // A value without `_timestamp` (written by something else) is older than any change.
    let _: () = storage
        .connection()
        .set(storage.redis_key("z:1"), r#"{"legacy":true}"#)
        .await
        .expect("set");
    assert_eq!(
        storage
            .apply(vec![write("z:1", "1.5", 1)])
            .await
            .expect("apply"),
        1
    );
}

#[tokio::test]
async fn chunks_of_changes_and_of_keys() {
    let options = RedisStorageOptions {
        chunk_size: 7,
        ..RedisStorageOptions::default()
    };
    let Some((storage, _cleanup)) = storage_with("redis_chunks", options).await else {
        return;
    };
    let changes: Vec<StorageChange> = (0..50)
        .map(|i| write(&format!("k:{i}"), "1700000000.000001", i))
        .collect();
    assert_eq!(storage.apply(changes).await.expect("apply"), 50);

    // More keys than one MGET carries, in an order of their own, with absent keys and repeats.
    let keys: Vec<String> = (0..2600)
        .map(|i| format!("k:{}", (i * 7919) % 60))
        .collect();
    let values = storage.get_multi(&keys).await.expect("get_multi");
    assert_eq!(values.len(), keys.len());
    for (key, got) in keys.iter().zip(&values) {
        let i: u32 = key[2..].parse().expect("index");
        let expected = (i < 50).then(|| value("1700000000.000001", i));
        assert_eq!(got, &expected, "{key}");
    }
}

#[tokio::test]
async fn one_chunk_larger_than_luas_unpack_limit() {
    let options = RedisStorageOptions {
        chunk_size: 10_000,
        ..RedisStorageOptions::default()
    };
    let Some((storage, _cleanup)) = storage_with("redis_big_chunk", options).await else {
        return;
    };
    // 9,000 changes in one script call: more keys, values and deletes than one unpack() takes.
    let mut changes: Vec<StorageChange> = (0..6000)
        .map(|i| write(&format!("k:{i}"), "1700000000.000001", i))
        .collect();
    changes.extend((0..3000).map(|i| delete(&format!("k:{i}"), "1700000000.000002")));
    assert_eq!(storage.apply(changes).await.expect("apply"), 9000);
    let keys: Vec<String> = (0..6000).map(|i| format!("k:{i}")).collect();
    let values = storage.get_multi(&keys).await.expect("get_multi");
    assert!(values[..3000].iter().all(Option::is_none));
    assert!(values[3000..].iter().all(Option::is_some));
    // Writing the deleted ones back, newer, removes their tombstones.
    let changes: Vec<StorageChange> = (0..3000)
        .map(|i| write(&format!("k:{i}"), "1700000000.000003", i))
        .collect();
    assert_eq!(storage.apply(changes).await.expect("apply"), 3000);
    let page = storage.scan("*", 10_000, 0).await.expect("scan");
    assert_eq!(page.keys.len(), 6000);
    let (tombstones, _) = tombstone_counts(&storage).await;
    assert_eq!(tombstones, 0, "{tombstones} tombstones left");
}

#[tokio::test]
async fn tombstones_expire_after_the_ttl() {
    let options = RedisStorageOptions {
        tombstone_ttl: Duration::from_millis(300),
        ..RedisStorageOptions::default()
    };
    let Some((storage, _cleanup)) = storage_with("redis_tombstone_ttl", options).await else {
        return;
    };
    // 300 deletes and the one watched, last in the expiry order (same time, member order).
    let mut changes: Vec<StorageChange> = (0..300)
        .map(|i| delete(&format!("a:{i}"), "1700000000.000003"))
        .collect();
    changes.push(delete("z:1", "1700000000.000003"));
    assert_eq!(storage.apply(changes).await.expect("apply"), 301);
    assert_eq!(tombstone_counts(&storage).await, (301, 301));
    let ttl_ms = tombstone_ttl_ms(&storage, "z:1").await.expect("expiry");
    assert!(ttl_ms > 0 && ttl_ms <= 300, "tombstone ttl {ttl_ms} ms");
    assert_eq!(
        storage
            .apply(vec![write("z:1", "1700000000.000002", 2)])
            .await
            .expect("apply"),
        0,
        "the tombstone holds within its TTL"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    // One change prunes at most 101 expired tombstones, not z:1's: it is past its expiry, so it
    // counts as gone all the same, as a key with PX would be, and the write removes it.
    assert_eq!(
        storage
            .apply(vec![write("z:1", "1700000000.000002", 2)])
            .await
            .expect("apply"),
        1,
        "an expired tombstone does not hold an older write back"
    );
    assert_eq!(tombstone(&storage, "z:1").await, None);
    let (tombstones, _) = tombstone_counts(&storage).await;
    assert_eq!(tombstones, 300 - 101);
    // The next calls prune the rest, expiry entries included.
    for i in 0..3 {
        storage
            .apply(vec![write(&format!("b:{i}"), "1700000000.000001", 1)])
            .await
            .expect("apply");
    }
    assert_eq!(tombstone_counts(&storage).await, (0, 0));
}

#[tokio::test]
async fn apply_unchecked_writes_and_deletes_in_order() {
    let Some((storage, _cleanup)) = storage("redis_unchecked").await else {
        return;
    };
    let changes = vec![
        write("a:1", "2", 2),
        write("b:1", "2", 2),
        delete("a:1", "3"),
        // Older, applied anyway: no checks here.
        write("b:1", "1", 1),
        write("c:1", "1", 1),
    ];
    assert_eq!(storage.apply_unchecked(changes).await.expect("apply"), 5);
    let values = storage
        .get_multi(&["a:1".into(), "b:1".into(), "c:1".into()])
        .await
        .expect("get_multi");
    assert_eq!(values, vec![None, Some(value("1", 1)), Some(value("1", 1))]);
}

/// A small deterministic generator (xorshift64*), so a failing history can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_writers_end_with_the_newest_change_of_each_key() {
    let Some((first, cleanup)) = storage("redis_concurrent").await else {
        return;
    };
    // A second storage with its own connection, under the same prefix.
    let url = require(Service::Redis).expect("redis");
    let second = RedisStorage::connect(
        &url,
        RedisStorageOptions::with_key_prefix(cleanup.prefix.clone()),
    )
    .await
    .expect("connect");

    for seed in [0x9E37_79B9_7F4A_7C15_u64, 42, 7_777_777] {
        let mut random = Random(seed);
        let round = seed % 1000;
        // Per key, 30 changes 1 µs apart, a quarter of them deletes.
        let mut history = Vec::new();
        let mut newest: HashMap<String, Option<String>> = HashMap::new();
        for k in 0..40 {
            let key = format!("product:{round}:{k}");
            for step in 0..30_u32 {
                let version = format!("1700000000.{:06}", 100 + step);
                let change = if random.below(4) == 0 {
                    delete(&key, &version)
                } else {
                    write(&key, &version, step)
                };
                // Steps grow, so the last one seen per key is its newest.
                newest.insert(
                    key.clone(),
                    match &change {
                        StorageChange::Write { value, .. } => Some(value.clone()),
                        StorageChange::Delete { .. } => None,
                    },
                );
                history.push(change);
            }
        }
        random.shuffle(&mut history);
        let total = history.len();
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for (i, change) in history.into_iter().enumerate() {
            if i % 2 == 0 {
                left.push(change);
            } else {
                right.push(change);
            }
        }

        let run = |storage: RedisStorage, mut changes: Vec<StorageChange>, seed: u64| {
            tokio::spawn(async move {
                let mut random = Random(seed);
                let mut applied = 0;
                while !changes.is_empty() {
                    let take = (1 + random.below(17)).min(changes.len());
                    let chunk: Vec<StorageChange> = changes.drain(..take).collect();
                    applied += storage.apply(chunk).await.expect("apply");
                    tokio::task::yield_now().await;
                }
                applied
            })
        };
        let left = run(first.clone(), left, seed ^ 1);
        let right = run(second.clone(), right, seed ^ 2);
        let applied = left.await.expect("left") + right.await.expect("right");
        assert!(
            applied >= newest.len() && applied <= total,
            "{applied} applied of {total}"
        );

        let keys: Vec<String> = newest.keys().cloned().collect();
        let values = first.get_multi(&keys).await.expect("get_multi");
        for (key, got) in keys.iter().zip(values) {
            assert_eq!(got, newest[key], "{key} (seed {seed})");
        }
    }
}

#[tokio::test]
async fn scan_pages_with_limit_and_cursor() {
    let Some((storage, _cleanup)) = storage("redis_scan").await else {
        return;
    };
    let mut changes: Vec<StorageChange> = (0..250)
        .map(|i| write(&format!("scan:{i}"), "1700000000.000001", i))
        .collect();
    changes.extend((0..20).map(|i| write(&format!("other:{i}"), "1700000000.000001", i)));
    // A deleted key leaves a tombstone, which no scan returns.
    changes.push(delete("scan:0", "1700000000.000002"));
    storage.apply(changes).await.expect("apply");

    let mut found = BTreeSet::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = storage.scan("scan:*", 50, cursor).await.expect("scan");
        pages += 1;
        assert!(
            page.cursor == 0 || page.keys.len() >= 50,
            "a page ends early only with the scan: {} keys, cursor {}",
            page.keys.len(),
            page.cursor
        );
        for key in page.keys {
            assert!(key.starts_with("scan:"), "{key}");
            found.insert(key);
        }
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
        assert!(pages < 1000, "the scan does not end");
    }
    let expected: BTreeSet<String> = (1..250).map(|i| format!("scan:{i}")).collect();
    assert_eq!(found, expected);
    assert!(
        pages >= 2,
        "250 keys in pages of 50 take more than one page"
    );

    // A limit of 0 still takes one step, as the original's do-while.
    let page = storage.scan("other:*", 0, 0).await.expect("scan");
    assert!(page.keys.iter().all(|key| key.starts_with("other:")));
}

#[tokio::test]
async fn the_global_prefix_isolates_two_storages() {
    let Some((shop_a, _cleanup_a)) = storage("redis_prefix_a").await else {
        return;
    };
    let Some((shop_b, _cleanup_b)) = storage("redis_prefix_b").await else {
        return;
    };
    shop_a
        .apply(vec![write("message:1", "1700000000.000002", 1)])
        .await
        .expect("apply");
    // An older write in B is not held back by A's newer value, nor by A's tombstone.
    shop_b
        .apply(vec![write("message:1", "1700000000.000001", 2)])
        .await
        .expect("apply");
    shop_a
        .apply(vec![delete("message:2", "1700000000.000009")])
        .await
        .expect("apply");
    assert_eq!(
        shop_b
            .apply(vec![write("message:2", "1700000000.000001", 3)])
            .await
            .expect("apply"),
        1
    );

    assert_eq!(
        shop_a.get("message:1").await.expect("get"),
        Some(value("1700000000.000002", 1))
    );
    assert_eq!(
        shop_b.get("message:1").await.expect("get"),
        Some(value("1700000000.000001", 2))
    );
    assert_eq!(shop_a.get("message:2").await.expect("get"), None);
    let page_a = shop_a.scan("*", 100, 0).await.expect("scan");
    let page_b = shop_b.scan("*", 100, 0).await.expect("scan");
    let mut keys_b = page_b.keys.clone();
    keys_b.sort();
    assert_eq!(page_a.keys, vec!["message:1".to_owned()]);
    assert_eq!(keys_b, vec!["message:1".to_owned(), "message:2".to_owned()]);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on the loopback refuses connections; no Redis needed.
    let options = RedisStorageOptions {
        reconnect_retries: 0,
        connection_timeout: Duration::from_secs(1),
        ..RedisStorageOptions::default()
    };
    let error = RedisStorage::connect("redis://user:secret@127.0.0.1:1/0", options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(error, StorageError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_without_the_password() {
    let error = RedisStorage::connect(
        "redis://user:secret@127.0.0.1:6379/not-a-db",
        RedisStorageOptions::default(),
    )
    .await
    .expect_err("bad database");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(message.contains("invalid redis url"), "{message}");
    assert!(message.contains("user:***@127.0.0.1"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn a_tls_url_with_credentials_and_database_parses() {
    let address = RedisAddress::parse("rediss://user:pass@host:6380/2").expect("parse");
    assert!(address.tls());
    assert_eq!(address.host(), "host");
    assert_eq!(address.port(), 6380);
    assert_eq!(address.db(), 2);
    assert_eq!(address.username(), Some("user"));
    assert!(address.has_password());
    assert_eq!(address.to_string(), "rediss://user:***@host:6380/2");
    assert!(!format!("{address:?}").contains("pass@"));
}
