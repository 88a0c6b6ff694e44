//! One suite of `Storage` tests, run against every tree: the memory tree, the disk tree, and
//! the disk tree resolving paths by walking (the fallback for kernels without `openat2`).
//!
//! To add a backend, add one line at the bottom:
//! `conformance_suite!(my_backend, many = 10_000, |dir: &Path| MyStorage::new(..));`

mod common;

use std::path::Path;

use common::{block_on, cp, kind, list, mv, names, p, put, read, read_at, write};
use ferry_backends::{
    DiskStorage, FileKind, MemoryStorage, Storage, StorageError as E, TEMP_PREFIX, UnixTime,
    Upload, WriteMode as W,
};
use futures_lite::io::AsyncWriteExt;

/// Generates the suite as a module of `#[test]`s for one backend. `make` builds a fresh,
/// empty tree in the given (empty, temporary) folder; `many` is how many entries the
/// large-listing test creates.
macro_rules! conformance_suite {
    ($name:ident, many = $many:expr, $make:expr) => {
        mod $name {
            use super::*;

            fn run<S: Storage, F: AsyncFnOnce(&S), M: Made<S>>(make: impl FnOnce(&Path) -> M, test: F) {
                let dir = tempfile::tempdir().unwrap();
                // `None`: the tree's server is not installed (the maker said SKIPPED).
                if let Some(s) = make(dir.path()).made() {
                    block_on(test(&s));
                }
            }

            conformance_suite!(@tests $make;
                root_is_an_empty_folder, metadata, make_dir, remove_dir, remove_file,
                upload_replace, upload_errors, create_new, create_new_race, abort_and_drop,
                append, write_at, write_through_survives_abort, read_offsets, read_errors,
                rename_file, rename_folder, rename_errors, copy, copy_errors, set_modified,
                set_mode, listing_order, listing_errors, reserved_names, concurrent_uploads,
                replaces_existing);

            #[test]
            fn listing_many() {
                run($make, async |s| super::listing_many(s, $many).await);
            }
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run($make, super::$test);
            }
        )*
    };
}

/// What a suite's maker returns: a tree, or `Option` of one for a tree whose server may be
/// missing.
trait Made<S> {
    fn made(self) -> Option<S>;
}

impl<S: Storage> Made<S> for S {
    fn made(self) -> Option<S> {
        Some(self)
    }
}

impl<S: Storage> Made<S> for Option<S> {
    fn made(self) -> Self {
        self
    }
}

async fn root_is_an_empty_folder<S: Storage>(s: &S) {
    let m = s.metadata(&p("/")).await.unwrap();
    assert_eq!(m.kind, FileKind::Dir);
    assert!(list(s, "/").await.unwrap().is_empty());
}

async fn metadata<S: Storage>(s: &S) {
    put(s, "/f", b"12345").await;
    s.make_dir(&p("/d")).await.unwrap();
    let m = s.metadata(&p("/f")).await.unwrap();
    assert_eq!((m.kind, m.size), (FileKind::File, 5));
    assert!(m.modified.is_some());
    assert_eq!(s.metadata(&p("/d")).await.unwrap().kind, FileKind::Dir);
    assert_eq!(kind(s.metadata(&p("/missing")).await), Err(E::NotFound));
    assert_eq!(kind(s.metadata(&p("/missing/x")).await), Err(E::NotFound));
    assert_eq!(kind(s.metadata(&p("/f/x")).await), Err(E::NotADirectory));
    assert_eq!(kind(s.metadata(&p("/f/x/y")).await), Err(E::NotADirectory));
}

async fn make_dir<S: Storage>(s: &S) {
    s.make_dir(&p("/a")).await.unwrap();
    s.make_dir(&p("/a/b")).await.unwrap();
    assert_eq!(names(s, "/a").await, ["b"]);
    assert_eq!(kind(s.make_dir(&p("/a")).await), Err(E::AlreadyExists));
    assert_eq!(kind(s.make_dir(&p("/")).await), Err(E::AlreadyExists));
    assert_eq!(kind(s.make_dir(&p("/x/y")).await), Err(E::NotFound));
    put(s, "/f", b"").await;
    assert_eq!(kind(s.make_dir(&p("/f")).await), Err(E::AlreadyExists));
    assert_eq!(kind(s.make_dir(&p("/f/y")).await), Err(E::NotADirectory));
}

