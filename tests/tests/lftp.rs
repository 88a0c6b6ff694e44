//! lftp (issue 4, item 6c): `mirror` a tree of nested folders and binary files up and back
//! down, compared by checksum and modification time, in passive and active mode; a mirror
//! that deletes; and lftp's file commands.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_tests::{
    Server, file_mtimes, make_tree, require_client, set_mtime, temporaries, tree_sums,
};

/// Sets old, distinct modification times on the files of a tree, so that preserving them
/// is visible.
fn age_tree(root: &Path) {
    let mut i = 0u64;
    for (k, v) in tree_sums(root) {
        if v != "dir" {
            i += 1;
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000 + i * 86_461);
            set_mtime(&root.join(k), t);
        }
    }
}

fn mirror_round_trip(settings: &str) {
    let server = Server::with_alice(&[]);
    let local = server.root().join("local");
    let files = make_tree(&local, 100);
    age_tree(&local);
    server.lftp(settings, "mirror -R local remote; mirror remote back");
    let remote = server.home("alice").join("remote");
    let back = server.root().join("back");
    let sums = tree_sums(&local);
    assert_eq!(sums, tree_sums(&remote), "uploaded tree differs");
    assert_eq!(sums, tree_sums(&back), "downloaded tree differs");
    // lftp sets the times it knows: MFMT up, MDTM/MLSD modify down.
    let times = file_mtimes(&local);
    assert_eq!(
        times,
        file_mtimes(&remote),
        "times not preserved on upload (MFMT)"
    );
    assert_eq!(times, file_mtimes(&back), "times not preserved on download");
    assert!(temporaries(&server.home("alice")).is_empty());
    for f in &files {
        server.assert_audited("alice", "upload", &format!("/remote/{f}"));
        server.assert_audited("alice", "mtime", &format!("/remote/{f}"));
    }
    for d in [
        "/remote",
        "/remote/sub",
        "/remote/sub/deeper",
        "/remote/empty-dir",
    ] {
        server.assert_audited("alice", "mkdir", d);
    }
}

#[test]
fn mirror_up_and_down_passive() {
    if !require_client("lftp") {
        return;
    }
    mirror_round_trip("");
}

#[test]
fn mirror_up_and_down_active() {
    if !require_client("lftp") {
        return;
    }
    mirror_round_trip("set ftp:passive-mode off;");
}

#[test]
fn mirror_with_changes_and_delete() {
    let Some(server) = Server::for_client("lftp") else {
        return;
    };
    let local = server.root().join("local");
    make_tree(&local, 200);
    server.lftp("", "mirror -R local remote");
    // Change the local tree: remove a file and a folder, change one, add one.
    std::fs::remove_file(local.join("c.bin")).unwrap();
    std::fs::remove_dir_all(local.join("sub/deeper/deepest")).unwrap();
    std::fs::write(local.join("b.bin"), ferry_tests::random_bytes(7, 90_000)).unwrap();
    std::fs::write(
        local.join("sub/new.bin"),
        ferry_tests::random_bytes(8, 33_333),
    )
    .unwrap();
    set_mtime(
        &local.join("b.bin"),
        SystemTime::now() + Duration::from_secs(3600),
    );
    server.lftp("", "mirror -R --delete local remote");
    let remote = server.home("alice").join("remote");
    assert_eq!(tree_sums(&local), tree_sums(&remote));
    server.assert_all_audited(
        "alice",
        &[
            ("delete", "/remote/c.bin"),
            ("delete", "/remote/sub/deeper/deepest/h.bin"),
            ("rmdir", "/remote/sub/deeper/deepest"),
            ("upload", "/remote/sub/new.bin"),
        ],
    );
}

#[test]
fn file_commands() {
    let Some(server) = Server::for_client("lftp") else {
        return;
    };
    let home = server.home("alice");
    std::fs::write(server.root().join("put-me.txt"), b"put by lftp\n").unwrap();
    let out = server.lftp(
        "",
        "mkdir -p one/two/three; put put-me.txt -o one/two/p.txt; \
         mv one/two/p.txt one/q.txt; chmod 640 one/q.txt; cat one/q.txt; \
         ls one; cls -1 one/two; quote SITE CPFR one/q.txt; quote SITE CPTO one/copy.txt; \
         get one/copy.txt -o got.txt; rm one/q.txt; rmdir one/two/three; pwd",
    );
    assert!(out.stdout.contains("put by lftp"), "{}", out.stdout);
    assert!(out.stdout.contains("q.txt"), "{}", out.stdout);
    assert_eq!(
        std::fs::read(home.join("one/copy.txt")).unwrap(),
        b"put by lftp\n"
    );
    assert_eq!(
        std::fs::read(server.root().join("got.txt")).unwrap(),
        b"put by lftp\n"
    );
    assert!(!home.join("one/q.txt").exists());
    assert!(home.join("one/two").is_dir() && !home.join("one/two/three").exists());
    server.assert_all_audited(
        "alice",
        &[
            ("mkdir", "/one/two/three"),
            ("upload", "/one/two/p.txt"),
            ("rename", "/one/two/p.txt"),
            ("chmod", "/one/q.txt"),
            ("copy", "/one/q.txt"),
            ("delete", "/one/q.txt"),
            ("rmdir", "/one/two/three"),
        ],
    );
}
