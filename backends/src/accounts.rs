//! Accounts: who may log in, with which password, to which home folder.
//!
//! Owns the users file (TOML) and password checks; never sees the FTP session that asks.
//! The file is a list of `[[users]]` tables:
//!
//! ```toml
//! [[users]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$...$..."   # argon2id PHC string
//! home = "home/alice"    # relative to the data folder, or absolute; default home/<name>
//! read_only = false      # default false
//!
//! [users.policy]         # optional: quotas, rates, permissions, addresses (crate::policy)
//! quota_size = "10 GiB"
//! ```
//!
//! - Names are 1 to 32 of `A-Z a-z 0-9 . _ -`, and not `.` or `..` ([`valid_name`]), so a
//!   name is always a safe folder name.
//! - New hashes are argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's recommendation);
//!   verification uses whatever parameters the PHC string carries, so older hashes keep
//!   working.
//! - [`Accounts::verify`] takes as long for an unknown user as for a wrong password: it
//!   checks against a fixed dummy hash with the default parameters. It costs tens of
//!   milliseconds of CPU: the runtime calls it on a blocking thread.
//! - Every change is written to a temporary file (mode `0600`) in the same folder and
//!   renamed over the users file, so a reader never sees half a file. If the file changed
//!   on disk since it was read (another `ferry user` command), a change reloads it first.
//! - A missing, unreadable or malformed file gives an [`AccountsError`] that names the
//!   file, the line and column, and what is wrong. Unknown keys are errors too, so that a
//!   typo such as `readonly = true` cannot silently leave an account writable.
//! - Passwords never appear in `Debug` output or errors; hashes are not shown either.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::policy::Policy;

/// Memory cost of new hashes in KiB (OWASP: argon2id, 19 MiB, 2 iterations, 1 lane).
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// A hash of a password nobody knows, with the default parameters: what an unknown user's
/// password is checked against, so that the answer takes as long as for a known user.
const DUMMY_HASH: &str = concat!(
    "$argon2id$v=19$m=19456,t=2,p=1$lgTssrIZ146v1jEUaJ7W6g$",
    "uGKKhsOSJG8idsigDGdbV5Hj9B/x8TvtAkvvvPB+9ZY",
);

/// The first lines of a users file that Ferry writes.
const HEADER: &str = concat!(
    "# Ferry accounts. Manage with `ferry user add|passwd|set|show|remove|list`.\n",
    "# password: argon2id PHC string; home: relative to the data folder or absolute.\n\n",
);

/// What a valid name looks like, for messages.
const NAME_RULE: &str = "use 1 to 32 of A-Z a-z 0-9 . _ - (not . or ..)";

/// Whether `name` may be an account name: 1 to 32 of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != ".."
}

/// An account as the runtime needs it after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The home folder (absolute): the root of the user's tree.
    pub home: PathBuf,
    /// Whether the user may only read.
    pub read_only: bool,
    /// Quotas, rates, permissions and address lists ([`crate::policy`]); the default
    /// limits nothing.
    pub policy: Arc<Policy>,
}

/// What went wrong with the users file or an account.
#[derive(Debug)]
#[non_exhaustive]
pub enum AccountsError {
    /// The users file does not exist (the runtime then creates a first account).
    Missing {
        /// The users file.
        file: PathBuf,
    },
    /// The users file exists but cannot be read.
    Unreadable {
        /// The users file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The users file is not valid.
    Malformed {
        /// The users file.
        file: PathBuf,
        /// Line of the problem, from 1.
        line: usize,
        /// Column (in characters) of the problem, from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The name is not allowed (see [`valid_name`]).
    BadName {
        /// The name.
        name: String,
    },
    /// An account of that name exists already.
    Exists {
        /// The name.
        name: String,
    },
    /// There is no account of that name.
    Unknown {
        /// The name.
        name: String,
    },
    /// The users file cannot be written.
    Write {
        /// The users file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A home folder cannot be created or removed.
    Home {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The password could not be hashed (no randomness for the salt).
    Hash {
        /// Why.
        message: String,
    },
}

impl AccountsError {
    /// Whether this is [`AccountsError::Missing`].
    #[must_use]
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }
}

impl fmt::Display for AccountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { file } => write!(f, "users file {} does not exist", file.display()),
            Self::Unreadable { file, source } => {
                write!(f, "cannot read users file {}: {source}", file.display())
            }
            Self::Malformed {
                file,
                line,
                column,
                message,
            } => write!(
                f,
                "users file {}, line {line}, column {column}: {message}",
                file.display()
            ),
            Self::BadName { name } => write!(f, "user name {name:?} is not allowed: {NAME_RULE}"),
            Self::Exists { name } => write!(f, "user {name} exists already"),
            Self::Unknown { name } => write!(f, "no user {name:?}"),
            Self::Write { file, source } => {
                write!(f, "cannot write users file {}: {source}", file.display())
            }
            Self::Home { path, source } => write!(f, "home folder {}: {source}", path.display()),
            Self::Hash { message } => write!(f, "cannot hash the password: {message}"),
        }
    }
}

