//! Hostile clients (issue 5, item 2): connection floods, slow and endless lines, password
//! guessing, FTP bounce, passive port hijacking, commands before login, path traversal
//! (also through symlinks planted on disk), one user reaching for another's files, clients
//! that vanish in the middle of a transfer, and an audit log that cannot be written.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ferry_tests::{
    AuditRecord, Control, OTHER_HOST, Server, ServerBuilder, random_bytes, reset, set_mtime,
    sha256_file, snapshot, tcp_connect_from, temporaries, wait_until,
};

// ---------------------------------------------------------------------------------------
// Floods and slow clients
// ---------------------------------------------------------------------------------------

#[test]
fn per_address_connection_limit() {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..1000 {
        let mut c = Control::connect(server.addr());
        let r = c.read_reply();
        match r.code {
            220 => held.push(c),
            421 => {
                assert!(r.text().contains("your address"), "{r:?}");
                refused += 1;
            }
            _ => panic!("connection {i}: {r:?}"),
        }
    }
    assert_eq!(held.len(), 50, "the default per-address limit is 50");
    assert_eq!(refused, 950);
    // Another address is not affected: it logs in and works.
    let mut other = Control::connect_from(OTHER_HOST, server.addr());
    assert_eq!(other.read_reply().code, 220);
    other.login("bob", "bob-pw");
    other.stor("from-other.txt", b"still works");
    assert_eq!(other.retr("from-other.txt"), b"still works");
    // The held connections still work too.
    held[0].login("alice", "alice-pw");
    held[0].expect("PWD", 257);
    server.wait_log(
        &["connection refused", "TooManyFromAddress"],
        Duration::from_secs(5),
    );
    // Once they close, the address may connect again.
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let mut c = Control::connect(server.addr());
            c.try_read_reply().is_ok_and(|r| r.code == 220)
        }),
        "the address stays refused after its connections closed"
    );
}

