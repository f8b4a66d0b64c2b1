//! PyO3 bindings of eprop: the native module `eprop._core`. Arguments are
//! extracted and validated with the GIL held, copied into owned arrays, and the
//! work runs in `eprop-core` with the GIL released.

use pyo3::prelude::*;

mod batch;
mod checkpoint;
mod convert;
mod rsnn;
mod seed_eprop;
mod seed_online;
mod stream;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<seed_eprop::PyEpropTrainer>()?;
    m.add_class::<seed_online::PyOnlineLIFLayer>()?;
    m.add_class::<seed_online::PyOnlineTrainer>()?;
    m.add_class::<rsnn::PyRecurrentNetwork>()?;
    m.add_class::<stream::PredictStream>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
