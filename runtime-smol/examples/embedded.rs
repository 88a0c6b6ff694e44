//! Ferry inside another program: an FTP server on an in-memory tree, started, used and
//! stopped from code.
//!
//! Run with `cargo run -p ferry-smol --example embedded`. It serves the user `demo` (password
//! `demo`) on a free port, uploads a file through a plain TCP client of its own, shows the
//! tree the program sees, and stops. Pass `--serve` to keep serving (stop with Ctrl-C) and try
//! it with `curl ftp://demo:demo@127.0.0.1:PORT/`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ferry_backends::audit::AuditLog;
use ferry_backends::memory::MemoryStorage;
use ferry_backends::{EntryBatch, Lister as _, Storage as _, VirtualPath};
use ferry_smol::Server;
use ferry_smol::config::Settings;
use ferry_smol::users::MemoryUsers;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep_serving = std::env::args().any(|a| a == "--serve");
    // The tree lives in this program; the server and the code below share it.
    let tree = MemoryStorage::new();
    let users = MemoryUsers::new().with_user("demo", "demo", tree.clone());
    let settings = Settings {
        listen: vec!["127.0.0.1:0".parse()?],
        shutdown_grace: Duration::from_secs(1),
        ..Settings::default()
    };
    // Audit lines go to this program's standard error.
    let server = Server::new(settings, users, AuditLog::from_writer(std::io::stderr()));

    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let bound = server.bind().await?;
        let addr = bound.local_addrs()[0];
        println!("serving demo/demo on ftp://{addr}");
        let stop = bound.shutdown_handle();
        let running = ex.spawn({
            let ex = ex.clone();
            async move { bound.run(&ex).await }
        });
        if keep_serving {
            running.await;
            return Ok(());
        }
        // A client on another thread: log in, store a file over a passive connection, quit.
        let client =
            std::thread::spawn(move || upload(addr, "hello.txt", b"hello from a client\n"));
        smol::unblock(move || client.join().expect("client thread"))
            .await
            .map_err(|e| format!("client: {e}"))?;
        // The program sees the upload in its own tree.
        let mut lister = tree.list(&VirtualPath::root()).await?;
        let mut batch = EntryBatch::new();
        while lister.next_batch(&mut batch).await? {
            for entry in batch.iter() {
                println!("in the tree: {} ({} bytes)", entry.name, entry.meta.size);
            }
            batch.clear();
        }
        stop.trigger();
        running.await;
        Ok::<(), Box<dyn std::error::Error>>(())
    }))
}

/// A minimal FTP client: enough to show the server at work.
fn upload(addr: std::net::SocketAddr, name: &str, data: &[u8]) -> std::io::Result<()> {
    let control = TcpStream::connect(addr)?;
    control.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(control.try_clone()?);
    let mut writer = control;
    let mut reply = || -> std::io::Result<String> {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        print!("  < {line}");
        Ok(line)
    };
    reply()?;
    for cmd in ["USER demo", "PASS demo", "TYPE I"] {
        writeln!(writer, "{cmd}\r")?;
        reply()?;
    }
    writeln!(writer, "EPSV\r")?;
    let epsv = reply()?;
    let port: u16 = epsv
        .split("|||")
        .nth(1)
        .and_then(|s| s.split('|').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected reply {epsv:?}")))?;
    let mut data_conn = TcpStream::connect((addr.ip(), port))?;
    writeln!(writer, "STOR {name}\r")?;
    reply()?;
    data_conn.write_all(data)?;
    drop(data_conn);
    reply()?;
    writeln!(writer, "QUIT\r")?;
    reply()?;
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    Ok(())
}
