//! The tables the unit tests of the SQL modules are written against.

use crate::model::Table;
use crate::schema::{SourceFile, parse_schemas};

pub(crate) fn table(xml: &str) -> Table {
    let xml = format!("<database name=\"zed\">{xml}</database>");
    let model = parse_schemas(&[SourceFile::new("crates/a/schema/a.schema.xml", xml)]).unwrap();
    model.tables.into_iter().next().unwrap()
}

pub(crate) fn storage() -> Table {
    table(
        r#"<table name="spy_foo_storage">
            <column name="id_foo_storage" type="BIGINT" primaryKey="true" autoIncrement="true"/>
            <column name="fk_foo" type="INTEGER" required="true"/>
            <column name="active" type="BOOLEAN" required="true" defaultValue="true"/>
            <column name="label" type="CHAR" size="2" defaultValue="it's"/>
            <column name="raw" type="VARBINARY" size="16"/>
            <behavior name="synchronization">
                <parameter name="resource" value="foo"/>
                <parameter name="store" required="true"/>
                <parameter name="locale"/>
            </behavior>
            <behavior name="timestampable"/>
            </table>"#,
    )
}
