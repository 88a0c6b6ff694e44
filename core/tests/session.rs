//! The session, command by command and reply path by reply path, with no socket.
#![allow(clippy::needless_pass_by_value)]

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::{
    Config, DataChannel, DataError, Family, FileKind, ListFormat, ListRequest, LoginError,
    LoginInfo, Metadata, OpId, Outcome, Request, StorageError, StorageOp, StorageReply, TlsMode,
    Transfer, TransferError, TransferKind, UnixTime, VirtualPath, WriteMode,
};
use harness::H;

type StorageResult = Result<StorageReply, StorageError>;

const DONE: StorageResult = Ok(StorageReply::Done);
const NOT_FOUND: StorageResult = Err(StorageError::NotFound);

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

/// The metadata request for `path`.
fn md(path: &str) -> StorageOp {
    StorageOp::Metadata(p(path))
}

/// Storage's answer to a metadata request.
fn found(m: Metadata) -> StorageResult {
    Ok(StorageReply::Metadata(m))
}

fn retrieve(path: &str, offset: u64) -> TransferKind {
    TransferKind::Retrieve {
        path: p(path),
        offset,
    }
}

fn store(path: &str, mode: WriteMode) -> TransferKind {
    TransferKind::Store {
        path: p(path),
        mode,
    }
}

fn logged_in() -> H {
    let mut h = H::new();
    h.login();
    h
}

/// Logs in and opens a passive listener.
fn ready() -> H {
    let mut h = logged_in();
    pasv(&mut h);
    h
}

fn pasv(h: &mut H) {
    h.send("PASV");
    passive(h, Family::V4, Ok("127.0.0.1:40001".parse().unwrap()));
    assert_eq!(
        h.reply(),
        "227 Entering Passive Mode (127,0,0,1,156,65).\r\n"
    );
}

/// Expects a request for a passive listener of `family`, answers it with `result`.
#[track_caller]
fn passive(h: &mut H, family: Family, result: Result<SocketAddr, DataError>) {
    let Request::OpenPassive { id, family: got } = h.event() else {
        panic!("want OpenPassive")
    };
    assert_eq!(got, family);
    h.outcome(Outcome::PassiveOpened { id, result });
}

/// After the greeting: USER `user` and PASS `password`; returns the password check's id.
#[track_caller]
fn pending_login(h: &mut H, user: &str, password: &str) -> OpId {
    h.cmd(&format!("USER {user}"), 331);
    h.send(&format!("PASS {password}"));
    let Request::CheckLogin { id, .. } = h.event() else {
        panic!("want CheckLogin")
    };
    id
}

/// After the greeting: USER `user`, PASS, and the password check answered with `result`.
#[track_caller]
fn log_in(h: &mut H, user: &str, result: Result<LoginInfo, LoginError>) {
    let id = pending_login(h, user, "x");
    h.outcome(Outcome::LoginChecked { id, result });
}

fn login_after_greeting(h: &mut H) {
    log_in(h, "bench", Ok(LoginInfo::default()));
    h.expect(230);
}

/// Sends each line and expects one reply of its code.
#[track_caller]
fn cmds(h: &mut H, script: &[(&str, u16)]) {
    for &(line, code) in script {
        h.cmd(line, code);
    }
}

/// Sends `line`, takes the transfer it asks for, opens it (of `size`) and reads the 150.
#[track_caller]
fn start(h: &mut H, line: &str, size: Option<u64>) -> Transfer {
    h.send(line);
    let t = transfer(h);
    opened(h, &t, size);
    h.expect(150);
    t
}

fn rename(from: &str, to: &str) -> StorageOp {
    StorageOp::Rename {
        from: p(from),
        to: p(to),
    }
}

fn copy(from: &str, to: &str) -> StorageOp {
    StorageOp::Copy {
        from: p(from),
        to: p(to),
    }
}

#[track_caller]
fn transfer(h: &mut H) -> Transfer {
    match h.event() {
        Request::Transfer(t) => t,
        other => panic!("want transfer, got {other:?}"),
    }
}

