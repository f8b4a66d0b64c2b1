//! Sequences of any length, fed whole or in chunks. A trainer that can take
//! one learning step and one inference step at a time ([`Sequential`]) gets
//! `train_sequence`/`predict_sequence` with or without reset, and chunked
//! feeding that is bitwise the same as one call: the running loss sum is carried
//! from chunk to chunk in the same order.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use crate::error::{fmt_shape, EpropError, Result};
use crate::seed_eprop::{check_sequence, copy_row};

/// A trainer driven one step at a time.
pub trait Sequential {
    fn n_inputs(&self) -> usize;
    fn n_outputs(&self) -> usize;
    /// Zeroes the dynamic state (membranes, spikes, traces).
    fn reset_state(&mut self);
    /// One step with learning toward `target`; returns the step's loss.
    /// `learn` is false outside the learning window (mask): the step runs
    /// and its traces advance, but its error does not count.
    fn learn_step(&mut self, x: &[f64], target: &[f64], learn: bool) -> f64;
    /// One step without learning; returns the output.
    fn infer_step(&mut self, x: &[f64]) -> &[f64];
    /// Called at the end of a training call (a sequence or a whole stream):
    /// trainers that accumulate gradients over a sequence apply them here.
    fn end_of_sequence(&mut self) {}
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

/// Running sums of a training call: loss and counted (masked-in) steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSum {
    pub total: f64,
    pub counted: usize,
}

impl LossSum {
    /// Mean loss per counted step (0 when none counted).
    pub fn mean(&self) -> f64 {
        self.total / self.counted.max(1) as f64
    }
}

/// Learns on every row, adding each step's loss to `sum` in order; `mask`
/// (T,) marks the steps whose error counts (all when `None`). The arguments
/// must have passed [`check_pair`].
pub fn train_rows<S: Sequential + ?Sized>(
    s: &mut S,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    mask: Option<ArrayView1<bool>>,
    sum: &mut LossSum,
) {
    let mut x = vec![0.0; s.n_inputs()];
    let mut y = vec![0.0; s.n_outputs()];
    for (t, (xr, yr)) in inputs.outer_iter().zip(targets.outer_iter()).enumerate() {
        copy_row(&mut x, xr);
        copy_row(&mut y, yr);
        let learn = mask.as_ref().is_none_or(|m| m[t]);
        sum.total += s.learn_step(&x, &y, learn);
        sum.counted += usize::from(learn);
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
    let mut sum = LossSum::default();
    train_rows(s, inputs, targets, None, &mut sum);
    s.end_of_sequence();
    Ok(sum.mean())
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
