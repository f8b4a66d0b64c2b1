//! `eprop.OnlineLIFLayer` and `eprop.OnlineTrainer`: the seed's feedforward
//! online trainer.
//!
//! A layer either owns its state or is a live view of one layer of an
//! `OnlineTrainer` (what `trainer.layers` hands out): reading `W` or `_v` shows
//! the trainer's current state and writing `W` changes it.

use std::sync::{Arc, Mutex};

use eprop_core::seed_online::{SeedLayer, SeedLayerConfig, SeedOnline, SeedOnlineConfig};
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use crate::checkpoint;
use crate::convert::{
    check_seed, locked, matrix, readonly, to_py, value_error, vector, Hyper, Shown,
};

enum LayerHandle {
    Own(Box<Mutex<SeedLayer>>),
    InTrainer(Arc<Mutex<SeedOnline>>, usize),
}

/// Single LIF layer with online (eligibility-based) learning, a drop-in
/// replacement of `sc_neurocore.online_learning.OnlineLIFLayer`.
///
/// Parameters: n_inputs, n_neurons (ints >= 1); tau_mem (ms, > 0); threshold
/// (> 0); lr (>= 0); dt (ms, > 0); seed (keyword-only, 42 gives the seed
/// package's weights). The trace decays by the seed's fixed 0.95 per step.
/// `W` and the state read as read-only copies; assign a whole array to `W`.
#[pyclass(frozen, module = "eprop", name = "OnlineLIFLayer")]
pub struct PyOnlineLIFLayer {
    handle: LayerHandle,
    dims: (usize, usize),
    seed: u32,
    /// repr texts of tau_mem, threshold, lr, dt.
    shown: Shown,
}

/// Writes one layer's hyperparameters, weights and state under `prefix`.
fn layer_to_dict(d: &Bound<'_, PyDict>, prefix: &str, l: &SeedLayer) -> PyResult<()> {
    let py = d.py();
    for (k, v) in [
        ("tau_mem", l.cfg.tau_mem),
        ("threshold", l.cfg.threshold),
        ("lr", l.cfg.lr),
        ("dt", l.cfg.dt),
    ] {
        d.set_item(format!("{prefix}{k}"), v)?;
    }
    d.set_item(format!("{prefix}W"), PyArray::from_array(py, &l.w))?;
    d.set_item(format!("{prefix}_v"), PyArray::from_array(py, &l.state.v))?;
    d.set_item(
        format!("{prefix}_spikes"),
        PyArray::from_array(py, &l.state.z),
    )?;
    d.set_item(
        format!("{prefix}_trace"),
        PyArray::from_array(py, &l.state.trace),
    )?;
    Ok(())
}

/// Reads and checks one layer of sizes `(n_inputs, n_neurons)` under `prefix`.
fn layer_from_dict(
    d: &Bound<'_, PyDict>,
    prefix: &str,
    dims: (usize, usize),
) -> PyResult<SeedLayer> {
    let (ni, nr) = dims;
    let f = |k: &str| checkpoint::f64_of(d, &format!("{prefix}{k}"));
    let cfg = SeedLayerConfig::new(
        ni as i64,
        nr as i64,
        f("tau_mem")?,
        f("threshold")?,
        f("lr")?,
        f("dt")?,
    )
    .map_err(|e| value_error(format!("state_dict['{prefix}...']: {e}")))?;
    let key = |k: &str| format!("{prefix}{k}");
    let arg = |k: &str| format!("state_dict['{prefix}{k}']");
    let mut layer = SeedLayer::new(cfg, 0);
    layer.w = matrix(&arg("W"), &checkpoint::item(d, &key("W"))?, Some(nr), ni)?;
    layer.state.v = vector(&arg("_v"), &checkpoint::item(d, &key("_v"))?, nr)?;
    layer.state.z = vector(&arg("_spikes"), &checkpoint::item(d, &key("_spikes"))?, nr)?;
    layer.state.trace = matrix(
        &arg("_trace"),
        &checkpoint::item(d, &key("_trace"))?,
        Some(nr),
        ni,
    )?;
    Ok(layer)
}

