//! The shop end to end, as it runs: `shop::modules()` (the Hello module, the shop's product
//! module and the project level) on a database of the test's own, with the storage tables as
//! storage or with Redis (feature `redis`, under a key prefix of the test's own).
//!
//! The shop's tooling owns `spy_store` and `spy_locale`: each test creates them by hand, with a
//! column the product module does not know, before `setup` adopts them. Every other write is
//! plain SQL, as any writer of the shop's database would do it; the worker then runs until
//! everything is published (and synchronized), and the modules' readers read the result.
//!
//! Every test runs on SQLite, on PostgreSQL (feature `postgres`) and on MySQL/MariaDB (feature
//! `mysql`), each with database storage and (feature `redis`) with Redis.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Nullable, Text};
use pubsync_backend::listener::{PublishContext, Publisher as _};
use pubsync_backend::{StorageTableWriter, WorkerReport};
use pubsync_cli::{App, Settings};
use pubsync_client::StorageClient;
use pubsync_database::testing::TestDatabase;
use pubsync_database::{DatabaseError, Dialect, with_connection};
use pubsync_hello::reader::MessageStorageReader;
use pubsync_shared::event::{EntityAction, EventEntityTransfer, entity_event_name};
use pubsync_shared::key::KeyBuilders;
use pubsync_storage_database::{DatabaseStorage, TableResolver};
use pubsync_test_support::{Service, require, unique_name};
use serde_json::{Value, json};
use shop_product::publisher::ProductAbstractStoragePublisher;
use shop_product::reader::ProductAbstractStorageReader;
use shop_shared::transfer::ProductAbstractStorageTransfer;

/// Where the application's storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// The storage tables themselves (synchronization off).
    Database,
    /// Redis, synchronized through the sync queues.
    Redis,
}

/// Expands each `async fn name(shop: Shop) { … }` into a module `name` with one test per
/// database compiled in and storage: `sqlite`, `sqlite_redis`, `postgres`, … .
macro_rules! shop_tests {
    ($(async fn $name:ident($shop:ident: Shop) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($shop: Shop) $body

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                run(Dialect::Sqlite, Storage::Database, case).await;
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite_redis() {
                run(Dialect::Sqlite, Storage::Redis, case).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                run(Dialect::Postgres, Storage::Database, case).await;
            }

            #[cfg(all(feature = "postgres", feature = "redis"))]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres_redis() {
                run(Dialect::Postgres, Storage::Redis, case).await;
            }

            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql() {
                run(Dialect::Mysql, Storage::Database, case).await;
            }

            #[cfg(all(feature = "mysql", feature = "redis"))]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql_redis() {
                run(Dialect::Mysql, Storage::Redis, case).await;
            }
        }
    )*};
}

/// Runs `case` on a new shop, unless its servers are unreachable outside CI.
async fn run<F, Fut>(dialect: Dialect, storage: Storage, case: F)
where
    F: FnOnce(Shop) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(shop) = Shop::new(dialect, storage) {
        case(shop).await;
    }
}

