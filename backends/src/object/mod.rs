//! A tree in an S3-compatible bucket, through Apache OpenDAL: [`ObjectStorage`].
//!
//! A path `/a/b` is the key `a/b` under the tree's prefix (OpenDAL's root), so the jail is
//! the prefix itself: a [`VirtualPath`] is already normalised and never above `/`, and no
//! key outside the prefix can be named. A folder is a common prefix (`a/`); [`Storage::make_dir`]
//! writes an empty marker object `a/` so that an empty folder exists.
//!
//! What each operation does on a bucket:
//!
//! - **Listings** are read a page at a time. `LIST`/`MLSD`/`STAT` sort by name up to
//!   [`MAX_SORTED_ENTRIES`](crate::disk::MAX_SORTED_ENTRIES) entries within the process-wide
//!   budget of sorted listings, as the disk tree does; past it the rest comes in the store's
//!   order. `NLST` streams in the store's order. Keys no FTP path can name (empty segments
//!   from `//`, `.`, `..`, names over [`MAX_NAME`], with CR, LF or NUL, or starting with
//!   [`TEMP_PREFIX`]) are left out. A file and a folder of one name (possible in a bucket
//!   written by other tools) show as the file.
//! - **Downloads** stream the object (one GET; `REST` is a ranged GET); `SIZE` and `MDTM`
//!   come from its metadata.
//! - **Uploads** are a multipart upload of [`PART_SIZE`] parts, [`PARTS_IN_FLIGHT`] at a
//!   time, so an upload holds about `PART_SIZE * (PARTS_IN_FLIGHT + 1)` bytes whatever its
//!   size; small files are one PUT. The object appears only when the upload completes; an
//!   upload cut off is aborted (no parts left behind) and the previous object stays.
//!   `STOU` writes with `If-None-Match: *`, so that a race cannot overwrite. Appending
//!   (`APPE` to an existing file) and resuming (`REST` n > 0 then `STOR`) are refused with
//!   [`StorageError::Unsupported`]: an object cannot be changed in place.
//! - **Copies** (`SITE CPFR/CPTO`) and **renames** of a file are server-side copies (no bytes
//!   through Ferry), then a delete for the rename. A folder rename moves every key under it,
//!   at most [`MAX_RENAME_KEYS`] (`TooMany` past it, before anything moved).
//! - `MFMT` and `SITE CHMOD` are refused ([`StorageError::Unsupported`]): an object's time is
//!   when it was written, and a bucket has no permission bits.
//!
//! Errors of the store map to [`StorageError`] kinds: a missing key `NotFound` (550), access
//! denied `PermissionDenied` (550), a store that cannot be reached or answers with an error
//! `Other` (451), a full bucket or quota `NoSpace` (552 during an upload). The OpenDAL error
//! is kept as the source, for the log.
//!
//! Nothing here needs a tokio runtime: requests go through [`SmolHttp`] (async-io sockets)
//! and the parts of an upload run on one background thread of this module's own.

pub mod http;

pub use http::SmolHttp;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};

use futures_io::AsyncWrite;
use futures_lite::StreamExt as _;
use opendal::{Execute, Executor, OperationContext, Operator};

use crate::disk::listing::Held;
use crate::{
    Capabilities, EntryBatch, Error, FileKind, Lister, MAX_NAME, Metadata, ReadFile, Result,
    Storage, StorageError, TEMP_PREFIX, UnixTime, Upload, VirtualPath, WriteMode, check_mode,
    check_names,
};

/// Bytes of one part of a multipart upload (S3 wants at least 5 MiB but for the last).
pub const PART_SIZE: usize = 8 << 20;

/// Parts of one upload sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Most keys a folder rename moves: a rename is a copy and a delete per key, so a folder of
/// more keys is refused (`TooMany`, 550) rather than left half moved after minutes.
pub const MAX_RENAME_KEYS: usize = 1_000;

/// Bytes an upload gathers before it hands them to OpenDAL.
const WRITE_BUFFER: usize = 1 << 20;

/// Entries a listing asks for per page.
const PAGE: usize = 1_000;

