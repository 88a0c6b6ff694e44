//! The session, command by command and reply path by reply path, with no socket.
#![allow(clippy::needless_pass_by_value)]

mod harness;

use std::time::Duration;

use ferry_core::{
    Config, DataChannel, Family, FileKind, ListFormat, LoginError, LoginInfo, Metadata, Outcome,
    Request, StorageError, StorageOp, StorageReply, TlsMode, TransferError, TransferKind, UnixTime,
    VirtualPath, WriteMode,
};
use harness::H;

fn p(s: &str) -> VirtualPath {
    VirtualPath::parse(s).unwrap()
}

fn file(size: u64) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size,
        modified: Some(UnixTime(1_795_363_898)),
        mode: None,
    }
}

fn dir() -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: Some(0o755),
    }
}

/// Expects a storage request `op`, answers it with `result`.
#[track_caller]
fn storage(h: &mut H, op: StorageOp, result: Result<StorageReply, StorageError>) {
    match h.event() {
        Request::Storage { id, op: got } => {
            assert_eq!(got, op);
            h.outcome(Outcome::StorageDone { id, result });
        }
        other => panic!("want storage {op:?}, got {other:?}"),
    }
}

/// Logs in and opens a passive listener.
fn ready() -> H {
    let mut h = H::new();
    h.login();
    pasv(&mut h);
    h
}

fn pasv(h: &mut H) {
    h.send("PASV");
    let Request::OpenPassive { id, family } = h.event() else {
        panic!("want OpenPassive")
    };
    assert_eq!(family, Family::V4);
    h.outcome(Outcome::PassiveOpened {
        id,
        result: Ok("127.0.0.1:40001".parse().unwrap()),
    });
    assert_eq!(
        h.reply(),
        "227 Entering Passive Mode (127,0,0,1,156,65).\r\n"
    );
}

#[track_caller]
fn transfer(h: &mut H) -> ferry_core::Transfer {
    match h.event() {
        Request::Transfer(t) => t,
        other => panic!("want transfer, got {other:?}"),
    }
}

#[test]
fn greeting_and_quit() {
    let mut h = H::new();
    assert_eq!(h.reply(), "220 Ferry FTP server ready.\r\n");
    h.cmd("QUIT", 221);
    assert!(h.closed);
    assert!(h.s.is_closed());
    // A closed session swallows input and says nothing.
    h.send("NOOP");
    h.quiet();
}

#[test]
fn login_success_and_user_getter() {
    let mut h = H::new();
    h.login();
    assert_eq!(h.s.user(), Some("bench"));
    h.cmd("PASS again", 202);
    h.cmd("USER other", 503);
}

#[test]
fn pass_before_user_is_a_bad_sequence() {
    let mut h = H::new();
    h.expect(220);
    h.cmd("PASS x", 503);
}

#[test]
fn commands_before_login_get_530() {
    let mut h = H::new();
    h.expect(220);
    for line in [
        "PWD",
        "CWD /",
        "CDUP",
        "LIST",
        "NLST",
        "MLSD",
        "MLST",
        "RETR a",
        "STOR a",
        "APPE a",
        "STOU",
        "DELE a",
        "RMD a",
        "MKD a",
        "XMKD a",
        "RNFR a",
        "RNTO b",
        "SITE CPFR a",
        "SITE CPTO b",
        "SITE CHMOD 644 a",
        "SIZE a",
        "MDTM a",
        "MFMT 20261122161138 a",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,4,1",
        "EPRT |1|127.0.0.1|1025|",
        "REST 1",
        "TYPE I",
        "MODE S",
        "STRU F",
        "STAT",
        "ABOR",
        "ALLO 1",
        "ACCT x",
        "REIN",
        "XPWD",
    ] {
        h.cmd(line, 530);
    }
    h.quiet();
    // These work before login.
    for (line, code) in [
        ("FEAT", 211),
        ("SYST", 215),
        ("HELP", 214),
        ("NOOP", 200),
        ("OPTS UTF8 ON", 200),
        ("HOST example.com", 220),
        ("PBSZ 0", 503),
        ("PROT P", 503),
    ] {
        h.cmd(line, code);
    }
}

