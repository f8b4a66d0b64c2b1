//! Reading `state_dict`s: typed access to the entries with messages that name
//! the key, and the header (format version, class) every trainer checks.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::value_error;

/// Version of a class's `state_dict` layout (also stored in checkpoint
/// files). RecurrentNetwork's is 2 since eprop 0.2 (normalized readout
/// filter, refractory period, online regularization); the seed classes' is 1.
pub fn format_version(class: &str) -> i64 {
    match class {
        "RecurrentNetwork" => 2,
        _ => 1,
    }
}

pub fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| value_error(format!("state_dict: expected key '{key}', it is missing")))
}

pub fn f64_of(d: &Bound<'_, PyDict>, key: &str) -> PyResult<f64> {
    item(d, key)?
        .extract::<f64>()
        .map_err(|e| value_error(format!("state_dict['{key}']: expected a float, {e}")))
}

pub fn i64_of(d: &Bound<'_, PyDict>, key: &str) -> PyResult<i64> {
    let v = item(d, key)?;
    let v = v.call_method0("__index__").unwrap_or(v);
    v.extract::<i64>()
        .map_err(|e| value_error(format!("state_dict['{key}']: expected an integer, {e}")))
}

/// Checks `format_version` and `class`.
pub fn check_header(d: &Bound<'_, PyDict>, class: &str) -> PyResult<()> {
    let got = item(d, "class")?.str()?.to_string();
    if got != class {
        return Err(value_error(format!(
            "state_dict['class']: expected '{class}', got '{got}'"
        )));
    }
    let version = i64_of(d, "format_version")?;
    let expected = format_version(class);
    if version != expected {
        return Err(value_error(format!(
            "state_dict['format_version']: expected {expected} for {class}, got {version}"
        )));
    }
    Ok(())
}

/// Checks that a size stored in `d` equals the trainer's.
pub fn check_size(d: &Bound<'_, PyDict>, key: &str, expected: usize) -> PyResult<()> {
    let got = i64_of(d, key)?;
    if got != expected as i64 {
        return Err(value_error(format!(
            "state_dict['{key}']: expected {expected} (this trainer's size), got {got}"
        )));
    }
    Ok(())
}

/// A new dict with the header filled in.
pub fn new_state<'py>(py: Python<'py>, class: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("format_version", format_version(class))?;
    d.set_item("class", class)?;
    Ok(d)
}

/// `__reduce__` for pickle and copy: `eprop._checkpoint.restore(class, state)`.
pub fn reduce<'py>(slf: &Bound<'py, PyAny>, class: &str) -> PyResult<Bound<'py, PyTuple>> {
    let py = slf.py();
    let restore = py.import("eprop._checkpoint")?.getattr("restore")?;
    let state = slf.call_method0("state_dict")?;
    PyTuple::new(
        py,
        [
            restore,
            PyTuple::new(py, [class.into_pyobject(py)?.into_any(), state])?.into_any(),
        ],
    )
}

/// `save(path)` through `eprop._checkpoint.save`.
pub fn save(slf: &Bound<'_, PyAny>, path: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = slf.py();
    py.import("eprop._checkpoint")?
        .getattr("save")?
        .call1((slf, path))?;
    Ok(())
}

/// `load(path)` through `eprop._checkpoint.load`.
pub fn load<'py>(cls: &Bound<'py, PyAny>, path: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    py.import("eprop._checkpoint")?
        .getattr("load")?
        .call1((cls, path))
}
