//! The audit log (issue 4, item 6h; DESIGN.md invariant 6): every change a client makes is
//! a JSON line with time, user, client address, operation, path(s), bytes and result, in
//! the order they happened; failed changes too; reads never. (The tests of each client
//! family also check the lines of what they changed.)

use std::io::Write as _;
use std::time::Duration;

use ferry_tests::{AuditRecord, Control, ServerBuilder, random_bytes, wait_until};

/// What a line must say, `None` meaning "anything".
struct Want<'a> {
    op: &'a str,
    path: &'a str,
    to: Option<&'a str>,
    bytes: Option<Option<u64>>,
    result: &'a str,
}

const fn want<'a>(op: &'a str, path: &'a str, result: &'a str) -> Want<'a> {
    Want {
        op,
        path,
        to: None,
        bytes: None,
        result,
    }
}

impl<'a> Want<'a> {
    /// And the line says these bytes.
    const fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(Some(bytes));
        self
    }

    /// And the line names this target.
    const fn to(mut self, to: &'a str) -> Self {
        self.to = Some(to);
        self
    }
}

fn check(records: &[AuditRecord], user: &str, client: &str, wants: &[Want<'_>]) {
    assert_eq!(
        records.len(),
        wants.len(),
        "expected {} lines, got:\n{}",
        wants.len(),
        records
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (r, w) in records.iter().zip(wants) {
        let ctx = format!("{r:?}");
        assert_eq!(r.user, user, "{ctx}");
        assert_eq!(r.client, client, "{ctx}");
        assert_eq!(r.op, w.op, "{ctx}");
        assert_eq!(r.path, w.path, "{ctx}");
        assert_eq!(r.to.as_deref(), w.to, "{ctx}");
        if let Some(bytes) = w.bytes {
            assert_eq!(r.bytes, bytes, "{ctx}");
        }
        assert_eq!(r.result, w.result, "{ctx}");
        // RFC 3339, UTC, whole seconds: 2026-11-23T10:52:08Z.
        let t = r.time.as_bytes();
        assert!(
            t.len() == 20 && t[4] == b'-' && t[10] == b'T' && t[19] == b'Z',
            "{ctx}"
        );
    }
}

#[test]
fn every_change_is_audited_in_order() {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .args(["--login-failure-delay-ms", "0"])
        .start();
    let home = server.home("alice");
    server.put("alice", "existing.txt", b"existing");
    let mut c = server.login("alice");
    let client = c.stream().local_addr().unwrap().to_string();

    // Reads and refused-before-storage commands leave no line.
    c.cmd("SIZE existing.txt");
    c.cmd("MDTM existing.txt");
    c.cmd("MLST existing.txt");
    c.cmd("STAT /");
    assert_eq!(c.retr("existing.txt"), b"existing");
    c.listing("LIST");
    c.listing("MLSD");
    c.cmd("RNTO nowhere");
    assert!(
        server.audit().is_empty(),
        "reads were audited: {:?}",
        server.audit()
    );

    // Each kind of change, and some that fail.
    c.stor("new.bin", &random_bytes(1, 12_345)); // upload
    c.stor("new.bin", b"replaced"); // upload over a file
    let mut data = c.data_in("I", "APPE new.bin"); // append
    data.write_all(b"+more").unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    c.expect("REST 3", 350);
    let mut data = c.data_command("STOR new.bin"); // a write at an offset (resume)
    data.write_all(b"XY").unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    let mut data = c.pasv();
    let stou = c.expect("STOU", 150);
    data.write_all(b"unique").unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 226);
    let stou_path = stou
        .text()
        .split("FILE: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    c.expect_all(&[
        ("MKD folder", 257),
        ("MKD folder", 550), // exists
        ("RNFR new.bin", 350),
        ("RNTO folder/moved.bin", 250),
        ("SITE CPFR folder/moved.bin", 350),
        ("SITE CPTO copy.bin", 250),
        ("MFMT 20190101000000 copy.bin", 213),
        ("SITE CHMOD 600 copy.bin", 200),
        ("RMD folder", 550), // not empty
        ("DELE folder/moved.bin", 250),
        ("DELE folder/moved.bin", 550), // gone
        ("RMD folder", 250),
    ]);
    // An upload the client abandons with ABOR.
    let mut data = c.data_command("STOR abandoned.bin");
    data.write_all(&random_bytes(2, 100_000)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        !ferry_tests::temporaries(&home).is_empty()
    }));
    c.send("ABOR");
    let r = c.read_reply();
    if r.code == 426 {
        assert_eq!(c.read_reply().code, 226);
    }
    drop(data);
    c.expect("QUIT", 221);

    assert!(wait_until(Duration::from_secs(5), || server.audit().len() >= 16));
    let records = server.audit();
    check(
        &records,
        "alice",
        &client,
        &[
            want("upload", "/new.bin", "ok").bytes(12_345),
            want("upload", "/new.bin", "ok").bytes(8),
            want("append", "/new.bin", "ok").bytes(5),
            want("append", "/new.bin", "ok").bytes(2),
            want("upload", &stou_path, "ok").bytes(6),
            want("mkdir", "/folder", "ok"),
            want("mkdir", "/folder", "already_exists"),
            want("rename", "/new.bin", "ok").to("/folder/moved.bin"),
            want("copy", "/folder/moved.bin", "ok")
                .to("/copy.bin")
                .bytes(5),
            want("mtime", "/copy.bin", "ok"),
            want("chmod", "/copy.bin", "ok"),
            want("rmdir", "/folder", "not_empty"),
            want("delete", "/folder/moved.bin", "ok"),
            want("delete", "/folder/moved.bin", "not_found"),
            want("rmdir", "/folder", "ok"),
            want("upload", "/abandoned.bin", "aborted"),
        ],
    );
    // REST 3 + STOR wrote "XY" at offset 3 and cut the file there.
    assert_eq!(std::fs::read(home.join("copy.bin")).unwrap(), b"repXY");

    // Another user from another address: lines name who and where.
    let mut bob = Control::connect_from(ferry_tests::OTHER_HOST, server.addr());
    assert_eq!(bob.read_reply().code, 220);
    bob.login("bob", "bob-pw");
    let bob_client = bob.stream().local_addr().unwrap().to_string();
    assert!(bob_client.starts_with("127.0.0.2:"));
    bob.expect("MKD bobs", 257);
    let rec = server.wait_audit("bob's mkdir", |r| r.user == "bob");
    assert_eq!(rec.client, bob_client);
    assert_eq!(rec.path, "/bobs");
    // Failed logins and sessions without changes add nothing.
    let before = server.audit().len();
    let mut c = server.control();
    c.expect("USER alice", 331);
    c.expect("PASS wrong", 530);
    assert_eq!(server.audit().len(), before);
}
