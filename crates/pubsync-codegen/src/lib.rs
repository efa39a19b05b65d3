//! pubsync-codegen (being written).
