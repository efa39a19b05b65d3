//! Reads `*.transfer.xml` files, merges transfers of the same name and writes their structs.

use std::collections::BTreeMap;

use crate::error::{Diagnostics, Error, Location};
use crate::schema::{SourceFile, XmlFile, parse_xml};

/// The type of one transfer property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyType {
    /// `string`
    String,
    /// `int`, `integer`
    Int,
    /// `float`
    Float,
    /// `bool`, `boolean`
    Bool,
    /// `array`, `mixed`: any JSON
    Json,
    /// `string[]`
    StringList,
    /// `int[]`
    IntList,
    /// `<Other>`: another transfer
    Transfer(String),
    /// `<Other>[]`
    TransferList(String),
}

impl PropertyType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" => Self::String,
            "int" | "integer" => Self::Int,
            "float" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            "array" | "mixed" => Self::Json,
            "string[]" => Self::StringList,
            "int[]" | "integer[]" => Self::IntList,
            other => {
                let (name, list) = match other.strip_suffix("[]") {
                    Some(name) => (name, true),
                    None => (other, false),
                };
                if !is_transfer_name(name) {
                    return None;
                }
                if list {
                    Self::TransferList(name.to_owned())
                } else {
                    Self::Transfer(name.to_owned())
                }
            }
        })
    }

    fn rust_type(&self) -> String {
        match self {
            Self::String => "Option<String>".into(),
            Self::Int => "Option<i64>".into(),
            Self::Float => "Option<f64>".into(),
            Self::Bool => "Option<bool>".into(),
            Self::Json => "Option<serde_json::Value>".into(),
            Self::StringList => "Vec<String>".into(),
            Self::IntList => "Vec<i64>".into(),
            Self::Transfer(name) => format!("Option<Box<{name}Transfer>>"),
            Self::TransferList(name) => format!("Vec<{name}Transfer>"),
        }
    }
}

fn is_transfer_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// One merged transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The name without the `Transfer` suffix.
    pub name: String,
    /// The files declaring it.
    pub sources: Vec<String>,
    /// The packages declaring it, in merge order.
    pub packages: Vec<String>,
    /// The properties, in the order first declared.
    pub properties: Vec<Property>,
}

/// One property of a transfer.
#[derive(Debug, Clone)]
pub struct Property {
    /// The name as declared (camelCase).
    pub name: String,
    /// The type as written.
    pub type_text: String,
    /// The parsed type.
    pub ty: PropertyType,
    /// Where it was declared.
    pub location: Location,
}

