//! `Session`: the state machine of one control connection.
//!
//! Inputs come in through the `handle_*` methods (bytes read, outcomes of requests, the
//! passing of time); what the runtime must do comes out of [`Session::poll_event`]. The
//! session holds protocol state only: no sockets, no clock, no storage.
//!
//! One command is handled per [`Session::handle_input`] call, so at most a few events are
//! queued at a time. While a login, storage call or passive listener is pending, no input is
//! taken; while a transfer runs, only `ABOR`, `STAT`, `NOOP` and `QUIT` are.

use core::net::{IpAddr, SocketAddr, SocketAddrV4};

#[cfg(not(feature = "alloc"))]
use heapless::Deque;

use crate::command::{
    Command, EpsvArg, FileStructure, ListArgs, OptsArg, ProtLevel, SiteCommand, TransferMode,
    same_host,
};
use crate::config::{Config, TlsMode};
use crate::event::{
    DataChannel, Event, Family, ListFormat, ListRequest, LoginError, OpId, Outcome, Password,
    Request, StorageOp, StorageReply, Transfer, TransferError, TransferKind, UserName,
};
use crate::framing::{Frame, Framer, strip_telnet};
use crate::listing::{Facts, is_pattern};
use crate::parse::parse_command;
use crate::path::{PathError, VirtualPath};
use crate::reply::{Message, Reply, Status};
use crate::secret::Secret;
use crate::storage::{FileKind, Metadata, StorageError, WriteMode};
use crate::text::Text;
use crate::time::{DateTime, Instant, UnixTime};

/// Replies one command can queue before its request (426, 226, 221 after a transfer).
const MAX_REPLIES: usize = 4;

/// Queued replies: on the heap only while there are some with `alloc` (an idle session
/// then holds none), in a fixed array without.
#[cfg(feature = "alloc")]
type Replies = alloc::collections::VecDeque<Reply>;
#[cfg(not(feature = "alloc"))]
type Replies = Deque<Reply, MAX_REPLIES>;

/// The queued request, boxed with `alloc` for the same reason.
#[cfg(feature = "alloc")]
type Action = alloc::boxed::Box<Request>;
#[cfg(not(feature = "alloc"))]
type Action = Request;

/// Longest failed-login delay, as a power of two of the first: 1 s doubles to at most 32 s.
const MAX_DELAY_DOUBLINGS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NeedUser,
    NeedPass(UserName),
    LoggedIn { user: UserName, read_only: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    None,
    Passive,
    Active(SocketAddr),
}

/// What a pending storage call's result is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Then {
    Cwd(VirtualPath),
    Mkd(VirtualPath),
    Done(u16, &'static str),
    Rnfr(VirtualPath),
    Cpfr(VirtualPath),
    Size,
    Mdtm,
    Mfmt(DateTime, VirtualPath),
    Mlst(VirtualPath),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rename,
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    id: OpId,
    opened: bool,
    abort: bool,
    quit: bool,
    upload: bool,
    control: bool,
    list: bool,
    ascii: bool,
    /// For `STOU`: the name chosen, announced in the 150 reply.
    unique: Option<VirtualPath>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    None,
    Login(OpId),
    Delay { until: Instant, close: bool },
    Storage(OpId, Then),
    Passive { id: OpId, extended: bool },
    Transfer(Running),
    Tls,
}

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
    source: Option<(Source, VirtualPath)>,
    ascii: bool,
    rest: Option<u64>,
    data: Data,
    epsv_all: bool,
    tls: bool,
    pbsz: bool,
    private: bool,
    facts: Facts,
    failures: u32,
    next_id: u32,
    pending: Pending,
    idle_deadline: Instant,
    shutting_down: bool,
    closed: bool,
    replies: Replies,
    action: Option<Action>,
}

