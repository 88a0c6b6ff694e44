//! Server settings, each defined once: a field of [`Settings`], whose doc comment is its
//! help text, whose `#[arg]` makes it a flag and a `FERRY_*` environment variable, whose
//! name (or `#[serde(rename)]`) is its key in the TOML file, and whose default is set in
//! [`Settings::with_data_dir`] from a named constant.
//!
//! The sources apply in order, each over the one before: the defaults; the TOML file
//! ([`Settings::from_file`]), whose absent keys keep their defaults; then the environment
//! and the flags ([`Settings::apply_flags`]), of which clap gives a flag precedence over its
//! variable and leaves alone what neither sets.
//!
//! Every value is checked when it is read, and [`Settings::validate`] checks the values
//! that depend on each other; a bad one is refused with the key, the value and the reason.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::ParseIntError;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches};
pub use ferry_backends::net::Cidr;
use ferry_backends::pg::PgUrl;
use ferry_backends::policy::Rate;
use ferry_core::limits::{
    DEFAULT_GREETING, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_FAILURE_DELAY, DEFAULT_MAX_LOGIN_FAILURES,
};
use ferry_core::{Config as CoreConfig, TlsMode};
use serde::de::value::MapDeserializer;
use serde::{Deserialize, Deserializer};

/// Where the server listens unless told otherwise: loopback, so that a first start exposes
/// nothing to the network, on a port above 1023, so that it needs no privileges.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2121));

/// The data folder unless told otherwise: beside where the server was started, so that
/// `cargo run` works with no setup (DESIGN.md).
pub const DEFAULT_DATA_DIR: &str = "ftp_server_files";

/// The users file's name in the data folder.
const USERS_FILE: &str = "users.toml";

/// The audit log's name in the data folder.
const AUDIT_LOG: &str = "audit.log";

/// Connections at once, in total: a bound on descriptors and memory under a flood (an idle
/// session costs about 2 KiB, BENCHMARKS.md), well above what one machine's users need.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Connections at once from one address: enough for clients that open several at a time
/// (FileZilla's parallel transfers) and for users behind one NAT, and a fraction of
/// [`DEFAULT_MAX_CONNECTIONS`], so that one address cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;

/// Bulk threads (where large transfers carry on, at a lower priority): one keeps every
/// large transfer off the threads that serve commands; more help only when several large
/// transfers must share a machine with many cores.
pub const DEFAULT_BULK_THREADS: usize = 1;

/// How long a data connection may take to come (425 after): a client connects within
/// milliseconds of its PASV reply; a passive port that nobody takes is freed half as late as
/// vsftpd's `accept_timeout` (60 s) would.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a transfer may make no progress (426 after): long enough to ride out a
/// brief network outage, shorter than vsftpd's `data_connection_timeout` (300 s), so that a
/// vanished client frees its slot sooner.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Failed logins from one address, across its connections, after which its new connections
/// are refused: a guesser gets 20 tries, a person who mistyped on a few connections is not
/// locked out.
pub const DEFAULT_MAX_FAILURES_PER_IP: u32 = 20;

/// How long an address stays refused after too many failed logins (10 minutes): it makes
/// guessing slow without locking a person out for long.
pub const DEFAULT_BAN_TIME: Duration = Duration::from_secs(600);

/// How long running transfers may go on after SIGINT/SIGTERM: within the 90 s that systemd
/// waits (`TimeoutStopSec`) before it kills a service.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why a value is refused, whichever source gave it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A port range without its `-`.
    #[error("expected A-B, e.g. 50000-50100")]
    PortRangeForm,
    /// One end of a port range is not a port number.
    #[error("{0:?} is not a port number")]
    NotAPort(String),
    /// A port range that includes port 0.
    #[error("port 0 cannot be part of a range")]
    PortZero,
    /// A port range whose first port is after its last.
    #[error("the first port must not be greater than the last")]
    PortsReversed,
    /// A port range below 1024, where only privileged programs may listen.
    #[error("passive ports must be 1024 or above")]
    PrivilegedPorts,
    /// Not a listen address.
    #[error("expected IP:PORT, e.g. 127.0.0.1:2121 or [::1]:2121")]
    Listen,
    /// 0.0.0.0 as the public address.
    #[error("0.0.0.0 is not an address clients can reach")]
    UnspecifiedAddress,
    /// An IPv6 public address.
    #[error("PASV replies carry IPv4 only (IPv6 clients use EPSV)")]
    Ipv6Address,
    /// Neither an IPv4 address nor a host name.
    #[error("expected an IPv4 address or a host name")]
    NotAnAddress,
    /// Not a PROXY protocol mode.
    #[error("expected off, optional or required")]
    ProxyMode,
    /// Not a log format.
    #[error("expected \"text\" or \"json\"")]
    LogFormat,
    /// Not a log level.
    #[error("expected error, warn, info, debug or trace")]
    LogLevel,
    /// Not a storage URL.
    #[error("expected s3://BUCKET or s3://BUCKET/PREFIX")]
    StorageUrl,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configuration file is not TOML.
    #[error("config file {}: {source}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: toml::de::Error,
    },
    /// A key of the configuration file is unknown, or its value is not one it takes.
    #[error("config file {}: {key} = {value}: {reason}", .path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its value, as TOML.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A count that must be at least 1 is 0.
    #[error("{key} = 0: must be at least 1")]
    Zero {
        /// The setting, as its flag is named.
        key: &'static str,
    },
    /// Settings that do not fit together, or a text that is not one line.
    #[error("{keys}: {reason}")]
    Invalid {
        /// The settings, as their flags are named.
        keys: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The flags do not fit the settings' types (a bug: clap checked them when parsing).
    #[error(transparent)]
    Flags(#[from] clap::Error),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(ValueError::LogFormat),
        }
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::with(d, str::parse)
    }
}

