//! The audit log: one JSON line per change a client makes, and [`Audited`], the decorator
//! that writes them for any [`Storage`] (DESIGN.md, invariant 6).
//!
//! Owns the log file and the format of its lines; never decides whether a change is allowed
//! (that is the core's and the storage's business), only whether it was recorded.
//!
//! # Format
//!
//! One JSON object per line, keys always in this order:
//!
//! ```json
//! {"time":"2026-11-23T10:52:08Z","user":"alice","client":"127.0.0.1:5555","op":"upload","path":"/a/b.txt","to":null,"bytes":123,"result":"ok"}
//! ```
//!
//! - `time`: RFC 3339, UTC, whole seconds.
//! - `instance`: the server instance that made the change, right after `time`, only in a
//!   log opened [`AuditLog::with_instance`] (a fleet's instances may share one log file).
//! - `op`: `upload` (create or replace), `append` (append or write at an offset), `delete`,
//!   `mkdir`, `rmdir`, `rename`, `copy` (a file, or a folder with everything in it, as one
//!   line), `mtime`, `chmod`; `download` and `list` only when refused ([`Op`]).
//! - `path`: the file or folder; for `rename` and `copy` the source, with the target in `to`
//!   (`null` otherwise).
//! - `bytes`: for `upload`, `append` and `copy`, the bytes written or copied (`null` when
//!   unknown, e.g. when the operation failed before any data moved); `null` otherwise.
//! - `result`: `ok`; the [`StorageError`] kind in snake case (`not_found`,
//!   `permission_denied`, `already_exists`, `not_empty`, `no_space`, `bad_name`,
//!   `not_a_file`, `not_a_directory`, `unsupported`, `too_many`, `denied` (the account's
//!   permissions), `quota_exceeded`, `hard_linked`, `other`); or `aborted` for an upload that was abandoned
//!   (aborted or dropped) before its commit: a replacing upload then changed nothing, an
//!   append kept the `bytes` it had written.
//!
//! Reads (stat, listing, download) are not audited, except those the account's per-folder
//! permissions refuse: op `download` or `list` with result `denied`. Failed changes are.
//!
//! # Writing
//!
//! The file is opened with `O_APPEND` (mode `0600` when created) and each line is handed to
//! the kernel in one `write` call, so that lines never interleave, also with another
//! process appending to the same file. Lines are written inline, on the thread that made
//! the change: one `write(2)` of a few hundred bytes into the page cache costs less than a
//! trip to a thread pool (the log is never `fsync`ed). That includes the line of an upload
//! dropped without a commit or an abort, which its `Drop` writes at once.
//!
//! # Nothing goes unrecorded
//!
//! A change whose line cannot be written fails with [`StorageError::Other`] rather than go
//! unrecorded:
//!
//! - **Uploads that create or replace** are recorded after the last byte has been written
//!   and flushed, and *before* [`Upload::commit`] puts the file in place. If the line cannot
//!   be written, the upload is aborted (the previous file stays as it was, nothing appears)
//!   and `commit` returns `Other`; the line is dropped, as nothing happened, unless part of
//!   it reached the file: then it is completed later (see below) and followed by a second
//!   line, with result `other`, that records the failure. If the commit itself fails after
//!   the line was written, a second line for the same upload records that failure too.
//! - **Every other change** (append, delete, mkdir, rmdir, rename, copy, mtime, chmod) has
//!   already happened when its line is written. If that write fails, the line is kept in
//!   memory as *pending* and the call returns `Other`, so the client is told that something
//!   went wrong.
//! - **Fail closed**: before every change, the log first retries writing its pending lines
//!   (oldest first). While it cannot, every change through any [`Audited`] sharing the log
//!   is refused with `Other` before it touches storage. Pending lines are therefore at most
//!   one per change that was already in flight when the log broke; none is dropped. Once the
//!   file can be written again (space freed, disk back), the pending lines are written, in
//!   order, and changes are accepted again.
//!
//! A line that was cut short by a partial write is completed (from where it stopped) before
//! anything else is written, so the file never holds two half lines.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_io::AsyncWrite;
use futures_lite::io::AsyncWriteExt;

