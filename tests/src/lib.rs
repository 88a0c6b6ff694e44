//! Helpers for Ferry's end-to-end tests: they start the real `ferry` binary on a free
//! loopback port with a temporary data folder and drive it with real clients.
//!
//! - [`Server`] starts the binary (`--listen 127.0.0.1:0`, the port read from what it prints),
//!   captures its log in a file, and stops it on drop: SIGTERM, a bounded wait, SIGKILL, and
//!   always a reap. A watchdog kills it after a maximum lifetime, so a test stuck in a
//!   blocking read on one of its sockets ends too.
//! - [`Control`] is a raw control-connection client: send lines or bytes, read replies
//!   (multi-line ones per RFC 959), every read with a timeout.
//! - [`require_client`] says whether an external client (curl, lftp, ftp) is installed, or
//!   fails when `FERRY_REQUIRE_CLIENTS=1`; [`run_client`] runs one with a time limit.
//! - [`snapshot`] records a tree (names, kinds, modes, times, checksums), to prove that
//!   nothing outside a home changed; [`audit`] reads the audit log.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use suppaftp::FtpStream;
pub use suppaftp::{self, Mode};

/// How long any single read or write on a test socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest a server of one test may live before the watchdog kills it.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(100);

/// The loopback address tests use as a second, different client host.
pub const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

// ---------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The `ferry` binary of this build profile (`target/<profile>/ferry`), built once per test
/// process if it is missing or older than the server's sources. `FERRY_BIN` overrides it.
///
/// # Panics
/// When it cannot be found or built.
pub fn ferry_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FERRY_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in target/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join("ferry");
        if !bin.exists() || is_stale(&bin) {
            build_ferry(&profile_dir);
        }
        assert!(
            bin.exists(),
            "{} does not exist after building",
            bin.display()
        );
        bin
    })
}

/// Whether a source file of the server is newer than the binary.
fn is_stale(bin: &Path) -> bool {
    let Ok(built) = fs::metadata(bin).and_then(|m| m.modified()) else {
        return true;
    };
    let root = workspace_root();
    let mut newest = None;
    for dir in ["core", "backends", "runtime-smol"] {
        newest_mtime(&root.join(dir).join("src"), &mut newest);
        newest_mtime(&root.join(dir).join("Cargo.toml"), &mut newest);
    }
    newest.is_some_and(|t| t > built)
}

fn newest_mtime(path: &Path, newest: &mut Option<std::time::SystemTime>) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                newest_mtime(&e.path(), newest);
            }
        }
    } else if let Ok(t) = meta.modified()
        && newest.is_none_or(|n| t > n)
    {
        *newest = Some(t);
    }
}

fn build_ferry(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "ferry-smol", "--bin", "ferry"]);
    if profile_dir.file_name() == Some(OsStr::new("release")) {
        cmd.arg("--release");
    }
    // The same target folder as this test binary.
    if let Some(target) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    eprintln!("building the ferry binary: {cmd:?}");
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build of ferry failed: {status}");
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

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
        let mut passwords = BTreeMap::new();
        for (name, password, read_only) in &self.users {
            let mut cmd = ferry_command(bin);
            cmd.args(["user", "add", name, "--password-stdin", "--data-dir"])
                .arg(&data);
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
        let log = root.path().join("server.log");
        let log_file = fs::File::create(&log).expect("log file");
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
            .arg(&data)
            .args(["--listen", &self.listen.join(",")])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("starting ferry");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let (stop_watchdog, stopped) = mpsc::channel::<()>();
        let lifetime = self.lifetime;
        let watchdog = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lifetime) {
                eprintln!("watchdog: the ferry server {pid} outlived {lifetime:?}; killing it");
                signal(pid, rustix::process::Signal::KILL);
            }
        });
        let mut server = Server {
            child: Some(child),
            addrs: Vec::new(),
            passwords,
            data,
            log,
            stdout: Mutex::new(Vec::new()),
            watchdog: Some((stop_watchdog, watchdog)),
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.addrs.len() < self.listen.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let exited = server
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "ferry did not report listening ({e:?}, exit: {exited:?}); log:\n{}",
                        server.log_text()
                    );
                }
            };
            if let Some(rest) = line.strip_prefix("Ferry listening on ftp://") {
                let addr = rest.split(' ').next().unwrap_or_default();
                server.addrs.push(
                    addr.parse()
                        .unwrap_or_else(|_| panic!("bad address {line}")),
                );
            } else if let Some(rest) =
                line.strip_prefix("Created the account \"user\" with the password: ")
            {
                server.passwords.insert("user".into(), rest.trim().into());
            }
            server.stdout.lock().expect("stdout lock").push(line);
        }
        server
    }
}

