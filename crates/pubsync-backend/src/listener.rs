//! Listener registration: which publisher handles which events, on which queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use pubsync_database::Database;
use pubsync_shared::event::EventEntityTransfer;

use crate::DEFAULT_EVENT_QUEUE;
use crate::storage_table_writer::StorageTableWriter;

/// Why a publisher could not handle events. The consumer halves the bulk until it has found
/// the events that fail, retries those, and sends those that keep failing to the error queue
/// with this error's text.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a publisher is given to do its work.
#[derive(Debug, Clone)]
pub struct PublishContext {
    /// The backend database, to read the changed rows.
    pub database: Database,
    /// Writes storage tables.
    pub storage: StorageTableWriter,
}

/// A queued bulk event handler: reads the changed entities and writes storage rows (the
/// original's `PublisherPluginInterface`).
///
/// `handle_bulk` must be idempotent (events are delivered at least once, and may arrive again
/// after a crash) and must commit its work before returning `Ok`: the consumer acknowledges the
/// messages right after.
pub trait Publisher: Send + Sync + 'static {
    /// The listener's name, unique in the application; it travels in queue messages.
    fn name(&self) -> &str;

    /// The events this publisher handles.
    fn subscribed_events(&self) -> Vec<String>;

    /// Handles `transfers`, all instances of `event_name`.
    fn handle_bulk(
        &self,
        context: &PublishContext,
        event_name: &str,
        transfers: &[EventEntityTransfer],
    ) -> Result<(), HandlerError>;
}

/// A publisher registered for an event.
#[derive(Clone)]
pub struct Registration {
    /// The publisher.
    pub publisher: Arc<dyn Publisher>,
    /// The queue its events travel on.
    pub queue: String,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("publisher", &self.publisher.name())
            .field("queue", &self.queue)
            .finish()
    }
}

/// Every queued listener of the application, by event name (the original's `EventCollection`).
#[derive(Debug, Clone, Default)]
pub struct EventCollection {
    by_event: BTreeMap<String, Vec<Registration>>,
    by_name: BTreeMap<String, Registration>,
}

impl EventCollection {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `publisher` for each of its subscribed events, on the `event` queue.
    pub fn add_publisher(&mut self, publisher: Arc<dyn Publisher>) -> &mut Self {
        self.add_publisher_on(publisher, DEFAULT_EVENT_QUEUE)
    }

    /// Registers `publisher` for each of its subscribed events, on `queue`.
    ///
    /// # Panics
    /// When another publisher of the same name is registered: names travel in messages and
    /// must say which listener a message is for.
    pub fn add_publisher_on(&mut self, publisher: Arc<dyn Publisher>, queue: &str) -> &mut Self {
        let registration = Registration {
            publisher: publisher.clone(),
            queue: queue.to_owned(),
        };
        let name = publisher.name().to_owned();
        if let Some(existing) = self.by_name.get(&name) {
            assert!(
                Arc::ptr_eq(&existing.publisher, &publisher),
                "two publishers are registered under the name {name:?}"
            );
        }
        self.by_name.insert(name, registration.clone());
        for event in publisher.subscribed_events() {
            self.by_event
                .entry(event)
                .or_default()
                .push(registration.clone());
        }
        self
    }

    /// The listeners of `event_name`.
    pub fn listeners(&self, event_name: &str) -> &[Registration] {
        self.by_event.get(event_name).map_or(&[], Vec::as_slice)
    }

    /// The listeners of `event_name`, with the collection's own copy of the name.
    pub(crate) fn listeners_with_name(&self, event_name: &str) -> Option<(&str, &[Registration])> {
        self.by_event
            .get_key_value(event_name)
            .map(|(name, registrations)| (name.as_str(), registrations.as_slice()))
    }

    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }

    /// Every queue a listener is registered on, sorted, without repeats.
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self.by_name.values().map(|r| r.queue.clone()).collect();
        queues.sort();
        queues.dedup();
        queues
    }

    /// `(event, listener, queue)` for every registration, for `event:dump:listener`-style output.
    pub fn dump(&self) -> Vec<(String, String, String)> {
        self.by_event
            .iter()
            .flat_map(|(event, registrations)| {
                registrations.iter().map(move |r| {
                    (
                        event.clone(),
                        r.publisher.name().to_owned(),
                        r.queue.clone(),
                    )
                })
            })
            .collect()
    }
}