use crate::{
    Error, Metadata, Result, Storage, StorageError, UnixTime, Upload, VirtualPath, WriteMode,
    finished,
};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A file created or replaced by an upload (`STOR`, `STOU`).
    Upload,
    /// A file appended to or written at an offset (`APPE`, `REST` + `STOR`).
    Append,
    /// A file deleted.
    Delete,
    /// A folder created.
    Mkdir,
    /// A folder removed.
    Rmdir,
    /// A file or folder renamed.
    Rename,
    /// A file copied on the server.
    Copy,
    /// A modification time set.
    Mtime,
    /// Permission bits set.
    Chmod,
    /// A download refused by the account's permissions (downloads are recorded only then).
    Download,
    /// A listing refused by the account's permissions (listings are recorded only then).
    List,
}

impl Op {
    /// The name in the log.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Append => "append",
            Self::Delete => "delete",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
            Self::Rename => "rename",
            Self::Copy => "copy",
            Self::Mtime => "mtime",
            Self::Chmod => "chmod",
            Self::Download => "download",
            Self::List => "list",
        }
    }
}

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It failed with this kind.
    Failed(StorageError),
    /// An upload abandoned before its commit.
    Aborted,
}

impl Outcome {
    /// The `result` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Aborted => "aborted",
            Self::Failed(kind) => match kind {
                StorageError::NotFound => "not_found",
                StorageError::PermissionDenied => "permission_denied",
                StorageError::AlreadyExists => "already_exists",
                StorageError::NotEmpty => "not_empty",
                StorageError::NoSpace => "no_space",
                StorageError::BadName => "bad_name",
                StorageError::NotAFile => "not_a_file",
                StorageError::NotADirectory => "not_a_directory",
                StorageError::Unsupported => "unsupported",
                StorageError::TooMany => "too_many",
                StorageError::Denied(_) => "denied",
                StorageError::QuotaExceeded => "quota_exceeded",
                StorageError::HardLinked => "hard_linked",
                StorageError::Other => "other",
            },
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// When (UTC).
    pub time: UnixTime,
    /// The account that made the change.
    pub user: &'a str,
    /// The client's address.
    pub client: SocketAddr,
    /// What it did.
    pub op: Op,
    /// The path, or the source of a rename or copy.
    pub path: &'a str,
    /// The target of a rename or copy.
    pub to: Option<&'a str>,
    /// Bytes written or copied, where that applies and is known.
    pub bytes: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Record<'_> {
    /// The line, with its `\n`.
    #[must_use]
    pub fn to_line(&self) -> String {
        self.to_line_of(None)
    }

    /// The line written by `instance`, if named, with its `\n`.
    #[must_use]
    pub fn to_line_of(&self, instance: Option<&str>) -> String {
        let mut s = String::with_capacity(160 + self.path.len() + self.to.map_or(0, str::len));
        s.push_str("{\"time\":\"");
        s.push_str(&rfc3339(self.time));
        if let Some(name) = instance {
            s.push_str("\",\"instance\":");
            json_string(&mut s, name);
            s.push_str(",\"user\":");
        } else {
            s.push_str("\",\"user\":");
        }
        json_string(&mut s, self.user);
        s.push_str(",\"client\":");
        json_string(&mut s, &self.client.to_string());
        s.push_str(",\"op\":\"");
        s.push_str(self.op.as_str());
        s.push_str("\",\"path\":");
        json_string(&mut s, self.path);
        s.push_str(",\"to\":");
        match self.to {
            Some(to) => json_string(&mut s, to),
            None => s.push_str("null"),
        }
        s.push_str(",\"bytes\":");
        match self.bytes {
            Some(n) => {
                let _ = write!(s, "{n}");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"result\":\"");
        s.push_str(self.outcome.as_str());
        s.push_str("\"}\n");
        s
    }
}

/// `t` as RFC 3339 in UTC: `2026-11-23T10:52:08Z`.
#[must_use]
pub fn rfc3339(t: UnixTime) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year, d.month, d.day, d.hour, d.minute, d.second
    )
}

