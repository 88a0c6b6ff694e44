//! Helpers shared by the integration tests: short names for paths, whole-file reads and
//! writes, listings collected into a `Vec`, and a snapshot of a whole tree.

#![allow(dead_code, unreachable_pub)]

use ferry_backends::{
    EntryBatch, FileKind, Lister, Metadata, Storage, StorageError, Upload, VirtualPath, WriteMode,
};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

pub use futures_lite::future::block_on;

#[cfg(feature = "object")]
#[path = "../../../tests/src/weed.rs"]
pub mod weed;

/// Whether the program `name` is on `PATH`; a missing one prints `SKIPPED:` or, with
/// `FERRY_REQUIRE_CLIENTS=1` (CI), fails.
pub fn require_client(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()));
    if !found {
        let required = std::env::var("FERRY_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{name} is not installed, and FERRY_REQUIRE_CLIENTS=1 requires it"
        );
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

/// Waits until `cond` holds, for at most `within`.
pub fn wait_until(within: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The path `s` (normalised as the core would).
pub fn p(s: &str) -> VirtualPath {
    VirtualPath::parse(s).unwrap()
}

/// The kind of an error, to compare results.
pub fn kind<T>(r: ferry_backends::Result<T>) -> Result<T, StorageError> {
    r.map_err(|e| e.kind())
}

/// Uploads `data` to `path` as `mode` and commits.
pub async fn write<S: Storage>(
    s: &S,
    path: &str,
    mode: WriteMode,
    data: &[u8],
) -> Result<u64, StorageError> {
    let mut up = kind(s.open_write(&p(path), mode).await)?;
    up.write_all(data)
        .await
        .map_err(|e| ferry_backends::kind_of(&e))?;
    kind(up.commit().await)
}

/// Replaces `path` with `data`.
pub async fn put<S: Storage>(s: &S, path: &str, data: &[u8]) {
    write(s, path, WriteMode::Replace, data)
        .await
        .unwrap_or_else(|e| panic!("put {path}: {e:?}"));
}

/// The content of `path` from `offset` on.
pub async fn read_at<S: Storage>(s: &S, path: &str, offset: u64) -> Result<Vec<u8>, StorageError> {
    let (mut r, _) = kind(s.open_read(&p(path), offset).await)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .map_err(|e| ferry_backends::kind_of(&e))?;
    Ok(out)
}

/// The content of `path`.
pub async fn read<S: Storage>(s: &S, path: &str) -> Result<Vec<u8>, StorageError> {
    read_at(s, path, 0).await
}

/// Every entry of the folder `path`, in the order the lister gives them.
pub async fn list<S: Storage>(s: &S, path: &str) -> Result<Vec<(String, Metadata)>, StorageError> {
    let mut lister = kind(s.list(&p(path)).await)?;
    let mut batch = EntryBatch::new();
    let mut out = Vec::new();
    loop {
        batch.clear();
        if !kind(lister.next_batch(&mut batch).await)? {
            assert!(batch.is_empty(), "a final batch must be empty");
            return Ok(out);
        }
        assert!(
            !batch.is_empty(),
            "a batch that says more must hold entries"
        );
        out.extend(batch.iter().map(|e| (e.name.to_owned(), e.meta)));
    }
}

/// The names in the folder `path`.
pub async fn names<S: Storage>(s: &S, path: &str) -> Vec<String> {
    list(s, path)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// One node of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Dir,
    File(Vec<u8>),
}

/// Every path beneath the root with its kind and (for files) content, sorted.
pub async fn snapshot<S: Storage>(s: &S) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    let mut pending = vec![String::from("/")];
    while let Some(dir) = pending.pop() {
        for (name, meta) in list(s, &dir).await.unwrap() {
            let path = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            match meta.kind {
                FileKind::Dir => {
                    out.push((path.clone(), Node::Dir));
                    pending.push(path);
                }
                FileKind::File => {
                    let data = read(s, &path).await.unwrap();
                    out.push((path, Node::File(data)));
                }
                FileKind::Symlink => panic!("unexpected symlink {path}"),
            }
        }
    }
    out.sort();
    out
}

/// Renames `from` to `to`.
pub async fn mv<S: Storage>(s: &S, from: &str, to: &str) -> Result<(), StorageError> {
    kind(s.rename(&p(from), &p(to)).await)
}

/// Copies `from` to `to`; the bytes copied.
pub async fn cp<S: Storage>(s: &S, from: &str, to: &str) -> Result<u64, StorageError> {
    kind(s.copy(&p(from), &p(to)).await)
}

/// A proptest configuration of `cases` cases that keeps no failure files.
pub fn cases(cases: u32) -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}
