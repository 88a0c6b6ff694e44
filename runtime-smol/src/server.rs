//! The server: listeners, admission of each connection by the limits (`limits.rs`), and a
//! clean shutdown. It builds the shared context (`context.rs`) once and hands each admitted
//! connection to the connection's drive loop (`connection.rs`).

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ferry_backends::audit::AuditLog;
use ferry_core::Refusal;
use smol::channel::Sender;
use smol::future::FutureExt as _;
use smol::io::AsyncWriteExt as _;
use smol::lock::Semaphore;
use smol::{Async, Executor, Timer};

use crate::bulk::Bulk;
use crate::clock::{Clock, timeout};
use crate::config::Settings;
use crate::context::Ctx;
use crate::metrics::Metrics;
use crate::policy::Bucket;
use crate::probe;
use crate::proxy::{Expect, ProxyPolicy};
use crate::tls::Tls;
use crate::users::Users;

/// How often a stopping server looks whether its connections have ended.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// How long the accept loop waits after a failed accept (out of descriptors, say) instead
/// of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a refused connection may take to read its 421 before it is closed.
const REFUSAL_WRITE: Duration = Duration::from_secs(2);

/// Stops a running server: new connections are refused, idle sessions get 421, running
/// transfers may finish within the grace period.
#[derive(Debug, Clone)]
pub struct Shutdown(Sender<()>);

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.close();
    }
}

/// A Ferry server, configured but not yet listening.
pub struct Server<U: Users> {
    settings: Settings,
    users: Arc<U>,
    audit: Arc<AuditLog>,
    tls: Option<Arc<Tls>>,
}

impl<U: Users> Server<U> {
    /// A server with these settings, accounts and audit log. TLS is off until
    /// [`Server::with_tls`].
    #[must_use]
    pub fn new(settings: Settings, users: U, audit: AuditLog) -> Self {
        Self {
            settings,
            users: Arc::new(users),
            audit: Arc::new(audit),
            tls: None,
        }
    }

    /// Offers explicit FTPS with this configuration.
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<Tls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Opens the listeners.
    ///
    /// # Errors
    /// The address that could not be bound, and why.
    pub async fn bind(self) -> io::Result<Bound<U>> {
        let mut listeners = Vec::new();
        for addr in &self.settings.listen {
            let l = Async::<TcpListener>::bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push(l);
        }
        let (tx, rx) = smol::channel::bounded(1);
        let mut core = self.settings.core_config();
        core.public_address = self.settings.public_ipv4()?;
        if self.tls.is_none() {
            core.tls = ferry_core::TlsMode::Off;
        }
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let bulk = Bulk::start(self.settings.bulk_threads);
        let proxy = Arc::new(ProxyPolicy::new(&self.settings));
        let metrics_listener = self.settings.metrics_listen.map(probe::bind).transpose()?;
        let metrics = Arc::new(Metrics::new(&self.settings.instance));
        let (rate_up, rate_down) = (self.settings.rate_up, self.settings.rate_down);
        let passive_pool = Arc::new(crate::data::ListenerPool::new(self.settings.passive_ports));
        let ctx = Arc::new(Ctx {
            core,
            settings: self.settings,
            users: self.users,
            audit: self.audit,
            tls: self.tls,
            limits: Arc::default(),
            metrics,
            proxy,
            login_gate: Arc::new(Semaphore::new(workers)),
            shutdown: rx,
            clock: Clock::start(),
            bulk,
            user_states: Arc::default(),
            rate_up: Arc::new(Bucket::new(rate_up)),
            rate_down: Arc::new(Bucket::new(rate_down)),
            passive_pool,
        });
        Ok(Bound {
            ctx,
            listeners,
            metrics_listener,
            shutdown: Shutdown(tx),
        })
    }
}

/// A server whose listeners are open.
pub struct Bound<U: Users> {
    ctx: Arc<Ctx<U>>,
    listeners: Vec<Async<TcpListener>>,
    /// `--metrics-listen`.
    metrics_listener: Option<Async<TcpListener>>,
    shutdown: Shutdown,
}

