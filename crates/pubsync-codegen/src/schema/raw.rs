//! The raw, unvalidated tables as read from one file, and how a later file's declaration of a
//! table is merged into the earlier one, as Propel merges schema files.

use std::collections::BTreeMap;

use crate::error::Location;
use crate::model::{Column, ForeignKey, Index};

#[derive(Debug)]
pub(crate) struct RawTable {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) packages: Vec<String>,
    pub(crate) sources: Vec<String>,
    pub(crate) columns: Vec<(Column, Location)>,
    pub(crate) indexes: Vec<RawIndex>,
    pub(crate) foreign_keys: Vec<RawForeignKey>,
    pub(crate) behaviors: Vec<RawBehavior>,
}

#[derive(Debug)]
pub(crate) struct RawIndex {
    pub(crate) index: Index,
    pub(crate) column_locations: Vec<Location>,
}

#[derive(Debug)]
pub(crate) struct RawForeignKey {
    pub(crate) foreign_key: ForeignKey,
    pub(crate) location: Location,
    pub(crate) reference_locations: Vec<Location>,
}

#[derive(Debug)]
pub(crate) struct RawBehavior {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) parameters: Vec<RawParameter>,
}

#[derive(Debug)]
pub(crate) struct RawParameter {
    pub(crate) name: String,
    pub(crate) attributes: BTreeMap<String, (String, Location)>,
    pub(crate) location: Location,
}

impl RawParameter {
    pub(crate) fn get(&self, attribute: &str) -> Option<&str> {
        self.attributes
            .get(attribute)
            .map(|(value, _)| value.as_str())
    }

    pub(crate) fn location_of(&self, attribute: &str) -> &Location {
        self.attributes
            .get(attribute)
            .map_or(&self.location, |(_, location)| location)
    }
}

impl RawTable {
    /// Adds what a later file declares for the same table, as Propel merges schema files:
    /// new columns, indexes, foreign keys and behaviours are added; a column, index or
    /// behaviour parameter of the same name is replaced by the later declaration.
    pub(crate) fn merge(&mut self, later: RawTable) {
        for package in later.packages {
            if !self.packages.contains(&package) {
                self.packages.push(package);
            }
        }
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

#[cfg(test)]
mod tests {
    use crate::schema::fixtures::{parse_files, table};

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
}
