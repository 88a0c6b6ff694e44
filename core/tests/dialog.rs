//! One whole conversation (login, PASV, STOR, LIST, RNFR/RNTO, DELE, QUIT), checked event by
//! event and byte by byte, with no socket at all.

use std::net::SocketAddr;

use ferry_core::{
    Config, DataChannel, Event, Family, Instant, ListFormat, LoginInfo, OpId, Outcome, Request,
    Session, StorageOp, StorageReply, Transfer, TransferKind, VirtualPath, WriteMode,
};

/// Drains the session: every event, replies rendered as wire text.
fn drain(s: &mut Session) -> Vec<String> {
    std::iter::from_fn(|| s.poll_event())
        .map(|e| match e {
            Event::Reply(r) => r.to_string(),
            Event::Request(other) => format!("{other:?}"),
        })
        .collect()
}

/// The next event, which must be a request (or nothing).
fn request(s: &mut Session) -> Option<Request> {
    match s.poll_event()? {
        Event::Request(r) => Some(r),
        Event::Reply(r) => panic!("a reply where a request was due: {r}"),
    }
}

fn send(s: &mut Session, line: &str, now: Instant) -> Vec<String> {
    let bytes = format!("{line}\r\n");
    assert_eq!(s.handle_input(bytes.as_bytes(), now), bytes.len());
    drain(s)
}

fn vp(p: &str) -> VirtualPath {
    VirtualPath::parse(p).unwrap()
}

#[test]
fn a_whole_conversation() {
    let peer: SocketAddr = "192.0.2.7:53000".parse().unwrap();
    let local: SocketAddr = "192.0.2.1:21".parse().unwrap();
    let t0 = Instant::from_micros(0);
    let mut s = Session::new(Config::default(), peer, local, t0);
    assert_eq!(drain(&mut s), ["220 Ferry FTP server ready.\r\n"]);
    assert_eq!(s.poll_timeout(), Some(Instant::from_micros(300_000_000)));

    let now = Instant::from_micros(1_000);
    assert_eq!(
        send(&mut s, "USER alice", now),
        ["331 Please specify the password.\r\n"]
    );
    assert_eq!(s.handle_input(b"PASS pw\r\n", now), 9);
    let Some(Request::CheckLogin { id, user, password }) = request(&mut s) else {
        panic!()
    };
    assert_eq!(
        (id, user.as_str(), password.expose().as_str()),
        (OpId(1), "alice", "pw")
    );
    assert!(s.poll_event().is_none());
    // Nothing is taken while the login is checked.
    assert_eq!(s.handle_input(b"PASV\r\n", now), 0);
    s.handle_outcome(
        Outcome::LoginChecked {
            id,
            result: Ok(LoginInfo::default()),
        },
        now,
    );
    assert_eq!(drain(&mut s), ["230 Login successful.\r\n"]);
    assert_eq!(s.user(), Some("alice"));

    assert_eq!(s.handle_input(b"PASV\r\n", now), 6);
    let Some(Request::OpenPassive {
        id,
        family: Family::V4,
    }) = request(&mut s)
    else {
        panic!()
    };
    s.handle_outcome(
        Outcome::PassiveOpened {
            id,
            result: Ok("192.0.2.1:50001".parse().unwrap()),
        },
        now,
    );
    assert_eq!(
        drain(&mut s),
        ["227 Entering Passive Mode (192,0,2,1,195,81).\r\n"]
    );

    assert_eq!(
        send(&mut s, "TYPE I", now),
        ["200 Switching to Binary mode.\r\n"]
    );
    assert_eq!(s.handle_input(b"STOR notes.txt\r\n", now), 16);
    let Some(Request::Transfer(t)) = request(&mut s) else {
        panic!()
    };
    assert_eq!(
        t,
        Transfer {
            id: OpId(3),
            kind: TransferKind::Store {
                path: vp("/notes.txt"),
                mode: WriteMode::Replace
            },
            channel: DataChannel::Passive,
            ascii: false,
            protected: false,
        }
    );
    s.handle_outcome(
        Outcome::TransferOpened {
            id: t.id,
            size: None,
        },
        now,
    );
    assert_eq!(
        drain(&mut s),
        ["150 Opening BINARY mode data connection.\r\n"]
    );
    s.handle_outcome(
        Outcome::TransferFinished {
            id: t.id,
            result: Ok(11),
        },
        now,
    );
    assert_eq!(drain(&mut s), ["226 Transfer complete (11 bytes).\r\n"]);

    assert_eq!(s.handle_input(b"EPSV\r\n", now), 6);
    let Some(Request::OpenPassive { id, .. }) = request(&mut s) else {
        panic!()
    };
    s.handle_outcome(
        Outcome::PassiveOpened {
            id,
            result: Ok("192.0.2.1:50002".parse().unwrap()),
        },
        now,
    );
    assert_eq!(
        drain(&mut s),
        ["229 Entering Extended Passive Mode (|||50002|).\r\n"]
    );
    assert_eq!(s.handle_input(b"LIST -l\r\n", now), 9);
    let Some(Request::Transfer(t)) = request(&mut s) else {
        panic!()
    };
    let TransferKind::List(l) = &t.kind else {
        panic!()
    };
    assert_eq!((l.path.as_str(), l.format), ("/", ListFormat::Long));
    s.handle_outcome(
        Outcome::TransferOpened {
            id: t.id,
            size: None,
        },
        now,
    );
    s.handle_outcome(
        Outcome::TransferFinished {
            id: t.id,
            result: Ok(70),
        },
        now,
    );
    assert_eq!(
        drain(&mut s),
        [
            "150 Here comes the directory listing.\r\n",
            "226 Directory send OK.\r\n"
        ]
    );

    assert_eq!(s.handle_input(b"RNFR notes.txt\r\n", now), 16);
    let Some(Request::Storage { id, op }) = request(&mut s) else {
        panic!()
    };
    assert_eq!(op, StorageOp::Metadata(vp("/notes.txt")));
    let meta = ferry_core::Metadata {
        kind: ferry_core::FileKind::File,
        size: 11,
        modified: None,
        mode: None,
    };
    s.handle_outcome(
        Outcome::StorageDone {
            id,
            result: Ok(StorageReply::Metadata(meta)),
        },
        now,
    );
    assert_eq!(drain(&mut s), ["350 Ready for RNTO.\r\n"]);
    assert_eq!(s.handle_input(b"RNTO old notes.txt\r\n", now), 20);
    let Some(Request::Storage { id, op }) = request(&mut s) else {
        panic!()
    };
    assert_eq!(
        op,
        StorageOp::Rename {
            from: vp("/notes.txt"),
            to: vp("/old notes.txt")
        }
    );
    s.handle_outcome(
        Outcome::StorageDone {
            id,
            result: Ok(StorageReply::Done),
        },
        now,
    );
    assert_eq!(drain(&mut s), ["250 Rename successful.\r\n"]);

    assert_eq!(s.handle_input(b"DELE old notes.txt\r\n", now), 20);
    let Some(Request::Storage { id, op }) = request(&mut s) else {
        panic!()
    };
    assert_eq!(op, StorageOp::RemoveFile(vp("/old notes.txt")));
    s.handle_outcome(
        Outcome::StorageDone {
            id,
            result: Ok(StorageReply::Done),
        },
        now,
    );
    assert_eq!(drain(&mut s), ["250 File deleted.\r\n"]);

    assert_eq!(send(&mut s, "QUIT", now), ["221 Goodbye.\r\n", "Close"]);
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
}
