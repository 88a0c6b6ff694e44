//! Waiting for a condition: poll it at a short interval until it holds or a deadline
//! passes. Every wait of the tests goes through here instead of a fixed sleep.

use std::thread;
use std::time::{Duration, Instant};

/// How long a poll sleeps between two looks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` until it gives a value, which it returns; `None` if it gives none within
/// `within`. The probe runs at least once, and once more at the deadline.
pub fn poll<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until `cond` holds, polling; false if it does not within `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(within, || cond().then_some(())).is_some()
}
