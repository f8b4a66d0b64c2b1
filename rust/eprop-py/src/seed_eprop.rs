//! `eprop.EpropTrainer`: the seed's single-layer recurrent e-prop trainer.

use std::sync::Mutex;

use eprop_core::seed_eprop::{SeedEprop, SeedEpropConfig};
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::checkpoint;
use crate::convert::{check_seed, locked, matrix, readonly, to_py, vector, Hyper, Shown};

/// E-prop online trainer for a single-layer recurrent SNN, a drop-in replacement
/// of `sc_neurocore.online_learning.EpropTrainer` (same constructor, members and
/// numbers; the rule is the seed's simplified variant, kept unchanged).
///
/// Parameters: n_inputs, n_neurons, n_outputs (ints >= 1); tau_mem and
/// tau_trace (ms, > 0); threshold (> 0); lr (>= 0); dt (ms, > 0); seed
/// (keyword-only; 42 gives the seed package's initial weights).
///
/// Weights and state read as read-only NumPy copies; assign a whole array to
/// change a weight matrix (shape and finiteness are checked; W_rec's diagonal
/// is kept at zero). Every method is atomic: the trainer may be shared between
/// threads, calls are serialized, and the work runs with the GIL released.
#[pyclass(frozen, module = "eprop", name = "EpropTrainer")]
pub struct PyEpropTrainer {
    inner: Mutex<SeedEprop>,
    seed: u32,
    /// (n_inputs, n_neurons, n_outputs), fixed at construction.
    dims: (usize, usize, usize),
    /// repr texts of tau_mem, tau_trace, threshold, lr, dt.
    shown: Shown,
}

impl PyEpropTrainer {
    fn get<'py, D: numpy::ndarray::Dimension>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&SeedEprop) -> numpy::ndarray::Array<f64, D> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = locked(py, &self.inner, |t| f(t))?;
        Ok(readonly(py, a))
    }

    fn set_hyper(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        check: fn(&str, f64) -> eprop_core::Result<f64>,
        (idx, name): (usize, &str),
        field: fn(&mut SeedEpropConfig) -> &mut f64,
    ) -> PyResult<()> {
        let h = Hyper::parse(name, value)?;
        let v = check(name, h.value).map_err(to_py)?;
        locked(py, &self.inner, |t| *field(&mut t.net.cfg) = v)?;
        self.shown.set(idx, &h);
        Ok(())
    }
}

