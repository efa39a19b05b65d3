//! Rows a writer refuses, each alone, while it writes the others.
//!
//! A writer made by [`StorageTableWriter::refusing`] does not fail a whole write for one row
//! it will not store (its data is over the size limit): it leaves every row of that entity as
//! it was, writes the rest, and records the entity here. Whoever called the publisher (the
//! event consumer) then fails only the events of the refused entities, so that one poison row
//! costs its own event and not its chunk.
//!
//! [`StorageTableWriter::refusing`]: super::StorageTableWriter::refusing

use std::sync::{Arc, Mutex, PoisonError};

use super::Reference;

/// One entity whose rows a write left untouched, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The storage table.
    pub table: String,
    /// The entity: the reference of its rows.
    pub reference: Reference,
    /// Why, naming the key.
    pub reason: String,
}

/// The refusals of the writers of one [`StorageTableWriter::refusing`] call.
///
/// [`StorageTableWriter::refusing`]: super::StorageTableWriter::refusing
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    refused: Arc<Mutex<Vec<Refusal>>>,
}

impl Refusals {
    /// The refusals recorded since the last call, in order.
    pub fn take(&self) -> Vec<Refusal> {
        std::mem::take(&mut *self.lock())
    }

    pub(super) fn record(&self, refusal: Refusal) {
        self.lock().push(refusal);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Refusal>> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
