//! What only the disk tree has: temporaries on disk, stale ones after a crash, descriptors
//! for `sendfile`, `fsync`, and a folder of 100,000 entries.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{block_on, kind, names, p, put, read, write};
use ferry_backends::{
    DiskStorage, EntryBatch, FileKind, Lister, MemoryStorage, ReadFile, Storage, StorageError as E,
    TEMP_PREFIX, Upload, WriteMode as W,
};
use futures_lite::io::AsyncWriteExt;

/// Every name in the folder on disk, temporaries included, sorted.
fn on_disk(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn temporaries(dir: &Path) -> usize {
    on_disk(dir)
        .iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .count()
}

/// Runs `script` on a disk tree in a fresh temporary folder (`root`).
fn in_a_temporary_folder(script: impl AsyncFnOnce(&DiskStorage, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::new(dir.path()).unwrap();
    block_on(script(&s, dir.path()));
}

#[test]
fn uploads_leave_no_debris() {
    in_a_temporary_folder(async |s, root| {
        put(s, "/f", b"old").await;
        // While an upload runs, its temporary sits beside the target, hidden.
        let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
        up.write_all(b"new").await.unwrap();
        up.flush().await.unwrap();
        assert_eq!(temporaries(root), 1);
        assert_eq!(names(s, "/").await, ["f"]);
        up.abort().await;
        assert_eq!(on_disk(root), ["f"]);
        // Dropped.
        let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
        up.write_all(b"new").await.unwrap();
        drop(up);
        assert_eq!(on_disk(root), ["f"]);
        // A CreateNew that loses the race.
        let up = s.open_write(&p("/g"), W::CreateNew).await.unwrap();
        put(s, "/g", b"winner").await;
        assert_eq!(kind(up.commit().await), Err(E::AlreadyExists));
        assert_eq!(on_disk(root), ["f", "g"]);
        // A commit whose target became a folder.
        let up = s.open_write(&p("/h"), W::Replace).await.unwrap();
        s.make_dir(&p("/h")).await.unwrap();
        assert_eq!(kind(up.commit().await), Err(E::NotAFile));
        assert_eq!(on_disk(root), ["f", "g", "h"]);
        // Committed.
        write(s, "/f", W::Replace, b"new").await.unwrap();
        s.copy(&p("/f"), &p("/c")).await.unwrap();
        assert_eq!(on_disk(root), ["c", "f", "g", "h"]);
        assert_eq!(read(s, "/f").await.unwrap(), b"new");
    });
}

#[test]
fn stale_temporaries_are_removed_and_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    for t in [
        format!("{TEMP_PREFIX}1.2.3"),
        format!("a/{TEMP_PREFIX}9"),
        format!("a/b/{TEMP_PREFIX}x"),
    ] {
        fs::write(root.join(t), b"debris").unwrap();
    }
    fs::write(root.join("a/keep.txt"), b"keep").unwrap();
    fs::write(root.join("a/.ferry-tmp"), b"not a temporary").unwrap();
    // A symlink to a folder elsewhere is not walked into.
    let elsewhere = tempfile::tempdir().unwrap();
    let planted = elsewhere.path().join(format!("{TEMP_PREFIX}outside"));
    fs::write(&planted, b"not ours").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("link")).unwrap();

    let s = DiskStorage::new(root).unwrap();
    block_on(async {
        assert_eq!(names(&s, "/a").await, [".ferry-tmp", "b", "keep.txt"]);
        assert!(names(&s, "/a/b").await.is_empty());
    });
    assert_eq!(s.remove_stale_temporaries().unwrap(), 3);
    assert_eq!(on_disk(&root.join("a")), [".ferry-tmp", "b", "keep.txt"]);
    assert!(on_disk(&root.join("a/b")).is_empty());
    assert!(planted.exists());
    assert_eq!(s.remove_stale_temporaries().unwrap(), 0);
}

#[test]
fn readers_hand_out_their_descriptor() {
    in_a_temporary_folder(async |s, _| {
        put(s, "/f", b"0123456789").await;
        let (r, _) = s.open_read(&p("/f"), 4).await.unwrap();
        let fd = r.as_raw_file().expect("a disk reader has a descriptor");
        // The descriptor is the file itself: positioned at the offset, readable with pread.
        let mut buf = [0u8; 3];
        assert_eq!(rustix::io::pread(fd, &mut buf, 1).unwrap(), 3);
        assert_eq!(&buf, b"123");
        assert_eq!(
            rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0)).unwrap(),
            4
        );

        let m = MemoryStorage::new();
        put(&m, "/f", b"x").await;
        assert!(
            m.open_read(&p("/f"), 0)
                .await
                .unwrap()
                .0
                .as_raw_file()
                .is_none()
        );
    });
}

