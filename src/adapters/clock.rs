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

/// How a wait polls (issue 16): the first pause is `first`, each next pause twice the
/// last, never more than `cap`. A wait that ends on a poll learns of the change it waits
/// for up to one pause late, and in a downtime window that lateness is the tool's, even
/// though it looks like the awaited service's: fine first pauses keep the slack of a short
/// wait small, and the cap bounds both the slack and the polling rate of a long one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub cap: Duration,
}

/// The first pause of every executor wait: short enough that a service ready a moment
/// after the first probe is seen within tens of milliseconds.
pub const FIRST_POLL: Duration = Duration::from_millis(20);

/// The longest pause of the health waits (`/oms/health` is one small HTTP GET).
pub const HEALTH_POLL_CAP: Duration = Duration::from_millis(100);

/// The longest pause of the supervisor and server-status waits (each poll is a `docker
/// exec` or a query, heavier than a health GET).
pub const STATUS_POLL_CAP: Duration = Duration::from_millis(250);

impl Backoff {
    /// Pauses from [`FIRST_POLL`] (or `cap`, if smaller) doubling up to `cap`.
    pub fn fine(cap: Duration) -> Backoff {
        Backoff {
            first: FIRST_POLL.min(cap),
            cap,
        }
    }

    /// The pause after `made` pauses already made.
    pub fn pause(self, made: u32) -> Duration {
        // 2^16 x any first pause above a nanosecond is past any sensible cap.
        self.first.saturating_mul(1 << made.min(16)).min(self.cap)
    }

    /// The most a wait that took `waited` and ended on a poll can have been late: the
    /// last pause that fits in `waited` (zero when none does: the first probe answered).
    /// An upper bound; probe times are not counted.
    pub fn slack_bound(self, waited: Duration) -> Duration {
        let (mut spent, mut last) = (Duration::ZERO, Duration::ZERO);
        for made in 0.. {
            let p = self.pause(made);
            if p.is_zero() || spent + p > waited {
                break;
            }
            if p == self.cap {
                // Every pause from here on is the cap.
                return p;
            }
            spent += p;
            last = p;
        }
        last
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

    #[test]
    fn backoff_doubles_from_the_first_pause_up_to_the_cap() {
        let ms = Duration::from_millis;
        let b = Backoff::fine(ms(100));
        let pauses: Vec<_> = (0..6).map(|n| b.pause(n)).collect();
        assert_eq!(pauses, [ms(20), ms(40), ms(80), ms(100), ms(100), ms(100)]);
        assert_eq!(b.pause(u32::MAX), ms(100));
        // A cap below the first pause is the only pause.
        assert_eq!(Backoff::fine(ms(5)).pause(0), ms(5));
    }

    #[test]
    fn slack_is_bounded_by_the_last_pause_that_fits_in_the_wait() {
        let ms = Duration::from_millis;
        let b = Backoff::fine(ms(100));
        // Answered on the first probe: no pause, no slack.
        assert_eq!(b.slack_bound(ms(15)), Duration::ZERO);
        // 20 + 40 = 60 ms of pauses fit in 70 ms; the third (80 ms) does not.
        assert_eq!(b.slack_bound(ms(70)), ms(40));
        assert_eq!(b.slack_bound(ms(140)), ms(80));
        // Long waits: the cap.
        assert_eq!(b.slack_bound(ms(60_000)), ms(100));
        // The old fixed 500 ms interval: up to 500 ms late.
        let old = Backoff {
            first: ms(500),
            cap: ms(500),
        };
        assert_eq!(old.slack_bound(ms(1009)), ms(500));
    }
}
