//! Time for the runtime: the core's clock (microseconds since the server started), its
//! mapping back to the runtime's timers, the wall clock for listings, and the timeout that
//! every wait is bounded by.
//!
//! [`Clock::now`] is the seam for virtual-time tests (quinn's `Runtime::now()`): a test builds
//! a manual clock and moves the core's time by hand. The durations themselves belong to the
//! modules (and settings) that wait.

use std::future::Future;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ferry_core::{Instant, UnixTime};
use smol::Timer;
use smol::future::FutureExt as _;

/// The core's clock, shared by every connection of a server.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    /// The runtime instant that is the core's time zero.
    epoch: StdInstant,
    /// In tests: the core's time in microseconds, moved by hand instead of by the system.
    #[cfg(test)]
    manual: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Clock {
    /// A clock that starts now and follows the system's monotonic clock.
    pub(crate) fn start() -> Self {
        Self {
            epoch: StdInstant::now(),
            #[cfg(test)]
            manual: None,
        }
    }

    /// A clock at zero that moves only when the returned handle is set (microseconds).
    #[cfg(test)]
    pub(crate) fn manual() -> (Self, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let micros = std::sync::Arc::default();
        let clock = Self {
            epoch: StdInstant::now(),
            manual: Some(std::sync::Arc::clone(&micros)),
        };
        (clock, micros)
    }

    /// The core's time now.
    pub(crate) fn now(&self) -> Instant {
        #[cfg(test)]
        if let Some(m) = &self.manual {
            return Instant::from_micros(m.load(std::sync::atomic::Ordering::Acquire));
        }
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// A core instant on the runtime's clock (for its timers).
    pub(crate) fn to_std(&self, t: Instant) -> StdInstant {
        self.epoch + Duration::from_micros(t.as_micros())
    }
}

/// The wall clock as the core's time of files (listings are dated against it).
pub(crate) fn unix_now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Runs `f`, or gives up after `d`.
pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            Timer::after(d).await;
            None
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_manual_clock_moves_only_by_hand() {
        let (clock, micros) = Clock::manual();
        assert_eq!(clock.now(), Instant::from_micros(0));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), Instant::from_micros(0));
        micros.store(1_500_000, Ordering::Release);
        assert_eq!(clock.now().as_micros(), 1_500_000);
        assert_eq!(
            clock.to_std(clock.now()) - clock.epoch,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let clock = Clock::start();
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now().as_micros() >= a.as_micros() + 2000);
    }

    #[test]
    fn a_timeout_gives_up() {
        let r = smol::block_on(timeout(
            Duration::from_millis(1),
            std::future::pending::<()>(),
        ));
        assert_eq!(r, None);
        assert_eq!(
            smol::block_on(timeout(Duration::from_secs(5), async { 7 })),
            Some(7)
        );
    }
}
