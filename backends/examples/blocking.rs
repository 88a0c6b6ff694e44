//! The Ferry core driven without any async runtime: one std thread and blocking sockets per
//! connection, over the in-memory tree. It proves the core is not tied to smol, and it is the
//! drive loop at its plainest.
//!
//! Run with `cargo run -p ferry-backends --example blocking`, then e.g.
//! `curl -T README.md ftp://demo:demo@127.0.0.1:PORT/` and `curl ftp://demo:demo@127.0.0.1:PORT/`.
//! `--once` serves one connection and exits. Transfers run to completion in this example
//! (ABOR is not acted on while one runs); TLS is not offered.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ferry_backends::memory::{MemoryLister, MemoryReader, MemoryStorage, MemoryUpload};
use ferry_backends::{Listing, Storage as _, Upload as _, open_listing, perform};
use ferry_core::{
    Config, DataChannel, DataError, Event, FromNetwork, Instant, LoginError, LoginInfo, Outcome,
    Request, Session, ToNetwork, Transfer, TransferError, TransferKind, UnixTime,
};
use futures_lite::future::block_on;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long the session waits for input when it has no deadline of its own.
const NO_DEADLINE_WAIT: Duration = Duration::from_secs(3600);

/// How long an active-mode data connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the control connection at once.
const READ_CHUNK: usize = 4096;

/// Bytes read from a file or data connection at once (the ASCII buffer is twice as large).
const BUF: usize = 64 * 1024;

/// A listing is written in pieces of about this size.
const LIST_PIECE: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("serving demo/demo on ftp://{}", listener.local_addr()?);
    let tree = MemoryStorage::new();
    for stream in listener.incoming() {
        let (stream, tree) = (stream?, tree.clone());
        let worker = std::thread::spawn(move || {
            if let Err(e) = serve(stream, &tree) {
                eprintln!("connection ended: {e}");
            }
        });
        if once {
            let _ = worker.join();
            break;
        }
    }
    Ok(())
}

/// One control connection, start to end.
fn serve(mut control: TcpStream, tree: &MemoryStorage) -> io::Result<()> {
    let epoch = StdInstant::now();
    let now =
        || Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX));
    let (peer, local) = (control.peer_addr()?, control.local_addr()?);
    let mut session = Session::new(Config::default(), peer, local, now());
    let mut conn = Conn {
        tree,
        local,
        passive: None,
        opened: None,
    };
    let mut input: Vec<u8> = Vec::new();
    loop {
        // The drain rule: perform every event, in order, before reading again.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Reply(r) => control.write_all(r.to_string().as_bytes())?,
                Event::Request(Request::Close) => return Ok(()),
                Event::Request(request) => conn.perform(&mut session, request, now()),
            }
        }
        // The transfer's opening reply (150, or 213 for STAT with a path) is written: move
        // the bytes now, to completion, then say how it ended.
        if let Some((t, opened)) = conn.opened.take() {
            let result = run(&t, opened, conn.passive.take(), peer, &mut control);
            session.handle_outcome(Outcome::TransferFinished { id: t.id, result }, now());
            continue;
        }
        if !input.is_empty() {
            let used = session.handle_input(&input, now());
            if used > 0 {
                input.drain(..used);
                continue;
            }
        }
        // Wait for input, but not past the session's next deadline.
        let wait = session.poll_timeout().map_or(NO_DEADLINE_WAIT, |t| {
            Duration::from_micros(t.as_micros().saturating_sub(now().as_micros()))
        });
        control.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; READ_CHUNK];
        let room = session
            .input_capacity()
            .saturating_sub(input.len())
            .min(chunk.len());
        match control.read(&mut chunk[..room]) {
            Ok(0) => return Ok(()),
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(now());
            }
            Err(e) => return Err(e),
        }
    }
}

/// A connection's state beside its session.
struct Conn<'a> {
    tree: &'a MemoryStorage,
    local: SocketAddr,
    passive: Option<TcpListener>,
    /// A transfer whose opening reply the drain is writing; it runs after the drain.
    opened: Option<(Transfer, Opened)>,
}

/// What a transfer reads or writes, opened before its opening reply.
enum Opened {
    Send(MemoryReader),
    Receive(MemoryUpload),
    List(Listing<MemoryLister>),
}

impl Conn<'_> {
    /// Carries out one request of the session (all but `Close`, which ends the loop).
    fn perform(&mut self, session: &mut Session, request: Request, now: Instant) {
        match request {
            Request::CheckLogin { id, user, password } => {
                let ok = user.as_str() == "demo" && password.expose().as_str() == "demo";
                let result = if ok {
                    Ok(LoginInfo::default())
                } else {
                    Err(LoginError::Rejected)
                };
                session.handle_outcome(Outcome::LoginChecked { id, result }, now);
            }
            Request::Storage { id, op } => {
                let result = block_on(perform(self.tree, &op)).map_err(|e| e.kind());
                session.handle_outcome(Outcome::StorageDone { id, result }, now);
            }
            Request::OpenPassive { id, .. } => {
                self.passive = TcpListener::bind((self.local.ip(), 0)).ok();
                let result = self
                    .passive
                    .as_ref()
                    .and_then(|l| l.local_addr().ok())
                    .ok_or(DataError);
                session.handle_outcome(Outcome::PassiveOpened { id, result }, now);
            }
            Request::ClosePassive => self.passive = None,
            // Open first, so that a missing file is answered before any 150.
            Request::Transfer(t) => match open(self.tree, &t.kind) {
                Ok(opened) => {
                    let id = t.id;
                    self.opened = Some((t, opened));
                    session.handle_outcome(Outcome::TransferOpened { id, size: None }, now);
                }
                Err(e) => {
                    let result = Err(TransferError::Storage(e.kind()));
                    session.handle_outcome(Outcome::TransferFinished { id: t.id, result }, now);
                }
            },
            // Transfers run to completion before the next command is read.
            Request::Abort { .. } | Request::Close => {}
            Request::StartTls => session.handle_outcome(Outcome::TlsFailed, now),
        }
    }
}

