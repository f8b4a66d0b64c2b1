//! PyO3 bindings of eprop: the native module `eprop._core`. This crate only
//! converts: arguments are extracted once (arrays copied once into owned
//! float64 arrays), the core checks and computes with the GIL released, and
//! its errors map to Python exceptions in one place (`errors`). The methods
//! every class shares are written once (`shared`); the class files hold
//! constructors, properties and the methods of their own.

use pyo3::prelude::*;

mod convert;
mod errors;
mod rsnn;
mod seed_eprop;
mod seed_online;
mod shared;
mod stream;

/// Reads a checkpoint file into a state dict (no pickle, no code runs).
#[pyfunction]
fn read_checkpoint<'py>(py: Python<'py>, path: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let path = convert::path(path)?;
    let d = py.detach(|| eprop_core::npz::load(&path)).map_err(errors::to_py)?;
    convert::state_to_dict(py, &d)
}

/// How this build runs here: the instruction set of the hot loops, the
/// floating-point types, the size of the default thread pool, the build
/// profile (for `python -m eprop info`).
#[pyfunction]
fn _build_info(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    d.set_item("simd", eprop_core::kernels::simd_path())?;
    d.set_item("dtypes", ["float64", "float32"])?;
    let threads = eprop_core::pool::pool(0).map_err(errors::to_py)?.current_num_threads();
    d.set_item("threads", threads)?;
    d.set_item("profile", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    d.set_item("target", format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))?;
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<seed_eprop::PyEpropTrainer>()?;
    m.add_class::<seed_online::PyOnlineLIFLayer>()?;
    m.add_class::<seed_online::PyOnlineTrainer>()?;
    m.add_class::<rsnn::PyRecurrentNetwork>()?;
    m.add_function(wrap_pyfunction!(read_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(_build_info, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
