//! The cases every [`StorageReader`] passes. An implementation's test stores [`FIXTURE`] by
//! its own means (Redis SET, rows in a storage table), then calls [`run_reader_cases`].

use crate::{StorageError, StorageReader};

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
