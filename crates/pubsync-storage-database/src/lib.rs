//! Read-only storage over the storage tables: the key-value bypass.
//!
//! [`DatabaseStorage`] answers storage keys straight from the `*_storage` tables the publishers
//! write, so a project can run without Redis. A key's resource picks the table
//! ([`TableResolver`]); the keys are then looked up as one bound list per table
//! ([`sql::select_by_keys`]), which the storage table's unique index on `key` serves. The
//! original instead runs a `CASE` over every row for each key asked.
//!
//! Alias (mapping) keys, such as `product_abstract:de:de_de:sku:001`, read
//! `{"id":…,"_timestamp":…}` as they do from Redis: the keys no storage table held are looked
//! up by primary key in the side table [`sql::ALIAS_TABLE`] the storage writer keeps
//! ([`sql::select_aliases`]), not in each row's `alias_keys` JSON column, which no portable
//! index serves. A database without that table (one without pubsync's schema) has no aliases.
//!
//! What this crate deliberately does not do:
//! - write: it implements [`StorageReader`] only; the tables belong to the publishers.
//! - scan: [`StorageReader::scan`] answers [`StorageError::Unsupported`].
//! - caching values: every read goes to the database; only whether a table exists is cached.
//!
//! Blocking database work runs through [`Database::blocking`]. It reads SQLite, PostgreSQL
//! and MySQL/MariaDB with the same statements, written through
//! [`Dialect`](pubsync_database::Dialect).
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod sql;
mod tables;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pubsync_database::diesel::{self, RunQueryDsl as _};
use pubsync_database::{Database, DatabaseError, Statement, bind_list, with_connection};
use pubsync_shared::key::resource_of;
use pubsync_storage_extension::{ScanPage, StorageError, StorageReader};

pub use tables::{DEFAULT_PREFIX, DEFAULT_SUFFIX, TableMappingError, TableName, TableResolver};

/// How long a table found missing is taken as missing before it is looked up again, so a table
/// created while the storage runs is found without a restart.
const MISSING_TABLE_RECHECK: Duration = Duration::from_secs(5);

/// Most missing tables remembered; resources come from requests, so the set must stay bounded.
const MAX_MISSING_TABLES: usize = 1024;

/// Storage read from the storage tables of a database. Cheap to clone.
#[derive(Clone)]
pub struct DatabaseStorage {
    database: Database,
    tables: Arc<TableResolver>,
    table_cache: Arc<Mutex<TableCache>>,
}

impl std::fmt::Debug for DatabaseStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseStorage")
            .field("database", &self.database)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl DatabaseStorage {
    /// Storage that reads the tables `tables` resolves from `database`.
    pub fn new(database: Database, tables: TableResolver) -> Self {
        Self {
            database,
            tables: Arc::new(tables),
            table_cache: Arc::new(Mutex::new(TableCache::default())),
        }
    }

    /// The resource → table mapping in use.
    pub fn tables(&self) -> &TableResolver {
        &self.tables
    }

    /// The database read from.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Groups `keys` by table, each key once; fails on the first resource no table can hold.
    /// Each resource is resolved once (keys of one call mostly share theirs).
    fn plan(&self, keys: &[String]) -> Result<Vec<TableGroup>, StorageError> {
        let mut groups: Vec<TableGroup> = Vec::new();
        let mut group_of_resource: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len());
        for key in keys {
            if !seen.insert(key.as_str()) {
                continue;
            }
            let resource = resource_of(key);
            let index = match group_of_resource.get(resource) {
                Some(&index) => index,
                None => {
                    let Some(table) = self.tables.table_for(resource) else {
                        return Err(StorageError::UnknownResource {
                            resource: resource.to_owned(),
                            key: key.clone(),
                            table: TableResolver::default_table(resource),
                        });
                    };
                    // Two resources may share a table: one group per table.
                    let index = match groups.iter().position(|group| group.table == table) {
                        Some(index) => index,
                        None => {
                            groups.push(TableGroup {
                                table,
                                resource: resource.to_owned(),
                                keys: Vec::new(),
                            });
                            groups.len() - 1
                        }
                    };
                    group_of_resource.insert(resource, index);
                    index
                }
            };
            groups[index].keys.push(key.clone());
        }
        Ok(groups)
    }
}

