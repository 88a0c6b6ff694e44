//! Replies: typed codes and every text the server sends, encoded without allocation.
//!
//! A [`Reply`] is a code and a [`Message`]; the message holds only what varies (a path, an
//! address, a number) and its text is written when the reply is encoded, into any
//! [`fmt::Write`] or a caller's byte buffer ([`Reply::encode`]). Multi-line replies follow
//! RFC 959 §4.2: `211-First line`, body lines that begin with a space, `211 Last line`.

use core::fmt;
use core::net::SocketAddrV4;

use crate::listing::{Facts, write_facts};
use crate::outcome::TransferError;
use crate::parse::ParseError;
use crate::path::VirtualPath;
use crate::storage::{Metadata, StorageError};
use crate::text::Text;
use crate::time::DateTime;

/// What a reply says, beyond its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Fixed text.
    Text(&'static str),
    /// `"path" text`, with quotes in the path doubled (RFC 959 appendix II; `PWD`, `MKD`).
    Quoted {
        /// The path.
        path: VirtualPath,
        /// What follows it.
        text: &'static str,
    },
    /// `text path`.
    WithPath {
        /// What comes before the path.
        text: &'static str,
        /// The path.
        path: VirtualPath,
    },
    /// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
    Passive(SocketAddrV4),
    /// `229 Entering Extended Passive Mode (|||port|).`
    ExtendedPassive(u16),
    /// `before` a number `after`, e.g. `213 1234` or `350 Restarting at 10.`
    Number {
        /// Text before the number.
        before: &'static str,
        /// The number.
        n: u64,
        /// Text after it.
        after: &'static str,
    },
    /// `213 YYYYMMDDHHMMSS` (`MDTM`).
    Time(DateTime),
    /// `213 Modify=YYYYMMDDHHMMSS; path` (`MFMT`).
    Modified {
        /// The time set.
        time: DateTime,
        /// The file.
        path: VirtualPath,
    },
    /// `200 MLST OPTS type;size;` (the facts now selected).
    MlstOpts(Facts),
    /// The multi-line `FEAT` reply.
    Features {
        /// Whether `AUTH TLS`, `PBSZ` and `PROT` are offered.
        tls: bool,
        /// The `MLST` facts selected, starred in the `MLST` line.
        facts: Facts,
    },
    /// The multi-line `HELP` reply.
    Help,
    /// The multi-line `SITE HELP` reply.
    SiteHelp,
    /// The multi-line `STAT` reply without a path.
    Status(Status),
    /// The multi-line `MLST` reply: facts of one path.
    Mlst {
        /// The path, written after the facts.
        path: VirtualPath,
        /// What it is.
        meta: Metadata,
        /// Facts to show.
        facts: Facts,
        /// Whether the user may change it.
        writable: bool,
    },
}

/// What `STAT` reports about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The logged-in user, if any.
    pub user: Option<Text<{ crate::limits::MAX_USER }>>,
    /// TYPE A or I.
    pub ascii: bool,
    /// Whether the control connection is encrypted.
    pub tls: bool,
    /// Whether data connections are (PROT P).
    pub protected: bool,
    /// What data connection is set up.
    pub data: &'static str,
}

/// A reply: a three-digit code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    message: Message,
    open: bool,
}

/// Why a connection is refused before a session starts; [`Refusal::reply`] is the 421 the
/// runtime sends instead of the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its maximum number of connections.
    TooManyConnections,
    /// The client's address holds its maximum number of connections.
    TooManyFromAddress,
    /// The client's address failed to log in too often, recently.
    TooManyFailedLogins,
    /// The server is stopping.
    ShuttingDown,
}

impl Refusal {
    /// The 421 reply for this refusal.
    #[must_use]
    pub fn reply(self) -> Reply {
        match self {
            Self::TooManyConnections => Reply::text(421, "Too many connections; try again later."),
            Self::TooManyFromAddress => Reply::text(421, "Too many connections from your address."),
            Self::TooManyFailedLogins => Reply::text(
                421,
                "Too many failed logins from your address; try again later.",
            ),
            Self::ShuttingDown => Reply::SHUTTING_DOWN,
        }
    }
}

