//! The worker: relays the outbox and processes every event queue, continuously.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pubsync_database::{Database, DatabaseError};
use pubsync_queue_extension::{Queue, QueueError};

use pubsync_shared::key::KeyBuilders;
use pubsync_storage_extension::KeyValueWriter;

use crate::backfill::Stop;
use crate::consumer::{ChunkOutcome, ConsumerConfig, EventConsumer};
use crate::listener::{EventCollection, PublishContext};
use crate::relay::{OutboxRelay, RelayConfig, RelayError};
use crate::storage_table_writer::StorageTableWriter;
use crate::sync::{SyncConfig, SyncConsumer, SyncError, SyncGuard, SyncRelay, SyncTables};

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The outbox relay.
    pub relay: RelayConfig,
    /// The event consumer.
    pub consumer: ConsumerConfig,
    /// The longest pause between two looks at an idle outbox and idle queues.
    pub idle_poll: Duration,
    /// How long `queue:task:start` waits for the first message of its chunk.
    pub task_wait: Duration,
    /// Publishes outbox events in this process instead of through the event queues
    /// ([`OutboxRelay::publish_once`]); the event queues then carry only retries (and messages
    /// from elsewhere), and are looked at once per `idle_poll`. Worth it where the queue is the
    /// same database as the outbox.
    pub direct_publish: bool,
    /// Paces the stages the way the original's `queue:worker:start` does, for comparisons
    /// (the Spryker-shaped benchmark): no stage wakes another, and each pauses after every
    /// pass, 100 ms when it did work (`QUEUE_WORKER_DELAY_WHEN_NOT_EMPTY_MILLISECONDS`) and
    /// `idle_poll` when it found nothing (`QUEUE_WORKER_INTERVAL_MILLISECONDS`, 1000 there).
    pub original_pacing: bool,
}

impl WorkerConfig {
    /// Messages of event queue `queue` taken per chunk: its chunk size, fewer when each
    /// message carries many events ([`ConsumerConfig::queue_messages_per_chunk`]).
    pub fn event_messages_per_chunk(&self, queue: &str) -> usize {
        let events_per_message = if self.relay.spryker_compatible {
            1
        } else {
            self.relay.events_per_message
        };
        self.consumer
            .queue_messages_per_chunk(queue, events_per_message)
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            relay: RelayConfig::default(),
            consumer: ConsumerConfig::default(),
            idle_poll: Duration::from_millis(100),
            task_wait: Duration::from_secs(1),
            direct_publish: false,
            original_pacing: false,
        }
    }
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The outbox could not be relayed, and trying again will not help.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A queue failed, and trying again will not help.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The database failed, and trying again will not help.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Synchronizing to storage failed, and trying again will not help.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl WorkerError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Relay(error) => error.is_transient(),
            Self::Queue(error) => error.is_transient(),
            Self::Database(error) => error.is_transient(),
            Self::Sync(error) => error.is_transient(),
        }
    }
}

/// What a worker run did, in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Outbox rows relayed.
    pub relayed: usize,
    /// Queue messages processed.
    pub messages: usize,
    /// Events handled successfully.
    pub handled: usize,
    /// Events collapsed into another event of the same entity.
    pub collapsed: usize,
    /// Events sent back for a retry.
    pub retried: usize,
    /// Events and messages sent to an error queue.
    pub failed: usize,
    /// Sync outbox rows relayed.
    pub sync_relayed: usize,
    /// Changes applied to the key-value storage (directly or from sync queues).
    pub synchronized: usize,
}

/// `12 outbox rows relayed, 3 messages, …`: every count, for a summary line.
impl std::fmt::Display for WorkerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} outbox rows relayed, {} messages, {} events handled, {} collapsed, {} retried, {} failed, {} sync rows relayed, {} keys synchronized",
            self.relayed,
            self.messages,
            self.handled,
            self.collapsed,
            self.retried,
            self.failed,
            self.sync_relayed,
            self.synchronized
        )
    }
}