/// A `ferry` command without any `FERRY_*` variable of the environment.
fn ferry_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
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
    /// Starts a server with one account `alice` (password `alice-pw`) and these extra
    /// arguments.
    #[must_use]
    pub fn with_alice(args: &[&str]) -> Self {
        ServerBuilder::new()
            .user("alice", "alice-pw")
            .args(args.iter().copied())
            .start()
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
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self
                .log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {within:?}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
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
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.audit();
            if let Some(r) = records.iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no audit record for {what}; the audit log:\n{}",
                fs::read_to_string(self.audit_path()).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that the audit log holds an `ok` record of `op` on `path` by `user`.
    pub fn assert_audited(&self, user: &str, op: &str, path: &str) -> AuditRecord {
        self.wait_audit(&format!("{user} {op} {path}"), |r| {
            r.user == user && r.op == op && r.path == path && r.result == "ok"
        })
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
        let deadline = Instant::now() + within;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
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
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(5));
        if thread::panicking() {
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
}

// ---------------------------------------------------------------------------------------
// suppaftp
// ---------------------------------------------------------------------------------------

/// Connects suppaftp to `addr` and logs in, with timeouts on the control socket and on
/// passive data sockets.
///
/// # Panics
/// When connecting or logging in fails.
#[must_use]
pub fn ftp_connect(addr: SocketAddr, user: &str, password: &str, mode: Mode) -> FtpStream {
    let mut ftp = ftp_connect_anonymous(addr, mode);
    ftp.login(user, password)
        .unwrap_or_else(|e| panic!("login as {user}: {e}"));
    ftp
}

/// Connects suppaftp to `addr` without logging in.
///
/// # Panics
/// When connecting fails.
#[must_use]
pub fn ftp_connect_anonymous(addr: SocketAddr, mode: Mode) -> FtpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    set_timeouts(&stream);
    let mut ftp = FtpStream::connect_with_stream(stream)
        .expect("greeting")
        .passive_stream_builder(|addr| {
            let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                .map_err(suppaftp::FtpError::ConnectionError)?;
            set_timeouts(&s);
            Ok(s)
        });
    if mode == Mode::Active {
        ftp = ftp.active_mode(IO_TIMEOUT);
    } else {
        ftp.set_mode(mode);
    }
    ftp
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
}

// ---------------------------------------------------------------------------------------
// The raw control connection
// ---------------------------------------------------------------------------------------

/// One reply: its code and its lines (without CR LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line, the code included, without the line end.
    pub lines: Vec<String>,
    /// Whether every line ended with CR LF.
    pub crlf: bool,
}

impl Reply {
    /// All lines joined with `\n`.
    #[must_use]
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Whether it spans several lines.
    #[must_use]
    pub fn is_multiline(&self) -> bool {
        self.lines.len() > 1
    }
}

/// A raw control connection with a timeout on every read and write.
pub struct Control {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Control {
    /// Connects to `addr`; the greeting is not read.
    ///
    /// # Panics
    /// When the connection fails.
    #[must_use]
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"))
    }

    /// Connects to `addr` from the local address `from` (e.g. 127.0.0.2).
    ///
    /// # Panics
    /// When the connection fails.
    #[must_use]
    pub fn connect_from(from: IpAddr, addr: SocketAddr) -> Self {
        Self::from_stream(tcp_connect_from(from, addr).expect("connect from another address"))
    }

    /// Wraps a connected stream.
    ///
    /// # Panics
    /// When the socket cannot be set up.
    #[must_use]
    pub fn from_stream(stream: TcpStream) -> Self {
        set_timeouts(&stream);
        let reader = BufReader::new(stream.try_clone().expect("clone socket"));
        Self { stream, reader }
    }

