//! The broker restarts while a sender and a receiver run: the queue reconnects by itself and
//! every message whose send returned `Ok` arrives. Its own test binary, so that no other
//! RabbitMQ test runs while the broker is down.
//!
//! Restarts the local node with `rabbitmqctl stop_app` / `start_app`; a guard starts it again
//! even when the test fails.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubsync_queue_extension::{Queue, Settlement};
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::{Service, reachable, require, unique_name};

fn rabbitmqctl(arguments: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(arguments)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Polls until the node runs its app and accepts AMQP connections again (`await_startup`
/// exits at once while the node is not up, so it is polled too).
fn wait_until_up(url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if rabbitmqctl(&["await_startup", "--timeout", "5"]) && reachable(url) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// Starts the broker's app again when dropped, whatever happened.
struct StartAgain {
    url: String,
}

impl Drop for StartAgain {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        if !wait_until_up(&self.url, Duration::from_secs(60)) {
            eprintln!("RabbitMQ did not come back after the restart test");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_reconnects_after_a_broker_restart_and_loses_nothing() {
    let Some(url) = require(Service::Rabbitmq) else {
        return;
    };
    if !rabbitmqctl(&["status"]) {
        let message = "rabbitmqctl cannot reach the local node; cannot restart the broker";
        if std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let name = unique_name("pubsync_rmq_restart");
    let outcome = tokio::spawn(restart_while_sending_and_receiving(
        url.clone(),
        name.clone(),
    ))
    .await;
    // Delete the queue whatever happened (the guard has started the broker again by now).
    match RabbitQueue::connect_url(&url, RabbitQueueOptions::default()).await {
        Ok(cleaner) => {
            if let Err(error) = cleaner.delete(&name).await {
                eprintln!("cleanup of {name} failed: {error}");
            }
        }
        Err(error) => eprintln!("cleanup of {name} failed: {error}"),
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn restart_while_sending_and_receiving(url: String, name: String) {
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
    let guard = StartAgain { url: url.clone() };
    {
        let stopped = tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
            .await
            .unwrap();
        assert!(stopped, "rabbitmqctl stop_app");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let restarted_at = Instant::now();
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
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
