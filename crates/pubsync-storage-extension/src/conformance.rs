//! The cases every implementation of the storage contract passes.
//!
//! - Every [`StorageReader`]: an implementation's test stores [`FIXTURE`] by its own means
//!   (Redis SET, rows in a storage table), then calls [`run_reader_cases`].
//! - Every [`KeyValueWriter`]: [`run_writer_cases`] on an empty store (or one without keys of
//!   [`WRITER_RESOURCE`]): the versioned writes and deletes the sync path relies on.

use crate::{KeyValueWriter, StorageChange, StorageError, StorageReader, Version};

/// The resource of the fixture keys; a database storage needs a table for it.
pub const FIXTURE_RESOURCE: &str = "conformance";

/// Key → value pairs the implementation stores before the cases run.
pub const FIXTURE: &[(&str, &str)] = &[
    ("conformance:1", r#"{"name":"one","n":1}"#),
    ("conformance:2", r#"{"name":"two","n":2}"#),
    ("conformance:de:de_de:3", r#"{"name":"drei","n":3}"#),
    ("conformance:unicode-ä", r#"{"name":"ä \" '","n":4}"#),
];

/// Runs every reader case. `unknown_resource_key` is a key whose resource has no storage: for
/// stores that map resources (database) it must fail naming the resource; key-value stores
/// simply do not have it.
pub async fn run_reader_cases<S: StorageReader>(storage: &S, maps_resources: bool) {
    get_returns_stored_values(storage).await;
    get_of_absent_key_is_none(storage).await;
    get_multi_keeps_order_and_absent_keys(storage).await;
    get_multi_of_nothing_is_nothing(storage).await;
    if maps_resources {
        unknown_resource_is_an_error_naming_it(storage).await;
    }
}

/// `get` returns exactly the stored JSON text.
pub async fn get_returns_stored_values<S: StorageReader>(storage: &S) {
    for (key, value) in FIXTURE {
        assert_eq!(
            storage.get(key).await.expect("get").as_deref(),
            Some(*value),
            "get({key})"
        );
    }
}

/// A key that is not stored is `Ok(None)`.
pub async fn get_of_absent_key_is_none<S: StorageReader>(storage: &S) {
    assert_eq!(storage.get("conformance:404").await.expect("get"), None);
}

/// `get_multi` answers in the order asked, with `None` for absent keys and repeats kept.
pub async fn get_multi_keeps_order_and_absent_keys<S: StorageReader>(storage: &S) {
    let keys: Vec<String> = [
        "conformance:2",
        "conformance:404",
        "conformance:1",
        "conformance:de:de_de:3",
        "conformance:2",
    ]
    .map(str::to_owned)
    .to_vec();
    let values = storage.get_multi(&keys).await.expect("get_multi");
    assert_eq!(
        values,
        [
            Some(FIXTURE[1].1),
            None,
            Some(FIXTURE[0].1),
            Some(FIXTURE[2].1),
            Some(FIXTURE[1].1)
        ]
        .map(|v| v.map(str::to_owned))
        .to_vec()
    );
}

/// `get_multi` of no keys is empty and does not fail.
pub async fn get_multi_of_nothing_is_nothing<S: StorageReader>(storage: &S) {
    assert!(storage.get_multi(&[]).await.expect("get_multi").is_empty());
}

/// A resource with no storage table is an error that names the resource.
pub async fn unknown_resource_is_an_error_naming_it<S: StorageReader>(storage: &S) {
    match storage.get("no_such_resource:1").await {
        Err(err @ StorageError::UnknownResource { .. }) => {
            assert!(err.to_string().contains("no_such_resource"), "{err}");
        }
        other => panic!("expected an unknown-resource error, got {other:?}"),
    }
}

/// The resource of the keys the writer cases write; a store must hold none of them before.
pub const WRITER_RESOURCE: &str = "conformance_kv";

/// Runs every case of a [`KeyValueWriter`]: versioned writes and deletes, in order and out of
/// order, redelivered. `store` starts without any key of [`WRITER_RESOURCE`].
pub async fn run_writer_cases<W: KeyValueWriter>(store: &W) {
    newer_then_older_write_keeps_the_newer(store).await;
    delete_then_older_write_stays_deleted(store).await;
    delete_then_newer_write_is_applied(store).await;
    out_of_order_within_one_chunk(store).await;
    a_redelivered_change_is_not_applied_again(store).await;
}

/// The key `name` of the writer cases' resource.
fn writer_key(name: &str) -> String {
    format!("{WRITER_RESOURCE}:{name}")
}

/// The value a write of version `micros` stores: `{"n":n,"_timestamp":<seconds>}`.
pub fn writer_value(micros: i64, n: u32) -> String {
    let seconds = Version::from_micros(micros).as_seconds();
    format!(r#"{{"n":{n},"_timestamp":{seconds:.6}}}"#)
}

fn write(name: &str, micros: i64, n: u32) -> StorageChange {
    StorageChange::Write {
        key: writer_key(name),
        value: writer_value(micros, n),
        version: Version::from_micros(micros),
    }
}

fn delete(name: &str, micros: i64) -> StorageChange {
    StorageChange::Delete {
        key: writer_key(name),
        version: Version::from_micros(micros),
    }
}

/// The versions of the cases: microseconds late in 2023.
const T: i64 = 1_700_000_000_000_000;

async fn apply<W: KeyValueWriter>(store: &W, changes: Vec<StorageChange>) -> usize {
    store.apply(changes).await.expect("apply")
}

async fn get<W: KeyValueWriter>(store: &W, name: &str) -> Option<String> {
    store.get(&writer_key(name)).await.expect("get")
}

/// An older write arriving after a newer one is skipped and not counted.
pub async fn newer_then_older_write_keeps_the_newer<W: KeyValueWriter>(store: &W) {
    assert_eq!(apply(store, vec![write("newer", T + 2, 2)]).await, 1);
    assert_eq!(apply(store, vec![write("newer", T + 1, 1)]).await, 0);
    assert_eq!(get(store, "newer").await, Some(writer_value(T + 2, 2)));
}

/// A delete removes the key, and a write older than the delete does not bring it back.
pub async fn delete_then_older_write_stays_deleted<W: KeyValueWriter>(store: &W) {
    assert_eq!(apply(store, vec![write("deleted", T + 1, 1)]).await, 1);
    assert_eq!(apply(store, vec![delete("deleted", T + 3)]).await, 1);
    assert_eq!(get(store, "deleted").await, None);
    assert_eq!(apply(store, vec![write("deleted", T + 2, 2)]).await, 0);
    assert_eq!(get(store, "deleted").await, None);
}

/// A delete of a key never written counts, and a newer write after it is applied.
pub async fn delete_then_newer_write_is_applied<W: KeyValueWriter>(store: &W) {
    assert_eq!(apply(store, vec![delete("revived", T + 2)]).await, 1);
    assert_eq!(apply(store, vec![write("revived", T + 3, 3)]).await, 1);
    assert_eq!(get(store, "revived").await, Some(writer_value(T + 3, 3)));
}

/// Within one call, each key ends with its newest change, whatever the order they come in;
/// only the changes newer than everything before them for their key count.
pub async fn out_of_order_within_one_chunk<W: KeyValueWriter>(store: &W) {
    let changes = vec![
        write("a", T + 5, 5),
        write("b", T + 1, 1),
        delete("b", T + 2),
        write("a", T + 3, 3),
        write("c", T + 1, 1),
        delete("a", T + 4),
        write("b", T + 3, 3),
        delete("c", T + 3),
        write("c", T + 2, 2),
    ];
    // a: w5 only; b: w1, d2, w3; c: w1, d3.
    assert_eq!(apply(store, changes).await, 6);
    let keys = ["a", "b", "c"].map(writer_key).to_vec();
    assert_eq!(
        store.get_multi(&keys).await.expect("get_multi"),
        [
            Some(writer_value(T + 5, 5)),
            Some(writer_value(T + 3, 3)),
            None
        ]
    );
}

/// A change of the version the key holds (a redelivered message) is not applied again.
pub async fn a_redelivered_change_is_not_applied_again<W: KeyValueWriter>(store: &W) {
    let first = write("redelivered", T + 1, 1);
    assert_eq!(apply(store, vec![first.clone()]).await, 1);
    assert_eq!(apply(store, vec![first]).await, 0);
    let removal = delete("redelivered", T + 2);
    assert_eq!(apply(store, vec![removal.clone()]).await, 1);
    assert_eq!(apply(store, vec![removal]).await, 0);
}
