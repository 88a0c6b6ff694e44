//! External client programs (curl, lftp, ftp, python3, and `ferry` itself for its
//! subcommands): [`require_client`] says whether one is installed (or fails when
//! `FERRY_REQUIRE_CLIENTS=1`), [`run_client`] runs one with its input and a time limit and
//! collects what it printed.

use std::fs;
use std::io::{self, Read, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::wait::poll;

/// Whether the external client `name` is installed. A missing one is reported with a
/// `SKIPPED:` line, or fails the test when `FERRY_REQUIRE_CLIENTS=1` (as in CI).
///
/// # Panics
/// When the client is missing and `FERRY_REQUIRE_CLIENTS=1`.
#[must_use]
pub fn require_client(name: &str) -> bool {
    if find_in_path(name).is_some() {
        return true;
    }
    let required = std::env::var("FERRY_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{name} is not installed, and FERRY_REQUIRE_CLIENTS=1 requires it"
    );
    skipped(&format!("{name} not installed"));
    false
}

/// Reports a skipped test with a `SKIPPED:` line on the real standard error, which the test
/// harness does not capture, so that it shows in every run.
pub fn skipped(why: &str) {
    let _ = writeln!(io::stderr(), "SKIPPED: {why}");
}

/// The path of an executable named `name` in `PATH`.
#[must_use]
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// What a client printed and how it exited.
#[derive(Debug)]
pub struct ClientOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ClientOutput {
    /// Asserts that the client succeeded (`what` names it in the failure); returns what it
    /// printed.
    ///
    /// # Panics
    /// When it failed.
    #[must_use]
    #[track_caller]
    pub fn success(self, what: &str) -> Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Kills and reaps a child on drop.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` with `stdin`, for at most `secs` seconds (then it is killed and the test
/// fails).
///
/// # Panics
/// When it cannot start or does not finish in time.
pub fn run_client(cmd: &mut Command, stdin: Option<&[u8]>, secs: u64) -> ClientOutput {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let input = stdin.map(<[u8]>::to_vec);
    let mut pipe_in = child.stdin.take();
    let writer = thread::spawn(move || {
        if let (Some(p), Some(bytes)) = (pipe_in.as_mut(), input) {
            let _ = p.write_all(&bytes);
        }
        drop(pipe_in);
    });
    let out = read_pipe(child.stdout.take());
    let err = read_pipe(child.stderr.take());
    let mut guard = ChildGuard(Some(child));
    let exited = poll(Duration::from_secs(secs), || {
        guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    let Some(status) = exited else {
        drop(guard);
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        panic!("{cmd:?} did not finish within {secs} s\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    guard.0 = None;
    let _ = writer.join();
    ClientOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs curl with `args`, quiet but for errors, with time limits (30 s in all, 10 s to
/// connect; killed after 60 s).
///
/// # Panics
/// When curl cannot start or does not finish in time.
pub fn curl(args: &[&str]) -> ClientOutput {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--connect-timeout", "10"])
        .args(args);
    run_client(&mut cmd, None, 60)
}

/// [`curl`], asserting that it succeeds.
///
/// # Panics
/// When curl fails.
#[track_caller]
pub fn curl_ok(args: &[&str]) -> ClientOutput {
    curl(args).success(&format!("curl {args:?}"))
}

fn read_pipe<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}
