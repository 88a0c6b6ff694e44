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
    /// The account's permissions do not allow this here (per-folder rules).
    Denied(Permission),
    /// The account's quota (bytes or files) would be passed.
    QuotaExceeded,
    /// The file has other hard links, which the server is set to refuse.
    HardLinked,
    /// Anything else: an I/O error, a backend that is not reachable.
    Other,
}

/// What an account may do in a folder: one permission of its per-folder rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List the folder (`LIST`, `NLST`, `MLSD`, `STAT` path).
    List,
    /// Download a file (`RETR`).
    Download,
    /// Upload a new file (`STOR`, `STOU`).
    Upload,
    /// Replace an existing file by an upload.
    Overwrite,
    /// Append to a file or resume an upload (`APPE`, `REST` + `STOR`).
    Append,
    /// Delete a file (`DELE`).
    Delete,
    /// Rename a file or folder (`RNFR`/`RNTO`), at the source and at the target.
    Rename,
    /// Make a folder (`MKD`).
    Mkdir,
    /// Remove a folder (`RMD`).
    Rmdir,
    /// Copy on the server (`SITE CPFR`/`CPTO`), at the target.
    Copy,
    /// Change permission bits (`SITE CHMOD`).
    Chmod,
    /// Set a modification time (`MFMT`).
    Mtime,
}

impl Permission {
    /// Every permission, in the order above.
    pub const ALL: [Self; 12] = [
        Self::List,
        Self::Download,
        Self::Upload,
        Self::Overwrite,
        Self::Append,
        Self::Delete,
        Self::Rename,
        Self::Mkdir,
        Self::Rmdir,
        Self::Copy,
        Self::Chmod,
        Self::Mtime,
    ];

    /// Its name in settings and logs (`list`, `download`, `upload`, `overwrite`, `append`,
    /// `delete`, `rename`, `mkdir`, `rmdir`, `copy`, `chmod`, `mtime`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Download => "download",
            Self::Upload => "upload",
            Self::Overwrite => "overwrite",
            Self::Append => "append",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
            Self::Copy => "copy",
            Self::Chmod => "chmod",
            Self::Mtime => "mtime",
        }
    }

    /// The permission named `name` (as [`Permission::as_str`] gives it).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

// The reply code and text of each kind are in `reply.rs`, with every other reply.

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for StorageError {}
