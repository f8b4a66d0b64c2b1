//! What every trainer class shares, written once: the methods (sequences,
//! streams, batches, state, checkpoints) as generic functions over
//! [`PyTrainer`], and macros that put them, and the property accessors, on a
//! class (several `#[pymethods]` blocks per class).

use std::sync::{Arc, Mutex};

use eprop_core::check;
use eprop_core::driver::{self, Described, Model, Trainer, Update};
use eprop_core::npz;
use eprop_core::pool::run_in_pool;
use eprop_core::real::{rounded, widened, Dtype};
use eprop_core::state::{StateDict, Stateful};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::errors::to_py;
use crate::stream::{self, Chunk, Rows};

/// Any Python object (arguments, results).
pub type Obj<'py> = Bound<'py, PyAny>;

/// The trainer of a class, in the float type it was built with (`dtype`),
/// behind the lock every method takes.
pub enum Dual<A: Model, B: Model> {
    F64(Arc<Mutex<Trainer<A>>>),
    F32(Arc<Mutex<Trainer<B>>>),
}

impl<A: Model, B: Model> Dual<A, B> {
    /// `a` in float64 (`f32` false) or `b` in float32.
    pub fn new(f32: bool, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> Self {
        if f32 {
            Dual::F32(Arc::new(Mutex::new(Trainer::new(b()))))
        } else {
            Dual::F64(Arc::new(Mutex::new(Trainer::new(a()))))
        }
    }

    /// Another handle on the same trainer (a view shares its trainer's).
    pub fn share(&self) -> Self {
        match self {
            Dual::F64(a) => Dual::F64(Arc::clone(a)),
            Dual::F32(b) => Dual::F32(Arc::clone(b)),
        }
    }

    /// The float type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Dual::F64(_) => Dtype::F64,
            Dual::F32(_) => Dtype::F32,
        }
    }
}

/// `$body` with `$m` bound to the lock of the trainer in `$dual` (a
/// [`Dual`]), whichever its float type: the body is compiled once for each.
macro_rules! each_dual {
    ($dual:expr, $m:ident => $body:expr) => {
        match $dual {
            $crate::shared::Dual::F64($m) => $body,
            $crate::shared::Dual::F32($m) => $body,
        }
    };
}
pub(crate) use each_dual;

/// `$body` run on the locked trainer `$t` of `$dual` with the GIL released
/// (see [`crate::errors::locked`]), whichever its float type.
macro_rules! with_dual {
    ($py:expr, $dual:expr, $t:ident => $body:expr) => {
        $crate::shared::each_dual!($dual, m => $crate::errors::locked($py, m, move |$t| $body))
    };
}
pub(crate) use with_dual;

/// [`with_dual`] for work that can fail with a core error.
macro_rules! try_dual {
    ($py:expr, $dual:expr, $t:ident => $body:expr) => {
        $crate::shared::each_dual!($dual, m => $crate::errors::locked_try($py, m, move |$t| $body))
    };
}
pub(crate) use try_dual;

/// [`each_dual`] on the trainer of `$p` (a [`PyTrainer`]).
macro_rules! each_trainer {
    ($p:expr, $m:ident => $body:expr) => {
        $crate::shared::each_dual!($crate::shared::PyTrainer::inner($p), $m => $body)
    };
}
pub(crate) use each_trainer;

/// [`with_dual`] on the trainer of `$p` (a [`PyTrainer`]).
macro_rules! with_trainer {
    ($py:expr, $p:expr, $t:ident => $body:expr) => {
        $crate::shared::with_dual!($py, $crate::shared::PyTrainer::inner($p), $t => $body)
    };
}
pub(crate) use with_trainer;

/// [`try_dual`] on the trainer of `$p` (a [`PyTrainer`]).
macro_rules! try_trainer {
    ($py:expr, $p:expr, $t:ident => $body:expr) => {
        $crate::shared::try_dual!($py, $crate::shared::PyTrainer::inner($p), $t => $body)
    };
}
pub(crate) use try_trainer;

