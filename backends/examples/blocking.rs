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
use std::time::{Duration, Instant as StdInstant};

use ferry_backends::memory::MemoryStorage;
use ferry_backends::{EntryBatch, Lister as _, Storage as _, Upload as _};
use ferry_core::{
    Config, DataChannel, DataError, Event, FromNetwork, Instant, ListFormat, LoginError, LoginInfo,
    Outcome, Request, Session, StorageOp, StorageReply, ToNetwork, Transfer, TransferError,
    TransferKind, UnixTime,
};
use futures_lite::future::block_on;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};

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
    let mut input: Vec<u8> = Vec::new();
    let mut passive: Option<TcpListener> = None;
    loop {
        // The drain rule: perform every event, in order, before reading again.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Reply(r) => control.write_all(r.to_string().as_bytes())?,
                Event::Request(Request::Close) => return Ok(()),
                Event::Request(Request::CheckLogin { id, user, password }) => {
                    let ok = user.as_str() == "demo" && password.expose().as_str() == "demo";
                    let result = if ok {
                        Ok(LoginInfo::default())
                    } else {
                        Err(LoginError::Rejected)
                    };
                    session.handle_outcome(Outcome::LoginChecked { id, result }, now());
                }
                Event::Request(Request::Storage { id, op }) => {
                    let result = block_on(storage(tree, &op));
                    session.handle_outcome(Outcome::StorageDone { id, result }, now());
                }
                Event::Request(Request::OpenPassive { id, .. }) => {
                    passive = TcpListener::bind((local.ip(), 0)).ok();
                    let result = passive
                        .as_ref()
                        .and_then(|l| l.local_addr().ok())
                        .ok_or(DataError);
                    session.handle_outcome(Outcome::PassiveOpened { id, result }, now());
                }
                Event::Request(Request::ClosePassive) => passive = None,
                Event::Request(Request::Transfer(t)) => {
                    let id = t.id;
                    let result = transfer(
                        tree,
                        &t,
                        passive.take(),
                        peer,
                        &mut session,
                        &mut control,
                        now(),
                    );
                    session.handle_outcome(Outcome::TransferFinished { id, result }, now());
                }
                // Transfers above run to completion before the next command is read.
                Event::Request(Request::Abort { .. }) => {}
                Event::Request(Request::StartTls) => {
                    session.handle_outcome(Outcome::TlsFailed, now())
                }
            }
        }
        if !input.is_empty() {
            let used = session.handle_input(&input, now());
            if used > 0 {
                input.drain(..used);
                continue;
            }
        }
        // Wait for input, but not past the session's next deadline.
        let wait = session
            .poll_timeout()
            .map_or(Duration::from_secs(3600), |t| {
                Duration::from_micros(t.as_micros().saturating_sub(now().as_micros()))
            });
        control.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 4096];
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

async fn storage(
    tree: &MemoryStorage,
    op: &StorageOp,
) -> Result<StorageReply, ferry_core::StorageError> {
    let done = |r: ferry_backends::Result<()>| r.map(|()| StorageReply::Done);
    let r = match op {
        StorageOp::Metadata(p) => tree.metadata(p).await.map(StorageReply::Metadata),
        StorageOp::MakeDir(p) => done(tree.make_dir(p).await),
        StorageOp::RemoveDir(p) => done(tree.remove_dir(p).await),
        StorageOp::RemoveFile(p) => done(tree.remove_file(p).await),
        StorageOp::Rename { from, to } => done(tree.rename(from, to).await),
        StorageOp::Copy { from, to } => tree.copy(from, to).await.map(|_| StorageReply::Done),
        StorageOp::SetModified { path, time } => done(tree.set_modified(path, *time).await),
        StorageOp::SetMode { path, mode } => done(tree.set_mode(path, *mode).await),
    };
    r.map_err(|e| e.kind())
}

