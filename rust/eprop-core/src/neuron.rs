//! Neuron dynamics: the leaky integrate-and-fire update of the seed rule
//! (used by every seed trainer) and the LIF/ALIF update of canonical e-prop.
//!
//! Seed rule, neuron j with input current I_j (dt and tau in ms):
//!
//! ```text
//! alpha = exp(-dt / tau_mem)
//! v_j  <- alpha v_j + (1 - alpha) I_j
//! z_j   = 1 if v_j >= thr else 0
//! v_j  <- v_j - thr z_j                      (reset by subtraction)
//! psi_j = 1 / (1 + 5 |v_j - thr|)^2          (pseudo-derivative, taken AFTER the reset)
//! ```
//!
//! Taking psi after the reset is the seed's (flawed) convention; it is kept on
//! purpose so that results match `sc-neurocore` exactly.
//!
//! Canonical e-prop (Bellec et al. 2020), neuron j at step t, input scaling 1:
//!
//! ```text
//! a_j(t)   = rho a_j(t-1) + z_j(t-1)                        (ALIF only; LIF: a = 0)
//! A_j(t)   = thr + beta a_j(t)
//! v_j(t)   = alpha v_j(t-1) + I_j(t) - thr z_j(t-1)          (reset by subtraction)
//! z_j(t)   = H(v_j(t) - A_j(t)), 0 while refractory
//! psi_j(t) = (gamma / thr) max(0, 1 - |v_j(t) - A_j(t)| / thr), 0 while refractory
//! ```
//! After a spike a neuron is blocked for `blocked_after_spike` steps
//! (refractory / dt - 1: two spikes are at least refractory / dt steps apart).

/// Decay factor `exp(-dt / tau)` of a leaky variable over one step.
#[inline]
pub fn decay(dt: f64, tau: f64) -> f64 {
    (-dt / tau).exp()
}

/// The decays of `N` time constants over one step, kept with the dt and
/// time constants they came from: a step computes them (`N` calls of `exp`)
/// only when one of those changed since the last step, and otherwise gets
/// the same values back (bitwise what [`decay`] gives).
#[derive(Clone, Copy, Debug)]
pub struct DecayCache<const N: usize> {
    from: Option<(u64, [u64; N])>,
    values: [f64; N],
}

impl<const N: usize> Default for DecayCache<N> {
    fn default() -> Self {
        DecayCache { from: None, values: [0.0; N] }
    }
}

/// A cache is not state: two are equal whatever they hold.
impl<const N: usize> PartialEq for DecayCache<N> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<const N: usize> DecayCache<N> {
    /// `decay(dt, tau)` of each of `taus`.
    pub fn of(&mut self, dt: f64, taus: [f64; N]) -> [f64; N] {
        let from = Some((dt.to_bits(), taus.map(f64::to_bits)));
        if from != self.from {
            self.values = taus.map(|tau| decay(dt, tau));
            self.from = from;
        }
        self.values
    }
}

use crate::real::Real;

/// Seed rule: membrane update of one neuron; returns (membrane after reset, spike).
#[inline(always)]
pub fn seed_membrane<F: Real>(v: F, current: F, alpha: F, threshold: F) -> (F, F) {
    let v = alpha * v + (F::ONE - alpha) * current;
    let z = if v >= threshold { F::ONE } else { F::ZERO };
    (v - z * threshold, z)
}

/// Seed rule: the pseudo-derivative `1 / (1 + 5 |v - thr|)^2`.
#[inline(always)]
pub fn seed_pseudo_derivative<F: Real>(v: F, threshold: F) -> F {
    let d = F::ONE + (v - threshold).abs() * F::of(5.0);
    F::ONE / (d * d)
}

