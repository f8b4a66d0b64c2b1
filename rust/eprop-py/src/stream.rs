//! Sequences of any length from Python: `train_sequence`/`predict_sequence`
//! with `reset`, `train_stream` and `predict_stream`, shared by every trainer.
//!
//! A float64 NumPy array (a `numpy.memmap` included) is not copied whole: it is
//! checked in place, then copied block by block (8 MiB at a time) while the
//! trainer stays locked, so a file larger than memory can be trained on.

use std::sync::Mutex;
use std::time::Instant;

use eprop_core::error::fmt_shape;
use eprop_core::stream::{predict_rows, train_rows, Sequential};
use eprop_core::EpropError;
use numpy::ndarray::{s, Array2};
use numpy::{PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{lock, matrix, to_py, value_error};

const BLOCK_BYTES: usize = 8 << 20;

/// A (T, width) float64 sequence: copied already, or a NumPy array read in blocks.
pub enum Rows {
    Owned(Array2<f64>),
    Borrowed(Py<PyArray2<f64>>, usize),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Owned(a) => a.nrows(),
            Rows::Borrowed(_, t) => *t,
        }
    }

    /// Rows `[start, end)` as an owned array (re-attaching to Python if needed).
    fn block(&self, start: usize, end: usize) -> Array2<f64> {
        match self {
            Rows::Owned(a) => a.slice(s![start..end, ..]).to_owned(),
            Rows::Borrowed(p, _) => Python::attach(|py| {
                let ro = p.bind(py).readonly();
                ro.as_array().slice(s![start..end, ..]).to_owned()
            }),
        }
    }

    fn view_or_block(&self, start: usize, end: usize) -> std::borrow::Cow<'_, Array2<f64>> {
        match self {
            Rows::Owned(a) if start == 0 && end == a.nrows() => std::borrow::Cow::Borrowed(a),
            _ => std::borrow::Cow::Owned(self.block(start, end)),
        }
    }
}

/// Checks a (T, width) sequence (T fixed when `rows` is given). A float64
/// NumPy array is checked in place and not copied.
pub fn rows(
    arg: &str,
    obj: &Bound<'_, PyAny>,
    rows: Option<usize>,
    width: usize,
) -> PyResult<Rows> {
    if let Ok(a) = obj.cast::<PyArray2<f64>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| value_error(format!("{arg}: {e}")))?;
        let v = ro.as_array();
        let check = eprop_core::seed_eprop::check_sequence(arg, v, width, rows);
        check.map_err(to_py)?;
        return Ok(Rows::Borrowed(a.clone().unbind(), v.nrows()));
    }
    Ok(Rows::Owned(matrix(arg, obj, rows, width)?))
}

fn block_rows(width: usize) -> usize {
    (BLOCK_BYTES / (8 * width.max(1))).max(1)
}

fn empty_error(width: usize, t: usize) -> PyErr {
    to_py(EpropError::shape(
        "inputs",
        format!("(T, {width}) with T >= 1"),
        fmt_shape(&[t, width]),
    ))
}

fn panic_error() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(
        "eprop: internal error (a Rust panic was caught); please report it",
    )
}

/// `train_sequence(inputs, targets, *, reset=True)`: mean loss over the call.
pub fn train_sequence<T: Sequential + Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    dims: (usize, usize),
    inputs: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    reset: bool,
) -> PyResult<f64> {
    let x = rows("inputs", inputs, None, dims.0)?;
    let t = x.len();
    let y = rows("targets", targets, Some(t), dims.1)?;
    if t == 0 {
        return Err(empty_error(dims.0, t));
    }
    let step = block_rows(dims.0 + dims.1);
    let total = py
        .detach(|| {
            let mut g = lock(m);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if reset {
                    g.reset_state();
                }
                let mut total = 0.0;
                for start in (0..t).step_by(step) {
                    let end = (start + step).min(t);
                    let (xb, yb) = (x.view_or_block(start, end), y.view_or_block(start, end));
                    train_rows(&mut *g, xb.view(), yb.view(), &mut total);
                }
                total
            }))
        })
        .map_err(|_| panic_error())?;
    Ok(total / t as f64)
}

