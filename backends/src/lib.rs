//! Where Ferry's files live, who may log in, and the record of every change.
//!
//! This crate owns everything behind the protocol core that touches state:
//!
//! - [`Storage`]: the async, runtime-neutral trait every tree implements, addressed by the
//!   core's [`VirtualPath`] (already normalised, never above `/`), with its handles
//!   [`ReadFile`], [`Upload`] and [`Lister`] and the small error type [`Error`] whose
//!   [`StorageError`] kind the core turns into a reply.
//! - Two trees: [`MemoryStorage`] ([`memory`]), the whole tree in memory for tests and
//!   embedding, and [`DiskStorage`] ([`disk`]), a folder on disk that every path is resolved
//!   *beneath* with the kernel's help (`openat2(RESOLVE_BENEATH)`), so that neither a `..`, a
//!   symlink nor a race can lead outside it (DESIGN.md, invariant 4). Uploads to disk go to a
//!   hidden temporary beside their target and are renamed into place on commit (invariant 5).
//! - With the `object` feature (on by default), a third: [`ObjectStorage`] ([`object`]), a
//!   key prefix in an S3-compatible bucket through Apache OpenDAL, over an HTTP transport of
//!   its own on async-io (no tokio runtime).
//! - [`accounts`]: the users file (TOML; argon2id password hashes, home folders, a read-only
//!   flag) and password checks.
//! - [`audit`]: the audit log (JSON lines) and [`Audited`], a decorator that records every
//!   change made through any [`Storage`] and refuses changes it cannot record (invariant 6).
//! - [`ops`]: what every driver of the core does with a tree, written once: [`perform`] a
//!   storage operation, and write a listing in bounded pieces ([`open_listing`], [`Listing`]).
//!
//! This crate never speaks FTP and never opens a socket. Its futures need no particular
//! executor. Which calls run on the calling thread and which on the [`blocking`] thread
//! pool is each tree's business, said in its docs ([`disk`]: short metadata calls and
//! upload writes inline, long work on the pool).
//!
//! # Example
//!
//! An upload appears whole on commit; every change through [`Audited`] gets a log line.
//!
//! ```
//! use std::sync::Arc;
//! use ferry_backends::{AuditLog, Audited, MemoryStorage, Storage, Upload, VirtualPath, WriteMode};
//! use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # futures_lite::future::block_on(async {
//! let log = Arc::new(AuditLog::from_writer(std::io::sink()));
//! let tree = Audited::new(MemoryStorage::new(), log, "alice", "127.0.0.1:5555".parse()?);
//! let path = VirtualPath::parse("/hello.txt")?;
//!
//! let mut upload = tree.open_write(&path, WriteMode::Replace).await?;
//! upload.write_all(b"hello").await?;
//! assert!(tree.metadata(&path).await.is_err()); // nothing visible yet
//! assert_eq!(upload.commit().await?, 5);
//!
//! let (mut file, meta) = tree.open_read(&path, 0).await?;
//! let mut text = String::new();
//! file.read_to_string(&mut text).await?;
//! assert_eq!((text.as_str(), meta.size), ("hello", 5));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! # Rules every tree follows
//!
//! The conformance suite (`tests/conformance.rs`) runs the same tests against every tree, and
//! the model-based property test (`tests/model.rs`) checks that random sequences of operations
//! give the same results on both. Beyond the doc comments of [`Storage`], the trees agree on:
//!
//! - **Reserved names.** A path with a segment that starts with [`TEMP_PREFIX`] (the disk
//!   tree's temporaries) or is longer than [`MAX_NAME`] bytes is refused with
//!   [`StorageError::BadName`] by every operation, before anything else is checked
//!   ([`check_names`]).
//! - **Where a walk stops.** A missing folder on the way gives `NotFound`; a file on the way
//!   gives `NotADirectory`.
//! - **The root** is a folder that cannot be removed (`PermissionDenied`), renamed
//!   (`PermissionDenied`), replaced by a rename or copy (`AlreadyExists`), or written
//!   (`NotAFile`); making it gives `AlreadyExists`.
//!
//! # Adding a backend
//!
//! 1. Implement [`Storage`] and, for its handles, [`ReadFile`], [`Upload`] and [`Lister`].
//!    Start every method with [`check_names`] on each path argument, walk paths as described
//!    above, and map the backend's failures to [`StorageError`] kinds (for `std::io`
//!    errors, `Error::from` does it with [`kind_of`]). Listings come in byte order of the
//!    names, in batches, without an allocation per entry ([`EntryBatch`]).
//! 2. Keep uploads atomic: nothing may be visible at the target before [`Upload::commit`],
//!    and a dropped upload must leave the previous file as it was. An object store gets this
//!    from a single `PUT` (or a completed multipart upload) on commit. Appends and writes at
//!    an offset may change the file as they go.
//! 3. Add it to the conformance suite (`tests/conformance.rs`) with one line,
//!    `conformance_suite!(my_backend, many = 10_000, |dir: &Path| MyStorage::new(..));`
//!    (`dir` is a fresh temporary folder it may use; `many` is the entry count of the
//!    large-listing test), and to the model test (`tests/model.rs`) if it can hold
//!    arbitrary trees.
//! 4. Wrap it in [`Audited`] to get the audit log; nothing in the backend needs to know.
//!
//! Nothing in the core changes when a backend is added: it only ever sees [`Metadata`],
//! [`Entry`] and [`StorageError`].

