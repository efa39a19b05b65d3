//! Migrations: the difference between the snapshot (the schema as migrated) and the model.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::DefinitionError;
use crate::model::{DefaultValue, Model, Table};
use crate::sql::{self, Dialect};

/// The statements of one migration for one dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectMigration {
    /// The dialect.
    pub dialect: Dialect,
    /// `up.sql` statements.
    pub up: Vec<String>,
    /// `down.sql` statements.
    pub down: Vec<String>,
}

/// What changed between two models, for naming the migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `create_<table>`, `alter_<table>`, `drop_<table>`.
    pub changes: Vec<String>,
    /// The statements per dialect.
    pub dialects: Vec<DialectMigration>,
}

impl Plan {
    /// Whether nothing needs migrating.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The migration's name (without version), derived from the changes.
    pub fn name(&self, initial: bool) -> String {
        if initial {
            return "initial".into();
        }
        let mut name = self.changes[0].clone();
        if self.changes.len() > 1 {
            name.push_str("_and_more");
        }
        name
    }
}

/// The migration from `old` (the snapshot) to `new` (the definitions). Changes codegen cannot
/// migrate (a column removed or redefined, a foreign key changed) are errors.
pub fn plan(old: &Model, new: &Model) -> Result<Plan, Vec<DefinitionError>> {
    check_migratable(old, new)?;
    let mut plan = Plan {
        changes: changes(old, new),
        dialects: Vec::new(),
    };
    if plan.changes.is_empty() {
        return Ok(plan);
    }
    for dialect in Dialect::ALL {
        plan.dialects.push(DialectMigration {
            dialect,
            up: statements(dialect, old, new),
            down: statements(dialect, new, old),
        });
    }
    Ok(plan)
}

fn changes(old: &Model, new: &Model) -> Vec<String> {
    let mut changes = Vec::new();
    for table in &new.tables {
        match old.table(&table.name) {
            None => changes.push(format!("create_{}", table.name)),
            Some(previous) if table_changed((old, previous), (new, table)) => {
                changes.push(format!("alter_{}", table.name));
            }
            Some(_) => {}
        }
    }
    for table in &old.tables {
        if new.table(&table.name).is_none() {
            changes.push(format!("drop_{}", table.name));
        }
    }
    changes
}

/// The fingerprint of the triggers `table` has on `dialect` (`None`: no triggers): as
/// recorded in the snapshot for a snapshot model, as generated for a definitions model.
pub fn trigger_fingerprint(dialect: Dialect, model: &Model, table: &Table) -> Option<String> {
    match &model.migrated_triggers {
        Some(records) => records
            .iter()
            .find(|record| record.table == table.name && record.dialect == dialect.name())
            .map(|record| record.fingerprint.clone()),
        None => {
            let statements = sql::create_triggers(dialect, table);
            (!statements.is_empty()).then(|| sql::fingerprint(&statements.join("\n")))
        }
    }
}

fn triggers_changed(dialect: Dialect, from: (&Model, &Table), to: (&Model, &Table)) -> bool {
    trigger_fingerprint(dialect, from.0, from.1) != trigger_fingerprint(dialect, to.0, to.1)
}

fn table_changed(old: (&Model, &Table), new: (&Model, &Table)) -> bool {
    old.1.columns != new.1.columns
        || sorted_indexes(old.1) != sorted_indexes(new.1)
        || old.1.foreign_keys != new.1.foreign_keys
        || Dialect::ALL
            .into_iter()
            .any(|dialect| triggers_changed(dialect, old, new))
}

fn sorted_indexes(table: &Table) -> Vec<&crate::model::Index> {
    let mut indexes: Vec<_> = table.indexes.iter().collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    indexes
}

