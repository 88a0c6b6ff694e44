//! OpenDAL's HTTP transport, written for Ferry: HTTP/1.1 over `async-io` sockets (the reactor
//! smol runs on, usable from any executor), so that talking to the store needs no tokio
//! runtime and no second thread pool. `https://` endpoints go through rustls.
//!
//! - **Connections** are kept alive and reused, per host, up to [`MAX_IDLE_PER_HOST`]; a
//!   response body that is dropped before its end closes its connection instead.
//! - **Timeouts**: [`CONNECT_TIMEOUT`] to connect, [`RESPONSE_TIMEOUT`] for the response head
//!   after the request is sent, [`READ_TIMEOUT`] between two reads of a body.
//! - **Retries**: a request that failed before any answer came (refused connection, a reused
//!   connection the store had closed) or that got 500, 502, 503 or 504 is sent again, up to
//!   [`ATTEMPTS`] times with a short pause, when it is safe to repeat: every request with a
//!   body held in memory is (S3's writes are whole-object or whole-part); a POST is only
//!   repeated when nothing reached the store.
//! - **Certificates** for `https://`: the PEM bundle named by `AWS_CA_BUNDLE`, else
//!   `SSL_CERT_FILE`, else the system's (`/etc/ssl/certs/ca-certificates.crt`). Reading the
//!   bundle variable ourselves is what lets a custom transport work where some S3 clients
//!   refuse to start with it set.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_io::{Async, Timer};
use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsConnector;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use opendal::{Buffer, Error as DalError, ErrorKind as DalKind, HttpBody, HttpTransport};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;

/// How long connecting to the store may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the store may take to answer a request once it is sent (a large copy or a
/// multipart completion takes a few seconds on a busy store).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a response body may make no progress.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a request is tried before its failure is reported.
pub const ATTEMPTS: u32 = 3;

/// The pause before the first retry; it doubles for the next.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Idle connections kept per host for reuse.
pub const MAX_IDLE_PER_HOST: usize = 32;

/// The largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// How many bytes one read of a body asks for.
const READ_CHUNK: usize = 256 * 1024;

/// Where a connection goes: scheme, host and port.
type HostKey = (bool, String, u16);

/// The transport: cheap to clone, all clones share one connection pool.
#[derive(Clone, Default)]
pub struct SmolHttp {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for SmolHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmolHttp")
    }
}

#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<HostKey, Vec<Stream>>>,
}

impl Pool {
    fn take(&self, key: &HostKey) -> Option<Stream> {
        self.idle.lock().ok()?.get_mut(key)?.pop()
    }

    fn give_back(&self, key: HostKey, stream: Stream) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < MAX_IDLE_PER_HOST {
                list.push(stream);
            }
        }
    }
}

/// What a connection to the store is: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// A connection to the store.
type Stream = Box<dyn Io>;

/// Runs `fut`, or fails with `TimedOut` after `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let timeout = async {
        Timer::after(limit).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no answer in {limit:?}"),
        ))
    };
    futures_lite::future::or(fut, timeout).await
}

/// The rustls client settings, made once: the roots from the CA bundle (see the module docs).
fn tls_config() -> io::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let file = std::env::var_os("AWS_CA_BUNDLE")
                .or_else(|| std::env::var_os("SSL_CERT_FILE"))
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
            let mut roots = RootCertStore::empty();
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(&file)
                .map_err(|e| format!("CA bundle {}: {e}", file.display()))?;
            for cert in certs.flatten() {
                // A certificate the store cannot use is skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!("CA bundle {}: no certificates", file.display()));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(io::Error::other)
}

