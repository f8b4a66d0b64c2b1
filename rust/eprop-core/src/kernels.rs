//! Every hot loop of the library, in one place: dense and spike-sparse
//! products, the trace and eligibility updates of the seed rule and of
//! canonical e-prop, the layer update of the seed's feedforward trainer, and
//! the batch mean of weight changes. Nothing here allocates; callers own
//! every buffer. Each `*_imp` function is the portable build; the function of
//! the plain name runs its AVX2 build when the CPU has it (same IEEE
//! operations in the same order, so the results are identical).
//!
//! Every kernel is generic over the float type ([`Real`]: `f64`, `f32`).
//! Traces and eligibilities that decay below the smallest normal value of
//! their type (2.2e-308 in f64, 1.2e-38 in f32) are set to zero
//! ([`flush`]). Subnormal arithmetic is up to a hundred times slower on common
//! CPUs, and a silent presynaptic neuron drives its traces into that range
//! within a few thousand steps. The change to any
//! result is below that value in absolute value.

/// Defines `pub fn $name` that runs `$imp` compiled for AVX2 when the CPU has
/// it and for the baseline otherwise. Both builds do the same IEEE operations in
/// the same order (no FMA, no reassociation), so results are identical.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* pub fn $name:ident / $avx2:ident ($($a:ident: $t:ty),* $(,)?) => $imp:ident) => {
        $crate::kernels::simd_dispatch! { $(#[$m])* pub fn $name / $avx2 <F> ($($a: $t),*) => $imp }
    };
    ($(#[$m:meta])* pub fn $name:ident / $avx2:ident <$f:ident> ($($a:ident: $t:ty),* $(,)?) => $imp:ident) => {
        /// The AVX2 build of the same function (the portable build is `
        #[doc = stringify!($imp)]
        /// `).
        ///
        /// # Safety
        /// The CPU must support AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        pub unsafe fn $avx2<$f: $crate::real::Real>($($a: $t),*) {
            $imp($($a),*)
        }

        $(#[$m])*
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        pub fn $name<$f: $crate::real::Real>($($a: $t),*) {
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

use crate::real::Real;

/// Contiguous data of an owned array. Every array the core owns is built in
/// standard (row-major) layout, so these never fail.
pub fn flat<F: Real, D: ndarray::Dimension>(a: &ndarray::Array<F, D>) -> &[F] {
    a.as_slice().expect("owned arrays are kept in standard layout")
}

/// Mutable contiguous data of an owned array (see [`flat`]).
pub fn flat_mut<F: Real, D: ndarray::Dimension>(a: &mut ndarray::Array<F, D>) -> &mut [F] {
    a.as_slice_mut().expect("owned arrays are kept in standard layout")
}

/// Indices of the non-zero entries of `x`, written into `idx` (cleared first).
/// Returns true when `x` is sparse enough (at most half non-zero) for the
/// gathered dot products to pay off.
#[inline]
pub fn nonzeros<F: Real>(x: &[F], idx: &mut Vec<usize>) -> bool {
    let k = compact(x, idx, |i, _| i);
    2 * k <= x.len()
}

/// `out` (cleared first) gets `f(i, x_i)` for the non-zero `x_i`, in order;
/// returns how many. Branch-free: every entry is written and the count
/// advances only past the non-zero ones (a data-dependent branch per entry
/// would be mispredicted on spike trains).
#[inline]
pub fn compact<F: Real, T: Default>(x: &[F], out: &mut Vec<T>, f: impl Fn(usize, F) -> T) -> usize {
    out.clear();
    out.resize_with(x.len(), T::default);
    let mut k = 0;
    for (i, &v) in x.iter().enumerate() {
        out[k] = f(i, v);
        k += usize::from(v != F::ZERO);
    }
    out.truncate(k);
    k
}

/// Dot product with four partial sums (lets the compiler vectorize).
#[inline(always)]
pub fn dot<F: Real>(a: &[F], b: &[F]) -> F {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [F::ZERO; 4];
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
        s += *x * *y;
    }
    s
}

/// Dot product of `row` with `x`, skipping the zeros of `x` when `sparse`
/// (`idx` from [`nonzeros`]). Skipping a zero term leaves a finite sum unchanged.
#[inline(always)]
pub fn dot_maybe_sparse<F: Real>(row: &[F], x: &[F], idx: &[usize], sparse: bool) -> F {
    if sparse {
        let mut s = F::ZERO;
        for &i in idx {
            s += row[i] * x[i];
        }
        s
    } else {
        dot(row, x)
    }
}

#[inline(always)]
pub(crate) fn matvec_imp<F: Real>(w: &[F], x: &[F], idx: &[usize], sparse: bool, out: &mut [F]) {
    let cols = x.len();
    if cols == 0 {
        out.iter_mut().for_each(|o| *o = F::ZERO);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
        *o = dot_maybe_sparse(row, x, idx, sparse);
    }
}

/// Zero for subnormal values, the value otherwise.
#[inline(always)]
pub fn flush<F: Real>(x: F) -> F {
    if x.abs() < F::MIN_POSITIVE {
        F::ZERO
    } else {
        x
    }
}

#[inline(always)]
pub(crate) fn trace_rows_imp<F: Real>(tr: &mut [F], pre: &[F], psi: &[F], decay: F) {
    let cols = pre.len().max(1);
    for (row, &p) in tr.chunks_exact_mut(cols).zip(psi) {
        for (t, &x) in row.iter_mut().zip(pre) {
            *t = flush(decay * *t + p * x);
        }
    }
}

simd_dispatch! {
    /// Low-pass traces of a row-major matrix: `tr_ji <- decay tr_ji + psi_j pre_i`.
    pub fn trace_rows / trace_rows_avx2(tr: &mut [F], pre: &[F], psi: &[F], decay: F) => trace_rows_imp
}

#[inline(always)]
pub(crate) fn trace_elig_rows_imp<F: Real>(tr: &mut [F], el: &mut [F], pre: &[F], psi: &[F], kappa: F) {
    let cols = pre.len().max(1);
    for ((tr, el), &p) in tr.chunks_exact_mut(cols).zip(el.chunks_exact_mut(cols)).zip(psi) {
        for ((t, e), &x) in tr.iter_mut().zip(el.iter_mut()).zip(pre) {
            let tn = flush(kappa * *t + p * x);
            *t = tn;
            *e = flush(kappa * *e + tn);
        }
    }
}

simd_dispatch! {
    /// Doubly filtered traces (seed e-prop): `tr <- k tr + psi pre; el <- k el + tr`.
    pub fn trace_elig_rows / trace_elig_rows_avx2(tr: &mut [F], el: &mut [F], pre: &[F], psi: &[F], kappa: F) => trace_elig_rows_imp
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn trace_elig_learn_rows_imp<F: Real>(
    w: &mut [F],
    tr: &mut [F],
    el: &mut [F],
    pre: &[F],
    psi: &[F],
    signal: &[F],
    kappa: F,
    lr: F,
) {
    let cols = pre.len().max(1);
    let rows = w.chunks_exact_mut(cols).zip(tr.chunks_exact_mut(cols)).zip(el.chunks_exact_mut(cols));
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
        w: &mut [F],
        tr: &mut [F],
        el: &mut [F],
        pre: &[F],
        psi: &[F],
        signal: &[F],
        kappa: F,
        lr: F,
    ) => trace_elig_learn_rows_imp
}

simd_dispatch! {
    /// `out = W x` for a row-major `W` with `out.len()` rows (zeros of `x`
    /// skipped when `sparse`, `idx` from [`nonzeros`]).
    pub fn matvec / matvec_avx2(w: &[F], x: &[F], idx: &[usize], sparse: bool, out: &mut [F]) => matvec_imp
}

#[inline(always)]
pub(crate) fn matvec_cols_imp<F: Real>(wt: &[F], x: &[F], idx: &[usize], out: &mut [F]) {
    let n = out.len();
    out.iter_mut().for_each(|o| *o = F::ZERO);
    if n == 0 {
        return;
    }
    for &i in idx {
        let xi = x[i];
        for (o, &w) in out.iter_mut().zip(&wt[i * n..(i + 1) * n]) {
            *o += w * xi;
        }
    }
}

simd_dispatch! {
    /// `out = W x` from the transpose `wt` of a row-major `W` (row i of `wt`
    /// is column i of `W`), reading only the columns `idx` (the non-zeros of
    /// `x`, from [`nonzeros`]). Each `out[j]` adds the same terms in the same
    /// order as the sparse [`matvec`], so the two are bitwise equal; this one
    /// reads contiguous memory.
    pub fn matvec_cols / matvec_cols_avx2(wt: &[F], x: &[F], idx: &[usize], out: &mut [F]) => matvec_cols_imp
}

/// `y += a x`, element by element (inlined into the caller's build).
#[inline(always)]
pub(crate) fn axpy<F: Real>(y: &mut [F], a: F, x: &[F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `dst` (cols, rows) = the transpose of the row-major `src` (rows, cols),
/// in cache-sized blocks; within a block, four source rows at a time, so
/// that each write fills four neighbouring values of a destination row
/// (2-4x faster than one value per write for 1024 x 1024 and 1024 x 200).
pub fn transpose<F: Real>(src: &[F], dst: &mut [F], rows: usize, cols: usize) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: buffers too small");
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            let mut r = r0;
            while r + 4 <= r1 {
                let row = |k: usize| &src[(r + k) * cols + c0..(r + k) * cols + c1];
                let (s0, s1, s2, s3) = (row(0), row(1), row(2), row(3));
                for (k, c) in (c0..c1).enumerate() {
                    let d = &mut dst[c * rows + r..c * rows + r + 4];
                    d[0] = s0[k];
                    d[1] = s1[k];
                    d[2] = s2[k];
                    d[3] = s3[k];
                }
                r += 4;
            }
            for r in r..r1 {
                for (c, &v) in (c0..c1).zip(&src[r * cols + c0..r * cols + c1]) {
                    dst[c * rows + r] = v;
                }
            }
        }
    }
}

/// Canonical e-prop eligibility for one presynaptic population (inputs or
/// recurrent), row j:
/// `e = psi_j (pre - beta eps_a_j)` (the eps term for ALIF rows only),
/// `ebar <- kappa ebar + gain e` (gain = 1 - kappa), and when accumulating
/// `grad += L_j ebar + r_j e` and (end-of-sequence regularization) `esum += e`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn elig_rows_imp<F: Real>(
    pre: &[F],
    eps: &[F],
    ebar: &mut [F],
    grad: &mut [F],
    esum: &mut [F],
    (psi, signal, reg): (&[F], &[F], &[F]),
    (first_ad, beta, kappa, gain): (usize, F, F, F),
    (accumulate, sum_e): (bool, bool),
) {
    let cols = pre.len();
    if cols == 0 {
        return;
    }
    for (j, (eb, g)) in ebar.chunks_exact_mut(cols).zip(grad.chunks_exact_mut(cols)).enumerate() {
        let (pj, lj, rj) = (psi[j], signal[j], reg[j]);
        let adaptive = j >= first_ad;
        let eps_row = if adaptive { &eps[(j - first_ad) * cols..(j - first_ad + 1) * cols] } else { pre };
        // For LIF rows eps_row is unused (multiplied by a zero beta below).
        let b = if adaptive { beta } else { F::ZERO };
        let learn = accumulate && (lj != F::ZERO || rj != F::ZERO);
        match (adaptive, learn) {
            (false, false) => {
                for (e, &p) in eb.iter_mut().zip(pre) {
                    *e = flush(kappa * *e + gain * (pj * p));
                }
            }
            (false, true) => {
                for ((e, gi), &p) in eb.iter_mut().zip(g.iter_mut()).zip(pre) {
                    let ei = pj * p;
                    let nb = flush(kappa * *e + gain * ei);
                    *e = nb;
                    *gi += lj * nb + rj * ei;
                }
            }
            (true, false) => {
                for ((e, &p), &ea) in eb.iter_mut().zip(pre).zip(eps_row) {
                    *e = flush(kappa * *e + gain * (pj * (p - b * ea)));
                }
            }
            (true, true) => {
                for (((e, gi), &p), &ea) in eb.iter_mut().zip(g.iter_mut()).zip(pre).zip(eps_row) {
                    let ei = pj * (p - b * ea);
                    let nb = flush(kappa * *e + gain * ei);
                    *e = nb;
                    *gi += lj * nb + rj * ei;
                }
            }
        }
        if sum_e {
            let es = &mut esum[j * cols..(j + 1) * cols];
            if adaptive {
                for ((x, &p), &ea) in es.iter_mut().zip(pre).zip(eps_row) {
                    *x += pj * (p - b * ea);
                }
            } else {
                for (x, &p) in es.iter_mut().zip(pre) {
                    *x += pj * p;
                }
            }
        }
    }
}

simd_dispatch! {
    /// Canonical e-prop eligibility rows (see [`elig_rows_imp`]).
    pub fn elig_rows / elig_rows_avx2(
        pre: &[F],
        eps: &[F],
        ebar: &mut [F],
        grad: &mut [F],
        esum: &mut [F],
        rows: (&[F], &[F], &[F]),
        consts: (usize, F, F, F),
        flags: (bool, bool),
    ) => elig_rows_imp
}

/// The seed's layer update (`OnlineLIFLayer` / `OnlineTrainer`), one pass
/// over each row j: `tr <- decay tr + psi_j x`, `W <- W - lr s_j tr` and, when
/// `project`, `down += W_j s_j` (with the updated W; the caller zeroes
/// `down`). A row of weights that must not change is passed as a copy.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_learn_rows_imp<F: Real>(
    w: &mut [F],
    tr: &mut [F],
    x: &[F],
    (psi, signal): (&[F], &[F]),
    (decay, lr): (F, F),
    down: &mut [F],
    project: bool,
) {
    let ni = x.len().max(1);
    let rows = w.chunks_exact_mut(ni).zip(tr.chunks_exact_mut(ni));
    for ((wr, tr), (&p, &s)) in rows.zip(psi.iter().zip(signal)) {
        if project {
            for (((wi, ti), &xi), di) in wr.iter_mut().zip(tr.iter_mut()).zip(x).zip(down.iter_mut()) {
                let tn = flush(decay * *ti + p * xi);
                let wn = *wi - lr * (s * tn);
                *ti = tn;
                *wi = wn;
                *di += wn * s;
            }
        } else {
            for ((wi, ti), &xi) in wr.iter_mut().zip(tr.iter_mut()).zip(x) {
                let tn = flush(decay * *ti + p * xi);
                *ti = tn;
                *wi -= lr * (s * tn);
            }
        }
    }
}

