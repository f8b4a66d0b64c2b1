//! Conversions at the Python boundary: array extraction with clear errors,
//! read-only copies out, the core error mapped to Python exceptions, and the
//! lock-with-the-GIL-released helper every trainer uses.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use eprop_core::error::fmt_shape;
use eprop_core::EpropError;
use numpy::ndarray::{Array1, Array2, ArrayD, Ix1, Ix2, Ix3};
use numpy::{PyArray, PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyFloat, PyString};

/// Maps a core error to `ValueError` (`MemoryError` for impossible sizes).
pub fn to_py(e: EpropError) -> PyErr {
    match e {
        EpropError::Memory { .. } => PyMemoryError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Locks a trainer's mutex. A poisoned lock (only possible after a bug made
/// Rust panic) is still usable: every mutation is validated before it starts.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the locked value with the GIL released. A panic (a bug) comes
/// back as `RuntimeError`, never as a `PanicException`.
pub fn locked<T: Send, R: Send>(
    py: Python<'_>,
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> R + Send,
) -> PyResult<R> {
    py.detach(|| {
        let mut g = lock(m);
        catch_unwind(AssertUnwindSafe(|| f(&mut g)))
    })
    .map_err(|_| {
        PyRuntimeError::new_err("eprop: internal error (a Rust panic was caught); please report it")
    })
}

static ASARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Converts any array-like to an owned float64 array in standard (C) layout,
/// copying a float64 array once. Accepts float64 arrays of any layout, other
/// float/int/bool arrays, lists and scalars; anything non-numeric is a
/// `TypeError` naming `arg`. Values are not checked here.
pub fn extract_f64(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<ArrayD<f64>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        let ro = a
            .try_readonly()
            .map_err(|e| value_error(format!("{arg}: {e}")))?;
        return Ok(ro.as_array().as_standard_layout().into_owned());
    }
    let py = obj.py();
    let asarray = ASARRAY.import(py, "numpy", "asarray")?;
    let arr = asarray.call1((obj,)).map_err(|e| {
        value_error(format!(
            "{arg}: expected a numeric array, could not convert it: {e}"
        ))
    })?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "b" | "i" | "u" | "f") {
        let dtype = arr.getattr("dtype")?.str()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected a numeric array (bool, int or float), got dtype {dtype}"
        )));
    }
    let converted = arr.call_method1("astype", ("float64",))?;
    let a = converted.cast::<PyArrayDyn<f64>>().map_err(PyErr::from)?;
    let ro = a
        .try_readonly()
        .map_err(|e| value_error(format!("{arg}: {e}")))?;
    Ok(ro.as_array().as_standard_layout().into_owned())
}

fn shape_error(arg: &str, expected: String, got: &[usize]) -> PyErr {
    to_py(EpropError::shape(arg, expected, fmt_shape(got)))
}

/// Extracts a vector of length `n`, finite.
pub fn vector(arg: &str, obj: &Bound<'_, PyAny>, n: usize) -> PyResult<Array1<f64>> {
    let a = extract_f64(arg, obj)?;
    vector_of(arg, a, n)
}

/// [`vector`] on an array already extracted.
pub fn vector_of(arg: &str, a: ArrayD<f64>, n: usize) -> PyResult<Array1<f64>> {
    let shape = a.shape().to_vec();
    let v = a
        .into_dimensionality::<Ix1>()
        .map_err(|_| shape_error(arg, fmt_shape(&[n]), &shape))?;
    if v.len() != n {
        return Err(shape_error(arg, fmt_shape(&[n]), &shape));
    }
    eprop_core::error::check_finite(arg, v.as_slice().unwrap_or(&[]), &shape).map_err(to_py)?;
    Ok(v)
}

/// Extracts a 2-D array; `width` is the required number of columns
/// (`rows` the required rows when given). Values are checked finite.
pub fn matrix(
    arg: &str,
    obj: &Bound<'_, PyAny>,
    rows: Option<usize>,
    width: usize,
) -> PyResult<Array2<f64>> {
    matrix_of(arg, extract_f64(arg, obj)?, rows, width)
}

/// [`matrix`] on an array already extracted.
pub fn matrix_of(
    arg: &str,
    a: ArrayD<f64>,
    rows: Option<usize>,
    width: usize,
) -> PyResult<Array2<f64>> {
    let shape = a.shape().to_vec();
    let expected = format!(
        "({}, {width})",
        rows.map_or("T".to_string(), |r| r.to_string())
    );
    let m = a
        .into_dimensionality::<Ix2>()
        .map_err(|_| shape_error(arg, expected.clone(), &shape))?;
    if m.ncols() != width || rows.is_some_and(|r| r != m.nrows()) {
        return Err(shape_error(arg, expected, &shape));
    }
    eprop_core::error::check_finite(arg, m.as_slice().unwrap_or(&[]), &shape).map_err(to_py)?;
    Ok(m)
}

