//! Sequences of any length from Python: `train_sequence`/`predict_sequence`
//! with `reset`, `train_stream` and `predict_stream`, for every trainer; the
//! driving itself is the core's (`eprop_core::driver`).
//!
//! A float64 NumPy array (a `numpy.memmap` included) is not copied whole: it is
//! checked in place, then copied block by block (8 MiB at a time) while the
//! trainer stays locked, so a file larger than memory can be trained on.

use std::sync::Mutex;

use eprop_core::check;
use eprop_core::driver::{self, FixedRun, LossSum, Model, Trainer};
use eprop_core::real::{Dtype, Real};
use eprop_core::state::Stateful;
use numpy::ndarray::{s, Array1, Array2, ArrayView1, ArrayView2};
use numpy::{PyArray2, PyArrayMethods};
use pyo3::prelude::*;

use crate::convert::matrix;
use crate::errors::{to_py, value_error};

const BLOCK_BYTES: usize = 8 << 20;

/// Arrays smaller than this are copied whole; larger ones are read in blocks.
const COPY_WHOLE_BYTES: usize = 64 << 20;

/// A (T, width) sequence: copied already (as float64), or a large float64 or
/// float32 NumPy array read in blocks.
pub enum Rows {
    Owned(Array2<f64>),
    /// A large array checked in place, read block by block (argument name kept
    /// for the message if a block changed after the check).
    Borrowed(Large, usize, String),
}

/// A large NumPy array read in blocks: float64, or float32 (each block
/// widened to float64, exactly).
pub enum Large {
    F64(Py<PyArray2<f64>>),
    F32(Py<PyArray2<f32>>),
}

impl Large {
    /// Rows `[start, end)` as float64, copied.
    fn rows(&self, py: Python<'_>, start: usize, end: usize) -> Result<Array2<f64>, String> {
        match self {
            Large::F64(p) => {
                let ro = p.bind(py).try_readonly().map_err(|e| e.to_string())?;
                Ok(ro.as_array().slice(s![start..end, ..]).to_owned())
            }
            Large::F32(p) => {
                let ro = p.bind(py).try_readonly().map_err(|e| e.to_string())?;
                Ok(ro.as_array().slice(s![start..end, ..]).mapv(f64::from))
            }
        }
    }
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
                let b = p.rows(py, start, end).map_err(|e| format!("{arg}: {e}"))?;
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

    /// A block of rows as [`Self::view_or_block`] reads it, checked again for
    /// the range of `F` when it was re-read from a borrowed array (which
    /// another thread may have written to since the whole was checked).
    fn rows_of<F: Real>(&self, start: usize, end: usize) -> Result<Block<'_>, String> {
        let b = self.view_or_block(start, end)?;
        if let Rows::Borrowed(_, _, arg) = self {
            F::DTYPE
                .check_range(arg, b.view().iter())
                .map_err(|e| format!("{e} (the array changed while it was being read)"))?;
        }
        Ok(b)
    }

    /// Refuses finite values the trainer's float type cannot hold (checked
    /// whole, before any step runs).
    pub fn check_range(&self, name: &str, dtype: Dtype) -> PyResult<()> {
        if dtype == Dtype::F64 {
            return Ok(());
        }
        match self {
            Rows::Owned(a) => dtype.check_range(name, a.iter()),
            // float32 values are always in range
            Rows::Borrowed(Large::F32(_), ..) => Ok(()),
            Rows::Borrowed(Large::F64(p), _, arg) => {
                return Python::attach(|py| {
                    let ro = p.bind(py).try_readonly().map_err(|e| value_error(format!("{arg}: {e}")))?;
                    dtype.check_range(arg, ro.as_array().iter()).map_err(to_py)
                })
            }
        }
        .map_err(to_py)
    }

    /// Rows `[start, end)`: a view of an owned array (no copy), or a block
    /// copied from a borrowed one.
    fn view_or_block(&self, start: usize, end: usize) -> Result<Block<'_>, String> {
        match self {
            Rows::Owned(a) => Ok(Block::View(a.slice(s![start..end, ..]))),
            _ => self.block(start, end).map(Block::Owned),
        }
    }
}

/// Rows of a [`Rows`]: a view, or a block read from a borrowed array.
enum Block<'a> {
    View(ArrayView2<'a, f64>),
    Owned(Array2<f64>),
}

impl Block<'_> {
    fn view(&self) -> ArrayView2<'_, f64> {
        match self {
            Block::View(v) => v.view(),
            Block::Owned(a) => a.view(),
        }
    }
}

/// Checks a (T, width) sequence (T fixed when `rows` is given). A large
/// float64 or float32 NumPy array (a `numpy.memmap`, say) is checked in place
/// and read in blocks, not copied whole.
pub fn rows(arg: &str, obj: &Bound<'_, PyAny>, rows: Option<usize>, width: usize) -> PyResult<Rows> {
    if let Some(r) = large::<f64>(arg, obj, rows, width, |a| Large::F64(a.clone().unbind()))? {
        return Ok(r);
    }
    if let Some(r) = large::<f32>(arg, obj, rows, width, |a| Large::F32(a.clone().unbind()))? {
        return Ok(r);
    }
    Ok(Rows::Owned(matrix(arg, obj, rows, width)?))
}

