//! Moving bytes: the pumps between storage and a data connection.
//!
//! A transfer has two halves. [`open`] runs first, inline: it opens the file, upload or
//! listing, so that a missing file is a 550 *before* any 150. Then, once the 150 reply is
//! written, [`run`] has the data connection made ([`crate::data`]) and moves the bytes:
//! through one pooled buffer (with the core's ASCII conversion for TYPE A), with `sendfile`
//! for plain downloads from disk, or as listing pieces written by the backends' listing
//! writer. It reports the bytes moved or why it stopped. Dropping the future of [`run`]
//! aborts the transfer: the data socket closes and an unfinished upload is discarded.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use ferry_backends::{Listing, ReadFile, Storage, Upload, open_listing};
use ferry_core::{FromNetwork, StorageError, ToNetwork, TransferError, TransferKind};
use smol::Timer;
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::bulk::Bulk;
use crate::clock::{timeout, unix_now};
use crate::data::{self, DataLink, DataStream};
use crate::policy::{Limits as RateLimits, MIN_WAIT};

/// Buffer for one transfer's bytes: large enough for few system calls, small enough that
/// thousands of transfers fit in memory.
const BUF: usize = 256 * 1024;

/// Transfer buffers, reused: allocating and zeroing 256 KiB for each transfer showed in
/// profiles of many small transfers. At most [`POOLED_BUFFERS`] are kept.
static BUFFERS: std::sync::Mutex<Vec<Box<[u8]>>> = std::sync::Mutex::new(Vec::new());

/// Buffers kept for reuse (16 MiB at most).
const POOLED_BUFFERS: usize = 64;

/// A transfer buffer from the pool, returned to it on drop.
struct Buffer(Option<Box<[u8]>>);

impl Buffer {
    fn take() -> Self {
        let pooled = BUFFERS.lock().ok().and_then(|mut b| b.pop());
        Self(Some(
            pooled.unwrap_or_else(|| vec![0u8; BUF].into_boxed_slice()),
        ))
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut pool)) = (self.0.take(), BUFFERS.lock())
            && pool.len() < POOLED_BUFFERS
        {
            pool.push(b);
        }
    }
}

/// Largest `sendfile` call: the stall timer restarts after each.
const SENDFILE_CHUNK: usize = 1 << 20;

/// A listing is written in pieces of about this size (each one write), on a data
/// connection and on the control connection (`STAT path`) alike: large enough for few
/// writes, small enough that no listing is held whole.
pub(crate) const LIST_PIECE: usize = 64 * 1024;

/// Room for the line that takes a listing piece past [`LIST_PIECE`], so that the buffer never
/// grows.
const LIST_LINE_ROOM: usize = 1024;

/// What [`open`] prepared.
pub(crate) enum Prepared<S: Storage> {
    /// A file to send.
    Send { reader: S::Reader, offset: u64 },
    /// A file being received.
    Receive { upload: S::Upload },
    /// A listing to write.
    List(Listing<S::Lister>),
}

/// Opens what a transfer reads or writes. Returns it and the size to announce in the 150.
pub(crate) async fn open<S: Storage>(
    storage: &S,
    kind: &TransferKind,
) -> Result<(Prepared<S>, Option<u64>), ferry_backends::Error> {
    match kind {
        TransferKind::Retrieve { path, offset } => {
            let (reader, meta) = storage.open_read(path, *offset).await?;
            if !meta.is_file() {
                return Err(StorageError::NotAFile.into());
            }
            let offset = *offset;
            Ok((Prepared::Send { reader, offset }, Some(meta.size)))
        }
        TransferKind::Store { path, mode } => {
            let upload = storage.open_write(path, *mode).await?;
            Ok((Prepared::Receive { upload }, None))
        }
        TransferKind::List(request) => {
            let listing = open_listing(storage, request, unix_now()).await?;
            Ok((Prepared::List(listing), None))
        }
    }
}

/// Settings of the pumps.
pub(crate) struct PumpOptions {
    /// How long without progress before the transfer is abandoned.
    pub stall_timeout: Duration,
    /// TYPE A.
    pub ascii: bool,
    /// A duplicate of the control connection's socket: an upload whose client is already
    /// gone when its data connection ends is discarded, not committed.
    pub control: Option<OwnedFd>,
    /// The rate limits the transfer is under (none: as fast as it goes).
    pub rates: RateLimits,
}

