//! Sequences of any length, fed whole or in chunks. A trainer that can take
//! one learning step and one inference step at a time ([`Sequential`]) gets
//! `train_sequence`/`predict_sequence` with or without reset, and chunked
//! feeding that is bitwise the same as one call: the running loss sum is carried
//! from chunk to chunk in the same order.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{fmt_shape, EpropError, Result};
use crate::seed_eprop::{check_sequence, copy_row};

/// A trainer driven one step at a time.
pub trait Sequential {
    fn n_inputs(&self) -> usize;
    fn n_outputs(&self) -> usize;
    /// Zeroes the dynamic state (membranes, spikes, traces).
    fn reset_state(&mut self);
    /// One step with learning toward `target`; returns the step's loss.
    fn learn_step(&mut self, x: &[f64], target: &[f64]) -> f64;
    /// One step without learning; returns the output.
    fn infer_step(&mut self, x: &[f64]) -> &[f64];
}

/// Checks a (T, n_inputs) / (T, n_outputs) pair.
pub fn check_pair<S: Sequential + ?Sized>(
    s: &S,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
) -> Result<()> {
    check_sequence("inputs", inputs, s.n_inputs(), None)?;
    check_sequence("targets", targets, s.n_outputs(), Some(inputs.nrows()))
}

/// Learns on every row, adding each step's loss to `total` in order. The
/// arguments must have passed [`check_pair`].
pub fn train_rows<S: Sequential + ?Sized>(
    s: &mut S,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    total: &mut f64,
) {
    let mut x = vec![0.0; s.n_inputs()];
    let mut y = vec![0.0; s.n_outputs()];
    for (xr, yr) in inputs.outer_iter().zip(targets.outer_iter()) {
        copy_row(&mut x, xr);
        copy_row(&mut y, yr);
        *total += s.learn_step(&x, &y);
    }
}

/// Runs every row without learning, writing outputs to `out` (T, n_outputs).
/// `inputs` must have passed `check_sequence`.
pub fn predict_rows<S: Sequential + ?Sized>(
    s: &mut S,
    inputs: ArrayView2<f64>,
    mut out: ArrayViewMut2<f64>,
) {
    let mut x = vec![0.0; s.n_inputs()];
    for (xr, mut orow) in inputs.outer_iter().zip(out.outer_iter_mut()) {
        copy_row(&mut x, xr);
        for (o, &v) in orow.iter_mut().zip(s.infer_step(&x)) {
            *o = v;
        }
    }
}

/// Trains on one sequence (from reset state when `reset`); returns the mean
/// loss. Everything is checked before anything changes; T >= 1.
pub fn train_sequence<S: Sequential + ?Sized>(
    s: &mut S,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    reset: bool,
) -> Result<f64> {
    check_pair(s, inputs, targets)?;
    if inputs.nrows() == 0 {
        return Err(EpropError::shape(
            "inputs",
            format!("(T, {}) with T >= 1", s.n_inputs()),
            fmt_shape(inputs.shape()),
        ));
    }
    if reset {
        s.reset_state();
    }
    let mut total = 0.0;
    train_rows(s, inputs, targets, &mut total);
    Ok(total / inputs.nrows() as f64)
}

/// Runs one sequence without learning (from reset state when `reset`),
/// writing outputs to `out` (T, n_outputs).
pub fn predict_sequence<S: Sequential + ?Sized>(
    s: &mut S,
    inputs: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
    reset: bool,
) -> Result<()> {
    check_sequence("inputs", inputs, s.n_inputs(), None)?;
    if out.dim() != (inputs.nrows(), s.n_outputs()) {
        return Err(EpropError::shape(
            "out",
            fmt_shape(&[inputs.nrows(), s.n_outputs()]),
            fmt_shape(out.shape()),
        ));
    }
    if reset {
        s.reset_state();
    }
    predict_rows(s, inputs, out);
    Ok(())
}
