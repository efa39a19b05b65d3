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
use pubsync_backend::backfill::verify::{VerifyOptions, VerifyReport, verify};
use pubsync_backend::backfill::{NoProgress, Stop};
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
        let settings = Settings::load(Some(&config), []).expect("settings");
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
            adoption.existing.contains(&"spy_store") && adoption.existing.contains(&"spy_locale"),
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

    /// `verify` of the products, repairing with `repair`; the sync queues are worked off
    /// after a repair, so its changes reach Redis.
    async fn verify(&self, repair: bool) -> VerifyReport {
        let worker = self.app.worker().await.expect("worker");
        let tables: Vec<_> = shop_product::SYNCHRONIZATION.iter().collect();
        let options = VerifyOptions {
            repair,
            ..VerifyOptions::default()
        };
        let report = verify(
            &worker,
            &shop_product::TRIGGER_SOURCE,
            &tables,
            &options,
            &NoProgress,
            &Stop::new(),
        )
        .await
        .expect("verify");
        if repair {
            self.work().await;
        }
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

#[path = "shop/cases.rs"]
mod cases;
