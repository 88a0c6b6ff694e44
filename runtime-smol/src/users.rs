//! Who may log in, and the tree each user gets.
//!
//! [`Users::check`] runs on smol's blocking thread pool (argon2 takes tens of milliseconds by
//! design), never on the threads that move bytes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ferry_backends::Storage;
use ferry_backends::accounts::{Account, Accounts, AccountsError};
use ferry_backends::disk::DiskStorage;
use ferry_backends::memory::MemoryStorage;
use ferry_backends::object::{ObjectStorage, S3Config, SmolHttp};
use ferry_backends::pg::{PgAccounts, PgError, PgUrl};
use ferry_backends::policy::Policy;

/// Why accounts cannot be opened, changed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// The data folder cannot be created.
    #[error("{}: {source}", .path.display())]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The users file cannot be read or written, or an account cannot be changed.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// An account of that name exists already.
    #[error("the account {0:?} exists already")]
    Exists(String),
    /// There is no account of that name.
    #[error("no account {0:?}")]
    Unknown(String),
    /// A user's home folder cannot be opened.
    #[error("home folder {} of {user}: {source}", .home.display())]
    Home {
        /// The user.
        user: String,
        /// The folder.
        home: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A user's home in the bucket cannot be made or reached.
    #[error("home of {user} in the bucket: {source}")]
    ObjectHome {
        /// The user.
        user: String,
        /// Why.
        source: ferry_backends::Error,
    },
    /// The accounts database cannot be reached or refuses.
    #[error(transparent)]
    Database(#[from] PgError),
    /// A thread panicked while it held this lock (a bug); nothing can be checked.
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
}

/// Opens the accounts of `users_file`, with homes in `data_dir`, which is made if missing;
/// no accounts if the file does not exist yet.
///
/// # Errors
/// The data folder cannot be made, or the users file cannot be read or is not valid.
pub fn open_accounts(data_dir: &Path, users_file: &Path) -> Result<Accounts, UsersError> {
    std::fs::create_dir_all(data_dir).map_err(|source| UsersError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    Ok(Accounts::load_or_empty(users_file, data_dir)?)
}

/// A successful login: the user's tree, whether they may change it, and their policy.
#[derive(Debug)]
pub struct Login<S> {
    /// The user's tree (their home, as `/`).
    pub storage: S,
    /// The account may read but not change anything.
    pub read_only: bool,
    /// Quotas, rates, permissions and address lists; the default limits nothing.
    pub policy: Arc<Policy>,
}

impl<S> Login<S> {
    /// `account`'s login into `storage`.
    fn of(account: Account, storage: S) -> Self {
        Self {
            storage,
            read_only: account.read_only,
            policy: account.policy,
        }
    }
}

/// What a password check answers: `Ok(None)` for an unknown user or a wrong password.
pub type Checked<S, E> = Result<Option<Login<S>>, E>;

/// An account store. Implement it to plug in other accounts or trees.
pub trait Users: Send + Sync + 'static {
    /// The tree a user gets (cloned to count a quota's usage in the background).
    type Storage: Storage + Clone;

    /// Why the accounts cannot be checked.
    type Error: std::error::Error + Send + 'static;

    /// Checks `password` for `user`: `Ok(None)` for an unknown user or a wrong password (the
    /// same to the client), `Err` when the accounts cannot be checked at all. Called on a
    /// blocking thread.
    ///
    /// # Errors
    /// Why the accounts could not be checked, for the log.
    fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Login<Self::Storage>>, Self::Error>;

    /// Answers [`Users::check`] at once, if it can without computing a hash, reading a file,
    /// waiting for a lock or reaching a database: a login verified a moment ago, whose tree
    /// is open. Called inline on the session's thread, which saves the two thread hops of a
    /// repeated login; `None` sends the check to a blocking thread, as ever. Must take
    /// microseconds and never block; `None` (the default) is always safe.
    fn check_quick(
        &self,
        user: &str,
        password: &str,
    ) -> Option<Checked<Self::Storage, Self::Error>> {
        let _ = (user, password);
        None
    }

    /// The storage's name for the `backend` label of the metrics.
    fn backend(&self) -> &'static str {
        "custom"
    }

    /// Whether the storage can be reached now (`/health`). Called on a blocking thread.
    ///
    /// # Errors
    /// Why not, for the answer and the log.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The accounts of a users file, read again when the file changes, so that accounts added
/// while the server runs can log in.
#[derive(Debug)]
pub struct AccountsFile {
    accounts: RwLock<Accounts>,
}

impl AccountsFile {
    /// Serves `accounts`.
    #[must_use]
    pub fn new(accounts: Accounts) -> Self {
        Self {
            accounts: RwLock::new(accounts),
        }
    }

    /// The account `user` if `password` is its password (reloading a changed file first).
    ///
    /// # Errors
    /// A poisoned lock (a bug).
    pub fn verify(&self, user: &str, password: &str) -> Result<Option<Account>, UsersError> {
        let changed = self
            .accounts
            .read()
            .map_err(|_| UsersError::Poisoned("accounts"))?
            .changed_on_disk();
        if changed {
            let mut accounts = self
                .accounts
                .write()
                .map_err(|_| UsersError::Poisoned("accounts"))?;
            if let Err(e) = accounts.reload_if_changed() {
                tracing::error!(error = %e, "cannot reload the users file; keeping the accounts loaded before");
            }
        }
        Ok(self
            .accounts
            .read()
            .map_err(|_| UsersError::Poisoned("accounts"))?
            .verify(user, password))
    }
}

/// Where the accounts are: the users file (the default), or a PostgreSQL database
/// (`--accounts postgres://...`) that several instances share. Both hold the same accounts
/// (argon2id PHC strings, homes, read-only flags) and answer the same calls.
#[derive(Debug)]
pub enum AccountStore {
    /// The users file, read again when it changes.
    File(Box<AccountsFile>),
    /// A database, asked at every login.
    Postgres(Box<PgAccounts>),
}

impl From<Accounts> for AccountStore {
    fn from(accounts: Accounts) -> Self {
        Self::File(Box::new(AccountsFile::new(accounts)))
    }
}

impl From<PgAccounts> for AccountStore {
    fn from(accounts: PgAccounts) -> Self {
        Self::Postgres(Box::new(accounts))
    }
}

impl AccountStore {
    /// The database of `url`, or else the users file `users_file`; homes in `data_dir`,
    /// which is made if missing. Blocks.
    ///
    /// # Errors
    /// The data folder cannot be made, the users file is not valid, or the database
    /// cannot be reached or migrated.
    pub fn open(
        data_dir: &Path,
        users_file: &Path,
        url: Option<&PgUrl>,
    ) -> Result<Self, UsersError> {
        match url {
            Some(url) => {
                std::fs::create_dir_all(data_dir).map_err(|source| UsersError::DataDir {
                    path: data_dir.to_path_buf(),
                    source,
                })?;
                Ok(PgAccounts::connect(url, data_dir)?.into())
            }
            None => Ok(open_accounts(data_dir, users_file)?.into()),
        }
    }

    fn file(&self) -> Option<&RwLock<Accounts>> {
        match self {
            Self::File(f) => Some(&f.accounts),
            Self::Postgres(_) => None,
        }
    }

    fn write_file(&self) -> Result<Option<std::sync::RwLockWriteGuard<'_, Accounts>>, UsersError> {
        self.file()
            .map(|f| f.write().map_err(|_| UsersError::Poisoned("accounts")))
            .transpose()
    }

    /// Where they are, for messages: the users file, or the database's URL without password.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::File(f) => f
                .accounts
                .read()
                .map(|a| a.file().display().to_string())
                .unwrap_or_default(),
            Self::Postgres(p) => p.url().to_string(),
        }
    }

    /// The data folder that relative homes are taken from.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        match self {
            Self::File(f) => f
                .accounts
                .read()
                .map(|a| a.data_dir().to_path_buf())
                .unwrap_or_default(),
            Self::Postgres(p) => p.data_dir().to_path_buf(),
        }
    }

    /// The account `user` if `password` is its password. Blocks; CPU-heavy.
    ///
    /// # Errors
    /// The accounts cannot be checked (the database is unreachable, say).
    pub fn verify(&self, user: &str, password: &str) -> Result<Option<Account>, UsersError> {
        match self {
            Self::File(f) => f.verify(user, password),
            Self::Postgres(p) => Ok(p.verify(user, password)?),
        }
    }

    /// The account `user` if `password` was verified for it a moment ago, answered from
    /// memory without waiting: from a users file that has not changed since, and only if
    /// its lock is free (a reload, or a check queued behind one, may hold it for a hash's
    /// time). A database is asked at every login: never.
    #[must_use]
    pub fn remembered(&self, user: &str, password: &str) -> Option<Account> {
        match self {
            Self::File(f) => {
                let a = f.accounts.try_read().ok()?;
                if a.changed_on_disk() {
                    return None;
                }
                a.remembered(user, password)
            }
            Self::Postgres(_) => None,
        }
    }

    /// Every account.
    ///
    /// # Errors
    /// The accounts cannot be read.
    pub fn list(&self) -> Result<Vec<Account>, UsersError> {
        match self {
            Self::File(f) => Ok(f
                .accounts
                .read()
                .map_err(|_| UsersError::Poisoned("accounts"))?
                .list()),
            Self::Postgres(p) => Ok(p.list()?),
        }
    }

    /// The account `name`, if there is one.
    ///
    /// # Errors
    /// The accounts cannot be read.
    pub fn get(&self, name: &str) -> Result<Option<Account>, UsersError> {
        match self {
            Self::File(f) => Ok(f
                .accounts
                .read()
                .map_err(|_| UsersError::Poisoned("accounts"))?
                .get(name)),
            Self::Postgres(p) => Ok(p.get(name)?),
        }
    }

    /// Creates the account `name` and its home folder.
    ///
    /// # Errors
    /// A bad or taken name, or the store failing.
    pub fn add(&self, name: &str, password: &str, read_only: bool) -> Result<Account, UsersError> {
        match (self.write_file()?, self) {
            (Some(mut a), _) => Ok(a.add(name, password, read_only)?),
            (None, Self::Postgres(p)) => Ok(p.add(name, password, read_only)?),
            (None, Self::File(_)) => Err(UsersError::Poisoned("accounts")),
        }
    }

    /// Changes the password of `name`.
    ///
    /// # Errors
    /// No such account, or the store failing.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), UsersError> {
        match (self.write_file()?, self) {
            (Some(mut a), _) => Ok(a.set_password(name, password)?),
            (None, Self::Postgres(p)) => Ok(p.set_password(name, password)?),
            (None, Self::File(_)) => Err(UsersError::Poisoned("accounts")),
        }
    }

    /// Replaces the policy of `name` (quotas, rates, permissions, addresses).
    ///
    /// # Errors
    /// No such account, or the store failing.
    pub fn set_policy(&self, name: &str, policy: Policy) -> Result<(), UsersError> {
        match (self.write_file()?, self) {
            (Some(mut a), _) => Ok(a.set_policy(name, policy)?),
            (None, Self::Postgres(p)) => Ok(p.set_policy(name, &policy)?),
            (None, Self::File(_)) => Err(UsersError::Poisoned("accounts")),
        }
    }

    /// Makes `name` read-only or not.
    ///
    /// # Errors
    /// No such account, or the store failing.
    pub fn set_read_only(&self, name: &str, read_only: bool) -> Result<(), UsersError> {
        match (self.write_file()?, self) {
            (Some(mut a), _) => Ok(a.set_read_only(name, read_only)?),
            (None, Self::Postgres(p)) => Ok(p.set_read_only(name, read_only)?),
            (None, Self::File(_)) => Err(UsersError::Poisoned("accounts")),
        }
    }

    /// Removes the account `name` (and its home folder if `delete_home`).
    ///
    /// # Errors
    /// No such account, or the store failing.
    pub fn remove(&self, name: &str, delete_home: bool) -> Result<Account, UsersError> {
        match (self.write_file()?, self) {
            (Some(mut a), _) => Ok(a.remove(name, delete_home)?),
            (None, Self::Postgres(p)) => Ok(p.remove(name, delete_home)?),
            (None, Self::File(_)) => Err(UsersError::Poisoned("accounts")),
        }
    }

    /// Whether the accounts can be checked now (`/health`): the database answers.
    ///
    /// # Errors
    /// Why not.
    pub fn health(&self) -> Result<(), String> {
        match self {
            Self::File(_) => Ok(()),
            Self::Postgres(p) => p.ping().map_err(|e| e.to_string()),
        }
    }
}