/// How long the end of an upload that would replace an existing file waits for the control
/// connection to end too. A killed client closes both connections with an orderly FIN, in no
/// fixed order and up to milliseconds apart (seen: 2.8 ms on a busy machine), so the data
/// connection's end alone cannot tell a complete upload from a cut one. A real client says
/// nothing on the control connection until it has the 226, so the wait costs such an upload
/// this long; uploads of new files, which destroy nothing, do not wait.
const UPLOAD_END_GRACE: Duration = Duration::from_millis(5);

/// Whether the client closed (or reset) the control connection, looking without taking
/// anything from the socket.
fn control_gone(control: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    match rustix::net::recv(control, &mut byte[..], flags) {
        Ok((0, _)) => true,
        Ok(_) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => false,
        Err(_) => true,
    }
}

/// How often the end of such an upload looks at the control connection meanwhile.
const UPLOAD_END_POLL: Duration = Duration::from_micros(200);

/// Whether the client of an upload is gone. For an upload that replaces a file, waits up to
/// [`UPLOAD_END_GRACE`] for the control connection to end or to say something (a live client
/// never ends it first), checking every [`UPLOAD_END_POLL`].
async fn client_gone(control: Option<&OwnedFd>, replaces: bool) -> bool {
    let Some(fd) = control else { return false };
    if control_gone(fd) {
        return true;
    }
    if !replaces {
        return false;
    }
    let until = std::time::Instant::now() + UPLOAD_END_GRACE;
    while std::time::Instant::now() < until {
        Timer::after(UPLOAD_END_POLL).await;
        if control_gone(fd) {
            return true;
        }
    }
    false
}

/// Fires when the transfer must stop: its sender was closed (ABOR, or the control connection
/// ended).
pub(crate) type Abort = smol::channel::Receiver<()>;

/// Waits until the transfer is aborted.
async fn aborted<T>(abort: &Abort) -> Result<T, TransferError> {
    let _ = abort.recv().await;
    Err(TransferError::Aborted)
}

/// Runs one step of a transfer: `Aborted` when the transfer is aborted, `Stalled` after
/// `stall` without completion; `map` turns the step's own error into a transfer error.
async fn step<T>(
    abort: &Abort,
    stall: Duration,
    f: impl Future<Output = io::Result<T>>,
    map: impl FnOnce(&io::Error) -> TransferError,
) -> Result<T, TransferError> {
    async { f.await.map_err(|e| map(&e)) }
        .or(aborted(abort))
        .or(async {
            Timer::after(stall).await;
            Err(TransferError::Stalled)
        })
        .await
}
/// A transfer moves this much on its session's executor; if it is not done by then, it
/// carries on on a bulk thread ([`crate::bulk`]). A 4 KiB file or a short listing never gets
/// there; a large one pays one hop to another thread.
pub(crate) const INLINE_BYTES: u64 = 1 << 20;

/// A transfer lets others run (yields to its executor) after moving this much: on a fast
/// loopback each write or `sendfile` completes at once, and a loop of them would otherwise
/// hold its thread until the transfer ends.
pub(crate) const YIELD_BYTES: u64 = 256 * 1024;

/// Makes the data connection and moves the bytes: the first [`INLINE_BYTES`] here, the rest
/// on a bulk thread. Returns the bytes that crossed the data connection.
pub(crate) async fn run<S: Storage>(
    link: DataLink,
    prepared: Prepared<S>,
    opts: PumpOptions,
    abort: Abort,
    bulk: Arc<Bulk>,
) -> Result<u64, TransferError> {
    let upload = matches!(prepared, Prepared::Receive { .. });
    let stream = match data::open(link, upload).or(aborted(&abort)).await {
        Ok(s) => s,
        Err(e) => return Err(discard(prepared, e).await),
    };
    let mut moving = Moving::new(stream, prepared, opts, abort);
    if let Some(result) = moving.run_for(INLINE_BYTES).await {
        return result;
    }
    let mut moving = match send_on_own_thread(moving).await {
        Ok(result) => return result,
        Err(moving) => moving,
    };
    bulk.run(async move {
        match moving.run_for(u64::MAX).await {
            Some(result) => result,
            None => Ok(moving.total),
        }
    })
    .await
}

/// Most downloads that [`send_on_own_thread`] runs at once; past them, downloads go on on the
/// bulk threads.
const SEND_THREADS: usize = 16;

/// Downloads running on threads of their own.
static SENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long one blocking `sendfile` call waits for room in the socket before it returns what
/// it sent (`SO_SNDTIMEO`): how soon an aborted or stalled download notices.
const SEND_WAIT: Duration = Duration::from_millis(100);

/// Bytes one blocking `sendfile` call may send (a few tens of milliseconds on a fast link).
const SEND_CHUNK: usize = 64 << 20;