#[pymethods]
impl PyEpropTrainer {
    #[new]
    #[pyo3(
        signature = (n_inputs, n_neurons, n_outputs, tau_mem=Hyper::of(20.0), tau_trace=Hyper::of(20.0), threshold=Hyper::of(1.0), lr=Hyper::of(0.01), dt=Hyper::of(1.0), *, seed=42),
        text_signature = "(n_inputs, n_neurons, n_outputs, tau_mem=20.0, tau_trace=20.0, threshold=1.0, lr=0.01, dt=1.0, *, seed=42)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_inputs: i64,
        n_neurons: i64,
        n_outputs: i64,
        tau_mem: Hyper,
        tau_trace: Hyper,
        threshold: Hyper,
        lr: Hyper,
        dt: Hyper,
        seed: i128,
    ) -> PyResult<Self> {
        let cfg = SeedEpropConfig::new(
            n_inputs,
            n_neurons,
            n_outputs,
            tau_mem.value,
            tau_trace.value,
            threshold.value,
            lr.value,
            dt.value,
        )
        .map_err(to_py)?;
        let shown = Shown::new(&[&tau_mem, &tau_trace, &threshold, &lr, &dt]);
        let seed = check_seed(seed)?;
        let dims = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        Ok(PyEpropTrainer {
            inner: Mutex::new(SeedEprop::new(cfg, seed)),
            seed,
            dims,
            shown,
        })
    }

    #[getter]
    fn n_inputs(&self) -> usize {
        self.dims.0
    }

    #[getter]
    fn n_neurons(&self) -> usize {
        self.dims.1
    }

    #[getter]
    fn n_outputs(&self) -> usize {
        self.dims.2
    }

    /// Seed of the initial weights (keyword-only constructor argument).
    #[getter]
    fn seed(&self) -> u32 {
        self.seed
    }

    #[getter]
    fn tau_mem(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.tau_mem)
    }

    #[setter]
    fn set_tau_mem(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (0, "tau_mem"),
            |c| &mut c.tau_mem,
        )
    }

    #[getter]
    fn tau_trace(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.tau_trace)
    }

    #[setter]
    fn set_tau_trace(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (1, "tau_trace"),
            |c| &mut c.tau_trace,
        )
    }

    #[getter]
    fn threshold(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.threshold)
    }

    #[setter]
    fn set_threshold(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (2, "threshold"),
            |c| &mut c.threshold,
        )
    }

    #[getter]
    fn lr(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.lr)
    }

    #[setter]
    fn set_lr(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_non_negative,
            (3, "lr"),
            |c| &mut c.lr,
        )
    }

    #[getter]
    fn dt(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.dt)
    }

    #[setter]
    fn set_dt(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (4, "dt"),
            |c| &mut c.dt,
        )
    }

    #[getter(W_in)]
    fn w_in<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.w_in.clone())
    }

    #[getter(W_rec)]
    fn w_rec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.w_rec.clone())
    }

    #[getter(W_out)]
    fn w_out<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.w_out.clone())
    }

    #[getter(_v)]
    fn v<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.v.clone())
    }

    #[getter(_spikes)]
    fn spikes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.z.clone())
    }

    #[getter(_trace_in)]
    fn trace_in<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.trace_in.clone())
    }

    #[getter(_trace_rec)]
    fn trace_rec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.trace_rec.clone())
    }

    #[getter(_eligibility_in)]
    fn elig_in<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.elig_in.clone())
    }

    #[getter(_eligibility_rec)]
    fn elig_rec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.elig_rec.clone())
    }

    /// Input weights, shape (n_neurons, n_inputs). Assigning copies the array in.
    #[setter(W_in)]
    fn set_w_in(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (ni, nr, _) = self.dims;
        let m = matrix("W_in", value, Some(nr), ni)?;
        locked(py, &self.inner, move |t| t.net.set_w_in(m.view()))?.map_err(to_py)
    }

    /// Recurrent weights, shape (n_neurons, n_neurons); the diagonal is set to zero.
    #[setter(W_rec)]
    fn set_w_rec(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (_, nr, _) = self.dims;
        let m = matrix("W_rec", value, Some(nr), nr)?;
        locked(py, &self.inner, move |t| t.net.set_w_rec(m.view()))?.map_err(to_py)
    }

    /// Readout weights, shape (n_outputs, n_neurons).
    #[setter(W_out)]
    fn set_w_out(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (_, nr, no) = self.dims;
        let m = matrix("W_out", value, Some(no), nr)?;
        locked(py, &self.inner, move |t| t.net.set_w_out(m.view()))?.map_err(to_py)
    }

    /// Reset membrane, spikes, traces and eligibilities to zero.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        locked(py, &self.inner, |t| t.seq.reset())
    }

    /// Process one timestep. `x` (n_inputs,), optional `target` (n_outputs,);
    /// with a target the weights learn. Returns a dict with `spikes`
    /// (n_neurons,), `output` (n_outputs,) and, with a target, `loss`.
    #[pyo3(signature = (x, target=None))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ni, _, no) = self.dims;
        let x = vector("x", x, ni)?;
        let target = target.map(|t| vector("target", t, no)).transpose()?;
        let (z, out, loss) = locked(py, &self.inner, move |t| {
            let xs = x.as_slice().unwrap_or(&[]);
            let ts = target.as_ref().and_then(|a| a.as_slice());
            let loss = t.net.step(&mut t.seq, xs, ts);
            (t.seq.state.z.clone(), t.seq.output().to_vec(), loss)
        })?;
        let d = PyDict::new(py);
        d.set_item("spikes", PyArray::from_owned_array(py, z))?;
        d.set_item("output", PyArray::from_vec(py, out))?;
        if let Some(l) = loss {
            d.set_item("loss", l)?;
        }
        Ok(d)
    }

    /// Train on one sequence; returns the mean loss over its steps.
    /// `inputs` (T, n_inputs), `targets` (T, n_outputs), T >= 1. From reset
    /// state unless `reset=False`, which continues from the current membrane,
    /// spikes and traces (feed a long sequence in pieces: the result is bitwise
    /// that of one call). The loop runs in Rust with the GIL released; a
    /// float64 array (or `numpy.memmap`) is read in blocks, not copied whole.
    #[pyo3(signature = (inputs, targets, *, reset=true))]
    fn train_sequence(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
        reset: bool,
    ) -> PyResult<f64> {
        let widths = (self.dims.0, self.dims.2);
        let read = crate::stream::float_targets(widths.1);
        let chunk = crate::stream::read_chunk(
            ("inputs", "targets", "mask"),
            widths.0,
            inputs,
            targets,
            None,
            &read,
        )?;
        crate::stream::train_sequence(py, &self.inner, widths, chunk, reset)
    }

    /// Run the network without learning; returns the outputs (T, n_outputs)
    /// for `inputs` (T, n_inputs). From reset state unless `reset=False`.
    #[pyo3(signature = (inputs, *, reset=true))]
    fn predict_sequence<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        reset: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::stream::predict_sequence(py, &self.inner, (self.dims.0, self.dims.2), inputs, reset)
    }

    /// Train on a stream of `(inputs_chunk, targets_chunk)` pairs (any
    /// iterable; chunk k has shape (t_k, n_inputs) / (t_k, n_outputs), t_k >= 1);
    /// returns the mean loss over all steps. Bitwise the same as one
    /// `train_sequence` on the concatenation. Each chunk is checked before it
    /// is used: on a bad chunk a ValueError is raised and the trainer keeps the
    /// state it had after the last complete chunk. Memory does not grow with
    /// the stream's length. `progress=True` prints steps, steps/s and the
    /// running loss to stderr. Other threads may use the trainer between chunks.
    #[pyo3(signature = (chunks, *, reset=true, progress=false))]
    fn train_stream(
        &self,
        py: Python<'_>,
        chunks: &Bound<'_, PyAny>,
        reset: bool,
        progress: bool,
    ) -> PyResult<f64> {
        let widths = (self.dims.0, self.dims.2);
        let read = crate::stream::float_targets(widths.1);
        crate::stream::train_stream(py, &self.inner, widths, chunks, &read, reset, progress)
    }

    /// Iterator over the outputs (t_k, n_outputs) of each input chunk
    /// (t_k, n_inputs) of `chunks`, without learning. Lazy: nothing runs until
    /// it is iterated; the state is reset at the first chunk unless `reset=False`.
    #[pyo3(signature = (chunks, *, reset=true))]
    fn predict_stream(
        slf: &Bound<'_, Self>,
        chunks: &Bound<'_, PyAny>,
        reset: bool,
    ) -> PyResult<crate::stream::PredictStream> {
        crate::stream::PredictStream::new(slf.as_any(), chunks, reset)
    }

    /// Parameters stored per timestep, as the seed counts them (constant in T).
    #[getter]
    fn memory_per_step(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, &self.inner, |t| t.net.memory_per_step())
    }

    /// True bytes of all per-trainer state: weights, membrane, spikes, traces,
    /// eligibilities and step buffers.
    #[getter]
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, &self.inner, |t| t.memory_bytes())
    }

    /// Train on a batch of sequences; returns the mean loss of each (B,).
    ///
    /// `inputs` (B, T, n_inputs), `targets` (B, T, n_outputs); every sequence
    /// starts from reset state. `update="step"`: the sequences advance together
    /// and at each step the mean of their B weight changes is applied once
    /// (B = 1 is exactly `train_sequence`). `update="sequence"`: weights stay
    /// fixed during the batch and the mean over the batch of each sequence's
    /// summed changes is applied at the end. Runs in Rust with the GIL released,
    /// parallel over sequences; `n_threads=None` uses the default pool (sized by
    /// RAYON_NUM_THREADS, else the CPU count), an int a private pool of that
    /// size. Results are bitwise identical for any thread count. Memory: B
    /// copies of the per-sequence state (see `batch_memory_bytes`), never T
    /// copies, plus the float64 copy of the inputs and targets. The trainer's
    /// own state (`_v`, traces...) is not touched.
    #[pyo3(signature = (inputs, targets, *, update="step", n_threads=None))]
    fn train_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        update: &str,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model: fn(&mut SeedEprop) -> &mut _ = |t| &mut t.net;
        crate::batch::train(
            py,
            &self.inner,
            model,
            (self.dims.0, self.dims.2),
            inputs,
            targets,
            update,
            n_threads,
        )
    }

    /// Run a batch without learning; returns outputs (B, T, n_outputs). Row b
    /// equals `predict_sequence(inputs[b])` bitwise. Parallel over sequences
    /// with the GIL released; the trainer's own state is not touched.
    #[pyo3(signature = (inputs, *, n_threads=None))]
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model: fn(&mut SeedEprop) -> &mut _ = |t| &mut t.net;
        crate::batch::predict(
            py,
            &self.inner,
            model,
            (self.dims.0, self.dims.2),
            inputs,
            n_threads,
        )
    }

    /// Bytes a batch of `batch_size` sequences holds besides the weights and
    /// the inputs: per sequence, its state and step buffers, plus (for
    /// `update="sequence"`) an accumulator the size of the weights.
    #[pyo3(signature = (batch_size, update="step"))]
    fn batch_memory_bytes(&self, py: Python<'_>, batch_size: i64, update: &str) -> PyResult<usize> {
        let model: fn(&mut SeedEprop) -> &mut _ = |t| &mut t.net;
        crate::batch::memory(py, &self.inner, model, batch_size, update)
    }

    /// Everything needed to resume exactly: format version, class,
    /// hyperparameters, weights and the full dynamic state (fresh arrays).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = locked(py, &self.inner, |t| t.clone())?;
        let d = checkpoint::new_state(py, "EpropTrainer")?;
        let c = &t.net.cfg;
        d.set_item("n_inputs", c.n_inputs)?;
        d.set_item("n_neurons", c.n_neurons)?;
        d.set_item("n_outputs", c.n_outputs)?;
        for (k, v) in [
            ("tau_mem", c.tau_mem),
            ("tau_trace", c.tau_trace),
            ("threshold", c.threshold),
            ("lr", c.lr),
            ("dt", c.dt),
        ] {
            d.set_item(k, v)?;
        }
        d.set_item("seed", self.seed)?;
        let st = &t.seq.state;
        for (k, a) in [
            ("W_in", &t.net.w_in),
            ("W_rec", &t.net.w_rec),
            ("W_out", &t.net.w_out),
            ("_trace_in", &st.trace_in),
            ("_trace_rec", &st.trace_rec),
            ("_eligibility_in", &st.elig_in),
            ("_eligibility_rec", &st.elig_rec),
        ] {
            d.set_item(k, PyArray::from_array(py, a))?;
        }
        d.set_item("_v", PyArray::from_array(py, &st.v))?;
        d.set_item("_spikes", PyArray::from_array(py, &st.z))?;
        Ok(d)
    }

    /// Replace hyperparameters, weights and state by those of `state` (from
    /// `state_dict()`; the sizes must match). Everything is checked first: a
    /// rejected dict changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        checkpoint::check_header(state, "EpropTrainer")?;
        let (ni, nr, no) = self.dims;
        checkpoint::check_size(state, "n_inputs", ni)?;
        checkpoint::check_size(state, "n_neurons", nr)?;
        checkpoint::check_size(state, "n_outputs", no)?;
        let f = |k: &str| checkpoint::f64_of(state, k);
        let cfg = SeedEpropConfig::new(
            ni as i64,
            nr as i64,
            no as i64,
            f("tau_mem")?,
            f("tau_trace")?,
            f("threshold")?,
            f("lr")?,
            f("dt")?,
        )
        .map_err(to_py)?;
        let m = |k: &str, r: usize, c: usize| {
            matrix(
                &format!("state_dict['{k}']"),
                &checkpoint::item(state, k)?,
                Some(r),
                c,
            )
        };
        let v = |k: &str| {
            vector(
                &format!("state_dict['{k}']"),
                &checkpoint::item(state, k)?,
                nr,
            )
        };
        let mut new = SeedEprop::new(cfg, self.seed);
        new.net.set_w_in(m("W_in", nr, ni)?.view()).map_err(to_py)?;
        new.net
            .set_w_rec(m("W_rec", nr, nr)?.view())
            .map_err(to_py)?;
        new.net
            .set_w_out(m("W_out", no, nr)?.view())
            .map_err(to_py)?;
        let st = &mut new.seq.state;
        st.v = v("_v")?;
        st.z = v("_spikes")?;
        st.trace_in = m("_trace_in", nr, ni)?;
        st.trace_rec = m("_trace_rec", nr, nr)?;
        st.elig_in = m("_eligibility_in", nr, ni)?;
        st.elig_rec = m("_eligibility_rec", nr, nr)?;
        locked(py, &self.inner, move |t| *t = new)
    }

    /// A new trainer from a `state_dict()`.
    #[classmethod]
    fn from_state_dict<'py>(
        cls: &Bound<'py, PyType>,
        state: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::check_header(state, "EpropTrainer")?;
        let kwargs = PyDict::new(cls.py());
        kwargs.set_item("seed", checkpoint::i64_of(state, "seed")?)?;
        let sizes = (
            checkpoint::i64_of(state, "n_inputs")?,
            checkpoint::i64_of(state, "n_neurons")?,
            checkpoint::i64_of(state, "n_outputs")?,
        );
        let t = cls.call(sizes, Some(&kwargs))?;
        t.call_method1("load_state_dict", (state,))?;
        Ok(t)
    }

    /// Write a checkpoint file (npz, atomic: temporary file then rename).
    fn save(slf: &Bound<'_, Self>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        checkpoint::save(slf.as_any(), path)
    }

    /// Read a checkpoint file written by `save` (no pickle, no code runs).
    #[classmethod]
    fn load<'py>(
        cls: &Bound<'py, PyType>,
        path: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::load(cls.as_any(), path)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        checkpoint::reduce(slf.as_any(), "EpropTrainer")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let cfg = locked(py, &self.inner, |t| t.net.cfg.clone())?;
        let mut s = format!(
            "EpropTrainer(n_inputs={}, n_neurons={}, n_outputs={}, tau_mem={}, tau_trace={}, threshold={}, lr={}, dt={}",
            cfg.n_inputs,
            cfg.n_neurons,
            cfg.n_outputs,
            self.shown.show(py, 0, cfg.tau_mem)?,
            self.shown.show(py, 1, cfg.tau_trace)?,
            self.shown.show(py, 2, cfg.threshold)?,
            self.shown.show(py, 3, cfg.lr)?,
            self.shown.show(py, 4, cfg.dt)?
        );
        if self.seed != 42 {
            s.push_str(&format!(", seed={}", self.seed));
        }
        s.push(')');
        Ok(s)
    }
}
