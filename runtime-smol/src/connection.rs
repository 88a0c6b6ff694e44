//! One control connection: the drive loop around a core [`Session`].
//!
//! The loop follows the core's drain rule: after every input, drain the session's events
//! and carry each out in order (replies are gathered and written in one write), then offer
//! buffered input again, and only when the session takes no more wait for the next of:
//! bytes from the client, the end of a running transfer, the session's timer, or the
//! server's shutdown. Logins, storage calls and passive listeners are awaited in place (the
//! session takes no input meanwhile); a transfer runs beside the loop so that `ABOR`, `STAT`
//! and `NOOP` are answered while it runs. `STAT path` is the exception: its listing goes to
//! the control connection, so the loop writes it in place, in bounded pieces, right after
//! the 213 opening reply.
//!
//! A connection knows the server only through the shared context ([`crate::context`]).

use std::future::Future;
use std::io::{self, Read as _};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant as StdInstant};

use ferry_backends::audit::Audited;
use ferry_backends::policy::Policed;
use ferry_backends::{Listing, Storage};
use ferry_core::{
    DataChannel, Event, Instant, LoginError, LoginInfo, OpId, Outcome, Request, Session,
    StorageError, StorageOp, StorageReply, Transfer, TransferError, TransferKind,
};
use smol::future::FutureExt as _;
use smol::io::{AsyncRead as _, AsyncWriteExt as _};
use smol::{Async, Timer};

use crate::clock::timeout;
use crate::context::Ctx;
use crate::data::{self, DataLink, DataPlan};
use crate::metrics;
use crate::policy::{Limits as RateLimits, SCAN_WAIT, SessionSlot};
use crate::tls::{DataTls, Stream as TlsStream};
use crate::transfer::{self, LIST_PIECE, Prepared, PumpOptions};
use crate::users::Users;

/// The most a read from the control connection takes at once: a few command lines.
const READ_CHUNK: usize = 4096;

/// How long closing a TLS control connection may take (its close_notify).
const TLS_CLOSE: Duration = Duration::from_secs(2);

/// How long a transfer cut off by the end of its control connection may take to clean up
/// (discard and audit an unfinished upload, or finish a commit already under way).
const CUT_OFF_CLEANUP: Duration = Duration::from_secs(10);

/// The storage of a logged-in session: the user's tree under their policy, audited.
type SessionStorage<U> = Audited<Policed<<U as Users>::Storage>>;

/// Its folder listings.
type SessionLister<U> = <SessionStorage<U> as Storage>::Lister;

/// The control connection, before or after `AUTH TLS`.
enum Control {
    Plain(Async<TcpStream>),
    Tls(Box<TlsStream>),
    /// During the handshake.
    Upgrading,
}

