//! Events: what the session has for the runtime, a reply to write or a [`Request`] to carry
//! out. Requests are imperative (do this); their outcomes (`outcome.rs`) are past tense.

use core::fmt;
use core::net::SocketAddr;

use crate::limits::{MAX_PASSWORD, MAX_PATH, MAX_PATTERN, MAX_USER};
use crate::listing::{self, Facts};
use crate::outcome::OpId;
use crate::path::VirtualPath;
use crate::reply::Reply;
use crate::secret::Secret;
use crate::storage::{Entry, Metadata, WriteMode};
use crate::text::Text;
use crate::time::UnixTime;

/// A user name as typed at `USER`.
pub type UserName = Text<MAX_USER>;
/// A password as typed at `PASS`.
pub type Password = Text<MAX_PASSWORD>;

/// Which kind of address a passive listener needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`PASV`, `EPSV 1`).
    V4,
    /// IPv6 (`EPSV 2`).
    V6,
}

/// What the session has for the runtime: a reply to write, or a request to carry out. Drain
/// them with [`Session::poll_event`] after every `handle_*` call and handle them in order.
///
/// [`Session::poll_event`]: crate::Session::poll_event
#[must_use]
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Without `alloc` paths are inline; no allocation by design.
pub enum Event {
    /// Write this reply to the control connection.
    Reply(Reply),
    /// Carry this out (after writing the replies before it).
    Request(Request),
}

/// Something the runtime must do. Those that take time are answered with an [`Outcome`](crate::Outcome)
/// carrying the request's [`OpId`]; at most one of those is pending at a time.
#[must_use]
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Requests are moved, never stored in bulk; no allocation.
pub enum Request {
    /// Check the user's password; answer with [`Outcome::LoginChecked`](crate::Outcome::LoginChecked).
    CheckLogin {
        /// Echo this in the outcome.
        id: OpId,
        /// The user name.
        user: UserName,
        /// The password (redacted in `Debug`).
        password: Secret<Password>,
    },
    /// Perform a storage operation; answer with [`Outcome::StorageDone`](crate::Outcome::StorageDone).
    Storage {
        /// Echo this in the outcome.
        id: OpId,
        /// What to do.
        op: StorageOp,
    },
    /// Open a passive listener (replacing any earlier one) on the control connection's local
    /// address, accepting only the control connection's peer; answer with
    /// [`Outcome::PassiveOpened`](crate::Outcome::PassiveOpened).
    OpenPassive {
        /// Echo this in the outcome.
        id: OpId,
        /// The address family.
        family: Family,
    },
    /// Close the passive listener, if one is open (it will not be used).
    ClosePassive,
    /// Run a transfer: open the file or listing, report [`Outcome::TransferOpened`](crate::Outcome::TransferOpened), write
    /// the 150 reply that follows, connect the data channel, move the bytes, and report
    /// [`Outcome::TransferFinished`](crate::Outcome::TransferFinished).
    Transfer(Transfer),
    /// Stop the running transfer at once; it then finishes with `TransferError::Aborted`.
    Abort {
        /// The transfer.
        id: OpId,
    },
    /// After writing the replies before it, run the TLS handshake on the control
    /// connection; answer with [`Outcome::TlsEstablished`](crate::Outcome::TlsEstablished) or [`Outcome::TlsFailed`](crate::Outcome::TlsFailed). Discard
    /// any bytes received before the handshake.
    StartTls,
    /// After writing the replies before it, close the control connection.
    Close,
}

/// A storage operation, on paths the session has already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Report the metadata of a path ([`StorageReply::Metadata`](crate::StorageReply::Metadata)).
    Metadata(VirtualPath),
    /// Create a folder.
    MakeDir(VirtualPath),
    /// Remove an empty folder.
    RemoveDir(VirtualPath),
    /// Delete a file.
    RemoveFile(VirtualPath),
    /// Rename a file or folder.
    Rename {
        /// Current path.
        from: VirtualPath,
        /// New path.
        to: VirtualPath,
    },
    /// Copy a file.
    Copy {
        /// The file to copy.
        from: VirtualPath,
        /// The copy.
        to: VirtualPath,
    },
    /// Set a modification time, and report the time storage kept
    /// ([`StorageReply::Metadata`](crate::StorageReply::Metadata); a file system may clamp it), or just
    /// [`StorageReply::Done`](crate::StorageReply::Done).
    SetModified {
        /// The file.
        path: VirtualPath,
        /// The time.
        time: UnixTime,
    },
    /// Set permission bits.
    SetMode {
        /// The file or folder.
        path: VirtualPath,
        /// Bits, at most `0o7777`.
        mode: u32,
    },
}

