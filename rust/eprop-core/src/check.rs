//! Validation of everything that comes from outside: sizes, hyperparameters,
//! seeds, arrays (shape and finiteness), masks and targets. Every message
//! names the argument, what was expected and what was given; nothing here
//! changes any state, so a caller that checks first and then acts leaves the
//! trainer untouched on a rejection.

use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView1, ArrayView2, ArrayView3, ArrayViewD, Dimension};

use crate::error::{fmt_shape, EpropError, Result};

/// A size argument: an integer >= 1.
pub fn size(name: &str, value: i64) -> Result<usize> {
    if value < 1 {
        return Err(EpropError::param(name, "an integer >= 1", value));
    }
    usize::try_from(value).map_err(|_| EpropError::param(name, "a size that fits in memory", value))
}

/// A float hyperparameter that must be finite and > 0.
pub fn positive(name: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        return Err(EpropError::param(name, "a finite value > 0", value));
    }
    Ok(value)
}

/// A float hyperparameter that must be finite and >= 0.
pub fn non_negative(name: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(EpropError::param(name, "a finite value >= 0", value));
    }
    Ok(value)
}

/// A float hyperparameter in [0, 1].
pub fn unit_interval(name: &str, value: f64) -> Result<f64> {
    let v = non_negative(name, value)?;
    if v > 1.0 {
        return Err(EpropError::param(name, "a value in [0, 1]", v));
    }
    Ok(v)
}

/// A seed of `numpy.random.RandomState`: 0 <= seed < 2**32.
pub fn seed(value: i128) -> Result<u32> {
    u32::try_from(value).map_err(|_| EpropError::param("seed", "an integer in [0, 2**32 - 1]", value))
}

/// The most threads a pool may be asked for (each is an operating-system
/// thread with its own stack; more than this is a mistake, not a machine).
pub const MAX_THREADS: i128 = 1024;

/// `n_threads`: None or an integer in [1, MAX_THREADS].
pub fn threads(value: Option<i128>) -> Result<Option<usize>> {
    match value {
        None => Ok(None),
        Some(n) if (1..=MAX_THREADS).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(EpropError::param("n_threads", format!("None or an integer in [1, {MAX_THREADS}]"), n)),
    }
}

/// Every value of `data` (of shape `shape`, row-major) is finite.
pub fn finite<F: crate::real::Real>(arg: &str, data: &[F], shape: &[usize]) -> Result<()> {
    let Some(flat) = data.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let mut idx = vec![0usize; shape.len()];
    let mut rest = flat;
    for (k, d) in shape.iter().enumerate().rev() {
        if *d > 0 {
            idx[k] = rest % d;
            rest /= d;
        }
    }
    let index = if idx.len() == 1 { idx[0].to_string() } else { fmt_shape(&idx) };
    Err(EpropError::NonFinite { arg: arg.to_string(), index, value: data[flat].f64() })
}

/// Finiteness of an array view of any layout (the index in its own shape).
pub fn finite_view<F: crate::real::Real>(arg: &str, a: &ArrayViewD<F>) -> Result<()> {
    match a.as_slice() {
        Some(s) => finite(arg, s, a.shape()),
        None => match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
            None => Ok(()),
            Some((ix, v)) => {
                let ix = ix.as_array_view().to_vec();
                Err(EpropError::NonFinite {
                    arg: arg.to_string(),
                    index: if ix.len() == 1 { ix[0].to_string() } else { fmt_shape(&ix) },
                    value: v.f64(),
                })
            }
        },
    }
}

/// A vector of length `n`, finite.
pub fn vector(arg: &str, shape: &[usize], data: &[f64], n: usize) -> Result<()> {
    if shape != [n] {
        return Err(EpropError::shape(arg, fmt_shape(&[n]), fmt_shape(shape)));
    }
    finite(arg, data, shape)
}

/// An array as a vector of length `n`, finite.
pub fn into_vector(arg: &str, a: ArrayD<f64>, n: usize) -> Result<Array1<f64>> {
    vector(arg, a.shape(), a.as_slice().unwrap_or(&[]), n)?;
    Ok(a.into_dimensionality().expect("checked 1-d"))
}