/// A native class that holds a trainer (a model and its own sequence).
pub trait PyTrainer: Send + Sync + Sized + 'static {
    /// The model in float64 and in float32.
    type M: Model + 'static;
    type M32: Model + 'static;
    /// The trainer.
    fn inner(&self) -> &Dual<Self::M, Self::M32>;
    /// The float type of the trainer.
    fn float_type(&self) -> Dtype {
        self.inner().dtype()
    }
    /// A new value of hyperparameter `name`, checked for the float type.
    fn check_hyper(&self, name: &str, v: f64) -> PyResult<()> {
        self.float_type().check_hypers(&[(name, v)]).map_err(to_py)
    }
    /// (n_inputs, n_outputs).
    fn widths(&self) -> (usize, usize);
    /// Reads the targets of a sequence of `t` steps (the mask selects the
    /// steps whose error counts): plain (T, n_outputs) floats by default.
    fn targets(&self, arg: &str, obj: &Bound<'_, PyAny>, t: usize, _mask: Option<&Array1<bool>>) -> PyResult<Rows> {
        stream::rows(arg, obj, Some(t), self.widths().1)
    }
    /// Reads the targets of a batch (B, T): plain (B, T, n_outputs) floats by default.
    fn batch_targets(
        &self,
        obj: &Bound<'_, PyAny>,
        b: usize,
        t: usize,
        _mask: Option<&Array2<bool>>,
    ) -> PyResult<Array3<f64>> {
        convert::batch("targets", obj, Some((b, t)), self.widths().1)
    }
    /// Runs `f` on the locked trainer's configuration (the same type in
    /// both float types).
    fn with_config<R: Send, C>(&self, py: Python<'_>, f: impl FnOnce(&mut C) -> R + Send) -> PyResult<R>
    where
        Trainer<Self::M>: Described<Config = C>,
        Trainer<Self::M32>: Described<Config = C>,
    {
        with_trainer!(py, self, t => f(t.config_mut()))
    }

    /// One hyperparameter, by its configuration name (see [`Stateful::config`]).
    fn config_value<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Obj<'py>>
    where
        Trainer<Self::M>: Stateful,
        Trainer<Self::M32>: Stateful,
    {
        let d = with_trainer!(py, self, t => t.config())?;
        convert::value_to_py(py, d.get(name).map_err(to_py)?)
    }

    /// One array of the state, by name (see [`Stateful::arrays`]), as a
    /// read-only copy in the trainer's float type.
    fn named_array<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Obj<'py>>
    where
        Trainer<Self::M>: Stateful,
        Trainer<Self::M32>: Stateful,
    {
        let a = with_trainer!(py, self, t => t.array(name))?;
        convert::named_array(py, name, a, self.float_type())
    }

    /// Replaces the weight array `name` (see [`Stateful::set_array`]).
    fn set_named_array(&self, py: Python<'_>, name: &str, value: &Obj<'_>) -> PyResult<()>
    where
        Trainer<Self::M>: Stateful,
        Trainer<Self::M32>: Stateful,
    {
        let a = convert::array(name, value)?;
        try_trainer!(py, self, t => t.set_array(name, a))
    }
}

/// Reads `(inputs, targets[, mask])` of one sequence.
pub fn chunk<P: PyTrainer>(
    p: &P,
    inputs: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
) -> PyResult<Chunk> {
    let read = |arg: &str, obj: &Bound<'_, PyAny>, t: usize, m: Option<&Array1<bool>>| p.targets(arg, obj, t, m);
    let c = stream::read_chunk(("inputs", "targets", "mask"), p.widths().0, inputs, targets, mask, &read)?;
    c.check_range(("inputs", "targets"), p.float_type())?;
    Ok(c)
}

