//! Where Ferry's files live, who may log in, and the record of every change.
//!
//! - [`Storage`]: the async, runtime-neutral trait every tree implements, addressed by the
//!   core's [`VirtualPath`] (already normalised, never above `/`).
//!
//! This crate never speaks FTP and never opens a socket.

use std::fmt;
use std::future::Future;
use std::io;

pub use ferry_core::{Entry, FileKind, Metadata, StorageError, UnixTime, VirtualPath, WriteMode};
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
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => StorageError::NoSpace,
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

    /// The file's descriptor, if it is a plain file on disk (for `splice`).
    #[cfg(unix)]
    fn as_raw_file(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
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
/// (`conformance_suite!(my_backend, || MyStorage::new(..))`). Wrap it in
/// [`Audited`](crate) to get the audit log for free.
pub trait Storage: Send + Sync + 'static {
    /// A file opened for reading.
    type Reader: ReadFile;
    /// A file being written.
    type Upload: Upload;
    /// A folder being listed.
    type Lister: Lister;

    /// What `path` is.
    fn metadata(&self, path: &VirtualPath) -> impl Future<Output = Result<Metadata>> + Send;

    /// Lists the folder `path` (`NotADirectory` if it is a file).
    fn list(&self, path: &VirtualPath) -> impl Future<Output = Result<Self::Lister>> + Send;

    /// Opens the regular file `path` for reading from byte `offset` on. Also returns its
    /// metadata as of the opening.
    fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> impl Future<Output = Result<(Self::Reader, Metadata)>> + Send;

    /// Opens `path` for writing as `mode` says. The parent folder must exist.
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
    /// `to` is refused (`AlreadyExists`); a folder cannot move beneath itself.
    fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Copies the file `from` to `to` (replacing a file there), returning the bytes copied.
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

    /// Sets the permission bits (`0o7777` at most) of `path`.
    fn set_mode(&self, path: &VirtualPath, mode: u32) -> impl Future<Output = Result<()>> + Send;
}