/// The buffer given to [`Reply::encode`] is too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsufficientSize {
    /// Bytes the reply needs.
    pub required: usize,
}

impl fmt::Display for InsufficientSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reply needs {} bytes", self.required)
    }
}

impl core::error::Error for InsufficientSize {}

impl Reply {
    /// A reply of `code` (100 to 599) saying `message`.
    #[must_use]
    pub fn new(code: u16, message: Message) -> Self {
        debug_assert!((100..600).contains(&code));
        Self {
            code,
            message,
            open: false,
        }
    }

    /// A reply with fixed text.
    #[must_use]
    pub const fn text(code: u16, text: &'static str) -> Self {
        Self {
            code,
            message: Message::Text(text),
            open: false,
        }
    }

    /// The first line of a multi-line reply whose body and last line follow separately (`STAT`
    /// with a path: `213-Status of "path":`, the listing, then `213 End of status.`).
    #[must_use]
    pub fn opening(code: u16, message: Message) -> Self {
        Self {
            code,
            message,
            open: true,
        }
    }

    /// The reply code.
    #[must_use]
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Whether this is only the first line of a multi-line reply (see [`Reply::opening`]).
    #[must_use]
    pub fn is_opening(&self) -> bool {
        self.open
    }

    /// Writes the whole reply, CR LF included.
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        let code = self.code;
        let sep = if self.open { '-' } else { ' ' };
        match &self.message {
            Message::Text(t) => write!(w, "{code}{sep}{t}\r\n"),
            Message::Quoted { path, text } => {
                write!(w, "{code}{sep}\"")?;
                for (i, part) in path.as_str().split('"').enumerate() {
                    if i > 0 {
                        w.write_str("\"\"")?;
                    }
                    w.write_str(part)?;
                }
                write!(w, "\" {text}\r\n")
            }
            Message::WithPath { text, path } => write!(w, "{code}{sep}{text} {path}\r\n"),
            Message::Passive(a) => {
                let [h1, h2, h3, h4] = a.ip().octets();
                let [p1, p2] = a.port().to_be_bytes();
                write!(
                    w,
                    "{code}{sep}Entering Passive Mode ({h1},{h2},{h3},{h4},{p1},{p2}).\r\n"
                )
            }
            Message::ExtendedPassive(p) => {
                write!(
                    w,
                    "{code}{sep}Entering Extended Passive Mode (|||{p}|).\r\n"
                )
            }
            Message::Number { before, n, after } => write!(w, "{code}{sep}{before}{n}{after}\r\n"),
            Message::Time(t) => write!(w, "{code}{sep}{t}\r\n"),
            Message::Modified { time, path } => write!(w, "{code}{sep}Modify={time}; {path}\r\n"),
            Message::MlstOpts(f) => {
                write!(w, "{code}{sep}MLST OPTS ")?;
                f.write_names(w)?;
                w.write_str("\r\n")
            }
            Message::Features { tls, facts } => {
                write!(w, "{code}-Features:\r\n")?;
                if *tls {
                    w.write_str(" AUTH TLS\r\n PBSZ\r\n PROT\r\n")?;
                }
                w.write_str(
                    " EPRT\r\n EPSV\r\n HOST\r\n MDTM\r\n MFMT\r\n MLSD\r\n PASV\r\n \
                     REST STREAM\r\n SITE CHMOD;CPFR;CPTO\r\n SIZE\r\n TVFS\r\n UTF8\r\n MLST ",
                )?;
                facts.write_feature(w)?;
                write!(w, "\r\n{code} End\r\n")
            }
            Message::Help => write!(
                w,
                "{code}-The following commands are recognized:\r\n \
                 ABOR ACCT ALLO APPE AUTH CDUP CWD  DELE EPRT EPSV FEAT HELP HOST LIST MDTM\r\n \
                 MFMT MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD  QUIT\r\n \
                 REIN REST RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST TYPE USER\r\n \
                 XCUP XCWD XMKD XPWD XRMD\r\n{code} Help OK.\r\n"
            ),
            Message::SiteHelp => write!(
                w,
                "{code}-The following SITE commands are recognized:\r\n \
                 CHMOD CPFR CPTO HELP\r\n{code} Help OK.\r\n"
            ),
            Message::Status(s) => {
                write!(w, "{code}-Ferry FTP server status:\r\n")?;
                match &s.user {
                    Some(u) => write!(w, " Logged in as {u}\r\n")?,
                    None => w.write_str(" Not logged in\r\n")?,
                }
                let t = if s.ascii { "ASCII" } else { "BINARY" };
                let tls = if s.tls { "TLS" } else { "clear text" };
                let prot = if s.protected { "private" } else { "clear" };
                write!(
                    w,
                    " TYPE: {t}, STRUcture: File, MODE: Stream\r\n Control connection: {tls}\r\n \
                     Data connections: {prot}, {}\r\n{code} End of status.\r\n",
                    s.data
                )
            }
            Message::Mlst {
                path,
                meta,
                facts,
                writable,
            } => {
                write!(w, "{code}-Listing {path}\r\n ")?;
                write_facts(w, meta, *facts, *writable)?;
                write!(w, " {path}\r\n{code} End.\r\n")
            }
        }
    }

    /// Writes the reply into `buf` and returns its length.
    ///
    /// # Errors
    /// [`InsufficientSize`] with the length needed, when `buf` is too small; `buf` then holds
    /// a prefix of the reply.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let mut w = SliceWriter { buf, len: 0 };
        if self.write_to(&mut w).is_ok() {
            return Ok(w.len);
        }
        let mut count = Counter(0);
        // Counting never fails.
        let _ = self.write_to(&mut count);
        Err(InsufficientSize { required: count.0 })
    }
}

