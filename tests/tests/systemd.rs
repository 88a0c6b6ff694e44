//! The systemd unit beside the binary's crate (`runtime-smol/contrib/ferry.service`): it
//! passes `systemd-analyze verify` (no unknown key, the binary executable), and keeps the
//! promises README.md makes of it: a dedicated user, no new privileges, a read-only system
//! with the data folder writable, a restart on failure, and a stop timeout longer than the
//! shutdown grace so that a SIGTERM drain can finish. Skipped where systemd is absent.

use std::fs;
use std::process::Command;

use ferry_tests::{ferry_bin, find_in_path, skipped, workspace_root};

/// The unit's `Key=value` lines for `key`.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn unit_text() -> String {
    fs::read_to_string(workspace_root().join("runtime-smol/contrib/ferry.service"))
        .expect("runtime-smol/contrib/ferry.service")
}

#[test]
fn the_unit_keeps_its_promises() {
    let unit = unit_text();
    let one = |key: &str| {
        let v = values(&unit, key);
        assert_eq!(v.len(), 1, "{key}= should be set once: {v:?}");
        v[0]
    };
    assert_eq!(one("User"), "ferry");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("KillSignal"), "SIGTERM");
    let data_dir = one("ReadWritePaths");
    let exec = one("ExecStart");
    assert!(
        exec.ends_with(&format!("--data-dir {data_dir}")),
        "the writable folder is the data folder: {exec}"
    );
    let stop: u64 = one("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    let grace = ferry_smol::config::DEFAULT_SHUTDOWN_GRACE.as_secs();
    assert!(
        stop > grace,
        "TimeoutStopSec ({stop}) must exceed the shutdown grace ({grace})"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(analyze) = find_in_path("systemd-analyze") else {
        skipped("systemd-analyze not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Verify checks that the binary exists: point it at the one these tests run.
    let unit = unit_text().replace("/usr/local/bin/ferry", &ferry_bin().to_string_lossy());
    let path = dir.path().join("ferry.service");
    fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ferry.service"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify complained: {ours:?}"
    );
}
