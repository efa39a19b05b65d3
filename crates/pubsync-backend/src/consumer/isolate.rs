//! Finding the events of a bulk that fail, at little more than the cost of the bulk.
//!
//! A publisher gets a whole slice of events in one call, and the call ends one of three ways:
//!
//! - It succeeds and its writer refused nothing: every event is handled.
//! - It succeeds but its writer refused some entities (a row over the size limit, see
//!   [`StorageTableWriter::refusing`]): everything else is committed. The events whose id is
//!   a refused entity's reference are called again alone; when they are refused the same
//!   entities again, they are the failures and the rest of the slice is handled. One poison
//!   row thus costs one small call, not its chunk. When the refusals cannot be pinned on
//!   events that way (a publisher whose references are not its events' ids), the slice counts
//!   as failed.
//! - It fails: the slice is halved and each half is tried again, down to single events,
//!   which fail with their reason. With k bad events among n that costs about
//!   n·(2 + log2 k) events of work, where retrying every event alone cost n calls.
//!
//! Every call is idempotent (a [`Publisher`] promises it), so handling an event again in a
//! smaller slice after part of a larger one was committed does no harm.
//!
//! [`StorageTableWriter::refusing`]: crate::storage_table_writer::StorageTableWriter::refusing

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;

use pubsync_shared::event::EventEntityTransfer;

use crate::listener::{PublishContext, Publisher};
use crate::storage_table_writer::{Reference, Refusal, Refusals};

/// Calls `publisher` with `transfers` and finds those that fail, as the module describes.
/// Returns their indexes, ascending, with the reason.
pub(super) fn handle_isolating(
    publisher: &dyn Publisher,
    context: &PublishContext,
    event_name: &str,
    transfers: &[EventEntityTransfer],
) -> Vec<(usize, String)> {
    let (storage, refusals) = context.storage.refusing();
    let caller = Caller {
        publisher,
        context: PublishContext {
            storage,
            ..context.clone()
        },
        refusals,
        event_name,
    };
    let mut failures = Vec::new();
    caller.settle(transfers, 0, &mut failures);
    failures.sort_by_key(|(index, _)| *index);
    failures
}

/// One publisher's calls for one event name, with the refusals of its writer.
struct Caller<'a> {
    publisher: &'a dyn Publisher,
    context: PublishContext,
    refusals: Refusals,
    event_name: &'a str,
}

/// How one call ended.
enum Called {
    /// Committed, with the entities the writer refused (none when all went well).
    Done(Vec<Refusal>),
    /// Failed as a whole (an error or a panic), with the reason.
    Failed(String),
}

impl Caller<'_> {
    /// Handles `transfers`, the slice starting at index `offset` of the call's, and adds the
    /// failing ones to `failures`.
    fn settle(
        &self,
        transfers: &[EventEntityTransfer],
        offset: usize,
        failures: &mut Vec<(usize, String)>,
    ) {
        let reason = match self.call(transfers) {
            Called::Done(refused) if refused.is_empty() => return,
            Called::Done(refused) if transfers.len() == 1 => joined(&refused),
            Called::Done(refused) => {
                if let Some(blamed) = self.pin(transfers, &refused) {
                    failures.extend(
                        blamed
                            .into_iter()
                            .map(|(index, reason)| (offset + index, reason)),
                    );
                    return;
                }
                joined(&refused)
            }
            Called::Failed(reason) => reason,
        };
        if transfers.len() == 1 {
            failures.push((offset, reason));
            return;
        }
        tracing::warn!(listener = self.publisher.name(), event = self.event_name, events = transfers.len(), error = %reason,
            "bulk handling failed, halving the bulk to find the failing events");
        let (left, right) = transfers.split_at(transfers.len() / 2);
        self.settle(left, offset, failures);
        self.settle(right, offset + left.len(), failures);
    }

    /// The events of `transfers` the refusals `refused` of a call with all of them belong
    /// to, with their reasons: those whose id is a refused reference, provided every refusal
    /// names one of them and that they alone are refused the same entities again (which
    /// needs no call when they are all of `transfers`). `None` when the refusals cannot be
    /// pinned on events that way.
    fn pin(
        &self,
        transfers: &[EventEntityTransfer],
        refused: &[Refusal],
    ) -> Option<Vec<(usize, String)>> {
        let mut by_id: BTreeMap<i64, Vec<&Refusal>> = BTreeMap::new();
        for refusal in refused {
            let Reference::Int(id) = refusal.reference else {
                return None;
            };
            by_id.entry(id).or_default().push(refusal);
        }
        let blamed: Vec<usize> = (0..transfers.len())
            .filter(|&index| {
                transfers[index]
                    .id
                    .is_some_and(|id| by_id.contains_key(&id))
            })
            .collect();
        let named: HashSet<i64> = blamed.iter().filter_map(|&i| transfers[i].id).collect();
        if named.len() != by_id.len() {
            return None;
        }
        // When every event is blamed, the call itself was the call with them alone.
        if blamed.len() < transfers.len() {
            let alone: Vec<EventEntityTransfer> =
                blamed.iter().map(|&i| transfers[i].clone()).collect();
            let Called::Done(again) = self.call(&alone) else {
                return None;
            };
            let again: HashSet<(&str, &Reference)> = again
                .iter()
                .map(|refusal| (refusal.table.as_str(), &refusal.reference))
                .collect();
            if !refused
                .iter()
                .all(|refusal| again.contains(&(refusal.table.as_str(), &refusal.reference)))
            {
                return None;
            }
        }
        Some(
            blamed
                .into_iter()
                .map(|index| {
                    let id = transfers[index].id.expect("blamed events have ids");
                    (index, joined(by_id[&id].iter().copied()))
                })
                .collect(),
        )
    }

    /// One call of the publisher with `transfers`. Panics count as failures.
    fn call(&self, transfers: &[EventEntityTransfer]) -> Called {
        self.refusals.take();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.publisher
                .handle_bulk(&self.context, self.event_name, transfers)
        }));
        let refused = self.refusals.take();
        match result {
            Ok(Ok(())) => Called::Done(refused),
            Ok(Err(error)) => Called::Failed(error.to_string()),
            Err(panic) => Called::Failed(format!("listener panicked: {}", panic_message(&panic))),
        }
    }
}

/// The reasons of `refused`, each once, in order.
fn joined<'a>(refused: impl IntoIterator<Item = &'a Refusal>) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for refusal in refused {
        if !reasons.contains(&refusal.reason.as_str()) {
            reasons.push(&refusal.reason);
        }
    }
    reasons.join("; ")
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