/// Where users' files live when not on the local disk: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of Ferry's keys in it (may be empty); homes are `PREFIX/home/<user>/`.
    pub prefix: String,
}

impl FromStr for StorageUrl {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let rest = s.strip_prefix("s3://").ok_or(ValueError::StorageUrl)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket || prefix.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(ValueError::StorageUrl);
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for StorageUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::with(d, str::parse)
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A secret setting: its value never shows in `Debug` output (logs, error messages).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<secret>\"")
    }
}

/// The region of an S3 bucket unless told otherwise (what most S3-compatible stores take).
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Whether connections start with a PROXY protocol header ([`Settings::proxy_protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// No header is read; every peer is a client.
    #[default]
    Off,
    /// Peers in [`Settings::proxy_from`] must send a header; others are clients connecting
    /// directly.
    Optional,
    /// Only peers in [`Settings::proxy_from`] may connect, each with a header.
    Required,
}

impl FromStr for ProxyMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "required" => Ok(Self::Required),
            _ => Err(ValueError::ProxyMode),
        }
    }
}

impl<'de> Deserialize<'de> for ProxyMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::with(d, str::parse)
    }
}

/// What PASV replies announce ([`Settings::public_address`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicAddress {
    /// This address.
    Ip(Ipv4Addr),
    /// The IPv4 address this name resolves to when the server starts.
    Host(String),
}

impl FromStr for PublicAddress {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) if !v4.is_unspecified() => Ok(Self::Ip(v4)),
            Ok(IpAddr::V4(_)) => Err(ValueError::UnspecifiedAddress),
            Ok(IpAddr::V6(_)) => Err(ValueError::Ipv6Address),
            Err(_) => {
                let label = |l: &str| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                };
                let name = s.strip_suffix('.').unwrap_or(s);
                let all_digits = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                if name.len() <= 253 && !all_digits && name.split('.').all(label) {
                    Ok(Self::Host(name.to_owned()))
                } else {
                    Err(ValueError::NotAnAddress)
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for PublicAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::with(d, str::parse)
    }
}

impl fmt::Display for PublicAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Host(name) => f.write_str(name),
        }
    }
}

/// An inclusive range of TCP ports for passive data connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

impl PortRange {
    /// How many ports it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Whether it holds none (never: `start <= end` is checked).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Ports below this are privileged: only root (or `CAP_NET_BIND_SERVICE`) may listen there.
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

impl FromStr for PortRange {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let (a, b) = s.split_once('-').ok_or(ValueError::PortRangeForm)?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| ValueError::NotAPort(p.to_owned()))
        };
        let (start, end) = (port(a)?, port(b)?);
        if start == 0 {
            return Err(ValueError::PortZero);
        }
        if start > end {
            return Err(ValueError::PortsReversed);
        }
        if start < FIRST_UNPRIVILEGED_PORT {
            return Err(ValueError::PrivilegedPorts);
        }
        Ok(Self { start, end })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::with(d, str::parse)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Everything the server needs to know: each field is a setting (see the module's doc).
///
/// Flags are optional in every form (clap's `augment_args_for_update`): one that is not given
/// keeps the value that the defaults or the file gave. So a `bool` takes a value
/// (`--fsync`, `--fsync true`, `--fsync false`) instead of being a switch that is always set.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (repeat, or comma-separate, for several) [default: 127.0.0.1:2121].
    #[arg(long, env = "FERRY_LISTEN", value_name = "ADDR", value_delimiter = ',', value_parser = parse_listen)]
    #[serde(deserialize_with = "de::listen")]
    pub listen: Vec<SocketAddr>,
    /// Folder of accounts (users.toml), homes (home/<user>) and the audit log (audit.log).
    /// Its flag is in `main.rs`, because every command takes it.
    #[arg(skip)]
    pub data_dir: PathBuf,
    /// Ports for passive data connections, e.g. 50000-50100 [default: any free port].
    #[arg(long, env = "FERRY_PASSIVE_PORTS", value_name = "A-B")]
    pub passive_ports: Option<PortRange>,
    /// IPv4 address, or host name (resolved at start), to announce in PASV replies: behind
    /// NAT, or a load balancer's address for each instance behind it.
    #[arg(long, env = "FERRY_PUBLIC_ADDRESS", value_name = "HOST")]
    pub public_address: Option<PublicAddress>,
    /// PEM certificate chain: turns on explicit FTPS (AUTH TLS).
    #[arg(long, env = "FERRY_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, RSA or EC) of the certificate.
    #[arg(long, env = "FERRY_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Refuse login and transfers without TLS.
    #[arg(long, env = "FERRY_REQUIRE_TLS", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub require_tls: bool,
    /// Data connections must resume the control connection's TLS session [default: true].
    #[arg(long, env = "FERRY_TLS_SESSION_REUSE", action = ArgAction::Set, value_name = "BOOL")]
    pub tls_session_reuse: bool,
    /// Connections at once, in total [default: 1000].
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: usize,
    /// Connections at once from one address [default: 50].
    #[arg(long, env = "FERRY_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: usize,
    /// Seconds without a command before a session is closed [default: 300].
    #[arg(long, env = "FERRY_IDLE_TIMEOUT", value_name = "SECS", value_parser = secs)]
    #[serde(deserialize_with = "de::secs")]
    pub idle_timeout: Duration,
    /// Seconds to wait for a data connection [default: 30].
    #[arg(long, env = "FERRY_DATA_TIMEOUT", value_name = "SECS", value_parser = secs)]
    #[serde(deserialize_with = "de::secs")]
    pub data_timeout: Duration,
    /// Seconds without progress before a transfer is aborted [default: 120].
    #[arg(long, env = "FERRY_STALL_TIMEOUT", value_name = "SECS", value_parser = secs)]
    #[serde(deserialize_with = "de::secs")]
    pub stall_timeout: Duration,
    /// Failed logins on one connection before it is closed [default: 3].
    #[arg(long, env = "FERRY_MAX_LOGIN_FAILURES", value_name = "N")]
    pub max_login_failures: u32,
    /// Milliseconds before the reply to a first failed login; doubles each time [default: 1000].
    #[arg(long = "login-failure-delay-ms", env = "FERRY_LOGIN_FAILURE_DELAY_MS", value_name = "MS", value_parser = millis)]
    #[serde(rename = "login_failure_delay_ms", deserialize_with = "de::millis")]
    pub login_failure_delay: Duration,
    /// Failed logins from one address before it is refused for the ban time [default: 20].
    #[arg(long, env = "FERRY_MAX_FAILURES_PER_IP", value_name = "N")]
    pub max_failures_per_ip: u32,
    /// Seconds an address stays refused after too many failed logins [default: 600].
    #[arg(long, env = "FERRY_BAN_TIME", value_name = "SECS", value_parser = secs)]
    #[serde(deserialize_with = "de::secs")]
    pub ban_time: Duration,
    /// Seconds running transfers may go on after SIGINT/SIGTERM [default: 30].
    #[arg(long, env = "FERRY_SHUTDOWN_GRACE", value_name = "SECS", value_parser = secs)]
    #[serde(deserialize_with = "de::secs")]
    pub shutdown_grace: Duration,
    /// fsync each upload before putting it in place.
    #[arg(long, env = "FERRY_FSYNC", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub fsync: bool,
    /// Upload rate of the whole server (all uploads together), e.g. 100MiB/s; none unless
    /// given. Accounts may have their own (`rate_up` in their policy).
    #[arg(long, env = "FERRY_RATE_UP", value_name = "RATE")]
    pub rate_up: Option<Rate>,
    /// Download rate of the whole server, e.g. 100MiB/s; none unless given.
    #[arg(long, env = "FERRY_RATE_DOWN", value_name = "RATE")]
    pub rate_down: Option<Rate>,
    /// Serve files that have other hard links (refused by default: such a link may have
    /// been planted to reach a file outside the home; see SECURITY.md).
    #[arg(long, env = "FERRY_ALLOW_HARD_LINKS", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_hard_links: bool,
    /// Run every disk metadata call (stat, open, rename, ...) on the blocking thread pool,
    /// not only listings and copies: for homes on NFS or FUSE, where one can take
    /// milliseconds.
    #[arg(long, env = "FERRY_DISK_POOL", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub disk_pool: bool,
    /// Where users' files live: on disk in <data-dir>/home/<user> (the default), or
    /// s3://BUCKET/PREFIX for an S3-compatible bucket (homes at PREFIX/home/<user>/).
    #[arg(long, env = "FERRY_STORAGE", value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// The S3 endpoint, e.g. http://127.0.0.1:8333 [default: AWS's for the region].
    #[arg(long, env = "FERRY_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The S3 region [default: us-east-1].
    #[arg(long, env = "FERRY_S3_REGION", value_name = "REGION")]
    pub s3_region: String,
    /// The S3 access key ID: in the settings file only (never a flag), else from
    /// AWS_ACCESS_KEY_ID.
    #[arg(skip)]
    pub s3_access_key_id: Option<String>,
    /// The S3 secret access key: in the settings file only, else from AWS_SECRET_ACCESS_KEY.
    #[arg(skip)]
    pub s3_secret_access_key: Option<Secret>,
    /// Text of the 220 greeting.
    #[arg(long, env = "FERRY_GREETING", value_name = "TEXT")]
    pub greeting: String,
    /// Where the accounts are: a `postgres://` URL (the password, if any, only in the
    /// settings file or FERRY_ACCOUNTS); the users file unless given. Its flag is in
    /// `main.rs`, because every command takes it.
    #[arg(skip)]
    #[serde(deserialize_with = "de::accounts")]
    pub accounts: Option<PgUrl>,
    /// The users file [default: <data-dir>/users.toml].
    #[arg(long, env = "FERRY_USERS_FILE", value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// The audit log [default: <data-dir>/audit.log].
    #[arg(long, env = "FERRY_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Threads that run connections [default: half the cores, rounded up].
    #[arg(long, env = "FERRY_THREADS", value_name = "N")]
    pub threads: usize,
    /// Threads, at a lower priority, where transfers carry on once they have moved 1 MiB
    /// [default: 1].
    #[arg(long, env = "FERRY_BULK_THREADS", value_name = "N")]
    pub bulk_threads: usize,
    /// PROXY protocol headers (from a load balancer) on control and data connections:
    /// off; optional (peers in --proxy-from must send one, others connect directly); or
    /// required (only peers in --proxy-from, each with a header) [default: off].
    #[arg(long, env = "FERRY_PROXY_PROTOCOL", value_name = "MODE")]
    pub proxy_protocol: ProxyMode,
    /// Networks that may send a PROXY header, e.g. 10.0.0.0/8,127.0.0.1 (comma-separated).
    #[arg(
        long,
        env = "FERRY_PROXY_FROM",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub proxy_from: Vec<Cidr>,
    /// Name of this instance in logs, the audit log and metrics [default: the host name].
    #[arg(long, env = "FERRY_INSTANCE", value_name = "NAME")]
    pub instance: String,
    /// Address for /metrics (Prometheus), /health and /ready over HTTP, e.g. 127.0.0.1:9121,
    /// or a bare port for loopback; off unless given.
    #[arg(long, env = "FERRY_METRICS_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    #[serde(deserialize_with = "de::metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "FERRY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Most verbose log level: error, warn, info, debug, trace [default: info].
    #[arg(long, env = "FERRY_LOG_LEVEL", value_name = "LEVEL", value_parser = parse_level)]
    #[serde(deserialize_with = "de::log_level")]
    pub log_level: tracing::Level,
}

impl Default for Settings {
    fn default() -> Self {
        Self::with_data_dir(PathBuf::from(DEFAULT_DATA_DIR))
    }
}

impl Settings {
    /// The defaults of DESIGN.md, with data in `data_dir`.
    #[must_use]
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        Self {
            listen: vec![DEFAULT_LISTEN],
            data_dir,
            passive_ports: None,
            public_address: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            tls_session_reuse: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_login_failures: DEFAULT_MAX_LOGIN_FAILURES,
            login_failure_delay: DEFAULT_LOGIN_FAILURE_DELAY,
            max_failures_per_ip: DEFAULT_MAX_FAILURES_PER_IP,
            ban_time: DEFAULT_BAN_TIME,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            fsync: false,
            rate_up: None,
            rate_down: None,
            allow_hard_links: false,
            disk_pool: false,
            storage: None,
            s3_endpoint: None,
            s3_region: DEFAULT_S3_REGION.into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            greeting: DEFAULT_GREETING.into(),
            accounts: None,
            users_file: None,
            audit_log: None,
            // 0: see `worker_threads`.
            threads: 0,
            bulk_threads: DEFAULT_BULK_THREADS,
            proxy_protocol: ProxyMode::Off,
            proxy_from: Vec::new(),
            instance: host_name(),
            metrics_listen: None,
            log_format: LogFormat::Text,
            log_level: tracing::Level::INFO,
        }
    }

    /// Threads that run connections: [`Settings::threads`], or half the cores rounded up.
    /// The other half is left to the kernel's network stack, the blocking pool (password
    /// checks, listings) and, on small machines, the clients: on 2 cores shared with the
    /// benchmark's clients, one thread did a third more small transfers per second than two
    /// (BENCHMARKS.md).
    #[must_use]
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
            n => n,
        }
    }

    /// The users file.
    #[must_use]
    pub fn users_file(&self) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(USERS_FILE))
    }

    /// The audit log.
    #[must_use]
    pub fn audit_log(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join(AUDIT_LOG))
    }

    /// The bucket to serve, if [`Settings::storage`] names one, with its credentials: those
    /// of the settings file, else `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    ///
    /// # Errors
    /// A bucket without credentials.
    pub fn s3(&self) -> Result<Option<ferry_backends::object::S3Config>, ConfigError> {
        let Some(url) = &self.storage else {
            return Ok(None);
        };
        let from_env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let id = self
            .s3_access_key_id
            .clone()
            .or_else(|| from_env("AWS_ACCESS_KEY_ID"));
        let secret = self
            .s3_secret_access_key
            .as_ref()
            .map(|s| s.0.clone())
            .or_else(|| from_env("AWS_SECRET_ACCESS_KEY"));
        let (Some(access_key_id), Some(secret_access_key)) = (id, secret) else {
            return Err(ConfigError::Invalid {
                keys: "storage",
                reason: "a bucket needs credentials: s3_access_key_id and s3_secret_access_key \
                         in the settings file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            });
        };
        Ok(Some(ferry_backends::object::S3Config {
            bucket: url.bucket.clone(),
            prefix: url.prefix.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id,
            secret_access_key,
        }))
    }

    /// The core's settings for each session.
    #[must_use]
    pub fn core_config(&self) -> CoreConfig {
        CoreConfig {
            // Leaked once per server start: sessions borrow it for their lifetime.
            greeting: Box::leak(self.greeting.clone().into_boxed_str()),
            idle_timeout: self.idle_timeout,
            login_failure_delay: self.login_failure_delay,
            max_login_failures: self.max_login_failures,
            tls: match (self.tls_cert.is_some(), self.require_tls) {
                (false, _) => TlsMode::Off,
                (true, false) => TlsMode::Optional,
                (true, true) => TlsMode::Required,
            },
            // A host name is resolved when the server starts (`Settings::public_ipv4`).
            public_address: match &self.public_address {
                Some(PublicAddress::Ip(ip)) => Some(*ip),
                _ => None,
            },
            ..CoreConfig::default()
        }
    }

    /// The address PASV replies announce, if one is set: the IPv4 address, or the first
    /// IPv4 address the host name resolves to now.
    ///
    /// # Errors
    /// A host name without an IPv4 address.
    pub fn public_ipv4(&self) -> io::Result<Option<Ipv4Addr>> {
        let name = match &self.public_address {
            None => return Ok(None),
            Some(PublicAddress::Ip(ip)) => return Ok(Some(*ip)),
            Some(PublicAddress::Host(name)) => name,
        };
        let found = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
            .map_err(|e| io::Error::new(e.kind(), format!("public address {name}: {e}")))?
            .find_map(|a| match a.ip() {
                IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
                _ => None,
            });
        found.map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("public address {name}: no IPv4 address"),
            )
        })
    }

    /// Checks values that depend on each other, and counts that must not be 0.
    ///
    /// # Errors
    /// The settings, as their flags are named, and what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |keys, reason| Err(ConfigError::Invalid { keys, reason });
        if self.listen.is_empty() {
            return invalid("listen", "at least one address is needed");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("tls-cert and tls-key", "give both or neither");
        }
        if self.require_tls && self.tls_cert.is_none() {
            return invalid("require-tls", "needs --tls-cert and --tls-key");
        }
        for (key, zero) in [
            ("max-connections", self.max_connections == 0),
            ("max-connections-per-ip", self.max_connections_per_ip == 0),
            ("max-login-failures", self.max_login_failures == 0),
        ] {
            if zero {
                return Err(ConfigError::Zero { key });
            }
        }
        if self.greeting.bytes().any(|b| b < 0x20 || b == 0x7f) || self.greeting.is_empty() {
            return invalid("greeting", "must be one line of printable text");
        }
        if self.proxy_protocol != ProxyMode::Off && self.proxy_from.is_empty() {
            return invalid(
                "proxy-protocol",
                "needs --proxy-from, the networks that may send a header",
            );
        }
        if self.instance.is_empty() || !self.instance.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("instance", "must be a word of printable text");
        }
        Ok(())
    }

    /// The defaults with a TOML configuration file applied: its keys are the settings'
    /// fields; those it leaves out keep their defaults.
    ///
    /// # Errors
    /// The file and, for a bad key or value, the key, the value and why.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let path_buf = || path.to_path_buf();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path_buf(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Syntax {
            path: path_buf(),
            source,
        })?;
        Self::from_table(&table).map_err(|(key, reason)| ConfigError::Key {
            path: path_buf(),
            value: table.get(&key).map(ToString::to_string).unwrap_or_default(),
            key,
            reason,
        })
    }

    /// The defaults with a TOML table applied, or the key that was refused and why.
    fn from_table(table: &toml::Table) -> Result<Self, (String, String)> {
        // Deserialized entry by entry, noting the key of each, so that an error can name it
        // (a value's own deserializer knows only the value).
        let current = RefCell::new(String::new());
        let entries = table.clone().into_iter().inspect(|(key, _)| {
            current.replace(key.clone());
        });
        Self::deserialize(MapDeserializer::<_, toml::de::Error>::new(entries))
            .map_err(|e| (current.take(), e.message().to_owned()))
    }

    /// Applies the flags and `FERRY_*` variables that were given, over what is set.
    ///
    /// # Errors
    /// Only if a flag's parsed type is not its field's (a bug).
    pub fn apply_flags(&mut self, flags: &Flags) -> Result<(), ConfigError> {
        Ok(self.update_from_arg_matches(&flags.0)?)
    }
}

