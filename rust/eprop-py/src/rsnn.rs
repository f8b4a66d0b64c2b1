//! `eprop.RecurrentNetwork`: canonical e-prop (LIF and ALIF neurons, leaky
//! readout, symmetric/random/adaptive feedback, rate regularization, SGD or
//! Adam). The math lives in `eprop_core::rsnn`.

use std::sync::Mutex;

use eprop_core::batch::{batch_state_bytes, predict_batch, train_batch, Update};
use eprop_core::pool::run_in_pool;
use eprop_core::rsnn::{self, Feedback, Grads, Loss, Optimizer, Rsnn, RsnnConfig, Schedule};
use numpy::ndarray::{Array2, Array3, Axis};
use numpy::PyArray;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::batch::threads;
use crate::checkpoint;
use crate::convert::{
    check_seed, extract_f64, float_repr, locked, matrix, readonly, to_py, value_error, vector,
};
use crate::stream::{mask_rows, Rows};

/// A recurrent spiking network trained with canonical e-prop (Bellec et al.
/// 2020, Nat. Commun. 11:3625).
///
/// Neurons: `n_neurons` LIF, the last `n_adaptive` of them adaptive (ALIF),
/// reset by subtraction, no self-connections, refractory period (two spikes
/// at least `refractory` ms apart). Readout: `y = W_out zhat + b` with zhat
/// the spikes low-pass filtered by tau_out with unit gain (a rate in spikes
/// per step). Loss `"mse"` (0.5 squared error; targets (T, n_outputs)) or
/// `"cross_entropy"` (softmax; targets as class indices (T,) or class
/// probabilities (T, n_outputs), rows non-negative and summing to 1 where
/// they count); an optional `mask` (T,) selects the steps whose error counts.
///
/// Parameters (times in ms, rates in Hz): tau_mem 20; tau_adapt 2000; beta
/// (threshold increase per unit of adaptation; default `1.7 (1 - rho) / (1 -
/// alpha)`, the paper's scaling); threshold 0.6 (input scaling s = 1);
/// refractory 5 ms (the paper's); dt 1 ms; tau_out 20; feedback `"symmetric"`
/// (W_out^T), `"random"` (fixed, from `seed`) or `"adaptive"` (Kolen-Pollack:
/// B^T and W_out get the same change and both decay by `feedback_decay` per
/// update, so B converges to W_out^T); surrogate_height 0.3; reg_rate
/// (strength of the rate regularization, 0 = off) toward target_rate, with
/// tau_reg the time constant of the running rate in online updates (the
/// regularizer counts once per tau_reg there); optimizer `"adam"` or `"sgd"`
/// with lr; update `"sequence"` (apply once per sequence, batch or stream;
/// also what `None` gives), `"step"` (every step) or an int k (every k steps).
///
/// The objective is the loss summed over time (mean over a batch's sequences);
/// reported losses are means per counted step. Predictions run the forward
/// dynamics only (eligibility traces restart from zero after one). Every
/// method is atomic and runs with the GIL released; arrays read out are
/// read-only copies.
#[pyclass(frozen, module = "eprop", name = "RecurrentNetwork")]
pub struct PyRecurrentNetwork {
    inner: Mutex<Rsnn>,
    cfg: RsnnConfig,
    seed: u32,
}

fn schedule_of(update: &Bound<'_, PyAny>) -> PyResult<Schedule> {
    if update.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "update: expected 'sequence', 'step' or an integer k >= 1, got a bool",
        ));
    }
    if let Ok(s) = update.extract::<String>() {
        return match s.as_str() {
            "sequence" => Ok(Schedule::Sequence),
            "step" => Ok(Schedule::Every(1)),
            o => Err(value_error(format!(
                "update: expected 'sequence', 'step' or an integer k >= 1, got '{o}'"
            ))),
        };
    }
    match update.extract::<i64>() {
        Ok(k) if k >= 1 => Ok(Schedule::Every(k as usize)),
        Ok(k) => Err(value_error(format!(
            "update: expected 'sequence', 'step' or an integer k >= 1, got {k}"
        ))),
        Err(_) => Err(PyTypeError::new_err(
            "update: expected 'sequence', 'step' or an integer k >= 1",
        )),
    }
}

fn schedule_name(s: Schedule) -> String {
    match s {
        Schedule::Sequence => "'sequence'".into(),
        Schedule::Every(1) => "'step'".into(),
        Schedule::Every(k) => k.to_string(),
    }
}

impl PyRecurrentNetwork {
    /// Reads targets for `t` steps: floats (T, n_outputs), or for
    /// cross-entropy class indices (T,) turned into one-hot rows, or class
    /// probabilities (T, n_outputs), checked in the rows `mask` counts.
    fn read_targets(
        &self,
        arg: &str,
        obj: &Bound<'_, PyAny>,
        t: usize,
        mask: Option<&numpy::ndarray::Array1<bool>>,
    ) -> PyResult<Rows> {
        let no = self.cfg.n_outputs;
        if self.cfg.loss == Loss::CrossEntropy {
            let a = extract_f64(arg, obj)?;
            if a.ndim() == 1 {
                if a.len() != t {
                    return Err(value_error(format!(
                        "{arg}: expected class indices of shape ({t},) or one-hot targets of shape ({t}, {no}), got shape ({},)",
                        a.len()
                    )));
                }
                let mut m = Array2::zeros((t, no));
                for (i, &c) in a.iter().enumerate() {
                    if c.fract() != 0.0 || c < 0.0 || c >= no as f64 {
                        return Err(value_error(format!(
                            "{arg}: expected class indices in [0, {}], got {c} at index {i}",
                            no - 1
                        )));
                    }
                    m[[i, c as usize]] = 1.0;
                }
                return Ok(Rows::Owned(m));
            }
            let rows = crate::stream::rows(arg, obj, Some(t), no)?;
            rows.check(|v| {
                rsnn::check_distributions(arg, v, mask.map(|m| m.view()), &|i| i.to_string())
            })?;
            return Ok(rows);
        }
        crate::stream::rows(arg, obj, Some(t), no)
    }

