//! Listings of a [`DiskStorage`](super::DiskStorage) folder, with bounded memory.
//!
//! - **Sorted** (`LIST`, `MLSD`, `STAT`): every name is read first (`getdents64` into one
//!   large buffer), sorted by byte order, then stat'ed a batch at a time as the runtime asks.
//!   The names and their order are the only thing held, about `len + 24` bytes a name.
//! - **Bounded**: a folder of more than [`MAX_SORTED_ENTRIES`] entries (or one that would
//!   take the sorted listings of the whole process past [`SORTED_LISTINGS_BUDGET`]) is not
//!   sorted. The names read so far are handed out in the order they were read, and the rest
//!   of the folder is streamed, one `getdents64` buffer at a time, in the file system's order:
//!   the client gets every entry exactly once, unsorted, and the listing holds one buffer's
//!   names at a time however large the folder.
//! - **Names only** (`NLST`): always streamed in the file system's order, without a stat
//!   per entry, so that the first names go out while the rest are read.
//!
//! All reading and stat'ing runs on the lower-priority background threads (see the tree's
//! docs).

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{Inner, fail, meta_of, sys};
use crate::{EntryBatch, Error, FileKind, Lister, Metadata, Result, StorageError, TEMP_PREFIX};

/// Most entries a listing sorts by name. A folder of 100,000 entries of 20-byte names holds
/// about 4.4 MB while it is listed; a folder beyond it is listed in the file system's order
/// (see the module docs), so that one folder of millions cannot take gigabytes.
pub const MAX_SORTED_ENTRIES: usize = 100_000;

/// Bytes that all sorted listings of this process may hold at once (names and their order,
/// [`listing_memory`]). A listing that would go past it is streamed in the file system's
/// order instead: 50 sessions listing a folder of a million entries hold this much at most
/// (plus one read buffer each), not gigabytes.
pub const SORTED_LISTINGS_BUDGET: usize = 64 << 20;

/// Bytes held for one entry besides its name: its place in the name buffer and its sort key
/// while reading (16), then its place in the sorted order (8).
const ENTRY_OVERHEAD: usize = 16;

/// How many entries a listing stats per trip to the blocking pool.
const BATCH: usize = 512;

/// Fewest names per batch of a streamed listing (a batch ends where a read of the folder
/// does).
const STREAM_BATCH: usize = 1024;

/// The `getdents64` buffer of a sorted listing: rustix's `Dir` grows its own slowly, and with
/// small buffers ext4 rebuilds its hashed-order state for every call (a listing of 10,000
/// names spent most of its time there).
const SORTED_READ_BUFFER: usize = 256 * 1024;

/// The `getdents64` buffer of a names-only listing.
const STREAM_READ_BUFFER: usize = 64 * 1024;

/// Bytes of names and order that the listings of this process hold now.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Bytes of names and sort order that disk listings of this process hold now (all trees).
#[must_use]
pub fn listing_memory() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// One listing's share of [`HELD`], given back when the listing ends.
#[derive(Debug, Default)]
pub(crate) struct Held(usize);

