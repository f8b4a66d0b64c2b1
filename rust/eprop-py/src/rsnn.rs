//! `eprop._core.RecurrentNetwork`: canonical e-prop (the math and its
//! conventions are `eprop_core::models::rsnn`). The public class,
//! `eprop.RecurrentNetwork`, adds the dataclass-style constructor and repr.

use eprop_core::check;
use eprop_core::driver::Update;
use eprop_core::event::Kernel;
use eprop_core::models::rsnn::{self, layer_key, Feedback, PerLayer, RsnnConfig, RsnnNet, RsnnSpec};
use eprop_core::optim::Optimizer;
use eprop_core::pool::run_in_pool;
use eprop_core::readout::{self, Loss};
use eprop_core::real::{widened, Dtype};
use numpy::ndarray::{Array1, Array2, Array3, Axis};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{self, field, integer, matrix, real, size, size_or_list, text, vector};
use crate::errors::to_py;
use crate::shared::{
    self, array_getters, array_setters, change_methods, config_getters, float_setters, trainer_methods, try_trainer,
    with_trainer, BatchArgs, Dual, Obj, PyTrainer,
};
use crate::stream::{mask_rows, Rows};
use eprop_core::driver::Described;
use eprop_core::state::Stateful;

/// A recurrent spiking network trained with canonical e-prop (the native part
/// of `eprop.RecurrentNetwork`, built from a `RecurrentNetworkConfig`).
///
/// Every method is atomic and runs with the GIL released; arrays read out are
/// read-only copies.
#[pyclass(frozen, subclass, module = "eprop._core", name = "RecurrentNetwork")]
pub struct PyRecurrentNetwork {
    inner: Dual<RsnnNet<f64>, RsnnNet<f32>>,
    /// The configuration at construction (sizes and the fixed hyperparameters).
    cfg: RsnnConfig,
}

fn config(c: &Bound<'_, PyAny>) -> PyResult<RsnnConfig> {
    let beta = c.getattr("beta")?;
    let spec = RsnnSpec {
        n_inputs: field(c, "n_inputs", size)?,
        n_neurons: field(c, "n_neurons", size_or_list)?.map_or_else(|list| list, |n| vec![n]),
        n_outputs: field(c, "n_outputs", size)?,
        n_adaptive: match field(c, "n_adaptive", size_or_list)? {
            Ok(k) => PerLayer::Each(k),
            Err(list) => PerLayer::List(list),
        },
        tau_mem: field(c, "tau_mem", real)?,
        tau_adapt: field(c, "tau_adapt", real)?,
        beta: if beta.is_none() { None } else { Some(convert::real("beta", &beta)?) },
        threshold: field(c, "threshold", real)?,
        refractory: field(c, "refractory", real)?,
        dt: field(c, "dt", real)?,
        tau_out: field(c, "tau_out", real)?,
        loss: Loss::parse(&field(c, "loss", text)?).map_err(to_py)?,
        feedback: Feedback::parse(&field(c, "feedback", text)?).map_err(to_py)?,
        feedback_decay: field(c, "feedback_decay", real)?,
        surrogate_height: field(c, "surrogate_height", real)?,
        reg_rate: field(c, "reg_rate", real)?,
        target_rate: field(c, "target_rate", real)?,
        tau_reg: field(c, "tau_reg", real)?,
        optimizer: Optimizer::parse(&field(c, "optimizer", text)?).map_err(to_py)?,
        lr: field(c, "lr", real)?,
        update: convert::schedule(&c.getattr("update")?)?,
        seed: field(c, "seed", integer)?,
        kernel: Kernel::parse(&field(c, "kernel", text)?).map_err(to_py)?,
        dtype: Dtype::parse(&field(c, "dtype", text)?).map_err(to_py)?,
    };
    RsnnConfig::new(&spec).map_err(to_py)
}

impl PyRecurrentNetwork {
    fn cross_entropy(&self) -> bool {
        self.cfg.loss == Loss::CrossEntropy
    }

    /// Inputs, targets and mask of `gradients` and `evaluate`: a batch, or one
    /// sequence (2-D inputs) as a batch of one.
    fn batch_or_sequence(
        &self,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
        mask: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(BatchArgs, bool)> {
        let ni = self.cfg.n_inputs;
        let a = convert::array("inputs", inputs)?;
        if a.ndim() != 2 {
            let x = check::into_batch("inputs", a, None, ni).map_err(to_py)?;
            let (b, t, _) = x.dim();
            let m = shared::batch_mask(mask, b, t)?;
            let y = self.batch_targets(targets, b, t, m.as_ref())?;
            return Ok(((x, y, m), false));
        }
        let x = check::into_matrix("inputs", a, None, ni).map_err(to_py)?;
        let t = x.nrows();
        let m = mask.map(|m| mask_rows("mask", m, t)).transpose()?;
        let y = match self.targets("targets", targets, t, m.as_ref())? {
            Rows::Owned(m) => m,
            Rows::Borrowed(..) => matrix("targets", targets, Some(t), self.cfg.n_outputs)?,
        };
        let m = m.map(|m| m.insert_axis(Axis(0)));
        Ok(((x.insert_axis(Axis(0)), y.insert_axis(Axis(0)), m), true))
    }
}

impl PyTrainer for PyRecurrentNetwork {
    type M = RsnnNet<f64>;
    type M32 = RsnnNet<f32>;

