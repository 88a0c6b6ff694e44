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
use std::net::TcpStream;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use ferry_backends::{Listing, ReadFile, Storage, Upload, open_listing};
use ferry_core::{FromNetwork, StorageError, ToNetwork, TransferError, TransferKind};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use smol::{Async, Timer};

use crate::clock::{timeout, unix_now};
use crate::data::{self, DataLink, DataStream};

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
) -> Result<(Prepared<S>, Option<u64>), StorageError> {
    match kind {
        TransferKind::Retrieve { path, offset } => {
            let (reader, meta) = storage
                .open_read(path, *offset)
                .await
                .map_err(|e| e.kind())?;
            if !meta.is_file() {
                return Err(StorageError::NotAFile);
            }
            let offset = *offset;
            Ok((Prepared::Send { reader, offset }, Some(meta.size)))
        }
        TransferKind::Store { path, mode } => {
            let upload = storage
                .open_write(path, *mode)
                .await
                .map_err(|e| e.kind())?;
            Ok((Prepared::Receive { upload }, None))
        }
        TransferKind::List(request) => {
            let listing = open_listing(storage, request, unix_now())
                .await
                .map_err(|e| e.kind())?;
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
/// Makes the data connection and moves the bytes. Returns the bytes that crossed the
/// data connection.
pub(crate) async fn run<S: Storage>(
    link: DataLink,
    prepared: Prepared<S>,
    opts: PumpOptions,
    abort: Abort,
) -> Result<u64, TransferError> {
    let upload = matches!(prepared, Prepared::Receive { .. });
    let stream = match data::open(link, upload).or(aborted(&abort)).await {
        Ok(s) => s,
        Err(e) => return Err(discard(prepared, e).await),
    };
    match stream {
        DataStream::Tls(mut stream) => {
            let n = pump(&mut stream, prepared, &opts, &abort).await?;
            // close_notify, so that the client knows the data is complete.
            let _ = timeout(opts.stall_timeout, stream.close()).await;
            Ok(n)
        }
        DataStream::Plain(mut stream) => {
            if let Prepared::Send { reader, offset } = &prepared
                && !opts.ascii
                && let Some(fd) = reader.as_raw_file()
            {
                let n = sendfile(&stream, fd, *offset, opts.stall_timeout, &abort).await?;
                let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
                return Ok(n);
            }
            let n = pump(&mut stream, prepared, &opts, &abort).await?;
            let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
            Ok(n)
        }
    }
}

/// Sends a file with `sendfile(2)`: the bytes go from the page cache to the socket without
/// passing through user space.
async fn sendfile(
    stream: &Async<TcpStream>,
    fd: BorrowedFd<'_>,
    offset: u64,
    stall: Duration,
    abort: &Abort,
) -> Result<u64, TransferError> {
    let mut off = offset;
    loop {
        let sent = step(
            abort,
            stall,
            stream.write_with(|s| {
                rustix::fs::sendfile(s, fd, Some(&mut off), SENDFILE_CHUNK).map_err(io::Error::from)
            }),
            net_error,
        )
        .await?;
        if sent == 0 {
            return Ok(off - offset);
        }
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

/// The transfer error for a storage I/O error.
fn storage_error(e: &io::Error) -> TransferError {
    TransferError::Storage(ferry_backends::kind_of(e))
}

/// Moves the bytes over any stream (plain or TLS). Every step gives up when the transfer is
/// aborted or stalls; an upload that does not reach its commit is discarded, and its commit
/// is never interrupted.
async fn pump<S, T>(
    stream: &mut T,
    prepared: Prepared<S>,
    opts: &PumpOptions,
    abort: &Abort,
) -> Result<u64, TransferError>
where
    S: Storage,
    T: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    match prepared {
        Prepared::Send { mut reader, .. } => send(stream, &mut reader, opts, abort).await,
        Prepared::Receive { upload } => store(stream, upload, opts, abort).await,
        Prepared::List(mut listing) => {
            let stall = opts.stall_timeout;
            let mut out = String::with_capacity(LIST_PIECE + LIST_LINE_ROOM);
            let mut total = 0u64;
            loop {
                let more = listing
                    .write_piece(&mut out, LIST_PIECE)
                    .await
                    .map_err(|e| TransferError::Storage(e.kind()))?;
                step(abort, stall, stream.write_all(out.as_bytes()), net_error).await?;
                total += out.len() as u64;
                out.clear();
                if !more {
                    break;
                }
            }
            step(abort, stall, stream.flush(), net_error).await?;
            Ok(total)
        }
    }
}

/// The buffer that TYPE A conversion writes into, `len` bytes; none for a binary transfer.
fn ascii_buffer(ascii: bool, len: usize) -> Vec<u8> {
    if ascii { vec![0u8; len] } else { Vec::new() }
}

/// Sends a file through one pooled buffer, converted to CR LF lines for TYPE A.
async fn send<T, R>(
    stream: &mut T,
    reader: &mut R,
    opts: &PumpOptions,
    abort: &Abort,
) -> Result<u64, TransferError>
where
    T: smol::io::AsyncWrite + Unpin,
    R: ReadFile,
{
    let stall = opts.stall_timeout;
    let mut buf = Buffer::take();
    // CR LF conversion at most doubles the bytes.
    let mut wire = ascii_buffer(opts.ascii, BUF * 2);
    let mut conv = ToNetwork::new();
    let mut total = 0u64;
    loop {
        let n = step(abort, stall, reader.read(&mut buf), storage_error).await?;
        if n == 0 {
            break;
        }
        let out = if opts.ascii {
            let (used, w) = conv.convert(&buf[..n], &mut wire);
            debug_assert_eq!(used, n, "the wire buffer holds twice the input");
            &wire[..w]
        } else {
            &buf[..n]
        };
        step(abort, stall, stream.write_all(out), net_error).await?;
        total += out.len() as u64;
    }
    step(abort, stall, stream.flush(), net_error).await?;
    Ok(total)
}

/// Receives an upload and commits it, unless the client is gone by then (see
/// [`UPLOAD_END_GRACE`]) or receiving failed: then the upload is discarded.
async fn store<T, U>(
    stream: &mut T,
    mut upload: U,
    opts: &PumpOptions,
    abort: &Abort,
) -> Result<u64, TransferError>
where
    T: smol::io::AsyncRead + Unpin,
    U: Upload,
{
    match receive(stream, &mut upload, opts, abort).await {
        Ok(total) => {
            if client_gone(opts.control.as_ref(), upload.replaces_existing()).await {
                upload.abort().await;
                return Err(TransferError::ConnectionLost);
            }
            upload
                .commit()
                .await
                .map_err(|e| TransferError::Storage(e.kind()))?;
            Ok(total)
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// Receives an upload's bytes into `upload` until the client closes the data connection.
async fn receive<T, U>(
    stream: &mut T,
    upload: &mut U,
    opts: &PumpOptions,
    abort: &Abort,
) -> Result<u64, TransferError>
where
    T: smol::io::AsyncRead + Unpin,
    U: Upload,
{
    let stall = opts.stall_timeout;
    let mut buf = Buffer::take();
    // Taking CR LF apart only shrinks the bytes.
    let mut file = ascii_buffer(opts.ascii, BUF);
    let mut conv = FromNetwork::new();
    let mut total = 0u64;
    loop {
        let n = step(abort, stall, stream.read(&mut buf), net_error).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let data = if opts.ascii {
            let (used, w) = conv.convert(&buf[..n], &mut file);
            debug_assert_eq!(used, n, "CR LF only shrinks");
            &file[..w]
        } else {
            &buf[..n]
        };
        step(abort, stall, upload.write_all(data), storage_error).await?;
    }
    if opts.ascii {
        let w = conv.finish(&mut file);
        step(abort, stall, upload.write_all(&file[..w]), storage_error).await?;
    }
    Ok(total)
}
