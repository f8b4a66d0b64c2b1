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
//! the running sums costs at most ~LIMIT ulps, so results match the dense
//! kernel to ~1e-12 relative on streams of any length. A step whose factor
//! rho - beta psi would shrink P by more than LIMIT at once (only with a
//! very large beta) runs densely.

use crate::kernels::flush;

/// Largest power (alpha^-s, kappa^-s, 1/P) allowed before the origin moves.
pub const LIMIT: f64 = 64.0;

/// Fewest steps between forced settles for the event path to be used at all.
pub const MIN_SPAN: u32 = 4;

/// The four synapse arrays of one presynaptic population (inputs or
/// recurrent), row-major (n, cols): filtered eligibility, gradient sum, sum
/// of e (empty when not kept) and the ALIF vectors (n_adaptive, cols).
pub struct Synapses<'a> {
    pub ebar: &'a mut [f64],
    pub grad: &'a mut [f64],
    pub esum: &'a mut [f64],
    pub eps: &'a mut [f64],
    pub cols: usize,
}

/// Running sums of the event-driven path (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Lazy {
    alpha: f64,
    kappa: f64,
    rho: f64,
    beta: f64,
    first_adaptive: usize,
    /// Steps since the origin.
    pub span: u32,
    /// Steps after which the origin must move.
    pub max_span: u32,
    p: Vec<f64>,
    d: Vec<f64>,
    f1: Vec<f64>,
    f2: Vec<f64>,
    k: Vec<f64>,
    g1: Vec<f64>,
    g2: Vec<f64>,
    r1: Vec<f64>,
    r2: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
    a_in: Vec<f64>,
    a_rec: Vec<f64>,
    /// Per-row coefficients of an event (X, Y, W, B), and the active
    /// columns of this step with their increments.
    cx: Vec<f64>,
    cy: Vec<f64>,
    cw: Vec<f64>,
    ev_in: Vec<(usize, f64)>,
    ev_rec: Vec<(usize, f64)>,
}

impl Lazy {
    /// Buffers for `n` neurons (the last `n - first_adaptive` ALIF) and
    /// `n_in` inputs; None when a decay per step is so fast that the origin
    /// would have to move more often than every [`MIN_SPAN`] steps.
    pub fn new(
        n_in: usize,
        n: usize,
        first_adaptive: usize,
        (alpha, kappa, rho, beta): (f64, f64, f64, f64),
    ) -> Option<Self> {
        let fastest = alpha.min(kappa);
        if fastest <= 0.0 || !fastest.is_finite() {
            return None;
        }
        let per_step = -fastest.ln();
        let max_span = if per_step <= 0.0 { u32::MAX } else { (LIMIT.ln() / per_step).floor().min(1e9) as u32 };
        if max_span < MIN_SPAN {
            return None;
        }
        let z = || vec![0.0; n];
        Some(Lazy {
            alpha,
            kappa,
            rho,
            beta,
            first_adaptive,
            span: 0,
            max_span,
            p: vec![1.0; n],
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
            a_in: vec![0.0; n_in],
            a_rec: z(),
            cx: z(),
            cy: z(),
            cw: z(),
            ev_in: Vec::with_capacity(n_in),
            ev_rec: Vec::with_capacity(n),
        })
    }

    /// Bytes of the buffers.
    pub fn bytes(&self) -> usize {
        8 * (17 * self.p.len() + self.a_in.len())
            + 16 * (self.ev_in.capacity() + self.ev_rec.capacity())
            + std::mem::size_of::<Self>()
    }

