//! Dense and spike-sparse vector kernels of the per-step loops. Nothing here
//! allocates; callers own every buffer.
//!
//! Traces and eligibilities that decay below the smallest normal double
//! (2.2e-308) are set to zero ([`flush`]). Subnormal arithmetic is up to a
//! hundred times slower on common CPUs, and a silent presynaptic neuron drives
//! its traces into that range within a few thousand steps. The change to any
//! result is below 1e-300 in absolute value.

/// Indices of the non-zero entries of `x`, written into `idx` (cleared first).
/// Returns true when `x` is sparse enough (at most half non-zero) for the
/// gathered dot products to pay off.
#[inline]
pub fn nonzeros(x: &[f64], idx: &mut Vec<usize>) -> bool {
    idx.clear();
    idx.extend(
        x.iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, _)| i),
    );
    2 * idx.len() <= x.len()
}

/// Dot product with four partial sums (lets the compiler vectorize).
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// Dot product of `row` with `x`, skipping the zeros of `x` when `sparse`
/// (`idx` from [`nonzeros`]). Skipping a zero term leaves a finite sum unchanged.
#[inline]
pub fn dot_maybe_sparse(row: &[f64], x: &[f64], idx: &[usize], sparse: bool) -> f64 {
    if sparse {
        let mut s = 0.0;
        for &i in idx {
            s += row[i] * x[i];
        }
        s
    } else {
        dot(row, x)
    }
}

/// `out = W x` for a row-major `W` with `out.len()` rows.
pub fn matvec(w: &[f64], x: &[f64], idx: &[usize], sparse: bool, out: &mut [f64]) {
    let cols = x.len();
    if cols == 0 {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
        *o = dot_maybe_sparse(row, x, idx, sparse);
    }
}

/// Zero for subnormal values, the value otherwise.
#[inline(always)]
pub fn flush(x: f64) -> f64 {
    if x.abs() < f64::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// Low-pass trace of one row: `tr_i <- decay tr_i + psi pre_i`.
#[inline]
pub fn trace_row(tr: &mut [f64], pre: &[f64], psi: f64, decay: f64) {
    for (t, &p) in tr.iter_mut().zip(pre) {
        *t = flush(decay * *t + psi * p);
    }
}

/// Doubly filtered row (seed e-prop): `tr <- k tr + psi pre; el <- k el + tr`.
#[inline]
pub fn trace_elig_row(tr: &mut [f64], el: &mut [f64], pre: &[f64], psi: f64, kappa: f64) {
    for ((t, e), &p) in tr.iter_mut().zip(el.iter_mut()).zip(pre) {
        let tn = flush(kappa * *t + psi * p);
        *t = tn;
        *e = flush(kappa * *e + tn);
    }
}

/// Seed e-prop row, traces and weight change in one pass:
/// `tr <- k tr + psi pre; el <- k el + tr; w <- w - lr (signal el)`.
#[inline]
pub fn trace_elig_learn_row(
    w: &mut [f64],
    tr: &mut [f64],
    el: &mut [f64],
    pre: &[f64],
    psi: f64,
    kappa: f64,
    lr: f64,
    signal: f64,
) {
    for (((wi, t), e), &p) in w.iter_mut().zip(tr.iter_mut()).zip(el.iter_mut()).zip(pre) {
        let tn = flush(kappa * *t + psi * p);
        let en = flush(kappa * *e + tn);
        *t = tn;
        *e = en;
        *wi -= lr * (signal * en);
    }
}