    /// The socket.
    #[must_use]
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).expect("read timeout");
    }

    /// Sends `line` followed by CR LF.
    ///
    /// # Panics
    /// When the write fails.
    pub fn send(&mut self, line: &str) {
        self.try_send_raw(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    /// Sends bytes as they are.
    ///
    /// # Panics
    /// When the write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).expect("sending raw bytes");
    }

    /// Sends bytes as they are.
    ///
    /// # Errors
    /// When the write fails.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one reply.
    ///
    /// # Panics
    /// On a timeout, the end of the connection, or a malformed reply.
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads one reply (RFC 959 4.2: `ddd-` opens a multi-line reply that ends at a line
    /// starting with the same `ddd `).
    ///
    /// # Errors
    /// On a timeout, the end of the connection (`UnexpectedEof`), or a malformed line
    /// (`InvalidData`).
    pub fn try_read_reply(&mut self) -> io::Result<Reply> {
        let (first, mut crlf) = self.read_line()?;
        let code = reply_code(&first).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a reply line: {first:?}"),
            )
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let (line, ok) = self.read_line()?;
                crlf &= ok;
                let last = line.starts_with(&end) || line == code.to_string();
                lines.push(line);
                if last {
                    break;
                }
                if lines.len() > 100_000 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "multi-line reply without end",
                    ));
                }
            }
        }
        Ok(Reply { code, lines, crlf })
    }

    /// Reads one line; says whether it ended with CR LF.
    fn read_line(&mut self) -> io::Result<(String, bool)> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if buf.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line without end: {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.pop();
        let crlf = buf.last() == Some(&b'\r');
        if crlf {
            buf.pop();
        }
        Ok((String::from_utf8_lossy(&buf).into_owned(), crlf))
    }

    /// Sends `line` and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read_reply()
    }

    /// Sends `line` and asserts the reply's code.
    ///
    /// # Panics
    /// When the code differs.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} got {r:?}");
        r
    }

    /// Logs in.
    ///
    /// # Panics
    /// When the login fails.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// Sends `PASV` and connects to the announced port.
    ///
    /// # Panics
    /// When PASV fails or the connection cannot be made.
    pub fn pasv(&mut self) -> TcpStream {
        let addr = self.pasv_addr();
        // From the control connection's own address, as a real client would.
        let local = self.stream.local_addr().expect("local address").ip();
        tcp_connect_from(local, addr).expect("data connection")
    }

    /// Sends `PASV` and returns the announced address.
    ///
    /// # Panics
    /// When PASV fails.
    pub fn pasv_addr(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_pasv(&r.lines[0]).unwrap_or_else(|| panic!("bad 227: {r:?}"))
    }

    /// Downloads `path` in binary over a passive connection.
    ///
    /// # Panics
    /// When the download fails.
    pub fn retr(&mut self, path: &str) -> Vec<u8> {
        self.expect("TYPE I", 200);
        let mut data = self.pasv();
        self.expect(&format!("RETR {path}"), 150);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).expect("reading the download");
        let r = self.read_reply();
        assert_eq!(r.code, 226, "RETR {path} ended with {r:?}");
        buf
    }

    /// Uploads `bytes` to `path` in binary over a passive connection.
    ///
    /// # Panics
    /// When the upload fails.
    pub fn stor(&mut self, path: &str, bytes: &[u8]) {
        self.expect("TYPE I", 200);
        let mut data = self.pasv();
        self.expect(&format!("STOR {path}"), 150);
        data.write_all(bytes).expect("writing the upload");
        drop(data);
        let r = self.read_reply();
        assert_eq!(r.code, 226, "STOR {path} ended with {r:?}");
    }

    /// Runs a listing command (`LIST`, `NLST x`, `MLSD`) over a passive connection and
    /// returns the reply to the command and the listing (empty when refused).
    ///
    /// # Panics
    /// When the data connection or a read fails.
    pub fn listing(&mut self, command: &str) -> (Reply, String) {
        let mut data = self.pasv();
        let r = self.cmd(command);
        if r.code != 150 {
            return (r, String::new());
        }
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).expect("reading the listing");
        let end = self.read_reply();
        (end, String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads until the server closes the connection; returns what came (replies).
    #[must_use]
    pub fn read_to_close(&mut self, within: Duration) -> (String, bool) {
        let deadline = Instant::now() + within;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&all).into_owned(), true),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (String::from_utf8_lossy(&all).into_owned(), true),
            }
            if Instant::now() >= deadline {
                return (String::from_utf8_lossy(&all).into_owned(), false);
            }
        }
    }
}