/// Where to reach a bucket, and as whom.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The key prefix under which the tree lies (no leading or trailing `/` needed).
    pub prefix: String,
    /// The endpoint URL, e.g. `http://127.0.0.1:8333`; AWS's for the region if `None`.
    pub endpoint: Option<String>,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The access key ID.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl S3Config {
    /// The same bucket with `more` appended to the prefix (a user's home: `home/alice`).
    #[must_use]
    pub fn beneath(&self, more: &str) -> Self {
        let mut c = self.clone();
        c.prefix = join_prefix(&self.prefix, more);
        c
    }

    /// An OpenDAL operator for this bucket and prefix: static credentials only (no
    /// environment, profile files or instance metadata are read), requests through
    /// [`SmolHttp`], concurrent parts on this module's background thread.
    ///
    /// # Errors
    /// The settings are not valid for OpenDAL (an empty bucket, a bad endpoint).
    pub fn operator(&self, http: &SmolHttp) -> Result<Operator> {
        let mut b = opendal::services::S3::default()
            .bucket(&self.bucket)
            .root(&format!("/{}/", self.prefix.trim_matches('/')))
            .region(&self.region)
            .access_key_id(&self.access_key_id)
            .secret_access_key(&self.secret_access_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &self.endpoint {
            b = b.endpoint(endpoint);
        }
        let op = Operator::new(b).map_err(dal)?;
        let ctx = OperationContext::new()
            .with_http_transport(opendal::HttpTransporter::new(http.clone()))
            .with_executor(Executor::with(Background));
        Ok(op.with_context(ctx))
    }
}

/// `a` and `b` joined by one `/`, without leading or trailing ones.
fn join_prefix(a: &str, b: &str) -> String {
    let (a, b) = (a.trim_matches('/'), b.trim_matches('/'));
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// The thread where OpenDAL's concurrent work (the parts of uploads) and the aborts of
/// dropped uploads run.
fn background() -> &'static async_executor::Executor<'static> {
    static EX: OnceLock<&'static async_executor::Executor<'static>> = OnceLock::new();
    EX.get_or_init(|| {
        let ex: &'static async_executor::Executor<'static> =
            Box::leak(Box::new(async_executor::Executor::new()));
        std::thread::Builder::new()
            .name("ferry-object".into())
            .spawn(move || async_io::block_on(ex.run(futures_lite::future::pending::<()>())))
            .expect("cannot start the object store's thread");
        ex
    })
}

/// OpenDAL's executor: [`background`].
struct Background;

impl Execute for Background {
    fn execute(&self, f: opendal::raw::BoxedStaticFuture<()>) {
        background().spawn(f).detach();
    }

    fn timeout(&self) -> Option<opendal::raw::BoxedStaticFuture<()>> {
        Some(Box::pin(async {
            async_io::Timer::after(http::RESPONSE_TIMEOUT).await;
        }))
    }
}

/// The [`Error`] for an OpenDAL failure.
fn dal(e: opendal::Error) -> Error {
    use opendal::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => StorageError::NotFound,
        K::PermissionDenied => StorageError::PermissionDenied,
        K::AlreadyExists | K::ConditionNotMatch => StorageError::AlreadyExists,
        K::IsADirectory => StorageError::NotAFile,
        K::NotADirectory => StorageError::NotADirectory,
        K::Unsupported => StorageError::Unsupported,
        _ => {
            let text = e.to_string();
            if [
                "QuotaExceeded",
                "EntityTooLarge",
                "InsufficientStorage",
                "NoSpace",
            ]
            .iter()
            .any(|w| text.contains(w))
            {
                StorageError::NoSpace
            } else {
                StorageError::Other
            }
        }
    };
    Error::with_source(kind, io::Error::other(e))
}

fn fail<T>(kind: StorageError) -> Result<T> {
    Err(Error::new(kind))
}

/// The key of a file at `path` (the root is `""`).
fn key(path: &VirtualPath) -> String {
    path.as_str().trim_start_matches('/').to_owned()
}

/// The key prefix of a folder at `path` (`a/b/`; the root is `/`, OpenDAL's root).
fn dir_key(path: &VirtualPath) -> String {
    let k = key(path);
    if k.is_empty() {
        "/".to_owned()
    } else {
        format!("{k}/")
    }
}

/// A listed name that an FTP path can name, or `None`.
fn listable(name: &str) -> Option<&str> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_NAME
        || name.starts_with(TEMP_PREFIX)
        || name.contains(['/', '\r', '\n', '\0']);
    (!bad).then_some(name)
}

fn meta_of(m: &opendal::Metadata) -> Metadata {
    let modified = m
        .last_modified()
        .map(|t| UnixTime(t.into_inner().as_second()));
    if m.is_dir() {
        Metadata {
            kind: FileKind::Dir,
            size: 0,
            modified,
            mode: None,
        }
    } else {
        Metadata {
            kind: FileKind::File,
            size: m.content_length(),
            modified,
            mode: None,
        }
    }
}

