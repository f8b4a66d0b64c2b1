//! `eprop._core.OnlineLIFLayer` and `eprop._core.OnlineTrainer`: the seed's
//! feedforward online trainer (the math is `eprop_core::models::seed_online`).
//!
//! A layer either owns its state or is a live view of one layer of an
//! `OnlineTrainer` (what `trainer.layers` hands out): reading `W` or `_v` shows
//! the trainer's current state and writing `W` changes it.

use eprop_core::kernels::flat;
use eprop_core::models::seed_online::{self, SeedLayerConfig, SeedOnline, SeedOnlineConfig};
use eprop_core::npz;
use eprop_core::real::{rounded, widened, Dtype};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{self, field, integer, real, size, state_to_dict, text, vector};
use crate::errors::to_py;
use crate::shared::{
    array_getters, array_setters, change_methods, config_getters, float_setters, py_trainer, seed_train_methods,
    trainer_methods, try_dual, with_dual, Dual, Obj, PyTrainer,
};
use eprop_core::driver::Described;
use eprop_core::state::Stateful;

/// Single LIF layer with online (eligibility-based) learning (the native part
/// of `eprop.OnlineLIFLayer`, built from an `OnlineLIFLayerConfig`, or a view
/// of a layer of an `OnlineTrainer`). A layer of its own is a stack of one
/// layer; a view shares its trainer's. The trace decays by the seed's fixed
/// 0.95 per step. `W` and the state read as read-only copies; assign a whole
/// array to `W`.
#[pyclass(frozen, subclass, module = "eprop._core", name = "OnlineLIFLayer")]
pub struct PyOnlineLIFLayer {
    stack: Dual<SeedOnline<f64>, SeedOnline<f32>>,
    index: usize,
    /// (n_inputs, n_neurons)
    dims: (usize, usize),
}

fn layer_config(c: &Bound<'_, PyAny>) -> PyResult<(SeedLayerConfig, u32, Dtype)> {
    let cfg = SeedLayerConfig::new(
        "OnlineLIFLayer",
        (field(c, "n_inputs", size)?, field(c, "n_neurons", size)?),
        field(c, "tau_mem", real)?,
        field(c, "threshold", real)?,
        field(c, "lr", real)?,
        field(c, "dt", real)?,
    )
    .map_err(to_py)?;
    let seed = eprop_core::check::seed(field(c, "seed", integer)?).map_err(to_py)?;
    let dtype = Dtype::parse(&field(c, "dtype", text)?).map_err(to_py)?;
    cfg.check_dtype(dtype).map_err(to_py)?;
    Ok((cfg, seed, dtype))
}

impl PyOnlineLIFLayer {
    fn with_config<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut SeedLayerConfig) -> R + Send) -> PyResult<R> {
        let i = self.index;
        with_dual!(py, &self.stack, t => f(&mut t.layer_mut(i).0.cfg))
    }

    /// A new value of hyperparameter `name`, checked for the float type.
    fn check_hyper(&self, name: &str, v: f64) -> PyResult<()> {
        self.stack.dtype().check_hypers(&[(name, v)]).map_err(to_py)
    }

    fn state<'py>(&self, py: Python<'py>) -> PyResult<eprop_core::state::StateDict> {
        let i = self.index;
        with_dual!(py, &self.stack, t => seed_online::layer_state(t, i))
    }

    /// One hyperparameter by name (a view reports its trainer's seed).
    fn config_value<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Obj<'py>> {
        let i = self.index;
        let d = with_dual!(py, &self.stack, t => seed_online::layer_config(t, i))?;
        convert::value_to_py(py, d.get(name).map_err(to_py)?)
    }

    /// Replaces the weights `W` of the layer.
    fn set_named_array(&self, py: Python<'_>, name: &str, value: &Obj<'_>) -> PyResult<()> {
        let a = convert::array(name, value)?;
        let i = self.index;
        try_dual!(py, &self.stack, t => seed_online::layer_set_array(t, i, name, a))
    }

    /// One array (`W`, `_v`, `_spikes`, `_trace`) by name, as a read-only copy.
    fn named_array<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Obj<'py>> {
        let i = self.index;
        let a = with_dual!(py, &self.stack, t => seed_online::layer_array(t, i, name))?;
        convert::named_array(py, name, a, self.stack.dtype())
    }
}

