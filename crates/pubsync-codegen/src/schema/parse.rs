//! The reading of one schema file into raw tables: its tables with their columns, indexes,
//! foreign keys and behaviours, every element and attribute checked against what the format
//! knows.

use std::collections::BTreeMap;

use roxmltree::Node;

use super::files::SourceFile;
use super::raw::{RawBehavior, RawForeignKey, RawIndex, RawParameter, RawTable};
use super::xml::{
    XmlFile, check_identifier, is_index_name, parse_bool, parse_u32, parse_xml, required,
};
use crate::error::{Diagnostics, Location};
use crate::model::{Column, ColumnType, DefaultValue, ForeignKey, Index};

const DATABASE_ATTRIBUTES: &[&str] = &[
    "name",
    "namespace",
    "package",
    "defaultIdMethod",
    "identifierQuoting",
    "defaultPhpNamingMethod",
];
const TABLE_ATTRIBUTES: &[&str] = &[
    "name",
    "idMethod",
    "allowPkInsert",
    "phpName",
    "namespace",
    "package",
    "identifierQuoting",
    "isCrossRef",
    "description",
];
const COLUMN_ATTRIBUTES: &[&str] = &[
    "name",
    "type",
    "required",
    "primaryKey",
    "autoIncrement",
    "size",
    "scale",
    "defaultValue",
    "defaultExpr",
    "phpName",
    "description",
    "valueSet",
];

pub(crate) fn parse_file(file: &SourceFile, diagnostics: &mut Diagnostics) -> Vec<RawTable> {
    let Some(document) = parse_xml(&file.path, &file.text, diagnostics) else {
        return Vec::new();
    };
    let xml = XmlFile {
        path: &file.path,
        document: &document,
    };
    let root = document.root_element();
    if root.tag_name().name() != "database" {
        diagnostics.at(
            &xml.node_location(root),
            format!(
                "a schema file must have <database> as its root element, not <{}>",
                root.tag_name().name()
            ),
        );
        return Vec::new();
    }
    xml.attributes(root, DATABASE_ATTRIBUTES, diagnostics);
    let mut tables = Vec::new();
    for child in xml.element_children(root, diagnostics) {
        if child.tag_name().name() == "table" {
            if let Some(table) = parse_table(&xml, file, child, diagnostics) {
                tables.push(table);
            }
        } else {
            xml.unknown_element(child, "database", "<table>", diagnostics);
        }
    }
    tables
}

fn parse_table(
    xml: &XmlFile<'_, '_>,
    file: &SourceFile,
    node: Node<'_, '_>,
    diagnostics: &mut Diagnostics,
) -> Option<RawTable> {
    let location = xml.node_location(node);
    let attributes = xml.attributes(node, TABLE_ATTRIBUTES, diagnostics);
    let name = required(&attributes, "name", "table", &location, diagnostics)?.to_owned();
    check_identifier(&name, "table", &location, diagnostics);
    let mut table = RawTable {
        name,
        location,
        packages: file.package.iter().cloned().collect(),
        sources: vec![file.path.clone()],
        columns: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        behaviors: Vec::new(),
    };
    for child in xml.element_children(node, diagnostics) {
        match child.tag_name().name() {
            "column" => {
                if let Some(column) = parse_column(xml, child, diagnostics) {
                    if table.columns.iter().any(|(c, _)| c.name == column.0.name) {
                        diagnostics.at(
                            &column.1,
                            format!(
                                "column `{}` is declared twice in table `{}`",
                                column.0.name, table.name
                            ),
                        );
                    }
                    table.columns.push(column);
                }
            }
            element @ ("index" | "unique") => {
                if let Some(index) = parse_index(xml, child, element == "unique", diagnostics) {
                    table.indexes.push(index);
                }
            }
            "foreign-key" => {
                if let Some(foreign_key) = parse_foreign_key(xml, child, diagnostics) {
                    table.foreign_keys.push(foreign_key);
                }
            }
            "behavior" => {
                if let Some(behavior) = parse_behavior(xml, child, diagnostics) {
                    if table.behaviors.iter().any(|b| b.name == behavior.name) {
                        diagnostics.at(
                            &behavior.location,
                            format!(
                                "behavior `{}` is declared twice in table `{}`",
                                behavior.name, table.name
                            ),
                        );
                    }
                    table.behaviors.push(behavior);
                }
            }
            "id-method-parameter" => {
                xml.attributes(child, &["value", "name"], diagnostics);
            }
            _ => xml.unknown_element(
                child,
                "table",
                "<column>, <index>, <unique>, <foreign-key>, <behavior> or <id-method-parameter>",
                diagnostics,
            ),
        }
    }
    Some(table)
}

