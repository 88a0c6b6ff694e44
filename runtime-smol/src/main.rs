//! The `ferry` binary: `ferry serve` (the default), `ferry user ...`, `ferry cert ...`.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferry_backends::accounts::{Accounts, random_password};
use ferry_backends::audit::AuditLog;
use ferry_backends::disk::DiskStorage;
use ferry_smol::config::{self, LogFormat, PortRange, Settings};
use ferry_smol::tls::{self, Tls};
use ferry_smol::users::DiskUsers;
use ferry_smol::{Server, logging};
use smol::stream::StreamExt as _;

/// Ferry, an FTP server that gives each user a folder of their own.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command, `ferry` serves (the options of `ferry serve`).
    #[command(flatten)]
    serve: ServeArgs,
}

/// Options every command accepts, before or after it.
#[derive(Debug, Args)]
struct Global {
    /// Folder of accounts (users.toml), homes (home/<user>) and the audit log (audit.log).
    #[arg(long, global = true, env = "FERRY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file of settings (the keys are the long options with `_` for `-`).
    #[arg(long, global = true, env = "FERRY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server (what `ferry` does with no command).
    Serve(Box<ServeArgs>),
    /// Manages accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Makes certificates for FTPS.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Creates an account and its home folder.
    Add {
        /// Account name: letters, digits, `.`, `_`, `-`; at most 32.
        name: String,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// The account may download and list, but not change anything.
        #[arg(long)]
        read_only: bool,
    },
    /// Changes an account's password.
    Passwd {
        /// Account name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Removes an account.
    Remove {
        /// Account name.
        name: String,
        /// Delete its home folder and everything in it too.
        #[arg(long)]
        delete_home: bool,
    },
    /// Lists the accounts.
    List,
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Writes a self-signed certificate (cert.pem) and key (key.pem) for trying FTPS.
    SelfSigned {
        /// Folder to write them to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Host names and addresses the certificate names.
        #[arg(long = "name", value_name = "HOST", default_values = ["localhost", "127.0.0.1", "::1"])]
        names: Vec<String>,
    },
}

/// Options of `ferry serve`. Each can also come from a `FERRY_*` variable or the config file.
#[derive(Debug, Args, Default)]
struct ServeArgs {
    /// Address to listen on (repeat, or comma-separate, for several) [default: 127.0.0.1:2121].
    #[arg(long, env = "FERRY_LISTEN", value_name = "ADDR", value_delimiter = ',', value_parser = config::parse_listen)]
    listen: Vec<SocketAddr>,
    /// Ports for passive data connections, e.g. 50000-50100 [default: any free port].
    #[arg(long, env = "FERRY_PASSIVE_PORTS", value_name = "A-B")]
    passive_ports: Option<PortRange>,
    /// IPv4 address to announce in PASV replies (behind NAT).
    #[arg(long, env = "FERRY_PUBLIC_ADDRESS", value_name = "IP", value_parser = config::parse_public_address)]
    public_address: Option<std::net::Ipv4Addr>,
    /// PEM certificate chain: turns on explicit FTPS (AUTH TLS).
    #[arg(long, env = "FERRY_TLS_CERT", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, RSA or EC) of the certificate.
    #[arg(long, env = "FERRY_TLS_KEY", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Refuse login and transfers without TLS.
    #[arg(long, env = "FERRY_REQUIRE_TLS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    require_tls: Option<bool>,
    /// Data connections must resume the control connection's TLS session [default: true].
    #[arg(long, env = "FERRY_TLS_SESSION_REUSE", value_name = "BOOL")]
    tls_session_reuse: Option<bool>,
    /// Connections at once, in total [default: 1000].
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Connections at once from one address [default: 50].
    #[arg(long, env = "FERRY_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Seconds without a command before a session is closed [default: 300].
    #[arg(long, env = "FERRY_IDLE_TIMEOUT", value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds to wait for a data connection [default: 30].
    #[arg(long, env = "FERRY_DATA_TIMEOUT", value_name = "SECS")]
    data_timeout: Option<u64>,
    /// Seconds without progress before a transfer is aborted [default: 120].
    #[arg(long, env = "FERRY_STALL_TIMEOUT", value_name = "SECS")]
    stall_timeout: Option<u64>,
    /// Failed logins on one connection before it is closed [default: 3].
    #[arg(long, env = "FERRY_MAX_LOGIN_FAILURES", value_name = "N")]
    max_login_failures: Option<u32>,
    /// Milliseconds before the reply to a first failed login; doubles each time [default: 1000].
    #[arg(long, env = "FERRY_LOGIN_FAILURE_DELAY_MS", value_name = "MS")]
    login_failure_delay_ms: Option<u64>,
    /// Failed logins from one address before it is refused for the ban time [default: 20].
    #[arg(long, env = "FERRY_MAX_FAILURES_PER_IP", value_name = "N")]
    max_failures_per_ip: Option<u32>,
    /// Seconds an address stays refused after too many failed logins [default: 600].
    #[arg(long, env = "FERRY_BAN_TIME", value_name = "SECS")]
    ban_time: Option<u64>,
    /// Seconds running transfers may go on after SIGINT/SIGTERM [default: 30].
    #[arg(long, env = "FERRY_SHUTDOWN_GRACE", value_name = "SECS")]
    shutdown_grace: Option<u64>,
    /// fsync each upload before putting it in place.
    #[arg(long, env = "FERRY_FSYNC", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    fsync: Option<bool>,
    /// Text of the 220 greeting.
    #[arg(long, env = "FERRY_GREETING", value_name = "TEXT")]
    greeting: Option<String>,
    /// The users file [default: <data-dir>/users.toml].
    #[arg(long, env = "FERRY_USERS_FILE", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// The audit log [default: <data-dir>/audit.log].
    #[arg(long, env = "FERRY_AUDIT_LOG", value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Threads that run connections [default: half the cores, rounded up].
    #[arg(long, env = "FERRY_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "FERRY_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Most verbose log level: error, warn, info, debug, trace [default: info].
    #[arg(long, env = "FERRY_LOG_LEVEL", value_name = "LEVEL", value_parser = config::parse_level)]
    log_level: Option<tracing::Level>,
}

impl ServeArgs {
    fn apply(self, s: &mut Settings) {
        if !self.listen.is_empty() {
            s.listen = self.listen;
        }
        let secs = Duration::from_secs;
        macro_rules! set {
            ($($field:ident $(=> $f:expr)?),* $(,)?) => {$(
                if let Some(v) = self.$field {
                    s.$field = set!(@conv v $(, $f)?);
                }
            )*};
            (@conv $v:ident) => { $v };
            (@conv $v:ident, $f:expr) => { $f($v) };
        }
        set! {
            passive_ports => Some, public_address => Some, tls_cert => Some, tls_key => Some,
            require_tls, tls_session_reuse, max_connections, max_connections_per_ip,
            idle_timeout => secs, data_timeout => secs, stall_timeout => secs,
            max_login_failures, max_failures_per_ip, ban_time => secs, shutdown_grace => secs,
            fsync, greeting, users_file => Some, audit_log => Some, log_format, log_level, threads,
        }
        if let Some(ms) = self.login_failure_delay_ms {
            s.login_failure_delay = Duration::from_millis(ms);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Settings from the defaults, the config file and the global options.
fn base_settings(global: &Global) -> Result<Settings, String> {
    let mut s = Settings::default();
    if let Some(file) = &global.config {
        s.apply_file(file)?;
    }
    if let Some(dir) = &global.data_dir {
        s.data_dir.clone_from(dir);
    }
    Ok(s)
}

fn run(cli: Cli) -> Result<(), String> {
    let mut settings = base_settings(&cli.global)?;
    match cli.command {
        None => {
            cli.serve.apply(&mut settings);
            serve(settings)
        }
        Some(Command::Serve(args)) => {
            args.apply(&mut settings);
            serve(settings)
        }
        Some(Command::User(cmd)) => user(&settings, cmd),
        Some(Command::Cert(CertCommand::SelfSigned { out, names })) => self_signed(&out, &names),
    }
}

fn open_accounts(s: &Settings) -> Result<Accounts, String> {
    std::fs::create_dir_all(&s.data_dir).map_err(|e| format!("{}: {e}", s.data_dir.display()))?;
    Accounts::load_or_empty(s.users_file(), &s.data_dir).map_err(|e| e.to_string())
}

fn serve(settings: Settings) -> Result<(), String> {
    settings.validate()?;
    logging::init(settings.log_format, settings.log_level);
    let mut accounts = open_accounts(&settings)?;
    if accounts.is_empty() {
        let password = random_password().map_err(|e| e.to_string())?;
        accounts
            .add("user", &password, false)
            .map_err(|e| e.to_string())?;
        println!("Created the account \"user\" with the password: {password}");
        println!(
            "(shown only now; change it with: ferry user passwd user --data-dir {})",
            settings.data_dir.display()
        );
    }
    // Leftovers of uploads cut off by a crash: remove them in the background.
    let homes: Vec<PathBuf> = accounts.list().into_iter().map(|a| a.home).collect();
    std::thread::spawn(move || {
        for home in homes {
            if let Ok(storage) = DiskStorage::new(&home) {
                match storage.remove_stale_temporaries() {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(home = %home.display(), removed = n, "removed temporary files of interrupted uploads")
                    }
                    Err(e) => {
                        tracing::warn!(home = %home.display(), error = %e, "cannot clean temporary files")
                    }
                }
            }
        }
    });
    let audit_path = settings.audit_log();
    let audit = AuditLog::open(&audit_path)
        .map_err(|e| format!("audit log {}: {e}", audit_path.display()))?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::new(
            tls::load(cert, key).map_err(|e| e.to_string())?,
            settings.tls_session_reuse,
        ))),
        _ => None,
    };
    let users = DiskUsers::new(accounts, settings.fsync);
    let data_dir = settings.data_dir.clone();
    let settings_threads = settings.worker_threads();
    let reload = settings.tls_cert.clone().zip(settings.tls_key.clone());
    let mut server = Server::new(settings, users, audit);
    if let Some(tls) = &tls {
        server = server.with_tls(tls.clone());
    }
    let threads = settings_threads;
    let bound = smol::block_on(server.bind()).map_err(|e| e.to_string())?;
    for addr in bound.local_addrs() {
        tracing::info!(%addr, data_dir = %data_dir.display(), threads, "listening");
        println!(
            "Ferry listening on ftp://{addr} (data in {})",
            data_dir.display()
        );
    }
    let _ = io::stdout().flush();
    let stop = bound.shutdown_handle();
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Int,
        async_signal::Signal::Term,
        async_signal::Signal::Hup,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let handle_signals = async move {
        while let Some(Ok(signal)) = signals.next().await {
            if signal == async_signal::Signal::Hup {
                match (&tls, &reload) {
                    (Some(tls), Some((cert, key))) => match tls::load(cert, key) {
                        Ok(config) => {
                            tls.replace(config);
                            tracing::info!("reloaded the TLS certificate and key");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot reload the TLS certificate; keeping the old one")
                        }
                    },
                    _ => tracing::info!("SIGHUP: nothing to reload"),
                }
            } else {
                tracing::info!(
                    ?signal,
                    "stopping: no new connections; running transfers may finish"
                );
                stop.trigger();
            }
        }
    };
    bound.run_threads(threads, handle_signals);
    Ok(())
}