const DIR: Metadata = Metadata {
    kind: FileKind::Dir,
    size: 0,
    modified: None,
    mode: None,
};

/// A tree in a bucket, under a key prefix (see the module docs). Clones share the operator
/// and its connections.
#[derive(Clone, Debug)]
pub struct ObjectStorage {
    op: Operator,
}

impl ObjectStorage {
    /// The tree that `op` (its bucket and root) holds.
    #[must_use]
    pub fn new(op: Operator) -> Self {
        Self { op }
    }

    /// The tree of `config` through `http`.
    ///
    /// # Errors
    /// See [`S3Config::operator`].
    pub fn s3(config: &S3Config, http: &SmolHttp) -> Result<Self> {
        Ok(Self::new(config.operator(http)?))
    }

    /// Makes the tree's own marker (its prefix as an empty folder) if missing, and checks on
    /// the way that the bucket can be reached with these credentials.
    ///
    /// # Errors
    /// The store refuses or cannot be reached.
    pub async fn create_root(&self) -> Result<()> {
        self.op.create_dir("/").await.map_err(dal)
    }

    /// Whether the store can be reached and the bucket listed.
    ///
    /// # Errors
    /// Why not.
    pub async fn check(&self) -> Result<()> {
        self.op.check().await.map_err(dal)
    }

    /// The file's metadata, `None` if there is no object at `key` (a folder is not one).
    async fn file(&self, key: &str) -> Result<Option<Metadata>> {
        if key.is_empty() {
            return Ok(None);
        }
        match self.op.stat(key).await {
            Ok(m) if m.is_file() => Ok(Some(meta_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(dal(e)),
        }
    }

    /// The file at `path` (key `k`), or why there is none: `NotAFile` for a folder, else
    /// what [`Self::missing`] says.
    async fn file_or_why(&self, path: &VirtualPath, k: &str) -> Result<Metadata> {
        if let Some(meta) = self.file(k).await? {
            return Ok(meta);
        }
        if path.is_root() || self.is_dir(&dir_key(path)).await? {
            return fail(StorageError::NotAFile);
        }
        self.missing(path).await
    }

    /// Whether the folder `dk` (a key ending in `/`) exists: its marker or any key under it.
    async fn is_dir(&self, dk: &str) -> Result<bool> {
        if dk == "/" {
            return Ok(true);
        }
        let mut lister = self.op.lister_with(dk).limit(1).await.map_err(dal)?;
        match lister.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Some(Err(e)) => Err(dal(e)),
            None => Ok(false),
        }
    }

    /// Whether the folder `dk` holds anything besides its own marker.
    async fn has_children(&self, dk: &str) -> Result<bool> {
        let mut lister = self.op.lister_with(dk).limit(2).await.map_err(dal)?;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(dal)?;
            let p = entry.path().trim_start_matches('/');
            if p != dk.trim_start_matches('/') {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Why `path` is not there: `NotADirectory` if a file stands on the way, else `NotFound`.
    async fn missing<T>(&self, path: &VirtualPath) -> Result<T> {
        let mut p = path.parent();
        while !p.is_root() {
            if self.file(&key(&p)).await?.is_some() {
                return fail(StorageError::NotADirectory);
            }
            if self.is_dir(&dir_key(&p)).await? {
                break;
            }
            p = p.parent();
        }
        fail(StorageError::NotFound)
    }

    /// Checks that the folder holding `path` exists.
    async fn parent_exists(&self, path: &VirtualPath) -> Result<()> {
        let p = path.parent();
        if p.is_root() || self.is_dir(&dir_key(&p)).await? {
            return Ok(());
        }
        if self.file(&key(&p)).await?.is_some() {
            return fail(StorageError::NotADirectory);
        }
        self.missing(&p).await
    }

    /// What is at `path`: a file, a folder, or nothing.
    async fn what(&self, path: &VirtualPath) -> Result<Option<Metadata>> {
        if path.is_root() {
            return Ok(Some(DIR));
        }
        if let Some(m) = self.file(&key(path)).await? {
            return Ok(Some(m));
        }
        Ok(self.is_dir(&dir_key(path)).await?.then_some(DIR))
    }

    /// Moves every key under the folder `from` to `to` (see [`MAX_RENAME_KEYS`]).
    async fn rename_dir(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        let (fk, tk) = (dir_key(from), dir_key(to));
        let mut keys = Vec::new();
        let mut lister = self
            .op
            .lister_with(&fk)
            .recursive(true)
            .await
            .map_err(dal)?;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(dal)?;
            keys.push(entry.path().trim_start_matches('/').to_owned());
            if keys.len() > MAX_RENAME_KEYS {
                return fail(StorageError::TooMany);
            }
        }
        self.op.create_dir(&tk).await.map_err(dal)?;
        let fk = fk.trim_start_matches('/');
        for k in &keys {
            let Some(rest) = k.strip_prefix(fk) else {
                continue;
            };
            let target = format!("{tk}{rest}");
            if k.ends_with('/') {
                self.op.create_dir(&target).await.map_err(dal)?;
            } else {
                self.op.copy(k, &target).await.map_err(dal)?;
            }
        }
        for k in keys.iter().rev() {
            self.op.delete(k).await.map_err(dal)?;
        }
        // A folder without a marker of its own (made by another tool) is gone with its keys.
        self.op.delete(fk).await.map_err(dal)
    }
}

impl Storage for ObjectStorage {
    type Reader = opendal::FuturesAsyncReader;
    type Upload = ObjectUpload;
    type Lister = ObjectLister;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            append: false,
            write_at: false,
            set_modified: false,
            set_mode: false,
        }
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        check_names(path)?;
        match self.what(path).await? {
            Some(m) => Ok(m),
            None => self.missing(path).await,
        }
    }

