//! Storage keys: `resource[:store][:locale]:reference`.
//!
//! [`KeyBuilder`] reproduces the original's `DefaultKeyGeneratorPlugin` to the character,
//! including its PHP quirks: `"0"` and `""` count as no reference, the store and locale are
//! lower-cased but not escaped, and the resource is used as it is. Keys written by a Spryker
//! shop and keys built here are therefore the same keys.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::synchronization::SynchronizationDefinition;

/// The prefix every storage key carries in a key-value store (`kv:<key>`).
pub const KV_PREFIX: &str = "kv:";

/// What a key is built from: the parts of [`SynchronizationData`] the original calls
/// `SynchronizationDataTransfer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynchronizationData {
    /// The key's last part, usually an id or a SKU; escaped when the key is built.
    pub reference: Option<String>,
    /// The store (`DE`), lower-cased in the key.
    pub store: Option<String>,
    /// The locale (`de_DE`), lower-cased in the key.
    pub locale: Option<String>,
}

impl SynchronizationData {
    /// Data with only a reference, for store- and locale-less resources.
    pub fn reference(reference: impl Into<String>) -> Self {
        Self {
            reference: Some(reference.into()),
            ..Self::default()
        }
    }
}

/// Builds the key of one resource. Modules with their own key scheme implement this and
/// register it in [`KeyBuilders`] for their resource.
pub trait KeyGenerator: Send + Sync {
    /// The storage key of `data` within `resource`.
    fn generate_key(&self, resource: &str, data: &SynchronizationData) -> String;
}

/// The original's default key scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyBuilder {
    /// `isSingleKeyFormatNormalized`: when there is no suffix, `message` instead of the legacy
    /// `message:`. Off by default, as in the original.
    pub single_key_format_normalized: bool,
}

impl KeyGenerator for KeyBuilder {
    fn generate_key(&self, resource: &str, data: &SynchronizationData) -> String {
        let mut store_locale = String::new();
        if let Some(store) = data.store.as_deref().filter(|s| php_truthy(s)) {
            store_locale.push_str(&store.to_ascii_lowercase());
        }
        if let Some(locale) = data.locale.as_deref().filter(|s| php_truthy(s)) {
            if !store_locale.is_empty() {
                store_locale.push(':');
            }
            store_locale.push_str(&locale.to_ascii_lowercase());
        }
        let reference = data
            .reference
            .as_deref()
            .filter(|r| php_truthy(r))
            .map(escape_key);
        // Built with pushes, not `format!`: a key is built for every storage row written, and
        // the formatting machinery cost more than the rest of this function.
        let mut suffix = store_locale;
        if let Some(reference) = reference {
            if php_truthy(&reference) && php_truthy(&suffix) {
                suffix.push(':');
            }
            suffix.push_str(&reference);
        }
        if self.single_key_format_normalized && !php_truthy(&suffix) {
            return resource.to_owned();
        }
        let mut key = String::with_capacity(resource.len() + 1 + suffix.len());
        key.push_str(resource);
        key.push(':');
        key.push_str(&suffix);
        key
    }
}

/// The key generators of all resources: the default scheme unless a module registered its own.
#[derive(Clone, Default)]
pub struct KeyBuilders {
    default: KeyBuilder,
    custom: HashMap<String, Arc<dyn KeyGenerator>>,
}

