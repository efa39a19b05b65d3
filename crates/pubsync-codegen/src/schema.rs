//! Reads Spryker-style `*.schema.xml` files, merges tables declared in several files and
//! validates the result into a [`Model`].
//!
//! Anything the format does not know (an element, an attribute, a behaviour) is an error: a
//! silently ignored typo makes a silently wrong table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use roxmltree::{Document, Node};

use crate::error::{Diagnostics, Error, Location};
use crate::model::{
    Column, ColumnType, DefaultValue, EventBehavior, EventColumn, EventParameter, ForeignKey,
    Index, Model, OUTBOX_TABLE, Operator, Synchronization, Table, Timestampable,
};

/// One definition file, read into memory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path relative to the workspace root, with `/` separators.
    pub path: String,
    /// The crate directory under `crates/` the file belongs to, if any.
    pub crate_name: Option<String>,
    /// The file contents.
    pub text: String,
}

impl SourceFile {
    /// A file at `path` (relative, `/`-separated); the crate is taken from `crates/<crate>/…`.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let path = path.into();
        let crate_name = path
            .strip_prefix("crates/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        Self {
            path,
            crate_name,
            text: text.into(),
        }
    }
}

/// Parses, merges and validates schema files (in the order given) into a model.
pub fn parse_schemas(files: &[SourceFile]) -> Result<Model, Error> {
    let mut diagnostics = Diagnostics::default();
    let mut tables: Vec<RawTable> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for file in files {
        for table in parse_file(file, &mut diagnostics) {
            match by_name.get(&table.name) {
                Some(&index) => tables[index].merge(table),
                None => {
                    by_name.insert(table.name.clone(), tables.len());
                    tables.push(table);
                }
            }
        }
    }
    if !diagnostics.errors.is_empty() {
        return Err(Error::Definitions(diagnostics.errors));
    }
    let model = build_model(tables, &mut diagnostics);
    diagnostics.into_result(model)
}

// ---------------------------------------------------------------------------------------
// Raw, unvalidated tables as read from one file.

#[derive(Debug)]
struct RawTable {
    name: String,
    location: Location,
    crate_name: Option<String>,
    sources: Vec<String>,
    columns: Vec<(Column, Location)>,
    indexes: Vec<RawIndex>,
    foreign_keys: Vec<RawForeignKey>,
    behaviors: Vec<RawBehavior>,
}

#[derive(Debug)]
struct RawIndex {
    index: Index,
    column_locations: Vec<Location>,
}

#[derive(Debug)]
struct RawForeignKey {
    foreign_key: ForeignKey,
    location: Location,
    reference_locations: Vec<Location>,
}

#[derive(Debug)]
struct RawBehavior {
    name: String,
    location: Location,
    parameters: Vec<RawParameter>,
}

#[derive(Debug)]
struct RawParameter {
    name: String,
    attributes: BTreeMap<String, (String, Location)>,
    location: Location,
}

impl RawParameter {
    fn get(&self, attribute: &str) -> Option<&str> {
        self.attributes
            .get(attribute)
            .map(|(value, _)| value.as_str())
    }

    fn location_of(&self, attribute: &str) -> &Location {
        self.attributes
            .get(attribute)
            .map_or(&self.location, |(_, location)| location)
    }
}

