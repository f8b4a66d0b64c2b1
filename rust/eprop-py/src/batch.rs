//! `train_batch`, `predict_batch` and `batch_memory_bytes`, shared by every
//! trainer class.

use std::sync::Mutex;

use eprop_core::batch::{batch_state_bytes, predict_batch, train_batch, BatchModel, Update};
use eprop_core::pool::run_in_pool;
use numpy::ndarray::Array3;
use numpy::PyArray;
use pyo3::prelude::*;

use crate::convert::{batch, locked, to_py, value_error};

/// Validates `n_threads` (None or >= 1).
pub fn threads(n_threads: Option<i64>) -> PyResult<Option<usize>> {
    match n_threads {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as usize)),
        Some(n) => Err(value_error(format!(
            "n_threads: expected None or an integer >= 1, got {n}"
        ))),
    }
}

/// Trains `model(t)` on a batch; returns the mean loss of each sequence (B,).
#[allow(clippy::too_many_arguments)]
pub fn train<'py, T: Send, M: BatchModel>(
    py: Python<'py>,
    m: &Mutex<T>,
    model: fn(&mut T) -> &mut M,
    dims: (usize, usize),
    inputs: &Bound<'py, PyAny>,
    targets: &Bound<'py, PyAny>,
    update: &str,
    n_threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let update = Update::parse(update).map_err(to_py)?;
    let n_threads = threads(n_threads)?;
    let x = batch("inputs", inputs, None, dims.0)?;
    let (b, t, _) = x.dim();
    let y = batch("targets", targets, Some((b, t)), dims.1)?;
    let losses = locked(py, m, move |tr| {
        let model = model(tr);
        run_in_pool(n_threads, || {
            train_batch(model, x.view(), y.view(), None, update)
        })
    })?
    .and_then(|r| r)
    .map_err(to_py)?;
    Ok(PyArray::from_vec(py, losses).into_any())
}

/// Runs `model(t)` on a batch without learning; returns (B, T, n_outputs).
pub fn predict<'py, T: Send, M: BatchModel>(
    py: Python<'py>,
    m: &Mutex<T>,
    model: fn(&mut T) -> &mut M,
    dims: (usize, usize),
    inputs: &Bound<'py, PyAny>,
    n_threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_threads = threads(n_threads)?;
    let x = batch("inputs", inputs, None, dims.0)?;
    let (b, t, _) = x.dim();
    let out = locked(py, m, move |tr| {
        let model: &M = model(tr);
        let mut out = Array3::zeros((b, t, dims.1));
        run_in_pool(n_threads, || predict_batch(model, x.view(), out.view_mut()))
            .map(|r| r.map(|_| out))
    })?
    .and_then(|r| r)
    .map_err(to_py)?;
    Ok(PyArray::from_owned_array(py, out).into_any())
}

/// Bytes a batch of `batch_size` sequences holds besides weights and inputs.
pub fn memory<T: Send, M: BatchModel>(
    py: Python<'_>,
    m: &Mutex<T>,
    model: fn(&mut T) -> &mut M,
    batch_size: i64,
    update: &str,
) -> PyResult<usize> {
    let update = Update::parse(update).map_err(to_py)?;
    if batch_size < 1 {
        return Err(value_error(format!(
            "batch_size: expected an integer >= 1, got {batch_size}"
        )));
    }
    locked(py, m, move |t| {
        batch_state_bytes(model(t), batch_size as usize, update)
    })
}