    /// Reads a batch of targets: (B, T, n_outputs), or (B, T) class indices;
    /// cross-entropy probabilities are checked in the rows `mask` counts.
    fn read_batch_targets(
        &self,
        obj: &Bound<'_, PyAny>,
        b: usize,
        t: usize,
        mask: Option<&Array2<bool>>,
    ) -> PyResult<Array3<f64>> {
        let no = self.cfg.n_outputs;
        if self.cfg.loss == Loss::CrossEntropy {
            let a = extract_f64("targets", obj)?;
            if a.ndim() == 2 {
                if a.shape() != [b, t] {
                    return Err(value_error(format!(
                        "targets: expected class indices of shape ({b}, {t}) or one-hot of shape ({b}, {t}, {no}), got shape {}",
                        eprop_core::error::fmt_shape(a.shape())
                    )));
                }
                let mut m = Array3::zeros((b, t, no));
                for ((k, s), &c) in a.indexed_iter().map(|(ix, c)| ((ix[0], ix[1]), c)) {
                    if c.fract() != 0.0 || c < 0.0 || c >= no as f64 {
                        return Err(value_error(format!(
                            "targets: expected class indices in [0, {}], got {c} at index ({k}, {s})",
                            no - 1
                        )));
                    }
                    m[[k, s, c as usize]] = 1.0;
                }
                return Ok(m);
            }
            let y = crate::convert::batch("targets", obj, Some((b, t)), no)?;
            for k in 0..b {
                rsnn::check_distributions(
                    "targets",
                    y.index_axis(Axis(0), k),
                    mask.map(|m| m.index_axis(Axis(0), k)),
                    &|s| format!("({k}, {s})"),
                )
                .map_err(to_py)?;
            }
            return Ok(y);
        }
        crate::convert::batch("targets", obj, Some((b, t)), no)
    }

    /// A batch mask: None, (T,) shared by every sequence, or (B, T).
    fn read_batch_mask(
        &self,
        obj: Option<&Bound<'_, PyAny>>,
        b: usize,
        t: usize,
    ) -> PyResult<Option<Array2<bool>>> {
        let Some(obj) = obj else { return Ok(None) };
        let a = extract_f64("mask", obj)?;
        if let Some(bad) = a.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(value_error(format!(
                "mask: expected booleans (0 or 1), got {bad}"
            )));
        }
        match a.shape() {
            [tt] if *tt == t => Ok(Some(Array2::from_shape_fn((b, t), |(_, s)| a[[s]] != 0.0))),
            [bb, tt] if *bb == b && *tt == t => {
                Ok(Some(Array2::from_shape_fn((b, t), |(k, s)| {
                    a[[k, s]] != 0.0
                })))
            }
            other => Err(value_error(format!(
                "mask: expected shape ({t},) or ({b}, {t}), got shape {}",
                eprop_core::error::fmt_shape(other)
            ))),
        }
    }

    /// Inputs, targets and mask of a batch; 2-D inputs are one sequence.
    fn read_batch(
        &self,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
        mask: Option<&Bound<'_, PyAny>>,
        allow_single: bool,
    ) -> PyResult<BatchArgs> {
        let ni = self.cfg.n_inputs;
        let a = extract_f64("inputs", inputs)?;
        if allow_single && a.ndim() == 2 {
            let x = crate::convert::matrix_of("inputs", a, None, ni)?;
            let t = x.nrows();
            let m = mask.map(|m| mask_rows("mask", m, t)).transpose()?;
            let y = match self.read_targets("targets", targets, t, m.as_ref())? {
                Rows::Owned(m) => m,
                Rows::Borrowed(..) => matrix("targets", targets, Some(t), self.cfg.n_outputs)?,
            };
            let m = m.map(|m| m.insert_axis(Axis(0)));
            return Ok((x.insert_axis(Axis(0)), y.insert_axis(Axis(0)), m, true));
        }
        let x = crate::convert::batch_of("inputs", a, None, ni)?;
        let (b, t, _) = x.dim();
        let m = self.read_batch_mask(mask, b, t)?;
        let y = self.read_batch_targets(targets, b, t, m.as_ref())?;
        Ok((x, y, m, false))
    }

    fn get<'py, D: numpy::ndarray::Dimension>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&Rsnn) -> numpy::ndarray::Array<f64, D> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = locked(py, &self.inner, |t| f(t))?;
        Ok(readonly(py, a))
    }
}

/// Inputs, targets and mask of a batch, and whether a single sequence was given.
type BatchArgs = (Array3<f64>, Array3<f64>, Option<Array2<bool>>, bool);

