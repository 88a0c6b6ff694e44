//! The command grammar (RFC 959 §5.3, RFC 2428, RFC 3659, RFC 4217), in nom.
//!
//! [`parse_command`] takes one line (no CR LF, telnet sequences removed) and is total: every
//! byte sequence gives a [`Command`] or a [`ParseError`] whose [`reply_code`] the session
//! sends. The verb is read first (3 or 4 letters, any case), then the argument by one small
//! parser per argument shape; a pathname is the rest of the line after one space, so spaces
//! in names are kept.
//!
//! [`reply_code`]: ParseError::reply_code

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::u8 as dec_u8;
use nom::combinator::{all_consuming, eof};
use nom::multi::fill;
use nom::sequence::preceded;

use crate::command::{
    AuthMechanism, Command, DataType, EpsvArg, FileStructure, ListArgs, OptsArg, ProtLevel,
    SiteCommand, TransferMode,
};
use crate::time::DateTime;

/// Why a line is not a command Ferry can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The line is empty.
    Empty,
    /// The verb is not an FTP command.
    UnknownVerb,
    /// The verb is an FTP command that Ferry does not implement.
    NotImplemented,
    /// A required argument is missing.
    MissingArgument,
    /// An argument is malformed.
    BadArgument,
    /// An argument is not valid UTF-8 (RFC 2640 pathnames are UTF-8).
    NotUtf8,
    /// The argument is well-formed but names something Ferry does not support.
    UnsupportedParameter,
    /// `EPRT`/`EPSV` name a network protocol other than 1 (IPv4) or 2 (IPv6).
    UnsupportedProtocol,
}

// The reply code and text of each error are in `reply.rs`, with every other reply.

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for ParseError {}

/// Verbs of RFC 959 and its extensions that Ferry knows but does not implement (502).
const NOT_IMPLEMENTED: [&[u8]; 25] = [
    b"SMNT", b"CCC", b"ADAT", b"MIC", b"CONF", b"ENC", b"LANG", b"LPRT", b"LPSV", b"XRCP", b"XRSQ",
    b"XSEM", b"XSEN", b"MAIL", b"MLFL", b"MSND", b"MSOM", b"MSAM", b"MRSQ", b"MRCP", b"CLNT",
    b"XCRC", b"XMD5", b"HASH", b"AVBL",
];

/// `verb = 3*4ALPHA`, followed by SP or the end of the line.
fn verb(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (i, v) = take_while_m_n(3, 4, |b: u8| b.is_ascii_alphabetic())(i)?;
    let (i, _) = nom::branch::alt((tag(" "), eof)).parse(i)?;
    Ok((i, v))
}

