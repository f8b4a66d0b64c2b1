//! Canonical e-prop (Bellec et al. 2020, Nat. Commun. 11:3625, with its
//! supplementary equations): a recurrent network of LIF and adaptive (ALIF)
//! neurons with a leaky readout, trained online with eligibility traces.
//!
//! Conventions (times in ms, one step = dt; alpha = exp(-dt/tau_mem),
//! rho = exp(-dt/tau_adapt), kappa = exp(-dt/tau_out)). Neuron j, step t:
//!
//! ```text
//! a_j(t)   = rho a_j(t-1) + z_j(t-1)                        (ALIF only; LIF: a = 0)
//! A_j(t)   = thr + beta a_j(t)                               (threshold)
//! v_j(t)   = alpha v_j(t-1) + sum_i W_in_ji x_i(t) + sum_i W_rec_ji z_i(t-1) - thr z_j(t-1)
//! z_j(t)   = H(v_j(t) - A_j(t)), 0 while refractory          (reset by subtraction)
//! psi_j(t) = (gamma / thr) max(0, 1 - |v_j(t) - A_j(t)| / thr), 0 while refractory
//! ```
//! Input scaling s = 1 (the evidence-accumulation convention). Refractory
//! period: after a spike a neuron is blocked for n_ref - 1 steps, n_ref =
//! round(refractory / dt), so that two spikes are at least n_ref steps apart
//! (the paper's "refractory period of 5 ms"; the TF reference's n_refractory).
//! Eligibility:
//! ```text
//! zbar_i(t)     = alpha zbar_i(t-1) + pre_i(t)               pre = x(t) or z(t-1)
//! eps_a_ji(t)   = psi_j(t-1) zbar_i(t-1) + (rho - beta psi_j(t-1)) eps_a_ji(t-1)   (ALIF)
//! e_ji(t)       = psi_j(t) (zbar_i(t) - beta eps_a_ji(t))
//! ebar_ji(t)    = kappa ebar_ji(t-1) + (1 - kappa) e_ji(t)   (readout filter)
//! ```
//! Readout `y_k(t) = sum_j W_out_kj zhat_j(t) + b_k` with the unit-gain filter
//! `zhat_j(t) = kappa zhat_j(t-1) + (1 - kappa) z_j(t)` (as the TF reference's
//! `exp_convolve` and NEST's readout neuron): zhat is a rate in spikes per
//! step, so the default `W_out ~ N(0, 1/n_neurons)` (the references'
//! initialization) gives outputs of the targets' scale. Error `err = y - y*`
//! (MSE, E = 0.5 sum_t |err|^2) or `softmax(y) - pi*` (cross-entropy,
//! E = -sum_t sum_k pi*_k log softmax(y)_k; every counted row of pi* is a
//! probability distribution), zero outside the mask. Learning signal
//! `L_j(t) = sum_k B_jk err_k(t)`. Gradients:
//! `dE/dW_ji = sum_t L_j(t) ebar_ji(t)`, `dE/dW_out_kj = sum_t err_k(t) zhat_j(t)`,
//! `dE/db_k = sum_t err_k(t)`. With B = W_out^T this is the exact gradient of
//! the network in which z(t-1) is a constant in the recurrence and in the reset.
//!
//! Feedback B: `W_out^T` (symmetric), a fixed random matrix (random), or
//! Kolen-Pollack (adaptive; the TF reference's `KolenPollackDecay`): B^T and
//! W_out receive the same optimizer change and the same decay,
//! `W_out <- (1 - d) W_out + D`, `B <- (1 - d) B + D^T` (d = feedback_decay per
//! update), so that W_out - B^T shrinks by (1 - d) per update and B converges
//! to W_out^T.
//!
//! Rate regularization toward f0 = target_rate dt / 1000 spikes per step:
//! - `update="sequence"` (and `gradients()`): `E_reg = reg/2 sum_j (f_j - f0)^2`
//!   with f_j the mean spikes per step since reset, whose gradient
//!   `reg (f_j - f0) mean_t e_ji(t)` is added once the sequence ends (at the
//!   update, a reset or a prediction, whichever comes first);
//! - online (`update="step"` or k): every step adds `r_j(t) e_ji(t)` with
//!   `r_j(t) = reg (fbar_j(t) - f0) dt / tau_reg`, where fbar_j is the running
//!   mean of z_j since reset for the first tau_reg/dt steps and an
//!   exponential average with time constant tau_reg after that. Over one
//!   window of tau_reg it adds up to the sequence form's gradient on that
//!   window (up to the early fluctuation of the running mean), and on a
//!   stream it neither fades nor grows: the regularizer counts once per
//!   tau_reg of simulated time.
//!
//! Prediction (`predict_*`, `evaluate`) runs the forward dynamics only: the
//! eligibility traces are not advanced, and restart from zero afterwards.

use ndarray::{Array1, Array2};

use crate::batch::BatchModel;
use crate::error::{
    check_alloc, check_finite, check_non_negative, check_positive, check_size, count_f64,
};
use crate::error::{EpropError, Result};
use crate::kernels::{flat, flat_mut, matvec, nonzeros, simd_dispatch};
use crate::lif::decay;
use crate::rng::LegacyRng;
use crate::stream::Sequential;

/// Loss of the readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    Mse,
    CrossEntropy,
}

/// Matrix B that carries the output error to the neurons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// B = W_out^T.
    Symmetric,
    /// A fixed random matrix.
    Random,
    /// A random matrix that receives W_out's updates (transposed) and decays.
    Adaptive,
}

/// Weight update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    Adam,
}

/// When accumulated gradients are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Once per sequence (or batch, or stream), at its end.
    Sequence,
    /// Every k steps (k = 1: online).
    Every(usize),
}

impl Loss {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(Loss::Mse),
            "cross_entropy" => Ok(Loss::CrossEntropy),
            o => Err(EpropError::param(
                "loss",
                "'mse' or 'cross_entropy'",
                format!("'{o}'"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross_entropy",
        }
    }
}

impl Feedback {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "symmetric" => Ok(Feedback::Symmetric),
            "random" => Ok(Feedback::Random),
            "adaptive" => Ok(Feedback::Adaptive),
            o => Err(EpropError::param(
                "feedback",
                "'symmetric', 'random' or 'adaptive'",
                format!("'{o}'"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Feedback::Symmetric => "symmetric",
            Feedback::Random => "random",
            Feedback::Adaptive => "adaptive",
        }
    }
}

impl Optimizer {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(Optimizer::Sgd),
            "adam" => Ok(Optimizer::Adam),
            o => Err(EpropError::param(
                "optimizer",
                "'sgd' or 'adam'",
                format!("'{o}'"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        }
    }
}

/// Adam's constants (Kingma and Ba 2015).
pub const ADAM_BETA1: f64 = 0.9;
pub const ADAM_BETA2: f64 = 0.999;
pub const ADAM_EPS: f64 = 1e-8;

/// Hyperparameters of a [`Rsnn`] (times in ms, rates in Hz).
#[derive(Clone, Debug, PartialEq)]
pub struct RsnnConfig {
    pub n_inputs: usize,
    pub n_neurons: usize,
    pub n_outputs: usize,
    /// The last `n_adaptive` neurons are ALIF.
    pub n_adaptive: usize,
    pub tau_mem: f64,
    pub tau_adapt: f64,
    /// Threshold increase per unit of adaptation.
    pub beta: f64,
    pub threshold: f64,
    /// Refractory period in ms (rounded to whole steps).
    pub refractory: f64,
    pub dt: f64,
    pub tau_out: f64,
    pub loss: Loss,
    pub feedback: Feedback,
    /// Decay per update of the adaptive feedback matrix.
    pub feedback_decay: f64,
    pub surrogate_height: f64,
    pub reg_rate: f64,
    pub target_rate: f64,
    /// Time constant (ms) of the running rate of the online regularization.
    pub tau_reg: f64,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub schedule: Schedule,
}

impl RsnnConfig {
    /// Checks every value; `beta = None` gives `1.7 (1 - rho) / (1 - alpha)`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sizes: (i64, i64, i64, i64),
        tau_mem: f64,
        tau_adapt: f64,
        beta: Option<f64>,
        threshold: f64,
        refractory: f64,
        dt: f64,
        tau_out: f64,
        (loss, feedback, optimizer): (Loss, Feedback, Optimizer),
        feedback_decay: f64,
        surrogate_height: f64,
        (reg_rate, target_rate, tau_reg): (f64, f64, f64),
        lr: f64,
        schedule: Schedule,
    ) -> Result<Self> {
        let n_inputs = check_size("n_inputs", sizes.0)?;
        let n_neurons = check_size("n_neurons", sizes.1)?;
        let n_outputs = check_size("n_outputs", sizes.2)?;
        if sizes.3 < 0 || sizes.3 > sizes.1 {
            return Err(EpropError::param(
                "n_adaptive",
                format!("an integer in [0, n_neurons={}]", sizes.1),
                sizes.3,
            ));
        }
        let tau_mem = check_positive("tau_mem", tau_mem)?;
        let tau_adapt = check_positive("tau_adapt", tau_adapt)?;
        let dt = check_positive("dt", dt)?;
        let beta = match beta {
            Some(b) => check_non_negative("beta", b)?,
            None => 1.7 * (1.0 - decay(dt, tau_adapt)) / (1.0 - decay(dt, tau_mem)),
        };
        if let Schedule::Every(0) = schedule {
            return Err(EpropError::param(
                "update",
                "'sequence', 'step' or an integer k >= 1",
                0,
            ));
        }
        if loss == Loss::CrossEntropy && n_outputs < 2 {
            return Err(EpropError::param(
                "n_outputs",
                "at least 2 classes for loss='cross_entropy'",
                n_outputs,
            ));
        }
        let cfg = RsnnConfig {
            n_inputs,
            n_neurons,
            n_outputs,
            n_adaptive: sizes.3 as usize,
            tau_mem,
            tau_adapt,
            beta,
            threshold: check_positive("threshold", threshold)?,
            refractory: check_non_negative("refractory", refractory)?,
            dt,
            tau_out: check_positive("tau_out", tau_out)?,
            loss,
            feedback,
            feedback_decay: check_non_negative("feedback_decay", feedback_decay)?,
            surrogate_height: check_non_negative("surrogate_height", surrogate_height)?,
            reg_rate: check_non_negative("reg_rate", reg_rate)?,
            target_rate: check_non_negative("target_rate", target_rate)?,
            tau_reg: check_positive("tau_reg", tau_reg)?,
            optimizer,
            lr: check_non_negative("lr", lr)?,
            schedule,
        };
        if cfg.tau_reg < cfg.dt {
            return Err(EpropError::param(
                "tau_reg",
                format!("a value >= dt={}", cfg.dt),
                cfg.tau_reg,
            ));
        }
        if cfg.feedback_decay > 1.0 {
            return Err(EpropError::param(
                "feedback_decay",
                "a value in [0, 1]",
                cfg.feedback_decay,
            ));
        }
        check_alloc("RecurrentNetwork", cfg.n_f64()?)?;
        Ok(cfg)
    }

