//! The validation of the merged tables (their columns, and the columns their indexes and
//! foreign keys name) into the model, each behaviour built by `behaviors`.

use std::collections::HashMap;

use super::behaviors::{
    add_synchronization_columns, add_timestamp_columns, build_event, build_synchronization,
    build_timestampable,
};
use super::raw::RawTable;
use crate::error::Diagnostics;
use crate::model::{Model, OUTBOX_TABLE, Table};

pub(crate) fn build_model(raw_tables: Vec<RawTable>, diagnostics: &mut Diagnostics) -> Model {
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
            packages: raw.packages.clone(),
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

#[cfg(test)]
mod tests {
    use crate::schema::fixtures::{error, table};

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
}
