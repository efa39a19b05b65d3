//! The client layer of pubsync: [`StorageClient`], which frontends (and module readers such as
//! the Hello module's) read published data through, as the original's `StorageClient`.
//!
//! The client builds keys with the modules' key builders, reads through any
//! [`StorageReader`] (Redis, or the storage tables themselves) and decodes the stored JSON.
//! Architecture invariant: this crate depends only on the storage contract and the shared
//! layer, never on diesel, a broker or the backend, so a frontend links nothing it does not read
//! with.
//!
//! Deliberately not here: writing (the client is handed a reader only), and the original's
//! per-URL key cache, which a database storage cannot serve anyway.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

use pubsync_shared::key::{KeyBuilders, SynchronizationData};
use pubsync_storage_extension::{StorageError, StorageReader};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What went wrong reading through the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The storage failed (unreachable, unknown resource, failed query).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The value stored under `key` is not the JSON expected.
    #[error("value stored under key {key:?} is not the expected json: {source}")]
    Decode {
        /// The key whose value could not be decoded.
        key: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Storage(error) => error.is_transient(),
            Self::Decode { .. } => false,
        }
    }
}

/// Reads storage through a [`StorageReader`], building keys with [`KeyBuilders`] and decoding
/// values as JSON.
///
/// Unlike the original, whose `get` hands back the raw string when the stored value is not
/// JSON, a value that does not decode is a [`ClientError::Decode`] naming the key;
/// [`get_raw`](Self::get_raw) returns the text as stored.
#[derive(Debug, Clone)]
pub struct StorageClient<S> {
    storage: S,
    key_builders: KeyBuilders,
}

impl<S: StorageReader> StorageClient<S> {
    /// A client reading `storage`, with keys built by `key_builders`.
    pub fn new(storage: S, key_builders: KeyBuilders) -> Self {
        Self {
            storage,
            key_builders,
        }
    }

    /// The storage read from.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The key builders in use.
    pub fn key_builders(&self) -> &KeyBuilders {
        &self.key_builders
    }

    /// The storage key of `data` within `resource` (`message:2`).
    pub fn key(&self, resource: &str, data: &SynchronizationData) -> String {
        self.key_builders.generate_key(resource, data)
    }

    /// The JSON text stored under `key`, as stored; `None` when absent.
    pub async fn get_raw(&self, key: &str) -> Result<Option<String>, ClientError> {
        Ok(self.storage.get(key).await?)
    }

    /// The value stored under `key`, decoded; `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Value>, ClientError> {
        self.get_as(key).await
    }

    /// The value stored under `key`, decoded as `T`; `None` when absent.
    pub async fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        self.get_raw(key)
            .await?
            .map(|text| decode(key, &text))
            .transpose()
    }

    /// The JSON texts stored under `keys`, in the order asked, `None` for each absent key.
    pub async fn get_multi_raw(&self, keys: &[String]) -> Result<Vec<Option<String>>, ClientError> {
        Ok(self.storage.get_multi(keys).await?)
    }

    /// The values stored under `keys`, decoded, in the order asked, `None` for each absent
    /// key. The first value that does not decode fails the whole call, naming its key.
    pub async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<Value>>, ClientError> {
        self.get_multi_as(keys).await
    }

    /// The values stored under `keys`, decoded as `T`, as [`get_multi`](Self::get_multi).
    pub async fn get_multi_as<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<T>>, ClientError> {
        let texts = self.get_multi_raw(keys).await?;
        keys.iter()
            .zip(texts)
            .map(|(key, text)| text.map(|text| decode(key, &text)).transpose())
            .collect()
    }
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T, ClientError> {
    serde_json::from_str(text).map_err(|source| ClientError::Decode {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use pubsync_shared::key::KeyBuilder;
    use pubsync_storage_extension::ScanPage;
    use serde_json::json;

    use super::*;

    /// A map standing in for a store: a test double of our own contract.
    struct MemoryStorage(HashMap<String, String>);

    impl MemoryStorage {
        fn with(entries: &[(&str, &str)]) -> Self {
            Self(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        }
    }

    impl StorageReader for MemoryStorage {
        async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
            if key.starts_with("unknown:") {
                return Err(StorageError::UnknownResource {
                    resource: "unknown".into(),
                    key: key.into(),
                    table: "spy_unknown_storage".into(),
                });
            }
            Ok(self.0.get(key).cloned())
        }

        async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        }

        async fn scan(&self, _: &str, _: usize, _: u64) -> Result<ScanPage, StorageError> {
            Err(StorageError::Unsupported {
                operation: "scan",
                backend: "memory",
            })
        }
    }

    fn client() -> StorageClient<MemoryStorage> {
        StorageClient::new(
            MemoryStorage::with(&[
                ("message:1", r#"{"name":"one","message":"hello"}"#),
                ("message:2", r#"{"name":"two"}"#),
                ("message:broken", "{not json"),
            ]),
            KeyBuilders::new(KeyBuilder::default()),
        )
    }

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[tokio::test]
    async fn get_decodes_and_absent_is_none() {
        let client = client();
        assert_eq!(
            client.get("message:1").await.unwrap(),
            Some(json!({"name": "one", "message": "hello"}))
        );
        assert_eq!(client.get("message:404").await.unwrap(), None);
        assert_eq!(
            client.get_raw("message:2").await.unwrap().as_deref(),
            Some(r#"{"name":"two"}"#)
        );
    }

    #[tokio::test]
    async fn get_multi_keeps_order_absent_keys_and_repeats() {
        let client = client();
        let values = client
            .get_multi(&keys(&[
                "message:2",
                "message:404",
                "message:1",
                "message:2",
            ]))
            .await
            .unwrap();
        assert_eq!(
            values,
            vec![
                Some(json!({"name": "two"})),
                None,
                Some(json!({"name": "one", "message": "hello"})),
                Some(json!({"name": "two"})),
            ]
        );
        assert!(client.get_multi(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn decode_errors_name_the_key() {
        let client = client();
        let err = client.get("message:broken").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Decode { key, .. } if key == "message:broken"),
            "{err}"
        );
        assert!(err.to_string().contains("message:broken"), "{err}");
        let err = client
            .get_multi(&keys(&["message:1", "message:broken"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Decode { key, .. } if key == "message:broken"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn typed_reads_name_the_key_when_the_shape_is_wrong() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Message {
            name: String,
        }
        let client = client();
        assert_eq!(
            client.get_as::<Message>("message:2").await.unwrap(),
            Some(Message { name: "two".into() })
        );
        assert_eq!(client.get_as::<Message>("message:404").await.unwrap(), None);
        let err = client.get_as::<Vec<u8>>("message:1").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Decode { key, .. } if key == "message:1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn storage_errors_pass_through() {
        let err = client().get("unknown:1").await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Storage(StorageError::UnknownResource { .. })
            ),
            "{err}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn reads_are_send_so_servers_can_spawn_them() {
        fn assert_send<T: Send>(_: T) {}
        let client = client();
        assert_send(client.get("message:1"));
        assert_send(client.get_multi(&[]));
        assert_send(client.get_as::<Value>("message:1"));
    }

    #[test]
    fn keys_are_built_with_the_builders() {
        let client = client();
        assert_eq!(
            client.key("message", &SynchronizationData::reference("2")),
            "message:2"
        );
        let data = SynchronizationData {
            reference: Some("100".into()),
            store: Some("DE".into()),
            locale: Some("de_DE".into()),
        };
        assert_eq!(
            client.key("product_abstract", &data),
            "product_abstract:de:de_de:100"
        );
    }
}