/// Appends `v` to `out` as a JSON string (RFC 8259 §7).
fn json_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    UnixTime(secs)
}

/// The audit log: an append-only file of JSON lines, shared (in an [`Arc`]) by every
/// session's [`Audited`] storage.
pub struct AuditLog {
    state: Mutex<LogState>,
    /// Whether `pending` is non-empty, so that the common case needs no lock.
    has_pending: AtomicBool,
    /// Written into each line, if set.
    instance: Option<String>,
}

struct LogState {
    out: Box<dyn Write + Send>,
    pending: VecDeque<Pending>,
}

/// A line not (completely) written yet.
struct Pending {
    line: Vec<u8>,
    written: usize,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &io::Error) -> Error {
    Error::with_source(
        StorageError::Other,
        io::Error::new(e.kind(), format!("audit log unavailable: {e}")),
    )
}

impl LogState {
    /// Writes `p` from where it stopped. On failure `p.written` says how far it got.
    fn write_out(&mut self, p: &mut Pending) -> io::Result<()> {
        while p.written < p.line.len() {
            match self.out.write(&p.line[p.written..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                Ok(n) => p.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.flush()
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        while let Some(mut p) = self.pending.pop_front() {
            if let Err(e) = self.write_out(&mut p) {
                self.pending.push_front(p);
                return Err(e);
            }
        }
        Ok(())
    }
}

impl AuditLog {
    /// Opens (or creates, with mode `0600`) the log at `path` for appending.
    ///
    /// # Errors
    /// The error of opening the file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self::from_writer(file))
    }

    /// A log that writes to `out` (for tests, or to send lines elsewhere). Each line is
    /// passed to one `write` call (more only if that one writes part of it), then `flush`.
    pub fn from_writer(out: impl Write + Send + 'static) -> Self {
        Self {
            state: Mutex::new(LogState {
                out: Box::new(out),
                pending: VecDeque::new(),
            }),
            has_pending: AtomicBool::new(false),
            instance: None,
        }
    }

    /// Each line names `instance` (the `instance` key, after `time`).
    #[must_use]
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.instance = Some(instance.to_owned());
        self
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record (blocking). Pending lines are written first; if they or this line
    /// cannot be written, this line joins them and the error is returned.
    ///
    /// # Errors
    /// The write error.
    pub fn append(&self, record: &Record<'_>) -> io::Result<()> {
        self.write_record(record, true).map_err(|(e, _)| e)
    }

    /// Writes `record` after the pending lines. On failure the line is kept pending if
    /// `keep` or if part of it reached the file (it must then be completed); the `bool`
    /// says whether it was kept.
    fn write_record(&self, record: &Record<'_>, keep: bool) -> Result<(), (io::Error, bool)> {
        let mut state = self.lock();
        let mut p = Pending {
            line: record.to_line_of(self.instance.as_deref()).into_bytes(),
            written: 0,
        };
        let r = match state.flush_pending() {
            Ok(()) => state.write_out(&mut p),
            Err(e) => Err(e),
        };
        let r = r.map_err(|e| {
            let kept = keep || p.written > 0;
            if kept {
                state.pending.push_back(p);
            }
            (e, kept)
        });
        self.has_pending
            .store(!state.pending.is_empty(), Ordering::Release);
        r
    }

    /// Writes the pending lines (blocking). Changes are accepted again once this succeeds.
    ///
    /// # Errors
    /// The write error; the lines stay pending.
    pub fn retry_pending(&self) -> io::Result<()> {
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut state = self.lock();
        let r = state.flush_pending();
        self.has_pending
            .store(!state.pending.is_empty(), Ordering::Release);
        r
    }

    /// How many lines are waiting to be written.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

/// Who makes the changes, and where they are recorded.
#[derive(Clone)]
struct Recorder {
    log: Arc<AuditLog>,
    user: Arc<str>,
    client: SocketAddr,
}

impl Recorder {
    /// Fails closed: refuses a change while lines are pending and cannot be written.
    async fn ready(&self) -> Result<()> {
        if !self.log.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        // One short write, inline (like the line itself).
        self.log.retry_pending().map_err(|e| unavailable(&e))
    }

    fn record_now(
        &self,
        op: Op,
        path: &str,
        to: Option<&str>,
        bytes: Option<u64>,
        outcome: Outcome,
    ) -> io::Result<()> {
        self.log.append(&Record {
            time: now(),
            user: &self.user,
            client: self.client,
            op,
            path,
            to,
            bytes,
            outcome,
        })
    }

    /// Writes one line: one `O_APPEND` write of a few hundred bytes, inline (a trip to the
    /// blocking pool would cost more than the write); `Other` if it cannot.
    async fn record(
        &self,
        op: Op,
        path: &VirtualPath,
        to: Option<&VirtualPath>,
        bytes: Option<u64>,
        outcome: Outcome,
    ) -> Result<()> {
        self.record_now(
            op,
            path.as_str(),
            to.map(VirtualPath::as_str),
            bytes,
            outcome,
        )
        .map_err(|e| unavailable(&e))
    }

    /// Writes the line of an upload that is about to be committed. If it cannot be
    /// written, it is dropped (the upload will be aborted), unless part of it reached the
    /// file: then it is completed later, followed by a line that records the failure.
    async fn record_before_commit(&self, op: Op, path: &VirtualPath, bytes: u64) -> Result<()> {
        let this = self;
        let inline = move || {
            let record = |outcome| Record {
                time: now(),
                user: &this.user,
                client: this.client,
                op,
                path: path.as_str(),
                to: None,
                bytes: Some(bytes),
                outcome,
            };
            match this.log.write_record(&record(Outcome::Ok), false) {
                Ok(()) => Ok(()),
                Err((e, kept)) => {
                    if kept {
                        // Queued behind the cut line, since the log is failing.
                        let _ = this
                            .log
                            .append(&record(Outcome::Failed(StorageError::Other)));
                    }
                    Err(e)
                }
            }
        };
        inline().map_err(|e| unavailable(&e))
    }

    /// Runs a change that is complete when `f` returns, and records it.
    async fn change<T>(
        &self,
        op: Op,
        path: &VirtualPath,
        to: Option<&VirtualPath>,
        bytes: impl FnOnce(&T) -> Option<u64>,
        f: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.ready().await?;
        let r = f.await;
        let (b, outcome) = match &r {
            Ok(v) => (bytes(v), Outcome::Ok),
            Err(e) => (None, Outcome::Failed(e.kind())),
        };
        self.record(op, path, to, b, outcome).await?;
        r
    }
}

/// Any [`Storage`], with every change recorded in an [`AuditLog`] as made by one user from
/// one client address. Reads pass through unrecorded. See the [module docs](self) for what
/// happens when the log cannot be written.
pub struct Audited<S> {
    inner: S,
    ctx: Recorder,
}

impl<S: Clone> Clone for Audited<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Audited<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audited")
            .field("inner", &self.inner)
            .field("user", &self.ctx.user)
            .field("client", &self.ctx.client)
            .finish_non_exhaustive()
    }
}

impl<S> Audited<S> {
    /// Records the changes made through `inner` in `log` as `user`'s, from `client`.
    pub fn new(
        inner: S,
        log: Arc<AuditLog>,
        user: impl Into<Arc<str>>,
        client: SocketAddr,
    ) -> Self {
        Self {
            inner,
            ctx: Recorder {
                log,
                user: user.into(),
                client,
            },
        }
    }

