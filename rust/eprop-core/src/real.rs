//! The floating-point type a network computes in: [`Real`] is implemented by
//! `f64` (the default, and the only type of the drop-in classes' parity) and
//! `f32`. Every hot loop and every model's state is written once, generic
//! over it; hyperparameters stay `f64` and are rounded once to the network's
//! type where they enter the arithmetic ([`Real::of`]). Arrays cross the
//! Python boundary as `f64` (every `f32` is exactly a `f64`), so the
//! conversion on the way in is the only rounding, and it is checked
//! ([`Dtype::check_range`]).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::error::{fmt_float, EpropError, Result};

/// A floating-point type a network computes in (`f64` or `f32`).
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialOrd
    + PartialEq
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + ndarray::LinalgScalar
{
    const ZERO: Self;
    const ONE: Self;
    /// The smallest positive normal value (values below it are flushed).
    const MIN_POSITIVE: Self;
    const NAN: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    /// Bytes per value.
    const BYTES: usize;
    /// Which [`Dtype`] this is.
    const DTYPE: Dtype;
    /// `x` rounded to this type (to nearest; out of range: +-inf).
    fn of(x: f64) -> Self;
    /// The value as `f64` (exact).
    fn f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn powi(self, n: i32) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn is_finite(self) -> bool;
    fn is_nan(self) -> bool;
}

macro_rules! real_impl {
    ($t:ty, $dtype:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
            const NAN: Self = <$t>::NAN;
            const INFINITY: Self = <$t>::INFINITY;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const BYTES: usize = std::mem::size_of::<$t>();
            const DTYPE: Dtype = $dtype;
            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

real_impl!(f64, Dtype::F64);
real_impl!(f32, Dtype::F32);

/// The `dtype` option of every class: `"float64"` (default) or `"float32"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dtype {
    #[default]
    F64,
    F32,
}

impl Dtype {
    pub const NAMES: [&'static str; 2] = ["float64", "float32"];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "float64" => Ok(Dtype::F64),
            "float32" => Ok(Dtype::F32),
            _ => Err(EpropError::param("dtype", "'float64' or 'float32'", format!("'{s}'"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "float64",
            Dtype::F32 => "float32",
        }
    }

    /// Values of a stored state `arg` of this type must be exactly values of
    /// it (a float32 network writes float32 values): anything else is a state
    /// of another dtype, refused rather than rounded silently.
    pub fn check_exact<'a>(self, arg: &str, values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
        if self == Dtype::F64 {
            return Ok(());
        }
        match values.into_iter().find(|&&v| (v as f32) as f64 != v) {
            Some(v) => Err(EpropError::param(
                arg,
                "float32 values (the state of a float32 network; to convert a float64 state, round its \
                 arrays with astype(numpy.float32) first)",
                format!("{}, which float32 cannot hold exactly", fmt_float(*v)),
            )),
            None => Ok(()),
        }
    }

    /// Hyperparameters that enter the arithmetic in this type: a finite value
    /// beyond its range (it would become infinity) or a non-zero value below
    /// its smallest normal value (it would become zero or subnormal) is
    /// refused, naming it. Always passes for `float64`.
    pub fn check_hypers(self, values: &[(&str, f64)]) -> Result<()> {
        if self == Dtype::F64 {
            return Ok(());
        }
        let (max, min) = (f32::MAX as f64, f32::MIN_POSITIVE as f64);
        for &(name, v) in values {
            if v.is_finite() && (v.abs() > max || (v != 0.0 && v.abs() < min)) {
                return Err(EpropError::param(
                    name,
                    format!("0 or a magnitude in [{}, {}] for a float32 network", fmt_float(min), fmt_float(max)),
                    fmt_float(v),
                ));
            }
        }
        Ok(())
    }

    /// The dtype a state dict records; states written before the option
    /// existed are float64.
    pub fn of_state(d: &crate::state::StateDict) -> Result<Self> {
        if d.contains("dtype") {
            Dtype::parse(d.text("dtype")?).map_err(|e| match e {
                EpropError::Param { expected, got, .. } => EpropError::param("state_dict['dtype']", expected, got),
                other => other,
            })
        } else {
            Ok(Dtype::F64)
        }
    }

    /// Refuses a state `d` of another dtype than `ours` (never converted
    /// silently), saying how to load it.
    pub fn check_state(d: &crate::state::StateDict, ours: Dtype) -> Result<()> {
        let theirs = Dtype::of_state(d)?;
        if theirs == ours {
            return Ok(());
        }
        Err(EpropError::param(
            "state_dict['dtype']",
            format!(
                "'{}', the dtype of this network (to convert, build a network with dtype='{}', load the state \
                 there and copy its weights over, or load the file with the class's load)",
                ours.name(),
                theirs.name()
            ),
            format!("'{}'", theirs.name()),
        ))
    }

    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
        }
    }

    /// Finite values of `arg` that this type cannot hold (they would round to
    /// infinity) are refused, naming the first one; NaN and infinity are
    /// the callers' checks. Always passes for `float64`.
    pub fn check_range<'a>(self, arg: &str, values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
        if self == Dtype::F64 {
            return Ok(());
        }
        let max = f32::MAX as f64;
        match values.into_iter().find(|v| v.is_finite() && v.abs() > max) {
            Some(v) => Err(EpropError::param(
                arg,
                format!("values within the float32 range (|x| <= {}) for a float32 network", fmt_float(max)),
                fmt_float(*v),
            )),
            None => Ok(()),
        }
    }
}

/// `src` rounded to `F`, as a new vector.
pub fn rounded<F: Real>(src: &[f64]) -> Vec<F> {
    src.iter().map(|&v| F::of(v)).collect()
}

/// `src` widened to `f64` (exact), as a new vector.
pub fn widened<F: Real>(src: &[F]) -> Vec<f64> {
    src.iter().map(|&v| v.f64()).collect()
}

/// `a` rounded to `F`, element by element.
pub fn cast_slice<F: Real>(src: &[f64], dst: &mut [F]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = F::of(s);
    }
}

/// `a` widened to `f64`, element by element (exact).
pub fn widen_slice<F: Real>(src: &[F], dst: &mut [f64]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.f64();
    }
}
