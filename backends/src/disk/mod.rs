//! [`DiskStorage`]: a folder on disk, jailed at its root with the kernel's help.
//!
//! Owns every system call Ferry makes on the files it serves. It never checks a path string
//! and then opens it: each [`VirtualPath`] is resolved *beneath* a root folder descriptor
//! opened once, by the kernel, so that no `..`, symlink, or folder swapped for a symlink
//! between two calls can lead outside the root (DESIGN.md, invariant 4).
//!
//! # How paths are resolved
//!
//! - Whole paths (to stat, list, read, append, set a time or mode) are opened with
//!   `openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any
//!   step that would leave the root, whether by an absolute symlink, a relative one that
//!   climbs out, or a rename racing with the walk (`EXDEV`, `ELOOP`, reported as
//!   `PermissionDenied`).
//! - Operations on a last component (make or remove a folder, delete, rename, create an
//!   upload's temporary, replace a file) open the *parent* folder that way and then use the
//!   `*at` calls (`mkdirat`, `unlinkat`, `renameat`, `renameat2(RENAME_NOREPLACE)`, `linkat`)
//!   with the final name. A symlink as the last component is therefore acted on itself
//!   (deleted, renamed, replaced), never followed.
//! - On kernels without `openat2` (`ENOSYS`, before Linux 5.6) paths are walked one segment
//!   at a time with `openat(O_NOFOLLOW)`, and every symlink is refused (`PermissionDenied`).
//!
//! # Symlinks and hard links
//!
//! - **Symlinks that stay inside the root are followed** when a path goes through them
//!   (reading, listing a linked folder, stat, appending, setting a time or mode), because the
//!   kernel guarantees that the walk stays beneath the root. A symlink that points outside
//!   (absolute, or relative with enough `..`) gives `PermissionDenied`; a dangling one gives
//!   `NotFound`. Nothing outside is ever opened.
//! - **In listings**, a symlink that resolves inside the root is shown with its target's
//!   metadata (a linked folder is listed as a folder); one that leads outside, dangles, or
//!   cannot be resolved is shown with [`FileKind::Symlink`] and the link's own metadata.
//! - **Hard links**: a regular file with more than one link (`st_nlink > 1`) is refused
//!   ([`StorageError::HardLinked`]) for reading, appending, writing at an offset, copying
//!   from, and setting its time or mode, since it could be a link to a file outside the root
//!   planted by someone with access to the disk. Replacing it by an upload, deleting it and
//!   renaming it only change the folder entry, so they are allowed. Trees made with hard
//!   links on purpose (rsnapshot-style backups, deduplicated archives) are served with
//!   [`DiskStorage::with_hard_links`] (`allow_hard_links` in Ferry's settings): do that only
//!   where nobody who can make links on that disk is less trusted than the FTP users.
//! - Other special files (FIFOs, sockets, devices) are listed as files of size 0 and
//!   refused for reading and writing (`NotAFile`). Opens use `O_NONBLOCK | O_NOCTTY`, so
//!   that a FIFO cannot hang a call.
//!
//! # Uploads and temporaries
//!
//! An upload that creates or replaces a file ([`WriteMode::Replace`],
//! [`WriteMode::CreateNew`]) writes to a hidden temporary beside its target, named
//! [`TEMP_PREFIX`] followed by the process id, a counter and a few random
//! bits (`.ferry-tmp.4242.17.9f3a…`), created with `O_EXCL`. [`Upload::commit`] renames it
//! over the target (`renameat`; for `CreateNew`, `renameat2(RENAME_NOREPLACE)` or, on file
//! systems without it, `linkat`, so that an existing file is never replaced), optionally
//! after `fsync` ([`DiskStorage::with_fsync`]). [`Upload::abort`], a failed commit, or
//! dropping the upload removes the temporary (on drop with one blocking `unlinkat`), so the
//! old file stays as it was and no debris is left behind. A crash can still leave
//! temporaries: [`DiskStorage::remove_stale_temporaries`] removes them, and the runtime calls
//! it once at start. Temporaries never appear in listings, and every path with a segment
//! that starts with the prefix is refused (`BadName`), so clients cannot touch them.
//!
//! Appends and writes at an offset ([`WriteMode::Append`], [`WriteMode::At`]) write through
//! to the real file: the documented exception to atomic uploads.
//!
//! Copies use the kernel's `copy_file_range` (falling back to reading and writing) into a
//! temporary beside the target, renamed into place when complete.
//!
//! Files are streamed, never held whole in memory: readers are [`async_fs::File`]s over the
//! descriptor opened beneath the root (and hand that descriptor to the runtime for
//! `sendfile`, [`ReadFile::as_raw_file`]); uploads write each chunk with one `write(2)`.
//!
//! **Where calls run.** Metadata calls (open, stat, mkdir, unlink, rename, chmod, utimes) and
//! upload writes, which take microseconds on a local file system, run inline on the calling
//! thread: handing each to a thread pool costs two context switches, more than the call.
//! The exception is the unlink of a file of 64 MiB or more, which frees its pages (12-16 ms
//! for 1 GiB): it runs on the background threads.
//! Listings (opening the folder and reading its names, and each batch of stat calls) and
//! copies, which can take long, run on the background threads (`background.rs`: two
//! threads at nice 10, so that the threads serving commands get the CPU first); fsync runs
//! on the [`blocking`] pool. One session's large folder never holds up the others on its
//! executor thread. For slow file
//! systems (NFS, FUSE), [`DiskStorage::with_blocking_pool`] moves every metadata call to the
//! pool too.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_io::{AsyncRead, AsyncWrite};
use rustix::fs::{
    self as rfs, AtFlags, CWD, FileType, Mode, OFlags, RenameFlags, ResolveFlags, SeekFrom, Stat,
    Timespec, Timestamps,
};
use rustix::io::Errno;