/// `a` in place of `dst` (a weight array named `arg`) after checking that it
/// has `dst`'s shape and is finite; `dst` is untouched when it does not.
pub fn replace<F: crate::real::Real, D: ndarray::Dimension>(
    arg: &str,
    dst: &mut ndarray::Array<F, D>,
    a: ArrayD<f64>,
) -> Result<()> {
    match *dst.shape() {
        [n] => vector(arg, a.shape(), a.as_slice().unwrap_or(&[]), n)?,
        [rows, width] => {
            matrix_shape(arg, a.shape(), Some(rows), width)?;
            finite(arg, a.as_slice().unwrap_or(&[]), a.shape())?;
        }
        _ => unreachable!("weights are vectors or matrices"),
    }
    F::DTYPE.check_range(arg, a.iter())?;
    *dst = a.mapv(F::of).into_dimensionality().expect("checked shape");
    Ok(())
}

/// The target of one step: a vector (n_classes,), or for cross-entropy
/// (`classes`) a class index (a 0-d array) or a probability vector (checked
/// when the step `counts`).
pub fn step_target(arg: &str, a: ArrayD<f64>, n: usize, classes: bool, counts: bool) -> Result<Array1<f64>> {
    if classes && a.ndim() == 0 {
        let mut v = Array1::zeros(n);
        v[class_index(arg, a.iter().copied().next().unwrap_or(f64::NAN), n)?] = 1.0;
        return Ok(v);
    }
    let v = into_vector(arg, a, n)?;
    if classes && counts {
        distributions(arg, v.view().insert_axis(ndarray::Axis(0)), None, &|_| "0".to_string())?;
    }
    Ok(v)
}

/// An array as a (rows, width) matrix (any rows when `None`), finite.
pub fn into_matrix(arg: &str, a: ArrayD<f64>, rows: Option<usize>, width: usize) -> Result<Array2<f64>> {
    matrix_shape(arg, a.shape(), rows, width)?;
    finite(arg, a.as_slice().unwrap_or(&[]), a.shape())?;
    Ok(a.into_dimensionality().expect("checked 2-d"))
}

/// An array as a (B, T, width) batch ((B, T) fixed when given), finite.
pub fn into_batch(arg: &str, a: ArrayD<f64>, bt: Option<(usize, usize)>, width: usize) -> Result<Array3<f64>> {
    batch_shape(arg, a.shape(), bt, width)?;
    finite(arg, a.as_slice().unwrap_or(&[]), a.shape())?;
    Ok(a.into_dimensionality().expect("checked 3-d"))
}

/// Expected-shape text of a matrix with `rows` rows (or any, "T") and `width` columns.
fn rows_text(rows: Option<usize>, width: usize) -> String {
    format!("({}, {width})", rows.map_or("T".to_string(), |r| r.to_string()))
}

/// The shape of a (rows, width) matrix (rows free when `None`).
pub fn matrix_shape(arg: &str, shape: &[usize], rows: Option<usize>, width: usize) -> Result<()> {
    let ok = shape.len() == 2 && shape[1] == width && rows.is_none_or(|r| r == shape[0]);
    if !ok {
        return Err(EpropError::shape(arg, rows_text(rows, width), fmt_shape(shape)));
    }
    Ok(())
}

/// A (T, width) sequence (T fixed when given): shape and finiteness.
pub fn sequence<F: crate::real::Real>(arg: &str, a: ArrayView2<F>, width: usize, t: Option<usize>) -> Result<()> {
    matrix_shape(arg, a.shape(), t, width)?;
    finite_view(arg, &a.into_dyn())
}

/// A sequence has at least one step.
pub fn some_steps(arg: &str, t: usize, width: usize) -> Result<()> {
    if t == 0 {
        return Err(EpropError::shape(arg, format!("(T, {width}) with T >= 1"), fmt_shape(&[0, width])));
    }
    Ok(())
}

/// The shape of a (B, T, width) batch ((B, T) fixed when given).
pub fn batch_shape(arg: &str, shape: &[usize], bt: Option<(usize, usize)>, width: usize) -> Result<()> {
    let expected = match bt {
        Some((b, t)) => format!("({b}, {t}, {width})"),
        None => format!("(B, T, {width})"),
    };
    let ok = shape.len() == 3 && shape[2] == width && bt.is_none_or(|bt| bt == (shape[0], shape[1]));
    if !ok {
        return Err(EpropError::shape(arg, expected, fmt_shape(shape)));
    }
    Ok(())
}

/// A batch the drivers can run: (B, T, width) with B >= 1 and T >= 1.
pub fn runnable_batch(arg: &str, a: &ArrayView3<f64>, width: usize) -> Result<()> {
    let (b, t, w) = a.dim();
    if w != width || b == 0 || t == 0 {
        return Err(EpropError::shape(arg, format!("(B, T, {width}) with B >= 1 and T >= 1"), fmt_shape(a.shape())));
    }
    Ok(())
}