    /// Moves the origin to now: the synapse arrays hold plain values and
    /// `zbar_in`, `zbar_rec` are the presynaptic traces of this step.
    pub fn restart(&mut self, zbar_in: &[f64], zbar_rec: &[f64]) {
        self.span = 0;
        self.p.fill(1.0);
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
            v.fill(0.0);
        }
        self.a_in.copy_from_slice(zbar_in);
        self.a_rec.copy_from_slice(zbar_rec);
    }

    /// Whether the next step, whose ALIF factors are `rho - beta psi_prev`,
    /// keeps every power within [`LIMIT`] of the origin.
    pub fn fits(&self, psi_prev: &[f64]) -> bool {
        if self.span >= self.max_span {
            return false;
        }
        let fa = self.first_adaptive;
        psi_prev[fa..].iter().zip(&self.p[fa..]).all(|(&ps, &p)| {
            let q = (p * (self.rho - self.beta * ps)).abs();
            (1.0 / LIMIT..=LIMIT).contains(&q)
        })
    }

    /// Start of a step with an event-driven eligibility: advances P and D
    /// with `psi_prev` (psi of the previous step), then applies the events
    /// of this step: inputs `x` that are not zero, neurons that spiked at
    /// the previous step (`z_prev`). Requires [`Self::fits`].
    pub fn begin_step(&mut self, psi_prev: &[f64], x: &[f64], z_prev: &[f64], inp: Synapses<'_>, rec: Synapses<'_>) {
        self.span += 1;
        let s = self.span as i32;
        let fa = self.first_adaptive;
        let a_prev = self.alpha.powi(s - 1);
        for ((p, d), &ps) in self.p[fa..].iter_mut().zip(&mut self.d[fa..]).zip(&psi_prev[fa..]) {
            *p *= self.rho - self.beta * ps;
            *d += ps * a_prev / *p;
        }
        let inv = self.alpha.powi(-s);
        self.ev_in.clear();
        self.ev_in.extend(x.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, &v)| (i, v * inv)));
        self.ev_rec.clear();
        self.ev_rec.extend(z_prev.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, &v)| (i, v * inv)));
        if self.ev_in.is_empty() && self.ev_rec.is_empty() {
            return;
        }
        let g = 1.0 - self.kappa;
        for j in 0..self.p.len() {
            let dj = self.d[j];
            let phi = self.f1[j] + dj * self.f2[j];
            self.cx[j] = -g * phi;
            self.cy[j] = -(g * (self.g1[j] + dj * self.g2[j] - phi * self.k[j]) + self.r1[j] + dj * self.r2[j]);
            self.cw[j] = -(self.s1[j] + dj * self.s2[j]);
        }
        let ev_in = std::mem::take(&mut self.ev_in);
        let ev_rec = std::mem::take(&mut self.ev_rec);
        self.apply_events(&ev_in, inp);
        self.apply_events(&ev_rec, rec);
        for &(i, dl) in &ev_in {
            self.a_in[i] += dl;
        }
        for &(i, dl) in &ev_rec {
            self.a_rec[i] += dl;
        }
        self.ev_in = ev_in;
        self.ev_rec = ev_rec;
    }

    /// The rank-one updates of the active columns (see the module documentation).
    fn apply_events(&self, events: &[(usize, f64)], syn: Synapses<'_>) {
        let cols = syn.cols;
        if events.is_empty() || cols == 0 {
            return;
        }
        let fa = self.first_adaptive;
        let keep_esum = !syn.esum.is_empty();
        for j in 0..self.p.len() {
            let (cx, cy, cw) = (self.cx[j], self.cy[j], self.cw[j]);
            let row = j * cols..(j + 1) * cols;
            let (xr, yr) = (&mut syn.ebar[row.clone()], &mut syn.grad[row.clone()]);
            for &(i, dl) in events {
                xr[i] += dl * cx;
                yr[i] += dl * cy;
            }
            if keep_esum {
                let wr = &mut syn.esum[row];
                for &(i, dl) in events {
                    wr[i] += dl * cw;
                }
            }
            if j >= fa {
                let cb = -self.d[j];
                let br = &mut syn.eps[(j - fa) * cols..(j - fa + 1) * cols];
                for &(i, dl) in events {
                    br[i] += dl * cb;
                }
            }
        }
    }

    /// End of a step: adds the step's terms to the running sums, given the
    /// new psi, the learning signal, the regularization signal and whether
    /// the step's e is summed (the sequence form of the regularization).
    pub fn end_step(&mut self, psi: &[f64], signal: &[f64], reg: &[f64], sum_e: bool) {
        let s = self.span as i32;
        let (ap, kp, kn) = (self.alpha.powi(s), self.kappa.powi(s), self.kappa.powi(-s));
        let fa = self.first_adaptive;
        for j in 0..self.p.len() {
            let (f1, f2) = if j >= fa {
                let bp = self.beta * psi[j] * self.p[j];
                (psi[j] * ap - bp * self.d[j], bp)
            } else {
                (psi[j] * ap, 0.0)
            };
            self.f1[j] += kn * f1;
            self.f2[j] += kn * f2;
            let lk = kp * signal[j];
            if lk != 0.0 {
                self.k[j] += lk;
                self.g1[j] += lk * self.f1[j];
                self.g2[j] += lk * self.f2[j];
            }
            let r = reg[j];
            if r != 0.0 {
                self.r1[j] += r * f1;
                self.r2[j] += r * f2;
            }
            if sum_e {
                self.s1[j] += f1;
                self.s2[j] += f2;
            }
        }
    }

    /// Writes the plain values of every synapse of `syn` (presynaptic
    /// coefficients `a`) at the current step.
    fn materialize(&self, a: &[f64], syn: Synapses<'_>) {
        let cols = syn.cols;
        if cols == 0 {
            return;
        }
        let g = 1.0 - self.kappa;
        let kp = self.kappa.powi(self.span as i32);
        let fa = self.first_adaptive;
        let keep_esum = !syn.esum.is_empty();
        for j in 0..self.p.len() {
            let row = j * cols..(j + 1) * cols;
            let (f1, f2, k, g1, g2, r1, r2, s1, s2) = (
                self.f1[j], self.f2[j], self.k[j], self.g1[j], self.g2[j], self.r1[j], self.r2[j], self.s1[j],
                self.s2[j],
            );
            let xr = &mut syn.ebar[row.clone()];
            let yr = &mut syn.grad[row.clone()];
            if j < fa {
                for ((x, y), &ai) in xr.iter_mut().zip(yr.iter_mut()).zip(a) {
                    *y += *x * k + g * (ai * g1) + ai * r1;
                    *x = flush(kp * (*x + g * (ai * f1)));
                }
                if keep_esum {
                    for (w, &ai) in syn.esum[row].iter_mut().zip(a) {
                        *w += ai * s1;
                    }
                }
            } else {
                let (p, d) = (self.p[j], self.d[j]);
                let br = &mut syn.eps[(j - fa) * cols..(j - fa + 1) * cols];
                for (((x, y), b), &ai) in xr.iter_mut().zip(yr.iter_mut()).zip(br.iter()).zip(a) {
                    *y += *x * k + g * (ai * g1 - *b * g2) + ai * r1 - *b * r2;
                    *x = flush(kp * (*x + g * (ai * f1 - *b * f2)));
                }
                if keep_esum {
                    for ((w, &b), &ai) in syn.esum[row].iter_mut().zip(br.iter()).zip(a) {
                        *w += ai * s1 - b * s2;
                    }
                }
                for (b, &ai) in br.iter_mut().zip(a) {
                    *b = flush(p * (ai * d + *b));
                }
            }
        }
    }

    /// Writes the plain values of every synapse and moves the origin to now
    /// (`zbar_in`, `zbar_rec`: the presynaptic traces of this step).
    pub fn settle(&mut self, inp: Synapses<'_>, rec: Synapses<'_>, zbar_in: &[f64], zbar_rec: &[f64]) {
        if self.span > 0 {
            self.materialize(&self.a_in, inp);
            self.materialize(&self.a_rec, rec);
        }
        self.restart(zbar_in, zbar_rec);
    }
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

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Dense => "dense",
            Kernel::Event => "event",
            Kernel::Auto => "auto",
        }
    }
}

/// Largest fraction of non-zero inputs for which `kernel="auto"` runs the
/// event-driven path (measured on the inputs of each call).
pub const AUTO_MAX_ACTIVITY: f64 = 0.2;

/// Fewest steps between weight updates for `kernel="auto"` to run the
/// event-driven path (each update settles every synapse).
pub const AUTO_MIN_PERIOD: usize = 16;
