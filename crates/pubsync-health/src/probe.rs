//! Writing the probe: an upsert of the one `health-check` row, its data the write time, so
//! that every write is a change the capture triggers record (the original writes `uniqid()`,
//! also a clock reading).

use std::time::{SystemTime, UNIX_EPOCH};

use diesel::RunQueryDsl as _;
use pubsync_database::{Bind, Database, DatabaseError, Dialect, Statement, with_connection};

use crate::{PROBE_KEY, PROBE_TABLE};

/// Writes a probe into `database` now, returning its write time. The row's capture trigger
/// records the change in the same transaction, as for any entity.
pub fn write(database: &Database) -> Result<SystemTime, DatabaseError> {
    let now = SystemTime::now();
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default();
    let table = database.dialect().quote(PROBE_TABLE);
    let sql = match database.dialect() {
        Dialect::Mysql => format!(
            "INSERT INTO {table} (health_check_key, health_check_data, created_at, updated_at) \
             VALUES (?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) \
             ON DUPLICATE KEY UPDATE health_check_data = VALUES(health_check_data), \
             updated_at = CURRENT_TIMESTAMP"
        ),
        Dialect::Sqlite | Dialect::Postgres => format!(
            "INSERT INTO {table} (health_check_key, health_check_data, created_at, updated_at) \
             VALUES (?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) \
             ON CONFLICT (health_check_key) DO UPDATE SET \
             health_check_data = excluded.health_check_data, updated_at = CURRENT_TIMESTAMP"
        ),
    };
    let statement = Statement::new(sql)
        .bind(Bind::Text(PROBE_KEY.to_owned()))
        .bind(Bind::Text(millis.to_string()));
    with_connection!(database, |conn| {
        statement
            .execute(conn)
            .map_err(DatabaseError::query("write the health-check probe"))
    })?;
    Ok(now)
}