/// `obj` as [`Rows::Borrowed`] when it is a NumPy array of `F` whose float64
/// copy would exceed [`COPY_WHOLE_BYTES`] (checked in place).
fn large<F: Real + numpy::Element>(
    arg: &str,
    obj: &Bound<'_, PyAny>,
    rows: Option<usize>,
    width: usize,
    keep: impl Fn(&Bound<'_, PyArray2<F>>) -> Large,
) -> PyResult<Option<Rows>> {
    let Ok(a) = obj.cast::<PyArray2<F>>() else { return Ok(None) };
    let ro = a.try_readonly().map_err(|e| value_error(format!("{arg}: {e}")))?;
    let v = ro.as_array();
    if 8 * v.len() <= COPY_WHOLE_BYTES {
        return Ok(None);
    }
    check::sequence(arg, v, width, rows).map_err(to_py)?;
    Ok(Some(Rows::Borrowed(keep(a), v.nrows(), arg.to_string())))
}

fn block_rows(width: usize) -> usize {
    (BLOCK_BYTES / (8 * width.max(1))).max(1)
}

/// How a trainer reads targets (T, n_outputs) for `t` steps (with the
/// chunk's mask, which selects the steps whose error counts): plain float
/// arrays for the seed trainers; class indices or class probabilities for
/// cross-entropy.
pub type TargetReader<'a> = &'a dyn Fn(&str, &Bound<'_, PyAny>, usize, Option<&Array1<bool>>) -> PyResult<Rows>;

/// A `(T,)` boolean mask (1/0 and True/False accepted).
pub fn mask_rows(arg: &str, obj: &Bound<'_, PyAny>, t: usize) -> PyResult<Array1<bool>> {
    let m = crate::convert::array(arg, obj)?;
    let v = check::sequence_mask(arg, m.shape(), m.as_slice().unwrap_or(&[]), t).map_err(to_py)?;
    Ok(Array1::from(v))
}

/// A checked training chunk: inputs, targets, optional mask.
pub struct Chunk {
    pub x: Rows,
    pub y: Rows,
    pub mask: Option<Array1<bool>>,
}

impl Chunk {
    /// [`Rows::check_range`] of inputs and targets.
    pub fn check_range(&self, (inputs, targets): (&str, &str), dtype: Dtype) -> PyResult<()> {
        self.x.check_range(inputs, dtype)?;
        self.y.check_range(targets, dtype)
    }

    /// Calls `f` on every block of rows of the chunk (inputs, targets, mask),
    /// in order; blocks hold [`block_rows`] rows of `width` values.
    fn each_block<F: Real>(
        &self,
        width: usize,
        mut f: impl FnMut(ArrayView2<'_, f64>, ArrayView2<'_, f64>, Option<ArrayView1<'_, bool>>),
    ) -> Result<(), String> {
        let t = self.x.len();
        let step = block_rows(width);
        for start in (0..t).step_by(step) {
            let end = (start + step).min(t);
            let xb = self.x.rows_of::<F>(start, end)?;
            let yb = self.y.rows_of::<F>(start, end)?;
            f(xb.view(), yb.view(), self.mask.as_ref().map(|m| m.slice(s![start..end])));
        }
        Ok(())
    }
}

/// Learns on every block of `c`, in order.
fn train_chunk<M: Model>(g: &mut Trainer<M>, c: &Chunk, width: usize, sum: &mut LossSum) -> Result<(), String> {
    c.each_block::<M::F>(width, |x, y, m| driver::train_rows(g, x, y, m, sum))
}

/// Runs `f` on the locked trainer with the GIL released; panics and block
/// errors come back as Python exceptions.
fn run_locked<T: Send, R: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> Result<R, String> + Send,
) -> PyResult<R> {
    crate::errors::locked(py, m, f)?.map_err(value_error)
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
    check::some_steps(names.0, t, width_in).map_err(to_py)?;
    let mask = mask.map(|m| mask_rows(names.2, m, t)).transpose()?;
    let y = read_targets(names.1, targets, t, mask.as_ref())?;
    Ok(Chunk { x, y, mask })
}

/// `train_sequence(inputs, targets, *, reset=True)`: mean loss over the
/// call's counted steps; trainers that update once per sequence apply here.
pub fn train_sequence<M: Model>(
    py: Python<'_>,
    m: &Mutex<Trainer<M>>,
    widths: (usize, usize),
    chunk: Chunk,
    reset: bool,
) -> PyResult<f64>
where
    Trainer<M>: Stateful + Clone,
{
    let run = move |g: &mut Trainer<M>| {
        driver::begin(g, reset);
        let mut sum = LossSum::default();
        train_chunk(g, &chunk, widths.0 + widths.1, &mut sum)?;
        driver::finish(g);
        Ok(sum.mean())
    };
    run_locked(py, m, move |g| driver::atomic(g, "inputs, targets", run, |loss: &f64| loss.is_finite()))
}

/// `predict_sequence(inputs, *, reset=True)`: outputs (T, n_outputs).
pub fn predict_sequence<'py, M: Model>(
    py: Python<'py>,
    m: &Mutex<Trainer<M>>,
    widths: (usize, usize),
    inputs: &Bound<'py, PyAny>,
    reset: bool,
) -> PyResult<Bound<'py, PyAny>>
where
    Trainer<M>: Stateful + Clone,
{
    let dtype = <M::F as Real>::DTYPE;
    let x = rows("inputs", inputs, None, widths.0)?;
    x.check_range("inputs", dtype)?;
    let t = x.len();
    let step = block_rows(widths.0 + widths.1);
    let run = move |g: &mut Trainer<M>| {
        driver::begin(g, reset);
        let mut out = Array2::zeros((t, widths.1));
        for start in (0..t).step_by(step) {
            let end = (start + step).min(t);
            let xb = x.rows_of::<M::F>(start, end)?;
            driver::predict_rows(g, xb.view(), out.slice_mut(s![start..end, ..]));
        }
        Ok(out)
    };
    let finite = |o: &Array2<f64>| driver::all_finite(o);
    let out = run_locked(py, m, move |g| driver::atomic(g, "inputs", run, finite))?;
    Ok(crate::convert::array_out(py, out, dtype))
}

/// One chunk of a stream (`train_stream`, driven from Python): starts the
/// call when `begin` (with a reset when asked), learns on every row and adds
/// to the running sums `sum`, which are carried from chunk to chunk so that a
/// stream is bitwise one call.
pub fn train_chunk_call<M: Model>(
    py: Python<'_>,
    m: &Mutex<Trainer<M>>,
    widths: (usize, usize),
    chunk: Chunk,
    (begin, reset): (bool, bool),
    mut sum: LossSum,
    args: &str,
) -> PyResult<LossSum>
where
    Trainer<M>: Stateful + Clone,
{
    let run = move |g: &mut Trainer<M>| {
        if begin {
            driver::begin(g, reset);
        }
        train_chunk(g, &chunk, widths.0 + widths.1, &mut sum)?;
        Ok(sum)
    };
    run_locked(py, m, move |g| driver::atomic(g, args, run, |s: &LossSum| s.total.is_finite()))
}

/// Runs every block of `c` through `run` on the model's weights.
fn fixed_chunk<M: Model>(model: &M, run: &mut FixedRun<M>, c: &Chunk, width: usize) -> Result<(), String> {
    c.each_block::<M::F>(width, |x, y, m| run.rows(model, x, y, m))
}

/// One sequence given as an iterable of `(inputs, targets[, mask])` chunks,
/// run on the trainer's current weights from reset state (chunk by chunk,
/// each checked before it runs, in constant memory): its summed change as one
/// row (widened to float64) and its mean loss over the counted steps. The
/// trainer is not changed.
pub fn sequence_change<M: Model>(
    py: Python<'_>,
    m: &Mutex<Trainer<M>>,
    widths: (usize, usize),
    chunks: &Bound<'_, PyAny>,
    read_targets: TargetReader<'_>,
) -> PyResult<(Vec<f64>, f64)> {
    let mut run: Option<FixedRun<M>> = None;
    let iter = chunks
        .try_iter()
        .map_err(|_| value_error("chunks: expected an iterable of (inputs, targets[, mask]) chunks"))?;
    for (k, item) in iter.enumerate() {
        let item = item?;
        let parts: Vec<Bound<'_, PyAny>> = match item.extract() {
            Ok(v) => v,
            Err(_) => return Err(value_error(format!("chunk {k}: expected (inputs, targets[, mask])"))),
        };
        let (inputs, targets, mask) = match parts.as_slice() {
            [x, y] => (x, y, None),
            [x, y, mk] => (x, y, Some(mk)),
            other => {
                return Err(value_error(format!(
                    "chunk {k}: expected (inputs, targets[, mask]), got a sequence of {} items",
                    other.len()
                )))
            }
        };
        let names = (format!("chunk {k}: inputs"), format!("chunk {k}: targets"), format!("chunk {k}: mask"));
        let names = (names.0.as_str(), names.1.as_str(), names.2.as_str());
        let c = read_chunk(names, widths.0, inputs, targets, mask, read_targets)?;
        c.check_range((names.0, names.1), <M::F as Real>::DTYPE)?;
        let prev = run.take();
        run = Some(run_locked(py, m, move |g| {
            let mut r = prev.unwrap_or_else(|| FixedRun::new(&g.model));
            fixed_chunk(&g.model, &mut r, &c, widths.0 + widths.1)?;
            Ok(r)
        })?);
    }
    let Some(r) = run else {
        return Err(value_error("chunks: expected at least one chunk, got none"));
    };
    run_locked(py, m, move |g| {
        let (seq, acc, sum) = r.finish(&g.model);
        let mut row = Vec::with_capacity(driver::change_len(&g.model));
        driver::push_change(&g.model, &seq, &acc, &mut row);
        Ok((eprop_core::real::widened(&row), sum.mean()))
    })
}
