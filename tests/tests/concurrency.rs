//! 100 clients at once uploading and downloading distinct files, all verified by SHA-256
//! (issue 4, item 6f).

use std::io::Cursor;
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

use ferry_tests::suppaftp::FtpStream;
use ferry_tests::suppaftp::types::FileType;
use ferry_tests::{Mode, Server, random_bytes, sha256_file, sha256_hex, temporaries};

const CLIENTS: usize = 100;

fn content(i: usize) -> Vec<u8> {
    random_bytes(1000 + i as u64, 40_000 + i * 3_001)
}

/// A client logged in as alice in `mode`, binary transfers set.
fn binary_client(server: &Server, mode: Mode) -> Result<FtpStream, String> {
    let mut ftp = server.ftp("alice", mode);
    ftp.transfer_type(FileType::Binary)
        .map_err(|e| e.to_string())?;
    Ok(ftp)
}

/// Downloads `name`; an error names `who` and what failed.
fn fetch(ftp: &mut FtpStream, who: &str, name: &str) -> Result<Vec<u8>, String> {
    ftp.retr_as_buffer(name)
        .map(Cursor::into_inner)
        .map_err(|e| format!("{who}: RETR {name}: {e}"))
}

/// Waits for every client; returns what went wrong with those that failed.
fn failures(clients: Vec<JoinHandle<Result<(), String>>>) -> Vec<String> {
    clients
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| match w.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("client {i} panicked")),
        })
        .collect()
}

#[test]
fn hundred_clients_at_once() {
    let server = Arc::new(Server::with_alice(&["--max-connections-per-ip", "200"]));
    let expected: Arc<Vec<String>> =
        Arc::new((0..CLIENTS).map(|i| sha256_hex(&content(i))).collect());
    let start = Arc::new(Barrier::new(CLIENTS));
    let uploaded = Arc::new(Barrier::new(CLIENTS));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let server = server.clone();
            let expected = expected.clone();
            let start = start.clone();
            let uploaded = uploaded.clone();
            thread::spawn(move || -> Result<(), String> {
                let mode = [Mode::Passive, Mode::ExtendedPassive, Mode::Active][i % 3];
                start.wait();
                let mut ftp = server.ftp("alice", mode);
                let result = (|| {
                    ftp.transfer_type(FileType::Binary)
                        .map_err(|e| e.to_string())?;
                    let mine = content(i);
                    let name = format!("client-{i:03}.bin");
                    ftp.put_file(&name, &mut Cursor::new(&mine))
                        .map_err(|e| format!("STOR {name}: {e}"))?;
                    let back = fetch(&mut ftp, &format!("client {i}"), &name)?;
                    if sha256_hex(&back) != expected[i] {
                        return Err(format!("{name}: downloaded bytes differ"));
                    }
                    Ok(())
                })();
                // Everyone waits for everyone's upload, even after a failure.
                uploaded.wait();
                result?;
                // Then each downloads its neighbour's file.
                let j = (i + 1) % CLIENTS;
                let other = format!("client-{j:03}.bin");
                let got = fetch(&mut ftp, &format!("client {i}"), &other)?;
                if sha256_hex(&got) != expected[j] {
                    return Err(format!("client {i}: {other} differs"));
                }
                ftp.quit().map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .collect();
    let errors = failures(workers);
    assert!(
        errors.is_empty(),
        "{} clients failed:\n{}",
        errors.len(),
        errors.join("\n")
    );
    // On disk, every file is whole.
    let home = server.home("alice");
    for (i, sum) in expected.iter().enumerate() {
        assert_eq!(&sha256_file(&home.join(format!("client-{i:03}.bin"))), sum);
    }
    assert!(temporaries(&home).is_empty());
    // And audited, each once.
    let audit = server.audit();
    for i in 0..CLIENTS {
        let path = format!("/client-{i:03}.bin");
        let records: Vec<_> = audit.iter().filter(|r| r.path == path).collect();
        assert_eq!(records.len(), 1, "{path}: {records:?}");
        assert_eq!(records[0].op, "upload");
        assert_eq!(records[0].result, "ok");
        assert_eq!(records[0].bytes, Some(content(i).len() as u64));
    }
}

/// Uploads replace a file atomically: ten clients upload different contents to one name at
/// once while others download it in a loop; every download, and the file at the end, is
/// exactly one of the uploads (or the original), never a mix; listings never show the
/// temporaries. With two executor threads, so that the sessions really run at once (and the
/// round-robin hand-over to worker threads is exercised: the default on two cores is one).
#[test]
fn concurrent_replacements_are_atomic() {
    const WRITERS: usize = 10;
    const READERS: usize = 4;
    let server = Arc::new(Server::with_alice(&["--threads", "2"]));
    let home = server.home("alice");
    let version = |i: usize| random_bytes(500 + i as u64, 1_000_000 + i * 7);
    server.put("alice", "shared.bin", version(WRITERS));
    let sums: Arc<Vec<String>> = Arc::new((0..=WRITERS).map(|i| sha256_hex(&version(i))).collect());
    let start = Arc::new(Barrier::new(WRITERS + READERS));
    let mut handles = Vec::new();
    for i in 0..WRITERS {
        let (server, start) = (server.clone(), start.clone());
        handles.push(thread::spawn(move || -> Result<(), String> {
            let mut ftp = binary_client(&server, Mode::ExtendedPassive)?;
            start.wait();
            for _ in 0..3 {
                ftp.put_file("shared.bin", &mut Cursor::new(version(i)))
                    .map_err(|e| format!("writer {i}: {e}"))?;
            }
            Ok(())
        }));
    }
    for r in 0..READERS {
        let (server, start, sums) = (server.clone(), start.clone(), sums.clone());
        handles.push(thread::spawn(move || -> Result<(), String> {
            let mut ftp = binary_client(&server, Mode::Passive)?;
            start.wait();
            for k in 0..8 {
                let got = fetch(&mut ftp, &format!("reader {r}"), "shared.bin")?;
                if !sums.contains(&sha256_hex(&got)) {
                    return Err(format!(
                        "reader {r}, read {k}: a mixed file of {} bytes",
                        got.len()
                    ));
                }
                let names = ftp.nlst(None).map_err(|e| e.to_string())?;
                if let Some(n) = names.iter().find(|n| n.contains(".ferry-tmp.")) {
                    return Err(format!("a listing shows the temporary {n}"));
                }
            }
            Ok(())
        }));
    }
    let errors = failures(handles);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let last = sha256_file(&home.join("shared.bin"));
    assert!(
        sums[..WRITERS].contains(&last),
        "the final file is none of the uploads"
    );
    assert!(temporaries(&home).is_empty());
}