/// The listing a transfer sends.
#[track_caller]
fn list(t: &Transfer) -> &ListRequest {
    match &t.kind {
        TransferKind::List(l) => l,
        other => panic!("want a listing, got {other:?}"),
    }
}

fn opened(h: &mut H, t: &Transfer, size: Option<u64>) {
    h.outcome(Outcome::TransferOpened { id: t.id, size });
}

fn finished(h: &mut H, t: &Transfer, result: Result<u64, TransferError>) {
    h.outcome(Outcome::TransferFinished { id: t.id, result });
}

/// A session with `config`, its greeting read.
fn greeted(config: Config) -> H {
    let mut h = H::with_config(config);
    h.expect(220);
    h
}

fn with_tls(tls: TlsMode) -> H {
    greeted(Config {
        tls,
        ..Config::default()
    })
}

/// Logged in, with a 10 s idle timeout.
fn idle_after_10s() -> H {
    let mut h = H::with_config(Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    });
    h.login();
    h
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
    let mut h = logged_in();
    assert_eq!(h.s.user(), Some("bench"));
    h.cmd("PASS again", 202);
    h.cmd("USER other", 503);
}

#[test]
fn pass_before_user_is_a_bad_sequence() {
    let mut h = greeted(Config::default());
    h.cmd("PASS x", 503);
}

#[test]
fn commands_before_login_get_530() {
    let mut h = greeted(Config::default());
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
    let mut h = greeted(Config::default());
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
    h.expect_last(421);
}

#[test]
fn login_service_unavailable_closes() {
    let mut h = greeted(Config::default());
    log_in(&mut h, "bench", Err(LoginError::Unavailable));
    h.expect_last(421);
}

#[test]
fn too_many_sessions_of_an_account_closes() {
    let mut h = greeted(Config::default());
    log_in(&mut h, "bench", Err(LoginError::TooManySessions));
    h.expect_last(421);
}

#[test]
fn stale_outcomes_are_ignored() {
    let mut h = greeted(Config::default());
    let id = pending_login(&mut h, "bench", "secret");
    let stale = OpId(id.0 + 7);
    h.outcome(Outcome::LoginChecked {
        id: stale,
        result: Ok(LoginInfo::default()),
    });
    h.outcome(Outcome::StorageDone { id, result: DONE });
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
    let mut h = logged_in();
    assert_eq!(h.cmd("PWD", 257), "257 \"/\" is the current directory.\r\n");
    h.ask("CWD docs", md("/docs"), found(dir()), 250);
    assert_eq!(
        h.cmd("XPWD", 257),
        "257 \"/docs\" is the current directory.\r\n"
    );
    h.ask("XCWD sub", md("/docs/sub"), found(file(1)), 550);
    assert_eq!(
        h.ask("CWD missing", md("/docs/missing"), NOT_FOUND, 550),
        "550 No such file or directory.\r\n"
    );
    assert_eq!(h.s.cwd().as_str(), "/docs");
    h.ask("CDUP", md("/"), found(dir()), 250);
    h.ask("XCUP", md("/"), found(dir()), 250);
    // Traversal stays at the root.
    h.ask("CWD ../../../etc", md("/etc"), NOT_FOUND, 550);
    h.ask("CWD ..\\..\\windows", md("/windows"), NOT_FOUND, 550);
    h.cmd("CWD a\u{7f}b", 501);
}