#[test]
fn failed_logins_are_delayed_growing_then_cut_off() {
    let mut h = H::new();
    h.expect(220);
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        h.cmd("USER bench", 331);
        h.send("PASS wrong");
        let Request::CheckLogin { id, user, password } = h.event() else {
            panic!()
        };
        assert_eq!(user.as_str(), "bench");
        assert_eq!(format!("{password:?}"), "Secret(..)");
        h.outcome(Outcome::LoginChecked {
            id,
            result: Err(LoginError::Rejected),
        });
        // The 530 is held back until the delay passes, and no input is taken meanwhile.
        h.quiet();
        let deadline = h.s.poll_timeout().unwrap();
        let delay = deadline.saturating_duration_since(h.now);
        delays.push(delay);
        h.send("NOOP");
        h.quiet();
        h.advance(delay - Duration::from_millis(1));
        h.quiet();
        h.advance(Duration::from_millis(1));
        h.expect(530);
        if attempt < 3 {
            // The NOOP sent during the delay runs now.
            h.expect(200);
            assert!(!h.closed);
        }
    }
    assert_eq!(
        delays,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    h.expect(421);
    assert!(h.closed);
}

#[test]
fn login_service_unavailable_closes() {
    let mut h = H::new();
    h.expect(220);
    h.cmd("USER bench", 331);
    h.send("PASS x");
    let Request::CheckLogin { id, .. } = h.event() else {
        panic!()
    };
    h.outcome(Outcome::LoginChecked {
        id,
        result: Err(LoginError::Unavailable),
    });
    h.expect(421);
    assert!(h.closed);
}

#[test]
fn stale_outcomes_are_ignored() {
    let mut h = H::new();
    h.expect(220);
    h.cmd("USER bench", 331);
    h.send("PASS secret");
    let Request::CheckLogin { id, .. } = h.event() else {
        panic!()
    };
    let stale = ferry_core::OpId(id.0 + 7);
    h.outcome(Outcome::LoginChecked {
        id: stale,
        result: Ok(LoginInfo::default()),
    });
    h.outcome(Outcome::StorageDone {
        id,
        result: Ok(StorageReply::Done),
    });
    h.outcome(Outcome::TlsEstablished);
    h.quiet();
    h.outcome(Outcome::LoginChecked {
        id,
        result: Ok(LoginInfo::default()),
    });
    h.expect(230);
}

