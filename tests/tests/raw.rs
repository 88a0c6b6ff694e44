//! Raw control connections (issue 4, item 6e): reply codes, multi-line replies, commands
//! split across packets and pipelined in one write, garbage, over-long lines, and ABOR
//! during a 100 MiB download.

use std::io::{Read as _, Write as _};
use std::thread;
use std::time::{Duration, Instant};

use ferry_tests::{Control, Reply, Server, random_bytes, wait_until};

/// Checks the shape of a reply: CR LF line ends; a multi-line reply opens with `ddd-` and
/// closes with `ddd `.
fn assert_well_formed(r: &Reply) {
    assert!(r.crlf, "every line must end with CR LF: {r:?}");
    let code = r.code.to_string();
    if r.is_multiline() {
        assert!(r.lines[0].starts_with(&format!("{code}-")), "{r:?}");
        let last = r.lines.last().expect("lines");
        assert!(last.starts_with(&format!("{code} ")), "{r:?}");
        for inner in &r.lines[1..r.lines.len() - 1] {
            assert!(
                !inner.starts_with(&format!("{code} ")),
                "an inner line must not look like the last one: {r:?}"
            );
        }
    } else {
        assert!(r.lines[0].starts_with(&format!("{code} ")), "{r:?}");
    }
}

#[test]
fn reply_codes() {
    let server = Server::with_alice(&[]);
    let mut c = server.control();
    // Before login.
    for (cmd, code) in [
        ("SYST", 215),
        ("NOOP", 200),
        ("FEAT", 211),
        ("HELP", 214),
        ("OPTS UTF8 ON", 200),
        ("HOST 127.0.0.1", 220),
        ("PASS nobody-asked", 503),
        ("PBSZ 0", 503),
        ("PROT P", 503),
        ("AUTH TLS", 502),
        ("FROB", 500),
        ("USER alice", 331),
        ("PASS alice-pw", 230),
    ] {
        assert_well_formed(&c.expect(cmd, code));
    }
    server.put("alice", "f.txt", b"hello\n");
    std::fs::create_dir(server.home("alice").join("dir")).unwrap();
    let mut wrong = Vec::new();
    // ABOR with no transfer: 225 (vsftpd) or 226 (RFC 959) are both fine.
    let r = c.cmd("ABOR");
    assert!(r.code == 225 || r.code == 226, "{r:?}");
    for (cmd, code) in [
        ("USER alice", 503),
        ("PASS again", 202),
        ("HOST example.org", 503),
        ("ACCT none", 202),
        ("PWD", 257),
        ("XPWD", 257),
        ("TYPE I", 200),
        ("TYPE A", 200),
        ("TYPE A N", 200),
        ("TYPE L 8", 200),
        ("TYPE E", 504),
        ("TYPE Q", 501),
        ("MODE S", 200),
        ("MODE B", 504),
        ("STRU F", 200),
        ("STRU R", 504),
        ("ALLO 1000", 202),
        ("OPTS UTF8 OFF", 504),
        ("OPTS MLST type;size;", 200),
        ("REST 5", 350),
        ("REST x", 501),
        ("SIZE f.txt", 213),
        ("SIZE dir", 550),
        ("SIZE missing", 550),
        ("MDTM f.txt", 213),
        ("MDTM missing", 550),
        ("CWD missing", 550),
        ("CWD f.txt", 550),
        ("CWD dir", 250),
        ("CDUP", 250),
        ("XCWD dir", 250),
        ("XCUP", 250),
        ("RNTO x", 503),
        ("SITE CPTO x", 503),
        ("SITE FROB", 504),
        ("SITE HELP", 214),
        ("RETR f.txt", 425),
        ("LIST", 425),
        ("STAT", 211),
        ("MLST f.txt", 250),
        ("MLST missing", 550),
        ("MKD dir", 550),
        ("RMD missing", 550),
        ("RMD /", 550),
        ("DELE missing", 550),
        ("DELE dir", 550),
        ("RNFR missing", 550),
        ("MFMT 20200102030405 f.txt", 213),
        ("MFMT 2020 f.txt", 501),
        ("SITE CHMOD 640 f.txt", 200),
        ("SITE CHMOD 99999 f.txt", 501),
        ("EPSV ALL", 200),
        ("PASV", 503),
        ("PORT 127,0,0,1,200,10", 503),
        ("REIN", 220),
        ("PWD", 530),
        ("QUIT", 221),
    ] {
        let r = c.cmd(cmd);
        assert_well_formed(&r);
        if r.code != code {
            wrong.push(format!("{cmd:?}: expected {code}, got {:?}", r.lines));
        }
    }
    assert!(wrong.is_empty(), "wrong replies:\n{}", wrong.join("\n"));
    let (rest, closed) = c.read_to_close(Duration::from_secs(5));
    assert!(closed && rest.is_empty(), "after QUIT: {rest:?}");
}

