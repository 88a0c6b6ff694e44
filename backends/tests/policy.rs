//! Per-user policy on a real tree: permissions per folder (a drop box), hidden names, the
//! quota (bytes and files, refused at the write that passes it, the old file kept), folder
//! copies, and a property: after any sequence of changes, the counted usage is what a scan of
//! the tree finds.

mod common;

use std::sync::Arc;

use common::{block_on, cases, kind, names, p, put, read, snapshot, write};
use ferry_backends::policy::{
    COPY_MAX_ENTRIES, PathPattern, Perms, Policed, Policy, Rate, Size, Usage, scan_usage,
};
use ferry_backends::{
    DiskStorage, MemoryStorage, Permission, Storage, StorageError as E, Upload, WriteMode,
};
use futures_lite::io::AsyncWriteExt;
use proptest::prelude::*;

fn policy(toml: &str) -> Policy {
    Policy::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

fn policed(tree: MemoryStorage, policy: Policy) -> (Policed<MemoryStorage>, Arc<Usage>) {
    let usage = Arc::new(Usage::new());
    (Policed::new(tree, Arc::new(policy), usage.clone()), usage)
}

#[test]
fn settings_parse_and_round_trip() {
    let text = r#"
quota_size = "10 GiB"
quota_files = 1000
rate_up = "10MiB/s"
rate_down = 2048
max_sessions = 2
allow_from = ["10.0.0.0/8", "127.0.0.1"]
deny_from = ["10.9.0.0/16"]
hidden = [".ftpquota", "*.part"]
permissions = ["list", "download"]

[[folders]]
path = "/incoming"
permissions = ["upload"]

[[folders]]
path = "/public/**"
permissions = ["all"]
"#;
    let p = policy(text);
    assert_eq!(p.quota_size, Some(Size(10 << 30)));
    assert_eq!(p.rate_up, Some(Rate(10 << 20)));
    assert_eq!(p.rate_down, Some(Rate(2048)));
    assert_eq!(p.permissions.to_string(), "list,download");
    assert!(p.allows_address("10.1.2.3".parse().unwrap()));
    assert!(!p.allows_address("10.9.2.3".parse().unwrap()));
    assert!(!p.allows_address("192.0.2.1".parse().unwrap()));
    assert!(p.allows_address("127.0.0.1".parse().unwrap()));
    assert_eq!(Policy::from_toml(&p.to_toml()), Ok(p.clone()));
    assert!(Policy::from_toml("").unwrap().is_default());
    for (bad, says) in [
        ("quota = 5", "unknown field"),
        (
            "permissions = [\"uplaod\"]",
            "unknown permission \"uplaod\"",
        ),
        ("quota_size = \"ten\"", "is not a size"),
        ("rate_up = \"0/s\"", "above 0"),
        ("allow_from = [\"10.0.0.0/33\"]", "network"),
        ("hidden = [\"a/b\"]", "without /"),
        ("max_sessions = 0", "at least 1"),
        (
            "[[folders]]\npath = \"incoming\"\npermissions = []",
            "must start with /",
        ),
        (
            "[[folders]]\npath = \"/a/../b\"\npermissions = []",
            ". or ..",
        ),
    ] {
        let e = Policy::from_toml(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn sizes_and_rates_read_as_people_write_them() {
    for (text, bytes) in [
        ("4096", 4096),
        ("1 KiB", 1024),
        ("1kb", 1000),
        ("500MB", 500_000_000),
        ("2 GiB", 2 << 30),
        ("1TiB", 1 << 40),
    ] {
        assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
    }
    assert_eq!("10MiB/s".parse::<Rate>(), Ok(Rate(10 << 20)));
    assert_eq!(Size(10 << 30).to_string(), "10 GiB");
    assert_eq!(Rate(1500).to_string(), "1500 B/s");
    assert!("99999999999 TiB".parse::<Size>().is_err());
}

#[test]
fn patterns_match_folders_and_what_is_below() {
    let m = |pat: &str, path: &str| PathPattern::new(pat).unwrap().matches(&p(path));
    assert!(m("/incoming", "/incoming"));
    assert!(m("/incoming", "/incoming/a/b.txt"));
    assert!(!m("/incoming", "/incomingx"));
    assert!(!m("/incoming", "/"));
    assert!(m("/public/**", "/public"));
    assert!(m("/public/**", "/public/x"));
    assert!(m("/*/private", "/alice/private"));
    // A rule holds for everything below the folders it names, globs too.
    assert!(m("/*/private", "/alice/private/x"));
    assert!(!m("/*/private", "/alice/public/x"));
    assert!(m("/**/*.log", "/a/b/c.log"));
    assert!(m("/**/*.log", "/c.log"));
    assert!(!m("/**/*.log", "/c.txt"));
    assert!(m("/", "/anything/at/all"));
    // Whether a rule reaches into a folder (moving that folder would take files out of it).
    let below = |pat: &str, path: &str| PathPattern::new(pat).unwrap().may_cover_beneath(&p(path));
    assert!(below("/a/b", "/a"));
    assert!(below("/a/b", "/a/b/c"));
    assert!(below("/*/private", "/x"));
    assert!(!below("/a/b", "/c"));
    assert!(below("/**/secret", "/anything"));
    assert!(PathPattern::new("/a\\b").is_err());
    // Many `**` cost time proportional to the product of the lengths, never more.
    let many = "/**".repeat(100) + "/x";
    let deep = "/a".repeat(200);
    assert!(!m(&many, &deep));
}

#[test]
fn a_drop_box_takes_uploads_but_shows_nothing() {
    let tree = MemoryStorage::new();
    block_on(async {
        tree.make_dir(&p("/incoming")).await.unwrap();
        put(&tree, "/incoming/old.txt", b"old").await;
        put(&tree, "/readme.txt", b"hi").await;
        let (s, _) = policed(
            tree,
            policy(
                "permissions = [\"list\", \"download\"]\n[[folders]]\npath = \"/incoming\"\npermissions = [\"upload\"]",
            ),
        );
        // Uploads of new files work; the folder can be entered, not listed or read.
        write(&s, "/incoming/new.txt", WriteMode::Replace, b"new")
            .await
            .unwrap();
        assert!(s.metadata(&p("/incoming")).await.is_ok());
        assert!(names(&s, "/incoming").await.is_empty());
        assert_eq!(
            read(&s, "/incoming/new.txt").await,
            Err(E::Denied(Permission::Download))
        );
        // Replacing a file there is overwriting, which a drop box does not allow.
        assert_eq!(
            write(&s, "/incoming/old.txt", WriteMode::Replace, b"x").await,
            Err(E::Denied(Permission::Overwrite))
        );
        assert_eq!(
            kind(s.inner().open_read(&p("/incoming/old.txt"), 0).await).map(|(_, m)| m.size),
            Ok(3)
        );
        for refused in [
            kind(s.remove_file(&p("/incoming/new.txt")).await),
            kind(s.rename(&p("/incoming/new.txt"), &p("/incoming/n")).await),
            kind(s.make_dir(&p("/incoming/sub")).await),
        ] {
            assert!(matches!(refused, Err(E::Denied(_))), "{refused:?}");
        }
        // Elsewhere: read only.
        assert_eq!(read(&s, "/readme.txt").await.unwrap(), b"hi");
        assert_eq!(names(&s, "/").await, ["incoming", "readme.txt"]);
        assert_eq!(
            write(&s, "/new.txt", WriteMode::Replace, b"x").await,
            Err(E::Denied(Permission::Upload))
        );
        assert_eq!(
            write(&s, "/readme.txt", WriteMode::Append, b"x").await,
            Err(E::Denied(Permission::Append))
        );
        // Copying out of the drop box would be a download.
        assert_eq!(
            kind(s.copy(&p("/incoming/new.txt"), &p("/incoming/c")).await),
            Err(E::Denied(Permission::Download))
        );
    });
}

#[test]
fn renames_and_resumed_uploads_do_not_get_around_a_rule() {
    let tree = MemoryStorage::new();
    block_on(async {
        for d in [
            "/public",
            "/in",
            "/a",
            "/a/private",
            "/a/private/sub",
            "/free",
        ] {
            tree.make_dir(&p(d)).await.unwrap();
        }
        put(&tree, "/public/f", b"data").await;
        put(&tree, "/in/f", b"precious data").await;
        put(&tree, "/a/private/sub/f", b"x").await;
        let (s, _) = policed(
            tree.clone(),
            policy(
                "[[folders]]\npath = \"/public\"\npermissions = [\"list\", \"download\"]\n\
                 [[folders]]\npath = \"/in\"\npermissions = [\"upload\", \"append\"]\n\
                 [[folders]]\npath = \"/*/private\"\npermissions = [\"upload\"]\n",
            ),
        );
        // A ruled folder cannot be moved out from under its rule, nor one that holds one,
        // nor one that a glob could reach into (`/*/private` reaches into every top folder).
        for (from, to) in [
            ("/public", "/mine"),
            ("/in", "/x"),
            ("/a", "/b"),
            ("/free", "/c"),
        ] {
            assert_eq!(
                kind(s.rename(&p(from), &p(to)).await),
                Err(E::Denied(Permission::Rename)),
                "{from}"
            );
        }
        // A glob rule holds below the folders it names.
        assert_eq!(
            read(&s, "/a/private/sub/f").await,
            Err(E::Denied(Permission::Download))
        );
        // With upload and append only: a resumed upload inside a file is an overwrite.
        assert_eq!(
            write(&s, "/in/f", WriteMode::At(1), b"X").await,
            Err(E::Denied(Permission::Overwrite))
        );
        assert_eq!(read(&tree, "/in/f").await.unwrap(), b"precious data");
        write(&s, "/in/f", WriteMode::At(13), b"!").await.unwrap();
        write(&s, "/in/f", WriteMode::Append, b"!").await.unwrap();
        assert_eq!(read(&tree, "/in/f").await.unwrap(), b"precious data!!");
    });
    // Folders that no rule reaches are renamed as usual; files move out of a rule folder
    // only where it allows renaming.
    let tree = MemoryStorage::new();
    block_on(async {
        for d in ["/public", "/free", "/free/sub"] {
            tree.make_dir(&p(d)).await.unwrap();
        }
        put(&tree, "/public/f", b"x").await;
        let (s, _) = policed(
            tree,
            policy("[[folders]]\npath = \"/public\"\npermissions = [\"list\", \"download\"]"),
        );
        s.rename(&p("/free"), &p("/other")).await.unwrap();
        assert_eq!(
            kind(s.rename(&p("/other"), &p("/public/other")).await),
            Err(E::Denied(Permission::Rename))
        );
        assert_eq!(
            kind(s.rename(&p("/public/f"), &p("/f")).await),
            Err(E::Denied(Permission::Rename))
        );
    });
    // Append alone cannot make a file.
    let tree = MemoryStorage::new();
    block_on(async {
        let (s, _) = policed(tree, policy("permissions = [\"append\"]"));
        assert_eq!(
            write(&s, "/new", WriteMode::Append, b"x").await,
            Err(E::Denied(Permission::Upload))
        );
    });
}

#[test]
fn the_quota_counts_writes_past_the_end_and_each_replaced_file_once() {
    let tree = MemoryStorage::new();
    block_on(async {
        let (s, usage) = policed(tree.clone(), policy("quota_size = 1000000"));
        // A write at an offset past the end makes the file that long at once.
        assert_eq!(
            write(&s, "/big", WriteMode::At(1 << 30), b"x").await,
            Err(E::QuotaExceeded)
        );
        write(&s, "/mid", WriteMode::At(1000), b"x").await.unwrap();
        assert_eq!(usage.get(), scan_usage(&tree).await.unwrap());
        // Two sessions replacing the same file, and a replacement racing a delete.
        put(&s, "/f", &[7; 1000]).await;
        let a = s.open_write(&p("/f"), WriteMode::Replace).await.unwrap();
        let b = s.open_write(&p("/f"), WriteMode::Replace).await.unwrap();
        a.commit().await.unwrap();
        b.commit().await.unwrap();
        assert_eq!(usage.get(), scan_usage(&tree).await.unwrap());
        put(&s, "/g", &[7; 1000]).await;
        let a = s.open_write(&p("/g"), WriteMode::Replace).await.unwrap();
        s.remove_file(&p("/g")).await.unwrap();
        a.commit().await.unwrap();
        assert_eq!(usage.get(), scan_usage(&tree).await.unwrap());
        // Two new files of the same name count once.
        let mut a = s.open_write(&p("/h"), WriteMode::Replace).await.unwrap();
        let mut b = s.open_write(&p("/h"), WriteMode::Replace).await.unwrap();
        a.write_all(&[1; 300]).await.unwrap();
        b.write_all(&[2; 200]).await.unwrap();
        a.commit().await.unwrap();
        b.commit().await.unwrap();
        assert_eq!(usage.get(), scan_usage(&tree).await.unwrap());
    });
}

#[test]
fn hidden_names_cannot_be_seen_opened_or_made() {
    let tree = MemoryStorage::new();
    block_on(async {
        put(&tree, "/.ftpquota", b"q").await;
        put(&tree, "/a.part", b"p").await;
        put(&tree, "/a.txt", b"t").await;
        tree.make_dir(&p("/d.part")).await.unwrap();
        put(&tree, "/d.part/inside", b"i").await;
        let (s, _) = policed(tree, policy("hidden = [\".ftpquota\", \"*.part\"]"));
        assert_eq!(names(&s, "/").await, ["a.txt"]);
        assert_eq!(read(&s, "/.ftpquota").await, Err(E::NotFound));
        assert_eq!(read(&s, "/d.part/inside").await, Err(E::NotFound));
        assert_eq!(
            kind(s.metadata(&p("/a.part")).await).err(),
            Some(E::NotFound)
        );
        assert_eq!(kind(s.remove_file(&p("/a.part")).await), Err(E::NotFound));
        assert_eq!(
            write(&s, "/b.part", WriteMode::Replace, b"x").await,
            Err(E::BadName)
        );
        assert_eq!(
            kind(s.rename(&p("/a.txt"), &p("/x.part")).await),
            Err(E::BadName)
        );
        assert_eq!(kind(s.make_dir(&p("/e.part")).await), Err(E::BadName));
    });
    // A folder of hidden names only lists as empty.
    let tree = MemoryStorage::new();
    block_on(async {
        for i in 0..300 {
            put(&tree, &format!("/{i}.part"), b"").await;
        }
        let (s, _) = policed(tree, policy("hidden = [\"*.part\"]"));
        assert!(names(&s, "/").await.is_empty());
    });
}

#[test]
fn the_quota_refuses_the_write_that_passes_it_and_keeps_the_old_file() {
    let tree = MemoryStorage::new();
    block_on(async {
        let (s, usage) = policed(tree, policy("quota_size = 1000\nquota_files = 3"));
        put(&s, "/a", &[1; 600]).await;
        assert_eq!(usage.get(), (600, 1));
        // Passing the quota fails at the write, not at the end, and leaves nothing.
        let mut up = s.open_write(&p("/b"), WriteMode::Replace).await.unwrap();
        up.write_all(&[2; 300]).await.unwrap();
        let e = up.write_all(&[2; 300]).await.unwrap_err();
        assert_eq!(ferry_backends::kind_of(&e), E::QuotaExceeded);
        up.abort().await;
        assert_eq!(kind(s.metadata(&p("/b")).await).err(), Some(E::NotFound));
        assert_eq!(usage.get(), (600, 1));
        // Replacing a file is credited with the old file's bytes.
        put(&s, "/a", &[3; 900]).await;
        assert_eq!(usage.get(), (900, 1));
        put(&s, "/a", &[4; 100]).await;
        assert_eq!(usage.get(), (100, 1));
        // A replacement past the quota keeps the old file.
        assert_eq!(
            write(&s, "/a", WriteMode::Replace, &[5; 1001]).await,
            Err(E::QuotaExceeded)
        );
        assert_eq!(read(&s, "/a").await.unwrap(), vec![4; 100]);
        // Appends count; deletes give back.
        write(&s, "/a", WriteMode::Append, &[6; 100]).await.unwrap();
        assert_eq!(usage.get(), (200, 1));
        // Files: three at most.
        put(&s, "/b", b"").await;
        put(&s, "/c", b"").await;
        assert_eq!(
            write(&s, "/d", WriteMode::Replace, b"").await,
            Err(E::QuotaExceeded)
        );
        assert_eq!(
            kind(s.copy(&p("/a"), &p("/e")).await),
            Err(E::QuotaExceeded)
        );
        s.remove_file(&p("/c")).await.unwrap();
        assert_eq!(usage.get(), (200, 2));
        // Copies count their bytes; renaming onto a file gives the replaced one back.
        s.copy(&p("/a"), &p("/e")).await.unwrap();
        assert_eq!(usage.get(), (400, 3));
        s.rename(&p("/e"), &p("/a")).await.unwrap();
        assert_eq!(usage.get(), (200, 2));
        // A dropped upload gives back what it reserved.
        {
            let mut up = s.open_write(&p("/f"), WriteMode::Replace).await.unwrap();
            up.write_all(&[7; 500]).await.unwrap();
            assert_eq!(usage.get(), (700, 3));
        }
        assert_eq!(usage.get(), (200, 2));
    });
}

#[test]
fn folders_are_copied_whole_within_limits() {
    let tree = MemoryStorage::new();
    block_on(async {
        tree.make_dir(&p("/src")).await.unwrap();
        tree.make_dir(&p("/src/sub")).await.unwrap();
        tree.make_dir(&p("/src/empty")).await.unwrap();
        put(&tree, "/src/a", b"aaa").await;
        put(&tree, "/src/sub/b", b"bb").await;
        put(&tree, "/src/x.part", b"hidden").await;
        let (s, usage) = policed(tree, policy("quota_size = 100\nhidden = [\"*.part\"]"));
        usage.add_scan(11, 3);
        assert_eq!(s.copy(&p("/src"), &p("/dst")).await.unwrap(), 5);
        assert_eq!(read(&s, "/dst/sub/b").await.unwrap(), b"bb");
        assert_eq!(names(&s, "/dst").await, ["a", "empty", "sub"]);
        assert!(kind(s.inner().metadata(&p("/dst/x.part")).await).is_err());
        assert_eq!(usage.get(), (16, 5));
        // Not into itself, not over something.
        assert_eq!(
            kind(s.copy(&p("/src"), &p("/src/sub/in")).await),
            Err(E::BadName)
        );
        assert_eq!(
            kind(s.copy(&p("/src"), &p("/dst")).await),
            Err(E::AlreadyExists)
        );
        // Not past the quota: refused before anything is written.
        put(&s, "/src/big", &[0; 80]).await;
        assert_eq!(
            kind(s.copy(&p("/src"), &p("/d2")).await),
            Err(E::QuotaExceeded)
        );
        assert!(kind(s.metadata(&p("/d2")).await).is_err());
    });
    // Past the entry limit: refused before anything is written.
    let tree = MemoryStorage::new();
    block_on(async {
        tree.make_dir(&p("/many")).await.unwrap();
        for i in 0..=COPY_MAX_ENTRIES {
            put(&tree, &format!("/many/{i}"), b"").await;
        }
        let (s, _) = policed(tree, Policy::default());
        assert_eq!(
            kind(s.copy(&p("/many"), &p("/copy")).await),
            Err(E::TooMany)
        );
        assert!(kind(s.metadata(&p("/copy")).await).is_err());
    });
}

#[test]
fn without_a_policy_everything_goes_through() {
    let tree = MemoryStorage::new();
    block_on(async {
        let (s, usage) = policed(tree, Policy::default());
        put(&s, "/a.part", b"x").await;
        write(&s, "/a.part", WriteMode::Append, b"y").await.unwrap();
        assert_eq!(read(&s, "/a.part").await.unwrap(), b"xy");
        assert_eq!(names(&s, "/").await, ["a.part"]);
        // Nothing is counted without a quota.
        assert_eq!(usage.get(), (0, 0));
    });
    assert_eq!(Perms::default(), Perms::ALL);
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, usize),
    Append(u8, usize),
    Delete(u8),
    Rename(u8, u8),
    Copy(u8, u8),
    Dropped(u8, usize),
    MakeDir(u8),
    CopyDir(u8, u8),
}

fn name(n: u8) -> String {
    match n % 6 {
        0..=3 => format!("/f{}", n % 6),
        4 => "/d/f4".into(),
        _ => "/d/f5".into(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), 0..5000usize).prop_map(|(n, l)| Op::Put(n, l)),
        (any::<u8>(), 0..3000usize).prop_map(|(n, l)| Op::Append(n, l)),
        any::<u8>().prop_map(Op::Delete),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Rename(a, b)),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Copy(a, b)),
        (any::<u8>(), 0..5000usize).prop_map(|(n, l)| Op::Dropped(n, l)),
        any::<u8>().prop_map(Op::MakeDir),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::CopyDir(a, b)),
    ]
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whatever happens (refused at the quota or not), the usage counted is what a scan of
    /// the tree finds, and never above the quota.
    #[test]
    fn usage_always_matches_the_tree(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskStorage::new(dir.path()).unwrap();
        let usage = Arc::new(Usage::new());
        let s = Policed::new(disk, Arc::new(policy("quota_size = 12000\nquota_files = 5")), usage.clone());
        block_on(async {
            s.make_dir(&p("/d")).await.unwrap();
            for op in ops {
                match op {
                    Op::Put(n, l) => { let _ = write(&s, &name(n), WriteMode::Replace, &vec![1; l]).await; }
                    Op::Append(n, l) => { let _ = write(&s, &name(n), WriteMode::Append, &vec![2; l]).await; }
                    Op::Delete(n) => { let _ = s.remove_file(&p(&name(n))).await; }
                    Op::Rename(a, b) => { let _ = s.rename(&p(&name(a)), &p(&name(b))).await; }
                    Op::Copy(a, b) => { let _ = s.copy(&p(&name(a)), &p(&name(b))).await; }
                    Op::Dropped(n, l) => {
                        if let Ok(mut up) = s.open_write(&p(&name(n)), WriteMode::Replace).await {
                            let _ = up.write_all(&vec![3; l]).await;
                        }
                    }
                    Op::MakeDir(n) => { let _ = s.make_dir(&p(&format!("/e{}", n % 3))).await; }
                    Op::CopyDir(a, b) => {
                        let _ = s.copy(&p(&format!("/e{}", a % 3)), &p(&format!("/e{}/c{}", b % 3, b % 2))).await;
                        let _ = s.copy(&p("/d"), &p(&format!("/e{}", b % 3))).await;
                    }
                }
                let found = scan_usage(s.inner()).await.unwrap();
                prop_assert_eq!(usage.get(), found);
                prop_assert!(found.0 <= 12000 && found.1 <= 5, "{:?}", found);
            }
            let _ = snapshot(s.inner()).await;
            Ok(())
        })?;
    }
}