#[pymethods]
impl PyOnlineLIFLayer {
    /// A layer from a configuration, or (`view_of`, `index`) a live view of
    /// layer `index` of an `OnlineTrainer`.
    #[new]
    #[pyo3(signature = (config_obj, view_of=None, index=0))]
    fn new(
        config_obj: &Bound<'_, PyAny>,
        view_of: Option<&Bound<'_, PyOnlineTrainer>>,
        index: usize,
    ) -> PyResult<Self> {
        if let Some(trainer) = view_of {
            let sizes = &trainer.get().sizes;
            if index + 1 >= sizes.len() {
                return Err(crate::errors::value_error(format!(
                    "index: expected a layer index in [0, {}], got {index}",
                    sizes.len() - 2
                )));
            }
            let stack = trainer.get().inner.share();
            return Ok(PyOnlineLIFLayer { stack, index, dims: (sizes[index], sizes[index + 1]) });
        }
        let (cfg, seed, dtype) = layer_config(config_obj)?;
        let dims = (cfg.n_inputs, cfg.n_neurons);
        let c32 = cfg.clone();
        let stack = Dual::new(
            dtype == Dtype::F32,
            || SeedOnline::single(cfg, seed, dtype),
            || SeedOnline::single(c32, seed, dtype),
        );
        Ok(PyOnlineLIFLayer { stack, index: 0, dims })
    }

    /// Checks a configuration (the messages of the constructor).
    #[staticmethod]
    fn _validate(config_obj: &Bound<'_, PyAny>) -> PyResult<()> {
        layer_config(config_obj).map(|_| ())
    }

    /// Reset membrane, spikes and trace to zero.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        let i = self.index;
        with_dual!(py, &self.stack, t => t.layer_mut(i).1.reset())
    }

    /// Forward one timestep with input `x` (n_inputs,); returns the spikes (n_neurons,).
    fn step<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = vector("x", x, self.dims.0)?;
        let dtype = self.stack.dtype();
        dtype.check_range("x", x.iter()).map_err(to_py)?;
        let i = self.index;
        let z = try_dual!(py, &self.stack, t => {
            let (layer, state) = t.layer_mut(i);
            layer.step(state, &rounded(x.as_slice().unwrap_or(&[])));
            match eprop_core::driver::all_finite(&state.v) {
                true => Ok(widened(flat(&state.z))),
                false => Err(eprop_core::driver::overflow_in_step("x")),
            }
        })?;
        Ok(convert::vec_out(py, z, dtype))
    }

    /// Apply a top-down learning signal (n_neurons,): `W -= lr * signal[:, None] * trace`.
    fn apply_learning_signal(&self, py: Python<'_>, signal: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = vector("signal", signal, self.dims.1)?;
        self.stack.dtype().check_range("signal", s.iter()).map_err(to_py)?;
        let i = self.index;
        try_dual!(py, &self.stack, t => {
            let (layer, state) = t.layer_mut(i);
            layer.apply_learning_signal(state, &rounded(s.as_slice().unwrap_or(&[])));
            match eprop_core::driver::all_finite(&layer.w) {
                true => Ok(()),
                false => Err(eprop_core::driver::overflow_in_step("signal")),
            }
        })
    }

    /// Hyperparameters, weights and state (fresh arrays), to resume exactly.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        state_to_dict(py, &self.state(py)?)
    }

    /// Replace hyperparameters, weights and state by those of `state` (sizes
    /// must match); checked first, a rejected dict changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let d = convert::dict_to_state(state)?;
        let i = self.index;
        try_dual!(py, &self.stack, t => seed_online::load_layer_state(t, i, &d).map_err(eprop_core::state::in_state))
    }

    /// The constructor arguments stored in a `state_dict` (whose class and
    /// format version are checked first).
    #[staticmethod]
    fn _config_of_state<'py>(state: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let d = convert::dict_to_state(state)?;
        state_to_dict(
            state.py(),
            &seed_online::layer_config_of_state(&d).map_err(|e| to_py(eprop_core::state::in_state(e)))?,
        )
    }

    /// Write a checkpoint file (npz, atomic).
    fn save(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let path = convert::path(path)?;
        let d = self.state(py)?;
        py.detach(|| npz::save(&path, &d)).map_err(to_py)
    }
}