#[test]
fn fsync_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::new(dir.path()).unwrap().with_fsync(true);
    block_on(async {
        assert_eq!(write(&s, "/f", W::Replace, b"durable").await, Ok(7));
        assert_eq!(write(&s, "/f", W::Append, b"!").await, Ok(1));
        assert_eq!(s.copy(&p("/f"), &p("/g")).await.unwrap(), 8);
        assert_eq!(read(&s, "/g").await.unwrap(), b"durable!");
    });
    assert!(format!("{s:?}").contains("fsync: true"));
}

#[test]
fn listing_100_000_entries() {
    // Creating files on this machine's disk costs up to a millisecond each; tmpfs, where
    // there is one, makes 100,000 affordable. The listing code is the same on both.
    let shm = Path::new("/dev/shm");
    let (dir, count) = if shm.is_dir() {
        (tempfile::tempdir_in(shm).unwrap(), 100_000u32)
    } else {
        (tempfile::tempdir().unwrap(), 10_000u32)
    };
    let big = dir.path().join("big");
    fs::create_dir(&big).unwrap();
    for i in 0..count {
        fs::File::create(big.join(format!("{i:06}"))).unwrap();
    }
    fs::write(big.join(format!("{TEMP_PREFIX}hidden")), b"").unwrap();
    let s = DiskStorage::new(dir.path()).unwrap();
    block_on(async {
        let mut lister = s.list(&p("/big")).await.unwrap();
        let mut batch = EntryBatch::new();
        let mut n = 0u32;
        while lister.next_batch(&mut batch).await.unwrap() {
            assert!(batch.len() <= 512);
            for e in batch.iter() {
                assert_eq!(e.name, format!("{n:06}"));
                assert_eq!((e.meta.kind, e.meta.size), (FileKind::File, 0));
                n += 1;
            }
            batch.clear();
        }
        assert_eq!(n, count);
        assert!(!lister.next_batch(&mut batch).await.unwrap());
    });
}

/// A folder of more entries than the sorting limit is listed whole, each entry once with its
/// metadata, in the file system's order, while the listing holds at most about one read
/// buffer of names at a time (not the whole folder).
#[test]
fn listing_past_the_sorting_limit_streams_with_bounded_memory() {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let count = 20_000usize;
    // 40-byte names: the whole folder's names and order take over 1 MB.
    let name = |i: usize| format!("{i:06}-{}", "x".repeat(33));
    for i in 0..count {
        fs::write(dir.path().join(name(i)), b"abc").unwrap();
    }
    let whole = count * (name(0).len() + 16);
    // One 256 KiB read buffer holds at most this much of names and order.
    let one_buffer = 512 * 1024;
    assert!(whole > 2 * one_buffer);
    let s = DiskStorage::new(dir.path())
        .unwrap()
        .with_sorted_listing_limit(100);
    let mut seen = vec![false; count];
    let mut in_read_order = Vec::new();
    block_on(async {
        let mut lister = s.list(&p("/")).await.unwrap();
        assert!(lister.memory() <= one_buffer, "{}", lister.memory());
        let mut batch = EntryBatch::new();
        while lister.next_batch(&mut batch).await.unwrap() {
            assert!(lister.memory() <= one_buffer, "{}", lister.memory());
            for e in batch.iter() {
                let i: usize = e.name[..6].parse().unwrap();
                assert!(!seen[i], "{} twice", e.name);
                seen[i] = true;
                assert_eq!((e.meta.kind, e.meta.size), (FileKind::File, 3));
                in_read_order.push(e.name.to_owned());
            }
            batch.clear();
        }
        assert_eq!(lister.memory(), 0);
    });
    assert!(seen.iter().all(|&s| s), "every entry listed");
    // The file system's order (what NLST gives), not sorted.
    let mut sorted = in_read_order.clone();
    sorted.sort();
    assert_ne!(in_read_order, sorted);
    let nlst = block_on(async {
        let mut lister = s.list_names(&p("/")).await.unwrap();
        let mut batch = EntryBatch::new();
        let mut all = Vec::new();
        while lister.next_batch(&mut batch).await.unwrap() {
            all.extend(batch.iter().map(|e| e.name.to_owned()));
            batch.clear();
        }
        all
    });
    assert_eq!(in_read_order, nlst);
}