/// Accounts in a users file (`ferry user add`), each jailed at its home folder on disk.
#[derive(Debug)]
pub struct DiskUsers {
    accounts: AccountStore,
    fsync: bool,
    pool: bool,
    hard_links: bool,
    /// One tree per home, shared by that user's sessions: one descriptor and one allocation
    /// per user instead of per session (10,000 sessions of one user hit the descriptor
    /// limit otherwise).
    trees: Mutex<HashMap<PathBuf, DiskStorage>>,
    /// Where the homes are, for [`Users::health`].
    data_dir: PathBuf,
}

impl DiskUsers {
    /// Serves `accounts` (a users file's [`Accounts`], or an [`AccountStore`]).
    #[must_use]
    pub fn new(accounts: impl Into<AccountStore>) -> Self {
        let accounts = accounts.into();
        Self {
            data_dir: accounts.data_dir(),
            accounts,
            fsync: false,
            pool: false,
            hard_links: false,
            trees: Mutex::default(),
        }
    }

    /// Files with other hard links are served ([`DiskStorage::with_hard_links`]).
    #[must_use]
    pub fn with_hard_links(mut self, on: bool) -> Self {
        self.hard_links = on;
        self
    }

    /// Uploads are made durable (`fsync`) before they are put in place.
    #[must_use]
    pub fn with_fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Every disk metadata call runs on the blocking pool
    /// ([`DiskStorage::with_blocking_pool`]).
    #[must_use]
    pub fn with_blocking_pool(mut self, on: bool) -> Self {
        self.pool = on;
        self
    }
}