/// The code of a reply line: three digits then a space, a dash, or the end.
fn reply_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || !matches!(b[3], b' ' | b'-') {
        return None;
    }
    line[..3].parse().ok()
}

/// Parses `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
#[must_use]
pub fn parse_pasv(line: &str) -> Option<SocketAddr> {
    let inner = line.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u8> = inner
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    if n.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some(SocketAddr::new(
        ip.into(),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// Parses the port of `229 Entering Extended Passive Mode (|||port|).`
#[must_use]
pub fn parse_epsv(line: &str) -> Option<u16> {
    line.split("(|||").nth(1)?.split('|').next()?.parse().ok()
}

/// A TCP connection to `to` from the local address `from`.
///
/// # Errors
/// When the socket cannot be bound or connected.
pub fn tcp_connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let family = if from.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::bind(&fd, &SocketAddr::new(from, 0))?;
    rustix::net::connect(&fd, &to)?;
    let s = TcpStream::from(fd);
    set_timeouts(&s);
    Ok(s)
}

/// Closes `stream` with a reset (SO_LINGER 0), as a crashed client or a broken network
/// would, rather than with an orderly FIN.
pub fn reset(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

// ---------------------------------------------------------------------------------------
// External clients
// ---------------------------------------------------------------------------------------

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
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        let c = guard.0.as_mut().expect("child");
        if let Ok(Some(status)) = c.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            drop(guard);
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!("{cmd:?} did not finish within {secs} s\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    guard.0 = None;
    let _ = writer.join();
    ClientOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
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

// ---------------------------------------------------------------------------------------
// Files and trees
// ---------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
#[must_use]
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The SHA-256 of `bytes`, in hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of a file, in hex.
///
/// # Panics
/// When the file cannot be read.
#[must_use]
pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A record of a tree: for each path below `root` (symlinks not followed), its kind, mode,
/// modification time and, for files, size and SHA-256; for links, the target.
#[must_use]
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    snapshot_into(root, root, &mut out);
    out
}

fn snapshot_into(root: &Path, path: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let common = format!(
        "mode={:o} mtime={}.{:09}",
        meta.mode(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        out.insert(rel, format!("link -> {}", target.display()));
    } else if meta.is_dir() {
        out.insert(rel, format!("dir {common}"));
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            snapshot_into(root, &e, out);
        }
    } else {
        out.insert(
            rel,
            format!(
                "file {common} size={} sha256={}",
                meta.len(),
                sha256_file(path)
            ),
        );
    }
}

/// The contents of a tree: each path below `root` (symlinks not followed) as `dir` or the
/// SHA-256 of the file.
#[must_use]
pub fn tree_sums(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            let kind = if v.starts_with("dir ") {
                "dir".to_string()
            } else if let Some(i) = v.find("sha256=") {
                v[i + 7..].to_string()
            } else {
                v
            };
            (k, kind)
        })
        .collect()
}

/// The modification times (whole seconds) of the files below `root`.
#[must_use]
pub fn file_mtimes(root: &Path) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (k, v) in snapshot(root) {
        if v.starts_with("file ") {
            let m = fs::metadata(root.join(&k)).expect("metadata");
            out.insert(k, m.mtime());
        }
    }
    out
}

/// Names of files in `dir` (recursively) that look like temporaries of uploads.
#[must_use]
pub fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".ferry-tmp.") {
                found.push(e.path().to_string_lossy().into_owned());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    found
}

/// Writes a tree of nested folders with binary files of various sizes under `root`;
/// returns the relative paths of the files.
///
/// # Panics
/// When writing fails.
pub fn make_tree(root: &Path, seed: u64) -> Vec<String> {
    let files = [
        ("a.bin", 0usize),
        ("b.bin", 1),
        ("c.bin", 70_000),
        ("sub/d.bin", 300_000),
        ("sub/e.txt", 1234),
        ("sub/deeper/f.bin", 4096),
        ("sub/deeper/g.bin", 1_000_003),
        ("sub/deeper/deepest/h.bin", 17),
        ("other dir/with space.bin", 5000),
        ("empty-dir/.keep", 0),
    ];
    let mut names = Vec::new();
    for (i, (name, len)) in files.iter().enumerate() {
        let p = root.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, random_bytes(seed + i as u64, *len)).expect("write");
        names.push((*name).to_string());
    }
    names
}