/// Seed rule over a layer: `v` is updated in place, `z` and `psi` are written.
pub fn seed_update<F: Real>(v: &mut [F], current: &[F], z: &mut [F], psi: &mut [F], alpha: F, threshold: F) {
    for (((vj, &cj), zj), pj) in v.iter_mut().zip(current).zip(z.iter_mut()).zip(psi.iter_mut()) {
        let (vn, zn) = seed_membrane(*vj, cj, alpha, threshold);
        *vj = vn;
        *zj = zn;
        *pj = seed_pseudo_derivative(vn, threshold);
    }
}

/// Constants of the canonical LIF/ALIF update.
#[derive(Clone, Copy, Debug)]
pub struct Canonical<F: Real = f64> {
    pub alpha: F,
    pub rho: F,
    pub threshold: F,
    pub beta: F,
    pub gamma: F,
    /// Index of the first ALIF neuron (neurons before it are LIF).
    pub first_adaptive: usize,
    /// Steps a neuron is blocked after a spike.
    pub blocked_after_spike: u32,
}

/// The state a canonical layer updates in place.
pub struct CanonicalState<'a, F: Real = f64> {
    pub v: &'a mut [F],
    pub a: &'a mut [F],
    /// In: z(t-1); out: z(t).
    pub z: &'a mut [F],
    pub psi: &'a mut [F],
    pub refractory: &'a mut [u32],
}

#[inline(always)]
pub(crate) fn canonical_update_imp<F: Real>(
    c: &Canonical<F>,
    s: CanonicalState<'_, F>,
    current: &[F],
    rec_current: &[F],
) {
    let n = s.v.len();
    let fa = c.first_adaptive.min(n);
    for (a, &z_prev) in s.a[fa..n].iter_mut().zip(&s.z[fa..n]) {
        *a = crate::kernels::flush(c.rho * *a + z_prev);
    }
    // branch-free, so that the loop vectorizes (the same IEEE operations as
    // the equations above, in the same order)
    let scale = c.gamma / c.threshold;
    let it = s.v.iter_mut().zip(s.a.iter()).zip(s.z.iter_mut()).zip(s.psi.iter_mut()).zip(s.refractory.iter_mut());
    for (((((v, &a), z), psi), refr), (&cur, &rec)) in it.zip(current.iter().zip(rec_current)) {
        let z_prev = *z;
        let a_thr = c.threshold + c.beta * a;
        *v = crate::kernels::flush(c.alpha * *v + (cur + rec) - c.threshold * z_prev);
        let d = *v - a_thr;
        let blocked = *refr > 0;
        let spike = !blocked && d >= F::ZERO;
        *z = if spike { F::ONE } else { F::ZERO };
        let p = scale * (F::ONE - d.abs() / c.threshold).max(F::ZERO);
        *psi = if blocked { F::ZERO } else { p };
        *refr = if blocked {
            *refr - 1
        } else if spike {
            c.blocked_after_spike
        } else {
            0
        };
    }
}

