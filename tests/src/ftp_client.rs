//! suppaftp, the Rust FTP client the tests drive the server with: connected with timeouts
//! on the control socket and on every passive data socket.

use std::net::{SocketAddr, TcpStream};

use suppaftp::{FtpStream, Mode};

use crate::control::{IO_TIMEOUT, set_timeouts};

/// Connects suppaftp to `addr` and logs in, with timeouts on the control socket and on
/// passive data sockets.
///
/// # Panics
/// When connecting or logging in fails.
#[must_use]
pub fn ftp_connect(addr: SocketAddr, user: &str, password: &str, mode: Mode) -> FtpStream {
    let mut ftp = ftp_connect_anonymous(addr, mode);
    ftp.login(user, password)
        .unwrap_or_else(|e| panic!("login as {user}: {e}"));
    ftp
}

/// Connects suppaftp to `addr` without logging in.
///
/// # Panics
/// When connecting fails.
#[must_use]
pub fn ftp_connect_anonymous(addr: SocketAddr, mode: Mode) -> FtpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    set_timeouts(&stream);
    let mut ftp = FtpStream::connect_with_stream(stream)
        .expect("greeting")
        .passive_stream_builder(|addr| {
            let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                .map_err(suppaftp::FtpError::ConnectionError)?;
            set_timeouts(&s);
            Ok(s)
        });
    if mode == Mode::Active {
        ftp = ftp.active_mode(IO_TIMEOUT);
    } else {
        ftp.set_mode(mode);
    }
    ftp
}