pub fn train_sequence<P: PyTrainer>(
    py: Python<'_>,
    p: &P,
    (inputs, targets, mask): (&Bound<'_, PyAny>, &Bound<'_, PyAny>, Option<&Bound<'_, PyAny>>),
    reset: bool,
) -> PyResult<f64>
where
    Trainer<P::M>: Stateful + Clone,
    Trainer<P::M32>: Stateful + Clone,
{
    let c = chunk(p, inputs, targets, mask)?;
    each_trainer!(p, m => stream::train_sequence(py, m, p.widths(), c, reset))
}

/// One step with input `x` and, to learn, a `target` (its error counted when
/// `mask`). Returns a dict with `spikes` (models with a recurrent layer),
/// `output` and, with a target, `loss`.
pub fn step<'py, P: PyTrainer>(
    py: Python<'py>,
    p: &P,
    x: Array1<f64>,
    target: Option<Array1<f64>>,
    mask: bool,
) -> PyResult<Bound<'py, PyDict>>
where
    Trainer<P::M>: Stateful + Clone,
    Trainer<P::M32>: Stateful + Clone,
{
    let with_target = target.is_some();
    let dtype = p.float_type();
    dtype.check_range("x", x.iter()).map_err(to_py)?;
    if let Some(y) = &target {
        dtype.check_range("target", y.iter()).map_err(to_py)?;
    }
    let args = if with_target { "x, target" } else { "x" };
    let (z, out, loss) = try_trainer!(py, p, t => {
        let x = rounded(x.as_slice().unwrap_or(&[]));
        let target = target.as_ref().map(|a| rounded(a.as_slice().unwrap_or(&[])));
        let (z, out, loss) = step_outputs(t, &x, target.as_deref(), mask);
        match loss.is_finite() && driver::all_finite(&out) {
            true => Ok((z, out, loss)),
            false => Err(driver::overflow_in_step(args)),
        }
    })?;
    let d = PyDict::new(py);
    if let Some(z) = z {
        d.set_item("spikes", convert::vec_out(py, z, dtype))?;
    }
    d.set_item("output", convert::vec_out(py, out, dtype))?;
    if with_target {
        d.set_item("loss", loss)?;
    }
    Ok(d)
}

/// One step of `t`'s own sequence: spikes (models with a recurrent layer),
/// output and loss, widened to float64.
fn step_outputs<M: Model>(
    t: &mut Trainer<M>,
    x: &[M::F],
    target: Option<&[M::F]>,
    mask: bool,
) -> (Option<Vec<f64>>, Vec<f64>, f64) {
    let loss = t.step(x, target, mask);
    (t.model.spikes(&t.seq).map(widened), widened(t.output()), loss)
}

/// Inputs (B, T, n_inputs) of a batch, copied once.
pub fn batch_inputs<P: PyTrainer>(p: &P, inputs: &Bound<'_, PyAny>) -> PyResult<Array3<f64>> {
    let x = convert::batch("inputs", inputs, None, p.widths().0)?;
    p.float_type().check_range("inputs", x.iter()).map_err(to_py)?;
    Ok(x)
}

/// A batch mask: None, (T,) shared by every sequence, or (B, T).
pub fn batch_mask(obj: Option<&Bound<'_, PyAny>>, b: usize, t: usize) -> PyResult<Option<Array2<bool>>> {
    let Some(obj) = obj else { return Ok(None) };
    let a = convert::array("mask", obj)?;
    let v = check::batch_mask("mask", a.shape(), a.as_slice().unwrap_or(&[]), b, t).map_err(to_py)?;
    Ok(Some(Array2::from_shape_vec((b, t), v).expect("(B, T) mask")))
}

/// A batch's (inputs, targets, mask), each argument extracted once.
pub type BatchArgs = (Array3<f64>, Array3<f64>, Option<Array2<bool>>);

pub fn batch_args<P: PyTrainer>(
    p: &P,
    inputs: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
) -> PyResult<BatchArgs> {
    let x = batch_inputs(p, inputs)?;
    let (b, t, _) = x.dim();
    let m = batch_mask(mask, b, t)?;
    let y = p.batch_targets(targets, b, t, m.as_ref())?;
    p.float_type().check_range("targets", y.iter()).map_err(to_py)?;
    Ok((x, y, m))
}

