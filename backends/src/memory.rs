//! [`MemoryStorage`]: a whole tree in memory, for tests and for embedding.
//!
//! Owns a tree of folders and files behind one lock; clones share it. It behaves like the
//! disk tree in every case the conformance suite and the model-based test check (the same
//! results, the same error kinds, the same order of checks), so that tests of the core and
//! the runtime that run on it say something about the disk too. It has no symlinks, no hard
//! links and no temporaries.
//!
//! - Reads see the file as it was when it was opened (contents are shared copy-on-write).
//! - Uploads that create or replace ([`WriteMode::Replace`], [`WriteMode::CreateNew`])
//!   collect their bytes in a buffer and appear on commit; appends and writes at an offset
//!   ([`WriteMode::Append`], [`WriteMode::At`]) write through to the file as they go, and keep
//!   writing to it if it is renamed or deleted meanwhile, as an open file on disk does.
//! - Modification times come from a clock, by default [`SystemTime::now`].
//! - No file grows beyond a limit ([`MemoryStorage::with_max_file_size`], 1 GiB by
//!   default): a write past it fails with `NoSpace`, as on a full disk, so that a client
//!   cannot exhaust the server's memory with one `REST` far beyond the end, and tests can
//!   provoke a full disk.
//!
//! It never touches the file system and never blocks for long: every call holds the lock
//! only for the few map operations it needs.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_io::{AsyncRead, AsyncWrite};

use crate::{
    EntryBatch, Error, FileKind, Lister, Metadata, ReadFile, Result, Storage, StorageError,
    UnixTime, Upload, VirtualPath, WriteMode, check_mode, check_names,
};

/// How many entries a [`MemoryLister`] hands out per batch.
const BATCH: usize = 1024;

/// The default limit on a file's size.
const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 30;

/// Permission bits of new files and folders (what a umask of `022` gives on disk).
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// A tree of files and folders in memory. Cheap to clone; clones share the tree.
#[derive(Clone)]
pub struct MemoryStorage {
    shared: Arc<Shared>,
}

struct Shared {
    root: Mutex<Dir>,
    clock: Clock,
    max_file_size: AtomicU64,
}

struct Dir {
    children: BTreeMap<String, Node>,
    modified: UnixTime,
    mode: u32,
}

enum Node {
    File(FileRef),
    Dir(Dir),
}

/// A file's content and attributes: shared by the tree and by appending uploads, as an inode
/// is shared by a folder entry and an open file.
type FileRef = Arc<Mutex<FileData>>;

struct FileData {
    content: Arc<Vec<u8>>,
    modified: UnixTime,
    mode: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the tree consistent (every change is one map
    // operation), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fail<T>(kind: StorageError) -> Result<T> {
    Err(Error::new(kind))
}

/// Makes `content` at least `len` bytes long (zeros), within `max`; a full disk otherwise.
fn grow(content: &mut Vec<u8>, len: u64, max: u64) -> io::Result<()> {
    let full = || io::Error::new(io::ErrorKind::StorageFull, "file size limit reached");
    let len = usize::try_from(len).map_err(|_| full())?;
    if len as u64 > max {
        return Err(full());
    }
    if len > content.len() {
        content
            .try_reserve(len - content.len())
            .map_err(|_| full())?;
        content.resize(len, 0);
    }
    Ok(())
}

fn system_now() -> UnixTime {
    let secs = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    UnixTime(secs)
}

impl FileData {
    fn new(content: Vec<u8>, now: UnixTime) -> FileRef {
        Arc::new(Mutex::new(Self {
            content: Arc::new(content),
            modified: now,
            mode: FILE_MODE,
        }))
    }

    fn meta(&self) -> Metadata {
        Metadata {
            kind: FileKind::File,
            size: self.content.len() as u64,
            modified: Some(self.modified),
            mode: Some(self.mode),
        }
    }
}

impl Dir {
    fn new(now: UnixTime) -> Self {
        Self {
            children: BTreeMap::new(),
            modified: now,
            mode: DIR_MODE,
        }
    }