/// Every reply the session sends, by name: their wording lives here and nowhere else.
impl Reply {
    // ---- Access: USER, PASS, ACCT, REIN, QUIT, HOST; the session's end ----
    /// `220` and the configured greeting.
    pub(crate) const fn greeting(text: &'static str) -> Self {
        Self::text(220, text)
    }

    pub(crate) const PASSWORD_NEEDED: Self = Self::text(331, "Please specify the password.");
    pub(crate) const LOGGED_IN: Self = Self::text(230, "Login successful.");
    pub(crate) const LOGIN_INCORRECT: Self = Self::text(530, "Login incorrect.");
    pub(crate) const TOO_MANY_FAILURES: Self =
        Self::text(421, "Too many failed logins; closing connection.");
    pub(crate) const LOGIN_UNAVAILABLE: Self =
        Self::text(421, "Login service unavailable; try again later.");
    pub(crate) const TOO_MANY_SESSIONS: Self =
        Self::text(421, "Too many sessions for this account; try again later.");
    pub(crate) const NOT_LOGGED_IN: Self =
        Self::text(530, "Please log in with USER and PASS first.");
    pub(crate) const USER_WHILE_LOGGED_IN: Self =
        Self::text(503, "Already logged in; use REIN to change user.");
    pub(crate) const PASS_WHILE_LOGGED_IN: Self = Self::text(202, "Already logged in.");
    pub(crate) const USER_FIRST: Self = Self::text(503, "Login with USER first.");
    pub(crate) const BAD_USER_NAME: Self = Self::text(501, "Invalid user name.");
    pub(crate) const USER_NAME_TOO_LONG: Self = Self::text(501, "User name too long.");
    pub(crate) const PASSWORD_TOO_LONG: Self = Self::text(501, "Password too long.");
    pub(crate) const TLS_BEFORE_USER: Self =
        Self::text(530, "This server requires TLS: send AUTH TLS before USER.");
    pub(crate) const ACCT_NOT_NEEDED: Self = Self::text(202, "ACCT is not needed.");
    pub(crate) const READY_FOR_NEW_USER: Self = Self::text(220, "Ready for a new user.");
    pub(crate) const GOODBYE: Self = Self::text(221, "Goodbye.");
    pub(crate) const HOST_ACCEPTED: Self = Self::text(220, "Host accepted.");
    pub(crate) const HOST_AFTER_LOGIN: Self = Self::text(503, "HOST must come before login.");
    pub(crate) const SHUTTING_DOWN: Self = Self::text(421, "Server shutting down.");
    pub(crate) const IDLE_TIMEOUT: Self =
        Self::text(421, "Idle timeout; closing control connection.");
    pub(crate) const LINE_TOO_LONG: Self = Self::text(500, "Command line too long.");

