//! `Session`: the state machine of one control connection.
//!
//! Inputs come in through the `handle_*` methods (bytes read, outcomes of requests, the
//! passing of time, the server's shutdown); what the runtime must do comes out of
//! [`Session::poll_event`]. The session holds protocol state only: no sockets, no clock, no
//! storage.
//!
//! This file is the machine: its state, its inputs and outputs, and the command table that
//! dispatches each command by login state to the module of its concern:
//!
//! - `access`: `USER`, `PASS`, `ACCT`, `REIN`, `QUIT`, `HOST`, and TLS negotiation (`AUTH`,
//!   `PBSZ`, `PROT`); password checks and the failed-login delay.
//! - `transfers`: transfer parameters (`TYPE`, `MODE`, `STRU`, `REST`), data connections
//!   (`PORT`, `EPRT`, `PASV`, `EPSV`), the transfers themselves (`RETR`, `STOR`, `APPE`,
//!   `STOU`) and what is answered while one runs (`ABOR`, `STAT`, `NOOP`, `QUIT`).
//! - `files`: files and folders (`PWD`, `CWD`, `CDUP`, `MKD`, `RMD`, `DELE`, `RNFR`/`RNTO`,
//!   `SIZE`, `MDTM`, `MFMT`, `SITE`), answered from storage calls.
//! - `listings`: `LIST`, `NLST`, `MLSD`, `MLST`, `STAT`, and the service commands (`FEAT`,
//!   `OPTS`, `SYST`, `HELP`, `NOOP`).
//! - `state`: the enums the session is made of.
//!
//! One command is handled per [`Session::handle_input`] call, so at most a few events are
//! queued at a time. While a login, storage call or passive listener is pending, no input is
//! taken; while a transfer runs, only `ABOR`, `STAT`, `NOOP` and `QUIT` are.

mod access;
mod files;
mod listings;
mod state;
mod transfers;

use core::net::SocketAddr;

#[cfg(not(feature = "alloc"))]
use heapless::Deque;

use crate::command::Command;
use crate::config::Config;
use crate::event::{Event, ListFormat, Request, StorageOp};
use crate::framing::{Frame, Framer, IAC, strip_telnet};
use crate::limits::MAX_REPLIES;
use crate::listing::Facts;
use crate::outcome::{OpId, Outcome};
use crate::parse::parse_command;
use crate::path::{PathError, VirtualPath};
use crate::reply::Reply;
use crate::time::Instant;

use self::state::{
    DataEndpoint, Lifecycle, Login, Pending, Phase, Security, Selected, StorageCall,
};

/// Queued replies: on the heap only while there are some with `alloc` (an idle session
/// then holds none), in a fixed array without.
#[cfg(feature = "alloc")]
type Replies = alloc::collections::VecDeque<Reply>;
#[cfg(not(feature = "alloc"))]
type Replies = Deque<Reply, MAX_REPLIES>;

/// The queued request, boxed with `alloc` for the same reason.
#[cfg(feature = "alloc")]
type QueuedRequest = alloc::boxed::Box<Request>;
#[cfg(not(feature = "alloc"))]
type QueuedRequest = Request;

/// The protocol state of one control connection. See the [crate docs](crate) for the drive
/// loop.
#[derive(Debug)]
pub struct Session {
    config: Config,
    peer: SocketAddr,
    local: SocketAddr,
    framer: Framer,
    phase: Phase,
    cwd: VirtualPath,
    /// The source named by `RNFR` or `SITE CPFR`, for the very next command.
    selected: Option<Selected>,
    /// `TYPE A` (the default) rather than `TYPE I`.
    ascii: bool,
    /// `REST n`, taken by the next transfer command.
    rest: Option<u64>,
    data: DataEndpoint,
    /// `EPSV ALL`: from now on only `EPSV` sets up data connections.
    epsv_all: bool,
    security: Security,
    /// The `MLST` facts selected by `OPTS MLST`.
    facts: Facts,
    /// Failed logins on this connection.
    failures: u32,
    next_id: u32,
    pending: Pending,
    idle_deadline: Instant,
    life: Lifecycle,
    replies: Replies,
    request: Option<QueuedRequest>,
}

