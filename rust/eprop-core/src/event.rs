//! Event-driven canonical e-prop, exact: each synapse is touched only when
//! its presynaptic unit is active (an input that is not zero, a neuron that
//! spiked at the previous step), not at every step.
//!
//! Between two events of presynaptic unit i its trace only decays,
//! `zbar_i(s) = A_i alpha^s` (times counted from a moving origin, s >= 1),
//! and the ALIF vector is `eps_ji(s) = P_j(s) (A_i D_j(s) + B_ji)` with
//! `P_j(s) = prod_{r<=s} (rho - beta psi_j(r-1))` and
//! `D_j(s) = sum_{r<=s} psi_j(r-1) alpha^(r-1) / P_j(r)`. So the
//! eligibility of every synapse of row j is a combination of two functions
//! of the row alone,
//! ```text
//! e_ji(s) = A_i f1_j(s) - B_ji f2_j(s),
//! f1_j(s) = psi_j(s) (alpha^s - beta_j P_j(s) D_j(s)),   f2_j(s) = beta_j psi_j(s) P_j(s)
//! ```
//! (beta_j = 0 for LIF rows), and the filtered eligibility, the gradient sum
//! and the sum of e over the sequence follow from running sums per row:
//! ```text
//! ebar_ji(t) = kappa^t (X_ji + g (A_i F1_j(t) - B_ji F2_j(t)))          g = 1 - kappa
//! grad_ji(t) = Y_ji + X_ji K_j(t) + g (A_i G1_j(t) - B_ji G2_j(t)) + A_i R1_j(t) - B_ji R2_j(t)
//! esum_ji(t) = W_ji + A_i S1_j(t) - B_ji S2_j(t)
//! Fk = sum_s kappa^-s fk(s),  K = sum_s kappa^s L(s),  Gk = sum_s kappa^s L(s) Fk(s),
//! Rk = sum_s r(s) fk(s),      Sk = sum_s fk(s) (steps whose e is summed)
//! ```
//! (L the learning signal, r the online regularization signal). An event of
//! unit i (value p at step s) adds `delta = p alpha^-s` to A_i; keeping every
//! ebar, grad and esum unchanged then changes X, Y, W and B of column i by
//! delta times coefficients of the row: a rank-one update of one column.
//!
//! At the origin (s = 0, all sums zero, P = 1) the encoded values are the
//! plain ones: X = ebar, Y = grad, W = esum, B = eps, A = zbar. Settling
//! ([`Lazy::settle`]) writes the plain values of every synapse and moves
//! the origin to the current step. It happens at the end of every call that
//! runs steps, before each weight update and whenever state is read, and
//! whenever a power since the origin would exceed [`LIMIT`] (alpha^-s,
//! kappa^-s, 1/P): with the origin at most that far back, cancellation in
//! one running sum costs at most ~LIMIT ulps, and in a product of two of them
//! (`X_ji K_j`, `A_i G1_j`) ~LIMIT^2 ulps, so results match the dense kernel
//! to ~1e-11 relative on streams of any length (with LIMIT = 1024, an ALIF
//! network with a low threshold and a long adaptation time constant found
//! by the property tests was 5e-10 off). A step whose factor
//! rho - beta psi would shrink P by more than LIMIT at once (only with a
//! very large beta) runs densely. In float32 the limit is [`LIMIT_F32`]:
//! with 24 bits, ~1024 ulps would be a 1e-4 error.

use crate::kernels::{axpy, compact, flat_mut, flush, transpose};
use crate::real::Real;

/// Largest power (alpha^-s, kappa^-s, 1/P) allowed before the origin moves
/// (256^2 ulps ~ 1.5e-11).
pub const LIMIT: f64 = 256.0;

/// [`LIMIT`] in float32: the origin moves 2.5x as often (every ~55 steps at
/// tau = 20 ms), and the event path stays within ~2e-6 of the dense one
/// (with 1024: ~2e-4).
pub const LIMIT_F32: f64 = 16.0;

/// The limit for values of type `F`.
fn limit<F: Real>() -> f64 {
    if F::BYTES < 8 {
        LIMIT_F32
    } else {
        LIMIT
    }
}

/// [`LIMIT`] of the seed rule's event-driven form: its doubly filtered
/// traces (gain ~ 1 / (1 - kappa)^2) and per-step weight changes make the
/// encoded weights the difference of larger terms, so the origin moves sooner.
pub const SEED_LIMIT: f64 = 8.0;

/// Fewest steps between forced settles for the event path to be used at all.
pub const MIN_SPAN: u32 = 4;

/// Steps after which `decay^-steps` would exceed `limit` (how far back the
/// origin may lie); None when that is fewer than [`MIN_SPAN`] steps (or the
/// decay is not in (0, 1]), so that the event-driven form cannot gain.
fn span_within(decay: f64, limit: f64) -> Option<u32> {
    if !(decay > 0.0 && decay <= 1.0) {
        return None;
    }
    let per_step = -decay.ln();
    let span = if per_step <= 0.0 { u32::MAX } else { (limit.ln() / per_step).floor().min(1e9) as u32 };
    (span >= MIN_SPAN).then_some(span)
}

/// The four synapse arrays of one presynaptic population (inputs or
/// recurrent), row-major (n, cols): filtered eligibility, gradient sum, sum
/// of e (empty when not kept) and the ALIF vectors (n_adaptive, cols).
pub struct Synapses<'a, F: Real = f64> {
    pub ebar: &'a mut [F],
    pub grad: &'a mut [F],
    pub esum: &'a mut [F],
    pub eps: &'a mut [F],
    pub cols: usize,
}

impl<'a, F: Real> Synapses<'a, F> {
    /// The arrays of one population (`esum` empty when not kept).
    pub fn of(
        ebar: &'a mut ndarray::Array2<F>,
        grad: &'a mut ndarray::Array2<F>,
        esum: &'a mut ndarray::Array2<F>,
        eps: &'a mut ndarray::Array2<F>,
    ) -> Self {
        let cols = ebar.ncols();
        Synapses { ebar: flat_mut(ebar), grad: flat_mut(grad), esum: flat_mut(esum), eps: flat_mut(eps), cols }
    }
}

