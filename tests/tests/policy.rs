//! Per-user policy against the real server with real clients (issue 14): a drop box filled
//! by lftp's mirror, a quota that curl and a raw client run into (552 while the upload is
//! under way, the old file kept), rate limits under Python's ftplib, sessions per user,
//! address lists, hidden names, folder copies with SITE CPFR/CPTO, hard links, and
//! `ferry user set|show`.

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_tests::{
    Server, ServerBuilder, curl, curl_ok, ferry_bin, random_bytes, require_client, run_client,
    sha256_file, sha256_hex, temporaries,
};

/// `ferry user ARGS` on the server's data folder; its output.
fn ferry_user(server: &Server, args: &[&str]) -> String {
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir());
    let out = run_client(&mut cmd, None, 60);
    assert!(
        out.status.success(),
        "ferry user {args:?}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Sets alice's policy (the running server reads the users file again at the next login).
fn set_alice(server: &Server, args: &[&str]) -> String {
    ferry_user(server, &[&["set", "alice"], args].concat())
}

#[test]
fn a_drop_box_filled_by_lftp_mirror() {
    if !require_client("lftp") || !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    std::fs::create_dir(server.home("alice").join("incoming")).unwrap();
    server.put("alice", "readme.txt", b"read me");
    set_alice(
        &server,
        &[
            "--permissions",
            "list,download",
            "--folder",
            "/incoming=upload",
            "--hidden",
            "*.part",
        ],
    );
    let local = server.local_dir_with(
        "outbox",
        &[("a.bin", &random_bytes(1, 300_000)), ("b.txt", b"bee")],
    );
    // lftp compares with the target's listing, which a drop box refuses: it then sends
    // everything.
    let out = server.lftp(
        "",
        &format!("mirror -R --no-perms {} incoming", local.display()),
    );
    let home = server.home("alice");
    assert_eq!(
        sha256_file(&home.join("incoming/a.bin")),
        sha256_file(&local.join("a.bin")),
        "{out:?}"
    );
    assert_eq!(std::fs::read(home.join("incoming/b.txt")).unwrap(), b"bee");
    // Nothing can be seen (the folder lists as empty), fetched or replaced there; elsewhere
    // is read-only.
    let mut c = server.login("alice");
    for command in ["LIST /incoming", "NLST /incoming", "MLSD /incoming"] {
        let (r, listing) = c.listing(command);
        assert_eq!(r.code, 226, "{command}: {r:?}");
        assert!(listing.is_empty(), "{command}: {listing}");
    }
    c.pasv();
    let r = c.cmd("RETR /incoming/a.bin");
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("Downloading is not allowed"), "{r:?}");
    c.pasv();
    let r = c.cmd("STOR /incoming/b.txt");
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("Overwriting"), "{r:?}");
    c.expect("DELE /incoming/b.txt", 550);
    c.expect("MKD /incoming/sub", 550);
    c.pasv();
    c.expect("STOR /elsewhere.txt", 550);
    assert_eq!(c.retr("/readme.txt"), b"read me");
    // Hidden names: never shown, never made.
    std::fs::write(home.join("secret.part"), b"x").unwrap();
    let (_, listing) = c.listing("NLST /");
    assert!(
        !listing.contains("secret.part") && listing.contains("readme.txt"),
        "{listing}"
    );
    c.expect("SIZE /secret.part", 550);
    // curl is told the same.
    let got = curl(&[
        "-s",
        "-S",
        &server.url("alice", "incoming/b.txt"),
        "-o",
        "/dev/null",
    ]);
    assert!(!got.status.success(), "{got:?}");
    // Each refusal is audited.
    server.wait_audit("denied download", |r| {
        r.op == "download" && r.path == "/incoming/a.bin" && r.result == "denied"
    });
    server.wait_audit("denied upload", |r| {
        r.op == "upload" && r.path == "/elsewhere.txt" && r.result == "denied"
    });
}

