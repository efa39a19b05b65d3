//! pubsync-storage-database (being written).