    // ---- TLS negotiation: AUTH, PBSZ, PROT (RFC 4217) ----
    pub(crate) const TLS_NOT_CONFIGURED: Self =
        Self::text(502, "Explicit FTPS is not configured on this server.");
    pub(crate) const TLS_ALREADY_ACTIVE: Self = Self::text(503, "TLS is already active.");
    pub(crate) const AUTH_AFTER_LOGIN: Self = Self::text(503, "AUTH must come before login.");
    pub(crate) const AUTH_TLS_OK: Self = Self::text(234, "AUTH TLS successful.");
    pub(crate) const AUTH_SSL_OK: Self = Self::text(234, "AUTH SSL successful.");
    pub(crate) const PBSZ_OK: Self = Self::text(200, "PBSZ=0");
    pub(crate) const PBSZ_WITHOUT_TLS: Self = Self::text(503, "PBSZ requires AUTH TLS first.");
    pub(crate) const PROT_WITHOUT_TLS: Self = Self::text(503, "PROT requires AUTH TLS first.");
    pub(crate) const PROT_WITHOUT_PBSZ: Self = Self::text(503, "PBSZ must come before PROT.");
    pub(crate) const PROT_PRIVATE: Self = Self::text(200, "Protection level set to Private.");
    pub(crate) const PROT_CLEAR: Self = Self::text(200, "Protection level set to Clear.");
    pub(crate) const PROT_CLEAR_REFUSED: Self =
        Self::text(534, "This server requires encrypted data connections.");
    pub(crate) const PROT_UNSUPPORTED: Self =
        Self::text(536, "Only PROT C and PROT P are supported with TLS.");
    pub(crate) const DATA_MUST_BE_PRIVATE: Self =
        Self::text(521, "Data connections must be encrypted: send PROT P.");

    // ---- Transfer parameters and data connections ----
    pub(crate) const TYPE_ASCII: Self = Self::text(200, "Switching to ASCII mode.");
    pub(crate) const TYPE_BINARY: Self = Self::text(200, "Switching to Binary mode.");
    pub(crate) const MODE_STREAM: Self = Self::text(200, "Mode set to S.");
    pub(crate) const MODE_UNSUPPORTED: Self = Self::text(504, "Only stream mode (S) is supported.");
    pub(crate) const STRU_FILE: Self = Self::text(200, "Structure set to F.");
    pub(crate) const STRU_UNSUPPORTED: Self =
        Self::text(504, "Only file structure (F) is supported.");
    pub(crate) const PORT_OK: Self =
        Self::text(200, "PORT command successful. Consider using PASV.");
    pub(crate) const PORT_FOREIGN: Self =
        Self::text(504, "Data connection to a foreign address refused.");
    pub(crate) const PORT_PRIVILEGED: Self =
        Self::text(504, "Data connection to a privileged port refused.");
    pub(crate) const EPSV_ALL_IN_EFFECT: Self = Self::text(503, "EPSV ALL is in effect; use EPSV.");
    pub(crate) const EPSV_ALL_OK: Self = Self::text(200, "EPSV ALL ok.");
    pub(crate) const PASV_IS_IPV4: Self = Self::text(425, "PASV is for IPv4; use EPSV.");
    pub(crate) const EPSV_USE_IPV6: Self =
        Self::text(522, "Network protocol not supported, use (2).");
    pub(crate) const EPSV_USE_IPV4: Self =
        Self::text(522, "Network protocol not supported, use (1).");
    pub(crate) const PASSIVE_FAILED: Self = Self::text(425, "Cannot open passive connection.");
    pub(crate) const ALLO_NOT_NEEDED: Self = Self::text(202, "ALLO is not needed.");
    pub(crate) const NO_DATA_CONNECTION: Self = Self::text(425, "Use PORT, PASV or EPSV first.");

