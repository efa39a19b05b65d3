//! The behaviours of a table, built from their parameters: `event` (what a change of the
//! table captures), `synchronization` (how its storage rows are published) and
//! `timestampable`, with the columns the latter two add.

use super::parse::check_literal;
use super::raw::{RawBehavior, RawTable};
use super::xml::parse_bool_text;
use crate::error::Diagnostics;
use crate::model::{
    Column, ColumnType, DefaultValue, EventBehavior, EventColumn, EventParameter, Index,
    OUTBOX_TABLE, Operator, Synchronization, Table, Timestampable,
};

pub(crate) fn build_event(
    raw: &RawTable,
    behavior: &RawBehavior,
    has_outbox: bool,
    diagnostics: &mut Diagnostics,
) -> EventBehavior {
    let primary_keys = raw.columns.iter().filter(|(c, _)| c.primary_key).count();
    if primary_keys != 1 {
        diagnostics.at(
            &behavior.location,
            format!(
                "table `{}` has the event behavior and needs exactly one primary-key column, it has {primary_keys}",
                raw.name
            ),
        );
    }
    if raw.name == OUTBOX_TABLE {
        diagnostics.at(
            &behavior.location,
            format!("the outbox table `{OUTBOX_TABLE}` cannot have the event behavior"),
        );
    }
    if !has_outbox {
        diagnostics.at(
            &behavior.location,
            format!(
                "table `{}` has the event behavior but no schema file declares the outbox table `{OUTBOX_TABLE}`",
                raw.name
            ),
        );
    }
    let mut parameters = Vec::new();
    for parameter in &behavior.parameters {
        let Some(column_text) = parameter.get("column") else {
            diagnostics.at(
                &parameter.location,
                format!(
                    "\"column\" attribute for {} event behavior is missing",
                    parameter.name
                ),
            );
            continue;
        };
        let column = if column_text == "*" {
            EventColumn::All
        } else {
            EventColumn::Column(column_text.to_owned())
        };
        let column_type = match &column {
            EventColumn::All => None,
            EventColumn::Column(name) => match raw.columns.iter().find(|(c, _)| &c.name == name) {
                Some((c, _)) => Some(c.ty),
                None => {
                    diagnostics.at(
                            parameter.location_of("column"),
                            format!(
                                "event parameter `{}` names column `{name}`, which table `{}` does not have",
                                parameter.name, raw.name
                            ),
                        );
                    None
                }
            },
        };
        let operator = match parameter.get("operator") {
            None => Operator::Identical,
            Some(text) => Operator::parse(text).unwrap_or_else(|| {
                diagnostics.at(
                    parameter.location_of("operator"),
                    format!(
                        "unknown operator {text:?} of event parameter `{}`; expected <, >, <=, >=, <>, !=, ==, !== or ===",
                        parameter.name
                    ),
                );
                Operator::Identical
            }),
        };
        let value = parameter.get("value").map(str::to_owned);
        match (&value, &column) {
            (None, _) if parameter.get("operator").is_some() => diagnostics.at(
                parameter.location_of("operator"),
                format!(
                    "event parameter `{}` has an operator but no value to compare with",
                    parameter.name
                ),
            ),
            (Some(_), EventColumn::All) => diagnostics.at(
                parameter.location_of("value"),
                format!(
                    "event parameter `{}` compares a value but watches every column (`*`); name one column",
                    parameter.name
                ),
            ),
            (Some(value), EventColumn::Column(name)) => {
                if let Some(ty) = column_type {
                    if ty.is_binary() {
                        diagnostics.at(
                            parameter.location_of("value"),
                            format!("binary column `{name}` cannot be compared with a value"),
                        );
                    }
                    check_literal(value, ty, name, parameter.location_of("value"), diagnostics);
                }
            }
            _ => {}
        }
        let keep = |attribute: &str, diagnostics: &mut Diagnostics| match parameter
            .attributes
            .get(attribute)
        {
            None => false,
            Some((value, location)) => parse_bool_text(value, attribute, location, diagnostics),
        };
        let keep_original = keep("keep-original", diagnostics);
        let keep_additional = keep("keep-additional", diagnostics);
        parameters.push(EventParameter {
            name: parameter.name.clone(),
            column,
            value,
            operator,
            keep_original,
            keep_additional,
        });
    }
    EventBehavior { parameters }
}

