//! Model-based property test: random sequences of operations, applied to the memory tree
//! (the model) and to the disk tree, give the same results (the same values, or the same
//! error kinds) and leave the same tree (paths, kinds, contents).
//!
//! Names come from a tiny alphabet (`a`, `b`), up to three levels deep, so that operations often
//! meet what earlier ones made: existing targets, non-empty folders, files where folders are
//! expected, folders renamed beneath themselves.

mod common;

use common::{block_on, cases, kind, list, p, read_at, snapshot};
use ferry_backends::{
    DiskStorage, FileKind, MemoryStorage, Storage, StorageError, UnixTime, Upload, WriteMode,
};
use futures_lite::io::AsyncWriteExt;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum End {
    Commit,
    Abort,
    Drop,
}

#[derive(Debug, Clone)]
enum Op {
    MakeDir(String),
    RemoveDir(String),
    RemoveFile(String),
    Rename(String, String),
    Copy(String, String),
    Write(String, WriteMode, Vec<u8>, End),
    Read(String, u64),
    Stat(String),
    List(String),
    SetMode(String, u32),
    SetModified(String, i64),
}

/// What an operation gave, in a form both trees can agree on: folder sizes and permission
/// bits of new files (which depend on the umask) are left out.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    Unit,
    Bytes(u64),
    Data(Vec<u8>),
    Meta(FileKind, Option<u64>),
    Listing(Vec<(String, FileKind, Option<u64>)>),
}

fn comparable(kind: FileKind, size: u64) -> (FileKind, Option<u64>) {
    (kind, (kind == FileKind::File).then_some(size))
}

fn path() -> impl Strategy<Value = String> {
    let seg = || prop::sample::select(vec!["a", "b"]);
    prop_oneof![
        1 => Just(String::from("/")),
        5 => seg().prop_map(|a| format!("/{a}")),
        5 => (seg(), seg()).prop_map(|(a, b)| format!("/{a}/{b}")),
        3 => (seg(), seg(), seg()).prop_map(|(a, b, c)| format!("/{a}/{b}/{c}")),
    ]
}

fn mode() -> impl Strategy<Value = WriteMode> {
    prop_oneof![
        3 => Just(WriteMode::Replace),
        1 => Just(WriteMode::CreateNew),
        1 => Just(WriteMode::Append),
        1 => (0u64..8).prop_map(WriteMode::At),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![6 => Just(End::Commit), 1 => Just(End::Abort), 1 => Just(End::Drop)]
}

fn op() -> impl Strategy<Value = Op> {
    let data = prop::collection::vec(any::<u8>(), 0..12);
    prop_oneof![
        5 => path().prop_map(Op::MakeDir),
        1 => path().prop_map(Op::RemoveDir),
        1 => path().prop_map(Op::RemoveFile),
        2 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Copy(a, b)),
        5 => (path(), mode(), data, end()).prop_map(|(a, m, d, e)| Op::Write(a, m, d, e)),
        1 => (path(), 0u64..6).prop_map(|(a, o)| Op::Read(a, o)),
        1 => path().prop_map(Op::Stat),
        1 => path().prop_map(Op::List),
        // Owner keeps rwx on folders, so that a test run by a normal user can still walk
        // them; the last two are refused.
        1 => (path(), prop::sample::select(vec![0o700u32, 0o755, 0o750, 0o4755, 0o10000]))
            .prop_map(|(a, m)| Op::SetMode(a, m)),
        1 => (path(), -1000i64..2_000_000_000).prop_map(|(a, t)| Op::SetModified(a, t)),
    ]
}

async fn apply<S: Storage>(s: &S, op: &Op) -> Result<Value, StorageError> {
    match op {
        Op::MakeDir(a) => kind(s.make_dir(&p(a)).await).map(|()| Value::Unit),
        Op::RemoveDir(a) => kind(s.remove_dir(&p(a)).await).map(|()| Value::Unit),
        Op::RemoveFile(a) => kind(s.remove_file(&p(a)).await).map(|()| Value::Unit),
        Op::Rename(a, b) => kind(s.rename(&p(a), &p(b)).await).map(|()| Value::Unit),
        Op::Copy(a, b) => kind(s.copy(&p(a), &p(b)).await).map(Value::Bytes),
        Op::Write(a, mode, data, end) => {
            let mut up = kind(s.open_write(&p(a), *mode).await)?;
            up.write_all(data).await.unwrap();
            up.flush().await.unwrap();
            match end {
                End::Commit => kind(up.commit().await).map(Value::Bytes),
                End::Abort => {
                    up.abort().await;
                    Ok(Value::Unit)
                }
                End::Drop => {
                    drop(up);
                    Ok(Value::Unit)
                }
            }
        }
        Op::Read(a, offset) => read_at(s, a, *offset).await.map(Value::Data),
        Op::Stat(a) => {
            let m = kind(s.metadata(&p(a)).await)?;
            let (k, size) = comparable(m.kind, m.size);
            Ok(Value::Meta(k, size))
        }
        Op::List(a) => list(s, a).await.map(|entries| {
            Value::Listing(
                entries
                    .into_iter()
                    .map(|(n, m)| {
                        let (k, size) = comparable(m.kind, m.size);
                        (n, k, size)
                    })
                    .collect(),
            )
        }),
        Op::SetMode(a, m) => kind(s.set_mode(&p(a), *m).await).map(|()| Value::Unit),
        Op::SetModified(a, t) => {
            kind(s.set_modified(&p(a), UnixTime(*t)).await).map(|()| Value::Unit)
        }
    }
}

fn check(ops: &[Op], walking: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStorage::new(dir.path()).unwrap();
    let disk = if walking {
        disk.resolve_by_walking()
    } else {
        disk
    };
    let memory = MemoryStorage::new();
    block_on(async {
        for (i, op) in ops.iter().enumerate() {
            let want = apply(&memory, op).await;
            let got = apply(&disk, op).await;
            prop_assert_eq!(&got, &want, "step {}: {:?}", i, op);
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!("{op:?} -> {want:?}");
            }
        }
        prop_assert_eq!(snapshot(&disk).await, snapshot(&memory).await);
        Ok(())
    })
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn disk_behaves_like_memory(ops in prop::collection::vec(op(), 1..60)) {
        check(&ops, false)?;
    }
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn walking_disk_behaves_like_memory(ops in prop::collection::vec(op(), 1..60)) {
        check(&ops, true)?;
    }
}