/// Parses and merges transfer files into transfers sorted by name.
pub fn parse_transfers(files: &[SourceFile]) -> Result<Vec<Transfer>, Error> {
    let mut diagnostics = Diagnostics::default();
    let mut transfers: BTreeMap<String, Transfer> = BTreeMap::new();
    let mut references: Vec<(String, Location)> = Vec::new();
    for file in files {
        let Some(document) = parse_xml(&file.path, &file.text, &mut diagnostics) else {
            continue;
        };
        let xml = XmlFile {
            path: &file.path,
            document: &document,
        };
        let root = document.root_element();
        if root.tag_name().name() != "transfers" {
            diagnostics.at(
                &xml.node_location(root),
                format!(
                    "a transfer file must have <transfers> as its root element, not <{}>",
                    root.tag_name().name()
                ),
            );
            continue;
        }
        xml.attributes(root, &[], &mut diagnostics);
        for node in xml.element_children(root, &mut diagnostics) {
            if node.tag_name().name() != "transfer" {
                xml.unknown_element(node, "transfers", "<transfer>", &mut diagnostics);
                continue;
            }
            let location = xml.node_location(node);
            let attributes = xml.attributes(
                node,
                &["name", "strict", "deprecated", "description"],
                &mut diagnostics,
            );
            let Some((name, _)) = attributes.get("name") else {
                diagnostics.at(&location, "<transfer> misses the `name` attribute");
                continue;
            };
            if !is_transfer_name(name) {
                diagnostics.at(
                    &location,
                    format!(
                        "transfer name {name:?} must be UpperCamelCase ASCII letters and digits"
                    ),
                );
                continue;
            }
            let transfer = transfers.entry(name.clone()).or_insert_with(|| Transfer {
                name: name.clone(),
                sources: Vec::new(),
                packages: Vec::new(),
                properties: Vec::new(),
            });
            if let Some(package) = &file.package
                && !transfer.packages.contains(package)
            {
                transfer.packages.push(package.clone());
            }
            if !transfer.sources.contains(&file.path) {
                transfer.sources.push(file.path.clone());
            }
            for child in xml.element_children(node, &mut diagnostics) {
                if child.tag_name().name() != "property" {
                    xml.unknown_element(child, "transfer", "<property>", &mut diagnostics);
                    continue;
                }
                let property_location = xml.node_location(child);
                let attributes = xml.attributes(
                    child,
                    &[
                        "name",
                        "type",
                        "singular",
                        "associative",
                        "deprecated",
                        "description",
                        "strict",
                    ],
                    &mut diagnostics,
                );
                let (Some((property_name, _)), Some((type_text, type_location))) =
                    (attributes.get("name"), attributes.get("type"))
                else {
                    diagnostics.at(
                        &property_location,
                        "<property> needs both a `name` and a `type` attribute",
                    );
                    continue;
                };
                if !crate::schema::is_identifier(property_name) {
                    diagnostics.at(
                        &property_location,
                        format!("property name {property_name:?} must consist of ASCII letters, digits and underscores"),
                    );
                    continue;
                }
                let Some(ty) = PropertyType::parse(type_text) else {
                    diagnostics.at(
                        type_location,
                        format!(
                            "unknown type {type_text:?} of property `{property_name}`; expected string, int, integer, float, bool, boolean, array, mixed, string[], int[], a transfer name or a transfer name with []"
                        ),
                    );
                    continue;
                };
                if let PropertyType::Transfer(other) | PropertyType::TransferList(other) = &ty {
                    references.push((other.clone(), type_location.clone()));
                }
                match transfer
                    .properties
                    .iter()
                    .find(|p| p.name == *property_name)
                {
                    Some(existing) if existing.ty != ty => diagnostics.at(
                        &property_location,
                        format!(
                            "property `{property_name}` of transfer `{name}` has type {type_text:?} here but {:?} in {}:{}:{}",
                            existing.type_text,
                            existing.location.path.display(),
                            existing.location.line,
                            existing.location.column
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        let field = field_name(property_name);
                        if let Some(clash) =
                            transfer.properties.iter().find(|p| field_name(&p.name) == field)
                        {
                            diagnostics.at(
                                &property_location,
                                format!(
                                    "property `{property_name}` of transfer `{name}` becomes field `{field}`, as `{}` does",
                                    clash.name
                                ),
                            );
                        }
                        transfer.properties.push(Property {
                            name: property_name.clone(),
                            type_text: type_text.clone(),
                            ty,
                            location: property_location,
                        });
                    }
                }
            }
        }
    }
    for (name, location) in references {
        if !transfers.contains_key(&name) {
            diagnostics.at(
                &location,
                format!("transfer `{name}` is used as a type but no transfer file declares it"),
            );
        }
    }
    diagnostics.into_result(transfers.into_values().collect())
}

/// `idProductAbstract` → `id_product_abstract`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous = index.checked_sub(1).map(|i| chars[i]);
            let next = chars.get(index + 1);
            let boundary = match previous {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rust keywords that cannot be field or column names as they are.
pub(crate) const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

fn field_name(property: &str) -> String {
    let snake = snake_case(property);
    if RUST_KEYWORDS.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else {
        snake
    }
}

/// Writes the transfer structs of the shared transfer crate.
pub fn generate_transfers(transfers: &[Transfer], inputs: &[String]) -> String {
    let mut out = crate::rust::header(inputs);
    for transfer in transfers {
        out.push('\n');
        out.push_str(&format!(
            "/// The `{}` transfer, from {}.\n",
            transfer.name,
            transfer
                .sources
                .iter()
                .map(|source| format!("`{source}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(
            "#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]\n#[serde(default)]\n",
        );
        out.push_str(&format!("pub struct {}Transfer {{\n", transfer.name));
        for property in &transfer.properties {
            let field = field_name(&property.name);
            out.push_str(&format!(
                "    /// The `{}` property (`{}`).\n",
                property.name, property.type_text
            ));
            if field.trim_start_matches("r#") != property.name {
                out.push_str(&format!("    #[serde(alias = \"{}\")]\n", property.name));
            }
            out.push_str(&format!("    pub {field}: {},\n", property.ty.rust_type()));
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(files: &[(&str, &str)]) -> Result<Vec<Transfer>, String> {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile::new(*path, *text))
            .collect();
        parse_transfers(&files).map_err(|error| error.to_string())
    }

    #[test]
    fn the_hello_transfer_becomes_hello_spryker_storage_transfer() {
        let hello = include_str!("../../pubsync-hello/transfer/hello_spryker.transfer.xml");
        let transfers = parse(&[(
            "crates/pubsync-hello/transfer/hello_spryker.transfer.xml",
            hello,
        )])
        .unwrap();
        let code = generate_transfers(&transfers, &[]);
        assert!(code.contains(
            "pub struct HelloSprykerStorageTransfer {\n    /// The `name` property (`string`).\n    pub name: Option<String>,\n    /// The `message` property (`string`).\n    pub message: Option<String>,\n}"
        ), "{code}");
    }

    #[test]
    fn property_types_and_names() {
        let xml = r#"<transfers>
            <transfer name="ProductAbstractStorage">
                <property name="idProductAbstract" type="int"/>
                <property name="price" type="float"/>
                <property name="isActive" type="boolean"/>
                <property name="attributes" type="array"/>
                <property name="skus" type="string[]" singular="sku"/>
                <property name="ids" type="int[]"/>
                <property name="type" type="string"/>
                <property name="image" type="ProductImage"/>
                <property name="images" type="ProductImage[]"/>
            </transfer>
            <transfer name="ProductImage"><property name="url" type="string"/></transfer>
        </transfers>"#;
        let code = generate_transfers(&parse(&[("t.transfer.xml", xml)]).unwrap(), &[]);
        for expected in [
            "#[serde(alias = \"idProductAbstract\")]\n    pub id_product_abstract: Option<i64>,",
            "pub price: Option<f64>,",
            "pub is_active: Option<bool>,",
            "pub attributes: Option<serde_json::Value>,",
            "pub skus: Vec<String>,",
            "pub ids: Vec<i64>,",
            "pub r#type: Option<String>,",
            "pub image: Option<Box<ProductImageTransfer>>,",
            "pub images: Vec<ProductImageTransfer>,",
        ] {
            assert!(code.contains(expected), "{expected}\n{code}");
        }
        // Sorted by name.
        assert!(code.find("ProductAbstractStorageTransfer") < code.find("ProductImageTransfer {"));
    }

    #[test]
    fn snake_case_of_property_names() {
        assert_eq!(snake_case("idProductAbstract"), "id_product_abstract");
        assert_eq!(snake_case("name"), "name");
        assert_eq!(snake_case("fkLocale2"), "fk_locale2");
        assert_eq!(snake_case("URLPath"), "url_path");
    }

    #[test]
    fn transfers_are_merged_and_conflicting_types_name_both_files() {
        let core = r#"<transfers><transfer name="Foo"><property name="a" type="string"/></transfer></transfers>"#;
        let project = r#"<transfers><transfer name="Foo"><property name="b" type="int"/></transfer></transfers>"#;
        let transfers = parse(&[
            ("core.transfer.xml", core),
            ("project.transfer.xml", project),
        ])
        .unwrap();
        assert_eq!(transfers[0].properties.len(), 2);
        assert_eq!(
            transfers[0].sources,
            ["core.transfer.xml", "project.transfer.xml"]
        );

        let conflicting = r#"<transfers>
<transfer name="Foo"><property name="a" type="int"/></transfer></transfers>"#;
        let message = parse(&[
            ("core.transfer.xml", core),
            ("project.transfer.xml", conflicting),
        ])
        .unwrap_err();
        assert_eq!(
            message,
            "project.transfer.xml:2:22: property `a` of transfer `Foo` has type \"int\" here but \"string\" in core.transfer.xml:1:33"
        );
    }

    #[test]
    fn unknown_types_and_transfers_are_errors() {
        let message = parse(&[("t.transfer.xml", r#"<transfers><transfer name="Foo"><property name="a" type="decimal"/></transfer></transfers>"#)]).unwrap_err();
        assert!(
            message.starts_with("t.transfer.xml:1:52: unknown type \"decimal\""),
            "{message}"
        );
        let message = parse(&[("t.transfer.xml", r#"<transfers><transfer name="Foo"><property name="a" type="Bar[]"/></transfer></transfers>"#)]).unwrap_err();
        assert!(
            message.contains("transfer `Bar` is used as a type but no transfer file declares it"),
            "{message}"
        );
        let message = parse(&[(
            "t.transfer.xml",
            r#"<transfers><transfer name="Foo"><propery name="a"/></transfer></transfers>"#,
        )])
        .unwrap_err();
        assert!(message.contains("unknown element <propery>"), "{message}");
    }
}
