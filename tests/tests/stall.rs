//! One client must not stall the others (issue 16), checked without timing: an embedded
//! server on one connection thread (as `--threads 1` runs), whose storage holds one user's
//! listing, copy or upload write until the test releases it, and whose accounts hold one
//! user's password check. While each is held, another user logs in, lists, uploads and
//! downloads to completion; then the held operation is released and completes too.
//!
//! The held storage waits the way a well-behaved tree does: its operation pends (the disk
//! tree runs its long work on the blocking pool), and the held password check blocks its
//! thread as argon2 does (the runtime runs checks on the blocking pool).

use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_backends::audit::AuditLog;
use ferry_backends::memory::{MemoryLister, MemoryReader, MemoryStorage, MemoryUpload};
use ferry_backends::{Metadata, Result, Storage, UnixTime, Upload, VirtualPath, WriteMode};
use ferry_smol::Server;
use ferry_smol::config::Settings;
use ferry_smol::users::{Login, Users};
use ferry_tests::Control;
use smol::channel::{Receiver, Sender};

/// Where a held operation waits: it says which it is on `entered`, then waits until `open`
/// is closed by the test.
#[derive(Clone)]
struct Gate {
    entered: Sender<&'static str>,
    open: Receiver<()>,
}

impl Gate {
    async fn pass(&self, what: &'static str) {
        let _ = self.entered.send(what).await;
        let _ = self.open.recv().await;
    }
}

/// The test's side of a gate.
struct Held {
    entered: Receiver<&'static str>,
    release: Sender<()>,
}

impl Held {
    fn new() -> (Self, Gate) {
        let (entered_tx, entered) = smol::channel::unbounded();
        let (release, open) = smol::channel::bounded(1);
        let gate = Gate {
            entered: entered_tx,
            open,
        };
        (Self { entered, release }, gate)
    }

    /// Waits until an operation is held at the gate; returns which.
    fn wait_entered(&self) -> &'static str {
        smol::block_on(async {
            smol::future::or(async { self.entered.recv().await.ok() }, async {
                smol::Timer::after(Duration::from_secs(20)).await;
                None
            })
            .await
            .expect("an operation reached the gate")
        })
    }

    fn release(&self) {
        self.release.close();
    }

    /// Waits until `op` is held at the gate, checks that another session works meanwhile,
    /// then lets `op` go on.
    fn stalls_only_its_session(&self, op: &str, addr: SocketAddr) {
        assert_eq!(self.wait_entered(), op);
        another_session_works(addr);
        self.release();
    }
}

/// `MemoryStorage` whose listings, copies and upload writes wait at `gate` (when set).
#[derive(Clone)]
struct GatedStorage {
    inner: MemoryStorage,
    gate: Option<Gate>,
}

impl GatedStorage {
    async fn pass(&self, what: &'static str) {
        if let Some(g) = &self.gate {
            g.pass(what).await;
        }
    }
}

impl Storage for GatedStorage {
    type Reader = MemoryReader;
    type Upload = GatedUpload;
    type Lister = MemoryLister;

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        self.inner.metadata(path).await
    }
    async fn list(&self, path: &VirtualPath) -> Result<MemoryLister> {
        self.pass("list").await;
        self.inner.list(path).await
    }
    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(MemoryReader, Metadata)> {
        self.inner.open_read(path, offset).await
    }
    async fn open_write(&self, path: &VirtualPath, mode: WriteMode) -> Result<GatedUpload> {
        let inner = self.inner.open_write(path, mode).await?;
        let gate = self
            .gate
            .clone()
            .map(|g| -> Wait { Box::pin(async move { g.pass("write").await }) });
        Ok(GatedUpload { inner, gate })
    }
    async fn make_dir(&self, path: &VirtualPath) -> Result<()> {
        self.inner.make_dir(path).await
    }
    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        self.inner.remove_dir(path).await
    }
    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        self.inner.remove_file(path).await
    }
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        self.inner.rename(from, to).await
    }
    async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
        self.pass("copy").await;
        self.inner.copy(from, to).await
    }
    async fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<()> {
        self.inner.set_modified(path, time).await
    }
    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        self.inner.set_mode(path, mode).await
    }
}

/// A wait at a gate, kept by an upload between polls.
type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An upload whose first write waits at the gate.
struct GatedUpload {
    inner: MemoryUpload,
    gate: Option<Wait>,
}

impl futures_io::AsyncWrite for GatedUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(wait) = self.gate.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.gate = None;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl Upload for GatedUpload {
    async fn commit(self) -> Result<u64> {
        self.inner.commit().await
    }
    async fn abort(self) {
        self.inner.abort().await;
    }
}

/// A password check that blocks its thread until released (as a slow hash would).
#[derive(Default)]
struct CheckGate {
    state: Mutex<(bool, bool)>, // (entered, released)
    changed: Condvar,
}

impl CheckGate {
    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
    }
    fn wait_entered(&self) {
        let s = self.state.lock().unwrap();
        let (s, _) = self
            .changed
            .wait_timeout_while(s, Duration::from_secs(20), |s| !s.0)
            .unwrap();
        assert!(s.0, "the password check was reached");
    }
    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// alice (held storage, optionally a held password check) and bob (plain).