/// Waits until `cond` holds, polling; false if it does not within `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// RFC 3339 time.
    pub time: String,
    /// The account.
    pub user: String,
    /// The client's address.
    pub client: String,
    /// The operation.
    pub op: String,
    /// The path (the source of a rename or copy).
    pub path: String,
    /// The target of a rename or copy.
    pub to: Option<String>,
    /// Bytes, where known.
    pub bytes: Option<u64>,
    /// `ok`, an error kind, or `aborted`.
    pub result: String,
}

/// Reads the audit log at `path` (missing: empty).
///
/// # Panics
/// On a line that is not a flat JSON object with the documented keys.
#[must_use]
pub fn audit(path: &Path) -> Vec<AuditRecord> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_audit_line(l).unwrap_or_else(|| panic!("bad audit line: {l}")))
        .collect()
}

/// Parses one audit line.
#[must_use]
pub fn parse_audit_line(line: &str) -> Option<AuditRecord> {
    let fields = parse_flat_json(line)?;
    let s = |k: &str| match fields.get(k) {
        Some(Json::Str(s)) => Some(s.clone()),
        _ => None,
    };
    Some(AuditRecord {
        time: s("time")?,
        user: s("user")?,
        client: s("client")?,
        op: s("op")?,
        path: s("path")?,
        to: match fields.get("to")? {
            Json::Str(s) => Some(s.clone()),
            Json::Null => None,
            Json::Num(_) => return None,
        },
        bytes: match fields.get("bytes")? {
            Json::Num(n) => Some(*n),
            Json::Null => None,
            Json::Str(_) => return None,
        },
        result: s("result")?,
    })
}

#[derive(Debug)]
enum Json {
    Str(String),
    Num(u64),
    Null,
}

/// A flat JSON object of strings, unsigned numbers and nulls.
fn parse_flat_json(line: &str) -> Option<BTreeMap<String, Json>> {
    let mut chars = line.trim().chars().peekable();
    let mut out = BTreeMap::new();
    if chars.next()? != '{' {
        return None;
    }
    loop {
        if chars.peek() == Some(&'}') {
            chars.next();
            break;
        }
        let key = json_string(&mut chars)?;
        if chars.next()? != ':' {
            return None;
        }
        let value = match chars.peek()? {
            '"' => Json::Str(json_string(&mut chars)?),
            'n' => {
                for c in "null".chars() {
                    if chars.next()? != c {
                        return None;
                    }
                }
                Json::Null
            }
            _ => {
                let mut n = String::new();
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    n.push(chars.next()?);
                }
                Json::Num(n.parse().ok()?)
            }
        };
        out.insert(key, value);
        match chars.next()? {
            ',' => {}
            '}' => break,
            _ => return None,
        }
    }
    chars.next().is_none().then_some(out)
}

fn json_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    if chars.next()? != '"' {
        return None;
    }
    let mut s = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(s),
            '\\' => match chars.next()? {
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'u' => {
                    let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
                    s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => s.push(c),
            },
            c => s.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_parse() {
        let r = parse_audit_line(
            r#"{"time":"2026-11-23T10:52:08Z","user":"alice","client":"127.0.0.1:5555","op":"rename","path":"/a \"b\".txt","to":"/c","bytes":null,"result":"ok"}"#,
        )
        .unwrap();
        assert_eq!(r.path, "/a \"b\".txt");
        assert_eq!(r.to.as_deref(), Some("/c"));
        assert_eq!(r.bytes, None);
        let r = parse_audit_line(
            r#"{"time":"t","user":"u","client":"c","op":"upload","path":"/x","to":null,"bytes":123,"result":"ok"}"#,
        )
        .unwrap();
        assert_eq!(r.bytes, Some(123));
        assert!(parse_audit_line("{\"time\":1}").is_none());
    }

    #[test]
    fn replies_and_addresses_parse() {
        assert_eq!(reply_code("220 hi"), Some(220));
        assert_eq!(reply_code("211-x"), Some(211));
        assert_eq!(reply_code(" 211 x"), None);
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80).").unwrap(),
            "127.0.0.1:50000".parse().unwrap()
        );
        assert_eq!(
            parse_epsv("229 Entering Extended Passive Mode (|||50001|)."),
            Some(50001)
        );
        assert_ne!(random_bytes(1, 10), random_bytes(2, 10));
    }
}