    /// Float64 values of a network of this size with one sequence in flight.
    pub fn n_f64(&self) -> Result<usize> {
        let (ni, n, no, na) = (
            self.n_inputs,
            self.n_neurons,
            self.n_outputs,
            self.n_adaptive,
        );
        let syn = [(n, ni), (n, n)];
        let mut shapes = Vec::new();
        // weights, Adam moments, gradients, filtered eligibility, reg sums
        for _ in 0..6 {
            shapes.extend_from_slice(&syn);
        }
        shapes.extend_from_slice(&[(na, ni), (na, n), (6, no * n), (21, n), (10, no), (2, ni)]);
        count_f64("RecurrentNetwork", &shapes)
    }

    pub fn alpha(&self) -> f64 {
        decay(self.dt, self.tau_mem)
    }
    pub fn rho(&self) -> f64 {
        decay(self.dt, self.tau_adapt)
    }
    pub fn kappa(&self) -> f64 {
        decay(self.dt, self.tau_out)
    }
    /// Refractory period in whole steps.
    pub fn refractory_steps(&self) -> u32 {
        (self.refractory / self.dt).round().min(u32::MAX as f64) as u32
    }
    /// Target rate in spikes per step.
    pub fn rate_per_step(&self) -> f64 {
        self.target_rate * self.dt / 1000.0
    }
    /// Steps in one window of the online regularization (tau_reg / dt, >= 1).
    pub fn reg_window(&self) -> f64 {
        self.tau_reg / self.dt
    }
    /// Index of the first ALIF neuron.
    pub fn first_adaptive(&self) -> usize {
        self.n_neurons - self.n_adaptive
    }
}

/// The trainable weights (and the feedback matrix).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub w_in: Array2<f64>,
    pub w_rec: Array2<f64>,
    pub w_out: Array2<f64>,
    pub b_out: Array1<f64>,
    /// B (n_neurons, n_outputs) for random and adaptive feedback; for
    /// symmetric feedback W_out^T is used and this is ignored.
    pub feedback: Array2<f64>,
}

/// Gradients (or accumulated gradients) of every trained parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub w_in: Array2<f64>,
    pub w_rec: Array2<f64>,
    pub w_out: Array2<f64>,
    pub b_out: Array1<f64>,
}

impl Grads {
    pub fn zeros(cfg: &RsnnConfig) -> Self {
        let (ni, n, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        Grads {
            w_in: Array2::zeros((n, ni)),
            w_rec: Array2::zeros((n, n)),
            w_out: Array2::zeros((no, n)),
            b_out: Array1::zeros(no),
        }
    }

    fn fill(&mut self, x: f64) {
        self.w_in.fill(x);
        self.w_rec.fill(x);
        self.w_out.fill(x);
        self.b_out.fill(x);
    }

    fn bytes(&self) -> usize {
        8 * (self.w_in.len() + self.w_rec.len() + self.w_out.len() + self.b_out.len())
    }

    /// Slices of the four arrays, in a fixed order.
    fn parts(&self) -> [&[f64]; 4] {
        [
            flat(&self.w_in),
            flat(&self.w_rec),
            flat(&self.w_out),
            flat(&self.b_out),
        ]
    }

    fn parts_mut(&mut self) -> [&mut [f64]; 4] {
        [
            flat_mut(&mut self.w_in),
            flat_mut(&mut self.w_rec),
            flat_mut(&mut self.w_out),
            flat_mut(&mut self.b_out),
        ]
    }
}

impl Params {
    /// Weights drawn from `seed`: W_in ~ N(0, 1/n_inputs), W_rec ~ N(0, 1/n_neurons)
    /// with zero diagonal, W_out ~ N(0, 1/n_neurons), b_out = 0, and B (random
    /// and adaptive feedback) ~ N(0, 1/n_neurons), the scale of W_out^T.
    pub fn new(cfg: &RsnnConfig, seed: u32) -> Self {
        let mut rng = LegacyRng::new(seed);
        let (ni, n, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        let w_in = rng.normal_matrix(n, ni, 1.0 / (ni as f64).sqrt());
        let mut w_rec = rng.normal_matrix(n, n, 1.0 / (n as f64).sqrt());
        w_rec.diag_mut().fill(0.0);
        let w_out = rng.normal_matrix(no, n, 1.0 / (n as f64).sqrt());
        let feedback = rng.normal_matrix(n, no, 1.0 / (n as f64).sqrt());
        Params {
            w_in,
            w_rec,
            w_out,
            b_out: Array1::zeros(no),
            feedback,
        }
    }

    fn parts_mut(&mut self) -> [&mut [f64]; 4] {
        [
            flat_mut(&mut self.w_in),
            flat_mut(&mut self.w_rec),
            flat_mut(&mut self.w_out),
            flat_mut(&mut self.b_out),
        ]
    }

    /// Bytes of weights and feedback matrix.
    pub fn bytes(&self) -> usize {
        8 * (self.w_in.len()
            + self.w_rec.len()
            + self.w_out.len()
            + self.b_out.len()
            + self.feedback.len())
    }
}

/// Optimizer state: step count and, for Adam, the moment estimates.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState {
    pub t: u64,
    pub m: Option<Grads>,
    pub v: Option<Grads>,
}

impl OptimState {
    pub fn new(cfg: &RsnnConfig) -> Self {
        let adam = cfg.optimizer == Optimizer::Adam;
        OptimState {
            t: 0,
            m: adam.then(|| Grads::zeros(cfg)),
            v: adam.then(|| Grads::zeros(cfg)),
        }
    }

