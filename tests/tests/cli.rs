//! The `ferry` command line around a running server: the first start's account, accounts
//! changed while the server runs, and bad settings refused at start.

use std::process::Command;
use std::time::Duration;

use ferry_tests::{Control, Server, ServerBuilder, ferry_bin, run_client, wait_until};

fn ferry(args: &[&str], stdin: Option<&str>) -> ferry_tests::ClientOutput {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(k);
        }
    }
    run_client(&mut cmd, stdin.map(str::as_bytes), 60)
}

fn try_login(server: &Server, user: &str, password: &str) -> u16 {
    let mut c = server.control();
    c.expect(&format!("USER {user}"), 331);
    c.cmd(&format!("PASS {password}")).code
}

#[test]
fn first_start_creates_an_account() {
    let server = ServerBuilder::new().start();
    let password = server.password("user").to_string();
    assert!(password.len() >= 12, "a weak first password: {password:?}");
    let out = server.stdout_lines().join("\n");
    assert!(out.contains("ferry user passwd user"), "{out}");
    let mut c = server.login("user");
    c.stor("hello.txt", b"hi");
    assert!(server.home("user").join("hello.txt").exists());
    // The password is never logged.
    assert!(!server.log_text().contains(&password));
}

#[test]
fn accounts_change_while_the_server_runs() {
    let server = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--login-failure-delay-ms", "0"])
        .start();
    let data = server.data_dir().to_str().unwrap().to_string();
    // Added while running: can log in, with a home of its own.
    let out = ferry(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--data-dir",
            &data,
        ],
        Some("bob-pw\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(server.home("bob").is_dir());
    assert!(
        wait_until(Duration::from_secs(5), || try_login(
            &server, "bob", "bob-pw"
        ) == 230),
        "a new account cannot log in"
    );
    // A changed password: the old one fails, the new one works, even right after logins
    // with the old one (which the server remembers and then checks without a hash).
    for _ in 0..2 {
        assert_eq!(try_login(&server, "alice", "alice-pw"), 230);
    }
    let out = ferry(
        &[
            "user",
            "passwd",
            "alice",
            "--password-stdin",
            "--data-dir",
            &data,
        ],
        Some("new-alice-pw\n"),
    );
    assert!(out.status.success(), "{out:?}");
    // At once: the users file is looked at on every login.
    assert_eq!(try_login(&server, "alice", "alice-pw"), 530);
    assert_eq!(try_login(&server, "alice", "new-alice-pw"), 230);
    // Listed, then removed: no more logins.
    let out = ferry(&["user", "list", "--data-dir", &data], None);
    assert!(
        out.stdout.contains("alice") && out.stdout.contains("bob"),
        "{out:?}"
    );
    let out = ferry(&["user", "remove", "bob", "--data-dir", &data], None);
    assert!(out.status.success(), "{out:?}");
    assert!(wait_until(Duration::from_secs(5), || try_login(
        &server, "bob", "bob-pw"
    ) == 530));
    // Bad names are refused.
    let out = ferry(
        &[
            "user",
            "add",
            "../evil",
            "--password-stdin",
            "--data-dir",
            &data,
        ],
        Some("x\n"),
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(!server.data_dir().join("evil").exists());
    assert!(!server.data_dir().parent().unwrap().join("evil").exists());
}

#[test]
fn bad_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, needles) in [
        (
            vec!["--passive-ports", "3000-2000"],
            vec!["passive", "3000-2000"],
        ),
        (vec!["--idle-timeout", "soon"], vec!["idle", "soon"]),
        (vec!["--listen", "nowhere"], vec!["listen", "nowhere"]),
        (
            vec!["--max-connections-per-ip", "0"],
            vec!["max-connections-per-ip"],
        ),
        (vec!["--tls-cert", "/nonexistent.pem"], vec!["tls"]),
    ] {
        let mut all = vec!["--data-dir", data, "--listen", "127.0.0.1:0"];
        if args[0] == "--listen" {
            all.truncate(2);
        }
        all.extend(&args);
        let out = ferry(&all, None);
        assert!(!out.status.success(), "{args:?} was accepted: {out:?}");
        let text = format!("{}{}", out.stdout, out.stderr);
        for n in needles {
            assert!(
                text.contains(n),
                "{args:?}: the error does not name {n:?}: {text}"
            );
        }
    }
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, "max_conections = 5\n").unwrap();
    let out = ferry(
        &["--config", config.to_str().unwrap(), "--data-dir", data],
        None,
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("max_conections"), "{out:?}");
    let out = ferry(&["--help"], None);
    assert!(
        out.status.success() && out.stdout.contains("--data-dir"),
        "{out:?}"
    );
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        "greeting = \"from the file\"\nmax_login_failures = 1\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let greeting = |server: &Server| {
        let mut c = Control::connect(server.addr());
        c.read_reply().text()
    };
    let file = ServerBuilder::new().args(["--config", config]).start();
    assert!(greeting(&file).contains("from the file"));
    let env = ServerBuilder::new()
        .args(["--config", config])
        .env("FERRY_GREETING", "from the environment")
        .start();
    assert!(greeting(&env).contains("from the environment"));
    let flag = ServerBuilder::new()
        .user("alice", "alice-pw")
        .args(["--config", config, "--greeting", "from the flag"])
        .args(["--login-failure-delay-ms", "0"])
        .env("FERRY_GREETING", "from the environment")
        .start();
    assert!(greeting(&flag).contains("from the flag"));
    // The file's other keys still count: one failed login closes the connection.
    let mut c = flag.control();
    c.expect("USER alice", 331);
    c.expect("PASS wrong", 530);
    assert_eq!(
        c.read_reply().code,
        421,
        "not cut off after the file's 1 failure"
    );
}

#[test]
fn global_options_come_before_or_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, "greeting = \"hi\"\n").unwrap();
    let config = config.to_str().unwrap();
    let out = ferry(
        &[
            "--data-dir",
            data,
            "--config",
            config,
            "user",
            "add",
            "alice",
            "--password-stdin",
        ],
        Some("pw\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = ferry(
        &["user", "list", "--data-dir", data, "--config", config],
        None,
    );
    assert!(
        out.status.success() && out.stdout.contains("alice"),
        "{out:?}"
    );
    // The options of `serve` belong after `serve` (or stand without a command).
    let out = ferry(&["--listen", "127.0.0.1:0", "user", "list"], None);
    assert!(
        !out.status.success() && out.stderr.contains("cannot be used with '--listen <ADDR>'"),
        "{out:?}"
    );
}