#[test]
fn multi_line_replies() {
    let server = Server::with_alice(&[]);
    server.put("alice", "one.txt", b"1");
    server.put("alice", "two.txt", b"22");
    let mut c = server.login("alice");

    let feat = c.expect("FEAT", 211);
    assert_well_formed(&feat);
    for f in [
        "EPRT",
        "EPSV",
        "MDTM",
        "MFMT",
        "MLSD",
        "PASV",
        "REST STREAM",
        "SIZE",
        "UTF8",
        "MLST ",
    ] {
        assert!(
            feat.lines.iter().any(|l| l.starts_with(&format!(" {f}"))),
            "FEAT lacks {f}: {feat:?}"
        );
    }
    assert!(
        !feat.text().contains("AUTH TLS"),
        "FEAT offers TLS without a certificate: {feat:?}"
    );

    let help = c.expect("HELP", 214);
    assert_well_formed(&help);
    assert!(help.text().contains("RETR"), "{help:?}");

    let site = c.expect("SITE HELP", 214);
    assert_well_formed(&site);
    assert!(site.text().contains("CPFR"), "{site:?}");

    let stat = c.expect("STAT", 211);
    assert_well_formed(&stat);
    assert!(stat.text().contains("alice"), "{stat:?}");

    let mlst = c.expect("MLST one.txt", 250);
    assert_well_formed(&mlst);
    assert!(mlst.is_multiline(), "{mlst:?}");
    assert!(
        mlst.lines
            .iter()
            .any(|l| l.starts_with(' ') && l.contains("size=1;") && l.ends_with(" /one.txt")),
        "{mlst:?}"
    );

    // STAT with a path: the listing comes in the reply.
    let stat = c.expect("STAT /", 213);
    assert_well_formed(&stat);
    let body = stat.text();
    assert!(
        body.contains("one.txt") && body.contains("two.txt"),
        "{stat:?}"
    );
    let stat = c.expect("STAT two.txt", 213);
    assert_well_formed(&stat);
    assert!(stat.text().contains("two.txt"), "{stat:?}");
    assert!(c.cmd("STAT missing").code >= 450);
    c.expect("NOOP", 200);
}