impl<U: Users> Bound<U> {
    /// The addresses it listens on (with the ports the system chose for port 0).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.get_ref().local_addr().ok())
            .collect()
    }

    /// Where `/metrics`, `/health` and `/ready` answer, if anywhere.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.get_ref().local_addr().ok())
    }

    /// The server's counters (what `/metrics` shows).
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        self.ctx.metrics.clone()
    }

    #[cfg(test)]
    pub(crate) fn ctx_for_tests(&self) -> Arc<Ctx<U>> {
        self.ctx.clone()
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until the shutdown handle is triggered, then lets running transfers finish for
    /// the grace period. Connections run as tasks on `ex`.
    pub async fn run(self, ex: &Arc<Executor<'static>>) {
        let Self {
            ctx,
            listeners,
            metrics_listener,
            shutdown,
        } = self;
        let http = metrics_listener.map(|l| ex.spawn(probe::serve(ctx.clone(), l)));
        let accepts: Vec<_> = listeners
            .into_iter()
            .map(|l| {
                let ex2 = ex.clone();
                let dispatch = move |c: Accepted| ex2.spawn(c.serve()).detach();
                ex.spawn(accept_loop(ctx.clone(), l, dispatch))
            })
            .collect();
        stop(ctx, shutdown, accepts).await;
        // Answered 503 on /ready while the connections drained.
        drop(http);
    }

    /// Serves with one thread per `threads`, each running its own executor (thread per
    /// core): the accept loop hands each new connection to the next thread, where it stays
    /// for its whole life, so threads wake each other once per connection instead of on
    /// every wakeup of a task (measured: a third more small transfers per second and a
    /// lower p99 than one executor shared by the threads). With one thread, the calling
    /// thread itself serves the connections it accepts. `beside` runs on the calling thread
    /// meanwhile (signal handling, say). Returns when the server has stopped.
    pub fn run_threads(self, threads: usize, beside: impl Future<Output = ()> + 'static) {
        let Self {
            ctx,
            listeners,
            metrics_listener,
            shutdown,
        } = self;
        let (stop_workers, workers_stopped) = smol::channel::bounded::<()>(1);
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        // One thread (or none asked for): it is this one, which accepts too, so that a new
        // connection costs no wake-up of another thread (measured, interleaved: 8,837
        // logins/s against 6,326 with a worker thread of its own; small files the same).
        let worker_threads = if threads > 1 { threads } else { 0 };
        for i in 0..worker_threads {
            let (tx, rx) = smol::channel::unbounded::<Accepted>();
            let stopped = workers_stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-{i}"))
                .spawn(move || {
                    let ex = std::rc::Rc::new(smol::LocalExecutor::new());
                    let spawner = ex.clone();
                    smol::block_on(ex.run(async move {
                        let receive = spawner.clone().spawn(async move {
                            while let Ok(c) = rx.recv().await {
                                spawner.spawn(c.serve()).detach();
                            }
                        });
                        let _ = stopped.recv().await;
                        // Cancelled, not dropped: a dropped task is only scheduled to stop,
                        // and its future (holding the executor) would outlive `run`, and with
                        // it the connections still on this thread.
                        receive.cancel().await;
                    }));
                });
            match spawned {
                Ok(h) => {
                    workers.push(h);
                    queues.push(tx);
                }
                // Without any worker, the connections are served on this thread.
                Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
            }
        }
        let ex = std::rc::Rc::new(smol::LocalExecutor::new());
        let here = ex.clone();
        smol::block_on(ex.run(async {
            ex.spawn(beside).detach();
            // Dropped with the executor when the server has stopped: /ready answers 503
            // while the connections drain.
            if let Some(l) = metrics_listener {
                ex.spawn(probe::serve(ctx.clone(), l)).detach();
            }
            let next = std::cell::Cell::new(0usize);
            let dispatch = move |c: Accepted| {
                if queues.is_empty() {
                    here.spawn(c.serve()).detach();
                    return;
                }
                let i = next.get();
                next.set((i + 1) % queues.len());
                let _ = queues[i].try_send(c);
            };
            let dispatch = std::rc::Rc::new(dispatch);
            let accepts: Vec<_> = listeners
                .into_iter()
                .map(|l| {
                    let d = dispatch.clone();
                    ex.spawn(accept_loop(ctx.clone(), l, move |c| d(c)))
                })
                .collect();
            stop(ctx, shutdown, accepts).await;
        }));
        drop(stop_workers);
        for w in workers {
            let _ = w.join();
        }
    }
}