impl RawTable {
    /// Adds what a later file declares for the same table, as Propel merges schema files:
    /// new columns, indexes, foreign keys and behaviours are added; a column, index or
    /// behaviour parameter of the same name is replaced by the later declaration.
    fn merge(&mut self, later: RawTable) {
        for source in later.sources {
            if !self.sources.contains(&source) {
                self.sources.push(source);
            }
        }
        for (column, location) in later.columns {
            match self.columns.iter_mut().find(|(c, _)| c.name == column.name) {
                Some(existing) => *existing = (column, location),
                None => self.columns.push((column, location)),
            }
        }
        for index in later.indexes {
            match self
                .indexes
                .iter_mut()
                .find(|i| i.index.name == index.index.name)
            {
                Some(existing) => *existing = index,
                None => self.indexes.push(index),
            }
        }
        for foreign_key in later.foreign_keys {
            let same = |existing: &&mut RawForeignKey| {
                foreign_key.foreign_key.name.is_some()
                    && existing.foreign_key.name == foreign_key.foreign_key.name
            };
            match self.foreign_keys.iter_mut().find(same) {
                Some(existing) => *existing = foreign_key,
                None => self.foreign_keys.push(foreign_key),
            }
        }
        for behavior in later.behaviors {
            match self.behaviors.iter_mut().find(|b| b.name == behavior.name) {
                Some(existing) => {
                    for parameter in behavior.parameters {
                        match existing
                            .parameters
                            .iter_mut()
                            .find(|p| p.name == parameter.name)
                        {
                            Some(old) => *old = parameter,
                            None => existing.parameters.push(parameter),
                        }
                    }
                }
                None => self.behaviors.push(behavior),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading one file.

pub(crate) struct XmlFile<'a, 'input> {
    pub(crate) path: &'a str,
    pub(crate) document: &'a Document<'input>,
}

impl XmlFile<'_, '_> {
    pub(crate) fn location(&self, position: usize) -> Location {
        let text_position = self.document.text_pos_at(position);
        Location {
            path: self.path.into(),
            line: text_position.row,
            column: text_position.col,
        }
    }

    pub(crate) fn node_location(&self, node: Node<'_, '_>) -> Location {
        self.location(node.range().start)
    }

    /// Checks that `node` only has the `allowed` attributes (namespaced ones such as
    /// `xsi:schemaLocation` are accepted) and returns them.
    pub(crate) fn attributes(
        &self,
        node: Node<'_, '_>,
        allowed: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> BTreeMap<String, (String, Location)> {
        let mut attributes = BTreeMap::new();
        for attribute in node.attributes() {
            if attribute.namespace().is_some() {
                continue;
            }
            let location = self.location(attribute.range().start);
            if allowed.contains(&attribute.name()) {
                attributes.insert(
                    attribute.name().to_owned(),
                    (attribute.value().to_owned(), location),
                );
            } else {
                diagnostics.at(
                    &location,
                    format!(
                        "unknown attribute `{}` on <{}>; expected one of: {}",
                        attribute.name(),
                        node.tag_name().name(),
                        allowed.join(", ")
                    ),
                );
            }
        }
        attributes
    }

    /// The element children of `node`; text other than whitespace is an error.
    pub(crate) fn element_children<'n, 'i>(
        &self,
        node: Node<'n, 'i>,
        diagnostics: &mut Diagnostics,
    ) -> Vec<Node<'n, 'i>> {
        let mut elements = Vec::new();
        for child in node.children() {
            if child.is_element() {
                elements.push(child);
            } else if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
                diagnostics.at(
                    &self.node_location(child),
                    format!("unexpected text inside <{}>", node.tag_name().name()),
                );
            }
        }
        elements
    }

    pub(crate) fn unknown_element(
        &self,
        node: Node<'_, '_>,
        parent: &str,
        expected: &str,
        diagnostics: &mut Diagnostics,
    ) {
        diagnostics.at(
            &self.node_location(node),
            format!(
                "unknown element <{}> inside <{parent}>; expected {expected}",
                node.tag_name().name()
            ),
        );
    }
}

/// Parses the text of an XML file, turning a syntax error into a located error.
pub(crate) fn parse_xml<'input>(
    path: &str,
    text: &'input str,
    diagnostics: &mut Diagnostics,
) -> Option<Document<'input>> {
    match Document::parse(text) {
        Ok(document) => Some(document),
        Err(error) => {
            let position = error.pos();
            diagnostics.push(crate::error::DefinitionError {
                path: path.into(),
                line: position.row,
                column: position.col,
                message: format!("malformed XML: {error}"),
            });
            None
        }
    }
}

fn required<'a>(
    attributes: &'a BTreeMap<String, (String, Location)>,
    name: &str,
    element: &str,
    element_location: &Location,
    diagnostics: &mut Diagnostics,
) -> Option<&'a str> {
    match attributes.get(name) {
        Some((value, _)) => Some(value.as_str()),
        None => {
            diagnostics.at(
                element_location,
                format!("<{element}> misses the `{name}` attribute"),
            );
            None
        }
    }
}

pub(crate) fn parse_bool(
    attributes: &BTreeMap<String, (String, Location)>,
    name: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    match attributes.get(name) {
        None => false,
        Some((value, location)) => parse_bool_text(value, name, location, diagnostics),
    }
}

