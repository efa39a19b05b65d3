//! The schema contract between the SQL that pubsync generates (migrations and triggers, by
//! codegen) and the code that reads and writes those tables at run time (the relays, the
//! storage writer, the database queue and the database storage).
//!
//! - [`names`]: the tables and columns pubsync owns, spelled once.
//! - [`Dialect`]: the databases pubsync runs on, with their identifier quoting and bind
//!   placeholders.
//!
//! This crate depends on nothing: codegen, which must stay light, uses it as well as the
//! database crates.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod dialect;
pub mod names;

pub use dialect::Dialect;