fn grads_dict<'py>(py: Python<'py>, g: &Grads) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("W_in", PyArray::from_array(py, &g.w_in))?;
    d.set_item("W_rec", PyArray::from_array(py, &g.w_rec))?;
    d.set_item("W_out", PyArray::from_array(py, &g.w_out))?;
    d.set_item("b_out", PyArray::from_array(py, &g.b_out))?;
    Ok(d)
}

#[pymethods]
impl PyRecurrentNetwork {
    #[new]
    #[pyo3(signature = (
        n_inputs, n_neurons, n_outputs, *, n_adaptive=0, tau_mem=20.0, tau_adapt=2000.0, beta=None,
        threshold=0.6, refractory=5.0, dt=1.0, tau_out=20.0, loss="mse", feedback="symmetric",
        feedback_decay=1e-3, surrogate_height=0.3, reg_rate=0.0, target_rate=10.0, tau_reg=1000.0, optimizer="adam",
        lr=1e-3, update=None, seed=0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_inputs: i64,
        n_neurons: i64,
        n_outputs: i64,
        n_adaptive: i64,
        tau_mem: f64,
        tau_adapt: f64,
        beta: Option<f64>,
        threshold: f64,
        refractory: f64,
        dt: f64,
        tau_out: f64,
        loss: &str,
        feedback: &str,
        feedback_decay: f64,
        surrogate_height: f64,
        reg_rate: f64,
        target_rate: f64,
        tau_reg: f64,
        optimizer: &str,
        lr: f64,
        update: Option<&Bound<'_, PyAny>>,
        seed: i128,
    ) -> PyResult<Self> {
        let schedule = match update {
            None => Schedule::Sequence,
            Some(u) => schedule_of(u)?,
        };
        let kinds = (
            Loss::parse(loss).map_err(to_py)?,
            Feedback::parse(feedback).map_err(to_py)?,
            Optimizer::parse(optimizer).map_err(to_py)?,
        );
        let cfg = RsnnConfig::new(
            (n_inputs, n_neurons, n_outputs, n_adaptive),
            tau_mem,
            tau_adapt,
            beta,
            threshold,
            refractory,
            dt,
            tau_out,
            kinds,
            feedback_decay,
            surrogate_height,
            (reg_rate, target_rate, tau_reg),
            lr,
            schedule,
        )
        .map_err(to_py)?;
        let seed = check_seed(seed)?;
        Ok(PyRecurrentNetwork {
            inner: Mutex::new(Rsnn::new(cfg.clone(), seed)),
            cfg,
            seed,
        })
    }

    #[getter]
    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs
    }
    #[getter]
    fn n_neurons(&self) -> usize {
        self.cfg.n_neurons
    }
    #[getter]
    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs
    }
    #[getter]
    fn n_adaptive(&self) -> usize {
        self.cfg.n_adaptive
    }
    #[getter]
    fn tau_mem(&self) -> f64 {
        self.cfg.tau_mem
    }
    #[getter]
    fn tau_adapt(&self) -> f64 {
        self.cfg.tau_adapt
    }
    #[getter]
    fn beta(&self) -> f64 {
        self.cfg.beta
    }
    #[getter]
    fn threshold(&self) -> f64 {
        self.cfg.threshold
    }
    #[getter]
    fn refractory(&self) -> f64 {
        self.cfg.refractory
    }
    #[getter]
    fn dt(&self) -> f64 {
        self.cfg.dt
    }
    #[getter]
    fn tau_out(&self) -> f64 {
        self.cfg.tau_out
    }
    #[getter]
    fn loss(&self) -> &'static str {
        self.cfg.loss.name()
    }
    #[getter]
    fn feedback(&self) -> &'static str {
        self.cfg.feedback.name()
    }
    #[getter]
    fn feedback_decay(&self) -> f64 {
        self.cfg.feedback_decay
    }
    #[getter]
    fn surrogate_height(&self) -> f64 {
        self.cfg.surrogate_height
    }
    #[getter]
    fn reg_rate(&self) -> f64 {
        self.cfg.reg_rate
    }
    #[getter]
    fn target_rate(&self) -> f64 {
        self.cfg.target_rate
    }
    #[getter]
    fn tau_reg(&self) -> f64 {
        self.cfg.tau_reg
    }
    #[getter]
    fn optimizer(&self) -> &'static str {
        self.cfg.optimizer.name()
    }
    #[getter]
    fn seed(&self) -> u32 {
        self.seed
    }
    /// `'sequence'`, `'step'` or the int k.
    #[getter]
    fn update<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.cfg.schedule {
            Schedule::Sequence => "sequence".into_pyobject(py)?.into_any(),
            Schedule::Every(1) => "step".into_pyobject(py)?.into_any(),
            Schedule::Every(k) => k.into_pyobject(py)?.into_any(),
        })
    }

    /// Learning rate (settable, e.g. for a schedule; >= 0).
    #[getter]
    fn lr(&self, py: Python<'_>) -> PyResult<f64> {
        locked(py, &self.inner, |t| t.net.cfg.lr)
    }
    #[setter]
    fn set_lr(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let h = crate::convert::Hyper::parse("lr", value)?;
        let v = eprop_core::error::check_non_negative("lr", h.value).map_err(to_py)?;
        locked(py, &self.inner, |t| t.net.cfg.lr = v)
    }

    #[getter(W_in)]
    fn w_in<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.params.w_in.clone())
    }
    #[setter(W_in)]
    fn set_w_in(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = matrix("W_in", value, Some(self.cfg.n_neurons), self.cfg.n_inputs)?;
        locked(py, &self.inner, move |t| t.net.params.w_in = m)
    }
    #[getter(W_rec)]
    fn w_rec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.params.w_rec.clone())
    }
    /// Recurrent weights (n_neurons, n_neurons); the diagonal is set to zero.
    #[setter(W_rec)]
    fn set_w_rec(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut m = matrix("W_rec", value, Some(self.cfg.n_neurons), self.cfg.n_neurons)?;
        m.diag_mut().fill(0.0);
        locked(py, &self.inner, move |t| t.net.params.w_rec = m)
    }
    #[getter(W_out)]
    fn w_out<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.params.w_out.clone())
    }
    #[setter(W_out)]
    fn set_w_out(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = matrix("W_out", value, Some(self.cfg.n_outputs), self.cfg.n_neurons)?;
        locked(py, &self.inner, move |t| t.net.params.w_out = m)
    }
    #[getter]
    fn b_out<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.params.b_out.clone())
    }
    #[setter]
    fn set_b_out(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = vector("b_out", value, self.cfg.n_outputs)?;
        locked(py, &self.inner, move |t| t.net.params.b_out = m)
    }
    /// Feedback matrix B (n_neurons, n_outputs) used with random and adaptive
    /// feedback (symmetric feedback uses W_out^T instead).
    #[getter]
    fn feedback_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.net.params.feedback.clone())
    }
    #[setter]
    fn set_feedback_matrix(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = matrix(
            "feedback_matrix",
            value,
            Some(self.cfg.n_neurons),
            self.cfg.n_outputs,
        )?;
        locked(py, &self.inner, move |t| t.net.params.feedback = m)
    }
    #[getter(_v)]
    fn v<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.v.clone())
    }
    #[getter(_a)]
    fn a<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.a.clone())
    }
    #[getter(_spikes)]
    fn spikes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, |t| t.seq.state.z.clone())
    }

    /// Reset the dynamic state (membranes, adaptation, spikes, traces,
    /// eligibilities). Gradients accumulated for a pending update are kept.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        locked(py, &self.inner, |t| t.reset())
    }

    /// Apply the gradients accumulated since the last update now (a no-op
    /// when there are none). `train_sequence` does it at its end with
    /// `update="sequence"`; call it after driving `step` by hand.
    fn apply_updates(&self, py: Python<'_>) -> PyResult<()> {
        locked(py, &self.inner, |t| t.apply_pending())
    }

    /// One step. `x` (n_inputs,); with a `target` ((n_outputs,) or a class
    /// index) the gradient is accumulated and applied per `update`;
    /// `mask=False` runs the step without counting its error. Returns a dict
    /// with `spikes`, `output` (the readout, logits for cross-entropy) and,
    /// with a target, `loss`.
    #[pyo3(signature = (x, target=None, mask=true))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target: Option<&Bound<'py, PyAny>>,
        mask: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = vector("x", x, self.cfg.n_inputs)?;
        let target = match target {
            None => None,
            Some(t) => {
                let is_index =
                    self.cfg.loss == Loss::CrossEntropy && extract_f64("target", t)?.ndim() == 0;
                if is_index {
                    let c = extract_f64("target", t)?
                        .iter()
                        .copied()
                        .next()
                        .unwrap_or(-1.0);
                    let no = self.cfg.n_outputs;
                    if c.fract() != 0.0 || c < 0.0 || c >= no as f64 {
                        return Err(value_error(format!(
                            "target: expected a class index in [0, {}], got {c}",
                            no - 1
                        )));
                    }
                    let mut v = vec![0.0; no];
                    v[c as usize] = 1.0;
                    Some(numpy::ndarray::Array1::from(v))
                } else {
                    let v = vector("target", t, self.cfg.n_outputs)?;
                    if self.cfg.loss == Loss::CrossEntropy && mask {
                        let row = v.view().insert_axis(Axis(0));
                        rsnn::check_distributions("target", row, None, &|_| "0".to_string())
                            .map_err(to_py)?;
                    }
                    Some(v)
                }
            }
        };
        let (z, y, loss) = locked(py, &self.inner, move |t| {
            let tg = target.as_ref().and_then(|a| a.as_slice());
            let loss = t.step(x.as_slice().unwrap_or(&[]), tg, mask);
            (
                t.seq.state.z.clone(),
                t.seq.state.y.clone(),
                tg.map(|_| loss),
            )
        })?;
        let d = PyDict::new(py);
        d.set_item("spikes", PyArray::from_owned_array(py, z))?;
        d.set_item("output", PyArray::from_owned_array(py, y))?;
        if let Some(l) = loss {
            d.set_item("loss", l)?;
        }
        Ok(d)
    }

    /// Train on one sequence; returns the mean loss per counted step.
    /// `inputs` (T, n_inputs); `targets` (T, n_outputs), or class indices (T,)
    /// for cross-entropy; `mask` (T,) selects the steps whose error counts.
    /// From reset state unless `reset=False`. Gradients still pending at the
    /// end of the call are applied then: the whole call's with
    /// `update="sequence"`, the last (< k) steps' with `update=k`. So a sequence
    /// fed in pieces with `reset=False` gives the same result as one call when
    /// the pieces are multiples of k; `train_stream` treats its whole stream as
    /// one sequence and always gives the same result as one call.
    #[pyo3(signature = (inputs, targets, *, mask=None, reset=true))]
    fn train_sequence(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
        mask: Option<&Bound<'_, PyAny>>,
        reset: bool,
    ) -> PyResult<f64> {
        let read = |arg: &str,
                    obj: &Bound<'_, PyAny>,
                    t: usize,
                    m: Option<&numpy::ndarray::Array1<bool>>| {
            self.read_targets(arg, obj, t, m)
        };
        let chunk = crate::stream::read_chunk(
            ("inputs", "targets", "mask"),
            self.cfg.n_inputs,
            inputs,
            targets,
            mask,
            &read,
        )?;
        crate::stream::train_sequence(
            py,
            &self.inner,
            (self.cfg.n_inputs, self.cfg.n_outputs),
            chunk,
            reset,
        )
    }

    /// Run without learning; returns the readout (T, n_outputs).
    #[pyo3(signature = (inputs, *, reset=true))]
    fn predict_sequence<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        reset: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::stream::predict_sequence(
            py,
            &self.inner,
            (self.cfg.n_inputs, self.cfg.n_outputs),
            inputs,
            reset,
        )
    }

    /// Train on a stream of `(inputs, targets)` or `(inputs, targets, mask)`
    /// chunks; bitwise the same as one `train_sequence` on the concatenation
    /// (with `update="sequence"`, the gradient is applied at the stream's end).
    /// On a bad chunk: ValueError, and the state after the last complete chunk.
    #[pyo3(signature = (chunks, *, reset=true, progress=false))]
    fn train_stream(
        &self,
        py: Python<'_>,
        chunks: &Bound<'_, PyAny>,
        reset: bool,
        progress: bool,
    ) -> PyResult<f64> {
        let read = |arg: &str,
                    obj: &Bound<'_, PyAny>,
                    t: usize,
                    m: Option<&numpy::ndarray::Array1<bool>>| {
            self.read_targets(arg, obj, t, m)
        };
        let widths = (self.cfg.n_inputs, self.cfg.n_outputs);
        crate::stream::train_stream(py, &self.inner, widths, chunks, &read, reset, progress)
    }

    /// Iterator over the readout of each input chunk, without learning.
    #[pyo3(signature = (chunks, *, reset=true))]
    fn predict_stream(
        slf: &Bound<'_, Self>,
        chunks: &Bound<'_, PyAny>,
        reset: bool,
    ) -> PyResult<crate::stream::PredictStream> {
        crate::stream::PredictStream::new(slf.as_any(), chunks, reset)
    }

    /// Train on a batch; returns the mean loss per counted step of each
    /// sequence (B,). `inputs` (B, T, n_inputs), `targets` (B, T, n_outputs) or
    /// class indices (B, T); `mask` (T,) or (B, T). Every sequence starts from
    /// reset state. With `update="sequence"` the weights stay fixed and the
    /// mean over the batch of the summed gradients is applied once; with
    /// `"step"`/k the sequences advance together and the mean gradient is
    /// applied every k steps. Parallel over sequences (GIL released);
    /// bitwise identical for any `n_threads`.
    #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
    fn train_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        mask: Option<&Bound<'py, PyAny>>,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n_threads = threads(n_threads)?;
        let (x, y, m, _) = self.read_batch(inputs, targets, mask, false)?;
        let update = match self.cfg.schedule {
            Schedule::Sequence => Update::Sequence,
            Schedule::Every(k) => Update::Every(k),
        };
        let losses = locked(py, &self.inner, move |t| {
            run_in_pool(n_threads, || {
                train_batch(
                    &mut t.net,
                    x.view(),
                    y.view(),
                    m.as_ref().map(|m| m.view()),
                    update,
                )
            })
        })?
        .and_then(|r| r)
        .map_err(to_py)?;
        Ok(PyArray::from_vec(py, losses).into_any())
    }

    /// Run a batch without learning; returns (B, T, n_outputs). Row b equals
    /// `predict_sequence(inputs[b])` bitwise.
    #[pyo3(signature = (inputs, *, n_threads=None))]
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n_threads = threads(n_threads)?;
        let x = crate::convert::batch("inputs", inputs, None, self.cfg.n_inputs)?;
        let (b, t, _) = x.dim();
        let no = self.cfg.n_outputs;
        let out = locked(py, &self.inner, move |tr| {
            let mut out = Array3::zeros((b, t, no));
            run_in_pool(n_threads, || {
                predict_batch(&tr.net, x.view(), out.view_mut())
            })
            .map(|r| r.map(|_| out))
        })?
        .and_then(|r| r)
        .map_err(to_py)?;
        Ok(PyArray::from_owned_array(py, out).into_any())
    }

    /// Bytes a batch of `batch_size` sequences holds besides weights and inputs.
    fn batch_memory_bytes(&self, py: Python<'_>, batch_size: i64) -> PyResult<usize> {
        if batch_size < 1 {
            return Err(value_error(format!(
                "batch_size: expected an integer >= 1, got {batch_size}"
            )));
        }
        locked(py, &self.inner, move |t| {
            batch_state_bytes(&t.net, batch_size as usize, Update::Sequence)
        })
    }

    /// The e-prop gradient of the objective for one sequence (2-D inputs) or
    /// the mean over a batch (3-D), weights and state untouched: a dict with
    /// `W_in`, `W_rec`, `W_out`, `b_out` (and `loss`, the mean loss per
    /// counted step). The objective is the loss summed over time plus the rate
    /// regularization; with symmetric feedback this equals the gradient of
    /// the network in which z(t-1) is a constant in the recurrence and reset.
    #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
    fn gradients<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        mask: Option<&Bound<'py, PyAny>>,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n_threads = threads(n_threads)?;
        let (x, y, m, single) = self.read_batch(inputs, targets, mask, true)?;
        let (g, losses) = locked(py, &self.inner, move |t| {
            run_in_pool(n_threads, || {
                rsnn::gradients(&t.net, x.view(), y.view(), m.as_ref().map(|m| m.view()))
            })
        })?
        .and_then(|r| r)
        .map_err(to_py)?;
        let d = grads_dict(py, &g)?;
        if single {
            d.set_item("loss", losses[0])?;
        } else {
            d.set_item("loss", losses.iter().sum::<f64>() / losses.len() as f64)?;
        }
        Ok(d)
    }

    /// Loss (mean per counted step) with frozen weights, and for
    /// cross-entropy `accuracy` (fraction of sequences whose readout summed
    /// over the counted steps picks the target class) and `step_accuracy`.
    #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        mask: Option<&Bound<'py, PyAny>>,
        n_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n_threads = threads(n_threads)?;
        let (x, y, m, _) = self.read_batch(inputs, targets, mask, true)?;
        let loss_kind = self.cfg.loss;
        let (loss, acc) = locked(py, &self.inner, move |tr| {
            let (b, t, _) = x.dim();
            let mut out = Array3::zeros((b, t, tr.net.cfg.n_outputs));
            run_in_pool(n_threads, || {
                predict_batch(&tr.net, x.view(), out.view_mut())
            })
            .and_then(|r| r)
            .map(|_| {
                rsnn::evaluate_outputs(
                    loss_kind,
                    out.view(),
                    y.view(),
                    m.as_ref().map(|m| m.view()),
                )
            })
        })?
        .map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("loss", loss)?;
        if let Some((a, s)) = acc {
            d.set_item("accuracy", a)?;
            d.set_item("step_accuracy", s)?;
        }
        Ok(d)
    }

    /// Values stored per sequence in flight (float64 count; constant in T).
    #[getter]
    fn memory_per_step(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, &self.inner, |t| t.memory_per_step())
    }

    /// True bytes of all per-trainer state: weights, feedback matrix, Adam
    /// moments, dynamic state, eligibilities, gradient sums, buffers.
    #[getter]
    fn memory_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        locked(py, &self.inner, |t| t.memory_bytes())
    }

    /// Hyperparameters, weights, optimizer state and the full dynamic state.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = locked(py, &self.inner, |t| t.clone())?;
        let d = checkpoint::new_state(py, "RecurrentNetwork")?;
        let c = &t.net.cfg;
        for (k, v) in [
            ("n_inputs", c.n_inputs),
            ("n_neurons", c.n_neurons),
            ("n_outputs", c.n_outputs),
            ("n_adaptive", c.n_adaptive),
        ] {
            d.set_item(k, v)?;
        }
        for (k, v) in [
            ("tau_mem", c.tau_mem),
            ("tau_adapt", c.tau_adapt),
            ("beta", c.beta),
            ("threshold", c.threshold),
            ("refractory", c.refractory),
            ("dt", c.dt),
            ("tau_out", c.tau_out),
            ("feedback_decay", c.feedback_decay),
            ("surrogate_height", c.surrogate_height),
            ("reg_rate", c.reg_rate),
            ("target_rate", c.target_rate),
            ("tau_reg", c.tau_reg),
            ("lr", c.lr),
        ] {
            d.set_item(k, v)?;
        }
        d.set_item("loss", c.loss.name())?;
        d.set_item("feedback", c.feedback.name())?;
        d.set_item("optimizer", c.optimizer.name())?;
        d.set_item(
            "update",
            match c.schedule {
                Schedule::Sequence => "sequence".to_string(),
                Schedule::Every(1) => "step".to_string(),
                Schedule::Every(k) => k.to_string(),
            },
        )?;
        d.set_item("seed", self.seed)?;
        let p = &t.net.params;
        for (k, a) in [
            ("W_in", &p.w_in),
            ("W_rec", &p.w_rec),
            ("W_out", &p.w_out),
            ("feedback_matrix", &p.feedback),
        ] {
            d.set_item(k, PyArray::from_array(py, a))?;
        }
        d.set_item("b_out", PyArray::from_array(py, &p.b_out))?;
        d.set_item("optimizer_t", t.net.optim.t)?;
        if let (Some(m), Some(v)) = (&t.net.optim.m, &t.net.optim.v) {
            for (prefix, g) in [("adam_m", m), ("adam_v", v)] {
                d.set_item(format!("{prefix}.W_in"), PyArray::from_array(py, &g.w_in))?;
                d.set_item(format!("{prefix}.W_rec"), PyArray::from_array(py, &g.w_rec))?;
                d.set_item(format!("{prefix}.W_out"), PyArray::from_array(py, &g.w_out))?;
                d.set_item(format!("{prefix}.b_out"), PyArray::from_array(py, &g.b_out))?;
            }
        }
        let st = &t.seq.state;
        for (k, a) in [
            ("_v", &st.v),
            ("_a", &st.a),
            ("_spikes", &st.z),
            ("_psi", &st.psi),
            ("_zbar_in", &st.zbar_in),
            ("_zbar_rec", &st.zbar_rec),
            ("_zhat", &st.zhat),
            ("_y", &st.y),
            ("_spike_count", &st.spike_count),
            ("_rate", &st.rate),
            ("grad.b_out", &st.grads.b_out),
        ] {
            d.set_item(k, PyArray::from_array(py, a))?;
        }
        for (k, a) in [
            ("_eps_a_in", &st.eps_a_in),
            ("_eps_a_rec", &st.eps_a_rec),
            ("_ebar_in", &st.ebar_in),
            ("_ebar_rec", &st.ebar_rec),
            ("_e_sum_in", &st.e_sum_in),
            ("_e_sum_rec", &st.e_sum_rec),
            ("grad.W_in", &st.grads.w_in),
            ("grad.W_rec", &st.grads.w_rec),
            ("grad.W_out", &st.grads.w_out),
        ] {
            d.set_item(k, PyArray::from_array(py, a))?;
        }
        let refr: Vec<f64> = st.refractory.iter().map(|&r| r as f64).collect();
        d.set_item("_refractory", PyArray::from_vec(py, refr))?;
        d.set_item("_steps", st.steps)?;
        d.set_item("_pending", st.pending)?;
        Ok(d)
    }

    /// Replace weights, optimizer state and dynamic state by those of `state`
    /// (a `state_dict()` of a network with the same configuration; checked
    /// first, a rejected dict changes nothing). `lr` is taken from `state`.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        checkpoint::check_header(state, "RecurrentNetwork")?;
        let c = &self.cfg;
        for (k, v) in [
            ("n_inputs", c.n_inputs),
            ("n_neurons", c.n_neurons),
            ("n_outputs", c.n_outputs),
            ("n_adaptive", c.n_adaptive),
        ] {
            checkpoint::check_size(state, k, v)?;
        }
        for (k, v) in [
            ("tau_mem", c.tau_mem),
            ("tau_adapt", c.tau_adapt),
            ("beta", c.beta),
            ("threshold", c.threshold),
            ("refractory", c.refractory),
            ("dt", c.dt),
            ("tau_out", c.tau_out),
            ("feedback_decay", c.feedback_decay),
            ("surrogate_height", c.surrogate_height),
            ("reg_rate", c.reg_rate),
            ("target_rate", c.target_rate),
            ("tau_reg", c.tau_reg),
        ] {
            let got = checkpoint::f64_of(state, k)?;
            if got.to_bits() != v.to_bits() {
                return Err(value_error(format!(
                    "state_dict['{k}']: expected {} (this network's value), got {}",
                    float_repr(py, v)?,
                    float_repr(py, got)?
                )));
            }
        }
        for (k, v) in [
            ("loss", c.loss.name()),
            ("feedback", c.feedback.name()),
            ("optimizer", c.optimizer.name()),
        ] {
            let got = checkpoint::item(state, k)?.str()?.to_string();
            if got != v {
                return Err(value_error(format!(
                    "state_dict['{k}']: expected '{v}' (this network's), got '{got}'"
                )));
            }
        }
        let upd = checkpoint::item(state, "update")?.str()?.to_string();
        let ours = schedule_name(c.schedule).trim_matches('\'').to_string();
        if upd != ours {
            return Err(value_error(format!(
                "state_dict['update']: expected '{ours}' (this network's), got '{upd}'"
            )));
        }
        let lr = eprop_core::error::check_non_negative("lr", checkpoint::f64_of(state, "lr")?)
            .map_err(to_py)?;
        let (ni, n, no, na) = (c.n_inputs, c.n_neurons, c.n_outputs, c.n_adaptive);
        let m = |k: &str, r: usize, cols: usize| {
            matrix(
                &format!("state_dict['{k}']"),
                &checkpoint::item(state, k)?,
                Some(r),
                cols,
            )
        };
        let v = |k: &str, len: usize| {
            vector(
                &format!("state_dict['{k}']"),
                &checkpoint::item(state, k)?,
                len,
            )
        };
        let mut new = Rsnn::new(c.clone(), self.seed);
        new.net.cfg.lr = lr;
        let p = &mut new.net.params;
        p.w_in = m("W_in", n, ni)?;
        p.w_rec = m("W_rec", n, n)?;
        p.w_rec.diag_mut().fill(0.0);
        p.w_out = m("W_out", no, n)?;
        p.b_out = v("b_out", no)?;
        p.feedback = m("feedback_matrix", n, no)?;
        let t_opt = checkpoint::i64_of(state, "optimizer_t")?;
        if t_opt < 0 {
            return Err(value_error(format!(
                "state_dict['optimizer_t']: expected an integer >= 0, got {t_opt}"
            )));
        }
        new.net.optim.t = t_opt as u64;
        let read_grads = |prefix: &str| -> PyResult<Grads> {
            Ok(Grads {
                w_in: m(&format!("{prefix}.W_in"), n, ni)?,
                w_rec: m(&format!("{prefix}.W_rec"), n, n)?,
                w_out: m(&format!("{prefix}.W_out"), no, n)?,
                b_out: v(&format!("{prefix}.b_out"), no)?,
            })
        };
        if new.net.optim.m.is_some() {
            new.net.optim.m = Some(read_grads("adam_m")?);
            new.net.optim.v = Some(read_grads("adam_v")?);
        }
        let st = &mut new.seq.state;
        st.v = v("_v", n)?;
        st.a = v("_a", n)?;
        st.z = v("_spikes", n)?;
        st.psi = v("_psi", n)?;
        st.zbar_in = v("_zbar_in", ni)?;
        st.zbar_rec = v("_zbar_rec", n)?;
        st.zhat = v("_zhat", n)?;
        st.y = v("_y", no)?;
        st.spike_count = v("_spike_count", n)?;
        st.rate = v("_rate", n)?;
        st.eps_a_in = m("_eps_a_in", na, ni)?;
        st.eps_a_rec = m("_eps_a_rec", na, n)?;
        st.ebar_in = m("_ebar_in", n, ni)?;
        st.ebar_rec = m("_ebar_rec", n, n)?;
        let (ri, rr) = (st.e_sum_in.dim(), st.e_sum_rec.dim());
        st.e_sum_in = m("_e_sum_in", ri.0, ri.1)?;
        st.e_sum_rec = m("_e_sum_rec", rr.0, rr.1)?;
        st.grads = read_grads("grad")?;
        let refr = v("_refractory", n)?;
        if let Some(bad) = refr
            .iter()
            .find(|&&r| r < 0.0 || r.fract() != 0.0 || r > u32::MAX as f64)
        {
            return Err(value_error(format!(
                "state_dict['_refractory']: expected whole steps >= 0, got {bad}"
            )));
        }
        st.refractory = refr.iter().map(|&r| r as u32).collect();
        for (k, slot) in [("_steps", &mut st.steps), ("_pending", &mut st.pending)] {
            let x = checkpoint::i64_of(state, k)?;
            if x < 0 {
                return Err(value_error(format!(
                    "state_dict['{k}']: expected an integer >= 0, got {x}"
                )));
            }
            *slot = x as u64;
        }
        new.seq.tracking = true;
        locked(py, &self.inner, move |t| *t = new)
    }

    /// A new network from a `state_dict()`.
    #[classmethod]
    fn from_state_dict<'py>(
        cls: &Bound<'py, PyType>,
        state: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        checkpoint::check_header(state, "RecurrentNetwork")?;
        let py = cls.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item("n_adaptive", checkpoint::i64_of(state, "n_adaptive")?)?;
        for k in [
            "tau_mem",
            "tau_adapt",
            "beta",
            "threshold",
            "refractory",
            "dt",
            "tau_out",
            "feedback_decay",
            "surrogate_height",
            "reg_rate",
            "target_rate",
            "tau_reg",
            "lr",
        ] {
            kwargs.set_item(k, checkpoint::f64_of(state, k)?)?;
        }
        for k in ["loss", "feedback", "optimizer"] {
            kwargs.set_item(k, checkpoint::item(state, k)?.str()?)?;
        }
        let upd = checkpoint::item(state, "update")?.str()?.to_string();
        match upd.parse::<i64>() {
            Ok(k) => kwargs.set_item("update", k)?,
            Err(_) => kwargs.set_item("update", upd)?,
        }
        kwargs.set_item("seed", checkpoint::i64_of(state, "seed")?)?;
        let sizes = (
            checkpoint::i64_of(state, "n_inputs")?,
            checkpoint::i64_of(state, "n_neurons")?,
            checkpoint::i64_of(state, "n_outputs")?,
        );
        let net = cls.call(sizes, Some(&kwargs))?;
        net.call_method1("load_state_dict", (state,))?;
        Ok(net)
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
        checkpoint::reduce(slf.as_any(), "RecurrentNetwork")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let c = &self.cfg;
        let lr = locked(py, &self.inner, |t| t.net.cfg.lr)?;
        Ok(format!(
            "RecurrentNetwork(n_inputs={}, n_neurons={}, n_outputs={}, n_adaptive={}, tau_mem={}, tau_adapt={}, \
             beta={}, threshold={}, refractory={}, dt={}, tau_out={}, loss='{}', feedback='{}', \
             feedback_decay={}, surrogate_height={}, reg_rate={}, target_rate={}, tau_reg={}, optimizer='{}', lr={}, update={}, seed={})",
            c.n_inputs,
            c.n_neurons,
            c.n_outputs,
            c.n_adaptive,
            float_repr(py, c.tau_mem)?,
            float_repr(py, c.tau_adapt)?,
            float_repr(py, c.beta)?,
            float_repr(py, c.threshold)?,
            float_repr(py, c.refractory)?,
            float_repr(py, c.dt)?,
            float_repr(py, c.tau_out)?,
            c.loss.name(),
            c.feedback.name(),
            float_repr(py, c.feedback_decay)?,
            float_repr(py, c.surrogate_height)?,
            float_repr(py, c.reg_rate)?,
            float_repr(py, c.target_rate)?,
            float_repr(py, c.tau_reg)?,
            c.optimizer.name(),
            float_repr(py, lr)?,
            schedule_name(c.schedule),
            self.seed
        ))
    }
}