    fn inner(&self) -> &Dual<RsnnNet<f64>, RsnnNet<f32>> {
        &self.inner
    }
    fn widths(&self) -> (usize, usize) {
        (self.cfg.n_inputs, self.cfg.n_outputs)
    }

    /// Floats (T, n_outputs), or for cross-entropy class indices (T,) or
    /// class probabilities (T, n_outputs) checked in the rows `mask` counts.
    fn targets(&self, arg: &str, obj: &Bound<'_, PyAny>, t: usize, mask: Option<&Array1<bool>>) -> PyResult<Rows> {
        let no = self.cfg.n_outputs;
        if !self.cross_entropy() {
            return crate::stream::rows(arg, obj, Some(t), no);
        }
        let mask = mask.and_then(|m| m.as_slice());
        let y = check::class_targets(arg, convert::array(arg, obj)?, t, no, mask).map_err(to_py)?;
        Ok(Rows::Owned(y))
    }

    /// (B, T, n_outputs), or for cross-entropy class indices (B, T) or class
    /// probabilities checked in the rows `mask` counts.
    fn batch_targets(
        &self,
        obj: &Bound<'_, PyAny>,
        b: usize,
        t: usize,
        mask: Option<&Array2<bool>>,
    ) -> PyResult<Array3<f64>> {
        let no = self.cfg.n_outputs;
        if !self.cross_entropy() {
            return convert::batch("targets", obj, Some((b, t)), no);
        }
        let mask = mask.and_then(|m| m.as_slice());
        check::class_batch_targets("targets", convert::array("targets", obj)?, (b, t, no), mask).map_err(to_py)
    }
}

/// The gradients (flat, in the order of [`RsnnConfig::param_names`]) as a
/// dict of arrays in the network's shapes and float type.
fn grads_dict<'py>(py: Python<'py>, g: Vec<Vec<f64>>, c: &RsnnConfig, dtype: Dtype) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for ((name, v), shape) in c.param_names().iter().zip(g).zip(c.param_shapes()) {
        let a = numpy::ndarray::ArrayD::from_shape_vec(shape, v).expect("gradient shape");
        d.set_item(name, convert::array_out(py, a, dtype))?;
    }
    Ok(d)
}

#[pymethods]
impl PyRecurrentNetwork {
    #[new]
    fn new(config_obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let cfg = config(config_obj)?;
        let (c64, c32) = (cfg.clone(), cfg.clone());
        let inner = Dual::new(cfg.dtype == Dtype::F32, || RsnnNet::new(c64), || RsnnNet::new(c32));
        Ok(PyRecurrentNetwork { inner, cfg })
    }

    /// Checks a configuration (the messages of the constructor).
    #[staticmethod]
    fn _validate(config_obj: &Bound<'_, PyAny>) -> PyResult<()> {
        config(config_obj).map(|_| ())
    }