#[test]
fn pwd_cwd_cdup_and_x_variants() {
    let mut h = H::new();
    h.login();
    assert_eq!(h.cmd("PWD", 257), "257 \"/\" is the current directory.\r\n");
    h.send("CWD docs");
    storage(
        &mut h,
        StorageOp::Metadata(p("/docs")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(250);
    assert_eq!(
        h.cmd("XPWD", 257),
        "257 \"/docs\" is the current directory.\r\n"
    );
    h.send("XCWD sub");
    storage(
        &mut h,
        StorageOp::Metadata(p("/docs/sub")),
        Ok(StorageReply::Metadata(file(1))),
    );
    h.expect(550);
    h.send("CWD missing");
    storage(
        &mut h,
        StorageOp::Metadata(p("/docs/missing")),
        Err(StorageError::NotFound),
    );
    assert_eq!(h.reply(), "550 No such file or directory.\r\n");
    assert_eq!(h.s.cwd().as_str(), "/docs");
    h.send("CDUP");
    storage(
        &mut h,
        StorageOp::Metadata(p("/")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(250);
    h.send("XCUP");
    storage(
        &mut h,
        StorageOp::Metadata(p("/")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(250);
    // Traversal stays at the root.
    h.send("CWD ../../../etc");
    storage(
        &mut h,
        StorageOp::Metadata(p("/etc")),
        Err(StorageError::NotFound),
    );
    h.expect(550);
    h.send("CWD ..\\..\\windows");
    storage(
        &mut h,
        StorageOp::Metadata(p("/windows")),
        Err(StorageError::NotFound),
    );
    h.expect(550);
    h.cmd("CWD a\u{7f}b", 501);
}

#[test]
fn type_mode_stru() {
    let mut h = H::new();
    h.login();
    assert_eq!(h.cmd("TYPE I", 200), "200 Switching to Binary mode.\r\n");
    assert_eq!(h.cmd("TYPE A", 200), "200 Switching to ASCII mode.\r\n");
    h.cmd("TYPE L 8", 200);
    h.cmd("TYPE A N", 200);
    h.cmd("TYPE E", 504);
    h.cmd("TYPE Q", 501);
    h.cmd("MODE S", 200);
    h.cmd("MODE B", 504);
    h.cmd("MODE C", 504);
    h.cmd("STRU F", 200);
    h.cmd("STRU R", 504);
    h.cmd("STRU P", 504);
}

#[test]
fn type_is_carried_into_transfers() {
    let mut h = ready();
    h.cmd("TYPE A", 200);
    h.send("RETR a.txt");
    assert!(transfer(&mut h).ascii);
    let mut h = ready();
    h.cmd("TYPE I", 200);
    h.send("RETR a.txt");
    assert!(!transfer(&mut h).ascii);
}

#[test]
fn port_and_eprt_refuse_bounces() {
    let mut h = H::new();
    h.login();
    h.cmd("PORT 127,0,0,1,4,1", 200);
    h.cmd("EPRT |1|127.0.0.1|1025|", 200);
    h.cmd("PORT 10,0,0,1,4,1", 504);
    h.cmd("PORT 127,0,0,1,0,21", 504);
    h.cmd("PORT 127,0,0,1,3,255", 504);
    h.cmd("EPRT |1|192.168.1.1|2000|", 504);
    h.cmd("EPRT |2|::1|2000|", 504);
    h.cmd("EPRT |1|127.0.0.1|80|", 504);
    h.cmd("PORT 127,0,0,1,4", 501);
    h.cmd("PORT 300,0,0,1,4,1", 501);
    h.cmd("EPRT |9|127.0.0.1|2000|", 522);
    h.cmd("EPRT garbage", 501);
    // The accepted address is where the transfer connects.
    h.cmd("PORT 127,0,0,1,200,10", 200);
    h.send("RETR f");
    assert_eq!(
        transfer(&mut h).channel,
        DataChannel::Active("127.0.0.1:51210".parse().unwrap())
    );
}

#[test]
fn port_replaces_a_passive_listener() {
    let mut h = ready();
    h.send("PORT 127,0,0,1,4,1");
    h.expect(200);
    assert!(matches!(h.event(), Request::ClosePassive));
}

#[test]
fn ipv6_control_connection() {
    let mut h = H::with_addrs(Config::default(), "[::1]:50000", "[::1]:2121");
    h.login();
    h.cmd("PASV", 425);
    h.cmd("EPSV 1", 522);
    h.send("EPSV");
    let Request::OpenPassive { id, family } = h.event() else {
        panic!()
    };
    assert_eq!(family, Family::V6);
    h.outcome(Outcome::PassiveOpened {
        id,
        result: Ok("[::1]:40002".parse().unwrap()),
    });
    assert_eq!(
        h.reply(),
        "229 Entering Extended Passive Mode (|||40002|).\r\n"
    );
    h.cmd("EPRT |2|::1|2000|", 200);
    h.cmd("EPRT |1|127.0.0.1|2000|", 504);
}

#[test]
fn ipv4_mapped_peer_may_use_port() {
    let mut h = H::with_addrs(
        Config::default(),
        "[::ffff:127.0.0.1]:50000",
        "[::ffff:127.0.0.1]:2121",
    );
    h.login();
    h.cmd("PORT 127,0,0,1,4,1", 200);
    h.send("PASV");
    let Request::OpenPassive { id, family } = h.event() else {
        panic!()
    };
    assert_eq!(family, Family::V4);
    h.outcome(Outcome::PassiveOpened {
        id,
        result: Ok("[::ffff:127.0.0.1]:40003".parse().unwrap()),
    });
    assert_eq!(
        h.reply(),
        "227 Entering Passive Mode (127,0,0,1,156,67).\r\n"
    );
}

#[test]
fn pasv_uses_the_public_address_and_reports_failure() {
    let config = Config {
        public_address: Some("203.0.113.9".parse().unwrap()),
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.login();
    h.send("PASV");
    let Request::OpenPassive { id, .. } = h.event() else {
        panic!()
    };
    h.outcome(Outcome::PassiveOpened {
        id,
        result: Ok("127.0.0.1:40001".parse().unwrap()),
    });
    assert_eq!(
        h.reply(),
        "227 Entering Passive Mode (203,0,113,9,156,65).\r\n"
    );
    h.send("EPSV");
    let Request::OpenPassive { id, .. } = h.event() else {
        panic!()
    };
    h.outcome(Outcome::PassiveOpened {
        id,
        result: Err(ferry_core::DataError),
    });
    h.expect(425);
    h.cmd("RETR x", 425);
}

#[test]
fn epsv_all_refuses_other_data_commands() {
    let mut h = H::new();
    h.login();
    h.cmd("EPSV ALL", 200);
    h.cmd("PASV", 503);
    h.cmd("PORT 127,0,0,1,4,1", 503);
    h.cmd("EPRT |1|127.0.0.1|2000|", 503);
    h.cmd("EPSV 3", 522);
    h.send("EPSV");
    assert!(matches!(h.event(), Request::OpenPassive { .. }));
}

#[test]
fn transfers_need_a_data_connection() {
    let mut h = H::new();
    h.login();
    for line in ["RETR a", "STOR a", "APPE a", "LIST", "NLST", "MLSD", "STOU"] {
        h.cmd(line, 425);
    }
}

#[test]
fn retr_with_150_and_226() {
    let mut h = ready();
    h.send("RETR dir/a.bin");
    let t = transfer(&mut h);
    assert_eq!(
        t.kind,
        TransferKind::Retrieve {
            path: p("/dir/a.bin"),
            offset: 0
        }
    );
    assert_eq!(t.channel, DataChannel::Passive);
    assert!(!t.protected);
    h.quiet();
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: Some(1234),
    });
    assert_eq!(
        h.reply(),
        "150 Opening ASCII mode data connection (1234 bytes).\r\n"
    );
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(1234),
    });
    assert_eq!(h.reply(), "226 Transfer complete (1234 bytes).\r\n");
    // The data connection was used up.
    h.cmd("RETR dir/a.bin", 425);
}

#[test]
fn retr_errors_before_and_during() {
    let cases = [
        (TransferError::Storage(StorageError::NotFound), 550),
        (TransferError::Storage(StorageError::NotAFile), 550),
        (TransferError::Storage(StorageError::PermissionDenied), 550),
        (TransferError::Storage(StorageError::Other), 451),
        (TransferError::DataConnection, 425),
        (TransferError::ConnectionLost, 426),
        (TransferError::Stalled, 426),
        (TransferError::TlsHandshake, 425),
        (TransferError::TlsNotResumed, 522),
    ];
    for (err, code) in cases {
        let mut h = ready();
        h.send("RETR a");
        let t = transfer(&mut h);
        h.outcome(Outcome::TransferFinished {
            id: t.id,
            result: Err(err),
        });
        h.expect(code);
        h.quiet();
    }
}

#[test]
fn stor_upload_errors() {
    let cases = [
        (StorageError::NoSpace, 552),
        (StorageError::BadName, 553),
        (StorageError::NotFound, 550),
        (StorageError::Other, 451),
    ];
    for (err, code) in cases {
        let mut h = ready();
        h.send("STOR a");
        let t = transfer(&mut h);
        assert_eq!(
            t.kind,
            TransferKind::Store {
                path: p("/a"),
                mode: WriteMode::Replace
            }
        );
        h.outcome(Outcome::TransferOpened {
            id: t.id,
            size: None,
        });
        h.expect(150);
        h.outcome(Outcome::TransferFinished {
            id: t.id,
            result: Err(TransferError::Storage(err)),
        });
        h.expect(code);
    }
}

#[test]
fn rest_applies_to_the_next_transfer_only() {
    let mut h = ready();
    assert_eq!(
        h.cmd("REST 100", 350),
        "350 Restarting at 100. Send STORE or RETRIEVE.\r\n"
    );
    h.cmd("TYPE I", 200);
    h.send("RETR f");
    assert_eq!(
        transfer(&mut h).kind,
        TransferKind::Retrieve {
            path: p("/f"),
            offset: 100
        }
    );

    let mut h = ready();
    h.cmd("REST 7", 350);
    h.send("STOR f");
    assert_eq!(
        transfer(&mut h).kind,
        TransferKind::Store {
            path: p("/f"),
            mode: WriteMode::At(7)
        }
    );

    let mut h = ready();
    h.cmd("REST 0", 350);
    h.send("STOR f");
    assert_eq!(
        transfer(&mut h).kind,
        TransferKind::Store {
            path: p("/f"),
            mode: WriteMode::Replace
        }
    );

    let mut h = ready();
    h.cmd("REST 9", 350);
    h.send("APPE f");
    let t = transfer(&mut h);
    assert_eq!(
        t.kind,
        TransferKind::Store {
            path: p("/f"),
            mode: WriteMode::Append
        }
    );
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    h.expect(150);
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(1),
    });
    h.expect(226);
    // Used up.
    pasv(&mut h);
    h.send("RETR f");
    assert_eq!(
        transfer(&mut h).kind,
        TransferKind::Retrieve {
            path: p("/f"),
            offset: 0
        }
    );
}

#[test]
fn stou_creates_a_new_name() {
    let mut h = ready();
    h.send("STOU report");
    let t = transfer(&mut h);
    let TransferKind::Store { path, mode } = &t.kind else {
        panic!()
    };
    assert_eq!(*mode, WriteMode::CreateNew);
    assert!(path.as_str().starts_with("/report."), "{path}");
    let path = path.clone();
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    assert_eq!(h.reply(), format!("150 FILE: {path}\r\n"));
}

#[test]
fn abort_during_a_transfer() {
    let mut h = ready();
    h.send("RETR big");
    let t = transfer(&mut h);
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: Some(1 << 30),
    });
    h.expect(150);
    // STAT and NOOP are answered at once while the transfer runs.
    h.cmd("STAT", 213);
    h.cmd("NOOP", 200);
    // ABOR, even behind telnet IP/DM, is acted on at once.
    h.feed(b"\xff\xf4\xff\xf2ABOR\r\n");
    let Request::Abort { id } = h.event() else {
        panic!("want Abort")
    };
    assert_eq!(id, t.id);
    // Other commands wait for the transfer to end.
    h.send("PWD");
    h.quiet();
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Err(TransferError::Aborted),
    });
    h.expect(426);
    assert_eq!(h.reply(), "226 ABOR command successful.\r\n");
    // The waiting PWD runs now.
    h.expect(257);
    h.quiet();
}

