//! Session settings, shared by every session of a server.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::limits::{
    DEFAULT_GREETING, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_FAILURE_DELAY,
    DEFAULT_MAX_LOGIN_FAILURES, MAX_LINE,
};

/// Whether explicit FTPS (RFC 4217) is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// No certificate: `AUTH TLS` is answered 502.
    #[default]
    Off,
    /// `AUTH TLS` is offered; clear text is allowed too.
    Optional,
    /// Login and data only under TLS: `USER` before `AUTH TLS` gets 530, `PROT C` 534, and
    /// transfers without `PROT P` 521.
    Required,
}

/// Settings of a [`Session`](crate::Session). `Copy`, so each session keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Text of the 220 greeting.
    pub greeting: &'static str,
    /// Longest command line (without CR LF), at most [`Config::MAX_LINE_LIMIT`]; longer
    /// lines get 500 and are skipped.
    pub max_line: usize,
    /// Time without a command (and no transfer running) after which the session ends with
    /// 421.
    pub idle_timeout: Duration,
    /// Delay before the reply to the first failed login; it doubles with each further
    /// failure.
    pub login_failure_delay: Duration,
    /// Failed logins after which the connection is closed.
    pub max_login_failures: u32,
    /// FTPS policy.
    pub tls: TlsMode,
    /// Address to announce in 227 replies instead of the listener's own (behind NAT).
    pub public_address: Option<Ipv4Addr>,
}

impl Config {
    /// Upper bound of [`Config::max_line`]: the session filters telnet sequences through a
    /// stack buffer of this size.
    pub const MAX_LINE_LIMIT: usize = 16 * 1024;

    /// The defaults of DESIGN.md, from [`limits`](crate::limits).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            greeting: DEFAULT_GREETING,
            max_line: MAX_LINE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_failure_delay: DEFAULT_LOGIN_FAILURE_DELAY,
            max_login_failures: DEFAULT_MAX_LOGIN_FAILURES,
            tls: TlsMode::Off,
            public_address: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
