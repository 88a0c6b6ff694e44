//! A few threads at a lower scheduling priority for the disk tree's long work: reading a
//! folder's names, each batch of a listing's stat calls, copies.
//!
//! Such work can take tens of milliseconds of CPU (a folder of 100,000 entries is 100,000
//! stat calls), and it is bulk work: nobody waits for one batch the way a client waits for
//! the reply to a `SIZE`. At nice [`BACKGROUND_NICE`] it gets the CPU that the threads
//! serving commands leave, and all of it when they leave all of it. These are threads of
//! their own rather than the [`blocking`] pool because a thread cannot raise its priority
//! again without privileges, and the pool also runs password checks and, with
//! `with_blocking_pool`, the short metadata calls.

use std::sync::OnceLock;

/// The nice value of the background threads (the kernel weighs nice 10 at about a tenth of
/// nice 0).
pub(crate) const BACKGROUND_NICE: i32 = 10;

/// Background threads: two, so that one long listing does not queue every other one, and
/// few, since they only ever get spare CPU.
const BACKGROUND_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The queue the background threads take work from; started on first use.
fn queue() -> &'static async_channel::Sender<Job> {
    static QUEUE: OnceLock<async_channel::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = async_channel::unbounded::<Job>();
        for i in 0..BACKGROUND_THREADS {
            let theirs = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-disk-{i}"))
                .spawn(move || {
                    let tid = rustix::thread::gettid();
                    // If it cannot be lowered, the work runs at the normal priority.
                    let _ = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE);
                    // Jobs catch their own panics: a thread lives as long as the queue.
                    while let Ok(job) = theirs.recv_blocking() {
                        job();
                    }
                });
            if spawned.is_err() && i == 0 {
                // No thread at all: closing the queue makes `run` use the blocking pool.
                rx.close();
            }
        }
        tx
    })
}

/// Runs `f` on a background thread (or, if those could not start, on the [`blocking`] pool)
/// and waits for its result: `None` if `f` panicked.
pub(crate) async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
        let _ = done.try_send(out);
    });
    if let Err(e) = queue().try_send(job) {
        blocking::unblock(e.into_inner()).await;
    }
    result.recv().await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_none_and_the_threads_go_on() {
        assert_eq!(
            futures_lite::future::block_on(run(|| -> u8 { panic!("in a job") })),
            None
        );
        for _ in 0..BACKGROUND_THREADS + 1 {
            assert_eq!(futures_lite::future::block_on(run(|| 7)), Some(7));
        }
    }

    #[test]
    fn work_runs_on_a_background_thread_at_a_lower_priority() {
        let (name, nice) = futures_lite::future::block_on(run(|| {
            let tid = rustix::thread::gettid();
            let name = std::thread::current().name().map(str::to_owned);
            (
                name,
                rustix::process::getpriority_process(Some(tid)).unwrap(),
            )
        }))
        .unwrap();
        assert!(name.unwrap().starts_with("ferry-disk-"));
        assert_eq!(nice, BACKGROUND_NICE);
    }
}