fn parse_bool_text(
    value: &str,
    name: &str,
    location: &Location,
    diagnostics: &mut Diagnostics,
) -> bool {
    if value.eq_ignore_ascii_case("true") {
        true
    } else if value.eq_ignore_ascii_case("false") {
        false
    } else {
        diagnostics.at(
            location,
            format!("`{name}` must be \"true\" or \"false\", not {value:?}"),
        );
        false
    }
}

fn parse_u32(
    attributes: &BTreeMap<String, (String, Location)>,
    name: &str,
    diagnostics: &mut Diagnostics,
) -> Option<u32> {
    let (value, location) = attributes.get(name)?;
    match value.trim().parse::<u32>() {
        Ok(number) if number > 0 => Some(number),
        _ => {
            diagnostics.at(
                location,
                format!("`{name}` must be a positive whole number, not {value:?}"),
            );
            None
        }
    }
}

/// Table and column names: letters, digits and underscores, not starting with a digit.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Index and constraint names may also contain `-` and `.`.
fn is_index_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_identifier(name: &str, what: &str, location: &Location, diagnostics: &mut Diagnostics) {
    if !is_identifier(name) {
        diagnostics.at(
            location,
            format!("{what} name {name:?} must consist of ASCII letters, digits and underscores"),
        );
    }
}

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

