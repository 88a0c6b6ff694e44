//! Data connections and transfers: `TYPE`, `MODE`, `STRU`, `REST`, `PORT`/`EPRT`,
//! `PASV`/`EPSV`, `RETR`, `STOR`, `APPE`, `STOU`, `ABOR`; what is answered while a transfer
//! runs; and the replies before (150) and after (226 or an error) each transfer.

use core::net::{IpAddr, SocketAddr, SocketAddrV4};

use crate::command::{Command, DataType, EpsvArg, FileStructure, TransferMode, same_host};
use crate::config::TlsMode;
use crate::event::{DataChannel, Family, Request, Transfer, TransferKind};
use crate::limits::MAX_PATH;
use crate::outcome::{DataError, OpId, TransferError};
use crate::parse::ParseError;
use crate::path::VirtualPath;
use crate::reply::Reply;
use crate::storage::WriteMode;
use crate::text::Text;
use crate::time::Instant;

use super::Session;
use super::state::{DataEndpoint, Lifecycle, Pending, Role, Running};

/// Room for the suffix `STOU` adds: `.` microseconds `.` a counter.
const UNIQUE_SUFFIX: usize = 40;

impl Session {
    /// A line that arrived while a transfer runs: `ABOR`, `STAT`, `NOOP` and `QUIT` are
    /// answered (or noted); returns `false` for anything else, which waits for the end.
    pub(super) fn during_transfer(&mut self, parsed: Result<Command<'_>, ParseError>) -> bool {
        match parsed {
            Ok(Command::Abor) => self.abort(),
            Ok(Command::Stat(_)) => self.reply(Reply::TRANSFER_IN_PROGRESS),
            Ok(Command::Noop) => self.reply(Reply::NOOP_OK),
            Ok(Command::Quit) => {
                if let Pending::Transfer(t) = &mut self.pending {
                    t.quit = true;
                }
            }
            _ => return false,
        }
        true
    }

    /// `TYPE`.
    pub(super) fn set_type(&mut self, t: DataType) {
        self.ascii = t.is_ascii();
        self.reply(if self.ascii {
            Reply::TYPE_ASCII
        } else {
            Reply::TYPE_BINARY
        });
    }

    /// `MODE`: stream only.
    pub(super) fn mode(&mut self, m: TransferMode) {
        self.reply(match m {
            TransferMode::Stream => Reply::MODE_STREAM,
            TransferMode::Block | TransferMode::Compressed => Reply::MODE_UNSUPPORTED,
        });
    }

    /// `STRU`: file only.
    pub(super) fn structure(&mut self, s: FileStructure) {
        self.reply(match s {
            FileStructure::File => Reply::STRU_FILE,
            FileStructure::Record | FileStructure::Page => Reply::STRU_UNSUPPORTED,
        });
    }

    /// `REST n`.
    pub(super) fn restart_at(&mut self, n: u64) {
        self.rest = Some(n);
        self.reply(Reply::restarting(n));
    }

    /// `PORT`/`EPRT`: the client's own host and an unprivileged port only (no FTP bounce).
    pub(super) fn active(&mut self, addr: SocketAddr) {
        if self.epsv_all {
            self.reply(Reply::EPSV_ALL_IN_EFFECT);
        } else if !same_host(addr.ip(), self.peer.ip()) {
            self.reply(Reply::PORT_FOREIGN);
        } else if addr.port() < 1024 {
            self.reply(Reply::PORT_PRIVILEGED);
        } else {
            self.close_passive();
            self.data = DataEndpoint::Active(addr);
            self.reply(Reply::PORT_OK);
        }
    }

    /// `PASV`.
    pub(super) fn pasv(&mut self) {
        if self.epsv_all {
            self.reply(Reply::EPSV_ALL_IN_EFFECT);
        } else if self.local_family() == Family::V6 {
            self.reply(Reply::PASV_IS_IPV4);
        } else {
            self.open_passive(Family::V4, false);
        }
    }