/// Sends up to `len` bytes to `STOR name` until the server stops taking them; its reply and
/// the bytes sent.
fn stor_until_refused(
    c: &mut ferry_tests::Control,
    name: &str,
    len: usize,
) -> (ferry_tests::Reply, usize) {
    let mut data = c.data_in("I", &format!("STOR {name}"));
    data.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < len {
        if data.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    drop(data);
    (c.read_reply(), sent)
}

#[test]
fn a_quota_stops_uploads_as_they_pass_it() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    set_alice(&server, &["--quota-size", "1MiB", "--quota-files", "4"]);
    let first = server.local_file("first.bin", random_bytes(3, 600 * 1024));
    curl_ok(&[
        "-T",
        first.to_str().unwrap(),
        &server.url("alice", "first.bin"),
    ]);
    // A second 600 KiB passes the quota: refused, nothing left of it.
    let got = curl(&[
        "-s",
        "-S",
        "-T",
        first.to_str().unwrap(),
        &server.url("alice", "second.bin"),
    ]);
    assert!(!got.status.success(), "{got:?}");
    // curl's code for a 552 reply.
    assert!(
        got.stderr.contains("(70) Exceeded storage allocation"),
        "{got:?}"
    );
    let home = server.home("alice");
    assert!(!home.join("second.bin").exists());
    assert!(temporaries(&home).is_empty(), "{:?}", temporaries(&home));
    assert_eq!(sha256_file(&home.join("first.bin")), sha256_file(&first));
    // A large upload is stopped as soon as it passes, not after the whole file arrived.
    let mut c = server.login("alice");
    let (r, sent) = stor_until_refused(&mut c, "big.bin", 200 << 20);
    assert_eq!(r.code, 552, "{r:?}");
    assert!(r.text().contains("Quota exceeded"), "{r:?}");
    assert!(
        sent < 64 << 20,
        "the server read {sent} bytes before refusing"
    );
    assert!(!home.join("big.bin").exists());
    // An overwrite is credited with the old file; a replacement past the quota keeps it.
    c.stor("first.bin", &random_bytes(4, 900 * 1024));
    let old = sha256_file(&home.join("first.bin"));
    let (r, _) = stor_until_refused(&mut c, "first.bin", 2 << 20);
    assert_eq!(r.code, 552, "{r:?}");
    assert_eq!(sha256_file(&home.join("first.bin")), old);
    // Deleting gives the space back; `ferry user show` reports what is used.
    c.expect("DELE first.bin", 250);
    c.stor("again.bin", &random_bytes(5, 900 * 1024));
    let shown = ferry_user(&server, &["show", "alice"]);
    assert!(
        shown.contains("used:          900 KiB in 1 file"),
        "{shown}"
    );
    assert!(shown.contains("quota:         1 MiB / 4 files"), "{shown}");
    // SITE CPFR/CPTO counts too.
    c.expect("SITE CPFR again.bin", 350);
    let r = c.cmd("SITE CPTO copy.bin");
    assert_eq!(r.code, 552, "{r:?}");
    assert!(!home.join("copy.bin").exists());
    server.wait_audit("refused copy", |r| {
        r.op == "copy" && r.result == "quota_exceeded"
    });
}

/// Past its first MiB an upload goes on on a bulk thread: the quota holds there as well,
/// counted to the byte.
#[test]
fn a_quota_holds_past_the_first_mib_of_an_upload() {
    let server = Server::with_alice(&[]);
    set_alice(&server, &["--quota-size", "8MiB"]);
    let home = server.home("alice");
    let mut c = server.login("alice");
    let first = random_bytes(6, 5 << 20);
    c.stor("first.bin", &first);
    assert_eq!(sha256_file(&home.join("first.bin")), sha256_hex(&first));
    // 5 MiB more would pass 8 MiB: refused in its fourth MiB, nothing left of it.
    let (r, sent) = stor_until_refused(&mut c, "second.bin", 64 << 20);
    assert_eq!(r.code, 552, "{r:?}");
    assert!(
        sent < 32 << 20,
        "the server read {sent} bytes before refusing"
    );
    assert!(!home.join("second.bin").exists());
    assert!(temporaries(&home).is_empty(), "{:?}", temporaries(&home));
    // Exactly what is left still fits.
    let rest = random_bytes(7, 3 << 20);
    c.stor("rest.bin", &rest);
    assert_eq!(sha256_file(&home.join("rest.bin")), sha256_hex(&rest));
    let shown = ferry_user(&server, &["show", "alice"]);
    assert!(shown.contains("used:          8 MiB in 2 files"), "{shown}");
}

