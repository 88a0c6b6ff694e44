//! The raw control connection: [`Control`] sends lines or bytes and reads replies
//! (multi-line ones per RFC 959), every read and write with a timeout; plus the plain TCP
//! pieces around it: PASV/EPSV replies parsed, connections from another loopback address,
//! and resets.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any single read or write on a test socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// The loopback address tests use as a second, different client host.
pub const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Sets [`IO_TIMEOUT`] on reads and writes of `s`.
pub(crate) fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
}

/// One reply: its code and its lines (without CR LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line, the code included, without the line end.
    pub lines: Vec<String>,
    /// Whether every line ended with CR LF.
    pub crlf: bool,
}

impl Reply {
    /// All lines joined with `\n`.
    #[must_use]
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Whether it spans several lines.
    #[must_use]
    pub fn is_multiline(&self) -> bool {
        self.lines.len() > 1
    }
}

/// A raw control connection with a timeout on every read and write.
pub struct Control {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Control {
    /// Connects to `addr`; the greeting is not read.
    ///
    /// # Panics
    /// When the connection fails.
    #[must_use]
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"))
    }

    /// Connects to `addr` from the local address `from` (e.g. 127.0.0.2).
    ///
    /// # Panics
    /// When the connection fails.
    #[must_use]
    pub fn connect_from(from: IpAddr, addr: SocketAddr) -> Self {
        Self::from_stream(tcp_connect_from(from, addr).expect("connect from another address"))
    }

    /// Wraps a connected stream.
    ///
    /// # Panics
    /// When the socket cannot be set up.
    #[must_use]
    pub fn from_stream(stream: TcpStream) -> Self {
        set_timeouts(&stream);
        let reader = BufReader::new(stream.try_clone().expect("clone socket"));
        Self { stream, reader }
    }