#[test]
fn type_mode_stru() {
    let mut h = logged_in();
    assert_eq!(h.cmd("TYPE I", 200), "200 Switching to Binary mode.\r\n");
    assert_eq!(h.cmd("TYPE A", 200), "200 Switching to ASCII mode.\r\n");
    cmds(
        &mut h,
        &[
            ("TYPE L 8", 200),
            ("TYPE A N", 200),
            ("TYPE E", 504),
            ("TYPE Q", 501),
            ("MODE S", 200),
            ("MODE B", 504),
            ("MODE C", 504),
            ("STRU F", 200),
            ("STRU R", 504),
            ("STRU P", 504),
        ],
    );
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
    let mut h = logged_in();
    cmds(
        &mut h,
        &[
            ("PORT 127,0,0,1,4,1", 200),
            ("EPRT |1|127.0.0.1|1025|", 200),
            ("PORT 10,0,0,1,4,1", 504),
            ("PORT 127,0,0,1,0,21", 504),
            ("PORT 127,0,0,1,3,255", 504),
            ("EPRT |1|192.168.1.1|2000|", 504),
            ("EPRT |2|::1|2000|", 504),
            ("EPRT |1|127.0.0.1|80|", 504),
            ("PORT 127,0,0,1,4", 501),
            ("PORT 300,0,0,1,4,1", 501),
            ("EPRT |9|127.0.0.1|2000|", 522),
            ("EPRT garbage", 501),
        ],
    );
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
    passive(&mut h, Family::V6, Ok("[::1]:40002".parse().unwrap()));
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
    let listening = "[::ffff:127.0.0.1]:40003".parse().unwrap();
    passive(&mut h, Family::V4, Ok(listening));
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
    passive(&mut h, Family::V4, Ok("127.0.0.1:40001".parse().unwrap()));
    assert_eq!(
        h.reply(),
        "227 Entering Passive Mode (203,0,113,9,156,65).\r\n"
    );
    h.send("EPSV");
    passive(&mut h, Family::V4, Err(DataError));
    h.expect(425);
    h.cmd("RETR x", 425);
}

#[test]
fn epsv_all_refuses_other_data_commands() {
    let mut h = logged_in();
    cmds(
        &mut h,
        &[
            ("EPSV ALL", 200),
            ("PASV", 503),
            ("PORT 127,0,0,1,4,1", 503),
            ("EPRT |1|127.0.0.1|2000|", 503),
            ("EPSV 3", 522),
        ],
    );
    h.send("EPSV");
    assert!(matches!(h.event(), Request::OpenPassive { .. }));
}

#[test]
fn transfers_need_a_data_connection() {
    let mut h = logged_in();
    for line in ["RETR a", "STOR a", "APPE a", "LIST", "NLST", "MLSD", "STOU"] {
        h.cmd(line, 425);
    }
}

#[test]
fn retr_with_150_and_226() {
    let mut h = ready();
    h.send("RETR dir/a.bin");
    let t = transfer(&mut h);
    assert_eq!(t.kind, retrieve("/dir/a.bin", 0));
    assert_eq!(t.channel, DataChannel::Passive);
    assert!(!t.protected);
    h.quiet();
    opened(&mut h, &t, Some(1234));
    assert_eq!(
        h.reply(),
        "150 Opening ASCII mode data connection (1234 bytes).\r\n"
    );
    finished(&mut h, &t, Ok(1234));
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
        finished(&mut h, &t, Err(err));
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
        let t = start(&mut h, "STOR a", None);
        assert_eq!(t.kind, store("/a", WriteMode::Replace));
        finished(&mut h, &t, Err(TransferError::Storage(err)));
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
    assert_eq!(transfer(&mut h).kind, retrieve("/f", 100));

    for (rest, mode) in [("REST 7", WriteMode::At(7)), ("REST 0", WriteMode::Replace)] {
        let mut h = ready();
        h.cmd(rest, 350);
        h.send("STOR f");
        assert_eq!(transfer(&mut h).kind, store("/f", mode));
    }

    let mut h = ready();
    h.cmd("REST 9", 350);
    let t = start(&mut h, "APPE f", None);
    assert_eq!(t.kind, store("/f", WriteMode::Append));
    finished(&mut h, &t, Ok(1));
    h.expect(226);
    // Used up.
    pasv(&mut h);
    h.send("RETR f");
    assert_eq!(transfer(&mut h).kind, retrieve("/f", 0));
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
    opened(&mut h, &t, None);
    assert_eq!(h.reply(), format!("150 FILE: {path}\r\n"));
}

#[test]
fn abort_during_a_transfer() {
    let mut h = ready();
    let t = start(&mut h, "RETR big", Some(1 << 30));
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
    finished(&mut h, &t, Err(TransferError::Aborted));
    h.expect(426);
    assert_eq!(h.reply(), "226 ABOR command successful.\r\n");
    // The waiting PWD runs now.
    h.expect(257);
    h.quiet();
}

