//! Declarations on the admin channel: the exchange, queue and error queue of a pubsync queue
//! with their bindings, its retry queues, and the passive declare that counts a queue's
//! messages.

use std::time::Duration;

use amqprs::channel::{
    ExchangeDeclareArguments, ExchangeType, QueueBindArguments, QueueDeclareArguments,
};
use pubsync_queue_extension::error_queue_name;

use crate::RabbitQueueError;
use crate::channel::lock;
use crate::connection::{AdminChannel, Session};
use crate::rabbit_queue::Inner;
use crate::topology::{
    ERROR_ROUTING_KEY, MAIN_ROUTING_KEY, queue_arguments, retry_queue_arguments, retry_queue_name,
    retry_routing_key,
};

impl Inner {
    /// Declares the exchange, the queue and its error queue.
    pub(crate) async fn declare_topology(
        &self,
        session: &Session,
        queue: &str,
    ) -> Result<(), RabbitQueueError> {
        let mut admin = session.admin.lock().await;
        let error_queue = error_queue_name(queue);
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "exchange.declare",
                channel.channel.exchange_declare(
                    ExchangeDeclareArguments::of_type(queue, ExchangeType::Direct)
                        .durable(true)
                        .finish(),
                ),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        for (name, routing_key) in [(queue, MAIN_ROUTING_KEY), (&error_queue, ERROR_ROUTING_KEY)] {
            let channel = self.admin_channel(session, &mut admin).await?;
            let result = self
                .round_trip(
                    "queue.declare",
                    channel.channel.queue_declare(
                        QueueDeclareArguments::durable_client_named(name)
                            .arguments(queue_arguments(self.options.quorum))
                            .finish(),
                    ),
                )
                .await;
            self.admin_result(session, &mut admin, result)?;
            let channel = self.admin_channel(session, &mut admin).await?;
            let result = self
                .round_trip(
                    "queue.bind",
                    channel
                        .channel
                        .queue_bind(QueueBindArguments::new(name, queue, routing_key)),
                )
                .await;
            self.admin_result(session, &mut admin, result)?;
        }
        Ok(())
    }

    /// Declares the retry queue of `queue` for one rung of the delay ladder.
    pub(crate) async fn declare_retry_queue(
        &self,
        session: &Session,
        queue: &str,
        rung: u64,
    ) -> Result<(), RabbitQueueError> {
        let mut admin = session.admin.lock().await;
        let name = retry_queue_name(queue, Duration::from_millis(rung));
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "queue.declare",
                channel.channel.queue_declare(
                    QueueDeclareArguments::durable_client_named(&name)
                        .arguments(retry_queue_arguments(queue, rung, self.options.quorum))
                        .finish(),
                ),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "queue.bind",
                channel.channel.queue_bind(QueueBindArguments::new(
                    &name,
                    queue,
                    &retry_routing_key(rung),
                )),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        Ok(())
    }

    /// Declares the retry queue for `rung` unless this instance knows it exists.
    pub(crate) async fn ensure_retry_queue(
        &self,
        session: &Session,
        queue: &str,
        rung: u64,
    ) -> Result<(), RabbitQueueError> {
        if lock(&self.retry_queues)
            .get(queue)
            .is_some_and(|rungs| rungs.contains(&rung))
        {
            return Ok(());
        }
        self.declare_retry_queue(session, queue, rung).await?;
        lock(&self.retry_queues)
            .entry(queue.to_owned())
            .or_default()
            .insert(rung);
        Ok(())
    }

    /// The message count of `name` from a passive declare; `None` when it does not exist.
    pub(crate) async fn message_count(
        &self,
        session: &Session,
        admin: &mut Option<AdminChannel>,
        name: &str,
    ) -> Result<Option<u64>, RabbitQueueError> {
        let channel = self.admin_channel(session, admin).await?;
        let result = self
            .round_trip(
                "queue.declare",
                channel
                    .channel
                    .queue_declare(QueueDeclareArguments::new(name).passive(true).finish()),
            )
            .await;
        match self.admin_result(session, admin, result) {
            Ok(Some((_, count, _))) => Ok(Some(u64::from(count))),
            Ok(None) => Ok(Some(0)),
            Err(RabbitQueueError::ChannelClosed { code: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
