//! Transfer structs generated from the modules' `*.transfer.xml` files (`cargo xtask codegen`).
//!
//! Transfers with the same name in several modules are merged into one struct, as in the
//! original. Every property is optional on the wire and unknown fields are accepted.

mod generated;

pub use generated::*;