#[test]
fn abort_after_the_transfer_completed() {
    let mut h = ready();
    h.send("RETR f");
    let t = transfer(&mut h);
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    h.expect(150);
    h.send("ABOR");
    assert!(matches!(h.event(), Request::Abort { .. }));
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(5),
    });
    h.expect(226);
    h.expect(226);
    // Without a transfer, ABOR succeeds (RFC 959: 226) and drops a waiting listener.
    pasv(&mut h);
    h.cmd("ABOR", 226);
    assert!(matches!(h.event(), Request::ClosePassive));
}

#[test]
fn quit_during_a_transfer_waits_for_it() {
    let mut h = ready();
    h.send("STOR f");
    let t = transfer(&mut h);
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    h.expect(150);
    h.send("QUIT");
    h.quiet();
    assert!(!h.closed);
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(3),
    });
    h.expect(226);
    h.expect(221);
    assert!(h.closed);
}

#[test]
fn dele_rmd_mkd() {
    let mut h = H::new();
    h.login();
    h.send("DELE a");
    storage(
        &mut h,
        StorageOp::RemoveFile(p("/a")),
        Ok(StorageReply::Done),
    );
    assert_eq!(h.reply(), "250 File deleted.\r\n");
    h.send("DELE a");
    storage(
        &mut h,
        StorageOp::RemoveFile(p("/a")),
        Err(StorageError::NotFound),
    );
    h.expect(550);
    h.send("MKD new \"dir\"");
    storage(
        &mut h,
        StorageOp::MakeDir(p("/new \"dir\"")),
        Ok(StorageReply::Done),
    );
    assert_eq!(h.reply(), "257 \"/new \"\"dir\"\"\" created.\r\n");
    h.send("XMKD x");
    storage(
        &mut h,
        StorageOp::MakeDir(p("/x")),
        Err(StorageError::AlreadyExists),
    );
    h.expect(550);
    h.send("RMD x");
    storage(
        &mut h,
        StorageOp::RemoveDir(p("/x")),
        Err(StorageError::NotEmpty),
    );
    assert_eq!(h.reply(), "550 Directory not empty.\r\n");
    h.send("XRMD x");
    storage(
        &mut h,
        StorageOp::RemoveDir(p("/x")),
        Ok(StorageReply::Done),
    );
    h.expect(250);
    h.cmd("RMD /", 550);
    h.cmd("RMD ..", 550);
    h.send("MKD deep/er");
    storage(
        &mut h,
        StorageOp::MakeDir(p("/deep/er")),
        Err(StorageError::NoSpace),
    );
    h.expect(452);
}

