//! The source of the current time, injected so that expiry decisions can be tested.

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock; the only place that reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the one real clock")]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always returns the same instant.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

#[cfg(test)]
impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}
