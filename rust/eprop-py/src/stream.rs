//! Sequences of any length from Python: `train_sequence`/`predict_sequence`
//! with `reset`, `train_stream` and `predict_stream`, shared by every trainer.
//!
//! A float64 NumPy array (a `numpy.memmap` included) is not copied whole: it is
//! checked in place, then copied block by block (8 MiB at a time) while the
//! trainer stays locked, so a file larger than memory can be trained on.

use std::sync::Mutex;
use std::time::Instant;

use eprop_core::error::fmt_shape;
use eprop_core::stream::{predict_rows, train_rows, LossSum, Sequential};
use eprop_core::EpropError;
use numpy::ndarray::{s, Array1, Array2};
use numpy::{PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{lock, matrix, to_py, value_error};

const BLOCK_BYTES: usize = 8 << 20;

/// Arrays smaller than this are copied whole; larger ones are read in blocks.
const COPY_WHOLE_BYTES: usize = 64 << 20;

/// A (T, width) float64 sequence: copied already, or a NumPy array read in blocks.
pub enum Rows {
    Owned(Array2<f64>),
    /// A large array checked in place, read block by block (argument name kept
    /// for the message if a block changed after the check).
    Borrowed(Py<PyArray2<f64>>, usize, String),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Owned(a) => a.nrows(),
            Rows::Borrowed(_, t, _) => *t,
        }
    }

    /// Rows `[start, end)` as an owned array (re-attaching to Python if
    /// needed). A block of a borrowed array is checked again after the copy:
    /// another thread may have written to the array since it was checked.
    fn block(&self, start: usize, end: usize) -> Result<Array2<f64>, String> {
        match self {
            Rows::Owned(a) => Ok(a.slice(s![start..end, ..]).to_owned()),
            Rows::Borrowed(p, _, arg) => Python::attach(|py| {
                let ro = p
                    .bind(py)
                    .try_readonly()
                    .map_err(|e| format!("{arg}: {e}"))?;
                let b = ro.as_array().slice(s![start..end, ..]).to_owned();
                match b.iter().position(|x| !x.is_finite()) {
                    None => Ok(b),
                    Some(i) => Err(format!(
                        "{arg}: expected finite values, got {} at row {} (the array changed while it was \
                         being read; the steps before that block were processed)",
                        b.iter().nth(i).copied().unwrap_or(f64::NAN),
                        start + i / b.ncols().max(1)
                    )),
                }
            }),
        }
    }

    /// Runs `f` on a view of all rows (for checks that need the whole array).
    pub fn check(
        &self,
        f: impl FnOnce(numpy::ndarray::ArrayView2<f64>) -> eprop_core::Result<()>,
    ) -> PyResult<()> {
        match self {
            Rows::Owned(a) => f(a.view()).map_err(to_py),
            Rows::Borrowed(p, _, arg) => Python::attach(|py| {
                let ro = p
                    .bind(py)
                    .try_readonly()
                    .map_err(|e| value_error(format!("{arg}: {e}")))?;
                f(ro.as_array()).map_err(to_py)
            }),
        }
    }

    fn view_or_block(
        &self,
        start: usize,
        end: usize,
    ) -> Result<std::borrow::Cow<'_, Array2<f64>>, String> {
        match self {
            Rows::Owned(a) if start == 0 && end == a.nrows() => Ok(std::borrow::Cow::Borrowed(a)),
            _ => self.block(start, end).map(std::borrow::Cow::Owned),
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
        if 8 * v.len() > COPY_WHOLE_BYTES {
            let check = eprop_core::seed_eprop::check_sequence(arg, v, width, rows);
            check.map_err(to_py)?;
            return Ok(Rows::Borrowed(
                a.clone().unbind(),
                v.nrows(),
                arg.to_string(),
            ));
        }
    }
    Ok(Rows::Owned(matrix(arg, obj, rows, width)?))
}

fn block_rows(width: usize) -> usize {
    (BLOCK_BYTES / (8 * width.max(1))).max(1)
}

fn panic_error() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(
        "eprop: internal error (a Rust panic was caught); please report it",
    )
}

/// How a trainer reads targets (T, n_outputs) for `t` steps (with the
/// chunk's mask, which selects the steps whose error counts): plain float
/// arrays for the seed trainers; class indices or class probabilities for
/// cross-entropy.
pub type TargetReader<'a> =
    &'a dyn Fn(&str, &Bound<'_, PyAny>, usize, Option<&Array1<bool>>) -> PyResult<Rows>;

/// Plain (T, n_outputs) float targets.
pub fn float_targets(
    width: usize,
) -> impl Fn(&str, &Bound<'_, PyAny>, usize, Option<&Array1<bool>>) -> PyResult<Rows> {
    move |arg, obj, t, _mask| rows(arg, obj, Some(t), width)
}

/// A `(T,)` boolean mask (1/0 and True/False accepted).
pub fn mask_rows(arg: &str, obj: &Bound<'_, PyAny>, t: usize) -> PyResult<Array1<bool>> {
    let m = crate::convert::extract_f64(arg, obj)?;
    let shape = m.shape().to_vec();
    if shape != [t] {
        return Err(to_py(EpropError::shape(
            arg,
            fmt_shape(&[t]),
            fmt_shape(&shape),
        )));
    }
    if let Some(bad) = m.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(value_error(format!(
            "{arg}: expected booleans (0 or 1), got {bad}"
        )));
    }
    Ok(m.iter().map(|&v| v != 0.0).collect())
}

