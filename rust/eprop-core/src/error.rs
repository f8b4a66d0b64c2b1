//! The one error type of the core. The binding maps every variant to a Python
//! exception (`ValueError`); messages name the argument, what was expected and
//! what was given.

use std::fmt;

/// Everything a caller can get wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum EpropError {
    /// An array argument has the wrong shape.
    Shape {
        arg: String,
        expected: String,
        got: String,
    },
    /// An array argument holds NaN or infinity.
    NonFinite {
        arg: String,
        index: String,
        value: f64,
    },
    /// The sizes ask for more memory than can be had.
    Memory { what: String, detail: String },
    /// A scalar hyperparameter or size is out of range.
    Param {
        name: String,
        expected: String,
        got: String,
    },
}

impl EpropError {
    pub fn shape(arg: &str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        EpropError::Shape {
            arg: arg.to_string(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn param(name: &str, expected: impl Into<String>, got: impl fmt::Display) -> Self {
        EpropError::Param {
            name: name.to_string(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

impl fmt::Display for EpropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpropError::Shape { arg, expected, got } => {
                write!(f, "{arg}: expected shape {expected}, got shape {got}")
            }
            EpropError::NonFinite { arg, index, value } => {
                write!(
                    f,
                    "{arg}: expected finite values, got {value} at index {index}"
                )
            }
            EpropError::Param {
                name,
                expected,
                got,
            } => write!(f, "{name}: expected {expected}, got {got}"),
            EpropError::Memory { what, detail } => write!(f, "{what}: cannot allocate {detail}"),
        }
    }
}

impl std::error::Error for EpropError {}

pub type Result<T> = std::result::Result<T, EpropError>;

/// Formats a shape as Python does: `(3,)`, `(2, 5)`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Checks that every value of `data` (of shape `shape`, row-major) is finite.
pub fn check_finite(arg: &str, data: &[f64], shape: &[usize]) -> Result<()> {
    if let Some(flat) = data.iter().position(|v| !v.is_finite()) {
        let mut idx = vec![0usize; shape.len()];
        let mut rest = flat;
        for (k, d) in shape.iter().enumerate().rev() {
            if *d > 0 {
                idx[k] = rest % d;
                rest /= d;
            }
        }
        let index = if idx.len() == 1 {
            idx[0].to_string()
        } else {
            fmt_shape(&idx)
        };
        return Err(EpropError::NonFinite {
            arg: arg.to_string(),
            index,
            value: data[flat],
        });
    }
    Ok(())
}

/// Number of float64 values of arrays with the given shapes, or a Memory error
/// naming `what` when the count overflows.
pub fn count_f64(what: &str, shapes: &[(usize, usize)]) -> Result<usize> {
    shapes
        .iter()
        .try_fold(0usize, |acc, &(r, c)| {
            r.checked_mul(c).and_then(|n| acc.checked_add(n))
        })
        .ok_or_else(|| EpropError::Memory {
            what: what.to_string(),
            detail: "the arrays these sizes need (the element count overflows)".to_string(),
        })
}

/// Checks that `n` float64 values can be allocated right now (by reserving
/// them once and releasing them), so that building the arrays cannot abort.
pub fn check_alloc(what: &str, n: usize) -> Result<()> {
    let bytes = n.checked_mul(8).ok_or_else(|| EpropError::Memory {
        what: what.to_string(),
        detail: format!("{n} float64 values"),
    })?;
    let mut probe: Vec<f64> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| EpropError::Memory {
        what: what.to_string(),
        detail: format!(
            "{bytes} bytes ({:.3} GiB) for its arrays",
            bytes as f64 / (1u64 << 30) as f64
        ),
    })
}

/// Checks a size argument is at least 1.
pub fn check_size(name: &str, value: i64) -> Result<usize> {
    if value < 1 {
        return Err(EpropError::param(name, "an integer >= 1", value));
    }
    usize::try_from(value).map_err(|_| EpropError::param(name, "a size that fits in memory", value))
}

/// Checks a float hyperparameter is finite and strictly positive.
pub fn check_positive(name: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        return Err(EpropError::param(name, "a finite value > 0", value));
    }
    Ok(value)
}

/// Checks a float hyperparameter is finite and not negative.
pub fn check_non_negative(name: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(EpropError::param(name, "a finite value >= 0", value));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_argument_expected_and_actual() {
        let e = EpropError::shape("x", "(4,)", "(3,)");
        assert_eq!(e.to_string(), "x: expected shape (4,), got shape (3,)");
        let e = check_finite("inputs", &[0.0, 1.0, f64::NAN, 2.0], &[2, 2]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs: expected finite values, got NaN at index (1, 0)"
        );
        assert!(check_size("n_inputs", 0).is_err());
        assert_eq!(check_size("n_inputs", 3).unwrap(), 3);
        assert!(check_positive("tau_mem", -1.0).is_err());
        assert!(check_positive("tau_mem", f64::INFINITY).is_err());
        assert!(check_non_negative("lr", 0.0).is_ok());
        assert_eq!(fmt_shape(&[2, 5]), "(2, 5)");
    }
}