#[test]
fn entries_removed_during_a_listing_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..1200 {
        fs::write(dir.path().join(format!("{i:04}")), b"x").unwrap();
    }
    let s = DiskStorage::new(dir.path()).unwrap();
    block_on(async {
        let mut lister = s.list(&p("/")).await.unwrap();
        let mut batch = EntryBatch::new();
        assert!(lister.next_batch(&mut batch).await.unwrap());
        let first = batch.len();
        for i in first..1200 {
            if i % 2 == 0 {
                fs::remove_file(dir.path().join(format!("{i:04}"))).unwrap();
            }
        }
        let mut rest = 0;
        batch.clear();
        while lister.next_batch(&mut batch).await.unwrap() {
            rest += batch.len();
            assert!(
                batch
                    .iter()
                    .all(|e| e.name.parse::<usize>().unwrap() % 2 == 1)
            );
            batch.clear();
        }
        assert_eq!(first + rest, first + (1200 - first) / 2);
    });
}

#[test]
fn names_that_are_not_utf8_are_not_listed() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        b"x",
    )
    .unwrap();
    fs::write(dir.path().join("good"), b"x").unwrap();
    let s = DiskStorage::new(dir.path()).unwrap();
    block_on(async {
        assert_eq!(names(&s, "/").await, ["good"]);
    });
}

#[test]
fn special_files_are_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let s = DiskStorage::new(dir.path()).unwrap();
    block_on(async {
        let listed = common::list(&s, "/").await.unwrap();
        assert_eq!(listed[0].0, "fifo");
        assert_eq!((listed[0].1.kind, listed[0].1.size), (FileKind::File, 0));
        assert_eq!(read(&s, "/fifo").await, Err(E::NotAFile));
        assert_eq!(write(&s, "/fifo", W::Append, b"x").await, Err(E::NotAFile));
        assert_eq!(write(&s, "/fifo", W::At(0), b"x").await, Err(E::NotAFile));
        assert_eq!(kind(s.copy(&p("/fifo"), &p("/x")).await), Err(E::NotAFile));
        // Replacing it by an upload is fine: only the folder entry changes.
        put(&s, "/fifo", b"now a file").await;
        assert_eq!(read(&s, "/fifo").await.unwrap(), b"now a file");
    });
}

#[test]
fn large_files_are_removed_too() {
    // Sparse: as large as the threshold for the background threads, without the pages.
    in_a_temporary_folder(async |s, root| {
        fs::File::create(root.join("big"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        fs::File::create(root.join("small")).unwrap();
        std::os::unix::fs::symlink(root.join("big"), root.join("link")).unwrap();
        s.make_dir(&p("/d")).await.unwrap();
        fs::File::create(root.join("d/big"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        s.remove_file(&p("/d/big")).await.unwrap();
        s.remove_file(&p("/small")).await.unwrap();
        // A symlink to a large file is the link only: the file stays.
        s.remove_file(&p("/link")).await.unwrap();
        assert_eq!(on_disk(root), ["big", "d"]);
        s.remove_file(&p("/big")).await.unwrap();
        assert_eq!(on_disk(root), ["d"]);
        assert!(on_disk(&root.join("d")).is_empty());
        assert_eq!(kind(s.remove_file(&p("/big")).await), Err(E::NotFound));
    });
}

/// A new temporary folder, and an empty folder `name` in it.
fn folder_in_a_temporary(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(name);
    fs::create_dir(&folder).unwrap();
    (dir, folder)
}

#[test]
fn the_root_is_opened_once() {
    let (dir, root) = folder_in_a_temporary("root");
    let s = DiskStorage::new(&root).unwrap();
    block_on(async {
        put(&s, "/f", b"inside").await;
    });
    // Moving the folder away does not move the jail.
    fs::rename(&root, dir.path().join("moved")).unwrap();
    fs::create_dir(&root).unwrap();
    block_on(async {
        assert_eq!(read(&s, "/f").await.unwrap(), b"inside");
    });
    assert!(on_disk(&root).is_empty());
    assert_eq!(s.root(), root);
    assert!(DiskStorage::new(dir.path().join("missing")).is_err());
    fs::write(dir.path().join("file"), b"").unwrap();
    assert!(DiskStorage::new(dir.path().join("file")).is_err());
}

#[test]
fn is_rooted_at_tells_whether_the_home_is_still_the_same_folder() {
    let (dir, home) = folder_in_a_temporary("home");
    let tree = DiskStorage::new(&home).unwrap();
    assert!(tree.is_rooted_at(&home));
    fs::rename(&home, dir.path().join("moved")).unwrap();
    assert!(!tree.is_rooted_at(&home));
    fs::create_dir(&home).unwrap();
    assert!(
        !tree.is_rooted_at(&home),
        "a new folder at the same path is another folder"
    );
}
