//! The product module's reader: abstract products from product abstract storage, by id or by
//! SKU (the original's `ProductStorageClient::findProductAbstractStorageData` and
//! `findProductAbstractStorageDataByMapping`).

use pubsync_client::{ClientError, StorageClient};
use pubsync_shared::key::SynchronizationData;
use pubsync_storage_extension::StorageReader;
use serde_json::Value;
use shop_shared::transfer::ProductAbstractStorageTransfer;

use crate::{RESOURCE, SKU_MAPPING};

/// Reads published abstract products through a [`StorageClient`], whichever storage it reads.
#[derive(Debug, Clone)]
pub struct ProductAbstractStorageReader<S> {
    client: StorageClient<S>,
}

impl<S: StorageReader> ProductAbstractStorageReader<S> {
    /// A reader over `client`.
    pub fn new(client: StorageClient<S>) -> Self {
        Self { client }
    }

    /// The client read through.
    pub fn client(&self) -> &StorageClient<S> {
        &self.client
    }

    /// The storage key of product `id` in `store` and `locale`:
    /// `product_abstract:<store>:<locale>:<id>`, store and locale lower-cased as the key
    /// builder does (`product_abstract:de:de_de:1`).
    pub fn product_abstract_key(&self, store: &str, locale: &str, id: i64) -> String {
        self.client.key(
            RESOURCE,
            &SynchronizationData {
                reference: Some(id.to_string()),
                ..store_locale(store, locale)
            },
        )
    }

    /// The alias key of the product with `sku` in `store` and `locale`:
    /// `product_abstract:<store>:<locale>:sku:<sku>`, the SKU escaped as the key builder
    /// escapes references (`product_abstract:de:de_de:sku:ab-001` for `AB 001`).
    pub fn sku_key(&self, store: &str, locale: &str, sku: &str) -> String {
        self.client.key_builders().generate_mapping_key(
            RESOURCE,
            SKU_MAPPING,
            sku,
            &store_locale(store, locale),
        )
    }

    /// The published product `id` in `store` and `locale`, or `None` when there is none.
    pub async fn find_product_abstract(
        &self,
        store: &str,
        locale: &str,
        id: i64,
    ) -> Result<Option<ProductAbstractStorageTransfer>, ClientError> {
        self.client
            .get_as(&self.product_abstract_key(store, locale, id))
            .await
    }

    /// The published product with `sku` in `store` and `locale`, or `None` when there is none:
    /// the SKU's alias key (`{"id":…}`) names the product, which is then read by id.
    ///
    /// An alias whose `id` is not an integer (or a string holding one) is a
    /// [`ClientError::Decode`] naming the alias key; an alias pointing to a product that is
    /// gone (as between two sync messages) reads as `None`.
    pub async fn find_product_abstract_by_sku(
        &self,
        store: &str,
        locale: &str,
        sku: &str,
    ) -> Result<Option<ProductAbstractStorageTransfer>, ClientError> {
        let key = self.sku_key(store, locale, sku);
        let Some(alias) = self.client.get_as::<Value>(&key).await? else {
            return Ok(None);
        };
        let id = alias_id(&key, alias)?;
        self.find_product_abstract(store, locale, id).await
    }
}

/// Store and locale of a key, without a reference.
fn store_locale(store: &str, locale: &str) -> SynchronizationData {
    SynchronizationData {
        reference: None,
        store: Some(store.to_owned()),
        locale: Some(locale.to_owned()),
    }
}