pub(crate) mod listing;

pub use listing::{DiskLister, MAX_SORTED_ENTRIES, SORTED_LISTINGS_BUDGET, listing_memory};

use crate::background;
use crate::{
    Error, FileKind, Metadata, ReadFile, Result, Storage, StorageError, TEMP_PREFIX, UnixTime,
    Upload, VirtualPath, WriteMode, check_mode, check_names,
};

/// How often an `openat2` that reports a concurrent rename (`EAGAIN`) is retried.
const RESOLVE_RETRIES: usize = 16;

/// A folder on disk that every operation stays beneath. Cheap to clone; clones share the
/// root descriptor and the settings.
#[derive(Clone)]
pub struct DiskStorage {
    inner: Arc<Inner>,
}

struct Inner {
    /// The root, opened once with `O_PATH | O_DIRECTORY`.
    root: OwnedFd,
    root_path: PathBuf,
    fsync: AtomicBool,
    /// Whether `openat2` is used (otherwise: walk with `O_NOFOLLOW`, refusing symlinks).
    kernel_resolve: AtomicBool,
    /// Whether metadata calls run on the blocking pool instead of inline.
    pooled: AtomicBool,
    /// Most entries a listing sorts ([`MAX_SORTED_ENTRIES`] unless set).
    max_sorted: AtomicUsize,
    /// Whether files with other hard links are served.
    hard_links: AtomicBool,
}

impl fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStorage")
            .field("root", &self.inner.root_path)
            .field("fsync", &self.inner.fsync.load(Ordering::Relaxed))
            .field(
                "kernel_resolve",
                &self.inner.kernel_resolve.load(Ordering::Relaxed),
            )
            .finish()
    }
}

fn sys<T>(r: rustix::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::from(io::Error::from(e)))
}

/// The error of long work whose background thread panicked.
fn background_panicked() -> Error {
    Error::with_source(
        StorageError::Other,
        io::Error::other("the disk work panicked on its background thread"),
    )
}

