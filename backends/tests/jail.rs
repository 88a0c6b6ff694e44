//! Property tests of the disk tree's jail.
//!
//! A temporary folder holds `root/` (the jail) and `outside/` (with sentinel files). Inside
//! the root, symlinks point outside in every way we could think of (absolute, relative,
//! chained, through `..`, through `/proc/self/root`, to files and to folders, from deeper
//! folders), next to symlinks that stay inside and a hard link to a sentinel. Random
//! operations through `DiskStorage` (on paths made of those names, and on paths that go
//! through them) must never return a sentinel's content (read, or copy then read), never
//! stat, read or list a path that the file system resolves outside the root, and never
//! change anything outside: everything beside the root is fingerprinted (names, kinds,
//! sizes, contents, modes, mtimes, link targets) before and after.
//!
//! A last test swaps a folder for a symlink to the outside, back and forth, while
//! operations run on paths through it.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{block_on, cases, kind, list, p, read};
use ferry_backends::{DiskStorage, Storage, UnixTime, Upload, WriteMode};
use futures_lite::io::AsyncWriteExt;
use proptest::prelude::*;

const SECRET: &[u8] = b"SENTINEL";

/// Paths that go through the planted links to what lies outside.
const ATTACKS: [&str; 14] = [
    "/abs_file",
    "/rel_file",
    "/abs_dir/sentinel.txt",
    "/rel_dir/sentinel.txt",
    "/rel_dir/dir/inner.txt",
    "/rel_dir/dir",
    "/chain1/sentinel.txt",
    "/sub/deep/sentinel.txt",
    "/dotdot/outside/sentinel.txt",
    "/dotdot/root",
    "/inside/deep/sentinel.txt",
    "/sub/up/deep/dir/inner.txt",
    "/proc_root/etc/hostname",
    "/dotdot",
];

/// Builds the playground; returns (top folder guard, root, outside).
fn plant() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(
        outside.join("sentinel.txt"),
        b"SENTINEL secret outside the root",
    )
    .unwrap();
    fs::write(outside.join("dir/inner.txt"), b"SENTINEL inner secret").unwrap();
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub/file.txt"), b"inside").unwrap();
    symlink(outside.join("sentinel.txt"), root.join("abs_file")).unwrap();
    symlink(&outside, root.join("abs_dir")).unwrap();
    symlink("../outside/sentinel.txt", root.join("rel_file")).unwrap();
    symlink("../outside", root.join("rel_dir")).unwrap();
    symlink("../../outside", root.join("sub/deep")).unwrap();
    symlink("chain2", root.join("chain1")).unwrap();
    symlink("rel_dir", root.join("chain2")).unwrap();
    symlink("..", root.join("dotdot")).unwrap();
    symlink("/proc/self/root", root.join("proc_root")).unwrap();
    symlink("sub", root.join("inside")).unwrap();
    symlink("sub/file.txt", root.join("inside_file")).unwrap();
    symlink("../sub", root.join("sub/up")).unwrap();
    fs::hard_link(outside.join("sentinel.txt"), root.join("hard")).unwrap();
    (top, root, outside)
}