/// A checked training chunk: inputs, targets, optional mask.
pub struct Chunk {
    pub x: Rows,
    pub y: Rows,
    pub mask: Option<Array1<bool>>,
}

/// Learns on every block of `c`, in order.
fn train_chunk<T: Sequential>(
    g: &mut T,
    c: &Chunk,
    width: usize,
    sum: &mut LossSum,
) -> Result<(), String> {
    let t = c.x.len();
    let step = block_rows(width);
    for start in (0..t).step_by(step) {
        let end = (start + step).min(t);
        let xb = c.x.view_or_block(start, end)?;
        let yb = c.y.view_or_block(start, end)?;
        let mb = c.mask.as_ref().map(|m| m.slice(s![start..end]));
        train_rows(g, xb.view(), yb.view(), mb, sum);
    }
    Ok(())
}

/// Runs `f` on the locked trainer with the GIL released; panics and block
/// errors come back as Python exceptions.
fn run_locked<T: Send, R: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> Result<R, String> + Send,
) -> PyResult<R> {
    py.detach(|| {
        let mut g = lock(m);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut g)))
    })
    .map_err(|_| panic_error())?
    .map_err(value_error)
}

/// Reads and checks `(inputs, targets[, mask])` of one sequence.
pub fn read_chunk(
    names: (&str, &str, &str),
    width_in: usize,
    inputs: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    read_targets: TargetReader<'_>,
) -> PyResult<Chunk> {
    let x = rows(names.0, inputs, None, width_in)?;
    let t = x.len();
    if t == 0 {
        return Err(value_error(format!(
            "{}: expected shape (T, {width_in}) with T >= 1, got shape (0, {width_in})",
            names.0
        )));
    }
    let mask = mask.map(|m| mask_rows(names.2, m, t)).transpose()?;
    let y = read_targets(names.1, targets, t, mask.as_ref())?;
    Ok(Chunk { x, y, mask })
}

/// `train_sequence(inputs, targets, *, reset=True)`: mean loss over the
/// call's counted steps; trainers that update once per sequence apply here.
pub fn train_sequence<T: Sequential + Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    widths: (usize, usize),
    chunk: Chunk,
    reset: bool,
) -> PyResult<f64> {
    run_locked(py, m, move |g| {
        if reset {
            g.reset_state();
        }
        let mut sum = LossSum::default();
        train_chunk(g, &chunk, widths.0 + widths.1, &mut sum)?;
        g.end_of_sequence();
        Ok(sum.mean())
    })
}

/// `predict_sequence(inputs, *, reset=True)`: outputs (T, n_outputs).
pub fn predict_sequence<'py, T: Sequential + Send>(
    py: Python<'py>,
    m: &Mutex<T>,
    widths: (usize, usize),
    inputs: &Bound<'py, PyAny>,
    reset: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let x = rows("inputs", inputs, None, widths.0)?;
    let t = x.len();
    let step = block_rows(widths.0 + widths.1);
    let out = run_locked(py, m, move |g| {
        if reset {
            g.reset_state();
        }
        let mut out = Array2::zeros((t, widths.1));
        for start in (0..t).step_by(step) {
            let end = (start + step).min(t);
            let xb = x.view_or_block(start, end)?;
            predict_rows(g, xb.view(), out.slice_mut(s![start..end, ..]));
        }
        Ok(out)
    })?;
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
/// counted steps. Each chunk, `(inputs, targets)` or `(inputs, targets, mask)`,
/// is checked before it is used; on a bad chunk the trainer keeps the state it
/// had after the last complete chunk. The whole stream is one sequence for
/// trainers that update once per sequence.
pub fn train_stream<T: Sequential + Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    widths: (usize, usize),
    chunks: &Bound<'_, PyAny>,
    read_targets: TargetReader<'_>,
    reset: bool,
    progress: bool,
) -> PyResult<f64> {
    let mut sum = LossSum::default();
    let mut steps = 0usize;
    let mut bar = Progress::new(progress);
    for (k, item) in chunks.try_iter()?.enumerate() {
        let item = item?;
        let parts: Vec<Bound<'_, PyAny>> = match item.extract::<Vec<Bound<'_, PyAny>>>() {
            Ok(p)
                if (2..=3).contains(&p.len())
                    && (item.is_instance_of::<pyo3::types::PyTuple>() || item.is_instance_of::<pyo3::types::PyList>()) =>
            {
                p
            }
            _ => {
                return Err(value_error(format!(
                    "chunks[{k}]: expected an (inputs, targets) or (inputs, targets, mask) tuple, got {}",
                    item.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                )))
            }
        };
        let names = (
            format!("chunks[{k}] inputs"),
            format!("chunks[{k}] targets"),
            format!("chunks[{k}] mask"),
        );
        let chunk = read_chunk(
            (&names.0, &names.1, &names.2),
            widths.0,
            &parts[0],
            &parts[1],
            parts.get(2),
            read_targets,
        )?;
        let t = chunk.x.len();
        let first = k == 0;
        let mut running = sum;
        sum = run_locked(py, m, move |g| {
            if first && reset {
                g.reset_state();
            }
            train_chunk(g, &chunk, widths.0 + widths.1, &mut running)?;
            Ok(running)
        })?;
        steps += t;
        bar.show(py, steps, sum.mean(), false)?;
    }
    if steps == 0 {
        return Err(value_error(
            "chunks: expected at least one chunk, got an empty iterable",
        ));
    }
    run_locked(py, m, |g| {
        g.end_of_sequence();
        Ok(())
    })?;
    bar.show(py, steps, sum.mean(), true)?;
    Ok(sum.mean())
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