    /// `350` after `REST n`.
    pub(crate) fn restarting(n: u64) -> Self {
        let (before, after) = ("Restarting at ", ". Send STORE or RETRIEVE.");
        Self::new(350, Message::Number { before, n, after })
    }

    /// `227` for a passive listener on `addr`.
    pub(crate) fn passive(addr: SocketAddrV4) -> Self {
        Self::new(227, Message::Passive(addr))
    }

    /// `229` for a passive listener on `port`.
    pub(crate) fn extended_passive(port: u16) -> Self {
        Self::new(229, Message::ExtendedPassive(port))
    }

    // ---- Transfers: the 150 before, the 226 (or error) after ----
    pub(crate) const LISTING_FOLLOWS: Self = Self::text(150, "Here comes the directory listing.");
    pub(crate) const LISTING_SENT: Self = Self::text(226, "Directory send OK.");
    pub(crate) const TRANSFER_IN_PROGRESS: Self = Self::text(213, "Status: transfer in progress.");
    pub(crate) const ABORTED: Self = Self::text(226, "ABOR command successful.");
    pub(crate) const ABOR_WITHOUT_TRANSFER: Self =
        Self::text(226, "ABOR command successful; no transfer running.");
    pub(crate) const STATUS_END: Self = Self::text(213, "End of status.");
    pub(crate) const STATUS_END_INCOMPLETE: Self = Self::text(213, "End of status (incomplete).");
    pub(crate) const STATUS_FAILED: Self = Self::text(451, "Status listing failed.");

    /// `213-Status follows:`, the first line of `STAT path`; the listing and
    /// [`Reply::STATUS_END`] follow.
    pub(crate) fn status_follows() -> Self {
        Self::opening(213, Message::Text("Status follows:"))
    }

    /// `150` before a file's bytes, with its size when known.
    pub(crate) fn opening_data(ascii: bool, size: Option<u64>) -> Self {
        match (size, ascii) {
            (Some(n), true) => Self::number(150, "Opening ASCII mode data connection (", n),
            (Some(n), false) => Self::number(150, "Opening BINARY mode data connection (", n),
            (None, true) => Self::text(150, "Opening ASCII mode data connection."),
            (None, false) => Self::text(150, "Opening BINARY mode data connection."),
        }
    }

    /// `150 FILE: path`, the name `STOU` chose.
    pub(crate) fn unique_name(path: VirtualPath) -> Self {
        Self::new(
            150,
            Message::WithPath {
                text: "FILE:",
                path,
            },
        )
    }

    /// `226` after a file's `n` bytes.
    pub(crate) fn transfer_complete(n: u64) -> Self {
        Self::number(226, "Transfer complete (", n)
    }

    /// `text n bytes).`, the form of the 150 and 226 replies with a size.
    fn number(code: u16, before: &'static str, n: u64) -> Self {
        Self::new(
            code,
            Message::Number {
                before,
                n,
                after: " bytes).",
            },
        )
    }

    /// Why a transfer failed; `upload` picks 552 over 452 for a full disk (RFC 959).
    pub(crate) fn transfer_failed(e: TransferError, upload: bool) -> Self {
        match e {
            TransferError::Aborted => Self::text(426, "Connection closed; transfer aborted."),
            TransferError::DataConnection => Self::text(425, "Cannot open data connection."),
            TransferError::ConnectionLost => {
                Self::text(426, "Data connection lost; transfer aborted.")
            }
            TransferError::Stalled => Self::text(426, "Data connection stalled; transfer aborted."),
            TransferError::TlsHandshake => {
                Self::text(425, "TLS negotiation on the data connection failed.")
            }
            TransferError::TlsNotResumed => Self::text(
                522,
                "Data connection must resume the TLS session of the control connection.",
            ),
            TransferError::Storage(e) => Self::storage_error(e, upload),
        }
    }

