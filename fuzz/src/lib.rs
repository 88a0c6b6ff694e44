//! Ferry's fuzz checks, shared with the stable regression test in `core/tests/`.

#[path = "../../core/tests/fuzz_checks/mod.rs"]
mod checks;

pub use checks::{command, framing, path, proxy, session};