impl std::error::Error for AccountsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreadable { source, .. }
            | Self::Write { source, .. }
            | Self::Home { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(default)]
    users: Vec<UserIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserIn {
    name: Spanned<String>,
    password: Spanned<String>,
    home: Option<Spanned<String>>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    policy: Option<Spanned<Policy>>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    users: Vec<UserOut<'a>>,
}

#[derive(Serialize)]
struct UserOut<'a> {
    name: &'a str,
    password: &'a str,
    home: &'a str,
    read_only: bool,
    #[serde(skip_serializing_if = "Policy::is_default")]
    policy: &'a Policy,
}

/// One account as stored.
#[derive(Clone)]
struct User {
    name: String,
    /// The PHC string.
    hash: String,
    /// As written in the file.
    home: String,
    read_only: bool,
    policy: Arc<Policy>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .field("home", &self.home)
            .field("read_only", &self.read_only)
            .field("policy", &self.policy)
            .finish()
    }
}

/// What identifies a version of the users file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp_of(file: &Path) -> Option<Stamp> {
    let m = fs::metadata(file).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// Line and column (from 1; the column in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's limits.
    let params = Params::new(M_COST, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a new random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, AccountsError> {
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| AccountsError::Hash {
        message: e.to_string(),
    })?;
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash {
            message: e.to_string(),
        })
}

/// A random password of 20 letters and digits (about 119 bits), for a first account.
///
/// # Errors
/// [`AccountsError::Hash`] if the system has no randomness to give.
pub fn random_password() -> Result<String, AccountsError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let bytes =
            argon2::password_hash::try_generate_salt().map_err(|e| AccountsError::Hash {
                message: e.to_string(),
            })?;
        for b in bytes {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b) < limit && out.len() < 20 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// The accounts of one data folder, as read from its users file.
#[derive(Debug)]
pub struct Accounts {
    file: PathBuf,
    data_dir: PathBuf,
    users: Vec<User>,
    /// The file as last read or written (`None`: not on disk).
    stamp: Option<Stamp>,
    /// Logins verified recently.
    verified: Verified,
}

/// How long a verified login is remembered.
const VERIFIED_FOR: Duration = Duration::from_secs(600);

/// Most logins remembered; when full, all are forgotten.
const VERIFIED_MAX: usize = 10_000;

/// Logins verified recently, so that a client logging in again and again (a script, a
/// benchmark, a client opening a connection per transfer) pays for argon2 once every
/// [`VERIFIED_FOR`], as Dovecot's auth cache does. Only successes are remembered, so
/// guessing still costs argon2 (and the server's growing delays) every time.
///
/// An entry is a keyed BLAKE2b digest of the user name, the stored PHC hash and the
/// password, under a random key made at start: the password itself is never kept, and a
/// changed password (a new PHC string) no longer matches its old entry.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    inner: Mutex<VerifiedInner>,
}

#[derive(Default)]
struct VerifiedInner {
    key: Option<[u8; 32]>,
    entries: HashMap<String, ([u8; 32], Instant)>,
}

impl fmt::Debug for VerifiedInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedInner {
    fn digest(&mut self, name: &str, phc: &str, password: &str) -> Option<[u8; 32]> {
        use blake2::Digest as _;
        if self.key.is_none() {
            let a = argon2::password_hash::try_generate_salt().ok()?;
            let b = argon2::password_hash::try_generate_salt().ok()?;
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(&a);
            key[16..].copy_from_slice(&b);
            self.key = Some(key);
        }
        let mut h = blake2::Blake2b512::new();
        h.update(self.key?);
        for part in [name, phc, password] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let full = h.finalize();
        let mut out = [0u8; 32];
        out.copy_from_slice(&full[..32]);
        Some(out)
    }
}