    fn bytes(&self) -> usize {
        self.m.as_ref().map_or(0, Grads::bytes) + self.v.as_ref().map_or(0, Grads::bytes)
    }
}

/// Dynamic state of one sequence, its eligibilities and its gradient sums.
#[derive(Clone, Debug, PartialEq)]
pub struct RsnnState {
    pub v: Array1<f64>,
    /// Adaptation a_j (zero for LIF neurons).
    pub a: Array1<f64>,
    /// Spikes of the last step.
    pub z: Array1<f64>,
    /// Remaining refractory steps.
    pub refractory: Vec<u32>,
    /// Pseudo-derivative of the last step.
    pub psi: Array1<f64>,
    /// Presynaptic traces (eligibility vectors of v): inputs and recurrent.
    pub zbar_in: Array1<f64>,
    pub zbar_rec: Array1<f64>,
    /// Adaptation eligibility vectors of the ALIF rows (n_adaptive, n_pre).
    pub eps_a_in: Array2<f64>,
    pub eps_a_rec: Array2<f64>,
    /// Readout-filtered eligibility traces.
    pub ebar_in: Array2<f64>,
    pub ebar_rec: Array2<f64>,
    /// Readout-filtered spikes and the output of the last step.
    pub zhat: Array1<f64>,
    pub y: Array1<f64>,
    /// Gradient sums since the last update.
    pub grads: Grads,
    /// Sums of the unfiltered eligibility (for the rate regularization).
    pub e_sum_in: Array2<f64>,
    pub e_sum_rec: Array2<f64>,
    /// Spikes per neuron since reset (regularization, `update="sequence"`).
    pub spike_count: Array1<f64>,
    /// Running rate per neuron, spikes per step (regularization, online).
    pub rate: Array1<f64>,
    pub steps: u64,
    /// Steps since the last update (for `update=k`).
    pub pending: u64,
}

/// Work buffers of one step.
#[derive(Clone, Debug)]
struct Scratch {
    current: Vec<f64>,
    rec_current: Vec<f64>,
    err: Vec<f64>,
    signal: Vec<f64>,
    reg_signal: Vec<f64>,
    idx_in: Vec<usize>,
    idx_rec: Vec<usize>,
}

/// One sequence in flight.
#[derive(Clone, Debug)]
pub struct RsnnSeq {
    pub state: RsnnState,
    scratch: Scratch,
    /// Whether the eligibility traces hold anything (false after a reset or
    /// a prediction, until the next step that tracks them).
    pub tracking: bool,
}

impl RsnnSeq {
    pub fn new(cfg: &RsnnConfig) -> Self {
        let (ni, n, no, na) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs, cfg.n_adaptive);
        let reg = cfg.reg_rate > 0.0;
        let (ri, rr) = if reg {
            ((n, ni), (n, n))
        } else {
            ((0, 0), (0, 0))
        };
        RsnnSeq {
            state: RsnnState {
                v: Array1::zeros(n),
                a: Array1::zeros(n),
                z: Array1::zeros(n),
                refractory: vec![0; n],
                psi: Array1::zeros(n),
                zbar_in: Array1::zeros(ni),
                zbar_rec: Array1::zeros(n),
                eps_a_in: Array2::zeros((na, ni)),
                eps_a_rec: Array2::zeros((na, n)),
                ebar_in: Array2::zeros((n, ni)),
                ebar_rec: Array2::zeros((n, n)),
                zhat: Array1::zeros(n),
                y: Array1::zeros(no),
                grads: Grads::zeros(cfg),
                e_sum_in: Array2::zeros(ri),
                e_sum_rec: Array2::zeros(rr),
                spike_count: Array1::zeros(n),
                rate: Array1::zeros(n),
                steps: 0,
                pending: 0,
            },
            scratch: Scratch {
                current: vec![0.0; n],
                rec_current: vec![0.0; n],
                err: vec![0.0; no],
                signal: vec![0.0; n],
                reg_signal: vec![0.0; n],
                idx_in: Vec::with_capacity(ni),
                idx_rec: Vec::with_capacity(n),
            },
            tracking: false,
        }
    }

    /// Zeroes the dynamics and eligibilities (gradient sums are kept; fold
    /// a pending sequence regularization first, see [`Rsnn::reset`]).
    pub fn reset_dynamics(&mut self) {
        self.clear_eligibility();
        let st = &mut self.state;
        for a in [
            &mut st.v,
            &mut st.a,
            &mut st.z,
            &mut st.psi,
            &mut st.zbar_in,
            &mut st.zbar_rec,
            &mut st.zhat,
            &mut st.y,
        ] {
            a.fill(0.0);
        }
        st.refractory.fill(0);
    }

    /// Zeroes the eligibility traces and the rate statistics of the
    /// regularization (and the step count since reset).
    pub fn clear_eligibility(&mut self) {
        let st = &mut self.state;
        for a in [
            &mut st.eps_a_in,
            &mut st.eps_a_rec,
            &mut st.ebar_in,
            &mut st.ebar_rec,
            &mut st.e_sum_in,
            &mut st.e_sum_rec,
        ] {
            a.fill(0.0);
        }
        st.spike_count.fill(0.0);
        st.rate.fill(0.0);
        st.steps = 0;
        self.tracking = false;
    }

    /// Zeroes the gradient sums.
    pub fn clear_grads(&mut self) {
        self.state.grads.fill(0.0);
        self.state.e_sum_in.fill(0.0);
        self.state.e_sum_rec.fill(0.0);
        self.state.pending = 0;
    }

    pub fn bytes(&self) -> usize {
        let st = &self.state;
        let arrays = [
            st.v.len(),
            st.a.len(),
            st.z.len(),
            st.psi.len(),
            st.zbar_in.len(),
            st.zbar_rec.len(),
            st.eps_a_in.len(),
            st.eps_a_rec.len(),
            st.ebar_in.len(),
            st.ebar_rec.len(),
            st.zhat.len(),
            st.y.len(),
            st.e_sum_in.len(),
            st.e_sum_rec.len(),
            st.spike_count.len(),
            st.rate.len(),
        ];
        let sc = &self.scratch;
        8 * arrays.iter().sum::<usize>()
            + 4 * st.refractory.len()
            + st.grads.bytes()
            + 8 * (sc.current.capacity() + sc.rec_current.capacity() + sc.err.capacity())
            + 8 * (sc.signal.capacity() + sc.reg_signal.capacity())
            + std::mem::size_of::<usize>() * (sc.idx_in.capacity() + sc.idx_rec.capacity())
    }
}