fn fail<T>(kind: StorageError) -> Result<T> {
    Err(Error::new(kind))
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

#[allow(clippy::unnecessary_cast, clippy::cast_lossless)]
fn nlink(st: &Stat) -> u64 {
    st.st_nlink as u64
}

#[allow(clippy::unnecessary_cast, clippy::cast_lossless)]
fn mtime(st: &Stat) -> i64 {
    st.st_mtime as i64
}

fn size(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

fn meta_of(st: &Stat) -> Metadata {
    let (kind, size) = match file_type(st) {
        FileType::Directory => (FileKind::Dir, size(st)),
        FileType::Symlink => (FileKind::Symlink, size(st)),
        FileType::RegularFile => (FileKind::File, size(st)),
        _ => (FileKind::File, 0),
    };
    Metadata {
        kind,
        size,
        modified: Some(UnixTime(mtime(st))),
        mode: Some(st.st_mode & 0o7777),
    }
}

/// Refuses anything but a regular file: folders and special files (`NotAFile`), and,
/// unless `hard_links`, hard-linked files (`HardLinked`; see the module docs).
fn ensure_plain_file(st: &Stat, hard_links: bool) -> Result<()> {
    match file_type(st) {
        FileType::RegularFile if nlink(st) > 1 && !hard_links => fail(StorageError::HardLinked),
        FileType::RegularFile => Ok(()),
        _ => fail(StorageError::NotAFile),
    }
}

/// A file at least this large is unlinked on the background threads: the unlink frees its
/// pages, which took 12-16 ms for 1 GiB (strace of a DELE), and would hold up every session
/// of the calling executor thread meanwhile.
const LARGE_FILE: u64 = 64 << 20;

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, with a missing entry as `None`.
fn lstat_at(dir: &OwnedFd, name: &str) -> Result<Option<Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => sys(Err(e)),
    }
}

/// A name for a new temporary: the prefix, the process id, a counter, and bits of the clock
/// so that two processes sharing a pid namespace and a folder do not collide for long.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let noise = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{TEMP_PREFIX}{}.{n}.{noise:08x}", std::process::id())
}

impl DiskStorage {
    /// A tree jailed at the folder `root`, which must exist. The root is opened once here;
    /// renaming or replacing `root` later does not move the jail.
    ///
    /// # Errors
    /// The error of opening `root` as a folder.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root_path = root.as_ref().to_path_buf();
        let fd = rfs::open(
            &root_path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let probe = rfs::openat2(
            &fd,
            c".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        );
        // ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that does not know the call.
        let kernel_resolve = !matches!(probe, Err(Errno::NOSYS | Errno::PERM));
        Ok(Self {
            inner: Arc::new(Inner {
                root: fd,
                root_path,
                fsync: AtomicBool::new(false),
                kernel_resolve: AtomicBool::new(kernel_resolve),
                pooled: AtomicBool::new(false),
                max_sorted: AtomicUsize::new(MAX_SORTED_ENTRIES),
                hard_links: AtomicBool::new(false),
            }),
        })
    }

    /// Whether files with other hard links are served (read, appended to, copied, their
    /// time or mode set) instead of refused with [`StorageError::HardLinked`]. Off by
    /// default (see the module docs). Shared by clones.
    #[must_use]
    pub fn with_hard_links(self, on: bool) -> Self {
        self.inner.hard_links.store(on, Ordering::Relaxed);
        self
    }

    /// Whether a commit (and a copy) calls `fsync` on the file and its folder before
    /// reporting success. Off by default. Shared by clones.
    #[must_use]
    pub fn with_fsync(self, on: bool) -> Self {
        self.inner.fsync.store(on, Ordering::Relaxed);
        self
    }

    /// Whether `path` still names the folder this tree is rooted at (same device and inode):
    /// false once it was removed, renamed or replaced.
    #[must_use]
    pub fn is_rooted_at(&self, path: impl AsRef<Path>) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        match (rfs::fstat(&self.inner.root), std::fs::metadata(path)) {
            (Ok(root), Ok(now)) => root.st_dev == now.dev() && root.st_ino == now.ino(),
            _ => false,
        }
    }

    /// Runs every metadata call on the blocking thread pool instead of inline: for file
    /// systems where a `stat` or `rename` can take milliseconds (NFS, FUSE). Off by default;
    /// shared by clones.
    #[must_use]
    pub fn with_blocking_pool(self, on: bool) -> Self {
        self.inner.pooled.store(on, Ordering::Relaxed);
        self
    }

    /// Lists folders of more than `entries` entries in the file system's order instead of
    /// sorting them ([`MAX_SORTED_ENTRIES`] by default; see [`DiskLister`]). Shared by clones.
    #[must_use]
    pub fn with_sorted_listing_limit(self, entries: usize) -> Self {
        self.inner.max_sorted.store(entries, Ordering::Relaxed);
        self
    }

