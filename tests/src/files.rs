//! Files and trees: deterministic test content, SHA-256 checksums, a record of a whole tree
//! ([`snapshot`], to prove that nothing outside a home changed) and its lighter forms,
//! the temporaries of unfinished uploads, and a sample tree to transfer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
#[must_use]
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The SHA-256 of `bytes`, in hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of a file, in hex.
///
/// # Panics
/// When the file cannot be read.
#[must_use]
pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A record of a tree: for each path below `root` (symlinks not followed), its kind, mode,
/// modification time and, for files, size and SHA-256; for links, the target.
#[must_use]
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    snapshot_into(root, root, &mut out);
    out
}

fn snapshot_into(root: &Path, path: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let common = format!(
        "mode={:o} mtime={}.{:09}",
        meta.mode(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        out.insert(rel, format!("link -> {}", target.display()));
    } else if meta.is_dir() {
        out.insert(rel, format!("dir {common}"));
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            snapshot_into(root, &e, out);
        }
    } else {
        out.insert(
            rel,
            format!(
                "file {common} size={} sha256={}",
                meta.len(),
                sha256_file(path)
            ),
        );
    }
}

/// The contents of a tree: each path below `root` (symlinks not followed) as `dir` or the
/// SHA-256 of the file.
#[must_use]
pub fn tree_sums(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            let kind = if v.starts_with("dir ") {
                "dir".to_string()
            } else if let Some(i) = v.find("sha256=") {
                v[i + 7..].to_string()
            } else {
                v
            };
            (k, kind)
        })
        .collect()
}

/// The modification times (whole seconds) of the files below `root`.
#[must_use]
pub fn file_mtimes(root: &Path) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (k, v) in snapshot(root) {
        if v.starts_with("file ") {
            let m = fs::metadata(root.join(&k)).expect("metadata");
            out.insert(k, m.mtime());
        }
    }
    out
}

/// Names of files in `dir` (recursively) that look like temporaries of uploads.
#[must_use]
pub fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".ferry-tmp.") {
                found.push(e.path().to_string_lossy().into_owned());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    found
}

/// Writes a tree of nested folders with binary files of various sizes under `root`;
/// returns the relative paths of the files.
///
/// # Panics
/// When writing fails.
pub fn make_tree(root: &Path, seed: u64) -> Vec<String> {
    let files = [
        ("a.bin", 0usize),
        ("b.bin", 1),
        ("c.bin", 70_000),
        ("sub/d.bin", 300_000),
        ("sub/e.txt", 1234),
        ("sub/deeper/f.bin", 4096),
        ("sub/deeper/g.bin", 1_000_003),
        ("sub/deeper/deepest/h.bin", 17),
        ("other dir/with space.bin", 5000),
        ("empty-dir/.keep", 0),
    ];
    let mut names = Vec::new();
    for (i, (name, len)) in files.iter().enumerate() {
        let p = root.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, random_bytes(seed + i as u64, *len)).expect("write");
        names.push((*name).to_string());
    }
    names
}

/// Sets the modification time of the file at `path`.
///
/// # Panics
/// When the file cannot be opened or its time set.
pub fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("setting the time of {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_by_seed() {
        assert_ne!(random_bytes(1, 10), random_bytes(2, 10));
        assert_eq!(random_bytes(3, 1000), random_bytes(3, 1000));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
