//! Properties over arbitrary input (proptest): the parser and the session never panic, what
//! is formatted parses back, chunking does not matter, and paths never leave the root.

mod harness;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use ferry_core::{
    AuthMechanism, Command, Config, DataType, DateTime, EpsvArg, FileStructure, ListArgs, OptsArg,
    ProtLevel, SiteCommand, TransferMode, UnixTime, VirtualPath, parse_command,
};
use harness::{H, check_reply};
use proptest::prelude::*;

/// Owned material for a command, so that the strategy can build one borrowing from it.
#[derive(Debug, Clone)]
struct Material {
    which: u8,
    text: String,
    n: u64,
    addr: SocketAddr,
    x: bool,
    mode: u32,
    time: i64,
}

fn arg_text() -> impl Strategy<Value = String> {
    // No control characters; does not start with a space or '-' (those are options for
    // LIST/NLST) and is not only spaces.
    "[a-zA-Z0-9._~#äé\u{4e2d}][a-zA-Z0-9 ._/\\\\*?\"'~#äé\u{4e2d}-]{0,30}"
}

fn material() -> impl Strategy<Value = Material> {
    (
        0u8..60,
        arg_text(),
        any::<u64>(),
        prop_oneof![
            any::<(u32, u16)>().prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(ip),
                port.max(1)
            ))),
            any::<(u128, u16)>().prop_map(|(ip, port)| SocketAddr::new(
                std::net::Ipv6Addr::from(ip).into(),
                port.max(1)
            )),
        ],
        any::<bool>(),
        0u32..=0o7777,
        0i64..4_000_000_000,
    )
        .prop_map(|(which, text, n, addr, x, mode, time)| Material {
            which,
            text,
            n,
            addr,
            x,
            mode,
            time,
        })
}

const TYPES: [DataType; 4] = [
    DataType::Ascii,
    DataType::AsciiNonPrint,
    DataType::Image,
    DataType::Local8,
];
const MODES: [TransferMode; 3] = [
    TransferMode::Stream,
    TransferMode::Block,
    TransferMode::Compressed,
];
const STRUCTURES: [FileStructure; 3] = [
    FileStructure::File,
    FileStructure::Record,
    FileStructure::Page,
];
const EPSV_ARGS: [EpsvArg; 4] = [EpsvArg::Any, EpsvArg::V4, EpsvArg::V6, EpsvArg::All];
const PROT_LEVELS: [ProtLevel; 4] = [
    ProtLevel::Clear,
    ProtLevel::Safe,
    ProtLevel::Confidential,
    ProtLevel::Private,
];

/// One of `options`, chosen by `n`.
fn pick<T: Copy>(options: &[T], n: u64) -> T {
    options[(n % options.len() as u64) as usize]
}