fn check_migratable(old: &Model, new: &Model) -> Result<(), Vec<DefinitionError>> {
    const MANUAL: &str = "codegen cannot migrate this: write a manual migration in the table's migrations folder (`migrations/<dialect>/` of its crate), then run `cargo xtask codegen --update-snapshot`";
    let mut errors = Vec::new();
    for table in &new.tables {
        let Some(previous) = old.table(&table.name) else {
            continue;
        };
        for column in &previous.columns {
            match table.column(&column.name) {
                None => errors.push(table.location.error(format!(
                    "column `{}` of table `{}` was removed since the latest migration; {MANUAL}",
                    column.name, table.name
                ))),
                Some(current) if current != column => errors.push(table.location.error(format!(
                    "column `{}` of table `{}` changed since the latest migration ({} → {}); {MANUAL}",
                    column.name,
                    table.name,
                    describe(column),
                    describe(current)
                ))),
                Some(_) => {}
            }
        }
        for column in &table.columns {
            if previous.column(&column.name).is_none() {
                if column.required && column.default_value.is_none() {
                    errors.push(table.location.error(format!(
                        "column `{}` added to existing table `{}` is required but has no defaultValue; {MANUAL}",
                        column.name, table.name
                    )));
                }
                if column.primary_key {
                    errors.push(table.location.error(format!(
                        "primary-key column `{}` added to existing table `{}`; {MANUAL}",
                        column.name, table.name
                    )));
                }
                if column.default_value == Some(DefaultValue::CurrentTimestamp) {
                    errors.push(table.location.error(format!(
                        "column `{}` with DEFAULT CURRENT_TIMESTAMP added to existing table `{}` (SQLite cannot add it); {MANUAL}",
                        column.name, table.name
                    )));
                }
            }
        }
        if previous.foreign_keys != table.foreign_keys {
            errors.push(table.location.error(format!(
                "the foreign keys of table `{}` changed since the latest migration; {MANUAL}",
                table.name
            )));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn describe(column: &crate::model::Column) -> String {
    let mut text = column.ty.as_str().to_owned();
    if let Some(size) = column.size {
        text.push_str(&format!("({size})"));
    }
    if column.required {
        text.push_str(" required");
    }
    if column.primary_key {
        text.push_str(" primary key");
    }
    if let Some(default) = &column.default_value {
        text.push_str(&format!(" default {default:?}"));
    }
    text
}

/// Tables in an order where every table comes after the tables its foreign keys reference
/// (as far as possible; cycles keep declaration order).
pub(crate) fn creation_order(tables: Vec<&Table>) -> Vec<&Table> {
    let mut ordered: Vec<&Table> = Vec::new();
    let mut remaining = tables;
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|table| {
            table.foreign_keys.iter().all(|fk| {
                fk.foreign_table == table.name
                    || !remaining.iter().any(|other| other.name == fk.foreign_table)
            })
        });
        ordered.push(remaining.remove(ready.unwrap_or(0)));
    }
    ordered
}

/// The statements turning the `from` schema into the `to` schema.
///
/// Triggers are dropped where `from` has them and created where `to` has them, as the
/// current generator writes them. When `to` is the snapshot (a down migration) and the
/// generator changed since, the recreated triggers are today's version of them.
fn statements(dialect: Dialect, from: &Model, to: &Model) -> Vec<String> {
    let mut out = Vec::new();
    let kept: Vec<(&Table, &Table)> = to
        .tables
        .iter()
        .filter_map(|table| from.table(&table.name).map(|old| (old, table)))
        .collect();
    let triggers_changed =
        |old: &Table, new: &Table| triggers_changed(dialect, (from, old), (to, new));
    let has_triggers =
        |model: &Model, table: &Table| trigger_fingerprint(dialect, model, table).is_some();
    // 1. Triggers that go away or change.
    for (old, new) in &kept {
        if triggers_changed(old, new) && has_triggers(from, old) {
            out.extend(sql::drop_triggers(dialect, old));
        }
    }
    for table in &from.tables {
        if to.table(&table.name).is_none() && has_triggers(from, table) {
            out.extend(sql::drop_triggers(dialect, table));
        }
    }
    // 2. Indexes that go away or change, columns that go away.
    for (old, new) in &kept {
        for index in &old.indexes {
            if !new.indexes.contains(index) {
                out.push(sql::drop_index(dialect, &old.name, &index.name));
            }
        }
        for column in &old.columns {
            if new.column(&column.name).is_none() {
                out.push(sql::drop_column(dialect, &old.name, &column.name));
            }
        }
    }
    // 3. Tables that go away, referencing tables first.
    let dropped: Vec<&Table> = from
        .tables
        .iter()
        .filter(|table| to.table(&table.name).is_none())
        .collect();
    for table in creation_order(dropped).into_iter().rev() {
        out.push(sql::drop_table(dialect, &table.name));
    }
    // 4. New tables with their indexes.
    let created: Vec<&Table> = to
        .tables
        .iter()
        .filter(|table| from.table(&table.name).is_none())
        .collect();
    let created = creation_order(created);
    for table in &created {
        out.push(sql::create_table(dialect, table));
        for index in &table.indexes {
            out.push(sql::create_index(dialect, &table.name, index));
        }
    }
    // 5. New columns and new or changed indexes of kept tables.
    for (old, new) in &kept {
        for column in &new.columns {
            if old.column(&column.name).is_none() {
                out.push(sql::add_column(dialect, new, column));
            }
        }
        for index in &new.indexes {
            if !old.indexes.contains(index) {
                out.push(sql::create_index(dialect, &new.name, index));
            }
        }
    }
    // 6. Triggers, after every column they read exists.
    for table in &created {
        if has_triggers(to, table) {
            out.extend(sql::create_triggers(dialect, table));
        }
    }
    for (old, new) in &kept {
        if triggers_changed(old, new) && has_triggers(to, new) {
            out.extend(sql::create_triggers(dialect, new));
        }
    }
    out
}

/// A migration version: the UTC time as `YYYYMMDDHHMMSS`.
pub fn migration_version(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs());
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::schema::{SourceFile, parse_schemas};

    const OUTBOX: &str = r#"<table name="spy_event_behavior_entity_change">
        <column name="id_event_behavior_entity_change" type="BIGINT" autoIncrement="true" primaryKey="true"/>
        <column name="data" type="LONGVARCHAR" required="true"/>
    </table>"#;

    fn model(tables: &str) -> Model {
        let xml = format!("<database name=\"zed\">{OUTBOX}{tables}</database>");
        parse_schemas(&[SourceFile::new("crates/a/schema/a.schema.xml", xml)]).unwrap()
    }

    fn sqlite(plan: &Plan) -> &DialectMigration {
        &plan.dialects[0]
    }

    const FOO: &str = r#"<table name="spy_foo">
        <column name="id_foo" type="INTEGER" primaryKey="true" autoIncrement="true"/>
        <column name="name" type="VARCHAR" size="64" required="true"/>
        <behavior name="event"><parameter name="spy_foo_all" column="*"/></behavior>
    </table>"#;

    #[test]
    fn version_is_the_utc_time() {
        let time = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(migration_version(time), "20231114221320");
        assert_eq!(migration_version(UNIX_EPOCH), "19700101000000");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(migration_version(leap), "20000229000000");
    }

    #[test]
    fn same_model_needs_no_migration() {
        let plan = plan(&model(FOO), &model(FOO)).unwrap();
        assert!(plan.is_empty());
    }

    #[test]
    fn snapshot_round_trip_needs_no_migration() {
        let current = model(&format!(
            "{FOO}<table name=\"spy_foo_storage\">\
             <column name=\"id_foo_storage\" type=\"BIGINT\" primaryKey=\"true\" autoIncrement=\"true\"/>\
             <column name=\"fk_foo\" type=\"INTEGER\" required=\"true\"/>\
             <column name=\"price\" type=\"DECIMAL\" size=\"10\" scale=\"2\" defaultValue=\"0\"/>\
             <foreign-key foreignTable=\"spy_foo\" name=\"fk\" onDelete=\"CASCADE\"><reference local=\"fk_foo\" foreign=\"id_foo\"/></foreign-key>\
             <behavior name=\"synchronization\"><parameter name=\"resource\" value=\"foo\"/><parameter name=\"store\" required=\"true\"/></behavior>\
             <behavior name=\"timestampable\"/></table>"
        ));
        let text = crate::snapshot::write_snapshot(&current, "migrations");
        let snapshot =
            crate::snapshot::read_snapshot(&text, "migrations/schema.snapshot.xml").unwrap();
        assert!(plan(&snapshot, &current).unwrap().is_empty());
    }

    #[test]
    fn new_column_and_index_are_added_and_triggers_recreated() {
        let old = model(FOO);
        let new = model(
            r#"<table name="spy_foo">
        <column name="id_foo" type="INTEGER" primaryKey="true" autoIncrement="true"/>
        <column name="name" type="VARCHAR" size="64" required="true"/>
        <column name="sku" type="VARCHAR" size="32"/>
        <index name="spy_foo-sku"><index-column name="sku"/></index>
        <behavior name="event"><parameter name="spy_foo_all" column="*"/></behavior>
    </table>"#,
        );
        let plan = plan(&old, &new).unwrap();
        assert_eq!(plan.name(false), "alter_spy_foo");
        let up = &sqlite(&plan).up;
        assert_eq!(up[0], "DROP TRIGGER IF EXISTS \"pubsync_spy_foo_create\";");
        assert_eq!(
            up[3],
            "ALTER TABLE \"spy_foo\" ADD COLUMN \"sku\" VARCHAR(32);"
        );
        assert_eq!(
            up[4],
            "CREATE INDEX \"spy_foo-sku\" ON \"spy_foo\" (\"sku\");"
        );
        assert!(up[5].starts_with("CREATE TRIGGER \"pubsync_spy_foo_create\""));
        assert!(up[6].contains("OLD.\"sku\" IS NOT NEW.\"sku\""));
        let down = &sqlite(&plan).down;
        assert!(down.contains(&"DROP INDEX \"spy_foo-sku\";".to_owned()));
        assert!(down.contains(&"ALTER TABLE \"spy_foo\" DROP COLUMN \"sku\";".to_owned()));
    }

    #[test]
    fn new_and_dropped_tables() {
        let old = model(FOO);
        let new = model(
            "<table name=\"spy_bar\"><column name=\"id_bar\" type=\"INTEGER\" primaryKey=\"true\"/></table>",
        );
        let plan = plan(&old, &new).unwrap();
        assert_eq!(plan.changes, ["create_spy_bar", "drop_spy_foo"]);
        assert_eq!(plan.name(false), "create_spy_bar_and_more");
        let up = &sqlite(&plan).up;
        assert!(up.contains(&"DROP TABLE \"spy_foo\";".to_owned()));
        assert!(up.iter().any(|s| s.starts_with("CREATE TABLE \"spy_bar\"")));
        let down = &sqlite(&plan).down;
        assert!(
            down.iter()
                .any(|s| s.starts_with("CREATE TRIGGER \"pubsync_spy_foo_update\""))
        );
    }

    fn manual_error(old: &str, new: &str) -> String {
        match plan(&model(old), &model(new)) {
            Err(errors) => Error::Definitions(errors).to_string(),
            Ok(plan) => panic!("expected an error, got {plan:?}"),
        }
    }

    #[test]
    fn column_type_change_needs_a_manual_migration() {
        let message = manual_error(
            FOO,
            &FOO.replace("type=\"VARCHAR\" size=\"64\"", "type=\"INTEGER\""),
        );
        assert!(
            message.contains("column `name` of table `spy_foo` changed"),
            "{message}"
        );
        assert!(message.contains("write a manual migration"), "{message}");
    }

    #[test]
    fn column_removal_needs_a_manual_migration() {
        let message = manual_error(
            FOO,
            &FOO.replace(
                "<column name=\"name\" type=\"VARCHAR\" size=\"64\" required=\"true\"/>",
                "",
            ),
        );
        assert!(
            message.contains("column `name` of table `spy_foo` was removed"),
            "{message}"
        );
    }

    #[test]
    fn required_column_without_default_cannot_be_added() {
        let message = manual_error(
            FOO,
            &FOO.replace(
                "</table>",
                "<column name=\"x\" type=\"INTEGER\" required=\"true\"/></table>",
            ),
        );
        assert!(
            message.contains("is required but has no defaultValue"),
            "{message}"
        );
    }

    #[test]
    fn tables_are_created_after_the_tables_they_reference() {
        let new = model(
            "<table name=\"spy_child\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/>\
             <column name=\"fk_parent\" type=\"INTEGER\"/>\
             <foreign-key foreignTable=\"spy_parent\"><reference local=\"fk_parent\" foreign=\"id\"/></foreign-key></table>\
             <table name=\"spy_parent\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/></table>",
        );
        let plan = plan(&Model::default(), &new).unwrap();
        let up = &plan.dialects[1].up;
        let parent = up
            .iter()
            .position(|s| s.starts_with("CREATE TABLE \"spy_parent\""))
            .unwrap();
        let child = up
            .iter()
            .position(|s| s.starts_with("CREATE TABLE \"spy_child\""))
            .unwrap();
        assert!(parent < child);
        assert!(
            up[child].contains("FOREIGN KEY (\"fk_parent\") REFERENCES \"spy_parent\" (\"id\")")
        );
    }
}