async fn remove_dir<S: Storage>(s: &S) {
    s.make_dir(&p("/a")).await.unwrap();
    s.make_dir(&p("/a/b")).await.unwrap();
    assert_eq!(kind(s.remove_dir(&p("/a")).await), Err(E::NotEmpty));
    s.remove_dir(&p("/a/b")).await.unwrap();
    put(s, "/a/f", b"x").await;
    assert_eq!(kind(s.remove_dir(&p("/a")).await), Err(E::NotEmpty));
    assert_eq!(kind(s.remove_dir(&p("/a/f")).await), Err(E::NotADirectory));
    s.remove_file(&p("/a/f")).await.unwrap();
    s.remove_dir(&p("/a")).await.unwrap();
    assert_eq!(kind(s.remove_dir(&p("/a")).await), Err(E::NotFound));
    assert_eq!(kind(s.remove_dir(&p("/x/y")).await), Err(E::NotFound));
    assert_eq!(kind(s.remove_dir(&p("/")).await), Err(E::PermissionDenied));
    assert_eq!(s.metadata(&p("/")).await.unwrap().kind, FileKind::Dir);
    assert!(names(s, "/").await.is_empty());
}

async fn remove_file<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    s.remove_file(&p("/f")).await.unwrap();
    assert_eq!(kind(s.metadata(&p("/f")).await), Err(E::NotFound));
    assert_eq!(kind(s.remove_file(&p("/f")).await), Err(E::NotFound));
    assert_eq!(kind(s.remove_file(&p("/d")).await), Err(E::NotAFile));
    assert_eq!(kind(s.remove_file(&p("/")).await), Err(E::NotAFile));
    assert_eq!(kind(s.remove_file(&p("/x/f")).await), Err(E::NotFound));
    assert_eq!(names(s, "/").await, ["d"]);
}

async fn upload_replace<S: Storage>(s: &S) {
    assert_eq!(write(s, "/f", W::Replace, b"hello").await, Ok(5));
    assert_eq!(read(s, "/f").await.unwrap(), b"hello");
    assert_eq!(write(s, "/f", W::Replace, b"bye").await, Ok(3));
    assert_eq!(read(s, "/f").await.unwrap(), b"bye");
    assert_eq!(s.metadata(&p("/f")).await.unwrap().size, 3);
    assert_eq!(write(s, "/empty", W::Replace, b"").await, Ok(0));
    assert_eq!(read(s, "/empty").await.unwrap(), b"");
    // Nothing is visible before the commit.
    let mut up = s.open_write(&p("/g"), W::Replace).await.unwrap();
    up.write_all(b"pending").await.unwrap();
    up.flush().await.unwrap();
    assert_eq!(kind(s.metadata(&p("/g")).await), Err(E::NotFound));
    assert_eq!(names(s, "/").await, ["empty", "f"]);
    assert_eq!(up.commit().await.unwrap(), 7);
    assert_eq!(read(s, "/g").await.unwrap(), b"pending");
    // A big file, in many writes.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut up = s.open_write(&p("/big"), W::Replace).await.unwrap();
    for chunk in big.chunks(7_000) {
        up.write_all(chunk).await.unwrap();
    }
    assert_eq!(up.commit().await.unwrap(), big.len() as u64);
    assert_eq!(read(s, "/big").await.unwrap(), big);
}

async fn upload_errors<S: Storage>(s: &S) {
    s.make_dir(&p("/d")).await.unwrap();
    put(s, "/f", b"x").await;
    for mode in [W::Replace, W::CreateNew, W::Append, W::At(0)] {
        assert_eq!(
            kind(s.open_write(&p("/x/f"), mode).await).err(),
            Some(E::NotFound)
        );
        assert_eq!(
            kind(s.open_write(&p("/f/g"), mode).await).err(),
            Some(E::NotADirectory)
        );
        assert_eq!(
            kind(s.open_write(&p("/"), mode).await).err(),
            Some(E::NotAFile)
        );
    }
    for mode in [W::Replace, W::Append, W::At(0)] {
        assert_eq!(
            kind(s.open_write(&p("/d"), mode).await).err(),
            Some(E::NotAFile)
        );
    }
    assert_eq!(
        kind(s.open_write(&p("/d"), W::CreateNew).await).err(),
        Some(E::AlreadyExists)
    );
    assert_eq!(s.metadata(&p("/d")).await.unwrap().kind, FileKind::Dir);
}

