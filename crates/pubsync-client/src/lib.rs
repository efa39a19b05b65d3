//! pubsync-client (being written).
