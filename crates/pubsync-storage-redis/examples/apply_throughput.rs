//! Keys per second of `apply` (versioned, one Lua script call per 1,000 changes) against raw
//! pipelined `SET` and `apply_unchecked` (`MSET`) of the same data.
//!
//! ```text
//! cargo run --release -p pubsync-storage-redis --example apply_throughput [keys] [rounds]
//! ```
//!
//! Uses `PUBSYNC_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/0`) under a fresh key prefix,
//! removed at the end. Prints the median of each measure over the rounds.

use std::time::Instant;

use pubsync_storage_extension::{KeyValueWriter as _, StorageChange, Version};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::{Service, require, unique_name};

const CHUNK: usize = 1000;

fn changes(keys: usize, round: usize, step: usize) -> Vec<StorageChange> {
    // Each (round, step) gets versions above every earlier one.
    let micros = 1 + round * 10 + step;
    let version = Version::from_micros(1_700_000_000_000_000 + micros as i64);
    let version_text = format!("{:.6}", version.as_seconds());
    (0..keys)
        .map(|i| StorageChange::Write {
            key: format!("product_abstract:de:de_de:{i}"),
            value: format!(
                r#"{{"id_product_abstract":{i},"sku":"sku-{i}","name":"Product {i}","price":1999,"attributes":{{"color":"blue"}},"_timestamp":{version_text}}}"#
            ),
            version,
        })
        .collect()
}

async fn clear(storage: &RedisStorage, prefix: &str) {
    let mut connection = storage.connection();
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
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

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().map_or(10_000, |a| a.parse().expect("keys"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("rounds"));
    let Some(url) = require(Service::Redis) else {
        return;
    };
    let prefix = format!("{}:", unique_name("bench_apply"));
    let storage = RedisStorage::connect(&url, RedisStorageOptions::with_key_prefix(&prefix))
        .await
        .expect("connect");

    let measure = |started: Instant| keys as f64 / started.elapsed().as_secs_f64();
    let (mut fresh, mut update, mut stale, mut raw, mut unchecked) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        clear(&storage, &prefix).await;

        // apply into an empty store: GET key (no tombstone hash yet), SET.
        let data = changes(keys, round, 1);
        let started = Instant::now();
        let applied = storage.apply(data).await.expect("apply");
        fresh.push(measure(started));
        assert_eq!(applied, keys);

        // apply over older values: GET key, find `_timestamp`, SET.
        let data = changes(keys, round, 2);
        let started = Instant::now();
        let applied = storage.apply(data).await.expect("apply");
        update.push(measure(started));
        assert_eq!(applied, keys);

        // apply of stale changes: GET key, find `_timestamp`, nothing written.
        let data = changes(keys, round, 0);
        let started = Instant::now();
        let applied = storage.apply(data).await.expect("apply");
        stale.push(measure(started));
        assert_eq!(applied, 0);

        // Raw pipelined SET, 1,000 per pipeline.
        let data = changes(keys, round, 3);
        let mut connection = storage.connection();
        let started = Instant::now();
        for chunk in data.chunks(CHUNK) {
            let mut pipeline = redis::pipe();
            for change in chunk {
                if let StorageChange::Write { key, value, .. } = change {
                    pipeline.set(storage.redis_key(key), value).ignore();
                }
            }
            let _: () = pipeline
                .query_async(&mut connection)
                .await
                .expect("pipeline");
        }
        raw.push(measure(started));

        // apply_unchecked: one MSET per 1,000.
        let data = changes(keys, round, 4);
        let started = Instant::now();
        for chunk in data.chunks(CHUNK) {
            storage
                .apply_unchecked(chunk.to_vec())
                .await
                .expect("apply_unchecked");
        }
        unchecked.push(measure(started));
    }
    clear(&storage, &prefix).await;

    println!("{keys} writes in chunks of {CHUNK}, median of {rounds} rounds, keys/s:");
    println!("  apply, empty store           {:>10.0}", median(fresh));
    println!("  apply, newer over older      {:>10.0}", median(update));
    println!("  apply, all stale (no writes) {:>10.0}", median(stale));
    println!("  raw pipelined SET            {:>10.0}", median(raw));
    println!("  apply_unchecked (MSET)       {:>10.0}", median(unchecked));
}
