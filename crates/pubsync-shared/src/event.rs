//! The entity event: what a captured change of a watched table becomes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Which kind of change an entity event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityAction {
    /// A row was inserted.
    Create,
    /// A watched column of a row changed.
    Update,
    /// A row was deleted.
    Delete,
}

impl EntityAction {
    /// The last part of the event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// `Entity.<table>.create|update|delete`.
pub fn entity_event_name(table: &str, action: EntityAction) -> String {
    concat(&["Entity.", table, ".", action.as_str()])
}

/// The parts one after the other, in one allocation: on the relay's path for every event,
/// where `format!` cost more than parsing the event.
fn concat(parts: &[&str]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    text
}

/// Splits `Entity.<table>.<action>` into its table and action.
pub fn parse_entity_event_name(event_name: &str) -> Option<(&str, EntityAction)> {
    let rest = event_name.strip_prefix("Entity.")?;
    let (table, action) = rest.rsplit_once('.')?;
    let action = match action {
        "create" => EntityAction::Create,
        "update" => EntityAction::Update,
        "delete" => EntityAction::Delete,
        _ => return None,
    };
    Some((table, action))
}

/// One entity event, the original's `EventEntityTransfer`.
///
/// Serialised with snake_case keys, as the original's event queue messages carry it; the
/// outbox's camelCase spelling (`foreignKeys`, …) is read too. Maps also accept `[]`, which
/// is how PHP encodes an empty array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventEntityTransfer {
    /// The event name, `Entity.<table>.<action>` for entity events.
    #[serde(default)]
    pub event: String,
    /// The table the event is about.
    #[serde(default)]
    pub name: String,
    /// The primary key of the row; absent for events triggered without an id.
    #[serde(default)]
    pub id: Option<i64>,
    /// `"<table>.<fk_column>" → value` for every foreign key of the table.
    #[serde(default, alias = "foreignKeys", deserialize_with = "map_or_php_array")]
    pub foreign_keys: BTreeMap<String, Value>,
    /// `"<table>.<column>"` of every column whose value really changed (creates: every column set).
    #[serde(
        default,
        alias = "modifiedColumns",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub modified_columns: Vec<String>,
    /// Values before the update, for columns configured with `keep-original`.
    #[serde(
        default,
        alias = "originalValues",
        deserialize_with = "map_or_php_array",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub original_values: BTreeMap<String, Value>,
    /// Current values of columns configured with `keep-additional`, sent on delete too.
    #[serde(
        default,
        alias = "additionalValues",
        deserialize_with = "map_or_php_array",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub additional_values: BTreeMap<String, Value>,
}

impl EventEntityTransfer {
    /// Folds a later event about the same entity into this one: values of the later event
    /// win, modified columns and foreign keys are united, and the original values of the
    /// earliest event are kept (they are the values before all the changes).
    pub fn absorb(&mut self, later: EventEntityTransfer) {
        for column in later.modified_columns {
            if !self.modified_columns.contains(&column) {
                self.modified_columns.push(column);
            }
        }
        self.foreign_keys.extend(later.foreign_keys);
        for (column, value) in later.original_values {
            self.original_values.entry(column).or_insert(value);
        }
        self.additional_values.extend(later.additional_values);
        self.event = later.event;
    }
}

impl EventEntityTransfer {
    /// Reads an outbox row's `data`: the compact array the generated capture triggers write,
    /// `[table, action, id, modified, foreignKeys, originalValues, additionalValues]` with
    /// column names not prefixed by the table (trailing parts the table never has left out),
    /// or the original's JSON object, which rows written before the compact form, or by hand,
    /// still hold. The first character tells them apart.
    pub fn from_outbox(data: &str) -> Result<Self, serde_json::Error> {
        if data.trim_start().starts_with('[') {
            serde_json::from_str::<CompactEntityChange<'_>>(data).map(Self::from)
        } else {
            serde_json::from_str(data)
        }
    }

