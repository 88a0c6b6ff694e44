//! What operators watch: counters of what the server does, in Prometheus text format
//! (`prometheus-client`). `probe.rs` serves them over HTTP (`--metrics-listen`).
//!
//! Every series carries the label `instance` ([`crate::config::Settings::instance`]), so
//! that a fleet's instances can be told apart after Prometheus merges them. Counting is a
//! few atomic increments and a hash lookup per command, always on; only the listener is
//! optional.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one series, fixed names and values.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// Histograms are made by a function pointer so that the family's type can be named.
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Transfer durations: 1 ms to about 4.6 hours, doubling.
fn transfer_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 24))
}

/// Storage call latencies: 50 µs to about 13 s, doubling.
fn storage_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

/// The verbs counted by name; anything else (an unknown verb, a line that does not parse)
/// is counted as `other`. The core's verbs ([`ferry_core::Command::verb`]).
const VERBS: [&str; 50] = [
    "USER", "PASS", "ACCT", "REIN", "QUIT", "PWD", "XPWD", "CWD", "XCWD", "CDUP", "XCUP", "TYPE",
    "MODE", "STRU", "PORT", "PASV", "EPRT", "EPSV", "REST", "RETR", "STOR", "STOU", "APPE", "ALLO",
    "DELE", "RNFR", "RNTO", "SIZE", "MDTM", "MFMT", "MKD", "XMKD", "RMD", "XRMD", "SITE", "LIST",
    "NLST", "MLSD", "MLST", "STAT", "FEAT", "OPTS", "SYST", "HELP", "NOOP", "ABOR", "HOST", "AUTH",
    "PBSZ", "PROT",
];

/// A command's verb as a small number (1-based; 0 is none): a session keeps it until the
/// command's reply, in a byte.
#[must_use]
pub(crate) fn verb_index(line: &[u8]) -> u8 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let verb = match ferry_core::parse_command(line) {
        Ok(c) => c.verb(),
        Err(_) => return OTHER,
    };
    VERBS
        .iter()
        .position(|v| *v == verb)
        .map_or(OTHER, |i| u8::try_from(i + 1).unwrap_or(OTHER))
}

/// The index of `other`.
const OTHER: u8 = u8::MAX;

/// The verb's name for a label.
fn verb_name(index: u8) -> &'static str {
    match index {
        0 | OTHER => "other",
        i => VERBS.get(usize::from(i) - 1).copied().unwrap_or("other"),
    }
}

/// The class of a reply code: `1xx` to `5xx`.
fn class(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    logins: Family<Labels<1>, Counter>,
    commands: Family<Labels<2>, Counter>,
    bytes: Family<Labels<1>, Counter>,
    transfers: Family<Labels<2>, Counter>,
    transfer_seconds: Histograms<1>,
    storage_seconds: Histograms<2>,
    tls_handshakes: Family<Labels<2>, Counter>,
    proxy_refusals: Family<Labels<2>, Counter>,
    bans: Counter,
    refusals: Family<Labels<1>, Counter>,
}

