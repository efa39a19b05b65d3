//! The queue step on RabbitMQ: pubsync's `RabbitQueue` (send, receive, settle: persistent,
//! publisher-confirmed, manually acknowledged) against the same work with raw amqprs.
//!
//! Both sides publish in batches of [`BATCH`] and wait for the broker's confirms of each batch,
//! while a consumer on the same connection takes and acknowledges the messages with a prefetch
//! of [`BATCH`]; timed until the last message is acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, DELIVERY_MODE_PERSISTENT, Nack, Return};
use anyhow::{Context as _, bail, ensure};
use pubsync_queue_extension::{Queue as _, Settlement};
use pubsync_queue_rabbitmq::{AmqpAddress, RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::{Service, require, unique_name};
use tokio::sync::watch;

use crate::report::Figure;
use crate::{Size, median, per_second, throughput};

/// Messages per confirmed batch, and the consumers' prefetch and chunk.
const BATCH: usize = 500;
/// Bytes per message body: about one event in the original's one-event format.
const BODY_BYTES: usize = 256;

/// `queue_rabbitmq`.
pub async fn run(size: Size) -> anyhow::Result<Figure> {
    const NAME: &str = "queue_rabbitmq";
    let Some(url) = require(Service::Rabbitmq) else {
        return Ok(Figure::missing(
            NAME,
            "messages/s",
            format!("RabbitMQ unreachable at {}", Service::Rabbitmq.url()),
        ));
    };
    let messages = size.queue_messages;
    let mut pubsync_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for run in 0..size.e2e_runs {
        pubsync_runs.push(
            pubsync_run(&url, messages)
                .await
                .with_context(|| format!("RabbitQueue run {}", run + 1))?,
        );
        ceiling_runs.push(
            raw_run(&url, messages)
                .await
                .with_context(|| format!("raw amqprs run {}", run + 1))?,
        );
    }
    Ok(throughput(
        NAME,
        "messages/s",
        per_second(messages, median(pubsync_runs)),
        per_second(messages, median(ceiling_runs)),
    ))
}

fn body(i: usize) -> Vec<u8> {
    let mut body = format!("{{\"message\":{i},\"padding\":\"").into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

async fn pubsync_run(url: &str, messages: usize) -> anyhow::Result<Duration> {
    let queue = RabbitQueue::connect_url(
        url,
        RabbitQueueOptions {
            prefetch: BATCH as u16,
            ..RabbitQueueOptions::default()
        },
    )
    .await
    .context("connecting to RabbitMQ")?;
    let name = unique_name("pubsync_bench_queue");
    queue.declare(std::slice::from_ref(&name)).await?;
    let result = async {
        let started = Instant::now();
        let send = async {
            for first in (0..messages).step_by(BATCH) {
                let bodies = (first..(first + BATCH).min(messages)).map(body).collect();
                queue.send(&name, bodies).await?;
            }
            anyhow::Ok(())
        };
        let consume = async {
            let mut received = 0;
            while received < messages {
                let chunk = queue.receive(&name, BATCH, Duration::from_secs(10)).await?;
                ensure!(
                    !chunk.is_empty(),
                    "no message within 10 s ({received} received)"
                );
                received += chunk.len();
                let settlement = Settlement {
                    acknowledge: chunk.into_iter().map(|delivery| delivery.tag).collect(),
                    ..Settlement::default()
                };
                queue.settle(&name, settlement).await?;
            }
            anyhow::Ok(received)
        };
        let (sent, received) = tokio::join!(send, consume);
        sent?;
        let received = received?;
        let elapsed = started.elapsed();
        ensure!(received == messages, "received {received} of {messages}");
        let depth = queue.depth(&name).await?;
        ensure!(depth.is_empty(), "the queue still holds {depth:?}");
        Ok(elapsed)
    }
    .await;
    let deleted = queue.delete(&name).await;
    let elapsed = result?;
    deleted?;
    Ok(elapsed)
}

/// Publisher confirms as they arrive: every sequence number up to `through`, and those above
/// it confirmed one by one.
#[derive(Debug, Default)]
struct Confirmed {
    through: u64,
    singles: BTreeSet<u64>,
    nacked: usize,
    returned: usize,
    closed: bool,
}

impl Confirmed {
    fn confirm(&mut self, tag: u64, multiple: bool) {
        if multiple {
            self.through = self.through.max(tag);
        } else {
            self.singles.insert(tag);
        }
        while self.singles.remove(&(self.through + 1)) {
            self.through += 1;
        }
        self.singles = self.singles.split_off(&(self.through + 1));
    }
}

struct Confirms(Arc<watch::Sender<Confirmed>>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _channel: &Channel,
        _close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        self.0.send_modify(|confirmed| confirmed.closed = true);
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &Channel,
        _cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        self.0
            .send_modify(|confirmed| confirmed.confirm(ack.delivery_tag(), ack.mutiple()));
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.0.send_modify(|confirmed| {
            confirmed.nacked += 1;
            confirmed.confirm(nack.delivery_tag(), nack.multiple());
        });
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        _ret: Return,
        _basic_properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        self.0.send_modify(|confirmed| confirmed.returned += 1);
    }
}

/// The ceiling: the same messages with amqprs alone, through the default exchange into a
/// durable classic queue.
async fn raw_run(url: &str, messages: usize) -> anyhow::Result<Duration> {
    let address = AmqpAddress::parse(url)?;
    let mut arguments = OpenConnectionArguments::new(
        &address.host,
        address.port,
        &address.user,
        &address.password,
    );
    arguments.virtual_host(&address.vhost);
    let connection = Connection::open(&arguments).await?;
    let name = unique_name("pubsync_bench_raw");
    let publisher = connection.open_channel(None).await?;
    let (status, _) = watch::channel(Confirmed::default());
    let status = Arc::new(status);
    publisher
        .register_callback(Confirms(status.clone()))
        .await?;
    publisher
        .confirm_select(ConfirmSelectArguments::new(false))
        .await?;
    publisher
        .queue_declare(QueueDeclareArguments::durable_client_named(&name))
        .await?;
    let consumer = connection.open_channel(None).await?;
    consumer
        .basic_qos(BasicQosArguments::new(0, BATCH as u16, false))
        .await?;
    let (_tag, mut deliveries) = consumer
        .basic_consume_rx(
            BasicConsumeArguments::new(&name, "pubsync-bench")
                .manual_ack(true)
                .finish(),
        )
        .await?;

    let result = async {
        let started = Instant::now();
        let send = async {
            let mut properties = BasicProperties::default();
            properties.with_delivery_mode(DELIVERY_MODE_PERSISTENT);
            let mut published: u64 = 0;
            for i in 0..messages {
                publisher
                    .basic_publish(
                        properties.clone(),
                        body(i),
                        BasicPublishArguments::new("", &name)
                            .mandatory(true)
                            .finish(),
                    )
                    .await?;
                published += 1;
                if published.is_multiple_of(BATCH as u64) || i + 1 == messages {
                    let mut receiver = status.subscribe();
                    let confirmed = receiver
                        .wait_for(|c| c.through >= published || c.closed)
                        .await?;
                    ensure!(
                        !confirmed.closed,
                        "the broker closed the publishing channel"
                    );
                    ensure!(
                        confirmed.nacked == 0 && confirmed.returned == 0,
                        "{} nacked, {} returned",
                        confirmed.nacked,
                        confirmed.returned
                    );
                }
            }
            anyhow::Ok(())
        };
        let consume = async {
            let mut received = 0;
            let mut unacknowledged = 0;
            while received < messages {
                let Some(message) = deliveries.recv().await else {
                    bail!("the consumer channel closed after {received} messages");
                };
                let Some(deliver) = message.deliver else {
                    continue;
                };
                received += 1;
                unacknowledged += 1;
                if unacknowledged == BATCH / 2 || received == messages {
                    consumer
                        .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), true))
                        .await?;
                    unacknowledged = 0;
                }
            }
            anyhow::Ok(received)
        };
        let (sent, received) = tokio::join!(send, consume);
        sent?;
        let received = received?;
        ensure!(received == messages, "received {received} of {messages}");
        Ok(started.elapsed())
    }
    .await;
    let deleted = publisher
        .queue_delete(QueueDeleteArguments::new(&name))
        .await;
    // The outcome is already checked; amqprs may report the close as failed when the broker
    // has torn the connection down first, which changes nothing here.
    if let Err(error) = connection.close().await {
        eprintln!("bench:   closing the raw amqprs connection: {error}");
    }
    let elapsed = result?;
    deleted?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_count_through_the_highest_contiguous_tag() {
        let mut confirmed = Confirmed::default();
        confirmed.confirm(2, false);
        assert_eq!(confirmed.through, 0);
        confirmed.confirm(1, false);
        assert_eq!(confirmed.through, 2);
        confirmed.confirm(5, true);
        confirmed.confirm(6, false);
        assert_eq!(confirmed.through, 6);
        assert!(confirmed.singles.is_empty());
        assert_eq!(body(3).len(), BODY_BYTES);
    }
}