    async fn list(&self, path: &VirtualPath) -> Result<ObjectLister> {
        self.open_lister(path, true).await
    }

    async fn list_names(&self, path: &VirtualPath) -> Result<ObjectLister> {
        self.open_lister(path, false).await
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(opendal::FuturesAsyncReader, Metadata)> {
        check_names(path)?;
        let k = key(path);
        let meta = self.file_or_why(path, &k).await?;
        let start = offset.min(meta.size);
        let reader = self.op.reader(&k).await.map_err(dal)?;
        let inner = reader
            .into_futures_async_read(start..meta.size)
            .await
            .map_err(dal)?;
        Ok((inner, meta))
    }

    async fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<ObjectUpload> {
        check_names(path)?;
        if path.is_root() {
            return fail(StorageError::NotAFile);
        }
        let k = key(path);
        let dk = dir_key(path);
        // Three reads, sent together: one round trip to the store instead of three.
        let (parent, (folder, existing)) = futures_lite::future::zip(
            self.parent_exists(path),
            futures_lite::future::zip(self.is_dir(&dk), self.file(&k)),
        )
        .await;
        parent?;
        if folder? {
            return fail(match mode {
                WriteMode::CreateNew => StorageError::AlreadyExists,
                _ => StorageError::NotAFile,
            });
        }
        let existing = existing?;
        match mode {
            WriteMode::CreateNew if existing.is_some() => return fail(StorageError::AlreadyExists),
            WriteMode::Append if existing.is_some() => return fail(StorageError::Unsupported),
            WriteMode::At(n) if n > 0 => return fail(StorageError::Unsupported),
            _ => {}
        }
        let writer = self
            .op
            .writer_with(&k)
            .chunk(PART_SIZE)
            .concurrent(PARTS_IN_FLIGHT)
            .if_not_exists(mode == WriteMode::CreateNew)
            .await
            .map_err(dal)?;
        Ok(ObjectUpload {
            state: WriteState::Idle(writer),
            buf: Vec::new(),
            written: 0,
            replaces: existing.is_some(),
        })
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        if self.what(path).await?.is_some() {
            return fail(StorageError::AlreadyExists);
        }
        self.parent_exists(path).await?;
        self.op.create_dir(&dir_key(path)).await.map_err(dal)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        if path.is_root() {
            return fail(StorageError::PermissionDenied);
        }
        let dk = dir_key(path);
        if !self.is_dir(&dk).await? {
            if self.file(&key(path)).await?.is_some() {
                return fail(StorageError::NotADirectory);
            }
            return self.missing(path).await;
        }
        if self.has_children(&dk).await? {
            return fail(StorageError::NotEmpty);
        }
        self.op.delete(&dk).await.map_err(dal)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        check_names(path)?;
        let k = key(path);
        self.file_or_why(path, &k).await?;
        self.op.delete(&k).await.map_err(dal)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        check_names(from)?;
        check_names(to)?;
        if from.is_root() {
            return fail(StorageError::PermissionDenied);
        }
        let Some(source) = self.what(from).await? else {
            return self.missing(from).await;
        };
        if from == to {
            return Ok(());
        }
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        self.parent_exists(to).await?;
        if source.is_dir() && to.starts_with(from) {
            return fail(StorageError::BadName);
        }
        match self.what(to).await? {
            Some(t) if t.is_dir() || source.is_dir() => return fail(StorageError::AlreadyExists),
            _ => {}
        }
        if source.is_dir() {
            return self.rename_dir(from, to).await;
        }
        let (fk, tk) = (key(from), key(to));
        self.op.copy(&fk, &tk).await.map_err(dal)?;
        self.op.delete(&fk).await.map_err(dal)
    }

    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        check_names(from)?;
        check_names(to)?;
        let fk = key(from);
        let source = self.file_or_why(from, &fk).await?;
        if to.is_root() {
            return fail(StorageError::AlreadyExists);
        }
        self.parent_exists(to).await?;
        if self.is_dir(&dir_key(to)).await? {
            return fail(StorageError::AlreadyExists);
        }
        if from != to {
            self.op.copy(&fk, &key(to)).await.map_err(dal)?;
        }
        Ok(source.size)
    }

