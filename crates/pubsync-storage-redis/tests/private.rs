//! The Redis storage against Redis servers of the test's own: one listening only for TLS
//! with a certificate of a CA the test makes (`rediss://…?cacert=`), and one restarted
//! without persistence, whose marker is gone with its keys.

use pubsync_storage_extension::{KeyValueWriter, StorageChange, StorageReader, Version};
use pubsync_storage_redis::{RedisStorage, RedisStorageOptions};
use pubsync_test_support::private::PrivateRedis;
use pubsync_test_support::tls::TestCa;
use pubsync_test_support::{Service, require};

fn write(key: &str) -> StorageChange {
    StorageChange::Write {
        key: key.to_owned(),
        value: r#"{"name":"tls","_timestamp":1.5}"#.to_owned(),
        version: Version::from_seconds(1.5).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_test_ca_reads_and_writes_and_refuses_a_server_it_cannot_trust() {
    // The shared server's presence says redis-server is installed on this machine.
    if require(Service::Redis).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let redis = PrivateRedis::start(dir.path(), Some(&ca), false);
    let url = format!("{}?cacert={}", redis.url(), ca.ca_cert.display());

    let storage = RedisStorage::connect(&url, RedisStorageOptions::default())
        .await
        .expect("connecting with TLS");
    assert!(storage.address().tls());
    assert_eq!(storage.apply(vec![write("message:1")]).await.unwrap(), 1);
    assert_eq!(
        storage.get("message:1").await.unwrap().as_deref(),
        Some(r#"{"name":"tls","_timestamp":1.5}"#)
    );

    let error = RedisStorage::connect(&redis.url(), RedisStorageOptions::default())
        .await
        .expect_err("the system's CAs do not know the test CA");
    assert!(format!("{error}").contains("certif"), "{error}");
    let plain = format!("redis://127.0.0.1:{}/0", redis.port());
    assert!(
        RedisStorage::connect(&plain, RedisStorageOptions::default())
            .await
            .is_err(),
        "no plain connection to a TLS port"
    );
    let missing = format!("{}?cacert=/nonexistent/ca.pem", redis.url());
    let error = RedisStorage::connect(&missing, RedisStorageOptions::default())
        .await
        .expect_err("no such CA file");
    assert!(
        format!("{error}").contains("/nonexistent/ca.pem"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_persistence_loses_the_marker_with_the_keys_and_one_with_keeps_both() {
    if require(Service::Redis).is_none() {
        return;
    }
    for persistent in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let redis = PrivateRedis::start(dir.path(), None, persistent);
        let storage = RedisStorage::connect(&redis.url(), RedisStorageOptions::default())
            .await
            .unwrap();
        assert_eq!(storage.read_marker().await.unwrap(), None);
        storage.write_marker("token-1").await.unwrap();
        storage.apply(vec![write("message:1")]).await.unwrap();
        redis.restart();
        // The connection manager reconnects by itself; the first command may see the drop.
        let mut marker = storage.read_marker().await;
        if marker.is_err() {
            marker = storage.read_marker().await;
        }
        let kept = storage.get("message:1").await.unwrap().is_some();
        if persistent {
            assert_eq!(marker.unwrap().as_deref(), Some("token-1"));
            assert!(kept);
        } else {
            assert_eq!(marker.unwrap(), None, "the marker went with the data");
            assert!(!kept);
        }
    }
}