/// The encoded values of one population, transposed (row i: the synapses of
/// presynaptic unit i), so that an event updates contiguous memory.
#[derive(Clone, Debug, PartialEq)]
struct Columns<F: Real = f64> {
    cols: usize,
    /// X, Y, W (cols, n) and B (cols, n_adaptive).
    x: Vec<F>,
    y: Vec<F>,
    w: Vec<F>,
    b: Vec<F>,
    /// A_i.
    a: Vec<F>,
    /// Active units of this step and their increments.
    events: Vec<(usize, F)>,
}

impl<F: Real> Columns<F> {
    fn new(cols: usize, n: usize, na: usize, keep_esum: bool) -> Self {
        Columns {
            cols,
            x: vec![F::ZERO; cols * n],
            y: vec![F::ZERO; cols * n],
            w: vec![F::ZERO; if keep_esum { cols * n } else { 0 }],
            b: vec![F::ZERO; cols * na],
            a: vec![F::ZERO; cols],
            events: Vec::with_capacity(cols),
        }
    }

    fn bytes(&self) -> usize {
        F::BYTES * (self.x.len() + self.y.len() + self.w.len() + self.b.len() + self.a.len())
            + 16 * self.events.capacity()
    }

    /// The plain values of `syn` (and `zbar` as A), transposed in.
    fn load(&mut self, syn: &Synapses<'_, F>, zbar: &[F], n: usize, fa: usize) {
        let cols = self.cols;
        transpose(syn.ebar, &mut self.x, n, cols);
        transpose(syn.grad, &mut self.y, n, cols);
        if !self.w.is_empty() {
            transpose(syn.esum, &mut self.w, n, cols);
        }
        transpose(syn.eps, &mut self.b, n - fa, cols);
        self.a.copy_from_slice(zbar);
    }

    /// The values transposed back out to `syn`.
    fn store(&self, syn: Synapses<'_, F>, n: usize, fa: usize) {
        let cols = self.cols;
        transpose(&self.x, syn.ebar, cols, n);
        transpose(&self.y, syn.grad, cols, n);
        if !self.w.is_empty() {
            transpose(&self.w, syn.esum, cols, n);
        }
        transpose(&self.b, syn.eps, cols, n - fa);
    }

    /// The non-zero values of `pre` as events of increment `pre_i * scale`.
    fn collect(&mut self, pre: &[F], scale: F) {
        events_of(pre, scale, &mut self.events);
    }
}

/// The non-zero entries of `pre` as `(i, pre_i * scale)`, in order, into
/// `events` (cleared first).
fn events_of<F: Real>(pre: &[F], scale: F, events: &mut Vec<(usize, F)>) {
    compact(pre, events, |i, v| (i, v * scale));
}

/// Running sums of the event-driven path (see the module documentation),
/// and the encoded synapse values it works on during a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Lazy<F: Real = f64> {
    alpha: F,
    kappa: F,
    rho: F,
    beta: F,
    first_adaptive: usize,
    /// Steps since the origin.
    span: u32,
    /// Steps after which the origin must move.
    max_span: u32,
    /// Whether `inp` and `rec` hold the encoded values (false: the plain
    /// arrays of the sequence are current and must be loaded first).
    loaded: bool,
    p: Vec<F>,
    d: Vec<F>,
    f1: Vec<F>,
    f2: Vec<F>,
    k: Vec<F>,
    g1: Vec<F>,
    g2: Vec<F>,
    r1: Vec<F>,
    r2: Vec<F>,
    s1: Vec<F>,
    s2: Vec<F>,
    /// Per-row coefficients of an event: X, Y, W and B.
    cx: Vec<F>,
    cy: Vec<F>,
    cw: Vec<F>,
    cb: Vec<F>,
    /// The powers a step uses, by steps since the origin s (up to
    /// [`POWERS_KEPT`]): alpha^s, alpha^-s, kappa^s, kappa^-s (each `powi`,
    /// so bitwise what computing them at each step gives).
    powers: std::sync::Arc<[[F; 4]]>,
    inp: Columns<F>,
    rec: Columns<F>,
}

/// Most entries of [`Lazy`]'s table of powers; steps further from the
/// origin (only with slow decays) compute theirs.
const POWERS_KEPT: u32 = 1024;

impl<F: Real> Lazy<F> {
    /// Buffers for `n` neurons (the last `n - first_adaptive` ALIF) and
    /// `n_in` inputs (`keep_esum`: the sums of e are kept); None when a decay
    /// per step is so fast that the origin would have to move more often
    /// than every [`MIN_SPAN`] steps.
    pub fn new(
        (n_in, n, first_adaptive): (usize, usize, usize),
        (alpha, kappa, rho, beta): (F, F, F, F),
        keep_esum: bool,
    ) -> Option<Self> {
        let max_span = span_within(alpha.min(kappa).f64(), limit::<F>())?;
        let z = || vec![F::ZERO; n];
        let na = n - first_adaptive;
        Some(Lazy {
            alpha,
            kappa,
            rho,
            beta,
            first_adaptive,
            span: 0,
            max_span,
            loaded: false,
            p: vec![F::ONE; n],
            d: z(),
            f1: z(),
            f2: z(),
            k: z(),
            g1: z(),
            g2: z(),
            r1: z(),
            r2: z(),
            s1: z(),
            s2: z(),
            cx: z(),
            cy: z(),
            cw: z(),
            cb: z(),
            powers: (0..=max_span.min(POWERS_KEPT) as i32)
                .map(|s| [alpha.powi(s), alpha.powi(-s), kappa.powi(s), kappa.powi(-s)])
                .collect(),
            inp: Columns::new(n_in, n, na, keep_esum),
            rec: Columns::new(n, n, na, keep_esum),
        })
    }

    /// Bytes of the buffers.
    pub fn bytes(&self) -> usize {
        F::BYTES * (15 * self.p.len() + 4 * self.powers.len())
            + self.inp.bytes()
            + self.rec.bytes()
            + std::mem::size_of::<Self>()
    }

    /// alpha^s, alpha^-s, kappa^s, kappa^-s for `s` steps since the origin.
    fn powers(&self, s: u32) -> [F; 4] {
        match self.powers.get(s as usize) {
            Some(&p) => p,
            None => {
                let s = s as i32;
                [self.alpha.powi(s), self.alpha.powi(-s), self.kappa.powi(s), self.kappa.powi(-s)]
            }
        }
    }