    /// `'sequence'`, `'step'` or the int k.
    #[getter]
    fn update<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::schedule_out(py, self.cfg.update)
    }

    /// Apply the gradients accumulated since the last update now (a no-op
    /// when there are none). `train_sequence` does it at its end with
    /// `update="sequence"`; call it after driving `step` by hand.
    fn apply_updates(&self, py: Python<'_>) -> PyResult<()> {
        try_trainer!(py, self, t => eprop_core::driver::atomic(
            t,
            "lr",
            |t| {
                t.apply_pending();
                Ok(())
            },
            |_| true
        ))
    }

    /// One step. `x` (n_inputs,); with a `target` ((n_outputs,) or a class
    /// index) the gradient is accumulated and applied per `update`;
    /// `mask=False` runs the step without counting its error. Without a target
    /// the step runs without learning (its eligibility traces are tracked).
    /// Unlike the sequence methods a step is not undone when finite values
    /// overflow: an infinite or NaN output or loss raises ValueError saying so.
    /// Returns a dict with `spikes`, `output` (the readout, logits for
    /// cross-entropy) and, with a target, `loss`.
    #[pyo3(signature = (x, target=None, mask=true))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target: Option<&Bound<'py, PyAny>>,
        mask: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = vector("x", x, self.cfg.n_inputs)?;
        let no = self.cfg.n_outputs;
        let classes = self.cross_entropy();
        let target = target.map(|obj| convert::array("target", obj)).transpose()?;
        let target = target.map(|a| check::step_target("target", a, no, classes, mask)).transpose().map_err(to_py)?;
        shared::step(py, self, x, target, mask)
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
        shared::train_sequence(py, self, (inputs, targets, mask), reset)
    }

    /// Train on a batch; returns the mean loss per counted step of each
    /// sequence (B,). `inputs` (B, T, n_inputs), `targets` (B, T, n_outputs) or
    /// class indices (B, T); `mask` (T,) or (B, T). Every sequence starts from
    /// reset state. With `update="sequence"` the weights stay fixed and the
    /// mean over the batch of the summed gradients is applied once; with
    /// `"step"`/k the sequences advance together and the mean gradient is
    /// applied every k steps. Parallel over sequences (GIL released);
    /// bitwise identical for any `n_threads`. The inputs are copied once.
    #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
    fn train_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        mask: Option<&Bound<'py, PyAny>>,
        n_threads: Option<&Obj<'_>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = shared::batch_args(self, inputs, targets, mask)?;
        shared::train_batch(py, self, args, self.cfg.update, n_threads)
    }

    /// Bytes a batch of `batch_size` sequences holds besides weights and inputs.
    fn batch_memory_bytes(&self, py: Python<'_>, batch_size: &Obj<'_>) -> PyResult<usize> {
        shared::batch_memory_bytes(py, self, batch_size, Update::Sequence)
    }

    /// The e-prop gradient of the objective for one sequence (2-D inputs) or
    /// the mean over a batch (3-D), weights and state untouched: a dict with
    /// `W_in`, `W_rec`, `W_out`, `b_out` (and `loss`, the mean loss per
    /// counted step). The objective is the loss summed over time plus the rate
    /// regularization (its sequence form); with symmetric feedback this equals
    /// the gradient of the network in which z(t-1) is a constant in the
    /// recurrence and reset.
    #[pyo3(signature = (inputs, targets, *, mask=None, n_threads=None))]
    fn gradients<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        mask: Option<&Bound<'py, PyAny>>,
        n_threads: Option<&Obj<'_>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n_threads = convert::threads(n_threads)?;
        let ((x, y, m), single) = self.batch_or_sequence(inputs, targets, mask)?;
        let dtype = self.float_type();
        dtype.check_range("inputs", x.iter()).map_err(to_py)?;
        dtype.check_range("targets", y.iter()).map_err(to_py)?;
        let (g, losses) = with_trainer!(py, self, t => {
            run_in_pool(n_threads, || rsnn::gradients(&t.model, x.view(), y.view(), m.as_ref().map(|m| m.view())))
                .and_then(|r| r.map(|(g, l)| (g.parts().into_iter().map(widened).collect::<Vec<Vec<f64>>>(), l)))
        })?
        .map_err(to_py)?;
        let loss = if single { losses[0] } else { losses.iter().sum::<f64>() / losses.len() as f64 };
        if !(loss.is_finite() && eprop_core::driver::all_finite(g.iter().flatten())) {
            return Err(to_py(eprop_core::driver::overflow("inputs, targets", "the gradients")));
        }
        let d = grads_dict(py, g, &self.cfg, dtype)?;
        d.set_item("loss", loss)?;
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
        n_threads: Option<&Obj<'_>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ((x, y, m), _) = self.batch_or_sequence(inputs, targets, mask)?;
        self.float_type().check_range("targets", y.iter()).map_err(to_py)?;
        let out = shared::predict_batch_array(py, self, x, n_threads)?;
        let loss_kind = self.cfg.loss;
        let (loss, acc) =
            py.detach(|| readout::evaluate(loss_kind, out.view(), y.view(), m.as_ref().map(|m| m.view())));
        if !loss.is_finite() {
            return Err(to_py(eprop_core::driver::overflow("inputs, targets", "the loss")));
        }
        let d = PyDict::new(py);
        d.set_item("loss", loss)?;
        if let Some((a, s)) = acc {
            d.set_item("accuracy", a)?;
            d.set_item("step_accuracy", s)?;
        }
        Ok(d)
    }
}