#[test]
fn abort_after_the_transfer_completed() {
    let mut h = ready();
    let t = start(&mut h, "RETR f", None);
    h.send("ABOR");
    assert!(matches!(h.event(), Request::Abort { .. }));
    finished(&mut h, &t, Ok(5));
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
    let t = start(&mut h, "STOR f", None);
    h.send("QUIT");
    h.quiet();
    assert!(!h.closed);
    finished(&mut h, &t, Ok(3));
    h.expect(226);
    h.expect_last(221);
}

#[test]
fn dele_rmd_mkd() {
    let mut h = logged_in();
    let remove_a = || StorageOp::RemoveFile(p("/a"));
    assert_eq!(
        h.ask("DELE a", remove_a(), DONE, 250),
        "250 File deleted.\r\n"
    );
    h.ask("DELE a", remove_a(), NOT_FOUND, 550);
    assert_eq!(
        h.ask(
            "MKD new \"dir\"",
            StorageOp::MakeDir(p("/new \"dir\"")),
            DONE,
            257
        ),
        "257 \"/new \"\"dir\"\"\" created.\r\n"
    );
    let exists = Err(StorageError::AlreadyExists);
    h.ask("XMKD x", StorageOp::MakeDir(p("/x")), exists, 550);
    let not_empty = Err(StorageError::NotEmpty);
    assert_eq!(
        h.ask("RMD x", StorageOp::RemoveDir(p("/x")), not_empty, 550),
        "550 Directory not empty.\r\n"
    );
    h.ask("XRMD x", StorageOp::RemoveDir(p("/x")), DONE, 250);
    h.cmd("RMD /", 550);
    h.cmd("RMD ..", 550);
    let no_space = Err(StorageError::NoSpace);
    h.ask(
        "MKD deep/er",
        StorageOp::MakeDir(p("/deep/er")),
        no_space,
        452,
    );
}

#[test]
fn rename_needs_rnfr_immediately_before() {
    let mut h = logged_in();
    h.cmd("RNTO b", 503);
    h.ask("RNFR a", md("/a"), found(file(1)), 350);
    h.ask("RNTO sub/b", rename("/a", "/sub/b"), DONE, 250);
    h.cmd("RNTO c", 503);
    // Another command in between cancels the rename.
    h.ask("RNFR a", md("/a"), found(file(1)), 350);
    h.cmd("NOOP", 200);
    h.cmd("RNTO c", 503);
    // The root cannot be renamed.
    h.cmd("RNFR /", 550);
    h.cmd("RNFR ..", 550);
    // A missing source is refused at RNFR.
    h.ask("RNFR nope", md("/nope"), NOT_FOUND, 550);
    h.cmd("RNTO c", 503);
}

#[test]
fn site_copy_chmod_help() {
    let mut h = logged_in();
    h.cmd("SITE CPTO b", 503);
    h.ask("SITE CPFR a", md("/a"), found(file(1)), 350);
    h.ask("SITE CPTO b", copy("/a", "/b"), DONE, 250);
    // A folder is copied with everything in it (by the storage).
    h.ask("SITE CPFR d", md("/d"), found(dir()), 350);
    h.ask("SITE CPTO e", copy("/d", "/e"), DONE, 250);
    h.cmd("SITE CHMOD 755 /", 550);
    let chmod = StorageOp::SetMode {
        path: p("/sub"),
        mode: 0o755,
    };
    h.ask("SITE CHMOD 755 ./sub", chmod, DONE, 200);
    assert!(h.cmd("SITE HELP", 214).contains("CPFR"));
    h.cmd("SITE EXEC ls", 504);
}