fn parse_file(file: &SourceFile, diagnostics: &mut Diagnostics) -> Vec<RawTable> {
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
        crate_name: file.crate_name.clone(),
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

// ---------------------------------------------------------------------------------------
// Validation of the merged tables.

fn build_model(raw_tables: Vec<RawTable>, diagnostics: &mut Diagnostics) -> Model {
    let columns_of: HashMap<&str, Vec<&str>> = raw_tables
        .iter()
        .map(|table| {
            (
                table.name.as_str(),
                table.columns.iter().map(|(c, _)| c.name.as_str()).collect(),
            )
        })
        .collect();
    let has_outbox = columns_of.contains_key(OUTBOX_TABLE);
    let mut tables = Vec::new();
    for raw in &raw_tables {
        let has_column = |name: &str| raw.columns.iter().any(|(c, _)| c.name == name);
        if raw.columns.is_empty() {
            diagnostics.at(
                &raw.location,
                format!("table `{}` has no columns", raw.name),
            );
        }
        for raw_index in &raw.indexes {
            for (column, location) in raw_index
                .index
                .columns
                .iter()
                .zip(&raw_index.column_locations)
            {
                if !has_column(column) {
                    diagnostics.at(
                        location,
                        format!(
                            "{} `{}` names column `{column}`, which table `{}` does not have",
                            if raw_index.index.unique {
                                "unique"
                            } else {
                                "index"
                            },
                            raw_index.index.name,
                            raw.name
                        ),
                    );
                }
            }
        }
        for raw_foreign_key in &raw.foreign_keys {
            let foreign_key = &raw_foreign_key.foreign_key;
            let foreign_columns = columns_of.get(foreign_key.foreign_table.as_str());
            if foreign_columns.is_none() {
                diagnostics.at(
                    &raw_foreign_key.location,
                    format!(
                        "foreign key of `{}` references table `{}`, which no schema file declares",
                        raw.name, foreign_key.foreign_table
                    ),
                );
            }
            for ((local, foreign), location) in foreign_key
                .references
                .iter()
                .zip(&raw_foreign_key.reference_locations)
            {
                if !has_column(local) {
                    diagnostics.at(
                        location,
                        format!(
                            "foreign key reference names local column `{local}`, which table `{}` does not have",
                            raw.name
                        ),
                    );
                }
                if let Some(foreign_columns) = foreign_columns
                    && !foreign_columns.contains(&foreign.as_str())
                {
                    diagnostics.at(
                        location,
                        format!(
                            "foreign key reference names column `{foreign}`, which table `{}` does not have",
                            foreign_key.foreign_table
                        ),
                    );
                }
            }
        }
        let mut table = Table {
            name: raw.name.clone(),
            crate_name: raw.crate_name.clone(),
            sources: raw.sources.clone(),
            location: raw.location.clone(),
            columns: raw.columns.iter().map(|(c, _)| c.clone()).collect(),
            indexes: raw.indexes.iter().map(|i| i.index.clone()).collect(),
            foreign_keys: raw
                .foreign_keys
                .iter()
                .map(|f| f.foreign_key.clone())
                .collect(),
            event: None,
            synchronization: None,
            timestampable: None,
        };
        for behavior in &raw.behaviors {
            match behavior.name.as_str() {
                "event" => {
                    table.event = Some(build_event(raw, behavior, has_outbox, diagnostics));
                }
                "synchronization" => {
                    if let Some(synchronization) = build_synchronization(raw, behavior, diagnostics)
                    {
                        add_synchronization_columns(&mut table, &synchronization);
                        table.synchronization = Some(synchronization);
                    }
                }
                "timestampable" => {
                    let timestampable = build_timestampable(behavior, diagnostics);
                    add_timestamp_columns(&mut table, timestampable);
                    table.timestampable = Some(timestampable);
                }
                _ => unreachable!("unknown behaviours are rejected while parsing"),
            }
        }
        tables.push(table);
    }
    Model {
        tables,
        migrated_triggers: None,
    }
}

fn build_event(
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

fn build_synchronization(
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

fn build_timestampable(behavior: &RawBehavior, diagnostics: &mut Diagnostics) -> Timestampable {
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

/// The columns `synchronization` adds when absent (reference section 5.2).
fn add_synchronization_columns(table: &mut Table, synchronization: &Synchronization) {
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
fn add_timestamp_columns(table: &mut Table, timestampable: Timestampable) {
    let timestamp = |name: &str| Column {
        default_value: Some(DefaultValue::CurrentTimestamp),
        ..plain_column(name, ColumnType::Timestamp, None, false)
    };
    add_column_if_absent(table, timestamp("created_at"));
    if !timestampable.disable_updated_at {
        add_column_if_absent(table, timestamp("updated_at"));
    }
}

/// Reads every file matching `crates/*/<folder>/*<suffix>` under `root`, in sorted path order.
pub fn read_definition_files(
    root: &Path,
    folder: &str,
    suffix: &str,
) -> Result<Vec<SourceFile>, Error> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let crates_dir = root.join("crates");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&crates_dir).map_err(io_error(&crates_dir))? {
        let entry = entry.map_err(io_error(&crates_dir))?;
        let dir = entry.path().join(folder);
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let file = file.map_err(io_error(&dir))?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) {
                let crate_name = entry.file_name().to_string_lossy().into_owned();
                paths.push(format!("crates/{crate_name}/{folder}/{name}"));
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|relative| {
            let full = root.join(&relative);
            let text = std::fs::read_to_string(&full).map_err(io_error(&full))?;
            Ok(SourceFile::new(relative, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DefinitionError;
    use crate::model::{EventColumn, Operator};

    pub(crate) const OUTBOX: &str = r#"<database name="zed">
    <table name="spy_event_behavior_entity_change">
        <column name="id_event_behavior_entity_change" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="data" type="LONGVARCHAR" required="true"/>
        <column name="process_id" type="VARCHAR" size="255"/>
    </table>
</database>"#;

    fn parse(xml: &str) -> Result<Model, Vec<DefinitionError>> {
        parse_files(&[xml])
    }

    fn parse_files(xmls: &[&str]) -> Result<Model, Vec<DefinitionError>> {
        let mut files = vec![SourceFile::new(
            "crates/a/schema/0_outbox.schema.xml",
            OUTBOX,
        )];
        for (index, xml) in xmls.iter().enumerate() {
            files.push(SourceFile::new(
                format!("crates/a/schema/{}_test.schema.xml", index + 1),
                *xml,
            ));
        }
        parse_schemas(&files).map_err(|error| match error {
            Error::Definitions(errors) => errors,
            other => panic!("unexpected error {other}"),
        })
    }

    /// The single error of a broken definition, as displayed.
    fn error(xml: &str) -> String {
        let errors = parse(xml).expect_err("the definition is broken");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].to_string()
    }

    fn table(body: &str) -> String {
        format!(
            "<database name=\"zed\">\n<table name=\"spy_foo\">\n\
             <column name=\"id_foo\" type=\"INTEGER\" primaryKey=\"true\" autoIncrement=\"true\"/>\n\
             <column name=\"fk_bar\" type=\"INTEGER\"/>\n{body}\n</table>\n</database>"
        )
    }

    /// The tutorial's storage-table snippet (section 5), verbatim, has a stray `</behavior>`.
    #[test]
    fn tutorial_storage_table_with_stray_closing_behavior_is_a_located_error() {
        let snippet = include_str!("../tests/data/tutorial_storage_table_snippet.xml");
        let xml = format!("<database name=\"zed\">\n{snippet}</database>\n");
        let message = error(&xml);
        // The snippet starts on line 2; its stray `</behavior>` is its line 14.
        assert!(
            message.starts_with("crates/a/schema/1_test.schema.xml:15:"),
            "{message}"
        );
        assert_eq!(
            message,
            "crates/a/schema/1_test.schema.xml:15:4: malformed XML: expected 'table' tag, not 'behavior' at 15:4"
        );
    }

    #[test]
    fn the_hello_schema_parses_with_behaviour_columns() {
        let hello = include_str!("../../pubsync-hello/schema/spy_hello_spryker.schema.xml");
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
    fn unknown_element_is_an_error() {
        let message = error(&table("<colum name=\"x\" type=\"INTEGER\"/>"));
        assert!(
            message.starts_with("crates/a/schema/1_test.schema.xml:5:1: unknown element <colum>"),
            "{message}"
        );
    }

    #[test]
    fn unknown_attribute_is_an_error() {
        let message = error(&table(
            "<column name=\"x\" type=\"INTEGER\" requird=\"true\"/>",
        ));
        assert!(
            message.contains(":5:33: unknown attribute `requird` on <column>"),
            "{message}"
        );
    }

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

    #[test]
    fn index_on_unknown_column_is_an_error() {
        let message = error(&table(
            "<index name=\"spy_foo-x\"><index-column name=\"x\"/></index>",
        ));
        assert!(
            message.contains(":5:25: index `spy_foo-x` names column `x`"),
            "{message}"
        );
        let message = error(&table(
            "<unique name=\"spy_foo-x\"><unique-column name=\"x\"/></unique>",
        ));
        assert!(
            message.contains("unique `spy_foo-x` names column `x`"),
            "{message}"
        );
    }

    #[test]
    fn foreign_key_errors() {
        let message = error(&table(
            "<foreign-key foreignTable=\"spy_nope\"><reference local=\"fk_bar\" foreign=\"id\"/></foreign-key>",
        ));
        assert!(message.contains("references table `spy_nope`"), "{message}");
        let message = error(&table(
            "<foreign-key foreignTable=\"spy_foo\"><reference local=\"fk_nope\" foreign=\"id_foo\"/></foreign-key>",
        ));
        assert!(message.contains("local column `fk_nope`"), "{message}");
        let message = error(&table(
            "<foreign-key foreignTable=\"spy_foo\" onDelete=\"EXPLODE\"><reference local=\"fk_bar\" foreign=\"id_foo\"/></foreign-key>",
        ));
        assert!(message.contains("unknown `onDelete` action"), "{message}");
    }

    #[test]
    fn tables_of_the_same_name_are_merged_over_files() {
        let core = table(
            "<behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/></behavior>",
        );
        let project = "<database name=\"zed\"><table name=\"spy_foo\">\
            <column name=\"extra\" type=\"VARCHAR\" size=\"32\"/>\
            <index name=\"spy_foo-extra\"><index-column name=\"extra\"/></index>\
            <behavior name=\"synchronization\"><parameter name=\"synchronization_enabled\" value=\"false\"/></behavior>\
            </table></database>";
        let model = parse_files(&[&core, project]).unwrap();
        let table = model.table("spy_foo").unwrap();
        assert_eq!(table.sources.len(), 2);
        assert!(table.column("extra").is_some());
        assert!(table.indexes.iter().any(|i| i.name == "spy_foo-extra"));
        let synchronization = table.synchronization.as_ref().unwrap();
        assert_eq!(synchronization.resource, "foo");
        assert_eq!(synchronization.synchronization_enabled, Some(false));
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        let errors = parse_files(&[
            &table("<column name=\"x\" type=\"NOPE\"/>"),
            "<database><tabl/></database>",
        ])
        .unwrap_err();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 2, "{texts:#?}");
        assert!(
            texts[0].starts_with("crates/a/schema/1_test.schema.xml:5:18: "),
            "{texts:#?}"
        );
        assert!(
            texts[1].starts_with("crates/a/schema/2_test.schema.xml:1:11: unknown element <tabl>"),
            "{texts:#?}"
        );
    }
}