    /// Resolves paths by walking them one segment at a time and refusing every symlink,
    /// as on kernels without `openat2`. For tests of that fallback; shared by clones.
    #[must_use]
    pub fn resolve_by_walking(self) -> Self {
        self.inner.kernel_resolve.store(false, Ordering::Relaxed);
        self
    }

    /// The folder this tree is jailed at, as given to [`DiskStorage::new`].
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.inner.root_path
    }

    /// Removes the temporaries that a crash left behind anywhere in the tree (files whose
    /// name starts with [`TEMP_PREFIX`]), and returns how many it removed. Walks the tree
    /// without following any symlink. Blocking: call it before serving, or on a blocking
    /// thread. Uploads in progress in this process would lose their temporary, so call it
    /// only at start.
    ///
    /// # Errors
    /// The first error other than a file or folder vanishing during the walk.
    pub fn remove_stale_temporaries(&self) -> io::Result<u64> {
        let inner = &self.inner;
        let mut removed = 0;
        let mut pending = vec![String::new()];
        while let Some(rel) = pending.pop() {
            let dir = match inner.walk(&rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(e.into()),
            };
            let reading = rfs::openat(
                &dir,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            for entry in rfs::Dir::new(reading)? {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let kind = match entry.file_type() {
                    FileType::Unknown => match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => file_type(&st),
                        Err(_) => continue,
                    },
                    t => t,
                };
                if name.starts_with(TEMP_PREFIX) && kind == FileType::RegularFile {
                    match rfs::unlinkat(&dir, name, AtFlags::empty()) {
                        Ok(()) => removed += 1,
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else if kind == FileType::Directory {
                    pending.push(if rel.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{rel}/{name}")
                    });
                }
            }
        }
        Ok(removed)
    }

    /// Runs long work `f` on a lower-priority background thread (`background.rs`).
    async fn in_background<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        background::run(move || f(&inner))
            .await
            .unwrap_or_else(|| Err(background_panicked()))
    }

    /// Runs a short metadata call `f` inline, or on the blocking pool if the tree was told
    /// to ([`DiskStorage::with_blocking_pool`]).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if !self.inner.pooled.load(Ordering::Relaxed) {
            return f(&self.inner);
        }
        let inner = Arc::clone(&self.inner);
        blocking::unblock(move || f(&inner)).await
    }
}

impl Inner {
    fn fsync(&self) -> bool {
        self.fsync.load(Ordering::Relaxed)
    }