pub(crate) fn build_synchronization(
    raw: &RawTable,
    behavior: &RawBehavior,
    diagnostics: &mut Diagnostics,
) -> Option<Synchronization> {
    let mut resource = None;
    let mut key_suffix_column = None;
    let mut store = None;
    let mut locale = None;
    let mut queue_group = None;
    let mut queue_pool = None;
    let mut params = None;
    let mut mappings = Vec::new();
    let mut synchronization_enabled = None;
    let mut direct_sync_disabled = false;
    let mut store_location = None;
    for parameter in &behavior.parameters {
        let required_flag = |diagnostics: &mut Diagnostics| match parameter
            .attributes
            .get("required")
        {
            None => false,
            Some((value, location)) => parse_bool_text(value, "required", location, diagnostics),
        };
        let needs_value = |diagnostics: &mut Diagnostics| -> Option<String> {
            let value = parameter.get("value").map(str::to_owned);
            if value.is_none() {
                diagnostics.at(
                    &parameter.location,
                    format!(
                        "synchronization parameter `{}` of `{}` needs a `value`",
                        parameter.name, raw.name
                    ),
                );
            }
            value
        };
        match parameter.name.as_str() {
            "resource" => resource = needs_value(diagnostics),
            "key_suffix_column" => {
                if let Some(column) = needs_value(diagnostics) {
                    if !raw.columns.iter().any(|(c, _)| c.name == column) {
                        diagnostics.at(
                            parameter.location_of("value"),
                            format!(
                                "key_suffix_column names column `{column}`, which table `{}` does not have",
                                raw.name
                            ),
                        );
                    }
                    key_suffix_column = Some(column);
                }
            }
            "store" => {
                store = Some(required_flag(diagnostics));
                store_location = Some(parameter.location.clone());
            }
            "locale" => locale = Some(required_flag(diagnostics)),
            "queue_group" => queue_group = needs_value(diagnostics),
            "queue_pool" => queue_pool = needs_value(diagnostics),
            "params" => params = needs_value(diagnostics),
            "mappings" => {
                if let Some(text) = needs_value(diagnostics) {
                    for part in text.split(';').filter(|part| !part.trim().is_empty()) {
                        let pieces: Vec<&str> = part.split(':').collect();
                        if let [source, destination] = pieces[..]
                            && !source.trim().is_empty()
                            && !destination.trim().is_empty()
                        {
                            mappings
                                .push((source.trim().to_owned(), destination.trim().to_owned()));
                        } else {
                            diagnostics.at(
                                parameter.location_of("value"),
                                format!(
                                    "mapping {part:?} of `{}` must be written `source:destination`, with exactly one `:`",
                                    raw.name
                                ),
                            );
                        }
                    }
                }
            }
            "synchronization_enabled" => {
                if let Some(text) = needs_value(diagnostics) {
                    synchronization_enabled = Some(parse_bool_text(
                        &text,
                        "synchronization_enabled",
                        parameter.location_of("value"),
                        diagnostics,
                    ));
                }
            }
            "direct_sync_disabled" => direct_sync_disabled = true,
            other => diagnostics.at(
                &parameter.location,
                format!(
                    "unknown synchronization parameter `{other}`; expected resource, key_suffix_column, store, locale, queue_group, queue_pool, params, mappings, synchronization_enabled or direct_sync_disabled"
                ),
            ),
        }
    }
    if store.is_some() && queue_pool.is_some() {
        diagnostics.at(
            store_location.as_ref().unwrap_or(&behavior.location),
            format!(
                "{} uses mutually exclusive \"store\" and \"queue_pool\" synchronization attributes",
                raw.name
            ),
        );
    }
    let Some(resource) = resource else {
        diagnostics.at(
            &behavior.location,
            format!("{} misses \"resource\" synchronization parameter", raw.name),
        );
        return None;
    };
    Some(Synchronization {
        queue_group: queue_group.unwrap_or_else(|| resource.clone()),
        resource,
        key_suffix_column,
        store,
        locale,
        queue_pool,
        params,
        mappings,
        synchronization_enabled,
        direct_sync_disabled,
    })
}

pub(crate) fn build_timestampable(
    behavior: &RawBehavior,
    diagnostics: &mut Diagnostics,
) -> Timestampable {
    let mut disable_updated_at = false;
    for parameter in &behavior.parameters {
        if parameter.name == "disable_updated_at" {
            disable_updated_at = match parameter.attributes.get("value") {
                Some((value, location)) => {
                    parse_bool_text(value, "disable_updated_at", location, diagnostics)
                }
                None => true,
            };
        } else {
            diagnostics.at(
                &parameter.location,
                format!(
                    "unknown timestampable parameter `{}`; expected disable_updated_at",
                    parameter.name
                ),
            );
        }
    }
    Timestampable { disable_updated_at }
}

fn add_column_if_absent(table: &mut Table, column: Column) {
    if table.column(&column.name).is_none() {
        table.columns.push(column);
    }
}