async fn create_new<S: Storage>(s: &S) {
    assert_eq!(write(s, "/n", W::CreateNew, b"first").await, Ok(5));
    assert_eq!(
        write(s, "/n", W::CreateNew, b"second").await,
        Err(E::AlreadyExists)
    );
    assert_eq!(read(s, "/n").await.unwrap(), b"first");
}

async fn create_new_race<S: Storage>(s: &S) {
    // The target appears while the upload runs: the commit must not replace it.
    let mut up = s.open_write(&p("/n"), W::CreateNew).await.unwrap();
    up.write_all(b"late").await.unwrap();
    put(s, "/n", b"early").await;
    assert_eq!(kind(up.commit().await), Err(E::AlreadyExists));
    assert_eq!(read(s, "/n").await.unwrap(), b"early");
    assert_eq!(names(s, "/").await, ["n"]);
}

async fn replaces_existing<S: Storage>(s: &S) {
    // Only an upload that would replace a file says so.
    let up = s.open_write(&p("/new"), W::Replace).await.unwrap();
    assert!(!up.replaces_existing());
    up.abort().await;
    put(s, "/old", b"x").await;
    let up = s.open_write(&p("/old"), W::Replace).await.unwrap();
    assert!(up.replaces_existing());
    up.abort().await;
    if s.capabilities().append {
        let up = s.open_write(&p("/old"), W::Append).await.unwrap();
        assert!(!up.replaces_existing(), "an append replaces nothing");
        up.abort().await;
    }
}

async fn abort_and_drop<S: Storage>(s: &S) {
    put(s, "/f", b"old").await;
    let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
    up.write_all(b"new content").await.unwrap();
    up.abort().await;
    assert_eq!(read(s, "/f").await.unwrap(), b"old");
    let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
    up.write_all(b"new content").await.unwrap();
    drop(up);
    assert_eq!(read(s, "/f").await.unwrap(), b"old");
    let mut up = s.open_write(&p("/g"), W::CreateNew).await.unwrap();
    up.write_all(b"never").await.unwrap();
    drop(up);
    assert_eq!(kind(s.metadata(&p("/g")).await), Err(E::NotFound));
    assert_eq!(names(s, "/").await, ["f"]);
}

async fn append<S: Storage>(s: &S) {
    if !s.capabilities().append {
        // A new file can still be made by APPE; an existing one is refused, unchanged.
        assert_eq!(write(s, "/log", W::Append, b"one ").await, Ok(4));
        assert_eq!(
            write(s, "/log", W::Append, b"two").await,
            Err(E::Unsupported)
        );
        assert_eq!(read(s, "/log").await.unwrap(), b"one ");
        return;
    }
    assert_eq!(write(s, "/log", W::Append, b"one ").await, Ok(4));
    assert_eq!(write(s, "/log", W::Append, b"two").await, Ok(3));
    assert_eq!(read(s, "/log").await.unwrap(), b"one two");
    assert_eq!(write(s, "/log", W::Append, b"").await, Ok(0));
    assert_eq!(s.metadata(&p("/log")).await.unwrap().size, 7);
}

async fn write_at<S: Storage>(s: &S) {
    put(s, "/f", b"hello world").await;
    if !s.capabilities().write_at {
        assert_eq!(
            write(s, "/f", W::At(6), b"there").await,
            Err(E::Unsupported)
        );
        assert_eq!(read(s, "/f").await.unwrap(), b"hello world");
        // Offset 0 is an ordinary upload.
        assert_eq!(write(s, "/new", W::At(0), b"abc").await, Ok(3));
        assert_eq!(read(s, "/new").await.unwrap(), b"abc");
        return;
    }
    assert_eq!(write(s, "/f", W::At(6), b"there").await, Ok(5));
    assert_eq!(read(s, "/f").await.unwrap(), b"hello there");
    // What lay beyond the offset is replaced by what is written.
    assert_eq!(write(s, "/f", W::At(3), b"X").await, Ok(1));
    assert_eq!(read(s, "/f").await.unwrap(), b"helX");
    assert_eq!(write(s, "/f", W::At(6), b"!").await, Ok(1));
    assert_eq!(read(s, "/f").await.unwrap(), b"helX\0\0!");
    assert_eq!(write(s, "/new", W::At(0), b"abc").await, Ok(3));
    assert_eq!(read(s, "/new").await.unwrap(), b"abc");
    assert_eq!(write(s, "/new", W::At(2), b"").await, Ok(0));
    assert_eq!(read(s, "/new").await.unwrap(), b"ab");
}

