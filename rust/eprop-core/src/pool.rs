//! Rayon thread pools for batch work: a lazily built default pool (sized by
//! `RAYON_NUM_THREADS`, else the number of CPUs) or a private pool of a given
//! size. The default pool is rebuilt in a forked child (its worker threads do
//! not survive `fork`), so a child process never waits on threads it lacks.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{EpropError, Result};

static DEFAULT: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

fn build(n_threads: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .thread_name(|i| format!("eprop-worker-{i}"))
        .build()
        .map_err(|e| EpropError::param("n_threads", "a thread pool that can be started", e))
}

/// The default pool of this process (0 threads asks rayon for its default).
pub fn default_pool() -> Result<Arc<ThreadPool>> {
    let mut guard = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if let Some((owner, pool)) = guard.as_ref() {
        if *owner == pid {
            return Ok(pool.clone());
        }
    }
    if let Some(stale) = guard.take() {
        // Inherited through fork: its threads are gone; never drop it.
        std::mem::forget(stale);
    }
    let pool = Arc::new(build(0)?);
    *guard = Some((pid, pool.clone()));
    Ok(pool)
}

/// Runs `f` in the default pool (`None`) or in a private pool of `n` threads.
pub fn run_in_pool<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match n_threads {
        None => Ok(default_pool()?.install(f)),
        Some(0) => Err(EpropError::param("n_threads", "None or an integer >= 1", 0)),
        Some(n) => Ok(build(n)?.install(f)),
    }
}
