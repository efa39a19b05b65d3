//! Bad input never panics: the decoders of outbox rows, event messages and sync messages, and
//! the key builder, given arbitrary bytes, arbitrary JSON, near-misses of their formats and
//! damaged entries of the corpus, either decode or return an error that says what is wrong.
//!
//! The corpus, `tests/corpus/<format>/`, holds real messages of each format (`ok-*`, which
//! must decode: the original's spellings among them) and known bad ones (`bad-*`, which must
//! not). A message that once got through wrongly belongs there.

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use pubsync_shared::event::EventEntityTransfer;
use pubsync_shared::key::{KeyBuilder, KeyGenerator, SynchronizationData, escape_key};
use pubsync_shared::message::{EventQueueMessage, SyncMessage};
use pubsync_test_support::corpus::{self, Entry};
use serde_json::Value;

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Field names that the formats use, and others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("write".to_owned()),
        Just("delete".to_owned()),
        Just("key".to_owned()),
        Just("value".to_owned()),
        Just("resource".to_owned()),
        Just("_timestamp".to_owned()),
        Just("listenerClassName".to_owned()),
        Just("eventName".to_owned()),
        Just("transferData".to_owned()),
        Just("events".to_owned()),
        Just("event".to_owned()),
        Just("id".to_owned()),
        Just("name".to_owned()),
        Just("foreignKeys".to_owned()),
        Just("modifiedColumns".to_owned()),
        "[a-z_]{1,8}",
    ]
}

/// Bytes that are arbitrary, or JSON, or JSON cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json().prop_map(|value| value.to_string().into_bytes()),
        (json(), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let text = value.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            text[..at].to_vec()
        }),
    ]
}

/// `right` or, one time in three, something of another shape.
fn mostly(right: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![2 => right, 1 => json()].boxed()
}

fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (values, prop::collection::vec(any::<bool>(), names.len())).prop_map(move |(values, keep)| {
        let fields = names
            .iter()
            .zip(values)
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|((name, value), _)| ((*name).to_owned(), value));
        Value::Object(fields.collect())
    })
}

/// Sync messages close to the format: each part of the right shape, most of the time.
fn near_sync_message() -> impl Strategy<Value = Vec<u8>> {
    let payload = object(vec![
        ("key", mostly(".{0,16}".prop_map(Value::String))),
        (
            "value",
            mostly(
                object(vec![
                    ("_timestamp", mostly(any::<f64>().prop_map(Value::from))),
                    ("name", json().boxed()),
                ])
                .boxed(),
            ),
        ),
        ("resource", mostly("[a-z]{0,8}".prop_map(Value::String))),
        ("store", json().boxed()),
        ("params", json().boxed()),
    ]);
    let message = (prop_oneof![Just("write"), Just("delete")], payload)
        .prop_map(|(operation, payload)| serde_json::json!({ operation: payload }))
        .boxed();
    prop_oneof![
        message.clone().prop_map(|m| m.to_string().into_bytes()),
        prop::collection::vec(message, 0..4).prop_map(|m| Value::Array(m).to_string().into_bytes()),
    ]
}

/// Outbox rows close to the compact form `[table, action, id, modified, foreignKeys, …]`.
fn near_compact_outbox_row() -> impl Strategy<Value = String> {
    (
        mostly("[a-z_]{1,8}".prop_map(Value::String)),
        mostly(prop_oneof![Just("create"), Just("update"), Just("delete")].prop_map(Value::from)),
        mostly(any::<i64>().prop_map(Value::from)),
        prop::collection::vec(json(), 0..5),
    )
        .prop_map(|(table, action, id, rest)| {
            let mut row = vec![table, action, id];
            row.extend(rest);
            Value::Array(row).to_string()
        })
}

/// The corpus of `format`.
fn read_corpus(format: &str) -> Vec<Entry> {
    corpus::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(format),
    )
}

static OUTBOX: LazyLock<Vec<Entry>> = LazyLock::new(|| read_corpus("outbox"));
static EVENT: LazyLock<Vec<Entry>> = LazyLock::new(|| read_corpus("event"));
static SYNC: LazyLock<Vec<Entry>> = LazyLock::new(|| read_corpus("sync"));

/// An entry of `corpus` damaged once, as a fuzzer would: a byte changed, a range cut out,
/// bytes put in, a range repeated, or the tail of another entry spliced on.
fn damaged(corpus: &'static LazyLock<Vec<Entry>>) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0..5u8,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 1..8),
    )
        .prop_map(move |(entry, other, kind, a, b, bytes)| {
            let text = &corpus[entry.index(corpus.len())].bytes;
            let (a, b) = (a.index(text.len() + 1), b.index(text.len() + 1));
            let (start, end) = (a.min(b), a.max(b));
            let mut out = text[..start].to_vec();
            match kind {
                0 if start < text.len() => {
                    out.push(text[start] ^ bytes[0]);
                    out.extend_from_slice(&text[start + 1..]);
                }
                1 => out.extend_from_slice(&text[end..]),
                2 => {
                    out.extend_from_slice(&bytes);
                    out.extend_from_slice(&text[start..]);
                }
                3 => {
                    out.extend_from_slice(&text[start..end]);
                    out.extend_from_slice(&text[start..]);
                }
                _ => {
                    let other = &corpus[other.index(corpus.len())].bytes;
                    out.extend_from_slice(&other[b.min(other.len())..]);
                }
            }
            out
        })
}

