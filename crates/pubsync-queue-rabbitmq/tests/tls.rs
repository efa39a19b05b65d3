//! `amqps://` against a RabbitMQ node of the test's own, listening for TLS with a certificate
//! of a CA the test makes: messages go through when the URL trusts that CA, and the
//! connection is refused, with the reason, when it does not.

use std::time::Duration;

use pubsync_queue_extension::{Queue, Settlement};
use pubsync_queue_rabbitmq::{RabbitQueue, RabbitQueueOptions};
use pubsync_test_support::private::PrivateRabbit;
use pubsync_test_support::tls::TestCa;
use pubsync_test_support::{Service, require, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_sends_and_receives_with_the_test_ca_and_refuses_a_broker_it_cannot_trust() {
    // The shared broker's presence says RabbitMQ is installed on this machine.
    if require(Service::Rabbitmq).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let rabbit = PrivateRabbit::start(dir.path(), Some(&ca));
    let url = rabbit.tls_url().expect("started with TLS");

    let queue = RabbitQueue::connect_url(&url, RabbitQueueOptions::default())
        .await
        .expect("connecting with TLS");
    assert!(
        queue
            .address()
            .to_string()
            .starts_with("amqps://guest@localhost:")
    );
    let name = unique_name("tls");
    queue.declare(std::slice::from_ref(&name)).await.unwrap();
    let bodies: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    queue.send(&name, bodies.clone()).await.unwrap();
    let deliveries = queue
        .receive(&name, 10, Duration::from_secs(5))
        .await
        .unwrap();
    let received: Vec<Vec<u8>> = deliveries.iter().map(|d| d.body.clone()).collect();
    assert_eq!(received, bodies);
    let settlement = Settlement {
        acknowledge: deliveries.iter().map(|d| d.tag).collect(),
        ..Settlement::default()
    };
    queue.settle(&name, settlement).await.unwrap();

    // The compiled-in roots do not know the test CA.
    let untrusted = url.split('?').next().unwrap().to_owned();
    let error = RabbitQueue::connect_url(&untrusted, RabbitQueueOptions::default())
        .await
        .expect_err("a certificate of an unknown CA");
    let message = format!("{error}");
    assert!(
        message.contains("certificate is not trusted") && message.contains("cacertfile"),
        "{message}"
    );
    assert!(
        !error.is_transient(),
        "waiting does not make a certificate trusted: {error:?}"
    );
    assert!(!message.contains("guest:guest"), "{message}");

    // A CA file that is not there is a clear error, not a connection attempt.
    let missing = format!("{untrusted}?cacertfile=/nonexistent/ca.pem");
    let error = RabbitQueue::connect_url(&missing, RabbitQueueOptions::default())
        .await
        .expect_err("no such CA file");
    assert!(!error.is_transient(), "{error:?}");
    assert!(
        format!("{error}").contains("/nonexistent/ca.pem"),
        "{error}"
    );
}
