//! The `ferry` binary: `ferry serve` (the default), `ferry user ...`, `ferry cert ...`.

use std::future::Future;
use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod account_cli;

use async_signal::{Signal, Signals};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use ferry_backends::accounts::{AccountsError, random_password};
use ferry_backends::audit::AuditLog;
use ferry_backends::disk::DiskStorage;
use ferry_backends::object::{ObjectStorage, S3Config, SmolHttp};
use ferry_backends::pg::PgUrl;
use ferry_smol::config::{ConfigError, Flags, Settings};
use ferry_smol::tls::{self, Tls, TlsError};
use ferry_smol::users::{
    AccountStore, DiskUsers, ObjectUsers, Users, UsersError, open_object_home,
};
use ferry_smol::{Server, Shutdown, logging};
use smol::stream::StreamExt as _;

// The options of `ferry serve` may come before no command ([`Cli::parse_checked`] refuses
// them), the global options anywhere: clap's `args_conflicts_with_subcommands` would refuse
// global options before a command too.
/// Ferry, an FTP server that gives each user a folder of their own.
#[derive(Debug, Parser)]
#[command(name = "ferry", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command, `ferry` serves (the options of `ferry serve`).
    #[command(flatten)]
    serve: Flags,
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
    /// Accounts in PostgreSQL: postgres://USER@HOST:PORT/DB (a password goes in the settings
    /// file or FERRY_ACCOUNTS, not here); the users file unless given.
    #[arg(long, global = true, env = "FERRY_ACCOUNTS", value_name = "URL")]
    accounts: Option<PgUrl>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server (what `ferry` does with no command).
    Serve(Flags),
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
    /// Changes an account's policy: quota, rates, sessions, addresses, hidden names,
    /// permissions per folder (README: "Per-user settings").
    Set {
        /// Account name.
        name: String,
        #[command(flatten)]
        options: Box<account_cli::SetOptions>,
    },
    /// Shows an account: its home, what it uses, and its policy.
    Show {
        /// Account name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Writes a self-signed certificate (cert.pem) and key (key.pem) for trying FTPS.
    SelfSigned {
        /// Folder to write them to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Host names and addresses the certificate names.
        #[arg(long = "name", value_name = "HOST", default_values = SELF_SIGNED_NAMES)]
        names: Vec<String>,
    },
}

/// The account a first start creates (DESIGN.md): a name that needs no explaining.
const FIRST_USER: &str = "user";

/// The names a self-signed certificate holds unless told: those a client on this machine
/// connects with.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The files `ferry cert self-signed` writes; the help of `cert self-signed` names them too.
const SELF_SIGNED_CERT: &str = "cert.pem";
/// See [`SELF_SIGNED_CERT`].
const SELF_SIGNED_KEY: &str = "key.pem";

/// Permissions of a private key file: read and write for its owner, nothing for others.
const OWNER_ONLY: u32 = 0o600;