    /// The storage underneath (changes made through it are not recorded).
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The log this records to.
    #[must_use]
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.ctx.log
    }
}

fn op_of(mode: WriteMode) -> Op {
    match mode {
        WriteMode::Replace | WriteMode::CreateNew => Op::Upload,
        WriteMode::Append | WriteMode::At(_) => Op::Append,
    }
}

impl<S: Storage> Audited<S> {
    /// Records a read that the account's permissions refused (other reads are not
    /// recorded), and hands the result on.
    async fn record_denial<T>(&self, op: Op, path: &VirtualPath, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && matches!(e.kind(), StorageError::Denied(_))
        {
            self.ctx
                .record(op, path, None, None, Outcome::Failed(e.kind()))
                .await?;
        }
        r
    }
}

impl<S: Storage> Storage for Audited<S> {
    type Reader = S::Reader;
    type Upload = AuditedUpload<S::Upload>;
    type Lister = S::Lister;

    fn capabilities(&self) -> crate::Capabilities {
        self.inner.capabilities()
    }

    fn metadata(&self, path: &VirtualPath) -> impl Future<Output = Result<Metadata>> + Send {
        self.inner.metadata(path)
    }

    async fn list_names(&self, path: &VirtualPath) -> Result<S::Lister> {
        let r = self.inner.list_names(path).await;
        self.record_denial(Op::List, path, r).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<S::Lister> {
        let r = self.inner.list(path).await;
        self.record_denial(Op::List, path, r).await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(S::Reader, Metadata)> {
        let r = self.inner.open_read(path, offset).await;
        self.record_denial(Op::Download, path, r).await
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<AuditedUpload<S::Upload>> {
        self.ctx.ready().await?;
        match self.inner.open_write(path, mode).await {
            Ok(inner) => Ok(AuditedUpload {
                inner: Some(inner),
                ctx: self.ctx.clone(),
                path: path.clone(),
                mode,
                written: 0,
            }),
            Err(e) => {
                self.ctx
                    .record(op_of(mode), path, None, None, Outcome::Failed(e.kind()))
                    .await?;
                Err(e)
            }
        }
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        let f = self.inner.make_dir(path);
        self.ctx.change(Op::Mkdir, path, None, |_| None, f).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        let f = self.inner.remove_dir(path);
        self.ctx.change(Op::Rmdir, path, None, |_| None, f).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        let f = self.inner.remove_file(path);
        self.ctx.change(Op::Delete, path, None, |_| None, f).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        let f = self.inner.rename(from, to);
        self.ctx
            .change(Op::Rename, from, Some(to), |_| None, f)
            .await
    }

    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        let f = self.inner.copy(from, to);
        self.ctx
            .change(Op::Copy, from, Some(to), |n| Some(*n), f)
            .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        let f = self.inner.set_modified(path, time);
        self.ctx.change(Op::Mtime, path, None, |_| None, f).await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        let f = self.inner.set_mode(path, mode);
        self.ctx.change(Op::Chmod, path, None, |_| None, f).await
    }
}

/// An upload through [`Audited`]: recorded on commit, abort or drop.
pub struct AuditedUpload<U> {
    /// `None` once committed or aborted.
    inner: Option<U>,
    ctx: Recorder,
    path: VirtualPath,
    mode: WriteMode,
    written: u64,
}

impl<U> fmt::Debug for AuditedUpload<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditedUpload")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<U: Upload> AsyncWrite for AuditedUpload<U> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(finished()));
        };
        let r = Pin::new(inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        crate::poll_flush_inner(self.inner.as_mut(), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        crate::poll_close_inner(self.inner.as_mut(), cx)
    }
}

impl<U: Upload> Upload for AuditedUpload<U> {
    /// Cancel-safe up to the line: if this future is dropped while the data is flushed or
    /// the line written, `Drop` discards the upload and records it as aborted.
    async fn commit(mut self) -> Result<u64> {
        let op = op_of(self.mode);
        if op != Op::Append {
            // The data must be complete before the line says so. The upload stays in `self`
            // meanwhile, so that dropping this future discards and records it.
            let flushed = match self.inner.as_mut() {
                Some(inner) => inner.flush().await,
                None => return Err(Error::with_source(StorageError::Other, finished())),
            };
            if let Err(e) = flushed {
                let e = Error::from(e);
                let bytes = self.written;
                if let Some(inner) = self.inner.take() {
                    drop(inner);
                }
                self.ctx.record_now(
                    op,
                    self.path.as_str(),
                    None,
                    Some(bytes),
                    Outcome::Failed(e.kind()),
                )?;
                return Err(e);
            }
        }
        let Some(mut inner) = self.inner.take() else {
            return Err(Error::with_source(StorageError::Other, finished()));
        };
        if op == Op::Append {
            // Written through already: record what the commit reports.
            let r = inner.commit().await;
            let (bytes, outcome) = match &r {
                Ok(n) => (Some(*n), Outcome::Ok),
                Err(e) => (Some(self.written), Outcome::Failed(e.kind())),
            };
            self.ctx
                .record(op, &self.path, None, bytes, outcome)
                .await?;
            return r;
        }
        let _ = inner.flush().await;
        let bytes = self.written;
        if let Err(e) = self.ctx.record_before_commit(op, &self.path, bytes).await {
            inner.abort().await;
            return Err(e);
        }
        match inner.commit().await {
            Ok(n) => Ok(n),
            Err(e) => {
                self.ctx
                    .record(op, &self.path, None, Some(bytes), Outcome::Failed(e.kind()))
                    .await?;
                Err(e)
            }
        }
    }