fn plain_column(name: &str, ty: ColumnType, size: Option<u32>, required: bool) -> Column {
    Column {
        name: name.to_owned(),
        ty,
        size,
        scale: None,
        required,
        primary_key: false,
        auto_increment: false,
        default_value: None,
    }
}

/// The columns `synchronization` adds when absent, as the original's behaviour does.
pub(crate) fn add_synchronization_columns(table: &mut Table, synchronization: &Synchronization) {
    add_column_if_absent(
        table,
        plain_column("data", ColumnType::LongVarchar, None, false),
    );
    if let Some(required) = synchronization.store {
        add_column_if_absent(
            table,
            plain_column("store", ColumnType::Varchar, Some(128), required),
        );
    }
    if let Some(required) = synchronization.locale {
        add_column_if_absent(
            table,
            plain_column("locale", ColumnType::Varchar, Some(16), required),
        );
    }
    add_column_if_absent(
        table,
        plain_column("key", ColumnType::Varchar, Some(255), true),
    );
    let unique_key = format!("{}-unique-key", table.name);
    if !table.indexes.iter().any(|index| index.name == unique_key) {
        table.indexes.push(Index {
            name: unique_key,
            unique: true,
            columns: vec!["key".to_owned()],
        });
    }
    add_column_if_absent(
        table,
        plain_column("alias_keys", ColumnType::LongVarchar, None, false),
    );
}

