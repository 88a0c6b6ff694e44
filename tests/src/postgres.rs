//! A real PostgreSQL for the account-store tests: Debian's `postgresql` binaries (`initdb`,
//! `pg_ctl`), a cluster made in a temporary folder with trust authentication, on a free
//! loopback port. As root it runs as the user `postgres` (PostgreSQL refuses root). Dropping
//! it stops the server (`pg_ctl stop`, then its PID).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::clients::skipped;
use super::find_in_path;
use super::haproxy::free_range;

/// A running PostgreSQL.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    running: bool,
}

/// The folder of `initdb` and `pg_ctl`: on `PATH`, or Debian's `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(p) = find_in_path("initdb") {
        // Through symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb), to
        // the folder that has psql too.
        let p = fs::canonicalize(&p).unwrap_or(p);
        let dir = p.parent()?.to_path_buf();
        if dir.join("pg_ctl").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// The uid and gid of the user `postgres`.
fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Postgres {
    /// Makes a cluster and starts it, or `None` (with a `SKIPPED:` line) when PostgreSQL
    /// is not installed.
    ///
    /// # Panics
    /// When it is installed but does not start, or is missing under
    /// `FERRY_REQUIRE_CLIENTS=1`.
    #[must_use]
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            let required = std::env::var("FERRY_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "postgres is not installed, and FERRY_REQUIRE_CLIENTS=1 requires it"
            );
            skipped("postgres not installed");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ferry-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let (uid, gid) = postgres_ids().expect("a user postgres to run PostgreSQL as");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let mut pg = Self {
            port: free_range(1, &["127.0.0.1"]).0,
            dir,
            bin,
            running: false,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Runs one of PostgreSQL's programs, as `postgres` when root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
    }

    /// Starts the server (again), and waits until it takes connections.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_again(&mut self) {
        let options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.dir.path().display(),
            self.port
        );
        let log = self.dir.path().join("postgres.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server (fast: open sessions are cut).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Its URL, for `--accounts`.
    #[must_use]
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` with `psql` (for what Ferry offers no command for); its output.
    ///
    /// # Panics
    /// When psql fails.
    #[must_use]
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-At",
                "-c",
                sql,
            ],
        );
        assert!(out.status.success(), "psql {sql:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Its folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.run(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }
    }
}