pub fn train_batch<'py, P: PyTrainer>(
    py: Python<'py>,
    p: &P,
    args: BatchArgs,
    update: Update,
    n_threads: Option<&Obj<'_>>,
) -> PyResult<Bound<'py, PyAny>>
where
    Trainer<P::M>: Stateful + Clone,
    Trainer<P::M32>: Stateful + Clone,
{
    let n_threads = convert::threads(n_threads)?;
    let (x, y, m) = args;
    let losses = try_trainer!(py, p, t => {
        let finite = |l: &Vec<f64>| driver::all_finite(l);
        let m = m.as_ref().map(|m| m.view());
        let run = |t: &mut Trainer<_>| {
            run_in_pool(n_threads, || driver::train_batch(&mut t.model, x.view(), y.view(), m, update)).and_then(|r| r)
        };
        driver::atomic(t, "inputs, targets", run, finite)
    })?;
    Ok(PyArray::from_vec(py, losses).into_any())
}

/// `_batch_changes`: the summed change of each sequence of a batch on the
/// current weights, rows (B, P) in the trainer's float type, and the mean
/// loss of each sequence (B,); the trainer is not changed.
pub fn batch_changes<'py, P: PyTrainer>(
    py: Python<'py>,
    p: &P,
    args: BatchArgs,
    n_threads: Option<&Obj<'_>>,
) -> PyResult<(Obj<'py>, Obj<'py>)> {
    let n_threads = convert::threads(n_threads)?;
    let (x, y, m) = args;
    let b = x.dim().0;
    let (rows, losses, width) = with_trainer!(py, p, t => {
        run_in_pool(n_threads, || {
            let width = driver::change_len(&t.model);
            driver::batch_changes(&t.model, x.view(), y.view(), m.as_ref().map(|m| m.view()))
                .map(|(rows, losses)| (widened(&rows), losses, width))
        })
    })?
    .and_then(|r| r)
    .map_err(to_py)?;
    let a = Array2::from_shape_vec((b, width), rows).expect("(B, P) changes");
    Ok((convert::array_out(py, a, p.float_type()), PyArray::from_vec(py, losses).into_any()))
}

/// `_apply_changes`: applies the mean of change rows (B, P) as
/// `train_batch(update="sequence")` does; checked first.
pub fn apply_changes<P: PyTrainer>(
    py: Python<'_>,
    p: &P,
    changes: &Obj<'_>,
    n_threads: Option<&Obj<'_>>,
) -> PyResult<()>
where
    Trainer<P::M>: Stateful + Clone,
    Trainer<P::M32>: Stateful + Clone,
{
    let n_threads = convert::threads(n_threads)?;
    let a = convert::array("changes", changes)?;
    try_trainer!(py, p, t => {
        let data = a.as_slice().expect("a standard-layout array");
        let run = |t: &mut Trainer<_>| run_in_pool(n_threads, || driver::apply_changes(&mut t.model, a.shape(), data)).and_then(|r| r);
        driver::atomic(t, "changes", run, |_| true)
    })
}

/// Runs a batch without learning: outputs (B, T, n_outputs).
pub fn predict_batch_array<P: PyTrainer>(
    py: Python<'_>,
    p: &P,
    x: Array3<f64>,
    n_threads: Option<&Obj<'_>>,
) -> PyResult<Array3<f64>> {
    let n_threads = convert::threads(n_threads)?;
    let (b, t, _) = x.dim();
    let no = p.widths().1;
    p.float_type().check_range("inputs", x.iter()).map_err(to_py)?;
    with_trainer!(py, p, tr => {
        let mut out = Array3::zeros((b, t, no));
        run_in_pool(n_threads, || driver::predict_batch(&tr.model, x.view(), out.view_mut()))
            .and_then(|r| r.map(|_| out))
            .and_then(|out| match driver::all_finite(&out) {
                true => Ok(out),
                false => Err(driver::overflow("inputs", "the outputs")),
            })
    })?
    .map_err(to_py)
}

pub fn batch_memory_bytes<P: PyTrainer>(
    py: Python<'_>,
    p: &P,
    batch_size: &Obj<'_>,
    update: Update,
) -> PyResult<usize> {
    let b = check::size("batch_size", convert::size("batch_size", batch_size)?).map_err(to_py)?;
    with_trainer!(py, p, t => driver::batch_bytes(&t.model, b, update))
}

