//! Bad input never panics: schema and transfer files, the repository's own and those of the
//! corpus, damaged at random (a range cut out, text put in, a range repeated), either parse
//! or give an error naming the file.
//!
//! The corpus, `tests/corpus/<schema|transfer>/`, holds files that must parse (`ok-*`) and
//! files that must not (`bad-*`: entity expansion, deep nesting, missing names, broken XML).

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use pubsync_codegen::schema::{SourceFile, parse_schemas};
use pubsync_codegen::transfer::parse_transfers;
use pubsync_test_support::corpus::{self, Entry};

/// Schema files of the repository's modules, beside the corpus.
const SCHEMAS: [&str; 3] = [
    include_str!("../../pubsync-hello/schema/spy_hello_spryker.schema.xml"),
    include_str!("../../../examples/shop/crates/product/schema/spy_product.schema.xml"),
    include_str!("../../pubsync-backend/schema/pubsync_event_behavior.schema.xml"),
];
/// Transfer files of the repository's modules, beside the corpus.
const TRANSFERS: [&str; 2] = [
    include_str!("../../pubsync-hello/transfer/hello_spryker.transfer.xml"),
    include_str!("../../../examples/shop/crates/product/transfer/product.transfer.xml"),
];

/// The corpus of `kind`.
fn read_corpus(kind: &str) -> Vec<Entry> {
    corpus::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(kind),
    )
}

/// Every seed of `kind`: the repository's files, then the corpus.
fn seeds(repository: &[&str], kind: &str) -> Vec<String> {
    let mut seeds: Vec<String> = repository.iter().map(|text| (*text).to_owned()).collect();
    seeds.extend(read_corpus(kind).iter().map(Entry::text));
    seeds
}

static SCHEMA_SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| seeds(&SCHEMAS, "schema"));
static TRANSFER_SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| seeds(&TRANSFERS, "transfer"));

/// A seed of `seeds` with one damage applied at places chosen by `a` and `b`.
fn damaged(seeds: &'static LazyLock<Vec<String>>) -> impl Strategy<Value = String> {
    (
        any::<prop::sample::Index>(),
        0..3u8,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        "[<>/=\"' a-z!&;\\-]{0,12}",
    )
        .prop_map(move |(seed, kind, a, b, insert)| {
            let bytes = seeds[seed.index(seeds.len())].as_bytes();
            let len = bytes.len();
            let (a, b) = (a.index(len + 1), b.index(len + 1));
            let (start, end) = (a.min(b), a.max(b));
            let mut out = Vec::with_capacity(len + insert.len() + (end - start));
            match kind {
                0 => {
                    out.extend_from_slice(&bytes[..start]);
                    out.extend_from_slice(&bytes[end..]);
                }
                1 => {
                    out.extend_from_slice(&bytes[..start]);
                    out.extend_from_slice(insert.as_bytes());
                    out.extend_from_slice(&bytes[start..]);
                }
                _ => {
                    out.extend_from_slice(&bytes[..end]);
                    out.extend_from_slice(&bytes[start..end]);
                    out.extend_from_slice(&bytes[end..]);
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
}

fn file(path: &str, text: String) -> SourceFile {
    SourceFile {
        path: path.to_owned(),
        package: Some("damaged".to_owned()),
        text,
    }
}

/// Every file of the corpus of `kind` parses with `parse` when it is an `ok-*` one, and
/// otherwise fails with an error naming it.
fn parse_as_named(kind: &str, parse: impl Fn(&[SourceFile]) -> Result<(), String>) {
    for entry in read_corpus(kind) {
        let path = format!("{kind}/{}", entry.name);
        let parsed = parse(&[file(&path, entry.text())]);
        assert_eq!(parsed.is_ok(), entry.is_ok(), "{path}: {parsed:?}");
        if let Err(error) = parsed {
            assert!(error.contains(&entry.name), "{path}: {error}");
        }
    }
}

#[test]
fn corpus_files_parse_as_their_names_say() {
    parse_as_named("schema", |files| {
        parse_schemas(files).map(drop).map_err(|e| e.to_string())
    });
    parse_as_named("transfer", |files| {
        parse_transfers(files).map(drop).map_err(|e| e.to_string())
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_schema_files_parse_or_name_the_file(text in damaged(&SCHEMA_SEEDS)) {
        if let Err(error) = parse_schemas(&[file("schema/damaged.schema.xml", text)]) {
            let message = error.to_string();
            prop_assert!(message.contains("damaged.schema.xml"), "{message}");
        }
    }

    #[test]
    fn damaged_transfer_files_parse_or_name_the_file(text in damaged(&TRANSFER_SEEDS)) {
        if let Err(error) = parse_transfers(&[file("transfer/damaged.transfer.xml", text)]) {
            let message = error.to_string();
            prop_assert!(message.contains("damaged.transfer.xml"), "{message}");
        }
    }
}