/// The flags and `FERRY_*` variables of the [`Settings`], as clap parsed them. Flatten it
/// into a command line (`#[command(flatten)]`) and apply it with [`Settings::apply_flags`].
#[derive(Debug, Clone)]
pub struct Flags(ArgMatches);

impl Flags {
    /// The first flag given on the command line (not through the environment), as the help
    /// shows it (`--listen <ADDR>`).
    #[must_use]
    pub fn first_on_command_line(&self) -> Option<String> {
        let mut cmd = Settings::augment_args_for_update(clap::Command::new("ferry"));
        // Finished as parsing would (an arg shows its value count only then).
        cmd.build();
        cmd.get_arguments()
            .find(|arg| {
                self.0.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
            })
            .map(ToString::to_string)
    }
}

impl FromArgMatches for Flags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(matches.clone()))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        matches.clone_into(&mut self.0);
        Ok(())
    }
}

impl Args for Flags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        // Every flag optional: one not given keeps what the defaults or the file set.
        Settings::augment_args_for_update(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Settings::augment_args_for_update(cmd)
    }
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, or a bare port (on 127.0.0.1).
///
/// # Errors
/// What is wrong with it.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ValueError> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| ValueError::Listen)
}

/// Parses a public address for PASV replies: an IPv4 address or a host name.
///
/// # Errors
/// What is wrong with it.
pub fn parse_public_address(s: &str) -> Result<PublicAddress, ValueError> {
    s.parse()
}

