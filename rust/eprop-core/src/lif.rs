//! Leaky integrate-and-fire dynamics of the seed-compatible rule, used by every
//! seed trainer (`EpropTrainer`, `OnlineLIFLayer`, `OnlineTrainer`).
//!
//! One step of neuron j with input current I_j (dt and tau in ms):
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

/// Decay factor `exp(-dt / tau)` of a leaky variable over one step.
#[inline]
pub fn decay(dt: f64, tau: f64) -> f64 {
    (-dt / tau).exp()
}

/// Membrane update of one neuron; returns (membrane after reset, spike).
#[inline(always)]
pub fn seed_membrane(v: f64, current: f64, alpha: f64, threshold: f64) -> (f64, f64) {
    let v = alpha * v + (1.0 - alpha) * current;
    let z = if v >= threshold { 1.0 } else { 0.0 };
    (v - z * threshold, z)
}

/// The seed's pseudo-derivative `1 / (1 + 5 |v - thr|)^2`.
#[inline(always)]
pub fn seed_pseudo_derivative(v: f64, threshold: f64) -> f64 {
    let d = 1.0 + (v - threshold).abs() * 5.0;
    1.0 / (d * d)
}

/// Runs [`seed_membrane`] and [`seed_pseudo_derivative`] over a layer:
/// `v` is updated in place, `z` and `psi` are written.
pub fn seed_layer_update(
    v: &mut [f64],
    current: &[f64],
    z: &mut [f64],
    psi: &mut [f64],
    alpha: f64,
    threshold: f64,
) {
    for (((vj, &cj), zj), pj) in v
        .iter_mut()
        .zip(current)
        .zip(z.iter_mut())
        .zip(psi.iter_mut())
    {
        let (vn, zn) = seed_membrane(*vj, cj, alpha, threshold);
        *vj = vn;
        *zj = zn;
        *pj = seed_pseudo_derivative(vn, threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_resets_by_subtraction_and_psi_after_reset() {
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
}