    // ---- Files and folders ----
    pub(crate) const DIR_CHANGED: Self = Self::text(250, "Directory successfully changed.");
    pub(crate) const DELETED: Self = Self::text(250, "File deleted.");
    pub(crate) const RENAMED: Self = Self::text(250, "Rename successful.");
    pub(crate) const COPIED: Self = Self::text(250, "Copy successful.");
    pub(crate) const DIR_REMOVED: Self = Self::text(250, "Directory removed.");
    pub(crate) const CHMOD_OK: Self = Self::text(200, "SITE CHMOD command ok.");
    pub(crate) const READY_FOR_RNTO: Self = Self::text(350, "Ready for RNTO.");
    pub(crate) const READY_FOR_CPTO: Self =
        Self::text(350, "File exists, ready for destination name.");
    pub(crate) const RNFR_FIRST: Self = Self::text(503, "RNFR required first.");
    pub(crate) const CPFR_FIRST: Self = Self::text(503, "SITE CPFR required first.");
    pub(crate) const ROOT_NOT_RENAMED: Self = Self::text(550, "The root folder cannot be renamed.");
    pub(crate) const ROOT_NOT_REMOVED: Self = Self::text(550, "Cannot remove the root folder.");
    pub(crate) const ROOT_NOT_CHANGED: Self = Self::text(550, "The root folder cannot be changed.");
    pub(crate) const MTIME_UNKNOWN: Self = Self::text(550, "Modification time unknown.");
    pub(crate) const READ_ONLY: Self = Self::text(550, "Permission denied: read-only account.");
    pub(crate) const CONTROL_CHARACTER: Self =
        Self::text(501, "Path contains a control character.");
    pub(crate) const PATH_TOO_LONG: Self = Self::text(553, "Path too long.");
    pub(crate) const NAME_NOT_ALLOWED: Self = Self::text(553, "File name not allowed.");

    /// `257 "path" is the current directory.`
    pub(crate) fn current_dir(path: VirtualPath) -> Self {
        Self::new(
            257,
            Message::Quoted {
                path,
                text: "is the current directory.",
            },
        )
    }

    /// `257 "path" created.`
    pub(crate) fn created(path: VirtualPath) -> Self {
        Self::new(
            257,
            Message::Quoted {
                path,
                text: "created.",
            },
        )
    }

    /// `213 n`, a file's size.
    pub(crate) fn size(n: u64) -> Self {
        Self::new(
            213,
            Message::Number {
                before: "",
                n,
                after: "",
            },
        )
    }

    /// `213 YYYYMMDDHHMMSS`, a file's modification time.
    pub(crate) fn modification_time(t: DateTime) -> Self {
        Self::new(213, Message::Time(t))
    }

    /// `213 Modify=...; path` after `MFMT`.
    pub(crate) fn modified(time: DateTime, path: VirtualPath) -> Self {
        Self::new(213, Message::Modified { time, path })
    }

    /// The `250` reply to `MLST`: the facts of one path.
    pub(crate) fn facts(path: VirtualPath, meta: Metadata, facts: Facts, writable: bool) -> Self {
        Self::new(
            250,
            Message::Mlst {
                path,
                meta,
                facts,
                writable,
            },
        )
    }

    /// A storage error; `upload` picks 552 over 452 for a full disk (RFC 959).
    pub(crate) fn storage_error(e: StorageError, upload: bool) -> Self {
        Self::text(e.reply_code(upload), e.message())
    }

    // ---- Service and status: FEAT, OPTS, SYST, HELP, NOOP, STAT; syntax errors ----
    pub(crate) const NOOP_OK: Self = Self::text(200, "NOOP ok.");
    pub(crate) const SYSTEM: Self = Self::text(215, "UNIX Type: L8");
    pub(crate) const UTF8_ON: Self = Self::text(200, "Always in UTF8 mode.");
    pub(crate) const UTF8_OFF_REFUSED: Self = Self::text(504, "UTF8 cannot be turned off.");
    pub(crate) const HELP: Self = Self::fixed(214, Message::Help);
    pub(crate) const SITE_HELP: Self = Self::fixed(214, Message::SiteHelp);

    const fn fixed(code: u16, message: Message) -> Self {
        Self {
            code,
            message,
            open: false,
        }
    }

