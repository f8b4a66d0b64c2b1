//! Conversions at the Python boundary, each written once: arrays in (one
//! copy into an owned float64 array), arrays out (read-only copies), scalars,
//! schedules, paths, and `state_dict`s both ways. Checks of values are the
//! core's (`eprop_core::check`); the messages are its messages.

use std::path::PathBuf;

use eprop_core::check;
use eprop_core::driver::Update;
use eprop_core::real::Dtype;
use eprop_core::state::{StateDict, Value};
use numpy::ndarray::{Array1, Array2, Array3, ArrayD};
use numpy::{Element, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};

use crate::errors::{to_py, value_error};

static ASARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A NumPy array of element type `T`, converted in one pass, if `obj` is one.
fn typed<T: Element + Copy>(arg: &str, obj: &Bound<'_, PyAny>, f: fn(T) -> f64) -> Option<PyResult<ArrayD<f64>>> {
    let a = obj.cast::<PyArrayDyn<T>>().ok()?;
    Some(a.try_readonly().map_err(|e| value_error(format!("{arg}: {e}"))).map(|ro| {
        let v = ro.as_array();
        ArrayD::from_shape_vec(v.raw_dim(), v.iter().map(|&x| f(x)).collect()).expect("shape of the view")
    }))
}

/// Any array-like as an owned float64 array in standard (C) layout. A NumPy
/// array of float64, float32, a signed or unsigned integer type, or bool is
/// copied exactly once; lists and scalars go through `numpy.asarray`;
/// anything non-numeric is a `TypeError` naming `arg`. Values are not checked.
pub fn array(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<ArrayD<f64>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        let ro = a.try_readonly().map_err(|e| value_error(format!("{arg}: {e}")))?;
        return Ok(ro.as_array().as_standard_layout().into_owned());
    }
    let direct = typed::<f32>(arg, obj, f64::from)
        .or_else(|| typed::<i64>(arg, obj, |x| x as f64))
        .or_else(|| typed::<i32>(arg, obj, f64::from))
        .or_else(|| typed::<i16>(arg, obj, f64::from))
        .or_else(|| typed::<i8>(arg, obj, f64::from))
        .or_else(|| typed::<u64>(arg, obj, |x| x as f64))
        .or_else(|| typed::<u32>(arg, obj, f64::from))
        .or_else(|| typed::<u16>(arg, obj, f64::from))
        .or_else(|| typed::<u8>(arg, obj, f64::from))
        .or_else(|| typed::<bool>(arg, obj, |x| f64::from(u8::from(x))));
    if let Some(r) = direct {
        return r;
    }
    let asarray = ASARRAY.import(obj.py(), "numpy", "asarray")?;
    let arr = asarray
        .call1((obj,))
        .map_err(|e| value_error(format!("{arg}: expected a numeric array, could not convert it: {e}")))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "b" | "i" | "u" | "f") {
        let dtype = arr.getattr("dtype")?.str()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected a numeric array (bool, int or float), got dtype {dtype}"
        )));
    }
    // a list or scalar turned into an array, or a dtype without a direct
    // path (float16, longdouble): convert that
    let arr = if arr.is(obj) { arr.call_method1("astype", ("float64",))? } else { arr };
    array(arg, &arr)
}

/// A vector of length `n`, finite.
pub fn vector(arg: &str, obj: &Bound<'_, PyAny>, n: usize) -> PyResult<Array1<f64>> {
    check::into_vector(arg, array(arg, obj)?, n).map_err(to_py)
}

/// A (rows, width) matrix (any rows when `None`), finite.
pub fn matrix(arg: &str, obj: &Bound<'_, PyAny>, rows: Option<usize>, width: usize) -> PyResult<Array2<f64>> {
    check::into_matrix(arg, array(arg, obj)?, rows, width).map_err(to_py)
}

/// A (B, T, width) batch ((B, T) fixed when given), finite.
pub fn batch(arg: &str, obj: &Bound<'_, PyAny>, bt: Option<(usize, usize)>, width: usize) -> PyResult<Array3<f64>> {
    check::into_batch(arg, array(arg, obj)?, bt, width).map_err(to_py)
}

/// A read-only NumPy copy of `a` (writing to it raises instead of being
/// lost), in `dtype` (a float32 network's values are exact in both).
pub fn readonly<'py, D: numpy::ndarray::Dimension>(
    py: Python<'py>,
    a: numpy::ndarray::Array<f64, D>,
    dtype: Dtype,
) -> Bound<'py, PyAny> {
    fn frozen<'py, T: Element, D: numpy::ndarray::Dimension>(
        py: Python<'py>,
        a: numpy::ndarray::Array<T, D>,
    ) -> Bound<'py, PyAny> {
        let arr = PyArray::from_owned_array(py, a);
        let ro = arr.readwrite().make_nonwriteable();
        let any = ro.as_any().clone();
        drop(ro);
        any
    }
    match dtype {
        Dtype::F64 => frozen(py, a),
        Dtype::F32 => frozen(py, a.mapv(|v| v as f32)),
    }
}