/// A Redis key prefix of the test's own, whose keys are removed afterwards.
struct Redis {
    url: String,
    prefix: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r redis-cli -u '{url}' del >/dev/null",
            url = self.url,
            prefix = self.prefix
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

/// The shop's stores: `(id_store, name, default_currency_iso_code)`.
const STORES: [(i64, &str, &str); 2] = [(1, "DE", "EUR"), (2, "AT", "EUR")];
/// The shop's locales: `(id_locale, locale_name, is_active)`, with the ids a Spryker shop's
/// locales have.
const LOCALES: [(i64, &str, i64); 2] = [(46, "de_DE", 1), (66, "en_US", 1)];

const DE: i64 = 1;
const AT: i64 = 2;
const DE_DE: i64 = 46;
const EN_US: i64 = 66;

/// A shoe in both stores, and a hat (whose SKU has a space) in DE only.
const SHOE: i64 = 101;
const HAT: i64 = 202;
const SHOE_SKU: &str = "SHOE-001";
const HAT_SKU: &str = "HAT 002";

/// A migrated shop on a database (and Redis key prefix) of its own.
struct Shop {
    app: App,
    storage: Storage,
    // Dropped in this order: the application's pool, the Redis keys, the config, the database.
    _redis: Option<Redis>,
    _dir: tempfile::TempDir,
    _database: TestDatabase,
}

impl Shop {
    /// A new shop on `dialect` with `storage`: its store and locale tables made by hand, as the
    /// shop's tooling makes them, then `setup`. `None` when a server is unreachable outside CI.
    fn new(dialect: Dialect, storage: Storage) -> Option<Self> {
        let redis = match storage {
            Storage::Database => None,
            Storage::Redis => Some(Redis {
                url: require(Service::Redis)?,
                prefix: format!("{}:", unique_name("shop")),
            }),
        };
        let database = TestDatabase::create(dialect)?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("pubsync.toml");
        let mut toml = format!(
            "database_url = {:?}\n",
            database.url().to_connection_string()
        );
        if let Some(redis) = &redis {
            toml.push_str(&format!(
                "storage_url = {:?}\n[storage]\nkey_prefix = {:?}\n",
                redis.url, redis.prefix
            ));
        }
        std::fs::write(&config, toml).expect("write pubsync.toml");
        let settings = Settings::load(Some(&config), |_| None).expect("settings");
        let app = App::open(settings, shop::modules()).expect("open the shop");
        let shop = Self {
            app,
            storage,
            _redis: redis,
            _dir: dir,
            _database: database,
        };
        shop.create_store_and_locale_tables();

        let report = shop.app.setup().expect("setup");
        let adoption = &report.adoption;
        assert!(
            adoption.existing.contains(&("spy_store", 2))
                && adoption.existing.contains(&("spy_locale", 2)),
            "the shop's tables are adopted with their rows: {adoption:?}"
        );
        for table in [
            "spy_product_abstract",
            "spy_product_abstract_localized_attributes",
            "spy_product_abstract_store",
            "spy_hello_spryker_message",
        ] {
            assert!(adoption.created.contains(&table), "{table}: {adoption:?}");
            assert!(
                adoption.triggers_installed.contains(&table),
                "{table}: {adoption:?}"
            );
        }
        assert!(
            !adoption.triggers_installed.contains(&"spy_store")
                && !adoption.triggers_installed.contains(&"spy_locale"),
            "no events of stores and locales are captured: {adoption:?}"
        );
        shop.assert_store_and_locale_rows_untouched();
        Some(shop)
    }

    /// `spy_store` and `spy_locale` as the shop's tooling makes them: with a column of its own
    /// each, and filled.
    fn create_store_and_locale_tables(&self) {
        let (id, tail) = match self.dialect() {
            Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", ""),
            Dialect::Postgres => ("SERIAL PRIMARY KEY", ""),
            Dialect::Mysql => ("INT NOT NULL AUTO_INCREMENT PRIMARY KEY", " ENGINE=InnoDB"),
        };
        let stores: Vec<String> = STORES
            .iter()
            .map(|(id, name, currency)| format!("({id}, '{name}', '{currency}')"))
            .collect();
        let locales: Vec<String> = LOCALES
            .iter()
            .map(|(id, name, active)| format!("({id}, '{name}', {active})"))
            .collect();
        self.sql(&format!(
            "CREATE TABLE spy_store (
                id_store {id},
                name VARCHAR(255) NOT NULL,
                default_currency_iso_code VARCHAR(3) NOT NULL
            ){tail};
            CREATE UNIQUE INDEX {store_index} ON spy_store (name);
            CREATE TABLE spy_locale (
                id_locale {id},
                locale_name VARCHAR(5) NOT NULL,
                is_active INTEGER NOT NULL DEFAULT 1
            ){tail};
            CREATE UNIQUE INDEX {locale_index} ON spy_locale (locale_name);
            INSERT INTO spy_store (id_store, name, default_currency_iso_code) VALUES {};
            INSERT INTO spy_locale (id_locale, locale_name, is_active) VALUES {};",
            stores.join(", "),
            locales.join(", "),
            store_index = self.quote("spy_store-name"),
            locale_index = self.quote("spy_locale-locale_name"),
        ));
    }

