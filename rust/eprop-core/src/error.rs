//! The one error type of the core. The binding maps every variant to one
//! Python exception (see `eprop-py/src/errors.rs`); messages name the
//! argument, what was expected and what was given.

use std::fmt;

/// Everything a caller can get wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum EpropError {
    /// An array argument has the wrong shape.
    Shape { arg: String, expected: String, got: String },
    /// An array argument holds NaN or infinity.
    NonFinite { arg: String, index: String, value: f64 },
    /// The sizes ask for more memory than can be had.
    Memory { what: String, detail: String },
    /// A scalar hyperparameter, size or value is out of range or of the wrong kind.
    Param { name: String, expected: String, got: String },
    /// A named entry is missing (from a state dict).
    Missing { what: String, key: String },
    /// A file could not be read or written.
    Io { path: String, detail: String, not_found: bool },
}

impl EpropError {
    pub fn shape(arg: &str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        EpropError::Shape { arg: arg.to_string(), expected: expected.into(), got: got.into() }
    }

    pub fn param(name: &str, expected: impl Into<String>, got: impl fmt::Display) -> Self {
        EpropError::Param { name: name.to_string(), expected: expected.into(), got: got.to_string() }
    }

    pub fn io(path: &str, e: &std::io::Error) -> Self {
        EpropError::Io {
            path: path.to_string(),
            detail: e.to_string(),
            not_found: e.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

/// Errors met inside a block of work that reports plain messages.
impl From<EpropError> for String {
    fn from(e: EpropError) -> String {
        e.to_string()
    }
}

impl fmt::Display for EpropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpropError::Shape { arg, expected, got } => {
                write!(f, "{arg}: expected shape {expected}, got shape {got}")
            }
            EpropError::NonFinite { arg, index, value } => {
                write!(f, "{arg}: expected finite values, got {value} at index {index}")
            }
            EpropError::Param { name, expected, got } => write!(f, "{name}: expected {expected}, got {got}"),
            EpropError::Memory { what, detail } => write!(f, "{what}: cannot allocate {detail}"),
            EpropError::Missing { what, key } => {
                write!(f, "{what}: expected key '{key}', it is missing")
            }
            EpropError::Io { path, detail, .. } => write!(f, "{path}: {detail}"),
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

/// Formats a float as Python's `repr` does for the values in messages and
/// reprs (`20.0`, `0.01`, `1e-05`, `nan`, `inf`).
pub fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python switches to exponent notation outside [1e-4, 1e16)
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = exp.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", e.abs());
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_floats_print_as_python_does() {
        assert_eq!(fmt_shape(&[2, 5]), "(2, 5)");
        assert_eq!(fmt_shape(&[3]), "(3,)");
        assert_eq!(fmt_shape(&[]), "()");
        for (x, s) in [
            (20.0, "20.0"),
            (0.01, "0.01"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (123456.0, "123456.0"),
            (0.0, "0.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
            (0.017424185109823985, "0.017424185109823985"),
        ] {
            assert_eq!(fmt_float(x), s);
        }
    }
}
