//! The clock, behind a trait so the executor can be driven in virtual time.
//!
//! T1, T2 and T3 (and every record's time) come from here, and so does every wait and
//! every elapsed-time measurement the executor makes: it never reads `Instant` or sleeps
//! by itself, so a simulated world (`crate::sim::SimClock`) can run it without real
//! waiting. The pure core receives time as values. [`SystemClock`] is the real one.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A reading of a clock's monotonic time: the time since an origin the clock chose. Only
/// the difference of two readings of the same clock means anything (see
/// [`Clock::elapsed_since`]); unlike [`Clock::now`], it never goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Monotonic(Duration);

impl Monotonic {
    /// The reading `since_origin` after the clock's origin (for implementors).
    pub const fn from_origin(since_origin: Duration) -> Self {
        Monotonic(since_origin)
    }

    /// The time since the clock's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }
}

/// A source of the current time, of monotonic time, and of waiting.
pub trait Clock: Send + Sync {
    /// The current time (UTC).
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time, for measuring how long something took and for deadlines.
    fn monotonic(&self) -> Monotonic;

    /// Waits `d` on this clock (a virtual clock lets the time pass instead).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;

    /// How long since `start` (a reading of this clock's [`Clock::monotonic`]); zero if
    /// `start` is somehow later.
    fn elapsed_since(&self, start: Monotonic) -> Duration {
        self.monotonic().0.saturating_sub(start.0)
    }
}

/// The system's wall clock, tokio's monotonic clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock`]'s monotonic readings: the first reading in this process.
static ORIGIN: LazyLock<tokio::time::Instant> = LazyLock::new(tokio::time::Instant::now);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    // tokio's `Instant`, not std's, so readings and `sleep` agree on the same clock.
    fn monotonic(&self) -> Monotonic {
        let origin = *ORIGIN;
        Monotonic(tokio::time::Instant::now().saturating_duration_since(origin))
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn monotonic(&self) -> Monotonic {
        (**self).monotonic()
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        (**self).sleep(d)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn monotonic(&self) -> Monotonic {
        (**self).monotonic()
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        (**self).sleep(d)
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn monotonic(&self) -> Monotonic {
        (**self).monotonic()
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        (**self).sleep(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn system_clock_measures_its_own_sleep() {
        let c = SystemClock;
        let start = c.monotonic();
        c.sleep(Duration::from_millis(20)).await;
        assert!(c.elapsed_since(start) >= Duration::from_millis(20));
        assert_eq!(
            Arc::new(c).elapsed_since(Monotonic::from_origin(
                c.monotonic().since_origin() + Duration::from_secs(5)
            )),
            Duration::ZERO
        );
    }
}
