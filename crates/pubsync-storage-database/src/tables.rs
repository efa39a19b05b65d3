//! Which storage table holds a resource, as the original's key-value bypass maps it.
//!
//! A key's resource is its part before the first `:`. Its table is `[prefix, name, suffix]`,
//! the non-empty parts joined by `_`: by default `spy`, the resource and `storage`, so
//! `product_concrete:de_de:1` lives in `spy_product_concrete_storage`. A resource can override
//! any part ([`TableName`]), and a module registers its storage tables straight from their
//! [`SynchronizationDefinition`]s.

use std::collections::BTreeMap;

use pubsync_shared::synchronization::SynchronizationDefinition;

/// The table prefix when a mapping does not name one.
pub const DEFAULT_PREFIX: &str = "spy";
/// The table suffix when a mapping does not name one.
pub const DEFAULT_SUFFIX: &str = "storage";

/// What is wrong with a resource → table mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableMappingError {
    /// The mapping cannot be used as it is.
    #[error("invalid storage table mapping for resource {resource:?}: {reason}")]
    Invalid {
        /// The resource the mapping is for.
        resource: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two registrations map one resource to different tables.
    #[error("resource {resource:?} is mapped to both {table:?} and {other:?}")]
    Conflict {
        /// The resource.
        resource: String,
        /// The table registered first.
        table: String,
        /// The table registered second.
        other: String,
    },
}

/// An override of a resource's table name, part by part, as the original's
/// `getResourceNameToStorageTableMap()` entries. A part left `None` takes its default (`spy`,
/// the resource, `storage`); a part given as `""` is left out, as PHP's `array_filter` drops it.
/// The original requires the name whenever an override is given, and so does
/// [`TableResolver::with_override`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableName {
    /// `KEY_STORAGE_TABLE_PREFIX`; `None` means `spy`.
    pub prefix: Option<String>,
    /// `KEY_STORAGE_TABLE_NAME`; required.
    pub name: Option<String>,
    /// `KEY_STORAGE_TABLE_SUFFIX`; `None` means `storage`.
    pub suffix: Option<String>,
}

impl TableName {
    /// An override of the name only: the docs' `'translation' => [NAME => 'glossary']`.
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }
}

/// Maps resources to storage tables: the default rule plus registered overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableResolver {
    /// Resource → table, for every registered resource.
    overrides: BTreeMap<String, String>,
}

impl TableResolver {
    /// A resolver with no overrides: every resource maps to `spy_<resource>_storage`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `resource` to the table `table_name` describes. Fails when the name is missing or
    /// a part is not a plain identifier, or when `resource` is already mapped elsewhere.
    pub fn with_override(
        mut self,
        resource: impl Into<String>,
        table_name: TableName,
    ) -> Result<Self, TableMappingError> {
        let resource = resource.into();
        let invalid = |reason: String| TableMappingError::Invalid {
            resource: resource.clone(),
            reason,
        };
        let name = match table_name.name.as_deref() {
            None => {
                return Err(invalid(
                    "the table name is required when a mapping is given".to_owned(),
                ));
            }
            Some("") => return Err(invalid("the table name is empty".to_owned())),
            Some(name) => name,
        };
        let prefix = table_name.prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let suffix = table_name.suffix.as_deref().unwrap_or(DEFAULT_SUFFIX);
        let table = join_parts(prefix, name, suffix);
        self.insert(resource, table)?;
        Ok(self)
    }

    /// Maps the definition's resource to its table, the way modules register their storage
    /// tables (`message` → `spy_hello_spryker_message_storage`).
    pub fn with_definition(
        mut self,
        definition: &SynchronizationDefinition,
    ) -> Result<Self, TableMappingError> {
        self.insert(definition.resource.to_owned(), definition.table.to_owned())?;
        Ok(self)
    }

    /// Registers every definition of `definitions`, as [`with_definition`](Self::with_definition).
    pub fn with_definitions<'a>(
        self,
        definitions: impl IntoIterator<Item = &'a SynchronizationDefinition>,
    ) -> Result<Self, TableMappingError> {
        definitions
            .into_iter()
            .try_fold(self, |resolver, definition| {
                resolver.with_definition(definition)
            })
    }

    /// The table of `resource`. `None` when the resource is not registered and is not a plain
    /// identifier (`[A-Za-z0-9_]+`), so that no table can hold it: keys come from requests,
    /// and such a resource is answered as unknown without asking the database.
    pub fn table_for(&self, resource: &str) -> Option<String> {
        if let Some(table) = self.overrides.get(resource) {
            return Some(table.clone());
        }
        is_identifier(resource).then(|| join_parts(DEFAULT_PREFIX, resource, DEFAULT_SUFFIX))
    }

    /// The table `resource` would map to by default, for error messages when
    /// [`table_for`](Self::table_for) has none.
    pub fn default_table(resource: &str) -> String {
        join_parts(DEFAULT_PREFIX, resource, DEFAULT_SUFFIX)
    }

    /// The registered resources and their tables, ordered by resource.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        self.overrides
            .iter()
            .map(|(resource, table)| (resource.as_str(), table.as_str()))
    }

    fn insert(&mut self, resource: String, table: String) -> Result<(), TableMappingError> {
        if resource.is_empty() || resource.contains(':') {
            return Err(TableMappingError::Invalid {
                resource,
                reason: "a resource is a non-empty key part without ':'".to_owned(),
            });
        }
        if !is_identifier(&table) {
            return Err(TableMappingError::Invalid {
                resource,
                reason: format!("table {table:?} is not a plain identifier ([A-Za-z0-9_]+)"),
            });
        }
        match self.overrides.get(&resource) {
            Some(existing) if *existing == table => Ok(()),
            Some(existing) => Err(TableMappingError::Conflict {
                table: existing.clone(),
                other: table,
                resource,
            }),
            None => {
                self.overrides.insert(resource, table);
                Ok(())
            }
        }
    }
}

