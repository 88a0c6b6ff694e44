//! Server settings: defaults, then a TOML file (`--config`), then `FERRY_*` environment
//! variables and flags (the CLI in `main.rs` reads both through clap).
//!
//! Every value is checked when the server starts; a bad one is refused with the key, the
//! value and the reason.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ferry_core::{Config as CoreConfig, TlsMode};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected \"text\" or \"json\"".into()),
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

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or("expected A-B, e.g. 50000-50100")?;
        let start: u16 = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not a port number"))?;
        let end: u16 = b
            .trim()
            .parse()
            .map_err(|_| format!("{b:?} is not a port number"))?;
        if start == 0 {
            return Err("port 0 cannot be part of a range".into());
        }
        if start > end {
            return Err("the first port must not be greater than the last".into());
        }
        if start < 1024 {
            return Err("passive ports must be 1024 or above".into());
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Everything the server needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Folder for accounts, homes and the audit log.
    pub data_dir: PathBuf,
    /// The users file, if not `<data_dir>/users.toml`.
    pub users_file: Option<PathBuf>,
    /// The audit log, if not `<data_dir>/audit.log`.
    pub audit_log: Option<PathBuf>,
    /// Ports for passive data connections (any free port when unset).
    pub passive_ports: Option<PortRange>,
    /// Address announced in PASV replies (behind NAT).
    pub public_address: Option<Ipv4Addr>,
    /// PEM certificate chain for FTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for FTPS.
    pub tls_key: Option<PathBuf>,
    /// Refuse login and transfers without TLS.
    pub require_tls: bool,
    /// Data connections must resume the control connection's TLS session.
    pub tls_session_reuse: bool,
    /// Connections at once, in total.
    pub max_connections: usize,
    /// Connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// A session with no command for this long is closed (421).
    pub idle_timeout: Duration,
    /// How long to wait for a data connection to be made (425 after).
    pub data_timeout: Duration,
    /// A transfer with no progress for this long is aborted (426).
    pub stall_timeout: Duration,
    /// Failed logins on one connection before it is closed.
    pub max_login_failures: u32,
    /// Delay before the reply to the first failed login; doubles with each.
    pub login_failure_delay: Duration,
    /// Failed logins from one address, across connections, after which its new connections
    /// are refused for [`Settings::ban_time`].
    pub max_failures_per_ip: u32,
    /// How long an address stays refused after too many failed logins.
    pub ban_time: Duration,
    /// On SIGINT/SIGTERM, how long running transfers may go on.
    pub shutdown_grace: Duration,
    /// fsync uploads before putting them in place.
    pub fsync: bool,
    /// 220 greeting text.
    pub greeting: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Most verbose log level shown: error, warn, info, debug, trace.
    pub log_level: tracing::Level,
    /// Threads that run connections (0: half the cores, rounded up).
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self::with_data_dir(PathBuf::from("ftp_server_files"))
    }
}

impl Settings {
    /// The defaults of DESIGN.md, with data in `data_dir`.
    #[must_use]
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            users_file: None,
            audit_log: None,
            data_dir,
            passive_ports: None,
            public_address: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            tls_session_reuse: true,
            max_connections: 1000,
            max_connections_per_ip: 50,
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            max_login_failures: 3,
            login_failure_delay: Duration::from_secs(1),
            max_failures_per_ip: 20,
            ban_time: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            fsync: false,
            greeting: "Ferry FTP server ready.".into(),
            log_format: LogFormat::Text,
            log_level: tracing::Level::INFO,
            threads: 0,
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
            .unwrap_or_else(|| self.data_dir.join("users.toml"))
    }

    /// The audit log.
    #[must_use]
    pub fn audit_log(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
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
            public_address: self.public_address,
            ..CoreConfig::default()
        }
    }

    /// Checks values that depend on each other.
    ///
    /// # Errors
    /// A message naming the settings and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("listen: at least one address is needed".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls-cert and tls-key: give both or neither".into());
        }
        if self.require_tls && self.tls_cert.is_none() {
            return Err("require-tls: needs --tls-cert and --tls-key".into());
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err("max-connections and max-connections-per-ip must be at least 1".into());
        }
        if self.max_login_failures == 0 {
            return Err("max-login-failures must be at least 1".into());
        }
        if self.greeting.bytes().any(|b| b < 0x20 || b == 0x7f) || self.greeting.is_empty() {
            return Err("greeting: must be one line of printable text".into());
        }
        Ok(())
    }

    /// Applies a TOML configuration file.
    ///
    /// # Errors
    /// A message naming the file and, for a bad key or value, the key, the value and why.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        let file: FileSettings =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        file.apply(self)
            .map_err(|e| format!("config file {}: {e}", path.display()))
    }
}

/// The configuration file's schema: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    users_file: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    passive_ports: Option<String>,
    public_address: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    require_tls: Option<bool>,
    tls_session_reuse: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    idle_timeout: Option<u64>,
    data_timeout: Option<u64>,
    stall_timeout: Option<u64>,
    max_login_failures: Option<u32>,
    login_failure_delay_ms: Option<u64>,
    max_failures_per_ip: Option<u32>,
    ban_time: Option<u64>,
    shutdown_grace: Option<u64>,
    fsync: Option<bool>,
    greeting: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    threads: Option<usize>,
}

