//! Existing data in, lost data back: the operator's commands over whole tables.
//!
//! - [`trigger`]: `publish:trigger-events` re-publishes a resource's entities from its
//!   [`TriggerSource`] (every id of the source table, or given ids), straight to the
//!   publishers or through the event queue. This is how rows that were there before capture
//!   started reach storage.
//! - [`export`]: `sync:data` sends the storage rows, as they are, to the key-value store
//!   (through the sync outbox, so the queue, direct mode and versions are the sync path's
//!   own). This is how a flushed key-value store is refilled.
//! - [`verify`]: `verify` recomputes what each storage row should hold through the
//!   publishers, without writing, compares it with the storage table and the key-value store,
//!   and with `--repair` re-publishes and re-syncs exactly what differs.
//!
//! All three walk their tables in keyset-paged chunks (`WHERE id > last ORDER BY id LIMIT n`):
//! no id is skipped when ids have gaps, none is sent twice, memory stays bounded, and no
//! statement holds a lock for longer than one chunk. A run that is stopped ([`Stop`]) finishes
//! its chunk; `publish:trigger-events` and `sync:data` record where they were in
//! `pubsync_setting`, so running them again resumes there.

use std::sync::atomic::{AtomicBool, Ordering};

use pubsync_database::{Database, DatabaseError};

use crate::sync::{delete_setting, read_setting, write_setting};

pub mod export;
mod pages;
pub mod source;
pub mod trigger;
pub mod verify;

pub use source::TriggerSource;

/// Where a long run reports how far it is: a progress bar on a terminal, lines otherwise.
pub trait Progress: Send + Sync {
    /// Work on `what` starts: `total` items, `done` of them done already (a resumed run).
    fn start(&self, what: &str, total: u64, done: u64);
    /// `count` more items are done.
    fn advance(&self, count: u64);
    /// Work on the current `what` ended (complete or stopped).
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: u64, _done: u64) {}
    fn advance(&self, _count: u64) {}
    fn finish(&self) {}
}

/// Asks a long run to stop after its current chunk (Ctrl-C).
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// Not asked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop after its current chunk.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether stopping was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a run over a table ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every chunk was done.
    Complete,
    /// Stopped after a chunk; running again resumes after it.
    Stopped,
}

/// Where a run over a table is, kept in `pubsync_setting` as the run goes, so that a run
/// that was stopped resumes there.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    setting: String,
}

/// The longest setting name `pubsync_setting` holds.
const MAX_SETTING_NAME: usize = 64;

impl Cursor {
    /// The cursor of `command` over `of` (a resource or a table): the setting
    /// `backfill:<command>:<of>`, or, where that is longer than a setting name may be (a
    /// table name may be 64 characters), its first part and a hash of the whole.
    pub(crate) fn new(command: &str, of: &str) -> Self {
        let mut setting = format!("backfill:{command}:{of}");
        if setting.len() > MAX_SETTING_NAME {
            let hash = fnv1a(setting.as_bytes());
            let mut end = MAX_SETTING_NAME - 17;
            while !setting.is_char_boundary(end) {
                end -= 1;
            }
            setting.truncate(end);
            setting.push_str(&format!("#{hash:016x}"));
        }
        Self { setting }
    }

    /// Where a stopped run left off, unless `restart`.
    pub(crate) async fn load(
        &self,
        database: &Database,
        restart: bool,
    ) -> Result<Option<String>, DatabaseError> {
        if restart {
            return Ok(None);
        }
        let setting = self.setting.clone();
        database
            .blocking(move |db| read_setting(db, &setting))
            .await
    }

    /// Records that the run is done up to `position`.
    pub(crate) async fn save(
        &self,
        database: &Database,
        position: String,
    ) -> Result<(), DatabaseError> {
        let setting = self.setting.clone();
        database
            .blocking(move |db| write_setting(db, &setting, &position))
            .await
    }

    /// Forgets the position: the run is complete, and the next one starts over.
    pub(crate) async fn clear(&self, database: &Database) -> Result<(), DatabaseError> {
        let setting = self.setting.clone();
        database
            .blocking(move |db| delete_setting(db, &setting))
            .await
    }
}

/// The ids of a trigger source, one keyset page after another.
#[derive(Debug)]
pub(crate) struct SourcePages {
    table: &'static str,
    column: &'static str,
    after: i64,
    chunk_size: usize,
}

impl SourcePages {
    /// The pages of `source`'s ids above `after` (every id without it), `chunk_size` each.
    pub(crate) fn new(source: &TriggerSource, after: Option<i64>, chunk_size: usize) -> Self {
        Self {
            table: source.table,
            column: source.id_column,
            after: after.unwrap_or(i64::MIN),
            chunk_size: chunk_size.max(1),
        }
    }

    /// The next page, `None` after the last.
    pub(crate) async fn next(
        &mut self,
        database: &Database,
    ) -> Result<Option<Vec<i64>>, DatabaseError> {
        let (table, column, after, limit) = (self.table, self.column, self.after, self.chunk_size);
        let ids = database
            .blocking(move |db| pages::source_ids(db, table, column, after, limit))
            .await?;
        Ok(ids.last().copied().map(|last| {
            self.after = last;
            ids
        }))
    }
}

/// The 64-bit FNV-1a hash of `bytes`: stable across builds and platforms, unlike std's
/// hasher, as a name kept in the database must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_of_a_long_table_name_fits_a_setting_name_and_stays_its_own() {
        let short = Cursor::new("sync-data", "spy_hello_spryker_message_storage");
        assert_eq!(
            short.setting,
            "backfill:sync-data:spy_hello_spryker_message_storage"
        );
        let table = "spy_publish_and_synchronize_health_check_storage";
        let long = Cursor::new("sync-data", table);
        let other = Cursor::new("sync-data", &format!("{table}_2"));
        assert!(long.setting.len() <= MAX_SETTING_NAME, "{}", long.setting);
        assert!(long.setting.starts_with("backfill:sync-data:spy_publish"));
        assert_ne!(long.setting, other.setting);
        assert_eq!(long.setting, Cursor::new("sync-data", table).setting);
    }
}
