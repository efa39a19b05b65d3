//! The shared layer of pubsync: what the backend, the client and every storage or queue
//! implementation agree on.
//!
//! - [`key`]: the storage key builder (`resource[:store][:locale]:reference`), exactly as the
//!   original computes it, and the `kv:` rule for key-value stores.
//! - [`event`]: the entity event a change becomes ([`event::EventEntityTransfer`]).
//! - [`message`]: the wire formats of the event queue and the sync queue.
//! - [`synchronization`]: what a storage table's `synchronization` behaviour declares, as
//!   codegen writes it down for each module.
//! - [`transfer`]: transfer structs generated from the modules' `*.transfer.xml` files.
//! - [`version`]: the version of a change, compared on the sync path.
//!
//! This crate does no IO and depends on nothing heavier than serde: frontends link it.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod event;
pub mod key;
pub mod message;
pub mod synchronization;
pub mod transfer;
pub mod version;