impl Metrics {
    /// Counters of the instance `instance`, all at zero.
    #[must_use]
    pub fn new(instance: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "ferry",
            [(Cow::Borrowed("instance"), Cow::Owned(instance.to_owned()))].into_iter(),
        );
        let m = Self {
            sessions: Gauge::default(),
            logins: Family::default(),
            commands: Family::default(),
            bytes: Family::default(),
            transfers: Family::default(),
            transfer_seconds: Family::new_with_constructor(transfer_buckets),
            storage_seconds: Family::new_with_constructor(storage_buckets),
            tls_handshakes: Family::default(),
            proxy_refusals: Family::default(),
            bans: Counter::default(),
            refusals: Family::default(),
            registry: Registry::default(),
        };
        registry.register("sessions", "Control connections open", m.sessions.clone());
        registry.register(
            "logins",
            "Logins by result (ok, failed, unavailable)",
            m.logins.clone(),
        );
        registry.register(
            "commands",
            "Commands by verb and the class of their final reply",
            m.commands.clone(),
        );
        registry.register(
            "transfer_bytes",
            "Bytes of completed transfers by direction",
            m.bytes.clone(),
        );
        registry.register(
            "transfers",
            "Transfers by direction and result",
            m.transfers.clone(),
        );
        registry.register(
            "transfer_duration_seconds",
            "How long transfers took, by direction",
            m.transfer_seconds.clone(),
        );
        registry.register(
            "storage_duration_seconds",
            "How long storage calls took, by operation and backend",
            m.storage_seconds.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes by connection (control, data) and result",
            m.tls_handshakes.clone(),
        );
        registry.register(
            "proxy_refusals",
            "Connections closed for their PROXY header, by connection and reason",
            m.proxy_refusals.clone(),
        );
        registry.register(
            "bans",
            "Addresses banned for too many failed logins",
            m.bans.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections refused by the limits, by reason",
            m.refusals.clone(),
        );
        Self { registry, ..m }
    }

    /// A login's result: `ok`, `failed` or `unavailable`.
    pub(crate) fn login(&self, result: &'static str) {
        self.logins.get_or_create(&[("result", result)]).inc();
    }

    /// A command (its [`verb_index`]) ended with a reply of this code.
    pub(crate) fn command(&self, verb: u8, code: u16) {
        self.commands
            .get_or_create(&[("verb", verb_name(verb)), ("class", class(code))])
            .inc();
    }

    /// A transfer (`download`, `upload` or `listing`) ended.
    pub(crate) fn transfer(&self, direction: &'static str, bytes: Option<u64>, took: Duration) {
        let result = if bytes.is_some() { "ok" } else { "failed" };
        self.transfers
            .get_or_create(&[("direction", direction), ("result", result)])
            .inc();
        if let Some(b) = bytes {
            self.bytes
                .get_or_create(&[("direction", direction)])
                .inc_by(b);
        }
        self.transfer_seconds
            .get_or_create(&[("direction", direction)])
            .observe(took.as_secs_f64());
    }

    /// A storage call `op` of `backend` took `took`.
    pub(crate) fn storage(&self, op: &'static str, backend: &'static str, took: Duration) {
        self.storage_seconds
            .get_or_create(&[("op", op), ("backend", backend)])
            .observe(took.as_secs_f64());
    }

    /// A TLS handshake on a `control` or `data` connection.
    pub(crate) fn tls(&self, connection: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_handshakes
            .get_or_create(&[("connection", connection), ("result", result)])
            .inc();
    }

    /// A `control` or `data` connection closed for its PROXY header (`untrusted`, `bad`).
    pub(crate) fn proxy_refused(&self, connection: &'static str, reason: &'static str) {
        self.proxy_refusals
            .get_or_create(&[("connection", connection), ("reason", reason)])
            .inc();
    }

    /// An address was banned.
    pub(crate) fn banned(&self) {
        self.bans.inc();
    }

    /// A connection refused by the limits.
    pub(crate) fn refused(&self, refusal: ferry_core::Refusal) {
        let reason = match refusal {
            ferry_core::Refusal::TooManyConnections => "too_many_connections",
            ferry_core::Refusal::TooManyFromAddress => "too_many_from_address",
            ferry_core::Refusal::TooManyFailedLogins => "banned",
            ferry_core::Refusal::ShuttingDown => "shutting_down",
        };
        self.refusals.get_or_create(&[("reason", reason)]).inc();
    }

    /// The text of `/metrics`, with `sessions` open now.
    #[must_use]
    pub fn render(&self, sessions: usize) -> String {
        self.sessions
            .set(i64::try_from(sessions).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The name of a storage call for the `op` label.
pub(crate) fn op_name(op: &ferry_core::StorageOp) -> &'static str {
    use ferry_core::StorageOp as O;
    match op {
        O::Metadata(_) => "metadata",
        O::MakeDir(_) => "make_dir",
        O::RemoveDir(_) => "remove_dir",
        O::RemoveFile(_) => "remove_file",
        O::Rename { .. } => "rename",
        O::Copy { .. } => "copy",
        O::SetModified { .. } => "set_modified",
        O::SetMode { .. } => "set_mode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_round_trip() {
        assert_eq!(verb_name(verb_index(b"RETR a\r\n")), "RETR");
        assert_eq!(verb_name(verb_index(b"xpwd\r\n")), "XPWD");
        assert_eq!(verb_name(verb_index(b"BOGUS\r\n")), "other");
        assert_eq!(verb_name(verb_index(b"\xff\xfe\r\n")), "other");
        assert_eq!(verb_name(0), "other");
        for (i, v) in VERBS.iter().enumerate() {
            assert_eq!(verb_name(u8::try_from(i + 1).unwrap()), *v);
            // Each is a verb the core parses, with one of these arguments or none.
            let args = [
                "",
                " a",
                " A",
                " S",
                " F",
                " 1",
                " TLS",
                " P",
                " HELP",
                " UTF8 ON",
                " 1,2,3,4,5,6",
                " |1|127.0.0.1|5|",
                " 20200101000000 a",
            ];
            let parsed = args
                .iter()
                .any(|a| verb_index(format!("{v}{a}\r\n").as_bytes()) != OTHER);
            assert!(parsed, "{v}");
        }
    }

    #[test]
    fn renders_with_the_instance_label() {
        let m = Metrics::new("ferry-a");
        m.login("ok");
        m.command(verb_index(b"NOOP\r\n"), 200);
        m.transfer("download", Some(42), Duration::from_millis(3));
        let text = m.render(3);
        assert!(
            text.contains(r#"ferry_sessions{instance="ferry-a"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferry_logins_total{instance="ferry-a",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferry_commands_total{instance="ferry-a",verb="NOOP",class="2xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ferry_transfer_bytes_total{instance="ferry-a",direction="download"} 42"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
