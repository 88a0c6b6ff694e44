//! Ferry's smol runtime: it owns the sockets, timers, TLS, limits and configuration, and
//! drives one [`ferry_core::Session`] per control connection. FTP syntax, replies and path
//! rules all come from the core; files and accounts from `ferry-backends`.
//!
//! # Modules
//!
//! Each depends only on those below it, never on one above (no import cycles):
//!
//! | module | owns |
//! |---|---|
//! | [`server`] | listeners, admission, the accept loops, shutdown; builds the context |
//! | `connection` | one control connection: the drive loop around a core session |
//! | `transfer` | moving bytes: buffer pool, send/receive pumps, `sendfile`, listings, ASCII |
//! | `bulk` | the lower-priority threads where large transfers carry on |
//! | `data` | data connections: passive ports, the peer check, active connect, data TLS |
//! | `context` | what every connection shares (settings, accounts, audit, TLS, limits, clock) |
//! | `limits` | connections per address and in total, failed-login bans |
//! | [`metrics`] | the Prometheus counters |
//! | `probe` | the `/metrics`, `/health` and `/ready` listener |
//! | `proxy` | the PROXY protocol: which peers send a header, reading exactly its bytes |
//! | [`tls`] | rustls configuration, control upgrade, data handshakes bound to the session |
//! | `clock` | the core's clock (a test seam), the wall clock, timeouts |
//! | [`config`], [`users`], [`logging`] | settings, accounts, log output |
//!
//! # Embedding
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferry_backends::{audit::AuditLog, memory::MemoryStorage};
//! use ferry_smol::{config::Settings, users::MemoryUsers, Server};
//!
//! let ex = Arc::new(smol::Executor::new());
//! smol::block_on(ex.run(async {
//!     let settings = Settings { listen: vec!["127.0.0.1:0".parse().unwrap()], ..Settings::default() };
//!     let users = MemoryUsers::new().with_user("alice", "secret", MemoryStorage::new());
//!     let server = Server::new(settings, users, AuditLog::from_writer(std::io::sink()));
//!     let bound = server.bind().await.unwrap();
//!     println!("listening on {:?}", bound.local_addrs());
//!     let stop = bound.shutdown_handle();
//!     // ... later: stop.trigger();
//!     bound.run(&ex).await;
//! }));
//! ```

mod bulk;
mod clock;
pub mod config;
mod connection;
mod context;
mod data;
mod limits;
pub mod logging;
pub mod metrics;
mod policy;
mod probe;
mod proxy;
pub mod server;
pub mod tls;
mod transfer;
pub mod users;

pub use server::{Bound, Server, Shutdown};
