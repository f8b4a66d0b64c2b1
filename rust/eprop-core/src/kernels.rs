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
    ($(#[$m:meta])* pub fn $name:ident / $avx2:ident ($($a:ident: $t:ty),* $(,)?) => $imp:ident) => {
        /// The AVX2 build of the same function (the portable build is `
        #[doc = stringify!($imp)]
        /// `).
        ///
        /// # Safety
        /// The CPU must support AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $avx2($($a: $t),*) {
            $imp($($a),*)
        }

        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    unsafe { $avx2($($a),*) };
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
pub(crate) fn matvec_imp(w: &[f64], x: &[f64], idx: &[usize], sparse: bool, out: &mut [f64]) {
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
pub(crate) fn trace_rows_imp(tr: &mut [f64], pre: &[f64], psi: &[f64], decay: f64) {
    let cols = pre.len().max(1);
    for (row, &p) in tr.chunks_exact_mut(cols).zip(psi) {
        for (t, &x) in row.iter_mut().zip(pre) {
            *t = flush(decay * *t + p * x);
        }
    }
}

simd_dispatch! {
    /// Low-pass traces of a row-major matrix: `tr_ji <- decay tr_ji + psi_j pre_i`.
    pub fn trace_rows / trace_rows_avx2(tr: &mut [f64], pre: &[f64], psi: &[f64], decay: f64) => trace_rows_imp
}

#[inline(always)]
pub(crate) fn trace_elig_rows_imp(
    tr: &mut [f64],
    el: &mut [f64],
    pre: &[f64],
    psi: &[f64],
    kappa: f64,
) {
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
    pub fn trace_elig_rows / trace_elig_rows_avx2(tr: &mut [f64], el: &mut [f64], pre: &[f64], psi: &[f64], kappa: f64) => trace_elig_rows_imp
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn trace_elig_learn_rows_imp(
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
    pub fn trace_elig_learn_rows / trace_elig_learn_rows_avx2(
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
    pub fn matvec / matvec_avx2(w: &[f64], x: &[f64], idx: &[usize], sparse: bool, out: &mut [f64]) => matvec_imp
}

/// Test data and the check that runs a kernel on both builds.
#[cfg(test)]
pub(crate) mod testing {
    use crate::rng::LegacyRng;

    /// `n` values in [-1, 1) from `seed`, about `zeros` of them exactly 0 and
    /// a few tiny (1e-310, subnormal once multiplied).
    pub fn values(seed: u32, n: usize, zeros: f64) -> Vec<f64> {
        let mut r = LegacyRng::new(seed);
        (0..n)
            .map(|_| {
                let u = r.next_f64();
                if u < zeros {
                    0.0
                } else if u < zeros + 0.02 {
                    1e-310
                } else {
                    2.0 * r.next_f64() - 1.0
                }
            })
            .collect()
    }

    /// Shapes (rows, cols) that exercise every remainder of 4-wide loops.
    pub const SHAPES: [(usize, usize); 6] = [(1, 1), (2, 3), (3, 5), (7, 33), (16, 64), (5, 0)];

    /// Bitwise equality of two slices (NaN-free data).
    pub fn same(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
        }
    }

    /// Whether the AVX2 builds can run here (they are checked when they can).
    pub fn avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{avx2, same, values, SHAPES};
    use super::*;

    fn plain_dot(a: &[f64], b: &[f64]) -> f64 {
        let mut s = 0.0;
        for (x, y) in a.iter().zip(b) {
            s += x * y;
        }
        s
    }

    #[test]
    fn matvec_dense_and_sparse_against_a_plain_loop() {
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            for zeros in [0.0, 0.6, 1.0] {
                let w = values(k as u32, rows * cols, 0.1);
                let x = values(100 + k as u32, cols, zeros);
                let mut idx = Vec::new();
                let sparse = nonzeros(&x, &mut idx);
                let want: Vec<f64> = (0..rows)
                    .map(|j| plain_dot(&w[j * cols..(j + 1) * cols], &x))
                    .collect();
                for use_sparse in [false, sparse] {
                    let mut out = vec![f64::NAN; rows];
                    matvec_imp(&w, &x, &idx, use_sparse, &mut out);
                    for (o, e) in out.iter().zip(&want) {
                        assert!((o - e).abs() <= 1e-12 * (1.0 + e.abs()), "{o} vs {e}");
                    }
                    if avx2() {
                        let mut out2 = vec![f64::NAN; rows];
                        // SAFETY: avx2() checked the CPU.
                        unsafe { matvec_avx2(&w, &x, &idx, use_sparse, &mut out2) };
                        same(&out2, &out, "matvec avx2 vs portable");
                    }
                }
            }
        }
    }

    #[test]
    fn trace_kernels_against_plain_loops() {
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            let seed = 10 * k as u32;
            let pre = values(seed, cols, 0.3);
            let psi = values(seed + 1, rows, 0.2);
            let signal = values(seed + 2, rows, 0.0);
            let tr0 = values(seed + 3, rows * cols, 0.1);
            let el0 = values(seed + 4, rows * cols, 0.1);
            let w0 = values(seed + 5, rows * cols, 0.0);
            let (decay, lr) = (0.93, 0.07);
            // plain loops
            let (mut tr_w, mut el_w, mut w_w) = (tr0.clone(), el0.clone(), w0.clone());
            for j in 0..rows {
                for i in 0..cols {
                    let t = flush(decay * tr_w[j * cols + i] + psi[j] * pre[i]);
                    let e = flush(decay * el_w[j * cols + i] + t);
                    tr_w[j * cols + i] = t;
                    el_w[j * cols + i] = e;
                    w_w[j * cols + i] -= lr * (signal[j] * e);
                }
            }
            let mut tr_only = tr0.clone();
            for j in 0..rows {
                for i in 0..cols {
                    tr_only[j * cols + i] = flush(decay * tr_only[j * cols + i] + psi[j] * pre[i]);
                }
            }
            type Paths = Vec<(&'static str, bool)>;
            let paths: Paths = vec![("portable", false), ("avx2", true)];
            for (name, use_avx) in paths {
                if use_avx && !avx2() {
                    continue;
                }
                let (mut tr, mut el, mut w) = (tr0.clone(), el0.clone(), w0.clone());
                let mut tr1 = tr0.clone();
                let (mut tr2, mut el2) = (tr0.clone(), el0.clone());
                if use_avx {
                    // SAFETY: avx2() checked the CPU.
                    unsafe {
                        trace_elig_learn_rows_avx2(
                            &mut w, &mut tr, &mut el, &pre, &psi, &signal, decay, lr,
                        );
                        trace_rows_avx2(&mut tr1, &pre, &psi, decay);
                        trace_elig_rows_avx2(&mut tr2, &mut el2, &pre, &psi, decay);
                    }
                } else {
                    trace_elig_learn_rows_imp(
                        &mut w, &mut tr, &mut el, &pre, &psi, &signal, decay, lr,
                    );
                    trace_rows_imp(&mut tr1, &pre, &psi, decay);
                    trace_elig_rows_imp(&mut tr2, &mut el2, &pre, &psi, decay);
                }
                same(&tr, &tr_w, name);
                same(&el, &el_w, name);
                same(&w, &w_w, name);
                same(&tr1, &tr_only, name);
                same(&tr2, &tr_w, name);
                same(&el2, &el_w, name);
            }
        }
    }

    #[test]
    fn flush_zeroes_subnormals_only() {
        assert_eq!(flush(1e-310), 0.0);
        assert_eq!(flush(-1e-310), 0.0);
        assert_eq!(flush(f64::MIN_POSITIVE), f64::MIN_POSITIVE);
        assert_eq!(flush(0.5), 0.5);
    }
}