impl Users for DiskUsers {
    type Storage = DiskStorage;
    type Error = UsersError;

    fn backend(&self) -> &'static str {
        "disk"
    }

    /// A remembered login whose home is open and still the same folder; not with
    /// `--disk-pool`, where the home's `stat` may be slow.
    fn check_quick(&self, user: &str, password: &str) -> Option<Checked<DiskStorage, UsersError>> {
        if self.pool {
            return None;
        }
        let account = self.accounts.remembered(user, password)?;
        let storage = self
            .trees
            .try_lock()
            .ok()?
            .get(&account.home)
            .filter(|tree| tree.is_rooted_at(&account.home))?
            .clone();
        Some(Ok(Some(Login::of(account, storage))))
    }

    /// The data folder (where the homes are) is there and can be read, and the accounts
    /// can be checked.
    fn health(&self) -> Result<(), String> {
        let dir = self.data_dir.clone();
        std::fs::read_dir(&dir)
            .map(drop)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        self.accounts.health()
    }

    fn check(&self, user: &str, password: &str) -> Result<Option<Login<DiskStorage>>, UsersError> {
        let Some(account) = self.accounts.verify(user, password)? else {
            return Ok(None);
        };
        let mut trees = self
            .trees
            .lock()
            .map_err(|_| UsersError::Poisoned("trees"))?;
        let storage = match trees.get(&account.home) {
            // Still the same folder (not removed and made again since).
            Some(tree) if tree.is_rooted_at(&account.home) => tree.clone(),
            _ => {
                // Instances sharing a database each have their own data folder: the home
                // is made here at the account's first login on this machine.
                if matches!(self.accounts, AccountStore::Postgres(_)) && !account.home.exists() {
                    std::fs::create_dir_all(&account.home).map_err(|source| UsersError::Home {
                        user: user.to_owned(),
                        home: account.home.clone(),
                        source,
                    })?;
                }
                let tree = DiskStorage::new(&account.home)
                    .map_err(|source| UsersError::Home {
                        user: user.to_owned(),
                        home: account.home.clone(),
                        source,
                    })?
                    .with_fsync(self.fsync)
                    .with_hard_links(self.hard_links)
                    .with_blocking_pool(self.pool);
                trees.insert(account.home.clone(), tree.clone());
                tree
            }
        };
        Ok(Some(Login::of(account, storage)))
    }
}

