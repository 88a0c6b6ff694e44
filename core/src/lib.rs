//! Ferry's protocol core: a deterministic FTP session machine with no I/O.
//!
//! `ferry-core` turns the bytes of an FTP control connection into events for a runtime to
//! carry out, and the runtime's reports back into replies. It contains no networking code,
//! no file system, no threads and no clock: time is a value the runtime passes in. The same
//! core therefore runs under smol, tokio, a blocking thread per connection, or a test that
//! checks events without any socket. It is `#![no_std]` and needs no allocator (the `alloc`
//! feature makes paths heap-backed, which keeps idle sessions small).
//!
//! # Driving a session
//!
//! The runtime owns the socket and a buffer of at least [`Session::input_capacity`] bytes.
//! **The drain rule:** after every `handle_*` call, call [`Session::poll_event`] until it
//! returns `None` and carry out each event in order; only then wait for more input, for
//! the outcome of what you started, or for [`Session::poll_timeout`].
//!
//! ```
//! use core::net::SocketAddr;
//! use ferry_core::{Config, Event, Instant, LoginInfo, Outcome, Request, Session};
//!
//! let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
//! let local: SocketAddr = "127.0.0.1:2121".parse().unwrap();
//! let mut session = Session::new(Config::default(), peer, local, Instant::from_micros(0));
//! let mut wire = String::new(); // what we would write to the socket
//! let mut input: Vec<u8> = b"USER alice\r\nPASS secret\r\nPWD\r\nQUIT\r\n".to_vec();
//! let now = Instant::from_micros(1);
//!
//! loop {
//!     // Drain: perform every event the session asks for.
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Reply(reply) => wire.push_str(&reply.to_string()),
//!             Event::Request(Request::CheckLogin { id, user, password }) => {
//!                 // A real runtime checks the users file, off the I/O thread.
//!                 let ok = user.as_str() == "alice" && password.expose().as_str() == "secret";
//!                 let result = if ok { Ok(LoginInfo::default()) } else { Err(ferry_core::LoginError::Rejected) };
//!                 session.handle_outcome(Outcome::LoginChecked { id, result }, now);
//!             }
//!             Event::Request(Request::Close) => {}
//!             other => unreachable!("not in this dialog: {other:?}"),
//!         }
//!     }
//!     if session.is_closed() || input.is_empty() {
//!         break;
//!     }
//!     // Offer what was read; keep what the session did not use.
//!     let used = session.handle_input(&input, now);
//!     input.drain(..used);
//! }
//! assert_eq!(
//!     wire,
//!     "220 Ferry FTP server ready.\r\n331 Please specify the password.\r\n\
//!      230 Login successful.\r\n257 \"/\" is the current directory.\r\n221 Goodbye.\r\n"
//! );
//! ```
//!
//! A storage request ([`Request::Storage`]), a passive listener ([`Request::OpenPassive`])
//! and a transfer ([`Request::Transfer`]) work the same way: do it, then report an
//! [`Outcome`] with the request's [`OpId`]. While one is pending the session takes no input
//! (except `ABOR`, `STAT`, `NOOP` and `QUIT` during a transfer), so a runtime never needs
//! more than one request in flight per connection.
//!
//! # What lives where
//!
//! The modules are private; what an embedder uses is re-exported at the crate root.
//!
//! | module | owns |
//! |---|---|
//! | `framing` | lines out of a byte stream: CR optional, telnet sequences removed, bounded length |
//! | `parse`, `command` | the grammar (nom, one function per RFC rule) and the zero-copy [`Command`] |
//! | `session` | the machine ([`Session`]): state, inputs, outputs, and the command table |
//! | `session/access` | `USER`, `PASS`, `REIN`, `QUIT`, `AUTH`, `PBSZ`, `PROT`, login delays |
//! | `session/transfers` | `TYPE`, `MODE`, `REST`, `PORT`/`EPRT`, `PASV`/`EPSV`, `RETR`, `STOR`, `APPE`, `STOU`, `ABOR` |
//! | `session/files` | `CWD`, `MKD`, `RMD`, `DELE`, `RNFR`/`RNTO`, `SIZE`, `MDTM`, `MFMT`, `SITE` |
//! | `session/listings` | `LIST`, `NLST`, `MLSD`, `MLST`, `STAT`, `FEAT`, `OPTS` |
//! | `session/state` | the enums a session is made of (phase, pending request, transfer role, ...) |
//! | `event`, `outcome` | [`Event`]/[`Request`] out to the runtime, [`Outcome`] back in |
//! | `reply` | every reply text, by name, and how replies are encoded |
//! | `listing` | `LIST`/`NLST`/`MLSD` line formats and `*`/`?` patterns |
//! | `path` | [`VirtualPath`], the lexical half of the jail |
//! | `proxy` | the PROXY protocol header (v1, v2) a load balancer sends first: [`parse_proxy_header`] |
//! | `ascii` | `TYPE A` line-end conversion ([`ToNetwork`], [`FromNetwork`]) |
//! | `limits` | every capacity, with its reason |
//!
//! **Adding a command** touches four places: the parser's verb table and argument grammar
//! (`parse.rs`), a variant of [`Command`] with its [`Command::encode`] arm (`command.rs`),
//! one arm in the command table (`Session::command`, which says in which login state the
//! command is valid) calling a handler in the session module of its concern, and the
//! handler's replies, by name, in `reply.rs`. A command that needs the runtime adds a
//! [`Request`] variant and the [`Outcome`] that answers it.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod ascii;
mod command;
mod config;
mod event;
// Reachable from outside only through `testing` (the framing fuzz target checks it alone).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
mod framing;
pub mod limits;
mod listing;
mod outcome;
mod parse;
mod path;
mod proxy;
mod reply;
mod secret;
mod session;
mod storage;
mod text;
mod time;

pub use ascii::{FromNetwork, ToNetwork};
pub use command::{
    AuthMechanism, Command, DataType, EpsvArg, FileStructure, ListArgs, OptsArg, ProtLevel,
    SiteCommand, TransferMode,
};
pub use config::{Config, TlsMode};
pub use event::{
    DataChannel, Event, Family, ListFormat, ListRequest, Password, Request, StorageOp, Transfer,
    TransferKind, UserName,
};
pub use listing::{Facts, glob_match};
pub use outcome::{DataError, LoginError, LoginInfo, OpId, Outcome, StorageReply, TransferError};
pub use parse::{ParseError, parse_command};
pub use path::{PathError, VirtualPath};
pub use proxy::{
    ProxyAddresses, ProxyError, ProxyParse, V1_MAX, V2_MAX_PAYLOAD, V2_SIGNATURE,
    parse_proxy_header,
};
pub use reply::{InsufficientSize, Message, Refusal, Reply, Status};
pub use secret::Secret;
pub use session::Session;
pub use storage::{Entry, FileKind, Metadata, Permission, StorageError, WriteMode};
pub use text::{CapacityError, Text};
pub use time::{DateTime, Instant, UnixTime};

/// Internals that the fuzz targets and the core's own tests check on their own (the
/// `testing` feature). Not part of the stable API.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::framing::{Frame, Framer, IAC, strip_telnet};
}