async fn write_through_survives_abort<S: Storage>(s: &S) {
    put(s, "/f", b"start").await;
    if !s.capabilities().append || !s.capabilities().write_at {
        for mode in [W::Append, W::At(2)] {
            let refused = s.open_write(&p("/f"), mode).await.map(|_| ());
            assert_eq!(kind(refused), Err(E::Unsupported));
        }
        assert_eq!(read(s, "/f").await.unwrap(), b"start");
        return;
    }
    let mut up = s.open_write(&p("/f"), W::Append).await.unwrap();
    up.write_all(b"+partial").await.unwrap();
    up.flush().await.unwrap();
    up.abort().await;
    assert_eq!(read(s, "/f").await.unwrap(), b"start+partial");
    let mut up = s.open_write(&p("/f"), W::At(2)).await.unwrap();
    up.write_all(b"XY").await.unwrap();
    up.flush().await.unwrap();
    drop(up);
    assert_eq!(read(s, "/f").await.unwrap(), b"stXY");
}

async fn read_offsets<S: Storage>(s: &S) {
    put(s, "/f", b"0123456789").await;
    assert_eq!(read_at(s, "/f", 0).await.unwrap(), b"0123456789");
    assert_eq!(read_at(s, "/f", 4).await.unwrap(), b"456789");
    assert_eq!(read_at(s, "/f", 10).await.unwrap(), b"");
    assert_eq!(read_at(s, "/f", 1000).await.unwrap(), b"");
    let (_, meta) = s.open_read(&p("/f"), 3).await.unwrap();
    assert_eq!((meta.kind, meta.size), (FileKind::File, 10));
}

async fn read_errors<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    assert_eq!(read(s, "/missing").await, Err(E::NotFound));
    assert_eq!(read(s, "/d").await, Err(E::NotAFile));
    assert_eq!(read(s, "/").await, Err(E::NotAFile));
    assert_eq!(read(s, "/f/x").await, Err(E::NotADirectory));
    assert_eq!(read(s, "/nowhere/x").await, Err(E::NotFound));
}

async fn rename_file<S: Storage>(s: &S) {
    put(s, "/a", b"A").await;
    put(s, "/b", b"B").await;
    s.make_dir(&p("/d")).await.unwrap();
    mv(s, "/a", "/d/a2").await.unwrap();
    assert_eq!(kind(s.metadata(&p("/a")).await), Err(E::NotFound));
    assert_eq!(read(s, "/d/a2").await.unwrap(), b"A");
    // Over an existing file: replaced.
    mv(s, "/d/a2", "/b").await.unwrap();
    assert_eq!(read(s, "/b").await.unwrap(), b"A");
    assert_eq!(names(s, "/").await, ["b", "d"]);
    // Onto itself: nothing changes.
    mv(s, "/b", "/b").await.unwrap();
    assert_eq!(read(s, "/b").await.unwrap(), b"A");
    // Over a folder: refused.
    assert_eq!(mv(s, "/b", "/d").await, Err(E::AlreadyExists));
    assert_eq!(read(s, "/b").await.unwrap(), b"A");
}

async fn rename_folder<S: Storage>(s: &S) {
    s.make_dir(&p("/a")).await.unwrap();
    s.make_dir(&p("/a/sub")).await.unwrap();
    put(s, "/a/sub/f", b"deep").await;
    mv(s, "/a", "/z").await.unwrap();
    assert_eq!(read(s, "/z/sub/f").await.unwrap(), b"deep");
    assert_eq!(names(s, "/").await, ["z"]);
    mv(s, "/z", "/z").await.unwrap();
    // Beneath itself: refused, nothing moves.
    assert_eq!(mv(s, "/z", "/z/sub/in").await, Err(E::BadName));
    assert_eq!(mv(s, "/z", "/z/new").await, Err(E::BadName));
    assert_eq!(mv(s, "/z", "/z/nowhere/x").await, Err(E::NotFound));
    // Onto a folder (even an empty one) or a file: refused.
    s.make_dir(&p("/empty")).await.unwrap();
    assert_eq!(mv(s, "/z", "/empty").await, Err(E::AlreadyExists));
    put(s, "/file", b"f").await;
    assert_eq!(mv(s, "/z", "/file").await, Err(E::AlreadyExists));
    assert_eq!(read(s, "/file").await.unwrap(), b"f");
    assert_eq!(read(s, "/z/sub/f").await.unwrap(), b"deep");
    // Into another folder.
    mv(s, "/z/sub", "/empty/sub").await.unwrap();
    assert_eq!(read(s, "/empty/sub/f").await.unwrap(), b"deep");
    assert!(names(s, "/z").await.is_empty());
}