    /// Discards the upload and records it, with no await in between: nothing is lost if
    /// the caller stops polling.
    async fn abort(mut self) {
        if op_of(self.mode) == Op::Append {
            // Appends write through: what was accepted is kept, so land it before the line
            // counts it. The upload stays in `self` meanwhile, so that if this future is
            // dropped, `Drop` still records it.
            if let Some(inner) = self.inner.as_mut() {
                let _ = inner.flush().await;
            }
        }
        if let Some(inner) = self.inner.take() {
            let bytes = self.written;
            // The inner upload's drop discards a temporary (one unlink on disk) and keeps
            // what an append wrote.
            drop(inner);
            // A failure leaves the line pending, which refuses the next change.
            let _ = self.ctx.record_now(
                op_of(self.mode),
                self.path.as_str(),
                None,
                Some(bytes),
                Outcome::Aborted,
            );
        }
    }

    fn replaces_existing(&self) -> bool {
        self.inner.as_ref().is_some_and(Upload::replaces_existing)
    }
}

impl<U> Drop for AuditedUpload<U> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Discard first (the inner upload's own drop), then record; one short write.
            drop(inner);
            let _ = self.ctx.record_now(
                op_of(self.mode),
                self.path.as_str(),
                None,
                Some(self.written),
                Outcome::Aborted,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(UnixTime(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UnixTime(1_795_863_128)), "2026-11-28T10:52:08Z");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001e\u007fé""#);
    }

    #[test]
    fn outcome_names() {
        assert_eq!(
            Outcome::Failed(StorageError::NotADirectory).as_str(),
            "not_a_directory"
        );
        assert_eq!(Outcome::Failed(StorageError::NoSpace).as_str(), "no_space");
        assert_eq!(Outcome::Ok.as_str(), "ok");
        assert_eq!(Outcome::Aborted.as_str(), "aborted");
    }

    #[test]
    fn the_instance_follows_the_time() {
        let r = Record {
            time: UnixTime(0),
            user: "u",
            client: "127.0.0.1:1".parse().unwrap(),
            op: Op::Delete,
            path: "/a",
            to: None,
            bytes: None,
            outcome: Outcome::Ok,
        };
        let plain = r.to_line();
        assert!(
            plain.starts_with(r#"{"time":"1970-01-01T00:00:00Z","user":"u","#),
            "{plain}"
        );
        let named = r.to_line_of(Some("ferry-\"b\""));
        assert_eq!(
            named,
            plain.replacen(r#","user""#, r#","instance":"ferry-\"b\"","user""#, 1)
        );
    }
}