impl StorageReader for DatabaseStorage {
    async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let mut values = self.get_multi(&[key.to_owned()]).await?;
        Ok(values.pop().flatten())
    }

    async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.plan(keys)?;
        // `plan` takes each key once.
        let distinct_keys: usize = groups.iter().map(|group| group.keys.len()).sum();
        let table_cache = Arc::clone(&self.table_cache);
        let mut found = self
            .database
            .blocking_in_place(move |database| read_groups(database, &table_cache, &groups))
            .await?;
        // In the order asked: values move out, unless a key is asked more than once, when
        // each place gets a copy.
        let repeated = distinct_keys != keys.len();
        Ok(keys
            .iter()
            .map(|key| {
                if repeated {
                    found.get(key.as_str()).cloned()
                } else {
                    found.remove(key.as_str())
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _pattern: &str,
        _limit: usize,
        _cursor: u64,
    ) -> Result<ScanPage, StorageError> {
        Err(StorageError::Unsupported {
            operation: "scan",
            backend: "database",
        })
    }
}

/// The distinct keys of one table, with the resource of the first for error messages.
#[derive(Debug)]
struct TableGroup {
    table: String,
    resource: String,
    keys: Vec<String>,
}

#[derive(diesel::QueryableByName)]
struct StorageRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    /// Bytes, since SQLite keeps whatever it is given: a row whose data is not UTF-8 reads as
    /// absent (and is logged), instead of failing every key read with it.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    data: Option<Vec<u8>>,
}

#[derive(diesel::QueryableByName)]
struct AliasRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    alias_key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    storage_table: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data: String,
}

/// Reads every group's keys: key → data of the keys found, storage rows first, then alias
/// keys for the keys no row held.
fn read_groups(
    database: &Database,
    table_cache: &Mutex<TableCache>,
    groups: &[TableGroup],
) -> Result<HashMap<String, String>, StorageError> {
    for group in groups {
        ensure_table_exists(database, table_cache, group)?;
    }
    let mut found = read_keys(database, groups)?;
    // Each key is in one group only (`plan` skips repeats), so it expects one table.
    let missing: HashMap<&str, &str> = groups
        .iter()
        .flat_map(|group| {
            group
                .keys
                .iter()
                .filter(|key| !found.contains_key(key.as_str()))
                .map(|key| (key.as_str(), group.table.as_str()))
        })
        .collect();
    if !missing.is_empty() && table_exists(database, table_cache, sql::ALIAS_TABLE)? {
        found.extend(read_aliases(database, &missing)?);
    }
    Ok(found)
}

/// Reads the storage rows of every group's keys: key → data.
fn read_keys(
    database: &Database,
    groups: &[TableGroup],
) -> Result<HashMap<String, String>, StorageError> {
    let dialect = database.dialect();
    let statements: Vec<(&str, Statement)> = groups
        .iter()
        .flat_map(|group| {
            bind_list(dialect, &group.keys).into_iter().map(|keys| {
                (
                    group.table.as_str(),
                    keys.statement(sql::select_by_keys(&keys, &group.table)),
                )
            })
        })
        .collect();
    with_connection!(database, |conn| {
        // A closure, so that `?` leaves the statement loop and not this function.
        let mut read = || -> Result<HashMap<String, String>, DatabaseError> {
            let mut found = HashMap::new();
            for (table, statement) in &statements {
                let rows = statement
                    .clone()
                    .load::<StorageRow>(conn)
                    .map_err(DatabaseError::query(format!("read {table}")))?;
                // Rows are matched to keys exactly: a MySQL collation that ignores case
                // or trailing spaces may return a row for a key other than the one asked.
                for row in rows {
                    let Some(data) = row.data else { continue };
                    match String::from_utf8(data) {
                        Ok(data) => {
                            found.insert(row.key, data);
                        }
                        Err(error) => tracing::error!(
                            table,
                            key = %row.key,
                            error = %error.utf8_error(),
                            "storage row data is not valid UTF-8: the key reads as absent until the row is repaired (pubsync verify --repair)"
                        ),
                    }
                }
            }
            Ok(found)
        };
        read()
    })
    .map_err(storage_error(database, "get"))
}