impl WorkerReport {
    fn absorb(&mut self, other: WorkerReport) {
        self.relayed += other.relayed;
        self.messages += other.messages;
        self.handled += other.handled;
        self.collapsed += other.collapsed;
        self.retried += other.retried;
        self.failed += other.failed;
        self.sync_relayed += other.sync_relayed;
        self.synchronized += other.synchronized;
    }

    fn add(&mut self, chunk: ChunkOutcome) {
        self.messages += chunk.messages;
        self.handled += chunk.handled;
        self.collapsed += chunk.collapsed;
        self.retried += chunk.retried;
        self.failed += chunk.failed;
    }
}

/// The most passes of [`Worker::relay_sync_outbox`] in one call.
pub const MAX_RELAY_PASSES: usize = 64;

/// How often [`Worker::relay_sync_outbox`] takes up a pass again that failed transiently.
const RELAY_ATTEMPTS: u32 = 5;

/// The original worker's pause between rounds while its task processes have work.
const ORIGINAL_BUSY_PAUSE: Duration = Duration::from_millis(100);

/// The stages of a worker, in the order work flows through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The outbox relay, or direct publishing.
    Outbox,
    /// The event consumer: the event queues to the publishers.
    EventQueues,
    /// The sync relay: the sync outbox to the sync queues (or the key-value store).
    SyncRelay,
    /// The sync consumer: the sync queues to the key-value store.
    SyncQueues,
}

impl Stage {
    const COUNT: usize = 4;