    /// The indices of this step's active inputs and neurons (the events of
    /// [`Self::begin_step`], in order: what `kernels::nonzeros` finds).
    pub fn active(&self, inp: &mut Vec<usize>, rec: &mut Vec<usize>) {
        for (out, c) in [(inp, &self.inp), (rec, &self.rec)] {
            out.clear();
            out.extend(c.events.iter().map(|e| e.0));
        }
    }

    /// Whether the encoded values are loaded.
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Zero running sums: the origin is now.
    fn reset_sums(&mut self) {
        self.span = 0;
        self.p.fill(F::ONE);
        for v in [
            &mut self.d,
            &mut self.f1,
            &mut self.f2,
            &mut self.k,
            &mut self.g1,
            &mut self.g2,
            &mut self.r1,
            &mut self.r2,
            &mut self.s1,
            &mut self.s2,
        ] {
            v.fill(F::ZERO);
        }
    }

    /// Loads the plain values of both populations (`zbar_in`, `zbar_rec`:
    /// the presynaptic traces now) with the origin at now.
    pub fn load(&mut self, inp: &Synapses<'_, F>, rec: &Synapses<'_, F>, zbar_in: &[F], zbar_rec: &[F]) {
        let (n, fa) = (self.p.len(), self.first_adaptive);
        self.inp.load(inp, zbar_in, n, fa);
        self.rec.load(rec, zbar_rec, n, fa);
        self.reset_sums();
        self.loaded = true;
    }

    /// Whether the next step, whose ALIF factors are `rho - beta psi_prev`,
    /// keeps every power within [`LIMIT`] (float32: [`LIMIT_F32`]) of the origin.
    pub fn fits(&self, psi_prev: &[F]) -> bool {
        if self.span >= self.max_span {
            return false;
        }
        let fa = self.first_adaptive;
        psi_prev[fa..].iter().zip(&self.p[fa..]).all(|(&ps, &p)| {
            let q = (p * (self.rho - self.beta * ps)).abs();
            (F::of(1.0 / limit::<F>())..=F::of(limit::<F>())).contains(&q)
        })
    }

    /// Moves the origin to now, in place: the encoded values become the
    /// plain ones (`zbar_in`, `zbar_rec`: the presynaptic traces now).
    pub fn renormalize(&mut self, zbar_in: &[F], zbar_rec: &[F]) {
        if self.span > 0 {
            let mut inp = std::mem::replace(&mut self.inp, Columns::new(0, 0, 0, false));
            let mut rec = std::mem::replace(&mut self.rec, Columns::new(0, 0, 0, false));
            self.materialize(&mut inp);
            self.materialize(&mut rec);
            self.inp = inp;
            self.rec = rec;
        }
        self.inp.a.copy_from_slice(zbar_in);
        self.rec.a.copy_from_slice(zbar_rec);
        self.reset_sums();
    }

    /// Writes the plain values back to the sequence's arrays; afterwards
    /// they are current and the encoded values must be loaded again.
    pub fn settle(&mut self, inp: Synapses<'_, F>, rec: Synapses<'_, F>, zbar_in: &[F], zbar_rec: &[F]) {
        if !self.loaded {
            return;
        }
        self.renormalize(zbar_in, zbar_rec);
        let (n, fa) = (self.p.len(), self.first_adaptive);
        self.inp.store(inp, n, fa);
        self.rec.store(rec, n, fa);
        self.loaded = false;
    }

    /// Start of a step with an event-driven eligibility: advances P and D
    /// with `psi_prev` (psi of the previous step), then applies the events
    /// of this step: inputs `x` that are not zero, neurons that spiked at
    /// the previous step (`z_prev`). Requires [`Self::loaded`] and [`Self::fits`].
    pub fn begin_step(&mut self, psi_prev: &[F], x: &[F], z_prev: &[F]) {
        self.span += 1;
        let fa = self.first_adaptive;
        let a_prev = self.powers(self.span - 1)[0];
        for ((p, d), &ps) in self.p[fa..].iter_mut().zip(&mut self.d[fa..]).zip(&psi_prev[fa..]) {
            *p *= self.rho - self.beta * ps;
            *d += ps * a_prev / *p;
        }
        let inv = self.powers(self.span)[1];
        self.inp.collect(x, inv);
        self.rec.collect(z_prev, inv);
        if self.inp.events.is_empty() && self.rec.events.is_empty() {
            return;
        }
        let g = F::ONE - self.kappa;
        coefficients_lif(
            (&self.f1[..fa], &self.k[..fa], &self.g1[..fa], &self.r1[..fa], &self.s1[..fa]),
            g,
            (&mut self.cx[..fa], &mut self.cy[..fa], &mut self.cw[..fa]),
        );
        coefficients(
            (&self.d[fa..], &self.f1[fa..], &self.f2[fa..], &self.k[fa..], &self.g1[fa..], &self.g2[fa..]),
            (&self.r1[fa..], &self.r2[fa..], &self.s1[fa..], &self.s2[fa..]),
            g,
            (&mut self.cx[fa..], &mut self.cy[fa..], &mut self.cw[fa..], &mut self.cb[fa..]),
        );
        let c = (&self.cx[..], &self.cy[..], &self.cw[..], &self.cb[fa..]);
        apply_events(&mut self.inp, c);
        apply_events(&mut self.rec, c);
    }

    /// End of a step: adds the step's terms to the running sums, given the
    /// new psi, the learning signal, the regularization signal and whether
    /// the step's e is summed (the sequence form of the regularization).
    /// `with_reg`: whether `reg` holds a signal (else it is zero and the
    /// regularization sums are left as they are).
    pub fn end_step(&mut self, psi: &[F], signal: &[F], reg: &[F], (with_reg, sum_e): (bool, bool)) {
        let [ap, _, kp, kn] = self.powers(self.span);
        let fa = self.first_adaptive;
        let flags = (with_reg, sum_e);
        add_step_lif(
            (&psi[..fa], &signal[..fa], &reg[..fa]),
            (&mut self.f1[..fa], &mut self.k[..fa], &mut self.g1[..fa], &mut self.r1[..fa], &mut self.s1[..fa]),
            (ap, kp, kn),
            flags,
        );
        add_step(
            (&psi[fa..], &signal[fa..], &reg[fa..], &self.p[fa..], &self.d[fa..]),
            (&mut self.f1[fa..], &mut self.f2[fa..], &mut self.k[fa..]),
            (&mut self.g1[fa..], &mut self.g2[fa..], &mut self.r1[fa..], &mut self.r2[fa..]),
            (&mut self.s1[fa..], &mut self.s2[fa..]),
            (ap, kp, kn, self.beta),
            flags,
        );
    }