#[test]
fn rename_needs_rnfr_immediately_before() {
    let mut h = H::new();
    h.login();
    h.cmd("RNTO b", 503);
    h.send("RNFR a");
    storage(
        &mut h,
        StorageOp::Metadata(p("/a")),
        Ok(StorageReply::Metadata(file(1))),
    );
    h.expect(350);
    h.send("RNTO sub/b");
    storage(
        &mut h,
        StorageOp::Rename {
            from: p("/a"),
            to: p("/sub/b"),
        },
        Ok(StorageReply::Done),
    );
    h.expect(250);
    h.cmd("RNTO c", 503);
    // Another command in between cancels the rename.
    h.send("RNFR a");
    storage(
        &mut h,
        StorageOp::Metadata(p("/a")),
        Ok(StorageReply::Metadata(file(1))),
    );
    h.expect(350);
    h.cmd("NOOP", 200);
    h.cmd("RNTO c", 503);
    // The root cannot be renamed.
    h.cmd("RNFR /", 550);
    h.cmd("RNFR ..", 550);
    // A missing source is refused at RNFR.
    h.send("RNFR nope");
    storage(
        &mut h,
        StorageOp::Metadata(p("/nope")),
        Err(StorageError::NotFound),
    );
    h.expect(550);
    h.cmd("RNTO c", 503);
}

