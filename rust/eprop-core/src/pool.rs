//! Rayon thread pools for batch work: a default pool (sized by
//! `RAYON_NUM_THREADS`, else the number of CPUs) and private pools of a given
//! size, each built once per process and reused. Pools are rebuilt in a forked
//! child (their worker threads do not survive `fork`), so a child process
//! never waits on threads it lacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{EpropError, Result};

/// Pools of this process by size (0: the default size), with the pid that
/// built them.
type Pools = Option<(u32, HashMap<usize, Arc<ThreadPool>>)>;

static POOLS: Mutex<Pools> = Mutex::new(None);

fn build(n_threads: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .thread_name(|i| format!("eprop-worker-{i}"))
        .build()
        .map_err(|e| EpropError::param("n_threads", "a thread pool that can be started", e))
}

/// The pool of `n_threads` threads (0: the default size) of this process.
pub fn pool(n_threads: usize) -> Result<Arc<ThreadPool>> {
    let mut guard = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if guard.as_ref().is_some_and(|(owner, _)| *owner != pid) {
        // Inherited through fork: the threads are gone; never drop these pools.
        if let Some(stale) = guard.take() {
            std::mem::forget(stale);
        }
    }
    let (_, pools) = guard.get_or_insert_with(|| (pid, HashMap::new()));
    if let Some(p) = pools.get(&n_threads) {
        return Ok(p.clone());
    }
    let p = Arc::new(build(n_threads)?);
    pools.insert(n_threads, p.clone());
    Ok(p)
}

/// Runs `f` in the default pool (`None`) or in the pool of `n` threads.
pub fn run_in_pool<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match n_threads {
        None => Ok(pool(0)?.install(f)),
        Some(0) => Err(EpropError::param("n_threads", "None or an integer >= 1", 0)),
        Some(n) => Ok(pool(n)?.install(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_built_once_per_size() {
        let a = pool(2).unwrap();
        let b = pool(2).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.current_num_threads(), 2);
        assert_eq!(run_in_pool(Some(3), rayon::current_num_threads).unwrap(), 3);
        assert!(run_in_pool(Some(0), || ()).is_err());
    }
}
