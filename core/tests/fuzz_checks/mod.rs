//! The checks behind Ferry's fuzz targets, as plain functions over the public API of
//! `ferry-core`. The targets in `fuzz/` call them with libFuzzer's input (they include this
//! file), and `core/tests/fuzz_regressions.rs` replays every file of `fuzz/corpus/` and
//! `fuzz/regressions/` through them on stable Rust, so a crash found once stays fixed.
#![allow(dead_code, unreachable_pub)]

use arbitrary::{Arbitrary, Unstructured};
use ferry_core::testing::{Frame, Framer, strip_telnet};
use ferry_core::{
    Config, DataError, Event, FileKind, Instant, LoginError, LoginInfo, Metadata, OpId, Outcome,
    ProxyParse, Request, Session, StorageError, StorageReply, TransferError, V1_MAX,
    V2_MAX_PAYLOAD, VirtualPath, parse_command, parse_proxy_header,
};

/// `command`: the parser never panics, and what it parses formats back to the same command.
pub fn command(data: &[u8]) {
    if let Ok(cmd) = parse_command(data) {
        let mut text = String::new();
        cmd.encode(&mut text).expect("encoding into a String");
        let again = parse_command(text.as_bytes());
        assert_eq!(
            again,
            Ok(cmd),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(data)
        );
    }
}

/// `proxy`: the PROXY header parser never panics, stays within its bounds, agrees with
/// itself on the header's own bytes, and no prefix of a header asks for a byte past it.
pub fn proxy(data: &[u8]) {
    let Ok(parsed) = parse_proxy_header(data) else {
        return;
    };
    match parsed {
        ProxyParse::Need(n) => assert!(n >= 1 && data.len() + n <= 16 + V2_MAX_PAYLOAD),
        ProxyParse::Header { len, .. } => {
            assert!(len <= data.len() && len <= (16 + V2_MAX_PAYLOAD).max(V1_MAX));
            assert_eq!(parse_proxy_header(&data[..len]), Ok(parsed));
            for k in 0..len {
                match parse_proxy_header(&data[..k]) {
                    Ok(ProxyParse::Need(n)) => assert!(k + n <= len, "{k} + {n} > {len}"),
                    other => panic!("prefix of {k} of a {len}-byte header: {other:?}"),
                }
            }
        }
    }
}

/// `path`: `VirtualPath::join` agrees with a stack model and never leaves the root.
pub fn path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (base, input) = text.split_once('\u{1}').unwrap_or(("", text));
    let Ok(base) = VirtualPath::parse(base) else {
        return;
    };
    let model = {
        let mut stack: Vec<&str> = if input.starts_with(['/', '\\']) {
            Vec::new()
        } else {
            base.segments().collect()
        };
        for seg in input.split(['/', '\\']) {
            match seg {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                s => stack.push(s),
            }
        }
        format!("/{}", stack.join("/"))
    };
    match base.join(input) {
        Ok(p) => {
            assert_eq!(p.as_str(), model, "{base} + {input:?}");
            assert!(p.segments().all(|s| !s.is_empty() && s != "." && s != ".."));
            assert_eq!(
                VirtualPath::parse(p.as_str()).as_ref(),
                Ok(&p),
                "idempotent"
            );
        }
        Err(ferry_core::PathError::ControlCharacter) => {
            assert!(input.bytes().any(|b| b < 0x20 || b == 0x7f));
        }
        Err(ferry_core::PathError::TooLong) => {
            assert!(
                model.len() > ferry_core::limits::MAX_PATH
                    || input.len() > ferry_core::limits::MAX_PATH / 2
            );
        }
    }
}

/// The reference framer: split at LF, drop one CR before it, lines over `max` are `None`.
fn reference_lines(bytes: &[u8], max: usize) -> (Vec<Option<Vec<u8>>>, usize) {
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        if piece.last() != Some(&b'\n') {
            break;
        }
        consumed += piece.len();
        let line = &piece[..piece.len() - 1];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push((line.len() <= max).then(|| line.to_vec()));
    }
    (out, consumed)
}