/// A fresh (writable) NumPy array of `a` in `dtype`.
pub fn array_out<'py, D: numpy::ndarray::Dimension>(
    py: Python<'py>,
    a: numpy::ndarray::Array<f64, D>,
    dtype: Dtype,
) -> Bound<'py, PyAny> {
    match dtype {
        Dtype::F64 => PyArray::from_owned_array(py, a).into_any(),
        Dtype::F32 => PyArray::from_owned_array(py, a.mapv(|v| v as f32)).into_any(),
    }
}

/// A fresh NumPy vector of `v` in `dtype`.
pub fn vec_out(py: Python<'_>, v: Vec<f64>, dtype: Dtype) -> Bound<'_, PyAny> {
    array_out(py, Array1::from(v), dtype)
}

/// A real number; `TypeError` naming `name` otherwise (bool counts as 0/1,
/// as in Python arithmetic; text does not).
pub fn real(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    let bad = || {
        let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("{name}: expected a real number, got {ty}"))
    };
    if obj.is_instance_of::<PyString>() {
        return Err(bad());
    }
    obj.extract::<f64>().map_err(|_| bad())
}

/// An integer (anything with `__index__`); `TypeError` naming `name` otherwise.
pub fn integer(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<i128> {
    let ty = || obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    let index = obj
        .call_method0("__index__")
        .map_err(|_| PyTypeError::new_err(format!("{name}: expected an integer, got {}", ty())))?;
    index
        .extract::<i128>()
        .map_err(|_| value_error(format!("{name}: expected an integer that fits in 128 bits, got {index}")))
}

/// `n_threads`: None or an integer in [1, `check::MAX_THREADS`].
pub fn threads(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let n = match obj {
        Some(o) if !o.is_none() => Some(integer("n_threads", o)?),
        _ => None,
    };
    check::threads(n).map_err(to_py)
}

/// An integer that fits in 64 bits (sizes).
pub fn size(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    let v = integer(name, obj)?;
    i64::try_from(v).map_err(|_| value_error(format!("{name}: expected an integer >= 1 that fits in 64 bits, got {v}")))
}

/// A list of integers that fit in 64 bits (`name[i]` in messages); a text
/// or anything not iterable over integers is a `TypeError` saying `expected`.
pub fn size_list(name: &str, obj: &Bound<'_, PyAny>, expected: &str) -> PyResult<Vec<i64>> {
    let not_list = || {
        let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("{name}: expected {expected}, got {r}"))
    };
    if obj.is_instance_of::<PyString>() {
        return Err(not_list());
    }
    let mut out = Vec::new();
    for (i, item) in obj.try_iter().map_err(|_| not_list())?.enumerate() {
        let item = item?;
        if item.call_method0("__index__").is_err() {
            return Err(not_list());
        }
        out.push(size(&format!("{name}[{i}]"), &item)?);
    }
    Ok(out)
}

/// A list of arrays, one per layer (`name[l]` in messages).
pub fn array_list(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<ArrayD<f64>>> {
    let not_list = || PyTypeError::new_err(format!("{name}: expected a list of arrays (one per layer)"));
    if obj.is_instance_of::<PyString>() {
        return Err(not_list());
    }
    let mut out = Vec::new();
    for (l, item) in obj.try_iter().map_err(|_| not_list())?.enumerate() {
        out.push(array(&format!("{name}[{l}]"), &item?)?);
    }
    Ok(out)
}

/// An integer, or a list of integers (one per layer).
pub fn size_or_list(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Result<i64, Vec<i64>>> {
    if obj.call_method0("__index__").is_ok() {
        return size(name, obj).map(Ok);
    }
    size_list(name, obj, "an integer or a list of integers (one per layer)").map(Err)
}

/// Field `name` of a configuration object, read by `read` (one of the
/// functions here: `real`, `size`, `integer`, `text`).
pub fn field<T>(
    config: &Bound<'_, PyAny>,
    name: &str,
    read: fn(&str, &Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<T> {
    read(name, &config.getattr(name)?)
}

/// A text; `TypeError` naming `name` otherwise.
pub fn text(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    obj.extract::<String>().map_err(|_| {
        let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("{name}: expected a string, got {ty}"))
    })
}

/// RecurrentNetwork's `update`: None (`'sequence'`), `'sequence'`, `'step'` or
/// an integer k >= 1.
pub fn schedule(obj: &Bound<'_, PyAny>) -> PyResult<Update> {
    const EXPECTED: &str = "update: expected 'sequence', 'step' or an integer k >= 1";
    if obj.is_none() {
        return Ok(Update::Sequence);
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!("{EXPECTED}, got a bool")));
    }
    if let Ok(s) = obj.extract::<String>() {
        return Update::parse_schedule(&s).map_err(to_py);
    }
    match obj.extract::<i64>() {
        Ok(k) => Update::every(k).map_err(to_py),
        Err(_) => Err(PyTypeError::new_err(EXPECTED)),
    }
}

/// The schedule as Python shows it: `'sequence'`, `'step'` or the int k.
pub fn schedule_out<'py>(py: Python<'py>, u: Update) -> PyResult<Bound<'py, PyAny>> {
    Ok(match u {
        Update::Every(k) => k.into_pyobject(py)?.into_any(),
        other => other.name().into_pyobject(py)?.into_any(),
    })
}