#[test]
fn size_mdtm_mfmt_mlst() {
    let mut h = logged_in();
    assert_eq!(
        h.ask("SIZE f", md("/f"), found(file(42)), 213),
        "213 42\r\n"
    );
    h.ask("SIZE d", md("/d"), found(dir()), 550);
    assert_eq!(
        h.ask("MDTM f", md("/f"), found(file(42)), 213),
        "213 20261122161138\r\n"
    );
    h.ask("MDTM d", md("/d"), found(dir()), 550);
    let set_f = |secs| StorageOp::SetModified {
        path: p("/f"),
        time: UnixTime(secs),
    };
    assert_eq!(
        h.ask("MFMT 20261122161138 f", set_f(1_795_363_898), DONE, 213),
        "213 Modify=20261122161138; /f\r\n"
    );
    // The reply gives the time storage kept, which a file system may clamp.
    let clamped = Metadata {
        modified: Some(UnixTime(-2_147_483_648)),
        ..file(1)
    };
    assert_eq!(
        h.ask(
            "MFMT 19000101000000 f",
            set_f(-2_208_988_800),
            found(clamped),
            213
        ),
        "213 Modify=19011213204552; /f\r\n"
    );
    h.cmd("MFMT 20261322161138 f", 501);
    assert_eq!(
        h.ask("MLST f", md("/f"), found(file(42)), 250),
        "250-Listing /f\r\n type=file;size=42;modify=20261122161138;perm=adfrw;unix.mode=0644; /f\r\n250 End.\r\n"
    );
    assert_eq!(
        h.cmd("OPTS MLST size;type;", 200),
        "200 MLST OPTS type;size;\r\n"
    );
    assert_eq!(
        h.ask("MLST", md("/"), found(dir()), 250),
        "250-Listing /\r\n type=dir; /\r\n250 End.\r\n"
    );
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
    let l = list(&t);
    assert_eq!(l.path, p("/"));
    assert_eq!(l.format, ListFormat::Long);
    assert_eq!(l.pattern, None);
    opened(&mut h, &t, None);
    h.expect(150);
    finished(&mut h, &t, Ok(0));
    assert_eq!(h.reply(), "226 Directory send OK.\r\n");

    pasv(&mut h);
    h.send("NLST sub/*.txt");
    let t = transfer(&mut h);
    let l = list(&t);
    assert_eq!(l.path, p("/sub"));
    assert_eq!(l.format, ListFormat::Names);
    assert_eq!(l.pattern.as_deref(), Some("*.txt"));
    assert_eq!(l.typed.as_deref(), Some("sub"));
    finished(
        &mut h,
        &t,
        Err(TransferError::Storage(StorageError::NotFound)),
    );
    h.expect(550);

    pasv(&mut h);
    h.send("LIST -a my dir");
    let t = transfer(&mut h);
    let l = list(&t);
    assert_eq!(l.path, p("/my dir"));
    assert_eq!(l.pattern, None);
    finished(&mut h, &t, Ok(0));
    h.expect(226);

    pasv(&mut h);
    h.send("MLSD");
    assert_eq!(
        list(&transfer(&mut h)).format,
        ListFormat::Machine(ferry_core::Facts::ALL)
    );
}

#[test]
fn stat_with_a_path_lists_on_the_control_connection() {
    let mut h = logged_in();
    h.send("STAT /");
    let t = transfer(&mut h);
    assert_eq!(t.channel, DataChannel::Control);
    opened(&mut h, &t, None);
    assert_eq!(h.reply(), "213-Status follows:\r\n");
    finished(&mut h, &t, Ok(0));
    assert_eq!(h.reply(), "213 End of status.\r\n");
    h.send("STAT /nope");
    let t = transfer(&mut h);
    finished(
        &mut h,
        &t,
        Err(TransferError::Storage(StorageError::NotFound)),
    );
    h.expect(550);
    let s = h.cmd("STAT", 211);
    assert!(s.contains("Logged in as bench"), "{s}");
}

#[test]
fn service_commands() {
    let mut h = logged_in();
    assert_eq!(h.cmd("SYST", 215), "215 UNIX Type: L8\r\n");
    cmds(
        &mut h,
        &[
            ("NOOP", 200),
            ("ALLO 1000", 202),
            ("ACCT x", 202),
            ("HELP", 214),
            ("HOST example.com", 503),
            ("OPTS UTF8 ON", 200),
            ("OPTS UTF8 OFF", 504),
            ("OPTS FOO", 504),
            ("FOO", 500),
            ("SMNT /", 502),
            ("", 500),
            ("AUTH TLS", 502),
            ("PBSZ 0", 503),
            ("PROT P", 503),
            ("REIN", 220),
            ("PWD", 530),
        ],
    );
}