/// Parses one command line (without CR LF and telnet sequences).
///
/// # Errors
/// A [`ParseError`] for anything that is not a command Ferry can run.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, ParseError> {
    if line.iter().all(|&b| b == b' ') {
        return Err(ParseError::Empty);
    }
    let (rest, v) = verb(line).map_err(|_| ParseError::UnknownVerb)?;
    let mut upper = [0u8; 4];
    upper[..v.len()].copy_from_slice(v);
    upper.make_ascii_uppercase();
    let verb = &upper[..v.len()];
    // `rest` is empty when the verb ended the line, or the text after one space.
    let arg = core::str::from_utf8(rest).map_err(|_| ParseError::NotUtf8)?;
    let opt = if arg.trim_matches(' ').is_empty() {
        None
    } else {
        Some(arg)
    };
    let req = || opt.ok_or(ParseError::MissingArgument);
    let cmd = match verb {
        b"USER" => Command::User(req()?),
        b"PASS" => Command::Pass(arg),
        b"ACCT" => Command::Acct(req()?),
        b"REIN" => Command::Rein,
        b"QUIT" => Command::Quit,
        b"PWD" => Command::Pwd { x: false },
        b"XPWD" => Command::Pwd { x: true },
        b"CWD" => Command::Cwd {
            path: req()?,
            x: false,
        },
        b"XCWD" => Command::Cwd {
            path: req()?,
            x: true,
        },
        b"CDUP" => Command::Cdup { x: false },
        b"XCUP" => Command::Cdup { x: true },
        b"TYPE" => Command::Type(data_type(req()?)?),
        b"MODE" => Command::Mode(match one_letter(req()?)? {
            b'S' => TransferMode::Stream,
            b'B' => TransferMode::Block,
            b'C' => TransferMode::Compressed,
            _ => return Err(ParseError::BadArgument),
        }),
        b"STRU" => Command::Stru(match one_letter(req()?)? {
            b'F' => FileStructure::File,
            b'R' => FileStructure::Record,
            b'P' => FileStructure::Page,
            _ => return Err(ParseError::BadArgument),
        }),
        b"PORT" => Command::Port(port_arg(req()?)?),
        b"PASV" => Command::Pasv,
        b"EPRT" => Command::Eprt(eprt_arg(req()?)?),
        b"EPSV" => Command::Epsv(epsv_arg(opt)?),
        b"REST" => Command::Rest(decimal(req()?)?),
        b"RETR" => Command::Retr(req()?),
        b"STOR" => Command::Stor(req()?),
        b"STOU" => Command::Stou(opt),
        b"APPE" => Command::Appe(req()?),
        b"ALLO" => Command::Allo(arg),
        b"DELE" => Command::Dele(req()?),
        b"RNFR" => Command::Rnfr(req()?),
        b"RNTO" => Command::Rnto(req()?),
        b"SIZE" => Command::Size(req()?),
        b"MDTM" => Command::Mdtm(req()?),
        b"MFMT" => mfmt(req()?)?,
        b"MKD" => Command::Mkd {
            path: req()?,
            x: false,
        },
        b"XMKD" => Command::Mkd {
            path: req()?,
            x: true,
        },
        b"RMD" => Command::Rmd {
            path: req()?,
            x: false,
        },
        b"XRMD" => Command::Rmd {
            path: req()?,
            x: true,
        },
        b"SITE" => Command::Site(site(req()?)?),
        b"LIST" => Command::List(list_args(arg)),
        b"NLST" => Command::Nlst(list_args(arg)),
        b"MLSD" => Command::Mlsd(opt),
        b"MLST" => Command::Mlst(opt),
        b"STAT" => Command::Stat(opt),
        b"FEAT" => Command::Feat,
        b"OPTS" => Command::Opts(opts(req()?)?),
        b"SYST" => Command::Syst,
        b"HELP" => Command::Help(opt),
        b"NOOP" => Command::Noop,
        b"ABOR" => Command::Abor,
        b"HOST" => Command::Host(req()?),
        b"AUTH" => Command::Auth(match upper_word(req()?) {
            Some(w) if w.eq_ignore_ascii_case(b"TLS") || w.eq_ignore_ascii_case(b"TLS-C") => {
                AuthMechanism::Tls
            }
            Some(w) if w.eq_ignore_ascii_case(b"SSL") => AuthMechanism::Ssl,
            _ => return Err(ParseError::UnsupportedParameter),
        }),
        b"PBSZ" => Command::Pbsz(decimal(req()?)?),
        b"PROT" => Command::Prot(match one_letter(req()?)? {
            b'C' => ProtLevel::Clear,
            b'S' => ProtLevel::Safe,
            b'E' => ProtLevel::Confidential,
            b'P' => ProtLevel::Private,
            _ => return Err(ParseError::UnsupportedParameter),
        }),
        v if NOT_IMPLEMENTED.contains(&v) => return Err(ParseError::NotImplemented),
        _ => return Err(ParseError::UnknownVerb),
    };
    Ok(cmd)
}

/// The single argument word, if `arg` is one word.
fn upper_word(arg: &str) -> Option<&[u8]> {
    let w = arg.trim_end_matches(' ').as_bytes();
    (!w.is_empty() && !w.contains(&b' ')).then_some(w)
}

/// A one-letter argument, upper-cased.
fn one_letter(arg: &str) -> Result<u8, ParseError> {
    match upper_word(arg) {
        Some(&[c]) if c.is_ascii_alphabetic() => Ok(c.to_ascii_uppercase()),
        _ => Err(ParseError::BadArgument),
    }
}

/// `decimal-integer = 1*DIGIT`, fitting in 64 bits (`REST`, `PBSZ`).
fn decimal(arg: &str) -> Result<u64, ParseError> {
    all_consuming(nom::character::complete::u64)
        .parse(arg.trim_end_matches(' ').as_bytes())
        .map(|(_, n)| n)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::BadArgument)
}

