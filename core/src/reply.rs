//! Replies: typed codes and every text the server sends, encoded without allocation.
//!
//! A [`Reply`] is a code and a [`Message`]; the message holds only what varies (a path, an
//! address, a number) and its text is written when the reply is encoded, into any
//! [`fmt::Write`] or a caller's byte buffer ([`Reply::encode`]). Multi-line replies follow
//! RFC 959 §4.2: `211-First line`, body lines that begin with a space, `211 Last line`.

use core::fmt;
use core::net::SocketAddrV4;

use crate::listing::{Facts, write_facts};
use crate::path::VirtualPath;
use crate::storage::Metadata;
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
    /// `150 Opening BINARY mode data connection for path (n bytes).`
    Opening {
        /// ASCII or binary.
        ascii: bool,
        /// The file.
        path: VirtualPath,
        /// Its size, when known.
        size: Option<u64>,
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
        Reply::text(
            421,
            match self {
                Self::TooManyConnections => "Too many connections; try again later.",
                Self::TooManyFromAddress => "Too many connections from your address.",
                Self::TooManyFailedLogins => {
                    "Too many failed logins from your address; try again later."
                }
                Self::ShuttingDown => "Server shutting down.",
            },
        )
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
    pub fn text(code: u16, text: &'static str) -> Self {
        Self::new(code, Message::Text(text))
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
            Message::Opening { ascii, path, size } => {
                let mode = if *ascii { "ASCII" } else { "BINARY" };
                write!(
                    w,
                    "{code}{sep}Opening {mode} mode data connection for {path}"
                )?;
                match size {
                    Some(n) => write!(w, " ({n} bytes).\r\n"),
                    None => w.write_str(".\r\n"),
                }
            }
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