async fn connect(key: &HostKey) -> io::Result<Stream> {
    let (tls, host, port) = key;
    let addrs: Vec<_> = (host.as_str(), *port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in addrs {
        match within(
            CONNECT_TIMEOUT,
            "connect",
            Async::<TcpStream>::connect(addr),
        )
        .await
        {
            Ok(tcp) => {
                tcp.get_ref().set_nodelay(true)?;
                if !tls {
                    return Ok(Box::new(tcp));
                }
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let stream = within(
                    CONNECT_TIMEOUT,
                    "TLS handshake",
                    TlsConnector::from(tls_config()?).connect(name, tcp),
                )
                .await?;
                return Ok(Box::new(stream));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked: reading a chunk's size line.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk are left.
    ChunkData(u64),
    /// Chunked: the CR LF after a chunk.
    ChunkEnd,
    /// Chunked: the trailer lines after the last chunk.
    Trailer,
    /// Until the store closes the connection.
    Close,
    /// Over.
    Done,
}

/// What went wrong with one attempt, and whether the store may have acted on it.
struct Failure {
    error: io::Error,
    /// Nothing of the request can have reached the store (it never connected, or a reused
    /// connection had been closed before a byte of the answer came).
    unsent: bool,
}

impl SmolHttp {
    /// A transport with an empty connection pool.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    async fn attempt(
        &self,
        key: &HostKey,
        head: &[u8],
        body: &Buffer,
        head_only: bool,
    ) -> Result<(http::response::Parts, BodyReader), Failure> {
        let (mut stream, reused) = match self.pool.take(key) {
            Some(s) => (s, true),
            None => (
                connect(key).await.map_err(|error| Failure {
                    error,
                    unsent: true,
                })?,
                false,
            ),
        };
        let sent = async {
            stream.write_all(head).await?;
            for chunk in body.clone() {
                stream.write_all(&chunk).await?;
            }
            stream.flush().await
        };
        if let Err(error) = within(RESPONSE_TIMEOUT, "send", sent).await {
            return Err(Failure {
                error,
                unsent: reused,
            });
        }
        let mut buf = Vec::with_capacity(4096);
        let parsed = within(
            RESPONSE_TIMEOUT,
            "response",
            read_head(&mut stream, &mut buf, head_only),
        )
        .await;
        let (parts, framing, used) = match parsed {
            Ok(p) => p,
            Err(error) => {
                // A reused connection that the store closed while idle answers nothing.
                let unsent = reused && buf.is_empty();
                return Err(Failure { error, unsent });
            }
        };
        buf.drain(..used);
        let reader = BodyReader {
            stream: Some(stream),
            buf,
            scratch: Vec::new(),
            framing,
            key: key.clone(),
            pool: self.pool.clone(),
            timer: None,
        };
        Ok((parts, reader))
    }
}

/// Reads the response head into `buf`: its parts, how the body ends, and how many bytes of
/// `buf` the head took.
async fn read_head(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> io::Result<(http::response::Parts, Framing, usize)> {
    let mut scratch = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut response = httparse::Response::new(&mut headers);
        let status = response.parse(buf).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {e}"))
        })?;
        if let httparse::Status::Complete(used) = status {
            let code = response.code.unwrap_or(0);
            if code == 100 {
                buf.drain(..used);
                continue;
            }
            let mut builder = http::Response::builder().status(code);
            let mut framing = Framing::Close;
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") && framing == Framing::Close {
                    let n = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length")
                        })?;
                    framing = Framing::Length(n);
                }
                if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && h.value.to_ascii_lowercase().ends_with(b"chunked")
                {
                    framing = Framing::ChunkSize;
                }
                builder = builder.header(h.name, h.value);
            }
            if head_only || code == 204 || code == 304 {
                framing = Framing::Done;
            }
            let parts = builder
                .body(())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                .into_parts()
                .0;
            return Ok((parts, framing, used));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too large",
            ));
        }
        let n = stream.read(&mut scratch).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        buf.extend_from_slice(&scratch[..n]);
    }
}

/// A response body, read as the caller asks; its connection goes back to the pool at its
/// end (or is closed if it is dropped before).
struct BodyReader {
    stream: Option<Stream>,
    /// Bytes read past what was handed out.
    buf: Vec<u8>,
    /// Where reads land (one allocation for the body's life).
    scratch: Vec<u8>,
    framing: Framing,
    key: HostKey,
    pool: Arc<Pool>,
    /// The read timeout of the read in progress.
    timer: Option<Timer>,
}

