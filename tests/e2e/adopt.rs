//! Adoption: `setup` on a database where the shop's tables already exist, with rows, created
//! by the shop's own schema tooling. They are checked, never rewritten; capture starts with
//! the next change; a table that does not match its definition stops setup before anything
//! changes.

use pubsync_database::Dialect;
use pubsync_tests::TestApp;

/// One test per database compiled in, each given a fresh application before setup.
macro_rules! on_every_empty_database {
    ($(fn $name:ident($t:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($t: TestApp) $body

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                case(TestApp::before_setup(Dialect::Sqlite, "").expect("sqlite needs no server")).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                if let Some(t) = TestApp::before_setup(Dialect::Postgres, "") {
                    case(t).await;
                }
            }

            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread")]
            async fn mysql() {
                if let Some(t) = TestApp::before_setup(Dialect::Mysql, "") {
                    case(t).await;
                }
            }
        }
    )*};
}

/// The shop's own message table, as its tooling made it: a wider name, a column pubsync does
/// not know, ids that do not start at 1 and have gaps.
fn create_shop_table(t: &TestApp, message_type: &str) {
    let id = match t.dialect() {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "SERIAL PRIMARY KEY",
        Dialect::Mysql => "INT AUTO_INCREMENT PRIMARY KEY",
    };
    t.sql(&format!(
        "CREATE TABLE spy_hello_spryker_message (
            id_hello_spryker_message {id},
            name VARCHAR(400) NOT NULL,
            message {message_type},
            created_by VARCHAR(32) DEFAULT 'import'
        )"
    ));
    let old = if message_type == "TEXT" {
        "'old'"
    } else {
        "NULL"
    };
    t.sql(&format!(
        "INSERT INTO spy_hello_spryker_message (id_hello_spryker_message, name, message) VALUES
            (7, 'seven', {old}), (9, 'nine', NULL), (40, 'forty', {old})"
    ));
    if t.dialect() == Dialect::Postgres {
        // What an import does after inserting ids of its own.
        t.sql("SELECT setval(pg_get_serial_sequence('spy_hello_spryker_message', 'id_hello_spryker_message'), 40)");
    }
}

/// The health check's probe table, which every application adopts first.
const HEALTH_CHECK: &str = pubsync_health::PROBE_TABLE;

fn rows(t: &TestApp) -> i64 {
    t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message WHERE id_hello_spryker_message IN (7, 9, 40) AND name IN ('seven', 'nine', 'forty')")
}