impl Held {
    /// Sets this listing's share to `bytes`. Returns whether all listings together stay
    /// within [`SORTED_LISTINGS_BUDGET`].
    pub(crate) fn set(&mut self, bytes: usize) -> bool {
        let total = if bytes >= self.0 {
            HELD.fetch_add(bytes - self.0, Ordering::Relaxed) + (bytes - self.0)
        } else {
            HELD.fetch_sub(self.0 - bytes, Ordering::Relaxed) - (self.0 - bytes)
        };
        self.0 = bytes;
        total <= SORTED_LISTINGS_BUDGET
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// A folder entry's name as listed, or `None` for `.`, `..`, our temporaries, and names
/// that are not UTF-8 (a client cannot name them: paths are `str`).
fn listable(name: &[u8]) -> Option<&str> {
    if name == b"." || name == b".." {
        return None;
    }
    std::str::from_utf8(name)
        .ok()
        .filter(|n| !n.starts_with(TEMP_PREFIX))
}

/// Byte order of names, mostly without a memcmp: the first eight bytes as one big-endian
/// number settle most comparisons (a third of an NLST of 10,000 names once went to
/// sorting). A name shorter than eight bytes sorts before one it is a prefix of: its key
/// ends in zero bytes, which no name contains.
fn sort_key(name: &str) -> u64 {
    let b = name.as_bytes();
    let mut k = [0u8; 8];
    let n = b.len().min(8);
    k[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(k)
}

/// The metadata of entries listed for their names only.
const NAMES_ONLY: Metadata = Metadata {
    kind: FileKind::File,
    size: 0,
    modified: None,
    mode: None,
};

/// Names one after the other, and (start, length) of each.
#[derive(Default)]
struct Names {
    text: String,
    spans: Vec<(u32, u32)>,
}

impl Names {
    /// Appends `name` to the text (not to `spans`) and returns its span.
    fn push(&mut self, name: &str) -> Result<(u32, u32)> {
        let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(name.len()))
        else {
            return fail(StorageError::Other);
        };
        self.text.push_str(name);
        Ok((start, len))
    }

    fn get(&self, (start, len): (u32, u32)) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }

    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    /// Bytes held, as counted against the budget.
    fn bytes(&self) -> usize {
        self.text.len() + self.spans.len() * (ENTRY_OVERHEAD / 2)
    }
}

/// A folder read incrementally, one `getdents64` buffer after another.
struct Stream {
    reading: OwnedFd,
    buf: Vec<std::mem::MaybeUninit<u8>>,
    done: bool,
}

/// A listing of a [`DiskStorage`](super::DiskStorage) folder (see the module docs). Entries
/// removed while it runs are skipped.
#[derive(Debug)]
pub struct DiskLister {
    /// `None` while a batch is being read on the blocking pool (or if that was cancelled).
    state: Option<Box<ListState>>,
}

impl DiskLister {
    /// Bytes of names and order this listing holds now (counted in [`listing_memory`]).
    #[must_use]
    pub fn memory(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.held.0)
    }
}

struct ListState {
    inner: Arc<Inner>,
    /// The folder, `O_PATH`, for `fstatat`.
    dir: OwnedFd,
    /// Its path relative to the root, to resolve symlinks from the root.
    rel: String,
    /// Names read and not all handed out yet, in the order they go out.
    names: Names,
    /// The next of `names.spans` to hand out.
    next: usize,
    scratch: EntryBatch,
    /// The rest of the folder, still to be read (names only, or past the sorting limits).
    stream: Option<Stream>,
    /// Whether entries get their metadata (not for names only).
    stat: bool,
    held: Held,
}

impl fmt::Debug for ListState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListState")
            .field("rel", &self.rel)
            .field("entries", &self.names.spans.len())
            .field("next", &self.next)
            .field("streaming", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Starts a listing of the folder `rel` (blocking): reads (and sorts) its names, within
    /// the limits, or sets it up to be streamed.
    pub(super) fn list(self: &Arc<Self>, rel: &str, names_only: bool) -> Result<DiskLister> {
        let dir = sys(self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()))?;
        let reading = sys(rfs::openat(
            &dir,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ))?;
        let mut state = ListState {
            inner: Arc::clone(self),
            dir,
            rel: rel.to_owned(),
            names: Names::default(),
            next: 0,
            scratch: EntryBatch::new(),
            stream: None,
            stat: !names_only,
            held: Held::default(),
        };
        if names_only {
            state.stream = Some(Stream {
                reading,
                buf: vec![std::mem::MaybeUninit::<u8>::uninit(); STREAM_READ_BUFFER],
                done: false,
            });
        } else {
            state.read_sorted(reading, self.max_sorted.load(Ordering::Relaxed))?;
        }
        Ok(DiskLister {
            state: Some(Box::new(state)),
        })
    }
}