    fn meta(&self) -> Metadata {
        Metadata {
            kind: FileKind::Dir,
            size: 0,
            modified: Some(self.modified),
            mode: Some(self.mode),
        }
    }

    /// The folder at `path`: `NotFound` if a segment is missing, `NotADirectory` if one is a
    /// file (as the kernel's path walk answers).
    fn dir(&self, path: &VirtualPath) -> Result<&Self> {
        path.segments()
            .try_fold(self, |cur, seg| match cur.children.get(seg) {
                Some(Node::Dir(d)) => Ok(d),
                other => fail(walk_error(other.is_some())),
            })
    }

    fn dir_mut(&mut self, path: &VirtualPath) -> Result<&mut Self> {
        path.segments()
            .try_fold(self, |cur, seg| match cur.children.get_mut(seg) {
                Some(Node::Dir(d)) => Ok(d),
                other => fail(walk_error(other.is_some())),
            })
    }

    /// What is at `path` (the root is this folder).
    fn lookup(&self, path: &VirtualPath) -> Result<NodeRef<'_>> {
        let Some(name) = path.file_name() else {
            return Ok(NodeRef::Dir(self));
        };
        let node = self.dir(&path.parent())?.children.get(name);
        node.map(NodeRef::from).ok_or_else(not_found)
    }

    fn lookup_mut(&mut self, path: &VirtualPath) -> Result<NodeMut<'_>> {
        let Some(name) = path.file_name() else {
            return Ok(NodeMut::Dir(self));
        };
        let node = self.dir_mut(&path.parent())?.children.get_mut(name);
        node.map(NodeMut::from).ok_or_else(not_found)
    }

    /// Puts `node` in this folder as `name`; the folder changes at `now`.
    fn put(&mut self, name: &str, node: Node, now: UnixTime) {
        self.children.insert(name.to_owned(), node);
        self.modified = now;
    }

    /// Takes `name` out of this folder; the folder changes at `now` if it was there.
    fn take(&mut self, name: &str, now: UnixTime) -> Option<Node> {
        let node = self.children.remove(name)?;
        self.modified = now;
        Some(node)
    }

    /// The folder that holds `path` (not the root) and `path`'s name in it.
    fn parent_mut<'p>(&mut self, path: &'p VirtualPath) -> Result<(&mut Self, &'p str)> {
        let name = path.file_name().unwrap_or_default();
        Ok((self.dir_mut(&path.parent())?, name))
    }
}

/// Why a path walk stops at a segment that is no folder: `NotADirectory` if a file is there
/// (`found`), `NotFound` if nothing is (as the kernel's path walk answers).
fn walk_error(found: bool) -> StorageError {
    if found {
        StorageError::NotADirectory
    } else {
        StorageError::NotFound
    }
}

fn not_found() -> Error {
    Error::new(StorageError::NotFound)
}

enum NodeRef<'a> {
    File(&'a FileRef),
    Dir(&'a Dir),
}

impl<'a> From<&'a Node> for NodeRef<'a> {
    fn from(node: &'a Node) -> Self {
        match node {
            Node::File(f) => Self::File(f),
            Node::Dir(d) => Self::Dir(d),
        }
    }
}

enum NodeMut<'a> {
    File(&'a FileRef),
    Dir(&'a mut Dir),
}

impl<'a> From<&'a mut Node> for NodeMut<'a> {
    fn from(node: &'a mut Node) -> Self {
        match node {
            Node::File(f) => Self::File(f),
            Node::Dir(d) => Self::Dir(d),
        }
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage").finish_non_exhaustive()
    }
}

