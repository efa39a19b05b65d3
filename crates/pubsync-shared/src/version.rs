//! The version of a change: the one representation it has from the capture trigger to the
//! key-value store.
//!
//! The sync outbox records a storage-row change with the clock time of the change in
//! microseconds since the Unix epoch; that integer is the [`Version`] the sync path compares.
//! Only at the wire does it turn into the original's `_timestamp`, seconds as a JSON number
//! with six decimals, and back: a microsecond time of today's magnitude survives the trip
//! through an IEEE double exactly.

use std::time::{SystemTime, UNIX_EPOCH};

/// When a change happened, in microseconds since the Unix epoch. A change applies to a key
/// only when its version is greater than the one the key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(i64);

impl Version {
    /// The version `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The clock's time now.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Self(micros)
    }

    /// The version of a `_timestamp` in seconds, rounded to the microsecond; `None` for a
    /// number that is not finite or lies outside the range of versions.
    pub fn from_seconds(seconds: f64) -> Option<Self> {
        let micros = (seconds * 1_000_000.0).round();
        // `i64::MAX as f64` rounds up to 2^63, which is out of range itself.
        (micros.is_finite() && micros >= i64::MIN as f64 && micros < i64::MAX as f64)
            .then_some(Self(micros as i64))
    }

    /// The `_timestamp` of this version: seconds since the Unix epoch.
    pub fn as_seconds(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    /// The smallest version after this one.
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsecond_times_survive_the_trip_through_seconds() {
        for micros in [
            1_599_741_494_267_689,
            1_700_000_000_000_005,
            4_102_444_800_999_999,
            0,
            1,
        ] {
            let version = Version::from_micros(micros);
            assert_eq!(Version::from_seconds(version.as_seconds()), Some(version));
        }
        assert_eq!(
            Version::from_micros(1_599_741_494_267_689).as_seconds(),
            1_599_741_494.267_689
        );
    }

    #[test]
    fn seconds_outside_the_range_of_versions_have_none() {
        assert_eq!(Version::from_seconds(f64::NAN), None);
        assert_eq!(Version::from_seconds(f64::INFINITY), None);
        assert_eq!(Version::from_seconds(1e300), None);
        assert_eq!(
            Version::from_seconds(2.5),
            Some(Version::from_micros(2_500_000))
        );
    }

    #[test]
    fn versions_order_by_time_and_next_is_one_microsecond_later() {
        let version = Version::from_micros(10);
        assert!(version.next() > version);
        assert_eq!(version.next().as_micros(), 11);
        assert_eq!(Version::from_micros(i64::MAX).next().as_micros(), i64::MAX);
    }
}
