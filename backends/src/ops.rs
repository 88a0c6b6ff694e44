//! What every driver of the core does with a tree, written once: carry out a [`StorageOp`]
//! ([`perform`]) and write a listing ([`open_listing`], then [`Listing::write_piece`]).
//!
//! The smol runtime and the blocking example both call these, so that the answer to an
//! operation and the bytes of a listing are decided in one place. Nothing here touches a
//! socket or speaks FTP: a listing writes its lines (formatted by the core's
//! [`ListRequest`]) into the caller's buffer, a bounded piece at a time, and the caller sends
//! each piece wherever it goes (a data connection, or the control connection for `STAT`).

use ferry_core::{ListFormat, ListRequest, Metadata, StorageOp, StorageReply, UnixTime};

use crate::{EntryBatch, Lister, Result, Storage, StorageError};

/// Carries out `op` on `storage` and says what the core needs to know.
///
/// `SetModified` (`MFMT`) reads the metadata back after setting the time and answers
/// [`StorageReply::Metadata`]: a file system may keep another time than the one asked for
/// (a coarser resolution, a clamped range), and the core's reply then shows the time kept.
/// Should the read-back fail, the time was still set: the answer is then
/// [`StorageReply::Done`] (the core shows the time asked for).
///
/// # Errors
/// The storage call's error; its [`kind`](crate::Error::kind) is what the core turns into a
/// reply.
pub async fn perform<S: Storage>(storage: &S, op: &StorageOp) -> Result<StorageReply> {
    let done = |r: Result<()>| r.map(|()| StorageReply::Done);
    match op {
        StorageOp::Metadata(p) => storage.metadata(p).await.map(StorageReply::Metadata),
        StorageOp::MakeDir(p) => done(storage.make_dir(p).await),
        StorageOp::RemoveDir(p) => done(storage.remove_dir(p).await),
        StorageOp::RemoveFile(p) => done(storage.remove_file(p).await),
        StorageOp::Rename { from, to } => done(storage.rename(from, to).await),
        StorageOp::Copy { from, to } => storage.copy(from, to).await.map(|_| StorageReply::Done),
        StorageOp::SetModified { path, time } => {
            storage.set_modified(path, *time).await?;
            Ok(storage
                .metadata(path)
                .await
                .map_or(StorageReply::Done, StorageReply::Metadata))
        }
        StorageOp::SetMode { path, mode } => done(storage.set_mode(path, *mode).await),
    }
}

/// A listing being written: the entries of a folder, or the line of one file.
///
/// Made by [`open_listing`]; [`Listing::write_piece`] then writes it in pieces, so that no
/// driver holds a whole listing in memory.
pub struct Listing<L> {
    request: ListRequest,
    /// The time `ls -l` lines are dated against (recent files show the time, older ones the
    /// year): one value for the whole listing.
    now: UnixTime,
    source: Source<L>,
}

/// Where a listing's lines come from.
enum Source<L> {
    /// A folder: its lister, the batch being written, and the index of the next entry in it.
    Folder {
        lister: L,
        batch: EntryBatch,
        next: usize,
    },
    /// A file listed alone (`LIST file`, `STAT file`), not yet written.
    File(Metadata),
    /// Everything is written.
    Done,
}

/// Opens the listing `request` asks for, dated against `now`: a folder's entries (names only
/// for `NLST`, so that a tree may skip a stat per entry), or the single line of a file.
///
/// # Errors
/// The path's metadata or the folder's lister failed; `NotADirectory` for `MLSD` of a file
/// (RFC 3659: MLSD names a folder).
pub async fn open_listing<S: Storage>(
    storage: &S,
    request: &ListRequest,
    now: UnixTime,
) -> Result<Listing<S::Lister>> {
    let meta = storage.metadata(&request.path).await?;
    let source = if meta.is_dir() {
        let lister = if request.format == ListFormat::Names {
            storage.list_names(&request.path).await?
        } else {
            storage.list(&request.path).await?
        };
        Source::Folder {
            lister,
            batch: EntryBatch::new(),
            next: 0,
        }
    } else if matches!(request.format, ListFormat::Machine(_)) {
        return Err(StorageError::NotADirectory.into());
    } else {
        Source::File(meta)
    };
    Ok(Listing {
        request: request.clone(),
        now,
        source,
    })
}