/// The key prefix of `user`'s home in a bucket, below the bucket's own prefix.
#[must_use]
pub fn object_home(user: &str) -> String {
    format!("home/{user}")
}

/// Accounts in a users file, each jailed at its home in a bucket: the key prefix
/// `PREFIX/home/<user>/` ([`object_home`]).
#[derive(Debug)]
pub struct ObjectUsers {
    accounts: AccountStore,
    bucket: S3Config,
    http: SmolHttp,
    /// One tree per user, shared by that user's sessions (and their connections).
    trees: Mutex<HashMap<String, ObjectStorage>>,
}

impl ObjectUsers {
    /// Serves `accounts` with homes in `bucket`.
    #[must_use]
    pub fn new(accounts: impl Into<AccountStore>, bucket: S3Config) -> Self {
        Self {
            accounts: accounts.into(),
            bucket,
            http: SmolHttp::new(),
            trees: Mutex::default(),
        }
    }
}

/// The tree of `user`'s home in `bucket`, its folder marker made if missing (this also
/// checks that the store answers). Blocks: call it on a blocking thread.
///
/// # Errors
/// The store cannot be reached or refuses.
pub fn open_object_home(
    bucket: &S3Config,
    http: &SmolHttp,
    user: &str,
) -> Result<ObjectStorage, UsersError> {
    let fail = |source: ferry_backends::Error| UsersError::ObjectHome {
        user: user.to_owned(),
        source,
    };
    let tree = ObjectStorage::s3(&bucket.beneath(&object_home(user)), http).map_err(fail)?;
    smol::block_on(tree.create_root()).map_err(fail)?;
    Ok(tree)
}

