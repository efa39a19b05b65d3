//! The settings of a `RabbitQueue`, their defaults, and the check `connect` makes of them.

use std::time::Duration;

use crate::RabbitQueueError;

/// Settings of a [`RabbitQueue`].
///
/// [`RabbitQueue`]: crate::RabbitQueue
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitQueueOptions {
    /// How many unacknowledged messages the broker sends ahead to each consumer channel
    /// (`basic.qos` prefetch count). Default 500, like the original's event chunk; set it to
    /// at least the chunk size `receive` is asked for.
    pub prefetch: u16,
    /// Declare quorum queues (`x-queue-type: quorum`), for clusters. Default `false` (classic
    /// queues).
    pub quorum: bool,
    /// The longest pause between two reconnection attempts; they start 100 ms apart and
    /// double. Default 5 s.
    pub reconnect_backoff_cap: Duration,
    /// How long `send` and `settle` wait for publisher confirms. Default 30 s.
    pub confirm_timeout: Duration,
    /// How long connecting and each round trip to the broker (declare, consume, …) may take.
    /// Default 10 s.
    pub operation_timeout: Duration,
    /// AMQP heartbeat: how soon a silent network failure is noticed. Default 30 s; zero turns
    /// heartbeats off.
    pub heartbeat: Duration,
    /// After the first delivery, `receive` keeps taking deliveries that arrive less than this
    /// apart, up to `max`, so a chunk is not cut short by messages still on the wire.
    /// Default 5 ms.
    pub receive_linger: Duration,
}

impl Default for RabbitQueueOptions {
    fn default() -> Self {
        Self {
            prefetch: 500,
            quorum: false,
            reconnect_backoff_cap: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(30),
            receive_linger: Duration::from_millis(5),
        }
    }
}

impl RabbitQueueOptions {
    pub(crate) fn validate(&self) -> Result<(), RabbitQueueError> {
        if self.prefetch == 0 {
            return Err(RabbitQueueError::InvalidOptions(
                "prefetch must be at least 1",
            ));
        }
        if self.confirm_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(RabbitQueueError::InvalidOptions(
                "confirm_timeout and operation_timeout must be above zero",
            ));
        }
        if self.heartbeat.as_secs() > u64::from(u16::MAX) {
            return Err(RabbitQueueError::InvalidOptions(
                "heartbeat must be at most 65535 s",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        assert!(RabbitQueueOptions::default().validate().is_ok());
        let zero_prefetch = RabbitQueueOptions {
            prefetch: 0,
            ..Default::default()
        };
        assert!(zero_prefetch.validate().is_err());
    }
}