/// A filesystem path (`str` or `os.PathLike`).
pub fn path(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let fspath = obj.py().import("os")?.getattr("fspath")?;
    let p = fspath.call1((obj,)).map_err(|e| {
        if !e.is_instance_of::<PyTypeError>(obj.py()) {
            return e; // an error raised by __fspath__ itself, or KeyboardInterrupt
        }
        let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("path: expected a str, bytes or os.PathLike object, got {ty}"))
    })?;
    let path = if let Ok(s) = p.extract::<String>() {
        PathBuf::from(s)
    } else {
        // bytes: the file name as given (not re-encoded)
        let b: Vec<u8> = p.extract()?;
        #[cfg(unix)]
        let path = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&b));
        #[cfg(not(unix))]
        let path = PathBuf::from(String::from_utf8_lossy(&b).into_owned());
        path
    };
    if path.as_os_str().is_empty() || path.as_os_str().as_encoded_bytes().contains(&0) {
        let r = p.repr().map(|r| r.to_string()).unwrap_or_default();
        return Err(value_error(format!("path: expected a non-empty file name without NUL characters, got {r}")));
    }
    Ok(path)
}

/// A `state_dict` as a Python dict (arrays as fresh NumPy arrays, float32
/// when the state records `dtype='float32'` and the array's values are
/// float32 values: a file whose arrays are not stays float64, for the
/// loading network to refuse rather than round).
pub fn state_to_dict<'py>(py: Python<'py>, d: &StateDict) -> PyResult<Bound<'py, PyDict>> {
    let dtype = Dtype::of_state(d).unwrap_or_default();
    let out = PyDict::new(py);
    for (k, v) in d.entries() {
        let obj = match v {
            Value::Array(a) if dtype.check_exact(k, a.iter()).is_ok() => array_out(py, a.clone(), dtype),
            Value::Array(a) => array_out(py, a.clone(), Dtype::F64),
            v => value_to_py(py, v)?,
        };
        out.set_item(k, obj)?;
    }
    Ok(out)
}

/// A named array of a state as a read-only copy (`None`: no such array).
pub fn named_array<'py>(
    py: Python<'py>,
    name: &str,
    a: Option<numpy::ndarray::ArrayD<f64>>,
    dtype: Dtype,
) -> PyResult<Bound<'py, PyAny>> {
    a.map(|a| readonly(py, a, dtype))
        .ok_or_else(|| pyo3::exceptions::PyAttributeError::new_err(format!("no array {name:?}")))
}

/// One value of a state as a Python object (arrays as fresh copies).
pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Text(s) | Value::Other(s) => s.into_pyobject(py)?.into_any(),
        Value::Ints(v) => PyList::new(py, v)?.into_any(),
        Value::Array(a) => PyArray::from_array(py, a).into_any(),
    })
}

/// One Python value of a `state_dict` (kept for the model's checks to judge).
fn value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_instance_of::<PyString>() {
        return Ok(Value::Text(v.extract()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(v.extract()?));
    }
    if let Ok(a) = v.cast::<numpy::PyUntypedArray>() {
        if a.ndim() == 0 {
            return value(key, &v.call_method0("item")?);
        }
    } else if let Ok(i) = v.call_method0("__index__").and_then(|i| i.extract::<i64>()) {
        return Ok(Value::Int(i)); // int, bool, NumPy integers
    } else if let Ok(f) = v.extract::<f64>() {
        return Ok(Value::Float(f)); // NumPy floats
    }
    let integers = v
        .cast::<numpy::PyUntypedArray>()
        .map_or(v.is_instance_of::<PyList>(), |a| a.ndim() == 1 && a.dtype().kind() as char != 'f');
    if let (true, Ok(ints)) = (integers, v.extract::<Vec<i64>>()) {
        return Ok(Value::Ints(ints));
    }
    Ok(match array(&format!("state_dict['{key}']"), v) {
        Ok(x) => Value::Array(x),
        Err(e) => Value::Other(e.to_string()),
    })
}

/// A Python dict (`state_dict()` or one built by hand) as a [`StateDict`];
/// every value is kept for the model's checks to judge.
pub fn dict_to_state(d: &Bound<'_, PyDict>) -> PyResult<StateDict> {
    let mut out = StateDict::default();
    for (k, v) in d.iter() {
        let key: String = k.extract().map_err(|_| {
            value_error(format!(
                "state_dict: expected string keys, got {}",
                k.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        out.put(&key, value(&key, &v)?);
    }
    Ok(out)
}