/// The machine's host name, the default [`Settings::instance`] ("ferry" if it has none).
#[must_use]
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        "ferry".to_owned()
    } else {
        name.into_owned()
    }
}

/// Parses a log level name.
///
/// # Errors
/// What is wrong with it.
pub fn parse_level(s: &str) -> Result<tracing::Level, ValueError> {
    s.parse().map_err(|_| ValueError::LogLevel)
}

/// Parses whole seconds.
fn secs(s: &str) -> Result<Duration, ParseIntError> {
    s.parse().map(Duration::from_secs)
}

/// Parses whole milliseconds.
fn millis(s: &str) -> Result<Duration, ParseIntError> {
    s.parse().map(Duration::from_millis)
}

/// Reading values from the TOML file with the same parsers as the flags.
mod de {
    use std::fmt::Display;
    use std::net::SocketAddr;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer};

    /// A string, parsed by `parse`.
    pub(super) fn with<'de, D, T, E>(d: D, parse: fn(&str) -> Result<T, E>) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        E: Display,
    {
        parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    /// Whole seconds, as the flags take them.
    pub(super) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    /// Whole milliseconds.
    pub(super) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// A list of listen addresses; an error names the bad one.
    pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|a| super::parse_listen(a).map_err(|e| D::Error::custom(format!("{a:?}: {e}"))))
            .collect()
    }

    /// The accounts database.
    pub(super) fn accounts<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<super::PgUrl>, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Some).map_err(D::Error::custom)
    }

    /// The metrics address.
    pub(super) fn metrics_listen<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        with(d, super::parse_listen).map(Some)
    }

    /// A log level.
    pub(super) fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<tracing::Level, D::Error> {
        with(d, super::parse_level)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!("50000-50100".parse::<PortRange>().unwrap().len(), 101);
        for (bad, why) in [
            ("3000-2000", "greater"),
            ("1-2000", "1024"),
            ("x-2", "not a port"),
            ("2000", "A-B"),
            ("0-0", "port 0"),
        ] {
            let e = bad.parse::<PortRange>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    /// A file in a folder of its own, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("ferry-config-test-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("ferry.toml");
            std::fs::write(&f, text).unwrap();
            Self(f)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    /// The error for a file of `text`.
    fn file_error(text: &str) -> String {
        let f = TempFile::new("error", text);
        Settings::from_file(&f.0).unwrap_err().to_string()
    }

    #[test]
    fn file_values_are_checked_with_their_key() {
        let e = file_error("passive_ports = \"3000-2000\"\n");
        assert!(
            e.contains("passive_ports") && e.contains("3000-2000") && e.contains("greater"),
            "{e}"
        );
        let e = file_error("max_conections = 5\n");
        assert!(e.contains("max_conections"), "{e}");
        let e = file_error("idle_timeout = \"soon\"\n");
        assert!(e.contains("idle_timeout"), "{e}");
        let f = TempFile::new(
            "good",
            "data_dir = \"/srv/ftp\"\nlisten = [\"0.0.0.0:21\", \"2121\"]\nidle_timeout = 60\n",
        );
        let s = Settings::from_file(&f.0).unwrap();
        assert_eq!(s.users_file(), PathBuf::from("/srv/ftp/users.toml"));
        assert_eq!(
            s.listen,
            [
                parse_listen("0.0.0.0:21").unwrap(),
                parse_listen("127.0.0.1:2121").unwrap()
            ]
        );
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
    }

    #[test]
    fn file_errors_say_file_key_value_and_reason() {
        let f = TempFile::new("exact", "");
        let path = f.0.display();
        let cases = [
            (
                "passive_ports = \"3000-2000\"",
                format!(
                    "config file {path}: passive_ports = \"3000-2000\": the first port must not be greater than the last"
                ),
            ),
            (
                "public_address = \"::1\"",
                format!(
                    "config file {path}: public_address = \"::1\": PASV replies carry IPv4 only (IPv6 clients use EPSV)"
                ),
            ),
            (
                "listen = [\"0.0.0.0:21\", \"nowhere\"]",
                format!(
                    "config file {path}: listen = [\"0.0.0.0:21\", \"nowhere\"]: \"nowhere\": expected IP:PORT, e.g. 127.0.0.1:2121 or [::1]:2121"
                ),
            ),
            (
                "log_format = \"xml\"",
                format!("config file {path}: log_format = \"xml\": expected \"text\" or \"json\""),
            ),
            (
                "log_level = \"loud\"",
                format!(
                    "config file {path}: log_level = \"loud\": expected error, warn, info, debug or trace"
                ),
            ),
            (
                "login_failure_delay_ms = -1",
                format!(
                    "config file {path}: login_failure_delay_ms = -1: invalid value: integer `-1`, expected u64"
                ),
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&f.0, text).unwrap();
            let e = Settings::from_file(&f.0).unwrap_err();
            assert!(matches!(e, ConfigError::Key { .. }), "{text}: {e:?}");
            assert_eq!(e.to_string(), expected);
        }
        std::fs::write(&f.0, "max_conections = 5").unwrap();
        let e = Settings::from_file(&f.0).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "config file {path}: max_conections = 5: unknown field `max_conections`, expected one of"
            )) && e.contains("`login_failure_delay_ms`"),
            "{e}"
        );
        std::fs::write(&f.0, "listen = [").unwrap();
        let e = Settings::from_file(&f.0).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        let missing = Path::new("/nonexistent/ferry.toml");
        let e = Settings::from_file(missing).unwrap_err();
        assert!(
            matches!(e, ConfigError::Read { .. })
                && e.to_string()
                    .starts_with("config file /nonexistent/ferry.toml: "),
            "{e}"
        );
    }

    #[test]
    fn validation() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.require_tls = true;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("require-tls")
        );
        s.tls_cert = Some("c".into());
        assert!(s.validate().unwrap_err().to_string().contains("tls-key"));
        assert!(parse_public_address("::1").is_err());
        assert!(parse_public_address("0.0.0.0").is_err());
        let s = Settings {
            max_connections_per_ip: 0,
            ..Settings::default()
        };
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "max-connections-per-ip = 0: must be at least 1"
        );
    }

    /// A command line of the settings alone.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        flags: Flags,
    }

    /// `base` with these flags applied.
    fn with_flags(mut base: Settings, args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from([&"ferry"].into_iter().chain(args)).unwrap();
        base.apply_flags(&cli.flags).unwrap();
        base
    }

    #[test]
    fn flags_win_over_the_file_and_leave_the_rest() {
        let f = TempFile::new(
            "merge",
            "max_connections = 7\nidle_timeout = 60\nrequire_tls = true\ntls_session_reuse = false\nfsync = true\n",
        );
        let file = Settings::from_file(&f.0).unwrap();
        // No flags: the file's values and, where it is silent, the defaults.
        let s = with_flags(file.clone(), &[]);
        assert_eq!(s.max_connections, 7);
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert!(s.require_tls && s.fsync && !s.tls_session_reuse);
        assert_eq!(s.max_connections_per_ip, DEFAULT_MAX_CONNECTIONS_PER_IP);
        assert_eq!(s.listen, [DEFAULT_LISTEN]);
        // Flags replace what they name, and only that.
        let s = with_flags(
            file,
            &[
                "--max-connections",
                "9",
                "--fsync",
                "false",
                "--require-tls",
                "--listen",
                "2122,[::1]:2123",
                "--login-failure-delay-ms",
                "250",
            ],
        );
        assert_eq!(s.max_connections, 9);
        assert!(!s.fsync && s.require_tls);
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert_eq!(
            s.listen,
            [
                parse_listen("127.0.0.1:2122").unwrap(),
                parse_listen("[::1]:2123").unwrap()
            ]
        );
        assert_eq!(s.login_failure_delay, Duration::from_millis(250));
    }

    /// Marks the child process of [`environment_is_between_the_file_and_the_flags`]; its
    /// value is the configuration file.
    const ENV_CHILD: &str = "FERRY_TEST_ENVIRONMENT_CHILD";

    /// The environment belongs to the process, and setting it is `unsafe` while other tests
    /// run, so this test runs itself again in a child process with the variables set.
    #[test]
    fn environment_is_between_the_file_and_the_flags() {
        if let Some(file) = std::env::var_os(ENV_CHILD) {
            let file = Settings::from_file(Path::new(&file)).unwrap();
            let s = with_flags(file, &["--ban-time", "33"]);
            assert_eq!(s.stall_timeout, Duration::from_secs(10), "the file's");
            assert_eq!(
                s.shutdown_grace,
                Duration::from_secs(22),
                "the environment's"
            );
            assert_eq!(s.ban_time, Duration::from_secs(33), "the flag's");
            assert_eq!(s.data_timeout, Duration::from_secs(23), "the environment's");
            assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS, "the default");
            return;
        }
        let f = TempFile::new(
            "env",
            "stall_timeout = 10\nban_time = 11\nshutdown_grace = 12\n",
        );
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::environment_is_between_the_file_and_the_flags",
            ])
            .env(ENV_CHILD, &f.0)
            .env("FERRY_SHUTDOWN_GRACE", "22")
            .env("FERRY_BAN_TIME", "22")
            .env("FERRY_DATA_TIMEOUT", "23")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn help_defaults_are_the_real_ones() {
        let cmd = Cli::command();
        let defaults = format!("{:?}", Settings::default());
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let Some((_, rest)) = help.split_once("[default: ") else {
                continue;
            };
            let value = rest.split_once(']').map_or(rest, |(v, _)| v);
            // Prose ("any free port", "<data-dir>/users.toml") is not a value to check.
            if value.contains([' ', '<']) {
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap());
            let s = with_flags(Settings::default(), &[&flag, value]);
            assert_eq!(format!("{s:?}"), defaults, "{flag}'s help says {value}");
            checked += 1;
        }
        assert!(checked >= 14, "only {checked} defaults in the help");
    }

    #[test]
    fn core_defaults_are_the_cores() {
        let core = Settings::default().core_config();
        assert_eq!(core, CoreConfig::default());
    }
}
