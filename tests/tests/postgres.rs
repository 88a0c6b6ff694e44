//! Accounts in PostgreSQL (`--accounts postgres://...`), on a real PostgreSQL started by the
//! test: the schema made once and reused; `ferry user add|passwd|list|remove` against the
//! database, seen by two running instances at their next login; a disabled account and an
//! injection-shaped name refused like a wrong password; a policy stored with the account
//! (`ferry user set`); the database stopped (new logins get
//! 421, a session already logged in keeps working) and started again (the next login works
//! without a restart of Ferry).

use std::process::Command;

use ferry_tests::postgres::Postgres;
use ferry_tests::{Control, Server, ServerBuilder, ferry_bin, run_client};

fn instance(pg: &Postgres, name: &str) -> Server {
    ServerBuilder::new()
        .args([
            "--accounts",
            &pg.url(),
            "--instance",
            name,
            "--login-failure-delay-ms",
            "0",
        ])
        .start()
}

/// `ferry user ARGS` against the database, with `stdin`; its standard output.
fn user(pg: &Postgres, server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("user")
        .args(args)
        .args(["--accounts", &pg.url(), "--data-dir"])
        .arg(server.data_dir());
    let out = run_client(&mut cmd, stdin.map(str::as_bytes), 60);
    out.success(&format!("ferry user {args:?}")).stdout
}

/// The reply code to `USER name` + `PASS password` on a new connection.
fn login_code(server: &Server, name: &str, password: &str) -> u16 {
    let mut c = server.control();
    c.cmd(&format!("USER {name}"));
    c.cmd(&format!("PASS {password}")).code
}

fn logged_in(server: &Server, name: &str, password: &str) -> Control {
    let mut c = server.control();
    c.login(name, password);
    c
}

#[test]
fn two_instances_share_the_accounts_of_one_database() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let a = instance(&pg, "a");
    let b = instance(&pg, "b");
    // Both migrated the same database: one schema row, version 2 (policies).
    assert_eq!(
        pg.psql("SELECT count(*), max(version) FROM ferry_schema")
            .trim(),
        "1|2"
    );
    // No account is made by itself in a shared database.
    assert!(
        !a.stdout_lines()
            .iter()
            .any(|l| l.contains("Created the account"))
    );
    a.wait_log(
        &["no accounts in the database yet"],
        std::time::Duration::from_secs(5),
    );

    let added = user(
        &pg,
        &a,
        &["add", "alice", "--password-stdin"],
        Some("alice-pw\n"),
    );
    assert!(added.contains("Created alice"), "{added}");
    assert!(
        a.home("alice").is_dir(),
        "the home is made with the account"
    );
    let hash = pg.psql("SELECT password FROM ferry_accounts WHERE name = 'alice'");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let listed = user(&pg, &a, &["list"], None);
    assert!(listed.starts_with("alice\t"), "{listed}");
    for s in [&a, &b] {
        assert_eq!(login_code(s, "alice", "alice-pw"), 230);
        assert_eq!(login_code(s, "alice", "wrong"), 530);
    }

    // A new password is seen by both at the next login.
    let _ = user(
        &pg,
        &a,
        &["passwd", "alice", "--password-stdin"],
        Some("new-pw\n"),
    );
    assert_eq!(login_code(&b, "alice", "alice-pw"), 530);
    assert_eq!(login_code(&b, "alice", "new-pw"), 230);

    // Names shaped like SQL are names: refused like any unknown one.
    for name in [
        "x' OR '1'='1",
        "alice'--",
        "alice; DROP TABLE ferry_accounts",
    ] {
        assert_eq!(login_code(&a, name, "new-pw"), 530, "{name}");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM ferry_accounts").trim(), "1");

    // A policy set through the database holds on both instances: one session at a time,
    // and a drop box; `ferry user show` reads it back.
    let shown = user(
        &pg,
        &a,
        &[
            "set",
            "alice",
            "--max-sessions",
            "1",
            "--folder",
            "/box=upload",
        ],
        None,
    );
    assert!(
        shown.contains("max sessions:  1") && shown.contains("folder:        /box = upload"),
        "{shown}"
    );
    let stored = pg.psql("SELECT policy FROM ferry_accounts WHERE name = 'alice'");
    assert!(stored.contains("max_sessions = 1"), "{stored}");
    {
        let mut one = logged_in(&a, "alice", "new-pw");
        assert_eq!(login_code(&a, "alice", "new-pw"), 421);
        one.expect("MKD /box", 257);
        one.expect("MKD /box/sub", 550);
        one.expect("QUIT", 221);
    }
    let _ = user(
        &pg,
        &a,
        &[
            "set",
            "alice",
            "--max-sessions",
            "none",
            "--remove-folder",
            "/box",
        ],
        None,
    );
    assert_eq!(login_code(&b, "alice", "new-pw"), 230);

    // A disabled account is refused at its next login.
    let _ = pg.psql("UPDATE ferry_accounts SET disabled = true WHERE name = 'alice'");
    assert_eq!(login_code(&a, "alice", "new-pw"), 530);
    let _ = pg.psql("UPDATE ferry_accounts SET disabled = false WHERE name = 'alice'");

    // The database goes away: a session already logged in keeps working, new logins get
    // 421 (and a log line); it comes back, and logins work again.
    let mut kept = logged_in(&a, "alice", "new-pw");
    pg.stop();
    assert_eq!(login_code(&b, "alice", "new-pw"), 421);
    b.wait_log(&["accounts unavailable"], std::time::Duration::from_secs(5));
    kept.stor("while-down.txt", b"still here");
    assert_eq!(kept.retr("while-down.txt"), b"still here");
    pg.start_again();
    assert_eq!(login_code(&b, "alice", "new-pw"), 230);
    assert_eq!(login_code(&a, "alice", "new-pw"), 230);
    kept.expect("QUIT", 221);

    // A removed account is refused at its next login, on both.
    let removed = user(&pg, &a, &["remove", "alice"], None);
    assert!(removed.contains("Removed alice"), "{removed}");
    for s in [&a, &b] {
        assert_eq!(login_code(s, "alice", "new-pw"), 530);
    }
    // The schema is reused at the next start, not made again; a database of the first
    // version (before policies) is brought up to date.
    drop(a);
    drop(b);
    let _ = pg.psql("ALTER TABLE ferry_accounts DROP COLUMN policy");
    let _ = pg.psql("UPDATE ferry_schema SET version = 1");
    let again = instance(&pg, "c");
    assert_eq!(
        pg.psql("SELECT count(*), max(version) FROM ferry_schema")
            .trim(),
        "1|2"
    );
    assert_eq!(
        pg.psql("SELECT count(policy) FROM ferry_accounts").trim(),
        "0"
    );
    drop(again);
}

#[test]
fn a_database_that_cannot_be_reached_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(ferry_bin());
    cmd.args([
        "--accounts",
        "postgres://ferry:secret-pw@127.0.0.1:1/ferry?sslmode=disable",
        "--data-dir",
    ])
    .arg(dir.path())
    .args(["--listen", "127.0.0.1:0"]);
    let out = run_client(&mut cmd, None, 60);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("cannot connect to the accounts database")
            && out.stderr.contains("ferry:***@127.0.0.1:1"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("secret-pw"), "{}", out.stderr);

    let mut cmd = Command::new(ferry_bin());
    cmd.args([
        "user",
        "list",
        "--accounts",
        "postgres://a:pw@h/db?sslmode=require",
    ]);
    let out = run_client(&mut cmd, None, 60);
    assert!(!out.status.success());
    assert!(out.stderr.contains("sslmode"), "{}", out.stderr);
}
