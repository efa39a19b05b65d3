//! pubsync-hello (being written).