/// The columns `timestampable` adds when absent.
pub(crate) fn add_timestamp_columns(table: &mut Table, timestampable: Timestampable) {
    let timestamp = |name: &str| Column {
        default_value: Some(DefaultValue::CurrentTimestamp),
        ..plain_column(name, ColumnType::Timestamp, None, false)
    };
    add_column_if_absent(table, timestamp("created_at"));
    if !timestampable.disable_updated_at {
        add_column_if_absent(table, timestamp("updated_at"));
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::model::{EventColumn, Operator};
    use crate::schema::fixtures::{error, parse, table};
    use crate::schema::{SourceFile, parse_schemas};

    #[test]
    fn the_hello_schema_parses_with_behaviour_columns() {
        let hello = include_str!("../../../pubsync-hello/schema/spy_hello_spryker.schema.xml");
        let model = parse(hello).unwrap();
        let storage = model.table("spy_hello_spryker_message_storage").unwrap();
        let names: Vec<&str> = storage.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id_hello_spryker_message_storage",
                "fk_hello_spryker_message",
                "data",
                "key",
                "alias_keys",
                "created_at",
                "updated_at"
            ]
        );
        let synchronization = storage.synchronization.as_ref().unwrap();
        assert_eq!(synchronization.resource, "message");
        assert_eq!(synchronization.queue_group, "sync.storage.hello");
        assert!(
            storage
                .indexes
                .iter()
                .any(|i| i.unique && i.name == "spy_hello_spryker_message_storage-unique-key")
        );
        let message = model.table("spy_hello_spryker_message").unwrap();
        assert_eq!(
            message.event.as_ref().unwrap().parameters[0].column,
            EventColumn::All
        );
    }

    #[test]
    fn event_parameter_without_column_is_an_error() {
        let message = error(&table(
            "<behavior name=\"event\"><parameter name=\"spy_foo_all\"/></behavior>",
        ));
        assert!(
            message.ends_with("\"column\" attribute for spy_foo_all event behavior is missing"),
            "{message}"
        );
    }

    #[test]
    fn event_parameter_naming_unknown_column_is_an_error() {
        let message = error(&table(
            "<behavior name=\"event\"><parameter name=\"p\" column=\"nope\"/></behavior>",
        ));
        assert!(message.contains("names column `nope`"), "{message}");
    }

    #[test]
    fn event_operator_must_be_known_and_value_must_fit_the_type() {
        let message = error(&table(
            "<behavior name=\"event\"><parameter name=\"p\" column=\"fk_bar\" value=\"1\" operator=\"=~\"/></behavior>",
        ));
        assert!(message.contains("unknown operator \"=~\""), "{message}");
        let message = error(&table(
            "<behavior name=\"event\"><parameter name=\"p\" column=\"fk_bar\" value=\"one\"/></behavior>",
        ));
        assert!(
            message.contains("value \"one\" does not fit column `fk_bar` of type INTEGER"),
            "{message}"
        );
    }

    #[test]
    fn event_parameters_are_read() {
        let model = parse(&table(
            "<behavior name=\"event\">\
             <parameter name=\"a\" column=\"fk_bar\" value=\"0\" operator=\"&gt;\" keep-original=\"true\"/>\
             <parameter name=\"b\" column=\"*\" keep-additional=\"true\"/>\
             </behavior>",
        ))
        .unwrap();
        let parameters = &model
            .table("spy_foo")
            .unwrap()
            .event
            .as_ref()
            .unwrap()
            .parameters;
        assert_eq!(parameters[0].operator, Operator::Greater);
        assert_eq!(parameters[0].value.as_deref(), Some("0"));
        assert!(parameters[0].keep_original && !parameters[0].keep_additional);
        assert_eq!(parameters[1].operator, Operator::Identical);
        assert!(parameters[1].keep_additional);
    }

    #[test]
    fn event_table_needs_exactly_one_primary_key() {
        let xml = "<database name=\"zed\"><table name=\"spy_foo\">\
            <column name=\"a\" type=\"INTEGER\" primaryKey=\"true\"/>\
            <column name=\"b\" type=\"INTEGER\" primaryKey=\"true\"/>\
            <behavior name=\"event\"><parameter name=\"p\" column=\"*\"/></behavior>\
            </table></database>";
        let message = error(xml);
        assert!(
            message.contains("needs exactly one primary-key column, it has 2"),
            "{message}"
        );
    }

    #[test]
    fn event_behavior_needs_the_outbox_table() {
        let files = [SourceFile::new(
            "crates/a/schema/x.schema.xml",
            table("<behavior name=\"event\"><parameter name=\"p\" column=\"*\"/></behavior>"),
        )];
        let Err(Error::Definitions(errors)) = parse_schemas(&files) else {
            panic!("expected an error");
        };
        assert!(
            errors[0]
                .message
                .contains("no schema file declares the outbox table")
        );
    }

    #[test]
    fn synchronization_without_resource_is_an_error() {
        let message = error(&table(
            "<behavior name=\"synchronization\"><parameter name=\"queue_group\" value=\"x\"/></behavior>",
        ));
        assert!(
            message.ends_with("spy_foo misses \"resource\" synchronization parameter"),
            "{message}"
        );
    }

    #[test]
    fn synchronization_store_and_queue_pool_exclude_each_other() {
        let message = error(&table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/>\
             <parameter name=\"store\" required=\"true\"/>\
             <parameter name=\"queue_pool\" value=\"synchronizationPool\"/></behavior>",
        ));
        assert!(
            message.ends_with("spy_foo uses mutually exclusive \"store\" and \"queue_pool\" synchronization attributes"),
            "{message}"
        );
    }

    #[test]
    fn synchronization_mappings_need_exactly_one_colon() {
        let message = error(&table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/>\
             <parameter name=\"mappings\" value=\"sku:id;a:b:c\"/></behavior>",
        ));
        assert!(message.contains("mapping \"a:b:c\""), "{message}");
    }

    #[test]
    fn synchronization_key_suffix_column_must_exist() {
        let message = error(&table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/>\
             <parameter name=\"key_suffix_column\" value=\"fk_nope\"/></behavior>",
        ));
        assert!(
            message.contains("key_suffix_column names column `fk_nope`"),
            "{message}"
        );
    }

    #[test]
    fn synchronization_unknown_parameter_is_an_error() {
        let message = error(&table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/>\
             <parameter name=\"queue_grup\" value=\"x\"/></behavior>",
        ));
        assert!(
            message.contains("unknown synchronization parameter `queue_grup`"),
            "{message}"
        );
    }

    #[test]
    fn synchronization_parameters_and_columns() {
        let model = parse(&table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/>\
             <parameter name=\"store\" required=\"true\"/><parameter name=\"locale\"/>\
             <parameter name=\"params\" value='{\"type\":\"page\"}'/>\
             <parameter name=\"mappings\" value=\"sku:id_foo;name:id_foo\"/>\
             <parameter name=\"synchronization_enabled\" value=\"false\"/>\
             <parameter name=\"direct_sync_disabled\"/></behavior>",
        ))
        .unwrap();
        let table = model.table("spy_foo").unwrap();
        let synchronization = table.synchronization.as_ref().unwrap();
        assert_eq!(synchronization.queue_group, "foo");
        assert_eq!(synchronization.store, Some(true));
        assert_eq!(synchronization.locale, Some(false));
        assert_eq!(
            synchronization.params.as_deref(),
            Some("{\"type\":\"page\"}")
        );
        assert_eq!(synchronization.mappings.len(), 2);
        assert_eq!(synchronization.synchronization_enabled, Some(false));
        assert!(synchronization.direct_sync_disabled);
        let store = table.column("store").unwrap();
        assert!(store.required && store.size == Some(128));
        let locale = table.column("locale").unwrap();
        assert!(!locale.required && locale.size == Some(16));
    }
}
