//! What reading an XML definition file takes, for schema and transfer files alike: located
//! errors, checked attributes and child elements, and the values and names attributes hold.

use std::collections::BTreeMap;

use roxmltree::{Document, Node};

use crate::error::{Diagnostics, Location};

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

pub(crate) fn required<'a>(
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

pub(crate) fn parse_bool_text(
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

pub(crate) fn parse_u32(
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
pub(crate) fn is_index_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(crate) fn check_identifier(
    name: &str,
    what: &str,
    location: &Location,
    diagnostics: &mut Diagnostics,
) {
    if !is_identifier(name) {
        diagnostics.at(
            location,
            format!("{what} name {name:?} must consist of ASCII letters, digits and underscores"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::fixtures::{error, parse_files, table};

    /// The Hello Spryker tutorial's storage-table snippet, verbatim, has a stray `</behavior>`.
    #[test]
    fn tutorial_storage_table_with_stray_closing_behavior_is_a_located_error() {
        let snippet = include_str!("../../tests/data/tutorial_storage_table_snippet.xml");
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