/// Everything about the top folder except what lies inside the root.
fn fingerprint(top: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let path = e.path();
            let rel = format!("{rel}/{name}");
            let m = fs::symlink_metadata(&path).unwrap();
            let mut line = format!(
                "{rel} mode={:o} size={} mtime={}.{}",
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            );
            if rel == "/root" {
                out.push(String::from("/root"));
                continue;
            }
            if m.file_type().is_symlink() {
                line.push_str(&format!(" -> {}", fs::read_link(&path).unwrap().display()));
            } else if m.is_file() {
                line.push_str(&format!(" {:?}", fs::read(&path).unwrap()));
            }
            out.push(line);
            if m.is_dir() {
                walk(&path, &rel, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(top, "", &mut out);
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Op {
    Read(String),
    Stat(String),
    List(String),
    CopyRead(String),
    Write(String, WriteMode),
    MakeDir(String),
    RemoveDir(String),
    RemoveFile(String),
    Rename(String, String),
    SetMode(String, u32),
    SetModified(String, i64),
}

fn path() -> impl Strategy<Value = String> {
    let names = vec![
        "abs_file",
        "abs_dir",
        "rel_file",
        "rel_dir",
        "sub",
        "deep",
        "chain1",
        "chain2",
        "dotdot",
        "proc_root",
        "hard",
        "inside",
        "inside_file",
        "up",
        "file.txt",
        "dir",
        "x",
    ];
    prop_oneof![
        2 => prop::collection::vec(prop::sample::select(names), 1..=3)
            .prop_map(|segs| format!("/{}", segs.join("/"))),
        1 => prop::sample::select(ATTACKS.to_vec()).prop_map(String::from),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(WriteMode::Replace),
        Just(WriteMode::CreateNew),
        Just(WriteMode::Append),
        (0u64..40).prop_map(WriteMode::At),
    ];
    prop_oneof![
        3 => path().prop_map(Op::Read),
        2 => path().prop_map(Op::Stat),
        2 => path().prop_map(Op::List),
        2 => path().prop_map(Op::CopyRead),
        3 => (path(), mode).prop_map(|(a, m)| Op::Write(a, m)),
        1 => path().prop_map(Op::MakeDir),
        1 => path().prop_map(Op::RemoveDir),
        1 => path().prop_map(Op::RemoveFile),
        2 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path(), prop::sample::select(vec![0o700u32, 0o755, 0o777]))
            .prop_map(|(a, m)| Op::SetMode(a, m)),
        1 => (path(), 0i64..1_000_000).prop_map(|(a, t)| Op::SetModified(a, t)),
    ]
}

fn no_secret(data: &[u8], what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !data.windows(SECRET.len()).any(|w| w == SECRET),
        "{} returned a sentinel's content",
        what
    );
    Ok(())
}

/// Whether the file system, following every symlink, resolves `a` outside the root (as
/// it stands now; the tests are single-threaded).
fn leads_out(root: &Path, a: &str) -> bool {
    let root = fs::canonicalize(root).unwrap();
    fs::canonicalize(root.join(a.trim_start_matches('/'))).is_ok_and(|c| !c.starts_with(&root))
}

async fn apply(s: &DiskStorage, root: &Path, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Read(a) => {
            let out = leads_out(root, a);
            if let Ok(data) = read(s, a).await {
                no_secret(&data, &format!("read {a}"))?;
                prop_assert!(!out, "read {} succeeded, but it leads outside", a);
            }
        }
        Op::Stat(a) => {
            let out = leads_out(root, a);
            let r = s.metadata(&p(a)).await;
            prop_assert!(!(out && r.is_ok()), "stat {} succeeded: {:?}", a, r);
        }
        Op::List(a) => {
            let out = leads_out(root, a);
            let r = list(s, a).await;
            prop_assert!(!(out && r.is_ok()), "list {} succeeded: {:?}", a, r);
        }
        Op::CopyRead(a) => {
            if kind(s.copy(&p(a), &p("/copied")).await).is_ok() {
                let data = read(s, "/copied").await.unwrap();
                no_secret(&data, &format!("copy of {a}"))?;
            }
        }
        Op::Write(a, mode) => {
            if let Ok(mut up) = s.open_write(&p(a), *mode).await {
                up.write_all(b"client data").await.unwrap();
                let _ = up.commit().await;
            }
        }
        Op::MakeDir(a) => {
            let _ = s.make_dir(&p(a)).await;
        }
        Op::RemoveDir(a) => {
            let _ = s.remove_dir(&p(a)).await;
        }
        Op::RemoveFile(a) => {
            let _ = s.remove_file(&p(a)).await;
        }
        Op::Rename(a, b) => {
            let _ = s.rename(&p(a), &p(b)).await;
        }
        Op::SetMode(a, m) => {
            let _ = s.set_mode(&p(a), *m).await;
        }
        Op::SetModified(a, t) => {
            let _ = s.set_modified(&p(a), UnixTime(*t)).await;
        }
    }
    Ok(())
}