/// A trainer's state dict (hyperparameters, weights, full dynamic state).
pub fn state<P: PyTrainer>(py: Python<'_>, p: &P) -> PyResult<StateDict>
where
    Trainer<P::M>: Stateful,
    Trainer<P::M32>: Stateful,
{
    with_trainer!(py, p, t => t.state())
}

/// Writes a checkpoint file of a state.
pub fn save(py: Python<'_>, d: StateDict, path: &Obj<'_>) -> PyResult<()> {
    let path = convert::path(path)?;
    py.detach(|| npz::save(&path, &d)).map_err(to_py)
}

/// The [`PyTrainer`] of a class with fields `inner` (the trainer of model
/// `$m` in float64 or `$m32` in float32) and `widths` ((n_inputs,
/// n_outputs)), reading plain targets.
macro_rules! py_trainer {
    ($cls:ty, $m:ty, $m32:ty) => {
        impl $crate::shared::PyTrainer for $cls {
            type M = $m;
            type M32 = $m32;
            fn inner(&self) -> &$crate::shared::Dual<$m, $m32> {
                &self.inner
            }
            fn widths(&self) -> (usize, usize) {
                self.widths
            }
        }
    };
}
pub(crate) use py_trainer;

/// Puts the methods every trainer class shares on `$cls` (a [`PyTrainer`]).
macro_rules! trainer_methods {
    ($cls:ty) => {
        #[pyo3::pymethods]
        impl $cls {
            /// Run without learning; returns the outputs (T, n_outputs) for
            /// `inputs` (T, n_inputs). From reset state unless `reset=False`.
            /// A float64 array (or `numpy.memmap`) is read in blocks, not
            /// copied whole.
            #[pyo3(signature = (inputs, *, reset=true))]
            fn predict_sequence<'py>(&self, py: Python<'py>, inputs: &Obj<'py>, reset: bool) -> PyResult<Obj<'py>> {
                $crate::shared::each_trainer!(self, m => $crate::stream::predict_sequence(py, m, self.widths(), inputs, reset))
            }

            /// One chunk of `train_stream` (which drives the stream from
            /// Python): `prefix` names the chunk in messages; `begin` starts
            /// the call (resetting first when `reset`); `total` and `counted`
            /// are the running loss sums, returned updated with the chunk's
            /// number of steps.
            #[allow(clippy::too_many_arguments)]
            fn _train_chunk(
                &self,
                py: Python<'_>,
                inputs: Obj<'_>,
                targets: Obj<'_>,
                mask: Option<Obj<'_>>,
                prefix: &str,
                begin: bool,
                reset: bool,
                total: f64,
                counted: usize,
            ) -> PyResult<(f64, usize, usize)> {
                let names = (format!("{prefix}inputs"), format!("{prefix}targets"), format!("{prefix}mask"));
                let read = |arg: &str, obj: &Obj<'_>, t: usize, m: Option<&_>| self.targets(arg, obj, t, m);
                let names = (names.0.as_str(), names.1.as_str(), names.2.as_str());
                let c = $crate::stream::read_chunk(names, self.widths().0, &inputs, &targets, mask.as_ref(), &read)?;
                c.check_range((names.0, names.1), self.float_type())?;
                let steps = c.x.len();
                let sum = eprop_core::driver::LossSum { total, counted };
                let args = format!("{}, {}", names.0, names.1);
                let sum = $crate::shared::each_trainer!(self, m => $crate::stream::train_chunk_call(py, m, self.widths(), c, (begin, reset), sum, &args))?;
                Ok((sum.total, sum.counted, steps))
            }

            /// End of a training call: pending per-sequence updates are applied.
            fn _end_of_call(&self, py: Python<'_>) -> PyResult<()> {
                // the update pending at a stream's end, undone like a chunk should it overflow
                $crate::shared::try_trainer!(py, self, t => eprop_core::driver::atomic(
                    t,
                    "chunks",
                    |t| {
                        eprop_core::driver::finish(t);
                        Ok::<_, eprop_core::EpropError>(())
                    },
                    |_| true
                ))
            }

            /// Run a batch without learning; returns outputs (B, T,
            /// n_outputs). Row b equals `predict_sequence(inputs[b])`
            /// bitwise. Parallel over sequences with the GIL released; the
            /// trainer's own state is not touched.
            #[pyo3(signature = (inputs, *, n_threads=None))]
            fn predict_batch<'py>(
                &self,
                py: Python<'py>,
                inputs: &Obj<'py>,
                n_threads: Option<&Obj<'_>>,
            ) -> PyResult<Obj<'py>> {
                let x = $crate::convert::batch("inputs", inputs, None, self.widths().0)?;
                let out = $crate::shared::predict_batch_array(py, self, x, n_threads)?;
                Ok($crate::convert::array_out(py, out, self.float_type()))
            }

            /// Values stored per timestep (constant in T).
            #[getter]
            fn memory_per_step(&self, py: Python<'_>) -> PyResult<usize> {
                $crate::shared::with_trainer!(py, self, t => t.memory_per_step())
            }

            /// True bytes of all per-trainer state: weights, dynamic state,
            /// traces, optimizer state and step buffers.
            #[getter]
            fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
                $crate::shared::with_trainer!(py, self, t => t.memory_bytes())
            }

            /// Reset the dynamic state (membranes, spikes, traces,
            /// eligibilities); gradients accumulated for a pending update are kept.
            fn reset(&self, py: Python<'_>) -> PyResult<()> {
                $crate::shared::with_trainer!(py, self, t => t.reset())
            }

            /// Everything needed to resume exactly: format version, class,
            /// hyperparameters, weights and the full dynamic state (fresh arrays).
            fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                $crate::convert::state_to_dict(py, &$crate::shared::state(py, self)?)
            }

            /// Replace weights and state by those of `state` (a `state_dict()`
            /// of a trainer of the same sizes). Everything is checked first: a
            /// rejected dict changes nothing.
            fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
                let d = $crate::convert::dict_to_state(state)?;
                $crate::shared::try_trainer!(py, self, t => t.load_state(&d).map_err(eprop_core::state::in_state))
            }

            /// The constructor arguments stored in a `state_dict` (whose
            /// class and format version are checked first).
            #[staticmethod]
            fn _config_of_state<'py>(state: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
                let d = $crate::convert::dict_to_state(state)?;
                let c = <eprop_core::driver::Trainer<<$cls as PyTrainer>::M> as Stateful>::config_of_state(&d)
                    .map_err(|e| to_py(eprop_core::state::in_state(e)))?;
                $crate::convert::state_to_dict(state.py(), &c)
            }

            /// Write a checkpoint file (npz, atomic: temporary file then
            /// rename; readable by `numpy.load` without pickle).
            fn save(&self, py: Python<'_>, path: &Obj<'_>) -> PyResult<()> {
                $crate::shared::save(py, $crate::shared::state(py, self)?, path)
            }
        }
    };
}
pub(crate) use trainer_methods;

