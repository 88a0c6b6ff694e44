//! The HTTP listener of `--metrics-listen` (off unless given): `/metrics` (the counters of
//! [`crate::metrics`]), `/health` (the listener answers and the storage is reachable) and
//! `/ready` (503 from the moment a drain begins, so that a load balancer sends new sessions
//! elsewhere while running transfers finish).
//!
//! It serves one request per connection (`Connection: close`), one connection at a time,
//! each within [`REQUEST_TIME`]: a scraper or a health check asks a few times a second at
//! most, and a slow or silent peer cannot hold the listener for longer than that.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use smol::Async;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::clock::timeout;
use crate::context::Ctx;
use crate::users::Users;

/// How long one HTTP request may take, from the connection to the last byte of the answer.
pub(crate) const REQUEST_TIME: Duration = Duration::from_secs(3);

/// How long `/health` waits for the storage to answer.
pub(crate) const HEALTH_TIME: Duration = Duration::from_secs(2);

/// The most a request's head may take; a longer one gets 431.
const MAX_REQUEST_HEAD: usize = 4096;

/// Opens the metrics listener.
///
/// # Errors
/// The address cannot be bound.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<Async<TcpListener>> {
    Async::<TcpListener>::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for metrics: {e}"),
        )
    })
}

/// Answers HTTP requests on `listener` until the task is dropped.
pub(crate) async fn serve<U: Users>(ctx: Arc<Ctx<U>>, listener: Async<TcpListener>) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let answered = timeout(REQUEST_TIME, async {
            let response = match read_head(&mut stream).await {
                Ok(head) => respond(&ctx, &head).await,
                Err(status) => plain(status, status_text(status)),
            };
            stream.write_all(response.as_bytes()).await?;
            stream.flush().await
        })
        .await;
        if let Some(Err(e)) = answered {
            tracing::debug!(%peer, error = %e, "metrics listener: request failed");
        }
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

/// Reads a request's head (up to the blank line), or the status to answer instead.
async fn read_head(stream: &mut Async<std::net::TcpStream>) -> Result<String, u16> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(head).map_err(|_| 400);
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Err(431);
        }
    }
}

/// The answer to a request whose head is `head`.
async fn respond<U: Users>(ctx: &Arc<Ctx<U>>, head: &str) -> String {
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return plain(405, "only GET and HEAD\n");
    }
    let path = target.split('?').next().unwrap_or("");
    let body_of = |status: u16, body: String, content_type: &str| {
        let body = if method == "HEAD" {
            String::new()
        } else {
            body
        };
        response(status, content_type, &body)
    };
    match path {
        "/metrics" => body_of(
            200,
            ctx.metrics.render(ctx.limits.open()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/health" => {
            let users = ctx.users.clone();
            let checked = timeout(HEALTH_TIME, smol::unblock(move || users.health())).await;
            match checked {
                Some(Ok(())) => body_of(200, "ok\n".into(), "text/plain"),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "health check: storage unreachable");
                    body_of(503, format!("storage unreachable: {e}\n"), "text/plain")
                }
                None => {
                    tracing::warn!(
                        secs = HEALTH_TIME.as_secs(),
                        "health check: storage did not answer in time"
                    );
                    body_of(503, "storage did not answer in time\n".into(), "text/plain")
                }
            }
        }
        "/ready" => {
            if ctx.shutdown.is_closed() {
                body_of(503, "draining\n".into(), "text/plain")
            } else {
                body_of(200, "ready\n".into(), "text/plain")
            }
        }
        _ => plain(404, "not found: try /metrics, /health or /ready\n"),
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    }
}

fn plain(status: u16, body: &str) -> String {
    response(status, "text/plain", body)
}

fn response(status: u16, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status_text(status),
        body.len()
    )
}
