//! Optimization: the update rules (SGD, Adam), their state, the rule that
//! keeps recurrent self-connections at zero, and Kolen-Pollack's coupling of
//! a feedback matrix to the readout weights.
//!
//! Parameters and gradients are passed as lists of flat slices, in a fixed
//! order (the model's), so one rule serves every model.

use ndarray::Array2;

use crate::error::{EpropError, Result};
use crate::real::Real;

/// Adam's constants (Kingma and Ba 2015).
pub const ADAM_BETA1: f64 = 0.9;
pub const ADAM_BETA2: f64 = 0.999;
pub const ADAM_EPS: f64 = 1e-8;

/// Weight update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    Adam,
}

impl Optimizer {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(Optimizer::Sgd),
            "adam" => Ok(Optimizer::Adam),
            o => Err(EpropError::param("optimizer", "'sgd' or 'adam'", format!("'{o}'"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        }
    }
}

/// Optimizer state: the number of updates and, for Adam, the first and
/// second moment estimates of every parameter array (in the model's order).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState<F: Real = f64> {
    pub t: u64,
    pub m: Vec<Vec<F>>,
    pub v: Vec<Vec<F>>,
}

impl<F: Real> OptimState<F> {
    /// A fresh state for parameter arrays of the given lengths.
    pub fn new(optimizer: Optimizer, lens: &[usize]) -> Self {
        let moments = || lens.iter().map(|&n| vec![F::ZERO; n]).collect::<Vec<_>>();
        match optimizer {
            Optimizer::Adam => OptimState { t: 0, m: moments(), v: moments() },
            Optimizer::Sgd => OptimState { t: 0, m: Vec::new(), v: Vec::new() },
        }
    }

    pub fn bytes(&self) -> usize {
        F::BYTES * self.m.iter().chain(&self.v).map(Vec::len).sum::<usize>()
    }
}

/// One update `w <- w - lr g` (SGD) or Adam's, of every array.
pub fn update<F: Real>(
    optimizer: Optimizer,
    lr: F,
    state: &mut OptimState<F>,
    weights: Vec<&mut [F]>,
    grads: Vec<&[F]>,
) {
    state.t += 1;
    let t = state.t as f64;
    match optimizer {
        Optimizer::Adam => {
            let (b1, b2, eps) = (F::of(ADAM_BETA1), F::of(ADAM_BETA2), F::of(ADAM_EPS));
            // bias corrections of the betas as the moments use them (rounded to F)
            let c1 = F::of(1.0 - b1.f64().powf(t));
            let c2 = F::of(1.0 - b2.f64().powf(t));
            for (((w, g), m), v) in weights.into_iter().zip(grads).zip(state.m.iter_mut()).zip(state.v.iter_mut()) {
                for (((wk, &gk), mk), vk) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *mk = b1 * *mk + (F::ONE - b1) * gk;
                    *vk = b2 * *vk + (F::ONE - b2) * gk * gk;
                    *wk -= lr * (*mk / c1) / ((*vk / c2).sqrt() + eps);
                }
            }
        }
        Optimizer::Sgd => {
            for (w, g) in weights.into_iter().zip(grads) {
                for (wk, &gk) in w.iter_mut().zip(g) {
                    *wk -= lr * gk;
                }
            }
        }
    }
}

/// No self-connections: the diagonal of a recurrent weight matrix (or of its
/// gradient) is kept at zero.
pub fn zero_diagonal<F: Real>(w: &mut Array2<F>) {
    w.diag_mut().fill(F::ZERO);
}

/// Kolen-Pollack: the readout `w_out` (n_outputs x n, row-major) has just
/// moved from `old` by an optimizer step D; W_out and the feedback matrix B
/// (n x n_outputs) get the same change and the same decay:
/// `W_out <- (1 - decay) old + D`, `B <- (1 - decay) B + D^T`, so that
/// W_out - B^T shrinks by (1 - decay) per update.
pub fn kolen_pollack<F: Real>(w_out: &mut [F], old: &[F], b: &mut [F], n: usize, decay: F) {
    let keep = F::ONE - decay;
    let no = w_out.len().checked_div(n).unwrap_or(0);
    for k in 0..no {
        for j in 0..n {
            let step = w_out[k * n + j] - old[k * n + j];
            w_out[k * n + j] = keep * old[k * n + j] + step;
            b[j * no + k] = keep * b[j * no + k] + step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_adam_and_kolen_pollack_against_formulas() {
        let g = [0.5, -2.0];
        let mut w = [1.0, 1.0];
        let mut st = OptimState::new(Optimizer::Sgd, &[2]);
        update(Optimizer::Sgd, 0.1, &mut st, vec![&mut w], vec![&g]);
        assert_eq!(w, [1.0 - 0.1 * 0.5, 1.0 + 0.1 * 2.0]);
        let mut w = [1.0, 1.0];
        let mut st = OptimState::new(Optimizer::Adam, &[2]);
        let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
        let mut want = [1.0, 1.0];
        for t in 1..=3 {
            update(Optimizer::Adam, 0.01, &mut st, vec![&mut w], vec![&g]);
            for i in 0..2 {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                want[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
            }
            for i in 0..2 {
                assert!((w[i] - want[i]).abs() < 1e-15);
            }
        }
        assert_eq!(st.t, 3);
        // W_out - B^T shrinks by (1 - decay)
        let old = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 outputs x 3 neurons
        let mut w_out = old.map(|x| x + 0.5);
        let mut b = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 x 2
        let diff0: Vec<f64> = (0..6).map(|i| old[(i % 2) * 3 + i / 2] - b[i]).collect();
        kolen_pollack(&mut w_out, &old, &mut b, 3, 0.1);
        for i in 0..6 {
            let d = w_out[(i % 2) * 3 + i / 2] - b[i];
            assert!((d - 0.9 * diff0[i]).abs() < 1e-12);
        }
        let mut a = Array2::<f64>::ones((3, 3));
        zero_diagonal(&mut a);
        assert_eq!(a.diag().sum(), 0.0);
    }
}
