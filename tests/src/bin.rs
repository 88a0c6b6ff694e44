//! The `ferry` binary under test: where it is, building it when it is missing or older
//! than the server's sources, and a clean command line to run it with.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

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

/// A command running `bin` (the `ferry` binary, or a wrapper of it) without any `FERRY_*`
/// variable of the environment, nor `RUST_LOG`.
pub(crate) fn ferry_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
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

fn newest_mtime(path: &Path, newest: &mut Option<SystemTime>) {
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