struct Accounts {
    alice: GatedStorage,
    bob: GatedStorage,
    alice_check: Option<Arc<CheckGate>>,
}

impl Users for Accounts {
    type Storage = GatedStorage;
    type Error = std::convert::Infallible;

    fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Login<GatedStorage>>, Self::Error> {
        let storage = match (user, password) {
            ("alice", "a") => {
                if let Some(gate) = &self.alice_check {
                    gate.pass();
                }
                self.alice.clone()
            }
            ("bob", "b") => self.bob.clone(),
            _ => return Ok(None),
        };
        Ok(Some(Login {
            storage,
            read_only: false,
            policy: Arc::default(),
        }))
    }
}

/// A running embedded server on one connection thread; stopped on drop.
struct Running {
    addr: SocketAddr,
    stop: ferry_smol::Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(gate: Option<Gate>, alice_check: Option<Arc<CheckGate>>) -> (Running, MemoryStorage) {
    let tree = MemoryStorage::new();
    let users = Accounts {
        alice: GatedStorage {
            inner: tree.clone(),
            gate,
        },
        bob: GatedStorage {
            inner: MemoryStorage::new(),
            gate: None,
        },
        alice_check,
    };
    let settings = Settings {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 1,
        shutdown_grace: Duration::from_secs(1),
        login_failure_delay: Duration::ZERO,
        ..Settings::default()
    };
    let bound =
        smol::block_on(Server::new(settings, users, AuditLog::from_writer(std::io::sink())).bind())
            .expect("bind");
    let addr = bound.local_addrs()[0];
    let stop = bound.shutdown_handle();
    let thread = std::thread::spawn(move || bound.run_threads(1, async {}));
    let running = Running {
        addr,
        stop,
        thread: Some(thread),
    };
    (running, tree)
}

/// bob does a whole session: login, upload, list, download, copy, delete, quit.
fn another_session_works(addr: SocketAddr) {
    let mut c = Control::connect(addr);
    c.read_reply();
    c.login("bob", "b");
    let body = b"bob's file, all of it\n".repeat(100);
    c.stor("bob.txt", &body);
    let (end, names) = c.listing("NLST");
    assert_eq!(end.code, 226, "{end:?}");
    assert!(names.contains("bob.txt"), "{names}");
    assert_eq!(c.retr("bob.txt"), body);
    c.expect_all(&[
        ("SITE CPFR bob.txt", 350),
        ("SITE CPTO copy.txt", 250),
        ("DELE bob.txt", 250),
        ("QUIT", 221),
    ]);
}

/// alice, logged in, with `tree` holding `a.txt`.
fn alice(addr: SocketAddr, tree: &MemoryStorage) -> Control {
    smol::block_on(async {
        let mut up = tree
            .open_write(&VirtualPath::parse("/a.txt").unwrap(), WriteMode::Replace)
            .await
            .unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut up, b"alice")
            .await
            .unwrap();
        up.commit().await.unwrap();
    });
    let mut c = Control::connect(addr);
    c.read_reply();
    c.login("alice", "a");
    c
}

/// A gate on alice's tree, the server, and alice logged in.
fn held_alice() -> (Held, Running, Control) {
    let (held, gate) = Held::new();
    let (server, tree) = start(Some(gate), None);
    let alice = alice(server.addr, &tree);
    (held, server, alice)
}

#[test]
fn a_held_listing_stalls_only_its_session() {
    let (held, server, mut a) = held_alice();
    let mut data = a.pasv();
    a.send("LIST");
    held.stalls_only_its_session("list", server.addr);
    assert_eq!(a.read_reply().code, 150);
    let mut listing = String::new();
    data.read_to_string(&mut listing).unwrap();
    assert!(listing.contains("a.txt"), "{listing}");
    assert_eq!(a.read_reply().code, 226);
}

#[test]
fn a_held_copy_stalls_only_its_session() {
    let (held, server, mut a) = held_alice();
    a.expect("SITE CPFR a.txt", 350);
    a.send("SITE CPTO b.txt");
    held.stalls_only_its_session("copy", server.addr);
    assert_eq!(a.read_reply().code, 250);
    assert_eq!(a.retr("b.txt"), b"alice");
}

#[test]
fn a_held_upload_write_stalls_only_its_session() {
    let (held, server, mut a) = held_alice();
    let mut data = a.data_in("I", "STOR up.txt");
    std::io::Write::write_all(&mut data, b"uploaded while held").unwrap();
    drop(data);
    held.stalls_only_its_session("write", server.addr);
    assert_eq!(a.read_reply().code, 226);
    assert_eq!(a.retr("up.txt"), b"uploaded while held");
}

#[test]
fn a_held_password_check_stalls_only_its_session() {
    let check = Arc::new(CheckGate::default());
    let (server, _tree) = start(None, Some(Arc::clone(&check)));
    let mut a = Control::connect(server.addr);
    a.read_reply();
    a.expect("USER alice", 331);
    a.send("PASS a");
    check.wait_entered();
    another_session_works(server.addr);
    check.release();
    assert_eq!(a.read_reply().code, 230);
}