impl PyOnlineLIFLayer {
    fn get<'py, D: numpy::ndarray::Dimension>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&SeedLayer) -> numpy::ndarray::Array<f64, D> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = self.with(py, |l| f(l))?;
        Ok(readonly(py, a))
    }

    fn set_hyper(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        check: fn(&str, f64) -> eprop_core::Result<f64>,
        (idx, name): (usize, &str),
        field: fn(&mut SeedLayerConfig) -> &mut f64,
    ) -> PyResult<()> {
        let h = Hyper::parse(name, value)?;
        let v = check(name, h.value).map_err(to_py)?;
        self.with(py, |l| *field(&mut l.cfg) = v)?;
        self.shown.set(idx, &h);
        Ok(())
    }

    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut SeedLayer) -> R + Send,
    ) -> PyResult<R> {
        match &self.handle {
            LayerHandle::Own(m) => locked(py, m, f),
            LayerHandle::InTrainer(m, i) => locked(py, m.as_ref(), |t| f(&mut t.layers[*i])),
        }
    }
}

#[pymethods]
impl PyOnlineLIFLayer {
    #[new]
    #[pyo3(
        signature = (n_inputs, n_neurons, tau_mem=Hyper::of(20.0), threshold=Hyper::of(1.0), lr=Hyper::of(0.01), dt=Hyper::of(1.0), *, seed=42),
        text_signature = "(n_inputs, n_neurons, tau_mem=20.0, threshold=1.0, lr=0.01, dt=1.0, *, seed=42)"
    )]
    fn new(
        n_inputs: i64,
        n_neurons: i64,
        tau_mem: Hyper,
        threshold: Hyper,
        lr: Hyper,
        dt: Hyper,
        seed: i128,
    ) -> PyResult<Self> {
        let cfg = SeedLayerConfig::new(
            n_inputs,
            n_neurons,
            tau_mem.value,
            threshold.value,
            lr.value,
            dt.value,
        )
        .map_err(to_py)?;
        let seed = check_seed(seed)?;
        let dims = (cfg.n_inputs, cfg.n_neurons);
        Ok(PyOnlineLIFLayer {
            handle: LayerHandle::Own(Box::new(Mutex::new(SeedLayer::new(cfg, seed)))),
            dims,
            seed,
            shown: Shown::new(&[&tau_mem, &threshold, &lr, &dt]),
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
    fn tau_mem(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.tau_mem)
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
    fn threshold(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.threshold)
    }

    #[setter]
    fn set_threshold(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (1, "threshold"),
            |c| &mut c.threshold,
        )
    }

    #[getter]
    fn lr(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.lr)
    }

    #[setter]
    fn set_lr(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_non_negative,
            (2, "lr"),
            |c| &mut c.lr,
        )
    }

    #[getter]
    fn dt(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.dt)
    }

    #[setter]
    fn set_dt(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            (3, "dt"),
            |c| &mut c.dt,
        )
    }

    #[getter(W)]
    fn w<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |l| l.w.clone())
    }

    #[getter(_v)]
    fn v<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |l| l.state.v.clone())
    }

    #[getter(_spikes)]
    fn spikes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |l| l.state.z.clone())
    }

    #[getter(_trace)]
    fn trace<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |l| l.state.trace.clone())
    }

    /// Weights, shape (n_neurons, n_inputs). Assigning copies the array in.
    #[setter(W)]
    fn set_w(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (ni, nr) = self.dims;
        let m = matrix("W", value, Some(nr), ni)?;
        self.with(py, move |l| l.set_w(m.view()))?.map_err(to_py)
    }

    /// Reset membrane, spikes and trace to zero.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |l| l.state.reset())
    }

    /// Forward one timestep with input `x` (n_inputs,); returns the spikes (n_neurons,).
    fn step<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = vector("x", x, self.dims.0)?;
        let z = self.with(py, move |l| {
            l.step(x.as_slice().unwrap_or(&[]));
            l.state.z.clone()
        })?;
        Ok(PyArray::from_owned_array(py, z).into_any())
    }

    /// Apply a top-down learning signal (n_neurons,): `W -= lr * signal[:, None] * trace`.
    fn apply_learning_signal(&self, py: Python<'_>, signal: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = vector("signal", signal, self.dims.1)?;
        self.with(py, move |l| {
            l.apply_learning_signal(s.as_slice().unwrap_or(&[]))
        })
    }

    /// Hyperparameters, weights and state (fresh arrays), to resume exactly.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let l = self.with(py, |l| l.clone())?;
        let d = checkpoint::new_state(py, "OnlineLIFLayer")?;
        d.set_item("n_inputs", self.dims.0)?;
        d.set_item("n_neurons", self.dims.1)?;
        d.set_item("seed", self.seed)?;
        layer_to_dict(&d, "", &l)?;
        Ok(d)
    }

    /// Replace hyperparameters, weights and state by those of `state` (sizes
    /// must match); checked first, a rejected dict changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        checkpoint::check_header(state, "OnlineLIFLayer")?;
        checkpoint::check_size(state, "n_inputs", self.dims.0)?;
        checkpoint::check_size(state, "n_neurons", self.dims.1)?;
        let new = layer_from_dict(state, "", self.dims)?;
        self.with(py, move |l| *l = new)
    }

    /// A new layer from a `state_dict()`.
    #[classmethod]
    fn from_state_dict<'py>(
        cls: &Bound<'py, PyType>,
        state: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::check_header(state, "OnlineLIFLayer")?;
        let kwargs = PyDict::new(cls.py());
        kwargs.set_item("seed", checkpoint::i64_of(state, "seed")?)?;
        let sizes = (
            checkpoint::i64_of(state, "n_inputs")?,
            checkpoint::i64_of(state, "n_neurons")?,
        );
        let l = cls.call(sizes, Some(&kwargs))?;
        l.call_method1("load_state_dict", (state,))?;
        Ok(l)
    }

    /// Write a checkpoint file (npz, atomic).
    fn save(slf: &Bound<'_, Self>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        checkpoint::save(slf.as_any(), path)
    }

    /// Read a checkpoint file written by `save`.
    #[classmethod]
    fn load<'py>(
        cls: &Bound<'py, PyType>,
        path: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::load(cls.as_any(), path)
    }

    /// Pickles as a standalone layer (a layer of a trainer is copied out).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        checkpoint::reduce(slf.as_any(), "OnlineLIFLayer")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let cfg = self.with(py, |l| l.cfg.clone())?;
        Ok(format!(
            "OnlineLIFLayer(n_inputs={}, n_neurons={}, tau_mem={}, threshold={}, lr={}, dt={})",
            cfg.n_inputs,
            cfg.n_neurons,
            self.shown.show(py, 0, cfg.tau_mem)?,
            self.shown.show(py, 1, cfg.threshold)?,
            self.shown.show(py, 2, cfg.lr)?,
            self.shown.show(py, 3, cfg.dt)?
        ))
    }
}