impl<L: Lister> Listing<L> {
    /// Appends the listing's next lines to `out` until `out` holds at least `piece` bytes or
    /// the listing is complete. Lines are never split, so `out` may pass `piece` by up to one
    /// line. Returns whether more may follow: `false` once the listing is complete (the call
    /// may then have appended its last lines, or nothing).
    ///
    /// # Errors
    /// The folder's lister failed; what was appended to `out` by this call is then
    /// incomplete.
    pub async fn write_piece(&mut self, out: &mut String, piece: usize) -> Result<bool> {
        loop {
            match &mut self.source {
                Source::File(meta) => {
                    // Writing into a String cannot fail.
                    let _ = self.request.write_file(out, *meta, self.now);
                    self.source = Source::Done;
                }
                Source::Folder {
                    lister,
                    batch,
                    next,
                } => {
                    while let Some(entry) = batch.get(*next) {
                        *next += 1;
                        let _ = self.request.write_entry(out, &entry, self.now);
                        if out.len() >= piece {
                            return Ok(true);
                        }
                    }
                    batch.clear();
                    *next = 0;
                    if !lister.next_batch(batch).await? {
                        self.source = Source::Done;
                    }
                }
                Source::Done => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ferry_core::{Facts, VirtualPath, WriteMode};
    use futures_lite::AsyncWriteExt as _;
    use futures_lite::future::block_on;

    use super::*;
    use crate::{MemoryStorage, Upload as _};

    fn path(p: &str) -> VirtualPath {
        VirtualPath::parse(p).unwrap()
    }

    fn put(tree: &MemoryStorage, p: &str, content: &[u8]) {
        block_on(async {
            let mut up = tree.open_write(&path(p), WriteMode::Replace).await.unwrap();
            up.write_all(content).await.unwrap();
            up.commit().await.unwrap();
        });
    }

    fn request(p: &str, format: ListFormat) -> ListRequest {
        ListRequest {
            path: path(p),
            format,
            pattern: None,
            typed: None,
            writable: true,
        }
    }

    /// The whole listing, written in pieces of `piece` bytes; also the longest piece.
    fn listing(tree: &MemoryStorage, req: &ListRequest, piece: usize) -> Result<(String, usize)> {
        block_on(async {
            let mut listing = open_listing(tree, req, UnixTime(1_700_000_000)).await?;
            let (mut all, mut out, mut longest) = (String::new(), String::new(), 0);
            loop {
                let more = listing.write_piece(&mut out, piece).await?;
                longest = longest.max(out.len());
                all.push_str(&out);
                out.clear();
                if !more {
                    return Ok((all, longest));
                }
            }
        })
    }

    #[test]
    fn set_modified_answers_the_time_read_back() {
        let tree = MemoryStorage::new();
        put(&tree, "/a", b"x");
        let time = UnixTime(1_000_000_000);
        let op = StorageOp::SetModified {
            path: path("/a"),
            time,
        };
        match block_on(perform(&tree, &op)).unwrap() {
            StorageReply::Metadata(m) => assert_eq!(m.modified, Some(time)),
            StorageReply::Done => panic!("MFMT must answer the time kept"),
        }
    }

    /// A tree that keeps modification times in even seconds only (as FAT does).
    struct EvenSeconds(MemoryStorage);

    impl Storage for EvenSeconds {
        type Reader = <MemoryStorage as Storage>::Reader;
        type Upload = <MemoryStorage as Storage>::Upload;
        type Lister = <MemoryStorage as Storage>::Lister;

        async fn metadata(&self, p: &VirtualPath) -> Result<Metadata> {
            self.0.metadata(p).await
        }
        async fn list(&self, p: &VirtualPath) -> Result<Self::Lister> {
            self.0.list(p).await
        }
        async fn open_read(&self, p: &VirtualPath, at: u64) -> Result<(Self::Reader, Metadata)> {
            self.0.open_read(p, at).await
        }
        async fn open_write(&self, p: &VirtualPath, mode: WriteMode) -> Result<Self::Upload> {
            self.0.open_write(p, mode).await
        }
        async fn make_dir(&self, p: &VirtualPath) -> Result<()> {
            self.0.make_dir(p).await
        }
        async fn remove_dir(&self, p: &VirtualPath) -> Result<()> {
            self.0.remove_dir(p).await
        }
        async fn remove_file(&self, p: &VirtualPath) -> Result<()> {
            self.0.remove_file(p).await
        }
        async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
            self.0.rename(from, to).await
        }
        async fn copy(&self, from: &VirtualPath, to: &VirtualPath) -> Result<u64> {
            self.0.copy(from, to).await
        }
        async fn set_modified(&self, p: &VirtualPath, time: UnixTime) -> Result<()> {
            self.0.set_modified(p, UnixTime(time.0 & !1)).await
        }
        async fn set_mode(&self, p: &VirtualPath, mode: u32) -> Result<()> {
            self.0.set_mode(p, mode).await
        }
    }

    #[test]
    fn set_modified_answers_the_time_the_tree_kept() {
        let tree = EvenSeconds(MemoryStorage::new());
        put(&tree.0, "/a", b"x");
        let op = StorageOp::SetModified {
            path: path("/a"),
            time: UnixTime(1_000_000_001),
        };
        let reply = block_on(perform(&tree, &op)).unwrap();
        let StorageReply::Metadata(m) = reply else {
            panic!("MFMT must answer the time kept, not {reply:?}");
        };
        assert_eq!(m.modified, Some(UnixTime(1_000_000_000)));
    }

    #[test]
    fn set_modified_of_a_missing_file_is_an_error() {
        let tree = MemoryStorage::new();
        let op = StorageOp::SetModified {
            path: path("/missing"),
            time: UnixTime(0),
        };
        let e = block_on(perform(&tree, &op)).unwrap_err();
        assert_eq!(e.kind(), StorageError::NotFound);
    }

    #[test]
    fn copy_makes_a_second_file() {
        let tree = MemoryStorage::new();
        put(&tree, "/a", b"hello");
        let op = StorageOp::Copy {
            from: path("/a"),
            to: path("/b"),
        };
        assert_eq!(block_on(perform(&tree, &op)).unwrap(), StorageReply::Done);
        let meta = block_on(tree.metadata(&path("/b"))).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.size, 5);
    }

    #[test]
    fn metadata_answers_metadata() {
        let tree = MemoryStorage::new();
        put(&tree, "/a", b"abc");
        let op = StorageOp::Metadata(path("/a"));
        match block_on(perform(&tree, &op)).unwrap() {
            StorageReply::Metadata(m) => assert_eq!(m.size, 3),
            StorageReply::Done => panic!("metadata expected"),
        }
    }

    #[test]
    fn errors_keep_their_kind() {
        let tree = MemoryStorage::new();
        block_on(tree.make_dir(&path("/d"))).unwrap();
        put(&tree, "/d/f", b"");
        let cases = [
            (StorageOp::Metadata(path("/nope")), StorageError::NotFound),
            (StorageOp::RemoveDir(path("/d")), StorageError::NotEmpty),
            (StorageOp::MakeDir(path("/d")), StorageError::AlreadyExists),
            (StorageOp::RemoveFile(path("/d")), StorageError::NotAFile),
            (
                StorageOp::Rename {
                    from: path("/nope"),
                    to: path("/x"),
                },
                StorageError::NotFound,
            ),
            (
                StorageOp::SetMode {
                    path: path("/d/f"),
                    mode: 0o4755,
                },
                StorageError::PermissionDenied,
            ),
            (
                StorageOp::MakeDir(path("/.ferry-tmp.x")),
                StorageError::BadName,
            ),
        ];
        for (op, kind) in cases {
            let e = block_on(perform(&tree, &op)).unwrap_err();
            assert_eq!(e.kind(), kind, "{op:?}");
        }
    }

    #[test]
    fn a_listing_in_small_pieces_is_the_listing_in_one() {
        let tree = MemoryStorage::new();
        for i in 0..300 {
            put(&tree, &format!("/f{i:03}"), b"x");
        }
        let req = request("/", ListFormat::Long);
        let (whole, _) = listing(&tree, &req, usize::MAX).unwrap();
        let (pieces, longest) = listing(&tree, &req, 1000).unwrap();
        assert_eq!(whole.lines().count(), 300);
        assert_eq!(whole, pieces);
        let line = whole.lines().map(str::len).max().unwrap() + 2;
        assert!(longest < 1000 + line, "a piece of {longest} bytes");
    }

    #[test]
    fn names_list_names_only() {
        let tree = MemoryStorage::new();
        put(&tree, "/b", b"");
        put(&tree, "/a", b"");
        let (text, _) = listing(&tree, &request("/", ListFormat::Names), 64).unwrap();
        assert_eq!(text, "a\r\nb\r\n");
    }

    #[test]
    fn a_file_is_listed_alone_but_not_by_mlsd() {
        let tree = MemoryStorage::new();
        block_on(tree.make_dir(&path("/d"))).unwrap();
        put(&tree, "/d/f", b"abc");
        let (text, _) = listing(&tree, &request("/d/f", ListFormat::Long), 64).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with(" f\r\n"), "{text:?}");
        let mlsd = request("/d/f", ListFormat::Machine(Facts::default()));
        let e = listing(&tree, &mlsd, 64).unwrap_err();
        assert_eq!(e.kind(), StorageError::NotADirectory);
    }

    #[test]
    fn listing_a_missing_folder_is_not_found() {
        let tree = MemoryStorage::new();
        let e = listing(&tree, &request("/nope", ListFormat::Long), 64).unwrap_err();
        assert_eq!(e.kind(), StorageError::NotFound);
    }
}