#[test]
fn site_copy_chmod_help() {
    let mut h = H::new();
    h.login();
    h.cmd("SITE CPTO b", 503);
    h.send("SITE CPFR a");
    storage(
        &mut h,
        StorageOp::Metadata(p("/a")),
        Ok(StorageReply::Metadata(file(1))),
    );
    h.expect(350);
    h.send("SITE CPTO b");
    storage(
        &mut h,
        StorageOp::Copy {
            from: p("/a"),
            to: p("/b"),
        },
        Ok(StorageReply::Done),
    );
    h.expect(250);
    h.send("SITE CPFR d");
    storage(
        &mut h,
        StorageOp::Metadata(p("/d")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(550);
    h.cmd("SITE CHMOD 755 /", 550);
    h.send("SITE CHMOD 755 ./sub");
    storage(
        &mut h,
        StorageOp::SetMode {
            path: p("/sub"),
            mode: 0o755,
        },
        Ok(StorageReply::Done),
    );
    h.expect(200);
    assert!(h.cmd("SITE HELP", 214).contains("CPFR"));
    h.cmd("SITE EXEC ls", 504);
}

#[test]
fn size_mdtm_mfmt_mlst() {
    let mut h = H::new();
    h.login();
    h.send("SIZE f");
    storage(
        &mut h,
        StorageOp::Metadata(p("/f")),
        Ok(StorageReply::Metadata(file(42))),
    );
    assert_eq!(h.reply(), "213 42\r\n");
    h.send("SIZE d");
    storage(
        &mut h,
        StorageOp::Metadata(p("/d")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(550);
    h.send("MDTM f");
    storage(
        &mut h,
        StorageOp::Metadata(p("/f")),
        Ok(StorageReply::Metadata(file(42))),
    );
    assert_eq!(h.reply(), "213 20261122161138\r\n");
    h.send("MDTM d");
    storage(
        &mut h,
        StorageOp::Metadata(p("/d")),
        Ok(StorageReply::Metadata(dir())),
    );
    h.expect(550);
    h.send("MFMT 20261122161138 f");
    storage(
        &mut h,
        StorageOp::SetModified {
            path: p("/f"),
            time: UnixTime(1_795_363_898),
        },
        Ok(StorageReply::Done),
    );
    assert_eq!(h.reply(), "213 Modify=20261122161138; /f\r\n");
    // The reply gives the time storage kept, which a file system may clamp.
    h.send("MFMT 19000101000000 f");
    storage(
        &mut h,
        StorageOp::SetModified {
            path: p("/f"),
            time: UnixTime(-2_208_988_800),
        },
        Ok(StorageReply::Metadata(Metadata {
            modified: Some(UnixTime(-2_147_483_648)),
            ..file(1)
        })),
    );
    assert_eq!(h.reply(), "213 Modify=19011213204552; /f\r\n");
    h.cmd("MFMT 20261322161138 f", 501);
    h.send("MLST f");
    storage(
        &mut h,
        StorageOp::Metadata(p("/f")),
        Ok(StorageReply::Metadata(file(42))),
    );
    assert_eq!(
        h.reply(),
        "250-Listing /f\r\n type=file;size=42;modify=20261122161138;perm=adfrw;unix.mode=0644; /f\r\n250 End.\r\n"
    );
    assert_eq!(
        h.cmd("OPTS MLST size;type;", 200),
        "200 MLST OPTS type;size;\r\n"
    );
    h.send("MLST");
    storage(
        &mut h,
        StorageOp::Metadata(p("/")),
        Ok(StorageReply::Metadata(dir())),
    );
    assert_eq!(h.reply(), "250-Listing /\r\n type=dir; /\r\n250 End.\r\n");
    assert!(
        h.cmd("FEAT", 211)
            .contains(" MLST type*;size*;modify;perm;unix.mode;\r\n")
    );
}

#[test]
fn listings_with_options_patterns_and_formats() {
    let mut h = ready();
    h.send("LIST -la");
    let t = transfer(&mut h);
    let TransferKind::List(l) = &t.kind else {
        panic!()
    };
    assert_eq!(l.path, p("/"));
    assert_eq!(l.format, ListFormat::Long);
    assert_eq!(l.pattern, None);
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    h.expect(150);
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(0),
    });
    assert_eq!(h.reply(), "226 Directory send OK.\r\n");

    pasv(&mut h);
    h.send("NLST sub/*.txt");
    let t = transfer(&mut h);
    let TransferKind::List(l) = &t.kind else {
        panic!()
    };
    assert_eq!(l.path, p("/sub"));
    assert_eq!(l.format, ListFormat::Names);
    assert_eq!(l.pattern.as_deref(), Some("*.txt"));
    assert_eq!(l.typed.as_deref(), Some("sub"));
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Err(TransferError::Storage(StorageError::NotFound)),
    });
    h.expect(550);

    pasv(&mut h);
    h.send("LIST -a my dir");
    let t = transfer(&mut h);
    let TransferKind::List(l) = &t.kind else {
        panic!()
    };
    assert_eq!(l.path, p("/my dir"));
    assert_eq!(l.pattern, None);
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(0),
    });
    h.expect(226);

    pasv(&mut h);
    h.send("MLSD");
    let TransferKind::List(l) = transfer(&mut h).kind else {
        panic!()
    };
    assert_eq!(l.format, ListFormat::Machine(ferry_core::Facts::ALL));
}

