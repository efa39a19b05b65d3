//! A storage row's data with its version appended as `_timestamp`, without taking the data
//! apart: the value direct synchronization writes for a table without alias keys.
//!
//! Parsing the data into an object, inserting the field and writing the object out again
//! allocated every key and value of every row, and was the larger part of a direct relay's
//! own work. The data is checked instead (one pass that keeps nothing but whether a
//! top-level key is `_timestamp`) and the field spliced in before its closing brace. Data that
//! serde_json wrote (what publishers store) comes out byte for byte as the object written out
//! again would; other data keeps its own spacing and escapes, and reads as the same JSON.

use std::fmt;

use pubsync_shared::message::TIMESTAMP_FIELD;
use pubsync_shared::version::Version;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// `data` with `"_timestamp":<version in seconds>` as its last top-level field, or `None` when
/// `data` is not a JSON object or has a `_timestamp` of its own (which the caller replaces by
/// taking the object apart).
pub(crate) fn stamped(data: &str, version: Version) -> Option<String> {
    let shape = serde_json::from_str::<Shape>(data).ok()?;
    if shape.has_timestamp {
        return None;
    }
    let seconds = serde_json::to_string(&version.as_seconds()).ok()?;
    let body = data.trim_end();
    // A valid object ends with its closing brace once trailing whitespace is gone.
    let open = body.strip_suffix('}')?;
    let mut value = String::with_capacity(body.len() + TIMESTAMP_FIELD.len() + seconds.len() + 5);
    if shape.fields == 0 {
        value.push('{');
    } else {
        value.push_str(open);
        value.push(',');
    }
    value.push('"');
    value.push_str(TIMESTAMP_FIELD);
    value.push_str("\":");
    value.push_str(&seconds);
    value.push('}');
    Some(value)
}

/// What [`stamped`] needs to know of an object: how many top-level fields it has, and whether
/// one of them is `_timestamp`. Deserializing anything but an object fails.
struct Shape {
    fields: usize,
    has_timestamp: bool,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut shape = Shape {
            fields: 0,
            has_timestamp: false,
        };
        while let Some(is_timestamp) = map.next_key_seed(IsTimestamp)? {
            map.next_value::<IgnoredAny>()?;
            shape.fields += 1;
            shape.has_timestamp |= is_timestamp;
        }
        Ok(shape)
    }
}

/// Reads a key as whether it is `_timestamp`, borrowing it instead of keeping it.
struct IsTimestamp;

impl<'de> DeserializeSeed<'de> for IsTimestamp {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsTimestamp {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == TIMESTAMP_FIELD)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    const VERSION: Version = Version::from_micros(1_599_741_494_267_689);

    /// What inserting the field into the parsed object and writing it out again gives.
    fn taken_apart(data: &str) -> String {
        let mut object: Map<String, Value> = serde_json::from_str(data).unwrap();
        object.insert(TIMESTAMP_FIELD.to_owned(), json!(VERSION.as_seconds()));
        serde_json::to_string(&object).unwrap()
    }

    #[test]
    fn data_serde_json_wrote_comes_out_as_the_object_written_out_again() {
        for data in [
            json!({"name": "name 2", "message": "Hello Spryker! 2"}),
            json!({}),
            json!({"nested": {"_timestamp": 1, "list": [1, 2.5, null, true]}, "é": "ü\"\n"}),
            json!({"a": {"b": {"c": []}}, "z": -0.0, "big": 12345678901234567890u64}),
        ] {
            let data = serde_json::to_string(&data).unwrap();
            assert_eq!(
                stamped(&data, VERSION).as_deref(),
                Some(taken_apart(&data).as_str()),
                "{data}"
            );
        }
    }

    #[test]
    fn other_data_keeps_its_spacing_and_reads_as_the_same_json() {
        for data in [" { \"a\" : 1 }\n", "{\r\n}", "{\"\\u00e9\":\"\\u00fc\"}  "] {
            let value = stamped(data, VERSION).unwrap();
            let read: Value = serde_json::from_str(&value).unwrap();
            let expected: Value = serde_json::from_str(&taken_apart(data)).unwrap();
            assert_eq!(read, expected, "{data:?} became {value:?}");
        }
        assert_eq!(
            stamped(" { \"a\" : 1 }\n", VERSION).unwrap(),
            r#" { "a" : 1 ,"_timestamp":1599741494.267689}"#
        );
    }

    #[test]
    fn anything_but_an_object_without_its_own_timestamp_is_left_to_the_caller() {
        for data in [
            "[1]",
            "1",
            "\"text\"",
            "null",
            "",
            "{",
            "{\"a\":1}}",
            "{\"a\":1} x",
            "{\"_timestamp\":1}",
            "{\"a\":1,\"\\u005ftimestamp\":2}",
        ] {
            assert_eq!(stamped(data, VERSION), None, "{data:?}");
        }
    }
}