/// Reads the alias rows of `missing` (key → the table its resource maps to): key → data of
/// the aliases found that belong to that table.
fn read_aliases(
    database: &Database,
    missing: &HashMap<&str, &str>,
) -> Result<HashMap<String, String>, StorageError> {
    let dialect = database.dialect();
    let keys: Vec<&str> = missing.keys().copied().collect();
    let statements: Vec<Statement> = bind_list(dialect, &keys)
        .iter()
        .map(|keys| keys.statement(sql::select_aliases(keys)))
        .collect();
    with_connection!(database, |conn| {
        let mut read = || -> Result<HashMap<String, String>, DatabaseError> {
            let mut found = HashMap::new();
            for statement in &statements {
                let rows = statement
                    .clone()
                    .load::<AliasRow>(conn)
                    .map_err(DatabaseError::query(format!("read {}", sql::ALIAS_TABLE)))?;
                // Matched exactly, as storage rows are; an alias of another table than the
                // key's resource maps to is not this key's.
                for row in rows {
                    if missing.get(row.alias_key.as_str()) == Some(&row.storage_table.as_str()) {
                        found.insert(row.alias_key, row.data);
                    }
                }
            }
            Ok(found)
        };
        read()
    })
    .map_err(storage_error(database, "get"))
}

fn ensure_table_exists(
    database: &Database,
    table_cache: &Mutex<TableCache>,
    group: &TableGroup,
) -> Result<(), StorageError> {
    if table_exists(database, table_cache, &group.table)? {
        Ok(())
    } else {
        Err(StorageError::UnknownResource {
            resource: group.resource.clone(),
            key: group.keys[0].clone(),
            table: group.table.clone(),
        })
    }
}

/// Whether `table` exists, through the cache.
fn table_exists(
    database: &Database,
    table_cache: &Mutex<TableCache>,
    table: &str,
) -> Result<bool, StorageError> {
    let cached = table_cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .exists(table);
    match cached {
        Some(exists) => Ok(exists),
        None => {
            let exists = database
                .table_exists(table)
                .map_err(storage_error(database, "table look-up"))?;
            table_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(table, exists);
            Ok(exists)
        }
    }
}

/// Turns a database error into the contract's: transient ones (unreachable, locked) are
/// [`StorageError::Unavailable`] so callers may retry.
fn storage_error(
    database: &Database,
    operation: &'static str,
) -> impl FnOnce(DatabaseError) -> StorageError {
    let backend = format!("database {}", database.url().redacted());
    move |error| {
        if error.is_transient() {
            StorageError::Unavailable {
                backend,
                source: Box::new(error),
            }
        } else {
            StorageError::Operation {
                operation,
                source: Box::new(error),
            }
        }
    }
}

/// Whether tables exist: found tables for good, missing ones for [`MISSING_TABLE_RECHECK`].
#[derive(Debug, Default)]
struct TableCache {
    existing: HashSet<String>,
    missing: HashMap<String, Instant>,
}

impl TableCache {
    fn exists(&self, table: &str) -> Option<bool> {
        if self.existing.contains(table) {
            return Some(true);
        }
        match self.missing.get(table) {
            Some(checked) if checked.elapsed() < MISSING_TABLE_RECHECK => Some(false),
            _ => None,
        }
    }

    fn record(&mut self, table: &str, exists: bool) {
        if exists {
            self.missing.remove(table);
            self.existing.insert(table.to_owned());
        } else {
            if self.missing.len() >= MAX_MISSING_TABLES {
                self.missing
                    .retain(|_, checked| checked.elapsed() < MISSING_TABLE_RECHECK);
            }
            if self.missing.len() < MAX_MISSING_TABLES {
                self.missing.insert(table.to_owned(), Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cache_remembers_found_tables_and_rechecks_missing_ones() {
        let mut cache = TableCache::default();
        assert_eq!(cache.exists("a"), None);
        cache.record("a", true);
        cache.record("b", false);
        assert_eq!(cache.exists("a"), Some(true));
        assert_eq!(cache.exists("b"), Some(false));
        cache
            .missing
            .insert("b".to_owned(), Instant::now() - MISSING_TABLE_RECHECK);
        assert_eq!(cache.exists("b"), None);
        cache.record("b", true);
        assert_eq!(cache.exists("b"), Some(true));
        assert!(cache.missing.is_empty());
    }

    #[test]
    fn missing_tables_stay_bounded() {
        let mut cache = TableCache::default();
        for i in 0..MAX_MISSING_TABLES + 10 {
            cache.record(&format!("t{i}"), false);
        }
        assert_eq!(cache.missing.len(), MAX_MISSING_TABLES);
    }
}