#[test]
fn slow_clients_and_endless_lines() {
    let server = Server::with_alice(&["--idle-timeout", "3"]);
    // A slow but honest client: a command at one byte per 250 ms is answered. (The pause
    // between bytes is what is tested: a sleep, not a wait for a condition.)
    let mut slow = server.login("alice");
    for b in b"NOOP\r\n" {
        slow.send_raw(&[*b]);
        thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(slow.read_reply().code, 200);

    // An endless line sent as fast as possible: memory stays bounded, the line gets one
    // 500 when it finally ends, and the session goes on.
    let mut endless = server.login("alice");
    let rss_before = server.rss_kib();
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..(32 * 1024 / 64) {
        endless.send_raw(&chunk);
    }
    endless.send_raw(b"\r\nNOOP\r\n");
    assert_eq!(endless.read_reply().code, 500);
    assert_eq!(endless.read_reply().code, 200);
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 8 * 1024,
        "32 MiB without a line end grew the server from {rss_before} KiB to {rss_after} KiB"
    );

    // A slowloris trickling one byte at a time into a line that never ends: the idle
    // timeout closes it although bytes keep coming.
    let mut loris = server.login("alice");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if loris.try_send_raw(b"x").is_err() {
            closed = true;
            break;
        }
        loris.set_read_timeout(Duration::from_millis(200));
        match loris.try_read_reply() {
            Ok(r) => {
                assert_eq!(r.code, 421, "{r:?}");
                closed = true;
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a never-ending trickle kept the session open for 10 s"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(7),
        "closed after {took:?} with an idle timeout of 3 s"
    );
    // Others were served all along.
    let mut c = server.login("alice");
    c.expect("NOOP", 200);
}

#[test]
fn absent_and_stalled_data_connections_time_out() {
    let server = Server::with_alice(&["--data-timeout", "1", "--stall-timeout", "1"]);
    let home = server.home("alice");
    server.put("alice", "big.bin", random_bytes(1, 64 << 20));
    server.put("alice", "keep.bin", b"old");
    let mut c = server.login("alice");
    c.expect("TYPE I", 200);
    // PASV, then a transfer, but the client never connects: 425 after the data timeout.
    let _ = c.pasv_addr();
    let t = Instant::now();
    c.transfer_ends("RETR big.bin", 425);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // An active address nobody listens on: 425 too.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    c.expect(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff), 200);
    c.transfer_ends("RETR big.bin", 425);
    // A download the client stops reading: 426 after the stall timeout.
    let data = c.pasv();
    let t = Instant::now();
    c.transfer_ends("RETR big.bin", 426);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    drop(data);
    // An upload that stops sending: 426, and the old file stays; a short one, and one past
    // the first MiB (which goes on on a bulk thread).
    for sent in [7, 3 << 20] {
        let mut data = c.data_command("STOR keep.bin");
        data.write_all(&random_bytes(2, sent)).unwrap();
        let t = Instant::now();
        let r = c.read_reply();
        assert_eq!(r.code, 426, "{sent} bytes: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        drop(data);
        assert_eq!(std::fs::read(home.join("keep.bin")).unwrap(), b"old");
        assert!(wait_until(Duration::from_secs(3), || temporaries(&home).is_empty()));
        c.expect("NOOP", 200);
    }
}

// ---------------------------------------------------------------------------------------
// Password guessing
// ---------------------------------------------------------------------------------------

/// Sends a wrong password and returns the reply and how long it took.
fn guess(c: &mut Control, user: &str, password: &str) -> (u16, Duration) {
    c.expect(&format!("USER {user}"), 331);
    let t = Instant::now();
    let r = c.cmd(&format!("PASS {password}"));
    (r.code, t.elapsed())
}

#[test]
fn password_guessing_is_slowed_cut_off_and_banned() {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args([
            "--login-failure-delay-ms",
            "100",
            "--max-login-failures",
            "3",
            "--max-failures-per-ip",
            "6",
            "--ban-time",
            "600",
        ])
        .start();
    let mut c = server.control();
    let (c1, t1) = guess(&mut c, "alice", "wrong-1");
    let (c2, t2) = guess(&mut c, "nobody", "wrong-2");
    assert_eq!((c1, c2), (530, 530));
    assert!(t1 >= Duration::from_millis(90), "first delay {t1:?}");
    assert!(t2 >= Duration::from_millis(190), "second delay {t2:?}");
    c.expect("USER alice", 331);
    let t = Instant::now();
    c.send("PASS wrong-3");
    let r = c.read_reply();
    assert_eq!(r.code, 530, "{r:?}");
    let t3 = t.elapsed();
    assert!(t3 >= Duration::from_millis(390), "third delay {t3:?}");
    assert!(t1 < t2 && t2 < t3, "delays must grow: {t1:?} {t2:?} {t3:?}");
    let r = c.read_reply();
    assert_eq!(r.code, 421, "cut off after 3 failures: {r:?}");
    let (_, closed) = c.read_to_close(Duration::from_secs(3));
    assert!(closed);

    // A correct login from another address works at once.
    let t = Instant::now();
    let mut other = Control::connect_from(OTHER_HOST, server.addr());
    assert_eq!(other.read_reply().code, 220);
    other.login("alice", "alice-pw");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );

    // Pipelined guesses don't get around the delay: the correct password is the fifth
    // guess, and the connection is closed after the third.
    let mut c = server.control();
    let t = Instant::now();
    let mut burst = String::new();
    for pw in ["w1", "w2", "w3", "w4", "alice-pw", "w6"] {
        burst.push_str(&format!("USER alice\r\nPASS {pw}\r\n"));
    }
    c.send_raw(burst.as_bytes());
    let (text, closed) = c.read_to_close(Duration::from_secs(5));
    assert!(closed, "{text}");
    assert!(!text.contains("230"), "a pipelined guess got in: {text}");
    assert_eq!(text.matches("530 ").count(), 3, "{text}");
    assert!(text.contains("421 "), "{text}");
    assert!(
        t.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t.elapsed()
    );

    // Six failures from 127.0.0.1: the address is refused at the greeting, even with the
    // right password ...
    server.wait_log(&["too many failed logins"], Duration::from_secs(5));
    let mut banned = Control::connect(server.addr());
    let r = banned.read_reply();
    assert_eq!(r.code, 421, "{r:?}");
    // ... while another address still logs in at once.
    let t = Instant::now();
    let mut other = Control::connect_from(OTHER_HOST, server.addr());
    assert_eq!(other.read_reply().code, 220);
    other.login("alice", "alice-pw");
    other.expect("PWD", 257);
    assert!(t.elapsed() < Duration::from_secs(2));
    // The password never reaches the log.
    assert!(!server.log_text().contains("wrong-1"));
    assert!(!server.log_text().contains("alice-pw"));
}

#[test]
fn unknown_users_and_wrong_passwords_look_the_same() {
    let server = Server::with_alice(&["--login-failure-delay-ms", "0"]);
    let mut c = server.control();
    c.expect("USER alice", 331);
    let wrong = c.cmd("PASS nope");
    let mut c = server.control();
    let unknown_user = c.expect("USER nosuchuser", 331);
    let unknown = c.cmd("PASS nope");
    assert_eq!(wrong, unknown);
    assert_eq!(unknown_user.code, 331);
}

// ---------------------------------------------------------------------------------------
// FTP bounce and passive hijacking
// ---------------------------------------------------------------------------------------

#[test]
fn ftp_bounce_is_refused() {
    let server = Server::with_alice(&[]);
    // A listener on another host (127.0.0.2) that the server must never connect to.
    let victim = TcpListener::bind((OTHER_HOST, 0)).unwrap();
    victim.set_nonblocking(true).unwrap();
    let vp = victim.local_addr().unwrap().port();
    let mut c = server.login("alice");
    let foreign_port = format!("PORT 127,0,0,2,{},{}", vp >> 8, vp & 0xff);
    let foreign_eprt = format!("EPRT |1|127.0.0.2|{vp}|");
    let v6_eprt = format!("EPRT |2|::1|{vp}|");
    let mut wrong = Vec::new();
    for (cmd, codes) in [
        (foreign_port.as_str(), &[504][..]),
        (foreign_eprt.as_str(), &[504]),
        (v6_eprt.as_str(), &[504, 522]),
        ("PORT 0,0,0,0,200,1", &[504]),
        ("PORT 255,255,255,255,200,1", &[504]),
        ("PORT 127,0,0,1,0,21", &[504]),
        ("PORT 127,0,0,1,0,0", &[504, 501]),
        ("PORT 127,0,0,1,3,255", &[504]),
        ("EPRT |1|127.0.0.1|80|", &[504]),
        ("EPRT |1|127.0.0.1|0|", &[504, 501]),
        ("PORT 127,0,0,1,300,1", &[501]),
        ("PORT 127,0,0,1,4", &[501]),
        ("PORT 127,0,0,1,4,1,9", &[501]),
        ("PORT a,b,c,d,e,f", &[501]),
        ("PORT -127,0,0,1,4,1", &[501]),
        ("PORT 127.0.0.1,4,1", &[501]),
        ("PORT", &[501]),
        ("EPRT |1|999.0.0.1|5000|", &[501]),
        ("EPRT |1|127.0.0.1|70000|", &[501]),
        ("EPRT |3|127.0.0.1|5000|", &[501, 522]),
        ("EPRT |1|::1|5000|", &[501, 522]),
        ("EPRT 1|127.0.0.1|5000", &[501]),
        ("EPRT", &[501]),
    ] {
        let r = c.cmd(cmd);
        if !codes.contains(&r.code) {
            wrong.push(format!("{cmd}: expected {codes:?}, got {:?}", r.lines));
        }
        // No data connection was set up by the refused command.
        let r = c.cmd("LIST");
        if r.code != 425 {
            wrong.push(format!("LIST after {cmd}: expected 425, got {:?}", r.lines));
            if r.code == 150 {
                let _ = c.read_reply();
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A PORT to the client itself works.
    let mine = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = mine.local_addr().unwrap().port();
    c.expect(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff), 200);
    c.expect("NLST", 150);
    let (mut s, _) = mine.accept().unwrap();
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_end(&mut buf).unwrap();
    assert_eq!(c.read_reply().code, 226);
    // The session runs its commands in order: now that the data connection of this last
    // PORT has come, one to the victim from any command before it would have come too.
    assert!(
        victim.accept().is_err(),
        "the server connected to another host"
    );
}

/// Waits until the server has logged that it refused the data connection `thief`.
fn wait_refused(server: &Server, thief: &TcpStream) {
    let intruder = format!("intruder={}", thief.local_addr().unwrap());
    server.wait_log(
        &["refused a data connection", &intruder],
        Duration::from_secs(5),
    );
}

#[test]
fn passive_hijack_is_refused_and_the_real_transfer_works() {
    let server = Server::with_alice(&[]);
    let content = random_bytes(7, 300_000);
    server.put("alice", "prize.bin", &content);
    for command in ["PASV", "EPSV"] {
        let mut c = server.login("alice");
        c.expect("TYPE I", 200);
        let r = c.cmd(command);
        let port = if command == "PASV" {
            assert_eq!(r.code, 227, "{r:?}");
            ferry_tests::parse_pasv(&r.lines[0]).unwrap().port()
        } else {
            assert_eq!(r.code, 229, "{r:?}");
            ferry_tests::parse_epsv(&r.lines[0]).unwrap()
        };
        let target = SocketAddr::new(server.addr().ip(), port);
        // The thief connects first, from another address.
        let thief = tcp_connect_from(OTHER_HOST, target).expect("thief connects");
        c.expect("RETR prize.bin", 150);
        // The server takes the thief's connection first, and refuses it.
        wait_refused(&server, &thief);
        let real = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
        only_the_real_client_gets(&mut c, real, thief, &content, command);
        // A thief uploading to an upload's passive port gets nothing in either.
        let mut data_port = c.pasv_addr();
        data_port.set_ip(server.addr().ip());
        let mut thief = tcp_connect_from(OTHER_HOST, data_port).expect("thief connects");
        c.expect("STOR upload.bin", 150);
        wait_refused(&server, &thief);
        let _ = thief.write_all(b"EVIL BYTES");
        drop(thief);
        let mut real = TcpStream::connect_timeout(&data_port, Duration::from_secs(5)).unwrap();
        real.write_all(b"good bytes").unwrap();
        drop(real);
        assert_eq!(c.read_reply().code, 226);
        assert_eq!(
            std::fs::read(server.home("alice").join("upload.bin")).unwrap(),
            b"good bytes"
        );
    }
    let line = server.wait_log(
        &["refused a data connection", "127.0.0.2"],
        Duration::from_secs(5),
    );
    assert!(line.contains("127.0.0.1"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Before login
// ---------------------------------------------------------------------------------------

#[test]
fn commands_before_login_get_530() {
    let server = Server::with_alice(&["--login-failure-delay-ms", "0"]);
    let home = server.home("alice");
    server.put("alice", "file.txt", b"data");
    std::fs::create_dir(home.join("dir")).unwrap();
    let before = snapshot(server.data_dir());
    let commands = [
        "SITE CPFR /etc/passwd",
        "SITE CPTO /tmp/owned.txt",
        "SITE CPFR file.txt",
        "SITE CPTO copy.txt",
        "SITE CHMOD 777 file.txt",
        "SITE HELP",
        "RNFR file.txt",
        "RNTO renamed.txt",
        "STOR new.txt",
        "STOU",
        "APPE file.txt",
        "DELE file.txt",
        "MKD newdir",
        "XMKD newdir",
        "RMD dir",
        "XRMD dir",
        "RETR file.txt",
        "LIST",
        "NLST",
        "MLSD",
        "MLST file.txt",
        "STAT file.txt",
        "STAT",
        "SIZE file.txt",
        "MDTM file.txt",
        "MFMT 20000101000000 file.txt",
        "CWD dir",
        "XCWD dir",
        "CDUP",
        "XCUP",
        "PWD",
        "XPWD",
        "TYPE I",
        "MODE S",
        "STRU F",
        "PASV",
        "EPSV",
        "EPSV ALL",
        "PORT 127,0,0,1,200,1",
        "EPRT |1|127.0.0.1|51201|",
        "REST 1",
        "ALLO 10",
        "ACCT x",
        "ABOR",
        "REIN",
    ];
    let mut wrong = Vec::new();
    let mut check = |c: &mut Control, stage: &str| {
        for cmd in commands {
            let r = c.cmd(cmd);
            if r.code != 530 {
                wrong.push(format!("{stage}: {cmd}: {:?}", r.lines));
            }
        }
    };
    let mut c = server.control();
    check(&mut c, "fresh");
    c.expect("USER alice", 331);
    check(&mut c, "after USER");
    c.expect("USER alice", 331);
    c.expect("PASS wrong", 530);
    check(&mut c, "after a failed login");
    // The CVE-2015-3306 shape, pipelined in one write.
    let mut c = server.control();
    c.send_raw(b"SITE CPFR /etc/passwd\r\nSITE CPTO /home/alice/passwd.txt\r\nNOOP\r\n");
    assert_eq!(c.read_reply().code, 530);
    assert_eq!(c.read_reply().code, 530);
    assert_eq!(c.read_reply().code, 200);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing changed, nothing was audited.
    let mut after = snapshot(server.data_dir());
    let mut before = before;
    before.remove("audit.log");
    after.remove("audit.log");
    assert_eq!(before, after);
    assert!(server.audit().is_empty(), "{:?}", server.audit());
}

// ---------------------------------------------------------------------------------------
// Traversal and symlinks
// ---------------------------------------------------------------------------------------

const SECRET: &str = "SENTINEL-SECRET-CONTENT-7f3a";
const BOB_SECRET: &str = "BOB-SECRET-CONTENT-91c2";

/// Everything a test must never see: contents, names, sizes and times of files outside
/// the home. Names that the probed path itself spells are left out (the server may echo
/// the path back, normalised inside the home).
fn forbidden(probed: &str) -> Vec<&'static str> {
    [
        SECRET,
        BOB_SECRET,
        "sentinel-secret",
        "sentinel-sub",
        "inner.txt",
        "bob-secret",
        "root:x:0:0",
        "213 7777",
        " 7777 ",
        "size=7777;",
        "213 5555",
        " 5555 ",
        "size=5555;",
        "213 19991231",
        "=19991231",
        " 1999 ",
    ]
    .into_iter()
    .filter(|f| !probed.contains(f))
    .collect()
}

/// Empties alice's home but for `file.txt` and `dir/`, so that what one probe created
/// cannot be mistaken for a leak by the next.
fn reset_home(home: &Path) {
    for e in std::fs::read_dir(home).unwrap().flatten() {
        let p = e.path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            // Modes set by SITE CHMOD 000 must not stop the clean-up.
            let _ = std::process::Command::new("chmod")
                .arg("-R")
                .arg("u+rwx")
                .arg(&p)
                .status();
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::write(home.join("file.txt"), b"alice's file").unwrap();
    std::fs::create_dir(home.join("dir")).unwrap();
}

/// Builds the world: users alice and bob, and a folder `outside` beside the data folder.
fn world() -> Server {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start();
    let outside = server.root().join("outside");
    std::fs::create_dir_all(outside.join("sentinel-sub")).unwrap();
    let mut secret = SECRET.as_bytes().to_vec();
    secret.resize(7777, b'#');
    std::fs::write(outside.join("sentinel-secret.txt"), &secret).unwrap();
    std::fs::write(outside.join("sentinel-sub/inner.txt"), SECRET).unwrap();
    let mut bob = BOB_SECRET.as_bytes().to_vec();
    bob.resize(5555, b'#');
    server.put("bob", "bob-secret.txt", &bob);
    // A recognisable time on the secret file (MDTM must never show it).
    let old = std::time::UNIX_EPOCH + Duration::from_secs(946_684_798);
    set_mtime(&outside.join("sentinel-secret.txt"), old);
    server
}

/// What must not change: the outside folder, bob's home, and the data folder's top level.
fn protected(server: &Server) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for (k, v) in snapshot(&server.root().join("outside")) {
        all.insert(format!("outside/{k}"), v);
    }
    for (k, v) in snapshot(&server.home("bob")) {
        all.insert(format!("bob/{k}"), v);
    }
    for e in std::fs::read_dir(server.data_dir()).unwrap().flatten() {
        all.insert(
            format!("data/{}", e.file_name().to_string_lossy()),
            String::new(),
        );
    }
    for e in std::fs::read_dir(server.data_dir().join("home"))
        .unwrap()
        .flatten()
    {
        all.insert(
            format!("data/home/{}", e.file_name().to_string_lossy()),
            String::new(),
        );
    }
    for e in std::fs::read_dir(server.root()).unwrap().flatten() {
        all.insert(
            format!("root/{}", e.file_name().to_string_lossy()),
            String::new(),
        );
    }
    all
}

/// Runs a transfer command over a fresh passive connection; records what came back.
fn transfer(
    c: &mut Control,
    server_ip: std::net::IpAddr,
    cmd: &str,
    upload: bool,
    seen: &mut Vec<u8>,
) {
    let r = c.cmd("PASV");
    seen.extend_from_slice(r.text().as_bytes());
    if r.code != 227 {
        return;
    }
    let mut addr = ferry_tests::parse_pasv(&r.lines[0]).unwrap();
    addr.set_ip(server_ip);
    let r = c.cmd(cmd);
    seen.extend_from_slice(r.text().as_bytes());
    if r.code != 150 {
        return;
    }
    let mut data = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if upload {
        let _ = data.write_all(b"INJECTED BY A TRAVERSAL TEST");
        drop(data);
    } else {
        let _ = data.read_to_end(seen);
    }
    let r = c.read_reply();
    seen.extend_from_slice(r.text().as_bytes());
}

/// Every command that takes a path, on `p`. `fix` restores the home between commands.
fn probe(c: &mut Control, ip: std::net::IpAddr, p: &str, seen: &mut Vec<u8>, fix: &dyn Fn()) {
    let mut run = |c: &mut Control, cmds: &[String]| {
        fix();
        for cmd in cmds {
            let r = c.cmd(cmd);
            seen.extend_from_slice(r.text().as_bytes());
            if r.code >= 400 {
                break;
            }
        }
        c.cmd("CWD /");
    };
    // `|` separates the commands of one script; `{p}` stands for the path probed.
    for script in [
        "CWD {p}|PWD|SIZE sentinel-secret.txt",
        "XCWD {p}|XPWD",
        "SIZE {p}",
        "MDTM {p}",
        "MLST {p}",
        "STAT {p}",
        "RMD {p}",
        "XRMD {p}",
        "DELE {p}",
        "MKD {p}",
        "MKD {p}/made-by-mkd",
        "XMKD {p}/made-by-xmkd",
        "SITE CHMOD 777 {p}",
        "SITE CHMOD 000 {p}",
        "MFMT 20010101000000 {p}",
        "RNFR {p}|RNTO stolen-by-rename",
        "RNFR file.txt|RNTO {p}",
        "RNFR file.txt|RNTO {p}/renamed-out.txt",
        "SITE CPFR {p}|SITE CPTO stolen-by-copy",
        "SITE CPFR file.txt|SITE CPTO {p}",
        "SITE CPFR file.txt|SITE CPTO {p}/copied-out.txt",
    ] {
        let cmds: Vec<String> = script.split('|').map(|c| c.replace("{p}", p)).collect();
        run(c, &cmds);
    }
    for (cmd, upload) in [
        ("RETR {p}", false),
        ("LIST {p}", false),
        ("LIST -la {p}", false),
        ("NLST {p}", false),
        ("NLST {p}/*", false),
        ("MLSD {p}", false),
        ("STOR {p}", true),
        ("STOR {p}/stored-out.txt", true),
        ("APPE {p}", true),
        ("STOU {p}", true),
    ] {
        fix();
        transfer(c, ip, &cmd.replace("{p}", p), upload, seen);
        c.cmd("CWD /");
    }
    for (cmd, upload) in [("STOR {p}", true), ("RETR {p}", false)] {
        fix();
        c.cmd("REST 3");
        transfer(c, ip, &cmd.replace("{p}", p), upload, seen);
    }
}

fn assert_nothing_leaked(seen: &[u8], server: &Server, what: &str) {
    let seen = String::from_utf8_lossy(seen);
    for f in forbidden(what) {
        if let Some(i) = seen.find(f) {
            let from = seen[..i].rfind('\n').map_or(0, |j| j + 1);
            let line = seen[from..].lines().next().unwrap_or_default();
            panic!("{what}: {f:?} leaked in: {line:?}");
        }
    }
    // Nothing in alice's home holds a secret (a copy or rename through a hole would).
    for (path, _) in snapshot(&server.home("alice")) {
        let full = server.home("alice").join(&path);
        let meta = std::fs::symlink_metadata(&full).unwrap();
        if meta.is_file() {
            let bytes = std::fs::read(&full).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(SECRET)
                    && !text.contains(BOB_SECRET)
                    && !text.contains("root:x:0:0"),
                "{what}: alice's {path} holds a secret"
            );
        }
    }
}

#[test]
fn traversal_through_every_path_command() {
    let server = world();
    let home = server.home("alice");
    let root = server.root().to_string_lossy().into_owned();
    let fix = || {
        if !home.join("file.txt").exists() {
            server.put("alice", "file.txt", b"alice's file");
        }
        let _ = std::fs::create_dir(home.join("dir"));
    };
    let before = protected(&server);
    let long_up = "../".repeat(1500);
    let within_line = format!("{}outside/sentinel-secret.txt", "a/../".repeat(790));
    let paths = [
        "..".to_string(),
        "../..".into(),
        "../../..".into(),
        "../../../outside".into(),
        "../../../outside/sentinel-secret.txt".into(),
        "../../../../../../../../../etc/passwd".into(),
        "/etc/passwd".into(),
        "../bob".into(),
        "../bob/bob-secret.txt".into(),
        "/../../../outside/sentinel-secret.txt".into(),
        "dir/../../../../outside/sentinel-secret.txt".into(),
        "./.././../../outside".into(),
        "%2e%2e/%2e%2e/%2e%2e/outside/sentinel-secret.txt".into(),
        "..%2f..%2f..%2foutside".into(),
        "%2e%2e%2f%2e%2e%2f%2e%2e%2foutside%2fsentinel-secret.txt".into(),
        "..\\..\\..\\outside\\sentinel-secret.txt".into(),
        "\\..\\..\\..\\outside".into(),
        "..\\../..\\../outside/sentinel-secret.txt".into(),
        "....//....//....//outside".into(),
        "~/../../../outside".into(),
        "~bob".into(),
        "/home/bob".into(),
        format!("{root}/outside/sentinel-secret.txt"),
        format!("{root}/outside"),
        format!("{root}/data/home/bob/bob-secret.txt"),
        format!("{root}/data/home/bob"),
        format!("..{root}/outside"),
        format!("../../..{root}/outside"),
        "..\0/../../outside".into(),
        "dir\0../../../../outside/sentinel-secret.txt".into(),
        format!("{long_up}outside/sentinel-secret.txt"),
        within_line,
    ];
    let mut c = server.login("alice");
    let ip = server.addr().ip();
    // The probe itself works: on a path inside the home it reads, lists and changes.
    reset_home(&home);
    let mut seen = Vec::new();
    probe(&mut c, ip, "file.txt", &mut seen, &fix);
    let text = String::from_utf8_lossy(&seen);
    for needle in [
        "alice's file",
        "213 12",
        "250 Copy successful",
        "226 Transfer complete",
    ] {
        assert!(
            text.contains(needle),
            "the probe did not {needle:?}: {text}"
        );
    }
    for p in &paths {
        reset_home(&home);
        let mut seen = Vec::new();
        probe(&mut c, ip, p, &mut seen, &fix);
        c.expect("NOOP", 200);
        assert_nothing_leaked(&seen, &server, p);
    }
    assert_eq!(
        before,
        protected(&server),
        "something outside alice's home changed"
    );
    // The server survived it all, and alice's own files are still hers.
    let mut c = server.login("alice");
    c.expect("PWD", 257);
    // The audit log names only normalised paths inside the home.
    for r in server.audit() {
        for p in std::iter::once(&r.path).chain(r.to.as_ref()) {
            assert!(p.starts_with('/'), "{r:?}");
            assert!(!p.split('/').any(|seg| seg == ".." || seg == "."), "{r:?}");
        }
    }
}

#[test]
fn symlinks_planted_in_a_home_lead_nowhere() {
    let server = world();
    let home = server.home("alice");
    let root = server.root().to_path_buf();
    let outside = root.join("outside");
    let links: Vec<(&str, std::path::PathBuf)> = vec![
        ("escape-dir", outside.clone()),
        ("escape-rel", "../../../outside".into()),
        ("escape-file", outside.join("sentinel-secret.txt")),
        (
            "escape-rel-file",
            "../../../outside/sentinel-secret.txt".into(),
        ),
        ("escape-bob", "../bob".into()),
        ("escape-bob-file", "../bob/bob-secret.txt".into()),
        ("escape-etc", "/etc/passwd".into()),
        ("escape-root", "/".into()),
        ("dangling-out", outside.join("created-through-a-link.txt")),
        ("dangling-dir-out", outside.join("dir-through-a-link")),
        ("dir/nested-escape", "../../../../outside".into()),
    ];
    let plant = || {
        if !home.join("file.txt").exists() {
            server.put("alice", "file.txt", b"alice's file");
        }
        let _ = std::fs::create_dir(home.join("dir"));
        for (name, target) in &links {
            let at = home.join(name);
            if std::fs::symlink_metadata(&at).is_err() {
                // Whatever the server left there (a file after a rename onto it) goes.
                let _ = std::fs::remove_dir_all(&at);
                std::os::unix::fs::symlink(target, &at).unwrap();
            } else if !std::fs::symlink_metadata(&at)
                .unwrap()
                .file_type()
                .is_symlink()
            {
                let _ = std::fs::remove_file(&at);
                let _ = std::fs::remove_dir_all(&at);
                std::os::unix::fs::symlink(target, &at).unwrap();
            }
        }
    };
    plant();
    let before = protected(&server);
    let paths = [
        "escape-dir",
        "escape-dir/",
        "escape-dir/sentinel-secret.txt",
        "escape-dir/sentinel-sub",
        "escape-dir/sentinel-sub/inner.txt",
        "escape-dir/new-thing",
        "escape-rel",
        "escape-rel/sentinel-secret.txt",
        "escape-file",
        "escape-rel-file",
        "escape-bob",
        "escape-bob/bob-secret.txt",
        "escape-bob-file",
        "escape-etc",
        "escape-root/etc/passwd",
        "escape-root",
        "dangling-out",
        "dangling-dir-out",
        "dangling-dir-out/x",
        "dir/nested-escape",
        "dir/nested-escape/sentinel-secret.txt",
        "/dir/../escape-file",
    ];
    let mut c = server.login("alice");
    let ip = server.addr().ip();
    // Symlinks inside the home that stay inside are followed (or at least harmless).
    reset_home(&home);
    std::os::unix::fs::symlink("file.txt", home.join("inner-link")).unwrap();
    assert_eq!(c.retr("inner-link"), b"alice's file");
    std::fs::remove_file(home.join("inner-link")).unwrap();
    for p in paths {
        reset_home(&home);
        let mut seen = Vec::new();
        probe(&mut c, ip, p, &mut seen, &plant);
        c.expect("NOOP", 200);
        assert_nothing_leaked(&seen, &server, p);
        assert_eq!(before, protected(&server), "{p}: something outside changed");
    }
    // Listings of the home show the links at most as entries, never what they point to.
    reset_home(&home);
    plant();
    for cmd in [
        "LIST",
        "LIST -la",
        "NLST",
        "MLSD",
        "STAT /",
        "STAT escape-dir",
    ] {
        let mut out = Vec::new();
        if cmd.starts_with("STAT") {
            out.extend_from_slice(c.cmd(cmd).text().as_bytes());
        } else {
            transfer(&mut c, ip, cmd, false, &mut out);
        }
        assert_nothing_leaked(&out, &server, cmd);
    }
    assert_eq!(before, protected(&server));
    assert!(!outside.join("created-through-a-link.txt").exists());
    assert!(!outside.join("dir-through-a-link").exists());
}

#[test]
fn users_cannot_reach_each_other() {
    let server = world();
    let mut alice = server.login("alice");
    alice.stor("alice-private.txt", b"ALICE-PRIVATE-CONTENT");
    alice.expect("MKD alice-dir", 257);
    let alice_home = snapshot(&server.home("alice"));
    let bob_before = snapshot(&server.home("bob"));
    let mut bob = server.login("bob");
    let ip = server.addr().ip();
    let mut seen = Vec::new();
    let root = server.root().to_string_lossy().into_owned();
    let fix = || {
        let _ = std::fs::write(server.home("bob").join("file.txt"), b"bob's file");
    };
    for p in [
        "../alice".to_string(),
        "../alice/alice-private.txt".into(),
        "/../alice/alice-private.txt".into(),
        "/home/alice".into(),
        "/data/home/alice".into(),
        "~alice".into(),
        "..\\alice\\alice-private.txt".into(),
        format!("{root}/data/home/alice/alice-private.txt"),
    ] {
        probe(&mut bob, ip, &p, &mut seen, &fix);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(!seen.contains("ALICE-PRIVATE"), "bob read alice's file");
    assert!(!seen.contains("alice-private"), "bob saw alice's file name");
    assert!(!seen.contains("alice-dir"), "bob saw alice's folder");
    assert_eq!(
        alice_home,
        snapshot(&server.home("alice")),
        "bob changed alice's home"
    );
    // Bob's own root is his home.
    let (_, list) = bob.listing("NLST");
    assert!(list.contains("bob-secret.txt"), "{list}");
    assert!(
        !list.contains("alice-private") && !list.contains("alice-dir"),
        "{list}"
    );
    // Whatever bob's probes created is in his own home, and nothing of his went away.
    let bob_after = snapshot(&server.home("bob"));
    for (k, v) in &bob_before {
        if k == "file.txt" || k.is_empty() {
            continue;
        }
        assert_eq!(bob_after.get(k), Some(v), "bob's {k} changed");
    }
    // And alice never sees bob's files.
    let (_, list) = alice.listing("NLST -a");
    assert!(!list.contains("bob-secret"), "{list}");
    let r = alice.cmd("SIZE ../bob/bob-secret.txt");
    assert_eq!(r.code, 550, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Clients that vanish
// ---------------------------------------------------------------------------------------

#[test]
fn client_vanishes_mid_download() {
    let server = Server::with_alice(&[]);
    let size = 20 << 20;
    let content = random_bytes(3, size);
    let file = server.home("alice").join("big.bin");
    std::fs::write(&file, &content).unwrap();
    let sum = sha256_file(&file);
    for how in ["reset both", "close control", "reset data"] {
        let mut c = server.login("alice");
        let mut data = c.data_in("I", "RETR big.bin");
        let mut buf = vec![0u8; 256 * 1024];
        let n = data.read(&mut buf).unwrap();
        assert!(n > 0);
        match how {
            "reset both" => {
                reset(data);
                reset(c.stream().try_clone().unwrap());
                drop(c);
            }
            "close control" => {
                let peer = format!("peer={}", c.stream().local_addr().unwrap());
                drop(c);
                // The data connection stays open and unread: the server must give up on it.
                server.wait_log(
                    &["transfer cut off", "big.bin", &peer],
                    Duration::from_secs(5),
                );
                let mut rest = Vec::new();
                let _ = data.read_to_end(&mut rest);
                assert!(rest.len() < size, "{how}: sent everything anyway");
                continue;
            }
            _ => {
                reset(data);
                let r = c.read_reply();
                assert_eq!(r.code, 426, "{how}: {r:?}");
                c.expect("NOOP", 200);
                continue;
            }
        }
    }
    // The server goes on; the file is unchanged and whole.
    let mut c = server.login("alice");
    let got = c.retr("big.bin");
    assert_eq!(got.len(), size);
    assert_eq!(ferry_tests::sha256_hex(&got), sum);
    assert_eq!(sha256_file(&file), sum);
    assert!(temporaries(&server.home("alice")).is_empty());
}

/// Starts an upload over `keep.bin` and sends part of it; returns the control and data
/// connections.
fn start_upload(server: &Server) -> (Control, TcpStream) {
    let mut c = server.login("alice");
    let mut data = c.data_in("I", "STOR keep.bin");
    data.write_all(&random_bytes(99, 3 << 20)).unwrap();
    // Let the server write some of it to its temporary file.
    let home = server.home("alice");
    assert!(
        wait_until(Duration::from_secs(5), || !temporaries(&home).is_empty()),
        "no temporary file appeared during the upload"
    );
    (c, data)
}

#[test]
fn client_vanishes_mid_upload() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let old = random_bytes(5, 1 << 20);
    server.put("alice", "keep.bin", &old);
    let check = |how: &str| {
        assert!(
            wait_until(Duration::from_secs(5), || temporaries(&home).is_empty()),
            "{how}: temporaries left: {:?}",
            temporaries(&home)
        );
        assert!(
            std::fs::read(home.join("keep.bin")).unwrap() == old,
            "{how}: the old file was changed"
        );
    };

    // The data connection breaks (reset): 426, the old file stays.
    let (mut c, data) = start_upload(&server);
    reset(data);
    let r = c.read_reply();
    assert_eq!(r.code, 426, "{r:?}");
    check("data reset");
    c.expect("NOOP", 200);

    // The client disappears at once: both connections reset.
    let (c, data) = start_upload(&server);
    reset(data);
    reset(c.stream().try_clone().unwrap());
    drop(c);
    check("both reset");

    // The control connection goes away first; the data connection later ends with an
    // orderly close. The upload was abandoned with the session: the old file stays.
    let (c, mut data) = start_upload(&server);
    let peer = format!("peer={}", c.stream().local_addr().unwrap());
    drop(c);
    server.wait_log(
        &["transfer cut off", "keep.bin", &peer],
        Duration::from_secs(5),
    );
    let _ = data.write_all(b"late bytes");
    drop(data);
    // The session is over, and with it whatever it could do to the file.
    server.wait_log(&["session end", &peer], Duration::from_secs(5));
    check("control closed first");

    // The server still works and an honest upload replaces the file.
    let mut c = server.login("alice");
    c.stor("keep.bin", b"new content");
    assert_eq!(
        std::fs::read(home.join("keep.bin")).unwrap(),
        b"new content"
    );
    assert!(temporaries(&home).is_empty());
}

/// Every upload a vanished client left behind is in the audit log: a replacing upload as
/// `aborted` (or `ok` if the server took the end of the data as the end of the file), and
/// an append, whose bytes stay in the file, with the bytes it wrote. Three ways to vanish,
/// eight times each: both connections reset during a replacing upload, and during an
/// append; and the control connection closed, then the data connection closed in order
/// right after.
#[test]
fn uploads_cut_off_by_a_vanished_client_are_all_audited() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    server.put("alice", "keep.bin", b"old");
    server.put("alice", "app.bin", b"");
    server.put("alice", "fin.bin", b"old");
    let mut sessions = Vec::new();
    for i in 0..24u64 {
        let way = ["reset STOR", "reset APPE", "FIN STOR"][(i % 3) as usize];
        let grown_from = std::fs::metadata(home.join("app.bin")).unwrap().len();
        let mut c = server.login("alice");
        let client = c.stream().local_addr().unwrap().to_string();
        c.expect("TYPE I", 200);
        let cmd = match way {
            "reset STOR" => "STOR keep.bin",
            "reset APPE" => "APPE app.bin",
            _ => "STOR fin.bin",
        };
        let mut data = c.data_command(cmd);
        data.write_all(&random_bytes(i, 1 << 20)).unwrap();
        // Vanish while the server is still receiving.
        assert!(wait_until(Duration::from_secs(5), || {
            if way == "reset APPE" {
                std::fs::metadata(home.join("app.bin")).unwrap().len() > grown_from
            } else {
                !temporaries(&home).is_empty()
            }
        }));
        if way == "FIN STOR" {
            drop(c);
            let _ = data.write_all(b"tail");
            drop(data);
        } else {
            reset(data);
            reset(c.stream().try_clone().unwrap());
            drop(c);
        }
        sessions.push((way, cmd, client));
    }
    let all_there = |audit: &[AuditRecord]| {
        sessions
            .iter()
            .all(|(_, _, client)| audit.iter().any(|r| &r.client == client))
    };
    wait_until(Duration::from_secs(3), || all_there(&server.audit()));
    let audit = server.audit();
    let missing: Vec<String> = sessions
        .iter()
        .filter(|(_, _, client)| !audit.iter().any(|r| &r.client == client))
        .map(|(way, cmd, client)| format!("{way} ({cmd}) from {client}"))
        .collect();
    let size = std::fs::metadata(home.join("app.bin")).unwrap().len();
    let appended: u64 = audit
        .iter()
        .filter(|r| r.op == "append")
        .map(|r| r.bytes.unwrap_or(0))
        .sum();
    assert!(
        missing.is_empty() && appended == size,
        "{} of 24 cut-off uploads left no audit line:\n{}\nappends audited: {appended} of \
         the {size} bytes they added to app.bin",
        missing.len(),
        missing.join("\n")
    );
    assert_eq!(std::fs::read(home.join("keep.bin")).unwrap(), b"old");
    assert!(temporaries(&home).is_empty());
}

/// A real client process killed in the middle of an upload: the kernel closes both of its
/// connections with an orderly FIN, so the data connection alone cannot tell a finished
/// upload from a cut one; the control connection closing must decide.
#[test]
fn killed_client_process_mid_upload() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let home = server.home("alice");
    let old = random_bytes(6, 100_000);
    server.put("alice", "keep.bin", &old);
    let local = server.local_file("upload.bin", random_bytes(8, 4 << 20));
    let mut child = std::process::Command::new("curl")
        .args(["-s", "--limit-rate", "500k", "-T"])
        .arg(&local)
        .arg(server.url("alice", "keep.bin"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let appeared = wait_until(Duration::from_secs(10), || !temporaries(&home).is_empty());
    // In the middle of the upload: some of its bytes are in the temporary file.
    wait_until(Duration::from_secs(10), || {
        temporaries(&home)
            .iter()
            .any(|t| std::fs::metadata(t).is_ok_and(|m| m.len() >= 100_000))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(appeared, "the upload never started");
    assert!(
        wait_until(Duration::from_secs(5), || temporaries(&home).is_empty()),
        "temporaries left: {:?}",
        temporaries(&home)
    );
    // The session is over, and with it whatever it could do to the file.
    server.wait_log(&["session end", "user=\"alice\""], Duration::from_secs(5));
    let now = std::fs::read(home.join("keep.bin")).unwrap();
    assert!(
        now == old,
        "the killed upload replaced keep.bin with {} bytes of a 4 MiB upload",
        now.len()
    );
}

// ---------------------------------------------------------------------------------------
// Faults: a full disk, an audit log that cannot be written
// ---------------------------------------------------------------------------------------

/// The server runs in a mount namespace of its own where alice's home is a 2 MiB tmpfs
/// (`unshare -m`, as root); the test looks at it through `/proc/<pid>/root`.
#[test]
fn full_disk_fails_uploads_cleanly() {
    let probe = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        ferry_tests::skipped("cannot mount a small file system here (unshare -m, mount -t tmpfs)");
        return;
    }
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .wrapper(&[
            "unshare",
            "-m",
            "sh",
            "-c",
            r#"mount -t tmpfs -o size=2m tmpfs "$1" && shift && exec "$@""#,
            "sh",
            "{home:alice}",
        ])
        .start();
    let home = Path::new(&format!("/proc/{}/root", server.pid()))
        .join(server.home("alice").strip_prefix("/").unwrap());
    let small = random_bytes(1, 400_000);
    let mut c = server.login("alice");
    c.stor("keep.bin", &small);
    assert!(std::fs::read(home.join("keep.bin")).unwrap() == small);
    let full_reply = |c: &mut Control, cmd: &str| {
        let mut data = c.data_in("I", cmd);
        let _ = data.write_all(&random_bytes(2, 3 << 20));
        drop(data);
        c.read_reply()
    };
    // Issue 5 accepts 451, 452 or 552. (Ferry answers 552 when the disk fills at the final
    // flush, but "451 Local error in processing." when it fills during a write: the
    // ENOSPC of async-fs's background write comes back as a short write.)
    let full = |r: &ferry_tests::Reply| [451, 452, 552].contains(&r.code);
    // A new file that does not fit: refused, nothing left behind.
    let r = full_reply(&mut c, "STOR big.bin");
    assert!(full(&r), "{r:?}");
    assert!(!home.join("big.bin").exists());
    assert!(temporaries(&home).is_empty(), "{:?}", temporaries(&home));
    // Over an existing file: the old one stays.
    let r = full_reply(&mut c, "STOR keep.bin");
    assert!(full(&r), "{r:?}");
    assert!(std::fs::read(home.join("keep.bin")).unwrap() == small);
    assert!(temporaries(&home).is_empty());
    // An append fills what is left and says so.
    let r = full_reply(&mut c, "APPE keep.bin");
    assert!(full(&r), "{r:?}");
    assert!(
        std::fs::read(home.join("keep.bin"))
            .unwrap()
            .starts_with(&small)
    );
    // The space of the failed uploads was given back: after removing the append, a
    // small upload fits again.
    c.expect("DELE keep.bin", 250);
    c.stor("again.bin", &small);
    c.expect("NOOP", 200);
    // The failed uploads are audited as failed.
    let audit = server.audit();
    for (op, path) in [
        ("upload", "/big.bin"),
        ("upload", "/keep.bin"),
        ("append", "/keep.bin"),
    ] {
        assert!(
            audit
                .iter()
                .any(|r| r.op == op && r.path == path && r.result != "ok"),
            "no failed {op} of {path}: {audit:?}"
        );
    }
}

#[test]
fn unwritable_audit_log_refuses_changes_and_keeps_data() {
    let server = Server::with_alice(&["--audit-log", "/dev/full"]);
    let home = server.home("alice");
    server.put("alice", "keep.txt", b"keep me");
    let mut c = server.login("alice");
    let refused =
        |r: &ferry_tests::Reply| (450..=452).contains(&r.code) || r.code == 552 || r.code == 550;
    // An upload over a file: refused, the old file stays, no temporary.
    let mut data = c.data_in("I", "STOR keep.txt");
    data.write_all(b"replacement").unwrap();
    drop(data);
    let r = c.read_reply();
    assert!(refused(&r), "an unaudited upload must fail: {r:?}");
    assert_eq!(std::fs::read(home.join("keep.txt")).unwrap(), b"keep me");
    // A new file: refused, nothing appears.
    let mut data = c.data_command("STOR new.txt");
    data.write_all(b"new").unwrap();
    drop(data);
    let r = c.read_reply();
    assert!(refused(&r), "{r:?}");
    assert!(!home.join("new.txt").exists());
    // Other changes: each gets a clear error.
    c.expect_each(
        &[
            "MKD d1",
            "DELE keep.txt",
            "RMD d1",
            "SITE CHMOD 600 keep.txt",
        ],
        refused,
    );
    let r = c.cmd("RNFR keep.txt");
    if r.code == 350 {
        let r = c.cmd("RNTO moved.txt");
        assert!(refused(&r), "RNTO: {r:?}");
    }
    assert_eq!(std::fs::read(home.join("keep.txt")).unwrap(), b"keep me");
    assert!(temporaries(&home).is_empty());
    // Reading still works.
    assert_eq!(c.retr("keep.txt"), b"keep me");
    c.expect("NOOP", 200);
}

#[test]
fn read_only_accounts_change_nothing() {
    let server = ServerBuilder::new()
        .read_only_user("reader", "reader-pw")
        .start();
    let home = server.home("reader");
    server.put("reader", "doc.txt", b"read me");
    std::fs::create_dir(home.join("dir")).unwrap();
    let before = snapshot(&home);
    let mut c = server.login("reader");
    assert_eq!(c.retr("doc.txt"), b"read me");
    c.expect_each(
        &[
            "DELE doc.txt",
            "MKD x",
            "RMD dir",
            "RNFR doc.txt",
            "SITE CPFR doc.txt",
            "SITE CHMOD 777 doc.txt",
            "MFMT 20000101000000 doc.txt",
            "STOR up.txt",
            "APPE doc.txt",
            "STOU",
        ],
        |r| r.code == 550,
    );
    assert_eq!(before, snapshot(&home));
    assert!(server.audit().is_empty());
}

/// A passive listener kept between transfers (for the next passive transfer of any session)
/// gives that transfer nothing that connected while it waited: not even a connection from the
/// client's own address, which the peer check alone would let through.
#[test]
fn a_kept_passive_port_gives_the_next_transfer_only_its_own_connection() {
    let server = Server::with_alice(&[]);
    let content = random_bytes(9, 100_000);
    server.put("alice", "a.bin", &content);
    let mut c = server.login("alice");
    c.expect("TYPE I", 200);
    let mut addr = c.pasv_addr();
    addr.set_ip(server.addr().ip());
    let mut data = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    c.expect("RETR a.bin", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.read_reply().code, 226);
    assert!(got == content);
    // The listener now waits in the pool. A connection made to it meanwhile...
    let stale = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    // ...is not what another session's next transfer gets, on the same port.
    let mut d = server.login("alice");
    d.expect("TYPE I", 200);
    let mut again = d.pasv_addr();
    again.set_ip(server.addr().ip());
    assert_eq!(again, addr, "the kept listener is handed out again");
    let real = TcpStream::connect_timeout(&again, Duration::from_secs(5)).unwrap();
    d.expect("RETR a.bin", 150);
    only_the_real_client_gets(
        &mut d,
        real,
        stale,
        &content,
        "the kept listener's next RETR",
    );
    c.expect("NOOP", 200);
}

/// The download under way on `c` reaches `real` whole and ends with 226, while `thief`, a
/// connection to the same passive port, gets nothing. `what` names the case in failures.
fn only_the_real_client_gets(
    c: &mut Control,
    mut real: TcpStream,
    mut thief: TcpStream,
    content: &[u8],
    what: &str,
) {
    real.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    real.read_to_end(&mut got).unwrap();
    assert_eq!(c.read_reply().code, 226, "{what}");
    assert!(got == content, "{what}: the real client got other bytes");
    thief
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(
        stolen.is_empty(),
        "{what}: the thief got {} bytes",
        stolen.len()
    );
}