    /// Opens `rel` (a [`VirtualPath::relative`]: no leading `/`, no `.`/`..`, empty for the
    /// root) beneath the root.
    fn resolve(&self, rel: &str, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        if !self.kernel_resolve.load(Ordering::Relaxed) {
            return self.walk(rel, flags, mode);
        }
        let path = if rel.is_empty() { "." } else { rel };
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.root,
                path,
                flags | OFlags::CLOEXEC,
                mode,
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::AGAIN | Errno::INTR) if tries < RESOLVE_RETRIES => tries += 1,
                Err(Errno::NOSYS) => {
                    self.kernel_resolve.store(false, Ordering::Relaxed);
                    return self.walk(rel, flags, mode);
                }
                r => return r,
            }
        }
    }

    /// The fallback without `openat2`: one `openat(O_NOFOLLOW)` per segment, refusing every
    /// symlink with `ELOOP`.
    fn walk(&self, rel: &str, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let Some((last, dirs)) = segments.split_last() else {
            return rfs::openat(&self.root, c".", flags | OFlags::CLOEXEC, mode);
        };
        let mut cur: Option<OwnedFd> = None;
        for seg in dirs {
            let at = cur.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
            let next = open_no_follow(at, seg, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
            cur = Some(next);
        }
        let at = cur.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
        open_no_follow(at, last, flags, mode)
    }

    /// Opens the folder that holds `path` (which is not the root) beneath the root, and
    /// returns it with `path`'s last segment.
    fn parent<'p>(&self, path: &'p VirtualPath) -> Result<(OwnedFd, &'p str)> {
        let fd = sys(self.resolve(
            path.parent().relative(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        ))?;
        Ok((fd, path.file_name().unwrap_or_default()))
    }

    /// Creates a new temporary in `dir` for the entry `target`.
    fn create_temp(&self, dir: OwnedFd, target: &str, create_new: bool) -> Result<(OwnedFd, Temp)> {
        loop {
            let name = temp_name();
            match rfs::openat(
                &dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            ) {
                Ok(fd) => {
                    return Ok((
                        fd,
                        Temp {
                            dir,
                            name,
                            target: target.to_owned(),
                            create_new,
                            fsync: self.fsync(),
                            done: false,
                        },
                    ));
                }
                Err(Errno::EXIST) => {}
                Err(e) => return sys(Err(e)),
            }
        }
    }

    fn metadata(&self, rel: &str) -> Result<Metadata> {
        let fd = sys(self.resolve(rel, OFlags::PATH, Mode::empty()))?;
        Ok(meta_of(&sys(rfs::fstat(&fd))?))
    }

    fn open_read(&self, rel: &str, offset: u64) -> Result<(std::fs::File, Metadata)> {
        let (fd, st) = self.open_to_read(rel)?;
        ensure_plain_file(&st, self.hard_links.load(Ordering::Relaxed))?;
        sys(rfs::fcntl_setfl(&fd, OFlags::empty()))?;
        sys(rfs::seek(&fd, SeekFrom::Start(offset)))?;
        Ok((std::fs::File::from(fd), meta_of(&st)))
    }

    fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<Opened> {
        match mode {
            WriteMode::Replace | WriteMode::CreateNew => {
                let (dir, name) = self.parent(path)?;
                let create_new = mode == WriteMode::CreateNew;
                let existing = lstat_at(&dir, name)?;
                match existing {
                    Some(_) if create_new => return fail(StorageError::AlreadyExists),
                    Some(st) if file_type(&st) == FileType::Directory => {
                        return fail(StorageError::NotAFile);
                    }
                    _ => {}
                }
                let (fd, temp) = self.create_temp(dir, name, create_new)?;
                Ok(Opened {
                    file: std::fs::File::from(fd),
                    temp: Some(temp),
                    base: 0,
                    replaces: existing.is_some(),
                })
            }
            WriteMode::Append | WriteMode::At(_) => {
                let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK | OFlags::NOCTTY;
                if mode == WriteMode::Append {
                    flags |= OFlags::APPEND;
                }
                let fd = match self.resolve(path.relative(), flags, Mode::from_raw_mode(0o666)) {
                    // A FIFO without a reader (O_NONBLOCK), a device without a driver.
                    Err(Errno::NXIO | Errno::NODEV) => return fail(StorageError::NotAFile),
                    r => sys(r)?,
                };
                let st = sys(rfs::fstat(&fd))?;
                ensure_plain_file(&st, self.hard_links.load(Ordering::Relaxed))?;
                sys(rfs::fcntl_setfl(
                    &fd,
                    if mode == WriteMode::Append {
                        OFlags::APPEND
                    } else {
                        OFlags::empty()
                    },
                ))?;
                let base = match mode {
                    WriteMode::At(n) => {
                        sys(rfs::ftruncate(&fd, n))?;
                        sys(rfs::seek(&fd, SeekFrom::Start(n)))?;
                        n
                    }
                    _ => size(&st),
                };
                Ok(Opened {
                    file: std::fs::File::from(fd),
                    temp: None,
                    base,
                    replaces: false,
                })
            }
        }
    }

    fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        let (dir, name) = self.parent(path)?;
        sys(rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o777)))
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() {
            return fail(StorageError::PermissionDenied);
        }
        let (dir, name) = self.parent(path)?;
        sys(rfs::unlinkat(&dir, name, AtFlags::REMOVEDIR))
    }

    /// Removes the file; but leaves a file of at least [`LARGE_FILE`] bytes alone and returns
    /// `false` unless `large_too`.
    fn remove_file(&self, path: &VirtualPath, large_too: bool) -> Result<bool> {
        if path.is_root() {
            return fail(StorageError::NotAFile);
        }
        let (dir, name) = self.parent(path)?;
        if !large_too && lstat_at(&dir, name)?.is_some_and(|st| size(&st) >= LARGE_FILE) {
            return Ok(false);
        }
        sys(rfs::unlinkat(&dir, name, AtFlags::empty()))?;
        Ok(true)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        if from.is_root() {
            return fail(StorageError::PermissionDenied);
        }
        let (from_dir, from_name) = self.parent(from)?;
        let Some(src) = lstat_at(&from_dir, from_name)? else {
            return fail(StorageError::NotFound);
        };
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        let src_is_dir = file_type(&src) == FileType::Directory;
        let (to_dir, to_name) = self.parent(to)?;
        if let Some(dst) = lstat_at(&to_dir, to_name)? {
            if dst.st_dev == src.st_dev && dst.st_ino == src.st_ino {
                // The same file (renamed onto itself, or a second hard link): nothing to do,
                // as rename(2) does.
                return Ok(());
            }
            if file_type(&dst) == FileType::Directory || src_is_dir {
                return fail(StorageError::AlreadyExists);
            }
        }
        if src_is_dir && to.starts_with(from) {
            return fail(StorageError::BadName);
        }
        match rfs::renameat(&from_dir, from_name, &to_dir, to_name) {
            // Beneath itself through a symlink, or a folder that appeared meanwhile.
            Err(Errno::INVAL) => fail(StorageError::BadName),
            Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST | Errno::NOTDIR) => {
                fail(StorageError::AlreadyExists)
            }
            r => sys(r),
        }
    }

    fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        let (src, st) = self.open_to_read(from.relative())?;
        ensure_plain_file(&st, self.hard_links.load(Ordering::Relaxed))?;
        sys(rfs::fcntl_setfl(&src, OFlags::empty()))?;
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        let (dir, name) = self.parent(to)?;
        if let Some(st) = lstat_at(&dir, name)?
            && file_type(&st) == FileType::Directory
        {
            return fail(StorageError::AlreadyExists);
        }
        let (dst, temp) = self.create_temp(dir, name, false)?;
        let copied = copy_data(&src, &dst).map_err(Error::from)?;
        if temp.fsync {
            sys(rfs::fsync(&dst))?;
        }
        drop(dst);
        temp.commit()?;
        Ok(copied)
    }

    /// Opens `rel` as `O_PATH` (following symlinks that stay inside) for a change of its
    /// attributes, refusing hard-linked files.
    /// Opens `rel` to read it (not waiting for a FIFO's writer, never as a controlling
    /// terminal) and stats what it opened.
    fn open_to_read(&self, rel: &str) -> Result<(OwnedFd, Stat)> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = sys(self.resolve(rel, flags, Mode::empty()))?;
        let st = sys(rfs::fstat(&fd))?;
        Ok((fd, st))
    }

    fn open_for_attributes(&self, rel: &str) -> Result<(OwnedFd, Stat)> {
        let fd = sys(self.resolve(rel, OFlags::PATH, Mode::empty()))?;
        let st = sys(rfs::fstat(&fd))?;
        if file_type(&st) == FileType::RegularFile
            && nlink(&st) > 1
            && !self.hard_links.load(Ordering::Relaxed)
        {
            return fail(StorageError::HardLinked);
        }
        Ok((fd, st))
    }

    fn set_modified(&self, rel: &str, time: UnixTime) -> Result<()> {
        let (fd, _) = self.open_for_attributes(rel)?;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: time.0,
                tv_nsec: 0,
            },
        };
        match rfs::utimensat(&fd, c"", &times, AtFlags::EMPTY_PATH) {
            // Kernels that do not take AT_EMPTY_PATH here: through our own descriptor's
            // entry in /proc, which names exactly the file we opened.
            Err(Errno::INVAL) => sys(rfs::utimensat(
                CWD,
                proc_fd_path(&fd).as_str(),
                &times,
                AtFlags::empty(),
            )),
            r => sys(r),
        }
    }

    fn set_mode(&self, rel: &str, mode: u32) -> Result<()> {
        let (fd, st) = self.open_for_attributes(rel)?;
        let mode = Mode::from_raw_mode(mode);
        match file_type(&st) {
            // "." beneath the folder's own descriptor is the folder itself: no lookup that a
            // symlink could redirect.
            FileType::Directory => sys(rfs::chmodat(&fd, c".", mode, AtFlags::empty())),
            // fchmod does not take an O_PATH descriptor; /proc/self/fd/N names exactly the
            // file that descriptor holds. Without /proc, reopen beneath the root and check
            // that it is still the same file.
            FileType::RegularFile => {
                match rfs::chmodat(CWD, proc_fd_path(&fd).as_str(), mode, AtFlags::empty()) {
                    Err(Errno::NOENT) => {
                        let (file, again) = self.open_to_read(rel)?;
                        if again.st_dev != st.st_dev || again.st_ino != st.st_ino {
                            return fail(StorageError::Other);
                        }
                        sys(rfs::fchmod(&file, mode))
                    }
                    r => sys(r),
                }
            }
            _ => fail(StorageError::PermissionDenied),
        }
    }
}

