//! suppaftp, a Rust FTP client, in passive (PASV), extended passive (EPSV) and active
//! (PORT) mode, and over IPv6 (EPSV, EPRT): every command of DESIGN.md's table that it can
//! send, the rest through its raw command facility (issue 4, item 6a).

use std::io::{Cursor, Read as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::UNIX_EPOCH;

use ferry_tests::suppaftp::types::{FileType, FormatControl};
use ferry_tests::suppaftp::{FtpError, FtpStream, Status};
use ferry_tests::{Mode, Server, ServerBuilder, ftp_connect, ftp_connect_anonymous, random_bytes};

fn raw(ftp: &mut FtpStream, cmd: &str, expect: Status) -> String {
    let r = ftp
        .custom_command(cmd, &[expect])
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Every command, in one session, in `mode`; checked on disk.
fn exercise(server: &Server, addr: SocketAddr, mode: Mode) {
    let home = server.home("alice");
    // Before login: HOST, FEAT, OPTS UTF8 (as lftp does).
    let mut ftp = ftp_connect_anonymous(addr, mode);
    raw(&mut ftp, "HOST localhost", Status::Ready);
    let feat = ftp.feat().expect("FEAT");
    for f in ["MLST", "SIZE", "MDTM", "MFMT", "EPSV", "REST", "UTF8"] {
        assert!(feat.contains_key(f), "FEAT lacks {f}: {feat:?}");
    }
    ftp.opts("UTF8", Some("ON")).expect("OPTS UTF8 ON");
    // A failed login, then the right one.
    assert!(ftp.login("alice", "wrong").is_err());
    ftp.login("alice", "alice-pw").expect("login");
    raw(&mut ftp, "ACCT nothing", Status::CommandNotImplemented);
    raw(&mut ftp, "SYST", Status::Name);
    ftp.noop().expect("NOOP");

    // Parameters.
    ftp.transfer_type(FileType::Ascii(FormatControl::Default))
        .expect("TYPE A N");
    ftp.transfer_type(FileType::Local(8)).expect("TYPE L 8");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    raw(&mut ftp, "MODE S", Status::CommandOk);
    raw(&mut ftp, "STRU F", Status::CommandOk);
    raw(&mut ftp, "ALLO 1000000", Status::CommandNotImplemented);
    ftp.opts("MLST", Some("type;size;modify;perm;"))
        .expect("OPTS MLST");

    // Navigation and folders.
    assert_eq!(ftp.pwd().unwrap(), "/");
    assert!(raw(&mut ftp, "XPWD", Status::PathCreated).contains("\"/\""));
    ftp.mkdir("docs").expect("MKD");
    raw(&mut ftp, "XMKD xdocs", Status::PathCreated);
    assert!(home.join("docs").is_dir() && home.join("xdocs").is_dir());
    ftp.cwd("docs").expect("CWD");
    assert_eq!(ftp.pwd().unwrap(), "/docs");
    ftp.cdup().expect("CDUP");
    raw(&mut ftp, "XCWD docs", Status::RequestedFileActionOk);
    raw(&mut ftp, "XCUP", Status::RequestedFileActionOk);
    ftp.cwd("/docs").unwrap();
    ftp.cwd("..").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    assert!(ftp.cwd("missing").is_err());

    // Files: STOR, SIZE, MDTM, RETR.
    let a = random_bytes(1, 200_000);
    ftp.put_file("docs/a.bin", &mut Cursor::new(&a))
        .expect("STOR");
    assert!(std::fs::read(home.join("docs/a.bin")).unwrap() == a);
    assert_eq!(ftp.size("docs/a.bin").unwrap(), a.len());
    ftp.mdtm("docs/a.bin").expect("MDTM");
    let got = ftp.retr_as_buffer("docs/a.bin").expect("RETR").into_inner();
    assert!(got == a, "RETR returned other bytes");
    // APPE.
    let more = random_bytes(2, 50_000);
    ftp.append_file("docs/a.bin", &mut Cursor::new(&more))
        .expect("APPE");
    let mut whole = a.clone();
    whole.extend_from_slice(&more);
    assert!(std::fs::read(home.join("docs/a.bin")).unwrap() == whole);
    // REST + RETR.
    ftp.resume_transfer(100_000).unwrap();
    let tail = ftp
        .retr_as_buffer("docs/a.bin")
        .expect("REST RETR")
        .into_inner();
    assert!(tail == whole[100_000..], "REST RETR returned other bytes");
    // REST + STOR: finish a cut upload.
    let r = random_bytes(3, 120_000);
    ftp.put_file("docs/r.bin", &mut Cursor::new(&r[..70_000]))
        .unwrap();
    ftp.resume_transfer(70_000).unwrap();
    ftp.put_file("docs/r.bin", &mut Cursor::new(&r[70_000..]))
        .expect("REST STOR");
    assert!(std::fs::read(home.join("docs/r.bin")).unwrap() == r);
    // STOU, with and without a base name.
    for cmd in ["STOU", "STOU docs/unique"] {
        let (resp, mut stream) = ftp
            .custom_data_command(cmd, &[Status::AboutToSend])
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        std::io::Write::write_all(&mut stream, b"unique content").unwrap();
        stream.finish().expect("STOU finished");
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        let name = text
            .split("FILE: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{cmd}: no name in {text:?}"))
            .trim()
            .trim_start_matches('/')
            .to_string();
        assert_eq!(
            std::fs::read(home.join(&name)).unwrap(),
            b"unique content",
            "{cmd} {name}"
        );
    }
    // RNFR/RNTO.
    ftp.rename("docs/a.bin", "docs/b.bin").expect("RNFR/RNTO");
    assert!(!home.join("docs/a.bin").exists() && home.join("docs/b.bin").exists());
    // SITE CPFR/CPTO.
    raw(&mut ftp, "SITE CPFR docs/b.bin", Status::RequestFilePending);
    raw(
        &mut ftp,
        "SITE CPTO docs/c.bin",
        Status::RequestedFileActionOk,
    );
    assert!(std::fs::read(home.join("docs/c.bin")).unwrap() == whole);
    // SITE CHMOD.
    ftp.site("CHMOD 640 docs/c.bin").expect("SITE CHMOD");
    let mode_bits = std::fs::metadata(home.join("docs/c.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode_bits & 0o777, 0o640);
    // MFMT.
    let reply = raw(&mut ftp, "MFMT 20200102030405 docs/c.bin", Status::File);
    assert!(reply.contains("20200102030405"), "{reply}");
    let mtime = std::fs::metadata(home.join("docs/c.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime.duration_since(UNIX_EPOCH).unwrap().as_secs(),
        1_577_934_245
    );
    let mdtm = ftp.mdtm("docs/c.bin").unwrap();
    assert_eq!(mdtm.to_string(), "2020-01-02 03:04:05");
    // SITE HELP, HELP.
    raw(&mut ftp, "SITE HELP", Status::Help);
    raw(&mut ftp, "HELP", Status::Help);

    // Listings.
    let list = ftp.list(Some("docs")).expect("LIST");
    assert!(list.iter().any(|l| l.ends_with(" c.bin")), "{list:?}");
    let list = ftp.list(None).expect("LIST");
    assert!(list.iter().any(|l| l.ends_with(" docs")), "{list:?}");
    let names = ftp.nlst(Some("docs")).expect("NLST");
    assert!(names.iter().any(|n| n.ends_with("b.bin")), "{names:?}");
    let pattern = ftp.nlst(Some("docs/*.bin")).expect("NLST pattern");
    assert_eq!(pattern.len(), 3, "{pattern:?}");
    assert!(pattern.iter().all(|n| n.ends_with(".bin")), "{pattern:?}");
    let mlsd = ftp.mlsd(Some("docs")).expect("MLSD");
    let c = mlsd
        .iter()
        .find(|l| l.ends_with(" c.bin"))
        .unwrap_or_else(|| panic!("{mlsd:?}"));
    assert!(c.contains(&format!("size={};", whole.len())), "{c}");
    assert!(c.contains("modify=20200102030405"), "{c}");
    let mlst = ftp.mlst(Some("docs/c.bin")).expect("MLST");
    assert!(mlst.contains("type=file;"), "{mlst}");
    let stat = raw(&mut ftp, "STAT docs", Status::File);
    assert!(stat.contains("c.bin") && stat.contains("b.bin"), "{stat}");

    // DELE, RMD, XRMD.
    ftp.rm("docs/b.bin").expect("DELE");
    assert!(ftp.rm("docs/b.bin").is_err());
    raw(&mut ftp, "XRMD xdocs", Status::RequestedFileActionOk);
    assert!(!home.join("xdocs").exists());
    assert!(ftp.rmdir("docs").is_err(), "RMD of a non-empty folder");
    for name in ftp.nlst(Some("docs")).unwrap() {
        let name = name.rsplit('/').next().unwrap().to_string();
        ftp.rm(format!("docs/{name}")).unwrap();
    }
    ftp.rmdir("docs").expect("RMD");
    assert!(!home.join("docs").exists());

    // EPRT names an active address (used for real over IPv6 below).
    let local = ftp.get_ref().local_addr().unwrap();
    if local.is_ipv4() {
        ftp.eprt(SocketAddr::new(local.ip(), 50_123)).expect("EPRT");
    }
    // REIN logs out.
    raw(&mut ftp, "REIN", Status::Ready);
    assert!(matches!(
        ftp.pwd(),
        Err(FtpError::UnexpectedResponse(r)) if r.status == Status::NotLoggedIn
    ));
    ftp.login("alice", "alice-pw").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.quit().expect("QUIT");

    // Every change is in the audit log.
    server.assert_all_audited(
        "alice",
        &[
            ("mkdir", "/docs"),
            ("mkdir", "/xdocs"),
            ("upload", "/docs/a.bin"),
            ("append", "/docs/a.bin"),
            ("append", "/docs/r.bin"),
            ("rename", "/docs/a.bin"),
            ("copy", "/docs/b.bin"),
            ("chmod", "/docs/c.bin"),
            ("mtime", "/docs/c.bin"),
            ("delete", "/docs/b.bin"),
            ("rmdir", "/xdocs"),
            ("rmdir", "/docs"),
        ],
    );
}

/// [`exercise`] on a new server with alice; returns the server.
fn exercised(mode: Mode) -> Server {
    let server = Server::with_alice(&[]);
    exercise(&server, server.addr(), mode);
    server
}

#[test]
fn passive_mode() {
    exercised(Mode::Passive);
}

#[test]
fn extended_passive_mode() {
    let server = exercised(Mode::ExtendedPassive);
    // EPSV ALL: after it, only EPSV works.
    let mut ftp = server.ftp("alice", Mode::ExtendedPassive);
    raw(&mut ftp, "EPSV ALL", Status::CommandOk);
    server.put("alice", "e.txt", b"epsv all");
    let got = ftp.retr_as_buffer("e.txt").unwrap().into_inner();
    assert_eq!(got, b"epsv all");
    ftp.set_mode(Mode::Passive);
    assert!(ftp.retr_as_buffer("e.txt").is_err(), "PASV after EPSV ALL");
}

#[test]
fn active_mode() {
    exercised(Mode::Active);
}

/// ABOR of running downloads, many times in each mode. suppaftp sends ABOR and closes the
/// data connection at once, so the server may see the broken data connection first and
/// end the transfer with 426 before it reads the ABOR; RFC 959 (4.1.3, ABOR) then wants
/// 226 for the ABOR ("the FTP service command was already completed"), which suppaftp
/// expects after a 426.
#[test]
fn abort_downloads() {
    let server = Server::with_alice(&[]);
    server.put("alice", "big.bin", random_bytes(4, 30 << 20));
    let mut failures = Vec::new();
    for mode in [Mode::Passive, Mode::ExtendedPassive, Mode::Active] {
        let mut ftp = server.ftp("alice", mode);
        ftp.transfer_type(FileType::Binary).unwrap();
        for i in 0..10 {
            let mut stream = ftp.retr_as_stream("big.bin").expect("RETR big");
            let mut buf = vec![0u8; 64 * 1024];
            stream.read_exact(&mut buf).unwrap();
            if let Err(e) = ftp.abort(stream) {
                failures.push(format!("{mode:?} #{i}: {e}"));
                // Resynchronise: the reply suppaftp did not expect was the last one.
            }
            ftp.noop().expect("NOOP after ABOR");
            assert_eq!(ftp.size("big.bin").unwrap(), 30 << 20);
        }
    }
    assert!(
        failures.is_empty(),
        "suppaftp's ABOR failed {} of 30 times:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn passive_port_range() {
    let server = Server::with_alice(&["--passive-ports", "40100-40103"]);
    let mut ftp = server.ftp("alice", Mode::Passive);
    ftp.transfer_type(FileType::Binary).unwrap();
    for i in 0..6u64 {
        let data = random_bytes(i, 10_000);
        ftp.put_file(format!("f{i}"), &mut Cursor::new(&data))
            .unwrap();
        assert!(ftp.retr_as_buffer(&format!("f{i}")).unwrap().into_inner() == data);
    }
    let mut c = server.login("alice");
    for _ in 0..4 {
        let addr = c.pasv_addr();
        assert!((40100..=40103).contains(&addr.port()), "{addr}");
    }
}

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn ipv6_extended_passive_and_active() {
    if !ipv6_available() {
        ferry_tests::skipped("no IPv6 loopback");
        return;
    }
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .listen(&["127.0.0.1:0", "[::1]:0"])
        .start();
    let v6 = server.addrs()[1];
    assert!(v6.is_ipv6());
    for mode in [Mode::ExtendedPassive, Mode::Active] {
        let mut ftp = ftp_connect(v6, "alice", "alice-pw", mode);
        ftp.transfer_type(FileType::Binary).unwrap();
        let data = random_bytes(9, 100_000);
        let name = format!("v6-{mode:?}.bin");
        ftp.put_file(&name, &mut Cursor::new(&data)).unwrap();
        assert!(ftp.retr_as_buffer(&name).unwrap().into_inner() == data);
        assert!(ftp.nlst(None).unwrap().iter().any(|n| n.ends_with(&name)));
        // PASV is for IPv4.
        if mode == Mode::ExtendedPassive {
            ftp.set_mode(Mode::Passive);
            assert!(ftp.nlst(None).is_err());
        }
        ftp.quit().unwrap();
        let rec = server.assert_audited("alice", "upload", &format!("/{name}"));
        assert!(rec.client.starts_with("[::1]:"), "{rec:?}");
    }
    // Exercise everything once over IPv6 in active mode (EPRT).
    exercise(&server, v6, Mode::Active);
}
