//! Outcomes: what the runtime reports back about the requests it carried out.
//!
//! Outcomes are past tense (this happened). Each request carries an [`OpId`] that its outcome
//! echoes; an outcome whose id is not the one the session waits for (after `ABOR` or `REIN`,
//! say) is ignored.

use core::net::SocketAddr;

use crate::storage::{Metadata, StorageError};

/// Correlates a request with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u32);

/// What a successful storage operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageReply {
    /// Done, nothing to report.
    Done,
    /// The metadata asked for.
    Metadata(Metadata),
}

/// What happened to a request. Report with [`Session::handle_outcome`].
///
/// [`Session::handle_outcome`]: crate::Session::handle_outcome
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The password was checked.
    LoginChecked {
        /// From [`Request::CheckLogin`](crate::Request::CheckLogin).
        id: OpId,
        /// Whether it was right.
        result: Result<LoginInfo, LoginError>,
    },
    /// A storage operation finished.
    StorageDone {
        /// From [`Request::Storage`](crate::Request::Storage).
        id: OpId,
        /// Its result.
        result: Result<StorageReply, StorageError>,
    },
    /// A passive listener is open (or could not be).
    PassiveOpened {
        /// From [`Request::OpenPassive`](crate::Request::OpenPassive).
        id: OpId,
        /// The address it listens on.
        result: Result<SocketAddr, DataError>,
    },
    /// The file or listing of a transfer is open; the core now queues the 150 reply, and the
    /// runtime writes it before it connects the data channel.
    TransferOpened {
        /// From [`Request::Transfer`](crate::Request::Transfer).
        id: OpId,
        /// The size of the file, when known.
        size: Option<u64>,
    },
    /// A transfer ended.
    TransferFinished {
        /// From [`Request::Transfer`](crate::Request::Transfer).
        id: OpId,
        /// Bytes moved, or why it failed.
        result: Result<u64, TransferError>,
    },
    /// The control connection now runs TLS.
    TlsEstablished,
    /// The TLS handshake failed; the connection is unusable.
    TlsFailed,
}

/// A successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginInfo {
    /// The account may read but not change anything.
    pub read_only: bool,
}

/// A failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (the same to the client).
    Rejected,
    /// Accounts could not be checked (the users file is unreadable, say).
    Unavailable,
    /// The account has as many sessions as it may have at once.
    TooManySessions,
}

/// A passive listener could not be opened (no free port in the range, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataError;

/// Why a transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferError {
    /// `ABOR` stopped it.
    Aborted,
    /// The data connection could not be made (or the client never connected in time).
    DataConnection,
    /// The data connection broke in the middle.
    ConnectionLost,
    /// No bytes moved for too long.
    Stalled,
    /// The TLS handshake on the data connection failed.
    TlsHandshake,
    /// The data connection did not resume the control connection's TLS session.
    TlsNotResumed,
    /// Storage failed.
    Storage(StorageError),
}