/// Reads a new password: from standard input's first line, or twice at a hidden prompt.
fn read_password(name: &str, from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !io::stdin().is_terminal() {
            return Err("no terminal to ask for a password: pass --password-stdin".into());
        }
        let first = prompt_hidden(&format!("Password for {name}: "))?;
        let second = prompt_hidden("Again: ")?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    };
    if password.is_empty() {
        return Err("the password must not be empty".into());
    }
    Ok(password)
}

/// Asks on the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    let saved = tcgetattr(&stdin).map_err(|e| format!("terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(|e| format!("terminal: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(|e| format!("reading the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn user(settings: &Settings, cmd: UserCommand) -> Result<(), String> {
    let mut accounts = open_accounts(settings)?;
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            read_only,
        } => {
            if accounts.get(&name).is_some() {
                return Err(format!("the account {name:?} exists already"));
            }
            let password = read_password(&name, password_stdin)?;
            let account = accounts
                .add(&name, &password, read_only)
                .map_err(|e| e.to_string())?;
            println!("Created {name} with home {}", account.home.display());
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            if accounts.get(&name).is_none() {
                return Err(format!("no account {name:?}"));
            }
            let password = read_password(&name, password_stdin)?;
            accounts
                .set_password(&name, &password)
                .map_err(|e| e.to_string())?;
            println!("Changed the password of {name}");
        }
        UserCommand::Remove { name, delete_home } => {
            let account = accounts
                .remove(&name, delete_home)
                .map_err(|e| e.to_string())?;
            if delete_home {
                println!("Removed {name} and its home {}", account.home.display());
            } else {
                println!(
                    "Removed {name} (its home {} is kept)",
                    account.home.display()
                );
            }
        }
        UserCommand::List => {
            for a in accounts.list() {
                let ro = if a.read_only { "  (read-only)" } else { "" };
                println!("{}\t{}{ro}", a.name, a.home.display());
            }
        }
    }
    Ok(())
}

fn self_signed(out: &Path, names: &[String]) -> Result<(), String> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("making the certificate: {e}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    println!(
        "Wrote {} and {} for {}.",
        cert_path.display(),
        key_path.display(),
        names.join(", ")
    );
    println!(
        "Start with: ferry --tls-cert {} --tls-key {}",
        cert_path.display(),
        key_path.display()
    );
    eprintln!(
        "warning: this certificate is self-signed; clients will not trust it unless told to (for trying FTPS only)"
    );
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}
