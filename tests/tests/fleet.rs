//! A fleet: two `ferry serve` processes behind HAProxy (TCP mode, PROXY v2 to the
//! instances, health checks on `/ready`), sharing one SeaweedFS bucket and one PostgreSQL
//! database of accounts, as README.md's "Running several instances" sets them up.
//!
//! - curl, lftp and Python's ftplib through the balancer: what one session uploads is
//!   listed and downloaded, byte for byte, by sessions on the other instance; explicit FTPS
//!   through the balancer with data-session reuse required (the default);
//! - an account added to the database (`ferry user add`) while both run logs in through both;
//! - one instance stopped with SIGTERM during a download and an upload: both finish, the
//!   balancer marks it down and sends new sessions to the other, no multipart upload is left
//!   behind, and each instance's audit log records what it did, under its own name.
//!
//! Passive mode across instances: each instance announces the balancer's address
//! (`--public-address 127.0.0.2`) and its own passive port range, and the balancer forwards
//! each range to the instance that owns it.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_tests::haproxy::{HaProxy, free_range};
use ferry_tests::http::{get, sample};
use ferry_tests::postgres::Postgres;
use ferry_tests::weed::{ACCESS_KEY, SECRET_KEY, Weed};
use ferry_tests::{
    Control, Server, ServerBuilder, curl_ok, ferry_bin, random_bytes, require_client, run_client,
    sha256_hex,
};

/// Where the balancer listens; the instances listen on 127.0.0.1.
const FRONT_IP: &str = "127.0.0.2";

/// How often HAProxy checks `/ready`.
const CHECK_INTERVAL_MS: u64 = 250;

struct Fleet {
    pg: Postgres,
    weed: Weed,
    a: Server,
    b: Server,
    lb: HaProxy,
    front: SocketAddr,
    _certs: tempfile::TempDir,
}

/// An instance named `name` on `weed`'s bucket, passive ports `range`, the accounts of `pg`.
fn instance(weed: &Weed, pg: &Postgres, name: &str, range: (u16, u16), certs: &Path) -> Server {
    ServerBuilder::new()
        .args(["--accounts", &pg.url()])
        .args(weed.serve_args("fleet"))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .args([
            "--instance",
            name,
            "--proxy-protocol",
            "required",
            "--proxy-from",
            "127.0.0.1/32",
            "--public-address",
            FRONT_IP,
            "--passive-ports",
            &format!("{}-{}", range.0, range.1),
            "--metrics-listen",
            "127.0.0.1:0",
            "--tls-cert",
            certs.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            certs.join("key.pem").to_str().unwrap(),
            "--shutdown-grace",
            "30",
        ])
        .start()
}

/// The balancer's configuration: README.md's, with the test's ports.
fn haproxy_config(front: SocketAddr, fleet: &[(&str, &Server, (u16, u16))]) -> String {
    let mut cfg = format!(
        "global
    maxconn 1000

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    retries 2
    option redispatch

# Control connections: round robin over the instances that answer /ready.
frontend ftp
    bind {front}
    default_backend ferry

backend ferry
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS}ms fall 1 rise 1
"
    );
    for (name, server, _) in fleet {
        cfg.push_str(&format!(
            "    server {name} {} send-proxy-v2 check port {}\n",
            server.addr(),
            server.metrics_addr().port()
        ));
    }
    for (name, _, (lo, hi)) in fleet {
        // Data connections: each instance's passive range to that instance, same port.
        cfg.push_str(&format!(
            "
frontend pasv_{name}
    bind {FRONT_IP}:{lo}-{hi}
    default_backend pasv_{name}

backend pasv_{name}
    server {name} 127.0.0.1 send-proxy-v2
"
        ));
    }
    cfg
}