/// `implode('_', array_filter([prefix, name, suffix]))`.
fn join_parts(prefix: &str, name: &str, suffix: &str) -> String {
    [prefix, name, suffix]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubsync_shared::key::resource_of;

    fn definition(resource: &'static str, table: &'static str) -> SynchronizationDefinition {
        SynchronizationDefinition::new(table, resource, resource)
    }

    #[test]
    fn default_rule_of_the_docs() {
        let resolver = TableResolver::new();
        assert_eq!(
            resolver.table_for(resource_of("product_concrete:de_de:1")),
            Some("spy_product_concrete_storage".to_owned())
        );
        assert_eq!(
            resolver.table_for(resource_of("message")),
            Some("spy_message_storage".to_owned())
        );
    }

    #[test]
    fn docs_override_examples() {
        let resolver = TableResolver::new()
            .with_override("translation", TableName::name("glossary"))
            .unwrap()
            .with_override(
                "product_search_config_extension",
                TableName {
                    prefix: Some("spy".into()),
                    name: Some("product_search_config".into()),
                    suffix: Some("storage".into()),
                },
            )
            .unwrap()
            .with_override(
                "product_concrete",
                TableName {
                    prefix: Some("pyz".into()),
                    name: Some("product_foo".into()),
                    suffix: Some(String::new()),
                },
            )
            .unwrap();
        assert_eq!(
            resolver.table_for(resource_of("translation:de_de:cart.title")),
            Some("spy_glossary_storage".to_owned())
        );
        assert_eq!(
            resolver.table_for("product_search_config_extension"),
            Some("spy_product_search_config_storage".to_owned())
        );
        assert_eq!(
            resolver.table_for(resource_of("product_concrete:de_de:1")),
            Some("pyz_product_foo".to_owned())
        );
        // Other resources keep the default rule.
        assert_eq!(
            resolver.table_for("url"),
            Some("spy_url_storage".to_owned())
        );
    }

    #[test]
    fn overrides_without_a_name_are_rejected() {
        let err = TableResolver::new()
            .with_override(
                "translation",
                TableName {
                    prefix: Some("pyz".into()),
                    ..TableName::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, TableMappingError::Invalid { resource, .. } if resource == "translation"),
            "{err}"
        );
        assert!(err.to_string().contains("name is required"), "{err}");
        assert!(
            TableResolver::new()
                .with_override("translation", TableName::name(""))
                .is_err()
        );
    }

    #[test]
    fn overrides_that_are_not_identifiers_are_rejected() {
        let err = TableResolver::new()
            .with_override("x", TableName::name("a; DROP TABLE b"))
            .unwrap_err();
        assert!(err.to_string().contains("not a plain identifier"), "{err}");
        assert!(
            TableResolver::new()
                .with_override("a:b", TableName::name("glossary"))
                .is_err()
        );
    }

    #[test]
    fn definitions_register_their_table() {
        let resolver = TableResolver::new()
            .with_definition(&definition("message", "spy_hello_spryker_message_storage"))
            .unwrap();
        assert_eq!(
            resolver.table_for(resource_of("message:2")),
            Some("spy_hello_spryker_message_storage".to_owned())
        );
        // Registering the same mapping again is harmless; a different table is a conflict.
        let resolver = resolver
            .with_definition(&definition("message", "spy_hello_spryker_message_storage"))
            .unwrap();
        let err = resolver
            .with_definition(&definition("message", "spy_other_storage"))
            .unwrap_err();
        assert!(matches!(err, TableMappingError::Conflict { .. }), "{err}");
    }

    #[test]
    fn resources_that_cannot_be_tables_have_none() {
        let resolver = TableResolver::new();
        assert_eq!(resolver.table_for(""), None);
        assert_eq!(resolver.table_for("a\"b"), None);
        assert_eq!(resolver.table_for("näh"), None);
        assert_eq!(TableResolver::default_table("a b"), "spy_a b_storage");
    }
}
