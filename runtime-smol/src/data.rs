//! Data connections: passive listeners bound from the configured port range, accepting only
//! the control connection's peer, connecting to the (core-checked) active address, and the
//! TLS handshake on the data connection. Moves no bytes: `transfer.rs` does, over the
//! stream [`open`] returns.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ferry_core::TransferError;
use smol::Async;
use smol::io::{AsyncRead, AsyncWrite};

use crate::clock::timeout;
use crate::config::PortRange;
use crate::metrics::Metrics;
use crate::proxy::{Expect, ProxyPolicy, read_header};
use crate::tls::{DataTls, Stream as TlsStream};

/// How to make the data connection.
pub(crate) enum DataPlan {
    /// Accept one connection from the control connection's peer on this listener.
    Passive(Async<TcpListener>),
    /// Connect to this address.
    Active(SocketAddr),
}

/// A data connection to make, and on what terms.
pub(crate) struct DataLink {
    pub plan: DataPlan,
    /// The control connection's peer: the only address a passive port accepts.
    pub peer: SocketAddr,
    /// How long the data connection (and its TLS handshake) may take to appear.
    pub within: Duration,
    /// TLS for the data connection (PROT P), if any.
    pub tls: Option<DataTls>,
    /// Which peers of a passive port send a PROXY header (a balancer's data connections).
    pub proxy: Arc<ProxyPolicy>,
    /// Counts TLS handshakes and PROXY refusals.
    pub metrics: Arc<Metrics>,
    /// Where a passive listener goes once its connection is accepted.
    pub pool: Arc<ListenerPool>,
}

/// A data connection, plain or TLS.
// Not boxed: a transfer's future is boxed already, and it holds one of the two.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DataStream {
    Plain(Async<TcpStream>),
    Tls(TlsStream),
}

/// Reads and writes go to whichever connection it is.
impl AsyncRead for DataStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s).poll_close(cx),
        }
    }
}

/// Makes the data connection `link` describes, with its TLS handshake if it has one. An
/// upload's handshake hands out no session ticket (see [`crate::tls`]).
pub(crate) async fn open(link: DataLink, upload: bool) -> Result<DataStream, TransferError> {
    let stream = connect(
        link.plan,
        link.peer,
        link.within,
        (&link.proxy, &link.metrics, &link.pool),
    )
    .await?;
    match link.tls {
        Some(tls) => {
            let accepted = tls.accept(stream, link.within, upload).await;
            link.metrics.tls("data", accepted.is_ok());
            Ok(DataStream::Tls(accepted?))
        }
        None => Ok(DataStream::Plain(stream)),
    }
}

/// Who says which peers send a PROXY header, who counts the refusals, and where the
/// passive listener goes afterwards.
type Watch<'a> = (&'a ProxyPolicy, &'a Metrics, &'a ListenerPool);

/// Makes the TCP connection as `plan` says.
async fn connect(
    plan: DataPlan,
    peer: SocketAddr,
    within: Duration,
    link: Watch<'_>,
) -> Result<Async<TcpStream>, TransferError> {
    let stream = match plan {
        DataPlan::Passive(listener) => {
            let stream = accept_peer(&listener, peer, within, (link.0, link.1)).await?;
            // Its connection is made: the next passive transfer (of any session) may take it.
            link.2.put(listener);
            stream
        }
        DataPlan::Active(addr) => timeout(within, Async::<TcpStream>::connect(addr))
            .await
            .and_then(Result::ok)
            .ok_or(TransferError::DataConnection)?,
    };
    // Each write is large anyway; this stops the last small segment of a small file from
    // waiting for a delayed ACK.
    let _ = stream.get_ref().set_nodelay(true);
    Ok(stream)
}

/// Accepts the first connection from the control connection's host; refuses and logs any
/// other (passive port hijacking). Through a balancer, the host is the one its PROXY
/// header names.
async fn accept_peer(
    listener: &Async<TcpListener>,
    peer: SocketAddr,
    within: Duration,
    (proxy, metrics): (&ProxyPolicy, &Metrics),
) -> Result<Async<TcpStream>, TransferError> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match timeout(left, listener.accept()).await {
            None => return Err(TransferError::DataConnection),
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "accepting a data connection failed");
                return Err(TransferError::DataConnection);
            }
            Some(Ok((stream, from))) => {
                let client = match proxy.expect(from.ip()) {
                    Expect::Direct => from,
                    Expect::Header => match read_header(&stream, from, left).await {
                        Ok(client) => client,
                        Err(e) => {
                            tracing::warn!(%peer, from = %from, error = %e, "refused a data connection: bad PROXY header");
                            metrics.proxy_refused("data", "bad");
                            continue;
                        }
                    },
                    Expect::Refuse => {
                        tracing::warn!(%peer, from = %from, "refused a data connection: not from --proxy-from, and a PROXY header is required");
                        metrics.proxy_refused("data", "untrusted");
                        continue;
                    }
                };
                if client.ip().to_canonical() == peer.ip().to_canonical() {
                    return Ok(stream);
                }
                tracing::warn!(%peer, intruder = %client, "refused a data connection from another address than the client's");
            }
        }
    }
}