impl BodyReader {
    /// Reads more from the connection into `buf`. `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.scratch.is_empty() {
            self.scratch = vec![0; READ_CHUNK];
        }
        let res = Pin::new(stream).poll_read(cx, &mut self.scratch);
        match res {
            Poll::Ready(Ok(n)) => {
                self.buf.extend_from_slice(&self.scratch[..n]);
                self.timer = None;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let timer = self.timer.get_or_insert_with(|| Timer::after(READ_TIMEOUT));
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "response body: no progress",
                    )));
                }
                Poll::Pending
            }
        }
    }

    /// Takes up to `max` bytes from `buf`.
    fn take(&mut self, max: u64) -> Bytes {
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        let piece = Bytes::copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        piece
    }

    /// The position of the first CR LF in `buf`.
    fn line_end(&self) -> Option<usize> {
        self.buf.windows(2).position(|w| w == b"\r\n")
    }

    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(stream) = self.stream.take()
            && self.buf.is_empty()
        {
            self.pool.give_back(self.key.clone(), stream);
        }
    }

    /// The next piece of the body: `None` at its end.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            match self.framing {
                Framing::Done => return Poll::Ready(Ok(None)),
                Framing::Length(0) => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Framing::Length(left) | Framing::ChunkData(left) if !self.buf.is_empty() => {
                    let piece = self.take(left);
                    let left = left - piece.len() as u64;
                    self.framing = match self.framing {
                        Framing::Length(_) => Framing::Length(left),
                        _ if left == 0 => Framing::ChunkEnd,
                        _ => Framing::ChunkData(left),
                    };
                    return Poll::Ready(Ok(Some(piece)));
                }
                Framing::Close if !self.buf.is_empty() => {
                    return Poll::Ready(Ok(Some(self.take(u64::MAX))));
                }
                Framing::ChunkSize | Framing::ChunkEnd | Framing::Trailer
                    if self.line_end().is_some() =>
                {
                    let end = self.line_end().unwrap_or(0);
                    let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                    self.framing = match self.framing {
                        Framing::ChunkEnd if line.is_empty() => Framing::ChunkSize,
                        Framing::ChunkEnd => {
                            return Poll::Ready(Err(bad("chunk without its CR LF")));
                        }
                        Framing::Trailer if line.is_empty() => {
                            self.finish();
                            return Poll::Ready(Ok(None));
                        }
                        Framing::Trailer => Framing::Trailer,
                        _ => {
                            let text =
                                std::str::from_utf8(&line).map_err(|_| bad("bad chunk size"))?;
                            let hex = text.split(';').next().unwrap_or("").trim();
                            match u64::from_str_radix(hex, 16).map_err(|_| bad("bad chunk size"))? {
                                0 => Framing::Trailer,
                                n => Framing::ChunkData(n),
                            }
                        }
                    };
                }
                _ => {
                    if self.buf.len() > MAX_HEAD {
                        return Poll::Ready(Err(bad("chunk line too long")));
                    }
                    let n = ready!(self.poll_fill(cx))?;
                    if n == 0 {
                        if self.framing == Framing::Close {
                            self.framing = Framing::Done;
                            self.stream = None;
                            return Poll::Ready(Ok(None));
                        }
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the store closed the connection in the middle of a response",
                        )));
                    }
                }
            }
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl futures_lite::Stream for BodyReader {
    type Item = opendal::Result<Buffer>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match ready!(this.poll_piece(cx)) {
            Ok(Some(b)) => Poll::Ready(Some(Ok(Buffer::from(b)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => {
                this.framing = Framing::Done;
                this.stream = None;
                Poll::Ready(Some(Err(dal_error(e, true))))
            }
        }
    }
}

/// An OpenDAL error for an I/O failure; `temporary` lets OpenDAL's callers try again.
fn dal_error(e: io::Error, temporary: bool) -> DalError {
    let err =
        DalError::new(DalKind::Unexpected, "request to the object store failed").set_source(e);
    if temporary { err.set_temporary() } else { err }
}

/// The request line and headers of `req`, as sent.
fn encode_head(req: &http::Request<Buffer>, host: &str, port: u16, default_port: bool) -> Vec<u8> {
    let uri = req.uri();
    let target = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(req.method().as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers().contains_key(http::header::HOST) {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(host.as_bytes());
        if !default_port {
            head.extend_from_slice(format!(":{port}").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let len = req.body().len();
    let bodyless = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::DELETE
    );
    let has_length = req.headers().contains_key(http::header::CONTENT_LENGTH);
    if !has_length && (len > 0 || !bodyless) {
        head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Whether a request may be sent again after the store may have seen it.
fn repeatable(method: &http::Method) -> bool {
    *method != http::Method::POST
}

impl HttpTransport for SmolHttp {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        let uri = req.uri();
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(DalError::new(
                    DalKind::ConfigInvalid,
                    format!("unsupported scheme {other:?}"),
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| DalError::new(DalKind::ConfigInvalid, "request without a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let head = encode_head(&req, &host, port, port == default_port);
        let key = (tls, host, port);
        let mut pause = RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let result = self
                .attempt(&key, &head, req.body(), req.method() == http::Method::HEAD)
                .await;
            let retry = match &result {
                Ok((parts, _)) => {
                    matches!(parts.status.as_u16(), 500 | 502 | 503 | 504)
                        && repeatable(req.method())
                }
                Err(f) => f.unsent || repeatable(req.method()),
            };
            if !retry || attempt >= ATTEMPTS {
                return match result {
                    Ok((parts, body)) => {
                        let size = match body.framing {
                            Framing::Length(n) => Some(n),
                            Framing::Done => Some(0),
                            _ => None,
                        };
                        Ok(http::Response::from_parts(parts, HttpBody::new(body, size)))
                    }
                    Err(f) => Err(dal_error(f.error, true)),
                };
            }
            drop(result);
            attempt += 1;
            Timer::after(pause).await;
            pause *= 2;
        }
    }
}
