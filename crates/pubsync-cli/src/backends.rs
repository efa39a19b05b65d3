//! The queue and the storage the configuration names, behind one type each, so the worker and
//! the client are built once whatever is configured.

use std::time::Duration;

use pubsync_queue_database::DatabaseQueue;
use pubsync_queue_extension::{Delivery, Queue, QueueDepth, QueueError, SendError, Settlement};
use pubsync_storage_database::DatabaseStorage;
use pubsync_storage_extension::{
    KeyValueWriter, ScanPage, StorageChange, StorageError, StorageReader,
};

/// The configured queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyQueue {
    /// The durable queue in the application database.
    Database(DatabaseQueue),
    /// RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    Rabbit(pubsync_queue_rabbitmq::RabbitQueue),
}

macro_rules! each_queue {
    ($queue:expr, |$inner:ident| $body:expr) => {
        match $queue {
            AnyQueue::Database($inner) => $body,
            #[cfg(feature = "rabbitmq")]
            AnyQueue::Rabbit($inner) => $body,
        }
    };
}

impl Queue for AnyQueue {
    async fn declare(&self, queues: &[String]) -> Result<(), QueueError> {
        each_queue!(self, |queue| queue.declare(queues).await)
    }

    async fn send(&self, queue_name: &str, bodies: Vec<Vec<u8>>) -> Result<(), SendError> {
        each_queue!(self, |queue| queue.send(queue_name, bodies).await)
    }

    async fn receive(
        &self,
        queue_name: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        each_queue!(self, |queue| queue.receive(queue_name, max, wait).await)
    }

    async fn settle(&self, queue_name: &str, settlement: Settlement) -> Result<(), QueueError> {
        each_queue!(self, |queue| queue.settle(queue_name, settlement).await)
    }

    async fn depth(&self, queue_name: &str) -> Result<QueueDepth, QueueError> {
        each_queue!(self, |queue| queue.depth(queue_name).await)
    }

    async fn release_held(&self) -> Result<u64, QueueError> {
        each_queue!(self, |queue| queue.release_held().await)
    }
}

/// The configured storage.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStorage {
    /// The storage tables themselves (key-value bypass), read-only.
    Database(DatabaseStorage),
    /// Redis.
    #[cfg(feature = "redis")]
    Redis(pubsync_storage_redis::RedisStorage),
}

macro_rules! each_storage {
    ($storage:expr, |$inner:ident| $body:expr) => {
        match $storage {
            AnyStorage::Database($inner) => $body,
            #[cfg(feature = "redis")]
            AnyStorage::Redis($inner) => $body,
        }
    };
}

impl StorageReader for AnyStorage {
    async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        each_storage!(self, |storage| storage.get(key).await)
    }

    async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        each_storage!(self, |storage| storage.get_multi(keys).await)
    }

    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
        cursor: u64,
    ) -> Result<ScanPage, StorageError> {
        each_storage!(self, |storage| storage.scan(pattern, limit, cursor).await)
    }
}

/// The configured key-value store, when the storage is one: what the worker synchronizes
/// into. A build without any key-value store has no variant, and the worker no writer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyKeyValueStore {
    /// Redis.
    #[cfg(feature = "redis")]
    Redis(pubsync_storage_redis::RedisStorage),
}

impl AnyStorage {
    /// The key-value store behind this storage, `None` for the storage tables themselves.
    pub fn key_value_store(&self) -> Option<AnyKeyValueStore> {
        match self {
            AnyStorage::Database(_) => None,
            #[cfg(feature = "redis")]
            AnyStorage::Redis(storage) => Some(AnyKeyValueStore::Redis(storage.clone())),
        }
    }
}

macro_rules! each_key_value_store {
    ($store:expr, |$inner:ident| $body:expr) => {
        match *$store {
            #[cfg(feature = "redis")]
            AnyKeyValueStore::Redis(ref $inner) => $body,
        }
    };
}

// Without a key-value store compiled in there is no variant, and nothing uses the arguments.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
impl StorageReader for AnyKeyValueStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        each_key_value_store!(self, |store| store.get(key).await)
    }

    async fn get_multi(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        each_key_value_store!(self, |store| store.get_multi(keys).await)
    }

    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
        cursor: u64,
    ) -> Result<ScanPage, StorageError> {
        each_key_value_store!(self, |store| store.scan(pattern, limit, cursor).await)
    }
}

// Without a key-value store compiled in there is no variant, and nothing uses the arguments.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
impl KeyValueWriter for AnyKeyValueStore {
    async fn apply(&self, changes: Vec<StorageChange>) -> Result<usize, StorageError> {
        each_key_value_store!(self, |store| store.apply(changes).await)
    }

    async fn read_marker(&self) -> Result<Option<String>, StorageError> {
        each_key_value_store!(self, |store| store.read_marker().await)
    }

    async fn write_marker(&self, marker: &str) -> Result<(), StorageError> {
        each_key_value_store!(self, |store| store.write_marker(marker).await)
    }
}
