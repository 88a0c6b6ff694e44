//! Golden transcripts: the exact commands real clients send (captured from curl, lftp, the
//! classic ftp client and Python's ftplib; Windows ftp.exe, FileZilla and WinSCP from their
//! documented behaviour), replayed against a session whose requests a tiny in-memory runtime
//! answers. Each command's reply codes must match `<name>.expected`; run with
//! `FERRY_BLESS=1` to rewrite those files after a deliberate change, and review the diff.

mod harness;

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::FileKind;
use harness::{H, check_reply};

fn replay(script: &str) -> String {
    let mut h = H::auto();
    let fake = h.fake.as_mut().unwrap();
    // What the clients' tree held when they were captured.
    for f in ["/up.bin", "/up2.bin"] {
        fake.tree.insert(f.into(), (FileKind::File, 3));
    }
    let mut out = String::new();
    let greeting = h.reply();
    writeln!(out, "(connect)\t{}", &greeting[..3]).unwrap();
    for line in script.lines().filter(|l| !l.is_empty()) {
        h.send(line);
        let codes: Vec<String> = h
            .replies
            .drain(..)
            .map(|r| {
                check_reply(&r);
                r[..3].to_string()
            })
            .collect();
        writeln!(out, "{line}\t{}", codes.join(" ")).unwrap();
        assert!(h.events.is_empty(), "{line}: unanswered {:?}", h.events);
    }
    assert!(h.closed, "every transcript ends with QUIT");
    out
}

#[test]
fn transcripts_replay_with_the_expected_replies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let bless = std::env::var_os("FERRY_BLESS").is_some();
    let mut count = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
    {
        let got = replay(&std::fs::read_to_string(&path).unwrap());
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!("{}: {e} (run with FERRY_BLESS=1)", expected_path.display())
        });
        assert_eq!(got, want, "{}", path.display());
        count += 1;
    }
    assert!(count >= 14, "only {count} transcripts");
}