/// The training methods of the seed trainers (`EpropTrainer`, `OnlineTrainer`).
macro_rules! seed_train_methods {
    ($cls:ty) => {
        #[pyo3::pymethods]
        impl $cls {
            /// Train on one sequence; returns the mean loss over its steps.
            /// `inputs` (T, n_inputs), `targets` (T, n_outputs), T >= 1. From
            /// reset state unless `reset=False`, which continues from the
            /// current state (feed a long sequence in pieces: the result is
            /// bitwise that of one call). The loop runs in Rust with the GIL
            /// released; a float64 array (or `numpy.memmap`) is read in
            /// blocks, not copied whole.
            /// Process one timestep. `x` (n_inputs,), optional `target`
            /// (n_outputs,); with a target the weights learn. Returns a dict
            /// with `output` (n_outputs,), for `EpropTrainer` also `spikes`
            /// (n_neurons,), and with a target `loss`. Unlike the sequence
            /// methods a step is not undone when finite values overflow: an
            /// infinite or NaN output or loss raises ValueError saying so.
            #[pyo3(signature = (x, target=None))]
            fn step<'py>(
                &self,
                py: Python<'py>,
                x: &Obj<'py>,
                target: Option<&Obj<'py>>,
            ) -> PyResult<Bound<'py, PyDict>> {
                let (ni, no) = self.widths();
                let x = $crate::convert::vector("x", x, ni)?;
                let target = target.map(|t| $crate::convert::vector("target", t, no)).transpose()?;
                $crate::shared::step(py, self, x, target, true)
            }

            /// Train on one sequence, learning at every step as sc-neurocore
            /// does; returns the mean loss per step. `inputs` (T, n_inputs),
            /// `targets` (T, n_outputs); from reset state unless `reset=False`.
            #[pyo3(signature = (inputs, targets, *, reset=true))]
            fn train_sequence(
                &self,
                py: Python<'_>,
                inputs: &Obj<'_>,
                targets: &Obj<'_>,
                reset: bool,
            ) -> PyResult<f64> {
                $crate::shared::train_sequence(py, self, (inputs, targets, None), reset)
            }

            /// Train on a batch of sequences; returns the mean loss of each (B,).
            ///
            /// `inputs` (B, T, n_inputs), `targets` (B, T, n_outputs); every
            /// sequence starts from reset state. `update="step"`: the sequences
            /// advance together and at each step the mean of their B weight
            /// changes is applied once (B = 1 is exactly `train_sequence`).
            /// `update="sequence"`: weights stay fixed during the batch and the
            /// mean over the batch of each sequence's summed changes is applied
            /// at the end. Runs in Rust with the GIL released, parallel over
            /// sequences; `n_threads=None` uses the default pool (sized by
            /// RAYON_NUM_THREADS, else the CPU count), an int a pool of that
            /// size (built once). Results are bitwise identical for any thread
            /// count. Memory: B copies of the per-sequence state (see
            /// `batch_memory_bytes`), never T copies, plus one float64 copy of
            /// the inputs and targets. The trainer's own state is not touched.
            #[pyo3(signature = (inputs, targets, *, update="step", n_threads=None))]
            fn train_batch<'py>(
                &self,
                py: Python<'py>,
                inputs: &Obj<'py>,
                targets: &Obj<'py>,
                update: &str,
                n_threads: Option<&Obj<'_>>,
            ) -> PyResult<Obj<'py>> {
                let update = eprop_core::driver::Update::parse_batch(update).map_err(to_py)?;
                let args = $crate::shared::batch_args(self, inputs, targets, None)?;
                $crate::shared::train_batch(py, self, args, update, n_threads)
            }

            /// Bytes a batch of `batch_size` sequences holds besides the
            /// weights and the inputs: per sequence, its state and step
            /// buffers, plus (for `update="sequence"`) an accumulator the size
            /// of the weights.
            #[pyo3(signature = (batch_size, update="step"))]
            fn batch_memory_bytes(
                &self,
                py: Python<'_>,
                batch_size: &$crate::shared::Obj<'_>,
                update: &str,
            ) -> PyResult<usize> {
                let update = eprop_core::driver::Update::parse_batch(update).map_err(to_py)?;
                $crate::shared::batch_memory_bytes(py, self, batch_size, update)
            }
        }
    };
}
pub(crate) use seed_train_methods;