/// `openat(at, name, flags | O_NOFOLLOW)`, reporting a symlink as `ELOOP` whatever the
/// flags (`O_PATH | O_NOFOLLOW` would open the link itself; `O_DIRECTORY | O_NOFOLLOW` would
/// say `ENOTDIR`).
fn open_no_follow(
    at: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    match rfs::openat(at, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode) {
        Ok(fd) => {
            if flags.contains(OFlags::PATH) && file_type(&rfs::fstat(&fd)?) == FileType::Symlink {
                return Err(Errno::LOOP);
            }
            Ok(fd)
        }
        Err(Errno::NOTDIR) => match rfs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Symlink => Err(Errno::LOOP),
            _ => Err(Errno::NOTDIR),
        },
        Err(e) => Err(e),
    }
}

fn proc_fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Copies all of `src` (from its current offset) to `dst` with `copy_file_range`, falling
/// back to reading and writing where the kernel or file system cannot.
fn copy_data(src: &OwnedFd, dst: &OwnedFd) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match rfs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(Errno::INTR) => {}
            Err(
                Errno::XDEV
                | Errno::INVAL
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::BADF
                | Errno::PERM,
            ) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Both offsets have advanced by what was copied so far; go on from there.
    let mut buf = vec![0u8; 64 * 1024];
    let (mut src, mut dst) = (
        std::fs::File::from(src.try_clone()?),
        std::fs::File::from(dst.try_clone()?),
    );
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A temporary beside its target, removed on drop unless it was renamed into place.
struct Temp {
    dir: OwnedFd,
    name: String,
    target: String,
    create_new: bool,
    fsync: bool,
    done: bool,
}

