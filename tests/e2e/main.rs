//! End-to-end tests across the crates, on the embedded default (SQLite, database queue,
//! database storage). Tests of the `pubsync` binary itself live in `crates/pubsync-cli/tests`.

mod capture;
mod consumer;
mod publish;