impl Users for ObjectUsers {
    type Storage = ObjectStorage;
    type Error = UsersError;

    fn backend(&self) -> &'static str {
        "s3"
    }

    /// A remembered login whose home in the bucket is open already.
    fn check_quick(
        &self,
        user: &str,
        password: &str,
    ) -> Option<Checked<ObjectStorage, UsersError>> {
        let account = self.accounts.remembered(user, password)?;
        let storage = self.trees.try_lock().ok()?.get(&account.name)?.clone();
        Some(Ok(Some(Login::of(account, storage))))
    }

    /// The bucket answers a listing with these credentials.
    fn health(&self) -> Result<(), String> {
        let tree = ObjectStorage::s3(&self.bucket, &self.http).map_err(|e| e.to_string())?;
        smol::block_on(tree.check()).map_err(|e| e.to_string())?;
        self.accounts.health()
    }

    fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Login<ObjectStorage>>, UsersError> {
        let Some(account) = self.accounts.verify(user, password)? else {
            return Ok(None);
        };
        let cached = self
            .trees
            .lock()
            .map_err(|_| UsersError::Poisoned("trees"))?
            .get(&account.name)
            .cloned();
        let storage = match cached {
            Some(tree) => tree,
            None => {
                let tree = open_object_home(&self.bucket, &self.http, &account.name)?;
                self.trees
                    .lock()
                    .map_err(|_| UsersError::Poisoned("trees"))?
                    .insert(account.name.clone(), tree.clone());
                tree
            }
        };
        Ok(Some(Login::of(account, storage)))
    }
}

/// Fixed users with a password each, and an in-memory tree each: for embedding and tests.
#[derive(Debug, Default)]
pub struct MemoryUsers {
    users: Vec<(String, String, MemoryStorage, bool, Arc<Policy>)>,
}

impl MemoryUsers {
    /// No users.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user with their own tree (clones of a `MemoryStorage` share one tree).
    #[must_use]
    pub fn with_user(mut self, name: &str, password: &str, tree: MemoryStorage) -> Self {
        self.users
            .push((name.into(), password.into(), tree, false, Arc::default()));
        self
    }

    /// Adds a user with their own tree and a policy.
    #[must_use]
    pub fn with_policy(
        mut self,
        name: &str,
        password: &str,
        tree: MemoryStorage,
        policy: Policy,
    ) -> Self {
        self.users
            .push((name.into(), password.into(), tree, false, Arc::new(policy)));
        self
    }

    /// Adds a user who may only read.
    #[must_use]
    pub fn with_read_only_user(mut self, name: &str, password: &str, tree: MemoryStorage) -> Self {
        self.users
            .push((name.into(), password.into(), tree, true, Arc::default()));
        self
    }
}

/// Compares two strings in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Users for MemoryUsers {
    type Storage = MemoryStorage;
    /// Fixed users are always there to check.
    type Error = Infallible;

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Login<MemoryStorage>>, Infallible> {
        Ok(self
            .users
            .iter()
            .find(|(n, p, ..)| n == user && same(p, password))
            .map(|(_, _, tree, read_only, policy)| Login {
                storage: tree.clone(),
                read_only: *read_only,
                policy: policy.clone(),
            }))
    }
}