#[test]
fn commands_split_across_packets_and_pipelined() {
    let server = Server::with_alice(&[]);
    let mut c = server.control();
    // One command in pieces, with pauses between them. (The pauses are what is tested, so
    // that each piece arrives alone: sleeps, not waits for a condition.)
    for piece in [&b"US"[..], b"ER al", b"ice", b"\r", b"\n"] {
        c.send_raw(piece);
        thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(c.read_reply().code, 331);
    // Byte by byte.
    for b in b"PASS alice-pw\r\n" {
        c.send_raw(&[*b]);
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.read_reply().code, 230);

    // Many commands in one write: answered in order, one reply each.
    c.send_raw(b"NOOP\r\nSYST\r\nPWD\r\nTYPE I\r\nMKD piped\r\nCWD piped\r\nPWD\r\nCDUP\r\nRMD piped\r\nNOOP\r\n");
    let codes: Vec<u16> = (0..10).map(|_| c.read_reply().code).collect();
    assert_eq!(codes, [200, 215, 257, 200, 257, 250, 257, 250, 250, 200]);

    // Bare LF line ends and lower-case verbs.
    c.send_raw(b"noop\nsyst\n");
    assert_eq!(c.read_reply().code, 200);
    assert_eq!(c.read_reply().code, 215);

    // A whole login and a transfer pipelined in one write on a fresh connection.
    server.put("alice", "p.bin", b"pipelined");
    let mut c2 = server.control();
    c2.send_raw(b"USER alice\r\nPASS alice-pw\r\nTYPE I\r\nSIZE p.bin\r\n");
    let codes: Vec<u16> = (0..4).map(|_| c2.read_reply().code).collect();
    assert_eq!(codes, [331, 230, 200, 213]);
    assert_eq!(c2.retr("p.bin"), b"pipelined");
}

#[test]
fn garbage_gets_replies_and_the_session_goes_on() {
    let server = Server::with_alice(&[]);
    let mut c = server.login("alice");
    let mut lines: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   ".to_vec(),
        b"\x00\x00\x00".to_vec(),
        b"\xff\xfe\xfd garbage".to_vec(),
        b"NOOP\x00extra".to_vec(),
        b"RETR \xc3\x28".to_vec(),
        b"\x1b[31mred".to_vec(),
        b"PORT 1,2,3".to_vec(),
        b"PORT 999,0,0,1,4,1".to_vec(),
        b"EPRT |9|127.0.0.1|5000|".to_vec(),
        b"EPRT garbage".to_vec(),
        b"REST -1".to_vec(),
        b"REST 99999999999999999999999".to_vec(),
        b"TYPE".to_vec(),
        b"MFMT".to_vec(),
        b"SITE".to_vec(),
        b"SITE CHMOD".to_vec(),
        b"USER".to_vec(),
        "CWD \u{202e}evil".as_bytes().to_vec(),
    ];
    for seed in 0..20u64 {
        let mut g = random_bytes(seed, 1 + (seed as usize * 37) % 300);
        g.retain(|b| *b != b'\n' && *b != b'\r' && *b != 0xff);
        lines.push(g);
    }
    for line in &lines {
        let mut bytes = line.clone();
        bytes.extend_from_slice(b"\r\n");
        c.send_raw(&bytes);
        let r = c.read_reply();
        assert!(
            (200..600).contains(&r.code),
            "{:?} got {r:?}",
            String::from_utf8_lossy(line)
        );
        assert!(r.crlf);
    }
    // Telnet sequences are removed: IAC IP IAC DM before a command.
    c.send_raw(b"\xff\xf4\xff\xf2NOOP\r\n");
    assert_eq!(c.read_reply().code, 200);
    // IAC WILL x inside a verb.
    c.send_raw(b"NO\xff\xfb\x01OP\r\n");
    assert_eq!(c.read_reply().code, 200);
    c.expect("NOOP", 200);
    // The server is fine for others too.
    let mut other = server.login("alice");
    other.expect("PWD", 257);
}

#[test]
fn over_long_lines() {
    let server = Server::with_alice(&[]);
    let mut c = server.login("alice");
    // Exactly the limit (4096 bytes without CR LF) is a command.
    let at_limit = format!("SIZE {}", "a".repeat(4096 - 5));
    assert_eq!(at_limit.len(), 4096);
    let r = c.cmd(&at_limit);
    assert!(r.code == 550 || r.code == 553, "{r:?}");
    // One more byte is too long: one 500, and the line's tail is not run as a command.
    let over = format!("NOOP {}\r\nNOOP", "x".repeat(4096 - 5 + 1));
    c.send_raw(over.as_bytes());
    c.send_raw(b"\r\n");
    assert_eq!(c.read_reply().code, 500);
    assert_eq!(c.read_reply().code, 200);
    // A line of 1 MiB whose tail looks like a command: one 500, then the next command.
    let mut big = vec![b'A'; 1 << 20];
    big.extend_from_slice(b" DELE important\r\nNOOP\r\n");
    server.put("alice", "important", b"keep");
    c.send_raw(&big);
    let r = c.read_reply();
    assert_eq!(r.code, 500, "{r:?}");
    assert_eq!(c.read_reply().code, 200);
    assert!(server.home("alice").join("important").exists());
    // A path longer than the longest path (but within a line) is refused cleanly.
    let deep = format!("MKD {}", "d/".repeat(2040));
    let r = c.cmd(&deep);
    assert!(r.code >= 500, "{r:?}");
    c.expect("NOOP", 200);
}