/// With a file `/f` and a folder `/d`, each of `cases` (from, to, kind) fails `op` with its
/// kind, and nothing changes.
async fn refused<S: Storage, T: PartialEq + std::fmt::Debug>(
    s: &S,
    op: impl AsyncFn(&str, &str) -> Result<T, E>,
    cases: &[(&str, &str, E)],
) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    for &(from, to, want) in cases {
        assert_eq!(op(from, to).await, Err(want), "{from} -> {to}");
    }
    assert_eq!(names(s, "/").await, ["d", "f"]);
}

async fn rename_errors<S: Storage>(s: &S) {
    let cases = [
        ("/missing", "/x", E::NotFound),
        ("/nowhere/a", "/x", E::NotFound),
        ("/f", "/nowhere/x", E::NotFound),
        ("/f", "/f/x", E::NotADirectory),
        ("/f/x", "/y", E::NotADirectory),
        ("/", "/x", E::PermissionDenied),
        ("/d", "/", E::AlreadyExists),
        ("/f", "/", E::AlreadyExists),
    ];
    refused(s, async |from, to| mv(s, from, to).await, &cases).await;
}

async fn copy<S: Storage>(s: &S) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    put(s, "/src", &data).await;
    s.make_dir(&p("/d")).await.unwrap();
    assert_eq!(cp(s, "/src", "/d/dst").await, Ok(data.len() as u64));
    assert_eq!(read(s, "/d/dst").await.unwrap(), data);
    assert_eq!(read(s, "/src").await.unwrap(), data);
    // Over an existing file: replaced.
    put(s, "/small", b"small").await;
    assert_eq!(cp(s, "/small", "/d/dst").await, Ok(5));
    assert_eq!(read(s, "/d/dst").await.unwrap(), b"small");
    // Onto itself.
    assert_eq!(cp(s, "/small", "/small").await, Ok(5));
    assert_eq!(read(s, "/small").await.unwrap(), b"small");
    // The copy is independent of its source.
    put(s, "/small", b"changed").await;
    assert_eq!(read(s, "/d/dst").await.unwrap(), b"small");
    assert_eq!(names(s, "/d").await, ["dst"]);
}

async fn copy_errors<S: Storage>(s: &S) {
    let cases = [
        ("/missing", "/x", E::NotFound),
        ("/d", "/x", E::NotAFile),
        ("/", "/x", E::NotAFile),
        ("/f", "/d", E::AlreadyExists),
        ("/f", "/", E::AlreadyExists),
        ("/f", "/nowhere/x", E::NotFound),
        ("/f", "/f/x", E::NotADirectory),
    ];
    refused(s, async |from, to| cp(s, from, to).await, &cases).await;
}

async fn set_modified<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    let t = UnixTime(1_600_000_000);
    if !s.capabilities().set_modified {
        assert_eq!(kind(s.set_modified(&p("/f"), t).await), Err(E::Unsupported));
        assert_eq!(
            kind(s.set_modified(&p("/missing"), t).await),
            Err(E::NotFound)
        );
        assert_ne!(s.metadata(&p("/f")).await.unwrap().modified, Some(t));
        return;
    }
    s.set_modified(&p("/f"), t).await.unwrap();
    s.set_modified(&p("/d"), UnixTime(1_500_000_000))
        .await
        .unwrap();
    assert_eq!(s.metadata(&p("/f")).await.unwrap().modified, Some(t));
    assert_eq!(
        s.metadata(&p("/d")).await.unwrap().modified,
        Some(UnixTime(1_500_000_000))
    );
    let listed = list(s, "/").await.unwrap();
    assert_eq!(listed[1].1.modified, Some(t));
    assert_eq!(
        kind(s.set_modified(&p("/missing"), t).await),
        Err(E::NotFound)
    );
    // Before 1970 works too.
    s.set_modified(&p("/f"), UnixTime(-86_400)).await.unwrap();
    assert_eq!(
        s.metadata(&p("/f")).await.unwrap().modified,
        Some(UnixTime(-86_400))
    );
}