/// Opens what a transfer reads or writes.
fn open(tree: &MemoryStorage, kind: &TransferKind) -> ferry_backends::Result<Opened> {
    Ok(match kind {
        TransferKind::Retrieve { path, offset } => {
            Opened::Send(block_on(tree.open_read(path, *offset))?.0)
        }
        TransferKind::Store { path, mode } => {
            Opened::Receive(block_on(tree.open_write(path, *mode))?)
        }
        TransferKind::List(request) => {
            Opened::List(block_on(open_listing(tree, request, unix_now()))?)
        }
    })
}

/// The wall clock, which listings are dated against.
fn unix_now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(i64::try_from(secs).unwrap_or(0))
}

/// Runs an opened transfer: makes the data connection (none for STAT with a path, whose
/// listing goes to the control connection) and moves the bytes.
fn run(
    t: &Transfer,
    opened: Opened,
    passive: Option<TcpListener>,
    peer: SocketAddr,
    control: &mut TcpStream,
) -> Result<u64, TransferError> {
    let opened = match (t.channel, opened) {
        (DataChannel::Control, Opened::List(mut listing)) => {
            return write_listing(&mut listing, control);
        }
        (_, opened) => opened,
    };
    let mut data = match t.channel {
        DataChannel::Active(addr) => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|_| TransferError::DataConnection)?,
        _ => accept_peer(&passive.ok_or(TransferError::DataConnection)?, peer)?,
    };
    match opened {
        Opened::Send(mut reader) => send(&mut reader, &mut data, t.ascii),
        Opened::Receive(upload) => receive(&mut data, upload, t.ascii),
        Opened::List(mut listing) => write_listing(&mut listing, &mut data),
    }
}

/// Accepts the first data connection from the client's host, refusing any other.
fn accept_peer(listener: &TcpListener, peer: SocketAddr) -> Result<TcpStream, TransferError> {
    loop {
        let (s, from) = listener
            .accept()
            .map_err(|_| TransferError::DataConnection)?;
        if from.ip().to_canonical() == peer.ip().to_canonical() {
            return Ok(s);
        }
    }
}

/// The transfer error for a failed storage read or write.
fn storage_error(e: &io::Error) -> TransferError {
    TransferError::Storage(ferry_backends::kind_of(e))
}

/// Sends a file, converted to CR LF lines for TYPE A.
fn send(
    reader: &mut MemoryReader,
    data: &mut TcpStream,
    ascii: bool,
) -> Result<u64, TransferError> {
    let (mut buf, mut wire) = (vec![0u8; BUF], vec![0u8; 2 * BUF]);
    let mut conv = ToNetwork::new();
    let mut total = 0u64;
    loop {
        let n = block_on(reader.read(&mut buf)).map_err(|e| storage_error(&e))?;
        if n == 0 {
            return Ok(total);
        }
        let out = if ascii {
            let w = conv.convert(&buf[..n], &mut wire).1;
            &wire[..w]
        } else {
            &buf[..n]
        };
        data.write_all(out)
            .map_err(|_| TransferError::ConnectionLost)?;
        total += out.len() as u64;
    }
}

/// Receives an upload until the client closes the data connection, then commits it.
fn receive(
    data: &mut TcpStream,
    mut upload: MemoryUpload,
    ascii: bool,
) -> Result<u64, TransferError> {
    let (mut buf, mut file) = (vec![0u8; BUF], vec![0u8; BUF]);
    let mut conv = FromNetwork::new();
    let mut total = 0u64;
    loop {
        let n = data
            .read(&mut buf)
            .map_err(|_| TransferError::ConnectionLost)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let chunk = if ascii {
            let w = conv.convert(&buf[..n], &mut file).1;
            &file[..w]
        } else {
            &buf[..n]
        };
        block_on(upload.write_all(chunk)).map_err(|e| storage_error(&e))?;
    }
    let n = conv.finish(&mut file);
    block_on(upload.write_all(&file[..n])).map_err(|e| storage_error(&e))?;
    block_on(upload.commit()).map_err(|e| TransferError::Storage(e.kind()))?;
    Ok(total)
}

/// Writes a listing in pieces to `to` (the data connection, or the control connection for
/// STAT with a path, where it is the body of the 213 reply).
fn write_listing(
    listing: &mut Listing<MemoryLister>,
    to: &mut impl io::Write,
) -> Result<u64, TransferError> {
    let mut piece = String::new();
    let mut total = 0u64;
    loop {
        let more = block_on(listing.write_piece(&mut piece, LIST_PIECE))
            .map_err(|e| TransferError::Storage(e.kind()))?;
        to.write_all(piece.as_bytes())
            .map_err(|_| TransferError::ConnectionLost)?;
        total += piece.len() as u64;
        piece.clear();
        if !more {
            return Ok(total);
        }
    }
}