/// Feedforward online trainer stacking `OnlineLIFLayer`s, a drop-in
/// replacement of `sc_neurocore.online_learning.OnlineTrainer`.
///
/// Parameters: layer_sizes [n_input, n_hidden..., n_output] (>= 2 sizes, each
/// >= 1); tau_mem (ms, > 0); threshold (> 0); lr (>= 0); seed (keyword-only).
/// Every layer restarts the random stream of `seed`, as the seed package does.
/// The hyperparameters are fixed at construction (each layer's `lr`, `tau_mem`,
/// `threshold` and `dt` can be changed through `layers`).
#[pyclass(frozen, module = "eprop", name = "OnlineTrainer")]
pub struct PyOnlineTrainer {
    inner: Arc<Mutex<SeedOnline>>,
    layers: Vec<Py<PyOnlineLIFLayer>>,
    cfg: SeedOnlineConfig,
    seed: u32,
    shown: Shown,
    /// repr of `layer_sizes` as given (a list or a tuple).
    sizes_repr: String,
}

#[pymethods]
impl PyOnlineTrainer {
    #[new]
    #[pyo3(
        signature = (layer_sizes, tau_mem=Hyper::of(20.0), threshold=Hyper::of(1.0), lr=Hyper::of(0.01), *, seed=42),
        text_signature = "(layer_sizes, tau_mem=20.0, threshold=1.0, lr=0.01, *, seed=42)"
    )]
    fn new(
        py: Python<'_>,
        layer_sizes: &Bound<'_, PyAny>,
        tau_mem: Hyper,
        threshold: Hyper,
        lr: Hyper,
        seed: i128,
    ) -> PyResult<Self> {
        let sizes_repr = layer_sizes.repr()?.to_string();
        let not_list = || {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "layer_sizes: expected a list of ints [n_input, ..., n_output], got {sizes_repr}"
            ))
        };
        if layer_sizes.is_instance_of::<pyo3::types::PyString>() {
            return Err(not_list());
        }
        let mut sizes = Vec::new();
        for (i, item) in layer_sizes.try_iter().map_err(|_| not_list())?.enumerate() {
            let item = item?;
            let index = item.call_method0("__index__").map_err(|_| not_list())?;
            let n: i64 = index.extract().map_err(|_| {
                value_error(format!(
                    "layer_sizes[{i}]: expected an integer >= 1 that fits in 64 bits, got {index}"
                ))
            })?;
            sizes.push(n);
        }
        let cfg = SeedOnlineConfig::new(&sizes, tau_mem.value, threshold.value, lr.value)
            .map_err(to_py)?;
        let seed = check_seed(seed)?;
        let inner = Arc::new(Mutex::new(SeedOnline::new(cfg.clone(), seed)));
        let layers = cfg
            .layer_sizes
            .windows(2)
            .enumerate()
            .map(|(i, p)| {
                Py::new(
                    py,
                    PyOnlineLIFLayer {
                        handle: LayerHandle::InTrainer(inner.clone(), i),
                        dims: (p[0], p[1]),
                        seed,
                        shown: Shown::new(&[&tau_mem, &threshold, &lr, &Hyper::of(1.0)]),
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        let shown = Shown::new(&[&tau_mem, &threshold, &lr]);
        Ok(PyOnlineTrainer {
            inner,
            layers,
            cfg,
            seed,
            shown,
            sizes_repr,
        })
    }

    #[getter]
    fn layer_sizes(&self) -> Vec<usize> {
        self.cfg.layer_sizes.clone()
    }

    #[getter]
    fn tau_mem(&self) -> f64 {
        self.cfg.tau_mem
    }

    #[getter]
    fn threshold(&self) -> f64 {
        self.cfg.threshold
    }

    #[getter]
    fn lr(&self) -> f64 {
        self.cfg.lr
    }

    #[getter]
    fn seed(&self) -> u32 {
        self.seed
    }

    /// The layers, live views into this trainer's state.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.layers.iter().map(|l| l.clone_ref(py)))
    }

    #[getter]
    fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Parameters stored per timestep, as the seed counts them (constant in T).
    #[getter]
    fn memory_per_step(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, self.inner.as_ref(), |t| t.memory_per_step())
    }

    /// True bytes of all per-trainer state (weights, layer states, buffers).
    #[getter]
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, self.inner.as_ref(), |t| t.memory_bytes())
    }

    /// Reset every layer's state.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        locked(py, self.inner.as_ref(), |t| t.reset())
    }

    /// Forward one timestep through all layers; with a `target` (n_output,)
    /// every layer learns. Returns a dict with `output` (last layer's spikes)
    /// and, with a target, `loss`.
    #[pyo3(signature = (x, target=None))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = vector("x", x, self.cfg.n_inputs())?;
        let target = target
            .map(|t| vector("target", t, self.cfg.n_outputs()))
            .transpose()?;
        let (out, loss) = locked(py, self.inner.as_ref(), move |t| {
            let loss = t.step(
                x.as_slice().unwrap_or(&[]),
                target.as_ref().and_then(|a| a.as_slice()),
            );
            (t.output().to_vec(), loss)
        })?;
        let d = PyDict::new(py);
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
        let widths = (self.cfg.n_inputs(), self.cfg.n_outputs());
        let read = crate::stream::float_targets(widths.1);
        let chunk = crate::stream::read_chunk(
            ("inputs", "targets", "mask"),
            widths.0,
            inputs,
            targets,
            None,
            &read,
        )?;
        crate::stream::train_sequence(py, self.inner.as_ref(), widths, chunk, reset)
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
        crate::stream::predict_sequence(
            py,
            self.inner.as_ref(),
            (self.cfg.n_inputs(), self.cfg.n_outputs()),
            inputs,
            reset,
        )
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
        let widths = (self.cfg.n_inputs(), self.cfg.n_outputs());
        let read = crate::stream::float_targets(widths.1);
        crate::stream::train_stream(
            py,
            self.inner.as_ref(),
            widths,
            chunks,
            &read,
            reset,
            progress,
        )
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
        let model: fn(&mut SeedOnline) -> &mut _ = |t| t;
        crate::batch::train(
            py,
            self.inner.as_ref(),
            model,
            (self.cfg.n_inputs(), self.cfg.n_outputs()),
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
        let model: fn(&mut SeedOnline) -> &mut _ = |t| t;
        crate::batch::predict(
            py,
            self.inner.as_ref(),
            model,
            (self.cfg.n_inputs(), self.cfg.n_outputs()),
            inputs,
            n_threads,
        )
    }

    /// Bytes a batch of `batch_size` sequences holds besides the weights and
    /// the inputs: per sequence, its state and step buffers, plus (for
    /// `update="sequence"`) an accumulator the size of the weights.
    #[pyo3(signature = (batch_size, update="step"))]
    fn batch_memory_bytes(&self, py: Python<'_>, batch_size: i64, update: &str) -> PyResult<usize> {
        let model: fn(&mut SeedOnline) -> &mut _ = |t| t;
        crate::batch::memory(py, self.inner.as_ref(), model, batch_size, update)
    }

    /// Everything needed to resume exactly: format version, class, sizes,
    /// hyperparameters, and per layer (`layers.{i}.`) its hyperparameters,
    /// weights and state (fresh arrays).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = locked(py, self.inner.as_ref(), |t| t.layers.clone())?;
        let d = checkpoint::new_state(py, "OnlineTrainer")?;
        d.set_item("layer_sizes", self.cfg.layer_sizes.clone())?;
        d.set_item("tau_mem", self.cfg.tau_mem)?;
        d.set_item("threshold", self.cfg.threshold)?;
        d.set_item("lr", self.cfg.lr)?;
        d.set_item("seed", self.seed)?;
        for (i, l) in t.iter().enumerate() {
            layer_to_dict(&d, &format!("layers.{i}."), l)?;
        }
        Ok(d)
    }

    /// Replace every layer's hyperparameters, weights and state by those of
    /// `state` (layer sizes must match); checked first, a rejected dict
    /// changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        checkpoint::check_header(state, "OnlineTrainer")?;
        let sizes: Vec<i64> = checkpoint::item(state, "layer_sizes")?
            .extract()
            .map_err(|e| {
                value_error(format!(
                    "state_dict['layer_sizes']: expected a list of ints, {e}"
                ))
            })?;
        let ours: Vec<i64> = self.cfg.layer_sizes.iter().map(|&n| n as i64).collect();
        if sizes != ours {
            return Err(value_error(format!(
                "state_dict['layer_sizes']: expected {ours:?} (this trainer's sizes), got {sizes:?}"
            )));
        }
        let layers = self
            .cfg
            .layer_sizes
            .windows(2)
            .enumerate()
            .map(|(i, p)| layer_from_dict(state, &format!("layers.{i}."), (p[0], p[1])))
            .collect::<PyResult<Vec<_>>>()?;
        locked(py, self.inner.as_ref(), move |t| t.layers = layers)
    }

    /// A new trainer from a `state_dict()`.
    #[classmethod]
    fn from_state_dict<'py>(
        cls: &Bound<'py, PyType>,
        state: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::check_header(state, "OnlineTrainer")?;
        let kwargs = PyDict::new(cls.py());
        kwargs.set_item("seed", checkpoint::i64_of(state, "seed")?)?;
        let sizes: Vec<i64> = checkpoint::item(state, "layer_sizes")?
            .extract()
            .map_err(|e| {
                value_error(format!(
                    "state_dict['layer_sizes']: expected a list of ints, {e}"
                ))
            })?;
        let args = (
            sizes,
            checkpoint::f64_of(state, "tau_mem")?,
            checkpoint::f64_of(state, "threshold")?,
            checkpoint::f64_of(state, "lr")?,
        );
        let t = cls.call(args, Some(&kwargs))?;
        t.call_method1("load_state_dict", (state,))?;
        Ok(t)
    }

    /// Write a checkpoint file (npz, atomic).
    fn save(slf: &Bound<'_, Self>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        checkpoint::save(slf.as_any(), path)
    }

    /// Read a checkpoint file written by `save`.
    #[classmethod]
    fn load<'py>(
        cls: &Bound<'py, PyType>,
        path: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::load(cls.as_any(), path)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        checkpoint::reduce(slf.as_any(), "OnlineTrainer")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut s = format!(
            "OnlineTrainer(layer_sizes={}, tau_mem={}, threshold={}, lr={}",
            self.sizes_repr,
            self.shown.show(py, 0, self.cfg.tau_mem)?,
            self.shown.show(py, 1, self.cfg.threshold)?,
            self.shown.show(py, 2, self.cfg.lr)?
        );
        if self.seed != 42 {
            s.push_str(&format!(", seed={}", self.seed));
        }
        s.push(')');
        Ok(s)
    }
}