#![warn(missing_docs)]

pub mod accounts;
pub mod audit;
mod background;
pub mod disk;
pub mod memory;
pub mod net;
#[cfg(feature = "object")]
pub mod object;
pub mod ops;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod policy;

pub use accounts::{Account, Accounts, AccountsError};
pub use audit::{AuditLog, Audited};
pub use disk::DiskStorage;
pub use memory::MemoryStorage;
#[cfg(feature = "object")]
pub use object::ObjectStorage;
pub use ops::{Listing, open_listing, perform};
pub use policy::{Policed, Policy, Usage};

use std::fmt;
use std::future::Future;
use std::io;

pub use ferry_core::{
    Entry, FileKind, Metadata, Permission, StorageError, UnixTime, VirtualPath, WriteMode,
};
use futures_io::{AsyncRead, AsyncWrite};

/// A storage failure: the kind the core turns into a reply, and what caused it, for the log.
#[derive(Debug)]
pub struct Error {
    kind: StorageError,
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` with no underlying cause.
    #[must_use]
    pub fn new(kind: StorageError) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source`.
    #[must_use]
    pub fn with_source(kind: StorageError, source: io::Error) -> Self {
        Self {
            kind,
            source: Some(source),
        }
    }

    /// What went wrong, as the core sees it.
    #[must_use]
    pub fn kind(&self) -> StorageError {
        self.kind
    }
}

impl From<StorageError> for Error {
    fn from(kind: StorageError) -> Self {
        Self::new(kind)
    }
}

impl From<io::Error> for Error {
    /// Maps an I/O error to the kind a client can act on.
    fn from(e: io::Error) -> Self {
        let kind = kind_of(&e);
        Self::with_source(kind, e)
    }
}