    /// `200 MLST OPTS ...` with the facts now selected.
    pub(crate) fn mlst_opts(facts: Facts) -> Self {
        Self::new(200, Message::MlstOpts(facts))
    }

    /// The `211` reply to `FEAT`.
    pub(crate) fn features(tls: bool, facts: Facts) -> Self {
        Self::new(211, Message::Features { tls, facts })
    }

    /// The `211` reply to `STAT` without a path.
    pub(crate) fn status(status: Status) -> Self {
        Self::new(211, Message::Status(status))
    }

    /// The reply to a line that is not a command Ferry can run.
    pub(crate) fn parse_error(e: ParseError) -> Self {
        Self::text(e.reply_code(), e.message())
    }
}

impl ParseError {
    /// The reply code for this error.
    #[must_use]
    pub fn reply_code(self) -> u16 {
        self.reply_parts().0
    }

    /// The reply text for this error.
    #[must_use]
    pub fn message(self) -> &'static str {
        self.reply_parts().1
    }

    fn reply_parts(self) -> (u16, &'static str) {
        match self {
            Self::Empty => (500, "Empty command."),
            Self::UnknownVerb => (500, "Unknown command."),
            Self::NotImplemented => (502, "Command not implemented."),
            Self::MissingArgument => (501, "Missing argument."),
            Self::BadArgument => (501, "Syntax error in arguments."),
            Self::NotUtf8 => (501, "Argument is not valid UTF-8."),
            Self::UnsupportedParameter => (504, "Command not implemented for that parameter."),
            Self::UnsupportedProtocol => (522, "Network protocol not supported, use (1,2)."),
        }
    }
}

impl crate::storage::Permission {
    /// The text of the 550 reply that refuses it.
    #[must_use]
    pub fn refusal(self) -> &'static str {
        match self {
            Self::List => "Listing is not allowed here for your account.",
            Self::Download => "Downloading is not allowed here for your account.",
            Self::Upload => "Uploading is not allowed here for your account.",
            Self::Overwrite => "Overwriting files is not allowed here for your account.",
            Self::Append => "Appending is not allowed here for your account.",
            Self::Delete => "Deleting is not allowed here for your account.",
            Self::Rename => "Renaming is not allowed here for your account.",
            Self::Mkdir => "Making folders is not allowed here for your account.",
            Self::Rmdir => "Removing folders is not allowed here for your account.",
            Self::Copy => "Copying is not allowed here for your account.",
            Self::Chmod => "Changing permissions is not allowed here for your account.",
            Self::Mtime => "Setting times is not allowed here for your account.",
        }
    }
}

impl StorageError {
    /// The reply code for this error (RFC 959 §4.2).
    ///
    /// `during_upload` picks 552 over 452 for a full disk while receiving a file, as RFC 959
    /// does for `STOR`.
    #[must_use]
    pub fn reply_code(self, during_upload: bool) -> u16 {
        match self {
            Self::NoSpace if during_upload => 552,
            _ => self.reply_parts().0,
        }
    }

    /// The text of the reply for this error.
    #[must_use]
    pub fn message(self) -> &'static str {
        self.reply_parts().1
    }

    fn reply_parts(self) -> (u16, &'static str) {
        match self {
            Self::NotFound => (550, "No such file or directory."),
            Self::PermissionDenied => (550, "Permission denied."),
            Self::AlreadyExists => (550, "File exists."),
            Self::NotEmpty => (550, "Directory not empty."),
            Self::NoSpace => (452, "Insufficient storage space."),
            Self::BadName => (553, "File name not allowed."),
            Self::NotAFile => (550, "Not a regular file."),
            Self::NotADirectory => (550, "Not a directory."),
            Self::Unsupported => (502, "Not supported by this storage."),
            Self::TooMany => (550, "Too many entries to do that at once."),
            Self::Denied(p) => (550, p.refusal()),
            Self::QuotaExceeded => (552, "Quota exceeded: delete something first."),
            Self::HardLinked => (
                550,
                "Refused: the file has other hard links (not allowed by this server).",
            ),
            Self::Other => (451, "Local error in processing."),
        }
    }
}

