//! What every connection of a server shares: settings, accounts, the audit log, TLS, the
//! limits, the metrics, the PROXY policy, the login gate, the shutdown signal, the clock and the bulk threads. The server builds it once;
//! connections only read it, and never reach into the server.

use std::sync::Arc;

use ferry_backends::audit::AuditLog;
use ferry_core::Config as CoreConfig;
use smol::channel::Receiver;
use smol::lock::Semaphore;

use crate::bulk::Bulk;
use crate::clock::Clock;
use crate::config::Settings;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::policy::{Bucket, UserStates};
use crate::proxy::ProxyPolicy;
use crate::tls::Tls;
use crate::users::Users;

/// What every connection of a server shares.
pub(crate) struct Ctx<U: Users> {
    pub(crate) settings: Settings,
    pub(crate) core: CoreConfig,
    pub(crate) users: Arc<U>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) limits: Arc<Limits>,
    /// What `/metrics` shows.
    pub(crate) metrics: Arc<Metrics>,
    /// Which peers send a PROXY header first.
    pub(crate) proxy: Arc<ProxyPolicy>,
    /// Password checks at once (argon2 needs memory and a core each).
    pub(crate) login_gate: Arc<Semaphore>,
    /// Closed when the server shuts down.
    pub(crate) shutdown: Receiver<()>,
    /// The core's clock.
    pub(crate) clock: Clock,
    /// Where large transfers carry on ([`crate::bulk`]).
    pub(crate) bulk: Arc<Bulk>,
    /// What each account's sessions share (session count, quota usage, rates).
    pub(crate) user_states: Arc<UserStates>,
    /// The server's upload rate limit (`--rate-up`), shared by every upload.
    pub(crate) rate_up: Arc<Bucket>,
    /// The server's download rate limit (`--rate-down`).
    pub(crate) rate_down: Arc<Bucket>,
    /// Passive listeners kept between transfers ([`crate::data::ListenerPool`]).
    pub(crate) passive_pool: Arc<crate::data::ListenerPool>,
}