impl std::fmt::Debug for KeyBuilders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBuilders")
            .field("default", &self.default)
            .field("custom", &self.custom.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyBuilders {
    /// Generators that use `default` for every resource without a custom one.
    pub fn new(default: KeyBuilder) -> Self {
        Self {
            default,
            custom: HashMap::new(),
        }
    }

    /// Uses `generator` for `resource` instead of the default scheme.
    pub fn register(&mut self, resource: impl Into<String>, generator: Arc<dyn KeyGenerator>) {
        self.custom.insert(resource.into(), generator);
    }

    /// The key of `data` within `resource`.
    pub fn generate_key(&self, resource: &str, data: &SynchronizationData) -> String {
        if self.custom.is_empty() {
            return self.default.generate_key(resource, data);
        }
        match self.custom.get(resource) {
            Some(generator) => generator.generate_key(resource, data),
            None => self.default.generate_key(resource, data),
        }
    }

    /// The key of a mapping (alias) entry: the reference becomes `<source>:<value>`, so a SKU
    /// mapping of product 100 reads `product_abstract:de:de_de:sku:001`.
    pub fn generate_mapping_key(
        &self,
        resource: &str,
        source: &str,
        value: &str,
        data: &SynchronizationData,
    ) -> String {
        let data = SynchronizationData {
            reference: Some(format!("{source}:{value}")),
            ..data.clone()
        };
        self.generate_key(resource, &data)
    }

    /// The alias keys of a storage row of `table` whose data is `data`: for each mapping whose
    /// `data[source]` and `data[destination]` are both set (not null), the mapping key (built
    /// from the source value, strings as they are and other values as JSON text, with the
    /// row's store and locale in `key_data`) and the destination value the alias points to.
    pub fn alias_entries(
        &self,
        table: &SynchronizationDefinition,
        key_data: &SynchronizationData,
        data: &Map<String, Value>,
    ) -> Vec<(String, Value)> {
        table
            .mappings
            .iter()
            .filter_map(|mapping| {
                let source = data.get(mapping.source).filter(|v| !v.is_null())?;
                let destination = data.get(mapping.destination).filter(|v| !v.is_null())?;
                let source = source
                    .as_str()
                    .map_or_else(|| source.to_string(), str::to_owned);
                let key =
                    self.generate_mapping_key(table.resource, mapping.source, &source, key_data);
                Some((key, destination.clone()))
            })
            .collect()
    }
}

/// `str_replace(['"', "'", ' ', "\0", "\n", "\r"], '-', mb_strtolower(trim(s)))`.
pub fn escape_key(s: &str) -> String {
    let escape = |c: char| {
        if matches!(c, '"' | '\'' | ' ' | '\0' | '\n' | '\r') {
            '-'
        } else {
            c
        }
    };
    let s = php_trim(s);
    if s.is_ascii() {
        // The common case (ids, SKUs): one pass, one allocation.
        return s.chars().map(|c| escape(c.to_ascii_lowercase())).collect();
    }
    s.to_lowercase().chars().map(escape).collect()
}

/// The key a key-value store keeps `key` under: `[global_prefix]kv:<key>`.
pub fn kv_key(global_prefix: &str, key: &str) -> String {
    let mut kv = String::with_capacity(global_prefix.len() + KV_PREFIX.len() + key.len());
    kv.push_str(global_prefix);
    kv.push_str(KV_PREFIX);
    kv.push_str(key);
    kv
}

/// The resource part of a key: everything before the first `:`.
pub fn resource_of(key: &str) -> &str {
    key.split_once(':').map_or(key, |(resource, _)| resource)
}

/// PHP's truthiness of a string: `""` and `"0"` are false.
fn php_truthy(s: &str) -> bool {
    !(s.is_empty() || s == "0")
}

/// PHP's `trim` with its default characters: space, tab, newline, carriage return, NUL,
/// vertical tab.
fn php_trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\0' | '\x0B'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        resource: &str,
        store: Option<&str>,
        locale: Option<&str>,
        reference: Option<&str>,
    ) -> String {
        let data = SynchronizationData {
            reference: reference.map(str::to_owned),
            store: store.map(str::to_owned),
            locale: locale.map(str::to_owned),
        };
        KeyBuilder::default().generate_key(resource, &data)
    }

    #[test]
    fn the_originals_documented_key_examples() {
        assert_eq!(
            key("product_abstract", Some("DE"), Some("de_DE"), Some("100")),
            "product_abstract:de:de_de:100"
        );
        assert_eq!(
            key("product_concrete", None, Some("de_DE"), Some("1")),
            "product_concrete:de_de:1"
        );
        assert_eq!(
            key("url", None, None, Some("/en/Some Page")),
            "url:/en/some-page"
        );
        assert_eq!(
            key(
                "publish_and_synchronize_health_check",
                None,
                None,
                Some("health-check")
            ),
            "publish_and_synchronize_health_check:health-check"
        );
        assert_eq!(key("message", None, None, None), "message:");
        let normalized = KeyBuilder {
            single_key_format_normalized: true,
        };
        assert_eq!(
            normalized.generate_key("message", &SynchronizationData::default()),
            "message"
        );
    }

    #[test]
    fn hello_message_key() {
        assert_eq!(key("message", None, None, Some("2")), "message:2");
    }

    #[test]
    fn store_without_locale_and_locale_without_reference() {
        assert_eq!(key("price", Some("AT"), None, Some("7")), "price:at:7");
        assert_eq!(
            key("navigation", Some("DE"), Some("en_US"), None),
            "navigation:de:en_us"
        );
    }

    #[test]
    fn php_falsy_references_count_as_absent() {
        assert_eq!(key("message", None, None, Some("0")), "message:");
        assert_eq!(key("message", None, None, Some("")), "message:");
        assert_eq!(key("message", Some("DE"), None, Some("0")), "message:de");
    }

    #[test]
    fn escaping_trims_lowercases_and_replaces() {
        assert_eq!(escape_key("  Ab\"c'd e\0f\ng\rH\t"), "ab-c-d-e-f-g-h");
        assert_eq!(escape_key("ÄÖÜ Straße"), "äöü-straße");
        // The resource is used as it is, store and locale are lower-cased but not escaped.
        assert_eq!(key("Res", Some("D E"), None, Some("X")), "Res:d e:x");
    }

    #[test]
    fn mapping_keys_escape_source_and_value_together() {
        let builders = KeyBuilders::default();
        let data = SynchronizationData {
            store: Some("DE".into()),
            locale: Some("de_DE".into()),
            reference: None,
        };
        assert_eq!(
            builders.generate_mapping_key("product_abstract", "sku", "001", &data),
            "product_abstract:de:de_de:sku:001"
        );
    }

    #[test]
    fn custom_generators_replace_the_default_for_their_resource_only() {
        struct Upper;
        impl KeyGenerator for Upper {
            fn generate_key(&self, resource: &str, data: &SynchronizationData) -> String {
                format!(
                    "{resource}/{}",
                    data.reference.as_deref().unwrap_or_default().to_uppercase()
                )
            }
        }
        let mut builders = KeyBuilders::default();
        builders.register("sku", Arc::new(Upper));
        assert_eq!(
            builders.generate_key("sku", &SynchronizationData::reference("ab")),
            "sku/AB"
        );
        assert_eq!(
            builders.generate_key("message", &SynchronizationData::reference("ab")),
            "message:ab"
        );
    }

    #[test]
    fn kv_keys_and_resources() {
        assert_eq!(kv_key("", "message:1"), "kv:message:1");
        assert_eq!(kv_key("shop1:", "message:1"), "shop1:kv:message:1");
        assert_eq!(resource_of("product_concrete:de_de:1"), "product_concrete");
        assert_eq!(resource_of("message"), "message");
    }
}
