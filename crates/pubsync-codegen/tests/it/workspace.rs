//! Codegen over a workspace of several packages, as a shop's is: which package's files a
//! table's code goes to, the original's merge order, and `--check` on stale and orphaned
//! files. The workspaces are real directories; the last tests run `cargo metadata` and
//! rustfmt on them, as `cargo xtask codegen` does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pubsync_codegen::{Config, Error, Options, Package, generate};

const OUTBOX: &str = r#"<database name="zed">
    <table name="spy_event_behavior_entity_change">
        <column name="id_event_behavior_entity_change" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="data" type="LONGVARCHAR" required="true"/>
    </table>
</database>"#;

const PRODUCT: &str = r#"<database name="zed">
    <table name="spy_product">
        <column name="id_product" type="INTEGER" primaryKey="true" autoIncrement="true"/>
        <column name="sku" type="VARCHAR" required="true"/>
        <behavior name="event"><parameter name="all" column="*"/></behavior>
    </table>
    <table name="spy_product_storage">
        <column name="id_product_storage" type="BIGINT" primaryKey="true" autoIncrement="true"/>
        <column name="fk_product" type="INTEGER" required="true"/>
        <behavior name="synchronization">
            <parameter name="resource" value="product"/>
            <parameter name="key_suffix_column" value="fk_product"/>
        </behavior>
    </table>
</database>"#;

/// The project-level override: the product storage on a queue of its own.
const OVERRIDE: &str = r#"<database name="zed">
    <table name="spy_product_storage">
        <behavior name="synchronization"><parameter name="queue_group" value="sync.storage.project"/></behavior>
    </table>
</database>"#;

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn package(root: &Path, name: &str, dir: &str, member: bool, depends_on: &[&str]) -> Package {
    Package {
        name: name.into(),
        dir: root.join(dir),
        display: if member { dir.into() } else { name.into() },
        member,
        depends_on: depends_on
            .iter()
            .map(|d| (*d).to_owned())
            .collect::<BTreeSet<_>>(),
    }
}

fn config(root: &Path) -> Config {
    Config {
        root: root.to_path_buf(),
        transfers: "crates/shared/src/transfer/generated.rs".into(),
        framework: Vec::new(),
    }
}

fn options() -> Options {
    Options {
        version: "20260101000000".into(),
        update_snapshot: false,
    }
}

fn paths(output: &pubsync_codegen::Output) -> Vec<&str> {
    output.files.iter().map(|f| f.path.as_str()).collect()
}

fn file<'a>(output: &'a pubsync_codegen::Output, path: &str) -> &'a str {
    &output
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} not generated: {:?}", paths(output)))
        .contents
}

/// A workspace of a core framework package (a dependency), a product module and an override
/// package whose name sorts first.
fn shop(root: &Path, override_depends_on_product: bool) -> Vec<Package> {
    write(root, "vendor/backend/schema/outbox.schema.xml", OUTBOX);
    write(root, "crates/product/schema/product.schema.xml", PRODUCT);
    write(
        root,
        "crates/a-project/schema/override.schema.xml",
        OVERRIDE,
    );
    let project_deps: &[&str] = if override_depends_on_product {
        &["backend", "product"]
    } else {
        &["backend"]
    };
    pubsync_codegen::workspace::merge_order(vec![
        package(root, "a-project", "crates/a-project", true, project_deps),
        package(root, "product", "crates/product", true, &["backend"]),
        package(root, "backend", "vendor/backend", false, &[]),
    ])
}

#[test]
fn an_override_in_an_alphabetically_earlier_crate_stays_with_the_defining_crate() {
    let dir = tempfile::tempdir().unwrap();
    let packages = shop(dir.path(), true);
    let output = generate(&config(dir.path()), &packages, &options()).unwrap();
    let synchronization = file(&output, "crates/product/src/generated/synchronization.rs");
    assert!(
        synchronization.contains("queue_group: \"sync.storage.project\""),
        "{synchronization}"
    );
    assert!(
        !paths(&output)
            .iter()
            .any(|p| p.starts_with("crates/a-project/")),
        "{:?}",
        paths(&output)
    );
    // The shop's table is a source table (setup adopts it), the storage table migrates.
    let sources = file(&output, "crates/product/src/generated/source_tables.rs");
    assert!(sources.contains("name: \"spy_product\""), "{sources}");
    assert!(!sources.contains("spy_product_storage"));
    let migration = &output.migrations[0];
    assert_eq!(migration.folder, "crates/product/migrations");
    let up = &migration.files[0].contents;
    assert!(up.contains("CREATE TABLE \"spy_product_storage\""), "{up}");
    assert!(
        !up.contains("CREATE TABLE \"spy_product\" "),
        "never a shop's table: {up}"
    );
    assert!(paths(&output).contains(&"crates/product/src/generated/migrations.rs"));
}

#[test]
fn an_override_by_a_package_that_does_not_depend_on_the_definer_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let packages = shop(dir.path(), false);
    let Err(Error::Definitions(errors)) = generate(&config(dir.path()), &packages, &options())
    else {
        panic!("expected a definition error");
    };
    let message = errors[0].to_string();
    assert!(
        message.contains(
            "table `spy_product_storage` is declared by packages `a-project` and `product` \
             (crates/product/schema/product.schema.xml), and neither depends on the other"
        ),
        "{message}"
    );
}

