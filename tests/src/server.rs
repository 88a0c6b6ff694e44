//! The server under test: [`ServerBuilder`] starts the `ferry` binary (`--listen
//! 127.0.0.1:0`, the port read from what it prints) in a temporary folder with its
//! accounts, captures its log in a file, and arms a watchdog that kills it after a maximum
//! lifetime, so that a test stuck in a blocking read on one of its sockets ends too.
//! [`Server`] is the running process: its addresses, folders, log and audit log (with
//! waits for a line or a record), clients connected to it, and its stop: SIGTERM, a
//! bounded wait, SIGKILL, and always a reap, on drop too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use suppaftp::{FtpStream, Mode};

use crate::audit::{AuditRecord, audit};
use crate::bin::{ferry_bin, ferry_command};
use crate::clients::{ClientOutput, require_client, run_client};
use crate::control::Control;
use crate::ftp_client::ftp_connect;
use crate::wait::poll;

/// The longest a server of one test may live before the watchdog kills it.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(100);

/// How long [`Server::wait_audit`] waits for a record.
const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    users: Vec<(String, String, bool)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    listen: Vec<String>,
    lifetime: Duration,
    wrapper: Vec<String>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A server on `127.0.0.1:0` with no accounts yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            users: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            listen: vec!["127.0.0.1:0".into()],
            lifetime: SERVER_LIFETIME,
            wrapper: Vec::new(),
        }
    }

    /// Runs the server through a wrapper command that ends by `exec`ing its arguments
    /// (`unshare -m sh -c '...; exec "$@"' sh`), so that the process id stays the server's.
    /// `{home:NAME}` in a wrapper argument becomes that user's home folder.
    #[must_use]
    pub fn wrapper(mut self, args: &[&str]) -> Self {
        self.wrapper = args.iter().map(|a| (*a).to_string()).collect();
        self
    }

    /// Adds an account (created with `ferry user add` before the server starts).
    #[must_use]
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into(), false));
        self
    }

    /// Adds a read-only account.
    #[must_use]
    pub fn read_only_user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into(), true));
        self
    }

    /// Adds command-line arguments of `ferry serve`.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the server (those of the tests' own environment
    /// that start with `FERRY_` are never passed on).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Listens on these addresses instead of `127.0.0.1:0`.
    #[must_use]
    pub fn listen(mut self, addrs: &[&str]) -> Self {
        self.listen = addrs.iter().map(|a| (*a).to_string()).collect();
        self
    }

    /// Starts the server and waits until it listens.
    ///
    /// # Panics
    /// When it does not start.
    #[must_use]
    pub fn start(self) -> Server {
        let bin = ferry_bin();
        let root = tempfile::Builder::new()
            .prefix("ferry-e2e-")
            .tempdir()
            .expect("temp dir");
        let data = root.path().join("data");
        fs::create_dir_all(&data).expect("data dir");
        let passwords = self.add_users(bin, &data);
        let log = root.path().join("server.log");
        let log_file = fs::File::create(&log).expect("log file");
        let mut child = self
            .serve_command(bin, &data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("starting ferry");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let watchdog = watchdog(child.id(), self.lifetime);
        let mut server = Server {
            child: Some(child),
            addrs: Vec::new(),
            passwords,
            data,
            log,
            stdout: Mutex::new(Vec::new()),
            watchdog: Some(watchdog),
            root,
        };
        server.read_startup(&lines, self.listen.len());
        server
    }

    /// Creates the accounts with `ferry user add`; returns their passwords.
    fn add_users(&self, bin: &Path, data: &Path) -> BTreeMap<String, String> {
        let mut passwords = BTreeMap::new();
        for (name, password, read_only) in &self.users {
            let mut cmd = ferry_command(bin);
            cmd.args(["user", "add", name, "--password-stdin", "--data-dir"])
                .arg(data);
            if *read_only {
                cmd.arg("--read-only");
            }
            let out = run_client(&mut cmd, Some(format!("{password}\n").as_bytes()), 60);
            assert!(
                out.status.success(),
                "ferry user add {name} failed: {}{}",
                out.stdout,
                out.stderr
            );
            passwords.insert(name.clone(), password.clone());
        }
        passwords
    }

    /// The command line of `ferry serve`, through the wrapper if there is one.
    fn serve_command(&self, bin: &Path, data: &Path) -> Command {
        let mut cmd = if self.wrapper.is_empty() {
            ferry_command(bin)
        } else {
            let home = data.join("home");
            let expand = |a: &String| {
                a.strip_prefix("{home:")
                    .and_then(|r| r.strip_suffix('}'))
                    .map_or_else(
                        || a.clone(),
                        |u| home.join(u).to_string_lossy().into_owned(),
                    )
            };
            let mut cmd = ferry_command(Path::new(&self.wrapper[0]));
            cmd.args(self.wrapper[1..].iter().map(expand)).arg(bin);
            cmd
        };
        if !self.args.iter().any(|a| a == "--shutdown-grace") {
            // Stopping at the end of a test should not wait for the default 30 s.
            cmd.args(["--shutdown-grace", "1"]);
        }
        cmd.arg("--data-dir")
            .arg(data)
            .args(["--listen", &self.listen.join(",")])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// The lines of the server's standard output, read on a thread as they come.
fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A thread that kills process `pid` unless told (or dropped) within `lifetime`.
fn watchdog(pid: u32, lifetime: Duration) -> (Sender<()>, JoinHandle<()>) {
    let (stop_watchdog, stopped) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lifetime) {
            eprintln!("watchdog: the ferry server {pid} outlived {lifetime:?}; killing it");
            signal(pid, rustix::process::Signal::KILL);
        }
    });
    (stop_watchdog, handle)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process(pid, sig);
}