/// Values of a mask: each 0 or 1 (False or True).
pub fn mask_values(arg: &str, values: &[f64]) -> Result<Vec<bool>> {
    values
        .iter()
        .map(|&v| if v == 0.0 || v == 1.0 { Ok(v != 0.0) } else { Err(EpropError::param(arg, "booleans (0 or 1)", v)) })
        .collect()
}

/// A (T,) mask of one sequence.
pub fn sequence_mask(arg: &str, shape: &[usize], values: &[f64], t: usize) -> Result<Vec<bool>> {
    if shape != [t] {
        return Err(EpropError::shape(arg, fmt_shape(&[t]), fmt_shape(shape)));
    }
    mask_values(arg, values)
}

/// A batch mask: (T,) shared by every sequence or (B, T); returned as (B, T)
/// row-major.
pub fn batch_mask(arg: &str, shape: &[usize], values: &[f64], b: usize, t: usize) -> Result<Vec<bool>> {
    match shape {
        [tt] if *tt == t => {
            let row = mask_values(arg, values)?;
            Ok((0..b).flat_map(|_| row.iter().copied()).collect())
        }
        [bb, tt] if *bb == b && *tt == t => mask_values(arg, values),
        _ => {
            // the values are checked first: a wrong value is reported as such
            mask_values(arg, values)?;
            Err(EpropError::param(arg, format!("shape ({t},) or ({b}, {t})"), format!("shape {}", fmt_shape(shape))))
        }
    }
}

/// A class index in [0, n_classes) (one step's target).
pub fn class_index(arg: &str, c: f64, n_classes: usize) -> Result<usize> {
    if c.fract() != 0.0 || c < 0.0 || c >= n_classes as f64 {
        return Err(EpropError::param(arg, format!("a class index in [0, {}]", n_classes.saturating_sub(1)), c));
    }
    Ok(c as usize)
}

/// One-hot rows (len(values), n_classes) from class indices; `index` formats
/// the position of a bad value for the message.
pub fn one_hot(arg: &str, values: &[f64], n_classes: usize, index: &dyn Fn(usize) -> String) -> Result<Vec<f64>> {
    let mut out = vec![0.0; values.len() * n_classes];
    for (i, &c) in values.iter().enumerate() {
        if c.fract() != 0.0 || c < 0.0 || c >= n_classes as f64 {
            return Err(EpropError::param(
                arg,
                format!("class indices in [0, {}]", n_classes.saturating_sub(1)),
                format!("{c} at index {}", index(i)),
            ));
        }
        out[i * n_classes + c as usize] = 1.0;
    }
    Ok(out)
}

/// Largest deviation from 1 accepted in the sum of a row of class probabilities.
pub const DISTRIBUTION_TOLERANCE: f64 = 1e-6;

/// Cross-entropy targets (rows of class probabilities, shape (T, K)): every
/// row whose error counts (`mask` true, or every row without a mask) must be
/// non-negative and sum to 1 within [`DISTRIBUTION_TOLERANCE`]. Rows outside
/// the mask are not used and not checked. `index` formats a row number.
pub fn distributions(
    arg: &str,
    targets: ArrayView2<f64>,
    mask: Option<ArrayView1<bool>>,
    index: &dyn Fn(usize) -> String,
) -> Result<()> {
    for (t, row) in targets.outer_iter().enumerate() {
        if mask.as_ref().is_some_and(|m| !m[t]) {
            continue;
        }
        let sum: f64 = row.iter().sum();
        let negative = row.iter().any(|&p| p < 0.0);
        if negative || (sum - 1.0).abs() > DISTRIBUTION_TOLERANCE {
            let shown: Vec<String> = row.iter().map(|p| format!("{p}")).collect();
            return Err(EpropError::param(
                arg,
                "class probabilities (non-negative, summing to 1) in every row whose error counts",
                format!("[{}] (sum {sum}) at row {}", shown.join(", "), index(t)),
            ));
        }
    }
    Ok(())
}

/// Cross-entropy targets of one sequence of `t` steps and `k` classes, given
/// as class indices (shape (T,), turned into one-hot rows) or as class
/// probabilities (T, K), checked in the rows `mask` counts.
pub fn class_targets(arg: &str, a: ArrayD<f64>, t: usize, k: usize, mask: Option<&[bool]>) -> Result<Array2<f64>> {
    if a.ndim() == 1 {
        if a.len() != t {
            return Err(EpropError::param(
                arg,
                format!("class indices of shape ({t},) or one-hot targets of shape ({t}, {k})"),
                format!("shape ({},)", a.len()),
            ));
        }
        let rows = one_hot(arg, a.as_slice().unwrap_or(&[]), k, &|i| i.to_string())?;
        return Ok(Array2::from_shape_vec((t, k), rows).expect("one row per index"));
    }
    let m = into_matrix(arg, a, Some(t), k)?;
    let mask = mask.map(ArrayView1::from);
    distributions(arg, m.view(), mask, &|i| i.to_string())?;
    Ok(m)
}