impl Session {
    /// A session for a control connection from `peer` to `local`, accepted at `now`. Queues
    /// the 220 greeting.
    #[must_use]
    pub fn new(config: Config, peer: SocketAddr, local: SocketAddr, now: Instant) -> Self {
        let mut config = config;
        config.max_line = config.max_line.clamp(16, Config::MAX_LINE_LIMIT);
        let mut s = Self {
            config,
            peer,
            local,
            framer: Framer::new(),
            phase: Phase::NeedUser,
            cwd: VirtualPath::root(),
            selected: None,
            ascii: true,
            rest: None,
            data: DataEndpoint::None,
            epsv_all: false,
            security: Security::Plain,
            facts: Facts::ALL,
            failures: 0,
            next_id: 0,
            pending: Pending::None,
            idle_deadline: now.saturating_add(config.idle_timeout),
            life: Lifecycle::Open,
            replies: Replies::new(),
            request: None,
        };
        s.reply(Reply::greeting(config.greeting));
        s
    }

    // ---- (A) getters ----

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The client's address.
    #[must_use]
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The server's address of this connection.
    #[must_use]
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The logged-in user.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        match &self.phase {
            Phase::LoggedIn { user, .. } => Some(user.as_str()),
            _ => None,
        }
    }

    /// The working directory.
    #[must_use]
    pub fn cwd(&self) -> &VirtualPath {
        &self.cwd
    }

    /// Whether the control connection runs TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.security.is_tls()
    }

    /// Whether the session has asked to close (after [`Request::Close`]).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.life == Lifecycle::Closed
    }

    /// Whether a transfer is running.
    #[must_use]
    pub fn is_transferring(&self) -> bool {
        matches!(self.pending, Pending::Transfer(_))
    }

    /// Bytes the runtime's input buffer must hold: the longest line with its CR LF.
    #[must_use]
    pub fn input_capacity(&self) -> usize {
        Framer::input_capacity(self.config.max_line)
    }

    // ---- (B) inputs ----

    /// Takes bytes read from the control connection and handles at most one command line.
    /// Returns how many bytes of `input` it used; the runtime keeps the rest and offers it
    /// again (after draining the events).
    ///
    /// Returns 0 when `input` holds no whole line yet, or while the session waits for an
    /// outcome (then the runtime should read no more than its buffer holds). Never fails:
    /// bad input becomes a reply.
    pub fn handle_input(&mut self, input: &[u8], now: Instant) -> usize {
        if self.is_closed() {
            return input.len();
        }
        let during_transfer = match self.pending {
            Pending::None => false,
            Pending::Transfer(_) => true,
            _ => return 0,
        };
        let (frame, used) = self.framer.next(input, self.config.max_line);
        match frame {
            Frame::Incomplete => used,
            Frame::TooLong => {
                self.reply(Reply::LINE_TOO_LONG);
                self.touch(now);
                used
            }
            Frame::Line(raw) if raw.contains(&IAC) => {
                self.line_with_telnet(raw, used, input.len(), during_transfer, now)
            }
            Frame::Line(line) => self.line(line, used, input.len(), during_transfer, now),
        }
    }

    /// The rare path: a line with telnet sequences, filtered through a stack buffer that
    /// exists only for the length of this call.
    #[inline(never)]
    fn line_with_telnet(
        &mut self,
        raw: &[u8],
        used: usize,
        available: usize,
        during_transfer: bool,
        now: Instant,
    ) -> usize {
        let mut scratch = [0u8; Config::MAX_LINE_LIMIT];
        let line = strip_telnet(raw, &mut scratch);
        self.line(line, used, available, during_transfer, now)
    }

    /// Handles one line of which `used` bytes of the `available` input were consumed.
    fn line(
        &mut self,
        line: &[u8],
        used: usize,
        available: usize,
        during_transfer: bool,
        now: Instant,
    ) -> usize {
        let parsed = parse_command(line);
        if during_transfer {
            return if self.during_transfer(parsed) {
                used
            } else {
                // Anything else waits for the transfer to end.
                0
            };
        }
        self.touch(now);
        match parsed {
            Ok(cmd) => {
                if self.command(cmd, now) == Consumed::AllInput {
                    return available;
                }
            }
            Err(e) => {
                self.selected = None;
                self.rest = None;
                self.reply(Reply::parse_error(e));
            }
        }
        used
    }

    /// Reports the outcome of a request. Outcomes for anything but the pending request are
    /// ignored.
    // Taken by value like every input, whether or not today's outcomes are all `Copy`.
    #[allow(clippy::needless_pass_by_value)]
    pub fn handle_outcome(&mut self, outcome: Outcome, now: Instant) {
        if self.is_closed() {
            // Whatever was pending ended with the session (shutdown, timeout, QUIT).
            return;
        }
        match outcome {
            Outcome::LoginChecked { id, result } if self.pending == Pending::Login(id) => {
                self.login_checked(result, now);
            }
            Outcome::StorageDone { id, result } => {
                if let Some(call) = self.take_storage_call(id) {
                    self.storage_done(call, result);
                    self.touch(now);
                }
            }
            Outcome::PassiveOpened { id, result } => self.passive_opened(id, result, now),
            Outcome::TransferOpened { id, size } => self.transfer_opened(id, size),
            Outcome::TransferFinished { id, result } => self.transfer_finished(id, result, now),
            Outcome::TlsEstablished => self.tls_established(now),
            Outcome::TlsFailed => self.tls_failed(),
            // Stale: not the pending login.
            Outcome::LoginChecked { .. } => {}
        }
    }

    /// Tells the session that time has passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        match self.pending {
            Pending::LoginDelay { until, close } if now >= until => {
                self.login_delay_over(close, now)
            }
            Pending::None if now >= self.idle_deadline => {
                self.reply(Reply::IDLE_TIMEOUT);
                self.close();
            }
            _ => {}
        }
    }

    /// The server is stopping: an idle session is told 421 and closed at once; a running
    /// transfer may finish first (the runtime bounds how long), then the session closes.
    pub fn handle_shutdown(&mut self) {
        if self.is_closed() {
            return;
        }
        self.life = Lifecycle::Draining;
        if !self.is_transferring() {
            // A pending login or storage call ends with the session; its outcome is ignored.
            self.pending = Pending::None;
            self.reply(Reply::SHUTTING_DOWN);
            self.close();
        }
    }

    // ---- (D) outputs ----

    /// The next thing to do, in order, or `None` when everything is done. Call until `None`
    /// after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(r) = self.replies.pop_front() {
            #[cfg(feature = "alloc")]
            if self.replies.is_empty() {
                // Idle sessions hold no queue.
                self.replies = Replies::new();
            }
            return Some(Event::Reply(r));
        }
        #[cfg(feature = "alloc")]
        return self.request.take().map(|r| Event::Request(*r));
        #[cfg(not(feature = "alloc"))]
        self.request.take().map(Event::Request)
    }

    /// When to call [`Session::handle_timeout`] next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        match self.pending {
            Pending::LoginDelay { until, .. } => Some(until),
            Pending::None => Some(self.idle_deadline),
            _ => None,
        }
    }

    // ---- the command table ----

    /// Runs one command: the table of every command by login state. Commands valid in every
    /// state come first; before login anything else is refused with 530; after login each
    /// command goes to the module of its concern. A new command gets its arm here (the
    /// compiler insists), next to its handler in one of the modules.
    fn command(&mut self, cmd: Command<'_>, now: Instant) -> Consumed {
        use Command as C;
        use Login::{In, Out};
        let selected = self.selected.take();
        // REST stays set until the next transfer command, which takes it.
        let rest = if cmd.starts_transfer() {
            self.rest.take()
        } else {
            None
        };
        if self.life == Lifecycle::Draining {
            self.reply(Reply::SHUTTING_DOWN);
            self.close();
            return Consumed::Line;
        }
        let login = match self.phase {
            Phase::LoggedIn { .. } => In,
            _ => Out,
        };
        match (login, cmd) {
            // Every state: the access, TLS and service commands that answer for themselves.
            (_, C::Auth(mech)) => return self.auth(mech),
            (_, C::Quit) => self.quit(),
            (_, C::Pbsz(_)) => self.pbsz(),
            (_, C::Prot(level)) => self.prot(level),
            (_, C::Feat) => self.feat(),
            (_, C::Opts(arg)) => self.opts(arg),
            (_, C::Syst) => self.reply(Reply::SYSTEM),
            (_, C::Help(_)) => self.reply(Reply::HELP),
            (_, C::Noop) => self.reply(Reply::NOOP_OK),
            // Before login.
            (Out, C::User(name)) => self.user_named(name),
            (Out, C::Pass(password)) => self.pass(password),
            (Out, C::Host(_)) => self.reply(Reply::HOST_ACCEPTED),
            (Out, _) => self.reply(Reply::NOT_LOGGED_IN),
            // After login: access.
            (In, C::User(_)) => self.reply(Reply::USER_WHILE_LOGGED_IN),
            (In, C::Pass(_)) => self.reply(Reply::PASS_WHILE_LOGGED_IN),
            (In, C::Host(_)) => self.reply(Reply::HOST_AFTER_LOGIN),
            (In, C::Acct(_)) => self.reply(Reply::ACCT_NOT_NEEDED),
            (In, C::Rein) => self.rein(),
            // Transfer parameters, data connections and transfers.
            (In, C::Type(t)) => self.set_type(t),
            (In, C::Mode(m)) => self.mode(m),
            (In, C::Stru(s)) => self.structure(s),
            (In, C::Rest(n)) => self.restart_at(n),
            (In, C::Port(addr)) => self.active(SocketAddr::V4(addr)),
            (In, C::Eprt(addr)) => self.active(addr),
            (In, C::Pasv) => self.pasv(),
            (In, C::Epsv(arg)) => self.epsv(arg),
            (In, C::Retr(path)) => self.retr(path, rest),
            (In, C::Stor(path)) => self.stor(path, rest),
            (In, C::Appe(path)) => self.appe(path),
            (In, C::Stou(base)) => self.stou(base, now),
            (In, C::Allo(_)) => self.reply(Reply::ALLO_NOT_NEEDED),
            (In, C::Abor) => self.abor_without_transfer(),
            // Files and folders.
            (In, C::Pwd { .. }) => self.reply(Reply::current_dir(self.cwd.clone())),
            (In, C::Cwd { path, .. }) => self.cwd_to(path),
            (In, C::Cdup { .. }) => self.cdup(),
            (In, C::Mkd { path, .. }) => self.mkd(path),
            (In, C::Rmd { path, .. }) => self.rmd(path),
            (In, C::Dele(path)) => self.dele(path),
            (In, C::Rnfr(path)) => self.rnfr(path),
            (In, C::Rnto(path)) => self.rnto(path, selected),
            (In, C::Size(path)) => self.size(path),
            (In, C::Mdtm(path)) => self.mdtm(path),
            (In, C::Mfmt { time, path }) => self.mfmt(time, path),
            (In, C::Site(site)) => self.site(site, selected),
            // Listings and status.
            (In, C::List(args)) => self.list(args, ListFormat::Long),
            (In, C::Nlst(args)) => self.list(args, ListFormat::Names),
            (In, C::Mlsd(path)) => self.mlsd(path),
            (In, C::Mlst(path)) => self.mlst(path),
            (In, C::Stat(None)) => self.status(),
            (In, C::Stat(Some(path))) => self.stat_path(path),
        }
        Consumed::Line
    }

    // ---- internals shared by the modules ----

    fn reply(&mut self, r: Reply) {
        debug_assert!(self.replies.len() < MAX_REPLIES, "reply queue overflow");
        #[cfg(feature = "alloc")]
        self.replies.push_back(r);
        #[cfg(not(feature = "alloc"))]
        let _ = self.replies.push_back(r);
    }

    fn request(&mut self, r: Request) {
        debug_assert!(self.request.is_none(), "two requests from one input");
        #[cfg(feature = "alloc")]
        let r = alloc::boxed::Box::new(r);
        self.request = Some(r);
    }

    fn close(&mut self) {
        self.life = Lifecycle::Closed;
        self.request(Request::Close);
    }

    fn touch(&mut self, now: Instant) {
        self.idle_deadline = now.saturating_add(self.config.idle_timeout);
    }

    fn next_id(&mut self) -> OpId {
        self.next_id = self.next_id.wrapping_add(1);
        OpId(self.next_id)
    }

    fn read_only(&self) -> bool {
        matches!(
            self.phase,
            Phase::LoggedIn {
                read_only: true,
                ..
            }
        )
    }

    /// Asks storage for `op`; `call` says what its result is for.
    fn storage(&mut self, op: StorageOp, call: StorageCall) {
        let id = self.next_id();
        self.pending = Pending::Storage(id, call);
        self.request(Request::Storage { id, op });
    }

    /// The pending storage call, if `id` is its request.
    fn take_storage_call(&mut self, id: OpId) -> Option<StorageCall> {
        match &self.pending {
            Pending::Storage(p, _) if *p == id => {}
            _ => return None,
        }
        match core::mem::replace(&mut self.pending, Pending::None) {
            Pending::Storage(_, call) => Some(call),
            _ => None,
        }
    }

    /// Joins `arg` to the working directory, or replies why it can't.
    fn resolve(&mut self, arg: &str) -> Option<VirtualPath> {
        match self.cwd.join(arg) {
            Ok(p) => Some(p),
            Err(PathError::ControlCharacter) => {
                self.reply(Reply::CONTROL_CHARACTER);
                None
            }
            Err(PathError::TooLong) => {
                self.reply(Reply::PATH_TOO_LONG);
                None
            }
        }
    }

    /// Resolves a path for a command that changes something, refusing read-only accounts.
    fn resolve_for_change(&mut self, arg: &str) -> Option<VirtualPath> {
        if self.read_only() {
            self.reply(Reply::READ_ONLY);
            return None;
        }
        self.resolve(arg)
    }
}

/// How much of the input a command used: its line, or everything read so far (`AUTH TLS`
/// discards what was sent behind it in clear text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumed {
    Line,
    AllInput,
}