/// A running `ferry` server in a temporary folder; stopped and reaped on drop.
pub struct Server {
    child: Option<Child>,
    addrs: Vec<SocketAddr>,
    passwords: BTreeMap<String, String>,
    data: PathBuf,
    log: PathBuf,
    stdout: Mutex<Vec<String>>,
    watchdog: Option<(Sender<()>, JoinHandle<()>)>,
    root: tempfile::TempDir,
}

impl Server {
    /// Runs an lftp script as alice (password `alice-pw`) in the test's folder, with lftp's
    /// settings for a quick, failing-fast run before `settings`.
    ///
    /// # Panics
    /// When lftp fails.
    pub fn lftp(&self, settings: &str, script: &str) -> ClientOutput {
        let commands = format!(
            "set ftp:ssl-allow no; set net:timeout 10; set net:max-retries 2; \
             set net:reconnect-interval-base 1; set cmd:fail-exit yes; {settings} {script}; bye"
        );
        let mut cmd = Command::new("lftp");
        cmd.current_dir(self.root())
            .args([
                "-u",
                "alice,alice-pw",
                "-p",
                &self.port().to_string(),
                "127.0.0.1",
            ])
            .args(["-e", &commands]);
        run_client(&mut cmd, None, 120).success(&format!("lftp {commands:?}"))
    }

    /// Starts a server with one account `alice` (password `alice-pw`) and these extra
    /// arguments.
    #[must_use]
    pub fn with_alice(args: &[&str]) -> Self {
        ServerBuilder::new()
            .user("alice", "alice-pw")
            .args(args.iter().copied())
            .start()
    }

    /// [`Server::with_alice`] without extra arguments, for a test of the external client
    /// `client`; `None` when it is not installed and the test is skipped (see
    /// [`require_client`]).
    #[must_use]
    pub fn for_client(client: &str) -> Option<Self> {
        require_client(client).then(|| Self::with_alice(&[]))
    }