/// The methods data-parallel training (`eprop.distributed`) is built on:
/// per-sequence changes as data, and their mean applied.
macro_rules! change_methods {
    ($cls:ty) => {
        #[pyo3::pymethods]
        impl $cls {
            /// The summed change of each sequence of a batch on the current
            /// weights, in the order `train_batch(update="sequence")` averages
            /// them: `(changes, losses)`, changes (B, P) in the network's
            /// float type, losses (B,) the mean loss of each sequence. The
            /// network is not changed. Parallel over sequences, bitwise the
            /// same for any `n_threads`.
            #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
            fn _batch_changes<'py>(
                &self,
                py: Python<'py>,
                inputs: &Obj<'py>,
                targets: &Obj<'py>,
                mask: Option<&Obj<'py>>,
                n_threads: Option<&Obj<'_>>,
            ) -> PyResult<(Obj<'py>, Obj<'py>)> {
                let args = $crate::shared::batch_args(self, inputs, targets, mask)?;
                $crate::shared::batch_changes(py, self, args, n_threads)
            }

            /// Applies the mean of change rows (B, P) (from `_batch_changes`
            /// or `_sequence_change`), summed in row order: bitwise what
            /// `train_batch(update="sequence")` applies for those sequences.
            /// A refused argument changes nothing.
            #[pyo3(signature = (changes, *, n_threads=None))]
            fn _apply_changes(&self, py: Python<'_>, changes: &Obj<'_>, n_threads: Option<&Obj<'_>>) -> PyResult<()> {
                $crate::shared::apply_changes(py, self, changes, n_threads)
            }

            /// The summed change (P,) and mean loss of one sequence given as
            /// an iterable of `(inputs, targets)` or `(inputs, targets, mask)`
            /// chunks, run on the current weights from reset state in
            /// constant memory. The network is not changed.
            fn _sequence_change<'py>(&self, py: Python<'py>, chunks: &Obj<'py>) -> PyResult<(Obj<'py>, f64)> {
                let read = |arg: &str, obj: &Obj<'_>, t: usize, m: Option<&_>| self.targets(arg, obj, t, m);
                let (row, loss) = $crate::shared::each_trainer!(self, m => $crate::stream::sequence_change(py, m, self.widths(), chunks, &read))?;
                Ok(($crate::convert::vec_out(py, row, self.float_type()), loss))
            }
        }
    };
}
pub(crate) use change_methods;