    /// The rows of `spy_store` and `spy_locale` are exactly the ones the shop wrote, the shop's
    /// own columns included.
    fn assert_store_and_locale_rows_untouched(&self) {
        let stores: Vec<String> = STORES
            .iter()
            .map(|(id, name, currency)| {
                format!("(id_store = {id} AND name = '{name}' AND default_currency_iso_code = '{currency}')")
            })
            .collect();
        let sql = format!(
            "SELECT COUNT(*) AS n FROM spy_store WHERE {}",
            stores.join(" OR ")
        );
        assert_eq!(self.count(&sql), 2, "{sql}");
        assert_eq!(self.count("SELECT COUNT(*) AS n FROM spy_store"), 2);
        let locales: Vec<String> = LOCALES
            .iter()
            .map(|(id, name, active)| {
                format!("(id_locale = {id} AND locale_name = '{name}' AND is_active = {active})")
            })
            .collect();
        let sql = format!(
            "SELECT COUNT(*) AS n FROM spy_locale WHERE {}",
            locales.join(" OR ")
        );
        assert_eq!(self.count(&sql), 2, "{sql}");
        assert_eq!(self.count("SELECT COUNT(*) AS n FROM spy_locale"), 2);
    }

    fn dialect(&self) -> Dialect {
        self.app.database().dialect()
    }

    fn quote(&self, name: &str) -> String {
        self.dialect().quote(name)
    }

    /// Executes `sql` (several statements allowed), as any writer of the database would.
    fn sql(&self, sql: &str) {
        self.app
            .database()
            .batch_execute(sql)
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// The count `sql` (a `SELECT COUNT(*) AS n …`) returns.
    fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let database = self.app.database();
        let row: N = with_connection!(database, |conn| diesel::sql_query(sql)
            .get_result(conn)
            .map_err(DatabaseError::query(sql)))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        row.n
    }

    /// Events waiting in the outbox.
    fn outbox(&self) -> i64 {
        self.count("SELECT COUNT(*) AS n FROM spy_event_behavior_entity_change")
    }

    /// Storage changes waiting in the sync outbox.
    fn sync_outbox(&self) -> i64 {
        self.count("SELECT COUNT(*) AS n FROM pubsync_sync_outbox")
    }

    /// `key → (data, alias_keys)` of every product abstract storage row.
    fn storage_rows(&self) -> BTreeMap<String, (Value, Option<Value>)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            key: String,
            #[diesel(sql_type = Nullable<Text>)]
            data: Option<String>,
            #[diesel(sql_type = Nullable<Text>)]
            alias_keys: Option<String>,
        }
        let sql = format!(
            "SELECT {key} AS {key}, data, alias_keys FROM spy_product_abstract_storage",
            key = self.quote("key")
        );
        let database = self.app.database();
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(&sql)
            .load(conn)
            .map_err(DatabaseError::query(&sql)))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        let json = |text: Option<String>| text.map(|text| serde_json::from_str(&text).unwrap());
        rows.into_iter()
            .map(|row| {
                let data = json(row.data).expect("a storage row has data");
                (row.key, (data, json(row.alias_keys)))
            })
            .collect()
    }

    /// `key → data` of every product abstract storage row.
    fn storage_data(&self) -> BTreeMap<String, Value> {
        self.storage_rows()
            .into_iter()
            .map(|(key, (data, _))| (key, data))
            .collect()
    }

    /// The alias keys the storage writer keeps for product abstract storage, sorted.
    fn alias_keys(&self) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            alias_key: String,
        }
        let sql = "SELECT alias_key FROM pubsync_storage_alias \
                   WHERE storage_table = 'spy_product_abstract_storage' ORDER BY alias_key";
        let database = self.app.database();
        let rows: Vec<Row> = with_connection!(database, |conn| diesel::sql_query(sql)
            .load(conn)
            .map_err(DatabaseError::query(sql)))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.into_iter().map(|row| row.alias_key).collect()
    }

    /// Runs the worker until the outbox and the queues are empty; no event may fail.
    async fn work(&self) -> WorkerReport {
        let report = self
            .app
            .worker()
            .await
            .expect("worker")
            .run(true, &AtomicBool::new(false))
            .await
            .expect("worker run");
        assert_eq!(report.failed, 0, "nothing fails: {report:?}");
        assert_eq!(self.outbox(), 0, "everything is relayed");
        report
    }

    /// The product reader over the application's storage (Redis, or the storage tables).
    async fn products(&self) -> ProductAbstractStorageReader<pubsync_cli::backends::AnyStorage> {
        ProductAbstractStorageReader::new(self.app.client().await.expect("client"))
    }

    /// The product reader over the storage tables, whatever the application's storage.
    fn table_products(&self) -> ProductAbstractStorageReader<DatabaseStorage> {
        let tables = TableResolver::new()
            .with_definitions(self.app.storage_tables().iter().copied())
            .expect("storage tables");
        ProductAbstractStorageReader::new(StorageClient::new(
            DatabaseStorage::new(self.app.database().clone(), tables),
            KeyBuilders::new(self.app.settings().key_builder),
        ))
    }

    /// The shoe (in DE and AT, named in both locales) and the hat (in DE, named in both
    /// locales), published.
    async fn with_products(&self) -> WorkerReport {
        self.sql(&format!(
            "INSERT INTO spy_product_abstract (id_product_abstract, sku, attributes) VALUES
                ({SHOE}, '{SHOE_SKU}', '{{\"size\":42,\"color\":\"black\"}}'),
                ({HAT}, '{HAT_SKU}', '{{}}');
            INSERT INTO spy_product_abstract_localized_attributes
                (fk_product_abstract, fk_locale, name, description) VALUES
                ({SHOE}, {DE_DE}, 'Schuh', 'Ein schwarzer Schuh'),
                ({SHOE}, {EN_US}, 'Shoe', 'A black shoe'),
                ({HAT}, {DE_DE}, 'Hut', NULL),
                ({HAT}, {EN_US}, 'Hat', NULL);
            INSERT INTO spy_product_abstract_store (fk_product_abstract, fk_store) VALUES
                ({SHOE}, {DE}), ({SHOE}, {AT}), ({HAT}, {DE});"
        ));
        let report = self.work().await;
        assert_eq!(self.storage_rows().len(), 6, "shoe 2 × 2, hat 1 × 2");
        report
    }
}