/// Step 8 for one presynaptic population (inputs or recurrent), row j:
/// `e = psi_j (pre - beta eps_a_j)` (the eps term for ALIF rows only),
/// `ebar <- kappa ebar + gain e` (gain = 1 - kappa), and when accumulating
/// `grad += L_j ebar + r_j e` and (end-of-sequence regularization) `esum += e`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn elig_rows_imp(
    pre: &[f64],
    eps: &[f64],
    ebar: &mut [f64],
    grad: &mut [f64],
    esum: &mut [f64],
    (psi, signal, reg): (&[f64], &[f64], &[f64]),
    (first_ad, beta, kappa, gain): (usize, f64, f64, f64),
    (accumulate, sum_e): (bool, bool),
) {
    let cols = pre.len();
    if cols == 0 {
        return;
    }
    for (j, (eb, g)) in ebar
        .chunks_exact_mut(cols)
        .zip(grad.chunks_exact_mut(cols))
        .enumerate()
    {
        let (pj, lj, rj) = (psi[j], signal[j], reg[j]);
        let adaptive = j >= first_ad;
        let eps_row = if adaptive {
            &eps[(j - first_ad) * cols..(j - first_ad + 1) * cols]
        } else {
            pre
        };
        // For LIF rows eps_row is unused (multiplied by a zero beta below).
        let b = if adaptive { beta } else { 0.0 };
        let learn = accumulate && (lj != 0.0 || rj != 0.0);
        match (adaptive, learn) {
            (false, false) => {
                for (e, &p) in eb.iter_mut().zip(pre) {
                    *e = kappa * *e + gain * (pj * p);
                }
            }
            (false, true) => {
                for ((e, gi), &p) in eb.iter_mut().zip(g.iter_mut()).zip(pre) {
                    let ei = pj * p;
                    let nb = kappa * *e + gain * ei;
                    *e = nb;
                    *gi += lj * nb + rj * ei;
                }
            }
            (true, false) => {
                for ((e, &p), &ea) in eb.iter_mut().zip(pre).zip(eps_row) {
                    *e = kappa * *e + gain * (pj * (p - b * ea));
                }
            }
            (true, true) => {
                for (((e, gi), &p), &ea) in eb.iter_mut().zip(g.iter_mut()).zip(pre).zip(eps_row) {
                    let ei = pj * (p - b * ea);
                    let nb = kappa * *e + gain * ei;
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
    /// [`elig_rows_imp`], compiled for AVX2 when available.
    pub fn elig_rows / elig_rows_avx2(
        pre: &[f64],
        eps: &[f64],
        ebar: &mut [f64],
        grad: &mut [f64],
        esum: &mut [f64],
        rows: (&[f64], &[f64], &[f64]),
        consts: (usize, f64, f64, f64),
        flags: (bool, bool),
    ) => elig_rows_imp
}

/// Numerically safe softmax of `y` into `p`.
fn softmax(y: &[f64], p: &mut [f64]) {
    let m = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (pi, &yi) in p.iter_mut().zip(y) {
        *pi = (yi - m).exp();
        sum += *pi;
    }
    for pi in p.iter_mut() {
        *pi /= sum;
    }
}

/// The network: configuration, parameters, optimizer state.
#[derive(Clone, Debug)]
pub struct RsnnNet {
    pub cfg: RsnnConfig,
    pub params: Params,
    pub optim: OptimState,
}

impl RsnnNet {
    pub fn new(cfg: RsnnConfig, seed: u32) -> Self {
        let params = Params::new(&cfg, seed);
        let optim = OptimState::new(&cfg);
        RsnnNet { cfg, params, optim }
    }

    /// One step of sequence `seq`: dynamics, eligibilities, output, and, when
    /// `target` is given and `learn`, the error, loss and gradient sums.
    /// `online_reg` adds the rate regularization at every step (running rate)
    /// instead of at the end of the sequence. Returns the loss of the step
    /// (0 when not learning). The weights are not changed.
    pub fn step(
        &self,
        seq: &mut RsnnSeq,
        x: &[f64],
        target: Option<&[f64]>,
        learn: bool,
        online_reg: bool,
    ) -> f64 {
        self.adapt_eligibility(seq);
        self.forward(seq, x);
        self.update_rate(seq, online_reg);
        let loss = self.error(seq, target, learn);
        self.learning_signal(seq, target, learn, online_reg);
        self.eligibility(seq, target.is_some(), online_reg);
        if learn && target.is_some() {
            self.readout_gradients(seq);
        }
        if target.is_some() {
            seq.state.pending += 1;
        }
        seq.tracking = true;
        loss
    }

    /// The forward dynamics alone (prediction): membranes, adaptation, spikes,
    /// presynaptic traces and readout. Eligibility traces are not advanced.
    pub fn predict_step(&self, seq: &mut RsnnSeq, x: &[f64]) {
        self.forward(seq, x);
    }

    /// ALIF eligibility vectors with psi(t-1) and zbar(t-1):
    /// `eps_a <- psi zbar + (rho - beta psi) eps_a`.
    fn adapt_eligibility(&self, seq: &mut RsnnSeq) {
        let cfg = &self.cfg;
        let (rho, beta, first_ad) = (cfg.rho(), cfg.beta, cfg.first_adaptive());
        let st = &mut seq.state;
        let psi_prev = flat(&st.psi);
        for (pre, eps) in [
            (flat(&st.zbar_in), flat_mut(&mut st.eps_a_in)),
            (flat(&st.zbar_rec), flat_mut(&mut st.eps_a_rec)),
        ] {
            let cols = pre.len();
            if cols == 0 {
                continue;
            }
            for (row, &pj) in eps.chunks_exact_mut(cols).zip(&psi_prev[first_ad..]) {
                let c = rho - beta * pj;
                for (e, &zb) in row.iter_mut().zip(pre) {
                    *e = pj * zb + c * *e;
                }
            }
        }
    }

    /// Presynaptic traces, adaptation, membrane, spikes, pseudo-derivative
    /// and readout of one step.
    fn forward(&self, seq: &mut RsnnSeq, x: &[f64]) {
        let cfg = &self.cfg;
        let p = &self.params;
        let n = cfg.n_neurons;
        let (alpha, rho, kappa) = (cfg.alpha(), cfg.rho(), cfg.kappa());
        let (thr, beta, gamma) = (cfg.threshold, cfg.beta, cfg.surrogate_height);
        let first_ad = cfg.first_adaptive();
        let st = &mut seq.state;
        let sc = &mut seq.scratch;
        for (zb, &xi) in flat_mut(&mut st.zbar_in).iter_mut().zip(x) {
            *zb = alpha * *zb + xi;
        }
        for (zb, &zi) in flat_mut(&mut st.zbar_rec).iter_mut().zip(flat(&st.z)) {
            *zb = alpha * *zb + zi;
        }
        let sparse_in = nonzeros(x, &mut sc.idx_in);
        let sparse_rec = nonzeros(flat(&st.z), &mut sc.idx_rec);
        matvec(flat(&p.w_in), x, &sc.idx_in, sparse_in, &mut sc.current);
        matvec(
            flat(&p.w_rec),
            flat(&st.z),
            &sc.idx_rec,
            sparse_rec,
            &mut sc.rec_current,
        );
        // After a spike the neuron is blocked for n_ref - 1 steps, so that the
        // shortest interval between two spikes is n_ref steps (refractory / dt).
        let blocked_after_spike = cfg.refractory_steps().saturating_sub(1);
        let z = flat_mut(&mut st.z);
        let (vv, aa, psi) = (
            flat_mut(&mut st.v),
            flat_mut(&mut st.a),
            flat_mut(&mut st.psi),
        );
        for j in 0..n {
            let z_prev = z[j];
            if j >= first_ad {
                aa[j] = rho * aa[j] + z_prev;
            }
            let a_thr = thr + beta * aa[j];
            vv[j] = alpha * vv[j] + (sc.current[j] + sc.rec_current[j]) - thr * z_prev;
            if st.refractory[j] > 0 {
                st.refractory[j] -= 1;
                z[j] = 0.0;
                psi[j] = 0.0;
            } else {
                let d = vv[j] - a_thr;
                z[j] = if d >= 0.0 { 1.0 } else { 0.0 };
                psi[j] = gamma / thr * (1.0 - d.abs() / thr).max(0.0);
                if z[j] > 0.0 {
                    st.refractory[j] = blocked_after_spike;
                }
            }
        }
        st.steps += 1;
        // Readout: zhat is the spike train low-pass filtered with unit gain.
        let gain = 1.0 - kappa;
        for (zh, &zj) in flat_mut(&mut st.zhat).iter_mut().zip(z.iter()) {
            *zh = kappa * *zh + gain * zj;
        }
        let zhat = flat(&st.zhat);
        for ((yk, row), &bk) in flat_mut(&mut st.y)
            .iter_mut()
            .zip(flat(&p.w_out).chunks_exact(n))
            .zip(flat(&p.b_out))
        {
            *yk = crate::kernels::dot(row, zhat) + bk;
        }
    }

    /// Rate statistics for the regularization: the spike count since reset
    /// (sequence form) or the running rate (online form).
    fn update_rate(&self, seq: &mut RsnnSeq, online_reg: bool) {
        let cfg = &self.cfg;
        if cfg.reg_rate <= 0.0 {
            return;
        }
        let st = &mut seq.state;
        let z = flat(&st.z);
        if online_reg {
            let w = 1.0 / (st.steps as f64).min(cfg.reg_window());
            for (r, &zj) in flat_mut(&mut st.rate).iter_mut().zip(z) {
                *r += w * (zj - *r);
            }
        } else {
            for (c, &zj) in flat_mut(&mut st.spike_count).iter_mut().zip(z) {
                *c += zj;
            }
        }
    }

    /// Error `err = y - y*` (MSE) or `softmax(y) - y*` (cross-entropy) into the
    /// scratch buffer, zero when not learning; returns the step's loss.
    fn error(&self, seq: &mut RsnnSeq, target: Option<&[f64]>, learn: bool) -> f64 {
        let sc = &mut seq.scratch;
        sc.err.fill(0.0);
        let mut loss = 0.0;
        let Some(t) = target.filter(|_| learn) else {
            return 0.0;
        };
        let y = flat(&seq.state.y);
        match self.cfg.loss {
            Loss::Mse => {
                for ((e, &yk), &tk) in sc.err.iter_mut().zip(y).zip(t) {
                    *e = yk - tk;
                    loss += 0.5 * *e * *e;
                }
            }
            Loss::CrossEntropy => {
                softmax(y, &mut sc.err);
                for (e, &tk) in sc.err.iter_mut().zip(t) {
                    if tk != 0.0 {
                        loss -= tk * e.max(f64::MIN_POSITIVE).ln();
                    }
                    *e -= tk;
                }
            }
        }
        loss
    }

    /// Learning signal `L = B err` and, online, the regularization signal
    /// `r_j = reg (rate_j - f0) dt / tau_reg`.
    fn learning_signal(
        &self,
        seq: &mut RsnnSeq,
        target: Option<&[f64]>,
        learn: bool,
        online_reg: bool,
    ) {
        let cfg = &self.cfg;
        let p = &self.params;
        let n = cfg.n_neurons;
        let sc = &mut seq.scratch;
        sc.signal.fill(0.0);
        if learn && target.is_some() {
            match cfg.feedback {
                Feedback::Symmetric => {
                    for (row, &e) in flat(&p.w_out).chunks_exact(n).zip(&sc.err) {
                        for (l, &w) in sc.signal.iter_mut().zip(row) {
                            *l += w * e;
                        }
                    }
                }
                Feedback::Random | Feedback::Adaptive => {
                    for (l, row) in sc
                        .signal
                        .iter_mut()
                        .zip(flat(&p.feedback).chunks_exact(cfg.n_outputs))
                    {
                        *l = crate::kernels::dot(row, &sc.err);
                    }
                }
            }
        }
        sc.reg_signal.fill(0.0);
        if cfg.reg_rate > 0.0 && online_reg && target.is_some() {
            let f0 = cfg.rate_per_step();
            let scale = cfg.reg_rate / cfg.reg_window();
            for (r, &f) in sc.reg_signal.iter_mut().zip(flat(&seq.state.rate)) {
                *r = scale * (f - f0);
            }
        }
    }

    /// Eligibility, filtered eligibility and gradient sums (one pass per row).
    fn eligibility(&self, seq: &mut RsnnSeq, accumulate: bool, online_reg: bool) {
        let cfg = &self.cfg;
        let st = &mut seq.state;
        let sc = &seq.scratch;
        let sum_e = cfg.reg_rate > 0.0 && accumulate && !online_reg;
        let kappa = cfg.kappa();
        let consts = (cfg.first_adaptive(), cfg.beta, kappa, 1.0 - kappa);
        let flags = (accumulate, sum_e);
        let (psi, signal, reg_signal) = (flat(&st.psi), &sc.signal[..], &sc.reg_signal[..]);
        elig_rows(
            flat(&st.zbar_in),
            flat(&st.eps_a_in),
            flat_mut(&mut st.ebar_in),
            flat_mut(&mut st.grads.w_in),
            flat_mut(&mut st.e_sum_in),
            (psi, signal, reg_signal),
            consts,
            flags,
        );
        elig_rows(
            flat(&st.zbar_rec),
            flat(&st.eps_a_rec),
            flat_mut(&mut st.ebar_rec),
            flat_mut(&mut st.grads.w_rec),
            flat_mut(&mut st.e_sum_rec),
            (psi, signal, reg_signal),
            consts,
            flags,
        );
    }

    /// Readout gradients `err zhat^T` and `err`.
    fn readout_gradients(&self, seq: &mut RsnnSeq) {
        let n = self.cfg.n_neurons;
        let st = &mut seq.state;
        let sc = &seq.scratch;
        let zhat = flat(&st.zhat);
        for (row, &e) in flat_mut(&mut st.grads.w_out)
            .chunks_exact_mut(n)
            .zip(&sc.err)
        {
            for (g, &zh) in row.iter_mut().zip(zhat) {
                *g += e * zh;
            }
        }
        for (g, &e) in flat_mut(&mut st.grads.b_out).iter_mut().zip(&sc.err) {
            *g += e;
        }
    }

    /// Adds the end-of-sequence rate regularization gradient
    /// `reg (f_j - f0) mean_t e_ji(t)` to the gradient sums.
    pub fn finish_sequence(&self, seq: &mut RsnnSeq) {
        let cfg = &self.cfg;
        let st = &mut seq.state;
        if cfg.reg_rate <= 0.0 || st.steps == 0 {
            return;
        }
        let t = st.steps as f64;
        let f0 = cfg.rate_per_step();
        for (grad, esum) in [
            (&mut st.grads.w_in, &st.e_sum_in),
            (&mut st.grads.w_rec, &st.e_sum_rec),
        ] {
            let cols = grad.ncols();
            if cols == 0 {
                continue;
            }
            let counts = flat(&st.spike_count);
            for ((g, es), &c) in flat_mut(grad)
                .chunks_exact_mut(cols)
                .zip(flat(esum).chunks_exact(cols))
                .zip(counts)
            {
                let r = cfg.reg_rate * (c / t - f0) / t;
                for (gi, &e) in g.iter_mut().zip(es) {
                    *gi += r * e;
                }
            }
        }
        st.e_sum_in.fill(0.0);
        st.e_sum_rec.fill(0.0);
    }

    /// Applies the mean of the gradient sums of `seqs` with the optimizer,
    /// then zeroes the sums. W_rec's diagonal stays zero; adaptive feedback
    /// follows W_out's change.
    pub fn apply(&mut self, seqs: &mut [&mut RsnnSeq]) {
        let b = seqs.len();
        if b == 0 {
            return;
        }
        let mut mean = seqs[0].state.grads.clone();
        {
            let mut parts = mean.parts_mut();
            for other in seqs.iter().skip(1) {
                for (m, o) in parts.iter_mut().zip(other.state.grads.parts()) {
                    for (mi, &oi) in m.iter_mut().zip(o) {
                        *mi += oi;
                    }
                }
            }
            let bf = b as f64;
            for m in parts.iter_mut() {
                for mi in m.iter_mut() {
                    *mi /= bf;
                }
            }
        }
        mean.w_rec.diag_mut().fill(0.0);
        self.apply_gradient(&mean);
        for sq in seqs.iter_mut() {
            sq.clear_grads();
        }
    }

    /// One optimizer step with gradient `g`.
    pub fn apply_gradient(&mut self, g: &Grads) {
        let lr = self.cfg.lr;
        let old_w_out =
            (self.cfg.feedback == Feedback::Adaptive).then(|| self.params.w_out.clone());
        self.optim.t += 1;
        let t = self.optim.t as f64;
        match (
            self.cfg.optimizer,
            self.optim.m.as_mut(),
            self.optim.v.as_mut(),
        ) {
            (Optimizer::Adam, Some(m), Some(vv)) => {
                let c1 = 1.0 - ADAM_BETA1.powf(t);
                let c2 = 1.0 - ADAM_BETA2.powf(t);
                for (((w, gi), mi), vi) in self
                    .params
                    .parts_mut()
                    .into_iter()
                    .zip(g.parts())
                    .zip(m.parts_mut())
                    .zip(vv.parts_mut())
                {
                    for (((wk, &gk), mk), vk) in
                        w.iter_mut().zip(gi).zip(mi.iter_mut()).zip(vi.iter_mut())
                    {
                        *mk = ADAM_BETA1 * *mk + (1.0 - ADAM_BETA1) * gk;
                        *vk = ADAM_BETA2 * *vk + (1.0 - ADAM_BETA2) * gk * gk;
                        *wk -= lr * (*mk / c1) / ((*vk / c2).sqrt() + ADAM_EPS);
                    }
                }
            }
            _ => {
                for (w, gi) in self.params.parts_mut().into_iter().zip(g.parts()) {
                    for (wk, &gk) in w.iter_mut().zip(gi) {
                        *wk -= lr * gk;
                    }
                }
            }
        }
        self.params.w_rec.diag_mut().fill(0.0);
        if let Some(old) = old_w_out {
            // Kolen-Pollack: W_out and B^T receive the same change and the
            // same decay, so W_out - B^T shrinks by (1 - feedback_decay) per update.
            let keep = 1.0 - self.cfg.feedback_decay;
            let no = self.cfg.n_outputs;
            let n = self.cfg.n_neurons;
            let old = flat(&old);
            let w_out = flat_mut(&mut self.params.w_out);
            let b = flat_mut(&mut self.params.feedback);
            for k in 0..no {
                for j in 0..n {
                    let step = w_out[k * n + j] - old[k * n + j];
                    w_out[k * n + j] = keep * old[k * n + j] + step;
                    b[j * no + k] = keep * b[j * no + k] + step;
                }
            }
        }
    }
}

/// Largest deviation from 1 accepted in the sum of a row of class probabilities.
pub const DISTRIBUTION_TOLERANCE: f64 = 1e-6;

/// Checks cross-entropy targets (rows of class probabilities, shape (T, K)):
/// every row whose error counts (`mask` true, or every row without a mask)
/// must be non-negative and sum to 1 within [`DISTRIBUTION_TOLERANCE`]. Rows
/// outside the mask are not used and not checked. `index` formats a row
/// number for the message (e.g. `(b, t)` in a batch).
pub fn check_distributions(
    arg: &str,
    targets: ndarray::ArrayView2<f64>,
    mask: Option<ndarray::ArrayView1<bool>>,
    index: &dyn Fn(usize) -> String,
) -> Result<()> {
    for (t, row) in targets.outer_iter().enumerate() {
        if mask.as_ref().is_some_and(|m| !m[t]) {
            continue;
        }
        let sum: f64 = row.iter().sum();
        let negative = row.iter().any(|&p| p < 0.0);
        if negative || (sum - 1.0).abs() > DISTRIBUTION_TOLERANCE {
            let shown: Vec<String> = row.iter().map(|p| format!("{p}")).collect();
            return Err(EpropError::param(
                arg,
                "class probabilities (non-negative, summing to 1) in every row whose error counts",
                format!("[{}] (sum {sum}) at row {}", shown.join(", "), index(t)),
            ));
        }
    }
    Ok(())
}

/// Checks a user-supplied finite vector/matrix length (used by the binding).
pub fn check_len(arg: &str, x: &[f64], n: usize) -> Result<()> {
    if x.len() != n {
        return Err(EpropError::shape(
            arg,
            crate::error::fmt_shape(&[n]),
            crate::error::fmt_shape(&[x.len()]),
        ));
    }
    check_finite(arg, x, &[n])
}

/// A network with one sequence in flight (the Python class).
#[derive(Clone, Debug)]
pub struct Rsnn {
    pub net: RsnnNet,
    pub seq: RsnnSeq,
}

impl Rsnn {
    pub fn new(cfg: RsnnConfig, seed: u32) -> Self {
        let seq = RsnnSeq::new(&cfg);
        Rsnn {
            net: RsnnNet::new(cfg, seed),
            seq,
        }
    }

    /// Bytes of all per-trainer state.
    pub fn memory_bytes(&self) -> usize {
        self.net.params.bytes() + self.net.optim.bytes() + self.seq.bytes()
    }

    /// Float64 values kept per step of a sequence, as `memory_per_step`
    /// counts them for the seed trainers (constant in T).
    pub fn memory_per_step(&self) -> usize {
        self.seq.bytes() / 8
    }

    /// Applies pending gradient sums now (and the end-of-sequence
    /// regularization in `update="sequence"` mode).
    pub fn apply_pending(&mut self) {
        if self.seq.state.pending == 0 {
            return;
        }
        if self.net.cfg.schedule == Schedule::Sequence {
            self.net.finish_sequence(&mut self.seq);
        }
        self.net.apply(&mut [&mut self.seq]);
    }

    /// Folds the rate regularization of the steps since reset into the
    /// pending gradient sums (`update="sequence"`): the regularization of a
    /// sequence is complete once the sequence ends, whether by an update, a
    /// reset or a prediction.
    fn fold_regularization(&mut self) {
        if self.net.cfg.schedule == Schedule::Sequence && self.seq.state.pending > 0 {
            self.net.finish_sequence(&mut self.seq);
        }
    }

    /// Zeroes the dynamic state; pending gradient sums (including the
    /// regularization of the steps so far) are kept for the next update.
    pub fn reset(&mut self) {
        self.fold_regularization();
        self.seq.reset_dynamics();
    }

    /// Prepares for prediction: predictions run the forward dynamics only,
    /// so the eligibility traces (and the rate statistics of the
    /// regularization) restart from zero afterwards. Pending gradient sums are
    /// kept.
    pub fn begin_inference(&mut self) {
        if self.seq.tracking {
            self.fold_regularization();
            self.seq.clear_eligibility();
        }
    }

    /// One step without learning: forward dynamics only (see [`Self::begin_inference`]).
    pub fn predict_step(&mut self, x: &[f64]) {
        self.begin_inference();
        self.net.predict_step(&mut self.seq, x);
    }

    /// One step; with a target, learns according to the schedule: `Every(k)`
    /// applies every k learning steps, `Sequence` waits for [`Self::apply_pending`].
    pub fn step(&mut self, x: &[f64], target: Option<&[f64]>, learn: bool) -> f64 {
        let online = self.net.cfg.schedule != Schedule::Sequence;
        let loss = self.net.step(&mut self.seq, x, target, learn, online);
        if let (Schedule::Every(k), true) = (self.net.cfg.schedule, target.is_some()) {
            if self.seq.state.pending >= k as u64 {
                self.net.apply(&mut [&mut self.seq]);
            }
        }
        loss
    }
}

impl Sequential for Rsnn {
    fn n_inputs(&self) -> usize {
        self.net.cfg.n_inputs
    }
    fn n_outputs(&self) -> usize {
        self.net.cfg.n_outputs
    }
    fn reset_state(&mut self) {
        self.reset();
    }
    fn learn_step(&mut self, x: &[f64], target: &[f64], learn: bool) -> f64 {
        self.step(x, Some(target), learn)
    }
    fn infer_step(&mut self, x: &[f64]) -> &[f64] {
        self.predict_step(x);
        flat(&self.seq.state.y)
    }
    fn end_of_sequence(&mut self) {
        self.apply_pending();
    }
}

impl BatchModel for RsnnNet {
    type Seq = RsnnSeq;
    type Acc = ();

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs
    }
    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs
    }
    fn new_seq(&self) -> RsnnSeq {
        RsnnSeq::new(&self.cfg)
    }
    fn seq_bytes(&self) -> usize {
        RsnnSeq::new(&self.cfg).bytes()
    }
    fn new_acc(&self) {}
    fn acc_bytes(&self) -> usize {
        0
    }
    fn seq_step(&self, seq: &mut RsnnSeq, x: &[f64], target: &[f64], learn: bool) -> f64 {
        let online = self.cfg.schedule != Schedule::Sequence;
        self.step(seq, x, Some(target), learn, online)
    }
    fn accumulate(&self, _seq: &mut RsnnSeq, _acc: &mut ()) {}
    fn finish_seq(&self, seq: &mut RsnnSeq, _acc: &mut ()) {
        if self.cfg.schedule == Schedule::Sequence {
            self.finish_sequence(seq);
        }
    }
    fn apply_acc_mean(&mut self, seqs: &mut [RsnnSeq], _accs: &mut [()]) {
        let mut refs: Vec<&mut RsnnSeq> = seqs.iter_mut().collect();
        self.apply(&mut refs);
    }
    fn predict_step(&self, seq: &mut RsnnSeq, x: &[f64], out: &mut [f64]) {
        RsnnNet::predict_step(self, seq, x);
        out.copy_from_slice(flat(&seq.state.y));
    }
}

/// Gradients of the objective (summed over time, mean over the batch) with
/// the weights fixed, and the mean loss of each sequence over its counted
/// steps. Every sequence starts from reset state; `mask` is (B, T).
pub fn gradients(
    net: &RsnnNet,
    inputs: ndarray::ArrayView3<f64>,
    targets: ndarray::ArrayView3<f64>,
    mask: Option<ndarray::ArrayView2<bool>>,
) -> Result<(Grads, Vec<f64>)> {
    use rayon::prelude::*;
    let (b, t, w) = inputs.dim();
    if w != net.cfg.n_inputs || b == 0 || t == 0 {
        return Err(EpropError::shape(
            "inputs",
            format!("(B, T, {}) with B >= 1 and T >= 1", net.cfg.n_inputs),
            crate::error::fmt_shape(inputs.shape()),
        ));
    }
    if targets.dim() != (b, t, net.cfg.n_outputs) {
        return Err(EpropError::shape(
            "targets",
            crate::error::fmt_shape(&[b, t, net.cfg.n_outputs]),
            crate::error::fmt_shape(targets.shape()),
        ));
    }
    if let Some(m) = &mask {
        if m.dim() != (b, t) {
            return Err(EpropError::shape(
                "mask",
                crate::error::fmt_shape(&[b, t]),
                crate::error::fmt_shape(m.shape()),
            ));
        }
    }
    let runs: Vec<(RsnnSeq, f64)> = (0..b)
        .into_par_iter()
        .map(|k| {
            let mut seq = RsnnSeq::new(&net.cfg);
            let mut x = vec![0.0; net.cfg.n_inputs];
            let mut y = vec![0.0; net.cfg.n_outputs];
            let (mut total, mut counted) = (0.0, 0usize);
            for step in 0..t {
                crate::seed_eprop::copy_row(&mut x, inputs.slice(ndarray::s![k, step, ..]));
                crate::seed_eprop::copy_row(&mut y, targets.slice(ndarray::s![k, step, ..]));
                let learn = mask.as_ref().is_none_or(|m| m[[k, step]]);
                total += net.step(&mut seq, &x, Some(&y), learn, false);
                counted += usize::from(learn);
            }
            net.finish_sequence(&mut seq);
            (seq, total / counted.max(1) as f64)
        })
        .collect();
    let mut mean = Grads::zeros(&net.cfg);
    {
        let mut parts = mean.parts_mut();
        for (seq, _) in &runs {
            for (m, g) in parts.iter_mut().zip(seq.state.grads.parts()) {
                for (mi, &gi) in m.iter_mut().zip(g) {
                    *mi += gi;
                }
            }
        }
        for m in parts.iter_mut() {
            for mi in m.iter_mut() {
                *mi /= b as f64;
            }
        }
    }
    mean.w_rec.diag_mut().fill(0.0);
    Ok((mean, runs.iter().map(|r| r.1).collect()))
}

/// Loss and accuracy of outputs (B, T, n_outputs) against targets with mask
/// (B, T): the mean loss per counted step, and for cross-entropy the fraction
/// of sequences whose summed logits over the counted steps pick the target's
/// class (the class with the largest summed target there), plus the fraction
/// of counted steps whose argmax is right.
pub fn evaluate_outputs(
    loss_kind: Loss,
    outputs: ndarray::ArrayView3<f64>,
    targets: ndarray::ArrayView3<f64>,
    mask: Option<ndarray::ArrayView2<bool>>,
) -> (f64, Option<(f64, f64)>) {
    let (b, t, no) = outputs.dim();
    let (mut total, mut counted) = (0.0, 0usize);
    let (mut seq_right, mut step_right) = (0usize, 0usize);
    let mut p = vec![0.0; no];
    let mut logit_sum = vec![0.0; no];
    let mut target_sum = vec![0.0; no];
    let (outputs, targets) = (outputs.as_standard_layout(), targets.as_standard_layout());
    let (out_rows, tgt_rows) = (
        outputs.as_slice().unwrap_or(&[]),
        targets.as_slice().unwrap_or(&[]),
    );
    if no == 0 {
        return (0.0, None);
    }
    for (k, (out_seq, tgt_seq)) in out_rows
        .chunks_exact(t * no)
        .zip(tgt_rows.chunks_exact(t * no))
        .enumerate()
    {
        logit_sum.fill(0.0);
        target_sum.fill(0.0);
        for (step, (y, tg)) in out_seq
            .chunks_exact(no)
            .zip(tgt_seq.chunks_exact(no))
            .enumerate()
        {
            if !mask.as_ref().is_none_or(|m| m[[k, step]]) {
                continue;
            }
            counted += 1;
            match loss_kind {
                Loss::Mse => {
                    total += y
                        .iter()
                        .zip(tg)
                        .map(|(a, b)| 0.5 * (a - b) * (a - b))
                        .sum::<f64>();
                }
                Loss::CrossEntropy => {
                    softmax(y, &mut p);
                    for (pk, &tk) in p.iter().zip(tg) {
                        if tk != 0.0 {
                            total -= tk * pk.max(f64::MIN_POSITIVE).ln();
                        }
                    }
                    let am = argmax(y.iter().copied());
                    let at = argmax(tg.iter().copied());
                    step_right += usize::from(am == at);
                    for kk in 0..no {
                        logit_sum[kk] += y[kk];
                        target_sum[kk] += tg[kk];
                    }
                }
            }
        }
        seq_right +=
            usize::from(argmax(logit_sum.iter().copied()) == argmax(target_sum.iter().copied()));
    }
    let loss = total / counted.max(1) as f64;
    match loss_kind {
        Loss::Mse => (loss, None),
        Loss::CrossEntropy => (
            loss,
            Some((
                seq_right as f64 / b.max(1) as f64,
                step_right as f64 / counted.max(1) as f64,
            )),
        ),
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

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read like the equations
mod tests {
    use super::*;
    use crate::kernels::testing::{avx2, same, values, SHAPES};

    fn config(
        schedule: Schedule,
        feedback: Feedback,
        optimizer: Optimizer,
        reg: f64,
    ) -> RsnnConfig {
        RsnnConfig::new(
            (3, 5, 2, 2),
            20.0,
            50.0,
            Some(0.3),
            0.5,
            3.0,
            1.0,
            15.0,
            (Loss::Mse, feedback, optimizer),
            0.01,
            0.3,
            (reg, 10.0, 40.0),
            0.01,
            schedule,
        )
        .unwrap()
    }

    /// A network with random weights and a sequence with random state.
    fn setup(cfg: RsnnConfig) -> (RsnnNet, RsnnSeq) {
        let mut net = RsnnNet::new(cfg.clone(), 3);
        let (ni, n, no, na) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs, cfg.n_adaptive);
        let arr = |seed, r, c| Array2::from_shape_vec((r, c), values(seed, r * c, 0.0)).unwrap();
        let vec1 = |seed, len, zeros| Array1::from(values(seed, len, zeros));
        // small input and recurrent weights keep the membranes near threshold
        net.params.w_in = arr(1, n, ni) * 0.1;
        net.params.w_rec = arr(2, n, n) * 0.1;
        net.params.w_rec.diag_mut().fill(0.0);
        net.params.w_out = arr(3, no, n);
        net.params.b_out = vec1(4, no, 0.0);
        net.params.feedback = arr(5, n, no);
        let mut seq = RsnnSeq::new(&cfg);
        let st = &mut seq.state;
        st.v = Array1::from(vec![1.16, 0.6, 0.84, 0.75, 0.3]);
        st.a = vec1(7, n, 0.0).mapv(f64::abs);
        for j in 0..cfg.first_adaptive() {
            st.a[j] = 0.0;
        }
        st.z = Array1::from(vec![1.0, 0.0, 1.0, 0.0, 0.0]);
        st.refractory = vec![0, 1, 0, 0, 2];
        st.psi = vec1(8, n, 0.0).mapv(f64::abs);
        st.zbar_in = vec1(9, ni, 0.0).mapv(f64::abs);
        st.zbar_rec = vec1(10, n, 0.0).mapv(f64::abs);
        st.eps_a_in = arr(11, na, ni);
        st.eps_a_rec = arr(12, na, n);
        st.ebar_in = arr(13, n, ni);
        st.ebar_rec = arr(14, n, n);
        st.zhat = vec1(15, n, 0.0).mapv(f64::abs);
        st.steps = 7;
        (net, seq)
    }

    fn close(a: f64, b: f64, what: &str) {
        assert!(
            (a - b).abs() <= 1e-13 * (1.0 + b.abs()),
            "{what}: {a} vs {b}"
        );
    }

    #[test]
    fn one_step_against_the_equations() {
        for feedback in [Feedback::Symmetric, Feedback::Random] {
            let cfg = config(Schedule::Sequence, feedback, Optimizer::Sgd, 0.0);
            let (net, mut seq) = setup(cfg.clone());
            let old = seq.state.clone();
            let p = net.params.clone();
            let x = [1.0, 0.0, 0.4];
            let target = [0.3, -0.2];
            let loss = net.step(&mut seq, &x, Some(&target), true, false);
            let (ni, n, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
            let (alpha, rho, kappa) = (cfg.alpha(), cfg.rho(), cfg.kappa());
            let (thr, beta, gamma) = (cfg.threshold, cfg.beta, cfg.surrogate_height);
            let fa = cfg.first_adaptive();
            let st = &seq.state;
            let mut e_in = vec![vec![0.0; ni]; n];
            let mut e_rec = vec![vec![0.0; n]; n];
            let mut z = vec![0.0; n];
            let mut psi = vec![0.0; n];
            for j in 0..n {
                let ad = j >= fa;
                let a = if ad { rho * old.a[j] + old.z[j] } else { 0.0 };
                close(st.a[j], a, "a");
                let mut cur = 0.0;
                for i in 0..ni {
                    cur += p.w_in[[j, i]] * x[i];
                }
                for i in 0..n {
                    cur += p.w_rec[[j, i]] * old.z[i];
                }
                let v = alpha * old.v[j] + cur - thr * old.z[j];
                close(st.v[j], v, "v");
                let thr_j = thr + beta * a;
                if old.refractory[j] == 0 {
                    z[j] = if v >= thr_j { 1.0 } else { 0.0 };
                    psi[j] = gamma / thr * (1.0 - (v - thr_j).abs() / thr).max(0.0);
                }
                assert_eq!(st.z[j], z[j], "z {j}");
                close(st.psi[j], psi[j], "psi");
                let expect_refr = if z[j] > 0.0 {
                    2 // refractory 3 ms: blocked for 2 steps after a spike
                } else {
                    old.refractory[j].saturating_sub(1)
                };
                assert_eq!(st.refractory[j], expect_refr);
                for (pre_old, pre_new_of, e_out, eps_old, eps_new) in [
                    (
                        old.zbar_in.to_vec(),
                        (0..ni)
                            .map(|i| alpha * old.zbar_in[i] + x[i])
                            .collect::<Vec<_>>(),
                        &mut e_in[j],
                        old.eps_a_in.clone(),
                        st.eps_a_in.clone(),
                    ),
                    (
                        old.zbar_rec.to_vec(),
                        (0..n)
                            .map(|i| alpha * old.zbar_rec[i] + old.z[i])
                            .collect::<Vec<_>>(),
                        &mut e_rec[j],
                        old.eps_a_rec.clone(),
                        st.eps_a_rec.clone(),
                    ),
                ] {
                    for i in 0..pre_old.len() {
                        let eps = if ad {
                            let e = old.psi[j] * pre_old[i]
                                + (rho - beta * old.psi[j]) * eps_old[[j - fa, i]];
                            close(eps_new[[j - fa, i]], e, "eps_a");
                            e
                        } else {
                            0.0
                        };
                        e_out[i] = psi[j] * (pre_new_of[i] - beta * eps);
                    }
                }
            }
            assert!(
                z.iter().any(|&v| v > 0.0) && z.contains(&0.0),
                "vacuous spikes {z:?}"
            );
            assert!(
                psi.iter().filter(|&&v| v > 0.0).count() >= 2,
                "vacuous psi {psi:?}"
            );
            assert!(old.refractory.iter().any(|&r| r > 0));
            for i in 0..ni {
                close(st.zbar_in[i], alpha * old.zbar_in[i] + x[i], "zbar_in");
            }
            let zhat: Vec<f64> = (0..n)
                .map(|j| kappa * old.zhat[j] + (1.0 - kappa) * z[j])
                .collect();
            let mut err = vec![0.0; no];
            let mut want_loss = 0.0;
            for k in 0..no {
                let mut y = p.b_out[k];
                for j in 0..n {
                    y += p.w_out[[k, j]] * zhat[j];
                }
                close(st.y[k], y, "y");
                err[k] = y - target[k];
                want_loss += 0.5 * err[k] * err[k];
            }
            close(loss, want_loss, "loss");
            for j in 0..n {
                let l: f64 = (0..no)
                    .map(|k| {
                        let b = match feedback {
                            Feedback::Symmetric => p.w_out[[k, j]],
                            _ => p.feedback[[j, k]],
                        };
                        b * err[k]
                    })
                    .sum();
                for i in 0..ni {
                    let eb = kappa * old.ebar_in[[j, i]] + (1.0 - kappa) * e_in[j][i];
                    close(st.ebar_in[[j, i]], eb, "ebar_in");
                    close(st.grads.w_in[[j, i]], l * eb, "grad W_in");
                }
                for i in 0..n {
                    let eb = kappa * old.ebar_rec[[j, i]] + (1.0 - kappa) * e_rec[j][i];
                    close(st.ebar_rec[[j, i]], eb, "ebar_rec");
                    close(st.grads.w_rec[[j, i]], l * eb, "grad W_rec");
                }
                for k in 0..no {
                    close(st.grads.w_out[[k, j]], err[k] * zhat[j], "grad W_out");
                }
            }
            for k in 0..no {
                close(st.grads.b_out[k], err[k], "grad b_out");
            }
        }
    }

    #[test]
    fn eligibility_recursion_over_a_sequence() {
        // ebar(t) = sum_s kappa^(t-s) (1 - kappa) e(s) and the gradient sum is
        // sum_t L(t) ebar(t), with e(s) evaluated from the state of each step.
        let cfg = config(Schedule::Sequence, Feedback::Random, Optimizer::Sgd, 0.0);
        let (net, _) = setup(cfg.clone());
        let mut seq = RsnnSeq::new(&cfg);
        let (ni, n) = (cfg.n_inputs, cfg.n_neurons);
        let kappa = cfg.kappa();
        let xs: Vec<Vec<f64>> = (0..40)
            .map(|t| values(200 + t, ni, 0.5).iter().map(|v| v.abs()).collect())
            .collect();
        let mut es: Vec<Vec<f64>> = Vec::new();
        let mut grad = vec![0.0; n * ni];
        let mut ebar = vec![0.0; n * ni];
        for x in &xs {
            let target = [0.1, -0.1];
            net.step(&mut seq, x, Some(&target), true, false);
            let st = &seq.state;
            let mut e = vec![0.0; n * ni];
            for j in 0..n {
                for i in 0..ni {
                    let eps = if j >= cfg.first_adaptive() {
                        st.eps_a_in[[j - cfg.first_adaptive(), i]]
                    } else {
                        0.0
                    };
                    e[j * ni + i] = st.psi[j] * (st.zbar_in[i] - cfg.beta * eps);
                }
            }
            es.push(e);
            let l: Vec<f64> = (0..n)
                .map(|j| {
                    (0..2)
                        .map(|k| net.params.feedback[[j, k]] * seq.scratch.err[k])
                        .sum()
                })
                .collect();
            let t = es.len() - 1;
            for m in 0..n * ni {
                ebar[m] = (0..=t)
                    .map(|s| kappa.powi((t - s) as i32) * (1.0 - kappa) * es[s][m])
                    .sum();
                grad[m] += l[m / ni] * ebar[m];
            }
            for (m, (&a, &b)) in flat(&st.ebar_in).iter().zip(&ebar).enumerate() {
                close(a, b, &format!("ebar {m}"));
            }
        }
        assert!(
            es.iter().flatten().any(|&e| e != 0.0),
            "vacuous: no eligibility"
        );
        for (a, b) in flat(&seq.state.grads.w_in).iter().zip(&grad) {
            close(*a, *b, "gradient sum");
        }
    }

    #[test]
    fn optimizers_and_adaptive_feedback() {
        for (optimizer, feedback) in [
            (Optimizer::Sgd, Feedback::Symmetric),
            (Optimizer::Adam, Feedback::Symmetric),
            (Optimizer::Adam, Feedback::Adaptive),
        ] {
            let cfg = config(Schedule::Sequence, feedback, optimizer, 0.0);
            let (mut net, _) = setup(cfg.clone());
            let lr = cfg.lr;
            let mut w = net.params.clone();
            let (mut m, mut v) = (Grads::zeros(&cfg), Grads::zeros(&cfg));
            for step in 1..=3u64 {
                let mut g = Grads::zeros(&cfg);
                for (k, part) in g.parts_mut().into_iter().enumerate() {
                    part.copy_from_slice(&values(
                        300 + 10 * step as u32 + k as u32,
                        part.len(),
                        0.1,
                    ));
                }
                g.w_rec.diag_mut().fill(0.0);
                net.apply_gradient(&g);
                let old_out = w.w_out.clone();
                let t = step as f64;
                for (k, ((wk, gk), (mk, vk))) in w
                    .parts_mut()
                    .into_iter()
                    .zip(g.parts())
                    .zip(m.parts_mut().into_iter().zip(v.parts_mut()))
                    .enumerate()
                {
                    for i in 0..wk.len() {
                        match optimizer {
                            Optimizer::Sgd => wk[i] -= lr * gk[i],
                            Optimizer::Adam => {
                                mk[i] = 0.9 * mk[i] + 0.1 * gk[i];
                                vk[i] = 0.999 * vk[i] + 0.001 * gk[i] * gk[i];
                                let mh = mk[i] / (1.0 - 0.9f64.powf(t));
                                let vh = vk[i] / (1.0 - 0.999f64.powf(t));
                                wk[i] -= lr * mh / (vh.sqrt() + 1e-8);
                            }
                        }
                    }
                    let _ = k;
                }
                w.w_rec.diag_mut().fill(0.0);
                if feedback == Feedback::Adaptive {
                    let keep = 1.0 - cfg.feedback_decay;
                    let change = &w.w_out - &old_out;
                    w.w_out = &old_out * keep + &change;
                    w.feedback = &w.feedback * keep + change.t();
                }
                for (a, b) in flat(&net.params.w_in).iter().zip(flat(&w.w_in)) {
                    close(*a, *b, "W_in");
                }
                for (a, b) in flat(&net.params.w_out).iter().zip(flat(&w.w_out)) {
                    close(*a, *b, "W_out");
                }
                for (a, b) in flat(&net.params.feedback).iter().zip(flat(&w.feedback)) {
                    close(*a, *b, "B");
                }
                assert!(net.params.w_rec.diag().iter().all(|&d| d == 0.0));
            }
        }
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
                        let b = if j >= first_ad {
                            beta * eps[(j - first_ad) * cols + i]
                        } else {
                            0.0
                        };
                        let e = psi[j] * (pre[i] - b);
                        let e = if j >= first_ad { e } else { psi[j] * pre[i] };
                        let nb = kappa * eb_w[j * cols + i] + gain * e;
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
                    let args = (
                        (&psi[..], &signal[..], &reg[..]),
                        (first_ad, beta, kappa, gain),
                        (accumulate, sum_e),
                    );
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe {
                            elig_rows_avx2(
                                &pre, &eps, &mut eb, &mut g, &mut es, args.0, args.1, args.2,
                            )
                        };
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
}