async fn set_mode<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    if !s.capabilities().set_mode {
        assert_eq!(kind(s.set_mode(&p("/f"), 0o600).await), Err(E::Unsupported));
        assert_eq!(kind(s.set_mode(&p("/f"), 0o10644).await), Err(E::BadName));
        assert_eq!(
            kind(s.set_mode(&p("/f"), 0o4755).await),
            Err(E::PermissionDenied)
        );
        assert_eq!(
            kind(s.set_mode(&p("/missing"), 0o644).await),
            Err(E::NotFound)
        );
        assert_eq!(read(s, "/f").await.unwrap(), b"x");
        return;
    }
    s.set_mode(&p("/f"), 0o600).await.unwrap();
    s.set_mode(&p("/d"), 0o750).await.unwrap();
    assert_eq!(s.metadata(&p("/f")).await.unwrap().mode, Some(0o600));
    assert_eq!(s.metadata(&p("/d")).await.unwrap().mode, Some(0o750));
    assert_eq!(kind(s.set_mode(&p("/f"), 0o10644).await), Err(E::BadName));
    assert_eq!(
        kind(s.set_mode(&p("/f"), 0o4755).await),
        Err(E::PermissionDenied)
    );
    assert_eq!(
        kind(s.set_mode(&p("/f"), 0o1777).await),
        Err(E::PermissionDenied)
    );
    assert_eq!(
        kind(s.set_mode(&p("/missing"), 0o644).await),
        Err(E::NotFound)
    );
    assert_eq!(s.metadata(&p("/f")).await.unwrap().mode, Some(0o600));
    s.set_mode(&p("/f"), 0o644).await.unwrap();
    assert_eq!(read(s, "/f").await.unwrap(), b"x");
}

async fn listing_order<S: Storage>(s: &S) {
    let files = ["b", "a", "B", "é", "a b", "_", "10", "9", "~", "ab", "A"];
    for f in files {
        put(s, &format!("/{f}"), f.as_bytes()).await;
    }
    s.make_dir(&p("/dir")).await.unwrap();
    let listed = list(s, "/").await.unwrap();
    let mut want: Vec<&str> = files.to_vec();
    want.push("dir");
    want.sort_unstable(); // byte order
    let got: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, want);
    for (name, meta) in &listed {
        if name == "dir" {
            assert_eq!(meta.kind, FileKind::Dir);
        } else {
            assert_eq!((meta.kind, meta.size), (FileKind::File, name.len() as u64));
        }
    }
}

async fn listing_errors<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    assert_eq!(kind(s.list(&p("/f")).await).err(), Some(E::NotADirectory));
    assert_eq!(kind(s.list(&p("/missing")).await).err(), Some(E::NotFound));
    assert_eq!(kind(s.list(&p("/f/x")).await).err(), Some(E::NotADirectory));
}

async fn reserved_names<S: Storage>(s: &S) {
    put(s, "/f", b"x").await;
    s.make_dir(&p("/d")).await.unwrap();
    let long = "n".repeat(256);
    let bad = [
        format!("/{TEMP_PREFIX}x"),
        format!("/d/{TEMP_PREFIX}123.4"),
        format!("/{TEMP_PREFIX}x/y"),
        TEMP_PREFIX.to_string(),
        format!("/d/{long}"),
    ];
    for b in &bad {
        let b = p(b);
        assert_eq!(kind(s.metadata(&b).await).err(), Some(E::BadName), "{b}");
        assert_eq!(kind(s.list(&b).await).err(), Some(E::BadName), "{b}");
        assert_eq!(
            kind(s.open_read(&b, 0).await).err(),
            Some(E::BadName),
            "{b}"
        );
        for mode in [W::Replace, W::CreateNew, W::Append, W::At(0)] {
            assert_eq!(
                kind(s.open_write(&b, mode).await).err(),
                Some(E::BadName),
                "{b}"
            );
        }
        assert_eq!(kind(s.make_dir(&b).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.remove_dir(&b).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.remove_file(&b).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.rename(&p("/f"), &b).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.rename(&b, &p("/g")).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.copy(&p("/f"), &b).await), Err(E::BadName), "{b}");
        assert_eq!(kind(s.copy(&b, &p("/g")).await), Err(E::BadName), "{b}");
        assert_eq!(
            kind(s.set_modified(&b, UnixTime(0)).await),
            Err(E::BadName),
            "{b}"
        );
        assert_eq!(kind(s.set_mode(&b, 0o644).await), Err(E::BadName), "{b}");
    }
    // Names just inside the limits are fine.
    let ok = format!("/{}", "n".repeat(255));
    put(s, &ok, b"long").await;
    put(s, "/.ferry-tmp", b"no trailing dot").await;
    put(s, "/x.ferry-tmp.y", b"not a prefix").await;
    assert_eq!(read(s, &ok).await.unwrap(), b"long");
    assert_eq!(names(s, "/").await.len(), 5);
}