#[test]
fn the_quota_counts_what_the_home_held_at_start() {
    let server = Server::with_alice(&[]);
    server.put("alice", "old.bin", vec![1u8; 700 * 1024]);
    set_alice(&server, &["--quota-size", "1MiB"]);
    let mut c = server.login("alice");
    // The scan runs in the background at the first login; wait for its log line.
    server.wait_log(&["quota usage counted"], Duration::from_secs(10));
    let (r, _) = stor_until_refused(&mut c, "new.bin", 400 * 1024);
    assert_eq!(r.code, 552, "{r:?}");
    c.stor("small.bin", &[3u8; 100 * 1024]);
}

/// Seconds ftplib takes to download `name` and upload it back as `back`.
fn ftplib_times(server: &Server, user: &str, name: &str, back: &str) -> (f64, f64) {
    let py = format!(
        "import ftplib, io, time\n\
         f = ftplib.FTP()\n\
         f.connect('127.0.0.1', {port}, timeout=60)\n\
         f.login('{user}', '{pw}')\n\
         buf = io.BytesIO()\n\
         t = time.monotonic(); f.retrbinary('RETR {name}', buf.write); down = time.monotonic() - t\n\
         buf.seek(0)\n\
         t = time.monotonic(); f.storbinary('STOR {back}', buf); up = time.monotonic() - t\n\
         f.quit()\n\
         print(down, up)\n",
        port = server.port(),
        pw = server.password(user),
    );
    let out = run_client(Command::new("python3").args(["-c", &py]), None, 120).success("ftplib");
    let mut it = out
        .stdout
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn rates_hold_under_ftplib() {
    if !require_client("python3") {
        return;
    }
    // bob has no rate of his own: the server's upload cap holds him.
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .args(["--rate-up", "4MiB/s"])
        .start();
    set_alice(&server, &["--rate-down", "2MiB/s", "--rate-up", "1MiB/s"]);
    let data = random_bytes(6, 3 << 20);
    server.put("alice", "three.bin", &data);
    server.put("bob", "three.bin", &data);
    let (down, up) = ftplib_times(&server, "alice", "three.bin", "back.bin");
    // 3 MiB at 2 MiB/s down and 1 MiB/s up: at least about 1.5 s and 3 s (a credit of one
    // piece, a twentieth of a second, is all a bucket starts with).
    assert!(down >= 1.3, "3 MiB down at 2 MiB/s took {down} s");
    assert!(up >= 2.7, "3 MiB up at 1 MiB/s took {up} s");
    assert_eq!(
        sha256_file(&server.home("alice").join("back.bin")),
        sha256_file(&server.home("alice").join("three.bin"))
    );
    let (_, up) = ftplib_times(&server, "bob", "three.bin", "back.bin");
    // Right after alice's upload, the server's bucket may still hold a quarter second
    // (1 MiB) of credit.
    assert!(up >= 0.45, "3 MiB up under a 4 MiB/s cap took {up} s");
}

#[test]
fn sessions_and_addresses_per_user() {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .args(["--login-failure-delay-ms", "0"])
        .start();
    set_alice(&server, &["--max-sessions", "2"]);
    let first = server.login("alice");
    let second = server.login("alice");
    let mut third = server.control();
    third.expect("USER alice", 331);
    let r = third.cmd("PASS alice-pw");
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text().contains("Too many sessions"), "{r:?}");
    // Another account is not affected; a closed session frees its place.
    let _bob = server.login("bob");
    drop(first);
    let mut again = server.control();
    again.expect("USER alice", 331);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = again.cmd("PASS alice-pw");
        if r.code == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        again = server.control();
        again.expect("USER alice", 331);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(second);
    // Logins from elsewhere than the allowed networks look like a wrong password.
    set_alice(
        &server,
        &["--max-sessions", "none", "--allow-from", "10.0.0.0/8"],
    );
    let mut c = server.control();
    c.expect("USER alice", 331);
    let r = c.cmd("PASS alice-pw");
    assert_eq!(r.code, 530, "{r:?}");
    assert_eq!(r.text(), "530 Login incorrect.", "{r:?}");
    set_alice(
        &server,
        &["--allow-from", "127.0.0.0/8", "--deny-from", "127.0.0.1"],
    );
    let mut c = server.control();
    c.expect("USER alice", 331);
    assert_eq!(c.cmd("PASS alice-pw").code, 530);
    set_alice(&server, &["--deny-from", ""]);
    let _ok = server.login("alice");
    let log = server.log_text();
    assert!(
        log.contains("the account does not allow this address"),
        "{log}"
    );
}

