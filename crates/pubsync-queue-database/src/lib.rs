//! pubsync-queue-database (being written).
