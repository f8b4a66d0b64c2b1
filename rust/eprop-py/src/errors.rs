//! The one mapping of the core's errors to Python exceptions, and the lock
//! every native class takes with the GIL released.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use eprop_core::EpropError;
use pyo3::exceptions::{PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// `MemoryError` for impossible sizes, `FileNotFoundError`/`OSError` for
/// files, `ValueError` for everything else (the message names the argument).
pub fn to_py(e: EpropError) -> PyErr {
    match e {
        EpropError::Memory { .. } => PyMemoryError::new_err(e.to_string()),
        EpropError::Io { not_found: true, .. } => PyFileNotFoundError::new_err(e.to_string()),
        EpropError::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A `ValueError` with a message formatted at the boundary (block reads).
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Locks a mutex. A poisoned lock (only possible after a bug made Rust
/// panic) is still usable: every mutation is validated before it starts.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn panic_error() -> PyErr {
    PyRuntimeError::new_err("eprop: internal error (a Rust panic was caught); please report it")
}

/// Runs `f` on the locked value with the GIL released. A panic (a bug)
/// comes back as `RuntimeError`, never as a `PanicException`.
pub fn locked<T: Send, R: Send>(py: Python<'_>, m: &Mutex<T>, f: impl FnOnce(&mut T) -> R + Send) -> PyResult<R> {
    py.detach(|| {
        let mut g = lock(m);
        catch_unwind(AssertUnwindSafe(|| f(&mut g)))
    })
    .map_err(|_| panic_error())
}

/// [`locked`] for work that can fail with a core error.
pub fn locked_try<T: Send, R: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> eprop_core::Result<R> + Send,
) -> PyResult<R> {
    locked(py, m, f)?.map_err(to_py)
}