    /// The event as the original's trigger writes it into the outbox
    /// (`spy_event_behavior_entity_change.data`): camelCase keys, every map as an object, and
    /// no `modifiedColumns` or `originalValues` in a delete. For looking at events, and for
    /// the tests that hold the compact form to the original's content.
    pub fn to_original_outbox_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("name".into(), self.name.clone().into());
        object.insert("id".into(), self.id.into());
        object.insert("event".into(), self.event.clone().into());
        object.insert("foreignKeys".into(), map_json(&self.foreign_keys));
        let is_delete = parse_entity_event_name(&self.event)
            .is_some_and(|(_, action)| action == EntityAction::Delete);
        if !is_delete {
            object.insert(
                "modifiedColumns".into(),
                self.modified_columns.clone().into(),
            );
            object.insert("originalValues".into(), map_json(&self.original_values));
        }
        object.insert("additionalValues".into(), map_json(&self.additional_values));
        Value::Object(object)
    }
}

fn map_json(map: &BTreeMap<String, Value>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The outbox row the generated capture triggers write: a JSON array
/// `[table, action, id, modified, foreignKeys, originalValues, additionalValues]` whose column
/// names are not prefixed by the table, and whose trailing parts a table never has (no
/// foreign keys, no `keep-original` or `keep-additional` columns, no modified columns in a
/// delete) are left out. For a Hello insert on SQLite that is
/// `["spy_hello_spryker_message","create",1,["name","message"]]` (PostgreSQL and MariaDB put a
/// space after each comma), a fraction of the size of the original's JSON object. The row is
/// written in the writer's transaction and read, parsed and deleted again by the relay, so its
/// size is paid on every change: a smaller row makes capture markedly cheaper.
#[derive(Debug, Deserialize)]
#[serde(
    expecting = "an outbox row [table, action, id, modified, foreignKeys, originalValues, \
                     additionalValues] with at least table, action and id"
)]
struct CompactEntityChange<'a> {
    #[serde(borrow, deserialize_with = "table_name")]
    table: Cow<'a, str>,
    #[serde(deserialize_with = "entity_action")]
    action: EntityAction,
    id: Option<i64>,
    #[serde(default, borrow)]
    modified: Vec<Text<'a>>,
    #[serde(default, deserialize_with = "map_or_php_array")]
    foreign_keys: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "map_or_php_array")]
    original_values: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "map_or_php_array")]
    additional_values: BTreeMap<String, Value>,
}

/// A string borrowed from the row unless it holds escapes (a `Vec<Cow<str>>` would copy every
/// one: serde borrows a `Cow` only where the field itself is one).
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl From<CompactEntityChange<'_>> for EventEntityTransfer {
    fn from(change: CompactEntityChange<'_>) -> Self {
        let table = change.table;
        let qualified = |column: &str| concat(&[&table, ".", column]);
        // Most events have no values: skip collecting (and allocating for) an empty map.
        let qualified_map = |map: BTreeMap<String, Value>| {
            if map.is_empty() {
                return map;
            }
            map.into_iter()
                .map(|(column, value)| (qualified(&column), value))
                .collect()
        };
        Self {
            event: entity_event_name(&table, change.action),
            id: change.id,
            modified_columns: change.modified.iter().map(|c| qualified(&c.0)).collect(),
            foreign_keys: qualified_map(change.foreign_keys),
            original_values: qualified_map(change.original_values),
            additional_values: qualified_map(change.additional_values),
            name: table.clone().into_owned(),
        }
    }
}

/// A table name that is not empty (an empty one would make the event `Entity..create`, which
/// no listener takes: the row would be dropped instead of reaching the error queue).
fn table_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'de, str>, D::Error> {
    let Text(name) = Text::deserialize(deserializer)?;
    if name.is_empty() {
        return Err(serde::de::Error::custom("empty table name"));
    }
    Ok(name)
}

/// `create`, `update` or `delete`, read without copying the text.
fn entity_action<'de, D: Deserializer<'de>>(deserializer: D) -> Result<EntityAction, D::Error> {
    struct Action;

    impl serde::de::Visitor<'_> for Action {
        type Value = EntityAction;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("create, update or delete")
        }

        fn visit_str<E: serde::de::Error>(self, action: &str) -> Result<EntityAction, E> {
            match action {
                "create" => Ok(EntityAction::Create),
                "update" => Ok(EntityAction::Update),
                "delete" => Ok(EntityAction::Delete),
                other => Err(E::custom(format!(
                    "unknown action `{other}`, expected create, update or delete"
                ))),
            }
        }
    }

    deserializer.deserialize_str(Action)
}