config_getters!(
    PyOnlineLIFLayer,
    /// Number of inputs of the layer.
    n_inputs,
    /// Number of LIF neurons of the layer.
    n_neurons,
    /// Seed of the initial weights (42: sc-neurocore's).
    seed,
    /// Membrane time constant (ms); settable.
    tau_mem,
    /// Firing threshold (membrane units); settable.
    threshold,
    /// Learning rate; settable.
    lr,
    /// Time step (ms); settable.
    dt,
    /// `'float64'` or `'float32'`.
    dtype,
);

float_setters!(PyOnlineLIFLayer, {
    tau_mem / set_tau_mem => positive,
    threshold / set_threshold => positive,
    lr / set_lr => non_negative,
    dt / set_dt => positive,
});

array_getters!(
    PyOnlineLIFLayer,
    /// Weights (n_neurons, n_inputs); settable.
    W,
    /// Membrane potentials (n_neurons,) now.
    _v,
    /// Spikes (n_neurons,) of the last step, 0 or 1.
    _spikes,
    /// Presynaptic traces (n_inputs,).
    _trace,
);

array_setters!(PyOnlineLIFLayer, { W / set_w });

/// Feedforward online trainer stacking `OnlineLIFLayer`s (the native part of
/// `eprop.OnlineTrainer`, built from an `OnlineTrainerConfig`). Every layer
/// restarts the random stream of `seed`, as the seed package does. The
/// hyperparameters are fixed at construction (each layer's `lr`, `tau_mem`,
/// `threshold` and `dt` can be changed through `layers`).
#[pyclass(frozen, subclass, module = "eprop._core", name = "OnlineTrainer")]
pub struct PyOnlineTrainer {
    inner: Dual<SeedOnline<f64>, SeedOnline<f32>>,
    sizes: Vec<usize>,
    /// (n_inputs, n_outputs)
    widths: (usize, usize),
}

fn trainer_config(c: &Bound<'_, PyAny>) -> PyResult<SeedOnlineConfig> {
    let given = c.getattr("layer_sizes")?;
    let sizes = convert::size_list("layer_sizes", &given, "a list of ints [n_input, ..., n_output]")?;
    let cfg = SeedOnlineConfig::new(
        &sizes,
        field(c, "tau_mem", real)?,
        field(c, "threshold", real)?,
        field(c, "lr", real)?,
        field(c, "seed", integer)?,
    )
    .map_err(to_py)?;
    cfg.with_dtype(Dtype::parse(&field(c, "dtype", text)?).map_err(to_py)?).map_err(to_py)
}

py_trainer!(PyOnlineTrainer, SeedOnline<f64>, SeedOnline<f32>);

#[pymethods]
impl PyOnlineTrainer {
    #[new]
    fn new(config_obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let cfg = trainer_config(config_obj)?;
        let sizes = cfg.layer_sizes.clone();
        let widths = (sizes[0], sizes[sizes.len() - 1]);
        let c32 = cfg.clone();
        let inner = Dual::new(cfg.dtype == Dtype::F32, || SeedOnline::new(cfg), || SeedOnline::new(c32));
        Ok(PyOnlineTrainer { inner, sizes, widths })
    }

    /// Checks a configuration (the messages of the constructor).
    #[staticmethod]
    fn _validate(config_obj: &Bound<'_, PyAny>) -> PyResult<()> {
        trainer_config(config_obj).map(|_| ())
    }

    /// Sizes `[n_input, n_hidden..., n_output]`.
    #[getter]
    fn layer_sizes(&self) -> Vec<usize> {
        self.sizes.clone()
    }

    /// Number of layers (`len(layer_sizes) - 1`).
    #[getter]
    fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }
}

config_getters!(
    PyOnlineTrainer,
    /// Membrane time constant of every layer (ms), as built.
    tau_mem,
    /// Firing threshold of every layer, as built.
    threshold,
    /// Learning rate of every layer, as built.
    lr,
    /// Seed of the initial weights (42: sc-neurocore's).
    seed,
    /// `'float64'` or `'float32'`.
    dtype,
);

trainer_methods!(PyOnlineTrainer);
change_methods!(PyOnlineTrainer);
seed_train_methods!(PyOnlineTrainer);
