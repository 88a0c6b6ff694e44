//! Accounts in PostgreSQL (`--accounts postgres://...`): the same accounts as the users file
//! (a name, an argon2id PHC string, a home, a read-only flag), in a table that several
//! instances share, so that an account added, changed or removed through one is seen by
//! every other at its next login (each login asks the database; nothing is cached but the
//! verified-login digests of [`crate::accounts`], which a new password no longer matches).
//!
//! # The database
//!
//! Ferry creates and migrates its schema itself, in one transaction under an advisory lock
//! (two instances starting at once migrate once): the table `ferry_schema` holds the
//! version, `ferry_accounts` the accounts. An account with `disabled = true` is refused at
//! login like a wrong password (`UPDATE ferry_accounts SET disabled = true WHERE name = ...`).
//! Every query is a fixed, parameterised statement in this file; no SQL text comes from
//! settings, names or passwords (ProFTPD's `mod_sql` took operators' SQL, and had
//! injections).
//!
//! # How it runs
//!
//! `tokio-postgres` without its runtime feature, over an `async-io` socket (TCP, or the
//! Unix socket of a `host=/dir` URL) through a small adapter to tokio's I/O traits: no tokio
//! reactor or executor. The calls are blocking (the runtime makes them on its blocking
//! pool, as it does the argon2 checks they come with): each call drives the connection's
//! future together with its query under `async_io::block_on`, so there is no background
//! task and no second runtime. One connection serves the calls one at a time (a query
//! takes a fraction of a millisecond on a local network, the argon2 check after it tens of
//! milliseconds). A broken connection is dropped and made again at the next call, which is
//! tried once more on a fresh connection if the old one failed: the first login after the
//! database came back works. Connecting and each query are bounded by [`CALL_TIMEOUT`].
//!
//! TLS to the database is not built in: `sslmode=require` (or `verify-*`) is refused at
//! start with a clear error rather than connecting in clear text; keep the database on a
//! private network or reach it through a local socket. The password of the URL never
//! appears in `Debug`, `Display` or errors.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use crate::accounts::{
    Account, AccountsError, Verified, delete_home_folder, hash_password, valid_name,
};
use crate::policy::Policy;

/// How long connecting, or one query, may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this Ferry writes and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// An arbitrary constant: the advisory lock under which the schema is migrated.
const MIGRATION_LOCK: i64 = 0x4665_7272_7953_514c;

/// Each migration, from the version before it to its index + 1.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE ferry_accounts (
        name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 32),
        password text NOT NULL,
        home text NOT NULL,
        read_only boolean NOT NULL DEFAULT false,
        disabled boolean NOT NULL DEFAULT false,
        created timestamptz NOT NULL DEFAULT now(),
        updated timestamptz NOT NULL DEFAULT now()
    )",
    // 2: the account's policy (crate::policy) as TOML text; empty for none.
    "ALTER TABLE ferry_accounts ADD COLUMN policy text NOT NULL DEFAULT ''",
];

const GET: &str =
    "SELECT password, home, read_only, disabled, policy FROM ferry_accounts WHERE name = $1";
const LIST: &str = "SELECT name, home, read_only, policy FROM ferry_accounts ORDER BY name";
const SET_POLICY: &str = "UPDATE ferry_accounts SET policy = $2, updated = now() WHERE name = $1";
const ADD: &str = "INSERT INTO ferry_accounts (name, password, home, read_only) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";
const SET_PASSWORD: &str =
    "UPDATE ferry_accounts SET password = $2, updated = now() WHERE name = $1";
const SET_READ_ONLY: &str =
    "UPDATE ferry_accounts SET read_only = $2, updated = now() WHERE name = $1";
const REMOVE: &str = "DELETE FROM ferry_accounts WHERE name = $1 RETURNING home, read_only";

/// A `postgres://` URL (or a `key=value` connection string), checked, with its password
/// kept out of sight.
#[derive(Clone)]
pub struct PgUrl {
    config: Config,
    /// The URL with the password replaced, for messages.
    shown: String,
}

