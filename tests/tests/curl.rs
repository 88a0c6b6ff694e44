//! curl (issue 4, item 6b): upload, download, listings, `-Q` commands, active mode
//! (`--ftp-port -`), resume with `-C -` both ways, `--ftp-create-dirs`, ASCII uploads, and
//! explicit FTPS with a self-signed certificate.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_tests::{
    Server, ServerBuilder, curl, curl_ok, ferry_bin, random_bytes, require_client, run_client,
    sha256_file, temporaries,
};

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Uploads `src` to `name` with curl given `flags`; checks the copy in alice's home.
fn upload(server: &Server, flags: &[&str], src: &Path, name: &str) {
    curl_ok(&[flags, &["-T", p(src), &server.url("alice", name)]].concat());
    assert_eq!(
        sha256_file(&server.home("alice").join(name)),
        sha256_file(src)
    );
}

/// Downloads `name` with curl given `flags` into a new local file; checks it against `src`.
fn download(server: &Server, flags: &[&str], name: &str, src: &Path) {
    static DOWNLOADS: AtomicUsize = AtomicUsize::new(0);
    let n = DOWNLOADS.fetch_add(1, Ordering::Relaxed);
    let dst = server.root().join(format!("down-{n}.bin"));
    curl_ok(&[flags, &["-o", p(&dst), &server.url("alice", name)]].concat());
    assert_eq!(sha256_file(&dst), sha256_file(src), "{name} with {flags:?}");
}

#[test]
fn upload_download_and_listings() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let home = server.home("alice");
    let local = server.local_dir("local");
    let src = local.join("up load.bin");
    std::fs::write(&src, random_bytes(1, 700_000)).unwrap();

    // Upload into the root: curl names it after the local file.
    curl_ok(&["-T", p(&src), &server.url("alice", "")]);
    assert_eq!(sha256_file(&home.join("up load.bin")), sha256_file(&src));
    // Upload under another name, in passive mode without EPSV (PASV).
    upload(&server, &["--disable-epsv"], &src, "second.bin");

    // Download (EPSV, then PASV).
    download(&server, &[], "up%20load.bin", &src);
    download(&server, &["--disable-epsv"], "second.bin", &src);
    // A missing file is an error (550 -> curl exit 78).
    let out = curl(&[
        "-o",
        p(&local.join("x")),
        &server.url("alice", "missing.bin"),
    ]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");

    // Listings: LIST and NLST (--list-only).
    std::fs::create_dir(home.join("sub")).unwrap();
    server.put("alice", "sub/inner.txt", b"inner");
    let out = curl_ok(&[&server.url("alice", "")]);
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
    let out = curl_ok(&["--list-only", &server.url("alice", "")]);
    let mut names: Vec<&str> = out.stdout.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["second.bin", "sub", "up load.bin"],
        "{}",
        out.stdout
    );
    let out = curl_ok(&["--list-only", &server.url("alice", "sub/")]);
    assert_eq!(out.stdout.trim(), "inner.txt");

    server.assert_audited("alice", "upload", "/up load.bin");
    server.assert_audited("alice", "upload", "/second.bin");
}

#[test]
fn quote_commands() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let home = server.home("alice");
    server.put("alice", "a.txt", b"a");
    server.put("alice", "gone.txt", b"g");
    // Before the transfer: MKD, RNFR/RNTO, SITE CPFR/CPTO, SITE CHMOD, MFMT; after it
    // (a leading '-'): DELE.
    curl_ok(&[
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
        &server.url("alice", ""),
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
    let out = curl(&["-Q", "DELE nothing-here", &server.url("alice", "")]);
    assert_eq!(out.status.code(), Some(21), "{out:?}");
    // RMD through a quote, with a post-quote.
    curl_ok(&[
        "-Q",
        "-DELE qdir/b.txt",
        "-Q",
        "-RMD qdir",
        &server.url("alice", ""),
    ]);
    assert!(!home.join("qdir").exists());
    server.assert_all_audited(
        "alice",
        &[
            ("mkdir", "/qdir"),
            ("rename", "/a.txt"),
            ("copy", "/qdir/b.txt"),
            ("chmod", "/c.txt"),
            ("mtime", "/c.txt"),
            ("delete", "/gone.txt"),
            ("delete", "/qdir/b.txt"),
            ("rmdir", "/qdir"),
        ],
    );
    let rename = server.assert_audited("alice", "rename", "/a.txt");
    assert_eq!(rename.to.as_deref(), Some("/qdir/b.txt"));
}

#[test]
fn active_mode() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let src = server.local_file("active.bin", random_bytes(2, 1_500_000));
    // --ftp-port - : PORT (or EPRT) to the address of the control connection.
    upload(&server, &["--ftp-port", "-"], &src, "active.bin");
    download(&server, &["--ftp-port", "-"], "active.bin", &src);
    // PORT without EPRT.
    download(
        &server,
        &["--ftp-port", "-", "--disable-eprt"],
        "active.bin",
        &src,
    );
    let out = curl_ok(&["--ftp-port", "-", "--list-only", &server.url("alice", "")]);
    assert_eq!(out.stdout.trim(), "active.bin");
    server.assert_audited("alice", "upload", "/active.bin");
}

