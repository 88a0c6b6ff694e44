//! What storage reports to the core: metadata of files and folders, and error kinds.
//!
//! These are the types a backend returns (through the runtime) and the core turns into
//! replies, so that reply codes and texts live in one place (`reply.rs`:
//! [`StorageError::reply_code`]).

use core::fmt;

use crate::time::UnixTime;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link that the backend did not follow.
    Symlink,
}

/// What storage knows about a file or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// File, folder or link.
    pub kind: FileKind,
    /// Size in bytes (0 for folders where the backend has none).
    pub size: u64,
    /// Last modification, if known.
    pub modified: Option<UnixTime>,
    /// Unix permission bits (`0o644`), if the backend has them.
    pub mode: Option<u32>,
}

impl Metadata {
    /// Whether this is a folder.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }
}

/// One entry of a folder listing: a name (one segment, no `/`) and its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The entry's name within its folder.
    pub name: &'a str,
    /// What it is.
    pub meta: Metadata,
}

/// How an upload writes its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Create the file or replace it whole, atomically when the upload completes (`STOR`).
    Replace,
    /// Append to the file, creating it if missing (`APPE`).
    Append,
    /// Write from this byte offset on, keeping what comes before it (`REST` then `STOR`).
    At(u64),
    /// Create a file that must not exist yet (`STOU`).
    CreateNew,
}

/// Why a storage operation failed: the few kinds that make a difference to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageError {
    /// No such file or folder.
    NotFound,
    /// Not allowed (read-only account, permissions, a path that would leave the jail).
    PermissionDenied,
    /// The target exists already.
    AlreadyExists,
    /// The folder is not empty.
    NotEmpty,
    /// The disk or quota is full.
    NoSpace,
    /// The name is not allowed (too long, reserved, invalid for the backend).
    BadName,
    /// A regular file was needed but this is a folder or something else.
    NotAFile,
    /// A folder was needed but this is not one.
    NotADirectory,
    /// The backend cannot do this at all (appending to an object in a bucket).
    Unsupported,
    /// The operation would touch more entries than the backend does at once (a folder
    /// rename in a bucket past its limit).
    TooMany,
    /// Anything else: an I/O error, a backend that is not reachable.
    Other,
}

// The reply code and text of each kind are in `reply.rs`, with every other reply.

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for StorageError {}
