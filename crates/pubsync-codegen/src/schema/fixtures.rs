//! The schema files the unit tests of the schema modules are written against, and how they
//! read the errors of a broken one.

use super::{SourceFile, parse_schemas};
use crate::error::{DefinitionError, Error};
use crate::model::Model;

pub(crate) const OUTBOX: &str = r#"<database name="zed">
    <table name="spy_event_behavior_entity_change">
        <column name="id_event_behavior_entity_change" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="data" type="LONGVARCHAR" required="true"/>
        <column name="process_id" type="VARCHAR" size="255"/>
    </table>
</database>"#;

pub(crate) fn parse(xml: &str) -> Result<Model, Vec<DefinitionError>> {
    parse_files(&[xml])
}

pub(crate) fn parse_files(xmls: &[&str]) -> Result<Model, Vec<DefinitionError>> {
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
pub(crate) fn error(xml: &str) -> String {
    let errors = parse(xml).expect_err("the definition is broken");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].to_string()
}

pub(crate) fn table(body: &str) -> String {
    format!(
        "<database name=\"zed\">\n<table name=\"spy_foo\">\n\
             <column name=\"id_foo\" type=\"INTEGER\" primaryKey=\"true\" autoIncrement=\"true\"/>\n\
             <column name=\"fk_bar\" type=\"INTEGER\"/>\n{body}\n</table>\n</database>"
    )
}
