//! The cases every [`Queue`] implementation passes. Each implementation's tests call
//! [`run_all`] with a fresh queue backend and a unique queue-name prefix.

use std::time::Duration;

use crate::{Queue, Settlement, error_queue_name};

const WAIT: Duration = Duration::from_millis(200);

/// Runs every case against `queue`, using queue names that start with `prefix`.
pub async fn run_all<Q: Queue>(queue: &Q, prefix: &str) {
    send_receive_in_order(queue, &format!("{prefix}.order")).await;
    received_messages_are_invisible_until_settled(queue, &format!("{prefix}.invisible")).await;
    released_messages_come_back(queue, &format!("{prefix}.release")).await;
    held_messages_are_given_back_at_once(queue, &format!("{prefix}.held")).await;
    errors_go_to_the_error_queue(queue, &format!("{prefix}.error_path")).await;
    retries_come_back_after_their_delay(queue, &format!("{prefix}.retry")).await;
    empty_queue_receives_nothing(queue, &format!("{prefix}.empty")).await;
    a_waiting_receiver_gets_a_message_sent_meanwhile(queue, &format!("{prefix}.wait")).await;
}

fn bodies(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

async fn drain<Q: Queue>(queue: &Q, name: &str) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    loop {
        let chunk = queue.receive(name, 100, WAIT).await.expect("receive");
        if chunk.is_empty() {
            return seen;
        }
        let settlement = Settlement {
            acknowledge: chunk.iter().map(|d| d.tag).collect(),
            ..Default::default()
        };
        seen.extend(chunk.into_iter().map(|d| d.body));
        queue.settle(name, settlement).await.expect("settle");
    }
}

/// Messages sent in batches arrive once each, in order, in chunks of at most `max`.
pub async fn send_receive_in_order<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue
        .declare(&[name.to_owned()])
        .await
        .expect("declaring again is harmless");
    let sent = bodies(250, "m");
    queue.send(name, sent[..100].to_vec()).await.expect("send");
    queue.send(name, sent[100..].to_vec()).await.expect("send");
    assert_eq!(queue.depth(name).await.expect("depth").ready, 250);
    let first = queue.receive(name, 40, WAIT).await.expect("receive");
    // Fewer than `max` is allowed: a broker's deliveries may trickle in slower than the
    // receiver lingers for more (seen on RabbitMQ with the whole test suite on two cores).
    assert!(
        !first.is_empty() && first.len() <= 40,
        "a chunk holds some messages and at most `max`: {}",
        first.len()
    );
    assert!(
        first.iter().all(|d| d.queue == name && !d.redelivered),
        "a first delivery names its queue and is not a redelivery"
    );
    queue
        .settle(
            name,
            Settlement {
                acknowledge: first.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
    let mut received: Vec<Vec<u8>> = first.into_iter().map(|d| d.body).collect();
    received.extend(drain(queue, name).await);
    assert_eq!(received, sent, "every message exactly once, in order");
    assert!(queue.depth(name).await.expect("depth").is_empty());
}

/// A received, unsettled message is not delivered to a second receiver.
pub async fn received_messages_are_invisible_until_settled<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue.send(name, bodies(3, "i")).await.expect("send");
    let taken = queue.receive(name, 2, WAIT).await.expect("receive");
    assert_eq!(taken.len(), 2);
    let rest = queue.receive(name, 10, WAIT).await.expect("receive");
    assert_eq!(rest.len(), 1, "messages in flight are not delivered twice");
    assert_eq!(rest[0].body, b"i-2");
    let depth = queue.depth(name).await.expect("depth");
    assert_eq!((depth.ready, depth.pending), (0, 3));
    let all = taken.iter().chain(&rest).map(|d| d.tag).collect();
    queue
        .settle(
            name,
            Settlement {
                acknowledge: all,
                ..Default::default()
            },
        )
        .await
        .expect("settle");
    assert!(queue.depth(name).await.expect("depth").is_empty());
}

