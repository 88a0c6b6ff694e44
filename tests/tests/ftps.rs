//! Explicit FTPS (RFC 4217): curl, lftp, suppaftp (rustls) and Python's ftplib over TLS 1.2
//! and 1.3; `--require-tls`; STARTTLS command injection; data connections bound to their own
//! control connection's TLS session; certificate reload on SIGHUP; bad certificate files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry_tests::{
    IO_TIMEOUT, Server, ServerBuilder, curl, ferry_bin, make_tree, parse_epsv, random_bytes,
    require_client, run_client, sha256_file, tree_sums,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A certificate and key made by `ferry cert self-signed` in a temporary folder.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(ferry_bin());
        cmd.args(["cert", "self-signed", "--out"]).arg(dir.path());
        for n in names {
            cmd.args(["--name", n]);
        }
        let out = run_client(&mut cmd, None, 60);
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.contains("self-signed"),
            "the warning is missing: {out:?}"
        );
        Self { dir }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// A rustls client configuration that trusts this certificate (and keeps TLS sessions in
    /// its own cache, as clients do).
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.cert()).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// New certificates and a server on them.
fn new_tls_server(extra: &[&str]) -> (Certs, Server) {
    let certs = Certs::new(&[]);
    let server = tls_server(&certs, extra);
    (certs, server)
}

fn tls_server(certs: &Certs, extra: &[&str]) -> Server {
    ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--tls-cert", p(&certs.cert()), "--tls-key", p(&certs.key())])
        .args(extra.iter().copied())
        .start()
}

#[test]
fn curl_over_tls13_and_tls12() {
    if !require_client("curl") {
        return;
    }
    let (certs, server) = new_tls_server(&[]);
    let home = server.home("alice");
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            server.local_file(
                &format!("f{i}.bin"),
                random_bytes(100 + i, 200_000 + i as usize * 77_777),
            )
        })
        .collect();
    for (version, tag) in [
        (&["--tlsv1.3"][..], "13"),
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "12"),
    ] {
        let base = |extra: &[String]| {
            let mut args: Vec<String> = ["--ssl-reqd", "--cacert", p(&certs.cert())]
                .map(String::from)
                .to_vec();
            args.extend(version.iter().map(|s| (*s).to_string()));
            args.extend(extra.iter().cloned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&refs)
        };
        // One upload per session: OpenSSL (curl) offers a TLS 1.3 ticket only once, and an
        // upload's data connection hands out no fresh one (see runtime-smol/src/tls.rs).
        for (i, f) in files.iter().enumerate() {
            let out = base(&[
                "-T".into(),
                p(f).into(),
                server.url("alice", &format!("{tag}-{i}.bin")),
            ]);
            assert!(
                out.status.success(),
                "upload over TLS {tag}: {out:?}\n{}",
                server.log_text()
            );
        }
        // Many downloads and a listing in one session: each data connection resumes the
        // control connection's session (required by default) with a ticket the last one
        // handed out.
        let mut args = Vec::new();
        for i in 0..files.len() {
            let down = server.root().join(format!("down-{tag}-{i}.bin"));
            args.extend([
                "-o".into(),
                p(&down).into(),
                server.url("alice", &format!("{tag}-{i}.bin")),
            ]);
        }
        // `--next` keeps `--list-only` to the last URL.
        args.extend([
            "--next".into(),
            "--ssl-reqd".into(),
            "--cacert".into(),
            p(&certs.cert()).into(),
        ]);
        args.extend(version.iter().map(|s| (*s).to_string()));
        args.extend(["--list-only".into(), server.url("alice", "")]);
        let out = base(&args);
        assert!(
            out.status.success(),
            "downloads over TLS {tag}: {out:?}\n{}",
            server.log_text()
        );
        assert!(out.stdout.contains(&format!("{tag}-3.bin")), "{out:?}");
        for (i, f) in files.iter().enumerate() {
            let want = sha256_file(f);
            assert_eq!(
                sha256_file(&home.join(format!("{tag}-{i}.bin"))),
                want,
                "upload {tag}-{i}: last bytes lost?"
            );
            assert_eq!(
                sha256_file(&server.root().join(format!("down-{tag}-{i}.bin"))),
                want
            );
        }
    }
    assert!(
        !server.log_text().contains("did not resume"),
        "{}",
        server.log_text()
    );
}