async fn concurrent_uploads<S: Storage>(s: &S) {
    // Two uploads to one target: the last commit wins, whole.
    let mut a = s.open_write(&p("/t"), W::Replace).await.unwrap();
    let mut b = s.open_write(&p("/t"), W::Replace).await.unwrap();
    a.write_all(b"from a").await.unwrap();
    b.write_all(b"from b, longer").await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(read(s, "/t").await.unwrap(), b"from b, longer");
    a.commit().await.unwrap();
    assert_eq!(read(s, "/t").await.unwrap(), b"from a");
    assert_eq!(names(s, "/").await, ["t"]);
}

async fn listing_many<S: Storage>(s: &S, count: usize) {
    s.make_dir(&p("/many")).await.unwrap();
    for i in 0..count {
        s.make_dir(&p(&format!("/many/{i:06}"))).await.unwrap();
    }
    let mut lister = s.list(&p("/many")).await.unwrap();
    let mut batch = ferry_backends::EntryBatch::new();
    let mut seen = 0usize;
    let mut batches = 0usize;
    let mut last = String::new();
    use ferry_backends::Lister;
    while lister.next_batch(&mut batch).await.unwrap() {
        batches += 1;
        for e in batch.iter() {
            assert!(e.name > last.as_str(), "{} after {last}", e.name);
            assert_eq!(e.name, format!("{seen:06}"));
            last.clear();
            last.push_str(e.name);
            seen += 1;
        }
        batch.clear();
    }
    assert_eq!(seen, count);
    // Names only: the same names, in any order, across as many batches as it takes.
    let mut lister = s.list_names(&p("/many")).await.unwrap();
    let mut names = Vec::new();
    while lister.next_batch(&mut batch).await.unwrap() {
        names.extend(batch.iter().map(|e| e.name.to_owned()));
        batch.clear();
    }
    names.sort();
    let want: Vec<String> = (0..count).map(|i| format!("{i:06}")).collect();
    assert!(
        names == want,
        "names-only listing differs: {} names",
        names.len()
    );
    assert!(
        batches > 1,
        "{count} entries should come in more than one batch"
    );
}

conformance_suite!(memory, many = 100_000, |_: &Path| MemoryStorage::new());
conformance_suite!(disk, many = 3_000, |dir: &Path| DiskStorage::new(dir)
    .unwrap());
conformance_suite!(disk_walking, many = 1_000, |dir: &Path| {
    DiskStorage::new(dir).unwrap().resolve_by_walking()
});
conformance_suite!(disk_pooled, many = 1_000, |dir: &Path| {
    DiskStorage::new(dir).unwrap().with_blocking_pool(true)
});

/// One SeaweedFS for the whole suite (each test in a prefix of its own): started at the
/// first test, stopped by its watchdog when the test process ends.
#[cfg(feature = "object")]
fn object_tree(dir: &Path) -> Option<ferry_backends::ObjectStorage> {
    use std::sync::OnceLock;
    static WEED: OnceLock<Option<common::weed::Weed>> = OnceLock::new();
    let weed = WEED.get_or_init(common::weed::Weed::start).as_ref()?;
    let prefix = dir
        .file_name()?
        .to_str()?
        .trim_start_matches('.')
        .to_owned();
    let tree = weed.tree(&format!("conformance/{prefix}"));
    block_on(tree.create_root()).unwrap();
    Some(tree)
}

#[cfg(feature = "object")]
conformance_suite!(object, many = 1_500, object_tree);