    /// Turns the encoded values of `c` into plain values at the current step.
    fn materialize(&self, c: &mut Columns<F>) {
        let n = self.p.len();
        if c.cols == 0 || n == 0 {
            return;
        }
        let g = F::ONE - self.kappa;
        let kp = self.powers(self.span)[2];
        let fa = self.first_adaptive;
        let na = n - fa;
        let keep_esum = !c.w.is_empty();
        for i in 0..c.cols {
            let ai = c.a[i];
            let row = i * n..(i + 1) * n;
            let (xr, yr) = (&mut c.x[row.clone()], &mut c.y[row.clone()]);
            let br = &mut c.b[i * na..(i + 1) * na];
            // LIF rows
            let lif = (&self.f1[..fa], &self.k[..fa], &self.g1[..fa], &self.r1[..fa]);
            for ((x, y), (((&f1, &k), &g1), &r1)) in
                xr[..fa].iter_mut().zip(yr[..fa].iter_mut()).zip(lif.0.iter().zip(lif.1).zip(lif.2).zip(lif.3))
            {
                *y += *x * k + g * (ai * g1) + ai * r1;
                *x = flush(kp * (*x + g * (ai * f1)));
            }
            // ALIF rows
            let (f1, f2, k) = (&self.f1[fa..], &self.f2[fa..], &self.k[fa..]);
            let (g1, g2, r1, r2) = (&self.g1[fa..], &self.g2[fa..], &self.r1[fa..], &self.r2[fa..]);
            for m in 0..na {
                let (x, y, b) = (&mut xr[fa + m], &mut yr[fa + m], br[m]);
                *y += *x * k[m] + g * (ai * g1[m] - b * g2[m]) + ai * r1[m] - b * r2[m];
                *x = flush(kp * (*x + g * (ai * f1[m] - b * f2[m])));
            }
            if keep_esum {
                let wr = &mut c.w[row];
                for (w, &s1) in wr[..fa].iter_mut().zip(&self.s1[..fa]) {
                    *w += ai * s1;
                }
                for m in 0..na {
                    wr[fa + m] += ai * self.s1[fa + m] - br[m] * self.s2[fa + m];
                }
            }
            for ((b, &p), &d) in br.iter_mut().zip(&self.p[fa..]).zip(&self.d[fa..]) {
                *b = flush(p * (ai * d + *b));
            }
        }
    }
}

type Rows<'a, F> = &'a [F];
type RowsMut<'a, F> = &'a mut [F];