/// The storage key of `id` in `store` and `locale`.
fn key(store: &str, locale: &str, id: i64) -> String {
    format!(
        "product_abstract:{}:{}:{id}",
        store.to_lowercase(),
        locale.to_lowercase()
    )
}

/// The alias key of `sku` in `store` and `locale` (SKUs lower-cased, spaces as `-`).
fn sku_key(store: &str, locale: &str, sku: &str) -> String {
    format!(
        "product_abstract:{}:{}:sku:{}",
        store.to_lowercase(),
        locale.to_lowercase(),
        sku.to_lowercase().replace(' ', "-")
    )
}

/// Every `(store, locale)`.
const EVERYWHERE: [(&str, &str); 4] = [
    ("DE", "de_DE"),
    ("DE", "en_US"),
    ("AT", "de_DE"),
    ("AT", "en_US"),
];

/// The name `product` has in `store` and `locale` through `reader`, by id and (checking that
/// both agree) by `sku`; `None` when it is not there.
async fn name<S: pubsync_storage_extension::StorageReader>(
    reader: &ProductAbstractStorageReader<S>,
    store: &str,
    locale: &str,
    product: i64,
    sku: &str,
) -> Option<String> {
    let by_id = reader
        .find_product_abstract(store, locale, product)
        .await
        .expect("read by id");
    let by_sku = reader
        .find_product_abstract_by_sku(store, locale, sku)
        .await
        .expect("read by sku");
    assert_eq!(by_id, by_sku, "{store} {locale} {product} {sku}");
    by_id.map(|product| product.name.unwrap_or_default())
}

/// Whether the mapping key of `sku` in `store` and `locale` reads a value through `reader`.
async fn has_alias<S: pubsync_storage_extension::StorageReader>(
    reader: &ProductAbstractStorageReader<S>,
    store: &str,
    locale: &str,
    sku: &str,
) -> bool {
    reader
        .client()
        .get(&reader.sku_key(store, locale, sku))
        .await
        .expect("read the alias key")
        .is_some()
}