/// Read-only properties of `$cls`, one per name: the hyperparameter of that
/// name (`$cls::config_value`).
macro_rules! config_getters {
    ($cls:ty, $($(#[$m:meta])* $name:ident),* $(,)?) => {
        #[pyo3::pymethods]
        impl $cls {
            $(
                $(#[$m])*
                #[getter]
                fn $name<'py>(&self, py: Python<'py>) -> PyResult<Obj<'py>> {
                    self.config_value(py, stringify!($name))
                }
            )*
        }
    };
}
pub(crate) use config_getters;

/// Setters of float hyperparameters of `$cls`: `name / setter => check` (a
/// function of `eprop_core::check` for its range), written through
/// `$cls::with_config` (read through [`config_getters`]).
macro_rules! float_setters {
    ($cls:ty, { $($name:ident / $setter:ident => $check:ident),* $(,)? }) => {
        #[pyo3::pymethods]
        impl $cls {
            $(
                #[setter($name)]
                fn $setter(&self, py: Python<'_>, value: &Obj<'_>) -> PyResult<()> {
                    let name = stringify!($name);
                    let v = eprop_core::check::$check(name, $crate::convert::real(name, value)?).map_err(to_py)?;
                    self.check_hyper(name, v)?;
                    self.with_config(py, move |c| c.$name = v)
                }
            )*
        }
    };
}
pub(crate) use float_setters;

/// Read-only array properties of `$cls`, one per name: the array of that
/// name (`$cls::named_array`), a read-only copy.
macro_rules! array_getters {
    ($cls:ty, $($(#[$m:meta])* $name:ident),* $(,)?) => {
        #[pyo3::pymethods]
        impl $cls {
            $(
                $(#[$m])*
                #[getter]
                #[allow(non_snake_case)]
                fn $name<'py>(&self, py: Python<'py>) -> PyResult<Obj<'py>> {
                    self.named_array(py, stringify!($name))
                }
            )*
        }
    };
}
pub(crate) use array_getters;

/// Setters of weight arrays of `$cls`, `name / setter` (`$cls::set_named_array`).
macro_rules! array_setters {
    ($cls:ty, { $($name:ident / $setter:ident),* $(,)? }) => {
        #[pyo3::pymethods]
        impl $cls {
            $(
                #[setter($name)]
                fn $setter(&self, py: Python<'_>, value: &Obj<'_>) -> PyResult<()> {
                    self.set_named_array(py, stringify!($name), value)
                }
            )*
        }
    };
}
pub(crate) use array_setters;