fn parse_column(
    xml: &XmlFile<'_, '_>,
    node: Node<'_, '_>,
    diagnostics: &mut Diagnostics,
) -> Option<(Column, Location)> {
    let location = xml.node_location(node);
    let attributes = xml.attributes(node, COLUMN_ATTRIBUTES, diagnostics);
    for child in xml.element_children(node, diagnostics) {
        xml.unknown_element(child, "column", "no child elements", diagnostics);
    }
    let name = required(&attributes, "name", "column", &location, diagnostics)?.to_owned();
    check_identifier(&name, "column", &location, diagnostics);
    let type_text = required(&attributes, "type", "column", &location, diagnostics)?;
    let Some(ty) = ColumnType::parse(type_text) else {
        diagnostics.at(
            &attributes["type"].1,
            format!("unknown column type {type_text:?} of column `{name}`"),
        );
        return None;
    };
    let mut size = parse_u32(&attributes, "size", diagnostics);
    if ty == ColumnType::Varchar && size.is_none() {
        size = Some(255);
    }
    let scale = parse_u32(&attributes, "scale", diagnostics);
    let primary_key = parse_bool(&attributes, "primaryKey", diagnostics);
    let auto_increment = parse_bool(&attributes, "autoIncrement", diagnostics);
    if auto_increment && !(primary_key && ty.is_integer()) {
        diagnostics.at(
            &location,
            format!("column `{name}`: autoIncrement needs an INTEGER or BIGINT primary key"),
        );
    }
    let default_value = match (
        attributes.get("defaultValue"),
        attributes.get("defaultExpr"),
    ) {
        (None, None) => None,
        (Some((value, value_location)), None) => {
            check_literal(value, ty, &name, value_location, diagnostics);
            Some(DefaultValue::Literal(value.clone()))
        }
        (None, Some((expression, expression_location))) => {
            if !expression.eq_ignore_ascii_case("CURRENT_TIMESTAMP") {
                diagnostics.at(
                    expression_location,
                    format!("defaultExpr of column `{name}` must be CURRENT_TIMESTAMP, the one expression every database understands alike"),
                );
            }
            Some(DefaultValue::CurrentTimestamp)
        }
        (Some(_), Some((_, expression_location))) => {
            diagnostics.at(
                expression_location,
                format!("column `{name}` has both defaultValue and defaultExpr"),
            );
            None
        }
    };
    let column = Column {
        name,
        ty,
        size,
        scale,
        required: parse_bool(&attributes, "required", diagnostics),
        primary_key,
        auto_increment,
        default_value,
    };
    Some((column, location))
}

/// Checks that a literal (default value, event filter value) fits the column type.
pub(crate) fn check_literal(
    value: &str,
    ty: ColumnType,
    column: &str,
    location: &Location,
    diagnostics: &mut Diagnostics,
) {
    let fits = if ty.is_integer() {
        value.trim().parse::<i64>().is_ok()
    } else if ty.is_fractional() {
        value.trim().parse::<f64>().is_ok_and(f64::is_finite)
    } else if ty == ColumnType::Boolean {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "true" | "false" | "1" | "0"
        )
    } else {
        true
    };
    if !fits {
        diagnostics.at(
            location,
            format!(
                "value {value:?} does not fit column `{column}` of type {}",
                ty.as_str()
            ),
        );
    }
}

fn parse_index(
    xml: &XmlFile<'_, '_>,
    node: Node<'_, '_>,
    unique: bool,
    diagnostics: &mut Diagnostics,
) -> Option<RawIndex> {
    let element = if unique { "unique" } else { "index" };
    let child_element = if unique {
        "unique-column"
    } else {
        "index-column"
    };
    let location = xml.node_location(node);
    let attributes = xml.attributes(node, &["name"], diagnostics);
    let name = required(&attributes, "name", element, &location, diagnostics)?.to_owned();
    if !is_index_name(&name) {
        diagnostics.at(
            &location,
            format!(
                "{element} name {name:?} must consist of ASCII letters, digits, `_`, `-` and `.`"
            ),
        );
    }
    let mut columns = Vec::new();
    let mut column_locations = Vec::new();
    for child in xml.element_children(node, diagnostics) {
        if child.tag_name().name() != child_element {
            xml.unknown_element(child, element, &format!("<{child_element}>"), diagnostics);
            continue;
        }
        let child_location = xml.node_location(child);
        let child_attributes = xml.attributes(child, &["name", "size"], diagnostics);
        if let Some(column) = required(
            &child_attributes,
            "name",
            child_element,
            &child_location,
            diagnostics,
        ) {
            columns.push(column.to_owned());
            column_locations.push(child_location);
        }
    }
    if columns.is_empty() {
        diagnostics.at(
            &location,
            format!("<{element}> `{name}` has no <{child_element}>"),
        );
    }
    Some(RawIndex {
        index: Index {
            name,
            unique,
            columns,
        },
        column_locations,
    })
}

fn referential_action(
    attributes: &BTreeMap<String, (String, Location)>,
    name: &str,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let (value, location) = attributes.get(name)?;
    let normalised = value.to_ascii_lowercase().replace([' ', '_'], "");
    let action = match normalised.as_str() {
        "cascade" => "CASCADE",
        "setnull" => "SET NULL",
        "restrict" => "RESTRICT",
        "setdefault" => "SET DEFAULT",
        "noaction" => "NO ACTION",
        "none" | "" => return None,
        _ => {
            diagnostics.at(
                location,
                format!(
                    "unknown `{name}` action {value:?}; expected CASCADE, SETNULL, RESTRICT, SETDEFAULT, NO ACTION or NONE"
                ),
            );
            return None;
        }
    };
    Some(action.to_owned())
}