impl MemoryStorage {
    /// An empty tree (just `/`) whose modification times come from the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(system_now)
    }

    /// An empty tree whose modification times come from `clock` (a virtual clock in tests).
    #[must_use]
    pub fn with_clock(clock: impl Fn() -> UnixTime + Send + Sync + 'static) -> Self {
        let now = clock();
        Self {
            shared: Arc::new(Shared {
                root: Mutex::new(Dir::new(now)),
                clock: Arc::new(clock),
                max_file_size: AtomicU64::new(DEFAULT_MAX_FILE_SIZE),
            }),
        }
    }

    /// Refuses (with `NoSpace`) to let any file grow beyond `bytes`. Shared by clones.
    #[must_use]
    pub fn with_max_file_size(self, bytes: u64) -> Self {
        self.shared.max_file_size.store(bytes, Ordering::Relaxed);
        self
    }

    fn max_file_size(&self) -> u64 {
        self.shared.max_file_size.load(Ordering::Relaxed)
    }

    fn now(&self) -> UnixTime {
        (self.shared.clock)()
    }

    fn tree(&self) -> MutexGuard<'_, Dir> {
        lock(&self.shared.root)
    }

    fn metadata_now(&self, path: &VirtualPath) -> Result<Metadata> {
        check_names(path)?;
        match self.tree().lookup(path)? {
            NodeRef::Dir(d) => Ok(d.meta()),
            NodeRef::File(f) => Ok(lock(f).meta()),
        }
    }

    fn list_now(&self, path: &VirtualPath) -> Result<MemoryLister> {
        check_names(path)?;
        let tree = self.tree();
        let dir = match tree.lookup(path)? {
            NodeRef::Dir(d) => d,
            NodeRef::File(_) => return fail(StorageError::NotADirectory),
        };
        // A snapshot, in one buffer of names: no allocation per entry.
        let mut entries = EntryBatch::new();
        entries.entries.reserve(dir.children.len());
        for (name, node) in &dir.children {
            let meta = match node {
                Node::Dir(d) => d.meta(),
                Node::File(f) => lock(f).meta(),
            };
            entries.push(name, meta);
        }
        Ok(MemoryLister { entries, next: 0 })
    }

    fn open_read_now(&self, path: &VirtualPath, offset: u64) -> Result<(MemoryReader, Metadata)> {
        check_names(path)?;
        match self.tree().lookup(path)? {
            NodeRef::Dir(_) => fail(StorageError::NotAFile),
            NodeRef::File(f) => {
                let f = lock(f);
                let data = Arc::clone(&f.content);
                let pos = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                Ok((MemoryReader { data, pos }, f.meta()))
            }
        }
    }

    /// Checks `path`'s names and refuses the root with `at_root`; then, holding the tree, runs
    /// `change` on the folder that holds `path`, `path`'s name in it and the time now.
    fn in_parent<T>(
        &self,
        path: &VirtualPath,
        at_root: StorageError,
        change: impl FnOnce(&mut Dir, &str, UnixTime) -> Result<T>,
    ) -> Result<T> {
        check_names(path)?;
        if path.is_root() {
            return fail(at_root);
        }
        let now = self.now();
        let mut tree = self.tree();
        let (parent, name) = tree.parent_mut(path)?;
        change(parent, name, now)
    }

    fn open_write_now(&self, path: &VirtualPath, mode: WriteMode) -> Result<MemoryUpload> {
        self.in_parent(path, StorageError::NotAFile, |parent, name, now| {
            self.open_write_in(parent, name, now, path, mode)
        })
    }

    fn open_write_in(
        &self,
        parent: &mut Dir,
        name: &str,
        now: UnixTime,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<MemoryUpload> {
        let existing = parent.children.get(name);
        let replaces =
            matches!(existing, Some(Node::File(_))) && matches!(mode, WriteMode::Replace);
        let target = match mode {
            WriteMode::Replace | WriteMode::CreateNew => {
                match existing {
                    Some(_) if mode == WriteMode::CreateNew => {
                        return fail(StorageError::AlreadyExists);
                    }
                    Some(Node::Dir(_)) => return fail(StorageError::NotAFile),
                    _ => {}
                }
                Target::Buffer {
                    buf: Vec::new(),
                    create_new: mode == WriteMode::CreateNew,
                }
            }
            WriteMode::Append | WriteMode::At(_) => {
                let file = match existing {
                    Some(Node::Dir(_)) => return fail(StorageError::NotAFile),
                    Some(Node::File(f)) => Arc::clone(f),
                    None => {
                        let f = FileData::new(Vec::new(), now);
                        parent.put(name, Node::File(Arc::clone(&f)), now);
                        f
                    }
                };
                let at = match mode {
                    WriteMode::At(n) => {
                        let mut data = lock(&file);
                        let content = Arc::make_mut(&mut data.content);
                        grow(content, n, self.max_file_size())
                            .map_err(|e| Error::with_source(StorageError::NoSpace, e))?;
                        content.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                        data.modified = now;
                        Some(usize::try_from(n).unwrap_or(usize::MAX))
                    }
                    _ => None,
                };
                Target::Through { file, at }
            }
        };
        Ok(MemoryUpload {
            storage: self.clone(),
            path: path.clone(),
            target,
            written: 0,
            replaces,
        })
    }

    fn make_dir_now(&self, path: &VirtualPath) -> Result<()> {
        self.in_parent(path, StorageError::AlreadyExists, |parent, name, now| {
            if parent.children.contains_key(name) {
                return fail(StorageError::AlreadyExists);
            }
            parent.put(name, Node::Dir(Dir::new(now)), now);
            Ok(())
        })
    }

    fn remove_dir_now(&self, path: &VirtualPath) -> Result<()> {
        self.in_parent(path, StorageError::PermissionDenied, |parent, name, now| {
            match parent.children.get(name) {
                None => return fail(StorageError::NotFound),
                Some(Node::File(_)) => return fail(StorageError::NotADirectory),
                Some(Node::Dir(d)) if !d.children.is_empty() => {
                    return fail(StorageError::NotEmpty);
                }
                Some(Node::Dir(_)) => {}
            }
            parent.take(name, now);
            Ok(())
        })
    }

    fn remove_file_now(&self, path: &VirtualPath) -> Result<()> {
        self.in_parent(
            path,
            StorageError::NotAFile,
            |parent, name, now| match parent.children.get(name) {
                None => fail(StorageError::NotFound),
                Some(Node::Dir(_)) => fail(StorageError::NotAFile),
                Some(Node::File(_)) => {
                    parent.take(name, now);
                    Ok(())
                }
            },
        )
    }

    /// The order of checks is the disk tree's, so that both give the same kind when several
    /// things are wrong at once.
    fn rename_now(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        check_names(from)?;
        check_names(to)?;
        if from.is_root() {
            return fail(StorageError::PermissionDenied);
        }
        let now = self.now();
        let mut tree = self.tree();
        let src_is_dir = matches!(tree.lookup(from)?, NodeRef::Dir(_));
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        let to_name = to.file_name().unwrap_or_default();
        if let Some(dst) = tree.dir(&to.parent())?.children.get(to_name) {
            if from == to {
                return Ok(());
            }
            if matches!(dst, Node::Dir(_)) || src_is_dir {
                return fail(StorageError::AlreadyExists);
            }
        }
        if src_is_dir && to.starts_with(from) {
            return fail(StorageError::BadName);
        }
        let (from_parent, from_name) = tree.parent_mut(from)?;
        let Some(node) = from_parent.take(from_name, now) else {
            return fail(StorageError::NotFound);
        };
        // Checked above: `to`'s parent exists and does not lie beneath `from`.
        let (to_parent, to_name) = tree.parent_mut(to)?;
        to_parent.put(to_name, node, now);
        Ok(())
    }

    fn copy_now(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        check_names(from)?;
        check_names(to)?;
        let now = self.now();
        let mut tree = self.tree();
        let content = match tree.lookup(from)? {
            NodeRef::Dir(_) => return fail(StorageError::NotAFile),
            NodeRef::File(f) => Arc::clone(&lock(f).content),
        };
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        let (parent, name) = tree.parent_mut(to)?;
        if let Some(Node::Dir(_)) = parent.children.get(name) {
            return fail(StorageError::AlreadyExists);
        }
        let len = content.len() as u64;
        let file = Arc::new(Mutex::new(FileData {
            content,
            modified: now,
            mode: FILE_MODE,
        }));
        parent.put(name, Node::File(file), now);
        Ok(len)
    }

    fn set_modified_now(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        check_names(path)?;
        match self.tree().lookup_mut(path)? {
            NodeMut::Dir(d) => d.modified = time,
            NodeMut::File(f) => lock(f).modified = time,
        }
        Ok(())
    }

    fn set_mode_now(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        check_names(path)?;
        check_mode(mode)?;
        match self.tree().lookup_mut(path)? {
            NodeMut::Dir(d) => d.mode = mode,
            NodeMut::File(f) => lock(f).mode = mode,
        }
        Ok(())
    }
}