/// The product id an alias value `{"id":…,"_timestamp":…}` stored under `key` points to.
fn alias_id(key: &str, alias: Value) -> Result<i64, ClientError> {
    let id = match alias {
        Value::Object(mut object) => object.remove("id").unwrap_or(Value::Null),
        other => other,
    };
    // An id written as a string (by another writer of the same store) is still an id.
    if let Some(id) = id.as_str().and_then(|text| text.trim().parse::<i64>().ok()) {
        return Ok(id);
    }
    serde_json::from_value::<i64>(id).map_err(|source| ClientError::Decode {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use pubsync_shared::key::{KeyBuilder, KeyBuilders};
    use pubsync_storage_extension::{ScanPage, StorageError};

    use super::*;

    /// A map standing in for a store: a test double of the storage contract.
    struct MemoryStorage(HashMap<String, String>);

    impl StorageReader for MemoryStorage {
        async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
            Ok(self.0.get(key).cloned())
        }

        async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
            Ok(keys.iter().map(|key| self.0.get(key).cloned()).collect())
        }

        async fn scan(&self, _: &str, _: usize, _: u64) -> Result<ScanPage, StorageError> {
            Err(StorageError::Unsupported {
                operation: "scan",
                backend: "memory",
            })
        }
    }

    fn reader(entries: &[(&str, &str)]) -> ProductAbstractStorageReader<MemoryStorage> {
        let entries = entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        ProductAbstractStorageReader::new(StorageClient::new(
            MemoryStorage(entries),
            KeyBuilders::new(KeyBuilder::default()),
        ))
    }

    const SHOE_DE: &str = r#"{"id_product_abstract":1,"sku":"AB 001","name":"Schuh",
        "description":null,"attributes":{"size":42},"_timestamp":1800000000.5}"#;

    #[test]
    fn keys_lower_case_store_and_locale_and_escape_the_sku() {
        let reader = reader(&[]);
        assert_eq!(
            reader.product_abstract_key("DE", "de_DE", 1),
            "product_abstract:de:de_de:1"
        );
        assert_eq!(
            reader.sku_key("AT", "en_US", "AB 001"),
            "product_abstract:at:en_us:sku:ab-001"
        );
    }

    #[tokio::test]
    async fn finds_a_product_by_id_and_by_sku() {
        let reader = reader(&[
            ("product_abstract:de:de_de:1", SHOE_DE),
            (
                "product_abstract:de:de_de:sku:ab-001",
                r#"{"id":1,"_timestamp":1800000000.5}"#,
            ),
            ("product_abstract:de:en_us:sku:ab-001", r#"{"id":"1"}"#),
            ("product_abstract:de:en_us:1", r#"{"name":"Shoe"}"#),
        ]);
        let product = reader
            .find_product_abstract("DE", "de_DE", 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(product.id_product_abstract, Some(1));
        assert_eq!(product.name.as_deref(), Some("Schuh"));
        assert_eq!(product.attributes, Some(serde_json::json!({"size": 42})));
        let by_sku = reader
            .find_product_abstract_by_sku("DE", "de_DE", "AB 001")
            .await
            .unwrap();
        assert_eq!(by_sku, Some(product));
        // A string id is read too.
        let english = reader
            .find_product_abstract_by_sku("DE", "en_US", "ab 001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(english.name.as_deref(), Some("Shoe"));

        assert!(
            reader
                .find_product_abstract("AT", "de_DE", 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            reader
                .find_product_abstract_by_sku("DE", "de_DE", "XY")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_alias_to_a_product_that_is_gone_reads_as_none() {
        let reader = reader(&[("product_abstract:de:de_de:sku:ab-001", r#"{"id":9}"#)]);
        assert!(
            reader
                .find_product_abstract_by_sku("DE", "de_DE", "AB 001")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_broken_alias_or_product_names_its_key() {
        let reader = reader(&[
            (
                "product_abstract:de:de_de:sku:no-id",
                r#"{"_timestamp":1.5}"#,
            ),
            ("product_abstract:de:de_de:sku:text-id", r#"{"id":"one"}"#),
            ("product_abstract:de:de_de:sku:broken", r#"{"id":2}"#),
            ("product_abstract:de:de_de:2", r#"{"name":2}"#),
        ]);
        for (sku, key) in [
            ("no-id", "product_abstract:de:de_de:sku:no-id"),
            ("text-id", "product_abstract:de:de_de:sku:text-id"),
            ("broken", "product_abstract:de:de_de:2"),
        ] {
            let error = reader
                .find_product_abstract_by_sku("DE", "de_DE", sku)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, ClientError::Decode { key: k, .. } if k == key),
                "{sku}: {error}"
            );
        }
    }
}
