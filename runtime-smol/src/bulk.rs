//! The bulk threads: where a transfer carries on once it has proven large.
//!
//! Every transfer starts on its session's executor thread, so that the small ones (a 4 KiB
//! file, a short listing) cost no hop to another thread. Once one has moved its first MiB
//! (`INLINE_BYTES` in the transfer module), the rest of it runs here: a separate executor on
//! its own threads, at a lower scheduling priority ([`BULK_NICE`]). The threads that serve
//! commands then keep the CPU when both want it, so a 1 GiB download or a listing of
//! 100,000 files slows the sessions beside it only as much as the machine is shared; when
//! nothing else runs, a niced thread goes as fast as any. Transfers here take turns: each
//! yields after every 256 KiB it moves (`YIELD_BYTES` in the transfer module).
//!
//! This module knows nothing of transfers (they call it), so that the two do not depend on
//! each other.

use std::future::Future;
use std::sync::Arc;

use smol::Executor;
use smol::channel::{Receiver, Sender};

/// The nice value of the bulk threads: 10 gives them about a tenth of the CPU that a thread
/// at the default priority gets when both are runnable (the kernel's weights for nice 0 and
/// nice 10 are 1024 and 110).
pub(crate) const BULK_NICE: i32 = 10;

/// The executor of the bulk threads. Dropping it stops them (their tasks are dropped).
pub(crate) struct Bulk {
    ex: Arc<Executor<'static>>,
    /// Closed on drop: the threads' signal to stop.
    _stop: Sender<()>,
}

impl Bulk {
    /// Starts `threads` bulk threads (at least one).
    pub(crate) fn start(threads: usize) -> Arc<Self> {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        for i in 0..threads.max(1) {
            let (ex, stopped): (_, Receiver<()>) = (Arc::clone(&ex), stopped.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-bulk-{i}"))
                .spawn(move || {
                    lower_priority();
                    smol::block_on(ex.run(async move {
                        let _ = stopped.recv().await;
                    }));
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a bulk thread");
            }
        }
        Arc::new(Self { ex, _stop: stop })
    }

    /// Runs `f` on a bulk thread and waits for it. Dropping the returned future drops `f`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> T {
        self.ex.spawn(f).await
    }

    /// Runs `f` on a bulk thread in the background (a scan of a home, say).
    pub(crate) fn detach(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.ex.spawn(f).detach();
    }
}

/// Gives the calling thread [`BULK_NICE`] (on Linux the nice value is per thread).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), BULK_NICE) {
        tracing::warn!(error = %e, "cannot lower the priority of a bulk thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_threads_run_work_at_a_lower_priority() {
        let bulk = Bulk::start(1);
        let (name, nice) = smol::block_on(bulk.run(async {
            let name = std::thread::current().name().map(str::to_owned);
            let tid = rustix::thread::gettid();
            (
                name,
                rustix::process::getpriority_process(Some(tid)).unwrap(),
            )
        }));
        assert_eq!(name.as_deref(), Some("ferry-bulk-0"));
        assert_eq!(nice, BULK_NICE);
    }
}