impl Storage for MemoryStorage {
    type Reader = MemoryReader;
    type Upload = MemoryUpload;
    type Lister = MemoryLister;

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        self.metadata_now(path)
    }

    async fn list(&self, path: &VirtualPath) -> Result<MemoryLister> {
        self.list_now(path)
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(MemoryReader, Metadata)> {
        self.open_read_now(path, offset)
    }

    async fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<MemoryUpload> {
        self.open_write_now(path, mode)
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        self.make_dir_now(path)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        self.remove_dir_now(path)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        self.remove_file_now(path)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        self.rename_now(from, to)
    }

    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        self.copy_now(from, to)
    }

    async fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        self.set_modified_now(path, time)
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        self.set_mode_now(path, mode)
    }
}

/// A file of a [`MemoryStorage`] opened for reading: the content as it was when opened.
#[derive(Debug)]
pub struct MemoryReader {
    data: Arc<Vec<u8>>,
    pos: usize,
}

impl AsyncRead for MemoryReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let rest = &this.data[this.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl ReadFile for MemoryReader {}

/// An upload to a [`MemoryStorage`].
pub struct MemoryUpload {
    storage: MemoryStorage,
    path: VirtualPath,
    target: Target,
    written: u64,
    /// A file existed at the target when the upload was opened.
    replaces: bool,
}

enum Target {
    /// Replace or CreateNew: collected here, put in place on commit.
    Buffer { buf: Vec<u8>, create_new: bool },
    /// Append (`at: None`) or At: written to the file as it goes.
    Through { file: FileRef, at: Option<usize> },
}

impl fmt::Debug for MemoryUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryUpload")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl AsyncWrite for MemoryUpload {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let max = this.storage.max_file_size();
        match &mut this.target {
            Target::Buffer { buf: b, .. } => {
                let end = b.len() as u64 + buf.len() as u64;
                grow(b, end, max)?;
                let start = b.len() - buf.len();
                b[start..].copy_from_slice(buf);
            }
            Target::Through { file, at } => {
                let now = this.storage.now();
                let mut data = lock(file);
                let content = Arc::make_mut(&mut data.content);
                let pos = at.unwrap_or(content.len());
                let end = pos.saturating_add(buf.len());
                grow(content, end as u64, max)?;
                content[pos..end].copy_from_slice(buf);
                if let Some(at) = at {
                    *at = end;
                }
                data.modified = now;
            }
        }
        this.written += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl MemoryUpload {
    fn commit_now(self) -> Result<u64> {
        let Target::Buffer { buf, create_new } = self.target else {
            return Ok(self.written);
        };
        let now = self.storage.now();
        let mut tree = self.storage.tree();
        // The folder may have gone meanwhile; the checks are the disk tree's on rename.
        let (parent, name) = tree.parent_mut(&self.path)?;
        match parent.children.get(name) {
            Some(Node::Dir(_)) => return fail(StorageError::NotAFile),
            Some(_) if create_new => return fail(StorageError::AlreadyExists),
            _ => {}
        }
        let len = buf.len() as u64;
        parent
            .children
            .insert(name.to_owned(), Node::File(FileData::new(buf, now)));
        parent.modified = now;
        Ok(len)
    }
}

impl Upload for MemoryUpload {
    fn replaces_existing(&self) -> bool {
        self.replaces
    }

    async fn commit(self) -> Result<u64> {
        self.commit_now()
    }

    async fn abort(self) {}
}

/// A listing of a [`MemoryStorage`] folder: a snapshot taken when the listing started.
#[derive(Debug)]
pub struct MemoryLister {
    entries: EntryBatch,
    next: usize,
}

impl Lister for MemoryLister {
    async fn next_batch(&mut self, batch: &mut EntryBatch) -> Result<bool> {
        let end = (self.next + BATCH).min(self.entries.len());
        if self.next >= end {
            return Ok(false);
        }
        for i in self.next..end {
            if let Some(e) = self.entries.get(i) {
                batch.push(e.name, e.meta);
            }
        }
        self.next = end;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn p(s: &str) -> VirtualPath {
        VirtualPath::parse(s).unwrap()
    }

    #[test]
    fn clock_sets_times() {
        let t = Arc::new(std::sync::atomic::AtomicI64::new(100));
        let t2 = Arc::clone(&t);
        let s = MemoryStorage::with_clock(move || UnixTime(t2.load(Ordering::SeqCst)));
        block_on(async {
            s.make_dir(&p("/d")).await.unwrap();
            t.store(200, Ordering::SeqCst);
            let up = s.open_write(&p("/d/f"), WriteMode::Replace).await.unwrap();
            up.commit().await.unwrap();
            assert_eq!(
                s.metadata(&p("/d")).await.unwrap().modified,
                Some(UnixTime(200))
            );
            assert_eq!(
                s.metadata(&p("/d/f")).await.unwrap().modified,
                Some(UnixTime(200))
            );
        });
    }

    #[test]
    fn files_cannot_grow_past_the_limit() {
        use futures_lite::io::AsyncWriteExt;
        let s = MemoryStorage::new().with_max_file_size(10);
        block_on(async {
            let mut up = s.open_write(&p("/f"), WriteMode::Replace).await.unwrap();
            up.write_all(b"0123456789").await.unwrap();
            let e = up.write_all(b"x").await.unwrap_err();
            assert_eq!(crate::kind_of(&e), StorageError::NoSpace);
            assert_eq!(up.commit().await.unwrap(), 10);
            let e = s.open_write(&p("/f"), WriteMode::At(11)).await.unwrap_err();
            assert_eq!(e.kind(), StorageError::NoSpace);
            let e = s
                .open_write(&p("/f"), WriteMode::At(u64::MAX))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), StorageError::NoSpace);
            let mut up = s.open_write(&p("/f"), WriteMode::Append).await.unwrap();
            assert!(up.write_all(b"x").await.is_err());
            let mut up = s.open_write(&p("/f"), WriteMode::At(4)).await.unwrap();
            up.write_all(b"456789").await.unwrap();
            assert!(up.write_all(b"x").await.is_err());
        });
    }

    #[test]
    fn readers_see_a_snapshot() {
        use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
        let s = MemoryStorage::new();
        block_on(async {
            let mut up = s.open_write(&p("/f"), WriteMode::Replace).await.unwrap();
            up.write_all(b"old").await.unwrap();
            up.commit().await.unwrap();
            let (mut r, meta) = s.open_read(&p("/f"), 0).await.unwrap();
            assert_eq!(meta.size, 3);
            let mut up = s.open_write(&p("/f"), WriteMode::Append).await.unwrap();
            up.write_all(b"+more").await.unwrap();
            up.commit().await.unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"old");
            assert_eq!(s.metadata(&p("/f")).await.unwrap().size, 8);
        });
    }
}