    /// The `stage` label of its metrics.
    fn name(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::EventQueues => "event_queues",
            Self::SyncRelay => "sync_relay",
            Self::SyncQueues => "sync_queues",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the stages of one [`Worker::run`] share: when to stop, which of them found nothing to
/// do on their last pass, and how to wake them.
struct Stages<'a> {
    /// [`WorkerConfig::original_pacing`].
    original_pacing: bool,
    stop: &'a AtomicBool,
    /// Set when the worker is done: empty (with `stop_when_empty`), or a stage failed.
    done: AtomicBool,
    /// By [`Stage::index`]: whether the stage found nothing to do on its last pass.
    idle: [AtomicBool; Stage::COUNT],
    /// By [`Stage::index`]. A stage that did work wakes the stages it hands work to: what it
    /// handed on is there for them now, so they need not wait out their pause. Only the first
    /// stage has to poll (for changes committed by others), and work crosses the pipeline in
    /// one go.
    wake: [tokio::sync::Notify; Stage::COUNT],
    /// Whether the key-value store's check ([`Stages::check_store`]) is running: the worker
    /// is not done while it is (a re-sync may be about to fill the sync outbox).
    checking: AtomicBool,
    /// Set by a stage that failed: the store is checked at once, since a lost connection is
    /// how a restarted store shows.
    recheck: AtomicBool,
}

impl Stages<'_> {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.done.load(Ordering::Relaxed)
    }

    /// Runs `stage` (when `active`) until the worker stops: `pass` once per round,
    /// pausing while it finds nothing to do (until a stage before it wakes it) and backing off
    /// after transient failures; after a pass that did work it wakes the stages `wakes`. A
    /// failure that retrying will not cure stops every stage.
    async fn run<F, Fut>(
        &self,
        stage: Stage,
        active: bool,
        wakes: &[Stage],
        idle_poll: Duration,
        pass: F,
    ) -> Result<WorkerReport, WorkerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(bool, WorkerReport), WorkerError>>,
    {
        let index = stage.index();
        let mut report = WorkerReport::default();
        if !active {
            self.idle[index].store(true, Ordering::Relaxed);
            return Ok(report);
        }
        let mut pause = Duration::from_millis(1);
        let mut failures = 0u32;
        while !self.stopping() {
            let started = std::time::Instant::now();
            match pass().await {
                Ok((busy, done)) => {
                    if busy {
                        crate::metrics::chunk(stage.name(), started.elapsed());
                    }
                    report.absorb(done);
                    failures = 0;
                    self.idle[index].store(!busy, Ordering::Relaxed);
                    if self.original_pacing {
                        let pause = if busy { ORIGINAL_BUSY_PAUSE } else { idle_poll };
                        tokio::time::sleep(pause).await;
                    } else if busy {
                        pause = Duration::from_millis(1);
                        for later in wakes {
                            self.wake[later.index()].notify_one();
                        }
                    } else {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {
                                pause = (pause * 2).min(idle_poll);
                            }
                            () = self.wake[index].notified() => {
                                pause = Duration::from_millis(1);
                            }
                        }
                    }
                }
                Err(error) if error.is_transient() => {
                    self.idle[index].store(false, Ordering::Relaxed);
                    self.recheck.store(true, Ordering::Relaxed);
                    failures += 1;
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "worker stage failed, retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(error) => {
                    self.done.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        Ok(report)
    }

    /// With `stop_when_empty`, ends the run once every stage found nothing to do and
    /// `is_empty` confirms that the outboxes and queues are empty (it is asked only then: on
    /// RabbitMQ it costs a round trip per queue).
    async fn watch<F, Fut>(
        &self,
        stop_when_empty: bool,
        idle_poll: Duration,
        is_empty: F,
    ) -> Result<(), WorkerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, WorkerError>>,
    {
        if !stop_when_empty {
            return Ok(());
        }
        let mut pause = Duration::from_millis(1);
        while !self.stopping() {
            if !self.idle.iter().all(|idle| idle.load(Ordering::Relaxed))
                || self.checking.load(Ordering::Relaxed)
            {
                pause = Duration::from_millis(1);
            } else {
                match is_empty().await {
                    // A store check may have started while the queues were asked.
                    Ok(true) if self.checking.load(Ordering::Relaxed) => {}
                    Ok(true) => {
                        self.done.store(true, Ordering::Relaxed);
                        // Idle stages are pausing: end their pauses now.
                        for wake in &self.wake {
                            wake.notify_one();
                        }
                        break;
                    }
                    Ok(false) => {}
                    Err(error) if error.is_transient() => {
                        tracing::warn!(error = %error, "worker could not tell whether it is done, retrying");
                    }
                    Err(error) => {
                        self.done.store(true, Ordering::Relaxed);
                        return Err(error);
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(idle_poll).min(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Stages<'_> {
    /// When `active`, runs `check` (the key-value store's marker, [`Worker::check_store`])
    /// at once, then every `interval` and right after a stage failed, until the worker
    /// stops; `stop`, which the check is given, is requested then, so that a check under way
    /// stops after its current chunk. A check that fails is logged (once until one works)
    /// and never stops the worker.
    async fn check_store<F, Fut>(&self, active: bool, interval: Duration, stop: &Stop, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), WorkerError>>,
    {
        const TICK: Duration = Duration::from_millis(50);
        if !active {
            self.checking.store(false, Ordering::Relaxed);
            return;
        }
        let mut next = std::time::Instant::now();
        let mut failing = false;
        while !self.stopping() {
            if self.recheck.swap(false, Ordering::Relaxed) || std::time::Instant::now() >= next {
                self.checking.store(true, Ordering::Relaxed);
                let finished = AtomicBool::new(false);
                let (result, ()) = tokio::join!(
                    async {
                        let result = check().await;
                        finished.store(true, Ordering::Relaxed);
                        result
                    },
                    async {
                        while !finished.load(Ordering::Relaxed) {
                            if self.stopping() {
                                stop.request();
                            }
                            tokio::time::sleep(TICK).await;
                        }
                    }
                );
                self.checking.store(false, Ordering::Relaxed);
                match result {
                    Ok(()) => failing = false,
                    // The check tells about the store; it never stops the worker, whose
                    // stages report the store's failures themselves.
                    Err(error) => {
                        if !failing {
                            tracing::warn!(error = %error, "checking the key-value store's marker failed; checking again later");
                        }
                        failing = true;
                    }
                }
                next = std::time::Instant::now() + interval.min(Duration::from_secs(86_400));
            }
            tokio::time::sleep(TICK).await;
        }
    }
}

/// Relays the outbox and processes the event queues of `listeners` on queue `Q`; with
/// [`Worker::with_sync`], also relays the sync outbox and applies the sync queues to storage `W`.
///
/// `W` is the key-value store synchronized into; a worker without one has `W` =
/// [`Infallible`](std::convert::Infallible) and no writer.
pub struct Worker<Q, W = std::convert::Infallible> {
    pub(crate) queue: Q,
    pub(crate) relay: OutboxRelay,
    pub(crate) consumer: EventConsumer,
    pub(crate) listeners: Arc<EventCollection>,
    pub(crate) config: WorkerConfig,
    pub(crate) database: Database,
    /// The event queues of the listeners, derived once.
    event_queues: Vec<String>,
    pub(crate) sync: Option<Synchronization<W>>,
}

/// The sync stages of a worker.
pub(crate) struct Synchronization<W> {
    pub(crate) relay: SyncRelay,
    /// Checks and applies the sync queues' messages.
    consumer: SyncConsumer,
    /// The sync queues of the tables that synchronize, derived once.
    queues: Vec<String>,
    pub(crate) config: SyncConfig,
    /// The key-value store; `None` when there is none (database storage), and then nothing
    /// consumes the sync queues.
    pub(crate) writer: Option<W>,
    /// Whether the store's data loss was logged since it was last found intact.
    pub(crate) loss_reported: AtomicBool,
}

impl<W> Synchronization<W> {
    /// Messages of sync queue `queue` taken per chunk: its chunk size, or the sync consumer's,
    /// bounded by the changes a chunk may hold ([`SyncConfig::messages_per_chunk`]).
    fn messages_per_chunk(&self, worker: &WorkerConfig, queue: &str) -> usize {
        match worker.consumer.queues.get(queue).chunk_size {
            Some(chunk_size) => SyncConfig {
                consumer_chunk_size: chunk_size,
                ..self.config.clone()
            }
            .messages_per_chunk(),
            None => self.config.messages_per_chunk(),
        }
    }
}

impl<Q: Queue> Worker<Q> {
    /// A worker for `database`'s outbox, delivering through `queue` to `listeners`.
    pub fn new(
        database: Database,
        queue: Q,
        listeners: Arc<EventCollection>,
        storage: StorageTableWriter,
        config: WorkerConfig,
    ) -> Self {
        let relay = OutboxRelay::new(database.clone(), config.relay.clone());
        let context = PublishContext {
            database: database.clone(),
            storage,
        };
        let consumer = EventConsumer::new(context, listeners.clone(), config.consumer.clone());
        let listeners_queues = listeners.queues();
        Self {
            queue,
            relay,
            consumer,
            listeners,
            config,
            database,
            event_queues: listeners_queues,
            sync: None,
        }
    }
}

impl<Q: Queue, W: KeyValueWriter> Worker<Q, W> {
    /// Adds synchronization of `tables`: the sync outbox is relayed to the sync queues (or
    /// written directly), and, with a `writer`, the sync queues are applied to it. Without a
    /// writer (database storage) nothing consumes the sync queues: keep `config.enabled` off.
    pub fn with_sync<W2: KeyValueWriter>(
        self,
        tables: SyncTables,
        keys: Arc<KeyBuilders>,
        config: SyncConfig,
        writer: Option<W2>,
    ) -> Worker<Q, W2> {
        let queues = tables.queues(&config);
        let consumer = SyncConsumer::new(
            SyncGuard::new(tables.definitions(), config.max_clock_skew)
                .with_max_value_bytes(config.max_value_bytes),
        );
        let relay = SyncRelay::new(self.database.clone(), tables, keys, config.clone());
        Worker {
            queue: self.queue,
            relay: self.relay,
            consumer: self.consumer,
            listeners: self.listeners,
            config: self.config,
            database: self.database,
            event_queues: self.event_queues,
            sync: Some(Synchronization {
                relay,
                consumer,
                queues,
                config,
                writer,
                loss_reported: AtomicBool::new(false),
            }),
        }
    }

    /// Every queue the worker processes: the event queues, and the sync queues it applies.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = self.event_queues.clone();
        if let Some(sync) = self.sync.as_ref().filter(|sync| sync.writer.is_some()) {
            queues.extend(sync.queues.iter().cloned());
        }
        queues.sort();
        queues.dedup();
        queues
    }

    /// The queue the worker uses.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Every queue the worker sends to or processes: the event queues, the sync queues and
    /// the queue of sync outbox rows no module declares; each has its error queue.
    pub fn declared_queues(&self) -> Vec<String> {
        let mut queues = self.event_queues.clone();
        if let Some(sync) = &self.sync {
            queues.extend(sync.queues.iter().cloned());
            queues.push(crate::sync::UNROUTABLE_QUEUE.to_owned());
        }
        queues.sort();
        queues.dedup();
        queues
    }

    /// Declares [`Worker::declared_queues`] (and their error queues).
    pub async fn declare(&self) -> Result<(), QueueError> {
        self.queue.declare(&self.declared_queues()).await
    }

    /// Runs until `stop` is set, or, with `stop_when_empty`, until the outbox and every queue
    /// (counting messages in flight and retries waiting out their delay) are empty. Transient
    /// failures (a locked database, a lost connection) are logged and retried with backoff.
    ///
    /// The four stages run at the same time, each in its own loop, handing work on through the
    /// outboxes and queues: the outbox relay (or direct publishing), the event consumer, the
    /// sync relay and the sync consumer. Each waits on its own database calls and broker round
    /// trips, so one stage's wait is another's working time; run one after the other they
    /// left the machine half idle. A stage with nothing to do pauses, doubling the pause up to
    /// `idle_poll`, and is back at once when it finds work.
    pub async fn run(
        &self,
        stop_when_empty: bool,
        stop: &AtomicBool,
    ) -> Result<WorkerReport, WorkerError> {
        let has_sync = self.sync.is_some();
        let consumes_sync = self.sync.as_ref().is_some_and(|sync| sync.writer.is_some());
        let stages = Stages {
            original_pacing: self.config.original_pacing,
            stop,
            done: AtomicBool::new(false),
            idle: std::array::from_fn(|_| AtomicBool::new(false)),
            wake: std::array::from_fn(|_| tokio::sync::Notify::new()),
            checking: AtomicBool::new(consumes_sync),
            recheck: AtomicBool::new(false),
        };
        let store_stop = Stop::new();
        let marker_interval = self
            .sync
            .as_ref()
            .map_or(Duration::MAX, |sync| sync.config.marker_check_interval);
        // Who hands work to whom: the outbox stage to the event consumer (with direct
        // publishing, straight to the sync relay: the event queues then hold only retries),
        // the event consumer to the sync relay, the sync relay to the sync consumer.
        let outbox_wakes: &[Stage] = if self.config.direct_publish {
            &[Stage::SyncRelay]
        } else {
            &[Stage::EventQueues, Stage::SyncRelay]
        };
        let poll = self.config.idle_poll;
        let (outbox, events, sync_relay, sync_queues, (), watch) = tokio::join!(
            stages.run(Stage::Outbox, true, outbox_wakes, poll, || self
                .outbox_pass()),
            stages.run(Stage::EventQueues, true, &[Stage::SyncRelay], poll, || self
                .event_queues_pass()),
            stages.run(
                Stage::SyncRelay,
                has_sync,
                &[Stage::SyncQueues],
                poll,
                || self.sync_relay_pass()
            ),
            stages.run(Stage::SyncQueues, consumes_sync, &[], poll, || self
                .sync_queues_pass()),
            stages.check_store(consumes_sync, marker_interval, &store_stop, || self
                .check_store(&store_stop)),
            stages.watch(stop_when_empty, poll, || self.is_empty()),
        );
        let mut report = WorkerReport::default();
        for stage in [outbox, events, sync_relay, sync_queues] {
            report.absorb(stage?);
        }
        watch?;
        Ok(report)
    }

    /// The outbox stage, once: relay a chunk to the event queues, or publish it directly.
    async fn outbox_pass(&self) -> Result<(bool, WorkerReport), WorkerError> {
        let mut report = WorkerReport::default();
        if self.config.direct_publish {
            let (pass, chunk) = self
                .relay
                .publish_once(&self.listeners, &self.consumer, &self.queue)
                .await?;
            report.relayed += pass.rows;
            report.add(chunk);
            Ok((pass.rows > 0, report))
        } else {
            let pass = self.relay.relay_once(&self.listeners, &self.queue).await?;
            report.relayed += pass.rows;
            Ok((pass.rows > 0, report))
        }
    }

    /// The event consumer stage, once: a chunk of each event queue, or as many chunks at once
    /// as the queue's [`QueuePolicy::workers`](crate::QueuePolicy::workers). With direct
    /// publishing they hold only retries (and messages from elsewhere).
    async fn event_queues_pass(&self) -> Result<(bool, WorkerReport), WorkerError> {
        let mut report = WorkerReport::default();
        let mut busy = false;
        for queue_name in &self.event_queues {
            let chunk_size = self.config.event_messages_per_chunk(queue_name);
            let workers = self.config.consumer.queues.workers(queue_name);
            let chunks = self
                .chunks_at_once(queue_name, chunk_size, workers, |chunk| async move {
                    Ok(self
                        .consumer
                        .process(&self.queue, queue_name, chunk, false)
                        .await?)
                })
                .await?;
            for chunk in chunks {
                busy = true;
                report.add(chunk);
            }
        }
        Ok((busy, report))
    }

    /// The sync relay stage, once: a chunk of the sync outbox to the sync queues (or storage).
    async fn sync_relay_pass(&self) -> Result<(bool, WorkerReport), WorkerError> {
        let mut report = WorkerReport::default();
        let Some(sync) = &self.sync else {
            return Ok((false, report));
        };
        let pass = sync
            .relay
            .relay_once(&self.queue, sync.writer.as_ref())
            .await?;
        report.sync_relayed += pass.rows;
        report.synchronized += pass.direct;
        report.failed += pass.failed;
        Ok((pass.rows > 0, report))
    }

    /// The sync consumer stage, once: a chunk of each sync queue applied to storage.
    async fn sync_queues_pass(&self) -> Result<(bool, WorkerReport), WorkerError> {
        let mut report = WorkerReport::default();
        let Some((sync, writer)) = self
            .sync
            .as_ref()
            .and_then(|sync| sync.writer.as_ref().map(|writer| (sync, writer)))
        else {
            return Ok((false, report));
        };
        let mut busy = false;
        for queue_name in &sync.queues {
            let chunk_size = sync.messages_per_chunk(&self.config, queue_name);
            let workers = self.config.consumer.queues.workers(queue_name);
            let outcomes = self
                .chunks_at_once(queue_name, chunk_size, workers, |chunk| async move {
                    Ok(sync
                        .consumer
                        .process(&self.queue, queue_name, chunk, writer)
                        .await?)
                })
                .await?;
            for outcome in outcomes {
                busy = true;
                report.messages += outcome.messages;
                report.synchronized += outcome.applied;
                report.failed += outcome.failed;
            }
        }
        Ok((busy, report))
    }

    /// Takes up to `workers` chunks of `chunk_size` messages of `queue_name` at the same time
    /// and hands each that is not empty to `process`: the chunks of one queue a worker
    /// processes at once ([`QueuePolicy::workers`](crate::QueuePolicy::workers)).
    async fn chunks_at_once<T, F, Fut>(
        &self,
        queue_name: &str,
        chunk_size: usize,
        workers: usize,
        process: F,
    ) -> Result<Vec<T>, WorkerError>
    where
        F: Fn(Vec<pubsync_queue_extension::Delivery>) -> Fut,
        Fut: Future<Output = Result<T, WorkerError>>,
    {
        let outcomes = futures_util::future::try_join_all((0..workers).map(|_| async {
            let chunk = self
                .queue
                .receive(queue_name, chunk_size, Duration::ZERO)
                .await?;
            if chunk.is_empty() {
                return Ok(None);
            }
            process(chunk).await.map(Some)
        }))
        .await?;
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Relays the sync outbox, to the sync queues or, in direct mode, to the key-value store,
    /// as the worker's sync relay does, until a pass finds less than a full chunk (or after
    /// [`MAX_RELAY_PASSES`] passes, so that live changes flowing in never keep it going);
    /// returns the rows relayed. The backfill commands call it after each chunk, so that what
    /// they changed is on its way without a worker's help; what arrives later is a worker's.
    pub async fn relay_sync_outbox(&self) -> Result<usize, WorkerError> {
        let Some(sync) = &self.sync else {
            return Ok(0);
        };
        let mut relayed = 0;
        let mut failures = 0;
        loop {
            let writer = sync.writer.as_ref();
            match sync
                .relay
                .relay_pending(&self.queue, writer, MAX_RELAY_PASSES, &mut relayed)
                .await
            {
                Ok(()) => return Ok(relayed),
                // A claim that deadlocked with a writer (MySQL rolls one of them back) or a
                // send cut short left the rows in the outbox: the next pass takes them again.
                Err(error) if error.is_transient() && failures < RELAY_ATTEMPTS => {
                    failures += 1;
                    tracing::warn!(attempt = failures, error = %error, "relaying the sync outbox failed, trying again");
                    tokio::time::sleep(Duration::from_millis(50 * failures as u64)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Whether synchronization is switched on globally for this worker.
    pub fn synchronization_enabled(&self) -> bool {
        self.sync.as_ref().is_some_and(|sync| sync.config.enabled)
    }

    /// The key-value store the worker synchronizes into, if any.
    pub fn key_value_store(&self) -> Option<&W> {
        self.sync.as_ref().and_then(|sync| sync.writer.as_ref())
    }

    /// Whether the outboxes and every queue the worker processes are empty.
    pub async fn is_empty(&self) -> Result<bool, WorkerError> {
        if !self.relay.is_empty().await? {
            return Ok(false);
        }
        if let Some(sync) = &self.sync
            && !sync.relay.is_empty().await?
        {
            return Ok(false);
        }
        for queue_name in self.queues() {
            if !self.queue.depth(&queue_name).await?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `queue:task:start`: relays the outbox, then processes one chunk of `queue_name`. With
    /// `keep`, the chunk's messages are released back to the queue after processing.
    pub async fn run_task(
        &self,
        queue_name: &str,
        keep: bool,
    ) -> Result<ChunkOutcome, WorkerError> {
        while self
            .relay
            .relay_once(&self.listeners, &self.queue)
            .await?
            .rows
            > 0
        {}
        let chunk = self
            .queue
            .receive(
                queue_name,
                self.config.event_messages_per_chunk(queue_name),
                self.config.task_wait,
            )
            .await?;
        if chunk.is_empty() {
            return Ok(ChunkOutcome::default());
        }
        Ok(self
            .consumer
            .process(&self.queue, queue_name, chunk, keep)
            .await?)
    }
}
