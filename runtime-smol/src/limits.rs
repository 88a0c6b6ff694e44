//! Per-address limits: connections open in total and per address, and failed logins, which
//! ban an address for a while. The server admits connections here; a connection reports its
//! logins here. Per instance: a fleet counts per instance (DESIGN.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use ferry_core::Refusal;

use crate::config::Settings;

/// Connection counts and failed-login records, per address.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    failures: Mutex<HashMap<IpAddr, (u32, StdInstant)>>,
}

/// A counted connection; dropping it releases the count.
pub(crate) struct Admission {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut m) = self.limits.per_ip.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// Counts a new connection from `ip`, or says why it is refused.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, s: &Settings) -> Result<Admission, Refusal> {
        let ip = ip.to_canonical();
        if let Ok(mut f) = self.failures.lock()
            && let Some(&(count, since)) = f.get(&ip)
        {
            if since.elapsed() >= s.ban_time {
                f.remove(&ip);
            } else if count >= s.max_failures_per_ip {
                return Err(Refusal::TooManyFailedLogins);
            }
        }
        let mut per_ip = self
            .per_ip
            .lock()
            .map_err(|_| Refusal::TooManyConnections)?;
        if self.total.load(Ordering::Acquire) >= s.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= s.max_connections_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        Ok(Admission {
            limits: self.clone(),
            ip,
        })
    }

    /// Records a failed login from `ip`; true if this failure bans the address.
    pub(crate) fn login_failed(&self, ip: IpAddr, s: &Settings) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return false;
        };
        let e = f.entry(ip.to_canonical()).or_insert((0, StdInstant::now()));
        if e.1.elapsed() >= s.ban_time {
            *e = (0, StdInstant::now());
        }
        e.0 += 1;
        let banned = e.0 == s.max_failures_per_ip;
        if banned {
            tracing::warn!(%ip, failures = e.0, ban_secs = s.ban_time.as_secs(), "too many failed logins: refusing new connections from this address");
        }
        banned
    }

    /// Forgets failures of `ip` after a good login.
    pub(crate) fn login_succeeded(&self, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&ip.to_canonical());
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}
