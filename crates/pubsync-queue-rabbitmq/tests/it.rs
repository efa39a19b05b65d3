//! Integration tests of the RabbitMQ queue against the broker at `PUBSYNC_TEST_AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`): the conformance suite, classic and
//! quorum, plus what only a broker-backed queue promises. Each test uses its own queue names
//! and deletes them (and their exchanges) at the end, also when it fails.
//!
//! The broker-restart test lives in `tests/restart.rs`, its own binary, so that it never runs
//! beside these.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pubsync_queue_extension::{Queue, QueueError, Settlement, conformance};
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::{Service, require, unique_name};

async fn connect(url: &str, options: RabbitQueueOptions) -> Arc<RabbitQueue> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Arc::new(
        RabbitQueue::connect_url(url, options)
            .await
            .expect("connect"),
    )
}

/// Runs `body` in its own task, then deletes `queues` whatever happened, then passes a panic
/// on.
async fn with_cleanup(
    url: &str,
    queues: Vec<String>,
    body: impl Future<Output = ()> + Send + 'static,
) {
    let outcome = tokio::spawn(body).await;
    let cleaner = connect(url, RabbitQueueOptions::default()).await;
    for queue in &queues {
        if let Err(error) = cleaner.delete(queue).await {
            eprintln!("cleanup of {queue} failed: {error}");
        }
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn conformance_queues(prefix: &str) -> Vec<String> {
    [
        "order",
        "invisible",
        "release",
        "error_path",
        "retry",
        "empty",
        "wait",
    ]
    .iter()
    .map(|case| format!("{prefix}.{case}"))
    .collect()
}

fn bodies(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

async fn acknowledge_all(
    queue: &RabbitQueue,
    name: &str,
    deliveries: &[pubsync_queue_extension::Delivery],
) {
    queue
        .settle(
            name,
            Settlement {
                acknowledge: deliveries.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_classic_queues() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let prefix = unique_name("pubsync_rmq_conf");
    let queue = connect(&url, RabbitQueueOptions::default()).await;
    let body_prefix = prefix.clone();
    with_cleanup(&url, conformance_queues(&prefix), async move {
        conformance::run_all(&*queue, &body_prefix).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_quorum_queues() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let prefix = unique_name("pubsync_rmq_quorum");
    let options = RabbitQueueOptions {
        quorum: true,
        ..Default::default()
    };
    let queue = connect(&url, options).await;
    let body_prefix = prefix.clone();
    with_cleanup(&url, conformance_queues(&prefix), async move {
        conformance::run_all(&*queue, &body_prefix).await;
    })
    .await;
}

/// A send that returned `Ok` is on disk: it survives the publishing channel being closed by
/// the broker and the sender's connection going away. A send the broker refuses (no such
/// exchange) hands every body back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_sends_survive_a_closed_channel() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let name = unique_name("pubsync_rmq_confirm");
    let undeclared = unique_name("pubsync_rmq_undeclared");
    let body_url = url.clone();
    let body_name = name.clone();
    with_cleanup(&url, vec![name.clone()], async move {
        let (url, name) = (body_url, body_name);
        let sender = connect(&url, RabbitQueueOptions::default()).await;
        sender
            .declare(std::slice::from_ref(&name))
            .await
            .expect("declare");
        let sent = bodies(1_000, "c");
        sender.send(&name, sent.clone()).await.expect("send");

        // Publishing to an exchange that does not exist makes the broker close the channel.
        let failed = sender
            .send(&undeclared, bodies(3, "x"))
            .await
            .expect_err("no such exchange");
        assert_eq!(
            failed.bodies,
            bodies(3, "x"),
            "a failed send hands the bodies back"
        );
        assert!(
            matches!(failed.source, QueueError::Operation { .. }),
            "{failed:?}"
        );
        let message = format!("{:?}", failed.source);
        assert!(message.contains("404"), "{message}");
        // The next send opens a new channel.
        sender
            .send(&name, bodies(1, "after"))
            .await
            .expect("send after a channel close");
        drop(sender);

        let receiver = connect(&url, RabbitQueueOptions::default()).await;
        let mut received = Vec::new();
        while received.len() < 1_001 {
            let chunk = receiver
                .receive(&name, 500, Duration::from_secs(5))
                .await
                .expect("receive");
            assert!(
                !chunk.is_empty(),
                "missing {} messages",
                1_001 - received.len()
            );
            acknowledge_all(&receiver, &name, &chunk).await;
            received.extend(chunk.into_iter().map(|d| d.body));
        }
        let mut expected = sent;
        expected.extend(bodies(1, "after"));
        assert_eq!(received, expected);
    })
    .await;
}

/// Two instances (two connections, as two processes would have) on one queue share 2,000
/// messages: each gets some, none twice, none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_share_the_work() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let name = unique_name("pubsync_rmq_compete");
    let body_url = url.clone();
    let body_name = name.clone();
    with_cleanup(&url, vec![name.clone()], async move {
        let (url, name) = (body_url, body_name);
        let options = RabbitQueueOptions {
            prefetch: 50,
            ..Default::default()
        };
        let first = connect(&url, options.clone()).await;
        let second = connect(&url, options).await;
        first
            .declare(std::slice::from_ref(&name))
            .await
            .expect("declare");
        // Start both consumers before anything is sent.
        for queue in [&first, &second] {
            assert!(
                queue
                    .receive(&name, 10, Duration::ZERO)
                    .await
                    .expect("receive")
                    .is_empty()
            );
        }
        let consume = |queue: Arc<RabbitQueue>, name: String| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut idle_since = Instant::now();
                while idle_since.elapsed() < Duration::from_secs(2) {
                    let chunk = queue
                        .receive(&name, 100, Duration::from_millis(200))
                        .await
                        .expect("receive");
                    if chunk.is_empty() {
                        continue;
                    }
                    idle_since = Instant::now();
                    // Hold the chunk a moment, as a consumer doing work would.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    acknowledge_all(&queue, &name, &chunk).await;
                    seen.extend(chunk.into_iter().map(|d| d.body));
                }
                seen
            })
        };
        let consumers = [
            consume(first.clone(), name.clone()),
            consume(second.clone(), name.clone()),
        ];
        let sent = bodies(2_000, "w");
        for batch in sent.chunks(100) {
            first.send(&name, batch.to_vec()).await.expect("send");
        }
        let mut counts = Vec::new();
        let mut all = Vec::new();
        for consumer in consumers {
            let seen = consumer.await.expect("consumer");
            counts.push(seen.len());
            all.extend(seen);
        }
        assert!(
            counts.iter().all(|&n| n > 0),
            "both instances get work: {counts:?}"
        );
        let unique: HashSet<_> = all.iter().cloned().collect();
        assert_eq!(unique.len(), all.len(), "no message twice ({counts:?})");
        assert_eq!(
            unique,
            sent.into_iter().collect::<HashSet<_>>(),
            "none missing"
        );
        assert!(first.depth(&name).await.expect("depth").is_empty());
    })
    .await;
}

/// An instance that dies holding deliveries (dropped without settling) loses nothing: another
/// instance gets them, marked as redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumers_messages_go_to_another_instance() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let name = unique_name("pubsync_rmq_killed");
    let body_url = url.clone();
    let body_name = name.clone();
    with_cleanup(&url, vec![name.clone()], async move {
        let (url, name) = (body_url, body_name);
        let doomed = connect(&url, RabbitQueueOptions::default()).await;
        doomed
            .declare(std::slice::from_ref(&name))
            .await
            .expect("declare");
        doomed.send(&name, bodies(20, "k")).await.expect("send");
        let taken = doomed
            .receive(&name, 20, Duration::from_secs(2))
            .await
            .expect("receive");
        assert!(!taken.is_empty());
        drop(doomed);

        let survivor = connect(&url, RabbitQueueOptions::default()).await;
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.len() < 20 && Instant::now() < deadline {
            let chunk = survivor
                .receive(&name, 20, Duration::from_millis(500))
                .await
                .expect("receive");
            acknowledge_all(&survivor, &name, &chunk).await;
            received.extend(chunk);
        }
        assert_eq!(
            received
                .iter()
                .map(|d| d.body.clone())
                .collect::<HashSet<_>>(),
            bodies(20, "k").into_iter().collect::<HashSet<_>>()
        );
        let redelivered: HashSet<_> = received
            .iter()
            .filter(|d| d.redelivered)
            .map(|d| d.body.clone())
            .collect();
        assert_eq!(
            redelivered,
            taken.into_iter().map(|d| d.body).collect::<HashSet<_>>(),
            "what the dead instance held comes back as redelivered"
        );
        assert!(survivor.depth(&name).await.expect("depth").is_empty());
    })
    .await;
}

/// Settling a tag twice, or a tag that was never delivered, is ignored: acknowledging twice
/// would make the broker close the consumer's channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_twice_is_ignored() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let name = unique_name("pubsync_rmq_twice");
    let body_url = url.clone();
    let body_name = name.clone();
    with_cleanup(&url, vec![name.clone()], async move {
        let (url, name) = (body_url, body_name);
        let queue = connect(&url, RabbitQueueOptions::default()).await;
        queue
            .declare(std::slice::from_ref(&name))
            .await
            .expect("declare");
        queue.send(&name, bodies(2, "t")).await.expect("send");
        let first = queue
            .receive(&name, 1, Duration::from_secs(2))
            .await
            .expect("receive");
        assert_eq!(first.len(), 1);
        acknowledge_all(&queue, &name, &first).await;
        acknowledge_all(&queue, &name, &first).await;
        let bogus = pubsync_queue_extension::DeliveryTag(first[0].tag.0 + 1_000);
        queue
            .settle(
                &name,
                Settlement {
                    release: vec![bogus],
                    ..Default::default()
                },
            )
            .await
            .expect("settle");
        let second = queue
            .receive(&name, 10, Duration::from_secs(2))
            .await
            .expect("receive");
        assert_eq!(
            second
                .iter()
                .map(|d| (d.body.clone(), d.redelivered))
                .collect::<Vec<_>>(),
            [(b"t-1".to_vec(), false)],
            "the channel is still open: the second message is not redelivered"
        );
        acknowledge_all(&queue, &name, &second).await;
        assert!(queue.depth(&name).await.expect("depth").is_empty());
    })
    .await;
}

