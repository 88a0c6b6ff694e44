//! Ferry's protocol core: a deterministic FTP session machine with no I/O.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod limits;
pub mod path;
pub mod storage;
pub mod text;
pub mod time;

pub use path::{PathError, VirtualPath};
pub use storage::{Entry, FileKind, Metadata, StorageError, WriteMode};
pub use text::{CapacityError, Text};
pub use time::{DateTime, Instant, UnixTime};