/// Released messages are delivered again, marked as redelivered.
pub async fn released_messages_come_back<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue.send(name, bodies(2, "r")).await.expect("send");
    let taken = queue.receive(name, 10, WAIT).await.expect("receive");
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|d| !d.redelivered));
    queue
        .settle(
            name,
            Settlement {
                release: taken.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
    let again = queue.receive(name, 10, WAIT).await.expect("receive");
    assert_eq!(
        again.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
        bodies(2, "r")
    );
    assert!(again.iter().all(|d| d.redelivered));
    queue
        .settle(
            name,
            Settlement {
                acknowledge: again.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
}

/// What a consumer holds unsettled, it gives back at once with `release_held` (a worker
/// that stops without finishing its chunk): delivered again, in order, before any lease runs
/// out.
pub async fn held_messages_are_given_back_at_once<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue.send(name, bodies(3, "h")).await.expect("send");
    let taken = queue.receive(name, 2, WAIT).await.expect("receive");
    assert_eq!(taken.len(), 2);
    let released = queue.release_held().await.expect("release held");
    assert!(
        released >= 2,
        "the two unsettled messages are given back ({released})"
    );
    let mut again = Vec::new();
    while again.len() < 3 {
        let chunk = queue.receive(name, 10, WAIT).await.expect("receive");
        assert!(
            !chunk.is_empty(),
            "given back at once, not after a lease: {} of 3",
            again.len()
        );
        again.extend(chunk);
    }
    assert_eq!(
        again.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
        bodies(3, "h")
    );
    assert!(
        again[..2].iter().all(|d| d.redelivered),
        "the given-back messages are redeliveries"
    );
    queue
        .settle(
            name,
            Settlement {
                acknowledge: again.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
    assert!(queue.depth(name).await.expect("depth").is_empty());
}

/// A message given up on lands in `<queue>.error` with the body the consumer wrote.
pub async fn errors_go_to_the_error_queue<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue.send(name, bodies(2, "e")).await.expect("send");
    let taken = queue.receive(name, 10, WAIT).await.expect("receive");
    let settlement = Settlement {
        acknowledge: taken.iter().map(|d| d.tag).collect(),
        error: vec![b"e-0 failed: because".to_vec()],
        ..Default::default()
    };
    queue.settle(name, settlement).await.expect("settle");
    assert!(queue.depth(name).await.expect("depth").is_empty());
    assert_eq!(
        drain(queue, &error_queue_name(name)).await,
        [b"e-0 failed: because".to_vec()]
    );
}

/// A retry comes back on the same queue, not before its delay.
pub async fn retries_come_back_after_their_delay<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    queue.send(name, bodies(1, "t")).await.expect("send");
    let taken = queue.receive(name, 10, WAIT).await.expect("receive");
    let delay = Duration::from_millis(800);
    let settlement = Settlement {
        acknowledge: taken.iter().map(|d| d.tag).collect(),
        retry: vec![(b"t-0 retry 1".to_vec(), delay)],
        ..Default::default()
    };
    let settled_at = std::time::Instant::now();
    queue.settle(name, settlement).await.expect("settle");
    let early = queue
        .receive(name, 10, Duration::ZERO)
        .await
        .expect("receive");
    assert!(
        early.is_empty() || settled_at.elapsed() >= delay,
        "a retry waits out its delay"
    );
    assert!(
        !queue.depth(name).await.expect("depth").is_empty(),
        "a waiting retry counts as pending"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let back = loop {
        let chunk = queue.receive(name, 10, WAIT).await.expect("receive");
        if !chunk.is_empty() || std::time::Instant::now() > deadline {
            break chunk;
        }
    };
    assert_eq!(
        back.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
        [b"t-0 retry 1".to_vec()]
    );
    queue
        .settle(
            name,
            Settlement {
                acknowledge: back.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
}

/// Receiving from an empty queue returns an empty chunk after at most about `wait`.
pub async fn empty_queue_receives_nothing<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    let started = std::time::Instant::now();
    assert!(
        queue
            .receive(name, 10, WAIT)
            .await
            .expect("receive")
            .is_empty()
    );
    assert!(
        started.elapsed() < WAIT * 10,
        "receive returns soon after `wait` on an empty queue"
    );
}

/// `receive` waits for the first message: one sent while it waits is received before `wait` is
/// over, soon after it was sent.
pub async fn a_waiting_receiver_gets_a_message_sent_meanwhile<Q: Queue>(queue: &Q, name: &str) {
    queue.declare(&[name.to_owned()]).await.expect("declare");
    let wait = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let (received, ()) = tokio::join!(queue.receive(name, 10, wait), async {
        tokio::time::sleep(WAIT).await;
        queue.send(name, bodies(1, "w")).await.expect("send");
    });
    let received = received.expect("receive");
    assert_eq!(
        received.iter().map(|d| d.body.clone()).collect::<Vec<_>>(),
        bodies(1, "w"),
        "the message sent while the receiver waited"
    );
    assert!(
        started.elapsed() < wait / 2,
        "receive returns once a message arrives, not at the end of `wait`"
    );
    queue
        .settle(
            name,
            Settlement {
                acknowledge: received.iter().map(|d| d.tag).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("settle");
}
