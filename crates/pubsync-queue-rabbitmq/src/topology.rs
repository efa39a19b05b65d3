//! Names and arguments of the exchanges and queues behind one pubsync queue.

use std::time::Duration;

use amqprs::{FieldTable, FieldValue};
use pubsync_queue_extension::QueueError;

/// The longest queue name accepted, in bytes: AMQP names hold 255 bytes, and the retry queues
/// add `.retry.<milliseconds>` to it.
pub const MAX_QUEUE_NAME_BYTES: usize = 200;

/// Routing key of the main queue on the queue's exchange.
pub(crate) const MAIN_ROUTING_KEY: &str = "";
/// Routing key of the error queue on the queue's exchange.
pub(crate) const ERROR_ROUTING_KEY: &str = "error";

/// The shortest retry delay; longer ones double from here: 125 ms, 250 ms, 500 ms, 1 s, 2 s, …
const FIRST_RUNG_MILLIS: u64 = 125;
/// How many rungs the delay ladder has: the longest delay is 125 ms × 2^20, about 36 hours.
pub(crate) const RUNGS: u32 = 21;

/// The delay a retry really waits: the requested delay rounded up to the ladder
/// 125 ms × 2^n (so a retry never comes back early), at most about 36 hours. `None` for a zero
/// delay, which is sent straight back to the queue.
pub fn retry_delay_rung(delay: Duration) -> Option<Duration> {
    if delay.is_zero() {
        return None;
    }
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let rung = rung_millis()
        .find(|&rung| rung >= millis)
        .unwrap_or(FIRST_RUNG_MILLIS << (RUNGS - 1));
    Some(Duration::from_millis(rung))
}

/// Every rung of the ladder, in milliseconds.
pub(crate) fn rung_millis() -> impl Iterator<Item = u64> {
    (0..RUNGS).map(|n| FIRST_RUNG_MILLIS << n)
}

/// The queue that holds `queue`'s retries of one delay: `<queue>.retry.<milliseconds>`.
pub fn retry_queue_name(queue: &str, rung: Duration) -> String {
    format!("{queue}.retry.{}", rung.as_millis())
}

/// The routing key of a retry queue on the queue's exchange: `retry.<milliseconds>`.
pub(crate) fn retry_routing_key(rung_millis: u64) -> String {
    format!("retry.{rung_millis}")
}

/// Refuses names AMQP or RabbitMQ cannot take.
pub(crate) fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let reason = if name.is_empty() {
        "a queue name cannot be empty"
    } else if name.len() > MAX_QUEUE_NAME_BYTES {
        "longer than 200 bytes (retry queues add `.retry.<ms>` within AMQP's 255)"
    } else if name.starts_with("amq.") {
        "names starting with `amq.` are reserved by the broker"
    } else if name.chars().any(char::is_control) {
        "control characters are not allowed"
    } else {
        return Ok(());
    };
    Err(QueueError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Arguments of the main and error queues.
pub(crate) fn queue_arguments(quorum: bool) -> FieldTable {
    let mut arguments = FieldTable::new();
    if quorum {
        insert(&mut arguments, "x-queue-type", "quorum".into());
    }
    arguments
}

/// Arguments of a retry queue: messages expire after `rung_millis` and are dead-lettered to
/// the queue's exchange with the main queue's routing key. Quorum retry queues dead-letter at
/// least once (RabbitMQ 3.10+), which needs `x-overflow: reject-publish`.
pub(crate) fn retry_queue_arguments(queue: &str, rung_millis: u64, quorum: bool) -> FieldTable {
    let mut arguments = queue_arguments(quorum);
    insert(
        &mut arguments,
        "x-message-ttl",
        FieldValue::l(i64::try_from(rung_millis).unwrap_or(i64::MAX)),
    );
    insert(&mut arguments, "x-dead-letter-exchange", queue.into());
    insert(
        &mut arguments,
        "x-dead-letter-routing-key",
        MAIN_ROUTING_KEY.into(),
    );
    if quorum {
        insert(
            &mut arguments,
            "x-dead-letter-strategy",
            "at-least-once".into(),
        );
        insert(&mut arguments, "x-overflow", "reject-publish".into());
    }
    arguments
}

fn insert(arguments: &mut FieldTable, key: &'static str, value: FieldValue) {
    arguments.insert(key.try_into().expect("short argument names"), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_the_ladder() {
        let ms = Duration::from_millis;
        assert_eq!(retry_delay_rung(Duration::ZERO), None);
        assert_eq!(retry_delay_rung(ms(1)), Some(ms(125)));
        assert_eq!(retry_delay_rung(ms(125)), Some(ms(125)));
        assert_eq!(retry_delay_rung(ms(126)), Some(ms(250)));
        assert_eq!(retry_delay_rung(ms(800)), Some(ms(1000)));
        // The backend's 1 s × 2^n lands exactly on rungs.
        for n in 0..10 {
            let delay = Duration::from_secs(1 << n);
            assert_eq!(retry_delay_rung(delay), Some(delay));
        }
        let longest = ms(125 << 20);
        assert_eq!(
            retry_delay_rung(Duration::from_secs(365 * 86_400)),
            Some(longest)
        );
        assert_eq!(rung_millis().count(), RUNGS as usize);
    }

    #[test]
    fn names() {
        assert_eq!(
            retry_queue_name("event", Duration::from_secs(2)),
            "event.retry.2000"
        );
        assert_eq!(retry_routing_key(2000), "retry.2000");
        assert!(validate_queue_name("sync.storage.hello").is_ok());
        assert!(validate_queue_name("").is_err());
        assert!(validate_queue_name("amq.gen").is_err());
        assert!(validate_queue_name(&"q".repeat(201)).is_err());
        assert!(validate_queue_name(&"q".repeat(200)).is_ok());
    }
}
