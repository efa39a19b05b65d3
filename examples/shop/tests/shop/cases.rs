//! The cases, each run on every database and storage by `shop_tests!`.

use super::*;

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

    async fn verify_knows_rows_per_store_and_locale_and_their_aliases(shop: Shop) {
        shop.with_products().await;
        let report = shop.verify(false).await;
        assert!(report.is_clean(), "alias keys are no orphans: {report:#?}");
        assert_eq!((report.entities, report.expected), (2, 6));
        // A row of a store the hat is not assigned to, planted by hand and never synced.
        let (at_hat, column) = (key("AT", "de_DE", HAT), shop.quote("key"));
        shop.sql(&format!(
            "INSERT INTO spy_product_abstract_storage (fk_product_abstract, {column}, data, store, locale) \
             VALUES ({HAT}, '{at_hat}', '{{}}', 'AT', 'de_DE')"
        ));
        shop.sql("DELETE FROM pubsync_sync_outbox");
        let report = shop.verify(false).await;
        assert_eq!(report.storage.orphaned.first, std::slice::from_ref(&at_hat), "{report:#?}");
        assert_eq!(report.storage.missing.count + report.storage.stale.count, 0);
        let repaired = shop.verify(true).await;
        assert_eq!(repaired.repairs.unwrap().republished, 1, "only the hat");
        assert!(!shop.storage_rows().contains_key(&at_hat));
        assert!(shop.verify(false).await.is_clean());
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