#[test]
fn abor_stops_a_100_mib_download() {
    let server = Server::with_alice(&[]);
    let size = 100usize << 20;
    let content = random_bytes(42, size);
    server.put("alice", "big.bin", &content);
    let mut c = server.login("alice");
    let mut data = c.data_in("I", "RETR big.bin");
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    while got < 2 << 20 {
        let n = data.read(&mut buf).expect("reading the download");
        assert!(n > 0, "download ended early");
        got += n;
    }
    // The transfer is running: the control connection still answers.
    c.expect("NOOP", 200);
    let stat = c.cmd("STAT");
    assert!(stat.code == 213 || stat.code == 211, "{stat:?}");
    // ABOR the way clients send it: Telnet IP and Synch first. We stop reading the data
    // connection meanwhile, so the server is blocked writing to it.
    let started = Instant::now();
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    let first = c.read_reply();
    let replies = if first.code == 426 {
        vec![first.code, c.read_reply().code]
    } else {
        vec![first.code]
    };
    assert_eq!(replies.last(), Some(&226), "{replies:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "ABOR took {:?}",
        started.elapsed()
    );
    // The data connection is closed: what was buffered drains, then the end.
    let drain_start = Instant::now();
    loop {
        match data.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(drain_start.elapsed() < Duration::from_secs(10));
    }
    assert!(got < size, "the whole file was sent despite ABOR");
    // The session is still usable.
    c.expect("NOOP", 200);
    server.put("alice", "small.bin", b"after abort");
    assert_eq!(c.retr("small.bin"), b"after abort");
    // And a full download of the big file still matches.
    let mut data = c.data_command("RETR big.bin");
    let mut all = Vec::with_capacity(size);
    data.read_to_end(&mut all).unwrap();
    assert_eq!(c.read_reply().code, 226);
    assert!(all == content, "the full download differs");
    server.wait_log(&["transfer failed", "big.bin"], Duration::from_secs(5));
}

/// RFC 959 4.1.3 (ABOR): "the FTP service command was already completed": the server
/// closes the data connection and replies 226. Here the client's data connection broke
/// (426) just before its ABOR arrived, as happens when a client sends ABOR and closes
/// the data connection at once.
#[test]
fn abor_after_a_broken_transfer_gets_226() {
    let server = Server::with_alice(&[]);
    server.put("alice", "big.bin", random_bytes(5, 20 << 20));
    let mut c = server.login("alice");
    let mut data = c.data_in("I", "RETR big.bin");
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).unwrap();
    ferry_tests::reset(data);
    let r = c.read_reply();
    assert_eq!(r.code, 426, "{r:?}");
    let r = c.cmd("ABOR");
    assert_eq!(
        r.code, 226,
        "ABOR right after a transfer ended must be 226 (RFC 959 4.1.3); clients such as \
         suppaftp expect 426 then 226: {r:?}"
    );
    c.expect("NOOP", 200);
}

#[test]
fn abor_during_an_upload_keeps_the_old_file() {
    let server = Server::with_alice(&[]);
    let keep = server.put("alice", "keep.bin", b"old content");
    let mut c = server.login("alice");
    let mut data = c.data_in("I", "STOR keep.bin");
    // Past the first MiB: the rest is read on a bulk thread, which must notice ABOR.
    data.write_all(&random_bytes(1, 3 << 20)).unwrap();
    c.send_raw(b"ABOR\r\n");
    let first = c.read_reply();
    if first.code == 426 {
        assert_eq!(c.read_reply().code, 226);
    } else {
        assert_eq!(first.code, 226, "{first:?}");
    }
    drop(data);
    c.expect("NOOP", 200);
    assert_eq!(std::fs::read(&keep).unwrap(), b"old content");
    assert!(ferry_tests::temporaries(&server.home("alice")).is_empty());
}

/// MFMT answers `213 Modify=<time>` for the time it set; a time the file system cannot
/// hold (ext4 and tmpfs keep 1901-12-13 to 2446-05-10) must not be reported as set: the
/// reply gives the time the file really has.
#[test]
fn mfmt_reports_the_time_it_set() {
    let server = Server::with_alice(&[]);
    server.put("alice", "f.txt", b"f");
    let mut c = server.login("alice");
    let mut wrong = Vec::new();
    for t in [
        "20240229120000",
        "19700101000000",
        "19000101000000",
        "99991231235959",
    ] {
        let r = c.cmd(&format!("MFMT {t} f.txt"));
        if r.code != 213 {
            continue; // refusing a time it cannot set is fine
        }
        // The reply names the time the file now has (clamped by the file system if it
        // must be), and MDTM agrees with it.
        let reported = r.lines[0]
            .strip_prefix("213 Modify=")
            .and_then(|s| s.split(';').next())
            .unwrap_or_default()
            .to_owned();
        let mdtm = c.expect("MDTM f.txt", 213);
        if mdtm.lines[0] != format!("213 {reported}") {
            wrong.push(format!("{:?} but then {:?}", r.lines[0], mdtm.lines[0]));
        }
    }
    assert!(
        wrong.is_empty(),
        "MFMT claimed times it did not set:\n{}",
        wrong.join("\n")
    );
}