/// Compares in time that does not depend on where the inputs differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Verified {
    /// Whether `password` is the password of the account `name` whose stored PHC string is
    /// `stored` (`None`: no such account). Takes as long for an unknown name as for a
    /// wrong password: it checks against a dummy hash then.
    pub(crate) fn check(&self, name: &str, stored: Option<&str>, password: &str) -> bool {
        if let Some(phc) = stored
            && self.hit(name, phc, password)
        {
            return true;
        }
        let ok = argon2_verify(password, stored.unwrap_or(DUMMY_HASH));
        match stored {
            Some(phc) if ok => {
                self.insert(name, phc, password);
                true
            }
            _ => false,
        }
    }

    fn hit(&self, name: &str, phc: &str, password: &str) -> bool {
        let Ok(mut v) = self.inner.lock() else {
            return false;
        };
        let Some(&(stored, at)) = v.entries.get(name) else {
            return false;
        };
        if at.elapsed() > VERIFIED_FOR {
            v.entries.remove(name);
            return false;
        }
        v.digest(name, phc, password)
            .is_some_and(|d| same_digest(&d, &stored))
    }

    fn insert(&self, name: &str, phc: &str, password: &str) {
        let Ok(mut v) = self.inner.lock() else { return };
        let Some(d) = v.digest(name, phc, password) else {
            return;
        };
        if v.entries.len() >= VERIFIED_MAX {
            v.entries.clear();
        }
        v.entries.insert(name.to_owned(), (d, Instant::now()));
    }
}

/// Argon2 working memory (19 MiB with the default parameters), kept for the next check
/// instead of being allocated and freed each time: the allocator would otherwise keep a
/// copy in every thread's arena.
static ARGON2_MEMORY: Mutex<Vec<Vec<argon2::Block>>> = Mutex::new(Vec::new());

/// Working memories kept: as many as checks run at once (one per core).
fn argon2_memories_kept() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// How long the last password hash took here, in nanoseconds (0 before the first).
static LAST_HASH_NANOS: AtomicU64 = AtomicU64::new(0);

/// How long a password check that computes the hash takes on this machine (the last one
/// measured; zero before the first). A refusal that was decided without the hash (a login
/// remembered from a moment ago, refused for its address) is held this long, so that its
/// timing does not tell a correct password from a wrong one.
#[must_use]
pub fn hash_time() -> Duration {
    Duration::from_nanos(LAST_HASH_NANOS.load(Ordering::Relaxed))
}

/// Checks `password` against a PHC string, with pooled working memory.
fn argon2_verify(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut memory = ARGON2_MEMORY
        .lock()
        .ok()
        .and_then(|mut m| m.pop())
        .unwrap_or_default();
    memory.resize(blocks, argon2::Block::default());
    let mut out = [0u8; 64];
    let len = expected.as_bytes().len().min(out.len());
    let started = Instant::now();
    let ok = argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out[..len],
            &mut memory[..blocks],
        )
        .is_ok()
        && argon2::password_hash::phc::Output::new(&out[..len]).is_ok_and(|o| o == *expected);
    LAST_HASH_NANOS.store(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    if let Ok(mut m) = ARGON2_MEMORY.lock()
        && m.len() < argon2_memories_kept()
    {
        m.push(memory);
    }
    ok
}

/// Deletes the home folder `home` with everything in it (symlinks inside are removed, never
/// followed); a missing one is fine. A folder that is the data folder, or holds it, is never
/// deleted.
///
/// # Errors
/// [`AccountsError::Home`] with why it could not be deleted.
pub(crate) fn delete_home_folder(home_path: &Path, data_dir: &Path) -> Result<(), AccountsError> {
    let fail = |source| AccountsError::Home {
        path: home_path.to_path_buf(),
        source,
    };
    // Compare real paths, so that `home = "x/.."` cannot name the data folder.
    let home = match fs::canonicalize(home_path) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(fail(source)),
    };
    let data = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    if data.starts_with(&home) {
        return Err(fail(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refusing to delete a folder that holds the data folder",
        )));
    }
    // remove_dir_all removes a symlink itself, never what it points to.
    match fs::remove_dir_all(home_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(fail(source)),
    }
}