#[test]
fn stat_with_a_path_lists_on_the_control_connection() {
    let mut h = H::new();
    h.login();
    h.send("STAT /");
    let t = transfer(&mut h);
    assert_eq!(t.channel, DataChannel::Control);
    h.outcome(Outcome::TransferOpened {
        id: t.id,
        size: None,
    });
    assert_eq!(h.reply(), "213-Status follows:\r\n");
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(0),
    });
    assert_eq!(h.reply(), "213 End of status.\r\n");
    h.send("STAT /nope");
    let t = transfer(&mut h);
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Err(TransferError::Storage(StorageError::NotFound)),
    });
    h.expect(550);
    let s = h.cmd("STAT", 211);
    assert!(s.contains("Logged in as bench"), "{s}");
}

#[test]
fn service_commands() {
    let mut h = H::new();
    h.login();
    assert_eq!(h.cmd("SYST", 215), "215 UNIX Type: L8\r\n");
    h.cmd("NOOP", 200);
    h.cmd("ALLO 1000", 202);
    h.cmd("ACCT x", 202);
    h.cmd("HELP", 214);
    h.cmd("HOST example.com", 503);
    h.cmd("OPTS UTF8 ON", 200);
    h.cmd("OPTS UTF8 OFF", 504);
    h.cmd("OPTS FOO", 504);
    h.cmd("FOO", 500);
    h.cmd("SMNT /", 502);
    h.cmd("", 500);
    h.cmd("AUTH TLS", 502);
    h.cmd("PBSZ 0", 503);
    h.cmd("PROT P", 503);
    h.cmd("REIN", 220);
    h.cmd("PWD", 530);
}

#[test]
fn read_only_accounts_cannot_change_anything() {
    let mut h = H::new();
    h.expect(220);
    h.cmd("USER guest", 331);
    h.send("PASS x");
    let Request::CheckLogin { id, .. } = h.event() else {
        panic!()
    };
    h.outcome(Outcome::LoginChecked {
        id,
        result: Ok(LoginInfo { read_only: true }),
    });
    h.expect(230);
    for line in [
        "STOR a",
        "APPE a",
        "STOU",
        "DELE a",
        "MKD a",
        "RMD a",
        "RNFR a",
        "SITE CPFR a",
        "SITE CHMOD 644 a",
        "MFMT 20261122161138 a",
    ] {
        h.cmd(line, 550);
    }
    pasv(&mut h);
    h.send("MLSD");
    let TransferKind::List(l) = transfer(&mut h).kind else {
        panic!()
    };
    assert!(!l.writable);
}

#[test]
fn idle_timeout_ends_in_421() {
    let config = Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.login();
    h.advance(Duration::from_secs(9));
    h.cmd("NOOP", 200);
    h.advance(Duration::from_secs(9));
    h.quiet();
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.reply(),
        "421 Idle timeout; closing control connection.\r\n"
    );
    assert!(h.closed);
}

#[test]
fn no_idle_timeout_during_a_transfer() {
    let config = Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.login();
    pasv(&mut h);
    h.send("RETR f");
    let t = transfer(&mut h);
    assert_eq!(h.s.poll_timeout(), None);
    h.advance(Duration::from_secs(100));
    h.quiet();
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(1),
    });
    h.expect(226);
    assert!(h.s.poll_timeout().is_some());
}