/// Extracts a 3-D batch (B, T, width), finite; `bt` fixes (B, T) when given.
pub fn batch(
    arg: &str,
    obj: &Bound<'_, PyAny>,
    bt: Option<(usize, usize)>,
    width: usize,
) -> PyResult<numpy::ndarray::Array3<f64>> {
    batch_of(arg, extract_f64(arg, obj)?, bt, width)
}

/// [`batch`] on an array already extracted.
pub fn batch_of(
    arg: &str,
    a: ArrayD<f64>,
    bt: Option<(usize, usize)>,
    width: usize,
) -> PyResult<numpy::ndarray::Array3<f64>> {
    let shape = a.shape().to_vec();
    let expected = match bt {
        Some((b, t)) => format!("({b}, {t}, {width})"),
        None => format!("(B, T, {width})"),
    };
    let m = a
        .into_dimensionality::<Ix3>()
        .map_err(|_| shape_error(arg, expected.clone(), &shape))?;
    let (b, t, w) = m.dim();
    if w != width || bt.is_some_and(|bt| bt != (b, t)) {
        return Err(shape_error(arg, expected, &shape));
    }
    eprop_core::error::check_finite(arg, m.as_slice().unwrap_or(&[]), &shape).map_err(to_py)?;
    Ok(m)
}

/// A read-only NumPy copy of `a` (writing to it raises instead of being lost).
pub fn readonly<'py, D: numpy::ndarray::Dimension>(
    py: Python<'py>,
    a: numpy::ndarray::Array<f64, D>,
) -> Bound<'py, PyAny> {
    let arr = PyArray::from_owned_array(py, a);
    let ro = arr.readwrite().make_nonwriteable();
    let any = ro.as_any().clone();
    drop(ro);
    any
}

/// Python's `repr` of a float (`20.0`, `0.01`, `1e-05`).
pub fn float_repr(py: Python<'_>, x: f64) -> PyResult<String> {
    Ok(PyFloat::new(py, x).repr()?.to_string())
}

/// Checks a user seed fits `RandomState` (0 <= seed < 2**32).
pub fn check_seed(seed: i128) -> PyResult<u32> {
    u32::try_from(seed).map_err(|_| {
        value_error(format!(
            "seed: expected an integer in [0, 2**32 - 1], got {seed}"
        ))
    })
}

/// A float hyperparameter as given: its value and its `repr` (so that `repr`
/// of a trainer shows `tau_mem=10` when 10 was passed, as a dataclass does).
pub struct Hyper {
    pub value: f64,
    pub repr: String,
}

impl Hyper {
    /// A default value.
    pub fn of(value: f64) -> Self {
        Hyper {
            value,
            repr: String::new(),
        }
    }

    /// Reads a real number; `TypeError` naming `name` otherwise.
    pub fn parse(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bad = || {
            let ty = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            let prefix = if name.is_empty() {
                String::new()
            } else {
                format!("{name}: ")
            };
            PyTypeError::new_err(format!("{prefix}expected a real number, got {ty}"))
        };
        if obj.is_instance_of::<PyString>() {
            return Err(bad());
        }
        let value: f64 = obj.extract().map_err(|_| bad())?;
        Ok(Hyper {
            value,
            repr: obj.repr()?.to_string(),
        })
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Hyper {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Hyper::parse("", &obj.to_owned())
    }
}

/// The `repr` texts of a trainer's float hyperparameters, each kept with the
/// value it was given for; a value changed since (by `load_state_dict`) shows
/// as Python shows that float.
pub struct Shown(Mutex<Vec<(f64, String)>>);

impl Shown {
    pub fn new(items: &[&Hyper]) -> Self {
        Shown(Mutex::new(
            items.iter().map(|h| (h.value, h.repr.clone())).collect(),
        ))
    }

    pub fn set(&self, idx: usize, h: &Hyper) {
        if let Some(slot) = lock(&self.0).get_mut(idx) {
            *slot = (h.value, h.repr.clone());
        }
    }

    pub fn show(&self, py: Python<'_>, idx: usize, current: f64) -> PyResult<String> {
        let kept = lock(&self.0).get(idx).cloned();
        match kept {
            Some((v, r)) if !r.is_empty() && v.to_bits() == current.to_bits() => Ok(r),
            _ => float_repr(py, current),
        }
    }
}