    /// The socket.
    #[must_use]
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).expect("read timeout");
    }

    /// Sends `line` followed by CR LF.
    ///
    /// # Panics
    /// When the write fails.
    pub fn send(&mut self, line: &str) {
        self.try_send_raw(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    /// Sends bytes as they are.
    ///
    /// # Panics
    /// When the write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).expect("sending raw bytes");
    }

    /// Sends bytes as they are.
    ///
    /// # Errors
    /// When the write fails.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one reply.
    ///
    /// # Panics
    /// On a timeout, the end of the connection, or a malformed reply.
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads one reply (RFC 959 4.2: `ddd-` opens a multi-line reply that ends at a line
    /// starting with the same `ddd `).
    ///
    /// # Errors
    /// On a timeout, the end of the connection (`UnexpectedEof`), or a malformed line
    /// (`InvalidData`).
    pub fn try_read_reply(&mut self) -> io::Result<Reply> {
        let (first, mut crlf) = self.read_line()?;
        let code = reply_code(&first).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a reply line: {first:?}"),
            )
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let (line, ok) = self.read_line()?;
                crlf &= ok;
                let last = line.starts_with(&end) || line == code.to_string();
                lines.push(line);
                if last {
                    break;
                }
                if lines.len() > 100_000 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "multi-line reply without end",
                    ));
                }
            }
        }
        Ok(Reply { code, lines, crlf })
    }

    /// Reads one line; says whether it ended with CR LF.
    fn read_line(&mut self) -> io::Result<(String, bool)> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if buf.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line without end: {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.pop();
        let crlf = buf.last() == Some(&b'\r');
        if crlf {
            buf.pop();
        }
        Ok((String::from_utf8_lossy(&buf).into_owned(), crlf))
    }

    /// Sends `line` and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read_reply()
    }

    /// Sends `line` and asserts the reply's code.
    ///
    /// # Panics
    /// When the code differs.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} got {r:?}");
        r
    }

    /// Sends `line`, asserts that it opens a transfer (150) and that the transfer ends
    /// with `code`.
    ///
    /// # Panics
    /// When either code differs.
    pub fn transfer_ends(&mut self, line: &str, code: u16) -> Reply {
        self.expect(line, 150);
        let r = self.read_reply();
        assert_eq!(r.code, code, "{line:?} ended with {r:?}");
        r
    }

    /// Sends each line of `script` in turn and asserts its reply's code.
    ///
    /// # Panics
    /// When a code differs.
    pub fn expect_all(&mut self, script: &[(&str, u16)]) {
        for &(line, code) in script {
            self.expect(line, code);
        }
    }

    /// Sends each of `lines` in turn and asserts `ok` of its reply.
    ///
    /// # Panics
    /// When a reply is not `ok`.
    pub fn expect_each(&mut self, lines: &[&str], ok: impl Fn(&Reply) -> bool) {
        for &line in lines {
            let r = self.cmd(line);
            assert!(ok(&r), "{line:?} got {r:?}");
        }
    }

    /// Logs in.
    ///
    /// # Panics
    /// When the login fails.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// Sends `PASV` and connects to the announced port.
    ///
    /// # Panics
    /// When PASV fails or the connection cannot be made.
    pub fn pasv(&mut self) -> TcpStream {
        let addr = self.pasv_addr();
        // From the control connection's own address, as a real client would.
        let local = self.stream.local_addr().expect("local address").ip();
        tcp_connect_from(local, addr).expect("data connection")
    }

    /// Sends `PASV` and returns the announced address.
    ///
    /// # Panics
    /// When PASV fails.
    pub fn pasv_addr(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_pasv(&r.lines[0]).unwrap_or_else(|| panic!("bad 227: {r:?}"))
    }

    /// Opens a passive data connection, then sends `command` (`RETR x`, `STOR x`, `LIST`)
    /// and asserts that it is answered 150; returns the data connection, the transfer
    /// under way.
    ///
    /// # Panics
    /// When PASV or the command fails.
    pub fn data_command(&mut self, command: &str) -> TcpStream {
        let data = self.pasv();
        self.expect(command, 150);
        data
    }

    /// Sets the transfer type (`"I"` or `"A"`), then opens a passive data connection for
    /// `command`, which must answer 150.
    ///
    /// # Panics
    /// When TYPE, PASV or the command fails.
    pub fn data_in(&mut self, kind: &str, command: &str) -> TcpStream {
        self.expect(&format!("TYPE {kind}"), 200);
        self.data_command(command)
    }

    /// Downloads `path` in binary over a passive connection.
    ///
    /// # Panics
    /// When the download fails.
    pub fn retr(&mut self, path: &str) -> Vec<u8> {
        self.retr_as("I", path)
    }

    /// Downloads `path` in transfer type `kind` (`"I"` or `"A"`) over a passive
    /// connection.
    ///
    /// # Panics
    /// When the download fails.
    pub fn retr_as(&mut self, kind: &str, path: &str) -> Vec<u8> {
        let mut data = self.data_in(kind, &format!("RETR {path}"));
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).expect("reading the download");
        let r = self.read_reply();
        assert_eq!(r.code, 226, "RETR {path} ended with {r:?}");
        buf
    }

    /// Uploads `bytes` to `path` in binary over a passive connection.
    ///
    /// # Panics
    /// When the upload fails.
    pub fn stor(&mut self, path: &str, bytes: &[u8]) {
        let mut data = self.data_in("I", &format!("STOR {path}"));
        data.write_all(bytes).expect("writing the upload");
        drop(data);
        let r = self.read_reply();
        assert_eq!(r.code, 226, "STOR {path} ended with {r:?}");
    }

    /// Runs a listing command (`LIST`, `NLST x`, `MLSD`) over a passive connection and
    /// returns the reply to the command and the listing (empty when refused).
    ///
    /// # Panics
    /// When the data connection or a read fails.
    pub fn listing(&mut self, command: &str) -> (Reply, String) {
        let mut data = self.pasv();
        let r = self.cmd(command);
        if r.code != 150 {
            return (r, String::new());
        }
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).expect("reading the listing");
        let end = self.read_reply();
        (end, String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads until the server closes the connection; returns what came (replies).
    #[must_use]
    pub fn read_to_close(&mut self, within: Duration) -> (String, bool) {
        let deadline = Instant::now() + within;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&all).into_owned(), true),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (String::from_utf8_lossy(&all).into_owned(), true),
            }
            if Instant::now() >= deadline {
                return (String::from_utf8_lossy(&all).into_owned(), false);
            }
        }
    }
}

/// The code of a reply line: three digits then a space, a dash, or the end.
fn reply_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || !matches!(b[3], b' ' | b'-') {
        return None;
    }
    line[..3].parse().ok()
}

/// Parses `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
#[must_use]
pub fn parse_pasv(line: &str) -> Option<SocketAddr> {
    let inner = line.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u8> = inner
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    if n.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some(SocketAddr::new(
        ip.into(),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// Parses the port of `229 Entering Extended Passive Mode (|||port|).`
#[must_use]
pub fn parse_epsv(line: &str) -> Option<u16> {
    line.split("(|||").nth(1)?.split('|').next()?.parse().ok()
}

/// A TCP connection to `to` from the local address `from`.
///
/// # Errors
/// When the socket cannot be bound or connected.
pub fn tcp_connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let family = if from.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::bind(&fd, &SocketAddr::new(from, 0))?;
    rustix::net::connect(&fd, &to)?;
    let s = TcpStream::from(fd);
    set_timeouts(&s);
    Ok(s)
}

/// Closes `stream` with a reset (SO_LINGER 0), as a crashed client or a broken network
/// would, rather than with an orderly FIN.
pub fn reset(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_addresses_parse() {
        assert_eq!(reply_code("220 hi"), Some(220));
        assert_eq!(reply_code("211-x"), Some(211));
        assert_eq!(reply_code(" 211 x"), None);
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80).").unwrap(),
            "127.0.0.1:50000".parse().unwrap()
        );
        assert_eq!(
            parse_epsv("229 Entering Extended Passive Mode (|||50001|)."),
            Some(50001)
        );
    }
}