#[test]
fn folders_are_copied_with_site_cpfr_cpto() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("proj/src")).unwrap();
    std::fs::write(home.join("proj/a.txt"), b"a").unwrap();
    std::fs::write(home.join("proj/src/main.rs"), b"fn main() {}").unwrap();
    curl_ok(&[
        "-s",
        "-Q",
        "SITE CPFR proj",
        "-Q",
        "SITE CPTO backup",
        &server.url("alice", ""),
        "-o",
        "/dev/null",
    ]);
    assert_eq!(
        std::fs::read(home.join("backup/src/main.rs")).unwrap(),
        b"fn main() {}"
    );
    assert_eq!(std::fs::read(home.join("backup/a.txt")).unwrap(), b"a");
    let r = server.wait_audit("folder copy", |r| r.op == "copy" && r.path == "/proj");
    assert_eq!(
        (r.to.as_deref(), r.bytes, r.result.as_str()),
        (Some("/backup"), Some(13), "ok")
    );
    let mut c = server.login("alice");
    c.expect("SITE CPFR proj", 350);
    c.expect("SITE CPTO proj/inside", 553);
    c.expect("SITE CPFR proj", 350);
    c.expect("SITE CPTO backup", 550);
}

#[test]
fn hard_links_are_refused_unless_allowed() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    std::fs::write(home.join("one"), b"linked").unwrap();
    std::fs::hard_link(home.join("one"), home.join("two")).unwrap();
    let mut c = server.login("alice");
    c.pasv();
    let r = c.cmd("RETR two");
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().contains("hard links"), "{r:?}");
    drop(c);
    drop(server);
    let server = Server::with_alice(&["--allow-hard-links"]);
    let home = server.home("alice");
    std::fs::write(home.join("one"), b"linked").unwrap();
    std::fs::hard_link(home.join("one"), home.join("two")).unwrap();
    assert_eq!(server.login("alice").retr("two"), b"linked");
}

#[test]
fn ferry_user_show_without_a_policy() {
    let server = Server::with_alice(&[]);
    let shown = ferry_user(&server, &["show", "alice"]);
    for line in [
        "name:          alice",
        "quota:         no size limit / no file limit",
        "rate up:       unlimited",
        "permissions:   all",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    // The users file of an account without a policy has no policy table.
    let file = std::fs::read_to_string(server.data_dir().join("users.toml")).unwrap();
    assert!(!file.contains("policy"), "{file}");
}

#[test]
fn rates_hold_over_tls_with_curl() {
    if !require_client("curl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(ferry_bin());
    cmd.args(["cert", "self-signed", "--out"]).arg(certs.path());
    let _ = run_client(&mut cmd, None, 60).success("ferry cert self-signed");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .start();
    set_alice(&server, &["--rate-down", "2MiB/s"]);
    let data = random_bytes(7, 3 << 20);
    server.put("alice", "three.bin", &data);
    let out = server.root().join("three.bin");
    let started = Instant::now();
    curl_ok(&[
        "--ssl-reqd",
        "-k",
        "-o",
        out.to_str().unwrap(),
        &server.url("alice", "three.bin"),
    ]);
    let secs = started.elapsed().as_secs_f64();
    assert!(secs >= 1.3, "3 MiB at 2 MiB/s over TLS took {secs} s");
    assert_eq!(
        sha256_file(&out),
        sha256_file(&server.home("alice").join("three.bin"))
    );
}