config_getters!(
    PyRecurrentNetwork,
    /// Number of inputs (columns of a sequence's inputs).
    n_inputs,
    /// Recurrent neurons: an int, or a list with one count per layer.
    n_neurons,
    /// Number of readout units (columns of the targets).
    n_outputs,
    /// How many of the neurons (the last ones of each layer) are ALIF: an int or a list per layer.
    n_adaptive,
    /// Membrane time constant (ms).
    tau_mem,
    /// Adaptation time constant of the ALIF neurons (ms).
    tau_adapt,
    /// Threshold increase per unit of adaptation of the ALIF neurons.
    beta,
    /// Base firing threshold (membrane units; inputs enter unscaled).
    threshold,
    /// Refractory period (ms): the shortest interval between two spikes of a neuron.
    refractory,
    /// Time step (ms).
    dt,
    /// Time constant of the readout filter and of the filtered eligibility (ms).
    tau_out,
    /// `'mse'` (0.5 squared error) or `'cross_entropy'` (softmax over the outputs).
    loss,
    /// How the error reaches the neurons: `'symmetric'` (W_out^T), `'random'` or `'adaptive'` (Kolen-Pollack).
    feedback,
    /// Decay per update of W_out and the feedback matrix with `feedback='adaptive'`.
    feedback_decay,
    /// Height of the pseudo-derivative (dimensionless).
    surrogate_height,
    /// Strength of the firing-rate regularization (0: none).
    reg_rate,
    /// Firing rate the regularization pulls toward (Hz).
    target_rate,
    /// Time constant of the running rate of online regularization (ms).
    tau_reg,
    /// `'adam'` or `'sgd'`.
    optimizer,
    /// Seed of the initial weights and random feedback.
    seed,
    /// Learning rate (settable; with Adam, the size of each update).
    lr,
    /// Eligibility kernel: `'dense'`, `'event'` or `'auto'`.
    kernel,
    /// `'float64'` or `'float32'`: the precision of weights, state and arithmetic.
    dtype,
);

float_setters!(PyRecurrentNetwork, { lr / set_lr => non_negative });

array_getters!(
    PyRecurrentNetwork,
    /// Readout weights (n_outputs, n_neurons of the last layer); settable.
    W_out,
    /// Readout biases (n_outputs,); settable.
    b_out,
);

array_setters!(PyRecurrentNetwork, { W_out / set_w_out, b_out / set_b_out });

impl PyRecurrentNetwork {
    /// The array `name` of every layer, read at once: the array itself for a
    /// one-layer network, a list (one per layer) for several.
    fn layer_array<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Obj<'py>> {
        let nl = self.cfg.layers.len();
        let arrays = with_trainer!(py, self, t => (0..nl).map(|l| t.array(&layer_key(name, l))).collect::<Vec<_>>())?;
        let mut out = Vec::with_capacity(nl);
        for (l, a) in arrays.into_iter().enumerate() {
            out.push(convert::named_array(py, &layer_key(name, l), a, self.float_type())?);
        }
        match nl {
            1 => Ok(out.pop().expect("one layer")),
            _ => Ok(PyList::new(py, out)?.into_any()),
        }
    }

    /// Replaces the array `name` of every layer: an array for a one-layer
    /// network, a list of one array per layer for several (all checked
    /// before any is set).
    fn set_layer_array(&self, py: Python<'_>, name: &str, value: &Obj<'_>) -> PyResult<()> {
        if self.cfg.layers.len() == 1 {
            return self.set_named_array(py, name, value);
        }
        let list = convert::array_list(name, value)?;
        try_trainer!(py, self, t => t.set_layers(name, list))
    }
}

/// Properties of the per-layer arrays, `name / setter` for the weights.
macro_rules! layer_arrays {
    ($($(#[$m:meta])* $name:ident),* ; $($w:ident / $setter:ident),* $(,)?) => {
        #[pymethods]
        impl PyRecurrentNetwork {
            $(
                $(#[$m])*
                #[getter]
                #[allow(non_snake_case)]
                fn $name<'py>(&self, py: Python<'py>) -> PyResult<Obj<'py>> {
                    self.layer_array(py, stringify!($name))
                }
            )*
            $(
                #[setter($w)]
                fn $setter(&self, py: Python<'_>, value: &Obj<'_>) -> PyResult<()> {
                    self.set_layer_array(py, stringify!($w), value)
                }
            )*
        }
    };
}

layer_arrays!(
    /// Input weights (n_neurons, n_inputs); a list per layer for a stack (layer l >= 1 reads layer l - 1's spikes). Settable.
    W_in,
    /// Recurrent weights (n_neurons, n_neurons), zero diagonal; a list per layer for a stack. Settable.
    W_rec,
    /// Feedback matrix B (n_neurons, n_outputs) carrying the error to the neurons; a list per layer for a stack. Settable.
    feedback_matrix,
    /// Membrane potentials (n_neurons,) now; a list per layer for a stack.
    _v,
    /// Adaptation variables (n_neurons,) now (zero for LIF neurons).
    _a,
    /// Spikes (n_neurons,) of the last step, 0 or 1.
    _spikes;
    W_in / set_w_in, W_rec / set_w_rec, feedback_matrix / set_feedback_matrix);

trainer_methods!(PyRecurrentNetwork);
change_methods!(PyRecurrentNetwork);