/// Sends the rest of a plain, unlimited download from disk on a thread of its own (at
/// [`crate::bulk::BULK_NICE`]) with blocking `sendfile` calls, as vsftpd does: the kernel
/// then waits for room in the socket itself, with no trip through the reactor, an executor
/// and a timer for every socket buffer's worth (measured: this is what kept Ferry's RETR of
/// 1 GiB behind vsftpd's). Hands the transfer back (`Err`) when it is not such a download,
/// under rate limits, or when [`SEND_THREADS`] are busy or no thread can be had.
async fn send_on_own_thread<S: Storage>(
    moving: Moving<S>,
) -> Result<Result<u64, TransferError>, Moving<S>> {
    use std::sync::atomic::Ordering;
    if !matches!(moving.work, Work::SendFile { .. }) || !moving.opts.rates.is_empty() {
        return Err(moving);
    }
    if SENDING.fetch_add(1, Ordering::Relaxed) >= SEND_THREADS {
        SENDING.fetch_sub(1, Ordering::Relaxed);
        return Err(moving);
    }
    let (give, take) = std::sync::mpsc::sync_channel::<Moving<S>>(1);
    let (done, result) = smol::channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("ferry-send".into())
        .spawn(move || {
            // Gives the place back however the thread ends (a panic included).
            struct Place;
            impl Drop for Place {
                fn drop(&mut self) {
                    SENDING.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let _place = Place;
            let tid = rustix::thread::gettid();
            let _ = rustix::process::setpriority_process(Some(tid), crate::bulk::BULK_NICE);
            if let Ok(mut moving) = take.recv() {
                let sent = moving.send_blocking();
                let _ = done.try_send(sent);
            }
        });
    if spawned.is_err() {
        SENDING.fetch_sub(1, Ordering::Relaxed);
        return Err(moving);
    }
    // The thread waits for exactly this one transfer.
    if let Err(std::sync::mpsc::SendError(moving)) = give.send(moving) {
        return Err(moving);
    }
    Ok(result
        .recv()
        .await
        .unwrap_or(Err(TransferError::ConnectionLost)))
}

/// A transfer under way: the data connection, what is read or written, and the bytes so
/// far. Moved one step (one buffer, one `sendfile` call, one listing piece) at a time, so
/// that it can start on one thread and go on on another.
struct Moving<S: Storage> {
    stream: DataStream,
    work: Work<S>,
    opts: PumpOptions,
    abort: Abort,
    /// Bytes that crossed the data connection.
    total: u64,
}

/// What a transfer reads or writes, with its buffers.
enum Work<S: Storage> {
    /// A plain download from disk: `sendfile(2)` from the page cache to the socket.
    SendFile { reader: S::Reader, offset: u64 },
    /// A download through a buffer (TLS, TYPE A, or a tree without descriptors).
    Send {
        reader: S::Reader,
        buf: Buffer,
        wire: Vec<u8>,
        conv: ToNetwork,
    },
    /// An upload.
    Receive {
        upload: S::Upload,
        buf: Buffer,
        file: Vec<u8>,
        conv: FromNetwork,
    },
    /// A listing, written a piece at a time.
    List {
        listing: Listing<S::Lister>,
        out: String,
        done: bool,
    },
    /// The upload was committed or discarded.
    Done,
}

impl<S: Storage> Moving<S> {
    fn new(stream: DataStream, prepared: Prepared<S>, opts: PumpOptions, abort: Abort) -> Self {
        let plain = matches!(stream, DataStream::Plain(_));
        let work = match prepared {
            Prepared::Send { reader, offset }
                if plain && !opts.ascii && reader.as_raw_file().is_some() =>
            {
                Work::SendFile { reader, offset }
            }
            // CR LF conversion at most doubles the bytes.
            Prepared::Send { reader, .. } => Work::Send {
                reader,
                buf: Buffer::take(),
                wire: ascii_buffer(opts.ascii, BUF * 2),
                conv: ToNetwork::new(),
            },
            // Taking CR LF apart only shrinks the bytes.
            Prepared::Receive { upload } => Work::Receive {
                upload,
                buf: Buffer::take(),
                file: ascii_buffer(opts.ascii, BUF),
                conv: FromNetwork::new(),
            },
            Prepared::List(listing) => Work::List {
                listing,
                out: String::with_capacity(LIST_PIECE + LIST_LINE_ROOM),
                done: false,
            },
        };
        Self {
            stream,
            work,
            opts,
            abort,
            total: 0,
        }
    }

    /// Moves steps until the transfer ends (then finishes it and returns how it went) or
    /// `limit` more bytes have moved (then returns `None`, to be called again).
    async fn run_for(&mut self, limit: u64) -> Option<Result<u64, TransferError>> {
        let (mut moved, mut since_yield) = (0u64, 0u64);
        while moved < limit {
            match self.step().await {
                Ok(0) => return Some(self.finish().await),
                Ok(n) => {
                    moved += n;
                    since_yield += n;
                }
                Err(e) => return Some(Err(self.fail(e).await)),
            }
            if since_yield >= YIELD_BYTES {
                since_yield = 0;
                smol::future::yield_now().await;
            }
        }
        None
    }

    /// Moves one step; returns the bytes it moved, 0 once the source is exhausted.
    async fn step(&mut self) -> Result<u64, TransferError> {
        let n = self.step_within(self.opts.rates.piece()).await?;
        if n > 0 && !self.opts.rates.is_empty() {
            // Pay for what moved before the next piece (see `crate::policy`).
            let wait = self.opts.rates.take(n);
            if wait >= MIN_WAIT {
                async {
                    Timer::after(wait).await;
                    Ok(())
                }
                .or(aborted(&self.abort))
                .await?;
            }
        }
        Ok(n)
    }

    /// Moves one step of at most `piece` bytes (any size if `None`).
    async fn step_within(&mut self, piece: Option<u64>) -> Result<u64, TransferError> {
        let (abort, stall) = (&self.abort, self.opts.stall_timeout);
        let cap = |len: usize| piece.map_or(len, |p| len.min(usize::try_from(p).unwrap_or(len)));
        let n = match &mut self.work {
            Work::SendFile { reader, offset } => {
                let (DataStream::Plain(s), Some(fd)) = (&self.stream, reader.as_raw_file()) else {
                    return Err(TransferError::ConnectionLost);
                };
                let mut at = *offset + self.total;
                let call = s.write_with(|s| {
                    rustix::fs::sendfile(s, fd, Some(&mut at), cap(SENDFILE_CHUNK))
                        .map_err(io::Error::from)
                });
                step(abort, stall, call, net_error).await? as u64
            }
            Work::Send {
                reader,
                buf,
                wire,
                conv,
            } => {
                let len = cap(buf.len());
                let n = step(abort, stall, reader.read(&mut buf[..len]), storage_error).await?;
                let out = if n > 0 && self.opts.ascii {
                    let (used, w) = conv.convert(&buf[..n], wire);
                    debug_assert_eq!(used, n, "the wire buffer holds twice the input");
                    &wire[..w]
                } else {
                    &buf[..n]
                };
                step(abort, stall, self.stream.write_all(out), net_error).await?;
                out.len() as u64
            }
            Work::Receive {
                upload,
                buf,
                file,
                conv,
            } => {
                let len = cap(buf.len());
                let n = step(abort, stall, self.stream.read(&mut buf[..len]), net_error).await?;
                let data = if self.opts.ascii {
                    let (used, w) = conv.convert(&buf[..n], file);
                    debug_assert_eq!(used, n, "CR LF only shrinks");
                    &file[..w]
                } else {
                    &buf[..n]
                };
                step(abort, stall, upload.write_all(data), storage_error).await?;
                n as u64
            }
            Work::List { done: true, .. } | Work::Done => 0,
            Work::List { listing, out, done } => {
                let more = listing
                    .write_piece(out, LIST_PIECE)
                    .await
                    .map_err(|e| TransferError::Storage(e.kind()))?;
                *done = !more;
                step(
                    abort,
                    stall,
                    self.stream.write_all(out.as_bytes()),
                    net_error,
                )
                .await?;
                let n = out.len() as u64;
                out.clear();
                // An empty last piece still ends the listing at the next step.
                n.max(u64::from(more))
            }
        };
        self.total += n;
        Ok(n)
    }

    /// After the last step: an upload is committed (unless its client is gone, see
    /// [`UPLOAD_END_GRACE`]); what was sent is flushed; the data connection is closed
    /// (TLS with `close_notify`, so that the client knows the data is complete).
    async fn finish(&mut self) -> Result<u64, TransferError> {
        let (abort, stall) = (&self.abort, self.opts.stall_timeout);
        match std::mem::replace(&mut self.work, Work::Done) {
            Work::Receive {
                mut upload,
                mut file,
                mut conv,
                ..
            } => {
                if self.opts.ascii {
                    let w = conv.finish(&mut file);
                    let tail = step(abort, stall, upload.write_all(&file[..w]), storage_error);
                    if let Err(e) = tail.await {
                        upload.abort().await;
                        return Err(e);
                    }
                }
                if client_gone(self.opts.control.as_ref(), upload.replaces_existing()).await {
                    upload.abort().await;
                    return Err(TransferError::ConnectionLost);
                }
                upload.commit().await.map_err(|e| {
                    // The session's own line says which upload; this one says why.
                    tracing::warn!(error = %e, "an upload could not be put in place");
                    TransferError::Storage(e.kind())
                })?;
            }
            Work::SendFile { .. } | Work::Done => {}
            Work::Send { .. } | Work::List { .. } => {
                step(abort, stall, self.stream.flush(), net_error).await?;
            }
        }
        match &mut self.stream {
            DataStream::Plain(s) => {
                let _ = s.get_ref().shutdown(std::net::Shutdown::Write);
            }
            DataStream::Tls(s) => {
                let _ = timeout(stall, s.close()).await;
            }
        }
        Ok(self.total)
    }

    /// Sends the rest of a [`Work::SendFile`] download with blocking `sendfile` calls (on a
    /// thread of its own, [`send_on_own_thread`]), then closes the data connection's sending
    /// side. Stops when the transfer is aborted (checked between calls, each at most
    /// [`SEND_WAIT`] without progress) or after the stall timeout without progress.
    fn send_blocking(&mut self) -> Result<u64, TransferError> {
        let (Work::SendFile { reader, offset }, DataStream::Plain(s)) = (&self.work, &self.stream)
        else {
            return Err(TransferError::ConnectionLost);
        };
        let Some(fd) = reader.as_raw_file() else {
            return Err(TransferError::ConnectionLost);
        };
        let socket = s.get_ref();
        // Corked (as ProFTPD does), Nagle's algorithm back on: only full segments leave,
        // however `sendfile` pushes its pages. Measured on loopback, 1 GiB: 16,450 segments
        // delivered corked (all full), 25,400-27,900 with Nagle alone, and 1,850-2,320 MB/s
        // against 1,510-1,710 (interleaved). The tail leaves when the cork is pulled,
        // before the shutdown below.
        let blocking = socket
            .set_nonblocking(false)
            .and_then(|()| socket.set_write_timeout(Some(SEND_WAIT)))
            .and_then(|()| socket.set_nodelay(false))
            .and_then(|()| {
                rustix::net::sockopt::set_tcp_cork(socket, true).map_err(io::Error::from)
            });
        if blocking.is_err() {
            return Err(TransferError::ConnectionLost);
        }
        let mut at = *offset + self.total;
        let mut progress = std::time::Instant::now();
        let sent = loop {
            if self.abort.is_closed() {
                break Err(TransferError::Aborted);
            }
            match rustix::fs::sendfile(socket, fd, Some(&mut at), SEND_CHUNK) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    self.total += n as u64;
                    progress = std::time::Instant::now();
                }
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                    if progress.elapsed() >= self.opts.stall_timeout {
                        break Err(TransferError::Stalled);
                    }
                }
                Err(_) => break Err(TransferError::ConnectionLost),
            }
        };
        let _ = rustix::net::sockopt::set_tcp_cork(socket, false);
        let _ = socket.set_nonblocking(true);
        sent?;
        let _ = socket.shutdown(std::net::Shutdown::Write);
        self.work = Work::Done;
        Ok(self.total)
    }

    /// The transfer failed with `e`: an unfinished upload is discarded (and audited as
    /// aborted). Returns `e`.
    async fn fail(&mut self, e: TransferError) -> TransferError {
        if let Work::Receive { .. } = self.work
            && let Work::Receive { upload, .. } = std::mem::replace(&mut self.work, Work::Done)
        {
            upload.abort().await;
        }
        e
    }
}

/// The transfer error for a failed socket call.
fn net_error(e: &io::Error) -> TransferError {
    match e.kind() {
        ErrorKind::TimedOut => TransferError::Stalled,
        _ => TransferError::ConnectionLost,
    }
}

/// Discards what a transfer prepared when it ends before moving any bytes (an upload is
/// removed and audited as aborted), and passes the error on.
pub(crate) async fn discard<S: Storage>(prepared: Prepared<S>, e: TransferError) -> TransferError {
    if let Prepared::Receive { upload } = prepared {
        upload.abort().await;
    }
    e
}

/// The buffer that TYPE A conversion writes into, `len` bytes; none for a binary transfer.
fn ascii_buffer(ascii: bool, len: usize) -> Vec<u8> {
    if ascii { vec![0u8; len] } else { Vec::new() }
}

/// The transfer error for a storage I/O error.
fn storage_error(e: &io::Error) -> TransferError {
    TransferError::Storage(ferry_backends::kind_of(e))
}
