//! The readout side of learning: losses and their error vectors, the
//! learning signal that carries the error back to the neurons, and the
//! evaluation of outputs against targets.
//!
//! MSE: `err = y - y*`, `loss = 0.5 |err|^2`. Cross-entropy:
//! `err = softmax(y) - pi*`, `loss = -sum_k pi*_k log softmax(y)_k`.
//! Learning signal `L_j = sum_k B_jk err_k` with `B = W^T` (symmetric, and
//! the seed rule) or a feedback matrix B.

use crate::error::{EpropError, Result};
use crate::kernels::dot;
use crate::real::Real;

/// Loss of a readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    Mse,
    CrossEntropy,
}

impl Loss {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(Loss::Mse),
            "cross_entropy" => Ok(Loss::CrossEntropy),
            o => Err(EpropError::param("loss", "'mse' or 'cross_entropy'", format!("'{o}'"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross_entropy",
        }
    }
}

/// Writes the error of output `y` against `target` into `err` and returns
/// the loss of the step.
pub fn error<F: Real>(loss: Loss, y: &[F], target: &[F], err: &mut [F]) -> F {
    let mut total = F::ZERO;
    match loss {
        Loss::Mse => {
            for ((e, &yk), &tk) in err.iter_mut().zip(y).zip(target) {
                *e = yk - tk;
                total += F::of(0.5) * *e * *e;
            }
        }
        Loss::CrossEntropy => {
            softmax(y, err);
            for (e, &tk) in err.iter_mut().zip(target) {
                if tk != F::ZERO {
                    total -= tk * e.max(F::MIN_POSITIVE).ln();
                }
                *e -= tk;
            }
        }
    }
    total
}

/// Numerically safe softmax of `y` into `p`.
pub fn softmax<F: Real>(y: &[F], p: &mut [F]) {
    let m = y.iter().copied().fold(F::NEG_INFINITY, F::max);
    let mut sum = F::ZERO;
    for (pi, &yi) in p.iter_mut().zip(y) {
        *pi = (yi - m).exp();
        sum += *pi;
    }
    for pi in p.iter_mut() {
        *pi /= sum;
    }
}

/// `signal = W^T err` for a row-major W (n_outputs x n).
pub fn transposed_signal<F: Real>(w: &[F], err: &[F], signal: &mut [F]) {
    let n = signal.len();
    signal.fill(F::ZERO);
    if n == 0 {
        return;
    }
    for (row, &e) in w.chunks_exact(n).zip(err) {
        for (l, &wi) in signal.iter_mut().zip(row) {
            *l += wi * e;
        }
    }
}

/// `signal = B err` for a row-major feedback matrix B (n x n_outputs).
pub fn feedback_signal<F: Real>(b: &[F], err: &[F], signal: &mut [F]) {
    let no = err.len();
    if no == 0 {
        signal.fill(F::ZERO);
        return;
    }
    for (l, row) in signal.iter_mut().zip(b.chunks_exact(no)) {
        *l = dot(row, err);
    }
}

fn argmax(it: impl Iterator<Item = f64>) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, x) in it.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Loss and accuracy of outputs (B, T, n_outputs) against targets with mask
/// (B, T): the mean loss per counted step, and for cross-entropy the fraction
/// of sequences whose summed logits over the counted steps pick the target's
/// class (the class with the largest summed target there), plus the fraction
/// of counted steps whose argmax is right.
pub fn evaluate(
    loss: Loss,
    outputs: ndarray::ArrayView3<f64>,
    targets: ndarray::ArrayView3<f64>,
    mask: Option<ndarray::ArrayView2<bool>>,
) -> (f64, Option<(f64, f64)>) {
    let (b, t, no) = outputs.dim();
    if no == 0 {
        return (0.0, None);
    }
    let (mut total, mut counted) = (0.0, 0usize);
    let (mut seq_right, mut step_right) = (0usize, 0usize);
    let mut p = vec![0.0; no];
    let mut logit_sum = vec![0.0; no];
    let mut target_sum = vec![0.0; no];
    let (outputs, targets) = (outputs.as_standard_layout(), targets.as_standard_layout());
    let (out_rows, tgt_rows) = (outputs.as_slice().unwrap_or(&[]), targets.as_slice().unwrap_or(&[]));
    for (k, (out_seq, tgt_seq)) in out_rows.chunks_exact(t * no).zip(tgt_rows.chunks_exact(t * no)).enumerate() {
        logit_sum.fill(0.0);
        target_sum.fill(0.0);
        for (step, (y, tg)) in out_seq.chunks_exact(no).zip(tgt_seq.chunks_exact(no)).enumerate() {
            if !mask.as_ref().is_none_or(|m| m[[k, step]]) {
                continue;
            }
            counted += 1;
            match loss {
                Loss::Mse => {
                    total += y.iter().zip(tg).map(|(a, b)| 0.5 * (a - b) * (a - b)).sum::<f64>();
                }
                Loss::CrossEntropy => {
                    softmax(y, &mut p);
                    for (pk, &tk) in p.iter().zip(tg) {
                        if tk != 0.0 {
                            total -= tk * pk.max(f64::MIN_POSITIVE).ln();
                        }
                    }
                    step_right += usize::from(argmax(y.iter().copied()) == argmax(tg.iter().copied()));
                    for kk in 0..no {
                        logit_sum[kk] += y[kk];
                        target_sum[kk] += tg[kk];
                    }
                }
            }
        }
        seq_right += usize::from(argmax(logit_sum.iter().copied()) == argmax(target_sum.iter().copied()));
    }
    let mean = total / counted.max(1) as f64;
    match loss {
        Loss::Mse => (mean, None),
        Loss::CrossEntropy => {
            (mean, Some((seq_right as f64 / b.max(1) as f64, step_right as f64 / counted.max(1) as f64)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_losses_and_signals() {
        let mut err = [0.0; 2];
        let l = error(Loss::Mse, &[1.0, 2.0], &[0.5, 3.0], &mut err);
        assert_eq!(err, [0.5, -1.0]);
        assert_eq!(l, 0.5 * (0.25 + 1.0));
        let l = error(Loss::CrossEntropy, &[0.0, 0.0], &[1.0, 0.0], &mut err);
        assert_eq!(err, [-0.5, 0.5]);
        assert!((l - 2f64.ln()).abs() < 1e-15);
        let mut s = [0.0; 3];
        transposed_signal(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0, -1.0], &mut s);
        assert_eq!(s, [-3.0, -3.0, -3.0]);
        feedback_signal(&[1.0, 0.0, 0.0, 2.0, 1.0, 1.0], &[3.0, 4.0], &mut s);
        assert_eq!(s, [3.0, 8.0, 7.0]);
        assert!(Loss::parse("l1").is_err());
    }
}