impl Control {
    /// Reads what is available (at most `room` bytes) onto the end of `buf`. A plain socket
    /// is read through a stack buffer that exists only after the socket is readable, so an
    /// idle session holds no read buffer.
    async fn read_into(&mut self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        match self {
            Self::Plain(s) => loop {
                s.readable().await?;
                let mut tmp = [0u8; READ_CHUNK];
                let want = room.min(READ_CHUNK);
                match s.get_ref().read(&mut tmp[..want]) {
                    Ok(n) => {
                        buf.extend_from_slice(&tmp[..n]);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
            // Cancel-safe: the loop drops this future whenever something else wakes it, so
            // `buf` only grows within one poll, by exactly the bytes read.
            Self::Tls(s) => {
                std::future::poll_fn(|cx| {
                    let start = buf.len();
                    buf.resize(start + room.min(READ_CHUNK), 0);
                    let r = Pin::new(&mut **s).poll_read(cx, &mut buf[start..]);
                    let n = match &r {
                        Poll::Ready(Ok(n)) => *n,
                        _ => 0,
                    };
                    buf.truncate(start + n);
                    r
                })
                .await
            }
            Self::Upgrading => std::future::pending().await,
        }
    }

    /// The TCP socket underneath.
    fn socket(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(s) => Some(s.get_ref()),
            Self::Tls(s) => Some(s.get_ref().0.get_ref()),
            Self::Upgrading => None,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(bytes).await,
            Self::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Self::Upgrading => Err(io::Error::other("control connection is upgrading")),
        }
    }

    async fn close(&mut self) {
        match self {
            Self::Plain(s) => {
                let _ = s.get_ref().shutdown(std::net::Shutdown::Both);
            }
            Self::Tls(s) => {
                let _ = timeout(TLS_CLOSE, s.close()).await;
            }
            Self::Upgrading => {}
        }
    }
}

/// A transfer under way.
enum Running<L> {
    /// Over a data connection, beside the loop.
    Data(DataTransfer),
    /// `STAT path`: a listing that the loop writes to the control connection once the 213
    /// opening reply is out.
    Status { id: OpId, listing: Listing<L> },
}

/// A transfer running beside the control loop.
struct DataTransfer {
    id: OpId,
    /// Closing it asks the transfer to stop (ABOR, or the client is gone); the transfer
    /// then cleans up (an upload is discarded and audited) and ends with `Aborted`.
    abort: smol::channel::Sender<()>,
    future: Pin<Box<dyn Future<Output = Result<u64, TransferError>> + Send>>,
    started: StdInstant,
    what: &'static str,
    path: String,
}

/// A transfer ready to start, from [`Conn::prepare`].
enum Ready<S: Storage> {
    /// `STAT path`: a listing for the control connection.
    Status(Listing<S::Lister>),
    /// Bytes over a data connection.
    Data {
        link: DataLink,
        prepared: Prepared<S>,
        /// To announce in the 150 reply.
        size: Option<u64>,
        opts: PumpOptions,
    },
}

/// What woke the loop.
enum Wake {
    Input(io::Result<usize>),
    Transfer(Result<u64, TransferError>),
    Timer,
    Shutdown,
}

/// [`Conn::armed`] when the timer is not armed: later than any deadline.
const NOT_ARMED: Instant = Instant::from_micros(u64::MAX);

/// The state of one control connection.
struct Conn<U: Users> {
    ctx: Arc<Ctx<U>>,
    session: Session,
    control: Control,
    input: Vec<u8>,
    out: Vec<u8>,
    storage: Option<SessionStorage<U>>,
    /// The logged-in account's place among its sessions (its count, quota, rates).
    slot: Option<SessionSlot>,
    passive: Option<Async<std::net::TcpListener>>,
    /// Boxed: most sessions have none running.
    transfer: Option<Box<Running<SessionLister<U>>>>,
    /// Boxed: only FTPS sessions have one.
    data_tls: Option<Box<DataTls>>,
    shutdown_seen: bool,
    /// The verb ([`metrics::verb_index`]) of the command waiting for its final reply, 0 if
    /// none: the metrics count each command with the class of that reply.
    verb: u8,
    /// The verb of the transfer that sent its 1xx and has not ended.
    opened: u8,
    /// The transfer has ended: the next final reply is its own.
    ending: bool,
    /// When the session started (the core's clock: half the size of a `std` instant).
    started: Instant,
    /// The session's timer, kept across waits: the session's deadline moves with every
    /// command, and arming a new timer each time costs the reactor a wake-up and two system
    /// calls. It is armed at the deadline it was last given, or earlier if the deadline moved
    /// earlier; when it fires before a later deadline, the session does nothing and the timer is
    /// armed again for the deadline then.
    timer: Timer,
    /// Where `timer` is armed ([`NOT_ARMED`]: it is not).
    armed: Instant,
}

/// Serves one control connection until it ends; `guard` (the connection's admission) is
/// dropped then. Not an `async fn`: the state is set up here and moved whole into the
/// future, which then holds it once (an `async fn` would also keep its arguments).
pub(crate) fn serve<U: Users, G: Send + 'static>(
    ctx: Arc<Ctx<U>>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static {
    let local = stream.get_ref().local_addr().unwrap_or(peer);
    // Replies are written whole, in one write each: Nagle's algorithm would hold them back
    // behind a delayed ACK.
    let _ = stream.get_ref().set_nodelay(true);
    tracing::info!(%peer, "session start");
    let ctx_now = ctx.clock.now();
    let session = Session::new(ctx.core, peer, local, ctx_now);
    let mut conn = Conn {
        ctx,
        session,
        control: Control::Plain(stream),
        input: Vec::new(),
        out: Vec::new(),
        storage: None,
        slot: None,
        passive: None,
        transfer: None,
        data_tls: None,
        shutdown_seen: false,
        verb: 0,
        opened: 0,
        ending: false,
        started: ctx_now,
        timer: Timer::never(),
        armed: NOT_ARMED,
    };
    // `conn` is captured, not rebound: an `async fn` taking it would hold it twice.
    async move {
        let result = conn.drive().await;
        if let Some(mut running) = conn.transfer.take()
            && let Running::Data(t) = &mut *running
        {
            // The client is gone: stop the transfer, but let it clean up.
            t.abort.close();
            let ended = timeout(CUT_OFF_CLEANUP, t.future.as_mut()).await;
            let user = conn.session.user().unwrap_or("-");
            tracing::info!(%peer, user, what = t.what, path = %t.path, result = ?ended, "transfer cut off: control connection ended");
        }
        conn.control.close().await;
        let micros = conn
            .now()
            .as_micros()
            .saturating_sub(conn.started.as_micros());
        #[allow(clippy::cast_precision_loss)]
        let secs = micros as f64 / 1e6;
        let user = conn.session.user().unwrap_or("-");
        let error = result.err().map(|e| e.to_string());
        tracing::info!(%peer, user, secs, error, "session end");
        drop(guard);
    }
}

impl<U: Users> Conn<U> {
    async fn drive(&mut self) -> io::Result<()> {
        loop {
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::Reply(reply) => {
                        self.count_reply(reply.code());
                        // Encoding into a Vec cannot fail.
                        let _ = std::fmt::Write::write_fmt(
                            &mut FmtVec(&mut self.out),
                            format_args!("{reply}"),
                        );
                    }
                    Event::Request(Request::Close) => {
                        self.flush().await?;
                        return Ok(());
                    }
                    Event::Request(other) => {
                        self.flush().await?;
                        // Boxed: the state of a request (a login, a storage call, a transfer
                        // being set up) would otherwise live in every idle session's future.
                        Box::pin(self.perform(other)).await?;
                    }
                }
            }
            self.flush().await?;
            if let Some(status) = self
                .transfer
                .take_if(|t| matches!(**t, Running::Status { .. }))
            {
                // The 213 opening reply is out: the listing follows it. Boxed, as requests are.
                Box::pin(self.write_status(status)).await?;
                continue;
            }
            if self.session.is_closed() {
                return Ok(());
            }
            if !self.input.is_empty() {
                let used = self.session.handle_input(&self.input, self.now());
                if used > 0 {
                    self.verb = metrics::verb_index(&self.input[..used]);
                    self.input.drain(..used);
                    if self.input.is_empty() {
                        // Give the memory back while idle.
                        self.input = Vec::new();
                    }
                    continue;
                }
            }
            match self.wait().await {
                Wake::Input(Ok(0)) => return Ok(()),
                Wake::Input(Ok(_)) => {}
                Wake::Input(Err(e)) => return Err(e),
                Wake::Transfer(result) => {
                    if let Some(running) = self.transfer.take()
                        && let Running::Data(t) = &*running
                    {
                        self.log_transfer(t, &result);
                        let took = t.started.elapsed();
                        self.ctx
                            .metrics
                            .transfer(t.what, result.as_ref().ok().copied(), took);
                        self.finished(t.id, result);
                    }
                }
                Wake::Timer => {
                    self.armed = NOT_ARMED;
                    self.session.handle_timeout(self.now());
                }
                Wake::Shutdown => {
                    self.shutdown_seen = true;
                    self.session.handle_shutdown();
                }
            }
        }
    }