/// Runs a whole transfer: open, 150, data connection, bytes.
fn transfer(
    tree: &MemoryStorage,
    t: &Transfer,
    passive: Option<TcpListener>,
    peer: SocketAddr,
    session: &mut Session,
    control: &mut TcpStream,
    now: Instant,
) -> Result<u64, TransferError> {
    let storage_err = |e: ferry_backends::Error| TransferError::Storage(e.kind());
    // Open first, so that a missing file is answered before any 150.
    enum Opened {
        Send(ferry_backends::memory::MemoryReader),
        Receive(ferry_backends::memory::MemoryUpload),
        List(String),
    }
    let opened = match &t.kind {
        TransferKind::Retrieve { path, offset } => Opened::Send(
            block_on(tree.open_read(path, *offset))
                .map_err(storage_err)?
                .0,
        ),
        TransferKind::Store { path, mode } => {
            Opened::Receive(block_on(tree.open_write(path, *mode)).map_err(storage_err)?)
        }
        TransferKind::List(request) => {
            let stamp = UnixTime(
                i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                )
                .unwrap_or(0),
            );
            let meta = block_on(tree.metadata(&request.path)).map_err(storage_err)?;
            let mut text = String::new();
            if meta.is_dir() {
                let mut lister = block_on(tree.list(&request.path)).map_err(storage_err)?;
                let mut batch = EntryBatch::new();
                while block_on(lister.next_batch(&mut batch)).map_err(storage_err)? {
                    for entry in batch.iter() {
                        let _ = request.write_entry(&mut text, &entry, stamp);
                    }
                    batch.clear();
                }
            } else if matches!(request.format, ListFormat::Machine(_)) {
                return Err(TransferError::Storage(
                    ferry_core::StorageError::NotADirectory,
                ));
            } else {
                let _ = request.write_file(&mut text, meta, stamp);
            }
            Opened::List(text)
        }
    };
    // The 150 reply comes out of the session now; write it before connecting.
    session.handle_outcome(
        Outcome::TransferOpened {
            id: t.id,
            size: None,
        },
        now,
    );
    while let Some(Event::Reply(r)) = session.poll_event() {
        control
            .write_all(r.to_string().as_bytes())
            .map_err(|_| TransferError::ConnectionLost)?;
    }
    if t.channel == DataChannel::Control {
        // STAT with a path: the listing is the body of the 213 reply.
        if let Opened::List(text) = opened {
            control
                .write_all(text.as_bytes())
                .map_err(|_| TransferError::ConnectionLost)?;
            return Ok(text.len() as u64);
        }
        return Ok(0);
    }
    let mut data = match t.channel {
        DataChannel::Active(addr) => TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|_| TransferError::DataConnection)?,
        _ => {
            let listener = passive.ok_or(TransferError::DataConnection)?;
            loop {
                let (s, from) = listener
                    .accept()
                    .map_err(|_| TransferError::DataConnection)?;
                if from.ip().to_canonical() == peer.ip().to_canonical() {
                    break s;
                }
            }
        }
    };
    let lost = |_| TransferError::ConnectionLost;
    let mut buf = vec![0u8; 64 * 1024];
    let mut wire = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    match opened {
        Opened::Send(mut reader) => {
            let mut conv = ToNetwork::new();
            loop {
                let n = block_on(reader.read(&mut buf))
                    .map_err(|e| TransferError::Storage(ferry_backends::kind_of(&e)))?;
                if n == 0 {
                    break;
                }
                let out = if t.ascii {
                    let w = conv.convert(&buf[..n], &mut wire).1;
                    &wire[..w]
                } else {
                    &buf[..n]
                };
                data.write_all(out).map_err(lost)?;
                total += out.len() as u64;
            }
        }
        Opened::Receive(mut upload) => {
            let mut conv = FromNetwork::new();
            loop {
                let n = data.read(&mut buf).map_err(lost)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                let chunk = if t.ascii {
                    let w = conv.convert(&buf[..n], &mut wire).1;
                    &wire[..w]
                } else {
                    &buf[..n]
                };
                block_on(upload.write_all(chunk))
                    .map_err(|e| TransferError::Storage(ferry_backends::kind_of(&e)))?;
            }
            let n = conv.finish(&mut wire);
            block_on(upload.write_all(&wire[..n]))
                .map_err(|e| TransferError::Storage(ferry_backends::kind_of(&e)))?;
            block_on(upload.commit()).map_err(storage_err)?;
        }
        Opened::List(text) => {
            data.write_all(text.as_bytes()).map_err(lost)?;
            total = text.len() as u64;
        }
    }
    Ok(total)
}
