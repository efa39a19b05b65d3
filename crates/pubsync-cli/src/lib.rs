//! The pubsync application: the modules it links and its configuration.