shop_tests! {
    async fn setup_adopts_the_shops_tables_and_running_it_again_changes_nothing(shop: Shop) {
        // `Shop::new` checked the first setup: stores and locales adopted with their rows.
        let again = shop.app.setup().expect("setup again");
        assert!(again.migrations.is_empty(), "{again:?}");
        assert!(again.adoption.created.is_empty(), "{again:?}");
        assert!(again.adoption.triggers_installed.is_empty(), "{again:?}");
        shop.assert_store_and_locale_rows_untouched();
        // Publishing does not touch them either.
        shop.with_products().await;
        shop.assert_store_and_locale_rows_untouched();
    }

    async fn products_are_published_per_assigned_store_and_locale(shop: Shop) {
        shop.with_products().await;
        let reader = shop.products().await;
        assert_eq!(reader.product_abstract_key("DE", "de_DE", SHOE), "product_abstract:de:de_de:101");
        assert_eq!(reader.sku_key("DE", "de_DE", HAT_SKU), "product_abstract:de:de_de:sku:hat-002");

        let shoe = reader.find_product_abstract("DE", "de_DE", SHOE).await.unwrap().unwrap();
        assert_eq!(
            shoe,
            ProductAbstractStorageTransfer {
                id_product_abstract: Some(SHOE),
                sku: Some(SHOE_SKU.into()),
                name: Some("Schuh".into()),
                description: Some("Ein schwarzer Schuh".into()),
                attributes: Some(json!({"size": 42, "color": "black"})),
            }
        );
        for (store, locale, expected) in [
            ("DE", "de_DE", "Schuh"),
            ("DE", "en_US", "Shoe"),
            ("AT", "de_DE", "Schuh"),
            ("AT", "en_US", "Shoe"),
        ] {
            assert_eq!(name(&reader, store, locale, SHOE, SHOE_SKU).await.as_deref(), Some(expected), "{store} {locale}");
        }
        // Store and locale are case-insensitive, as in the keys.
        assert_eq!(name(&reader, "at", "en_us", SHOE, SHOE_SKU).await.as_deref(), Some("Shoe"));

        let hat = reader.find_product_abstract_by_sku("DE", "en_US", HAT_SKU).await.unwrap().unwrap();
        assert_eq!(hat.id_product_abstract, Some(HAT));
        assert_eq!(hat.name.as_deref(), Some("Hat"));
        assert_eq!(hat.description, None);
        assert_eq!(hat.attributes, Some(json!({})));
        assert_eq!(name(&reader, "DE", "de_DE", HAT, HAT_SKU).await.as_deref(), Some("Hut"));
        // The hat is not in AT.
        assert_eq!(name(&reader, "AT", "de_DE", HAT, HAT_SKU).await, None);
        assert_eq!(name(&reader, "AT", "en_US", HAT, HAT_SKU).await, None);
        assert!(reader.find_product_abstract_by_sku("DE", "de_DE", "NO-SUCH-SKU").await.unwrap().is_none());

        // The alias value names the product, as Redis and the storage tables both answer it.
        let alias = reader.client().get(&sku_key("AT", "de_DE", SHOE_SKU)).await.unwrap().unwrap();
        assert_eq!(alias["id"], json!(SHOE), "{alias}");
        assert!(alias["_timestamp"].as_f64().is_some(), "{alias}");

        // The storage table: one row per product, store and locale, each with its alias.
        let rows = shop.storage_rows();
        let mut expected: Vec<String> = EVERYWHERE.iter().map(|(s, l)| key(s, l, SHOE)).collect();
        expected.extend([key("DE", "de_DE", HAT), key("DE", "en_US", HAT)]);
        expected.sort();
        assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), expected);
        let (data, aliases) = &rows[&key("AT", "en_US", SHOE)];
        assert_eq!(data["name"], "Shoe");
        let aliases = aliases.as_ref().expect("an alias_keys column");
        assert_eq!(aliases.as_object().unwrap().keys().collect::<Vec<_>>(), [&sku_key("AT", "en_US", SHOE_SKU)]);
        assert_eq!(shop.alias_keys().len(), 6);
        if shop.storage == Storage::Redis {
            assert_eq!(shop.sync_outbox(), 0, "everything is synchronized");
        }
    }

    async fn a_localized_attribute_update_republishes_that_locale(shop: Shop) {
        shop.with_products().await;
        let before = shop.storage_data();
        shop.sql(&format!(
            "UPDATE spy_product_abstract_localized_attributes SET name = 'Laufschuh' \
             WHERE fk_product_abstract = {SHOE} AND fk_locale = {DE_DE}"
        ));
        assert_eq!(shop.outbox(), 1, "one event");
        let report = shop.work().await;
        if shop.storage == Storage::Redis {
            assert_eq!(report.sync_relayed, 2, "only the shoe's de_DE rows change: {report:?}");
        }
        let after = shop.storage_data();
        let changed: Vec<&String> = after.keys().filter(|key| before[*key] != after[*key]).collect();
        assert_eq!(changed, [&key("AT", "de_DE", SHOE), &key("DE", "de_DE", SHOE)]);

        let reader = shop.products().await;
        for (store, locale, expected) in [
            ("DE", "de_DE", "Laufschuh"),
            ("AT", "de_DE", "Laufschuh"),
            ("DE", "en_US", "Shoe"),
            ("AT", "en_US", "Shoe"),
        ] {
            assert_eq!(name(&reader, store, locale, SHOE, SHOE_SKU).await.as_deref(), Some(expected), "{store} {locale}");
        }
        assert_eq!(name(&reader, "DE", "de_DE", HAT, HAT_SKU).await.as_deref(), Some("Hut"));
    }

    async fn a_localized_attribute_moved_to_another_product_republishes_both(shop: Shop) {
        shop.with_products().await;
        shop.sql(&format!(
            "DELETE FROM spy_product_abstract_localized_attributes \
             WHERE fk_product_abstract = {SHOE} AND fk_locale = {EN_US}"
        ));
        shop.work().await;
        shop.sql(&format!(
            "UPDATE spy_product_abstract_localized_attributes SET fk_product_abstract = {SHOE} \
             WHERE fk_product_abstract = {HAT} AND fk_locale = {EN_US}"
        ));
        shop.work().await;
        let reader = shop.products().await;
        assert_eq!(name(&reader, "DE", "en_US", SHOE, SHOE_SKU).await.as_deref(), Some("Hat"));
        // The row left the hat: the event's original value names it, so it is republished too.
        assert_eq!(name(&reader, "DE", "en_US", HAT, HAT_SKU).await.as_deref(), Some(""));
        assert_eq!(name(&reader, "DE", "de_DE", HAT, HAT_SKU).await.as_deref(), Some("Hut"));
    }

    async fn view_count_changes_are_not_published(shop: Shop) {
        shop.with_products().await;
        let before = shop.storage_rows();
        shop.sql("UPDATE spy_product_abstract SET view_count = view_count + 1");
        shop.sql(&format!("UPDATE spy_product_abstract SET view_count = 1000 WHERE id_product_abstract = {SHOE}"));
        assert_eq!(shop.outbox(), 0, "the column filter: view_count changes are no events");
        let report = shop.work().await;
        assert_eq!((report.relayed, report.handled, report.synchronized), (0, 0, 0), "{report:?}");
        assert_eq!(shop.storage_rows(), before, "storage unchanged");
        assert_eq!(shop.sync_outbox(), 0);

        // A change of a watched column is an event, even with view_count changing alongside.
        shop.sql(&format!(
            "UPDATE spy_product_abstract SET view_count = 1001, attributes = '{{\"size\":43}}' \
             WHERE id_product_abstract = {SHOE}"
        ));
        assert_eq!(shop.outbox(), 1);
        shop.work().await;
        let reader = shop.products().await;
        for (store, locale) in EVERYWHERE {
            let shoe = reader.find_product_abstract(store, locale, SHOE).await.unwrap().unwrap();
            assert_eq!(shoe.attributes, Some(json!({"size": 43})), "{store} {locale}");
        }
    }

    async fn unassigning_a_store_removes_its_rows_and_aliases(shop: Shop) {
        shop.with_products().await;
        shop.sql(&format!(
            "DELETE FROM spy_product_abstract_store WHERE fk_product_abstract = {SHOE} AND fk_store = {AT}"
        ));
        shop.work().await;
        let reader = shop.products().await;
        let tables = shop.table_products();
        for locale in ["de_DE", "en_US"] {
            assert_eq!(name(&reader, "AT", locale, SHOE, SHOE_SKU).await, None, "AT {locale}");
            assert!(!has_alias(&reader, "AT", locale, SHOE_SKU).await, "AT {locale}");
            assert!(!has_alias(&tables, "AT", locale, SHOE_SKU).await, "AT {locale}");
            assert!(name(&reader, "DE", locale, SHOE, SHOE_SKU).await.is_some(), "DE {locale}");
        }
        let rows = shop.storage_rows();
        assert!(!rows.contains_key(&key("AT", "de_DE", SHOE)) && !rows.contains_key(&key("AT", "en_US", SHOE)));
        assert_eq!(rows.len(), 4);
        assert!(shop.alias_keys().iter().all(|alias| !alias.starts_with("product_abstract:at:")), "{:?}", shop.alias_keys());

        // Assigned again, the store's rows are back.
        shop.sql(&format!("INSERT INTO spy_product_abstract_store (fk_product_abstract, fk_store) VALUES ({SHOE}, {AT})"));
        shop.work().await;
        assert_eq!(name(&reader, "AT", "en_US", SHOE, SHOE_SKU).await.as_deref(), Some("Shoe"));
        assert_eq!(shop.storage_rows().len(), 6);
    }

    async fn a_changed_sku_moves_the_alias(shop: Shop) {
        shop.with_products().await;
        shop.sql(&format!("UPDATE spy_product_abstract SET sku = 'SHOE-002' WHERE id_product_abstract = {SHOE}"));
        shop.work().await;
        let reader = shop.products().await;
        let tables = shop.table_products();
        for (store, locale) in EVERYWHERE {
            let shoe = reader.find_product_abstract_by_sku(store, locale, "SHOE-002").await.unwrap().unwrap();
            assert_eq!(shoe.sku.as_deref(), Some("SHOE-002"));
            assert_eq!(shoe.id_product_abstract, Some(SHOE));
            assert!(reader.find_product_abstract_by_sku(store, locale, SHOE_SKU).await.unwrap().is_none(), "{store} {locale}");
            // Gone from the application's storage (Redis, or the tables) and from the tables.
            assert!(!has_alias(&reader, store, locale, SHOE_SKU).await, "{store} {locale}");
            assert!(!has_alias(&tables, store, locale, SHOE_SKU).await, "{store} {locale}");
            assert!(has_alias(&tables, store, locale, "SHOE-002").await, "{store} {locale}");
            let (_, aliases) = &shop.storage_rows()[&key(store, locale, SHOE)];
            assert_eq!(
                aliases.as_ref().unwrap().as_object().unwrap().keys().collect::<Vec<_>>(),
                [&sku_key(store, locale, "SHOE-002")]
            );
        }
        let aliases = shop.alias_keys();
        assert_eq!(aliases.len(), 6, "{aliases:?}");
        assert!(aliases.iter().all(|alias| !alias.ends_with(":sku:shoe-001")), "{aliases:?}");
    }

    async fn deleting_a_product_removes_all_its_rows_and_aliases(shop: Shop) {
        shop.with_products().await;
        shop.sql(&format!(
            "DELETE FROM spy_product_abstract_localized_attributes WHERE fk_product_abstract = {SHOE};
             DELETE FROM spy_product_abstract_store WHERE fk_product_abstract = {SHOE};
             DELETE FROM spy_product_abstract WHERE id_product_abstract = {SHOE};"
        ));
        shop.work().await;
        let reader = shop.products().await;
        let tables = shop.table_products();
        for (store, locale) in EVERYWHERE {
            assert_eq!(name(&reader, store, locale, SHOE, SHOE_SKU).await, None, "{store} {locale}");
            assert!(!has_alias(&reader, store, locale, SHOE_SKU).await, "{store} {locale}");
            assert!(!has_alias(&tables, store, locale, SHOE_SKU).await, "{store} {locale}");
        }
        let mut keys: Vec<String> = shop.storage_rows().into_keys().collect();
        keys.sort();
        assert_eq!(keys, [key("DE", "de_DE", HAT), key("DE", "en_US", HAT)]);
        assert_eq!(shop.alias_keys(), [sku_key("DE", "de_DE", HAT_SKU), sku_key("DE", "en_US", HAT_SKU)]);
        assert_eq!(name(&reader, "DE", "en_US", HAT, HAT_SKU).await.as_deref(), Some("Hat"));

        // Deleted by the product alone (its rows cascading), the hat goes the same way.
        shop.sql(&format!("DELETE FROM spy_product_abstract WHERE id_product_abstract = {HAT}"));
        shop.work().await;
        assert!(shop.storage_rows().is_empty());
        assert!(shop.alias_keys().is_empty());
        assert_eq!(name(&reader, "DE", "de_DE", HAT, HAT_SKU).await, None);
    }

    async fn stale_and_repeated_events_change_nothing(shop: Shop) {
        shop.with_products().await;
        let before = shop.storage_rows();
        let context = PublishContext {
            database: shop.app.database().clone(),
            storage: StorageTableWriter::new(
                shop.app.database().clone(),
                Arc::new(KeyBuilders::new(shop.app.settings().key_builder)),
            ),
        };
        let publisher = ProductAbstractStoragePublisher;
        let event = |table: &str, action, id, fk: Option<i64>| EventEntityTransfer {
            event: entity_event_name(table, action),
            name: table.to_owned(),
            id: Some(id),
            foreign_keys: fk
                .map(|fk| [(format!("{table}.fk_product_abstract"), json!(fk))].into())
                .unwrap_or_default(),
            ..Default::default()
        };
        // A delete of the shoe arriving after it was created again, a repeated create, a
        // store unassignment that was undone, and events of a product that never existed.
        let deliveries = [
            ("spy_product_abstract", EntityAction::Delete, vec![event("spy_product_abstract", EntityAction::Delete, SHOE, None)]),
            ("spy_product_abstract", EntityAction::Create, vec![
                event("spy_product_abstract", EntityAction::Create, HAT, None),
                event("spy_product_abstract", EntityAction::Create, SHOE, None),
                event("spy_product_abstract", EntityAction::Create, HAT, None),
            ]),
            ("spy_product_abstract_store", EntityAction::Delete, vec![
                event("spy_product_abstract_store", EntityAction::Delete, 1, Some(SHOE)),
            ]),
            ("spy_product_abstract_localized_attributes", EntityAction::Update, vec![
                event("spy_product_abstract_localized_attributes", EntityAction::Update, 1, Some(999)),
            ]),
        ];
        for _ in 0..2 {
            for (table, action, transfers) in &deliveries {
                publisher
                    .handle_bulk(&context, &entity_event_name(table, *action), transfers)
                    .unwrap_or_else(|error| panic!("{table} {action:?}: {error}"));
            }
        }
        assert_eq!(shop.storage_rows(), before, "nothing rewritten");
        assert_eq!(shop.sync_outbox(), 0, "no storage change to synchronize");

        // An event that cannot name its product fails, saying why.
        let error = publisher
            .handle_bulk(
                &context,
                &entity_event_name("spy_product_abstract_store", EntityAction::Delete),
                &[event("spy_product_abstract_store", EntityAction::Delete, 7, None)],
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("carries no foreign key spy_product_abstract_store.fk_product_abstract"), "{error}");
    }

    async fn the_hello_module_works_through_the_shop(shop: Shop) {
        let hello = shop
            .app
            .storage_tables()
            .iter()
            .find(|table| table.table == "spy_hello_spryker_message_storage")
            .expect("the Hello storage table");
        assert_eq!(hello.queue_group, "sync.storage.shop", "the project's override");
        let queues = shop.app.worker().await.expect("worker").queues();
        if shop.storage == Storage::Redis {
            assert!(queues.contains(&"sync.storage.shop".to_owned()), "{queues:?}");
            assert!(queues.contains(&"sync.storage.product".to_owned()), "{queues:?}");
        }
        assert!(!queues.contains(&"sync.storage.hello".to_owned()), "{queues:?}");

        shop.sql("INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) \
                  VALUES (7, 'John', 'Hello Spryker!')");
        let report = shop.work().await;
        assert_eq!(report.handled, 1, "{report:?}");
        if shop.storage == Storage::Redis {
            assert_eq!(report.synchronized, 1, "through sync.storage.shop: {report:?}");
        }
        let reader = MessageStorageReader::new(shop.app.client().await.expect("client"));
        let message = reader.get_message_by_id(7).await.unwrap().expect("message 7");
        assert_eq!(message.name.as_deref(), Some("John"));
        assert_eq!(message.message.as_deref(), Some("Hello Spryker!"));
    }
}
