//! The schema contract between the SQL that pubsync generates (migrations and triggers, by
//! codegen) and the code that reads and writes those tables at run time (the relays, the
//! storage writer, the database queue and the database storage).
//!
//! - [`names`]: the tables and columns pubsync owns, spelled once.
//! - [`Dialect`]: the databases pubsync runs on, with their identifier quoting and bind
//!   placeholders.
//! - [`SourceTable`]: a shop's table a module reads or watches, as codegen describes it for
//!   `setup` to check, create and capture.
//!
//! This crate depends on nothing: codegen, which must stay light, uses it as well as the
//! database crates.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod dialect;
pub mod names;
mod source_table;

pub use dialect::Dialect;
pub use source_table::{DialectFingerprints, DialectStatements, SourceColumn, SourceTable};

/// A 64-bit FNV-1a hash as 16 hex digits: small, stable across releases and platforms. It
/// names long triggers and tells whether installed triggers are today's.
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_fnv1a_64() {
        assert_eq!(super::fingerprint(""), "cbf29ce484222325");
        assert_eq!(super::fingerprint("a"), "af63dc4c8601ec8c");
    }
}