#[test]
fn curl_with_tls_on_the_control_connection_only() {
    if !require_client("curl") {
        return;
    }
    let (_certs, server) = new_tls_server(&[]);
    let src = server.local_file("c.bin", random_bytes(7, 50_000));
    // --ftp-ssl-control: the password is encrypted, the data goes PROT C.
    let out = curl(&[
        "--ftp-ssl-control",
        "-k",
        "-T",
        p(&src),
        &server.url("alice", "c.bin"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        sha256_file(&server.home("alice").join("c.bin")),
        sha256_file(&src)
    );
    // Without any TLS, on a server that offers it but does not require it.
    let out = curl(&["--list-only", &server.url("alice", "")]);
    assert!(
        out.status.success() && out.stdout.contains("c.bin"),
        "{out:?}"
    );
}

#[test]
fn lftp_mirrors_a_tree_over_ftps() {
    if !require_client("lftp") {
        return;
    }
    let (_certs, server) = new_tls_server(&["--require-tls"]);
    let local = server.root().join("local");
    make_tree(&local, 31);
    let back = server.root().join("back");
    let script = format!(
        "set ssl:verify-certificate no; set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set net:timeout 10; set net:max-retries 2; set cmd:fail-exit yes; \
         open -u alice,alice-pw -p {port} 127.0.0.1; \
         mirror -R {local} up; mirror up {back}; bye",
        port = server.port(),
        local = p(&local),
        back = p(&back),
    );
    let out = run_client(Command::new("lftp").args(["-c", &script]), None, 120);
    assert!(out.status.success(), "{out:?}\n{}", server.log_text());
    assert_eq!(
        tree_sums(&server.home("alice").join("up")),
        tree_sums(&local)
    );
    assert_eq!(tree_sums(&back), tree_sums(&local));
}

#[test]
fn suppaftp_with_rustls() {
    use suppaftp::{RustlsConnector, RustlsFtpStream};
    let (certs, server) = new_tls_server(&["--require-tls"]);
    let ftp = RustlsFtpStream::connect(server.addr()).unwrap();
    let mut ftp = ftp
        .into_secure(RustlsConnector::from(certs.client_config()), "localhost")
        .unwrap();
    ftp.login("alice", "alice-pw").unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp.mkdir("secure").unwrap();
    ftp.cwd("secure").unwrap();
    let data = random_bytes(9, 300_000);
    ftp.put_file("a.bin", &mut data.as_slice()).unwrap();
    ftp.rename("a.bin", "b.bin").unwrap();
    assert_eq!(ftp.nlst(None).unwrap(), ["b.bin"]);
    for _ in 0..5 {
        let got = ftp.retr_as_buffer("b.bin").unwrap().into_inner();
        assert!(got == data, "download over TLS differs");
    }
    assert_eq!(ftp.size("b.bin").unwrap(), data.len());
    ftp.quit().unwrap();
    assert_eq!(
        std::fs::read(server.home("alice").join("secure/b.bin")).unwrap(),
        data
    );
}

#[test]
fn python_ftplib_cannot_resume_unless_reuse_is_off() {
    if !require_client("python3") {
        return;
    }
    let certs = Certs::new(&[]);
    let script = r"
import ftplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
f = ftplib.FTP_TLS(context=ctx, timeout=10)
f.connect('127.0.0.1', int(sys.argv[1]))
f.login('alice', 'alice-pw')
f.prot_p()
try:
    f.storbinary('STOR p.bin', open(sys.argv[3], 'rb'))
    print('names', f.nlst())
    print('size', f.size('p.bin'))
    f.retrlines('LIST', lambda l: None)
except Exception as e:
    # The server refused the data connection's handshake; its reply says why.
    try:
        f.getresp()
    except ftplib.error_perm as r:
        print('refused', r)
print('quit', f.quit())
";
    let src = certs.dir.path().join("p.bin");
    std::fs::write(&src, random_bytes(3, 100_000)).unwrap();
    // By default a data connection must resume the control connection's TLS session, which
    // ftplib cannot do: it gets a clear 522 and the session goes on.
    let cert = certs.cert();
    let ftplib = |server: &Server| {
        let port = server.port().to_string();
        let args = ["-c", script, &port, p(&cert), p(&src)];
        run_client(Command::new("python3").args(args), None, 60)
    };
    let strict = tls_server(&certs, &[]);
    let out = ftplib(&strict);
    assert!(out.stdout.contains("refused 522"), "{out:?}");
    assert!(out.stdout.contains("quit 221"), "{out:?}");
    strict.wait_log(&["did not resume"], Duration::from_secs(5));
    // With --tls-session-reuse false it works, and the control connection stays sane after
    // several TLS data connections (QUIT is answered 221).
    let lax = tls_server(&certs, &["--tls-session-reuse", "false"]);
    let out = ftplib(&lax);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.contains("names ['p.bin']") && out.stdout.contains("size 100000"),
        "{out:?}"
    );
    assert!(out.stdout.contains("quit 221"), "{out:?}");
}

/// A control connection under TLS, driven by hand with rustls.
struct TlsControl {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsControl {
    /// Connects, reads the greeting, sends `first` in one write (AUTH TLS and whatever a
    /// test pipelines behind it), expects 234 and runs the handshake.
    fn upgrade(addr: SocketAddr, config: Arc<ClientConfig>, first: &str) -> Self {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut plain = BufReader::new(tcp.try_clone().unwrap());
        let mut line = String::new();
        plain.read_line(&mut line).unwrap();
        assert!(line.starts_with("220"), "{line}");
        (&tcp).write_all(first.as_bytes()).unwrap();
        line.clear();
        plain.read_line(&mut line).unwrap();
        assert!(line.starts_with("234"), "{line}");
        assert!(
            plain.buffer().is_empty(),
            "the server said more than 234 before the handshake"
        );
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        Self {
            reader: BufReader::new(StreamOwned::new(conn, tcp)),
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        let s = self.reader.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        s.flush().unwrap();
        self.reply()
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut l = String::new();
            assert!(
                self.reader.read_line(&mut l).unwrap() > 0,
                "control connection closed"
            );
            text.push_str(&l);
            if l.len() >= 4 && l.as_bytes()[3] == b' ' {
                return (l[..3].parse().unwrap(), text);
            }
        }
    }

    fn login(&mut self) {
        assert_eq!(self.cmd("USER alice").0, 331);
        assert_eq!(self.cmd("PASS alice-pw").0, 230);
        assert_eq!(self.cmd("PBSZ 0").0, 200);
        assert_eq!(self.cmd("PROT P").0, 200);
    }

    /// Lists over a TLS data connection made with `config`; returns the listing, or `None`
    /// when the server refused the connection, and the final reply.
    fn list_with(&mut self, addr: SocketAddr, config: Arc<ClientConfig>) -> (Option<String>, u16) {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "{text}");
        let port = parse_epsv(&text).unwrap();
        let tcp =
            TcpStream::connect_timeout(&SocketAddr::new(addr.ip(), port), IO_TIMEOUT).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let s = self.reader.get_mut();
        s.write_all(b"NLST\r\n").unwrap();
        s.flush().unwrap();
        let conn =
            ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut data = StreamOwned::new(conn, tcp);
        let mut listing = String::new();
        let got = data.read_to_string(&mut listing).ok().map(|_| listing);
        assert_eq!(self.reply().0, 150);
        (got, self.reply().0)
    }
}

#[test]
fn starttls_injection_is_discarded() {
    let (certs, server) = new_tls_server(&[]);
    // USER and PASS ride in the same segment as AUTH TLS, in clear text: they must not run
    // after the handshake.
    let mut c = TlsControl::upgrade(
        server.addr(),
        certs.client_config(),
        "AUTH TLS\r\nUSER alice\r\nPASS alice-pw\r\n",
    );
    let (code, text) = c.cmd("NOOP");
    assert_eq!(code, 200, "an injected command was answered first: {text}");
    assert_eq!(
        c.cmd("PWD").0,
        530,
        "the injected login must not have happened"
    );
    assert_eq!(
        c.cmd("PASS alice-pw").0,
        503,
        "the injected USER must not have happened"
    );
    c.login();
    assert_eq!(c.cmd("QUIT").0, 221);
}

#[test]
fn a_data_connection_must_resume_its_own_control_session() {
    let (certs, server) = new_tls_server(&[]);
    server.put("alice", "listed.txt", b"x");
    // Two clients, each with its own session cache, as two separate programs would have.
    let (config_a, config_b) = (certs.client_config(), certs.client_config());
    let mut a = TlsControl::upgrade(server.addr(), config_a.clone(), "AUTH TLS\r\n");
    a.login();
    let mut b = TlsControl::upgrade(server.addr(), config_b.clone(), "AUTH TLS\r\n");
    b.login();
    drop(b);
    // The right client resumes its own session: the listing comes through, many times.
    for _ in 0..6 {
        let (listing, code) = a.list_with(server.addr(), config_a.clone());
        assert_eq!(code, 226);
        assert_eq!(listing.unwrap().trim(), "listed.txt");
    }
    // A data connection resuming B's session (a stranger racing for A's data port) is
    // refused: A's control connection never made that session.
    let (listing, code) = a.list_with(server.addr(), config_b.clone());
    assert_eq!(
        code, 522,
        "a session of another control connection was accepted"
    );
    assert!(listing.is_none_or(|l| l.is_empty()));
    // The refused stranger did a full handshake with A's data port; whatever session that
    // made must not let it in next time.
    let (_, code) = a.list_with(server.addr(), config_b.clone());
    assert_eq!(
        code, 522,
        "a refused handshake's session was accepted later"
    );
    // A data connection that resumes nothing at all is refused too.
    let stranger = certs.client_config();
    let (_, code) = a.list_with(server.addr(), stranger.clone());
    assert_eq!(code, 522);
    let (_, code) = a.list_with(server.addr(), stranger);
    assert_eq!(code, 522);
    // A's own client still resumes, and so does B with a fresh client of its own session.
    let (listing, code) = a.list_with(server.addr(), config_a);
    assert_eq!(
        (code, listing.unwrap().trim().to_string()),
        (226, "listed.txt".to_string())
    );
    let config_b2 = certs.client_config();
    let mut b = TlsControl::upgrade(server.addr(), config_b2.clone(), "AUTH TLS\r\n");
    b.login();
    let (listing, code) = b.list_with(server.addr(), config_b2);
    assert_eq!(
        (code, listing.unwrap().trim().to_string()),
        (226, "listed.txt".to_string())
    );
    server.wait_log(&["did not resume"], Duration::from_secs(5));
}

#[test]
fn require_tls_leaves_no_clear_text_path() {
    let (certs, server) = new_tls_server(&["--require-tls"]);
    // Clear text: no login.
    let mut c = server.control();
    let r = c.cmd("USER alice");
    assert_eq!(r.code, 530);
    assert!(
        r.text().contains("AUTH TLS"),
        "the reply must say why: {}",
        r.text()
    );
    assert_eq!(c.cmd("PASS alice-pw").code, 503);
    assert_eq!(c.cmd("PWD").code, 530);
    // TLS control, but clear data: refused.
    let mut t = TlsControl::upgrade(server.addr(), certs.client_config(), "AUTH TLS\r\n");
    assert_eq!(t.cmd("USER alice").0, 331);
    assert_eq!(t.cmd("PASS alice-pw").0, 230);
    assert_eq!(t.cmd("PBSZ 0").0, 200);
    assert_eq!(t.cmd("PROT C").0, 534);
    assert_eq!(t.cmd("EPSV").0, 229);
    assert_eq!(t.cmd("NLST").0, 521);
    if require_client("curl") {
        for args in [
            &["--list-only"][..],
            &["--ftp-ssl-control", "-k", "--list-only"][..],
        ] {
            let mut all: Vec<String> = args.iter().map(|s| (*s).to_string()).collect();
            all.push(server.url("alice", ""));
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = curl(&refs);
            assert!(
                !out.status.success(),
                "curl {args:?} got through in clear text: {out:?}"
            );
        }
        let out = curl(&["--ssl-reqd", "-k", "--list-only", &server.url("alice", "")]);
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_sessions() {
    let old = Certs::new(&[]);
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    std::fs::copy(old.cert(), &cert).unwrap();
    std::fs::copy(old.key(), &key).unwrap();
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--tls-cert", p(&cert), "--tls-key", p(&key)])
        .start();
    let config_old = old.client_config();
    let mut before = TlsControl::upgrade(server.addr(), config_old.clone(), "AUTH TLS\r\n");
    before.login();
    let new = Certs::new(&["localhost", "127.0.0.1"]);
    std::fs::copy(new.cert(), &cert).unwrap();
    std::fs::copy(new.key(), &key).unwrap();
    let out = run_client(
        Command::new("kill").args(["-HUP", &server.pid().to_string()]),
        None,
        10,
    );
    assert!(out.status.success());
    server.wait_log(&["reloaded the TLS certificate"], Duration::from_secs(5));
    // New sessions get the new certificate...
    let mut after = TlsControl::upgrade(server.addr(), new.client_config(), "AUTH TLS\r\n");
    after.login();
    // ...and the session from before goes on, data connections included.
    let (listing, code) = before.list_with(server.addr(), config_old);
    assert_eq!(code, 226);
    assert!(listing.is_some());
    assert_eq!(before.cmd("NOOP").0, 200);
}

#[test]
fn bad_certificate_files_are_refused_at_start() {
    let a = Certs::new(&[]);
    let b = Certs::new(&[]);
    let data = tempfile::tempdir().unwrap();
    let start = |cert: &Path, key: &Path| {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(["--data-dir", p(data.path()), "--listen", "127.0.0.1:0"])
            .args(["--tls-cert", p(cert), "--tls-key", p(key)]);
        run_client(&mut cmd, None, 30)
    };
    let missing = a.dir.path().join("nope.pem");
    for (cert, key, error) in [
        (missing, a.key(), "nope.pem"),
        (a.cert(), b.key(), "does not match"),
        (a.key(), a.key(), "no certificate"),
        (a.cert(), a.cert(), "no private key"),
    ] {
        let out = start(&cert, &key);
        assert!(
            !out.status.success() && out.stderr.contains(error),
            "{out:?}"
        );
    }
    // --require-tls without a certificate is refused too.
    let mut cmd = Command::new(ferry_bin());
    cmd.args([
        "--data-dir",
        p(data.path()),
        "--listen",
        "127.0.0.1:0",
        "--require-tls",
    ]);
    let out = run_client(&mut cmd, None, 30);
    assert!(
        !out.status.success() && out.stderr.contains("require-tls"),
        "{out:?}"
    );
}
