//! Soak: 200 clients at once doing mixed operations for a bounded time, every result
//! verified. Off by default (it takes a minute); `FERRY_SOAK=1` turns it on (CI sets it),
//! `FERRY_SOAK_SECS` sets the duration (default 60), `FERRY_SOAK_CLIENTS` the clients (200).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ferry_tests::{Mode, Server, ServerBuilder, ftp_connect, random_bytes, temporaries};
use suppaftp::Status;
use suppaftp::types::FileType;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One client's loop: its own folder, a model of what should be in it, every reply and every
/// byte checked against the model.
fn client(
    server: &Server,
    id: u64,
    until: Instant,
    ops: &AtomicU64,
    errors: &AtomicU64,
    notes: &std::sync::Mutex<Vec<String>>,
) {
    let mode = if id.is_multiple_of(3) {
        Mode::Active
    } else {
        Mode::Passive
    };
    let mut ftp = ftp_connect(server.addr(), "alice", "alice-pw", mode);
    let fail = |what: String| {
        errors.fetch_add(1, Ordering::Relaxed);
        let mut n = notes.lock().unwrap();
        if n.len() < 20 {
            n.push(what);
        }
    };
    ftp.transfer_type(FileType::Binary).unwrap();
    let dir = format!("c{id}");
    ftp.mkdir(&dir).unwrap();
    ftp.cwd(&dir).unwrap();
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut step = 0u64;
    while Instant::now() < until {
        step += 1;
        let seed = id * 1_000_003 + step;
        let name = format!("f{}.bin", seed % 7);
        let result: Result<(), String> = match seed % 9 {
            0..=2 => {
                let data = random_bytes(seed, (seed % 65_536) as usize);
                ftp.put_file(&name, &mut Cursor::new(&data))
                    .map(|_| {
                        model.insert(name.clone(), data);
                    })
                    .map_err(|e| format!("STOR {name}: {e}"))
            }
            3 | 4 => match model.get(&name) {
                Some(want) => match ftp.retr_as_buffer(&name) {
                    Ok(got) if got.get_ref() == want => Ok(()),
                    Ok(got) => Err(format!(
                        "RETR {name}: {} bytes, want {}",
                        got.get_ref().len(),
                        want.len()
                    )),
                    Err(e) => Err(format!("RETR {name}: {e}")),
                },
                None => match ftp.retr_as_buffer(&name) {
                    Err(_) => Ok(()),
                    Ok(_) => Err(format!("RETR {name} of a missing file succeeded")),
                },
            },
            5 => ftp
                .nlst(None)
                .map_err(|e| format!("NLST: {e}"))
                .and_then(|mut names| {
                    names.sort();
                    let want: Vec<String> = model.keys().cloned().collect();
                    if names == want {
                        Ok(())
                    } else {
                        Err(format!("NLST {names:?}, want {want:?}"))
                    }
                }),
            6 => match model.remove(&name) {
                Some(_) => ftp.rm(&name).map_err(|e| format!("DELE {name}: {e}")),
                None => Ok(()),
            },
            7 => {
                let to = format!("f{}.bin", (seed / 7) % 7);
                match model.remove(&name) {
                    Some(data) if to != name => {
                        model.insert(to.clone(), data);
                        ftp.rename(&name, &to)
                            .map_err(|e| format!("RNFR/RNTO {name} {to}: {e}"))
                    }
                    Some(data) => {
                        model.insert(name.clone(), data);
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            _ => {
                let to = format!("f{}.bin", (seed / 11) % 7);
                match model.get(&name).cloned() {
                    Some(data) if to != name => {
                        let r = ftp
                            .custom_command(
                                format!("SITE CPFR {name}"),
                                &[Status::RequestFilePending],
                            )
                            .and_then(|_| {
                                ftp.custom_command(
                                    format!("SITE CPTO {to}"),
                                    &[Status::RequestedFileActionOk],
                                )
                            })
                            .map(|_| ())
                            .map_err(|e| format!("SITE CPFR/CPTO {name} {to}: {e}"));
                        model.insert(to, data);
                        r
                    }
                    _ => Ok(()),
                }
            }
        };
        ops.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            fail(format!("client {id}: {e}"));
        }
    }
    // The folder holds exactly what the model says.
    let home = server.home("alice").join(&dir);
    for (name, want) in &model {
        match std::fs::read(home.join(name)) {
            Ok(got) if &got == want => {}
            _ => fail(format!(
                "client {id}: {name} on disk differs from the model"
            )),
        }
    }
    let _ = ftp.quit();
}

#[test]
fn two_hundred_clients_doing_mixed_operations() {
    if std::env::var_os("FERRY_SOAK").is_none() {
        eprintln!("soak test off (set FERRY_SOAK=1 to run it)");
        return;
    }
    let secs = env_or("FERRY_SOAK_SECS", 60);
    let clients = env_or("FERRY_SOAK_CLIENTS", 200);
    let server = Arc::new(
        ServerBuilder::new()
            .user("alice", "alice-pw")
            .args([
                "--max-connections-per-ip",
                "1000",
                "--max-connections",
                "2000",
                "--log-level",
                "warn",
            ])
            .start(),
    );
    let until = Instant::now() + Duration::from_secs(secs);
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let notes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let (server, ops, errors, notes) =
                (server.clone(), ops.clone(), errors.clone(), notes.clone());
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || client(&server, id, until, &ops, &errors, &notes))
                .unwrap()
        })
        .collect();
    let mut panics = 0;
    for h in handles {
        if h.join().is_err() {
            panics += 1;
        }
    }
    let ops = ops.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "soak: {clients} clients, {secs} s: {ops} operations ({:.0}/s), {errors} errors, {panics} clients panicked",
        ops as f64 / took
    );
    assert_eq!(
        (errors, panics),
        (0, 0),
        "{:#?}\n{}",
        notes.lock().unwrap(),
        server.log_text()
    );
    assert!(ops > clients * 10, "too few operations: {ops}");
    assert!(temporaries(&server.home("alice")).is_empty());
    // The server still answers.
    let mut c = server.login("alice");
    assert_eq!(c.cmd("NOOP").code, 200);
}