impl ListState {
    /// Reads the folder's names and sorts them, unless there are more than `limit` or they
    /// would take all listings past the budget: then the names read so far go out in the
    /// order they came and the rest of the folder is streamed.
    fn read_sorted(&mut self, reading: OwnedFd, limit: usize) -> Result<()> {
        // (sort key, span in `names`) of each name.
        let mut keyed: Vec<(u64, (u32, u32))> = Vec::new();
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); SORTED_READ_BUFFER];
        let mut raw = rfs::RawDir::new(&reading, &mut buf);
        let mut over = false;
        let mut ended = true;
        while let Some(entry) = raw.next() {
            let entry = sys(entry)?;
            if let Some(name) = listable(entry.file_name().to_bytes()) {
                keyed.push((sort_key(name), self.names.push(name)?));
            }
            if !over {
                let bytes = self.names.text.len() + keyed.len() * ENTRY_OVERHEAD;
                over = !self.held.set(bytes) || keyed.len() > limit;
            }
            // Stop only where the kernel's buffer ends: its position is then exactly past
            // what was read, and streaming goes on from there without a seek.
            if over && raw.is_buffer_empty() {
                ended = false;
                break;
            }
        }
        if over {
            self.stream = Some(Stream {
                reading,
                buf,
                done: ended,
            });
        } else {
            let names = &self.names;
            keyed.sort_unstable_by(|(ka, a), (kb, b)| {
                ka.cmp(kb).then_with(|| names.get(*a).cmp(names.get(*b)))
            });
        }
        self.names.spans = keyed.into_iter().map(|(_, span)| span).collect();
        self.held.set(self.names.bytes());
        Ok(())
    }

    fn done(&self) -> bool {
        self.next >= self.names.spans.len() && self.stream.as_ref().is_none_or(|s| s.done)
    }

    /// Fills `scratch` with the next entries that still exist (blocking).
    fn fill(&mut self) -> Result<()> {
        self.scratch.clear();
        while self.scratch.is_empty() && !self.done() {
            if self.next >= self.names.spans.len() {
                self.read_stream()?;
            } else {
                self.stat_batch()?;
            }
        }
        Ok(())
    }

    /// Reads the next names of a streamed listing: what `getdents64` returns into the
    /// stream's buffer, taken whole (at least [`STREAM_BATCH`] names unless the folder ends),
    /// so that the folder's position never needs a seek (on ext4 a seek back makes the kernel
    /// rebuild its hashed-order state). Names only go straight to `scratch`; others wait in
    /// `names` for their stat.
    fn read_stream(&mut self) -> Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        self.names.clear();
        self.next = 0;
        let mut raw = rfs::RawDir::new(&stream.reading, &mut stream.buf);
        let mut read = 0;
        while !stream.done {
            let Some(entry) = raw.next() else {
                stream.done = true;
                break;
            };
            if let Some(name) = listable(sys(entry)?.file_name().to_bytes()) {
                if self.stat {
                    let span = self.names.push(name)?;
                    self.names.spans.push(span);
                } else {
                    self.scratch.push(name, NAMES_ONLY);
                }
                read += 1;
            }
            if raw.is_buffer_empty() && read >= STREAM_BATCH {
                break;
            }
        }
        self.held.set(self.names.bytes());
        Ok(())
    }

    /// Stats the next [`BATCH`] names into `scratch`.
    fn stat_batch(&mut self) -> Result<()> {
        let mut link_path = String::new();
        let end = (self.next + BATCH).min(self.names.spans.len());
        for &span in &self.names.spans[self.next..end] {
            let name = self.names.get(span);
            let st = match rfs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return sys(Err(e)),
            };
            let mut meta = meta_of(&st);
            if meta.kind == FileKind::Symlink {
                link_path.clear();
                if !self.rel.is_empty() {
                    link_path.push_str(&self.rel);
                    link_path.push('/');
                }
                link_path.push_str(name);
                if let Ok(target) = self.inner.resolve(&link_path, OFlags::PATH, Mode::empty())
                    && let Ok(tst) = rfs::fstat(&target)
                {
                    meta = meta_of(&tst);
                }
            }
            self.scratch.push(name, meta);
        }
        self.next = end;
        Ok(())
    }
}

impl Lister for DiskLister {
    async fn next_batch(&mut self, batch: &mut EntryBatch) -> Result<bool> {
        let Some(mut state) = self.state.take() else {
            return Err(Error::with_source(
                StorageError::Other,
                std::io::Error::other("an earlier batch of this listing was cancelled"),
            ));
        };
        if state.done() {
            self.state = Some(state);
            return Ok(false);
        }
        // A batch is hundreds of stat calls: on a background thread, off the executor.
        let Some((state, result)) = crate::background::run(move || {
            let r = state.fill();
            (state, r)
        })
        .await
        else {
            return Err(super::background_panicked());
        };
        result?;
        for e in state.scratch.iter() {
            batch.push(e.name, e.meta);
        }
        let any = !state.scratch.is_empty();
        self.state = Some(state);
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let before = listing_memory();
        let mut a = Held::default();
        assert!(a.set(1000));
        assert_eq!(listing_memory(), before + 1000);
        let mut b = Held::default();
        assert!(
            !b.set(SORTED_LISTINGS_BUDGET),
            "two listings past the budget"
        );
        assert!(b.set(10));
        assert!(a.set(10));
        drop((a, b));
        assert_eq!(listing_memory(), before);
    }
}