/// An outbox row decodes, or gives an error that says what is wrong; a row that is not UTF-8
/// never reaches the decoder (the relay sends it to the error queue as bytes).
fn outbox_row_decodes_or_says_why(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(());
    };
    if let Err(error) = EventEntityTransfer::from_outbox(text) {
        prop_assert!(!error.to_string().is_empty());
    }
    Ok(())
}

/// An event message decodes, or gives an error that says it is an event message that is wrong.
fn event_message_decodes_or_says_why(body: &[u8]) -> Result<(), TestCaseError> {
    if let Err(error) = EventQueueMessage::decode(body) {
        prop_assert!(error.to_string().contains("event"), "{error}");
    }
    Ok(())
}

/// Every entry of `corpus` decodes with `decode` when it is an `ok-*` one, and otherwise
/// fails with an error that holds `says`.
fn decode_as_named(
    format: &str,
    corpus: &[Entry],
    says: &str,
    decode: impl Fn(&[u8]) -> Result<(), String>,
) {
    for entry in corpus {
        let decoded = decode(&entry.bytes);
        let name = &entry.name;
        assert_eq!(
            decoded.is_ok(),
            entry.is_ok(),
            "{format}/{name}: {decoded:?}"
        );
        if let Err(error) = decoded {
            assert!(error.contains(says), "{format}/{name}: {error}");
        }
    }
}

#[test]
fn corpus_entries_decode_as_their_names_say() {
    decode_as_named("outbox", &OUTBOX, "", |bytes| {
        let text = std::str::from_utf8(bytes).map_err(|error| error.to_string())?;
        EventEntityTransfer::from_outbox(text)
            .map(drop)
            .map_err(|error| error.to_string())
    });
    decode_as_named("event", &EVENT, "event", |bytes| {
        EventQueueMessage::decode(bytes)
            .map(drop)
            .map_err(|error| error.to_string())
    });
    decode_as_named("sync", &SYNC, "sync", |bytes| {
        SyncMessage::decode_batch(bytes)
            .map(drop)
            .map_err(|error| error.to_string())
    });
}

/// A sync body decodes into messages that can be asked for their version and encoded again,
/// or gives an error that says it is a sync message that is wrong.
fn decodes_or_says_why(body: &[u8]) -> Result<(), TestCaseError> {
    match SyncMessage::decode_batch(body) {
        Ok(messages) => {
            for message in &messages {
                let _ = message.version();
                prop_assert_eq!(
                    SyncMessage::decode(&message.encode()).unwrap(),
                    message.clone()
                );
            }
        }
        Err(error) => prop_assert!(error.to_string().contains("sync"), "{error}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn outbox_rows_decode_or_say_why(body in body()) {
        let text = String::from_utf8_lossy(&body);
        if let Err(error) = EventEntityTransfer::from_outbox(&text) {
            prop_assert!(!error.to_string().is_empty());
        }
        // The compact form: an array whose first character tells it apart.
        let compact = format!("[{}", &text);
        let _ = EventEntityTransfer::from_outbox(&compact);
    }

    #[test]
    fn event_messages_decode_or_say_why(body in body()) {
        event_message_decodes_or_says_why(&body)?;
    }

    #[test]
    fn sync_messages_decode_or_say_why(body in body()) {
        decodes_or_says_why(&body)?;
    }

    #[test]
    fn keys_are_built_from_any_text_without_the_characters_a_key_may_not_hold(
        resource in "[a-z_]{1,12}",
        store in proptest::option::of(".{0,6}"),
        locale in proptest::option::of(".{0,6}"),
        reference in proptest::option::of(".{0,24}"),
        normalized in any::<bool>(),
    ) {
        let data = SynchronizationData { reference: reference.clone(), store, locale };
        let builder = KeyBuilder { single_key_format_normalized: normalized };
        let key = builder.generate_key(&resource, &data);
        prop_assert!(key.starts_with(&resource), "{key}");
        if let Some(reference) = reference {
            let escaped = escape_key(&reference);
            prop_assert!(!escaped.contains([' ', '"', '\'', '\0', '\n', '\r']), "{escaped:?}");
        }
    }

    #[test]
    fn damaged_outbox_rows_of_the_corpus_decode_or_say_why(body in damaged(&OUTBOX)) {
        outbox_row_decodes_or_says_why(&body)?;
    }

    #[test]
    fn damaged_event_messages_of_the_corpus_decode_or_say_why(body in damaged(&EVENT)) {
        event_message_decodes_or_says_why(&body)?;
    }

    #[test]
    fn damaged_sync_messages_of_the_corpus_decode_or_say_why(body in damaged(&SYNC)) {
        decodes_or_says_why(&body)?;
    }

    #[test]
    fn near_sync_messages_decode_or_say_why(body in near_sync_message()) {
        decodes_or_says_why(&body)?;
    }

    #[test]
    fn near_compact_outbox_rows_decode_or_say_why(row in near_compact_outbox_row()) {
        match EventEntityTransfer::from_outbox(&row) {
            Ok(transfer) => {
                // What decoded reads back the same from the original's form.
                let original = transfer.to_original_outbox_json().to_string();
                let again = EventEntityTransfer::from_outbox(&original).unwrap();
                prop_assert_eq!(again.id, transfer.id);
                prop_assert_eq!(again.event, transfer.event);
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}
