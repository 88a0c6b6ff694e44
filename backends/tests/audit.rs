//! Round trips of the audit log: every change gives one JSON line with the right fields,
//! reads give none, and a log that cannot be written makes changes fail instead of going
//! unrecorded (uploads aborted with the old file intact; other changes refused until the
//! pending lines are written).

mod common;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{block_on, kind, list, p, put, read, write};
use ferry_backends::audit::{Op, Outcome, Record};
use ferry_backends::{
    AuditLog, Audited, DiskStorage, MemoryStorage, Storage, StorageError as E, UnixTime, Upload,
    WriteMode as W,
};
use futures_lite::io::AsyncWriteExt;
use serde_json::Value;

/// A writer the tests control: it can fail, accept only a few bytes per call, and counts
/// its calls.
#[derive(Clone, Default)]
struct Sink {
    out: Arc<Mutex<Vec<u8>>>,
    fail: Arc<AtomicBool>,
    /// Accept at most this many bytes per call (0: all).
    chunk: Arc<AtomicUsize>,
    /// Fail after accepting this many more bytes (0: never).
    fail_after: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        let mut n = buf.len();
        let chunk = self.chunk.load(Ordering::SeqCst);
        if chunk > 0 {
            n = n.min(chunk);
        }
        let after = self.fail_after.load(Ordering::SeqCst);
        if after > 0 {
            n = n.min(after);
            if after == n {
                self.fail.store(true, Ordering::SeqCst);
            }
            self.fail_after.store(after - n, Ordering::SeqCst);
        }
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn set_failing(&self, on: bool) {
        self.fail.store(on, Ordering::SeqCst);
    }