    /// Reads what the server prints as it starts until it has reported listening on
    /// `count` addresses (and the password of an account it made itself).
    fn read_startup(&mut self, lines: &Receiver<String>, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.addrs.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let exited = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "ferry did not report listening ({e:?}, exit: {exited:?}); log:\n{}",
                        self.log_text()
                    );
                }
            };
            if let Some(rest) = line.strip_prefix("Ferry listening on ftp://") {
                let addr = rest.split(' ').next().unwrap_or_default();
                self.addrs.push(
                    addr.parse()
                        .unwrap_or_else(|_| panic!("bad address {line}")),
                );
            } else if let Some(rest) =
                line.strip_prefix("Created the account \"user\" with the password: ")
            {
                self.passwords.insert("user".into(), rest.trim().into());
            }
            self.stdout.lock().expect("stdout lock").push(line);
        }
    }

    /// Where it serves `/metrics`, `/health` and `/ready` (`--metrics-listen`).
    ///
    /// # Panics
    /// When it announced none.
    #[must_use]
    pub fn metrics_addr(&self) -> SocketAddr {
        self.stdout_lines()
            .iter()
            .find_map(|l| l.strip_prefix("Ferry metrics on http://"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("ferry announced no metrics address (--metrics-listen)")
    }

    /// The first address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address it listens on, in the order given.
    #[must_use]
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The port of the first address.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The password of an account.
    ///
    /// # Panics
    /// For an unknown account.
    #[must_use]
    pub fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    /// The temporary folder holding everything (`data/`, `server.log`, and whatever a test
    /// puts beside them).
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A new folder `name` beside the data folder, for a client's local files.
    ///
    /// # Panics
    /// When it cannot be made.
    #[must_use]
    pub fn local_dir(&self, name: &str) -> PathBuf {
        let dir = self.root().join(name);
        fs::create_dir(&dir).unwrap();
        dir
    }

    /// [`Server::local_dir`] holding `files` (name and content each).
    ///
    /// # Panics
    /// When it cannot be made.
    #[must_use]
    pub fn local_dir_with(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.local_dir(name);
        for (file, data) in files {
            fs::write(dir.join(file), data).unwrap();
        }
        dir
    }

    /// A file `name` beside the data folder holding `data`, for a client to send.
    ///
    /// # Panics
    /// When it cannot be written.
    #[must_use]
    pub fn local_file(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, data).unwrap();
        path
    }

    /// Writes `data` to `name` in `user`'s home, behind the server's back (as if it had been
    /// there before), and returns its path.
    ///
    /// # Panics
    /// When it cannot be written.
    pub fn put(&self, user: &str, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.home(user).join(name);
        fs::write(&path, data).unwrap();
        path
    }

    /// The URL of `path` on the server, with `user`'s name and password in it.
    #[must_use]
    pub fn url(&self, user: &str, path: &str) -> String {
        format!(
            "ftp://{user}:{}@127.0.0.1:{}/{path}",
            self.password(user),
            self.port()
        )
    }

    /// The data folder (`--data-dir`).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A user's home folder.
    #[must_use]
    pub fn home(&self, user: &str) -> PathBuf {
        self.data.join("home").join(user)
    }

    /// The audit log file.
    #[must_use]
    pub fn audit_path(&self) -> PathBuf {
        self.data.join("audit.log")
    }

    /// What the server wrote to standard output.
    #[must_use]
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The server's log so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds a line containing all of `needles`; returns that line.
    ///
    /// # Panics
    /// When no such line appears within `within`.
    pub fn wait_log(&self, needles: &[&str], within: Duration) -> String {
        poll(within, || {
            self.log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "no log line with {needles:?} within {within:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    /// The audit log's records so far.
    #[must_use]
    pub fn audit(&self) -> Vec<AuditRecord> {
        audit(&self.audit_path())
    }

    /// Waits until the audit log holds a record matching `pred`, and returns it.
    ///
    /// # Panics
    /// When none appears within a few seconds.
    pub fn wait_audit(&self, what: &str, pred: impl Fn(&AuditRecord) -> bool) -> AuditRecord {
        poll(AUDIT_WAIT, || self.audit().into_iter().find(|r| pred(r))).unwrap_or_else(|| {
            panic!(
                "no audit record for {what}; the audit log:\n{}",
                fs::read_to_string(self.audit_path()).unwrap_or_default()
            )
        })
    }

    /// Asserts that the audit log holds an `ok` record of `op` on `path` by `user`.
    pub fn assert_audited(&self, user: &str, op: &str, path: &str) -> AuditRecord {
        self.wait_audit(&format!("{user} {op} {path}"), |r| {
            r.user == user && r.op == op && r.path == path && r.result == "ok"
        })
    }

    /// [`Server::assert_audited`] for each `(op, path)`.
    pub fn assert_all_audited(&self, user: &str, changes: &[(&str, &str)]) {
        for (op, path) in changes {
            self.assert_audited(user, op, path);
        }
    }

    /// A raw control connection to the server, greeting read.
    #[must_use]
    pub fn control(&self) -> Control {
        let mut c = Control::connect(self.addr());
        let greeting = c.read_reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        c
    }

    /// A raw control connection, logged in as `user`.
    #[must_use]
    pub fn login(&self, user: &str) -> Control {
        let mut c = self.control();
        c.login(user, self.password(user));
        c
    }

    /// A suppaftp client logged in as `user`, in `mode`, with timeouts on every socket.
    #[must_use]
    pub fn ftp(&self, user: &str, mode: Mode) -> FtpStream {
        ftp_connect(self.addr(), user, self.password(user), mode)
    }

    /// The server's resident memory in KiB (from /proc).
    #[must_use]
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM, without waiting.
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), rustix::process::Signal::TERM);
        }
    }

    /// Waits up to `within` for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        poll(within, || child.try_wait().ok().flatten())
    }

    /// Stops the server (SIGTERM, then SIGKILL after `grace`) and returns how it exited.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some((tx, handle)) = self.watchdog.take() {
            drop(tx);
            let _ = handle.join();
        }
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(child.id(), rustix::process::Signal::TERM);
        if let Some(status) = poll(grace, || child.try_wait().ok().flatten()) {
            return Some(status);
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Prints the end of the log, for a test that failed.
    fn print_log_tail(&self) {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(150);
        eprintln!(
            "---- ferry server log (last {} lines of {}) ----",
            lines.len() - from,
            self.log.display()
        );
        for l in &lines[from..] {
            eprintln!("{l}");
        }
        eprintln!("---- end of server log ----");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(5));
        if thread::panicking() {
            self.print_log_tail();
        }
    }
}
