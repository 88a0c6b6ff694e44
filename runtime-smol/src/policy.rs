//! The runtime's side of per-user policy (`ferry_backends::policy`): rate limits, sessions
//! per user, and the state an account's sessions share in this process (its quota usage, its
//! rate buckets, how many sessions it has).
//!
//! # Rates
//!
//! A [`Bucket`] is a token bucket in debt form: a transfer moves a piece, then takes its
//! bytes from the bucket, which may go below zero; it then sleeps until the debt is paid at
//! the bucket's rate. Pieces are [`Bucket::piece`] bytes (a twentieth of a second's worth,
//! between 4 KiB and 256 KiB), and a debt under [`MIN_WAIT`] is carried to the next piece
//! instead of slept off: a limited transfer arms about twenty timers a second at low rates
//! (one per piece) and at most a hundred at high rates (one per 10 ms), an unlimited one
//! none. A bucket holds at most a quarter of a second of credit while transfers take from it,
//! so that a late timer or a write held up by the disk's writeback costs nothing, and none
//! after a second without any, so that a new transfer does not start with a burst. The user's bucket is shared by
//! all of the user's sessions; the server's (`--rate-up`, `--rate-down`) by everyone.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_backends::Storage;
use ferry_backends::policy::{Policy, Rate, Usage, scan_usage};

/// The shortest sleep a limited transfer takes: a smaller debt is left in the bucket and paid
/// with the next (a TLS upload arrives in records of 16 KiB, which at 100 MiB/s would
/// otherwise be thousands of timers a second).
pub(crate) const MIN_WAIT: Duration = Duration::from_millis(10);

/// A bucket that nothing took from for this long keeps no credit: a new transfer starts at
/// the rate, not with a burst.
const IDLE: Duration = Duration::from_secs(1);

/// A time long enough ago for a bucket to count as idle.
fn idle_since() -> Instant {
    let now = Instant::now();
    now.checked_sub(IDLE * 2).unwrap_or(now)
}

/// The fewest bytes a limited transfer moves at once.
const MIN_PIECE: u64 = 4 * 1024;
/// The most.
const MAX_PIECE: u64 = 256 * 1024;

/// A shared rate limit (see the module docs).
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Bytes per second; 0 for none.
    rate: AtomicU64,
    /// Tokens (bytes; negative: debt) and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(crate) fn new(rate: Option<Rate>) -> Self {
        Self {
            rate: AtomicU64::new(rate.map_or(0, |r| r.0)),
            // As if idle: the first transfer starts without credit.
            state: Mutex::new((0.0, idle_since())),
        }
    }

    /// Changes the rate (an account's policy changed).
    pub(crate) fn set_rate(&self, rate: Option<Rate>) {
        self.rate.store(rate.map_or(0, |r| r.0), Ordering::Relaxed);
    }

    /// Whether it limits anything.
    pub(crate) fn is_limited(&self) -> bool {
        self.rate.load(Ordering::Relaxed) > 0
    }

    /// How many bytes a transfer should move between two takes.
    pub(crate) fn piece(&self) -> u64 {
        (self.rate.load(Ordering::Relaxed) / 20).clamp(MIN_PIECE, MAX_PIECE)
    }

    /// Takes `n` bytes; returns how long to wait before going on.
    pub(crate) fn take(&self, n: u64, now: Instant) -> Duration {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return Duration::ZERO;
        }
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        // At most a quarter of a second of credit: enough to absorb a late timer, or a write
        // held up by the page cache's writeback, too little to make much of a burst after a
        // pause.
        #[allow(clippy::cast_precision_loss)]
        let (rate, n, cap) = (rate as f64, n as f64, (rate / 4).max(self.piece()) as f64);
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        // After a pause (nothing taken for a second), a transfer starts with no credit.
        let cap = if elapsed > IDLE.as_secs_f64() {
            0.0
        } else {
            cap
        };
        s.0 = (s.0 + elapsed * rate).min(cap) - n;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / rate)
        }
    }
}

/// The rate limits a transfer is under (its user's, the server's).
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits(Vec<Arc<Bucket>>);

impl Limits {
    /// Under these of `buckets` that limit anything.
    pub(crate) fn new(buckets: impl IntoIterator<Item = Arc<Bucket>>) -> Self {
        Self(buckets.into_iter().filter(|b| b.is_limited()).collect())
    }

    /// Whether there are any.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes to move at once: the smallest piece of the buckets; `None` if unlimited.
    pub(crate) fn piece(&self) -> Option<u64> {
        self.0.iter().map(|b| b.piece()).min()
    }