    async fn set_modified(&self, path: &VirtualPath, _time: UnixTime) -> Result<()> {
        self.metadata(path).await?;
        fail(StorageError::Unsupported)
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        check_mode(mode)?;
        self.metadata(path).await?;
        fail(StorageError::Unsupported)
    }
}

impl ObjectStorage {
    async fn open_lister(&self, path: &VirtualPath, sorted: bool) -> Result<ObjectLister> {
        check_names(path)?;
        let dk = dir_key(path);
        if !self.is_dir(&dk).await? {
            if self.file(&key(path)).await?.is_some() {
                return fail(StorageError::NotADirectory);
            }
            return self.missing(path).await;
        }
        let inner = self.op.lister_with(&dk).limit(PAGE).await.map_err(dal)?;
        let strip = dk.trim_start_matches('/').to_owned();
        let mut lister = ObjectLister {
            inner: Some(inner),
            strip,
            sorted: None,
            held: Held::default(),
        };
        if sorted {
            lister.sort_first().await?;
        }
        Ok(lister)
    }
}

/// A download is OpenDAL's reader as it is (one GET of the range, streamed).
impl ReadFile for opendal::FuturesAsyncReader {}

type Pending = Pin<Box<dyn Future<Output = (opendal::Writer, opendal::Result<()>)> + Send>>;

enum WriteState {
    Idle(opendal::Writer),
    Busy(Pending),
    Gone,
}

/// A file being uploaded: a multipart upload, completed on [`Upload::commit`].
pub struct ObjectUpload {
    state: WriteState,
    /// Bytes not yet handed to OpenDAL.
    buf: Vec<u8>,
    written: u64,
    replaces: bool,
}

impl ObjectUpload {
    /// Waits for the write in progress; with `flush`, hands over what is buffered too.
    fn poll_drain(&mut self, cx: &mut Context<'_>, flush: bool) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                WriteState::Busy(fut) => {
                    let (w, r) = ready!(fut.as_mut().poll(cx));
                    self.state = WriteState::Idle(w);
                    if let Err(e) = r {
                        return Poll::Ready(Err(io::Error::other(e)));
                    }
                }
                WriteState::Idle(_) if flush && !self.buf.is_empty() => {
                    let WriteState::Idle(mut w) =
                        std::mem::replace(&mut self.state, WriteState::Gone)
                    else {
                        unreachable!()
                    };
                    let data = bytes::Bytes::from(std::mem::take(&mut self.buf));
                    self.state = WriteState::Busy(Box::pin(async move {
                        let r = w.write(data).await;
                        (w, r)
                    }));
                }
                WriteState::Idle(_) => return Poll::Ready(Ok(())),
                WriteState::Gone => {
                    return Poll::Ready(Err(io::Error::other("upload already ended")));
                }
            }
        }
    }

    async fn finish(mut self) -> Result<opendal::Writer> {
        futures_lite::future::poll_fn(|cx| self.poll_drain(cx, true)).await?;
        match std::mem::replace(&mut self.state, WriteState::Gone) {
            WriteState::Idle(w) => Ok(w),
            _ => fail(StorageError::Other),
        }
    }
}

