//! Dense and spike-sparse vector kernels of the per-step loops. Nothing here
//! allocates; callers own every buffer.
//!
//! Traces and eligibilities that decay below the smallest normal double
//! (2.2e-308) are set to zero ([`flush`]). Subnormal arithmetic is up to a
//! hundred times slower on common CPUs, and a silent presynaptic neuron drives
//! its traces into that range within a few thousand steps. The change to any
//! result is below 1e-300 in absolute value.

/// Defines `pub fn $name` that runs `$imp` compiled for AVX2 when the CPU has
/// it and for the baseline otherwise. Both builds do the same IEEE operations in
/// the same order (no FMA, no reassociation), so results are identical.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* pub fn $name:ident($($a:ident: $t:ty),* $(,)?) => $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    #[target_feature(enable = "avx2")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx2($($a: $t),*) {
                        $imp($($a),*)
                    }
                    // SAFETY: the CPU supports AVX2, checked just above.
                    unsafe { avx2($($a),*) };
                    return;
                }
            }
            $imp($($a),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// Contiguous data of an owned array. Every array the core owns is built in
/// standard (row-major) layout, so these never fail.
pub fn flat<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> &[f64] {
    a.as_slice()
        .expect("owned arrays are kept in standard layout")
}

/// Mutable contiguous data of an owned array (see [`flat`]).
pub fn flat_mut<D: ndarray::Dimension>(a: &mut ndarray::Array<f64, D>) -> &mut [f64] {
    a.as_slice_mut()
        .expect("owned arrays are kept in standard layout")
}

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
#[inline(always)]
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
#[inline(always)]
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

#[inline(always)]
fn matvec_imp(w: &[f64], x: &[f64], idx: &[usize], sparse: bool, out: &mut [f64]) {
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

#[inline(always)]
fn trace_rows_imp(tr: &mut [f64], pre: &[f64], psi: &[f64], decay: f64) {
    let cols = pre.len().max(1);
    for (row, &p) in tr.chunks_exact_mut(cols).zip(psi) {
        for (t, &x) in row.iter_mut().zip(pre) {
            *t = flush(decay * *t + p * x);
        }
    }
}

simd_dispatch! {
    /// Low-pass traces of a row-major matrix: `tr_ji <- decay tr_ji + psi_j pre_i`.
    pub fn trace_rows(tr: &mut [f64], pre: &[f64], psi: &[f64], decay: f64) => trace_rows_imp
}

#[inline(always)]
fn trace_elig_rows_imp(tr: &mut [f64], el: &mut [f64], pre: &[f64], psi: &[f64], kappa: f64) {
    let cols = pre.len().max(1);
    for ((tr, el), &p) in tr
        .chunks_exact_mut(cols)
        .zip(el.chunks_exact_mut(cols))
        .zip(psi)
    {
        for ((t, e), &x) in tr.iter_mut().zip(el.iter_mut()).zip(pre) {
            let tn = flush(kappa * *t + p * x);
            *t = tn;
            *e = flush(kappa * *e + tn);
        }
    }
}

simd_dispatch! {
    /// Doubly filtered traces (seed e-prop): `tr <- k tr + psi pre; el <- k el + tr`.
    pub fn trace_elig_rows(tr: &mut [f64], el: &mut [f64], pre: &[f64], psi: &[f64], kappa: f64) => trace_elig_rows_imp
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn trace_elig_learn_rows_imp(
    w: &mut [f64],
    tr: &mut [f64],
    el: &mut [f64],
    pre: &[f64],
    psi: &[f64],
    signal: &[f64],
    kappa: f64,
    lr: f64,
) {
    let cols = pre.len().max(1);
    let rows = w
        .chunks_exact_mut(cols)
        .zip(tr.chunks_exact_mut(cols))
        .zip(el.chunks_exact_mut(cols));
    for (((w, tr), el), (&p, &l)) in rows.zip(psi.iter().zip(signal)) {
        for (((wi, t), e), &x) in w.iter_mut().zip(tr.iter_mut()).zip(el.iter_mut()).zip(pre) {
            let tn = flush(kappa * *t + p * x);
            let en = flush(kappa * *e + tn);
            *t = tn;
            *e = en;
            *wi -= lr * (l * en);
        }
    }
}

simd_dispatch! {
    /// Seed e-prop traces and weight change in one pass over each row j:
    /// `tr <- k tr + psi_j pre; el <- k el + tr; w <- w - lr (signal_j el)`.
    pub fn trace_elig_learn_rows(
        w: &mut [f64],
        tr: &mut [f64],
        el: &mut [f64],
        pre: &[f64],
        psi: &[f64],
        signal: &[f64],
        kappa: f64,
        lr: f64,
    ) => trace_elig_learn_rows_imp
}

simd_dispatch! {
    /// `out = W x` for a row-major `W` with `out.len()` rows (zeros of `x`
    /// skipped when `sparse`, `idx` from [`nonzeros`]).
    pub fn matvec(w: &[f64], x: &[f64], idx: &[usize], sparse: bool, out: &mut [f64]) => matvec_imp
}