simd_dispatch! {
    /// The seed's layer update (see [`layer_learn_rows_imp`]).
    pub fn layer_learn_rows / layer_learn_rows_avx2(
        w: &mut [F],
        tr: &mut [F],
        x: &[F],
        rows: (&[F], &[F]),
        consts: (F, F),
        down: &mut [F],
        project: bool,
    ) => layer_learn_rows_imp
}

/// `acc[j, i] += lr (scale[j] m[j, i])` for a row-major `acc` with `cols`
/// columns; `m` has `row_stride` values per row (0: the same vector `m` for
/// every row, which makes the change the outer product `scale m^T`).
pub fn add_scaled_rows<F: Real>(acc: &mut [F], lr: F, scale: &[F], m: &[F], cols: usize, row_stride: usize) {
    if cols == 0 {
        return;
    }
    for (j, (a, &l)) in acc.chunks_exact_mut(cols).zip(scale).enumerate() {
        let row = &m[j * row_stride..j * row_stride + cols];
        for (ai, &e) in a.iter_mut().zip(row) {
            *ai += lr * (l * e);
        }
    }
}

/// Sequence b's change of one row-major matrix (rows x cols) in a batch:
/// element (j, i) is `lr (scale[j] m[j, i])` when `scale` is given, `m[j, i]`
/// otherwise; `m` has `row_stride` values per row (0: the same vector for
/// every row, for outer products).
#[derive(Clone, Copy)]
pub struct Change<'a, F: Real> {
    pub scale: Option<&'a [F]>,
    pub m: &'a [F],
    pub row_stride: usize,
}

