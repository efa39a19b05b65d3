//! The product module's publisher: `spy_product_abstract` and its localized attributes and store
//! assignments → `spy_product_abstract_storage`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use pubsync_backend::listener::{HandlerError, PublishContext, Publisher};
use pubsync_backend::storage_table_writer::{Publication, Reference, RowKey, StorageRow};
use pubsync_database::{BoundList, DatabaseError, Dialect, Statement, bind_list, with_connection};
use pubsync_shared::event::{
    EntityAction, EventEntityTransfer, entity_event_name, event_transfer_ids,
    parse_entity_event_name,
};
use serde_json::Value;
use shop_shared::transfer::ProductAbstractStorageTransfer;

use crate::generated::synchronization::SPY_PRODUCT_ABSTRACT_STORAGE;

/// The abstract products: their events carry the product's id.
pub const PRODUCT_ABSTRACT_TABLE: &str = "spy_product_abstract";
/// A product's name and description per locale: their events carry the product as the foreign
/// key [`FK_PRODUCT_ABSTRACT`].
pub const LOCALIZED_ATTRIBUTES_TABLE: &str = "spy_product_abstract_localized_attributes";
/// Which stores a product is assigned to: their events carry the product as the foreign key
/// [`FK_PRODUCT_ABSTRACT`].
pub const PRODUCT_ABSTRACT_STORE_TABLE: &str = "spy_product_abstract_store";
/// The locales.
pub const LOCALE_TABLE: &str = "spy_locale";
/// The stores.
pub const STORE_TABLE: &str = "spy_store";
/// The column of the child tables naming their product.
pub const FK_PRODUCT_ABSTRACT: &str = "fk_product_abstract";

/// The tables whose changes this publisher publishes.
const WATCHED_TABLES: [&str; 3] = [
    PRODUCT_ABSTRACT_TABLE,
    LOCALIZED_ATTRIBUTES_TABLE,
    PRODUCT_ABSTRACT_STORE_TABLE,
];

/// An abstract product as the publisher reads it (column types from the generated table).
#[derive(diesel::QueryableByName)]
#[diesel(table_name = crate::generated::tables::spy_product_abstract)]
struct ProductRow {
    id_product_abstract: i32,
    sku: String,
    attributes: String,
}

/// A locale.
#[derive(diesel::QueryableByName)]
#[diesel(table_name = crate::generated::tables::spy_locale)]
struct LocaleRow {
    id_locale: i32,
    locale_name: String,
}

/// A product's name and description in one locale.
#[derive(diesel::QueryableByName)]
#[diesel(table_name = crate::generated::tables::spy_product_abstract_localized_attributes)]
struct LocalizedRow {
    fk_product_abstract: i32,
    fk_locale: i32,
    name: String,
    description: Option<String>,
}

/// A store a product is assigned to, by name (`spy_product_abstract_store` joined with
/// `spy_store`).
#[derive(diesel::QueryableByName)]
struct AssignedStoreRow {
    #[diesel(sql_type = Integer)]
    fk_product_abstract: i32,
    #[diesel(sql_type = Text)]
    store_name: String,
}

/// What the publisher read of the products of one bulk.
#[derive(Default)]
struct Snapshot {
    products: Vec<ProductRow>,
    stores: Vec<AssignedStoreRow>,
    locales: Vec<LocaleRow>,
    localized: Vec<LocalizedRow>,
}

/// Publishes abstract products into product abstract storage (the original's
/// `ProductAbstractStoragePublisher`s for products, their localized attributes and their
/// stores, in one).
///
/// Whatever the event, it collects the products concerned (the id of a product event, the
/// `fk_product_abstract` of a localized-attributes or store-assignment event) and re-reads
/// them, in a few statements for the whole bulk: the product (SKU, attributes), the stores it
/// is assigned to, every locale, and its localized attributes. A product that exists becomes
/// exactly one storage row per assigned store and locale (`product_abstract:<store>:<locale>:<id>`,
/// data the [`ProductAbstractStorageTransfer`]; `name` and `description` are absent in a locale
/// the product has no localized attributes for) and those rows become its only rows: the rows
/// of a store it is no longer assigned to go. A product that does not exist (deleted, maybe
/// after the event was sent) loses all its rows. The storage table's `sku` mapping gives every
/// row the alias key `product_abstract:<store>:<locale>:sku:<sku>`, kept by the storage writer.
/// That makes handling idempotent and indifferent to the order events arrive in.
///
/// `view_count` is neither read nor published, and its changes are no events (the schema's
/// column filter).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductAbstractStoragePublisher;