#[inline(always)]
#[allow(clippy::type_complexity)]
fn coefficients_imp<F: Real>(
    (d, f1, f2, k, g1, g2): (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
    (r1, r2, s1, s2): (Rows<F>, Rows<F>, Rows<F>, Rows<F>),
    g: F,
    (cx, cy, cw, cb): (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
) {
    let n = cx.len();
    // equal lengths up front, so that the loop runs without bounds checks and vectorizes
    let (d, f1, f2, k, g1, g2) = (&d[..n], &f1[..n], &f2[..n], &k[..n], &g1[..n], &g2[..n]);
    let (r1, r2, s1, s2) = (&r1[..n], &r2[..n], &s1[..n], &s2[..n]);
    let (cy, cw, cb) = (&mut cy[..n], &mut cw[..n], &mut cb[..n]);
    for j in 0..n {
        let dj = d[j];
        let phi = f1[j] + dj * f2[j];
        cx[j] = -g * phi;
        cy[j] = -(g * (g1[j] + dj * g2[j] - phi * k[j]) + r1[j] + dj * r2[j]);
        cw[j] = -(s1[j] + dj * s2[j]);
        cb[j] = -dj;
    }
}

/// [`coefficients_imp`] for LIF rows (beta = 0: D, F2, G2, R2 and S2 are
/// zero there, and B has no LIF rows), bitwise the same values of X, Y, W
/// for finite sums.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn coefficients_lif_imp<F: Real>(
    (f1, k, g1, r1, s1): (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
    g: F,
    (cx, cy, cw): (RowsMut<F>, RowsMut<F>, RowsMut<F>),
) {
    let n = cx.len();
    let (f1, k, g1, r1, s1) = (&f1[..n], &k[..n], &g1[..n], &r1[..n], &s1[..n]);
    let (cy, cw) = (&mut cy[..n], &mut cw[..n]);
    for j in 0..n {
        let phi = f1[j];
        cx[j] = -g * phi;
        cy[j] = -(g * (g1[j] - phi * k[j]) + r1[j]);
        cw[j] = -s1[j];
    }
}

crate::kernels::simd_dispatch! {
    /// Per-row coefficients of an event for LIF rows.
    pub fn coefficients_lif / coefficients_lif_avx2(
        a: (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
        g: F,
        out: (RowsMut<F>, RowsMut<F>, RowsMut<F>),
    ) => coefficients_lif_imp
}

crate::kernels::simd_dispatch! {
    /// Per-row coefficients of an event (see the module documentation).
    pub fn coefficients / coefficients_avx2(
        a: (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
        b: (Rows<F>, Rows<F>, Rows<F>, Rows<F>),
        g: F,
        out: (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
    ) => coefficients_imp
}

#[inline(always)]
#[allow(clippy::type_complexity)]
fn add_step_imp<F: Real>(
    (psi, signal, reg, p, d): (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
    (f1, f2, k): (RowsMut<F>, RowsMut<F>, RowsMut<F>),
    (g1, g2, r1, r2): (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
    (s1, s2): (RowsMut<F>, RowsMut<F>),
    (ap, kp, kn, beta): (F, F, F, F),
    (with_reg, sum_e): (bool, bool),
) {
    let n = psi.len();
    let (signal, reg, p, d) = (&signal[..n], &reg[..n], &p[..n], &d[..n]);
    let (f1, f2, k) = (&mut f1[..n], &mut f2[..n], &mut k[..n]);
    let (g1, g2, r1, r2) = (&mut g1[..n], &mut g2[..n], &mut r1[..n], &mut r2[..n]);
    let (s1, s2) = (&mut s1[..n], &mut s2[..n]);
    for j in 0..n {
        let bp = beta * psi[j] * p[j];
        let (e1, e2) = (psi[j] * ap - bp * d[j], bp);
        f1[j] += kn * e1;
        f2[j] += kn * e2;
        let lk = kp * signal[j];
        k[j] += lk;
        g1[j] += lk * f1[j];
        g2[j] += lk * f2[j];
        if with_reg {
            r1[j] += reg[j] * e1;
            r2[j] += reg[j] * e2;
        }
        if sum_e {
            s1[j] += e1;
            s2[j] += e2;
        }
    }
}

/// [`add_step_imp`] for LIF rows (beta = 0, so e2 = 0 and F2, G2, R2, S2
/// stay zero): bitwise the same F1, K, G1, R1, S1 for finite values.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn add_step_lif_imp<F: Real>(
    (psi, signal, reg): (Rows<F>, Rows<F>, Rows<F>),
    (f1, k, g1, r1, s1): (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
    (ap, kp, kn): (F, F, F),
    (with_reg, sum_e): (bool, bool),
) {
    let n = psi.len();
    let (signal, reg) = (&signal[..n], &reg[..n]);
    let (f1, k, g1, r1, s1) = (&mut f1[..n], &mut k[..n], &mut g1[..n], &mut r1[..n], &mut s1[..n]);
    for j in 0..n {
        let e1 = psi[j] * ap;
        f1[j] += kn * e1;
        let lk = kp * signal[j];
        k[j] += lk;
        g1[j] += lk * f1[j];
        if with_reg {
            r1[j] += reg[j] * e1;
        }
        if sum_e {
            s1[j] += e1;
        }
    }
}

crate::kernels::simd_dispatch! {
    /// Adds one step's terms to the running sums of LIF rows.
    pub fn add_step_lif / add_step_lif_avx2(
        a: (Rows<F>, Rows<F>, Rows<F>),
        b: (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
        consts: (F, F, F),
        flags: (bool, bool),
    ) => add_step_lif_imp
}

crate::kernels::simd_dispatch! {
    /// Adds one step's terms to the running sums of a range of rows of
    /// equal beta (see [`Lazy::end_step`]).
    pub fn add_step / add_step_avx2(
        a: (Rows<F>, Rows<F>, Rows<F>, Rows<F>, Rows<F>),
        b: (RowsMut<F>, RowsMut<F>, RowsMut<F>),
        c: (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
        e: (RowsMut<F>, RowsMut<F>),
        consts: (F, F, F, F),
        flags: (bool, bool),
    ) => add_step_imp
}

/// The rank-one updates of the active columns of `c` (see the module
/// documentation), coefficients `(cx, cy, cw, cb)` per row (cb: ALIF rows).
fn apply_events<F: Real>(c: &mut Columns<F>, coef: (&[F], &[F], &[F], &[F])) {
    let Columns { x, y, w, b, a, events, .. } = c;
    event_columns(events, (x, y, w, b), coef);
    for &(i, dl) in events.iter() {
        a[i] += dl;
    }
}

#[inline(always)]
#[allow(clippy::type_complexity)]
fn event_columns_imp<F: Real>(
    events: &[(usize, F)],
    (x, y, w, b): (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
    (cx, cy, cw, cb): (Rows<F>, Rows<F>, Rows<F>, Rows<F>),
) {
    let (n, na) = (cx.len(), cb.len());
    let (cy, cw) = (&cy[..n], &cw[..n]);
    let keep_esum = !w.is_empty();
    for &(i, dl) in events {
        // X and Y of the column in one pass (the same operations per
        // element as two separate passes)
        let (xc, yc) = (&mut x[i * n..(i + 1) * n], &mut y[i * n..(i + 1) * n]);
        for j in 0..n {
            xc[j] += dl * cx[j];
            yc[j] += dl * cy[j];
        }
        if keep_esum {
            axpy(&mut w[i * n..(i + 1) * n], dl, cw);
        }
        axpy(&mut b[i * na..(i + 1) * na], dl, cb);
    }
}

crate::kernels::simd_dispatch! {
    /// The rank-one updates of the columns of `events` (unit, increment) of
    /// X, Y, W (`w` empty when not kept) and B.
    pub fn event_columns / event_columns_avx2(
        events: &[(usize, F)],
        cols: (RowsMut<F>, RowsMut<F>, RowsMut<F>, RowsMut<F>),
        coef: (Rows<F>, Rows<F>, Rows<F>, Rows<F>),
    ) => event_columns_imp
}

/// Which eligibility kernel a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Every synapse at every step (the reference).
    Dense,
    /// Event-driven (exact; the same results to ~1e-12 relative).
    Event,
    /// Event-driven when the inputs of a call are sparse enough to gain.
    Auto,
}

impl Kernel {
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "dense" => Ok(Kernel::Dense),
            "event" => Ok(Kernel::Event),
            "auto" => Ok(Kernel::Auto),
            o => Err(crate::EpropError::param("kernel", "'dense', 'event' or 'auto'", format!("'{o}'"))),
        }
    }

    /// The kernel a state dict records; files written before the kernel
    /// existed ran the dense one.
    pub fn of_state(d: &crate::state::StateDict) -> crate::Result<Self> {
        if d.contains("kernel") {
            Kernel::parse(d.text("kernel")?)
        } else {
            Ok(Kernel::Dense)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Dense => "dense",
            Kernel::Event => "event",
            Kernel::Auto => "auto",
        }
    }
}

/// Largest fraction of non-zero inputs for which `kernel="auto"` runs the
/// event-driven path (measured on the inputs of each call). Measured on one
/// core (`bench/event_kernel.py`, recurrent activity 5-10%): event/dense
/// 1.3x at (100, 100, 1) and 2.5x at (200, 1024, 10) with half the inputs
/// active, 1.0x and 2.7x at 80%.
pub const AUTO_MAX_ACTIVITY: f64 = 0.5;

/// Whether at most the fraction `max_activity` of `inputs` is non-zero
/// (the measure of `kernel="auto"`).
pub fn sparse_enough(inputs: ndarray::ArrayView2<f64>, max_activity: f64) -> bool {
    let active = inputs.iter().filter(|v| **v != 0.0).count() as f64;
    active <= max_activity * inputs.len() as f64
}

/// [`AUTO_MAX_ACTIVITY`] of the seed rule (`EpropTrainer`), whose event
/// form does more per active column. Measured event/dense with 30% / 50% of
/// the inputs active: 0.93x / 0.91x at (4, 16, 2), 1.4x / 1.5x at
/// (40, 100, 3), 1.8x / 0.9x at (100, 256, 10).
pub const SEED_AUTO_MAX_ACTIVITY: f64 = 0.25;

/// Fewest steps between weight updates for `kernel="auto"` to run the
/// event-driven path (each update settles every synapse and reloads them).
/// Measured at 5% input activity: event/dense 0.8x / 0.6x every 8 steps,
/// 1.2x / 0.8x every 16, 1.5x / 1.6x every 32 at (100, 100, 1) / (200, 1024, 10).
pub const AUTO_MIN_PERIOD: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{avx2, same, values};

    #[test]
    fn row_kernels_same_on_both_builds() {
        if !avx2() {
            return;
        }
        row_kernels_on_both_builds::<f64>();
        row_kernels_on_both_builds::<f32>();
    }

    fn row_kernels_on_both_builds<F: Real>() {
        for n in [1usize, 3, 7, 33] {
            let v = |seed: u32| values(seed, n, 0.2).into_iter().map(F::of).collect::<Vec<F>>();
            let rows: Vec<Vec<F>> = (0..10).map(|k| v(900 + k)).collect();
            let outs = || -> Vec<Vec<F>> { (0..4).map(|k| v(950 + k)).collect() };
            let (mut a, mut b) = (outs(), outs());
            let r = |k: usize| &rows[k][..];
            for (o, use_avx) in [(&mut a, false), (&mut b, true)] {
                let [cx, cy, cw, cb] = o.as_mut_slice() else { unreachable!() };
                let args = ((r(0), r(1), r(2), r(3), r(4), r(5)), (r(6), r(7), r(8), r(9)), F::of(0.3));
                if use_avx {
                    // SAFETY: avx2() checked the CPU.
                    unsafe { coefficients_avx2(args.0, args.1, args.2, (cx, cy, cw, cb)) };
                } else {
                    coefficients_imp(args.0, args.1, args.2, (cx, cy, cw, cb));
                }
            }
            for (x, y) in a.iter().zip(&b) {
                same(x, y, "coefficients");
            }
            let (mut a, mut b) = (outs(), outs());
            for (o, use_avx) in [(&mut a, false), (&mut b, true)] {
                let [cx, cy, cw, _] = o.as_mut_slice() else { unreachable!() };
                let args = ((r(1), r(3), r(4), r(6), r(8)), F::of(0.3));
                if use_avx {
                    // SAFETY: avx2() checked the CPU.
                    unsafe { coefficients_lif_avx2(args.0, args.1, (cx, cy, cw)) };
                } else {
                    coefficients_lif_imp(args.0, args.1, (cx, cy, cw));
                }
            }
            for (x, y) in a.iter().zip(&b) {
                same(x, y, "coefficients_lif");
            }
            for flags in [(false, false), (true, false), (false, true), (true, true)] {
                let sums = || -> Vec<Vec<F>> { (0..9).map(|k| v(970 + k)).collect() };
                let (mut a, mut b) = (sums(), sums());
                let (mut c, mut d) = (sums(), sums());
                for (o, use_avx) in [(&mut a, false), (&mut b, true)] {
                    let [f1, f2, k, g1, g2, r1, r2, s1, s2] = o.as_mut_slice() else { unreachable!() };
                    let inp = (r(0), r(1), r(2), r(3), r(4));
                    let c = (F::of(0.9), F::of(0.8), F::of(1.2), F::of(0.4));
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { add_step_avx2(inp, (f1, f2, k), (g1, g2, r1, r2), (s1, s2), c, flags) };
                    } else {
                        add_step_imp(inp, (f1, f2, k), (g1, g2, r1, r2), (s1, s2), c, flags);
                    }
                }
                for (o, use_avx) in [(&mut c, false), (&mut d, true)] {
                    let [f1, _, k, g1, _, r1, _, s1, _] = o.as_mut_slice() else { unreachable!() };
                    let (inp, c) = ((r(0), r(1), r(2)), (F::of(0.9), F::of(0.8), F::of(1.2)));
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { add_step_lif_avx2(inp, (f1, k, g1, r1, s1), c, flags) };
                    } else {
                        add_step_lif_imp(inp, (f1, k, g1, r1, s1), c, flags);
                    }
                }
                for (x, y) in a.iter().zip(&b).chain(c.iter().zip(&d)) {
                    same(x, y, "add_step");
                }
            }
            let events: Vec<(usize, F)> = vec![(2, F::of(0.7)), (0, F::of(-1.3)), (2, F::of(0.01))];
            for keep_esum in [false, true] {
                let cols = || -> Vec<Vec<F>> {
                    let big = |seed: u32| (0..3u32).flat_map(|c| v(seed + c)).collect::<Vec<F>>();
                    vec![big(800), big(810), if keep_esum { big(820) } else { vec![] }, big(830)]
                };
                let (mut a, mut b) = (cols(), cols());
                for (o, use_avx) in [(&mut a, false), (&mut b, true)] {
                    let [x, y, w, bb] = o.as_mut_slice() else { unreachable!() };
                    let coef = (r(0), r(1), r(2), r(3));
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { event_columns_avx2(&events, (x, y, w, bb), coef) };
                    } else {
                        event_columns_imp(&events, (x, y, w, bb), coef);
                    }
                }
                for (x, y) in a.iter().zip(&b) {
                    same(x, y, "event_columns");
                }
            }
        }
    }

    /// Skipping the regularization sums when every signal is zero leaves
    /// them bitwise as adding the zero terms would (signed zeros in psi too).
    #[test]
    fn regularization_sums_skipped_without_a_signal_are_unchanged() {
        for n in [1usize, 6, 33] {
            let v = |seed: u32| values(seed, n, 0.2);
            let mut psi = v(1);
            psi[0] = -0.0;
            let (signal, reg, p, d) = (v(2), vec![0.0; n], v(3), v(4));
            for (beta, sum_e) in [(0.0, false), (0.4, true)] {
                let sums = || -> Vec<Vec<f64>> { (0..9).map(|k| v(20 + k)).collect() };
                let (mut a, mut b) = (sums(), sums());
                for (o, with_reg) in [(&mut a, true), (&mut b, false)] {
                    let [f1, f2, k, g1, g2, r1, r2, s1, s2] = o.as_mut_slice() else { unreachable!() };
                    let inp = (&psi[..], &signal[..], &reg[..], &p[..], &d[..]);
                    let c = (0.9, 0.8, 1.2, beta);
                    add_step_imp(inp, (f1, f2, k), (g1, g2, r1, r2), (s1, s2), c, (with_reg, sum_e));
                }
                for (x, y) in a.iter().zip(&b) {
                    same(x, y, "add_step without a regularization signal");
                }
            }
        }
    }

    /// The LIF kernels are the general ones with beta = 0, bitwise, on rows
    /// whose ALIF-only sums are zero (as they are in LIF rows), for finite
    /// values (with an infinite psi the general form gives NaN, 0 * inf).
    #[test]
    fn lif_kernels_are_the_general_ones_with_beta_zero() {
        for n in [1usize, 5, 33] {
            let v = |seed: u32| values(seed, n, 0.2);
            let zero = vec![0.0; n];
            let (psi, signal, reg) = (v(1), v(2), v(3));
            let one = vec![1.0; n];
            for flags in [(false, false), (true, true), (true, false)] {
                let mut g = [v(10), zero.clone(), v(11), v(12), zero.clone(), v(13), zero.clone(), v(14), zero.clone()];
                let mut l = [v(10), v(11), v(12), v(13), v(14)];
                let c = (0.9, 0.8, 1.2);
                {
                    let [f1, f2, k, g1, g2, r1, r2, s1, s2] = &mut g;
                    let inp = (&psi[..], &signal[..], &reg[..], &one[..], &zero[..]);
                    add_step_imp(inp, (f1, f2, k), (g1, g2, r1, r2), (s1, s2), (c.0, c.1, c.2, 0.0), flags);
                }
                {
                    let [f1, k, g1, r1, s1] = &mut l;
                    add_step_lif_imp((&psi[..], &signal[..], &reg[..]), (f1, k, g1, r1, s1), c, flags);
                }
                for (a, b) in [(&g[0], &l[0]), (&g[2], &l[1]), (&g[3], &l[2]), (&g[5], &l[3]), (&g[7], &l[4])] {
                    same(a, b, "add_step_lif");
                }
                for z in [&g[1], &g[4], &g[6], &g[8]] {
                    assert!(z.iter().all(|&x| x == 0.0), "an ALIF-only sum changed in a LIF row");
                }
                let mut full = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
                let mut lif = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
                {
                    let [cx, cy, cw, cb] = &mut full;
                    coefficients_imp(
                        (&zero, &g[0], &g[1], &g[2], &g[3], &g[4]),
                        (&g[5], &g[6], &g[7], &g[8]),
                        0.3,
                        (cx, cy, cw, cb),
                    );
                }
                {
                    let [cx, cy, cw] = &mut lif;
                    coefficients_lif_imp((&g[0], &g[2], &g[3], &g[5], &g[7]), 0.3, (cx, cy, cw));
                }
                for (a, b) in full.iter().zip(&lif) {
                    same(a, b, "coefficients_lif");
                }
            }
        }
    }
}

/// Event-driven exact form of the seed rule (`EpropTrainer`). Between two
/// events of presynaptic unit i (value zero) its traces only decay, so with
/// times counted from the origin
/// ```text
/// trace_ji(t) = kappa^t Q_ji,   e_ji(t) = kappa^t (P_ji + t Q_ji),
/// W_ji(t)     = What_ji - lr (P_ji K_j(t) + Q_ji M_j(t)),
/// K_j = sum_s kappa^s L_j(s),   M_j = sum_s s kappa^s L_j(s)
/// ```
/// (L the learning signal of each step). The forward pass reads only the
/// columns of active units, exactly the ones an event settles: at an event
/// the column's plain values are computed, used, updated by the dense rule
/// and encoded again. The W_rec diagonal is kept at zero where it is read.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedLazy<F: Real = f64> {
    kappa: F,
    lr: F,
    span: u32,
    max_span: u32,
    loaded: bool,
    k: Vec<F>,
    m: Vec<F>,
    inp: SeedColumns<F>,
    rec: SeedColumns<F>,
}

/// What, P and Q of one population, transposed (row i: presynaptic unit i).
#[derive(Clone, Debug, PartialEq)]
struct SeedColumns<F: Real = f64> {
    cols: usize,
    w: Vec<F>,
    p: Vec<F>,
    q: Vec<F>,
    events: Vec<(usize, F)>,
    /// Whether unit i's own row is the zero diagonal (recurrent weights).
    diagonal: bool,
}

impl<F: Real> SeedColumns<F> {
    fn new(cols: usize, n: usize, diagonal: bool) -> Self {
        let z = || vec![F::ZERO; cols * n];
        SeedColumns { cols, w: z(), p: z(), q: z(), events: Vec::with_capacity(cols), diagonal }
    }

    fn bytes(&self) -> usize {
        F::BYTES * 3 * self.w.len() + 16 * self.events.capacity()
    }
}

impl<F: Real> SeedLazy<F> {
    /// Buffers for `n` neurons and `n_in` inputs; None when the trace decay
    /// per step is too fast for the event-driven form to gain.
    pub fn new(n_in: usize, n: usize, kappa: F) -> Option<Self> {
        let max_span = span_within(kappa.f64(), SEED_LIMIT)?;
        Some(SeedLazy {
            kappa,
            lr: F::ZERO,
            span: 0,
            max_span,
            loaded: false,
            k: vec![F::ZERO; n],
            m: vec![F::ZERO; n],
            inp: SeedColumns::new(n_in, n, false),
            rec: SeedColumns::new(n, n, true),
        })
    }

    pub fn bytes(&self) -> usize {
        2 * F::BYTES * self.k.len() + self.inp.bytes() + self.rec.bytes() + std::mem::size_of::<Self>()
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Whether these buffers were made for another trace decay.
    pub fn kappa_differs(&self, kappa: F) -> bool {
        self.kappa != kappa
    }

    /// Loads weights, traces and eligibilities (row-major (n, cols)) of both
    /// populations, with the origin at now; `lr` holds until [`Self::store`].
    pub fn load(&mut self, w: [&[F]; 2], trace: [&[F]; 2], elig: [&[F]; 2], lr: F) {
        let n = self.k.len();
        for (c, ((w, tr), el)) in [&mut self.inp, &mut self.rec].into_iter().zip(w.iter().zip(&trace).zip(&elig)) {
            transpose(w, &mut c.w, n, c.cols);
            transpose(tr, &mut c.q, n, c.cols);
            transpose(el, &mut c.p, n, c.cols);
        }
        self.lr = lr;
        self.reset_sums();
        self.loaded = true;
    }

    /// Writes the plain values back (row-major) and unloads.
    pub fn store(&mut self, w: [&mut [F]; 2], trace: [&mut [F]; 2], elig: [&mut [F]; 2]) {
        if !self.loaded {
            return;
        }
        self.renormalize();
        let n = self.k.len();
        let [w_in, w_rec] = w;
        let [tr_in, tr_rec] = trace;
        let [el_in, el_rec] = elig;
        for (c, (w, (tr, el))) in [(&self.inp, (w_in, (tr_in, el_in))), (&self.rec, (w_rec, (tr_rec, el_rec)))] {
            transpose(&c.w, w, c.cols, n);
            transpose(&c.q, tr, c.cols, n);
            transpose(&c.p, el, c.cols, n);
        }
        self.loaded = false;
    }

    fn reset_sums(&mut self) {
        self.span = 0;
        self.k.fill(F::ZERO);
        self.m.fill(F::ZERO);
    }

    /// Plain values of every synapse at the current step; the origin moves to it.
    fn renormalize(&mut self) {
        if self.span > 0 {
            let s = F::of(self.span as f64);
            let kp = self.kappa.powi(self.span as i32);
            let n = self.k.len();
            for c in [&mut self.inp, &mut self.rec] {
                for i in 0..c.cols {
                    let r = i * n..(i + 1) * n;
                    let (w, p, q) = (&mut c.w[r.clone()], &mut c.p[r.clone()], &mut c.q[r]);
                    for ((((w, p), q), &k), &m) in
                        w.iter_mut().zip(p.iter_mut()).zip(q.iter_mut()).zip(&self.k).zip(&self.m)
                    {
                        *w -= self.lr * (*p * k + *q * m);
                        let tr = flush(kp * *q);
                        *p = flush(kp * (*p + s * *q));
                        *q = tr;
                    }
                    if c.diagonal {
                        w[i] = F::ZERO;
                    }
                }
            }
        }
        self.reset_sums();
    }

    /// Start of a step: settles the columns of the active inputs `x` and
    /// of the neurons that spiked (`z_prev`) to their plain values of the
    /// previous step, and writes the input and recurrent currents (which
    /// read only those columns). Moves the origin first when due.
    pub fn begin_step(&mut self, x: &[F], z_prev: &[F], current: &mut [F], rec_current: &mut [F]) {
        if self.span >= self.max_span {
            self.renormalize();
        }
        let t = F::of(self.span as f64);
        let kp = self.kappa.powi(self.span as i32);
        self.span += 1;
        let n = self.k.len();
        let lr = self.lr;
        for ((c, pre), out) in [&mut self.inp, &mut self.rec].into_iter().zip([x, z_prev]).zip([current, rec_current]) {
            events_of(pre, F::ONE, &mut c.events);
            out.fill(F::ZERO);
            for &(i, v) in &c.events {
                let r = i * n..(i + 1) * n;
                let (w, p, q) = (&mut c.w[r.clone()], &mut c.p[r.clone()], &mut c.q[r]);
                for (((w, p), q), (&k, &m)) in
                    w.iter_mut().zip(p.iter_mut()).zip(q.iter_mut()).zip(self.k.iter().zip(&self.m))
                {
                    *w -= lr * (*p * k + *q * m);
                    let tr = kp * *q;
                    *p = kp * (*p + t * *q);
                    *q = tr;
                }
                if c.diagonal {
                    w[i] = F::ZERO;
                }
                for (o, &wj) in out.iter_mut().zip(w.iter()) {
                    *o += wj * v;
                }
            }
        }
    }

    /// End of a step: adds the learning signal to the sums, then applies the
    /// dense rule to the settled columns (`psi` of this step) and encodes
    /// them again.
    pub fn end_step(&mut self, psi: &[F], signal: &[F]) {
        let s = F::of(self.span as f64);
        let kp = self.kappa.powi(self.span as i32);
        let kn = F::ONE / kp;
        for ((k, m), &l) in self.k.iter_mut().zip(self.m.iter_mut()).zip(signal) {
            let lk = kp * l;
            *k += lk;
            *m += s * lk;
        }
        let (n, kappa, lr) = (self.k.len(), self.kappa, self.lr);
        for c in [&mut self.inp, &mut self.rec] {
            for &(i, v) in &c.events {
                let r = i * n..(i + 1) * n;
                let (w, p, q) = (&mut c.w[r.clone()], &mut c.p[r.clone()], &mut c.q[r]);
                let rows = psi.iter().zip(signal).zip(self.k.iter().zip(&self.m));
                for (((w, p), q), ((&ps, &l), (&k, &m))) in w.iter_mut().zip(p.iter_mut()).zip(q.iter_mut()).zip(rows) {
                    let tr = flush(kappa * *q + ps * v);
                    let e = flush(kappa * *p + tr);
                    let wn = *w - lr * (l * e);
                    let qn = kn * tr;
                    let pn = kn * e - s * qn;
                    *q = qn;
                    *p = pn;
                    *w = wn + lr * (pn * k + qn * m);
                }
                if c.diagonal {
                    // What for the diagonal: W_ii = 0 now
                    let (k, m) = (self.k[i], self.m[i]);
                    w[i] = lr * (p[i] * k + q[i] * m);
                }
            }
        }
    }
}
