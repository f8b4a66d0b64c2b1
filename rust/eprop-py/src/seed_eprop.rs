//! `eprop._core.EpropTrainer`: the seed's single-layer recurrent e-prop
//! trainer (the math is `eprop_core::models::seed_eprop`). The public class,
//! `eprop.EpropTrainer`, adds the dataclass-style constructor and repr.

use eprop_core::event::Kernel;
use eprop_core::models::seed_eprop::{SeedEpropConfig, SeedEpropNet};
use eprop_core::real::Dtype;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{field, integer, real, size, text};
use crate::errors::to_py;
use crate::shared::{
    array_getters, array_setters, change_methods, config_getters, float_setters, py_trainer, seed_train_methods,
    trainer_methods, Dual, Obj, PyTrainer,
};
use eprop_core::driver::Described;
use eprop_core::state::Stateful;

/// E-prop online trainer for a single-layer recurrent SNN (the native part of
/// `eprop.EpropTrainer`, built from an `EpropTrainerConfig`).
///
/// Weights and state read as read-only NumPy copies; assign a whole array to
/// change a weight matrix (shape and finiteness are checked; W_rec's diagonal
/// is kept at zero). Every method is atomic: the trainer may be shared between
/// threads, calls are serialized, and the work runs with the GIL released.
#[pyclass(frozen, subclass, module = "eprop._core", name = "EpropTrainer")]
pub struct PyEpropTrainer {
    inner: Dual<SeedEpropNet<f64>, SeedEpropNet<f32>>,
    /// (n_inputs, n_outputs)
    widths: (usize, usize),
}

/// The core configuration of a configuration object (checked by the core).
fn config(c: &Bound<'_, PyAny>) -> PyResult<SeedEpropConfig> {
    let mut cfg = SeedEpropConfig::new(
        (field(c, "n_inputs", size)?, field(c, "n_neurons", size)?, field(c, "n_outputs", size)?),
        field(c, "tau_mem", real)?,
        field(c, "tau_trace", real)?,
        field(c, "threshold", real)?,
        field(c, "lr", real)?,
        field(c, "dt", real)?,
        field(c, "seed", integer)?,
    )
    .map_err(to_py)?;
    cfg.kernel = Kernel::parse(&field(c, "kernel", text)?).map_err(to_py)?;
    cfg.with_dtype(Dtype::parse(&field(c, "dtype", text)?).map_err(to_py)?).map_err(to_py)
}

py_trainer!(PyEpropTrainer, SeedEpropNet<f64>, SeedEpropNet<f32>);

#[pymethods]
impl PyEpropTrainer {
    #[new]
    fn new(config_obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let cfg = config(config_obj)?;
        let widths = (cfg.n_inputs, cfg.n_outputs);
        let f32 = cfg.dtype == Dtype::F32;
        let c64 = cfg.clone();
        Ok(PyEpropTrainer { inner: Dual::new(f32, || SeedEpropNet::new(c64), || SeedEpropNet::new(cfg)), widths })
    }

    /// Checks a configuration (the messages of the constructor).
    #[staticmethod]
    fn _validate(config_obj: &Bound<'_, PyAny>) -> PyResult<()> {
        config(config_obj).map(|_| ())
    }
}

config_getters!(
    PyEpropTrainer,
    /// Number of inputs (columns of a sequence's inputs).
    n_inputs,
    /// Number of recurrent LIF neurons.
    n_neurons,
    /// Number of readout units (columns of the targets).
    n_outputs,
    /// Seed of the initial weights (42: sc-neurocore's).
    seed,
    /// Membrane time constant (ms); settable.
    tau_mem,
    /// Time constant of the eligibility traces (ms); settable.
    tau_trace,
    /// Firing threshold (membrane units); settable.
    threshold,
    /// Learning rate; settable.
    lr,
    /// Time step (ms); settable.
    dt,
    /// `'dense'`, `'event'` or `'auto'` (`train_sequence` and `train_stream`).
    kernel,
    /// `'float64'` or `'float32'`.
    dtype,
);

float_setters!(PyEpropTrainer, {
    tau_mem / set_tau_mem => positive,
    tau_trace / set_tau_trace => positive,
    threshold / set_threshold => positive,
    lr / set_lr => non_negative,
    dt / set_dt => positive,
});

array_getters!(
    PyEpropTrainer,
    /// Input weights (n_neurons, n_inputs); settable.
    W_in,
    /// Recurrent weights (n_neurons, n_neurons); settable.
    W_rec,
    /// Readout weights (n_outputs, n_neurons); settable.
    W_out,
    /// Membrane potentials (n_neurons,) now.
    _v,
    /// Spikes (n_neurons,) of the last step, 0 or 1.
    _spikes,
    /// Presynaptic traces of the inputs (n_inputs,).
    _trace_in,
    /// Presynaptic traces of the neurons (n_neurons,).
    _trace_rec,
    /// Eligibility of the input synapses (n_neurons, n_inputs).
    _eligibility_in,
    /// Eligibility of the recurrent synapses (n_neurons, n_neurons).
    _eligibility_rec,
);

array_setters!(PyEpropTrainer, { W_in / set_w_in, W_rec / set_w_rec, W_out / set_w_out });

trainer_methods!(PyEpropTrainer);
change_methods!(PyEpropTrainer);
seed_train_methods!(PyEpropTrainer);
