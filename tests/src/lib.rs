//! Helpers for Ferry's end-to-end tests: they start the real `ferry` binary on a free
//! loopback port with a temporary data folder and drive it with real clients.
//!
//! What each module owns:
//! - [`bin`]: the `ferry` binary under test, built when missing or stale.
//! - [`server`]: [`ServerBuilder`] starts it, [`Server`] is the running process (its
//!   folders, log and audit log, clients connected to it) and stops it on drop.
//! - [`control`]: [`Control`], the raw control-connection client, with [`Reply`], PASV and
//!   EPSV parsing, connections from [`OTHER_HOST`] and resets.
//! - [`ftp_client`]: suppaftp connected with timeouts on every socket.
//! - [`clients`]: external programs: [`require_client`] and [`run_client`].
//! - [`files`]: test content, checksums, tree snapshots, upload temporaries.
//! - [`audit`]: the audit log's JSON lines as [`AuditRecord`]s.
//! - [`wait`]: [`wait_until`] and [`poll`], the one way the tests wait for a condition.
//! - [`weed`]: SeaweedFS, a real S3 server for the object-storage tests.
//!
//! Everything the tests use is re-exported here, so that they import from the crate root.

pub mod audit;
pub mod bin;
pub mod clients;
pub mod control;
pub mod files;
pub mod ftp_client;
pub mod haproxy;
pub mod http;
pub mod postgres;
pub mod server;
pub mod wait;
pub mod weed;

pub use audit::{AuditRecord, audit, parse_audit_line};
pub use bin::{ferry_bin, workspace_root};
pub use clients::{ClientOutput, curl, curl_ok, find_in_path, require_client, run_client, skipped};
pub use control::{
    Control, IO_TIMEOUT, OTHER_HOST, Reply, parse_epsv, parse_pasv, reset, tcp_connect_from,
};
pub use files::{
    file_mtimes, make_tree, random_bytes, set_mtime, sha256_file, sha256_hex, snapshot,
    temporaries, tree_sums,
};
pub use ftp_client::{ftp_connect, ftp_connect_anonymous};
pub use server::{SERVER_LIFETIME, Server, ServerBuilder};
pub use suppaftp::{self, Mode};
pub use wait::{POLL_INTERVAL, poll, wait_until};