/// How often the passive listeners kept between transfers are looked at, to close those that
/// waited too long.
const POOL_SWEEP: Duration = Duration::from_secs(1);

/// Closes kept passive listeners that waited too long, until the server stops.
async fn sweep_passive(pool: &crate::data::ListenerPool) -> Result<(), smol::channel::RecvError> {
    loop {
        Timer::after(POOL_SWEEP).await;
        pool.expire();
    }
}

/// A connection admitted by the limits, ready to be served.
struct Accepted {
    serve: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Accepted {
    fn serve(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.serve
    }
}

/// Waits for the shutdown signal, stops accepting, and lets the open connections finish
/// within the grace period.
async fn stop<U: Users, T>(ctx: Arc<Ctx<U>>, shutdown: Shutdown, accepts: Vec<smol::Task<T>>) {
    let _ = ctx
        .shutdown
        .recv()
        .or(sweep_passive(&ctx.passive_pool))
        .await;
    drop(shutdown);
    for a in accepts {
        a.cancel().await;
    }
    let grace = ctx.settings.shutdown_grace;
    let deadline = StdInstant::now() + grace;
    while ctx.limits.open() > 0 && StdInstant::now() < deadline {
        Timer::after(SHUTDOWN_POLL).await;
    }
    let left = ctx.limits.open();
    if left > 0 {
        tracing::warn!(
            connections = left,
            grace_secs = grace.as_secs(),
            "grace period over; closing the remaining connections"
        );
    }
    tracing::info!("server stopped");
}

async fn accept_loop<U: Users>(
    ctx: Arc<Ctx<U>>,
    listener: Async<TcpListener>,
    dispatch: impl Fn(Accepted),
) {
    let local = listener.get_ref().local_addr().ok();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(?local, error = %e, "accept failed");
                Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let serve = match ctx.proxy.expect(peer.ip()) {
            Expect::Direct => admit(&ctx, stream, peer),
            Expect::Header => Box::pin(proxied(ctx.clone(), stream, peer)),
            Expect::Refuse => {
                tracing::warn!(%peer, "connection refused: not from --proxy-from, and a PROXY header is required");
                ctx.metrics.proxy_refused("control", "untrusted");
                let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
                continue;
            }
        };
        dispatch(Accepted { serve });
        // A burst of connections is accepted one at a time between the sessions' work: with
        // one thread, they run here.
        smol::future::yield_now().await;
    }
}

type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Counts the connection of `client` by the limits and serves it, or refuses it.
fn admit<U: Users>(ctx: &Arc<Ctx<U>>, stream: Async<TcpStream>, client: SocketAddr) -> Serving {
    match ctx.limits.admit(client.ip(), &ctx.settings) {
        Ok(admission) => Box::pin(crate::connection::serve(
            ctx.clone(),
            stream,
            client,
            admission,
        )),
        Err(refusal) => {
            ctx.metrics.refused(refusal);
            Box::pin(refuse(stream, client, refusal))
        }
    }
}

/// A connection from a load balancer: its PROXY header names the client, who is then
/// admitted and served as if it had connected itself. A bad or missing header closes it.
async fn proxied<U: Users>(ctx: Arc<Ctx<U>>, stream: Async<TcpStream>, peer: SocketAddr) {
    match crate::proxy::read_header(&stream, peer, crate::proxy::HEADER_TIMEOUT).await {
        Ok(client) => admit(&ctx, stream, client).await,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "connection refused: bad PROXY header");
            ctx.metrics.proxy_refused("control", "bad");
            let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Sends a 421 in place of the greeting and closes.
async fn refuse(mut stream: Async<TcpStream>, peer: SocketAddr, refusal: Refusal) {
    tracing::warn!(%peer, reason = ?refusal, "connection refused");
    let reply = refusal.reply().to_string();
    let _ = timeout(REFUSAL_WRITE, stream.write_all(reply.as_bytes())).await;
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
}