impl StorageOp {
    /// Whether the operation changes anything.
    #[must_use]
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Self::Metadata(_))
    }
}

/// Where a transfer's bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChannel {
    /// Accept on the passive listener opened before (and close it afterwards).
    Passive,
    /// Connect to this address (already checked: the client's own host, not a privileged
    /// port).
    Active(SocketAddr),
    /// The control connection itself, as the body of a multi-line reply (`STAT` with a
    /// path): write each line after the opening reply, then the closing reply.
    Control,
}

/// A transfer to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Echo this in the outcomes.
    pub id: OpId,
    /// What to transfer.
    pub kind: TransferKind,
    /// Over which connection.
    pub channel: DataChannel,
    /// TYPE A: convert line ends ([`ToNetwork`](crate::ToNetwork), [`FromNetwork`](crate::FromNetwork)).
    pub ascii: bool,
    /// PROT P: run TLS on the data connection.
    pub protected: bool,
}

/// What a transfer moves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Without `alloc` paths are inline; no allocation by design.
pub enum TransferKind {
    /// Send a file from `offset` on (`RETR`).
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// Where to start (`REST`).
        offset: u64,
    },
    /// Receive a file (`STOR`, `APPE`, `STOU`).
    Store {
        /// The file.
        path: VirtualPath,
        /// How to write it.
        mode: WriteMode,
    },
    /// Send a listing (`LIST`, `NLST`, `MLSD`, `STAT path`).
    List(ListRequest),
}

impl TransferKind {
    /// Whether this transfer writes to storage.
    #[must_use]
    pub fn is_upload(&self) -> bool {
        matches!(self, Self::Store { .. })
    }
}

/// The listing formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `ls -l` lines (`LIST`, `STAT path`).
    Long,
    /// Names only (`NLST`).
    Names,
    /// RFC 3659 facts (`MLSD`).
    Machine(Facts),
}

/// A listing to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The folder to list, or a file to list alone.
    pub path: VirtualPath,
    /// How to write each entry.
    pub format: ListFormat,
    /// Only names matching this `*`/`?` pattern.
    pub pattern: Option<Text<MAX_PATTERN>>,
    /// The folder (or file) as the client typed it, for `NLST` names.
    pub typed: Option<Text<MAX_PATH>>,
    /// Whether the user may change things (`perm` fact).
    pub writable: bool,
}

impl ListRequest {
    /// Writes the line for one entry of the listed folder, if it belongs in the listing
    /// (matches the pattern, has a name that fits on a line). Returns whether it wrote one.
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn write_entry(
        &self,
        w: &mut impl fmt::Write,
        entry: &Entry<'_>,
        now: UnixTime,
    ) -> Result<bool, fmt::Error> {
        if !listing::is_listable(entry.name) {
            return Ok(false);
        }
        if let Some(p) = &self.pattern
            && !listing::glob_match(p, entry.name)
        {
            return Ok(false);
        }
        match self.format {
            ListFormat::Long => listing::write_list_line(w, entry, now)?,
            ListFormat::Names => {
                listing::write_nlst_line(w, self.typed.as_deref(), entry.name)?;
            }
            ListFormat::Machine(facts) => {
                listing::write_mlsd_line(w, entry, facts, self.writable)?;
            }
        }
        Ok(true)
    }

    /// Writes the listing of `path` when it is a file rather than a folder: its one line
    /// (`NLST` answers with the name as typed).
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn write_file(
        &self,
        w: &mut impl fmt::Write,
        meta: Metadata,
        now: UnixTime,
    ) -> fmt::Result {
        let name = self.path.file_name().unwrap_or("/");
        let entry = Entry { name, meta };
        match self.format {
            ListFormat::Names => {
                let name = self.typed.as_deref().unwrap_or(name);
                listing::write_nlst_line(w, None, name)
            }
            _ => self.write_entry(w, &entry, now).map(|_| ()),
        }
    }
}
