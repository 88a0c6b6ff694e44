//! curl (issue 4, item 6b): upload, download, listings, `-Q` commands, active mode
//! (`--ftp-port -`), resume with `-C -` both ways, `--ftp-create-dirs`, ASCII uploads, and
//! explicit FTPS with a self-signed certificate.

use std::path::Path;
use std::process::Command;

use ferry_tests::{
    ClientOutput, Server, ServerBuilder, ferry_bin, random_bytes, require_client, run_client,
    sha256_file, temporaries,
};

/// Runs curl with `args`; asserts success.
fn curl(args: &[&str]) -> ClientOutput {
    let out = curl_status(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

fn curl_status(args: &[&str]) -> ClientOutput {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--connect-timeout", "10"])
        .args(args);
    run_client(&mut cmd, None, 60)
}

fn url(server: &Server, path: &str) -> String {
    format!("ftp://alice:alice-pw@127.0.0.1:{}/{path}", server.port())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn upload_download_and_listings() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let local = server.root().join("local");
    std::fs::create_dir(&local).unwrap();
    let src = local.join("up load.bin");
    std::fs::write(&src, random_bytes(1, 700_000)).unwrap();

    // Upload into the root: curl names it after the local file.
    curl(&["-T", p(&src), &url(&server, "")]);
    assert_eq!(sha256_file(&home.join("up load.bin")), sha256_file(&src));
    // Upload under another name, in passive mode without EPSV (PASV).
    curl(&["--disable-epsv", "-T", p(&src), &url(&server, "second.bin")]);
    assert_eq!(sha256_file(&home.join("second.bin")), sha256_file(&src));

    // Download (EPSV, then PASV).
    let dst = local.join("down.bin");
    curl(&["-o", p(&dst), &url(&server, "up%20load.bin")]);
    assert_eq!(sha256_file(&dst), sha256_file(&src));
    std::fs::remove_file(&dst).unwrap();
    curl(&["--disable-epsv", "-o", p(&dst), &url(&server, "second.bin")]);
    assert_eq!(sha256_file(&dst), sha256_file(&src));
    // A missing file is an error (550 -> curl exit 78).
    let out = curl_status(&["-o", p(&local.join("x")), &url(&server, "missing.bin")]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");

    // Listings: LIST and NLST (--list-only).
    std::fs::create_dir(home.join("sub")).unwrap();
    std::fs::write(home.join("sub/inner.txt"), b"inner").unwrap();
    let out = curl(&[&url(&server, "")]);
    assert!(
        out.stdout.contains("up load.bin") && out.stdout.contains("sub"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('d') && l.ends_with(" sub")),
        "{}",
        out.stdout
    );
    let out = curl(&["--list-only", &url(&server, "")]);
    let mut names: Vec<&str> = out.stdout.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["second.bin", "sub", "up load.bin"],
        "{}",
        out.stdout
    );
    let out = curl(&["--list-only", &url(&server, "sub/")]);
    assert_eq!(out.stdout.trim(), "inner.txt");

    server.assert_audited("alice", "upload", "/up load.bin");
    server.assert_audited("alice", "upload", "/second.bin");
}

#[test]
fn quote_commands() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    std::fs::write(home.join("a.txt"), b"a").unwrap();
    std::fs::write(home.join("gone.txt"), b"g").unwrap();
    // Before the transfer: MKD, RNFR/RNTO, SITE CPFR/CPTO, SITE CHMOD, MFMT; after it
    // (a leading '-'): DELE.
    curl(&[
        "-Q",
        "MKD qdir",
        "-Q",
        "RNFR a.txt",
        "-Q",
        "RNTO qdir/b.txt",
        "-Q",
        "SITE CPFR qdir/b.txt",
        "-Q",
        "SITE CPTO c.txt",
        "-Q",
        "SITE CHMOD 600 c.txt",
        "-Q",
        "MFMT 20210304050607 c.txt",
        "-Q",
        "-DELE gone.txt",
        &url(&server, ""),
    ]);
    assert!(home.join("qdir").is_dir());
    assert!(!home.join("a.txt").exists());
    assert_eq!(std::fs::read(home.join("qdir/b.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(home.join("c.txt")).unwrap(), b"a");
    assert!(!home.join("gone.txt").exists());
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(home.join("c.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // A refused quote command fails curl (exit 21, quote error).
    let out = curl_status(&["-Q", "DELE nothing-here", &url(&server, "")]);
    assert_eq!(out.status.code(), Some(21), "{out:?}");
    // RMD through a quote, with a post-quote.
    curl(&[
        "-Q",
        "-DELE qdir/b.txt",
        "-Q",
        "-RMD qdir",
        &url(&server, ""),
    ]);
    assert!(!home.join("qdir").exists());
    for (op, path) in [
        ("mkdir", "/qdir"),
        ("rename", "/a.txt"),
        ("copy", "/qdir/b.txt"),
        ("chmod", "/c.txt"),
        ("mtime", "/c.txt"),
        ("delete", "/gone.txt"),
        ("delete", "/qdir/b.txt"),
        ("rmdir", "/qdir"),
    ] {
        server.assert_audited("alice", op, path);
    }
    let rename = server.assert_audited("alice", "rename", "/a.txt");
    assert_eq!(rename.to.as_deref(), Some("/qdir/b.txt"));
}

#[test]
fn active_mode() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let src = server.root().join("active.bin");
    std::fs::write(&src, random_bytes(2, 1_500_000)).unwrap();
    // --ftp-port - : PORT (or EPRT) to the address of the control connection.
    curl(&[
        "--ftp-port",
        "-",
        "-T",
        p(&src),
        &url(&server, "active.bin"),
    ]);
    assert_eq!(sha256_file(&home.join("active.bin")), sha256_file(&src));
    let dst = server.root().join("active-down.bin");
    curl(&[
        "--ftp-port",
        "-",
        "-o",
        p(&dst),
        &url(&server, "active.bin"),
    ]);
    assert_eq!(sha256_file(&dst), sha256_file(&src));
    // PORT without EPRT.
    let dst2 = server.root().join("active-down2.bin");
    curl(&[
        "--ftp-port",
        "-",
        "--disable-eprt",
        "-o",
        p(&dst2),
        &url(&server, "active.bin"),
    ]);
    assert_eq!(sha256_file(&dst2), sha256_file(&src));
    let out = curl(&["--ftp-port", "-", "--list-only", &url(&server, "")]);
    assert_eq!(out.stdout.trim(), "active.bin");
    server.assert_audited("alice", "upload", "/active.bin");
}

#[test]
fn resume_both_ways() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let full = random_bytes(3, 2_000_000);
    // Download resume: the local file holds the first part.
    std::fs::write(home.join("r.bin"), &full).unwrap();
    let dst = server.root().join("partial.bin");
    std::fs::write(&dst, &full[..750_000]).unwrap();
    curl(&["-C", "-", "-o", p(&dst), &url(&server, "r.bin")]);
    assert!(
        std::fs::read(&dst).unwrap() == full,
        "resumed download differs"
    );
    // Upload resume: the server holds the first part; curl asks SIZE and appends.
    let src = server.root().join("whole.bin");
    std::fs::write(&src, &full).unwrap();
    std::fs::write(home.join("up.bin"), &full[..1_234_567]).unwrap();
    curl(&["-C", "-", "-T", p(&src), &url(&server, "up.bin")]);
    assert!(
        std::fs::read(home.join("up.bin")).unwrap() == full,
        "resumed upload differs"
    );
    let rec = server.assert_audited("alice", "append", "/up.bin");
    assert_eq!(rec.bytes, Some((2_000_000 - 1_234_567) as u64), "{rec:?}");
    // An explicit offset: --continue-at 1000 (REST 1000 + STOR).
    std::fs::write(home.join("at.bin"), &full[..1000]).unwrap();
    let tail = server.root().join("tail.bin");
    std::fs::write(&tail, &full).unwrap();
    curl(&["-C", "1000", "-T", p(&tail), &url(&server, "at.bin")]);
    assert!(std::fs::read(home.join("at.bin")).unwrap() == full);
}

#[test]
fn create_dirs_and_ascii() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let src = server.root().join("text.txt");
    std::fs::write(&src, b"line one\nline two\nline three\n").unwrap();
    curl(&[
        "--ftp-create-dirs",
        "-T",
        p(&src),
        &url(&server, "a/b/c/text.txt"),
    ]);
    assert_eq!(
        std::fs::read(home.join("a/b/c/text.txt")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    for d in ["/a", "/a/b", "/a/b/c"] {
        server.assert_audited("alice", "mkdir", d);
    }
    // Without --ftp-create-dirs a missing folder is an error.
    let out = curl_status(&["-T", p(&src), &url(&server, "x/y/text.txt")]);
    assert!(!out.status.success());
    assert!(!home.join("x").exists());
    // ASCII upload: curl sends CR LF, the server stores the local convention (LF).
    curl(&["--use-ascii", "-T", p(&src), &url(&server, "ascii.txt")]);
    assert_eq!(
        std::fs::read(home.join("ascii.txt")).unwrap(),
        b"line one\nline two\nline three\n"
    );
    // ASCII download: the server sends CR LF (see raw.rs), which curl turns back into LF.
    let out = curl(&[&url(&server, "ascii.txt;type=a")]);
    assert_eq!(out.stdout, "line one\nline two\nline three\n");
    assert!(temporaries(&home).is_empty());
}

#[test]
fn explicit_ftps() {
    if !require_client("curl") {
        return;
    }
    // A certificate made by `ferry cert self-signed`.
    let certs = tempfile::tempdir().unwrap();
    let out = run_client(
        Command::new(ferry_bin())
            .args(["cert", "self-signed", "--out"])
            .arg(certs.path()),
        None,
        60,
    );
    assert!(out.status.success(), "{out:?}");
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--tls-cert", p(&cert), "--tls-key", p(&key)])
        .start();
    let home = server.home("alice");
    let src = server.root().join("secret.bin");
    std::fs::write(&src, random_bytes(4, 500_000)).unwrap();
    // AUTH TLS, PBSZ 0, PROT P; -k: the certificate is self-signed.
    curl(&[
        "--ssl-reqd",
        "-k",
        "-T",
        p(&src),
        &url(&server, "secret.bin"),
    ]);
    assert_eq!(sha256_file(&home.join("secret.bin")), sha256_file(&src));
    let dst = server.root().join("secret-down.bin");
    curl(&[
        "--ssl-reqd",
        "-k",
        "-o",
        p(&dst),
        &url(&server, "secret.bin"),
    ]);
    assert_eq!(sha256_file(&dst), sha256_file(&src));
    let out = curl(&["--ssl-reqd", "-k", "--list-only", &url(&server, "")]);
    assert_eq!(out.stdout.trim(), "secret.bin");
    // With the certificate as the trust anchor instead of -k.
    let out = curl(&[
        "--ssl-reqd",
        "--cacert",
        p(&cert),
        "--list-only",
        &url(&server, ""),
    ]);
    assert_eq!(out.stdout.trim(), "secret.bin");
    server.wait_log(
        &["control connection upgraded to TLS"],
        std::time::Duration::from_secs(5),
    );
    server.assert_audited("alice", "upload", "/secret.bin");
}