impl Fleet {
    fn start() -> Option<Self> {
        if !["curl", "lftp", "python3"]
            .iter()
            .all(|c| require_client(c))
        {
            return None;
        }
        let pg = Postgres::start()?;
        let weed = Weed::start()?;
        let certs = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(ferry_bin());
        cmd.args(["cert", "self-signed", "--out"]).arg(certs.path());
        let _ = run_client(&mut cmd, None, 60).success("ferry cert self-signed");
        let ips = ["127.0.0.1", FRONT_IP];
        let ra = free_range(8, &ips);
        let rb = loop {
            let r = free_range(8, &ips);
            if r.1 < ra.0 || r.0 > ra.1 {
                break r;
            }
        };
        add_user(&pg, certs.path(), "alice");
        let a = instance(&weed, &pg, "ferry-a", ra, certs.path());
        let b = instance(&weed, &pg, "ferry-b", rb, certs.path());
        let front = {
            let l = TcpListener::bind((FRONT_IP, 0)).unwrap();
            l.local_addr().unwrap()
        };
        let cfg = haproxy_config(front, &[("a", &a, ra), ("b", &b, rb)]);
        let lb = HaProxy::start(&cfg)?;
        for s in ["a", "b"] {
            assert!(
                lb.wait_status("ferry", s, "UP", Duration::from_secs(10)),
                "{s} is not UP: {:?}\n{}",
                lb.status("ferry", s),
                lb.log()
            );
        }
        Some(Self {
            pg,
            weed,
            a,
            b,
            lb,
            front,
            _certs: certs,
        })
    }

    fn url(&self, user: &str, path: &str) -> String {
        format!("ftp://{user}:{user}-pw@{}{path}", self.front)
    }

    /// Good logins so far on each instance (`[a, b]`), from their `/metrics`; an instance
    /// that is gone counts as none.
    fn logins(&self) -> [f64; 2] {
        let count = |s: &Server, name: &str| {
            get(s.metrics_addr(), "/metrics").map_or(0.0, |(_, text)| {
                sample(
                    &text,
                    &format!("ferry_logins_total{{instance=\"{name}\",result=\"ok\"}}"),
                )
            })
        };
        [count(&self.a, "ferry-a"), count(&self.b, "ferry-b")]
    }

    /// Runs `client` (one session) and says which instance logged it in.
    fn on<T>(&self, client: impl FnOnce() -> T) -> (T, &'static str) {
        let before = self.logins();
        let out = client();
        let after = self.logins();
        let which = match (after[0] - before[0], after[1] - before[1]) {
            (1.0, 0.0) => "a",
            (0.0, 1.0) => "b",
            other => panic!("one login on one instance expected, got {other:?}"),
        };
        (out, which)
    }

    /// Runs `client` until it lands on another instance than `not` (round robin: at most a
    /// few sessions).
    fn on_other<T>(&self, not: &str, mut client: impl FnMut() -> T) -> T {
        for _ in 0..4 {
            let (out, which) = self.on(&mut client);
            if which != not {
                return out;
            }
        }
        panic!("every session landed on {not}");
    }

    fn lftp(&self, script: &str) -> String {
        let commands = format!(
            "set ftp:ssl-allow no; set net:timeout 10; set net:max-retries 2; \
             set cmd:fail-exit yes; {script}; bye"
        );
        let mut cmd = Command::new("lftp");
        cmd.current_dir(self.a.root())
            .args([
                "-u",
                "alice,alice-pw",
                "-p",
                &self.front.port().to_string(),
                FRONT_IP,
            ])
            .args(["-e", &commands]);
        run_client(&mut cmd, None, 120)
            .success(&format!("lftp {commands:?}"))
            .stdout
    }

    fn ftplib(&self, user: &str, body: &str) -> String {
        let py = format!(
            "import ftplib, hashlib, io\n\
             f = ftplib.FTP()\n\
             f.connect('{FRONT_IP}', {port}, timeout=30)\n\
             f.login('{user}', '{user}-pw')\n\
             {body}\n\
             f.quit()\n",
            port = self.front.port(),
        );
        run_client(Command::new("python3").args(["-c", &py]), None, 60)
            .success("ftplib")
            .stdout
    }
}