#[test]
fn resume_both_ways() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let full = random_bytes(3, 2_000_000);
    // Download resume: the local file holds the first part.
    server.put("alice", "r.bin", &full);
    let dst = server.local_file("partial.bin", &full[..750_000]);
    curl_ok(&["-C", "-", "-o", p(&dst), &server.url("alice", "r.bin")]);
    assert!(
        std::fs::read(&dst).unwrap() == full,
        "resumed download differs"
    );
    // Upload resume: the server holds the first part; curl asks SIZE and appends.
    let src = server.local_file("whole.bin", &full);
    let up = server.put("alice", "up.bin", &full[..1_234_567]);
    curl_ok(&["-C", "-", "-T", p(&src), &server.url("alice", "up.bin")]);
    assert!(
        std::fs::read(&up).unwrap() == full,
        "resumed upload differs"
    );
    let rec = server.assert_audited("alice", "append", "/up.bin");
    assert_eq!(rec.bytes, Some((2_000_000 - 1_234_567) as u64), "{rec:?}");
    // An explicit offset: --continue-at 1000 (REST 1000 + STOR).
    let at = server.put("alice", "at.bin", &full[..1000]);
    let tail = server.local_file("tail.bin", &full);
    curl_ok(&["-C", "1000", "-T", p(&tail), &server.url("alice", "at.bin")]);
    assert!(std::fs::read(&at).unwrap() == full);
}

#[test]
fn create_dirs_and_ascii() {
    let Some(server) = Server::for_client("curl") else {
        return;
    };
    let home = server.home("alice");
    let src = server.local_file("text.txt", b"line one\nline two\nline three\n");
    upload(&server, &["--ftp-create-dirs"], &src, "a/b/c/text.txt");
    for d in ["/a", "/a/b", "/a/b/c"] {
        server.assert_audited("alice", "mkdir", d);
    }
    // Without --ftp-create-dirs a missing folder is an error.
    let out = curl(&["-T", p(&src), &server.url("alice", "x/y/text.txt")]);
    assert!(!out.status.success());
    assert!(!home.join("x").exists());
    // ASCII upload: curl sends CR LF, the server stores the local convention (LF), as in
    // `src`.
    upload(&server, &["--use-ascii"], &src, "ascii.txt");
    // ASCII download: the server sends CR LF (see raw.rs), which curl turns back into LF.
    let out = curl_ok(&[&server.url("alice", "ascii.txt;type=a")]);
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
    let src = server.local_file("secret.bin", random_bytes(4, 500_000));
    // AUTH TLS, PBSZ 0, PROT P; -k: the certificate is self-signed.
    upload(&server, &["--ssl-reqd", "-k"], &src, "secret.bin");
    download(&server, &["--ssl-reqd", "-k"], "secret.bin", &src);
    let out = curl_ok(&["--ssl-reqd", "-k", "--list-only", &server.url("alice", "")]);
    assert_eq!(out.stdout.trim(), "secret.bin");
    // With the certificate as the trust anchor instead of -k.
    let out = curl_ok(&[
        "--ssl-reqd",
        "--cacert",
        p(&cert),
        "--list-only",
        &server.url("alice", ""),
    ]);
    assert_eq!(out.stdout.trim(), "secret.bin");
    server.wait_log(
        &["control connection upgraded to TLS"],
        std::time::Duration::from_secs(5),
    );
    server.assert_audited("alice", "upload", "/secret.bin");
}

/// `--disk-pool` (every disk call on the blocking pool, for NFS or FUSE homes) serves the
/// same: upload, listing, download, rename and delete.
#[test]
fn the_disk_pool_serves_the_same() {
    if !require_client("curl") {
        return;
    }
    let server = Server::with_alice(&["--disk-pool"]);
    let src = server.local_file("pooled.bin", random_bytes(7, 300_000));
    upload(&server, &[], &src, "pooled.bin");
    let listing = curl_ok(&["-l", &server.url("alice", "")]);
    assert!(listing.stdout.contains("pooled.bin"), "{}", listing.stdout);
    download(&server, &[], "pooled.bin", &src);
    curl_ok(&[
        "-Q",
        "RNFR pooled.bin",
        "-Q",
        "RNTO renamed.bin",
        "-Q",
        "DELE renamed.bin",
        &server.url("alice", ""),
    ]);
    assert!(!server.home("alice").join("pooled.bin").exists());
    assert!(!server.home("alice").join("renamed.bin").exists());
}
