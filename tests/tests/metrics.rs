//! What operators and load balancers watch (`--metrics-listen`): `/metrics` counters that
//! move with real traffic, `/health`, `/ready` turning 503 while a SIGTERM drain lets a
//! running download finish, and the instance name (`--instance`) in every series, every
//! log line and every audit line.

use std::io::Read as _;
use std::time::Duration;

use ferry_tests::http::{get, sample};
use ferry_tests::{Server, ServerBuilder, poll, random_bytes};

const INSTANCE: &str = "e2e-a";

fn server(extra: &[&str]) -> Server {
    ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--metrics-listen", "127.0.0.1:0", "--instance", INSTANCE])
        .args(extra.iter().copied())
        .start()
}

/// The value of `name{instance="e2e-a",labels}` in a scrape of `server`.
fn scrape(server: &Server) -> String {
    let (status, body) = get(server.metrics_addr(), "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn value(text: &str, name: &str, labels: &str) -> f64 {
    let sep = if labels.is_empty() { "" } else { "," };
    sample(
        text,
        &format!("{name}{{instance=\"{INSTANCE}\"{sep}{labels}}}"),
    )
}

#[test]
fn counters_move_with_real_traffic() {
    let server = server(&[]);
    let before = scrape(&server);
    assert_eq!(value(&before, "ferry_logins_total", r#"result="ok""#), 0.0);
    assert!(before.contains("# TYPE ferry_sessions gauge"), "{before}");

    let mut bad = server.control();
    bad.send("USER alice");
    bad.read_reply();
    bad.expect("PASS wrong", 530);
    bad.expect("QUIT", 221);

    let mut c = server.login("alice");
    let data = random_bytes(7, 300_000);
    c.stor("up.bin", &data);
    assert_eq!(c.retr("up.bin"), data);
    let (_, listing) = c.listing("LIST");
    assert!(listing.contains("up.bin"), "{listing}");
    c.expect("DELE up.bin", 250);
    c.expect("DELE up.bin", 550);
    c.expect("BOGUS", 500);

    let text = scrape(&server);
    let v = |name: &str, labels: &str| value(&text, name, labels);
    assert_eq!(v("ferry_sessions", ""), 1.0, "{text}");
    assert_eq!(v("ferry_logins_total", r#"result="ok""#), 1.0, "{text}");
    assert_eq!(v("ferry_logins_total", r#"result="failed""#), 1.0, "{text}");
    assert_eq!(v("ferry_commands_total", r#"verb="PASS",class="5xx""#), 1.0);
    assert_eq!(v("ferry_commands_total", r#"verb="PASS",class="2xx""#), 1.0);
    assert_eq!(
        v("ferry_commands_total", r#"verb="STOR",class="2xx""#),
        1.0,
        "{text}"
    );
    assert_eq!(
        v("ferry_commands_total", r#"verb="RETR",class="2xx""#),
        1.0,
        "{text}"
    );
    assert_eq!(v("ferry_commands_total", r#"verb="DELE",class="2xx""#), 1.0);
    assert_eq!(v("ferry_commands_total", r#"verb="DELE",class="5xx""#), 1.0);
    assert_eq!(
        v("ferry_commands_total", r#"verb="other",class="5xx""#),
        1.0
    );
    #[allow(clippy::cast_precision_loss)]
    let size = data.len() as f64;
    assert_eq!(
        v("ferry_transfer_bytes_total", r#"direction="upload""#),
        size
    );
    assert_eq!(
        v("ferry_transfer_bytes_total", r#"direction="download""#),
        size
    );
    assert_eq!(
        v(
            "ferry_transfers_total",
            r#"direction="listing",result="ok""#
        ),
        1.0
    );
    assert_eq!(
        v(
            "ferry_transfer_duration_seconds_count",
            r#"direction="upload""#
        ),
        1.0
    );
    assert_eq!(
        v(
            "ferry_storage_duration_seconds_count",
            r#"op="remove_file",backend="disk""#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        v(
            "ferry_storage_duration_seconds_count",
            r#"op="login",backend="disk""#
        ),
        2.0
    );

    let (status, body) = get(server.metrics_addr(), "/health").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = get(server.metrics_addr(), "/ready").unwrap();
    assert_eq!(status, 200);
    let (status, _) = get(server.metrics_addr(), "/nothing").unwrap();
    assert_eq!(status, 404);

    // The instance is in the log and the audit log too.
    let log = server.wait_log(&["login", INSTANCE], Duration::from_secs(5));
    assert!(
        log.lines()
            .filter(|l| l.contains("INFO"))
            .all(|l| l.ends_with(&format!("instance={INSTANCE}"))),
        "{log}"
    );
    let audited = server.assert_audited("alice", "delete", "/up.bin");
    assert_eq!(audited.instance.as_deref(), Some(INSTANCE));
}

#[test]
fn ready_turns_false_while_a_drain_lets_a_download_finish() {
    let mut server = server(&["--shutdown-grace", "30"]);
    let big = random_bytes(9, 32 << 20);
    server.put("alice", "big.bin", &big);
    let mut c = server.login("alice");
    c.expect("TYPE I", 200);
    // The download starts, and waits for this client to read.
    let mut data = c.data_command("RETR big.bin");
    assert_eq!(get(server.metrics_addr(), "/ready").unwrap().0, 200);

    server.terminate();
    let draining = poll(Duration::from_secs(10), || {
        (get(server.metrics_addr(), "/ready")?.0 == 503).then_some(())
    });
    assert!(draining.is_some(), "/ready did not turn 503 after SIGTERM");
    // Still alive for the checks of a balancer, and for the download under way.
    assert_eq!(get(server.metrics_addr(), "/health").unwrap().0, 200);

    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert!(
        got == big,
        "the download did not finish whole during the drain"
    );
    let done = c.read_reply();
    assert_eq!(done.code, 226, "{done:?}");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "the server did not exit after its last transfer"
    );
}