/// `type-code = "A" [SP form-code] / "E" [SP form-code] / "I" / "L" SP byte-size`
/// (RFC 959 §5.3.2). Only `A`, `A N`, `I` and `L 8` are supported.
fn data_type(arg: &str) -> Result<DataType, ParseError> {
    let a = arg.trim_end_matches(' ').as_bytes();
    let mut up = [0u8; 8];
    if a.is_empty() || a.len() > up.len() {
        return Err(ParseError::BadArgument);
    }
    up[..a.len()].copy_from_slice(a);
    up.make_ascii_uppercase();
    match &up[..a.len()] {
        b"A" => Ok(DataType::Ascii),
        b"A N" => Ok(DataType::AsciiNonPrint),
        b"I" => Ok(DataType::Image),
        b"L 8" => Ok(DataType::Local8),
        b"A T" | b"A C" | b"E" | b"E N" | b"E T" | b"E C" => Err(ParseError::UnsupportedParameter),
        [b'L', b' ', digits @ ..]
            if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) =>
        {
            Err(ParseError::UnsupportedParameter)
        }
        _ => Err(ParseError::BadArgument),
    }
}

/// `host-port = h1 "," h2 "," h3 "," h4 "," p1 "," p2` (RFC 959 §4.1.2, `PORT`).
fn host_port(i: &[u8]) -> IResult<&[u8], SocketAddrV4> {
    let mut n = [0u8; 6];
    let (i, first) = dec_u8(i)?;
    n[0] = first;
    let (i, ()) = fill(preceded(tag(","), dec_u8), &mut n[1..]).parse_complete(i)?;
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Ok((i, SocketAddrV4::new(ip, u16::from_be_bytes([n[4], n[5]]))))
}

fn port_arg(arg: &str) -> Result<SocketAddrV4, ParseError> {
    all_consuming(host_port)
        .parse(arg.trim_end_matches(' ').as_bytes())
        .map(|(_, a)| a)
        .map_err(|_| ParseError::BadArgument)
}

/// `EPRT<space><d><net-prt><d><net-addr><d><tcp-port><d>` (RFC 2428 §2); `d` is any
/// character from 33 to 126, `net-prt` 1 (IPv4) or 2 (IPv6).
fn eprt_arg(arg: &str) -> Result<SocketAddr, ParseError> {
    let arg = arg.trim_end_matches(' ');
    let d = arg.chars().next().ok_or(ParseError::BadArgument)?;
    if !(33..=126).contains(&u32::from(d)) || !arg.ends_with(d) || arg.len() < 2 {
        return Err(ParseError::BadArgument);
    }
    let inner = &arg[1..arg.len() - 1];
    let mut fields = inner.split(d);
    let (Some(proto), Some(addr), Some(port), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::BadArgument);
    };
    let port = tcp_port(port)?;
    let ip = match proto {
        "1" => IpAddr::V4(
            addr.parse::<Ipv4Addr>()
                .map_err(|_| ParseError::BadArgument)?,
        ),
        "2" => IpAddr::V6(
            addr.parse::<Ipv6Addr>()
                .map_err(|_| ParseError::BadArgument)?,
        ),
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(ParseError::UnsupportedProtocol);
        }
        _ => return Err(ParseError::BadArgument),
    };
    Ok(SocketAddr::new(ip, port))
}

/// `tcp-port`: a decimal port from 1 to 65535.
fn tcp_port(s: &str) -> Result<u16, ParseError> {
    all_consuming(nom::character::complete::u16::<_, ()>)
        .parse(s.as_bytes())
        .ok()
        .map(|(_, p)| p)
        .filter(|&p| p != 0)
        .ok_or(ParseError::BadArgument)
}

/// `EPSV [<net-prt> | "ALL"]` (RFC 2428 §3).
fn epsv_arg(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    let Some(a) = arg.map(|a| a.trim_end_matches(' ')) else {
        return Ok(EpsvArg::Any);
    };
    match a {
        "1" => Ok(EpsvArg::V4),
        "2" => Ok(EpsvArg::V6),
        a if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        a if a.bytes().all(|b| b.is_ascii_digit()) => Err(ParseError::UnsupportedProtocol),
        _ => Err(ParseError::BadArgument),
    }
}

