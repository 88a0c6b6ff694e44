//! The command workload shared by the micro-benchmarks (`benches/commands.rs`) and the
//! allocation test (`tests/allocations.rs`): a logged-in session fed control commands, its
//! storage requests answered at once, its replies encoded into a caller's buffer.
#![allow(dead_code, unreachable_pub)]

use core::net::SocketAddr;

use ferry_core::{
    Config, Event, FileKind, Instant, LoginInfo, Metadata, Outcome, Request, Session, StorageOp,
    StorageReply, UnixTime,
};

/// Control commands as clients send them (no data connection needed), CR LF included.
pub const COMMANDS: &[&str] = &[
    "NOOP\r\n",
    "PWD\r\n",
    "XPWD\r\n",
    "TYPE I\r\n",
    "TYPE A\r\n",
    "SYST\r\n",
    "MODE S\r\n",
    "STRU F\r\n",
    "OPTS UTF8 ON\r\n",
    "REST 4096\r\n",
    "CWD /pub/incoming\r\n",
    "CDUP\r\n",
    "SIZE /pub/big file.bin\r\n",
    "MDTM report.bin\r\n",
    "MLST report.bin\r\n",
    "FEAT\r\n",
];

/// Lines for the parser alone (no CR LF), one of each shape.
pub const LINES: &[&str] = &[
    "USER alice",
    "PASS correct horse battery staple",
    "CWD /pub/incoming/with spaces",
    "PORT 127,0,0,1,200,10",
    "EPRT |2|::1|50000|",
    "EPSV ALL",
    "TYPE L 8",
    "REST 1073741824",
    "RETR some/deep/path/file.bin",
    "MLSD",
    "LIST -la",
    "SITE CPFR a.txt",
    "OPTS MLST type;size;modify;",
    "MFMT 20261201120000 file.bin",
];

const NOW: Instant = Instant::from_micros(1_000_000);

/// A session past `USER`/`PASS`, its greeting and login replies drained.
pub fn logged_in() -> Session {
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:2121".parse().unwrap();
    let mut s = Session::new(Config::default(), peer, local, NOW);
    let mut out = [0u8; 4096];
    run(&mut s, b"USER alice\r\n", &mut out);
    run(&mut s, b"PASS secret\r\n", &mut out);
    assert_eq!(s.user(), Some("alice"));
    s
}

/// Feeds one whole command and carries out what it asks; returns the reply bytes written.
pub fn run(s: &mut Session, line: &[u8], out: &mut [u8]) -> usize {
    assert_eq!(
        s.handle_input(line, NOW),
        line.len(),
        "the session took the line"
    );
    let mut written = 0;
    while let Some(event) = s.poll_event() {
        match event {
            Event::Reply(reply) => written += reply.encode(out).expect("the buffer fits a reply"),
            Event::Request(Request::CheckLogin { id, .. }) => s.handle_outcome(
                Outcome::LoginChecked {
                    id,
                    result: Ok(LoginInfo::default()),
                },
                NOW,
            ),
            Event::Request(Request::Storage { id, op }) => {
                let kind = match &op {
                    StorageOp::Metadata(p) if p.as_str().ends_with(".bin") => FileKind::File,
                    _ => FileKind::Dir,
                };
                let meta = Metadata {
                    kind,
                    size: 1 << 20,
                    modified: Some(UnixTime(1_795_363_898)),
                    mode: Some(0o644),
                };
                s.handle_outcome(
                    Outcome::StorageDone {
                        id,
                        result: Ok(StorageReply::Metadata(meta)),
                    },
                    NOW,
                );
            }
            other => panic!("not in this workload: {other:?}"),
        }
    }
    written
}
