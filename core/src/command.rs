//! `Command<'a>`: one parsed command line, borrowing its arguments from the line.
//!
//! [`Command::encode`] writes a command back in its canonical form, so that
//! `parse(encode(c)) == c` can be tested and fuzzed.

use core::fmt;
use core::net::{IpAddr, SocketAddr, SocketAddrV4};

use crate::time::DateTime;

/// A parsed FTP command. Path and name arguments are the raw text the client sent (valid
/// UTF-8, not yet normalised: the session joins them to its working directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // Each variant is the verb of the same name (RFC 959, 2228, 2389, 2428, 3659, 4217, 7151).
pub enum Command<'a> {
    User(&'a str),
    /// The password; may be empty.
    Pass(&'a str),
    Acct(&'a str),
    Rein,
    Quit,
    /// `PWD`, or `XPWD` when `x`.
    Pwd {
        x: bool,
    },
    /// `CWD`, or `XCWD` when `x`.
    Cwd {
        path: &'a str,
        x: bool,
    },
    /// `CDUP`, or `XCUP` when `x`.
    Cdup {
        x: bool,
    },
    Type(DataType),
    Mode(TransferMode),
    Stru(FileStructure),
    Port(SocketAddrV4),
    Pasv,
    Eprt(SocketAddr),
    Epsv(EpsvArg),
    Rest(u64),
    Retr(&'a str),
    Stor(&'a str),
    /// `STOU`, with an optional name to base the unique name on.
    Stou(Option<&'a str>),
    Appe(&'a str),
    /// `ALLO` and its (ignored) arguments.
    Allo(&'a str),
    Dele(&'a str),
    Rnfr(&'a str),
    Rnto(&'a str),
    Size(&'a str),
    Mdtm(&'a str),
    Mfmt {
        time: DateTime,
        path: &'a str,
    },
    /// `MKD`, or `XMKD` when `x`.
    Mkd {
        path: &'a str,
        x: bool,
    },
    /// `RMD`, or `XRMD` when `x`.
    Rmd {
        path: &'a str,
        x: bool,
    },
    Site(SiteCommand<'a>),
    List(ListArgs<'a>),
    Nlst(ListArgs<'a>),
    Mlsd(Option<&'a str>),
    Mlst(Option<&'a str>),
    Stat(Option<&'a str>),
    Feat,
    Opts(OptsArg<'a>),
    Syst,
    Help(Option<&'a str>),
    Noop,
    Abor,
    Host(&'a str),
    Auth(AuthMechanism),
    Pbsz(u64),
    Prot(ProtLevel),
}

/// `TYPE` arguments (RFC 959 §4.1.2). Only the forms Ferry supports parse; `A T`, `A C`, `E`
/// and `L` other than 8 are refused with 504.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `A`: ASCII, line ends converted to CR LF on the wire.
    Ascii,
    /// `A N`: ASCII, non-print (the same).
    AsciiNonPrint,
    /// `I`: image, bytes as they are.
    Image,
    /// `L 8`: local bytes of 8 bits (the same as image).
    Local8,
}

impl DataType {
    /// Whether line ends are converted.
    #[must_use]
    pub fn is_ascii(self) -> bool {
        matches!(self, Self::Ascii | Self::AsciiNonPrint)
    }
}

/// `MODE` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// `S`, the only one supported.
    Stream,
    /// `B`.
    Block,
    /// `C`.
    Compressed,
}

/// `STRU` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStructure {
    /// `F`, the only one supported.
    File,
    /// `R`.
    Record,
    /// `P`.
    Page,
}

/// `EPSV` arguments (RFC 2428).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the control connection's protocol.
    Any,
    /// `1`: IPv4.
    V4,
    /// `2`: IPv6.
    V6,
    /// `ALL`: from now on only `EPSV`.
    All,
}

/// `AUTH` mechanisms (RFC 4217). `TLS`, `TLS-C` and `SSL` all mean explicit TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// `TLS` (or `TLS-C`).
    Tls,
    /// `SSL`, an alias that old clients send.
    Ssl,
}

/// `PROT` levels (RFC 2228).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtLevel {
    /// `C`: clear.
    Clear,
    /// `S`: safe (integrity only); not supported by TLS.
    Safe,
    /// `E`: confidential; not supported by TLS.
    Confidential,
    /// `P`: private (TLS).
    Private,
}

/// `OPTS` arguments (RFC 2389).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptsArg<'a> {
    /// `OPTS UTF8 ON|OFF`.
    Utf8(bool),
    /// `OPTS MLST fact;fact;` (RFC 3659 §7.9): the facts to show; may be empty.
    Mlst(&'a str),
}

/// `SITE` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteCommand<'a> {
    /// `SITE CPFR path`: the file to copy.
    Cpfr(&'a str),
    /// `SITE CPTO path`: where to copy it.
    Cpto(&'a str),
    /// `SITE CHMOD mode path`: octal permission bits.
    Chmod {
        /// Permission bits, at most `0o7777`.
        mode: u32,
        /// The file or folder.
        path: &'a str,
    },
    /// `SITE HELP [topic]`.
    Help(Option<&'a str>),
}

/// Arguments of `LIST` and `NLST`: `ls`-style options, then an optional path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListArgs<'a> {
    /// Options such as `-la` (each word starting with `-`), or empty. They never name a file.
    pub options: &'a str,
    /// The path or pattern, if any.
    pub path: Option<&'a str>,
}

impl Command<'_> {
    /// The verb as the client sent it (canonical upper case).
    #[must_use]
    pub fn verb(&self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::Pass(_) => "PASS",
            Self::Acct(_) => "ACCT",
            Self::Rein => "REIN",
            Self::Quit => "QUIT",
            Self::Pwd { x: false } => "PWD",
            Self::Pwd { x: true } => "XPWD",
            Self::Cwd { x: false, .. } => "CWD",
            Self::Cwd { x: true, .. } => "XCWD",
            Self::Cdup { x: false } => "CDUP",
            Self::Cdup { x: true } => "XCUP",
            Self::Type(_) => "TYPE",
            Self::Mode(_) => "MODE",
            Self::Stru(_) => "STRU",
            Self::Port(_) => "PORT",
            Self::Pasv => "PASV",
            Self::Eprt(_) => "EPRT",
            Self::Epsv(_) => "EPSV",
            Self::Rest(_) => "REST",
            Self::Retr(_) => "RETR",
            Self::Stor(_) => "STOR",
            Self::Stou(_) => "STOU",
            Self::Appe(_) => "APPE",
            Self::Allo(_) => "ALLO",
            Self::Dele(_) => "DELE",
            Self::Rnfr(_) => "RNFR",
            Self::Rnto(_) => "RNTO",
            Self::Size(_) => "SIZE",
            Self::Mdtm(_) => "MDTM",
            Self::Mfmt { .. } => "MFMT",
            Self::Mkd { x: false, .. } => "MKD",
            Self::Mkd { x: true, .. } => "XMKD",
            Self::Rmd { x: false, .. } => "RMD",
            Self::Rmd { x: true, .. } => "XRMD",
            Self::Site(_) => "SITE",
            Self::List(_) => "LIST",
            Self::Nlst(_) => "NLST",
            Self::Mlsd(_) => "MLSD",
            Self::Mlst(_) => "MLST",
            Self::Stat(_) => "STAT",
            Self::Feat => "FEAT",
            Self::Opts(_) => "OPTS",
            Self::Syst => "SYST",
            Self::Help(_) => "HELP",
            Self::Noop => "NOOP",
            Self::Abor => "ABOR",
            Self::Host(_) => "HOST",
            Self::Auth(_) => "AUTH",
            Self::Pbsz(_) => "PBSZ",
            Self::Prot(_) => "PROT",
        }
    }

    /// Writes the command in canonical form, without CR LF. Parsing the output gives `self`
    /// back.
    ///
    /// # Errors
    /// Only those of `w`.
    pub fn encode(&self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str(self.verb())?;
        match *self {
            Self::User(s)
            | Self::Pass(s)
            | Self::Acct(s)
            | Self::Cwd { path: s, .. }
            | Self::Retr(s)
            | Self::Stor(s)
            | Self::Appe(s)
            | Self::Dele(s)
            | Self::Rnfr(s)
            | Self::Rnto(s)
            | Self::Size(s)
            | Self::Mdtm(s)
            | Self::Mkd { path: s, .. }
            | Self::Rmd { path: s, .. }
            | Self::Host(s) => write!(w, " {s}"),
            Self::Allo("") => Ok(()),
            Self::Allo(s) => write!(w, " {s}"),
            Self::Stou(p) | Self::Mlsd(p) | Self::Mlst(p) | Self::Stat(p) | Self::Help(p) => {
                p.map_or(Ok(()), |p| write!(w, " {p}"))
            }
            Self::Rein
            | Self::Quit
            | Self::Pwd { .. }
            | Self::Cdup { .. }
            | Self::Pasv
            | Self::Feat
            | Self::Syst
            | Self::Noop
            | Self::Abor => Ok(()),
            Self::Type(t) => w.write_str(match t {
                DataType::Ascii => " A",
                DataType::AsciiNonPrint => " A N",
                DataType::Image => " I",
                DataType::Local8 => " L 8",
            }),
            Self::Mode(m) => w.write_str(match m {
                TransferMode::Stream => " S",
                TransferMode::Block => " B",
                TransferMode::Compressed => " C",
            }),
            Self::Stru(s) => w.write_str(match s {
                FileStructure::File => " F",
                FileStructure::Record => " R",
                FileStructure::Page => " P",
            }),
            Self::Port(a) => {
                let [h1, h2, h3, h4] = a.ip().octets();
                let [p1, p2] = a.port().to_be_bytes();
                write!(w, " {h1},{h2},{h3},{h4},{p1},{p2}")
            }
            Self::Eprt(a) => {
                let proto = if a.is_ipv4() { 1 } else { 2 };
                write!(w, " |{proto}|{}|{}|", a.ip(), a.port())
            }
            Self::Epsv(e) => w.write_str(match e {
                EpsvArg::Any => "",
                EpsvArg::V4 => " 1",
                EpsvArg::V6 => " 2",
                EpsvArg::All => " ALL",
            }),
            Self::Rest(n) | Self::Pbsz(n) => write!(w, " {n}"),
            Self::Mfmt { time, path } => write!(w, " {time} {path}"),
            Self::Site(s) => match s {
                SiteCommand::Cpfr(p) => write!(w, " CPFR {p}"),
                SiteCommand::Cpto(p) => write!(w, " CPTO {p}"),
                SiteCommand::Chmod { mode, path } => write!(w, " CHMOD {mode:o} {path}"),
                SiteCommand::Help(None) => w.write_str(" HELP"),
                SiteCommand::Help(Some(t)) => write!(w, " HELP {t}"),
            },
            Self::List(a) | Self::Nlst(a) => {
                if !a.options.is_empty() {
                    write!(w, " {}", a.options)?;
                }
                a.path.map_or(Ok(()), |p| write!(w, " {p}"))
            }
            Self::Opts(OptsArg::Utf8(on)) => w.write_str(if on { " UTF8 ON" } else { " UTF8 OFF" }),
            Self::Opts(OptsArg::Mlst("")) => w.write_str(" MLST"),
            Self::Opts(OptsArg::Mlst(facts)) => write!(w, " MLST {facts}"),
            Self::Auth(m) => w.write_str(match m {
                AuthMechanism::Tls => " TLS",
                AuthMechanism::Ssl => " SSL",
            }),
            Self::Prot(p) => w.write_str(match p {
                ProtLevel::Clear => " C",
                ProtLevel::Safe => " S",
                ProtLevel::Confidential => " E",
                ProtLevel::Private => " P",
            }),
        }
    }

    /// Whether this command starts a transfer, and so takes a pending `REST` (any other
    /// command leaves it set).
    #[must_use]
    pub(crate) fn starts_transfer(&self) -> bool {
        matches!(
            self,
            Self::Retr(_)
                | Self::Stor(_)
                | Self::Appe(_)
                | Self::Stou(_)
                | Self::List(_)
                | Self::Nlst(_)
                | Self::Mlsd(_)
        )
    }
}

impl fmt::Display for Command<'_> {
    /// The command as [`Command::encode`] writes it, except that a password is masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass(_) => f.write_str("PASS ****"),
            c => c.encode(f),
        }
    }
}

/// Whether two IP addresses are the same host, treating an IPv4-mapped IPv6 address as the
/// IPv4 address it maps.
#[must_use]
pub(crate) fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}