/// `ferry user add NAME` (password `NAME-pw`) against the database, from a machine whose data
/// folder is `dir`.
fn add_user(pg: &Postgres, dir: &Path, name: &str) {
    let mut add = Command::new(ferry_bin());
    add.args([
        "user",
        "add",
        name,
        "--password-stdin",
        "--accounts",
        &pg.url(),
        "--data-dir",
    ])
    .arg(dir.join("admin"));
    let password = format!("{name}-pw\n");
    let _ = run_client(&mut add, Some(password.as_bytes()), 60).success("ferry user add");
}

#[test]
fn a_fleet_behind_haproxy_serves_one_user_base() {
    let Some(mut fleet) = Fleet::start() else {
        return;
    };
    let dir = fleet.a.root().to_owned();

    // curl: up on one instance, down on the other.
    let data = random_bytes(11, 3 << 20);
    fs::write(dir.join("one.bin"), &data).unwrap();
    let one = dir.join("one.bin");
    let (_, up_on) = fleet.on(|| {
        curl_ok(&[
            "-sS",
            "-T",
            one.to_str().unwrap(),
            &fleet.url("alice", "/one.bin"),
        ])
    });
    let got = dir.join("one.got");
    fleet.on_other(up_on, || {
        curl_ok(&[
            "-sS",
            "-o",
            got.to_str().unwrap(),
            &fleet.url("alice", "/one.bin"),
        ])
    });
    assert_eq!(sha256_hex(&fs::read(&got).unwrap()), sha256_hex(&data));
    // Active mode: the PORT target is checked against the client the header named.
    let active = dir.join("one.active");
    let _ = curl_ok(&[
        "-sS",
        "-P",
        "127.0.0.1",
        "-o",
        active.to_str().unwrap(),
        &fleet.url("alice", "/one.bin"),
    ]);
    assert!(fs::read(&active).unwrap() == data);
    let up_server = if up_on == "a" { &fleet.a } else { &fleet.b };
    let audited = up_server.assert_audited("alice", "upload", "/one.bin");
    assert_eq!(
        audited.instance.as_deref(),
        Some(&*format!("ferry-{up_on}"))
    );
    // The client is the one the PROXY header named, not the balancer.
    assert!(audited.client.starts_with("127.0.0.1:"), "{audited:?}");

    // ftplib uploads; lftp on the other instance lists and downloads it.
    let (_, py_on) = fleet.on(|| {
        fleet.ftplib(
            "alice",
            "f.storbinary('STOR py.bin', io.BytesIO(bytes(range(256)) * 4096))",
        )
    });
    let listing = fleet.on_other(py_on, || fleet.lftp("cls -l; get py.bin -o py.got"));
    assert!(
        listing.contains("py.bin") && listing.contains("one.bin"),
        "{listing}"
    );
    let expected: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    assert!(fs::read(dir.join("py.got")).unwrap() == expected);
    // And ftplib, on the other instance from lftp's, reads what curl sent (EPSV this time).
    let sum = fleet.ftplib(
        "alice",
        "b = io.BytesIO(); f.retrbinary('RETR one.bin', b.write); print(hashlib.sha256(b.getvalue()).hexdigest())",
    );
    assert_eq!(sum.trim(), sha256_hex(&data));

    // Explicit FTPS through the balancer; data connections must resume the control
    // connection's TLS session (the default), on the instance that owns the session.
    let tls = dir.join("tls.bin");
    fs::write(&tls, random_bytes(12, 1 << 20)).unwrap();
    let ftps = |args: &[&str]| {
        let mut all = vec!["-sS", "--ssl-reqd", "-k"];
        all.extend_from_slice(args);
        curl_ok(&all)
    };
    let (_, tls_on) =
        fleet.on(|| ftps(&["-T", tls.to_str().unwrap(), &fleet.url("alice", "/tls.bin")]));
    let tls_got = dir.join("tls.got");
    fleet.on_other(tls_on, || {
        ftps(&[
            "-o",
            tls_got.to_str().unwrap(),
            &fleet.url("alice", "/tls.bin"),
        ])
    });
    assert!(fs::read(&tls_got).unwrap() == fs::read(&tls).unwrap());

    // An account added to the database while both run logs in through both.
    add_user(&fleet.pg, fleet.a.root(), "carol");
    let (_, first) =
        fleet.on(|| fleet.ftplib("carol", "f.storbinary('STOR c.txt', io.BytesIO(b'carol'))"));
    let seen = fleet.on_other(first, || fleet.ftplib("carol", "print(f.nlst())"));
    assert!(seen.contains("c.txt"), "{seen}");

    // Each instance's audit log holds its own changes, under its own name.
    for (server, name) in [(&fleet.a, "ferry-a"), (&fleet.b, "ferry-b")] {
        let records = server.audit();
        assert!(!records.is_empty(), "{name} recorded nothing");
        assert!(
            records.iter().all(|r| r.instance.as_deref() == Some(name)),
            "{name}: {records:?}"
        );
    }

    drain(&mut fleet);
}

