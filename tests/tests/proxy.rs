//! The PROXY protocol (`--proxy-protocol`, `--proxy-from`) with headers written by the test:
//! the header's source is the client everywhere (the log, the audit log, per-address limits,
//! the passive-connection peer check), on control and data connections; a connection from
//! outside `--proxy-from`, or with a missing, malformed or truncated header, is closed with
//! a log line and never trusted; in `optional` mode other peers connect directly.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ferry_tests::http::{get, sample};
use ferry_tests::{Control, OTHER_HOST, Server, ServerBuilder, tcp_connect_from};

/// A version-2 header: a TCP connection from `source` to `destination` (both IPv4).
fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 4]);
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    // One TLV (PP2_TYPE_UNIQUE_ID, 1 byte), which Ferry skips.
    h.extend_from_slice(&[0x05, 0, 1, 0x42]);
    h
}

fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, n], 40_000 + u16::from(n)))
}

fn server(mode: &str, extra: &[&str]) -> Server {
    ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--proxy-protocol", mode, "--proxy-from", "127.0.0.1/32"])
        .args(extra.iter().copied())
        .start()
}

/// A control connection from 127.0.0.1 that starts with `header`.
fn proxied(server: &Server, header: &[u8]) -> Control {
    let mut c = Control::from_stream(TcpStream::connect(server.addr()).expect("connect"));
    c.send_raw(header);
    c
}

/// Whether the server closes `stream` without a byte of greeting.
fn closed_silently(mut stream: TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn the_header_names_the_client_on_control_and_data_connections() {
    let server = server("required", &[]);
    let mut c = proxied(&server, &v2(client(7), server.addr()));
    assert_eq!(c.read_reply().code, 220);
    c.login("alice", "alice-pw");
    server.wait_log(&["login", "203.0.113.7:40007"], Duration::from_secs(5));

    // A passive data connection through the "balancer": its own header names the client.
    let addr = c.pasv_addr();
    let mut data = TcpStream::connect(addr).unwrap();
    data.write_all(&v2(SocketAddr::new(client(7).ip(), 50_000), addr))
        .unwrap();
    c.expect("STOR hello.txt", 150);
    data.write_all(b"hello through a balancer").unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    let rec = server.wait_audit("the upload", |r| r.path == "/hello.txt");
    assert_eq!(rec.client, "203.0.113.7:40007");

    // A data connection whose header names another client is refused (passive port
    // hijacking through the balancer); so is one without a header, and one from
    // 127.0.0.2, which may not send one. The client's own connection then gets through.
    let addr = c.pasv_addr();
    c.expect("RETR hello.txt", 150);
    let mut thief = TcpStream::connect(addr).unwrap();
    thief.write_all(&v2(client(8), addr)).unwrap();
    assert!(closed_silently(thief));
    server.wait_log(&["intruder", "203.0.113.8"], Duration::from_secs(5));
    let bare = TcpStream::connect(addr).unwrap();
    drop(bare);
    let outsider = tcp_connect_from(OTHER_HOST, addr).unwrap();
    assert!(closed_silently(outsider));
    server.wait_log(
        &["refused a data connection: not from --proxy-from"],
        Duration::from_secs(5),
    );
    let mut data = TcpStream::connect(addr).unwrap();
    data.write_all(&v2(SocketAddr::new(client(7).ip(), 50_001), addr))
        .unwrap();
    let mut got = String::new();
    data.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello through a balancer");
    assert_eq!(c.read_reply().code, 226);
    c.expect("QUIT", 221);
}

#[test]
fn bad_missing_and_untrusted_headers_close_the_connection() {
    let server = server(
        "required",
        &["--metrics-listen", "127.0.0.1:0", "--instance", "p"],
    );
    let addr = server.addr();
    let cases: [(&str, Vec<u8>); 4] = [
        ("not a header", b"USER alice\r\n".to_vec()),
        (
            "malformed",
            b"PROXY TCP4 203.0.113.1 nonsense 1 2\r\n".to_vec(),
        ),
        ("bad version", {
            let mut h = v2(client(1), addr);
            h[12] = 0x31;
            h
        }),
        ("truncated", v2(client(1), addr)[..20].to_vec()),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&bytes).unwrap();
        if what == "truncated" {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(closed_silently(s), "{what}");
    }
    server.wait_log(&["bad PROXY header", "malformed"], Duration::from_secs(5));
    server.wait_log(
        &["bad PROXY header", "closed before"],
        Duration::from_secs(5),
    );

    // From outside --proxy-from: closed at once, whatever it sends.
    let mut s = tcp_connect_from(OTHER_HOST, addr).unwrap();
    s.write_all(&v2(client(1), addr)).unwrap();
    assert!(closed_silently(s));
    server.wait_log(&["not from --proxy-from"], Duration::from_secs(5));

    // The server goes on serving.
    let mut c = proxied(&server, &v2(client(2), addr));
    assert_eq!(c.read_reply().code, 220);
    c.login("alice", "alice-pw");
    c.expect("QUIT", 221);

    // And counts what it refused.
    let (_, text) = get(server.metrics_addr(), "/metrics").expect("/metrics");
    let refused = |reason: &str| {
        let series = format!(
            r#"ferry_proxy_refusals_total{{instance="p",connection="control",reason="{reason}"}}"#
        );
        sample(&text, &series)
    };
    assert_eq!((refused("bad"), refused("untrusted")), (4.0, 1.0), "{text}");
}

#[test]
fn limits_count_the_clients_the_headers_name() {
    let server = server("required", &["--max-connections-per-ip", "1"]);
    let addr = server.addr();
    let mut first = proxied(&server, &v2(client(3), addr));
    assert_eq!(first.read_reply().code, 220);
    // Another client through the same balancer address is admitted...
    let mut other = proxied(&server, &v2(client(4), addr));
    assert_eq!(other.read_reply().code, 220);
    // ...a second connection of the same client is not.
    let mut again = proxied(&server, &v2(client(3), addr));
    assert_eq!(again.read_reply().code, 421);
    first.expect("QUIT", 221);
    other.expect("QUIT", 221);
}

#[test]
fn optional_mode_takes_direct_clients_from_elsewhere() {
    let server = server("optional", &[]);
    // 127.0.0.2 is not a balancer: a client connecting directly, as itself.
    let mut direct = Control::connect_from(OTHER_HOST, server.addr());
    assert_eq!(direct.read_reply().code, 220);
    direct.login("alice", "alice-pw");
    server.wait_log(&["login", "127.0.0.2:"], Duration::from_secs(5));
    let data = direct.pasv();
    drop(data);
    direct.expect("QUIT", 221);
    // A balancer's connection still needs its header.
    let mut lb = proxied(&server, &v2(client(5), server.addr()));
    assert_eq!(lb.read_reply().code, 220);
    lb.login("alice", "alice-pw");
    server.wait_log(&["login", "203.0.113.5:40005"], Duration::from_secs(5));
}

#[test]
fn the_settings_are_checked() {
    let out = std::process::Command::new(ferry_tests::ferry_bin())
        .args(["serve", "--proxy-protocol", "required"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs --proxy-from"), "{err}");
    let out = std::process::Command::new(ferry_tests::ferry_bin())
        .args(["serve", "--proxy-protocol", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("off, optional or required"), "{err}");
}
