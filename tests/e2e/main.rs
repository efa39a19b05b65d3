//! End-to-end tests across the crates, each on every database compiled in
//! (`on_every_database!`): SQLite always, PostgreSQL and MySQL/MariaDB with the crate's
//! features; the synchronization tests also need Redis (feature `redis`). Tests of the
//! `pubsync` binary itself live in `crates/pubsync-cli/tests`, those of a shop using pubsync from
//! outside in `examples/shop`.

mod adopt;
mod aliases;
mod backfill;
mod capture;
mod consumer;
mod poison;
mod publish;
mod stale_write;
mod sync;