/// Cross-entropy targets of a batch (B, T): class indices (B, T) or class
/// probabilities (B, T, K) checked in the rows `mask` ((B, T), row-major) counts.
pub fn class_batch_targets(
    arg: &str,
    a: ArrayD<f64>,
    (b, t, k): (usize, usize, usize),
    mask: Option<&[bool]>,
) -> Result<Array3<f64>> {
    if a.ndim() == 2 {
        if a.shape() != [b, t] {
            return Err(EpropError::param(
                arg,
                format!("class indices of shape ({b}, {t}) or one-hot of shape ({b}, {t}, {k})"),
                format!("shape {}", fmt_shape(a.shape())),
            ));
        }
        let rows = one_hot(arg, a.as_slice().unwrap_or(&[]), k, &|i| format!("({}, {})", i / t, i % t))?;
        return Ok(Array3::from_shape_vec((b, t, k), rows).expect("one row per index"));
    }
    let y = into_batch(arg, a, Some((b, t)), k)?;
    for (kb, seq) in y.outer_iter().enumerate() {
        let m = mask.map(|m| ArrayView1::from(&m[kb * t..(kb + 1) * t]));
        distributions(arg, seq, m, &|s| format!("({kb}, {s})"))?;
    }
    Ok(y)
}

/// Number of float64 values of arrays with the given shapes, or a Memory
/// error naming `what` when the count overflows.
pub fn count_f64(what: &str, shapes: &[(usize, usize)]) -> Result<usize> {
    shapes.iter().try_fold(0usize, |acc, &(r, c)| r.checked_mul(c).and_then(|n| acc.checked_add(n))).ok_or_else(|| {
        EpropError::Memory {
            what: what.to_string(),
            detail: "the arrays these sizes need (the element count overflows)".to_string(),
        }
    })
}

/// That `n` float64 values can be allocated right now (reserved once and
/// released), so that building the arrays cannot abort the process.
pub fn alloc(what: &str, n: usize) -> Result<()> {
    let bytes = n
        .checked_mul(8)
        .ok_or_else(|| EpropError::Memory { what: what.to_string(), detail: format!("{n} float64 values") })?;
    let mut probe: Vec<f64> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| EpropError::Memory {
        what: what.to_string(),
        detail: format!("{bytes} bytes ({:.3} GiB) for its arrays", bytes as f64 / (1u64 << 30) as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_argument_expected_and_actual() {
        assert_eq!(EpropError::shape("x", "(4,)", "(3,)").to_string(), "x: expected shape (4,), got shape (3,)");
        assert_eq!(
            finite("inputs", &[0.0, 1.0, f64::NAN, 2.0], &[2, 2]).unwrap_err().to_string(),
            "inputs: expected finite values, got NaN at index (1, 0)"
        );
        assert!(size("n_inputs", 0).is_err());
        assert_eq!(size("n_inputs", 3).unwrap(), 3);
        assert!(positive("tau_mem", -1.0).is_err());
        assert!(positive("tau_mem", f64::INFINITY).is_err());
        assert!(non_negative("lr", 0.0).is_ok());
        assert!(unit_interval("feedback_decay", 1.5).is_err());
        assert_eq!(seed(-1).unwrap_err().to_string(), "seed: expected an integer in [0, 2**32 - 1], got -1");
        assert!(threads(Some(0)).is_err());
        assert_eq!(sequence_mask("mask", &[3], &[1.0, 0.0, 1.0], 3).unwrap(), vec![true, false, true]);
        assert!(mask_values("mask", &[0.5]).is_err());
        assert_eq!(batch_mask("mask", &[2], &[1.0, 0.0], 2, 2).unwrap(), vec![true, false, true, false]);
        assert_eq!(one_hot("t", &[1.0, 0.0], 2, &|i| i.to_string()).unwrap(), vec![0.0, 1.0, 1.0, 0.0]);
        assert!(one_hot("t", &[2.0], 2, &|i| i.to_string()).is_err());
        let m = ndarray::array![[0.5, 0.5], [0.0, 0.0]];
        assert!(distributions("t", m.view(), None, &|i| i.to_string()).is_err());
        let mask = ndarray::array![true, false];
        assert!(distributions("t", m.view(), Some(mask.view()), &|i| i.to_string()).is_ok());
    }
}