/// No broker at the address: connecting fails with a transient error that names the broker
/// without the password. A refused login fails too (RabbitMQ drops the socket, which amqprs
/// reports as a reset: it counts as transient), without showing the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_classified() {
    let error = RabbitQueue::connect_url(
        "amqp://guest:secret@127.0.0.1:1/%2f",
        RabbitQueueOptions::default(),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert!(error.is_transient(), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("secret"));

    let error = RabbitQueue::connect_url(
        "amqps://guest:secret@127.0.0.1/?verify=verify_none",
        RabbitQueueOptions::default(),
    )
    .await
    .expect_err("an unknown TLS parameter");
    assert!(!error.is_transient());
    assert!(!format!("{error} {error:?}").contains("secret"));

    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let mut address: pubsync_queue_rabbitmq::AmqpAddress = url.parse().expect("url");
    address.password = "wrong-secret".into();
    let error = RabbitQueue::connect(address, RabbitQueueOptions::default())
        .await
        .expect_err("wrong password");
    assert!(!format!("{error} {error:?}").contains("wrong-secret"));
}

/// Looking at an idle queue's depth again and again (a `--stop-when-empty` watcher does so
/// every few milliseconds, a metrics scrape every few seconds) keeps working: more looks than
/// the connection has channel ids, each counting a retry waiting on its rung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_can_be_asked_without_end_and_counts_waiting_retries() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    let name = unique_name("pubsync_rmq_depth");
    let body_url = url.clone();
    let body_name = name.clone();
    with_cleanup(&url, vec![name.clone()], async move {
        let (url, name) = (body_url, body_name);
        let queue = connect(&url, RabbitQueueOptions::default()).await;
        queue
            .declare(std::slice::from_ref(&name))
            .await
            .expect("declare");
        queue
            .settle(
                &name,
                Settlement {
                    retry: vec![(b"later".to_vec(), Duration::from_secs(60))],
                    ..Default::default()
                },
            )
            .await
            .expect("a retry waiting a minute");
        // Each look used to open a channel per missing rung of the 21-rung ladder: 150 looks
        // are 3,000 channels, past RabbitMQ's default channel_max of 2,047.
        for look in 0..150 {
            let depth = queue
                .depth(&name)
                .await
                .unwrap_or_else(|error| panic!("look {look}: {error}"));
            assert_eq!((depth.ready, depth.pending), (0, 1), "look {look}");
        }
    })
    .await;
}