/// The [`StorageError`] kind for an I/O error.
#[must_use]
pub fn kind_of(e: &io::Error) -> StorageError {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => StorageError::NotFound,
        K::PermissionDenied => StorageError::PermissionDenied,
        K::AlreadyExists => StorageError::AlreadyExists,
        K::DirectoryNotEmpty => StorageError::NotEmpty,
        K::StorageFull | K::FileTooLarge => StorageError::NoSpace,
        K::QuotaExceeded => StorageError::QuotaExceeded,
        K::InvalidFilename | K::InvalidInput => StorageError::BadName,
        K::IsADirectory => StorageError::NotAFile,
        K::NotADirectory => StorageError::NotADirectory,
        _ => match e.raw_os_error() {
            // EXDEV from openat2(RESOLVE_BENEATH): the path would leave the jail. ELOOP: a
            // symlink where none may be.
            Some(18 | 40) => StorageError::PermissionDenied,
            _ => StorageError::Other,
        },
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The result of a storage call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The prefix of the disk tree's temporary files (uploads in progress, copies). Such files
/// never appear in listings, and a path with a segment that starts with it is refused
/// ([`StorageError::BadName`]) by every tree, so a client can neither see, open, replace nor
/// create one.
pub const TEMP_PREFIX: &str = ".ferry-tmp.";

/// The longest name (one path segment) in bytes: Linux's `NAME_MAX`.
pub const MAX_NAME: usize = 255;

/// Refuses, with [`StorageError::BadName`], a path that has a segment starting with
/// [`TEMP_PREFIX`] or longer than [`MAX_NAME`] bytes. Every tree calls this first on every
/// path argument, so that all trees refuse the same names in the same way.
///
/// # Errors
/// `BadName` as above.
pub fn check_names(path: &VirtualPath) -> Result<()> {
    if path
        .segments()
        .any(|s| s.len() > MAX_NAME || s.starts_with(TEMP_PREFIX))
    {
        return Err(Error::new(StorageError::BadName));
    }
    Ok(())
}

/// A file opened for reading.
pub trait ReadFile: AsyncRead + Unpin + Send + 'static {
    /// The open file's descriptor, if this reader is a plain file on disk, so that the runtime
    /// can send it with `sendfile` instead of copying through user space. The runtime then
    /// reads at explicit offsets and never uses the reader's own position.
    #[cfg(unix)]
    fn as_raw_file(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// A file being uploaded. Nothing is visible at the target until [`Upload::commit`]; dropping
/// the upload, or [`Upload::abort`], discards it and leaves any previous file as it was
/// (appends and writes at an offset are the documented exception: they change the file as
/// they go).
pub trait Upload: AsyncWrite + Unpin + Send + 'static {
    /// Flushes what was written and puts the file in place. Returns the bytes written by this
    /// upload.
    fn commit(self) -> impl Future<Output = Result<u64>> + Send;

    /// Discards the upload.
    fn abort(self) -> impl Future<Output = ()> + Send;

    /// Whether committing replaces a file that existed when the upload was opened. A runtime
    /// may take more care before committing such an upload (it would destroy the old file).
    fn replaces_existing(&self) -> bool {
        false
    }
}

/// Entries of one folder, handed out in batches without an allocation per entry.
#[derive(Debug, Default, Clone)]
pub struct EntryBatch {
    names: String,
    entries: Vec<(u32, u32, Metadata)>,
}

impl EntryBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry.
    pub fn push(&mut self, name: &str, meta: Metadata) {
        let start = u32::try_from(self.names.len()).expect("batch over 4 GiB of names");
        let len = u32::try_from(name.len()).expect("name over 4 GiB");
        self.names.push_str(name);
        self.entries.push((start, len, meta));
    }

    /// Removes every entry, keeping the memory for the next batch.
    pub fn clear(&mut self) {
        self.names.clear();
        self.entries.clear();
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `index`, if there is one.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Entry<'_>> {
        self.entries.get(index).map(|&(start, len, meta)| Entry {
            name: &self.names[start as usize..(start + len) as usize],
            meta,
        })
    }

    /// The entries in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_>> {
        self.entries.iter().map(|&(start, len, meta)| Entry {
            name: &self.names[start as usize..(start + len) as usize],
            meta,
        })
    }
}

/// A folder being listed.
pub trait Lister: Send + 'static {
    /// Appends the next entries (in byte order of their names, continuing where the last
    /// batch ended) to `batch`. Returns `false`, with nothing appended, once every entry has
    /// been handed out.
    fn next_batch(&mut self, batch: &mut EntryBatch) -> impl Future<Output = Result<bool>> + Send;
}

/// What a tree can do beyond what every tree does. A tree without one of these refuses the
/// operation with [`StorageError::Unsupported`], and the conformance suite checks exactly
/// that refusal for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Capabilities {
    /// [`WriteMode::Append`] to an existing file (`APPE`).
    pub append: bool,
    /// [`WriteMode::At`] with an offset above 0 (`REST` then `STOR`).
    pub write_at: bool,
    /// [`Storage::set_modified`] (`MFMT`).
    pub set_modified: bool,
    /// [`Storage::set_mode`] (`SITE CHMOD`).
    pub set_mode: bool,
}

impl Capabilities {
    /// Everything: the memory and disk trees.
    pub const ALL: Self = Self {
        append: true,
        write_at: true,
        set_modified: true,
        set_mode: true,
    };
}