#[test]
fn a_core_table_overridden_by_the_project_is_generated_in_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "vendor/backend/schema/outbox.schema.xml", OUTBOX);
    write(root, "vendor/product/schema/product.schema.xml", PRODUCT);
    write(root, "schema/override.schema.xml", OVERRIDE);
    let packages = pubsync_codegen::workspace::merge_order(vec![
        package(root, "backend", "vendor/backend", false, &[]),
        package(root, "product", "vendor/product", false, &["backend"]),
        Package {
            display: String::new(),
            ..package(root, "shop", "", true, &["backend", "product"])
        },
    ]);
    let output = generate(&config(root), &packages, &options()).unwrap();
    let synchronization = file(&output, "src/generated/synchronization.rs");
    assert!(synchronization.contains("queue_group: \"sync.storage.project\""));
    assert!(
        synchronization.contains("vendor/product") || synchronization.contains("product/schema")
    );
    // Only what the project touches: the core module's own source table stays with it.
    assert!(!paths(&output).contains(&"src/generated/source_tables.rs"));
    // The queue group is not part of the schema: the core's migration already made the table.
    assert!(output.migrations.is_empty(), "{:?}", output.migrations);
}

/// A real workspace on disk: `cargo metadata` finds the packages, `cli::run` writes and checks.
fn cargo_workspace(root: &Path) {
    write(
        root,
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"crates/*\"]\n",
    );
    write(
        root,
        "crates/backend/Cargo.toml",
        "[package]\nname = \"backend\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write(root, "crates/backend/src/lib.rs", "");
    write(root, "crates/backend/schema/outbox.schema.xml", OUTBOX);
    write(
        root,
        "crates/product/Cargo.toml",
        "[package]\nname = \"product\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nbackend = { path = \"../backend\" }\n",
    );
    write(root, "crates/product/src/lib.rs", "");
    write(root, "crates/product/schema/product.schema.xml", PRODUCT);
}

#[test]
fn check_fails_on_a_stale_and_on_an_orphaned_generated_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cargo_workspace(root);
    // The definer of the outbox is a member here: pubsync's own layout.
    let framework = |root: &Path| Config {
        framework: vec!["backend".into()],
        ..config(root)
    };
    #[allow(clippy::disallowed_methods)] // the cargo running the tests, as xtask does
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let codegen = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        pubsync_codegen::cli::run(&framework(root), &cargo, &args).unwrap()
    };
    assert_eq!(codegen(&[]), ExitCode::SUCCESS);
    assert_eq!(codegen(&["--check"]), ExitCode::SUCCESS);
    assert!(
        root.join("crates/product/src/generated/source_tables.rs")
            .is_file()
    );
    assert!(
        root.join("migrations/schema.snapshot.xml").is_file(),
        "the outbox migrates at the root"
    );

    // Stale: a generated file edited by hand.
    let tables = root.join("crates/product/src/generated/tables.rs");
    let original = std::fs::read_to_string(&tables).unwrap();
    std::fs::write(&tables, format!("{original}\n// edited\n")).unwrap();
    assert_eq!(codegen(&["--check"]), ExitCode::FAILURE);
    std::fs::write(&tables, &original).unwrap();
    assert_eq!(codegen(&["--check"]), ExitCode::SUCCESS);

    // Orphaned: the product loses its storage table; its synchronization.rs is left behind.
    let storage = PRODUCT
        .find("<table name=\"spy_product_storage\">")
        .unwrap();
    let without_storage = format!("{}</database>", &PRODUCT[..storage]);
    write(
        root,
        "crates/product/schema/product.schema.xml",
        &without_storage,
    );
    assert_eq!(codegen(&["--check"]), ExitCode::FAILURE);
    let synchronization = root.join("crates/product/src/generated/synchronization.rs");
    assert!(synchronization.is_file(), "--check writes nothing");
    assert_eq!(codegen(&[]), ExitCode::SUCCESS);
    assert!(
        !synchronization.exists(),
        "codegen removes what nothing generates"
    );
    // The dropped table got its migration.
    let migrations: Vec<PathBuf> = std::fs::read_dir(root.join("crates/product/migrations/sqlite"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(migrations.len(), 2, "{migrations:?}");
    assert_eq!(codegen(&["--check"]), ExitCode::SUCCESS);
}

#[test]
fn a_member_extends_a_core_transfer_in_the_shops_transfer_crate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let transfers =
        |body: &str| format!("<transfers xmlns=\"spryker:transfer-01\">{body}</transfers>");
    write(
        root,
        "vendor/hello/transfer/hello.transfer.xml",
        &transfers(
            "<transfer name=\"Message\"><property name=\"name\" type=\"string\"/></transfer>\
             <transfer name=\"CoreOnly\"><property name=\"x\" type=\"int\"/></transfer>",
        ),
    );
    write(
        root,
        "crates/product/transfer/product.transfer.xml",
        &transfers(
            "<transfer name=\"Message\"><property name=\"shopNote\" type=\"string\"/></transfer>\
             <transfer name=\"Product\"><property name=\"message\" type=\"Message\"/></transfer>",
        ),
    );
    let packages = pubsync_codegen::workspace::merge_order(vec![
        package(root, "hello", "vendor/hello", false, &[]),
        package(root, "product", "crates/product", true, &["hello"]),
    ]);
    let output = generate(&config(root), &packages, &options()).unwrap();
    let code = file(&output, "crates/shared/src/transfer/generated.rs");
    let message = &code[code.find("pub struct MessageTransfer").unwrap()..];
    let message = &message[..message.find('}').unwrap()];
    assert!(
        message.contains("pub name: Option<String>"),
        "the core's property: {message}"
    );
    assert!(
        message.contains("pub shop_note: Option<String>"),
        "the shop's: {message}"
    );
    assert!(code.contains("pub struct ProductTransfer"));
    assert!(
        !code.contains("CoreOnlyTransfer"),
        "a transfer no member touches stays in its crate"
    );
}