/// `MFMT <time-val> <pathname>` (draft-somers-ftp-mfxx).
fn mfmt(arg: &str) -> Result<Command<'_>, ParseError> {
    let (time, path) = arg.split_once(' ').ok_or(ParseError::MissingArgument)?;
    let time = DateTime::parse_ftp(time).ok_or(ParseError::BadArgument)?;
    if path.trim_matches(' ').is_empty() {
        return Err(ParseError::MissingArgument);
    }
    Ok(Command::Mfmt { time, path })
}

/// `SITE CPFR <path>`, `SITE CPTO <path>`, `SITE CHMOD <octal> <path>`, `SITE HELP [topic]`.
fn site(arg: &str) -> Result<SiteCommand<'_>, ParseError> {
    let (word, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    let rest_opt = if rest.trim_matches(' ').is_empty() {
        None
    } else {
        Some(rest)
    };
    let need = || rest_opt.ok_or(ParseError::MissingArgument);
    if word.eq_ignore_ascii_case("CPFR") {
        Ok(SiteCommand::Cpfr(need()?))
    } else if word.eq_ignore_ascii_case("CPTO") {
        Ok(SiteCommand::Cpto(need()?))
    } else if word.eq_ignore_ascii_case("CHMOD") {
        let (mode, path) = need()?.split_once(' ').ok_or(ParseError::MissingArgument)?;
        if mode.is_empty() || mode.len() > 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(ParseError::BadArgument);
        }
        let mode = mode.bytes().fold(0u32, |m, b| m * 8 + u32::from(b - b'0'));
        if path.trim_matches(' ').is_empty() {
            return Err(ParseError::MissingArgument);
        }
        Ok(SiteCommand::Chmod { mode, path })
    } else if word.eq_ignore_ascii_case("HELP") {
        Ok(SiteCommand::Help(rest_opt))
    } else {
        Err(ParseError::UnsupportedParameter)
    }
}

/// `OPTS UTF8 ON|OFF` (RFC 2640), `OPTS MLST fact;...` (RFC 3659 §7.9).
fn opts(arg: &str) -> Result<OptsArg<'_>, ParseError> {
    let (word, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    if word.eq_ignore_ascii_case("UTF8") || word.eq_ignore_ascii_case("UTF-8") {
        match rest.trim_end_matches(' ') {
            r if r.eq_ignore_ascii_case("ON") => Ok(OptsArg::Utf8(true)),
            r if r.eq_ignore_ascii_case("OFF") => Ok(OptsArg::Utf8(false)),
            _ => Err(ParseError::BadArgument),
        }
    } else if word.eq_ignore_ascii_case("MLST") {
        Ok(OptsArg::Mlst(rest.trim_end_matches(' ')))
    } else {
        Err(ParseError::UnsupportedParameter)
    }
}