#[test]
fn read_only_accounts_cannot_change_anything() {
    let mut h = greeted(Config::default());
    log_in(&mut h, "guest", Ok(LoginInfo { read_only: true }));
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
    assert!(!list(&transfer(&mut h)).writable);
}

#[test]
fn idle_timeout_ends_in_421() {
    let mut h = idle_after_10s();
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
    let mut h = idle_after_10s();
    pasv(&mut h);
    h.send("RETR f");
    let t = transfer(&mut h);
    assert_eq!(h.s.poll_timeout(), None);
    h.advance(Duration::from_secs(100));
    h.quiet();
    finished(&mut h, &t, Ok(1));
    h.expect(226);
    assert!(h.s.poll_timeout().is_some());
}

#[test]
fn overlong_lines_get_500_and_the_session_goes_on() {
    let mut h = greeted(Config {
        max_line: 32,
        ..Config::default()
    });
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
    let mut h = greeted(Config::default());
    let id = pending_login(&mut h, "bench", "secret");
    h.s.handle_shutdown();
    h.drain();
    h.expect_last(421);
    h.outcome(Outcome::LoginChecked {
        id,
        result: Ok(LoginInfo::default()),
    });
    h.quiet();
    assert_eq!(h.s.user(), None);
}

#[test]
fn shutdown_is_polite() {
    let mut h = logged_in();
    h.s.handle_shutdown();
    h.drain();
    h.expect_last(421);

    let mut h = ready();
    h.send("RETR f");
    let t = transfer(&mut h);
    h.s.handle_shutdown();
    h.drain();
    h.quiet();
    finished(&mut h, &t, Ok(1));
    h.expect(226);
    h.expect_last(421);
}

#[test]
fn auth_tls_discards_what_follows_in_the_same_read() {
    let mut h = with_tls(TlsMode::Optional);
    assert!(h.cmd("FEAT", 211).contains(" AUTH TLS\r\n"));
    h.feed(b"AUTH TLS\r\nUSER injected\r\nPASS x\r\n");
    assert_eq!(h.reply(), "234 AUTH TLS successful.\r\n");
    assert!(matches!(h.event(), Request::StartTls));
    assert!(h.input.is_empty(), "the injected commands were dropped");
    h.quiet();
    h.outcome(Outcome::TlsEstablished);
    assert!(h.s.is_tls());
    h.quiet();
    cmds(
        &mut h,
        &[
            ("PROT P", 503),
            ("PBSZ 0", 200),
            ("PROT S", 536),
            ("PROT P", 200),
            ("AUTH TLS", 503),
        ],
    );
    login_after_greeting(&mut h);
    h.cmd("AUTH TLS", 503);
    pasv(&mut h);
    h.send("RETR f");
    assert!(transfer(&mut h).protected);
}

#[test]
fn tls_failure_closes() {
    let mut h = with_tls(TlsMode::Optional);
    h.cmd("AUTH SSL", 234);
    assert!(matches!(h.event(), Request::StartTls));
    h.outcome(Outcome::TlsFailed);
    assert!(h.closed);
}

#[test]
fn required_tls_leaves_no_clear_text_path() {
    let mut h = with_tls(TlsMode::Required);
    let r = h.cmd("USER bench", 530);
    assert!(r.contains("AUTH TLS"), "{r}");
    h.cmd("PASS secret", 503);
    h.cmd("AUTH TLS", 234);
    assert!(matches!(h.event(), Request::StartTls));
    h.outcome(Outcome::TlsEstablished);
    h.cmd("PBSZ 0", 200);
    h.cmd("PROT C", 534);
    login_after_greeting(&mut h);
    pasv(&mut h);
    // No PROT P yet: transfers refused.
    h.cmd("RETR f", 521);
    h.cmd("PROT P", 200);
    pasv(&mut h);
    h.send("RETR f");
    assert!(transfer(&mut h).protected);
}
