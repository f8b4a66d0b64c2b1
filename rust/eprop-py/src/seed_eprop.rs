//! `eprop.EpropTrainer`: the seed's single-layer recurrent e-prop trainer.

use std::sync::Mutex;

use eprop_core::seed_eprop::{SeedEprop, SeedEpropConfig};
use numpy::ndarray::Array2;
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{check_seed, float_repr, locked, matrix, readonly, to_py, vector};

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
        value: f64,
        check: fn(&str, f64) -> eprop_core::Result<f64>,
        name: &str,
        field: fn(&mut SeedEpropConfig) -> &mut f64,
    ) -> PyResult<()> {
        let v = check(name, value).map_err(to_py)?;
        locked(py, &self.inner, |t| *field(&mut t.net.cfg) = v)
    }
}

#[pymethods]
impl PyEpropTrainer {
    #[new]
    #[pyo3(signature = (n_inputs, n_neurons, n_outputs, tau_mem=20.0, tau_trace=20.0, threshold=1.0, lr=0.01, dt=1.0, *, seed=42))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_inputs: i64,
        n_neurons: i64,
        n_outputs: i64,
        tau_mem: f64,
        tau_trace: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
        seed: i128,
    ) -> PyResult<Self> {
        let cfg = SeedEpropConfig::new(
            n_inputs, n_neurons, n_outputs, tau_mem, tau_trace, threshold, lr, dt,
        )
        .map_err(to_py)?;
        let seed = check_seed(seed)?;
        let dims = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        Ok(PyEpropTrainer {
            inner: Mutex::new(SeedEprop::new(cfg, seed)),
            seed,
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
    fn tau_trace(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.tau_trace)
    }

    #[setter]
    fn set_tau_trace(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(
            py,
            value,
            eprop_core::error::check_positive,
            "tau_trace",
            |c| &mut c.tau_trace,
        )
    }

    #[getter]
    fn threshold(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.threshold)
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
        locked(py, &self.inner, |t| t.net.cfg.lr)
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
        locked(py, &self.inner, |t| t.net.cfg.dt)
    }

    #[setter]
    fn set_dt(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        self.set_hyper(py, value, eprop_core::error::check_positive, "dt", |c| {
            &mut c.dt
        })
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

    /// Train on one sequence from reset state; returns the mean loss.
    /// `inputs` (T, n_inputs), `targets` (T, n_outputs), T >= 1. The whole
    /// loop runs in Rust with the GIL released.
    fn train_sequence(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
    ) -> PyResult<f64> {
        let (ni, _, no) = self.dims;
        let inputs = matrix("inputs", inputs, None, ni)?;
        let targets = matrix("targets", targets, Some(inputs.nrows()), no)?;
        locked(py, &self.inner, move |t| {
            t.net
                .train_sequence(&mut t.seq, inputs.view(), targets.view())
        })?
        .map_err(to_py)
    }

    /// Run the network from reset state without learning; returns the outputs
    /// (T, n_outputs) for `inputs` (T, n_inputs).
    fn predict_sequence<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ni, _, no) = self.dims;
        let inputs = matrix("inputs", inputs, None, ni)?;
        let out = locked(py, &self.inner, move |t| {
            let mut out = Array2::zeros((inputs.nrows(), no));
            t.net
                .predict_sequence(&mut t.seq, inputs.view(), out.view_mut())
                .map(|_| out)
        })?
        .map_err(to_py)?;
        Ok(PyArray::from_owned_array(py, out).into_any())
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

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let cfg = locked(py, &self.inner, |t| t.net.cfg.clone())?;
        let mut s = format!(
            "EpropTrainer(n_inputs={}, n_neurons={}, n_outputs={}, tau_mem={}, tau_trace={}, threshold={}, lr={}, dt={}",
            cfg.n_inputs,
            cfg.n_neurons,
            cfg.n_outputs,
            float_repr(py, cfg.tau_mem)?,
            float_repr(py, cfg.tau_trace)?,
            float_repr(py, cfg.threshold)?,
            float_repr(py, cfg.lr)?,
            float_repr(py, cfg.dt)?
        );
        if self.seed != 42 {
            s.push_str(&format!(", seed={}", self.seed));
        }
        s.push(')');
        Ok(s)
    }
}