/// The reference telnet filter.
fn reference_telnet(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        match (line[i], line.get(i + 1)) {
            (0xFF, Some(0xFF)) => {
                out.push(0xFF);
                i += 2;
            }
            (0xFF, Some(251..=254)) => i += 3,
            (0xFF, Some(240..=250)) => i += 2,
            (0xFF, _) => i += 1,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `framing`: fed in chunks of any size, through a buffer that never exceeds the framer's
/// capacity, the framer finds the same lines as the reference, and the telnet filter agrees
/// with its reference.
pub fn framing(data: &[u8]) {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let max = 8 + usize::from(seed % 64);
    let cap = Framer::input_capacity(max);
    let mut chunks = bytes.iter().map(|&b| 1 + usize::from(b % 17)).cycle();
    let mut framer = Framer::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut got: Vec<Option<Vec<u8>>> = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = chunks
            .next()
            .unwrap_or(1)
            .min(bytes.len() - pos)
            .min(cap - buf.len());
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        loop {
            let (frame, used) = framer.next(&buf, max);
            assert!(used <= buf.len());
            let stop = matches!(frame, Frame::Incomplete);
            match frame {
                Frame::Line(l) => {
                    assert!(l.len() <= max);
                    got.push(Some(l.to_vec()));
                }
                Frame::TooLong => got.push(None),
                Frame::Incomplete => {}
            }
            buf.drain(..used);
            if stop {
                break;
            }
        }
        assert!(
            buf.len() < cap || framer.is_skipping(),
            "the buffer must never fill with no progress"
        );
    }
    let (want, _) = reference_lines(bytes, max);
    assert_eq!(got, want);
    for line in want.into_iter().flatten() {
        let mut scratch = vec![0u8; line.len()];
        assert_eq!(
            strip_telnet(&line, &mut scratch),
            reference_telnet(&line).as_slice()
        );
    }
}

/// One step of a fuzzed conversation.
#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes from the client.
    Bytes(Vec<u8>),
    /// A well-formed command line, to reach deep states.
    Line(u8, String),
    /// Answer the pending request.
    Answer(Answer),
    /// An outcome with an id the session never issued.
    Stale(u32),
    /// Time passes.
    Wait(u16),
    /// The server stops.
    Shutdown,
}

#[derive(Debug, Arbitrary)]
enum Answer {
    Ok,
    Fail(u8),
}

const VERBS: [&str; 48] = [
    "USER bench",
    "PASS secret",
    "PASS wrong",
    "QUIT",
    "PWD",
    "XPWD",
    "CWD",
    "CDUP",
    "TYPE I",
    "TYPE A",
    "MODE S",
    "STRU F",
    "PORT 127,0,0,1,4,1",
    "PASV",
    "EPRT |1|127.0.0.1|2000|",
    "EPSV",
    "EPSV ALL",
    "REST 10",
    "RETR",
    "STOR",
    "STOU",
    "APPE",
    "DELE",
    "RNFR",
    "RNTO",
    "SIZE",
    "MDTM",
    "MFMT 20261122161138",
    "MKD",
    "RMD",
    "SITE CPFR",
    "SITE CPTO",
    "SITE CHMOD 644",
    "LIST -la",
    "NLST",
    "MLSD",
    "MLST",
    "STAT",
    "FEAT",
    "OPTS MLST size;",
    "NOOP",
    "ABOR",
    "HOST h",
    "AUTH TLS",
    "PBSZ 0",
    "PROT P",
    "REIN",
    "HELP",
];

fn storage_error(n: u8) -> StorageError {
    [
        StorageError::NotFound,
        StorageError::PermissionDenied,
        StorageError::AlreadyExists,
        StorageError::NotEmpty,
        StorageError::NoSpace,
        StorageError::BadName,
        StorageError::NotAFile,
        StorageError::NotADirectory,
        StorageError::Other,
    ][usize::from(n) % 9]
}

/// Checks a reply as it goes on the wire: three digits, a space or a dash, lines ending in
/// CR LF with none inside, and a multi-line reply ending in its code and a space.
fn check_reply(r: &ferry_core::Reply) {
    let text = r.to_string();
    let b = text.as_bytes();
    assert!(
        b.len() >= 6 && b[..3].iter().all(u8::is_ascii_digit),
        "{text:?}"
    );
    assert!(b[3] == b' ' || b[3] == b'-', "{text:?}");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert!(lines.iter().all(|l| !l.contains(['\r', '\n'])), "{text:?}");
    if b[3] == b'-' && !r.is_opening() {
        let last = lines.last().unwrap();
        assert!(
            lines.len() >= 2 && last.starts_with(&text[..3]) && last.as_bytes()[3] == b' ',
            "{text:?}"
        );
    }
}