    /// `EPSV` (RFC 2428).
    pub(super) fn epsv(&mut self, arg: EpsvArg) {
        let local = self.local_family();
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.reply(Reply::EPSV_ALL_OK);
            }
            EpsvArg::V4 if local == Family::V6 => self.reply(Reply::EPSV_USE_IPV6),
            EpsvArg::V6 if local == Family::V4 => self.reply(Reply::EPSV_USE_IPV4),
            EpsvArg::Any | EpsvArg::V4 | EpsvArg::V6 => self.open_passive(local, true),
        }
    }

    fn local_family(&self) -> Family {
        match self.local.ip() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn open_passive(&mut self, family: Family, extended: bool) {
        // The new listener replaces any earlier one.
        self.data = DataEndpoint::None;
        let id = self.next_id();
        self.pending = Pending::Passive { id, extended };
        self.request(Request::OpenPassive { id, family });
    }

    /// The passive listener is open (or could not be): 227 or 229.
    pub(super) fn passive_opened(
        &mut self,
        id: OpId,
        result: Result<SocketAddr, DataError>,
        now: Instant,
    ) {
        let Pending::Passive { id: p, extended } = self.pending else {
            return;
        };
        if p != id {
            return;
        }
        self.pending = Pending::None;
        self.touch(now);
        let Ok(addr) = result else {
            self.reply(Reply::PASSIVE_FAILED);
            return;
        };
        self.data = DataEndpoint::Passive;
        if extended {
            self.reply(Reply::extended_passive(addr.port()));
            return;
        }
        let ip = self
            .config
            .public_address
            .or(match addr.ip().to_canonical() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            });
        if let Some(ip) = ip {
            self.reply(Reply::passive(SocketAddrV4::new(ip, addr.port())));
        } else {
            self.data = DataEndpoint::None;
            self.request(Request::ClosePassive);
            self.reply(Reply::PASV_IS_IPV4);
        }
    }

    /// Forgets the passive listener, if one is open.
    pub(super) fn close_passive(&mut self) {
        if self.data == DataEndpoint::Passive {
            self.request(Request::ClosePassive);
        }
        self.data = DataEndpoint::None;
    }

    /// `RETR`, from the `REST` offset if one was given.
    pub(super) fn retr(&mut self, path: &str, rest: Option<u64>) {
        if let Some(path) = self.resolve(path) {
            let offset = rest.unwrap_or(0);
            let role = Role::Download { ascii: self.ascii };
            self.transfer(TransferKind::Retrieve { path, offset }, role);
        }
    }

    /// `STOR`, at the `REST` offset if one was given.
    pub(super) fn stor(&mut self, path: &str, rest: Option<u64>) {
        if let Some(path) = self.resolve_for_change(path) {
            let mode = match rest {
                Some(n) if n > 0 => WriteMode::At(n),
                _ => WriteMode::Replace,
            };
            let role = Role::Upload { ascii: self.ascii };
            self.transfer(TransferKind::Store { path, mode }, role);
        }
    }

    /// `APPE`.
    pub(super) fn appe(&mut self, path: &str) {
        if let Some(path) = self.resolve_for_change(path) {
            let mode = WriteMode::Append;
            let role = Role::Upload { ascii: self.ascii };
            self.transfer(TransferKind::Store { path, mode }, role);
        }
    }

    /// `STOU`: a new file named after `base` (or `stou`) with a suffix of the time and a
    /// counter, created only if nothing has that name.
    pub(super) fn stou(&mut self, base: Option<&str>, now: Instant) {
        let Some(base) = self.resolve_for_change(base.unwrap_or("stou")) else {
            return;
        };
        if base.is_root() {
            self.reply(Reply::NAME_NOT_ALLOWED);
            return;
        }
        let mut suffix: Text<UNIQUE_SUFFIX> = Text::new();
        // Microseconds since the runtime's epoch and a per-session counter: unique enough,
        // and `CreateNew` refuses a name that exists anyway.
        let _ = core::fmt::write(
            &mut suffix,
            format_args!(".{}.{}", now.as_micros(), self.next_id),
        );
        let mut full: Text<MAX_PATH> = Text::new();
        let joined = full
            .push_str(base.as_str())
            .and_then(|()| full.push_str(&suffix));
        let Some(path) = joined.ok().and_then(|()| VirtualPath::parse(&full).ok()) else {
            self.reply(Reply::PATH_TOO_LONG);
            return;
        };
        let kind = TransferKind::Store {
            path: path.clone(),
            mode: WriteMode::CreateNew,
        };
        self.transfer(kind, Role::UniqueUpload(path));
    }

    /// `ABOR` with no transfer running (or one just ended): RFC 959 says it succeeds.
    pub(super) fn abor_without_transfer(&mut self) {
        self.close_passive();
        self.reply(Reply::ABOR_WITHOUT_TRANSFER);
    }

    /// Starts a transfer over the data connection set up before (used once).
    pub(super) fn transfer(&mut self, kind: TransferKind, role: Role) {
        let channel = match self.data {
            DataEndpoint::None => {
                self.reply(Reply::NO_DATA_CONNECTION);
                return;
            }
            DataEndpoint::Passive => DataChannel::Passive,
            DataEndpoint::Active(a) => DataChannel::Active(a),
        };
        if self.config.tls == TlsMode::Required && !self.security.is_private() {
            self.reply(Reply::DATA_MUST_BE_PRIVATE);
            return;
        }
        self.data = DataEndpoint::None;
        self.start_transfer(kind, channel, role);
    }

    /// Asks the runtime to run a transfer over `channel`.
    pub(super) fn start_transfer(&mut self, kind: TransferKind, channel: DataChannel, role: Role) {
        let id = self.next_id();
        self.pending = Pending::Transfer(Running {
            id,
            role,
            opened: false,
            abort: false,
            quit: false,
        });
        let protected = self.security.is_private() && channel != DataChannel::Control;
        self.request(Request::Transfer(Transfer {
            id,
            kind,
            channel,
            ascii: self.ascii,
            protected,
        }));
    }

    /// `ABOR` during a transfer: ask the runtime to stop it (once).
    fn abort(&mut self) {
        if let Pending::Transfer(t) = &mut self.pending
            && !t.abort
        {
            t.abort = true;
            let id = t.id;
            self.request(Request::Abort { id });
        }
    }

    /// The file or listing is open: the reply that precedes its bytes.
    pub(super) fn transfer_opened(&mut self, id: OpId, size: Option<u64>) {
        let Pending::Transfer(t) = &mut self.pending else {
            return;
        };
        if t.id != id || t.opened {
            return;
        }
        t.opened = true;
        let reply = match &t.role {
            Role::StatusBody => Reply::status_follows(),
            Role::Listing => Reply::LISTING_FOLLOWS,
            Role::UniqueUpload(path) => Reply::unique_name(path.clone()),
            Role::Download { ascii } | Role::Upload { ascii } => Reply::opening_data(*ascii, size),
        };
        self.reply(reply);
    }

    /// The transfer ended: its reply, then what `ABOR`, `QUIT` or a shutdown asked for.
    pub(super) fn transfer_finished(
        &mut self,
        id: OpId,
        result: Result<u64, TransferError>,
        now: Instant,
    ) {
        match &self.pending {
            Pending::Transfer(t) if t.id == id => {}
            _ => return,
        }
        let Pending::Transfer(t) = core::mem::replace(&mut self.pending, Pending::None) else {
            return;
        };
        self.touch(now);
        let reply = match (&t.role, result) {
            (Role::StatusBody, Ok(_)) => Reply::STATUS_END,
            (Role::StatusBody, Err(_)) if t.opened => Reply::STATUS_END_INCOMPLETE,
            (Role::StatusBody, Err(TransferError::Storage(e))) => Reply::storage_error(e, false),
            (Role::StatusBody, Err(_)) => Reply::STATUS_FAILED,
            (Role::Listing, Ok(_)) => Reply::LISTING_SENT,
            (_, Ok(n)) => Reply::transfer_complete(n),
            (role, Err(e)) => Reply::transfer_failed(e, role.is_upload()),
        };
        self.reply(reply);
        if t.abort {
            self.reply(Reply::ABORTED);
        }
        if t.quit {
            self.reply(Reply::GOODBYE);
            self.close();
        } else if self.life == Lifecycle::Draining {
            self.reply(Reply::SHUTTING_DOWN);
            self.close();
        }
    }
}