/// `predict_sequence(inputs, *, reset=True)`: outputs (T, n_outputs).
pub fn predict_sequence<'py, T: Sequential + Send>(
    py: Python<'py>,
    m: &Mutex<T>,
    dims: (usize, usize),
    inputs: &Bound<'py, PyAny>,
    reset: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let x = rows("inputs", inputs, None, dims.0)?;
    let t = x.len();
    let step = block_rows(dims.0 + dims.1);
    let out = py
        .detach(|| {
            let mut g = lock(m);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if reset {
                    g.reset_state();
                }
                let mut out = Array2::zeros((t, dims.1));
                for start in (0..t).step_by(step) {
                    let end = (start + step).min(t);
                    let xb = x.view_or_block(start, end);
                    predict_rows(&mut *g, xb.view(), out.slice_mut(s![start..end, ..]));
                }
                out
            }))
        })
        .map_err(|_| panic_error())?;
    Ok(numpy::PyArray::from_owned_array(py, out).into_any())
}

/// Prints `train_stream`'s progress line to stderr at most twice a second.
struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(on: bool) -> Self {
        let now = Instant::now();
        Progress {
            on,
            start: now,
            last: now,
        }
    }

    fn show(&mut self, py: Python<'_>, steps: usize, loss: f64, done: bool) -> PyResult<()> {
        if !self.on || (!done && self.last.elapsed().as_secs_f64() < 0.5) {
            return Ok(());
        }
        self.last = Instant::now();
        let rate = steps as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "\rtrain_stream: {steps} steps | {rate:.0} steps/s | mean loss {loss:.6e}{}",
            if done { "\n" } else { "" }
        );
        let stderr = py.import("sys")?.getattr("stderr")?;
        stderr.call_method1("write", (line,))?;
        stderr.call_method0("flush")?;
        Ok(())
    }
}

/// `train_stream(chunks, *, reset=True, progress=False)`: mean loss over all
/// steps. Each chunk is checked before it is used; on a bad chunk the trainer
/// keeps the state it had after the last complete chunk.
pub fn train_stream<T: Sequential + Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    dims: (usize, usize),
    chunks: &Bound<'_, PyAny>,
    reset: bool,
    progress: bool,
) -> PyResult<f64> {
    let mut total = 0.0;
    let mut steps = 0usize;
    let mut bar = Progress::new(progress);
    for (k, item) in chunks.try_iter()?.enumerate() {
        let item = item?;
        let pair: (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            value_error(format!(
                "chunks[{k}]: expected an (inputs_chunk, targets_chunk) pair, got {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let x = rows(&format!("chunks[{k}] inputs"), &pair.0, None, dims.0)?;
        let t = x.len();
        if t == 0 {
            return Err(value_error(format!(
                "chunks[{k}] inputs: expected shape (t, {}) with t >= 1, got shape (0, {})",
                dims.0, dims.0
            )));
        }
        let y = rows(&format!("chunks[{k}] targets"), &pair.1, Some(t), dims.1)?;
        let first = k == 0;
        let step = block_rows(dims.0 + dims.1);
        let mut running = total;
        running = py
            .detach(|| {
                let mut g = lock(m);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if first && reset {
                        g.reset_state();
                    }
                    for start in (0..t).step_by(step) {
                        let end = (start + step).min(t);
                        let (xb, yb) = (x.view_or_block(start, end), y.view_or_block(start, end));
                        train_rows(&mut *g, xb.view(), yb.view(), &mut running);
                    }
                    running
                }))
            })
            .map_err(|_| panic_error())?;
        total = running;
        steps += t;
        bar.show(py, steps, total / steps as f64, false)?;
    }
    if steps == 0 {
        return Err(value_error(
            "chunks: expected at least one chunk, got an empty iterable",
        ));
    }
    bar.show(py, steps, total / steps as f64, true)?;
    Ok(total / steps as f64)
}

/// Iterator returned by `predict_stream`: each `next()` takes the next input
/// chunk (t_i, n_inputs) and returns the outputs (t_i, n_outputs).
#[pyclass(module = "eprop")]
pub struct PredictStream {
    trainer: Py<PyAny>,
    chunks: Py<PyAny>,
    reset_pending: bool,
}

impl PredictStream {
    pub fn new(
        trainer: &Bound<'_, PyAny>,
        chunks: &Bound<'_, PyAny>,
        reset: bool,
    ) -> PyResult<Self> {
        Ok(PredictStream {
            trainer: trainer.clone().unbind(),
            chunks: chunks.try_iter()?.into_any().unbind(),
            reset_pending: reset,
        })
    }
}

#[pymethods]
impl PredictStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let chunks = self.chunks.bind(py).clone();
        let Some(chunk) = chunks.cast_into::<pyo3::types::PyIterator>()?.next() else {
            return Ok(None);
        };
        let kwargs = PyDict::new(py);
        kwargs.set_item("reset", self.reset_pending)?;
        let out =
            self.trainer
                .bind(py)
                .call_method("predict_sequence", (chunk?,), Some(&kwargs))?;
        self.reset_pending = false;
        Ok(Some(out))
    }
}