#[test]
fn overlong_lines_get_500_and_the_session_goes_on() {
    let config = Config {
        max_line: 32,
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.expect(220);
    let mut long = vec![b'A'; 10_000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    for chunk in long.chunks(7) {
        h.feed(chunk);
        assert!(h.input.len() <= h.s.input_capacity());
    }
    assert_eq!(h.reply(), "500 Command line too long.\r\n");
    h.expect(200);
    h.quiet();
}

#[test]
fn pipelined_and_split_commands() {
    let mut h = H::auto();
    h.feed(b"USER bench\r\nPASS secret\r\nPWD\r\nNOOP\r\n");
    for code in [220, 331, 230, 257, 200] {
        h.expect(code);
    }
    for b in b"SYST\r\nNOOP\n" {
        h.feed(&[*b]);
    }
    h.expect(215);
    h.expect(200);
}

#[test]
fn shutdown_while_a_request_is_pending_ignores_its_outcome() {
    // Found by the session fuzzer: a login answered after shutdown replied after Close.
    let mut h = H::new();
    h.expect(220);
    h.cmd("USER bench", 331);
    h.send("PASS secret");
    let Request::CheckLogin { id, .. } = h.event() else {
        panic!()
    };
    h.s.handle_shutdown();
    h.drain();
    h.expect(421);
    assert!(h.closed);
    h.outcome(Outcome::LoginChecked {
        id,
        result: Ok(LoginInfo::default()),
    });
    h.quiet();
    assert_eq!(h.s.user(), None);
}

#[test]
fn shutdown_is_polite() {
    let mut h = H::new();
    h.login();
    h.s.handle_shutdown();
    h.drain();
    h.expect(421);
    assert!(h.closed);

    let mut h = ready();
    h.send("RETR f");
    let t = transfer(&mut h);
    h.s.handle_shutdown();
    h.drain();
    h.quiet();
    h.outcome(Outcome::TransferFinished {
        id: t.id,
        result: Ok(1),
    });
    h.expect(226);
    h.expect(421);
    assert!(h.closed);
}

#[test]
fn auth_tls_discards_what_follows_in_the_same_read() {
    let config = Config {
        tls: TlsMode::Optional,
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.expect(220);
    assert!(h.cmd("FEAT", 211).contains(" AUTH TLS\r\n"));
    h.feed(b"AUTH TLS\r\nUSER injected\r\nPASS x\r\n");
    assert_eq!(h.reply(), "234 AUTH TLS successful.\r\n");
    assert!(matches!(h.event(), Request::StartTls));
    assert!(h.input.is_empty(), "the injected commands were dropped");
    h.quiet();
    h.outcome(Outcome::TlsEstablished);
    assert!(h.s.is_tls());
    h.quiet();
    h.cmd("PROT P", 503);
    h.cmd("PBSZ 0", 200);
    h.cmd("PROT S", 536);
    h.cmd("PROT P", 200);
    h.cmd("AUTH TLS", 503);
    h.login_after_greeting();
    h.cmd("AUTH TLS", 503);
    pasv(&mut h);
    h.send("RETR f");
    assert!(transfer(&mut h).protected);
}

#[test]
fn tls_failure_closes() {
    let config = Config {
        tls: TlsMode::Optional,
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.expect(220);
    h.cmd("AUTH SSL", 234);
    assert!(matches!(h.event(), Request::StartTls));
    h.outcome(Outcome::TlsFailed);
    assert!(h.closed);
}

#[test]
fn required_tls_leaves_no_clear_text_path() {
    let config = Config {
        tls: TlsMode::Required,
        ..Config::default()
    };
    let mut h = H::with_config(config);
    h.expect(220);
    let r = h.cmd("USER bench", 530);
    assert!(r.contains("AUTH TLS"), "{r}");
    h.cmd("PASS secret", 503);
    h.cmd("AUTH TLS", 234);
    assert!(matches!(h.event(), Request::StartTls));
    h.outcome(Outcome::TlsEstablished);
    h.cmd("PBSZ 0", 200);
    h.cmd("PROT C", 534);
    h.login_after_greeting();
    pasv(&mut h);
    // No PROT P yet: transfers refused.
    h.cmd("RETR f", 521);
    h.cmd("PROT P", 200);
    pasv(&mut h);
    h.send("RETR f");
    assert!(transfer(&mut h).protected);
}

trait LoginAfter {
    fn login_after_greeting(&mut self);
}

impl LoginAfter for H {
    fn login_after_greeting(&mut self) {
        self.cmd("USER bench", 331);
        self.send("PASS secret");
        let Request::CheckLogin { id, .. } = self.event() else {
            panic!()
        };
        self.outcome(Outcome::LoginChecked {
            id,
            result: Ok(LoginInfo::default()),
        });
        self.expect(230);
    }
}
