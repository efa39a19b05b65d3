//! Reads Spryker-style `*.schema.xml` files, merges tables declared in several files and
//! validates the result into a [`Model`].
//!
//! Anything the format does not know (an element, an attribute, a behaviour) is an error: a
//! silently ignored typo makes a silently wrong table. `files` finds the files, `parse` reads
//! each into the raw tables of `raw` with the helpers of `xml`, and `validate` turns the merged
//! tables into the model, their behaviours built by `behaviors`.

mod behaviors;
mod files;
#[cfg(test)]
mod fixtures;
mod parse;
mod raw;
mod validate;
mod xml;

use std::collections::HashMap;

use crate::error::{Diagnostics, Error};
use crate::model::Model;

pub use files::{SourceFile, read_definition_files};
pub(crate) use xml::{XmlFile, is_identifier, parse_xml};

use parse::parse_file;
use raw::RawTable;
use validate::build_model;

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