impl<'a, F: Real> Change<'a, F> {
    /// `lr (scale[j] m[j, i])`.
    pub fn scaled(scale: &'a [F], m: &'a [F], row_stride: usize) -> Self {
        Change { scale: Some(scale), m, row_stride }
    }

    /// `m[j, i]` (already scaled).
    pub fn plain(m: &'a [F], row_stride: usize) -> Self {
        Change { scale: None, m, row_stride }
    }
}

/// What [`batch_mean`] does with the mean of the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeanInto {
    /// `w -= mean` (apply a mean weight change).
    Subtract,
    /// `w = mean` (a mean gradient).
    Store,
}

const CHUNK: usize = 256;

/// The mean over a batch of B changes of a (rows x cols) matrix `w`, stored
/// or subtracted: parallel over blocks of rows, each element summed over b in
/// order starting from the first term (so B = 1 is bitwise the single change,
/// and no sum depends on the thread count).
pub fn batch_mean<F: Real>(w: &mut [F], cols: usize, lr: F, changes: &[Change<'_, F>], into: MeanInto) {
    use rayon::prelude::*;
    let b = changes.len();
    if cols == 0 || b == 0 {
        return;
    }
    let bf = F::of(b as f64);
    let rows_per_task = (4096 / cols).max(1);
    w.par_chunks_mut(cols * rows_per_task).enumerate().for_each(|(task, block)| {
        let mut acc = [F::ZERO; CHUNK];
        for (r, row) in block.chunks_exact_mut(cols).enumerate() {
            let j = task * rows_per_task + r;
            for start in (0..cols).step_by(CHUNK) {
                let end = (start + CHUNK).min(cols);
                let acc = &mut acc[..end - start];
                for (k, c) in changes.iter().enumerate() {
                    let m = &c.m[j * c.row_stride + start..j * c.row_stride + end];
                    match (c.scale, k) {
                        (Some(sc), 0) => acc.iter_mut().zip(m).for_each(|(a, &x)| *a = lr * (sc[j] * x)),
                        (Some(sc), _) => acc.iter_mut().zip(m).for_each(|(a, &x)| *a += lr * (sc[j] * x)),
                        (None, 0) => acc.copy_from_slice(m),
                        (None, _) => acc.iter_mut().zip(m).for_each(|(a, &x)| *a += x),
                    }
                }
                let out = &mut row[start..end];
                match into {
                    MeanInto::Subtract => {
                        for (wi, &a) in out.iter_mut().zip(acc.iter()) {
                            *wi -= a / bf;
                        }
                    }
                    MeanInto::Store => {
                        for (wi, &a) in out.iter_mut().zip(acc.iter()) {
                            *wi = a / bf;
                        }
                    }
                }
            }
        }
    });
}

/// The instruction set the hot loops run with on this CPU: `"avx2"` (x86-64
/// with AVX2, detected at run time) or `"portable"`; both give bitwise the
/// same results.
pub fn simd_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
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

    /// Bitwise equality of two slices (NaN-free data; f32 widens exactly).
    pub fn same<F: crate::real::Real>(a: &[F], b: &[F], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.f64().to_bits(), y.f64().to_bits(), "{what}: element {i}: {x} vs {y}");
        }
    }

    /// Whether the AVX2 builds can run here (they are checked when they can).
    pub fn avx2() -> bool {
        super::simd_path() == "avx2"
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
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
    fn transpose_of_every_shape() {
        let shapes = [(0, 0), (0, 3), (3, 0), (1, 1), (3, 5), (4, 4), (5, 17), (17, 5), (33, 19), (16, 64), (64, 16)];
        for (rows, cols) in shapes {
            let src: Vec<f64> = (0..rows * cols).map(|i| i as f64 + 0.5).collect();
            let mut dst = vec![f64::NAN; rows * cols];
            transpose(&src, &mut dst, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows} x {cols}: ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn matvec_dense_and_sparse_against_a_plain_loop() {
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            for zeros in [0.0, 0.6, 1.0] {
                let w = values(k as u32, rows * cols, 0.1);
                let x = values(100 + k as u32, cols, zeros);
                let mut idx = Vec::new();
                let sparse = nonzeros(&x, &mut idx);
                let want: Vec<f64> = (0..rows).map(|j| plain_dot(&w[j * cols..(j + 1) * cols], &x)).collect();
                if sparse {
                    // the transposed kernel: bitwise the sparse one
                    let mut wt = vec![0.0; rows * cols];
                    for j in 0..rows {
                        for i in 0..cols {
                            wt[i * rows + j] = w[j * cols + i];
                        }
                    }
                    let mut want_sparse = vec![f64::NAN; rows];
                    matvec_imp(&w, &x, &idx, true, &mut want_sparse);
                    let mut out = vec![f64::NAN; rows];
                    matvec_cols_imp(&wt, &x, &idx, &mut out);
                    same(&out, &want_sparse, "matvec_cols vs sparse matvec");
                    if avx2() {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { matvec_cols_avx2(&wt, &x, &idx, &mut out) };
                        same(&out, &want_sparse, "matvec_cols avx2");
                    }
                }
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
                        trace_elig_learn_rows_avx2(&mut w, &mut tr, &mut el, &pre, &psi, &signal, decay, lr);
                        trace_rows_avx2(&mut tr1, &pre, &psi, decay);
                        trace_elig_rows_avx2(&mut tr2, &mut el2, &pre, &psi, decay);
                    }
                } else {
                    trace_elig_learn_rows_imp(&mut w, &mut tr, &mut el, &pre, &psi, &signal, decay, lr);
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

    /// The float32 builds: both paths bitwise equal (the same IEEE operations
    /// in the same order), and a float32 subnormal is flushed.
    #[test]
    fn float32_kernels_same_on_both_builds() {
        let f32s = |seed, n, zeros| -> Vec<f32> {
            values(seed, n, zeros)
                .iter()
                .map(|&v| if v.abs() < 1e-300 && v != 0.0 { 1e-40 } else { v as f32 })
                .collect()
        };
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            let seed = 500 + 10 * k as u32;
            let (pre, psi, signal) = (f32s(seed, cols, 0.3), f32s(seed + 1, rows, 0.2), f32s(seed + 2, rows, 0.0));
            let (tr0, el0, w0) =
                (f32s(seed + 3, rows * cols, 0.1), f32s(seed + 4, rows * cols, 0.1), f32s(seed + 5, rows * cols, 0.0));
            let mut outs = Vec::new();
            for use_avx in [false, true] {
                if use_avx && !avx2() {
                    continue;
                }
                let (mut tr, mut el, mut w) = (tr0.clone(), el0.clone(), w0.clone());
                let mut idx = Vec::new();
                let sparse = nonzeros(&pre, &mut idx);
                let mut out = vec![0.0f32; rows];
                if use_avx {
                    // SAFETY: avx2() checked the CPU.
                    unsafe {
                        trace_elig_learn_rows_avx2(&mut w, &mut tr, &mut el, &pre, &psi, &signal, 0.93, 0.07);
                        matvec_avx2(&w, &pre, &idx, sparse, &mut out);
                    }
                } else {
                    trace_elig_learn_rows_imp(&mut w, &mut tr, &mut el, &pre, &psi, &signal, 0.93, 0.07);
                    matvec_imp(&w, &pre, &idx, sparse, &mut out);
                }
                outs.push((tr, el, w, out));
            }
            if let [(a, b, c, d), (e, f, g, h)] = &outs[..] {
                for (x, y) in [(a, e), (b, f), (c, g), (d, h)] {
                    assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "float32 builds differ");
                }
            }
            assert!(outs[0].1.iter().all(|v| *v == 0.0 || v.abs() >= f32::MIN_POSITIVE), "subnormal left");
        }
        assert_eq!(flush(1e-40f32), 0.0);
        assert_eq!(flush(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
    }

    #[test]
    fn flush_zeroes_subnormals_only() {
        assert_eq!(flush(1e-310), 0.0);
        assert_eq!(flush(-1e-310), 0.0);
        assert_eq!(flush(f64::MIN_POSITIVE), f64::MIN_POSITIVE);
        assert_eq!(flush(0.5), 0.5);
    }

    #[test]
    fn elig_rows_against_a_plain_loop() {
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            let seed = 500 + 10 * k as u32;
            let first_ad = rows / 2;
            let pre = values(seed, cols, 0.3);
            let eps = values(seed + 1, (rows - first_ad) * cols, 0.1);
            let psi = values(seed + 2, rows, 0.3);
            let signal = values(seed + 3, rows, 0.3);
            let reg = values(seed + 4, rows, 0.5);
            let ebar0 = values(seed + 5, rows * cols, 0.1);
            let grad0 = values(seed + 6, rows * cols, 0.1);
            let esum0 = values(seed + 7, rows * cols, 0.1);
            let (beta, kappa, gain) = (0.4, 0.9, 0.1);
            for (accumulate, sum_e) in [(false, false), (true, false), (true, true)] {
                let (mut eb_w, mut g_w, mut es_w) = (ebar0.clone(), grad0.clone(), esum0.clone());
                for j in 0..rows {
                    for i in 0..cols {
                        let b = if j >= first_ad { beta * eps[(j - first_ad) * cols + i] } else { 0.0 };
                        let e = psi[j] * (pre[i] - b);
                        let e = if j >= first_ad { e } else { psi[j] * pre[i] };
                        let nb = flush(kappa * eb_w[j * cols + i] + gain * e);
                        eb_w[j * cols + i] = nb;
                        if accumulate && (signal[j] != 0.0 || reg[j] != 0.0) {
                            g_w[j * cols + i] += signal[j] * nb + reg[j] * e;
                        }
                        if sum_e {
                            es_w[j * cols + i] += e;
                        }
                    }
                }
                for use_avx in [false, true] {
                    if use_avx && !avx2() {
                        continue;
                    }
                    let (mut eb, mut g, mut es) = (ebar0.clone(), grad0.clone(), esum0.clone());
                    let args = ((&psi[..], &signal[..], &reg[..]), (first_ad, beta, kappa, gain), (accumulate, sum_e));
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { elig_rows_avx2(&pre, &eps, &mut eb, &mut g, &mut es, args.0, args.1, args.2) };
                    } else {
                        elig_rows_imp(&pre, &eps, &mut eb, &mut g, &mut es, args.0, args.1, args.2);
                    }
                    same(&eb, &eb_w, "ebar");
                    same(&g, &g_w, "grad");
                    same(&es, &es_w, "esum");
                }
            }
        }
    }

    #[test]
    fn layer_learn_rows_against_a_plain_loop() {
        for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
            let seed = 700 + 10 * k as u32;
            let x = values(seed, cols, 0.4);
            let psi = values(seed + 1, rows, 0.2);
            let signal = values(seed + 2, rows, 0.2);
            let w0 = values(seed + 3, rows * cols, 0.0);
            let tr0 = values(seed + 4, rows * cols, 0.1);
            let lr = 0.05;
            for project in [false, true] {
                let (mut w_w, mut tr_w) = (w0.clone(), tr0.clone());
                let mut down_w = vec![0.0; cols];
                let mut down_state_w = vec![0.0; cols];
                for j in 0..rows {
                    for i in 0..cols {
                        let t = flush(0.95 * tr_w[j * cols + i] + psi[j] * x[i]);
                        tr_w[j * cols + i] = t;
                        let wn = w_w[j * cols + i] - lr * (signal[j] * t);
                        w_w[j * cols + i] = wn;
                        if project {
                            down_w[i] += wn * signal[j];
                            down_state_w[i] += (w0[j * cols + i] - lr * (signal[j] * t)) * signal[j];
                        }
                    }
                }
                for use_avx in [false, true] {
                    if use_avx && !avx2() {
                        continue;
                    }
                    let (mut w, mut tr) = (w0.clone(), tr0.clone());
                    let mut down = vec![f64::NAN; cols];
                    let mut tr2 = tr0.clone();
                    let mut down2 = vec![f64::NAN; cols];
                    down.fill(0.0);
                    down2.fill(0.0);
                    {
                        let d = if project { &mut down[..] } else { &mut [][..] };
                        let rows_ = (&psi[..], &signal[..]);
                        if use_avx {
                            // SAFETY: avx2() checked the CPU.
                            unsafe { layer_learn_rows_avx2(&mut w, &mut tr, &x, rows_, (0.95, lr), d, project) };
                        } else {
                            layer_learn_rows_imp(&mut w, &mut tr, &x, rows_, (0.95, lr), d, project);
                        }
                    }
                    // fixed weights (the batch path): each row copied and updated on the copy
                    let d2 = if project { &mut down2[..] } else { &mut [][..] };
                    for j in 0..rows {
                        let mut row = w0[j * cols..(j + 1) * cols].to_vec();
                        let tr_row = &mut tr2[j * cols..(j + 1) * cols];
                        let one = (&psi[j..j + 1], &signal[j..j + 1]);
                        layer_learn_rows(&mut row, tr_row, &x, one, (0.95, lr), d2, project);
                    }
                    same(&w, &w_w, "W");
                    same(&tr, &tr_w, "trace");
                    same(&tr2, &tr_w, "trace (state)");
                    if project {
                        same(&down, &down_w, "down");
                        same(&down2, &down_state_w, "down (state)");
                    }
                }
            }
        }
    }
}