fn check(ops: &[Op], walking: bool) -> Result<(), TestCaseError> {
    let (top, root, _outside) = plant();
    let before = fingerprint(top.path());
    let s = DiskStorage::new(&root).unwrap();
    let s = if walking { s.resolve_by_walking() } else { s };
    block_on(async {
        for op in ops {
            apply(&s, &root, op).await?;
        }
        Ok::<(), TestCaseError>(())
    })?;
    prop_assert_eq!(fingerprint(top.path()), before);
    Ok(())
}

/// Up to 29 operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..30)
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn nothing_outside_is_read_listed_or_changed(ops in ops()) {
        check(&ops, false)?;
    }

    #[test]
    fn nothing_outside_is_reached_when_walking(ops in ops()) {
        check(&ops, true)?;
    }
}

/// The planted links behave as the module docs of `disk` say.
#[test]
fn planted_links_behave_as_documented() {
    use ferry_backends::{FileKind, StorageError as E};
    let (_top, root, _) = plant();
    let s = DiskStorage::new(&root).unwrap();
    block_on(async {
        // Inside links are followed.
        assert_eq!(read(&s, "/inside/file.txt").await.unwrap(), b"inside");
        assert_eq!(read(&s, "/inside_file").await.unwrap(), b"inside");
        assert_eq!(read(&s, "/sub/up/file.txt").await.unwrap(), b"inside");
        assert_eq!(s.metadata(&p("/inside")).await.unwrap().kind, FileKind::Dir);
        // Links that lead out are refused.
        for a in [
            "/abs_file",
            "/rel_file",
            "/rel_dir/sentinel.txt",
            "/chain1",
            "/dotdot",
        ] {
            assert_eq!(
                kind(s.metadata(&p(a)).await).err(),
                Some(E::PermissionDenied),
                "{a}"
            );
        }
        // The hard link is refused for everything that would touch its content.
        assert_eq!(read(&s, "/hard").await, Err(E::HardLinked));
        assert_eq!(
            kind(s.copy(&p("/hard"), &p("/c")).await),
            Err(E::HardLinked)
        );
        for mode in [WriteMode::Append, WriteMode::At(0)] {
            assert_eq!(
                kind(s.open_write(&p("/hard"), mode).await).err(),
                Some(E::HardLinked)
            );
        }
        assert_eq!(
            kind(s.set_mode(&p("/hard"), 0o600).await),
            Err(E::HardLinked)
        );
        assert_eq!(
            kind(s.set_modified(&p("/hard"), UnixTime(0)).await),
            Err(E::HardLinked)
        );
        // Unless the administrator allows hard links: then it is an ordinary file.
        let allowing = s.clone().with_hard_links(true);
        assert!(read(&allowing, "/hard").await.is_ok());
        let _ = allowing.with_hard_links(false);
        // Listing: inside links show their target, the others show as links.
        let listed = list(&s, "/").await.unwrap();
        let kind_of = |n: &str| listed.iter().find(|(x, _)| x == n).unwrap().1.kind;
        assert_eq!(kind_of("inside"), FileKind::Dir);
        assert_eq!(kind_of("inside_file"), FileKind::File);
        for n in [
            "abs_file",
            "abs_dir",
            "rel_file",
            "rel_dir",
            "chain1",
            "dotdot",
            "proc_root",
        ] {
            assert_eq!(kind_of(n), FileKind::Symlink, "{n}");
        }
        // A link as the last component is acted on itself, never followed.
        put_over(&s, "/rel_file").await;
        assert_eq!(read(&s, "/rel_file").await.unwrap(), b"replaced");
        s.remove_file(&p("/abs_dir")).await.unwrap();
        s.rename(&p("/rel_dir"), &p("/moved")).await.unwrap();
        assert_eq!(kind(s.make_dir(&p("/chain1")).await), Err(E::AlreadyExists));
        assert_eq!(
            kind(s.remove_dir(&p("/dotdot")).await),
            Err(E::NotADirectory)
        );
        // Replacing the hard link swaps the folder entry only.
        put_over(&s, "/hard").await;
        assert_eq!(read(&s, "/hard").await.unwrap(), b"replaced");
    });
    assert!(
        fs::read(root.join("../outside/sentinel.txt"))
            .unwrap()
            .starts_with(SECRET)
    );
    assert!(
        fs::symlink_metadata(root.join("moved"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // Walking refuses every symlink, even inside ones.
    let w = DiskStorage::new(&root).unwrap().resolve_by_walking();
    block_on(async {
        assert_eq!(read(&w, "/inside/file.txt").await, Err(E::PermissionDenied));
        assert_eq!(read(&w, "/inside_file").await, Err(E::PermissionDenied));
        assert_eq!(read(&w, "/sub/file.txt").await.unwrap(), b"inside");
        let listed = list(&w, "/").await.unwrap();
        assert_eq!(
            listed.iter().find(|(n, _)| n == "inside").unwrap().1.kind,
            FileKind::Symlink
        );
    });
}

async fn put_over(s: &DiskStorage, path: &str) {
    let mut up = s.open_write(&p(path), WriteMode::Replace).await.unwrap();
    up.write_all(b"replaced").await.unwrap();
    up.commit().await.unwrap();
}

/// A folder swapped for a symlink to the outside, and back, as fast as the kernel allows,
/// while operations run on paths through it: none reaches outside.
#[test]
fn a_folder_swapped_for_a_symlink_never_leads_out() {
    for walking in [false, true] {
        let (top, root, outside) = plant();
        fs::create_dir(root.join("race")).unwrap();
        fs::write(root.join("race/file"), b"race inside").unwrap();
        fs::create_dir(outside.join("race_target")).unwrap();
        fs::write(outside.join("race_target/file"), b"SENTINEL race").unwrap();
        symlink(outside.join("race_target"), root.join("race_alt")).unwrap();
        let before = fingerprint(top.path());

        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = Arc::clone(&stop);
            let root = root.clone();
            std::thread::spawn(move || {
                let dir = rustix::fs::open(
                    &root,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )
                .unwrap();
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        &dir,
                        "race",
                        &dir,
                        "race_alt",
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
                swaps
            })
        };

        let s = DiskStorage::new(&root).unwrap();
        let s = if walking { s.resolve_by_walking() } else { s };
        let mut inside_reads = 0;
        block_on(async {
            for i in 0..300 {
                if let Ok(data) = read(&s, "/race/file").await {
                    assert_eq!(data, b"race inside");
                    inside_reads += 1;
                }
                if let Ok(entries) = list(&s, "/race").await {
                    // The outside folder holds nothing but `file`; the inside one more.
                    assert!(entries.iter().all(|(n, m)| n != "file" || m.size == 11));
                }
                if let Ok(m) = s.metadata(&p("/race/file")).await {
                    assert_eq!(m.size, 11);
                }
                if s.copy(&p("/race/file"), &p("/copied")).await.is_ok() {
                    assert_eq!(read(&s, "/copied").await.unwrap(), b"race inside");
                }
                let name = format!("/race/new{i}");
                if let Ok(mut up) = s.open_write(&p(&name), WriteMode::Replace).await {
                    up.write_all(b"x").await.unwrap();
                    let _ = up.commit().await;
                }
                if let Ok(mut up) = s.open_write(&p("/race/file"), WriteMode::At(11)).await {
                    up.write_all(b"").await.unwrap();
                    let _ = up.commit().await;
                }
                let _ = s.make_dir(&p(&format!("/race/d{i}"))).await;
                let _ = s.remove_dir(&p(&format!("/race/d{i}"))).await;
                let _ = s.remove_file(&p(&name)).await;
                let _ = s.set_mode(&p("/race/file"), 0o644).await;
                let _ = s.set_modified(&p("/race/file"), UnixTime(1_000_000)).await;
                let _ = s.rename(&p("/race/file"), &p("/race/file")).await;
            }
        });
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 0);
        // The outside is as it was (the swap itself only renames entries inside the root).
        assert_eq!(fingerprint(top.path()), before, "walking: {walking}");
        let _ = inside_reads;
    }
}
