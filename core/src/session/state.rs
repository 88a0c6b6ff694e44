//! What a session knows and what it waits for, each as one enum: who is logged in, which data
//! connection is set up, how the connection is protected, the one request that is pending,
//! and what a running transfer is for.

use core::net::SocketAddr;

use crate::event::UserName;
use crate::outcome::OpId;
use crate::path::VirtualPath;
use crate::time::{DateTime, Instant};

/// Who is logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for `USER`.
    NeedUser,
    /// `USER` given, waiting for `PASS`.
    NeedPass(UserName),
    /// Logged in.
    LoggedIn {
        /// The account.
        user: UserName,
        /// It may read but not change anything.
        read_only: bool,
    },
}

/// The two halves of the command table (`Session::command`): commands valid in every state,
/// and the rest by whether a user is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Login {
    /// No user logged in: anything but the access and service commands gets 530.
    Out,
    /// A user is logged in.
    In,
}

/// The data connection set up for the next transfer (used once, then back to `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataEndpoint {
    /// Neither `PORT`/`EPRT` nor `PASV`/`EPSV` yet.
    None,
    /// A passive listener is open (`PASV`, `EPSV`).
    Passive,
    /// Connect to the client here (`PORT`, `EPRT`; checked already).
    Active(SocketAddr),
}

/// How the control connection is protected, and what was negotiated for data connections
/// over it (RFC 4217: `AUTH TLS`, then `PBSZ 0`, then `PROT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    /// Clear text.
    Plain,
    /// TLS on the control connection, without `PBSZ` yet.
    Tls,
    /// TLS, `PBSZ` done; data connections in clear text (`PROT C`, the default).
    TlsDataClear,
    /// TLS, `PBSZ` done, `PROT P`: data connections run TLS too.
    TlsDataPrivate,
}

impl Security {
    /// Whether the control connection runs TLS.
    pub(super) fn is_tls(self) -> bool {
        self != Self::Plain
    }

    /// Whether data connections run TLS (`PROT P`).
    pub(super) fn is_private(self) -> bool {
        self == Self::TlsDataPrivate
    }
}

/// Whether the session runs, is told to stop, or has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Serving.
    Open,
    /// The server is stopping: a running transfer may finish, then the session closes.
    Draining,
    /// `Request::Close` was sent; nothing more happens.
    Closed,
}

/// A path chosen by the first command of a pair, for the second: `RNFR`/`RNTO`,
/// `SITE CPFR`/`SITE CPTO`. Any other command in between forgets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Selected {
    /// `RNFR` named this.
    RenameFrom(VirtualPath),
    /// `SITE CPFR` named this.
    CopyFrom(VirtualPath),
}

/// The one request the session waits for (it takes no input meanwhile, except the few
/// commands answered during a transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    /// Nothing: the next command may come.
    None,
    /// A password check.
    Login(OpId),
    /// The 530 of a failed login, held back until `until` (rate limiting without sleeping);
    /// `close` ends the connection after it.
    LoginDelay {
        /// When to answer.
        until: Instant,
        /// Whether this was the last failure allowed.
        close: bool,
    },
    /// A storage call, and what its result is for.
    Storage(OpId, StorageCall),
    /// A passive listener being opened, for `EPSV` (`extended`) or `PASV`.
    Passive {
        /// The request.
        id: OpId,
        /// `EPSV` (229) rather than `PASV` (227).
        extended: bool,
    },
    /// A transfer.
    Transfer(Running),
    /// The TLS handshake of the control connection.
    Tls,
}

/// What a pending storage call is for: how its result becomes a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StorageCall {
    /// `CWD`/`CDUP`: change to this folder if it is one.
    ChangeDir(VirtualPath),
    /// `MKD`: this folder was made.
    MakeDir(VirtualPath),
    /// `DELE`.
    Delete,
    /// `RMD`.
    RemoveDir,
    /// `RNTO`.
    Rename,
    /// `SITE CPTO`.
    Copy,
    /// `SITE CHMOD`.
    Chmod,
    /// `RNFR`: this exists, remember it for `RNTO`.
    RenameFrom(VirtualPath),
    /// `SITE CPFR`: remember this file for `SITE CPTO`.
    CopyFrom(VirtualPath),
    /// `SIZE`.
    Size,
    /// `MDTM`.
    ModificationTime,
    /// `MFMT`: the time asked for, and the file.
    SetTime(DateTime, VirtualPath),
    /// `MLST`: the facts of this path.
    Facts(VirtualPath),
}

/// A running transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Running {
    /// The request.
    pub(super) id: OpId,
    /// What it is for, which decides its replies.
    pub(super) role: Role,
    /// The runtime reported `TransferOpened` (the 150 went out).
    pub(super) opened: bool,
    /// `ABOR` came: answer 226 after the transfer's own reply.
    pub(super) abort: bool,
    /// `QUIT` came: say goodbye and close after the transfer's reply.
    pub(super) quit: bool,
}

/// What a transfer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Without `alloc` paths are inline; no allocation by design.
pub(super) enum Role {
    /// `RETR`.
    Download {
        /// `TYPE A`.
        ascii: bool,
    },
    /// `STOR`, `APPE`.
    Upload {
        /// `TYPE A`.
        ascii: bool,
    },
    /// `STOU`: the name chosen, announced in the 150 reply.
    UniqueUpload(VirtualPath),
    /// `LIST`, `NLST`, `MLSD` over a data connection.
    Listing,
    /// `STAT path`: a listing as the body of a 213 reply on the control connection.
    StatusBody,
}

impl Role {
    /// Whether the transfer writes to storage (a full disk is then 552, not 452).
    pub(super) fn is_upload(&self) -> bool {
        matches!(self, Self::Upload { .. } | Self::UniqueUpload(_))
    }
}
