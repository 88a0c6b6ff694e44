//! Capacities and defaults, each with the reason for its value.
//!
//! Every buffer the core keeps has one of these as its bound, so that memory never grows
//! with what a client sends. The `DEFAULT_*` values are what [`Config::new`](crate::Config::new)
//! starts from; the runtime's settings default to the same constants.

use core::time::Duration;

/// Longest command line, without its CR LF, that the session accepts by default.
///
/// RFC 959 sets no limit; vsftpd accepts 4 KiB (`VSFTP_MAX_COMMAND_LINE`), which is also the
/// Linux `PATH_MAX`, so any path a file system can hold fits in one command. Configurable
/// through [`Config::max_line`](crate::Config::max_line).
pub const MAX_LINE: usize = 4096;

/// Longest normalised virtual path, in bytes. Linux's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;

/// Longest user name. Account names are at most 32 characters (`[A-Za-z0-9._-]{1,32}`), but a
/// client may type anything; longer names are refused at `USER` with 501.
pub const MAX_USER: usize = 64;

/// Longest password. Password managers produce up to 128 characters; 256 leaves room.
pub const MAX_PASSWORD: usize = 256;

/// Longest name pattern (`*.txt`) kept for a listing, and longest `HOST` name (RFC 1035: 253).
pub const MAX_PATTERN: usize = 255;

/// Replies one input can queue before its request: a transfer's own reply, then the 226 of
/// an `ABOR` and the 221 of a `QUIT` (or the 421 of a shutdown) that came during it. The
/// session handles one command per
/// [`Session::handle_input`](crate::Session::handle_input) call, so the queue never holds
/// more than this.
pub const MAX_REPLIES: usize = 4;

/// The 220 greeting. It names the server but not its version, which would only help an
/// attacker choose an exploit.
pub const DEFAULT_GREETING: &str = "Ferry FTP server ready.";

/// Time without a command after which a session is closed with 421: vsftpd's
/// `idle_session_timeout`, long enough to read a listing and type the next command.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Delay before the reply to the first failed login, doubled with each further failure:
/// vsftpd's `delay_failed_login`. A person who mistyped barely notices; a password guesser
/// on one connection gets one try per second at best.
pub const DEFAULT_LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Failed logins after which a connection is closed: vsftpd's `max_login_fails`. Enough for
/// a person's typos; a guesser must reconnect, and the runtime counts failed logins per
/// address across connections.
pub const DEFAULT_MAX_LOGIN_FAILURES: u32 = 3;