    /// Waits for the next thing that needs the session. Not an `async fn`: one would keep
    /// the four futures both as its locals and inside the combined future, doubling what
    /// every idle session holds.
    fn wait(&mut self) -> impl Future<Output = Wake> + '_ {
        let capacity = self.session.input_capacity();
        let room = capacity.saturating_sub(self.input.len());
        if let Some(deadline) = self.session.poll_timeout()
            && self.armed > deadline
        {
            self.timer.set_at(self.ctx.clock.to_std(deadline));
            self.armed = deadline;
        }
        let Self {
            control,
            input,
            transfer,
            ctx,
            shutdown_seen,
            timer,
            ..
        } = self;
        let read = async move {
            if room == 0 {
                // The buffer holds a command that waits for the transfer to end.
                std::future::pending::<()>().await;
            }
            Wake::Input(control.read_into(input, room).await)
        };
        let running = async move {
            match transfer.as_deref_mut() {
                Some(Running::Data(t)) => Wake::Transfer(t.future.as_mut().await),
                // A status listing is written by the loop before it waits.
                Some(Running::Status { .. }) | None => std::future::pending().await,
            }
        };
        // Pending for ever once fired, until armed again.
        let timer = async move {
            timer.await;
            Wake::Timer
        };
        let shutdown = async move {
            if *shutdown_seen {
                std::future::pending::<()>().await;
            }
            let _ = ctx.shutdown.recv().await;
            Wake::Shutdown
        };
        read.or(running).or(timer).or(shutdown)
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.control.write_all(&self.out).await;
        // Give the memory back: most sessions sit idle between commands.
        self.out = Vec::new();
        r
    }

    /// Counts the command that `code` answers, if it is a final reply.
    fn count_reply(&mut self, code: u16) {
        if code < 200 {
            if code >= 100 && self.verb != 0 {
                self.opened = std::mem::take(&mut self.verb);
            }
            return;
        }
        let verb = if std::mem::take(&mut self.ending) && self.opened != 0 {
            std::mem::take(&mut self.opened)
        } else {
            std::mem::take(&mut self.verb)
        };
        if verb != 0 {
            self.ctx.metrics.command(verb, code);
        }
    }

    /// The core's time now.
    fn now(&self) -> Instant {
        self.ctx.clock.now()
    }

    /// Carries out one request of the session.
    async fn perform(&mut self, request: Request) -> io::Result<()> {
        match request {
            Request::CheckLogin { id, user, password } => {
                let result = self
                    .check_login(user.as_str(), password.expose().as_str())
                    .await;
                self.session
                    .handle_outcome(Outcome::LoginChecked { id, result }, self.now());
            }
            Request::Storage { id, op } => {
                let result = self.storage_op(&op).await;
                self.session
                    .handle_outcome(Outcome::StorageDone { id, result }, self.now());
            }
            Request::OpenPassive { id, .. } => {
                let result = self.open_passive();
                self.session
                    .handle_outcome(Outcome::PassiveOpened { id, result }, self.now());
            }
            Request::ClosePassive => {
                if let Some(l) = self.passive.take() {
                    self.ctx.passive_pool.put(l);
                }
            }
            Request::Transfer(t) => self.start_transfer(t).await,
            Request::Abort { id } => {
                // The transfer stops at its next step (at once, unless it is committing an
                // upload) and reports how it ended through the loop.
                if let Some(Running::Data(t)) = self.transfer.as_deref()
                    && t.id == id
                {
                    t.abort.close();
                }
            }
            Request::StartTls => self.start_tls().await,
            // Handled by the loop.
            Request::Close => {}
        }
        Ok(())
    }

    /// Takes a passive listener from the pool or binds one (replacing any before it) and says
    /// where.
    fn open_passive(&mut self) -> Result<SocketAddr, ferry_core::DataError> {
        if let Some(l) = self.passive.take() {
            self.ctx.passive_pool.put(l);
        }
        let ip = self.session.local().ip();
        let bound = match self.ctx.passive_pool.take(ip) {
            Some((l, addr)) => Ok((addr, l)),
            None => data::bind_passive(ip, self.ctx.settings.passive_ports)
                .and_then(|l| Ok((l.get_ref().local_addr()?, l))),
        };
        match bound {
            Ok((addr, l)) => {
                self.passive = Some(l);
                Ok(addr)
            }
            Err(e) => {
                tracing::warn!(peer = %self.session.peer(), error = %e, "cannot open a passive listener");
                Err(ferry_core::DataError)
            }
        }
    }

    /// Counts a failed login (towards the address's ban).
    fn login_failed(&self) -> Result<LoginInfo, LoginError> {
        self.ctx.metrics.login("failed");
        if self
            .ctx
            .limits
            .login_failed(self.session.peer().ip(), &self.ctx.settings)
        {
            self.ctx.metrics.banned();
        }
        Err(LoginError::Rejected)
    }

    async fn check_login(&mut self, user: &str, password: &str) -> Result<LoginInfo, LoginError> {
        let ctx = self.ctx.clone();
        // A new login (after REIN) leaves the account's earlier session first.
        self.slot = None;
        let backend = ctx.users.backend();
        let asked = StdInstant::now();
        // A login verified a moment ago is answered here, in microseconds (no hash, no
        // wait, no thread hop); any other goes to a blocking thread.
        let checked = if let Some(quick) = ctx.users.check_quick(user, password) {
            quick
        } else {
            let permit = ctx.login_gate.acquire_arc().await;
            let (u, p) = (user.to_owned(), password.to_owned());
            let users = ctx.users.clone();
            let checked = smol::unblock(move || users.check(&u, &p)).await;
            drop(permit);
            checked
        };
        ctx.metrics.storage("login", backend, asked.elapsed());
        match checked {
            Ok(Some(login)) if !login.policy.allows_address(self.session.peer().ip()) => {
                // Refused like a wrong password: nothing tells the client that the account
                // exists, nor that the password was right. A remembered login was checked
                // without the hash, so its refusal waits out what the hash would have taken.
                let left = ferry_backends::accounts::hash_time().saturating_sub(asked.elapsed());
                if !left.is_zero() {
                    Timer::after(left).await;
                }
                tracing::warn!(peer = %self.session.peer(), user, "login refused: the account does not allow this address");
                self.login_failed()
            }
            Ok(Some(login)) => {
                let state = ctx.user_states.get(user, &login.policy);
                let Some(slot) = ctx.user_states.open_session(&state, &login.policy) else {
                    ctx.metrics.login("too_many_sessions");
                    tracing::warn!(peer = %self.session.peer(), user, max = login.policy.max_sessions, "login refused: the account has as many sessions as it may");
                    return Err(LoginError::TooManySessions);
                };
                let bulk = ctx.bulk.clone();
                if let Some(ended) =
                    state.scan_once(user, &login.policy, &login.storage, move |f| bulk.detach(f))
                {
                    let _ = timeout(SCAN_WAIT, ended.recv()).await;
                }
                self.storage = Some(Audited::new(
                    Policed::new(login.storage, login.policy.clone(), state.usage.clone()),
                    ctx.audit.clone(),
                    user,
                    self.session.peer(),
                ));
                self.slot = Some(slot);
                ctx.limits.login_succeeded(self.session.peer().ip());
                ctx.metrics.login("ok");
                tracing::info!(peer = %self.session.peer(), user, read_only = login.read_only, "login");
                Ok(LoginInfo {
                    read_only: login.read_only,
                })
            }
            Ok(None) => {
                tracing::warn!(peer = %self.session.peer(), user, "login failed");
                self.login_failed()
            }
            Err(e) => {
                ctx.metrics.login("unavailable");
                tracing::error!(peer = %self.session.peer(), user, error = %e, "accounts unavailable");
                Err(LoginError::Unavailable)
            }
        }
    }

    // `&mut self`: the connection is `Send` but not `Sync` (it holds a transfer future).
    async fn storage_op(&mut self, op: &StorageOp) -> Result<StorageReply, StorageError> {
        let Some(s) = &self.storage else {
            return Err(StorageError::PermissionDenied);
        };
        let asked = StdInstant::now();
        let done = ferry_backends::perform(s, op).await;
        let backend = self.ctx.users.backend();
        self.ctx
            .metrics
            .storage(metrics::op_name(op), backend, asked.elapsed());
        done.map_err(|e| {
            // A failure of the storage itself (not a missing file) is logged for every call.
            let storage_failed = matches!(
                e.kind(),
                StorageError::Other | StorageError::PermissionDenied | StorageError::HardLinked
            );
            if op.is_mutation() || storage_failed {
                tracing::info!(peer = %self.session.peer(), user = self.session.user().unwrap_or("-"), ?op, error = %e, "storage operation refused");
            }
            e.kind()
        })
    }

    /// Starts a transfer: reports `TransferOpened` (the 150 or 213 opening reply follows in
    /// the drain) and runs it beside the loop, or, for `STAT path`, leaves its listing for the
    /// loop to write; or reports `TransferFinished` with why it could not start.
    async fn start_transfer(&mut self, t: Transfer) {
        let (what, path) = describe(&t.kind);
        let (size, running) = match self.prepare(&t, what, &path).await {
            Ok(Ready::Status(listing)) => {
                let id = t.id;
                (None, Running::Status { id, listing })
            }
            Ok(Ready::Data {
                link,
                prepared,
                size,
                opts,
            }) => {
                let (abort, aborted) = smol::channel::bounded(1);
                let data = DataTransfer {
                    id: t.id,
                    abort,
                    future: Box::pin(transfer::run(
                        link,
                        prepared,
                        opts,
                        aborted,
                        Arc::clone(&self.ctx.bulk),
                    )),
                    started: StdInstant::now(),
                    what,
                    path,
                };
                (size, Running::Data(data))
            }
            Err(e) => return self.finished(t.id, Err(e)),
        };
        self.transfer = Some(Box::new(running));
        self.session
            .handle_outcome(Outcome::TransferOpened { id: t.id, size }, self.now());
    }

    /// Opens what the transfer reads or writes (first, so that a missing file is a 550
    /// before any 150), then takes the data connection's plan and its TLS.
    async fn prepare(
        &mut self,
        t: &Transfer,
        what: &str,
        path: &str,
    ) -> Result<Ready<SessionStorage<U>>, TransferError> {
        let storage = self
            .storage
            .as_ref()
            .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
        let asked = StdInstant::now();
        let opened = transfer::open(storage, &t.kind).await;
        let op = match what {
            "download" => "open_download",
            "upload" => "open_upload",
            _ => "open_listing",
        };
        let backend = self.ctx.users.backend();
        self.ctx.metrics.storage(op, backend, asked.elapsed());
        let (prepared, size) = opened.map_err(|e| {
            tracing::info!(peer = %self.session.peer(), user = self.session.user().unwrap_or("-"), what, path, error = %e, "transfer refused");
            TransferError::Storage(e.kind())
        })?;
        let (plan, prepared) = match (t.channel, prepared) {
            // The core sends only listings (`STAT path`) to the control connection.
            (DataChannel::Control, Prepared::List(listing)) => return Ok(Ready::Status(listing)),
            (DataChannel::Control, other) => {
                return Err(transfer::discard(other, TransferError::DataConnection).await);
            }
            (DataChannel::Active(addr), p) => (DataPlan::Active(addr), p),
            (DataChannel::Passive, p) => match self.passive.take() {
                Some(l) => (DataPlan::Passive(l), p),
                None => return Err(transfer::discard(p, TransferError::DataConnection).await),
            },
        };
        let tls = match (t.protected, &self.data_tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(DataTls::clone(tls)),
            (true, None) => {
                return Err(transfer::discard(prepared, TransferError::TlsHandshake).await);
            }
        };
        let link = DataLink {
            plan,
            peer: self.session.peer(),
            within: self.ctx.settings.data_timeout,
            tls,
            proxy: self.ctx.proxy.clone(),
            metrics: self.ctx.metrics.clone(),
            pool: self.ctx.passive_pool.clone(),
        };
        let control = t
            .kind
            .is_upload()
            .then(|| self.control.socket().and_then(|s| s.try_clone().ok()))
            .flatten()
            .map(std::os::fd::OwnedFd::from);
        let rates = match (&t.kind, &self.slot) {
            (TransferKind::Retrieve { .. }, Some(slot)) => {
                RateLimits::new([slot.state().down.clone(), self.ctx.rate_down.clone()])
            }
            (TransferKind::Store { .. }, Some(slot)) => {
                RateLimits::new([slot.state().up.clone(), self.ctx.rate_up.clone()])
            }
            _ => RateLimits::default(),
        };
        let opts = PumpOptions {
            stall_timeout: self.ctx.settings.stall_timeout,
            ascii: t.ascii,
            control,
            rates,
        };
        Ok(Ready::Data {
            link,
            prepared,
            size,
            opts,
        })
    }

    /// Writes the listing of `STAT path` to the control connection, as the body of the 213
    /// reply, in pieces of [`LIST_PIECE`] bytes, each written (and flushed) at once; then
    /// reports how it ended. Lines begin with the entry type letter, never with a reply code.
    async fn write_status(&mut self, status: Box<Running<SessionLister<U>>>) -> io::Result<()> {
        let Running::Status { id, mut listing } = *status else {
            return Ok(());
        };
        let mut text = String::new();
        let mut total = 0u64;
        let result = loop {
            match listing.write_piece(&mut text, LIST_PIECE).await {
                Ok(more) => {
                    self.control.write_all(text.as_bytes()).await?;
                    total += text.len() as u64;
                    text.clear();
                    if !more {
                        break Ok(total);
                    }
                    // Writes to a fast client complete at once: let the thread's other
                    // sessions run between pieces.
                    smol::future::yield_now().await;
                }
                Err(e) => break Err(TransferError::Storage(e.kind())),
            }
        };
        self.finished(id, result);
        Ok(())
    }

    /// Reports the end of a transfer to the session.
    fn finished(&mut self, id: OpId, result: Result<u64, TransferError>) {
        self.ending = true;
        let now = self.now();
        self.session
            .handle_outcome(Outcome::TransferFinished { id, result }, now);
    }

    async fn start_tls(&mut self) {
        let Some(tls) = self.ctx.tls.clone() else {
            self.session.handle_outcome(Outcome::TlsFailed, self.now());
            return;
        };
        // The core consumed everything read so far: nothing sent in clear text before the
        // handshake survives it.
        self.input.clear();
        let Control::Plain(stream) = std::mem::replace(&mut self.control, Control::Upgrading)
        else {
            self.session.handle_outcome(Outcome::TlsFailed, self.now());
            return;
        };
        match tls
            .accept_control(stream, self.ctx.settings.data_timeout)
            .await
        {
            Ok((stream, data)) => {
                self.ctx.metrics.tls("control", true);
                self.control = Control::Tls(Box::new(stream));
                self.data_tls = Some(Box::new(data));
                tracing::info!(peer = %self.session.peer(), "control connection upgraded to TLS");
                self.session
                    .handle_outcome(Outcome::TlsEstablished, self.now());
            }
            Err(e) => {
                self.ctx.metrics.tls("control", false);
                tracing::warn!(peer = %self.session.peer(), error = %e, "TLS handshake on the control connection failed");
                self.session.handle_outcome(Outcome::TlsFailed, self.now());
            }
        }
    }

    fn log_transfer(&self, t: &DataTransfer, result: &Result<u64, TransferError>) {
        let secs = t.started.elapsed().as_secs_f64();
        let user = self.session.user().unwrap_or("-");
        match result {
            Ok(bytes) => {
                #[allow(clippy::cast_precision_loss)]
                let mb_per_s = if secs > 0.0 {
                    *bytes as f64 / secs / 1e6
                } else {
                    0.0
                };
                tracing::info!(peer = %self.session.peer(), user, what = t.what, path = %t.path, bytes, secs, mb_per_s, "transfer complete");
            }
            Err(e) => {
                tracing::info!(peer = %self.session.peer(), user, what = t.what, path = %t.path, secs, error = ?e, "transfer failed");
            }
        }
    }
}