/// Names with quotes, spaces, non-ASCII letters; and the prefix of upload temporaries,
/// which no client may use.
#[test]
fn unusual_names() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let mut c = server.login("alice");
    let r = c.expect("MKD we\"ird", 257);
    assert_eq!(r.lines[0], "257 \"/we\"\"ird\" created.");
    c.expect("CWD we\"ird", 250);
    assert_eq!(
        c.expect("PWD", 257).lines[0],
        "257 \"/we\"\"ird\" is the current directory."
    );
    c.expect("CDUP", 250);
    c.stor("héllo wörld €.txt", b"unicode");
    c.stor("  two leading spaces", b"spaces");
    c.stor("trailing space ", b"trailing");
    assert_eq!(
        std::fs::read(home.join("héllo wörld €.txt")).unwrap(),
        b"unicode"
    );
    assert_eq!(
        std::fs::read(home.join("  two leading spaces")).unwrap(),
        b"spaces"
    );
    assert_eq!(
        std::fs::read(home.join("trailing space ")).unwrap(),
        b"trailing"
    );
    let (_, names) = c.listing("NLST");
    for n in [
        "héllo wörld €.txt",
        "  two leading spaces",
        "trailing space ",
        "we\"ird",
    ] {
        assert!(names.lines().any(|l| l == n), "{n:?} not in {names:?}");
    }
    let (_, mlsd) = c.listing("MLSD");
    assert!(mlsd.contains("; héllo wörld €.txt\r\n"), "{mlsd:?}");
    assert_eq!(c.retr("héllo wörld €.txt"), b"unicode");
    // The temporaries' prefix is refused everywhere.
    c.expect_each(
        &[
            "MKD .ferry-tmp.dir",
            "SIZE .ferry-tmp.x",
            "DELE .ferry-tmp.x",
            "MKD sub/.ferry-tmp.y",
        ],
        |r| r.code == 553 || r.code == 550,
    );
    c.expect("RNFR héllo wörld €.txt", 350);
    c.expect("RNTO .ferry-tmp.evil", 553);
    let _data = c.pasv();
    c.expect("STOR .ferry-tmp.evil", 553);
    assert!(ferry_tests::temporaries(&home).is_empty());
}

/// The greeting a new connection to `addr` gets, if it gets one that opens a session (220).
fn late_greeting(addr: std::net::SocketAddr) -> Option<Reply> {
    let s = std::net::TcpStream::connect(addr).ok()?;
    let mut late = Control::from_stream(s);
    late.set_read_timeout(Duration::from_secs(2));
    late.try_read_reply().ok().filter(|r| r.code == 220)
}

/// SIGTERM: no new sessions, idle sessions are told 421, a running download finishes,
/// then the server exits.
#[test]
fn sigterm_lets_a_running_transfer_finish() {
    let mut server = Server::with_alice(&["--shutdown-grace", "10"]);
    let size = 30usize << 20;
    let content = random_bytes(8, size);
    server.put("alice", "big.bin", &content);
    let mut idle = server.login("alice");
    let mut c = server.login("alice");
    let mut data = c.data_in("I", "RETR big.bin");
    let mut got = vec![0u8; 1 << 20];
    data.read_exact(&mut got).unwrap();
    server.terminate();
    // The idle session is closed at once.
    let r = idle.read_reply();
    assert_eq!(r.code, 421, "{r:?}");
    // New connections are not served, once the server has stopped accepting them.
    let mut greeted = None;
    let refused = wait_until(Duration::from_secs(5), || {
        greeted = late_greeting(server.addr());
        greeted.is_none()
    });
    assert!(refused, "a new session after SIGTERM: {greeted:?}");
    // The download completes.
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert!(
        got == content,
        "the download was cut: {} of {size} bytes",
        got.len()
    );
    assert_eq!(c.read_reply().code, 226);
    let r = c.read_reply();
    assert_eq!(r.code, 421, "{r:?}");
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after the transfer: {status:?}"
    );
}

