//! pubsync-backend (being written).