fn parse_foreign_key(
    xml: &XmlFile<'_, '_>,
    node: Node<'_, '_>,
    diagnostics: &mut Diagnostics,
) -> Option<RawForeignKey> {
    let location = xml.node_location(node);
    let attributes = xml.attributes(
        node,
        &[
            "foreignTable",
            "name",
            "onDelete",
            "onUpdate",
            "phpName",
            "refPhpName",
        ],
        diagnostics,
    );
    let foreign_table = required(
        &attributes,
        "foreignTable",
        "foreign-key",
        &location,
        diagnostics,
    )?
    .to_owned();
    let name = attributes.get("name").map(|(name, _)| name.clone());
    if let Some(name) = &name
        && !is_index_name(name)
    {
        diagnostics.at(
            &location,
            format!(
                "foreign key name {name:?} must consist of ASCII letters, digits, `_`, `-` and `.`"
            ),
        );
    }
    let mut references = Vec::new();
    let mut reference_locations = Vec::new();
    for child in xml.element_children(node, diagnostics) {
        if child.tag_name().name() != "reference" {
            xml.unknown_element(child, "foreign-key", "<reference>", diagnostics);
            continue;
        }
        let child_location = xml.node_location(child);
        let child_attributes = xml.attributes(child, &["local", "foreign"], diagnostics);
        let local = required(
            &child_attributes,
            "local",
            "reference",
            &child_location,
            diagnostics,
        );
        let foreign = required(
            &child_attributes,
            "foreign",
            "reference",
            &child_location,
            diagnostics,
        );
        if let (Some(local), Some(foreign)) = (local, foreign) {
            references.push((local.to_owned(), foreign.to_owned()));
            reference_locations.push(child_location);
        }
    }
    if references.is_empty() {
        diagnostics.at(&location, "<foreign-key> has no <reference>");
    }
    Some(RawForeignKey {
        foreign_key: ForeignKey {
            name,
            foreign_table,
            references,
            on_delete: referential_action(&attributes, "onDelete", diagnostics),
            on_update: referential_action(&attributes, "onUpdate", diagnostics),
        },
        location,
        reference_locations,
    })
}

const EVENT_PARAMETER_ATTRIBUTES: &[&str] = &[
    "name",
    "column",
    "value",
    "operator",
    "keep-original",
    "keep-additional",
];
const PARAMETER_ATTRIBUTES: &[&str] = &["name", "value", "required"];

fn parse_behavior(
    xml: &XmlFile<'_, '_>,
    node: Node<'_, '_>,
    diagnostics: &mut Diagnostics,
) -> Option<RawBehavior> {
    let location = xml.node_location(node);
    let attributes = xml.attributes(node, &["name"], diagnostics);
    let name = required(&attributes, "name", "behavior", &location, diagnostics)?.to_owned();
    let allowed = match name.as_str() {
        "event" => EVENT_PARAMETER_ATTRIBUTES,
        "synchronization" | "timestampable" => PARAMETER_ATTRIBUTES,
        _ => {
            diagnostics.at(
                &location,
                format!(
                    "unknown behavior `{name}`; expected event, synchronization or timestampable"
                ),
            );
            return None;
        }
    };
    let mut parameters: Vec<RawParameter> = Vec::new();
    for child in xml.element_children(node, diagnostics) {
        if child.tag_name().name() != "parameter" {
            xml.unknown_element(child, "behavior", "<parameter>", diagnostics);
            continue;
        }
        let parameter_location = xml.node_location(child);
        let attributes = xml.attributes(child, allowed, diagnostics);
        for grandchild in xml.element_children(child, diagnostics) {
            xml.unknown_element(grandchild, "parameter", "no child elements", diagnostics);
        }
        let Some(parameter_name) = required(
            &attributes,
            "name",
            "parameter",
            &parameter_location,
            diagnostics,
        ) else {
            continue;
        };
        if parameters.iter().any(|p| p.name == parameter_name) {
            diagnostics.at(
                &parameter_location,
                format!("parameter `{parameter_name}` of behavior `{name}` is declared twice"),
            );
        }
        parameters.push(RawParameter {
            name: parameter_name.to_owned(),
            attributes,
            location: parameter_location,
        });
    }
    Some(RawBehavior {
        name,
        location,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use crate::schema::fixtures::{error, table};

    #[test]
    fn unknown_behavior_is_an_error() {
        let message = error(&table("<behavior name=\"sluggable\"/>"));
        assert!(
            message.contains(":5:1: unknown behavior `sluggable`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_column_type_is_an_error() {
        let message = error(&table("<column name=\"x\" type=\"STRING\"/>"));
        assert!(
            message.contains("unknown column type \"STRING\""),
            "{message}"
        );
    }
}