#[test]
fn type_a_converts_line_ends() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    server.put("alice", "unix.txt", b"one\ntwo\n\nthree");
    let mut c = server.login("alice");
    // Download in ASCII: LF becomes CR LF on the wire.
    assert_eq!(c.retr_as("A", "unix.txt"), b"one\r\ntwo\r\n\r\nthree");
    // Upload in ASCII: CR LF becomes LF on disk.
    let mut data = c.data_command("STOR dos.txt");
    data.write_all(b"a\r\nb\r\n\r\nc").unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    assert_eq!(std::fs::read(home.join("dos.txt")).unwrap(), b"a\nb\n\nc");
    // In binary nothing changes.
    assert_eq!(c.retr("unix.txt"), b"one\ntwo\n\nthree");
    c.stor("bin.txt", b"x\r\ny");
    assert_eq!(std::fs::read(home.join("bin.txt")).unwrap(), b"x\r\ny");
}

#[test]
fn idle_sessions_are_closed() {
    let server = Server::with_alice(&["--idle-timeout", "1"]);
    let mut c = server.login("alice");
    let started = Instant::now();
    let r = c.read_reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let (_, closed) = c.read_to_close(Duration::from_secs(3));
    assert!(closed);
    // Other connections still work.
    let mut other = server.control();
    other.expect("NOOP", 200);
}

/// Past its first MiB an upload goes on on a bulk thread: whole uploads, writes at an offset
/// (REST + STOR), appends and ASCII uploads (converted as they go) all arrive byte for byte
/// across that hand-over, and the audit log counts every byte. The file comes back whole, and
/// from an offset past its first MiB (REST + RETR: the corked download on its own thread).
#[test]
fn large_uploads_arrive_byte_for_byte() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let mut c = server.login("alice");
    // An odd size, sent in odd pieces.
    let whole = random_bytes(41, (5 << 20) + 1234);
    let mut data = c.data_in("I", "STOR big.bin");
    for piece in whole.chunks(77_777) {
        data.write_all(piece).unwrap();
    }
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    assert!(std::fs::read(home.join("big.bin")).unwrap() == whole);
    assert!(c.retr("big.bin") == whole);
    // A download resumed past its first MiB: the rest is sent corked on a thread of its own,
    // and its last, partial segment arrives with the end of the transfer.
    let from = (1 << 20) + 5;
    c.expect(&format!("REST {from}"), 350);
    let mut data = c.data_command("RETR big.bin");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.read_reply().code, 226);
    assert!(got == whole[from..]);
    // Resumed past the first MiB of this transfer, at an offset of 3 MiB.
    let tail = random_bytes(42, 3 << 20);
    c.expect(&format!("REST {}", 3 << 20), 350);
    let mut data = c.data_command("STOR big.bin");
    data.write_all(&tail).unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    let mut want = whole[..3 << 20].to_vec();
    want.extend_from_slice(&tail);
    assert!(std::fs::read(home.join("big.bin")).unwrap() == want);
    // An append of 2 MiB.
    let more = random_bytes(43, 2 << 20);
    let mut data = c.data_in("I", "APPE big.bin");
    data.write_all(&more).unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    want.extend_from_slice(&more);
    assert!(std::fs::read(home.join("big.bin")).unwrap() == want);
    // 3 MiB in ASCII: CR LF becomes LF all the way through.
    let text = b"line of text\r\n".repeat((3 << 20) / 14);
    let mut data = c.data_in("A", "STOR text.txt");
    data.write_all(&text).unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    let on_disk = std::fs::read(home.join("text.txt")).unwrap();
    assert!(on_disk == b"line of text\n".repeat((3 << 20) / 14));
    // The audit log has each upload's bytes as they were written (a write at an offset is
    // an append there).
    for (op, path, bytes) in [
        ("upload", "/big.bin", whole.len()),
        ("append", "/big.bin", tail.len()),
        ("append", "/big.bin", more.len()),
        ("upload", "/text.txt", on_disk.len()),
    ] {
        server.wait_audit(&format!("{op} {path} {bytes}"), |r| {
            r.op == op && r.path == path && r.bytes == Some(bytes as u64) && r.result == "ok"
        });
    }
}