fn build(m: &Material) -> Command<'_> {
    let t = m.text.as_str();
    let v4 = match m.addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2000),
    };
    match m.which {
        0 => Command::User(t),
        1 => Command::Pass(t),
        2 => Command::Acct(t),
        3 => Command::Rein,
        4 => Command::Quit,
        5 => Command::Pwd { x: m.x },
        6 => Command::Cwd { path: t, x: m.x },
        7 => Command::Cdup { x: m.x },
        8 => Command::Type(pick(&TYPES, m.n)),
        9 => Command::Mode(pick(&MODES, m.n)),
        10 => Command::Stru(pick(&STRUCTURES, m.n)),
        11 => Command::Port(v4),
        12 => Command::Pasv,
        13 => Command::Eprt(m.addr),
        14 => Command::Epsv(pick(&EPSV_ARGS, m.n)),
        15 => Command::Rest(m.n),
        16 => Command::Retr(t),
        17 => Command::Stor(t),
        18 => Command::Stou(m.x.then_some(t)),
        19 => Command::Appe(t),
        20 => Command::Allo(if m.x { t } else { "" }),
        21 => Command::Dele(t),
        22 => Command::Rnfr(t),
        23 => Command::Rnto(t),
        24 => Command::Size(t),
        25 => Command::Mdtm(t),
        26 => Command::Mfmt {
            time: UnixTime(m.time).to_datetime(),
            path: t,
        },
        27 => Command::Mkd { path: t, x: m.x },
        28 => Command::Rmd { path: t, x: m.x },
        29 => Command::Site(SiteCommand::Cpfr(t)),
        30 => Command::Site(SiteCommand::Cpto(t)),
        31 => Command::Site(SiteCommand::Chmod {
            mode: m.mode,
            path: t,
        }),
        32 => Command::Site(SiteCommand::Help(m.x.then_some(t))),
        33 => Command::List(ListArgs {
            options: if m.x { "-la" } else { "" },
            path: Some(t),
        }),
        34 => Command::Nlst(ListArgs {
            options: if m.x { "-a -l" } else { "" },
            path: m.n.is_multiple_of(2).then_some(t),
        }),
        35 => Command::Mlsd(m.x.then_some(t)),
        36 => Command::Mlst(m.x.then_some(t)),
        37 => Command::Stat(m.x.then_some(t)),
        38 => Command::Feat,
        39 => Command::Opts(OptsArg::Utf8(m.x)),
        40 => Command::Opts(OptsArg::Mlst(if m.x { "type;size;" } else { "" })),
        41 => Command::Syst,
        42 => Command::Help(m.x.then_some(t)),
        43 => Command::Noop,
        44 => Command::Abor,
        45 => Command::Host(t),
        46 => Command::Auth(if m.x {
            AuthMechanism::Tls
        } else {
            AuthMechanism::Ssl
        }),
        47 => Command::Pbsz(m.n),
        48 => Command::Prot(pick(&PROT_LEVELS, m.n)),
        _ => Command::List(ListArgs {
            options: "",
            path: None,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The parser is total: any bytes give a command or an error, never a panic.
    #[test]
    fn parser_is_total(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_command(&line);
    }

    /// Also for lines that start with a real verb.
    #[test]
    fn parser_is_total_on_verbs(verb in "(USER|PASS|PORT|EPRT|EPSV|TYPE|REST|MFMT|SITE|OPTS|LIST|NLST|AUTH|PROT|PBSZ|MODE|STRU|CWD) ?", rest in proptest::collection::vec(any::<u8>(), 0..60)) {
        let mut line = verb.into_bytes();
        line.extend(rest);
        let _ = parse_command(&line);
    }

    /// Formatting then parsing a command gives it back.
    #[test]
    fn encode_then_parse_roundtrips(m in material()) {
        let cmd = build(&m);
        let mut s = String::new();
        cmd.encode(&mut s).unwrap();
        prop_assert_eq!(parse_command(s.as_bytes()), Ok(cmd), "{}", s);
    }

    /// `MFMT` times survive the trip through text.
    #[test]
    fn datetimes_roundtrip(t in -62_135_596_800i64..253_402_300_799) {
        let dt = UnixTime(t).to_datetime();
        let s = dt.to_string();
        prop_assert_eq!(DateTime::parse_ftp(&s), Some(dt));
        prop_assert_eq!(dt.to_unix(), UnixTime(t));
    }

    /// The session never panics on arbitrary bytes, answers with well-formed replies, and
    /// keeps its input use bounded.
    #[test]
    fn session_survives_arbitrary_bytes(
        chunks in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                "(USER bench|PASS secret|PASS ok|PWD|CWD ..|MKD d|PASV|EPSV|LIST|RETR up.bin|STOR x|ABOR|REST 5|RNFR x|RNTO y|QUIT|NOOP|STAT /|AUTH TLS|PBSZ 0|PROT P|TYPE A|PORT 127,0,0,1,4,1|EPRT |1|127.0.0.1|2000|)\r\n".prop_map(String::into_bytes),
            ],
            0..40,
        )
    ) {
        let mut h = H::auto();
        h.fake.as_mut().unwrap().tree.insert("/up.bin".into(), (ferry_core::FileKind::File, 3));
        for c in &chunks {
            h.feed(c);
            prop_assert!(h.input.len() <= h.s.input_capacity());
            for r in h.replies.drain(..) {
                check_reply(&r);
            }
            if h.closed {
                break;
            }
        }
    }

    /// Splitting one byte stream at arbitrary points gives the same replies.
    #[test]
    fn chunking_does_not_matter(
        script in proptest::collection::vec("(USER bench|PASS secret|PWD|MKD a b|CWD a b|CDUP|PASV|LIST|NLST *.bin|SIZE up.bin|TYPE I|RETR up.bin|FOO|\u{ff}\u{fe}|REST 9|STOR z|RNFR z|RNTO w|DELE w)\r?\n", 1..25),
        cuts in proptest::collection::vec(1usize..12, 1..50),
    ) {
        let bytes: Vec<u8> = script.concat().into_bytes();
        let run = |cuts: &[usize]| {
            let mut h = H::auto();
            h.fake.as_mut().unwrap().tree.insert("/up.bin".into(), (ferry_core::FileKind::File, 3));
            let mut rest = &bytes[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts.get(i).copied().unwrap_or(rest.len()).min(rest.len());
                h.feed(&rest[..n]);
                rest = &rest[n..];
                i += 1;
            }
            h.replies.into_iter().collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&cuts), run(&[usize::MAX]));
    }

    /// A normalised path is absolute, has no `.`, `..` or empty segments, never ends in `/`
    /// (unless it is `/`), equals a simple stack model, and normalising again changes nothing.
    #[test]
    fn virtual_paths_are_normal_and_jailed(
        base in proptest::collection::vec("(a|b|\\.\\.|\\.|c d|é)", 0..6),
        input in proptest::collection::vec("(a|b|\\.\\.|\\.|||c d|\\.\\.\\.|x\\\\y|\\\\|/)", 0..12),
    ) {
        let base = VirtualPath::parse(&base.join("/")).unwrap();
        let input = input.join("/");
        let got = base.join(&input).unwrap();
        let s = got.as_str();
        prop_assert!(s.starts_with('/'));
        prop_assert!(s == "/" || !s.ends_with('/'));
        prop_assert!(!s.contains("//") && !s.contains('\\'));
        for seg in got.segments() {
            prop_assert!(seg != "." && seg != ".." && !seg.is_empty());
        }
        // The model: a stack of segments that `..` pops and never goes below empty.
        let mut stack: Vec<&str> = if input.starts_with(['/', '\\']) { vec![] } else { base.segments().collect() };
        for seg in input.split(['/', '\\']) {
            match seg {
                "" | "." => {}
                ".." => { stack.pop(); }
                s => stack.push(s),
            }
        }
        let model = format!("/{}", stack.join("/"));
        prop_assert_eq!(s, model.as_str());
        prop_assert_eq!(VirtualPath::parse(s).unwrap(), got.clone());
        prop_assert_eq!(VirtualPath::root().join(s).unwrap(), got);
    }

    /// Arbitrary strings either normalise under the root or are refused; never a panic.
    #[test]
    fn arbitrary_strings_never_escape(input in ".{0,300}") {
        match VirtualPath::parse(&input) {
            Ok(p) => {
                prop_assert!(p.as_str().starts_with('/'));
                prop_assert!(p.segments().all(|s| s != ".." && s != "."));
            }
            Err(_) => prop_assert!(input.chars().any(char::is_control) || input.len() > 4000),
        }
    }
}