/// Whether a command starts a transfer (and so takes a pending `REST`).
fn is_transfer(cmd: &Command<'_>) -> bool {
    matches!(
        cmd,
        Command::Retr(_)
            | Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou(_)
            | Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
    )
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
            source: None,
            ascii: true,
            rest: None,
            data: Data::None,
            epsv_all: false,
            tls: false,
            pbsz: false,
            private: false,
            facts: Facts::ALL,
            failures: 0,
            next_id: 0,
            pending: Pending::None,
            idle_deadline: now.saturating_add(config.idle_timeout),
            shutting_down: false,
            closed: false,
            replies: Replies::new(),
            action: None,
        };
        s.reply(Reply::text(220, config.greeting));
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
        self.tls
    }

    /// Whether the session has asked to close (after [`Request::Close`]).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
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
        if self.closed {
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
                self.reply(Reply::text(500, "Command line too long."));
                self.touch(now);
                used
            }
            Frame::Line(raw) => {
                if raw.contains(&crate::framing::IAC) {
                    self.line_with_telnet(raw, used, input.len(), during_transfer, now)
                } else {
                    self.line(raw, used, input.len(), during_transfer, now)
                }
            }
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
            match parsed {
                Ok(Command::Abor) => self.abort(),
                Ok(Command::Stat(_)) => {
                    self.reply(Reply::text(213, "Status: transfer in progress."));
                }
                Ok(Command::Noop) => self.reply(Reply::text(200, "NOOP ok.")),
                Ok(Command::Quit) => {
                    if let Pending::Transfer(t) = &mut self.pending {
                        t.quit = true;
                    }
                }
                // Anything else waits for the transfer to end.
                _ => return 0,
            }
            return used;
        }
        self.touch(now);
        match parsed {
            Ok(Command::Auth(mech)) => {
                if self.auth(mech) {
                    // Plain-text bytes behind AUTH TLS are discarded, never run after the
                    // handshake (STARTTLS command injection).
                    return available;
                }
            }
            Ok(cmd) => self.command(cmd, now),
            Err(e) => {
                self.source = None;
                self.rest = None;
                self.reply(Reply::text(e.reply_code(), e.message()));
            }
        }
        used
    }

    /// Reports the outcome of a request. Outcomes for anything but the pending request are
    /// ignored.
    pub fn handle_outcome(&mut self, outcome: Outcome, now: Instant) {
        if self.closed {
            // Whatever was pending ended with the session (shutdown, timeout, QUIT).
            return;
        }
        match (outcome, &self.pending) {
            (Outcome::LoginChecked { id, result }, Pending::Login(p)) if id == *p => {
                self.login_checked(result, now);
            }
            (Outcome::StorageDone { id, result }, Pending::Storage(p, _)) if id == *p => {
                let Pending::Storage(_, then) =
                    core::mem::replace(&mut self.pending, Pending::None)
                else {
                    unreachable!("matched above");
                };
                self.storage_done(then, result);
                self.touch(now);
            }
            (Outcome::PassiveOpened { id, result }, Pending::Passive { id: p, extended })
                if id == *p =>
            {
                let extended = *extended;
                self.pending = Pending::None;
                self.touch(now);
                match result {
                    Ok(addr) => self.passive_opened(addr, extended),
                    Err(_) => self.reply(Reply::text(425, "Cannot open passive connection.")),
                }
            }
            (Outcome::TransferOpened { id, size }, Pending::Transfer(t))
                if id == t.id && !t.opened =>
            {
                let t = t.clone();
                if let Pending::Transfer(r) = &mut self.pending {
                    r.opened = true;
                }
                let reply = if t.control {
                    Reply::opening(213, Message::Text("Status follows:"))
                } else if t.list {
                    Reply::text(150, "Here comes the directory listing.")
                } else if let Some(path) = t.unique {
                    Reply::new(
                        150,
                        Message::WithPath {
                            text: "FILE:",
                            path,
                        },
                    )
                } else {
                    match (size, t.ascii) {
                        (Some(n), ascii) => Reply::new(
                            150,
                            Message::Number {
                                before: if ascii {
                                    "Opening ASCII mode data connection ("
                                } else {
                                    "Opening BINARY mode data connection ("
                                },
                                n,
                                after: " bytes).",
                            },
                        ),
                        (None, true) => Reply::text(150, "Opening ASCII mode data connection."),
                        (None, false) => Reply::text(150, "Opening BINARY mode data connection."),
                    }
                };
                self.reply(reply);
            }
            (Outcome::TransferFinished { id, result }, Pending::Transfer(t)) if id == t.id => {
                let t = t.clone();
                self.pending = Pending::None;
                self.touch(now);
                self.transfer_finished(&t, result);
            }
            (Outcome::TlsEstablished, Pending::Tls) => {
                self.pending = Pending::None;
                self.tls = true;
                self.framer = Framer::new();
                self.touch(now);
            }
            (Outcome::TlsFailed, Pending::Tls) => {
                self.pending = Pending::None;
                self.close();
            }
            // Stale or unexpected: ignore.
            _ => {}
        }
    }

    /// Tells the session that time has passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        match self.pending {
            Pending::Delay { until, close } if now >= until => {
                self.pending = Pending::None;
                self.reply(Reply::text(530, "Login incorrect."));
                if close {
                    self.reply(Reply::text(
                        421,
                        "Too many failed logins; closing connection.",
                    ));
                    self.close();
                }
                self.touch(now);
            }
            Pending::None if now >= self.idle_deadline => {
                self.reply(Reply::text(
                    421,
                    "Idle timeout; closing control connection.",
                ));
                self.close();
            }
            _ => {}
        }
    }

    /// The server is stopping: an idle session is told 421 and closed at once; a running
    /// transfer may finish first (the runtime bounds how long), then the session closes.
    pub fn handle_shutdown(&mut self) {
        if self.closed {
            return;
        }
        self.shutting_down = true;
        if !self.is_transferring() {
            // A pending login or storage call ends with the session; its outcome is ignored.
            self.pending = Pending::None;
            self.reply(Reply::text(421, "Server shutting down."));
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
        return self.action.take().map(|a| Event::Request(*a));
        #[cfg(not(feature = "alloc"))]
        self.action.take().map(Event::Request)
    }

    /// When to call [`Session::handle_timeout`] next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        match self.pending {
            Pending::Delay { until, .. } => Some(until),
            Pending::None => Some(self.idle_deadline),
            _ => None,
        }
    }

    // ---- internals ----

    fn reply(&mut self, r: Reply) {
        debug_assert!(self.replies.len() < MAX_REPLIES, "reply queue overflow");
        #[cfg(feature = "alloc")]
        self.replies.push_back(r);
        #[cfg(not(feature = "alloc"))]
        let _ = self.replies.push_back(r);
    }

    fn act(&mut self, e: Request) {
        debug_assert!(self.action.is_none(), "two requests from one input");
        #[cfg(feature = "alloc")]
        let e = alloc::boxed::Box::new(e);
        self.action = Some(e);
    }

    fn close(&mut self) {
        self.closed = true;
        self.act(Request::Close);
    }

    fn touch(&mut self, now: Instant) {
        self.idle_deadline = now.saturating_add(self.config.idle_timeout);
    }

    fn id(&mut self) -> OpId {
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

    fn storage(&mut self, op: StorageOp, then: Then) {
        let id = self.id();
        self.pending = Pending::Storage(id, then);
        self.act(Request::Storage { id, op });
    }

    /// Joins `arg` to the working directory, or replies why it can't.
    fn resolve(&mut self, arg: &str) -> Option<VirtualPath> {
        match self.cwd.join(arg) {
            Ok(p) => Some(p),
            Err(PathError::ControlCharacter) => {
                self.reply(Reply::text(501, "Path contains a control character."));
                None
            }
            Err(PathError::TooLong) => {
                self.reply(Reply::text(553, "Path too long."));
                None
            }
        }
    }

    /// Resolves a path for a command that changes something, refusing read-only accounts.
    fn resolve_for_change(&mut self, arg: &str) -> Option<VirtualPath> {
        if self.read_only() {
            self.reply(Reply::text(550, "Permission denied: read-only account."));
            return None;
        }
        self.resolve(arg)
    }

    fn close_passive(&mut self) {
        if self.data == Data::Passive {
            self.act(Request::ClosePassive);
        }
        self.data = Data::None;
    }

    fn auth(&mut self, mech: crate::command::AuthMechanism) -> bool {
        self.source = None;
        self.rest = None;
        if self.config.tls == TlsMode::Off {
            self.reply(Reply::text(
                502,
                "Explicit FTPS is not configured on this server.",
            ));
        } else if self.tls {
            self.reply(Reply::text(503, "TLS is already active."));
        } else if matches!(self.phase, Phase::LoggedIn { .. }) {
            self.reply(Reply::text(503, "AUTH must come before login."));
        } else {
            let text = match mech {
                crate::command::AuthMechanism::Tls => "AUTH TLS successful.",
                crate::command::AuthMechanism::Ssl => "AUTH SSL successful.",
            };
            self.reply(Reply::text(234, text));
            self.phase = Phase::NeedUser;
            self.pending = Pending::Tls;
            self.act(Request::StartTls);
            return true;
        }
        false
    }

    #[allow(clippy::too_many_lines)] // One arm per command reads best as one table.
    fn command(&mut self, cmd: Command<'_>, now: Instant) {
        let source = self.source.take();
        // REST stays set until the next transfer command, which takes it.
        let rest = if is_transfer(&cmd) {
            self.rest.take()
        } else {
            None
        };
        if self.shutting_down {
            self.reply(Reply::text(421, "Server shutting down."));
            self.close();
            return;
        }
        let logged_in = matches!(self.phase, Phase::LoggedIn { .. });
        let before_login = matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Feat
                | Command::Syst
                | Command::Help(_)
                | Command::Noop
                | Command::Opts(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Host(_)
        );
        if !logged_in && !before_login {
            self.reply(Reply::text(530, "Please log in with USER and PASS first."));
            return;
        }
        match cmd {
            Command::User(name) => self.user_cmd(name),
            Command::Pass(pw) => self.pass_cmd(pw),
            Command::Acct(_) => self.reply(Reply::text(202, "ACCT is not needed.")),
            Command::Rein => {
                self.close_passive();
                self.phase = Phase::NeedUser;
                self.cwd = VirtualPath::root();
                self.ascii = true;
                self.epsv_all = false;
                self.facts = Facts::ALL;
                self.reply(Reply::text(220, "Ready for a new user."));
            }
            Command::Quit => {
                self.reply(Reply::text(221, "Goodbye."));
                self.close();
            }
            Command::Pwd { .. } => {
                let path = self.cwd.clone();
                self.reply(Reply::new(
                    257,
                    Message::Quoted {
                        path,
                        text: "is the current directory.",
                    },
                ));
            }
            Command::Cwd { path, .. } => {
                if let Some(p) = self.resolve(path) {
                    self.storage(StorageOp::Metadata(p.clone()), Then::Cwd(p));
                }
            }
            Command::Cdup { .. } => {
                let p = self.cwd.parent();
                self.storage(StorageOp::Metadata(p.clone()), Then::Cwd(p));
            }
            Command::Type(t) => {
                self.ascii = t.is_ascii();
                let text = if self.ascii {
                    "Switching to ASCII mode."
                } else {
                    "Switching to Binary mode."
                };
                self.reply(Reply::text(200, text));
            }
            Command::Mode(TransferMode::Stream) => self.reply(Reply::text(200, "Mode set to S.")),
            Command::Mode(_) => self.reply(Reply::text(504, "Only stream mode (S) is supported.")),
            Command::Stru(FileStructure::File) => {
                self.reply(Reply::text(200, "Structure set to F."));
            }
            Command::Stru(_) => {
                self.reply(Reply::text(504, "Only file structure (F) is supported."));
            }
            Command::Port(_) | Command::Eprt(_) => {
                if let Some(addr) = cmd.active_address() {
                    self.active(addr);
                }
            }
            Command::Pasv => {
                if self.epsv_all {
                    self.reply(Reply::text(503, "EPSV ALL is in effect; use EPSV."));
                } else if self.local_family() == Family::V6 {
                    self.reply(Reply::text(425, "PASV is for IPv4; use EPSV."));
                } else {
                    self.open_passive(Family::V4, false);
                }
            }
            Command::Epsv(arg) => {
                let local = self.local_family();
                match arg {
                    EpsvArg::All => {
                        self.epsv_all = true;
                        self.reply(Reply::text(200, "EPSV ALL ok."));
                    }
                    EpsvArg::V4 if local == Family::V6 => {
                        self.reply(Reply::text(522, "Network protocol not supported, use (2)."));
                    }
                    EpsvArg::V6 if local == Family::V4 => {
                        self.reply(Reply::text(522, "Network protocol not supported, use (1)."));
                    }
                    EpsvArg::Any | EpsvArg::V4 | EpsvArg::V6 => self.open_passive(local, true),
                }
            }
            Command::Rest(n) => {
                self.rest = Some(n);
                self.reply(Reply::new(
                    350,
                    Message::Number {
                        before: "Restarting at ",
                        n,
                        after: ". Send STORE or RETRIEVE.",
                    },
                ));
            }
            Command::Retr(path) => {
                if let Some(path) = self.resolve(path) {
                    let offset = rest.unwrap_or(0);
                    self.transfer(TransferKind::Retrieve { path, offset }, None);
                }
            }
            Command::Stor(path) => {
                if let Some(path) = self.resolve_for_change(path) {
                    let mode = match rest {
                        Some(n) if n > 0 => WriteMode::At(n),
                        _ => WriteMode::Replace,
                    };
                    self.transfer(TransferKind::Store { path, mode }, None);
                }
            }
            Command::Appe(path) => {
                if let Some(path) = self.resolve_for_change(path) {
                    self.transfer(
                        TransferKind::Store {
                            path,
                            mode: WriteMode::Append,
                        },
                        None,
                    );
                }
            }
            Command::Stou(base) => self.stou(base, now),
            Command::Allo(_) => self.reply(Reply::text(202, "ALLO is not needed.")),
            Command::Dele(path) => {
                if let Some(p) = self.resolve_for_change(path) {
                    self.storage(StorageOp::RemoveFile(p), Then::Done(250, "File deleted."));
                }
            }
            Command::Rnfr(path) => {
                if let Some(p) = self.resolve_for_change(path) {
                    if p.is_root() {
                        self.reply(Reply::text(550, "The root folder cannot be renamed."));
                    } else {
                        self.storage(StorageOp::Metadata(p.clone()), Then::Rnfr(p));
                    }
                }
            }
            Command::Rnto(path) => match source {
                Some((Source::Rename, from)) => {
                    if let Some(to) = self.resolve_for_change(path) {
                        self.storage(
                            StorageOp::Rename { from, to },
                            Then::Done(250, "Rename successful."),
                        );
                    }
                }
                _ => self.reply(Reply::text(503, "RNFR required first.")),
            },
            Command::Size(path) => {
                if let Some(p) = self.resolve(path) {
                    self.storage(StorageOp::Metadata(p), Then::Size);
                }
            }
            Command::Mdtm(path) => {
                if let Some(p) = self.resolve(path) {
                    self.storage(StorageOp::Metadata(p), Then::Mdtm);
                }
            }
            Command::Mfmt { time, path } => {
                if let Some(p) = self.resolve_for_change(path) {
                    let op = StorageOp::SetModified {
                        path: p.clone(),
                        time: time.to_unix(),
                    };
                    self.storage(op, Then::Mfmt(time, p));
                }
            }
            Command::Mkd { path, .. } => {
                if let Some(p) = self.resolve_for_change(path) {
                    self.storage(StorageOp::MakeDir(p.clone()), Then::Mkd(p));
                }
            }
            Command::Rmd { path, .. } => {
                if let Some(p) = self.resolve_for_change(path) {
                    if p.is_root() {
                        self.reply(Reply::text(550, "Cannot remove the root folder."));
                    } else {
                        self.storage(
                            StorageOp::RemoveDir(p),
                            Then::Done(250, "Directory removed."),
                        );
                    }
                }
            }
            Command::Site(site) => self.site(site, source),
            Command::List(args) => self.list(args, ListFormat::Long),
            Command::Nlst(args) => self.list(args, ListFormat::Names),
            Command::Mlsd(path) => {
                if let Some(p) = self.resolve(path.unwrap_or("")) {
                    let request = self.list_request(p, ListFormat::Machine(self.facts), None, None);
                    self.transfer(TransferKind::List(request), None);
                }
            }
            Command::Mlst(path) => {
                if let Some(p) = self.resolve(path.unwrap_or("")) {
                    self.storage(StorageOp::Metadata(p.clone()), Then::Mlst(p));
                }
            }
            Command::Stat(None) => {
                let user = match &self.phase {
                    Phase::LoggedIn { user, .. } => Some(user.clone()),
                    _ => None,
                };
                let data = match self.data {
                    Data::None => "no data connection set up",
                    Data::Passive => "passive mode",
                    Data::Active(_) => "active mode",
                };
                let status = Status {
                    user,
                    ascii: self.ascii,
                    tls: self.tls,
                    protected: self.private,
                    data,
                };
                self.reply(Reply::new(211, Message::Status(status)));
            }
            Command::Stat(Some(path)) => {
                if let Some(p) = self.resolve(path) {
                    let request = self.list_request(p, ListFormat::Long, None, None);
                    self.start_transfer(TransferKind::List(request), DataChannel::Control, None);
                }
            }
            Command::Feat => {
                let tls = self.config.tls != TlsMode::Off;
                self.reply(Reply::new(
                    211,
                    Message::Features {
                        tls,
                        facts: self.facts,
                    },
                ));
            }
            Command::Opts(OptsArg::Utf8(true)) => {
                self.reply(Reply::text(200, "Always in UTF8 mode."));
            }
            Command::Opts(OptsArg::Utf8(false)) => {
                self.reply(Reply::text(504, "UTF8 cannot be turned off."));
            }
            Command::Opts(OptsArg::Mlst(list)) => {
                self.facts = Facts::parse(list);
                self.reply(Reply::new(200, Message::MlstOpts(self.facts)));
            }
            Command::Syst => self.reply(Reply::text(215, "UNIX Type: L8")),
            Command::Help(_) => self.reply(Reply::new(214, Message::Help)),
            Command::Noop => self.reply(Reply::text(200, "NOOP ok.")),
            Command::Abor => {
                // RFC 959: with no transfer running (or one just ended), ABOR succeeds: 226.
                self.close_passive();
                self.reply(Reply::text(
                    226,
                    "ABOR command successful; no transfer running.",
                ));
            }
            Command::Host(_) => {
                if logged_in {
                    self.reply(Reply::text(503, "HOST must come before login."));
                } else {
                    self.reply(Reply::text(220, "Host accepted."));
                }
            }
            // Handled before `command` (it consumes the rest of the input).
            Command::Auth(_) => {}
            Command::Pbsz(_) => {
                if self.tls {
                    self.pbsz = true;
                    self.reply(Reply::text(200, "PBSZ=0"));
                } else {
                    self.reply(Reply::text(503, "PBSZ requires AUTH TLS first."));
                }
            }
            Command::Prot(level) => self.prot(level),
        }
    }

    fn user_cmd(&mut self, name: &str) {
        if matches!(self.phase, Phase::LoggedIn { .. }) {
            self.reply(Reply::text(
                503,
                "Already logged in; use REIN to change user.",
            ));
            return;
        }
        if self.config.tls == TlsMode::Required && !self.tls {
            self.reply(Reply::text(
                530,
                "This server requires TLS: send AUTH TLS before USER.",
            ));
            return;
        }
        if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
            self.reply(Reply::text(501, "Invalid user name."));
            return;
        }
        match UserName::try_from(name) {
            Ok(user) => {
                self.phase = Phase::NeedPass(user);
                self.reply(Reply::text(331, "Please specify the password."));
            }
            Err(_) => self.reply(Reply::text(501, "User name too long.")),
        }
    }

    fn pass_cmd(&mut self, pw: &str) {
        match &self.phase {
            Phase::LoggedIn { .. } => self.reply(Reply::text(202, "Already logged in.")),
            Phase::NeedUser => self.reply(Reply::text(503, "Login with USER first.")),
            Phase::NeedPass(user) => {
                let user = user.clone();
                match Password::try_from(pw) {
                    Ok(password) => {
                        let id = self.id();
                        self.pending = Pending::Login(id);
                        self.act(Request::CheckLogin {
                            id,
                            user,
                            password: Secret::new(password),
                        });
                    }
                    Err(_) => {
                        self.phase = Phase::NeedUser;
                        self.reply(Reply::text(501, "Password too long."));
                    }
                }
            }
        }
    }

    fn login_checked(&mut self, result: Result<crate::event::LoginInfo, LoginError>, now: Instant) {
        self.pending = Pending::None;
        let user = match core::mem::replace(&mut self.phase, Phase::NeedUser) {
            Phase::NeedPass(user) => user,
            other => {
                self.phase = other;
                return;
            }
        };
        match result {
            Ok(info) => {
                self.phase = Phase::LoggedIn {
                    user,
                    read_only: info.read_only,
                };
                self.cwd = VirtualPath::root();
                self.failures = 0;
                self.touch(now);
                self.reply(Reply::text(230, "Login successful."));
            }
            Err(LoginError::Unavailable) => {
                self.touch(now);
                self.reply(Reply::text(
                    421,
                    "Login service unavailable; try again later.",
                ));
                self.close();
            }
            Err(LoginError::Rejected) => {
                self.failures = self.failures.saturating_add(1);
                let doublings = (self.failures - 1).min(MAX_DELAY_DOUBLINGS);
                let delay = self
                    .config
                    .login_failure_delay
                    .saturating_mul(1 << doublings);
                let close = self.failures >= self.config.max_login_failures;
                self.pending = Pending::Delay {
                    until: now.saturating_add(delay),
                    close,
                };
                // A zero delay answers at once.
                self.handle_timeout(now);
            }
        }
    }

    fn local_family(&self) -> Family {
        match self.local.ip() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn active(&mut self, addr: SocketAddr) {
        if self.epsv_all {
            self.reply(Reply::text(503, "EPSV ALL is in effect; use EPSV."));
        } else if !same_host(addr.ip(), self.peer.ip()) {
            self.reply(Reply::text(
                504,
                "Data connection to a foreign address refused.",
            ));
        } else if addr.port() < 1024 {
            self.reply(Reply::text(
                504,
                "Data connection to a privileged port refused.",
            ));
        } else {
            self.close_passive();
            self.data = Data::Active(addr);
            self.reply(Reply::text(
                200,
                "PORT command successful. Consider using PASV.",
            ));
        }
    }

    fn open_passive(&mut self, family: Family, extended: bool) {
        // The new listener replaces any earlier one.
        self.data = Data::None;
        let id = self.id();
        self.pending = Pending::Passive { id, extended };
        self.act(Request::OpenPassive { id, family });
    }

    fn passive_opened(&mut self, addr: SocketAddr, extended: bool) {
        self.data = Data::Passive;
        if extended {
            self.reply(Reply::new(229, Message::ExtendedPassive(addr.port())));
            return;
        }
        let ip = self
            .config
            .public_address
            .or(match addr.ip().to_canonical() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            });
        match ip {
            Some(ip) => {
                let a = SocketAddrV4::new(ip, addr.port());
                self.reply(Reply::new(227, Message::Passive(a)));
            }
            None => {
                self.data = Data::None;
                self.act(Request::ClosePassive);
                self.reply(Reply::text(425, "PASV is for IPv4; use EPSV."));
            }
        }
    }

    fn prot(&mut self, level: ProtLevel) {
        if !self.tls {
            self.reply(Reply::text(503, "PROT requires AUTH TLS first."));
        } else if !self.pbsz {
            self.reply(Reply::text(503, "PBSZ must come before PROT."));
        } else {
            match level {
                ProtLevel::Private => {
                    self.private = true;
                    self.reply(Reply::text(200, "Protection level set to Private."));
                }
                ProtLevel::Clear if self.config.tls == TlsMode::Required => {
                    self.reply(Reply::text(
                        534,
                        "This server requires encrypted data connections.",
                    ));
                }
                ProtLevel::Clear => {
                    self.private = false;
                    self.reply(Reply::text(200, "Protection level set to Clear."));
                }
                ProtLevel::Safe | ProtLevel::Confidential => {
                    self.reply(Reply::text(
                        536,
                        "Only PROT C and PROT P are supported with TLS.",
                    ));
                }
            }
        }
    }

    fn site(&mut self, site: SiteCommand<'_>, source: Option<(Source, VirtualPath)>) {
        match site {
            SiteCommand::Help(_) => self.reply(Reply::new(214, Message::SiteHelp)),
            SiteCommand::Cpfr(path) => {
                if let Some(p) = self.resolve_for_change(path) {
                    self.storage(StorageOp::Metadata(p.clone()), Then::Cpfr(p));
                }
            }
            SiteCommand::Cpto(path) => match source {
                Some((Source::Copy, from)) => {
                    if let Some(to) = self.resolve_for_change(path) {
                        self.storage(
                            StorageOp::Copy { from, to },
                            Then::Done(250, "Copy successful."),
                        );
                    }
                }
                _ => self.reply(Reply::text(503, "SITE CPFR required first.")),
            },
            SiteCommand::Chmod { mode, path } => {
                if let Some(p) = self.resolve_for_change(path) {
                    if p.is_root() {
                        self.reply(Reply::text(550, "The root folder cannot be changed."));
                        return;
                    }
                    let op = StorageOp::SetMode { path: p, mode };
                    self.storage(op, Then::Done(200, "SITE CHMOD command ok."));
                }
            }
        }
    }

    fn stou(&mut self, base: Option<&str>, now: Instant) {
        let Some(base) = self.resolve_for_change(base.unwrap_or("stou")) else {
            return;
        };
        if base.is_root() {
            self.reply(Reply::text(553, "File name not allowed."));
            return;
        }
        let mut name: Text<40> = Text::new();
        // Microseconds since the runtime's epoch and a per-session counter: unique enough,
        // and `CreateNew` refuses a name that exists anyway.
        let _ = core::fmt::write(
            &mut name,
            format_args!(".{}.{}", now.as_micros(), self.next_id),
        );
        let mut full: Text<{ crate::limits::MAX_PATH }> = Text::new();
        if full
            .push_str(base.as_str())
            .and_then(|()| full.push_str(&name))
            .is_err()
        {
            self.reply(Reply::text(553, "Path too long."));
            return;
        }
        let Ok(path) = VirtualPath::parse(&full) else {
            self.reply(Reply::text(553, "Path too long."));
            return;
        };
        let kind = TransferKind::Store {
            path: path.clone(),
            mode: WriteMode::CreateNew,
        };
        self.transfer(kind, Some(path));
    }

    fn list_request(
        &self,
        path: VirtualPath,
        format: ListFormat,
        pattern: Option<&str>,
        typed: Option<&str>,
    ) -> ListRequest {
        ListRequest {
            path,
            format,
            pattern: pattern.and_then(|p| Text::try_from(p).ok()),
            typed: typed.and_then(|t| Text::try_from(t).ok()),
            writable: !self.read_only(),
        }
    }

    fn list(&mut self, args: ListArgs<'_>, format: ListFormat) {
        let arg = args.path.unwrap_or("");
        // A `*` or `?` in the last segment makes it a pattern over its folder.
        let cut = arg.rfind(['/', '\\']).map_or(0, |i| i + 1);
        let (dir, last) = arg.split_at(cut);
        let (dir_arg, pattern) = if is_pattern(last) && last.len() <= crate::limits::MAX_PATTERN {
            (dir, Some(last))
        } else {
            (arg, None)
        };
        let Some(path) = self.resolve(dir_arg) else {
            return;
        };
        let typed = match dir_arg.trim_end_matches(['/', '\\']) {
            "" if dir_arg.is_empty() => None,
            "" => Some("/"),
            t => Some(t),
        };
        let request = self.list_request(path, format, pattern, typed);
        self.transfer(TransferKind::List(request), None);
    }

    /// Starts a transfer over the data connection set up before.
    fn transfer(&mut self, kind: TransferKind, unique: Option<VirtualPath>) {
        let channel = match self.data {
            Data::None => {
                self.reply(Reply::text(425, "Use PORT, PASV or EPSV first."));
                return;
            }
            Data::Passive => DataChannel::Passive,
            Data::Active(a) => DataChannel::Active(a),
        };
        if self.config.tls == TlsMode::Required && !self.private {
            self.reply(Reply::text(
                521,
                "Data connections must be encrypted: send PROT P.",
            ));
            return;
        }
        // The data connection is used once.
        self.data = Data::None;
        self.start_transfer(kind, channel, unique);
    }

    fn start_transfer(
        &mut self,
        kind: TransferKind,
        channel: DataChannel,
        unique: Option<VirtualPath>,
    ) {
        let id = self.id();
        let running = Running {
            id,
            opened: false,
            abort: false,
            quit: false,
            upload: kind.is_upload(),
            control: channel == DataChannel::Control,
            list: matches!(kind, TransferKind::List(_)),
            ascii: self.ascii,
            unique,
        };
        self.pending = Pending::Transfer(running);
        let protected = self.private && channel != DataChannel::Control;
        self.act(Request::Transfer(Transfer {
            id,
            kind,
            channel,
            ascii: self.ascii,
            protected,
        }));
    }

    fn abort(&mut self) {
        if let Pending::Transfer(t) = &mut self.pending
            && !t.abort
        {
            t.abort = true;
            let id = t.id;
            self.act(Request::Abort { id });
        }
    }

    fn transfer_finished(&mut self, t: &Running, result: Result<u64, TransferError>) {
        if t.control {
            match result {
                Ok(_) => self.reply(Reply::text(213, "End of status.")),
                Err(_) if t.opened => self.reply(Reply::text(213, "End of status (incomplete).")),
                Err(TransferError::Storage(e)) => {
                    self.reply(Reply::text(e.reply_code(false), e.message()));
                }
                Err(_) => self.reply(Reply::text(451, "Status listing failed.")),
            }
        } else {
            let reply = match result {
                Ok(_) if t.list => Reply::text(226, "Directory send OK."),
                Ok(n) => Reply::new(
                    226,
                    Message::Number {
                        before: "Transfer complete (",
                        n,
                        after: " bytes).",
                    },
                ),
                Err(TransferError::Aborted) => {
                    Reply::text(426, "Connection closed; transfer aborted.")
                }
                Err(TransferError::DataConnection) => {
                    Reply::text(425, "Cannot open data connection.")
                }
                Err(TransferError::ConnectionLost) => {
                    Reply::text(426, "Data connection lost; transfer aborted.")
                }
                Err(TransferError::Stalled) => {
                    Reply::text(426, "Data connection stalled; transfer aborted.")
                }
                Err(TransferError::TlsHandshake) => {
                    Reply::text(425, "TLS negotiation on the data connection failed.")
                }
                Err(TransferError::TlsNotResumed) => Reply::text(
                    522,
                    "Data connection must resume the TLS session of the control connection.",
                ),
                Err(TransferError::Storage(e)) => Reply::text(e.reply_code(t.upload), e.message()),
            };
            self.reply(reply);
        }
        if t.abort {
            self.reply(Reply::text(226, "ABOR command successful."));
        }
        if t.quit {
            self.reply(Reply::text(221, "Goodbye."));
            self.close();
        } else if self.shutting_down {
            self.reply(Reply::text(421, "Server shutting down."));
            self.close();
        }
    }

    fn storage_done(&mut self, then: Then, result: Result<StorageReply, StorageError>) {
        let meta = match result {
            Err(e) => {
                self.reply(Reply::text(e.reply_code(false), e.message()));
                return;
            }
            Ok(StorageReply::Metadata(m)) => Some(m),
            Ok(StorageReply::Done) => None,
        };
        let need = |m: Option<Metadata>| m.ok_or(StorageError::Other);
        let reply = match then {
            Then::Cwd(path) => match need(meta) {
                Ok(m) if m.is_dir() => {
                    self.cwd = path;
                    Reply::text(250, "Directory successfully changed.")
                }
                Ok(_) => Reply::text(550, "Not a directory."),
                Err(e) => Reply::text(e.reply_code(false), e.message()),
            },
            Then::Mkd(path) => Reply::new(
                257,
                Message::Quoted {
                    path,
                    text: "created.",
                },
            ),
            Then::Done(code, text) => Reply::text(code, text),
            Then::Rnfr(path) => {
                self.source = Some((Source::Rename, path));
                Reply::text(350, "Ready for RNTO.")
            }
            Then::Cpfr(path) => match need(meta) {
                Ok(m) if m.kind == FileKind::File => {
                    self.source = Some((Source::Copy, path));
                    Reply::text(350, "File exists, ready for destination name.")
                }
                Ok(_) => Reply::text(550, "Not a regular file."),
                Err(e) => Reply::text(e.reply_code(false), e.message()),
            },
            Then::Size => match need(meta) {
                Ok(m) if m.kind == FileKind::File => Reply::new(
                    213,
                    Message::Number {
                        before: "",
                        n: m.size,
                        after: "",
                    },
                ),
                Ok(_) => Reply::text(550, "Not a regular file."),
                Err(e) => Reply::text(e.reply_code(false), e.message()),
            },
            Then::Mdtm => match need(meta) {
                Ok(m) => match m.modified {
                    Some(t) => Reply::new(213, Message::Time(t.to_datetime())),
                    None => Reply::text(550, "Modification time unknown."),
                },
                Err(e) => Reply::text(e.reply_code(false), e.message()),
            },
            // Report the time storage kept (a file system may clamp it), when it says.
            Then::Mfmt(time, path) => {
                let time = meta
                    .and_then(|m| m.modified)
                    .map_or(time, UnixTime::to_datetime);
                Reply::new(213, Message::Modified { time, path })
            }
            Then::Mlst(path) => match need(meta) {
                Ok(meta) => {
                    let writable = !self.read_only();
                    Reply::new(
                        250,
                        Message::Mlst {
                            path,
                            meta,
                            facts: self.facts,
                            writable,
                        },
                    )
                }
                Err(e) => Reply::text(e.reply_code(false), e.message()),
            },
        };
        self.reply(reply);
    }
}