impl fmt::Display for Reply {
    /// The reply as sent, CR LF included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// A [`fmt::Write`] into a byte slice that fails when the slice is full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};

    #[test]
    fn single_line() {
        assert_eq!(Reply::text(200, "OK.").to_string(), "200 OK.\r\n");
        let p = VirtualPath::parse("/a \"b\"").unwrap();
        let r = Reply::new(
            257,
            Message::Quoted {
                path: p,
                text: "is the current directory.",
            },
        );
        assert_eq!(
            r.to_string(),
            "257 \"/a \"\"b\"\"\" is the current directory.\r\n"
        );
        let a = SocketAddrV4::new([127, 0, 0, 1].into(), 56363);
        assert_eq!(
            Reply::new(227, Message::Passive(a)).to_string(),
            "227 Entering Passive Mode (127,0,0,1,220,43).\r\n"
        );
        assert_eq!(
            Reply::new(229, Message::ExtendedPassive(2121)).to_string(),
            "229 Entering Extended Passive Mode (|||2121|).\r\n"
        );
        let t = DateTime::parse_ftp("20261122161138").unwrap();
        assert_eq!(
            Reply::new(213, Message::Time(t)).to_string(),
            "213 20261122161138\r\n"
        );
        assert_eq!(
            Reply::opening(213, Message::Text("Status follows:")).to_string(),
            "213-Status follows:\r\n"
        );
    }

    /// Every multi-line reply is well-formed: first line `ddd-`, last `ddd `, body lines not
    /// starting with a code.
    fn check_multiline(s: &str, code: u16) {
        let lines: std::vec::Vec<&str> = s.split_terminator("\r\n").collect();
        assert!(lines.len() >= 2, "{s}");
        assert!(lines[0].starts_with(&std::format!("{code}-")), "{s}");
        assert!(
            lines.last().unwrap().starts_with(&std::format!("{code} ")),
            "{s}"
        );
        for body in &lines[1..lines.len() - 1] {
            assert!(body.starts_with(' '), "{body:?} in {s}");
        }
        assert!(s.ends_with("\r\n"));
    }

    #[test]
    fn multi_line() {
        let feat = Reply::new(
            211,
            Message::Features {
                tls: true,
                facts: Facts::ALL,
            },
        )
        .to_string();
        check_multiline(&feat, 211);
        assert!(feat.contains(" AUTH TLS\r\n") && feat.contains(" UTF8\r\n"));
        assert!(feat.contains(" MLST type*;size*;modify*;perm*;unix.mode*;\r\n"));
        let no_tls = Reply::new(
            211,
            Message::Features {
                tls: false,
                facts: Facts::ALL,
            },
        );
        assert!(!no_tls.to_string().contains("AUTH"));
        check_multiline(&Reply::new(214, Message::Help).to_string(), 214);
        check_multiline(&Reply::new(214, Message::SiteHelp).to_string(), 214);
        let status = Status {
            user: None,
            ascii: true,
            tls: false,
            protected: false,
            data: "none",
        };
        check_multiline(&Reply::new(211, Message::Status(status)).to_string(), 211);
        let meta = Metadata {
            kind: crate::FileKind::File,
            size: 5,
            modified: None,
            mode: None,
        };
        let path = VirtualPath::parse("/f").unwrap();
        let mlst = Reply::new(
            250,
            Message::Mlst {
                path,
                meta,
                facts: Facts::ALL,
                writable: true,
            },
        );
        let s = mlst.to_string();
        check_multiline(&s, 250);
        assert_eq!(
            s,
            "250-Listing /f\r\n type=file;size=5;perm=adfrw;unix.mode=0644; /f\r\n250 End.\r\n"
        );
    }

    #[test]
    fn encode_into_buffers() {
        let r = Reply::text(221, "Goodbye.");
        let mut buf = [0u8; 64];
        let n = r.encode(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"221 Goodbye.\r\n");
        let mut small = [0u8; 5];
        assert_eq!(r.encode(&mut small), Err(InsufficientSize { required: 14 }));
        let _ = String::new();
    }
}