/// The distinct ids of `transfers`, in first-seen order (the original's `getEventTransferIds`).
pub fn event_transfer_ids(transfers: &[EventEntityTransfer]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    transfers
        .iter()
        .filter_map(|t| t.id)
        .filter(|id| seen.insert(*id))
        .collect()
}

/// The distinct non-null values of foreign key `column` (`"<table>.<fk_column>"`).
pub fn event_transfer_foreign_keys(transfers: &[EventEntityTransfer], column: &str) -> Vec<Value> {
    let mut values: Vec<Value> = Vec::new();
    for value in transfers.iter().filter_map(|t| t.foreign_keys.get(column)) {
        if !value.is_null() && !values.contains(value) {
            values.push(value.clone());
        }
    }
    values
}

/// An object, or PHP's empty array `[]` (how PHP encodes an empty associative array), or null.
/// A visitor rather than an untagged enum: that would buffer every value before trying each
/// variant, which costs more than the rest of reading an event.
fn map_or_php_array<'de, D>(deserializer: D) -> Result<BTreeMap<String, Value>, D::Error>
where
    D: Deserializer<'de>,
{
    struct MapOrEmptyArray;

    impl<'de> serde::de::Visitor<'de> for MapOrEmptyArray {
        type Value = BTreeMap<String, Value>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or an empty array")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, inner: D2) -> Result<Self::Value, D2::Error> {
            inner.deserialize_any(self)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            match seq.next_element::<serde::de::IgnoredAny>()? {
                None => Ok(BTreeMap::new()),
                Some(_) => Err(serde::de::Error::custom(
                    "expected an object or an empty array",
                )),
            }
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut values = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                values.insert(key, value);
            }
            Ok(values)
        }
    }

    deserializer.deserialize_any(MapOrEmptyArray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_outbox_spelling_with_php_empty_arrays() {
        let json = r#"{"name":"spy_url","id":488,"event":"Entity.spy_url.update",
            "foreignKeys":{"spy_url.fk_resource_page":7,"spy_url.fk_locale":46},
            "modifiedColumns":["spy_url.url"],"originalValues":[],"additionalValues":[]}"#;
        let transfer: EventEntityTransfer = serde_json::from_str(json).unwrap();
        assert_eq!(transfer.id, Some(488));
        assert_eq!(transfer.foreign_keys["spy_url.fk_locale"], 46);
        assert_eq!(transfer.modified_columns, ["spy_url.url"]);
        assert!(transfer.original_values.is_empty());
    }

    #[test]
    fn values_are_objects_empty_arrays_or_null_and_nothing_else() {
        let read = |values: &str| {
            serde_json::from_str::<EventEntityTransfer>(&format!(
                r#"{{"event":"Entity.t.update","originalValues":{values}}}"#
            ))
        };
        assert_eq!(
            read(r#"{"t.a":1,"t.b":"x"}"#).unwrap().original_values["t.b"],
            "x"
        );
        assert!(read("null").unwrap().original_values.is_empty());
        assert!(read("[]").unwrap().original_values.is_empty());
        let error = read("[1]").unwrap_err().to_string();
        assert!(error.contains("an object or an empty array"), "{error}");
        assert!(read("7").is_err());
    }

    #[test]
    fn reads_the_compact_outbox_form_with_the_table_prefix_restored() {
        let transfer = EventEntityTransfer::from_outbox(
            r#"["spy_url","update",488,["url"],{"fk_locale":46},{"url":"/old"},{"fk_store":1}]"#,
        )
        .unwrap();
        assert_eq!(transfer.event, "Entity.spy_url.update");
        assert_eq!(transfer.name, "spy_url");
        assert_eq!(transfer.id, Some(488));
        assert_eq!(transfer.modified_columns, ["spy_url.url"]);
        assert_eq!(transfer.foreign_keys["spy_url.fk_locale"], 46);
        assert_eq!(transfer.original_values["spy_url.url"], "/old");
        assert_eq!(transfer.additional_values["spy_url.fk_store"], 1);

        let delete = EventEntityTransfer::from_outbox(r#"["spy_url","delete",7]"#).unwrap();
        assert_eq!(delete.event, "Entity.spy_url.delete");
        assert_eq!(delete.id, Some(7));
        assert!(delete.modified_columns.is_empty() && delete.foreign_keys.is_empty());
    }

    #[test]
    fn outbox_rows_in_the_original_form_are_still_read() {
        let json = r#"{"name":"spy_url","id":488,"event":"Entity.spy_url.update",
            "foreignKeys":{"spy_url.fk_locale":46},"modifiedColumns":["spy_url.url"],
            "originalValues":[],"additionalValues":[]}"#;
        let original = EventEntityTransfer::from_outbox(json).unwrap();
        let compact = EventEntityTransfer::from_outbox(
            r#"["spy_url","update",488,["url"],{"fk_locale":46}]"#,
        )
        .unwrap();
        assert_eq!(original, compact);
    }

    #[test]
    fn a_compact_row_names_what_is_wrong_with_it() {
        let error = |data: &str| {
            EventEntityTransfer::from_outbox(data)
                .unwrap_err()
                .to_string()
        };
        assert!(error(r#"["t","upsert",1]"#).contains("unknown action `upsert`"));
        assert!(error(r#"["t"]"#).contains("with at least table, action and id"));
        assert!(error(r#"["","create",1]"#).contains("empty table name"));
        assert!(error(r#"["t","create","x"]"#).contains("invalid type"));
        assert!(error(r#"["t","create",1,["a"]"#).contains("EOF"));
    }

    #[test]
    fn the_original_outbox_spelling_of_an_event() {
        let transfer =
            EventEntityTransfer::from_outbox(r#"["t","create",1,["a"],{"fk_p":2}]"#).unwrap();
        assert_eq!(
            transfer.to_original_outbox_json(),
            serde_json::json!({"name":"t","id":1,"event":"Entity.t.create",
                "foreignKeys":{"t.fk_p":2},"modifiedColumns":["t.a"],
                "originalValues":{},"additionalValues":{}})
        );
        let delete = EventEntityTransfer::from_outbox(r#"["t","delete",1]"#).unwrap();
        assert_eq!(
            delete.to_original_outbox_json(),
            serde_json::json!({"name":"t","id":1,"event":"Entity.t.delete",
                "foreignKeys":{},"additionalValues":{}})
        );
    }

    #[test]
    fn writes_the_queue_spelling() {
        let transfer = EventEntityTransfer {
            event: "Entity.t.create".into(),
            name: "t".into(),
            id: Some(1),
            modified_columns: vec!["t.a".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(&transfer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event":"Entity.t.create","name":"t","id":1,"foreign_keys":{},"modified_columns":["t.a"]})
        );
    }

    #[test]
    fn absorbing_keeps_first_originals_and_unites_columns() {
        let mut first: EventEntityTransfer = serde_json::from_value(serde_json::json!({
            "event": "Entity.t.update", "name": "t", "id": 1,
            "modified_columns": ["t.a"], "original_values": {"t.a": 1}
        }))
        .unwrap();
        let later: EventEntityTransfer = serde_json::from_value(serde_json::json!({
            "event": "Entity.t.update", "name": "t", "id": 1,
            "modified_columns": ["t.b", "t.a"], "original_values": {"t.a": 2, "t.b": 5}
        }))
        .unwrap();
        first.absorb(later);
        assert_eq!(first.modified_columns, ["t.a", "t.b"]);
        assert_eq!(first.original_values["t.a"], 1);
        assert_eq!(first.original_values["t.b"], 5);
    }

    #[test]
    fn event_names_round_trip() {
        let name = entity_event_name("spy_hello_spryker_message", EntityAction::Delete);
        assert_eq!(name, "Entity.spy_hello_spryker_message.delete");
        assert_eq!(
            parse_entity_event_name(&name),
            Some(("spy_hello_spryker_message", EntityAction::Delete))
        );
        assert_eq!(parse_entity_event_name("Hello.message.publish"), None);
    }

    #[test]
    fn ids_and_foreign_keys_are_distinct() {
        let t = |id, fk: Value| EventEntityTransfer {
            id: Some(id),
            foreign_keys: [("t.fk".to_owned(), fk)].into(),
            ..Default::default()
        };
        let transfers = [
            t(2, 7.into()),
            t(1, Value::Null),
            t(2, 7.into()),
            t(3, 8.into()),
        ];
        assert_eq!(event_transfer_ids(&transfers), [2, 1, 3]);
        assert_eq!(
            event_transfer_foreign_keys(&transfers, "t.fk"),
            [Value::from(7), Value::from(8)]
        );
    }
}