    fn lines(&self) -> Vec<Value> {
        let out = self.out.lock().unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a torn line: {text:?}"
        );
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

fn client() -> SocketAddr {
    "127.0.0.1:5555".parse().unwrap()
}

fn audited<S: Storage>(inner: S, sink: &Sink) -> Audited<S> {
    let log = Arc::new(AuditLog::from_writer(sink.clone()));
    Audited::new(inner, log, "alice", client())
}

/// (op, path, to, bytes, result) of a line.
type Row = (String, String, Option<String>, Option<u64>, String);

/// Runs `script` on an audited memory tree that logs to a fresh [`Sink`]; returns the sink
/// and the fields of the lines it got.
fn on_memory(script: impl AsyncFnOnce(&Audited<MemoryStorage>, &Sink)) -> (Sink, Vec<Row>) {
    let sink = Sink::default();
    let s = audited(MemoryStorage::new(), &sink);
    block_on(script(&s, &sink));
    let got = sink.lines().iter().map(fields).collect();
    (sink, got)
}

/// The fields of a line, after checking the fixed ones.
fn fields(v: &Value) -> Row {
    assert_eq!(v["user"], "alice");
    assert_eq!(v["client"], "127.0.0.1:5555");
    let time = v["time"].as_str().unwrap();
    assert_eq!(time.len(), 20, "{time}");
    assert_eq!(
        (&time[4..5], &time[10..11], &time[19..]),
        ("-", "T", "Z"),
        "{time}"
    );
    assert!(time.starts_with("20"), "{time}");
    (
        v["op"].as_str().unwrap().to_owned(),
        v["path"].as_str().unwrap().to_owned(),
        v["to"].as_str().map(str::to_owned),
        v["bytes"].as_u64(),
        v["result"].as_str().unwrap().to_owned(),
    )
}

fn row(op: &str, path: &str, to: Option<&str>, bytes: Option<u64>, result: &str) -> Row {
    (
        op.into(),
        path.into(),
        to.map(Into::into),
        bytes,
        result.into(),
    )
}

/// Making the folder `path` is refused while the log is down, and works once it is back.
async fn refused_until_the_log_is_back(s: &Audited<MemoryStorage>, sink: &Sink, path: &str) {
    assert_eq!(kind(s.make_dir(&p(path)).await), Err(E::Other));
    sink.set_failing(false);
    s.make_dir(&p(path)).await.unwrap();
}

#[test]
fn every_change_gives_one_line() {
    let (sink, got) = on_memory(async |s, _| {
        s.make_dir(&p("/d")).await.unwrap();
        assert_eq!(write(s, "/d/f", W::Replace, b"hello").await, Ok(5));
        assert_eq!(write(s, "/d/n", W::CreateNew, b"new").await, Ok(3));
        assert_eq!(
            write(s, "/d/n", W::CreateNew, b"again").await,
            Err(E::AlreadyExists)
        );
        assert_eq!(write(s, "/d/f", W::Append, b"+++").await, Ok(3));
        assert_eq!(write(s, "/d/f", W::At(2), b"LL").await, Ok(2));
        assert_eq!(s.copy(&p("/d/f"), &p("/d/g")).await.unwrap(), 4);
        s.rename(&p("/d/g"), &p("/d/h")).await.unwrap();
        s.set_modified(&p("/d/h"), UnixTime(1_000_000))
            .await
            .unwrap();
        s.set_mode(&p("/d/h"), 0o600).await.unwrap();
        assert_eq!(kind(s.remove_dir(&p("/d")).await), Err(E::NotEmpty));
        s.remove_file(&p("/d/h")).await.unwrap();
        assert_eq!(
            write(s, "/nowhere/x", W::Replace, b"x").await,
            Err(E::NotFound)
        );
        let mut up = s.open_write(&p("/d/f"), W::Replace).await.unwrap();
        up.write_all(b"abandoned").await.unwrap();
        up.abort().await;
        let mut up = s.open_write(&p("/d/f"), W::Replace).await.unwrap();
        up.write_all(b"dropped").await.unwrap();
        drop(up);
        // Reads are not recorded.
        s.metadata(&p("/d/f")).await.unwrap();
        list(s, "/d").await.unwrap();
        assert_eq!(read(s, "/d/f").await.unwrap(), b"heLL");
        assert_eq!(
            kind(s.metadata(&p("/missing")).await).err(),
            Some(E::NotFound)
        );
    });
    let want = vec![
        row("mkdir", "/d", None, None, "ok"),
        row("upload", "/d/f", None, Some(5), "ok"),
        row("upload", "/d/n", None, Some(3), "ok"),
        row("upload", "/d/n", None, None, "already_exists"),
        row("append", "/d/f", None, Some(3), "ok"),
        row("append", "/d/f", None, Some(2), "ok"),
        row("copy", "/d/f", Some("/d/g"), Some(4), "ok"),
        row("rename", "/d/g", Some("/d/h"), None, "ok"),
        row("mtime", "/d/h", None, None, "ok"),
        row("chmod", "/d/h", None, None, "ok"),
        row("rmdir", "/d", None, None, "not_empty"),
        row("delete", "/d/h", None, None, "ok"),
        row("upload", "/nowhere/x", None, None, "not_found"),
        row("upload", "/d/f", None, Some(9), "aborted"),
        row("upload", "/d/f", None, Some(7), "aborted"),
    ];
    assert_eq!(got, want);
    // Keys in the documented order; one write call per line.
    let out = String::from_utf8(sink.out.lock().unwrap().clone()).unwrap();
    assert!(out.lines().all(|l| l.starts_with("{\"time\":\"")
        && l.contains("\",\"user\":\"alice\",\"client\":\"127.0.0.1:5555\",\"op\":\"")));
    assert_eq!(sink.calls.load(Ordering::SeqCst), want.len());
}

#[test]
fn an_upload_that_cannot_be_recorded_is_not_committed() {
    let (_, got) = on_memory(async |s, sink| {
        put(s, "/f", b"old").await;
        let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
        up.write_all(b"new data").await.unwrap();
        sink.set_failing(true);
        assert_eq!(kind(up.commit().await), Err(E::Other));
        sink.set_failing(false);
        // The old file is intact; the line for the refused upload was never written, and
        // is not kept: nothing happened that it could record.
        assert_eq!(read(s, "/f").await.unwrap(), b"old");
        assert_eq!(s.log().pending(), 0);
        s.make_dir(&p("/d")).await.unwrap();

        // The log fails in the middle of an upload's line: the line is completed later and
        // followed by one that records the failure.
        let mut up = s.open_write(&p("/f"), W::Replace).await.unwrap();
        up.write_all(b"newer").await.unwrap();
        sink.fail_after.store(20, Ordering::SeqCst);
        assert_eq!(kind(up.commit().await), Err(E::Other));
        assert_eq!(read(s, "/f").await.unwrap(), b"old");
        assert_eq!(s.log().pending(), 2);
        refused_until_the_log_is_back(s, sink, "/e").await;
    });
    assert_eq!(
        got,
        vec![
            row("upload", "/f", None, Some(3), "ok"),
            row("mkdir", "/d", None, None, "ok"),
            row("upload", "/f", None, Some(5), "ok"),
            row("upload", "/f", None, Some(5), "other"),
            row("mkdir", "/e", None, None, "ok"),
        ]
    );
}

#[test]
fn a_broken_log_fails_closed_and_catches_up() {
    let (_, got) = on_memory(async |s, sink| {
        put(s, "/f", b"keep").await;
        sink.set_failing(true);
        // The change happens, its line cannot be written: the call fails, the line waits.
        assert_eq!(kind(s.make_dir(&p("/d")).await), Err(E::Other));
        assert!(s.inner().metadata(&p("/d")).await.is_ok());
        assert_eq!(s.log().pending(), 1);
        // Every further change is refused before it touches storage.
        assert_eq!(kind(s.remove_file(&p("/f")).await), Err(E::Other));
        assert_eq!(kind(s.rename(&p("/f"), &p("/g")).await), Err(E::Other));
        assert_eq!(kind(s.copy(&p("/f"), &p("/g")).await), Err(E::Other));
        assert_eq!(
            kind(s.open_write(&p("/f"), W::Replace).await).err(),
            Some(E::Other)
        );
        assert_eq!(
            kind(s.open_write(&p("/f"), W::Append).await).err(),
            Some(E::Other)
        );
        assert_eq!(kind(s.set_mode(&p("/f"), 0o600).await), Err(E::Other));
        assert_eq!(read(s, "/f").await.unwrap(), b"keep");
        assert_eq!(
            kind(s.inner().metadata(&p("/g")).await).err(),
            Some(E::NotFound)
        );
        // Reads still work.
        assert_eq!(list(s, "/").await.unwrap().len(), 2);
        assert_eq!(s.log().pending(), 1);
        // The log comes back: the pending line is written first, then the new one.
        sink.set_failing(false);
        s.remove_file(&p("/f")).await.unwrap();
        assert_eq!(s.log().pending(), 0);
    });
    assert_eq!(
        got,
        vec![
            row("upload", "/f", None, Some(4), "ok"),
            row("mkdir", "/d", None, None, "ok"),
            row("delete", "/f", None, None, "ok"),
        ]
    );
}

#[test]
fn an_append_that_cannot_be_recorded_reports_an_error() {
    let (_, got) = on_memory(async |s, sink| {
        let mut up = s.open_write(&p("/log"), W::Append).await.unwrap();
        up.write_all(b"data").await.unwrap();
        sink.set_failing(true);
        assert_eq!(kind(up.commit().await), Err(E::Other));
        // Written through: the data is there, and its line is pending.
        assert_eq!(read(s, "/log").await.unwrap(), b"data");
        refused_until_the_log_is_back(s, sink, "/d").await;
    });
    assert_eq!(
        got,
        vec![
            row("append", "/log", None, Some(4), "ok"),
            row("mkdir", "/d", None, None, "ok"),
        ]
    );
}

#[test]
fn lines_cut_short_are_completed_not_repeated() {
    let (_, got) = on_memory(async |s, sink| {
        // Small writes: a line takes several calls but stays whole.
        sink.chunk.store(7, Ordering::SeqCst);
        s.make_dir(&p("/a")).await.unwrap();
        sink.chunk.store(0, Ordering::SeqCst);
        // The log fails 30 bytes into a line.
        sink.fail_after.store(30, Ordering::SeqCst);
        assert_eq!(kind(s.make_dir(&p("/b")).await), Err(E::Other));
        refused_until_the_log_is_back(s, sink, "/c").await;
    });
    assert_eq!(
        got,
        vec![
            row("mkdir", "/a", None, None, "ok"),
            row("mkdir", "/b", None, None, "ok"),
            row("mkdir", "/c", None, None, "ok"),
        ]
    );
}

#[test]
fn a_file_log_on_disk_storage() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let path = dir.path().join("audit.log");
    let log = Arc::new(AuditLog::open(&path).unwrap());
    let s = Audited::new(
        DiskStorage::new(&tree).unwrap(),
        Arc::clone(&log),
        "bob \"the\" builder",
        "[::1]:2121".parse().unwrap(),
    );
    block_on(async {
        let mut up = s.open_write(&p("/written"), W::Replace).await.unwrap();
        up.write_all(b"0123456789").await.unwrap();
        assert_eq!(up.commit().await.unwrap(), 10);
        s.make_dir(&p("/ünïcödé \"quoted\" dir")).await.unwrap();
    });
    // Many threads appending at once: every line whole.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let path = format!("/t{t}/{i}");
                    log.append(&Record {
                        time: UnixTime(0),
                        user: "u",
                        client: client(),
                        op: Op::Delete,
                        path: &path,
                        to: None,
                        bytes: None,
                        outcome: Outcome::Failed(E::NoSpace),
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 402);
    assert_eq!(lines[0]["user"], "bob \"the\" builder");
    assert_eq!(lines[0]["client"], "[::1]:2121");
    assert_eq!(lines[0]["bytes"], 10);
    assert_eq!(lines[1]["path"], "/ünïcödé \"quoted\" dir");
    assert_eq!(lines[1]["bytes"], Value::Null);
    assert_eq!(lines[1]["to"], Value::Null);
    assert_eq!(lines[2]["time"], "1970-01-01T00:00:00Z");
    assert_eq!(lines[2]["result"], "no_space");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
