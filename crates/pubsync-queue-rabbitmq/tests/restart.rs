//! The broker restarts while a sender and a receiver run: the queue reconnects by itself and
//! every message whose send returned `Ok` arrives. The broker is a RabbitMQ node of the
//! test's own (`rabbitmqctl stop_app` / `start_app` on it), so no other test sees the outage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubsync_queue_extension::{Queue, Settlement};
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::private::PrivateRabbit;
use pubsync_test_support::{Service, require, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_reconnects_after_a_broker_restart_and_loses_nothing() {
    // The shared broker's presence says RabbitMQ is installed on this machine.
    if require(Service::Rabbitmq).is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let rabbit = Arc::new(
        tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            move || PrivateRabbit::start(&dir, None)
        })
        .await
        .unwrap(),
    );
    restart_while_sending_and_receiving(rabbit, unique_name("pubsync_rmq_restart")).await;
}

async fn restart_while_sending_and_receiving(rabbit: Arc<PrivateRabbit>, name: String) {
    let url = rabbit.url();
    let options = RabbitQueueOptions {
        reconnect_backoff_cap: Duration::from_millis(500),
        confirm_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let sender = Arc::new(
        RabbitQueue::connect_url(&url, options.clone())
            .await
            .expect("connect"),
    );
    let receiver = Arc::new(
        RabbitQueue::connect_url(&url, options)
            .await
            .expect("connect"),
    );
    sender
        .declare(std::slice::from_ref(&name))
        .await
        .expect("declare");

    let confirmed = Arc::new(Mutex::new(HashSet::<Vec<u8>>::new()));
    let received = Arc::new(Mutex::new(HashSet::<Vec<u8>>::new()));
    let stop_sending = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed_sends = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let sending = tokio::spawn({
        let (sender, name, confirmed, stop, failed) = (
            sender.clone(),
            name.clone(),
            confirmed.clone(),
            stop_sending.clone(),
            failed_sends.clone(),
        );
        async move {
            let mut next = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch: Vec<Vec<u8>> = (next..next + 50)
                    .map(|i| format!("r-{i}").into_bytes())
                    .collect();
                next += 50;
                // Retry a failed batch until it is confirmed, as the relay would.
                loop {
                    match sender.send(&name, batch).await {
                        Ok(()) => break,
                        Err(error) => {
                            assert!(error.source.is_transient(), "{error:?}");
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            batch = error.bodies;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                confirmed
                    .lock()
                    .unwrap()
                    .extend((next - 50..next).map(|i| format!("r-{i}").into_bytes()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let receiving = tokio::spawn({
        let (receiver, name, received) = (receiver.clone(), name.clone(), received.clone());
        async move {
            loop {
                match receiver
                    .receive(&name, 200, Duration::from_millis(200))
                    .await
                {
                    Ok(chunk) => {
                        let settlement = Settlement {
                            acknowledge: chunk.iter().map(|d| d.tag).collect(),
                            ..Default::default()
                        };
                        received
                            .lock()
                            .unwrap()
                            .extend(chunk.into_iter().map(|d| d.body));
                        if let Err(error) = receiver.settle(&name, settlement).await {
                            assert!(error.is_transient(), "{error:?}");
                        }
                    }
                    Err(error) => {
                        assert!(error.is_transient(), "{error:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = confirmed.lock().unwrap().len();
    assert!(before > 0, "messages flow before the restart");
    {
        let rabbit = rabbit.clone();
        tokio::task::spawn_blocking(move || rabbit.stop_app())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let restarted_at = Instant::now();
    {
        let rabbit = rabbit.clone();
        tokio::task::spawn_blocking(move || rabbit.start_app())
            .await
            .unwrap();
    }
    // Both instances reconnect by themselves.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(sender.is_connected() && receiver.is_connected()) {
        assert!(Instant::now() < deadline, "the queues did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconnected_in = restarted_at.elapsed();
    // Keep sending a little after the restart, then stop and wait for everything confirmed.
    let after_restart = confirmed.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while confirmed.lock().unwrap().len() < after_restart + 500 {
        assert!(
            Instant::now() < deadline,
            "sending did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_sending.store(true, std::sync::atomic::Ordering::Relaxed);
    sending.await.expect("sender");
    let confirmed = confirmed.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = confirmed.difference(&received.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} confirmed messages never arrived",
            confirmed.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiving.abort();
    eprintln!(
        "restart: {} confirmed and received, {} sends failed during the outage, both connected again {:?} after start_app was called",
        confirmed.len(),
        failed_sends.load(std::sync::atomic::Ordering::Relaxed),
        reconnected_in
    );
    assert!(
        failed_sends.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the outage was seen by the sender"
    );
}