impl AsyncWrite for ObjectUpload {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= WRITE_BUFFER {
            ready!(this.poll_drain(cx, true))?;
        }
        let n = data
            .len()
            .min(WRITE_BUFFER - this.buf.len().min(WRITE_BUFFER));
        if this.buf.capacity() == 0 {
            this.buf.reserve(WRITE_BUFFER);
        }
        this.buf.extend_from_slice(&data[..n]);
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx, true)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx, true)
    }
}

impl Upload for ObjectUpload {
    async fn commit(self) -> Result<u64> {
        let written = self.written;
        let mut w = self.finish().await?;
        if let Err(e) = w.close().await {
            // No object appeared; leave no parts behind either.
            let _ = w.abort().await;
            return Err(dal(e));
        }
        Ok(written)
    }

    async fn abort(mut self) {
        let state = std::mem::replace(&mut self.state, WriteState::Gone);
        abort_writer(state).await;
    }

    fn replaces_existing(&self) -> bool {
        self.replaces
    }
}

/// Aborts the multipart upload of `state`, after the write in progress.
async fn abort_writer(state: WriteState) {
    let mut w = match state {
        WriteState::Idle(w) => w,
        WriteState::Busy(fut) => fut.await.0,
        WriteState::Gone => return,
    };
    // What cannot be aborted now is left to the bucket's lifecycle rule for incomplete
    // uploads; the object itself never appeared.
    let _ = w.abort().await;
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, WriteState::Gone);
        if !matches!(state, WriteState::Gone) {
            background().spawn(abort_writer(state)).detach();
        }
    }
}

/// A folder being listed (see the module docs for the order).
pub struct ObjectLister {
    inner: Option<opendal::Lister>,
    /// The folder's key prefix, taken off each entry's path.
    strip: String,
    /// The sorted first part of the listing, handed out first.
    sorted: Option<(EntryBatch, Vec<u32>, usize)>,
    held: Held,
}

impl ObjectLister {
    /// The next listable entry from the store, `None` at the end.
    async fn next_entry(&mut self, batch: &mut EntryBatch) -> Result<bool> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(false);
        };
        loop {
            let Some(entry) = inner.next().await else {
                self.inner = None;
                return Ok(false);
            };
            let entry = entry.map_err(dal)?;
            let path = entry.path().trim_start_matches('/');
            let Some(rest) = path.strip_prefix(self.strip.as_str()) else {
                continue;
            };
            let meta = meta_of(entry.metadata());
            let name = if meta.is_dir() {
                rest.strip_suffix('/').unwrap_or("")
            } else {
                rest
            };
            if let Some(name) = listable(name) {
                batch.push(name, meta);
                return Ok(true);
            }
        }
    }

    /// Reads up to the sorting limit and sorts it (see the module docs).
    async fn sort_first(&mut self) -> Result<()> {
        let mut batch = EntryBatch::new();
        let mut names = 0usize;
        while batch.len() < crate::disk::MAX_SORTED_ENTRIES {
            if !self.next_entry(&mut batch).await? {
                break;
            }
            names += batch.get(batch.len() - 1).map_or(0, |e| e.name.len());
            if batch.len().is_multiple_of(1024) && !self.held.set(names + batch.len() * 48) {
                break;
            }
        }
        let mut order: Vec<u32> = (0..u32::try_from(batch.len()).unwrap_or(u32::MAX)).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (batch.get(a as usize), batch.get(b as usize));
            match (x, y) {
                (Some(x), Some(y)) => (x.name, x.meta.is_dir()).cmp(&(y.name, y.meta.is_dir())),
                _ => std::cmp::Ordering::Equal,
            }
        });
        // A file and a folder of one name: the file (sorted first) stays.
        order.dedup_by(|b, a| {
            batch.get(*a as usize).map(|e| e.name) == batch.get(*b as usize).map(|e| e.name)
        });
        self.sorted = Some((batch, order, 0));
        Ok(())
    }
}

impl Lister for ObjectLister {
    async fn next_batch(&mut self, batch: &mut EntryBatch) -> Result<bool> {
        if let Some((sorted, order, next)) = self.sorted.as_mut() {
            if *next < order.len() {
                let end = (*next + PAGE).min(order.len());
                for &i in &order[*next..end] {
                    if let Some(e) = sorted.get(i as usize) {
                        batch.push(e.name, e.meta);
                    }
                }
                *next = end;
                return Ok(true);
            }
            self.sorted = None;
            self.held = Held::default();
        }
        let mut any = false;
        while batch.len() < PAGE && self.next_entry(batch).await? {
            any = true;
        }
        Ok(any)
    }
}