/// What a transfer is, for the log.
fn describe(kind: &TransferKind) -> (&'static str, String) {
    match kind {
        TransferKind::Retrieve { path, .. } => ("download", path.to_string()),
        TransferKind::Store { path, .. } => ("upload", path.to_string()),
        TransferKind::List(l) => ("listing", l.path.to_string()),
    }
}

/// `fmt::Write` into a byte vector.
struct FmtVec<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for FmtVec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod size_tests {
    use ferry_backends::memory::MemoryStorage;

    /// The most an idle session's future may take, in bytes. An idle session's memory is
    /// mostly this future (BENCHMARKS.md: 1,200 bytes, 1.98 KiB PSS per idle session at
    /// 10,000); the bound leaves 16 bytes of slack, so that growing past it is a decision.
    const IDLE_SESSION_BOUND: usize = 1216;

    #[test]
    fn an_idle_session_is_small() {
        let users = crate::users::MemoryUsers::new().with_user("a", "b", MemoryStorage::new());
        let settings = crate::config::Settings {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..crate::config::Settings::default()
        };
        let audit = ferry_backends::audit::AuditLog::from_writer(std::io::sink());
        let server = crate::Server::new(settings, users, audit);
        smol::block_on(async {
            let bound = server.bind().await.unwrap();
            let addr = bound.local_addrs()[0];
            let stream = smol::Async::<std::net::TcpStream>::connect(addr)
                .await
                .unwrap();
            let peer = stream.get_ref().local_addr().unwrap();
            let fut = super::serve(bound.ctx_for_tests(), stream, peer, ());
            let size = size_of_val(&fut);
            assert!(
                size <= IDLE_SESSION_BOUND,
                "a session's future grew to {size} bytes"
            );
        });
    }
}