/// A tree of files and folders, addressed by [`VirtualPath`].
///
/// Implementations must keep every operation inside their tree whatever the path (the core
/// has already normalised it lexically; a disk tree must also stop symlinks and races from
/// leading out), must never show their own temporary files, and must behave alike, which
/// the conformance suite in `tests/conformance.rs` checks.
///
/// # Adding a backend
/// Implement this trait (plus [`ReadFile`], [`Upload`] and [`Lister`] for its handles), map
/// its failures to [`StorageError`] kinds, and add it to the conformance suite with one line
/// (`conformance_suite!(my_backend, many = 10_000, |dir: &Path| MyStorage::new(..))`). Wrap
/// it in [`Audited`] to get the audit log for free. The [crate docs](crate#adding-a-backend)
/// say more.
pub trait Storage: Send + Sync + 'static {
    /// A file opened for reading.
    type Reader: ReadFile;
    /// A file being written.
    type Upload: Upload;
    /// A folder being listed.
    type Lister: Lister;

    /// What this tree can do beyond the common ground; by default everything.
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    /// What `path` is.
    fn metadata(&self, path: &VirtualPath) -> impl Future<Output = Result<Metadata>> + Send;

    /// Lists the folder `path` (`NotADirectory` if it is a file).
    fn list(&self, path: &VirtualPath) -> impl Future<Output = Result<Self::Lister>> + Send;

    /// Lists the folder `path` for its names only (`NLST`): a tree may skip what it costs to
    /// find each entry's metadata, which is then unspecified. By default, [`Storage::list`].
    fn list_names(&self, path: &VirtualPath) -> impl Future<Output = Result<Self::Lister>> + Send {
        self.list(path)
    }

    /// Opens the regular file `path` for reading from byte `offset` on. Also returns its
    /// metadata as of the opening.
    fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> impl Future<Output = Result<(Self::Reader, Metadata)>> + Send;

    /// Opens `path` for writing as `mode` says. The parent folder must exist.
    ///
    /// - [`WriteMode::Replace`]: a folder at `path` is refused (`NotAFile`) at once; the new
    ///   content replaces any file (or link) there on commit.
    /// - [`WriteMode::CreateNew`]: anything at `path` gives `AlreadyExists`, at once or, if
    ///   it appeared meanwhile, on commit; an existing file is never replaced.
    /// - [`WriteMode::Append`]: creates the file if missing; writes go to its end.
    /// - [`WriteMode::At`]`(n)`: creates the file if missing, cuts (or extends with zeros) it
    ///   to `n` bytes at once, and writes from there, so that the result is the first `n`
    ///   bytes followed by what is written (a resumed upload).
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> impl Future<Output = Result<Self::Upload>> + Send;

    /// Creates the folder `path` (its parent must exist; `AlreadyExists` if anything is there).
    fn make_dir(&self, path: &VirtualPath) -> impl Future<Output = Result<()>> + Send;

    /// Removes the empty folder `path` (`NotEmpty` otherwise; the root cannot be removed).
    fn remove_dir(&self, path: &VirtualPath) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the file `path` (`NotAFile` for a folder).
    fn remove_file(&self, path: &VirtualPath) -> impl Future<Output = Result<()>> + Send;

    /// Renames a file or folder. An existing file at `to` is replaced; an existing folder at
    /// `to` is refused (`AlreadyExists`), and so is a folder onto an existing file; a folder
    /// cannot move beneath itself (`BadName`). Renaming something onto itself succeeds and
    /// changes nothing.
    fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Copies the file `from` to `to` (replacing a file there; a folder there gives
    /// `AlreadyExists`), returning the bytes copied. Like an upload, the copy appears whole
    /// or not at all.
    fn copy(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Sets the modification time of `path`.
    fn set_modified(
        &self,
        path: &VirtualPath,
        time: UnixTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Sets the permission bits of `path`. `mode` above `0o7777` is refused (`BadName`), and
    /// so are the set-user-ID, set-group-ID and sticky bits (`0o7000`, `PermissionDenied`):
    /// a client may change permission bits only (DESIGN.md, `SITE CHMOD`).
    fn set_mode(&self, path: &VirtualPath, mode: u32) -> impl Future<Output = Result<()>> + Send;
}

/// The error of a write to an upload that was committed or aborted already.
pub(crate) fn finished() -> io::Error {
    io::Error::other("upload already finished")
}

/// `poll_flush` of a decorator's inner upload (`None` once it was committed or aborted).
pub(crate) fn poll_flush_inner<W: AsyncWrite + Unpin>(
    inner: Option<&mut W>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<io::Result<()>> {
    match inner {
        Some(w) => std::pin::Pin::new(w).poll_flush(cx),
        None => std::task::Poll::Ready(Err(finished())),
    }
}

/// `poll_close` of a decorator's inner upload (nothing to close once it is gone).
pub(crate) fn poll_close_inner<W: AsyncWrite + Unpin>(
    inner: Option<&mut W>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<io::Result<()>> {
    match inner {
        Some(w) => std::pin::Pin::new(w).poll_close(cx),
        None => std::task::Poll::Ready(Ok(())),
    }
}

/// Refuses a mode that [`Storage::set_mode`] does not accept: above `0o7777` (`BadName`) or
/// with the set-user-ID, set-group-ID or sticky bit (`PermissionDenied`).
pub(crate) fn check_mode(mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::new(StorageError::BadName));
    }
    if mode & 0o7000 != 0 {
        return Err(Error::new(StorageError::PermissionDenied));
    }
    Ok(())
}
