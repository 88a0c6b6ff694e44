//! The PROXY protocol on accepted connections: which peers must send a header
//! ([`ProxyPolicy`]), and reading one ([`read_header`]), exactly its bytes, before a deadline.
//! The core parses ([`ferry_core::parse_proxy_header`]); this module owns the socket side.
//!
//! The address a header gives is the client's address for everything after it: the limits
//! and bans, the passive-connection peer check, the PORT/EPRT target check, the logs and
//! the audit log. A connection that should carry a header and does not, or carries a bad
//! one, is closed with a log line; nothing it sent is trusted.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use ferry_core::{ProxyAddresses, ProxyError, ProxyParse, V2_MAX_PAYLOAD, parse_proxy_header};
use smol::Async;
use smol::io::AsyncReadExt as _;

use crate::clock::timeout;
use crate::config::{Cidr, ProxyMode, Settings};

/// How long a trusted peer may take to send its header: a balancer sends it with its first
/// segment, at once.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Which peers must send a header.
#[derive(Debug, Clone)]
pub(crate) struct ProxyPolicy {
    mode: ProxyMode,
    from: Vec<Cidr>,
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A client connecting directly: no header.
    Direct,
    /// A balancer: read its header first.
    Header,
    /// Refuse: a header is required, and this peer may not send one.
    Refuse,
}

impl ProxyPolicy {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            mode: settings.proxy_protocol,
            from: settings.proxy_from.clone(),
        }
    }

    /// What a connection from `peer` must start with.
    pub(crate) fn expect(&self, peer: IpAddr) -> Expect {
        let trusted = || Cidr::any_contains(&self.from, peer);
        match self.mode {
            ProxyMode::Off => Expect::Direct,
            ProxyMode::Optional if trusted() => Expect::Header,
            ProxyMode::Optional => Expect::Direct,
            ProxyMode::Required if trusted() => Expect::Header,
            ProxyMode::Required => Expect::Refuse,
        }
    }
}

/// Why a header could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("{0}")]
    Bad(#[from] ProxyError),
    #[error("no PROXY header within {}s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    #[error("the connection closed before its PROXY header ended")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads the header at the start of `stream`, and no byte after it, within
/// [`HEADER_TIMEOUT`] (or `within`, if shorter). Returns the client's address: the
/// header's source, or `peer` for a LOCAL or UNKNOWN header (the balancer's own check).
pub(crate) async fn read_header(
    stream: &Async<TcpStream>,
    peer: SocketAddr,
    within: Duration,
) -> Result<SocketAddr, HeaderError> {
    match timeout(within.min(HEADER_TIMEOUT), read(stream)).await {
        None => Err(HeaderError::Timeout),
        Some(Ok(ProxyAddresses::Proxied { source, .. })) => Ok(source),
        Some(Ok(ProxyAddresses::Local)) => Ok(peer),
        Some(Err(e)) => Err(e),
    }
}

async fn read(stream: &Async<TcpStream>) -> Result<ProxyAddresses, HeaderError> {
    let mut buf = vec![0u8; 16 + V2_MAX_PAYLOAD];
    // Usually the whole header is in the first segment: look at it without taking it,
    // then take exactly the header.
    let seen = stream.peek(&mut buf).await?;
    if seen == 0 {
        return Err(HeaderError::Closed);
    }
    if let ProxyParse::Header { addresses, len } = parse_proxy_header(&buf[..seen])? {
        let mut reader = stream;
        reader.read_exact(&mut buf[..len]).await?;
        return Ok(addresses);
    }
    // Split across segments: read what the parser asks for, which is all header.
    let mut have = 0;
    loop {
        match parse_proxy_header(&buf[..have])? {
            ProxyParse::Header { addresses, .. } => return Ok(addresses),
            ProxyParse::Need(n) => {
                let mut reader = stream;
                reader
                    .read_exact(&mut buf[have..have + n])
                    .await
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => HeaderError::Closed,
                        _ => HeaderError::Io(e),
                    })?;
                have += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::TcpListener;

    use super::*;

    fn pair() -> (TcpStream, Async<TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, Async::new(s).unwrap())
    }

    const PEER: &str = "127.0.0.1:1";

    #[test]
    fn reads_exactly_the_header_whole_or_in_pieces() {
        smol::block_on(async {
            let (mut c, s) = pair();
            c.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 21\r\nUSER a\r\n")
                .unwrap();
            let got = read_header(&s, PEER.parse().unwrap(), HEADER_TIMEOUT).await;
            assert_eq!(got.unwrap(), "203.0.113.7:4000".parse().unwrap());
            let mut rest = [0u8; 8];
            (&s).read_exact(&mut rest).await.unwrap();
            assert_eq!(&rest, b"USER a\r\n");

            // Split: the header arrives in three writes, then the client's bytes.
            let (mut c, s) = pair();
            let t = std::thread::spawn(move || {
                for piece in [&b"PROXY TCP6 2001:db8::5 "[..], b"::1 5", b"5 21\r\nX"] {
                    c.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_millis(30));
                }
                c
            });
            let got = read_header(&s, PEER.parse().unwrap(), HEADER_TIMEOUT).await;
            assert_eq!(got.unwrap(), "[2001:db8::5]:55".parse().unwrap());
            let mut rest = [0u8; 1];
            (&s).read_exact(&mut rest).await.unwrap();
            assert_eq!(&rest, b"X");
            drop(t.join());
        });
    }

    #[test]
    fn refuses_bad_missing_and_late_headers() {
        smol::block_on(async {
            let (mut c, s) = pair();
            c.write_all(b"USER anonymous\r\n").unwrap();
            let got = read_header(&s, PEER.parse().unwrap(), HEADER_TIMEOUT).await;
            assert!(
                matches!(got, Err(HeaderError::Bad(ProxyError::NotAHeader))),
                "{got:?}"
            );

            let (mut c, s) = pair();
            c.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
            drop(c);
            let got = read_header(&s, PEER.parse().unwrap(), HEADER_TIMEOUT).await;
            assert!(matches!(got, Err(HeaderError::Closed)), "{got:?}");

            let (_c, s) = pair();
            let got = read_header(&s, PEER.parse().unwrap(), Duration::from_millis(50)).await;
            assert!(matches!(got, Err(HeaderError::Timeout)), "{got:?}");
        });
    }

    #[test]
    fn policy() {
        let mut s = Settings {
            proxy_from: vec!["10.0.0.0/8".parse().unwrap()],
            ..Settings::default()
        };
        let ip = |a: &str| a.parse().unwrap();
        s.proxy_protocol = ProxyMode::Optional;
        let p = ProxyPolicy::new(&s);
        assert_eq!(p.expect(ip("10.1.2.3")), Expect::Header);
        assert_eq!(p.expect(ip("192.0.2.1")), Expect::Direct);
        s.proxy_protocol = ProxyMode::Required;
        let p = ProxyPolicy::new(&s);
        assert_eq!(p.expect(ip("10.1.2.3")), Expect::Header);
        assert_eq!(p.expect(ip("192.0.2.1")), Expect::Refuse);
        s.proxy_protocol = ProxyMode::Off;
        assert_eq!(ProxyPolicy::new(&s).expect(ip("10.1.2.3")), Expect::Direct);
    }
}