crate::kernels::simd_dispatch! {
    /// One canonical LIF/ALIF step of a layer given its input and recurrent
    /// currents (see the module documentation).
    pub fn canonical_update / canonical_update_avx2(
        c: &Canonical<F>,
        s: CanonicalState<'_, F>,
        current: &[F],
        rec_current: &[F],
    ) => canonical_update_imp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_cache_gives_what_decay_gives_and_follows_changes() {
        let mut c = DecayCache::<2>::default();
        for (dt, taus) in [(1.0, [20.0, 2000.0]), (1.0, [20.0, 2000.0]), (0.5, [20.0, 2000.0]), (0.5, [7.0, 2000.0])] {
            let got = c.of(dt, taus);
            for (g, tau) in got.iter().zip(taus) {
                assert_eq!(g.to_bits(), decay(dt, tau).to_bits(), "dt {dt}, tau {tau}");
            }
        }
        assert_eq!(c, DecayCache::default(), "a cache compares equal whatever it holds");
    }

    #[test]
    fn seed_spike_resets_by_subtraction_and_psi_after_reset() {
        let alpha = decay(1.0, 20.0);
        let (v, z) = seed_membrane(0.0, 100.0, alpha, 1.0);
        let v_pre = (1.0 - alpha) * 100.0;
        assert_eq!(z, 1.0);
        assert_eq!(v, v_pre - 1.0);
        let (v2, z2) = seed_membrane(0.0, 1.0, alpha, 1.0);
        assert_eq!(z2, 0.0);
        assert_eq!(v2, (1.0 - alpha) * 1.0);
        assert_eq!(seed_pseudo_derivative(1.0, 1.0), 1.0);
        assert_eq!(seed_pseudo_derivative(0.5, 1.0), 1.0 / (3.5 * 3.5));
    }

    #[test]
    fn canonical_update_same_on_both_builds() {
        if !crate::kernels::testing::avx2() {
            return;
        }
        canonical_on_both_builds::<f64>();
        canonical_on_both_builds::<f32>();
    }

    fn canonical_on_both_builds<F: Real>() {
        use crate::kernels::testing::{same, values};
        let vals = |seed, n, zeros| values(seed, n, zeros).into_iter().map(F::of).collect::<Vec<F>>();
        for n in [1usize, 5, 17, 64] {
            let c = Canonical {
                alpha: F::of(0.9),
                rho: F::of(0.99),
                threshold: F::of(0.3),
                beta: F::of(0.2),
                gamma: F::of(0.3),
                first_adaptive: n / 2,
                blocked_after_spike: 2,
            };
            let cur = vals(1, n, 0.3);
            let rec = vals(2, n, 0.3);
            let start = (vals(3, n, 0.0), vals(4, n, 0.0).iter().map(|v| v.abs()).collect::<Vec<_>>());
            let z0: Vec<F> = vals(5, n, 0.0).iter().map(|&v| if v > F::ZERO { F::ONE } else { F::ZERO }).collect();
            let r0: Vec<u32> = (0..n as u32).map(|j| j % 3).collect();
            let mut outs = Vec::new();
            let mut spikes = 0.0;
            for use_avx in [false, true] {
                let (mut v, mut a, mut z, mut psi, mut r) =
                    (start.0.clone(), start.1.clone(), z0.clone(), vec![F::ZERO; n], r0.clone());
                for _ in 0..5 {
                    let s = CanonicalState { v: &mut v, a: &mut a, z: &mut z, psi: &mut psi, refractory: &mut r };
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe { canonical_update_avx2(&c, s, &cur, &rec) };
                    } else {
                        canonical_update_imp(&c, s, &cur, &rec);
                    }
                    spikes += z.iter().map(|v| v.f64()).sum::<f64>();
                }
                outs.push((v, a, z, psi, r));
            }
            let (p, q) = (&outs[0], &outs[1]);
            same(&p.0, &q.0, "v");
            same(&p.1, &q.1, "a");
            same(&p.2, &q.2, "z");
            same(&p.3, &q.3, "psi");
            assert_eq!(p.4, q.4, "refractory");
            assert!(n < 10 || (spikes > 0.0 && spikes < 10.0 * n as f64), "vacuous spikes: {spikes} at n={n}");
        }
    }

    #[test]
    fn canonical_refractory_interval() {
        let c = Canonical {
            alpha: 0.9,
            rho: 0.99,
            threshold: 0.5,
            beta: 0.0,
            gamma: 0.3,
            first_adaptive: 1,
            blocked_after_spike: 2,
        };
        let (mut v, mut a, mut z, mut psi, mut r) = ([0.0], [0.0], [0.0], [0.0], [0u32]);
        let mut times = Vec::new();
        for t in 0..12 {
            canonical_update(
                &c,
                CanonicalState { v: &mut v, a: &mut a, z: &mut z, psi: &mut psi, refractory: &mut r },
                &[10.0],
                &[0.0],
            );
            if z[0] > 0.0 {
                times.push(t);
            }
        }
        assert_eq!(times, vec![0, 3, 6, 9]);
    }
}
