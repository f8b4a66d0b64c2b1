//! `eprop.OnlineLIFLayer` and `eprop.OnlineTrainer`: the seed's feedforward
//! online trainer.
//!
//! A layer either owns its state or is a live view of one layer of an
//! `OnlineTrainer` (what `trainer.layers` hands out): reading `W` or `_v` shows
//! the trainer's current state and writing `W` changes it.

use std::sync::{Arc, Mutex};

use eprop_core::seed_online::{SeedLayer, SeedLayerConfig, SeedOnline, SeedOnlineConfig};
use numpy::ndarray::Array2;
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{check_seed, float_repr, locked, matrix, readonly, to_py, vector};

enum LayerHandle {
    Own(Mutex<SeedLayer>),
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
        value: f64,
        check: fn(&str, f64) -> eprop_core::Result<f64>,
        name: &str,
        field: fn(&mut SeedLayerConfig) -> &mut f64,
    ) -> PyResult<()> {
        let v = check(name, value).map_err(to_py)?;
        self.with(py, |l| *field(&mut l.cfg) = v)
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
    #[pyo3(signature = (n_inputs, n_neurons, tau_mem=20.0, threshold=1.0, lr=0.01, dt=1.0, *, seed=42))]
    fn new(
        n_inputs: i64,
        n_neurons: i64,
        tau_mem: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
        seed: i128,
    ) -> PyResult<Self> {
        let cfg =
            SeedLayerConfig::new(n_inputs, n_neurons, tau_mem, threshold, lr, dt).map_err(to_py)?;
        let seed = check_seed(seed)?;
        let dims = (cfg.n_inputs, cfg.n_neurons);
        Ok(PyOnlineLIFLayer {
            handle: LayerHandle::Own(Mutex::new(SeedLayer::new(cfg, seed))),
            dims,
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
    fn set_tau_mem(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            "tau_mem",
            |c| &mut c.tau_mem,
        )
    }

    #[getter]
    fn threshold(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.threshold)
    }

    #[setter]
    fn set_threshold(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            "threshold",
            |c| &mut c.threshold,
        )
    }

    #[getter]
    fn lr(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.lr)
    }

    #[setter]
    fn set_lr(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_non_negative,
            "lr",
            |c| &mut c.lr,
        )
    }

    #[getter]
    fn dt(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| l.cfg.dt)
    }

    #[setter]
    fn set_dt(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(py, value, eprop_core::error::check_positive, "dt", |c| {
            &mut c.dt
        })
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

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let cfg = self.with(py, |l| l.cfg.clone())?;
        Ok(format!(
            "OnlineLIFLayer(n_inputs={}, n_neurons={}, tau_mem={}, threshold={}, lr={}, dt={})",
            cfg.n_inputs,
            cfg.n_neurons,
            float_repr(py, cfg.tau_mem)?,
            float_repr(py, cfg.threshold)?,
            float_repr(py, cfg.lr)?,
            float_repr(py, cfg.dt)?
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
}

#[pymethods]
impl PyOnlineTrainer {
    #[new]
    #[pyo3(signature = (layer_sizes, tau_mem=20.0, threshold=1.0, lr=0.01, *, seed=42))]
    fn new(
        py: Python<'_>,
        layer_sizes: Vec<i64>,
        tau_mem: f64,
        threshold: f64,
        lr: f64,
        seed: i128,
    ) -> PyResult<Self> {
        let cfg = SeedOnlineConfig::new(&layer_sizes, tau_mem, threshold, lr).map_err(to_py)?;
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
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyOnlineTrainer {
            inner,
            layers,
            cfg,
            seed,
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

    /// Train on one sequence from reset state; returns the mean loss.
    /// `inputs` (T, n_input), `targets` (T, n_output), T >= 1.
    fn train_sequence(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
    ) -> PyResult<f64> {
        let inputs = matrix("inputs", inputs, None, self.cfg.n_inputs())?;
        let targets = matrix(
            "targets",
            targets,
            Some(inputs.nrows()),
            self.cfg.n_outputs(),
        )?;
        locked(py, self.inner.as_ref(), move |t| {
            t.train_sequence(inputs.view(), targets.view())
        })?
        .map_err(to_py)
    }

    /// Run the stack from reset state without learning; returns the outputs
    /// (T, n_output) for `inputs` (T, n_input). Not in the seed package.
    fn predict_sequence<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = matrix("inputs", inputs, None, self.cfg.n_inputs())?;
        let no = self.cfg.n_outputs();
        let out = locked(py, self.inner.as_ref(), move |t| {
            let mut out = Array2::zeros((inputs.nrows(), no));
            t.predict_sequence(inputs.view(), out.view_mut())
                .map(|_| out)
        })?
        .map_err(to_py)?;
        Ok(PyArray::from_owned_array(py, out).into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let sizes: Vec<String> = self.cfg.layer_sizes.iter().map(|n| n.to_string()).collect();
        let mut s = format!(
            "OnlineTrainer(layer_sizes=[{}], tau_mem={}, threshold={}, lr={}",
            sizes.join(", "),
            float_repr(py, self.cfg.tau_mem)?,
            float_repr(py, self.cfg.threshold)?,
            float_repr(py, self.cfg.lr)?
        );
        if self.seed != 42 {
            s.push_str(&format!(", seed={}", self.seed));
        }
        s.push(')');
        Ok(s)
    }
}