/// `p` made absolute against the current folder.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Accounts {
    /// No accounts yet: nothing is read, and the users file is created by the first change.
    #[must_use]
    pub fn empty(users_file: impl AsRef<Path>, data_dir: impl AsRef<Path>) -> Self {
        Self {
            file: absolute(users_file.as_ref()),
            data_dir: absolute(data_dir.as_ref()),
            users: Vec::new(),
            stamp: None,
            verified: Verified::default(),
        }
    }

    /// Reads `users_file`; relative home folders are taken from `data_dir`.
    ///
    /// # Errors
    /// [`AccountsError::Missing`] if the file does not exist, [`AccountsError::Unreadable`]
    /// if it cannot be read, [`AccountsError::Malformed`] if it is not a valid users file.
    pub fn load(
        users_file: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
    ) -> Result<Self, AccountsError> {
        let mut accounts = Self::empty(users_file, data_dir);
        accounts.reload()?;
        Ok(accounts)
    }

    /// [`Accounts::load`], or [`Accounts::empty`] if the file does not exist.
    ///
    /// # Errors
    /// As [`Accounts::load`], except for a missing file.
    pub fn load_or_empty(
        users_file: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
    ) -> Result<Self, AccountsError> {
        match Self::load(users_file.as_ref(), data_dir.as_ref()) {
            Err(AccountsError::Missing { .. }) => Ok(Self::empty(users_file, data_dir)),
            r => r,
        }
    }

    /// Reads the users file again, replacing what was read before. On error nothing
    /// changes.
    ///
    /// # Errors
    /// As [`Accounts::load`].
    pub fn reload(&mut self) -> Result<(), AccountsError> {
        let stamp = stamp_of(&self.file);
        let text = match fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(AccountsError::Missing {
                    file: self.file.clone(),
                });
            }
            Err(source) => {
                return Err(AccountsError::Unreadable {
                    file: self.file.clone(),
                    source,
                });
            }
        };
        self.users = self.parse(&text)?;
        self.stamp = stamp;
        Ok(())
    }

    /// Reloads the users file if it changed on disk since it was last read or written.
    /// Returns whether it did.
    ///
    /// # Errors
    /// As [`Accounts::load`]; the accounts read before stay in force.
    pub fn reload_if_changed(&mut self) -> Result<bool, AccountsError> {
        if !self.changed_on_disk() {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Whether the users file on disk is not the one last read or written here (another
    /// process, such as `ferry user add`, changed it; or it was created or removed).
    #[must_use]
    pub fn changed_on_disk(&self) -> bool {
        stamp_of(&self.file) != self.stamp
    }

    fn malformed(&self, text: &str, offset: usize, message: impl Into<String>) -> AccountsError {
        let (line, column) = line_col(text, offset);
        AccountsError::Malformed {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<Vec<User>, AccountsError> {
        let parsed: FileIn = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            self.malformed(text, offset, e.message().trim_end())
        })?;
        let mut users: Vec<User> = Vec::with_capacity(parsed.users.len());
        for u in parsed.users {
            let name = u.name.get_ref();
            if !valid_name(name) {
                return Err(self.malformed(
                    text,
                    u.name.span().start,
                    format!("user name {name:?} is not allowed: {NAME_RULE}"),
                ));
            }
            if users.iter().any(|x| x.name == *name) {
                return Err(self.malformed(
                    text,
                    u.name.span().start,
                    format!("user {name} appears twice"),
                ));
            }
            let hash_ok = PasswordHash::new(u.password.get_ref())
                .is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"));
            if !hash_ok {
                return Err(self.malformed(
                    text,
                    u.password.span().start,
                    format!(
                        "the password of user {name} is not an argon2 PHC string \
                         (set it with `ferry user passwd {name}`)"
                    ),
                ));
            }
            let home = match &u.home {
                Some(h) if h.get_ref().is_empty() => {
                    return Err(self.malformed(
                        text,
                        h.span().start,
                        format!("the home folder of user {name} is empty"),
                    ));
                }
                Some(h) => h.get_ref().clone(),
                None => format!("home/{name}"),
            };
            let policy = match u.policy {
                Some(p) => {
                    if let Err(message) = p.get_ref().validate() {
                        return Err(self.malformed(
                            text,
                            p.span().start,
                            format!("the policy of user {name}: {message}"),
                        ));
                    }
                    p.into_inner()
                }
                None => Policy::default(),
            };
            users.push(User {
                name: name.clone(),
                hash: u.password.into_inner(),
                home,
                read_only: u.read_only,
                policy: Arc::new(policy),
            });
        }
        Ok(users)
    }

    /// The users file.
    #[must_use]
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The data folder that relative home folders are taken from.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn account(&self, u: &User) -> Account {
        let home = Path::new(&u.home);
        Account {
            name: u.name.clone(),
            home: if home.is_absolute() {
                home.to_path_buf()
            } else {
                self.data_dir.join(home)
            },
            read_only: u.read_only,
            policy: u.policy.clone(),
        }
    }

    /// Every account, in the order of the file.
    #[must_use]
    pub fn list(&self) -> Vec<Account> {
        self.users.iter().map(|u| self.account(u)).collect()
    }

    /// The account `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Account> {
        self.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| self.account(u))
    }

    /// How many accounts there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The account `name` if `password` is its password. Takes as long for an unknown
    /// name as for a wrong password (see the module docs). CPU-heavy: call it on a
    /// blocking thread.
    #[must_use]
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        let user = self.users.iter().find(|u| u.name == name);
        let ok = self
            .verified
            .check(name, user.map(|u| u.hash.as_str()), password);
        user.filter(|_| ok).map(|u| self.account(u))
    }

    /// The account `name` if `password` was verified for it in the last [`VERIFIED_FOR`]:
    /// [`Accounts::verify`] from memory, in microseconds, without computing argon2id. A wrong
    /// password or an unknown name is never remembered (they always take the hash's time).
    #[must_use]
    pub fn remembered(&self, name: &str, password: &str) -> Option<Account> {
        self.users
            .iter()
            .find(|u| u.name == name)
            .filter(|u| self.verified.hit(name, &u.hash, password))
            .map(|u| self.account(u))
    }

    /// Picks up changes another process made, before changing anything.
    fn refresh(&mut self) -> Result<(), AccountsError> {
        if self.changed_on_disk() {
            match self.reload() {
                Ok(()) => {}
                // Removed meanwhile: start again from nothing.
                Err(AccountsError::Missing { .. }) => {
                    self.users.clear();
                    self.stamp = None;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn index(&self, name: &str) -> Result<usize, AccountsError> {
        self.users
            .iter()
            .position(|u| u.name == name)
            .ok_or_else(|| AccountsError::Unknown {
                name: name.to_owned(),
            })
    }

    /// Creates the account `name` with its home folder `home/<name>` in the data folder
    /// (kept if it exists already), and writes the users file.
    ///
    /// # Errors
    /// [`AccountsError::BadName`], [`AccountsError::Exists`], or a failure to create the
    /// home folder or write the file.
    pub fn add(
        &mut self,
        name: &str,
        password: &str,
        read_only: bool,
    ) -> Result<Account, AccountsError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName {
                name: name.to_owned(),
            });
        }
        self.refresh()?;
        if self.users.iter().any(|u| u.name == name) {
            return Err(AccountsError::Exists {
                name: name.to_owned(),
            });
        }
        let user = User {
            name: name.to_owned(),
            hash: hash_password(password)?,
            home: format!("home/{name}"),
            read_only,
            policy: Arc::default(),
        };
        let account = self.account(&user);
        fs::create_dir_all(&account.home).map_err(|source| AccountsError::Home {
            path: account.home.clone(),
            source,
        })?;
        self.users.push(user);
        if let Err(e) = self.save() {
            self.users.pop();
            return Err(e);
        }
        Ok(account)
    }

    /// Changes the password of `name` and writes the users file.
    ///
    /// # Errors
    /// [`AccountsError::Unknown`], or a failure to write the file.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), AccountsError> {
        self.refresh()?;
        let i = self.index(name)?;
        let hash = hash_password(password)?;
        let old = std::mem::replace(&mut self.users[i].hash, hash);
        if let Err(e) = self.save() {
            self.users[i].hash = old;
            return Err(e);
        }
        Ok(())
    }

    /// Replaces the policy of `name` and writes the users file.
    ///
    /// # Errors
    /// [`AccountsError::Unknown`], or a failure to write the file.
    pub fn set_policy(&mut self, name: &str, policy: Policy) -> Result<(), AccountsError> {
        self.refresh()?;
        let i = self.index(name)?;
        let old = std::mem::replace(&mut self.users[i].policy, Arc::new(policy));
        if let Err(e) = self.save() {
            self.users[i].policy = old;
            return Err(e);
        }
        Ok(())
    }

    /// Makes `name` read-only or not and writes the users file.
    ///
    /// # Errors
    /// [`AccountsError::Unknown`], or a failure to write the file.
    pub fn set_read_only(&mut self, name: &str, read_only: bool) -> Result<(), AccountsError> {
        self.refresh()?;
        let i = self.index(name)?;
        let old = std::mem::replace(&mut self.users[i].read_only, read_only);
        if let Err(e) = self.save() {
            self.users[i].read_only = old;
            return Err(e);
        }
        Ok(())
    }

    /// Removes the account `name`, writes the users file, and then, if `delete_home`,
    /// deletes its home folder with everything in it (symlinks inside are removed, never
    /// followed). A home folder that is the data folder, or holds it, is never deleted.
    ///
    /// # Errors
    /// [`AccountsError::Unknown`], a failure to write the file, or to delete the home
    /// folder (the account is gone by then).
    pub fn remove(&mut self, name: &str, delete_home: bool) -> Result<Account, AccountsError> {
        self.refresh()?;
        let i = self.index(name)?;
        let user = self.users.remove(i);
        if let Err(e) = self.save() {
            self.users.insert(i, user);
            return Err(e);
        }
        let account = self.account(&user);
        if delete_home {
            delete_home_folder(&account.home, &self.data_dir)?;
        }
        Ok(account)
    }

    /// Writes the users file: a temporary beside it, then a rename over it.
    fn save(&mut self) -> Result<(), AccountsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let write_err = |source| AccountsError::Write {
            file: self.file.clone(),
            source,
        };
        let out = FileOut {
            users: self
                .users
                .iter()
                .map(|u| UserOut {
                    name: &u.name,
                    password: &u.hash,
                    home: &u.home,
                    read_only: u.read_only,
                    policy: &u.policy,
                })
                .collect(),
        };
        let body = toml::to_string(&out).map_err(|e| write_err(io::Error::other(e)))?;
        let dir = match self.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(write_err)?;
        let file_name = self
            .file
            .file_name()
            .map_or_else(|| "users.toml".into(), |n| n.to_string_lossy());
        let temp = dir.join(format!(
            ".{file_name}.tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(HEADER.as_bytes())?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            fs::rename(&temp, &self.file)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(write_err(e));
        }
        // Make the rename durable; a failure here loses nothing that was not already at risk.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        self.stamp = stamp_of(&self.file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "A.b_c-9", &"x".repeat(32), "...", ".a"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            &"x".repeat(33),
            "a b",
            "a/b",
            "é",
            "a\0",
            "a:b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn dummy_hash_has_default_params() {
        let h = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(h.algorithm.as_str(), "argon2id");
        let p = Params::try_from(&h).unwrap();
        assert_eq!(
            (p.m_cost(), p.t_cost(), p.p_cost()),
            (M_COST, T_COST, P_COST)
        );
    }

    #[test]
    fn pooled_argon2_agrees_with_the_reference_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password("correct horse").unwrap();
        let h = PasswordHash::new(&phc).unwrap();
        for (pw, want) in [
            ("correct horse", true),
            ("correct horsf", false),
            ("", false),
        ] {
            assert_eq!(hasher().verify_password(pw.as_bytes(), &h).is_ok(), want);
            // Twice: the second check reuses the pooled memory.
            assert_eq!(argon2_verify(pw, &phc), want, "{pw:?}");
            assert_eq!(argon2_verify(pw, &phc), want, "{pw:?}");
        }
        // Other parameters and an older version verify too.
        let params = Params::new(8192, 3, 1, None).unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x10, params);
        let salt = argon2::password_hash::try_generate_salt().unwrap();
        let phc = other
            .hash_password_with_salt(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(argon2_verify("pw", &phc));
        assert!(!argon2_verify("px", &phc));
        assert!(!argon2_verify("pw", "not a phc string"));
    }

    #[test]
    fn the_hash_time_is_measured() {
        assert!(!argon2_verify("pw", DUMMY_HASH));
        assert!(hash_time() > Duration::ZERO);
    }

    #[test]
    fn verified_logins_are_remembered_until_the_password_changes() {
        let v = Verified::default();
        let (phc1, phc2) = ("$argon2id$one", "$argon2id$two");
        assert!(!v.hit("alice", phc1, "pw"));
        v.insert("alice", phc1, "pw");
        assert!(v.hit("alice", phc1, "pw"));
        assert!(!v.hit("alice", phc1, "pw2"), "another password");
        assert!(
            !v.hit("alice", phc2, "pw"),
            "the stored hash changed (new password)"
        );
        assert!(!v.hit("bob", phc1, "pw"), "another user");
        let inner = v.inner.lock().unwrap();
        let (digest, _) = inner.entries["alice"];
        assert!(
            !digest.windows(2).any(|w| w == b"pw"),
            "the password is not kept"
        );
    }

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd\nef", 0), (1, 1));
        assert_eq!(line_col("ab\ncd\nef", 4), (2, 2));
        assert_eq!(line_col("ab\ncd\nef", 6), (3, 1));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }

    #[test]
    fn random_passwords() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
