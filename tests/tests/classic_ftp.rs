//! The classic `ftp` client (inetutils-ftp) fed what a Windows user types, in active mode
//! (issue 4, item 6d), checked on disk; and the dialog of Windows' own ftp.exe (PORT for
//! every transfer, XPWD, XMKD, XRMD, NLST for `ls`, LIST for `dir`) replayed on a raw
//! connection, since ftp.exe itself cannot run here.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use ferry_tests::{Control, Server, random_bytes, run_client, sha256_file, temporaries};

#[test]
fn classic_ftp_in_active_mode() {
    let Some(server) = Server::for_client("ftp") else {
        return;
    };
    let home = server.home("alice");
    let local = server.local_dir_with(
        "local",
        &[
            ("report.bin", &random_bytes(11, 654_321)),
            ("notes.txt", b"first line\nsecond line\n"),
            ("todo.txt", b"- test\n"),
        ],
    );
    let fetched = server.local_dir("fetched");
    let l = local.display();
    let f = fetched.display();
    // What a user types, one command a line; `passive` is never turned on.
    let script = format!(
        "user alice alice-pw
binary
pwd
mkdir winfolder
cd winfolder
pwd
put {l}/report.bin report.bin
ls
dir
get report.bin {f}/report-back.bin
rename report.bin final.bin
ascii
put {l}/notes.txt notes.txt
put {l}/todo.txt todo.txt
binary
lcd {f}
prompt
mget *.txt
delete final.bin
cd ..
mkdir gone
rmdir gone
ls
quit
"
    );
    let mut cmd = Command::new("ftp");
    cmd.args(["-n", "-v", "127.0.0.1", &server.port().to_string()])
        .current_dir(server.root());
    let out = run_client(&mut cmd, Some(script.as_bytes()), 60);
    let transcript = format!("{}\n{}", out.stdout, out.stderr);
    assert!(out.status.success(), "ftp failed:\n{transcript}");
    // Active mode all along: every transfer was announced with PORT (or EPRT).
    assert!(
        transcript.contains("200 PORT command successful"),
        "not in active mode:\n{transcript}"
    );
    assert!(!transcript.contains("227 Entering Passive"), "{transcript}");
    assert!(
        !transcript.contains("229 Entering Extended"),
        "{transcript}"
    );
    for code in ["230 ", "257 ", "250 ", "226 ", "350 ", "221 "] {
        assert!(transcript.contains(code), "no {code}reply:\n{transcript}");
    }
    assert!(!transcript.contains("\n5"), "an error reply:\n{transcript}");
    assert!(!transcript.contains("\n4"), "an error reply:\n{transcript}");
    assert!(transcript.contains("\"/winfolder\""), "{transcript}");
    // On disk.
    let folder = home.join("winfolder");
    assert!(folder.is_dir());
    assert!(!folder.join("report.bin").exists());
    assert!(!folder.join("final.bin").exists());
    assert_eq!(
        std::fs::read(folder.join("notes.txt")).unwrap(),
        b"first line\nsecond line\n"
    );
    assert_eq!(std::fs::read(folder.join("todo.txt")).unwrap(), b"- test\n");
    assert!(!home.join("gone").exists());
    assert_eq!(
        sha256_file(&fetched.join("report-back.bin")),
        sha256_file(&local.join("report.bin"))
    );
    assert_eq!(
        std::fs::read(fetched.join("notes.txt")).unwrap(),
        b"first line\nsecond line\n"
    );
    assert!(fetched.join("todo.txt").exists());
    assert!(temporaries(&home).is_empty());
    server.assert_all_audited(
        "alice",
        &[
            ("mkdir", "/winfolder"),
            ("upload", "/winfolder/report.bin"),
            ("rename", "/winfolder/report.bin"),
            ("upload", "/winfolder/notes.txt"),
            ("delete", "/winfolder/final.bin"),
            ("mkdir", "/gone"),
            ("rmdir", "/gone"),
        ],
    );
}

/// Opens a PORT listener and sends `cmd`; returns the data the transfer moved (for a
/// download) after writing `upload` (for an upload).
fn active(c: &mut Control, cmd: &str, upload: Option<&[u8]>) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    c.expect(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff), 200);
    c.expect(cmd, 150);
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    match upload {
        Some(bytes) => {
            s.write_all(bytes).unwrap();
            drop(s);
        }
        None => {
            s.read_to_end(&mut got).unwrap();
        }
    }
    assert_eq!(c.read_reply().code, 226, "{cmd}");
    got
}

#[test]
fn windows_ftp_exe_dialog() {
    let server = Server::with_alice(&[]);
    let home = server.home("alice");
    let mut c = server.control();
    // ftp.exe: OPTS UTF8 ON, USER, PASS, then what the user types.
    c.expect("OPTS UTF8 ON", 200);
    c.login("alice", "alice-pw");
    c.expect("XPWD", 257);
    c.expect("XMKD docs", 257);
    c.expect("CWD docs", 250);
    assert!(c.expect("XPWD", 257).text().contains("\"/docs\""));
    c.expect("TYPE I", 200);
    let body = random_bytes(12, 300_000);
    active(&mut c, "STOR up.bin", Some(&body));
    c.expect("TYPE A", 200);
    active(&mut c, "STOR readme.txt", Some(b"hello\r\nworld\r\n"));
    let names = active(&mut c, "NLST", None);
    let names = String::from_utf8(names).unwrap();
    assert!(
        names.contains("up.bin\r\n") && names.contains("readme.txt\r\n"),
        "{names:?}"
    );
    let long = String::from_utf8(active(&mut c, "LIST", None)).unwrap();
    assert!(
        long.lines().count() == 2 && long.contains(" up.bin"),
        "{long:?}"
    );
    let pattern = String::from_utf8(active(&mut c, "NLST *.txt", None)).unwrap();
    assert_eq!(pattern.trim(), "readme.txt");
    c.expect("TYPE I", 200);
    assert!(active(&mut c, "RETR up.bin", None) == body);
    c.expect("TYPE A", 200);
    assert_eq!(
        active(&mut c, "RETR readme.txt", None),
        b"hello\r\nworld\r\n"
    );
    c.expect_all(&[
        ("RNFR up.bin", 350),
        ("RNTO final.bin", 250),
        ("DELE final.bin", 250),
        ("DELE readme.txt", 250),
        ("CDUP", 250),
        ("XRMD docs", 250),
        ("QUIT", 221),
    ]);
    assert!(!home.join("docs").exists());
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
    server.assert_all_audited(
        "alice",
        &[
            ("mkdir", "/docs"),
            ("upload", "/docs/up.bin"),
            ("upload", "/docs/readme.txt"),
            ("rename", "/docs/up.bin"),
            ("delete", "/docs/final.bin"),
            ("rmdir", "/docs"),
        ],
    );
}