/// One instance is stopped with SIGTERM while it runs a download and an upload.
fn drain(fleet: &mut Fleet) {
    let big = random_bytes(13, 24 << 20);
    let big_path = fleet.a.root().join("big.bin");
    fs::write(&big_path, &big).unwrap();
    let _ = curl_ok(&[
        "-sS",
        "-T",
        big_path.to_str().unwrap(),
        &fleet.url("alice", "/big.bin"),
    ]);

    // Two sessions on instance a, found by where their logins count.
    let mut on_a = Vec::new();
    while on_a.len() < 2 {
        let (c, which) = fleet.on(|| {
            let mut c = Control::connect(fleet.front);
            c.read_reply();
            c.login("alice", "alice-pw");
            c
        });
        if which == "a" {
            on_a.push(c);
        }
    }
    let (mut down, mut up) = (on_a.remove(0), on_a.remove(0));
    down.expect("TYPE I", 200);
    let mut down_data = down.data_command("RETR big.bin");
    let mut head = vec![0u8; 1 << 20];
    down_data.read_exact(&mut head).unwrap();
    up.expect("TYPE I", 200);
    let mut up_data = up.data_command("STOR drained.bin");
    up_data.write_all(&big[..8 << 20]).unwrap();

    let stopped = Instant::now();
    fleet.a.terminate();
    assert!(
        fleet
            .lb
            .wait_status("ferry", "a", "DOWN", Duration::from_secs(10)),
        "the balancer did not mark a down: {:?}",
        fleet.lb.status("ferry", "a")
    );
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(CHECK_INTERVAL_MS * 8),
        "a was marked down after {took:?}"
    );
    // New sessions go to b.
    for _ in 0..3 {
        let (_, which) = fleet.on(|| curl_ok(&["-sS", "-l", &fleet.url("alice", "/")]));
        assert_eq!(which, "b");
    }

    // The transfers under way finish.
    up_data.write_all(&big[8 << 20..]).unwrap();
    drop(up_data);
    assert_eq!(up.read_reply().code, 226);
    let mut rest = Vec::new();
    down_data.read_to_end(&mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert!(head == big, "the download did not finish whole");
    assert_eq!(down.read_reply().code, 226);
    drop((down, up));
    assert!(
        fleet.a.wait_exit(Duration::from_secs(30)).is_some(),
        "a did not exit after its transfers"
    );

    // What a finished is whole, read through b; no multipart upload is left behind.
    let got = fleet.b.root().join("drained.got");
    let _ = curl_ok(&[
        "-sS",
        "-o",
        got.to_str().unwrap(),
        &fleet.url("alice", "/drained.bin"),
    ]);
    assert!(fs::read(&got).unwrap() == big);
    assert_eq!(fleet.weed.pending_multipart_uploads(), 0);
    let audited = fleet.a.assert_audited("alice", "upload", "/drained.bin");
    assert_eq!(
        (audited.instance.as_deref(), audited.result.as_str()),
        (Some("ferry-a"), "ok")
    );
}