/// Parses `value` for `key`, or says which key, which value and why not.
pub(crate) fn parse_value<T: FromStr>(key: &str, value: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    value.parse().map_err(|e| format!("{key} = {value:?}: {e}"))
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, or a bare port (on 127.0.0.1).
///
/// # Errors
/// What is wrong with it.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:2121 or [::1]:2121".to_string())
}

/// Parses a public IPv4 address for PASV replies.
///
/// # Errors
/// What is wrong with it.
pub fn parse_public_address(s: &str) -> Result<Ipv4Addr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if !v4.is_unspecified() => Ok(v4),
        Ok(IpAddr::V4(_)) => Err("0.0.0.0 is not an address clients can reach".into()),
        Ok(IpAddr::V6(_)) => Err("PASV replies carry IPv4 only (IPv6 clients use EPSV)".into()),
        Err(_) => Err("expected an IPv4 address".into()),
    }
}

/// Parses a log level name.
///
/// # Errors
/// What is wrong with it.
pub fn parse_level(s: &str) -> Result<tracing::Level, String> {
    s.parse()
        .map_err(|_| "expected error, warn, info, debug or trace".to_string())
}

impl FileSettings {
    fn apply(self, s: &mut Settings) -> Result<(), String> {
        if let Some(dir) = self.data_dir {
            s.data_dir = dir;
        }
        if let Some(v) = self.listen {
            s.listen = v
                .iter()
                .map(|a| parse_listen(a).map_err(|e| format!("listen = {a:?}: {e}")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.users_file {
            s.users_file = Some(v);
        }
        if let Some(v) = self.audit_log {
            s.audit_log = Some(v);
        }
        if let Some(v) = self.passive_ports {
            s.passive_ports = Some(parse_value("passive_ports", &v)?);
        }
        if let Some(v) = self.public_address {
            s.public_address =
                Some(parse_public_address(&v).map_err(|e| format!("public_address = {v:?}: {e}"))?);
        }
        if let Some(v) = self.tls_cert {
            s.tls_cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            s.tls_key = Some(v);
        }
        let secs = Duration::from_secs;
        macro_rules! set {
            ($($field:ident => $target:ident $(via $f:expr)?),* $(,)?) => {$(
                if let Some(v) = self.$field {
                    s.$target = set!(@conv v $(, $f)?);
                }
            )*};
            (@conv $v:ident) => { $v };
            (@conv $v:ident, $f:expr) => { $f($v) };
        }
        set! {
            require_tls => require_tls,
            tls_session_reuse => tls_session_reuse,
            max_connections => max_connections,
            max_connections_per_ip => max_connections_per_ip,
            idle_timeout => idle_timeout via secs,
            data_timeout => data_timeout via secs,
            stall_timeout => stall_timeout via secs,
            max_login_failures => max_login_failures,
            login_failure_delay_ms => login_failure_delay via Duration::from_millis,
            max_failures_per_ip => max_failures_per_ip,
            ban_time => ban_time via secs,
            shutdown_grace => shutdown_grace via secs,
            fsync => fsync,
            greeting => greeting,
            threads => threads,
        }
        if let Some(v) = self.log_format {
            s.log_format = parse_value("log_format", &v)?;
        }
        if let Some(v) = self.log_level {
            s.log_level = parse_level(&v).map_err(|e| format!("log_level = {v:?}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            let e = bad.parse::<PortRange>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn file_values_are_checked_with_their_key() {
        let dir = std::env::temp_dir().join(format!("ferry-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ferry.toml");
        std::fs::write(&f, "passive_ports = \"3000-2000\"\n").unwrap();
        let e = Settings::default().apply_file(&f).unwrap_err();
        assert!(
            e.contains("passive_ports") && e.contains("3000-2000") && e.contains("greater"),
            "{e}"
        );
        std::fs::write(&f, "max_conections = 5\n").unwrap();
        let e = Settings::default().apply_file(&f).unwrap_err();
        assert!(e.contains("max_conections"), "{e}");
        std::fs::write(&f, "idle_timeout = \"soon\"\n").unwrap();
        let e = Settings::default().apply_file(&f).unwrap_err();
        assert!(e.contains("idle_timeout"), "{e}");
        std::fs::write(
            &f,
            "data_dir = \"/srv/ftp\"\nlisten = [\"0.0.0.0:21\", \"2121\"]\nidle_timeout = 60\n",
        )
        .unwrap();
        let mut s = Settings::default();
        s.apply_file(&f).unwrap();
        assert_eq!(s.users_file(), PathBuf::from("/srv/ftp/users.toml"));
        assert_eq!(
            s.listen,
            [
                parse_listen("0.0.0.0:21").unwrap(),
                parse_listen("127.0.0.1:2121").unwrap()
            ]
        );
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.require_tls = true;
        assert!(s.validate().unwrap_err().contains("require-tls"));
        s.tls_cert = Some("c".into());
        assert!(s.validate().unwrap_err().contains("tls-key"));
        assert!(parse_public_address("::1").is_err());
        assert!(parse_public_address("0.0.0.0").is_err());
    }
}