impl Temp {
    /// Puts the temporary in place (blocking).
    fn commit(mut self) -> Result<()> {
        if self.create_new {
            match rfs::renameat_with(
                &self.dir,
                self.name.as_str(),
                &self.dir,
                self.target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => self.done = true,
                // A file system without RENAME_NOREPLACE: link (which never replaces), then
                // let drop remove the temporary's name.
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => sys(rfs::linkat(
                    &self.dir,
                    self.name.as_str(),
                    &self.dir,
                    self.target.as_str(),
                    AtFlags::empty(),
                ))?,
                Err(e) => return sys(Err(e)),
            }
        } else {
            match rfs::renameat(
                &self.dir,
                self.name.as_str(),
                &self.dir,
                self.target.as_str(),
            ) {
                Ok(()) => self.done = true,
                Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => {
                    return fail(StorageError::NotAFile);
                }
                Err(e) => return sys(Err(e)),
            }
        }
        if self.fsync {
            let dir = sys(rfs::openat(
                &self.dir,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ))?;
            sys(rfs::fsync(&dir))?;
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.done {
            // One syscall; nothing to do if it fails (remove_stale_temporaries will).
            let _ = rfs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// What `open_write` hands back from the blocking pool.
struct Opened {
    file: std::fs::File,
    temp: Option<Temp>,
    base: u64,
    replaces: bool,
}

impl DiskStorage {
    async fn lister(&self, path: &VirtualPath, names_only: bool) -> Result<DiskLister> {
        check_names(path)?;
        // Reading a folder can take long (all its names, for a sorted listing): off the
        // executor, so that other sessions keep going meanwhile.
        let (path, inner) = (path.clone(), Arc::clone(&self.inner));
        background::run(move || inner.list(path.relative(), names_only))
            .await
            .unwrap_or_else(|| Err(background_panicked()))
    }
}

impl Storage for DiskStorage {
    type Reader = DiskReader;
    type Upload = DiskUpload;
    type Lister = DiskLister;

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        check_names(path)?;
        let path = path.clone();
        self.run(move |inner| inner.metadata(path.relative())).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<DiskLister> {
        self.lister(path, false).await
    }

    /// Names only: no `stat` per entry (`NLST` of a large folder is then as fast as reading it).
    async fn list_names(&self, path: &VirtualPath) -> Result<DiskLister> {
        self.lister(path, true).await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(DiskReader, Metadata)> {
        check_names(path)?;
        let path = path.clone();
        let (file, meta) = self
            .run(move |inner| inner.open_read(path.relative(), offset))
            .await?;
        Ok((
            DiskReader {
                file: async_fs::File::from(file),
            },
            meta,
        ))
    }

    async fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<DiskUpload> {
        check_names(path)?;
        if path.is_root() {
            return fail(StorageError::NotAFile);
        }
        let path = path.clone();
        let opened = self.run(move |inner| inner.open_write(&path, mode)).await?;
        Ok(DiskUpload {
            file: Some(opened.file),
            temp: opened.temp,
            base: opened.base,
            fsync: self.inner.fsync(),
            replaces: opened.replaces,
        })
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        let path = path.clone();
        self.run(move |inner| inner.make_dir(&path)).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        let path = path.clone();
        self.run(move |inner| inner.remove_dir(&path)).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        let here = path.clone();
        if self
            .run(move |inner| inner.remove_file(&here, false))
            .await?
        {
            return Ok(());
        }
        // Freeing a large file's pages takes milliseconds: not on the caller's thread.
        let path = path.clone();
        self.in_background(move |inner| inner.remove_file(&path, true).map(drop))
            .await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        check_names(from)?;
        check_names(to)?;
        let (from, to) = (from.clone(), to.clone());
        self.run(move |inner| inner.rename(&from, &to)).await
    }

    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        check_names(from)?;
        check_names(to)?;
        let (from, to) = (from.clone(), to.clone());
        // A copy moves the whole file: on the pool.
        self.in_background(move |inner| inner.copy(&from, &to))
            .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        check_names(path)?;
        let path = path.clone();
        self.run(move |inner| inner.set_modified(path.relative(), time))
            .await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        check_names(path)?;
        check_mode(mode)?;
        let path = path.clone();
        self.run(move |inner| inner.set_mode(path.relative(), mode))
            .await
    }
}

/// A regular file of a [`DiskStorage`] opened for reading.
#[derive(Debug)]
pub struct DiskReader {
    file: async_fs::File,
}

impl AsyncRead for DiskReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl ReadFile for DiskReader {
    fn as_raw_file(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }
}

/// An upload to a [`DiskStorage`]: a temporary beside the target (create or replace), or
/// the file itself (append, write at an offset).
#[derive(Debug)]
pub struct DiskUpload {
    /// `None` once committed or aborted.
    file: Option<std::fs::File>,
    temp: Option<Temp>,
    /// The file's size when opened (append) or the offset (at); 0 for a temporary.
    base: u64,
    fsync: bool,
    /// A file existed at the target when the temporary was made.
    replaces: bool,
}

impl fmt::Debug for Temp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Temp")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn finished() -> io::Error {
    io::Error::other("upload already finished")
}

impl AsyncWrite for DiskUpload {
    /// One `write(2)` into the page cache, inline (see the module docs).
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.file.as_ref() {
            Some(mut f) => Poll::Ready(f.write(buf)),
            None => Poll::Ready(Err(finished())),
        }
    }

    /// Nothing is buffered in user space.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.file {
            Some(_) => Poll::Ready(Ok(())),
            None => Poll::Ready(Err(finished())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Upload for DiskUpload {
    async fn commit(mut self) -> Result<u64> {
        let Some(file) = self.file.take() else {
            return Err(Error::with_source(StorageError::Other, finished()));
        };
        let temp = self.temp.take();
        let base = self.base;
        let fsync = self.fsync;
        let finish = move || {
            if fsync {
                sys(rfs::fsync(&file))?;
            }
            let st = sys(rfs::fstat(&file))?;
            drop(file);
            if let Some(temp) = temp {
                temp.commit()?;
            }
            Ok(size(&st).saturating_sub(base))
        };
        if fsync {
            // fsync can take long: on the pool (`Temp::commit` syncs the folder too).
            return blocking::unblock(finish).await;
        }
        finish()
    }

    async fn abort(mut self) {
        // One unlink of the temporary, inline.
        drop((self.file.take(), self.temp.take()));
    }

    fn replaces_existing(&self) -> bool {
        self.replaces
    }
}