    /// Takes `n` bytes from each bucket; how long to wait before going on.
    pub(crate) fn take(&self, n: u64) -> Duration {
        let now = Instant::now();
        self.0
            .iter()
            .map(|b| b.take(n, now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// What one account's sessions share in this process.
#[derive(Debug)]
pub(crate) struct UserState {
    pub(crate) usage: Arc<Usage>,
    pub(crate) up: Arc<Bucket>,
    pub(crate) down: Arc<Bucket>,
    sessions: AtomicU32,
    /// Whether a scan of the home was started.
    scan_started: AtomicBool,
}

/// The state of every account that logged in since the server started (one small entry per
/// account).
#[derive(Debug, Default)]
pub(crate) struct UserStates {
    users: Mutex<HashMap<String, Arc<UserState>>>,
}

/// A logged-in session of an account: counted until dropped.
#[derive(Debug)]
pub(crate) struct SessionSlot(Arc<UserState>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionSlot {
    pub(crate) fn state(&self) -> &Arc<UserState> {
        &self.0
    }
}

impl UserStates {
    /// The state of `user`, made at their first login, its rates set to `policy`'s.
    pub(crate) fn get(&self, user: &str, policy: &Policy) -> Arc<UserState> {
        let state = {
            let mut users = self
                .users
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            users
                .entry(user.to_owned())
                .or_insert_with(|| {
                    Arc::new(UserState {
                        usage: Arc::new(Usage::new()),
                        up: Arc::new(Bucket::new(policy.rate_up)),
                        down: Arc::new(Bucket::new(policy.rate_down)),
                        sessions: AtomicU32::new(0),
                        scan_started: AtomicBool::new(false),
                    })
                })
                .clone()
        };
        state.up.set_rate(policy.rate_up);
        state.down.set_rate(policy.rate_down);
        state
    }

    /// A session slot for `user`, or `None` if they have `max_sessions` already.
    pub(crate) fn open_session(
        &self,
        state: &Arc<UserState>,
        policy: &Policy,
    ) -> Option<SessionSlot> {
        let max = policy.max_sessions.unwrap_or(u32::MAX);
        state
            .sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(state.clone()))
    }
}

impl UserState {
    /// Starts counting the home's usage, once, if the policy has a quota: `tree` is scanned
    /// by `run` (a background executor), and what it finds is added to the changes made
    /// since. Returns a channel that closes when the scan ends, for the first login to wait
    /// on ([`SCAN_WAIT`] at most), so that a small home is counted before anything changes
    /// in it; `None` if there is nothing to wait for.
    pub(crate) fn scan_once<S: Storage + Clone>(
        &self,
        user: &str,
        policy: &Policy,
        tree: &S,
        run: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>),
    ) -> Option<smol::channel::Receiver<()>> {
        if policy.quota_size.is_none() && policy.quota_files.is_none() {
            return None;
        }
        if self.scan_started.swap(true, Ordering::Relaxed) {
            return None;
        }
        let (tree, usage, user) = (tree.clone(), self.usage.clone(), user.to_owned());
        let (done, ended) = smol::channel::bounded::<()>(1);
        run(Box::pin(async move {
            let started = Instant::now();
            match scan_usage(&tree).await {
                Ok((bytes, files)) => {
                    usage.add_scan(bytes, files);
                    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(user, bytes, files, took_ms, "quota usage counted");
                }
                Err(e) => {
                    tracing::warn!(user, error = %e, "cannot count the quota usage of the home; only changes from now on count");
                }
            }
            drop(done);
        }));
        Some(ended)
    }
}

/// How long the first login of an account with a quota waits for the scan of its home. A
/// larger home goes on being counted in the background; changes made meanwhile in the part
/// not yet scanned may then be counted twice (or a delete not at all) until the server
/// restarts.
pub(crate) const SCAN_WAIT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_its_rate() {
        let b = Bucket::new(Some(Rate(1_000_000)));
        let t0 = Instant::now();
        // A second's worth moved at once must wait about a second (less the credit).
        let mut waited = Duration::ZERO;
        let mut now = t0;
        for _ in 0..100 {
            let w = b.take(10_000, now);
            now += w;
            waited += w;
        }
        let secs = waited.as_secs_f64();
        assert!((0.9..=1.01).contains(&secs), "{secs}");
        // A short stall is made up for, up to a quarter of a second's worth.
        let later = now + Duration::from_millis(900);
        assert_eq!(b.take(250_000, later), Duration::ZERO);
        assert!(b.take(b.piece(), later) > Duration::ZERO);
        // After a pause, no credit at all.
        let much_later = later + Duration::from_secs(10);
        assert!(b.take(1000, much_later) > Duration::ZERO);
    }

    #[test]
    fn an_unlimited_bucket_never_waits() {
        let b = Bucket::new(None);
        assert!(!b.is_limited());
        assert_eq!(b.take(1 << 30, Instant::now()), Duration::ZERO);
        assert!(Limits::new([Arc::new(b)]).is_empty());
    }

    #[test]
    fn sessions_are_counted_per_user() {
        let states = UserStates::default();
        let policy = Policy {
            max_sessions: Some(2),
            ..Policy::default()
        };
        let s = states.get("alice", &policy);
        let a = states.open_session(&s, &policy).unwrap();
        let _b = states.open_session(&s, &policy).unwrap();
        assert!(states.open_session(&s, &policy).is_none());
        drop(a);
        assert!(states.open_session(&s, &policy).is_some());
        // No limit: as many as the server takes.
        let other = states.get("bob", &Policy::default());
        let slots: Vec<_> = (0..100)
            .map(|_| states.open_session(&other, &Policy::default()).unwrap())
            .collect();
        assert_eq!(slots.len(), 100);
    }
}