impl ProductAbstractStoragePublisher {
    /// The listener name carried in event messages.
    pub const NAME: &str = "ProductStorage.ProductAbstractStoragePublisher";
}

impl Publisher for ProductAbstractStoragePublisher {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn subscribed_events(&self) -> Vec<String> {
        WATCHED_TABLES
            .iter()
            .flat_map(|table| {
                [
                    EntityAction::Create,
                    EntityAction::Update,
                    EntityAction::Delete,
                ]
                .map(|action| entity_event_name(table, action))
            })
            .collect()
    }

    fn handle_bulk(
        &self,
        context: &PublishContext,
        event_name: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError> {
        let ids = product_ids(event_name, transfers)?;
        if ids.is_empty() {
            return Ok(());
        }
        let references: Vec<Reference> = ids.iter().map(|id| Reference::Int(*id)).collect();
        context
            .storage
            .publish(&SPY_PRODUCT_ABSTRACT_STORAGE, &references, || {
                let snapshot = read(context, &ids)?;
                Ok(Publication::replace(storage_rows(snapshot)?))
            })?;
        Ok(())
    }
}

/// The distinct ids of the products `transfers` (all instances of `event_name`) concern, in
/// ascending order.
fn product_ids(
    event_name: &str,
    transfers: &[EventEntityTransfer],
) -> Result<Vec<i64>, HandlerError> {
    let table = parse_entity_event_name(event_name)
        .map(|(table, _)| table)
        .filter(|table| WATCHED_TABLES.contains(table))
        .ok_or_else(|| {
            format!(
                "{} does not handle {event_name:?}",
                ProductAbstractStoragePublisher::NAME
            )
        })?;
    if table == PRODUCT_ABSTRACT_TABLE {
        return Ok(event_transfer_ids(transfers)
            .into_iter()
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect());
    }
    let column = format!("{table}.{FK_PRODUCT_ABSTRACT}");
    let mut ids = BTreeSet::new();
    for transfer in transfers {
        let value = transfer
            .foreign_keys
            .get(&column)
            .filter(|value| !value.is_null())
            .ok_or_else(|| {
                format!(
                    "{event_name} of row {} carries no foreign key {column}: cannot tell which \
                     product to publish",
                    describe_id(transfer.id)
                )
            })?;
        let id = as_id(value).ok_or_else(|| {
            format!(
                "{event_name} of row {}: foreign key {column} is {value}, not a product id",
                describe_id(transfer.id)
            )
        })?;
        ids.insert(id);
        // A row moved to another product (the schema keeps the original value) leaves one.
        if let Some(previous) = transfer.original_values.get(&column).and_then(as_id) {
            ids.insert(previous);
        }
    }
    Ok(ids.into_iter().collect())
}

/// A foreign key's value as an id: an integer, or a string holding one.
fn as_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn describe_id(id: Option<i64>) -> String {
    id.map_or_else(|| "without id".to_owned(), |id| id.to_string())
}

/// Reads products `ids` with their assigned stores, every locale and their localized
/// attributes, on one connection; nothing but the products when none of them exists.
fn read(context: &PublishContext, ids: &[i64]) -> Result<Snapshot, DatabaseError> {
    let dialect = context.database.dialect();
    let products = pubsync_database::select_by_ids(
        dialect,
        PRODUCT_ABSTRACT_TABLE,
        &["id_product_abstract", "sku", "attributes"],
        "id_product_abstract",
        ids,
    );
    with_connection!(context.database, |conn| {
        let mut snapshot = Snapshot::default();
        for statement in products {
            snapshot.products.extend(
                statement
                    .load::<ProductRow>(conn)
                    .map_err(DatabaseError::query("read abstract products"))?,
            );
        }
        if !snapshot.products.is_empty() {
            let found: Vec<i64> = snapshot
                .products
                .iter()
                .map(|product| i64::from(product.id_product_abstract))
                .collect();
            for list in bind_list(dialect, &found) {
                snapshot.stores.extend(
                    list.statement(assigned_stores_sql(dialect, &list))
                        .load::<AssignedStoreRow>(conn)
                        .map_err(DatabaseError::query("read the stores of abstract products"))?,
                );
            }
            for statement in pubsync_database::select_by_ids(
                dialect,
                LOCALIZED_ATTRIBUTES_TABLE,
                &[FK_PRODUCT_ABSTRACT, "fk_locale", "name", "description"],
                FK_PRODUCT_ABSTRACT,
                &found,
            ) {
                snapshot
                    .localized
                    .extend(
                        statement
                            .load::<LocalizedRow>(conn)
                            .map_err(DatabaseError::query(
                                "read the localized attributes of abstract products",
                            ))?,
                    );
            }
            snapshot.locales = Statement::new(format!(
                "SELECT {}, {} FROM {}",
                dialect.quote("id_locale"),
                dialect.quote("locale_name"),
                dialect.quote(LOCALE_TABLE)
            ))
            .load::<LocaleRow>(conn)
            .map_err(DatabaseError::query("read locales"))?;
        }
        Ok::<_, DatabaseError>(snapshot)
    })
}

/// `SELECT fk_product_abstract, store name FROM spy_product_abstract_store JOIN spy_store` of
/// the products in `list`.
fn assigned_stores_sql(dialect: Dialect, list: &BoundList) -> String {
    let q = |name: &str| dialect.quote(name);
    format!(
        "SELECT pas.{fk} AS {fk}, s.{name} AS {store_name} FROM {assignments} AS pas \
         INNER JOIN {stores} AS s ON s.{id_store} = pas.{fk_store} WHERE {condition}",
        fk = q(FK_PRODUCT_ABSTRACT),
        name = q("name"),
        store_name = q("store_name"),
        assignments = q(PRODUCT_ABSTRACT_STORE_TABLE),
        stores = q(STORE_TABLE),
        id_store = q("id_store"),
        fk_store = q("fk_store"),
        condition = list.condition(&format!("pas.{}", q(FK_PRODUCT_ABSTRACT))),
    )
}

/// The storage rows of `snapshot`: one per product, assigned store and locale, in the order
/// of product id, store name and locale name.
fn storage_rows(snapshot: Snapshot) -> Result<Vec<StorageRow>, HandlerError> {
    let Snapshot {
        mut products,
        stores,
        mut locales,
        localized,
    } = snapshot;
    products.sort_by_key(|product| product.id_product_abstract);
    locales.sort_by(|a, b| a.locale_name.cmp(&b.locale_name));
    let mut stores_of: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for store in stores {
        stores_of
            .entry(store.fk_product_abstract)
            .or_default()
            .insert(store.store_name);
    }
    let localized: HashMap<(i32, i32), LocalizedRow> = localized
        .into_iter()
        .map(|row| ((row.fk_product_abstract, row.fk_locale), row))
        .collect();
    let mut rows = Vec::new();
    for product in &products {
        let id = product.id_product_abstract;
        let Some(stores) = stores_of.get(&id) else {
            continue;
        };
        let attributes: Value = serde_json::from_str(&product.attributes).map_err(|error| {
            format!(
                "abstract product {id} (sku {:?}): its attributes are not JSON: {error}",
                product.sku
            )
        })?;
        for store in stores {
            for locale in &locales {
                let texts = localized.get(&(id, locale.id_locale));
                let transfer = ProductAbstractStorageTransfer {
                    id_product_abstract: Some(i64::from(id)),
                    sku: Some(product.sku.clone()),
                    name: texts.map(|texts| texts.name.clone()),
                    description: texts.and_then(|texts| texts.description.clone()),
                    attributes: Some(attributes.clone()),
                };
                let data = serde_json::to_value(&transfer).map_err(|error| {
                    format!("abstract product {id}: its storage data does not serialise: {error}")
                })?;
                rows.push(StorageRow {
                    key: RowKey {
                        reference: Reference::Int(i64::from(id)),
                        store: Some(store.clone()),
                        locale: Some(locale.locale_name.clone()),
                    },
                    data,
                });
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn transfer(table: &str, id: i64, foreign_keys: Value) -> EventEntityTransfer {
        EventEntityTransfer {
            event: entity_event_name(table, EntityAction::Update),
            name: table.to_owned(),
            id: Some(id),
            foreign_keys: serde_json::from_value(foreign_keys).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn subscribes_to_every_change_of_the_three_product_tables() {
        let events = ProductAbstractStoragePublisher.subscribed_events();
        assert_eq!(events.len(), 9);
        for table in WATCHED_TABLES {
            for action in ["create", "update", "delete"] {
                assert!(
                    events.contains(&format!("Entity.{table}.{action}")),
                    "{table}.{action}"
                );
            }
        }
    }

    #[test]
    fn product_events_name_the_product_by_id() {
        let event = entity_event_name(PRODUCT_ABSTRACT_TABLE, EntityAction::Update);
        let transfers = [
            transfer(PRODUCT_ABSTRACT_TABLE, 7, json!({})),
            transfer(PRODUCT_ABSTRACT_TABLE, 3, json!({})),
            transfer(PRODUCT_ABSTRACT_TABLE, 7, json!({})),
        ];
        assert_eq!(product_ids(&event, &transfers).unwrap(), [3, 7]);
    }

    #[test]
    fn child_events_name_the_product_by_foreign_key() {
        for table in [LOCALIZED_ATTRIBUTES_TABLE, PRODUCT_ABSTRACT_STORE_TABLE] {
            let event = entity_event_name(table, EntityAction::Delete);
            let fk = format!("{table}.fk_product_abstract");
            let transfers = [
                transfer(
                    table,
                    100,
                    json!({ fk.clone(): 2, format!("{table}.fk_locale"): 9 }),
                ),
                transfer(table, 101, json!({ fk.clone(): "1" })),
                transfer(table, 102, json!({ fk.clone(): 2 })),
            ];
            assert_eq!(product_ids(&event, &transfers).unwrap(), [1, 2], "{table}");

            let error = product_ids(&event, &[transfer(table, 5, json!({}))])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("row 5 carries no foreign key") && error.contains(&fk),
                "{error}"
            );
            let error = product_ids(&event, &[transfer(table, 5, json!({ fk.clone(): "x" }))])
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a product id"), "{error}");
        }
    }

    #[test]
    fn events_of_other_tables_are_refused() {
        let error = product_ids("Entity.spy_url.update", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not handle"), "{error}");
    }

    fn snapshot() -> Snapshot {
        let localized = |product, locale, name: &str, description: Option<&str>| LocalizedRow {
            fk_product_abstract: product,
            fk_locale: locale,
            name: name.to_owned(),
            description: description.map(str::to_owned),
        };
        Snapshot {
            products: vec![
                ProductRow {
                    id_product_abstract: 2,
                    sku: "B".into(),
                    attributes: r#"{"color":"red"}"#.into(),
                },
                ProductRow {
                    id_product_abstract: 1,
                    sku: "A".into(),
                    attributes: "[]".into(),
                },
            ],
            stores: vec![
                AssignedStoreRow {
                    fk_product_abstract: 2,
                    store_name: "DE".into(),
                },
                AssignedStoreRow {
                    fk_product_abstract: 1,
                    store_name: "DE".into(),
                },
                AssignedStoreRow {
                    fk_product_abstract: 1,
                    store_name: "AT".into(),
                },
            ],
            locales: vec![
                LocaleRow {
                    id_locale: 20,
                    locale_name: "en_US".into(),
                },
                LocaleRow {
                    id_locale: 10,
                    locale_name: "de_DE".into(),
                },
            ],
            localized: vec![
                localized(1, 10, "Schuh", Some("Ein Schuh")),
                localized(1, 20, "Shoe", None),
                localized(2, 10, "Hut", None),
            ],
        }
    }

    #[test]
    fn one_row_per_product_assigned_store_and_locale() {
        let rows = storage_rows(snapshot()).unwrap();
        let keys: Vec<(i64, &str, &str)> = rows
            .iter()
            .map(|row| {
                let Reference::Int(id) = row.key.reference else {
                    panic!("{:?}", row.key)
                };
                (
                    id,
                    row.key.store.as_deref().unwrap(),
                    row.key.locale.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (1, "AT", "de_DE"),
                (1, "AT", "en_US"),
                (1, "DE", "de_DE"),
                (1, "DE", "en_US"),
                (2, "DE", "de_DE"),
                (2, "DE", "en_US"),
            ]
        );
        assert_eq!(
            rows[0].data,
            json!({"id_product_abstract": 1, "sku": "A", "name": "Schuh",
                   "description": "Ein Schuh", "attributes": []})
        );
        assert_eq!(rows[1].data["name"], "Shoe");
        assert_eq!(rows[1].data["description"], Value::Null);
        // No localized attributes in en_US: the row is there, without name and description.
        assert_eq!(
            rows[5].data,
            json!({"id_product_abstract": 2, "sku": "B", "name": null,
                   "description": null, "attributes": {"color": "red"}})
        );
    }

    #[test]
    fn a_product_without_stores_has_no_rows() {
        let mut snapshot = snapshot();
        snapshot.stores.clear();
        assert!(storage_rows(snapshot).unwrap().is_empty());
    }

    #[test]
    fn attributes_that_are_not_json_fail_naming_the_product() {
        let mut snapshot = snapshot();
        snapshot.products[0].attributes = "{not json".into();
        let error = storage_rows(snapshot).unwrap_err().to_string();
        assert!(
            error.contains("abstract product 2 (sku \"B\"): its attributes are not JSON"),
            "{error}"
        );
    }
}