/// Why a command failed; `main` prints it after `ferry: `.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A policy change that is not valid.
    #[error("the policy of {name}: {message}")]
    Policy {
        /// The account.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The accounts.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A new password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The audit log cannot be opened.
    #[error("audit log {}: {source}", .path.display())]
    AuditLog {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A listener cannot be bound (the error names its address).
    #[error("{0}")]
    Bind(#[source] io::Error),
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// `ferry cert self-signed` cannot make a certificate.
    #[error("making the certificate: {0}")]
    Certificate(#[source] rcgen::Error),
    /// The bucket of `--storage` cannot be used (unreachable, missing, wrong credentials).
    #[error("storage {url}: {source}")]
    Bucket {
        /// The bucket, as `--storage` names it.
        url: String,
        /// What the store answered.
        source: ferry_backends::Error,
    },
    /// A file or folder cannot be written.
    #[error("{}: {source}", .path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<AccountsError> for Error {
    fn from(e: AccountsError) -> Self {
        Self::Users(e.into())
    }
}

/// Why no new password was read.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    /// Standard input cannot be read.
    #[error("reading the password: {0}")]
    Read(#[source] io::Error),
    /// Standard input is not a terminal to prompt on.
    #[error("no terminal to ask for a password: pass --password-stdin")]
    NoTerminal,
    /// The terminal's echo cannot be turned off.
    #[error("terminal: {0}")]
    Terminal(#[source] rustix::io::Errno),
    /// The two entries differ.
    #[error("the passwords differ")]
    Differ,
    /// An empty password.
    #[error("the password must not be empty")]
    Empty,
}

impl Cli {
    /// Parses the command line, or exits with clap's message.
    fn parse_checked() -> Self {
        let cli = Self::parse();
        if let Some(e) = cli.misplaced_flag() {
            e.exit();
        }
        cli
    }

    /// A serve option given before a command (`ferry --listen X user list`).
    fn misplaced_flag(&self) -> Option<clap::Error> {
        let command = match self.command.as_ref()? {
            Command::Serve(_) => "serve",
            Command::User(_) => "user",
            Command::Cert(_) => "cert",
        };
        let flag = self.serve.first_on_command_line()?;
        Some(Self::command().error(
            ErrorKind::ArgumentConflict,
            format!("the subcommand '{command}' cannot be used with '{flag}'"),
        ))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Settings from the defaults, the config file and the global options.
fn base_settings(global: &Global) -> Result<Settings, ConfigError> {
    let mut s = match &global.config {
        Some(file) => Settings::from_file(file)?,
        None => Settings::default(),
    };
    if let Some(dir) = &global.data_dir {
        s.data_dir.clone_from(dir);
    }
    if let Some(url) = &global.accounts {
        s.accounts = Some(url.clone());
    }
    Ok(s)
}

fn run(cli: Cli) -> Result<(), Error> {
    let mut settings = base_settings(&cli.global)?;
    let flags = match cli.command {
        None => cli.serve,
        Some(Command::Serve(flags)) => flags,
        Some(Command::User(cmd)) => return user(&settings, cmd),
        Some(Command::Cert(CertCommand::SelfSigned { out, names })) => {
            return self_signed(&out, &names);
        }
    };
    settings.apply_flags(&flags)?;
    serve(settings)
}

fn serve(settings: Settings) -> Result<(), Error> {
    settings.validate()?;
    logging::init(settings.log_format, settings.log_level, &settings.instance);
    let accounts = AccountStore::open(
        &settings.data_dir,
        &settings.users_file(),
        settings.accounts.as_ref(),
    )?;
    match &accounts {
        AccountStore::File(_) if accounts.list()?.is_empty() => {
            create_first_account(&accounts, &settings.data_dir)?;
        }
        AccountStore::Postgres(_) => {
            // Several instances share the database: none makes a first account itself.
            if accounts.list()?.is_empty() {
                tracing::warn!(accounts = %accounts.describe(), "no accounts in the database yet: add one with ferry user add");
            }
            tracing::info!(accounts = %accounts.describe(), "accounts in PostgreSQL");
        }
        AccountStore::File(_) => {}
    }
    let audit_path = settings.audit_log();
    let audit = AuditLog::open(&audit_path)
        .map_err(|source| Error::AuditLog {
            path: audit_path,
            source,
        })?
        .with_instance(&settings.instance);
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::new(
            tls::load(cert, key)?,
            settings.tls_session_reuse,
        ))),
        _ => None,
    };
    let reload = settings.tls_cert.clone().zip(settings.tls_key.clone());
    let run = Run { tls, reload };
    match settings.s3()? {
        Some(bucket) => {
            check_bucket(&bucket, &settings)?;
            run.serve(settings, ObjectUsers::new(accounts, bucket), audit)
        }
        None => {
            remove_interrupted_uploads(&accounts);
            let users = DiskUsers::new(accounts)
                .with_fsync(settings.fsync)
                .with_hard_links(settings.allow_hard_links)
                .with_blocking_pool(settings.disk_pool);
            run.serve(settings, users, audit)
        }
    }
}

/// What serving needs besides the settings and the accounts.
struct Run {
    tls: Option<Arc<Tls>>,
    /// The certificate and key files, read again on SIGHUP.
    reload: Option<(PathBuf, PathBuf)>,
}

impl Run {
    fn serve<U: Users>(self, settings: Settings, users: U, audit: AuditLog) -> Result<(), Error> {
        let data_dir = settings.data_dir.clone();
        let threads = settings.worker_threads();
        let mut server = Server::new(settings, users, audit);
        if let Some(tls) = &self.tls {
            server = server.with_tls(tls.clone());
        }
        let bound = smol::block_on(server.bind()).map_err(Error::Bind)?;
        announce(
            &bound.local_addrs(),
            bound.metrics_addr(),
            &data_dir,
            threads,
        );
        let signals = handle_signals(self.tls, self.reload, bound.shutdown_handle())?;
        bound.run_threads(threads, signals);
        Ok(())
    }
}

/// Checks at start that the bucket of `--storage` answers to these credentials, so that a
/// wrong key or a missing bucket is one clear error, not a failure at every login.
fn check_bucket(bucket: &S3Config, settings: &Settings) -> Result<(), Error> {
    let url = settings
        .storage
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let fail = |source| Error::Bucket {
        url: url.clone(),
        source,
    };
    let tree = ObjectStorage::s3(bucket, &SmolHttp::new()).map_err(fail)?;
    smol::block_on(tree.check()).map_err(fail)?;
    tracing::info!(storage = %url, endpoint = ?bucket.endpoint, "serving users' files from the bucket");
    Ok(())
}

/// On a first start: the account `user` with a random password, shown once.
fn create_first_account(accounts: &AccountStore, data_dir: &Path) -> Result<(), Error> {
    let password = random_password()?;
    accounts.add(FIRST_USER, &password, false)?;
    println!("Created the account \"{FIRST_USER}\" with the password: {password}");
    println!(
        "(shown only now; change it with: ferry user passwd {FIRST_USER} --data-dir {})",
        data_dir.display()
    );
    Ok(())
}

/// Removes, in the background, the leftovers of uploads cut off by a crash.
fn remove_interrupted_uploads(accounts: &AccountStore) {
    let homes: Vec<PathBuf> = match accounts.list() {
        Ok(list) => list.into_iter().map(|a| a.home).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the accounts to clean their homes");
            Vec::new()
        }
    };
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
}

/// Says where the server listens, in the log and on standard output (scripts and tests wait
/// for the `Ferry listening` lines, which come last).
fn announce(addrs: &[SocketAddr], metrics: Option<SocketAddr>, data_dir: &Path, threads: usize) {
    if let Some(addr) = metrics {
        tracing::info!(%addr, "metrics, health and readiness over HTTP");
        println!("Ferry metrics on http://{addr}/metrics (and /health, /ready)");
    }
    for addr in addrs {
        tracing::info!(%addr, data_dir = %data_dir.display(), threads, "listening");
        println!(
            "Ferry listening on ftp://{addr} (data in {})",
            data_dir.display()
        );
    }
    let _ = io::stdout().flush();
}

/// Handles signals while the server runs: SIGHUP reloads the certificate and key, SIGINT
/// and SIGTERM stop the server.
fn handle_signals(
    tls: Option<Arc<Tls>>,
    reload: Option<(PathBuf, PathBuf)>,
    stop: Shutdown,
) -> Result<impl Future<Output = ()>, Error> {
    let mut signals =
        Signals::new([Signal::Int, Signal::Term, Signal::Hup]).map_err(Error::Signals)?;
    Ok(async move {
        while let Some(Ok(signal)) = signals.next().await {
            if signal == Signal::Hup {
                reload_tls(tls.as_deref(), reload.as_ref());
            } else {
                tracing::info!(
                    ?signal,
                    "stopping: no new connections; running transfers may finish"
                );
                stop.trigger();
            }
        }
    })
}

/// Loads the certificate and key again for new sessions, or keeps the old ones.
fn reload_tls(tls: Option<&Tls>, files: Option<&(PathBuf, PathBuf)>) {
    match (tls, files) {
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
}

/// Reads a new password: from standard input's first line, or twice at a hidden prompt.
fn read_password(name: &str, from_stdin: bool) -> Result<String, PasswordError> {
    let password = if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(PasswordError::Read)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !io::stdin().is_terminal() {
            return Err(PasswordError::NoTerminal);
        }
        let first = prompt_hidden(&format!("Password for {name}: "))?;
        let second = prompt_hidden("Again: ")?;
        if first != second {
            return Err(PasswordError::Differ);
        }
        first
    };
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Ok(password)
}

/// Asks on the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<String, PasswordError> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    let saved = tcgetattr(&stdin).map_err(PasswordError::Terminal)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(PasswordError::Terminal)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(PasswordError::Read)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a new password for `name`, once the account is known to exist (`exists`) or not to,
/// as the command needs.
fn new_password(
    accounts: &AccountStore,
    name: &str,
    exists: bool,
    from_stdin: bool,
) -> Result<String, Error> {
    match (accounts.get(name)?.is_some(), exists) {
        (true, false) => Err(UsersError::Exists(name.to_owned()).into()),
        (false, true) => Err(UsersError::Unknown(name.to_owned()).into()),
        _ => Ok(read_password(name, from_stdin)?),
    }
}

fn user(settings: &Settings, cmd: UserCommand) -> Result<(), Error> {
    let accounts = AccountStore::open(
        &settings.data_dir,
        &settings.users_file(),
        settings.accounts.as_ref(),
    )?;
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            read_only,
        } => {
            let password = new_password(&accounts, &name, false, password_stdin)?;
            let account = accounts.add(&name, &password, read_only)?;
            match settings.s3()? {
                // The home in the bucket; the server also makes it at the first login.
                Some(bucket) => {
                    open_object_home(&bucket, &SmolHttp::new(), &name)?;
                    let url = settings.storage.as_ref().map(ToString::to_string);
                    println!(
                        "Created {name} with home {}/home/{name}/",
                        url.unwrap_or_default().trim_end_matches('/')
                    );
                }
                None => println!("Created {name} with home {}", account.home.display()),
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = new_password(&accounts, &name, true, password_stdin)?;
            accounts.set_password(&name, &password)?;
            println!("Changed the password of {name}");
        }
        UserCommand::Remove { name, delete_home } => {
            let account = accounts.remove(&name, delete_home)?;
            if delete_home {
                println!("Removed {name} and its home {}", account.home.display());
            } else {
                println!(
                    "Removed {name} (its home {} is kept)",
                    account.home.display()
                );
            }
        }
        UserCommand::Set { name, options } => {
            let account = accounts
                .get(&name)?
                .ok_or_else(|| UsersError::Unknown(name.clone()))?;
            let policy = options
                .apply((*account.policy).clone())
                .map_err(|message| Error::Policy {
                    name: name.clone(),
                    message,
                })?;
            accounts.set_policy(&name, policy)?;
            if let Some(ro) = options.read_only {
                accounts.set_read_only(&name, ro)?;
            }
            let account = accounts
                .get(&name)?
                .ok_or_else(|| UsersError::Unknown(name.clone()))?;
            println!("{}", account_cli::show(settings, &account));
        }
        UserCommand::Show { name } => {
            let account = accounts
                .get(&name)?
                .ok_or_else(|| UsersError::Unknown(name.clone()))?;
            println!("{}", account_cli::show(settings, &account));
        }
        UserCommand::List => {
            for a in accounts.list()? {
                let ro = if a.read_only { "  (read-only)" } else { "" };
                println!("{}\t{}{ro}", a.name, a.home.display());
            }
        }
    }
    Ok(())
}

fn self_signed(out: &Path, names: &[String]) -> Result<(), Error> {
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(Error::Certificate)?;
    std::fs::create_dir_all(out).map_err(|source| written(out, source))?;
    let cert_path = out.join(SELF_SIGNED_CERT);
    let key_path = out.join(SELF_SIGNED_KEY);
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem())
        .map_err(|source| written(&cert_path, source))?;
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
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OWNER_ONLY)
        .open(path)
        .map_err(|source| written(path, source))?;
    f.write_all(bytes).map_err(|source| written(path, source))
}

/// [`Error::Write`] for `path`.
fn written(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}