#[test]
fn config_limits_are_clamped() {
    let config = Config {
        max_line: 1 << 30,
        ..Config::default()
    };
    let h = H::with_config(config);
    assert_eq!(h.s.input_capacity(), Config::MAX_LINE_LIMIT + 2);
}

proptest! {
    /// The hand-written number formatting of listings equals `format!`'s.
    #[test]
    fn listing_lines_match_the_format_reference(
        size in any::<u64>(),
        t in 0i64..20_000_000_000,
        now in 0i64..20_000_000_000,
        mode in 0u32..0o7777,
        dir in any::<bool>(),
        name in "[a-z0-9 ._-]{1,20}",
    ) {
        use ferry_core::{Entry, Facts, FileKind, ListFormat, ListRequest, Metadata};
        let request = |format| ListRequest {
            path: VirtualPath::root(),
            format,
            pattern: None,
            typed: None,
            writable: true,
        };
        let kind = if dir { FileKind::Dir } else { FileKind::File };
        let meta = Metadata { kind, size, modified: Some(UnixTime(t)), mode: Some(mode) };
        let entry = Entry { name: &name, meta };
        let mut got = String::new();
        assert!(request(ListFormat::Long).write_entry(&mut got, &entry, UnixTime(now)).unwrap());
        let shown = if dir && size == 0 { 4096 } else { size };
        let dt = UnixTime(t).to_datetime();
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][usize::from(dt.month - 1)];
        let when = if t > now - 183 * 86_400 && t <= now + 3600 {
            format!("{month} {:>2} {:02}:{:02}", dt.day, dt.hour, dt.minute)
        } else {
            format!("{month} {:>2} {:>5}", dt.day, dt.year)
        };
        prop_assert_eq!(&got[10..], format!("    1 ftp      ftp      {shown:>12} {when} {name}\r\n"));
        let mut got = String::new();
        assert!(request(ListFormat::Machine(Facts::ALL)).write_entry(&mut got, &entry, UnixTime(now)).unwrap());
        let size_fact = if dir { String::new() } else { format!("size={size};") };
        let kind_fact = if dir { "dir" } else { "file" };
        let perm = if dir { "cdeflmp" } else { "adfrw" };
        prop_assert_eq!(got, format!("type={kind_fact};{size_fact}modify={dt};perm={perm};unix.mode=0{mode:o}; {name}\r\n"));
    }
}