/// `LIST`/`NLST` arguments: words starting with `-` are `ls` options (`-a`, `-la`), the rest
/// is the path.
fn list_args(arg: &str) -> ListArgs<'_> {
    let mut end = 0;
    let mut rest = arg;
    while let Some(r) = rest.strip_prefix('-') {
        let word = r.find(' ').map_or(r.len(), |n| n) + 1;
        end = arg.len() - rest.len() + word;
        rest = rest[word..].trim_start_matches(' ');
    }
    let path = (!rest.trim_matches(' ').is_empty()).then_some(rest);
    ListArgs {
        options: &arg[..end],
        path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn ok(line: &str) -> Command<'_> {
        parse_command(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e:?}"))
    }

    fn err(line: &[u8]) -> u16 {
        parse_command(line)
            .map(|c| panic!("{line:?} parsed as {c:?}"))
            .unwrap_err()
            .reply_code()
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(ok("user alice"), Command::User("alice"));
        assert_eq!(ok("UsEr alice"), Command::User("alice"));
        assert_eq!(ok("xpwd"), Command::Pwd { x: true });
        assert_eq!(ok("noop"), Command::Noop);
    }

    #[test]
    fn known_answers() {
        let v4 = |a, b, c, d, p| SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), p);
        let cases: &[(&str, Command<'_>)] = &[
            ("PASS", Command::Pass("")),
            ("PASS ", Command::Pass("")),
            ("PASS sec ret", Command::Pass("sec ret")),
            (
                "CWD my dir",
                Command::Cwd {
                    path: "my dir",
                    x: false,
                },
            ),
            (
                "XCWD ..",
                Command::Cwd {
                    path: "..",
                    x: true,
                },
            ),
            (
                "XMKD new",
                Command::Mkd {
                    path: "new",
                    x: true,
                },
            ),
            (
                "XRMD new",
                Command::Rmd {
                    path: "new",
                    x: true,
                },
            ),
            ("XCUP", Command::Cdup { x: true }),
            ("TYPE A", Command::Type(DataType::Ascii)),
            ("TYPE a n", Command::Type(DataType::AsciiNonPrint)),
            ("TYPE I", Command::Type(DataType::Image)),
            ("TYPE L 8", Command::Type(DataType::Local8)),
            ("MODE S", Command::Mode(TransferMode::Stream)),
            ("STRU f", Command::Stru(FileStructure::File)),
            (
                "PORT 127,0,0,1,220,43",
                Command::Port(v4(127, 0, 0, 1, 56363)),
            ),
            (
                "EPRT |1|127.0.0.1|39497|",
                Command::Eprt(SocketAddr::V4(v4(127, 0, 0, 1, 39497))),
            ),
            (
                "EPRT !2!::1!2121!",
                Command::Eprt("[::1]:2121".parse().unwrap()),
            ),
            ("EPSV", Command::Epsv(EpsvArg::Any)),
            ("EPSV 1", Command::Epsv(EpsvArg::V4)),
            ("EPSV 2", Command::Epsv(EpsvArg::V6)),
            ("EPSV all", Command::Epsv(EpsvArg::All)),
            ("REST 100000", Command::Rest(100_000)),
            ("REST 18446744073709551615", Command::Rest(u64::MAX)),
            ("STOU", Command::Stou(None)),
            ("STOU base", Command::Stou(Some("base"))),
            ("ALLO 1024 R 128", Command::Allo("1024 R 128")),
            (
                "MFMT 20261122161138 a.bin",
                Command::Mfmt {
                    time: DateTime::parse_ftp("20261122161138").unwrap(),
                    path: "a.bin",
                },
            ),
            (
                "MFMT 20261122161138 with space",
                Command::Mfmt {
                    time: DateTime::parse_ftp("20261122161138").unwrap(),
                    path: "with space",
                },
            ),
            ("SITE CPFR a b", Command::Site(SiteCommand::Cpfr("a b"))),
            ("site cpto c", Command::Site(SiteCommand::Cpto("c"))),
            (
                "SITE CHMOD 644 ./b.txt",
                Command::Site(SiteCommand::Chmod {
                    mode: 0o644,
                    path: "./b.txt",
                }),
            ),
            ("SITE HELP", Command::Site(SiteCommand::Help(None))),
            (
                "LIST",
                Command::List(ListArgs {
                    options: "",
                    path: None,
                }),
            ),
            (
                "LIST -a",
                Command::List(ListArgs {
                    options: "-a",
                    path: None,
                }),
            ),
            (
                "LIST -la",
                Command::List(ListArgs {
                    options: "-la",
                    path: None,
                }),
            ),
            (
                "LIST -la dir",
                Command::List(ListArgs {
                    options: "-la",
                    path: Some("dir"),
                }),
            ),
            (
                "LIST -a -l my dir",
                Command::List(ListArgs {
                    options: "-a -l",
                    path: Some("my dir"),
                }),
            ),
            (
                "NLST *.txt",
                Command::Nlst(ListArgs {
                    options: "",
                    path: Some("*.txt"),
                }),
            ),
            (
                "NLST -l",
                Command::Nlst(ListArgs {
                    options: "-l",
                    path: None,
                }),
            ),
            ("MLSD", Command::Mlsd(None)),
            ("MLST /x", Command::Mlst(Some("/x"))),
            ("STAT", Command::Stat(None)),
            ("STAT /", Command::Stat(Some("/"))),
            ("OPTS UTF8 ON", Command::Opts(OptsArg::Utf8(true))),
            ("opts utf-8 off", Command::Opts(OptsArg::Utf8(false))),
            (
                "OPTS MLST type;perm;size;modify;unix.mode;unix.uid;unix.gid;",
                Command::Opts(OptsArg::Mlst(
                    "type;perm;size;modify;unix.mode;unix.uid;unix.gid;",
                )),
            ),
            ("OPTS MLST", Command::Opts(OptsArg::Mlst(""))),
            ("AUTH TLS", Command::Auth(AuthMechanism::Tls)),
            ("AUTH tls-c", Command::Auth(AuthMechanism::Tls)),
            ("AUTH SSL", Command::Auth(AuthMechanism::Ssl)),
            ("PBSZ 0", Command::Pbsz(0)),
            ("PROT P", Command::Prot(ProtLevel::Private)),
            ("PROT c", Command::Prot(ProtLevel::Clear)),
            ("HOST ftp.example.com", Command::Host("ftp.example.com")),
            ("HELP", Command::Help(None)),
            ("HELP RETR", Command::Help(Some("RETR"))),
            ("QUIT ", Command::Quit),
        ];
        for (line, want) in cases {
            assert_eq!(&ok(line), want, "{line:?}");
        }
    }

    #[test]
    fn errors_map_to_reply_codes() {
        let cases: &[(&[u8], u16)] = &[
            (b"", 500),
            (b"   ", 500),
            (b"FOO", 500),
            (b"FOOBAR x", 500),
            (b"NO", 500),
            (b"NOOPX", 500),
            (b" NOOP", 500),
            (b"N00P", 500),
            (b"\xff\xfe", 500),
            (b"SMNT /", 502),
            (b"CCC", 502),
            (b"LPRT 1,2", 502),
            (b"USER", 501),
            (b"CWD", 501),
            (b"CWD ", 501),
            (b"RETR", 501),
            (b"RETR \xff\xfe.txt", 501),
            (b"TYPE X", 501),
            (b"TYPE", 501),
            (b"TYPE A T", 504),
            (b"TYPE E", 504),
            (b"TYPE L 7", 504),
            (b"MODE Z", 501),
            (b"PORT 1,2,3,4,5", 501),
            (b"PORT 1,2,3,4,5,6,7", 501),
            (b"PORT 256,0,0,1,4,1", 501),
            (b"PORT -1,0,0,1,4,1", 501),
            (b"PORT 127,0,0,1,4,1x", 501),
            (b"PORT a,b,c,d,e,f", 501),
            (b"EPRT |3|1.2.3.4|5|", 522),
            (b"EPRT |1|::1|5|", 501),
            (b"EPRT |1|1.2.3.4|0|", 501),
            (b"EPRT |1|1.2.3.4|65536|", 501),
            (b"EPRT |1|1.2.3.4|5", 501),
            (b"EPRT |1|1.2.3.4|5|6|", 501),
            (b"EPRT  1|1.2.3.4|5 ", 501),
            (b"EPSV 3", 522),
            (b"EPSV foo", 501),
            (b"REST -1", 501),
            (b"REST 18446744073709551616", 501),
            (b"REST 12a", 501),
            (b"MFMT 2026 x", 501),
            (b"MFMT 20261122161138", 501),
            (b"SITE", 501),
            (b"SITE EXEC /bin/sh", 504),
            (b"SITE CHMOD 999 x", 501),
            (b"SITE CHMOD 77777 x", 501),
            (b"SITE CHMOD 644", 501),
            (b"SITE CPFR", 501),
            (b"OPTS", 501),
            (b"OPTS UTF8", 501),
            (b"OPTS MODE Z", 504),
            (b"AUTH GSSAPI", 504),
            (b"AUTH", 501),
            (b"PBSZ x", 501),
            (b"PROT X", 504),
        ];
        for &(line, code) in cases {
            assert_eq!(err(line), code, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn encode_roundtrips_known_commands() {
        for line in [
            "USER a",
            "PASS p w",
            "CWD x y",
            "TYPE L 8",
            "PORT 10,0,0,1,4,1",
            "EPRT |2|::1|21|",
            "EPSV ALL",
            "REST 5",
            "STOU",
            "MFMT 20261122161138 f",
            "SITE CHMOD 755 d",
            "LIST -la d",
            "NLST",
            "OPTS MLST size;",
            "AUTH TLS",
            "PROT P",
            "ALLO 5",
        ] {
            let c = ok(line);
            let mut s = String::new();
            c.encode(&mut s).unwrap();
            assert_eq!(s, line);
            assert_eq!(parse_command(s.as_bytes()), Ok(c));
        }
    }
}