impl PgUrl {
    /// The URL as messages show it (no password).
    #[must_use]
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for PgUrl {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.config.get_password() == other.config.get_password()
    }
}

/// `url` with the password of `user:password@` replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A key=value string: hide the value of password=.
        return url
            .split(' ')
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let shown_authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{hosts}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|kv| {
                    if kv.starts_with("password=") {
                        "password=***"
                    } else {
                        kv
                    }
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{shown_authority}{tail}")
}

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let shown = redact(s);
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(format!(
                "{shown}: not a postgres:// URL (the users file is the default; omit the setting for it)"
            ));
        }
        let config: Config = s.parse().map_err(|e| format!("{shown}: {e}"))?;
        match config.get_ssl_mode() {
            SslMode::Disable | SslMode::Prefer => {}
            _ => {
                return Err(format!(
                    "{shown}: sslmode asks for TLS, which Ferry does not speak to PostgreSQL; \
                     use a private network or a local socket with sslmode=disable"
                ));
            }
        }
        if config.get_user().is_none() {
            return Err(format!("{shown}: no user name (postgres://USER@HOST/DB)"));
        }
        Ok(Self { config, shown })
    }
}

/// What went wrong with the database.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgError {
    /// It cannot be reached, or refused the connection.
    Connect {
        /// The URL, without password.
        url: String,
        /// Why.
        message: String,
    },
    /// A query failed, or the connection broke during it.
    Query {
        /// What was being done.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// Connecting or a query took longer than [`CALL_TIMEOUT`].
    Timeout {
        /// What was being done.
        what: &'static str,
    },
    /// The database holds a schema newer than this Ferry knows.
    NewerSchema {
        /// Its version.
        found: i32,
    },
    /// An account could not be added, found, hashed or given a home.
    Accounts(AccountsError),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { url, message } => {
                write!(
                    f,
                    "cannot connect to the accounts database {url}: {message}"
                )
            }
            Self::Query { what, message } => {
                write!(f, "the accounts database failed to {what}: {message}")
            }
            Self::Timeout { what } => write!(
                f,
                "the accounts database did not {what} within {} s",
                CALL_TIMEOUT.as_secs()
            ),
            Self::NewerSchema { found } => write!(
                f,
                "the accounts database has schema version {found}; this Ferry knows up to {SCHEMA_VERSION}: upgrade Ferry"
            ),
            Self::Accounts(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PgError {}

impl From<AccountsError> for PgError {
    fn from(e: AccountsError) -> Self {
        Self::Accounts(e)
    }
}

/// A socket that speaks tokio's I/O traits over `async-io`.
struct Io(Pin<Box<dyn Duplex>>);

trait Duplex: futures_io::AsyncRead + futures_io::AsyncWrite + Send {}
impl<T: futures_io::AsyncRead + futures_io::AsyncWrite + Send> Duplex for T {}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match self.0.as_mut().poll_read(cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_close(cx)
    }
}

/// The future that does a connection's I/O.
type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// An open connection.
struct Conn {
    client: Client,
    driver: Driver,
}

/// Runs `call` while driving the connection, within [`CALL_TIMEOUT`].
fn drive<T>(
    driver: &mut Driver,
    what: &'static str,
    call: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    let query = async {
        call.await.map_err(|e| PgError::Query {
            what,
            message: e.to_string(),
        })
    };
    let connection = async {
        let message = match driver.as_mut().await {
            Ok(()) => "the server closed the connection".to_owned(),
            Err(e) => e.to_string(),
        };
        Err(PgError::Query { what, message })
    };
    let expired = async {
        Timer::after(CALL_TIMEOUT).await;
        Err(PgError::Timeout { what })
    };
    async_io::block_on(future::or(query, future::or(connection, expired)))
}

/// Connects as `url` says.
fn open(url: &PgUrl) -> Result<Conn, PgError> {
    let fail = |message: String| PgError::Connect {
        url: url.shown.clone(),
        message,
    };
    let port = url.config.get_ports().first().copied().unwrap_or(5432);
    let host = url
        .config
        .get_hosts()
        .first()
        .cloned()
        .unwrap_or_else(|| Host::Tcp("localhost".into()));
    let io = match host {
        Host::Tcp(name) => {
            let addrs: Vec<_> = (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| fail(format!("{name}: {e}")))?
                .collect();
            let connect = async {
                let mut last = io::Error::other("no address");
                for a in addrs {
                    match Async::<TcpStream>::connect(a).await {
                        Ok(s) => {
                            let _ = s.get_ref().set_nodelay(true);
                            return Ok(Io(Box::pin(s)));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            };
            let expired = async {
                Timer::after(CALL_TIMEOUT).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
            };
            async_io::block_on(future::or(connect, expired)).map_err(|e| fail(e.to_string()))?
        }
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let s = async_io::block_on(Async::<UnixStream>::connect(&path))
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Io(Box::pin(s))
        }
    };
    let handshake = async {
        url.config
            .connect_raw(io, NoTls)
            .await
            .map_err(|e| fail(e.to_string()))
    };
    let expired = async {
        Timer::after(CALL_TIMEOUT).await;
        Err(fail("timed out".into()))
    };
    let (client, connection) = async_io::block_on(future::or(handshake, expired))?;
    Ok(Conn {
        client,
        driver: Box::pin(connection),
    })
}

/// The accounts of a PostgreSQL database, with homes in `data_dir` for relative paths.
pub struct PgAccounts {
    url: PgUrl,
    data_dir: PathBuf,
    conn: Mutex<Option<Conn>>,
    verified: Verified,
}

impl fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAccounts")
            .field("url", &self.url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl PgAccounts {
    /// Connects to the database of `url` and creates or migrates the schema. Blocks.
    ///
    /// # Errors
    /// The database cannot be reached, or its schema is newer than this Ferry's.
    pub fn connect(url: &PgUrl, data_dir: impl AsRef<Path>) -> Result<Self, PgError> {
        let accounts = Self {
            url: url.clone(),
            data_dir: crate::accounts::absolute(data_dir.as_ref()),
            conn: Mutex::new(None),
            verified: Verified::default(),
        };
        accounts.migrate()?;
        Ok(accounts)
    }

    /// The data folder that relative homes are taken from.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database's URL, without its password.
    #[must_use]
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `call` on the connection (made if there is none). If a connection made earlier
    /// fails, the call is tried once more on a new one; a connection that failed is
    /// dropped.
    fn with<T>(
        &self,
        what: &'static str,
        call: impl Fn(
            &Client,
        )
            -> Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + '_>>,
    ) -> Result<T, PgError> {
        let mut guard = self.lock();
        let reused = guard.is_some();
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(open(&self.url)?);
            }
            let Some(conn) = guard.as_mut() else {
                continue;
            };
            let Conn { client, driver } = conn;
            match drive(driver, what, call(client)) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // A database error (a constraint, say) leaves the connection usable.
                    if client.is_closed() || matches!(e, PgError::Timeout { .. }) {
                        *guard = None;
                    }
                    // A connection made before may have died meanwhile (the database
                    // restarted): one more try on a new one.
                    if attempt == 0 && reused && guard.is_none() {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(PgError::Timeout { what })
    }

    /// Creates the schema, or brings it to [`SCHEMA_VERSION`], once even if several
    /// instances start at once.
    fn migrate(&self) -> Result<(), PgError> {
        self.with("create its schema", |c| {
            Box::pin(async move {
                c.batch_execute("BEGIN").await?;
                let done = async {
                    c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                        .await?;
                    c.batch_execute(
                        "CREATE TABLE IF NOT EXISTS ferry_schema (version integer NOT NULL)",
                    )
                    .await?;
                    let version: i32 = c
                        .query_opt("SELECT version FROM ferry_schema", &[])
                        .await?
                        .map_or(0, |r| r.get(0));
                    if version > SCHEMA_VERSION {
                        return Ok(Some(version));
                    }
                    for sql in MIGRATIONS
                        .iter()
                        .skip(usize::try_from(version).unwrap_or(0))
                    {
                        c.batch_execute(sql).await?;
                    }
                    if version == 0 {
                        c.execute(
                            "INSERT INTO ferry_schema (version) VALUES ($1)",
                            &[&SCHEMA_VERSION],
                        )
                        .await?;
                    } else if version < SCHEMA_VERSION {
                        c.execute("UPDATE ferry_schema SET version = $1", &[&SCHEMA_VERSION])
                            .await?;
                    }
                    Ok(None)
                }
                .await;
                let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
                c.batch_execute(end).await?;
                done
            })
        })?
        .map_or(Ok(()), |found| Err(PgError::NewerSchema { found }))
    }

    fn account(
        &self,
        name: String,
        home: &str,
        read_only: bool,
        policy: &str,
    ) -> Result<Account, PgError> {
        let home = Path::new(home);
        let policy = Policy::from_toml(policy).map_err(|message| PgError::Query {
            what: "read an account's policy",
            message: format!("account {name}: {message}"),
        })?;
        Ok(Account {
            name,
            home: if home.is_absolute() {
                home.to_path_buf()
            } else {
                self.data_dir.join(home)
            },
            read_only,
            policy: Arc::new(policy),
        })
    }

    /// Replaces the policy of `name`.
    ///
    /// # Errors
    /// No such account, or the database failing.
    pub fn set_policy(&self, name: &str, policy: &Policy) -> Result<(), PgError> {
        let text = policy.to_toml();
        let changed = self.with("change an account", |c| {
            let (name, text) = (name.to_owned(), text.clone());
            Box::pin(async move { c.execute(SET_POLICY, &[&name, &text]).await })
        })?;
        self.changed(name, changed)
    }

    /// The account `name` if `password` is its password and it is not disabled. Takes as
    /// long for an unknown name as for a wrong password. Blocks; CPU-heavy (argon2).
    ///
    /// # Errors
    /// The database cannot be asked.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<Account>, PgError> {
        let row = if valid_name(name) {
            self.with("look up an account", |c| {
                let name = name.to_owned();
                Box::pin(async move { c.query_opt(GET, &[&name]).await })
            })?
        } else {
            None
        };
        let found = row.map(|r| {
            let (hash, home, read_only, disabled, policy): (String, String, bool, bool, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            (hash, home, read_only, disabled, policy)
        });
        let stored = found
            .as_ref()
            .filter(|f| !f.3)
            .map(|(hash, ..)| hash.as_str());
        let ok = self.verified.check(name, stored, password);
        found
            .filter(|_| ok)
            .map(|(_, home, read_only, _, policy)| {
                self.account(name.to_owned(), &home, read_only, &policy)
            })
            .transpose()
    }

    /// Every account, by name.
    ///
    /// # Errors
    /// The database cannot be asked.
    pub fn list(&self) -> Result<Vec<Account>, PgError> {
        let rows = self.with("list the accounts", |c| {
            Box::pin(async move { c.query(LIST, &[]).await })
        })?;
        rows.iter()
            .map(|r| self.account(r.get(0), r.get::<_, &str>(1), r.get(2), r.get::<_, &str>(3)))
            .collect()
    }

    /// The account `name`, if there is one.
    ///
    /// # Errors
    /// The database cannot be asked.
    pub fn get(&self, name: &str) -> Result<Option<Account>, PgError> {
        if !valid_name(name) {
            return Ok(None);
        }
        let row = self.with("look up an account", |c| {
            let name = name.to_owned();
            Box::pin(async move { c.query_opt(GET, &[&name]).await })
        })?;
        row.map(|r| {
            self.account(
                name.to_owned(),
                r.get::<_, &str>(1),
                r.get(2),
                r.get::<_, &str>(4),
            )
        })
        .transpose()
    }

    /// Creates the account `name` with its home `home/<name>` in the data folder (made
    /// here, kept if it exists).
    ///
    /// # Errors
    /// A bad name, an account of that name, or the database or the home folder failing.
    pub fn add(&self, name: &str, password: &str, read_only: bool) -> Result<Account, PgError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName {
                name: name.to_owned(),
            }
            .into());
        }
        let hash = hash_password(password)?;
        let home = format!("home/{name}");
        let account = self.account(name.to_owned(), &home, read_only, "")?;
        std::fs::create_dir_all(&account.home).map_err(|source| AccountsError::Home {
            path: account.home.clone(),
            source,
        })?;
        let added = self.with("add an account", |c| {
            let (name, hash, home) = (name.to_owned(), hash.clone(), home.clone());
            Box::pin(async move { c.execute(ADD, &[&name, &hash, &home, &read_only]).await })
        })?;
        if added == 0 {
            return Err(AccountsError::Exists {
                name: name.to_owned(),
            }
            .into());
        }
        Ok(account)
    }

    /// Changes the password of `name`.
    ///
    /// # Errors
    /// No such account, or the database failing.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), PgError> {
        let hash = hash_password(password)?;
        let changed = self.with("change a password", |c| {
            let (name, hash) = (name.to_owned(), hash.clone());
            Box::pin(async move { c.execute(SET_PASSWORD, &[&name, &hash]).await })
        })?;
        self.changed(name, changed)
    }

    /// Makes `name` read-only or not.
    ///
    /// # Errors
    /// No such account, or the database failing.
    pub fn set_read_only(&self, name: &str, read_only: bool) -> Result<(), PgError> {
        let changed = self.with("change an account", |c| {
            let name = name.to_owned();
            Box::pin(async move { c.execute(SET_READ_ONLY, &[&name, &read_only]).await })
        })?;
        self.changed(name, changed)
    }

    fn changed(&self, name: &str, rows: u64) -> Result<(), PgError> {
        if rows == 0 {
            return Err(AccountsError::Unknown {
                name: name.to_owned(),
            }
            .into());
        }
        Ok(())
    }

    /// Removes the account `name`, then, if `delete_home`, its home folder with everything
    /// in it (never one that is or holds the data folder).
    ///
    /// # Errors
    /// No such account, the database failing, or the home folder (the account is gone by
    /// then).
    pub fn remove(&self, name: &str, delete_home: bool) -> Result<Account, PgError> {
        let row = self.with("remove an account", |c| {
            let name = name.to_owned();
            Box::pin(async move { c.query_opt(REMOVE, &[&name]).await })
        })?;
        let Some(row) = row else {
            return Err(AccountsError::Unknown {
                name: name.to_owned(),
            }
            .into());
        };
        let account = self.account(name.to_owned(), row.get::<_, &str>(0), row.get(1), "")?;
        if delete_home {
            delete_home_folder(&account.home, &self.data_dir)?;
        }
        Ok(account)
    }

    /// Whether the database answers now.
    ///
    /// # Errors
    /// Why not.
    pub fn ping(&self) -> Result<(), PgError> {
        self.with("answer", |c| {
            Box::pin(async move { c.batch_execute("SELECT 1").await })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_their_passwords() {
        let u: PgUrl = "postgres://ferry:s3cret@db.example:5433/ferry?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(
            u.to_string(),
            "postgres://ferry:***@db.example:5433/ferry?sslmode=disable"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(
            redact("postgres://a@h/db?password=x&sslmode=disable"),
            "postgres://a@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=h password=x user=a"),
            "host=h password=*** user=a"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!("mysql://a@h/db".parse::<PgUrl>().is_err());
        let e = "postgres://a:pw@h/db?sslmode=require"
            .parse::<PgUrl>()
            .unwrap_err();
        assert!(e.contains("sslmode") && !e.contains("pw@"), "{e}");
        assert!("postgres://h/db".parse::<PgUrl>().is_err(), "no user");
        assert!(
            "postgresql://a@%2Ftmp/db".parse::<PgUrl>().is_ok(),
            "a socket folder"
        );
    }

    #[test]
    fn queries_are_fixed_and_parameterised() {
        for q in [GET, LIST, ADD, SET_PASSWORD, SET_READ_ONLY, REMOVE] {
            assert!(!q.contains('\''), "no literal in {q}");
        }
        assert_eq!(MIGRATIONS.len(), usize::try_from(SCHEMA_VERSION).unwrap());
    }
}
