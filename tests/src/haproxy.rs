//! A real load balancer for the fleet tests: HAProxy (Debian's `haproxy`) in the
//! foreground with a configuration the test writes, in a temporary folder, with a stats
//! socket that says which servers its health checks hold up. Dropping it stops the process
//! by its PID.

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{find_in_path, require_client, wait_until};

/// A running HAProxy.
pub struct HaProxy {
    child: Child,
    dir: tempfile::TempDir,
}

/// Where haproxy is: on `PATH`, or in `/usr/sbin` (not on every user's `PATH`).
fn haproxy_bin() -> Option<PathBuf> {
    find_in_path("haproxy").or_else(|| {
        let p = PathBuf::from("/usr/sbin/haproxy");
        p.is_file().then_some(p)
    })
}

impl HaProxy {
    /// Starts haproxy with `config` (its `global` section gets the stats socket added), or
    /// `None` (with a `SKIPPED:` line) when haproxy is not installed.
    ///
    /// # Panics
    /// When the configuration is refused or haproxy does not come up.
    #[must_use]
    pub fn start(config: &str) -> Option<Self> {
        let Some(bin) = haproxy_bin() else {
            // Says SKIPPED, or fails under FERRY_REQUIRE_CLIENTS=1.
            let _ = require_client("haproxy");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ferry-haproxy-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("stats.sock");
        let config = config.replacen(
            "global\n",
            &format!(
                "global\n    stats socket {} mode 600 level admin\n",
                socket.display()
            ),
            1,
        );
        let cfg = dir.path().join("haproxy.cfg");
        fs::write(&cfg, &config).expect("haproxy.cfg");
        let check = Command::new(&bin)
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refused the configuration:\n{config}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = fs::File::create(dir.path().join("haproxy.log")).expect("log");
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting haproxy");
        let mut lb = Self { child, dir };
        let up = wait_until(Duration::from_secs(10), || socket.exists());
        assert!(up, "haproxy did not come up: {}", lb.log());
        if let Ok(Some(status)) = lb.child.try_wait() {
            panic!("haproxy exited ({status}): {}", lb.log());
        }
        Some(lb)
    }

    /// What haproxy printed.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("stats.sock")
    }

    /// The status (`UP`, `DOWN`, `MAINT`, ..., as `show stat` says) of `server` in
    /// `backend`.
    #[must_use]
    pub fn status(&self, backend: &str, server: &str) -> Option<String> {
        let mut s = UnixStream::connect(self.socket()).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"show stat\n").ok()?;
        // CSV: pxname,svname,...; the header line names the columns.
        let mut lines = BufReader::new(s).lines();
        let header = lines.next()?.ok()?;
        let column = header
            .trim_start_matches("# ")
            .split(',')
            .position(|c| c == "status")?;
        lines.map_while(Result::ok).find_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.first() == Some(&backend) && f.get(1) == Some(&server))
                .then(|| f.get(column).map(|s| (*s).to_owned()))
                .flatten()
        })
    }

    /// Waits up to `within` for `server` of `backend` to have a status starting with
    /// `status` (`UP` also matches `UP 1/2`).
    #[must_use]
    pub fn wait_status(&self, backend: &str, server: &str, status: &str, within: Duration) -> bool {
        wait_until(within, || {
            self.status(backend, server)
                .is_some_and(|s| s.starts_with(status))
        })
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` consecutive ports, below the kernel's ephemeral range and below the ports the
/// weed tests pick (12000 and up), free on each of `ips`.
///
/// # Panics
/// When no such range is found.
#[must_use]
pub fn free_range(count: u16, ips: &[&str]) -> (u16, u16) {
    use std::hash::{BuildHasher as _, RandomState};
    let seed = RandomState::new();
    for n in 0..200u64 {
        let base = 5_000 + u16::try_from(seed.hash_one(n) % 6_500).unwrap_or(0);
        let all_free =
            (base..base + count).all(|p| ips.iter().all(|ip| TcpListener::bind((*ip, p)).is_ok()));
        if all_free {
            return (base, base + count - 1);
        }
    }
    panic!("no {count} free ports in a row");
}