on_every_empty_database! {
    fn setup_adopts_an_existing_table_and_captures_later_changes(t) {
        create_shop_table(&t, "TEXT");
        let report = t.app.setup().expect("setup on an existing table");
        // The health check's probe table is pubsync's own module's: created on a fresh database.
        assert_eq!(report.adoption.created, [HEALTH_CHECK], "{report:?}");
        assert_eq!(report.adoption.existing, ["spy_hello_spryker_message"]);
        assert_eq!(report.adoption.uncaptured_rows, [("spy_hello_spryker_message", 3)]);
        assert_eq!(
            report.adoption.triggers_installed,
            [HEALTH_CHECK, "spy_hello_spryker_message"]
        );
        assert_eq!(rows(&t), 3, "the shop's rows are untouched");
        assert!(t.outbox().is_empty(), "setup captures nothing by itself");

        // Setup again changes nothing.
        let again = t.app.setup().expect("second setup");
        assert!(again.migrations.is_empty() && again.adoption.triggers_installed.is_empty(), "{again:?}");
        // A trigger dropped by hand is put back by the next setup.
        let dropped = match t.dialect() {
            Dialect::Postgres => "DROP TRIGGER pubsync_spy_hello_spryker_message_update ON spy_hello_spryker_message",
            Dialect::Sqlite | Dialect::Mysql => "DROP TRIGGER pubsync_spy_hello_spryker_message_update",
        };
        t.sql(dropped);
        let repaired = t.app.setup().expect("setup after a dropped trigger");
        assert_eq!(repaired.adoption.triggers_installed, ["spy_hello_spryker_message"]);

        t.sql("UPDATE spy_hello_spryker_message SET message = 'new' WHERE id_hello_spryker_message = 9");
        t.sql("INSERT INTO spy_hello_spryker_message (name, message) VALUES ('next', 'hi')");
        let events = t.outbox();
        assert_eq!(events.len(), 2, "{events:#?}");
        assert_eq!(events[0]["event"], "Entity.spy_hello_spryker_message.update");
        assert_eq!(events[0]["id"], 9);
        assert_eq!(events[1]["event"], "Entity.spy_hello_spryker_message.create");
        assert!(events[1]["id"].as_i64().unwrap() > 40, "the shop's sequence goes on: {}", events[1]);
        t.work().await;
        let keys: Vec<String> = t.message_storage().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys.len(), 2, "only the changed rows are published: {keys:?}");
        assert_eq!(keys[0], "message:9");
        assert_eq!(rows(&t), 3);
    }

    fn a_definition_without_capture_removes_the_triggers_setup_installed(t) {
        use pubsync_database::{DialectFingerprints, DialectStatements, SourceTable};
        const NONE: DialectStatements = DialectStatements { sqlite: &[], postgres: &[], mysql: &[] };
        static WITHOUT_CAPTURE: SourceTable = SourceTable {
            triggers: NONE,
            trigger_fingerprints: DialectFingerprints { sqlite: "", postgres: "", mysql: "" },
            trigger_names: &[],
            ..pubsync_hello::generated::source_tables::SPY_HELLO_SPRYKER_MESSAGE
        };
        t.app.setup().expect("setup");
        let database = t.app.database();
        assert_eq!(database.table_triggers("spy_hello_spryker_message").unwrap().len(), 3);
        let adoption = pubsync_backend::adopt::adopt(database, &[&WITHOUT_CAPTURE]).unwrap();
        assert_eq!(adoption.triggers_removed, ["spy_hello_spryker_message"]);
        assert!(database.table_triggers("spy_hello_spryker_message").unwrap().is_empty());
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('not captured')");
        assert!(t.outbox().is_empty());
        // Nothing left to remove the next time.
        let again = pubsync_backend::adopt::adopt(database, &[&WITHOUT_CAPTURE]).unwrap();
        assert!(again.triggers_removed.is_empty(), "{again:?}");
    }

    fn setup_creates_a_missing_table(t) {
        let report = t.app.setup().expect("setup");
        assert_eq!(report.adoption.created, [HEALTH_CHECK, "spy_hello_spryker_message"]);
        assert!(report.adoption.existing.is_empty());
        t.sql("INSERT INTO spy_hello_spryker_message (name) VALUES ('fresh')");
        assert_eq!(t.outbox().len(), 1);
    }

    fn a_mismatching_table_fails_setup_naming_table_and_column_and_changes_nothing(t) {
        // `message` holds integers here; the definition says text.
        create_shop_table(&t, "INTEGER");
        t.sql("ALTER TABLE spy_hello_spryker_message DROP COLUMN name");
        let error = format!("{:#}", t.app.setup().expect_err("a mismatching table"));
        assert!(error.contains("spy_hello_spryker_message.name: the column is missing"), "{error}");
        assert!(error.contains("crates/pubsync-hello/schema/spy_hello_spryker.schema.xml"), "{error}");
        assert!(error.contains("spy_hello_spryker_message.message: the column is"), "{error}");
        assert!(
            !t.app.database().table_exists(pubsync_database::names::outbox::TABLE).unwrap(),
            "nothing of pubsync was created"
        );
        assert_eq!(t.count("SELECT COUNT(*) AS n FROM spy_hello_spryker_message"), 3);
    }
}

mod checks {
    use pubsync_database::{CatalogColumn, TypeFamily};

    fn column(name: &str, family: TypeFamily, nullable: bool, key: Option<usize>) -> CatalogColumn {
        CatalogColumn {
            name: name.into(),
            declared_type: format!("{family:?}").to_lowercase(),
            family,
            nullable,
            primary_key: key,
        }
    }

    #[test]
    fn a_nullable_required_column_and_another_primary_key_are_mismatches() {
        let table = &pubsync_hello::generated::source_tables::SPY_HELLO_SPRYKER_MESSAGE;
        let columns = [
            column("id_hello_spryker_message", TypeFamily::Integer, false, None),
            column("name", TypeFamily::Text, true, Some(0)),
            column("message", TypeFamily::Json, true, None),
        ];
        let reasons: Vec<String> = pubsync_backend::adopt::check(table, &columns)
            .into_iter()
            .map(|m| format!("{:?}: {}", m.column, m.reason))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:#?}");
        assert!(
            reasons[0].starts_with("Some(\"name\"): the column allows NULL"),
            "{reasons:#?}"
        );
        assert!(
            reasons[1].starts_with(
                "None: the primary key is (name) in the database, but (id_hello_spryker_message)"
            ),
            "{reasons:#?}"
        );
    }
}