/// `session`: arbitrary conversations (bytes, commands, outcomes, time) never panic the
/// session; every reply is well-formed; output per step is bounded; at most one request is
/// outstanding; and a closed session stays closed.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = Config {
        max_line: 64,
        ..Config::default()
    };
    let peer = "127.0.0.1:40000".parse().unwrap();
    let local = "127.0.0.1:2121".parse().unwrap();
    let mut now = 1_000_000u64;
    let mut s = Session::new(config, peer, local, Instant::from_micros(now));
    let mut buf: Vec<u8> = Vec::new();
    // The request waiting for an outcome, and whether a transfer was opened.
    let mut pending: Option<(OpId, &'static str)> = None;
    let mut opened = false;
    let mut closed = false;
    let drain = |s: &mut Session, pending: &mut Option<(OpId, &'static str)>, closed: &mut bool| {
        let mut n = 0;
        while let Some(e) = s.poll_event() {
            n += 1;
            assert!(n <= 8, "too many events for one step");
            let request = match e {
                Event::Reply(r) => {
                    assert!(!*closed, "reply after close");
                    check_reply(&r);
                    None
                }
                Event::Request(request) => match request {
                    Request::Close => {
                        *closed = true;
                        assert!(s.is_closed());
                        None
                    }
                    Request::CheckLogin { id, .. } => Some((id, "login")),
                    Request::Storage { id, .. } => Some((id, "storage")),
                    Request::OpenPassive { id, .. } => Some((id, "passive")),
                    Request::Transfer(t) => Some((t.id, "transfer")),
                    Request::StartTls => Some((OpId(0), "tls")),
                    Request::Abort { id } => {
                        assert_eq!(
                            pending.map(|p| p.0),
                            Some(id),
                            "abort of a transfer that is not running"
                        );
                        None
                    }
                    Request::ClosePassive => None,
                },
            };
            if let Some(r) = request {
                assert!(
                    pending.is_none(),
                    "a second request while one is pending: {r:?} after {pending:?}"
                );
                *pending = Some(r);
            }
        }
    };
    drain(&mut s, &mut pending, &mut closed);
    while !u.is_empty() {
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        let t = Instant::from_micros(now);
        match step {
            Step::Bytes(b) => buf.extend_from_slice(&b),
            Step::Line(v, arg) => {
                buf.extend_from_slice(VERBS[usize::from(v) % VERBS.len()].as_bytes());
                if !arg.is_empty() {
                    buf.push(b' ');
                    buf.extend_from_slice(arg.as_bytes());
                }
                buf.extend_from_slice(b"\r\n");
            }
            Step::Answer(a) => {
                if let Some((id, kind)) = pending {
                    let ok = matches!(a, Answer::Ok);
                    let code = match a {
                        Answer::Fail(c) => c,
                        Answer::Ok => 0,
                    };
                    let outcome = match kind {
                        "login" => Outcome::LoginChecked {
                            id,
                            result: if ok {
                                Ok(LoginInfo {
                                    read_only: code % 2 == 1,
                                })
                            } else {
                                Err(LoginError::Rejected)
                            },
                        },
                        "storage" => Outcome::StorageDone {
                            id,
                            result: if ok {
                                Ok(if code % 2 == 0 {
                                    StorageReply::Done
                                } else {
                                    StorageReply::Metadata(Metadata {
                                        kind: FileKind::Dir,
                                        size: 0,
                                        modified: None,
                                        mode: None,
                                    })
                                })
                            } else {
                                Err(storage_error(code))
                            },
                        },
                        "passive" => Outcome::PassiveOpened {
                            id,
                            result: if ok {
                                Ok("127.0.0.1:40001".parse().unwrap())
                            } else {
                                Err(DataError)
                            },
                        },
                        "transfer" if ok && !opened => {
                            opened = true;
                            Outcome::TransferOpened {
                                id,
                                size: Some(u64::from(code)),
                            }
                        }
                        "transfer" => Outcome::TransferFinished {
                            id,
                            result: if ok {
                                Ok(7)
                            } else {
                                Err(TransferError::Storage(storage_error(code)))
                            },
                        },
                        _ => {
                            if ok {
                                Outcome::TlsEstablished
                            } else {
                                Outcome::TlsFailed
                            }
                        }
                    };
                    let finished = !matches!(outcome, Outcome::TransferOpened { .. });
                    s.handle_outcome(outcome, t);
                    if finished {
                        pending = None;
                        opened = false;
                    }
                }
            }
            Step::Stale(id) => {
                let id = OpId(id.wrapping_add(1 << 31));
                s.handle_outcome(
                    Outcome::StorageDone {
                        id,
                        result: Ok(StorageReply::Done),
                    },
                    t,
                );
                s.handle_outcome(Outcome::TransferFinished { id, result: Ok(1) }, t);
            }
            Step::Wait(ms) => {
                now += u64::from(ms) * 1000;
                s.handle_timeout(Instant::from_micros(now));
                // A timeout never ends a pending request on its own.
            }
            Step::Shutdown => s.handle_shutdown(),
        }
        drain(&mut s, &mut pending, &mut closed);
        // Offer the input as a runtime would, one command at a time.
        let cap = s.input_capacity();
        loop {
            let used = s.handle_input(&buf, Instant::from_micros(now));
            assert!(used <= buf.len());
            buf.drain(..used);
            drain(&mut s, &mut pending, &mut closed);
            if used == 0 || buf.is_empty() {
                break;
            }
        }
        // A runtime reads no more than its buffer holds.
        buf.truncate(cap);
        if closed {
            assert!(s.is_closed());
            assert_eq!(s.poll_timeout(), None);
        }
    }
}