/// Binds a passive listener on `ip`, from `range` if one is configured.
pub(crate) fn bind_passive(ip: IpAddr, range: Option<PortRange>) -> io::Result<Async<TcpListener>> {
    let Some(range) = range else {
        return Async::<TcpListener>::bind((ip, 0));
    };
    // Start at a pseudo-random port and walk the range once, so that concurrent sessions
    // spread out and a used port is skipped.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let len = range.len();
    let first = (seed as usize) % len;
    let mut last_err = None;
    for i in 0..len {
        let port = range.start + u16::try_from((first + i) % len).unwrap_or(0);
        match Async::<TcpListener>::bind((ip, port)) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(ErrorKind::AddrInUse, "no free passive port")))
}

/// How long a passive listener waits in the [`ListenerPool`] for its next transfer.
const POOLED_FOR: Duration = Duration::from_secs(2);

/// Most listeners the pool keeps (fewer for a small `--passive-ports` range: a quarter of it).
const POOLED_LISTENERS: usize = 64;

/// Passive listeners whose data connection was made, kept for the next passive transfer of any
/// session for [`POOLED_FOR`]: a small transfer then costs no `socket`, `bind`, `listen` and
/// `close` for its listener. `bind` to a port of a range is the dearest of these: the kernel
/// walks every connection on that port, and each download leaves one in TIME_WAIT there for a
/// minute (profile in BENCHMARKS.md). A listener taken from the pool is drained first, so that
/// nothing that connected while it waited is taken for the new transfer; the peer check of
/// [`accept_peer`] holds as for a new listener.
pub(crate) struct ListenerPool {
    kept: std::sync::Mutex<Vec<Pooled>>,
    max: usize,
}

struct Pooled {
    listener: Async<TcpListener>,
    addr: SocketAddr,
    since: std::time::Instant,
}

impl ListenerPool {
    /// A pool for listeners bound from `range` (any port if `None`).
    pub(crate) fn new(range: Option<PortRange>) -> Self {
        let max = range.map_or(POOLED_LISTENERS, |r| POOLED_LISTENERS.min(r.len() / 4));
        Self {
            kept: std::sync::Mutex::new(Vec::new()),
            max,
        }
    }

    /// Keeps `listener` for a later transfer, or closes it if the pool is full.
    pub(crate) fn put(&self, listener: Async<TcpListener>) {
        if self.max == 0 {
            return;
        }
        let Ok(addr) = listener.get_ref().local_addr() else {
            return;
        };
        let now = std::time::Instant::now();
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|p| now.duration_since(p.since) < POOLED_FOR);
            if kept.len() < self.max {
                kept.push(Pooled {
                    listener,
                    addr,
                    since: now,
                });
            }
        }
    }

    /// A kept listener on `ip`, drained, with its address; `None` if there is none.
    pub(crate) fn take(&self, ip: IpAddr) -> Option<(Async<TcpListener>, SocketAddr)> {
        let now = std::time::Instant::now();
        loop {
            let found = {
                let mut kept = self.kept.lock().ok()?;
                kept.retain(|p| now.duration_since(p.since) < POOLED_FOR);
                let i = kept.iter().rposition(|p| p.addr.ip() == ip)?;
                kept.swap_remove(i)
            };
            if drain(&found.listener) {
                return Some((found.listener, found.addr));
            }
        }
    }

    /// Closes the listeners that waited longer than [`POOLED_FOR`].
    pub(crate) fn expire(&self) {
        let now = std::time::Instant::now();
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|p| now.duration_since(p.since) < POOLED_FOR);
        }
    }

    /// How many listeners are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept.lock().map_or(0, |k| k.len())
    }
}

/// Closes whatever connected to a pooled listener while it waited (a client's late or second
/// connection, or a stranger's). False if the listener is broken.
fn drain(listener: &Async<TcpListener>) -> bool {
    loop {
        match listener.get_ref().accept() {
            Ok((stream, from)) => {
                tracing::debug!(%from, "closed a connection made to a passive port between transfers");
                drop(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn a_pooled_listener_is_drained_and_reused() {
        let pool = ListenerPool::new(None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let l = bind_passive(ip, None).unwrap();
        let addr = l.get_ref().local_addr().unwrap();
        pool.put(l);
        assert_eq!(pool.len(), 1);
        // A connection made while it waits is not handed to the next transfer.
        let mut stale = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            pool.take("::1".parse().unwrap()).is_none(),
            "another address"
        );
        let (l, got) = pool.take(ip).unwrap();
        assert_eq!(got, addr);
        assert_eq!(pool.len(), 0);
        let mut byte = [0u8; 1];
        assert_eq!(
            stale.read(&mut byte).unwrap_or(0),
            0,
            "the stale connection is closed"
        );
        // The listener still accepts.
        let mut fresh = TcpStream::connect(addr).unwrap();
        let (mut s, _) = smol::block_on(l.accept()).unwrap();
        fresh.write_all(b"x").unwrap();
        smol::block_on(smol::io::AsyncReadExt::read_exact(&mut s, &mut byte)).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn the_pool_is_bounded_by_the_range() {
        let range = PortRange {
            start: 40100,
            end: 40107,
        };
        let pool = ListenerPool::new(Some(range));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            pool.put(bind_passive(ip, None).unwrap());
        }
        assert_eq!(pool.len(), 2, "a quarter of an 8-port range");
    }
}
