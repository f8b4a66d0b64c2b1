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
//! Layers: the network is a stack of recurrent layers (at least one). Layer
//! 0 receives the inputs x(t), layer l the spikes z^(l-1)(t) of the layer
//! below at the same step, as its `x`; each layer has its own recurrence,
//! neurons (its last n_adaptive ALIF), presynaptic traces and eligibilities
//! (which treat what the layer receives as given: no path between layers);
//! the readout reads the last layer. Layer l's learning signal is
//! `L^l = B^l err`: the last layer's B as below, every lower layer's a fixed
//! random matrix `N(0, 1/n_l)` (drawn after the last layer's, so that a
//! one-layer network draws what it always drew). A lower layer's gradient is
//! then that of `sum_s Ltilde_j(s) z_j(s)` with
//! `Ltilde_j(s) = (1 - kappa) sum_{t>=s} kappa^(t-s) L_j(t)` held constant and
//! every path between different neurons cut (tests/test_rsnn_deep.py).
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
//!
//! Every decaying quantity (membrane, adaptation, traces, eligibilities,
//! running rate) is set to zero once it falls below the smallest normal
//! double ([`crate::kernels::flush`]): silent neurons would otherwise leave
//! subnormal values that slow every later step of a stream down.

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayView3, ArrayViewD, IxDyn};

use crate::check;
use crate::driver::{run_fixed, Described, FixedWeights, Model, Trainer, Update};
use crate::error::{EpropError, Result};
use crate::event::{sparse_enough, Kernel, Lazy, Synapses, AUTO_MAX_ACTIVITY, AUTO_MIN_PERIOD};
use crate::kernels::{
    batch_mean, elig_rows, flat, flat_mut, flush, matvec, matvec_cols, nonzeros, transpose, Change, MeanInto,
};
use crate::neuron::{canonical_update, decay, Canonical, CanonicalState, DecayCache};
use crate::optim::{kolen_pollack, update as optimizer_update, zero_diagonal, OptimState, Optimizer};
use crate::readout::{error, feedback_signal, transposed_signal, Loss};
use crate::real::{Dtype, Real};
use crate::rng::LegacyRng;
use crate::state::{named, not_settable, StateDict, Stateful, Value};

/// Fewest steps between online updates for the forward pass to keep the
/// transposed weights up to date (see [`Params`]).
const TRANSPOSE_MIN_PERIOD: usize = 32;

/// Matrix B that carries the output error to the neurons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// B = W_out^T.
    Symmetric,
    /// A fixed random matrix.
    Random,
    /// Kolen-Pollack: B^T receives W_out's changes and both decay.
    Adaptive,
}

impl Feedback {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "symmetric" => Ok(Feedback::Symmetric),
            "random" => Ok(Feedback::Random),
            "adaptive" => Ok(Feedback::Adaptive),
            o => Err(EpropError::param("feedback", "'symmetric', 'random' or 'adaptive'", format!("'{o}'"))),
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

/// The sizes of one recurrent layer: its neurons, the last `n_adaptive` of
/// them ALIF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSize {
    pub n_neurons: usize,
    pub n_adaptive: usize,
}

/// A per-layer count as given: one value for every layer, or a list of one
/// value per layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerLayer {
    Each(i64),
    List(Vec<i64>),
}

/// The name of the array `name` of layer `l` in states and checkpoints: the
/// first layer's arrays keep their plain names (a one-layer network's state
/// is that of a network without layers), layer l >= 1 adds `.l`.
pub fn layer_key(name: &str, l: usize) -> String {
    if l == 0 {
        name.to_string()
    } else {
        format!("{name}.{l}")
    }
}

/// The trained parameters in their one order (of the optimizer's moments,
/// gradients, states and `gradients()`): the first layer's `W_in`, `W_rec`,
/// then the readout's `W_out`, `b_out`, then `W_in`, `W_rec` of each further
/// layer (so that a one-layer network keeps the order it always had).
fn in_param_order<T>(mut layers: impl Iterator<Item = [T; 2]>, readout: [T; 2]) -> Vec<T> {
    let mut out: Vec<T> = layers.next().into_iter().flatten().collect();
    out.extend(readout);
    out.extend(layers.flatten());
    out
}

/// Hyperparameters of an [`RsnnNet`] (times in ms, rates in Hz).
#[derive(Clone, Debug, PartialEq)]
pub struct RsnnConfig {
    pub n_inputs: usize,
    pub n_outputs: usize,
    /// The recurrent layers, from the one that receives the inputs to the
    /// one the readout reads (at least one).
    pub layers: Vec<LayerSize>,
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
    /// Decay per update of W_out and the adaptive feedback matrix.
    pub feedback_decay: f64,
    pub surrogate_height: f64,
    pub reg_rate: f64,
    pub target_rate: f64,
    /// Time constant (ms) of the running rate of the online regularization.
    pub tau_reg: f64,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub update: Update,
    /// Seed of the initial weights and the feedback matrices.
    pub seed: u32,
    /// Eligibility kernel (dense reference or event-driven).
    pub kernel: Kernel,
    /// The float type of weights, state and arithmetic.
    pub dtype: Dtype,
}

/// The values an [`RsnnConfig`] is made from, as a user gives them.
#[derive(Clone, Debug)]
pub struct RsnnSpec {
    pub n_inputs: i64,
    /// One size per recurrent layer (an int as given is a list of one).
    pub n_neurons: Vec<i64>,
    pub n_outputs: i64,
    pub n_adaptive: PerLayer,
    pub tau_mem: f64,
    pub tau_adapt: f64,
    /// None: `1.7 (1 - rho) / (1 - alpha)`.
    pub beta: Option<f64>,
    pub threshold: f64,
    pub refractory: f64,
    pub dt: f64,
    pub tau_out: f64,
    pub loss: Loss,
    pub feedback: Feedback,
    pub feedback_decay: f64,
    pub surrogate_height: f64,
    pub reg_rate: f64,
    pub target_rate: f64,
    pub tau_reg: f64,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub update: Update,
    pub seed: i128,
    pub kernel: Kernel,
    pub dtype: Dtype,
}

/// The layers of `n_neurons` and `n_adaptive` as given, checked: each layer
/// at least one neuron, and as many ALIF counts as layers (or one count for
/// all), each within its layer.
fn layer_sizes(n_neurons: &[i64], n_adaptive: &PerLayer) -> Result<Vec<LayerSize>> {
    if n_neurons.is_empty() {
        return Err(EpropError::param("n_neurons", "an integer >= 1 or a non-empty list of them", "an empty list"));
    }
    let one = n_neurons.len() == 1;
    let at = |name: &str, l: usize| if one { name.to_string() } else { format!("{name}[{l}]") };
    let counts = match n_adaptive {
        PerLayer::Each(k) => vec![*k; n_neurons.len()],
        PerLayer::List(v) if v.len() == n_neurons.len() => v.clone(),
        PerLayer::List(v) => {
            return Err(EpropError::param(
                "n_adaptive",
                format!("an integer or a list of {} integers (one per layer of n_neurons)", n_neurons.len()),
                format!("a list of {}", v.len()),
            ))
        }
    };
    let mut out = Vec::with_capacity(n_neurons.len());
    for (l, (&n, &na)) in n_neurons.iter().zip(&counts).enumerate() {
        let n_neurons = check::size(&at("n_neurons", l), n)?;
        if na < 0 || na > n {
            let name = match n_adaptive {
                PerLayer::List(_) if !one => format!("n_adaptive[{l}]"),
                _ => "n_adaptive".to_string(),
            };
            return Err(EpropError::param(&name, format!("an integer in [0, {}={n}]", at("n_neurons", l)), na));
        }
        out.push(LayerSize { n_neurons, n_adaptive: na as usize });
    }
    Ok(out)
}

impl RsnnConfig {
    /// Checks every value of `s`.
    pub fn new(s: &RsnnSpec) -> Result<Self> {
        let n_inputs = check::size("n_inputs", s.n_inputs)?;
        let layers = layer_sizes(&s.n_neurons, &s.n_adaptive)?;
        let n_outputs = check::size("n_outputs", s.n_outputs)?;
        let tau_mem = check::positive("tau_mem", s.tau_mem)?;
        let tau_adapt = check::positive("tau_adapt", s.tau_adapt)?;
        let dt = check::positive("dt", s.dt)?;
        let beta = match s.beta {
            Some(b) => check::non_negative("beta", b)?,
            None => 1.7 * (1.0 - decay(dt, tau_adapt)) / (1.0 - decay(dt, tau_mem)),
        };
        if let Update::Every(0) = s.update {
            return Err(EpropError::param("update", "'sequence', 'step' or an integer k >= 1", 0));
        }
        if s.loss == Loss::CrossEntropy && n_outputs < 2 {
            return Err(EpropError::param("n_outputs", "at least 2 classes for loss='cross_entropy'", n_outputs));
        }
        let cfg = RsnnConfig {
            n_inputs,
            n_outputs,
            layers,
            tau_mem,
            tau_adapt,
            beta,
            threshold: check::positive("threshold", s.threshold)?,
            refractory: check::non_negative("refractory", s.refractory)?,
            dt,
            tau_out: check::positive("tau_out", s.tau_out)?,
            loss: s.loss,
            feedback: s.feedback,
            feedback_decay: check::unit_interval("feedback_decay", s.feedback_decay)?,
            surrogate_height: check::non_negative("surrogate_height", s.surrogate_height)?,
            reg_rate: check::non_negative("reg_rate", s.reg_rate)?,
            target_rate: check::non_negative("target_rate", s.target_rate)?,
            tau_reg: check::positive("tau_reg", s.tau_reg)?,
            optimizer: s.optimizer,
            lr: check::non_negative("lr", s.lr)?,
            update: s.update,
            seed: check::seed(s.seed)?,
            kernel: s.kernel,
            dtype: s.dtype,
        };
        if cfg.tau_reg < cfg.dt {
            return Err(EpropError::param("tau_reg", format!("a value >= dt={}", cfg.dt), cfg.tau_reg));
        }
        cfg.dtype.check_hypers(&cfg.hypers())?;
        check::alloc(&cfg.sizes_text(), cfg.n_f64()?)?;
        Ok(cfg)
    }

    /// The hyperparameters that enter the arithmetic in the network's type
    /// (the time constants enter as decays computed in f64).
    pub fn hypers(&self) -> [(&'static str, f64); 6] {
        [
            ("threshold", self.threshold),
            ("beta", self.beta),
            ("lr", self.lr),
            ("surrogate_height", self.surrogate_height),
            ("reg_rate", self.reg_rate),
            ("feedback_decay", self.feedback_decay),
        ]
    }

    /// Float64 values of a network of this size with one sequence in flight.
    pub fn n_f64(&self) -> Result<usize> {
        let no = self.n_outputs;
        let mut shapes = Vec::new();
        for (l, s) in self.layers.iter().enumerate() {
            let (ni, n, na) = (self.layer_inputs(l), s.n_neurons, s.n_adaptive);
            let syn = [(n, ni), (n, n)];
            // weights, transposes, two Adam moments, gradients, filtered eligibility, reg sums
            for _ in 0..7 {
                shapes.extend_from_slice(&syn);
            }
            // ALIF vectors, feedback matrix, per-neuron vectors and sums, input traces
            shapes.extend_from_slice(&[(na, ni), (na, n), (n, no), (21, n), (2, ni)]);
        }
        // W_out, its moments and gradient; the readout's vectors
        let n_last = self.n_last();
        shapes.extend_from_slice(&[(no, n_last), (no, n_last), (no, n_last), (no, n_last), (3, n_last), (10, no)]);
        check::count_f64(&self.sizes_text(), &shapes)
    }

    /// The sizes, as named in messages: `RecurrentNetwork(n_inputs=.., n_neurons=.., n_outputs=..)`.
    pub fn sizes_text(&self) -> String {
        let n: Vec<usize> = self.layers.iter().map(|s| s.n_neurons).collect();
        let n = if n.len() == 1 { n[0].to_string() } else { format!("{n:?}") };
        format!("RecurrentNetwork(n_inputs={}, n_neurons={n}, n_outputs={})", self.n_inputs, self.n_outputs)
    }

    /// Neurons of the last layer (what the readout reads).
    pub fn n_last(&self) -> usize {
        self.layers.last().expect("at least one layer").n_neurons
    }
    /// What layer `l` receives: the inputs (l = 0) or the spikes of layer l - 1.
    pub fn layer_inputs(&self, l: usize) -> usize {
        if l == 0 {
            self.n_inputs
        } else {
            self.layers[l - 1].n_neurons
        }
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
    /// Index of the first ALIF neuron of layer `l`.
    pub fn first_adaptive(&self, l: usize) -> usize {
        self.layers[l].n_neurons - self.layers[l].n_adaptive
    }
    /// Whether the regularization is added every step (online schedules)
    /// rather than at the end of a sequence.
    pub fn online(&self) -> bool {
        self.update != Update::Sequence
    }

    fn neuron<F: Real>(&self, l: usize, d: &Decays) -> Canonical<F> {
        Canonical {
            alpha: F::of(d.alpha),
            rho: F::of(d.rho),
            threshold: F::of(self.threshold),
            beta: F::of(self.beta),
            gamma: F::of(self.surrogate_height),
            first_adaptive: self.first_adaptive(l),
            blocked_after_spike: self.refractory_steps().saturating_sub(1),
        }
    }

    /// Names of the trained parameters, in the order of [`Grads::parts`]:
    /// `W_in`, `W_rec`, `W_out`, `b_out`, then `W_in.l`, `W_rec.l` of each
    /// further layer.
    pub fn param_names(&self) -> Vec<String> {
        let layers = (0..self.layers.len()).map(|l| ["W_in", "W_rec"].map(|k| layer_key(k, l)));
        in_param_order(layers, ["W_out", "b_out"].map(String::from))
    }

    /// Shapes of the trained parameters, in the order of [`Self::param_names`].
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        let layers = (0..self.layers.len()).map(|l| {
            let n = self.layers[l].n_neurons;
            [vec![n, self.layer_inputs(l)], vec![n, n]]
        });
        in_param_order(layers, [vec![self.n_outputs, self.n_last()], vec![self.n_outputs]])
    }

    /// `n_neurons` or `n_adaptive` as stored: an integer for one layer, a
    /// list of integers for several.
    fn per_layer(&self, of: fn(&LayerSize) -> usize) -> Value {
        match self.layers.as_slice() {
            [one] => Value::Int(of(one) as i64),
            many => Value::Ints(many.iter().map(|s| of(s) as i64).collect()),
        }
    }
}

/// The weights of one layer and its feedback matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams<F: Real = f64> {
    pub w_in: Array2<F>,
    pub w_rec: Array2<F>,
    /// B (n_neurons, n_outputs): the fixed random (or, in the last layer,
    /// adaptive) feedback; the last layer ignores it for symmetric feedback
    /// (W_out^T is used).
    pub feedback: Array2<F>,
    /// W_in^T and W_rec^T when `Params::transposed`.
    w_in_t: Array2<F>,
    w_rec_t: Array2<F>,
}

impl<F: Real> LayerParams<F> {
    /// A layer from its arrays (W_rec's diagonal is zeroed).
    pub fn new(w_in: Array2<F>, mut w_rec: Array2<F>, feedback: Array2<F>) -> Self {
        zero_diagonal(&mut w_rec);
        let (w_in_t, w_rec_t) =
            (w_in.t().as_standard_layout().into_owned(), w_rec.t().as_standard_layout().into_owned());
        LayerParams { w_in, w_rec, feedback, w_in_t, w_rec_t }
    }

    fn sync(&mut self) {
        let (n, ni) = self.w_in.dim();
        transpose(flat(&self.w_in), flat_mut(&mut self.w_in_t), n, ni);
        transpose(flat(&self.w_rec), flat_mut(&mut self.w_rec_t), n, n);
    }

    fn bytes(&self) -> usize {
        F::BYTES * (2 * self.w_in.len() + 2 * self.w_rec.len() + self.feedback.len())
    }
}

/// The trainable weights (and the feedback matrices).
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F: Real = f64> {
    pub layers: Vec<LayerParams<F>>,
    pub w_out: Array2<F>,
    pub b_out: Array1<F>,
    /// Whether every layer's transposes equal its weights (made so by
    /// [`Params::sync`] wherever the weights change, except by frequent
    /// online updates, which only clear the flag): the forward pass then
    /// reads the columns of the active inputs and neurons as contiguous rows.
    transposed: bool,
}

/// Gradient sums of one layer's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGrads<F: Real = f64> {
    pub w_in: Array2<F>,
    pub w_rec: Array2<F>,
}

/// Gradients (or accumulated gradients) of every trained parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<F: Real = f64> {
    pub layers: Vec<LayerGrads<F>>,
    pub w_out: Array2<F>,
    pub b_out: Array1<F>,
}

impl<F: Real> Grads<F> {
    pub fn zeros(cfg: &RsnnConfig) -> Self {
        let layers = (0..cfg.layers.len())
            .map(|l| {
                let n = cfg.layers[l].n_neurons;
                LayerGrads { w_in: Array2::zeros((n, cfg.layer_inputs(l))), w_rec: Array2::zeros((n, n)) }
            })
            .collect();
        Grads { layers, w_out: Array2::zeros((cfg.n_outputs, cfg.n_last())), b_out: Array1::zeros(cfg.n_outputs) }
    }

    fn bytes(&self) -> usize {
        F::BYTES * self.parts().iter().map(|p| p.len()).sum::<usize>()
    }

    /// Slices of the arrays, in the order of [`RsnnConfig::param_names`].
    pub fn parts(&self) -> Vec<&[F]> {
        let layers = self.layers.iter().map(|g| [flat(&g.w_in), flat(&g.w_rec)]);
        in_param_order(layers, [flat(&self.w_out), flat(&self.b_out)])
    }

    fn parts_mut(&mut self) -> Vec<&mut [F]> {
        let Grads { layers, w_out, b_out } = self;
        let layers = layers.iter_mut().map(|g| [flat_mut(&mut g.w_in), flat_mut(&mut g.w_rec)]);
        in_param_order(layers, [flat_mut(w_out), flat_mut(b_out)])
    }

    /// Column counts of the arrays (a vector as one row).
    fn cols(&self) -> Vec<usize> {
        let layers = self.layers.iter().map(|g| [g.w_in.ncols(), g.w_rec.ncols()]);
        in_param_order(layers, [self.w_out.ncols(), self.b_out.len()])
    }

    fn zero_diagonals(&mut self) {
        for g in self.layers.iter_mut() {
            zero_diagonal(&mut g.w_rec);
        }
    }

    /// The mean over sequences of their gradient sums (each element summed
    /// over the sequences in order, then divided), W_rec's diagonals zero.
    pub fn mean_of(cfg: &RsnnConfig, sums: &[Vec<&[F]>]) -> Grads<F> {
        let mut mean = Grads::zeros(cfg);
        let cols = mean.cols();
        for (k, (part, c)) in mean.parts_mut().into_iter().zip(cols).enumerate() {
            let changes: Vec<Change<F>> = sums.iter().map(|s| Change::plain(s[k], c)).collect();
            batch_mean(part, c, F::ONE, &changes, MeanInto::Store);
        }
        mean.zero_diagonals();
        mean
    }
}

impl<F: Real> Params<F> {
    /// Weights drawn from `seed`: W_in ~ N(0, 1/fan_in) (the inputs, or the
    /// neurons of the layer below), W_rec ~ N(0, 1/n) with zero diagonal,
    /// W_out ~ N(0, 1/n_last), b_out = 0, and every B ~ N(0, 1/n), the scale
    /// of W_out^T. Drawn in the order W_in, W_rec of each layer, W_out, the
    /// last layer's B, then the B of the layers below (so that a one-layer
    /// network draws what it always drew).
    pub fn new(cfg: &RsnnConfig) -> Self {
        let mut rng = LegacyRng::new(cfg.seed);
        let no = cfg.n_outputs;
        // drawn in f64 (the same numbers for every dtype), then rounded
        let mut draw =
            |rows, cols, fan_in: usize| rng.normal_matrix(rows, cols, 1.0 / (fan_in as f64).sqrt()).mapv(F::of);
        let mut weights = Vec::new();
        for (l, s) in cfg.layers.iter().enumerate() {
            let (ni, n) = (cfg.layer_inputs(l), s.n_neurons);
            weights.push((draw(n, ni, ni), draw(n, n, n)));
        }
        let w_out = draw(no, cfg.n_last(), cfg.n_last());
        let last = cfg.layers.len() - 1;
        let mut feedback: Vec<Option<Array2<F>>> = vec![None; cfg.layers.len()];
        for l in std::iter::once(last).chain(0..last) {
            let n = cfg.layers[l].n_neurons;
            feedback[l] = Some(draw(n, no, n));
        }
        let layers = weights
            .into_iter()
            .zip(feedback)
            .map(|((w_in, w_rec), b)| LayerParams::new(w_in, w_rec, b.expect("drawn")))
            .collect();
        Params::from_parts(layers, w_out, Array1::zeros(no))
    }

    /// Parameters from their arrays.
    pub fn from_parts(layers: Vec<LayerParams<F>>, w_out: Array2<F>, b_out: Array1<F>) -> Self {
        Params { layers, w_out, b_out, transposed: true }
    }

    /// Makes the transposes equal to W_in and W_rec again.
    pub fn sync(&mut self) {
        self.transposed = true;
        for p in self.layers.iter_mut() {
            p.sync();
        }
    }

    /// The last layer (the one the readout reads).
    pub fn last(&self) -> &LayerParams<F> {
        self.layers.last().expect("at least one layer")
    }

    fn parts_mut(&mut self) -> Vec<&mut [F]> {
        let Params { layers, w_out, b_out, .. } = self;
        let layers = layers.iter_mut().map(|p| [flat_mut(&mut p.w_in), flat_mut(&mut p.w_rec)]);
        in_param_order(layers, [flat_mut(w_out), flat_mut(b_out)])
    }

    /// Bytes of weights (and their transposes) and feedback matrices.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(LayerParams::bytes).sum::<usize>() + F::BYTES * (self.w_out.len() + self.b_out.len())
    }
}

/// Dynamic state of one layer in one sequence, and its eligibilities.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerState<F: Real = f64> {
    pub v: Array1<F>,
    /// Adaptation a_j (zero for LIF neurons).
    pub a: Array1<F>,
    /// Spikes of the last step.
    pub z: Array1<F>,
    /// Remaining refractory steps.
    pub refractory: Vec<u32>,
    /// Pseudo-derivative of the last step.
    pub psi: Array1<F>,
    /// Presynaptic traces (eligibility vectors of v): what the layer
    /// receives (inputs, or the layer below) and recurrent.
    pub zbar_in: Array1<F>,
    pub zbar_rec: Array1<F>,
    /// Adaptation eligibility vectors of the ALIF rows (n_adaptive, n_pre).
    pub eps_a_in: Array2<F>,
    pub eps_a_rec: Array2<F>,
    /// Readout-filtered eligibility traces.
    pub ebar_in: Array2<F>,
    pub ebar_rec: Array2<F>,
    /// Sums of the unfiltered eligibility (for the rate regularization).
    pub e_sum_in: Array2<F>,
    pub e_sum_rec: Array2<F>,
    /// Spikes per neuron since reset (regularization, `update="sequence"`).
    pub spike_count: Array1<f64>,
    /// Running rate per neuron, spikes per step (regularization, online).
    pub rate: Array1<F>,
}

impl<F: Real> LayerState<F> {
    fn new(ni: usize, n: usize, na: usize, reg: bool) -> Self {
        let (ri, rr) = if reg { ((n, ni), (n, n)) } else { ((0, 0), (0, 0)) };
        LayerState {
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
            e_sum_in: Array2::zeros(ri),
            e_sum_rec: Array2::zeros(rr),
            spike_count: Array1::zeros(n),
            rate: Array1::zeros(n),
        }
    }

    /// The synapse arrays of what the layer receives and of its recurrent
    /// weights (with the layer's gradient sums `g`), and zbar_in, zbar_rec,
    /// psi and z.
    #[allow(clippy::type_complexity)]
    fn split<'a>(&'a mut self, g: &'a mut LayerGrads<F>) -> (Synapses<'a, F>, Synapses<'a, F>, [&'a [F]; 4]) {
        let read = [flat(&self.zbar_in), flat(&self.zbar_rec), flat(&self.psi), flat(&self.z)];
        let inp = Synapses::of(&mut self.ebar_in, &mut g.w_in, &mut self.e_sum_in, &mut self.eps_a_in);
        let rec = Synapses::of(&mut self.ebar_rec, &mut g.w_rec, &mut self.e_sum_rec, &mut self.eps_a_rec);
        (inp, rec, read)
    }

    fn bytes(&self) -> usize {
        let arrays = [
            self.v.len(),
            self.a.len(),
            self.z.len(),
            self.psi.len(),
            self.zbar_in.len(),
            self.zbar_rec.len(),
            self.eps_a_in.len(),
            self.eps_a_rec.len(),
            self.ebar_in.len(),
            self.ebar_rec.len(),
            self.e_sum_in.len(),
            self.e_sum_rec.len(),
            self.spike_count.len(),
            self.rate.len(),
        ];
        F::BYTES * arrays.iter().sum::<usize>() + 4 * self.refractory.len()
    }
}

/// Dynamic state of one sequence, its eligibilities and its gradient sums.
#[derive(Clone, Debug, PartialEq)]
pub struct RsnnState<F: Real = f64> {
    pub layers: Vec<LayerState<F>>,
    /// Readout-filtered spikes of the last layer and the output of the last step.
    pub zhat: Array1<F>,
    pub y: Array1<F>,
    /// Gradient sums since the last update.
    pub grads: Grads<F>,
    pub steps: u64,
    /// Steps since the last update (for `update=k`).
    pub pending: u64,
}

impl<F: Real> RsnnState<F> {
    /// The last layer (the one the readout reads).
    pub fn last(&self) -> &LayerState<F> {
        self.layers.last().expect("at least one layer")
    }
}

/// Work buffers of one layer's step.
#[derive(Clone, Debug)]
struct Scratch<F: Real = f64> {
    current: Vec<F>,
    rec_current: Vec<F>,
    signal: Vec<F>,
    reg_signal: Vec<F>,
    idx_in: Vec<usize>,
    idx_rec: Vec<usize>,
}

impl<F: Real> Scratch<F> {
    fn new(ni: usize, n: usize) -> Self {
        Scratch {
            current: vec![F::ZERO; n],
            rec_current: vec![F::ZERO; n],
            signal: vec![F::ZERO; n],
            reg_signal: vec![F::ZERO; n],
            idx_in: Vec::with_capacity(ni),
            idx_rec: Vec::with_capacity(n),
        }
    }

    fn bytes(&self) -> usize {
        F::BYTES * (self.current.capacity() + self.rec_current.capacity())
            + F::BYTES * (self.signal.capacity() + self.reg_signal.capacity())
            + std::mem::size_of::<usize>() * (self.idx_in.capacity() + self.idx_rec.capacity())
    }
}

/// The decays per step of a configuration: membrane, adaptation, readout.
#[derive(Clone, Copy, Debug)]
struct Decays {
    alpha: f64,
    rho: f64,
    kappa: f64,
}

impl Decays {
    /// Those of `cfg`, from `cache` (computed only when dt or a time constant changed).
    fn of(cache: &mut DecayCache<3>, cfg: &RsnnConfig) -> Decays {
        let [alpha, rho, kappa] = cache.of(cfg.dt, [cfg.tau_mem, cfg.tau_adapt, cfg.tau_out]);
        Decays { alpha, rho, kappa }
    }
}

/// One sequence in flight.
#[derive(Clone, Debug)]
pub struct RsnnSeq<F: Real = f64> {
    pub state: RsnnState<F>,
    /// One per layer.
    scratch: Vec<Scratch<F>>,
    /// The output error of the step.
    err: Vec<F>,
    /// Whether the eligibility traces hold anything (false after a reset or
    /// a prediction, until the next step that tracks them).
    pub tracking: bool,
    /// Running sums of the event-driven kernel, one per layer (empty: dense only).
    lazy: Vec<Lazy<F>>,
    /// Per layer: whether this step runs event-driven.
    stepping: Vec<bool>,
    /// Whether the event-driven kernel runs (only inside a call that runs
    /// steps: outside one, every array holds its plain value).
    event: bool,
    /// The configuration's decays, as last computed.
    decays: DecayCache<3>,
}

impl<F: Real> RsnnSeq<F> {
    pub fn new(cfg: &RsnnConfig) -> Self {
        let reg = cfg.reg_rate > 0.0;
        let sizes = |l: usize| (cfg.layer_inputs(l), cfg.layers[l].n_neurons, cfg.layers[l].n_adaptive);
        let nl = cfg.layers.len();
        let lazy: Option<Vec<Lazy<F>>> = match cfg.kernel {
            Kernel::Dense => None,
            _ => (0..nl)
                .map(|l| {
                    Lazy::new(
                        (cfg.layer_inputs(l), cfg.layers[l].n_neurons, cfg.first_adaptive(l)),
                        (F::of(cfg.alpha()), F::of(cfg.kappa()), F::of(cfg.rho()), F::of(cfg.beta)),
                        reg,
                    )
                })
                .collect(),
        };
        RsnnSeq {
            state: RsnnState {
                layers: (0..nl)
                    .map(|l| {
                        let (ni, n, na) = sizes(l);
                        LayerState::new(ni, n, na, reg)
                    })
                    .collect(),
                zhat: Array1::zeros(cfg.n_last()),
                y: Array1::zeros(cfg.n_outputs),
                grads: Grads::zeros(cfg),
                steps: 0,
                pending: 0,
            },
            scratch: (0..nl)
                .map(|l| {
                    let (ni, n, _) = sizes(l);
                    Scratch::new(ni, n)
                })
                .collect(),
            err: vec![F::ZERO; cfg.n_outputs],
            tracking: false,
            lazy: lazy.unwrap_or_default(),
            stepping: vec![false; nl],
            event: false,
            decays: DecayCache::default(),
        }
    }

    /// Writes the plain value of every eligibility and gradient sum (a no-op
    /// unless the event-driven kernel runs) and moves its origin to now.
    pub fn settle(&mut self) {
        if !self.event {
            return;
        }
        let st = &mut self.state;
        for ((ls, g), lz) in st.layers.iter_mut().zip(st.grads.layers.iter_mut()).zip(self.lazy.iter_mut()) {
            let (inp, rec, [zi, zr, ..]) = ls.split(g);
            lz.settle(inp, rec, zi, zr);
        }
    }

    /// Starts (`on`) or ends the event-driven kernel; ending it settles.
    pub fn set_event(&mut self, on: bool) {
        self.settle();
        self.event = on && !self.lazy.is_empty();
    }

    /// Zeroes the dynamics and eligibilities (gradient sums are kept; fold
    /// a pending sequence regularization first, see [`RsnnNet::fold_regularization`]).
    pub fn reset_dynamics(&mut self) {
        self.settle();
        self.clear_eligibility();
        let st = &mut self.state;
        for ls in st.layers.iter_mut() {
            for a in [&mut ls.v, &mut ls.a, &mut ls.z, &mut ls.psi, &mut ls.zbar_in, &mut ls.zbar_rec] {
                a.fill(F::ZERO);
            }
            ls.refractory.fill(0);
        }
        st.zhat.fill(F::ZERO);
        st.y.fill(F::ZERO);
    }

    /// Zeroes the eligibility traces and the rate statistics of the
    /// regularization (and the step count since reset).
    pub fn clear_eligibility(&mut self) {
        self.settle();
        let st = &mut self.state;
        for ls in st.layers.iter_mut() {
            for a in [
                &mut ls.eps_a_in,
                &mut ls.eps_a_rec,
                &mut ls.ebar_in,
                &mut ls.ebar_rec,
                &mut ls.e_sum_in,
                &mut ls.e_sum_rec,
            ] {
                a.fill(F::ZERO);
            }
            ls.spike_count.fill(0.0);
            ls.rate.fill(F::ZERO);
        }
        st.steps = 0;
        self.tracking = false;
    }

    /// Zeroes the gradient sums.
    pub fn clear_grads(&mut self) {
        self.settle();
        let st = &mut self.state;
        for p in st.grads.parts_mut() {
            p.fill(F::ZERO);
        }
        for ls in st.layers.iter_mut() {
            ls.e_sum_in.fill(F::ZERO);
            ls.e_sum_rec.fill(F::ZERO);
        }
        st.pending = 0;
    }

    pub fn bytes(&self) -> usize {
        let st = &self.state;
        st.layers.iter().map(LayerState::bytes).sum::<usize>()
            + F::BYTES * (st.zhat.len() + st.y.len() + self.err.capacity())
            + self.stepping.capacity()
            + st.grads.bytes()
            + self.scratch.iter().map(Scratch::bytes).sum::<usize>()
            + self.lazy.iter().map(Lazy::bytes).sum::<usize>()
    }
}

/// The network: configuration, parameters, optimizer state.
#[derive(Clone, Debug)]
pub struct RsnnNet<F: Real = f64> {
    pub cfg: RsnnConfig,
    pub params: Params<F>,
    pub optim: OptimState<F>,
}

/// What one layer works on during a step: its state, gradient sums, work
/// buffers and event-driven sums, and what it receives (the inputs, or the
/// spikes of the layer below at this step).
struct LayerStep<'a, F: Real> {
    l: usize,
    input: &'a [F],
    st: &'a mut LayerState<F>,
    g: &'a mut LayerGrads<F>,
    sc: &'a mut Scratch<F>,
    lazy: Option<&'a mut Lazy<F>>,
    stepping: &'a mut bool,
}

/// Calls `f` on each layer of `seq` in order (layer 0 receives `x`).
fn each_layer<F: Real>(seq: &mut RsnnSeq<F>, x: &[F], mut f: impl FnMut(LayerStep<'_, F>)) {
    let RsnnSeq { state, scratch, lazy, stepping, .. } = seq;
    let mut lazies = lazy.iter_mut();
    let layers = state.layers.iter_mut().zip(state.grads.layers.iter_mut());
    let mut below: Option<&LayerState<F>> = None;
    for (l, (((st, g), sc), stepping)) in layers.zip(scratch.iter_mut()).zip(stepping.iter_mut()).enumerate() {
        let input = below.map_or(x, |b| flat(&b.z));
        f(LayerStep { l, input, st, g, sc, lazy: lazies.next(), stepping });
        below = Some(&*st);
    }
}

impl<F: Real> RsnnNet<F> {
    pub fn new(cfg: RsnnConfig) -> Self {
        let params = Params::new(&cfg);
        let lens: Vec<usize> = Grads::<F>::zeros(&cfg).parts().iter().map(|p| p.len()).collect();
        let optim = OptimState::new(cfg.optimizer, &lens);
        RsnnNet { cfg, params, optim }
    }

    /// One step of sequence `seq`: dynamics, eligibilities, output, and, when
    /// `target` is given and `learn`, the error, loss and gradient sums.
    /// `online_reg` adds the rate regularization at every step (running rate)
    /// instead of at the end of the sequence. Returns the loss of the step
    /// (0 when not learning). The weights are not changed.
    pub fn run_step(&self, seq: &mut RsnnSeq<F>, x: &[F], target: Option<&[F]>, learn: bool, online_reg: bool) -> f64 {
        let (event, d) = (seq.event, Decays::of(&mut seq.decays, &self.cfg));
        each_layer(seq, x, |ls| self.layer_forward(ls, true, event, &d));
        seq.state.steps += 1;
        self.readout(&mut seq.state, &d);
        let loss = match target.filter(|_| learn) {
            Some(t) => error(self.cfg.loss, flat(&seq.state.y), t, &mut seq.err),
            None => {
                seq.err.fill(F::ZERO);
                F::ZERO
            }
        };
        let steps = seq.state.steps;
        let err = std::mem::take(&mut seq.err);
        let flags = (target.is_some(), learn, online_reg);
        each_layer(seq, x, |ls| self.layer_learning(ls, &err, steps, flags, &d));
        seq.err = err;
        if learn && target.is_some() {
            self.readout_gradients(seq);
        }
        if target.is_some() {
            seq.state.pending += 1;
        }
        seq.tracking = true;
        loss.f64()
    }

    /// One layer's part of the forward pass: with `track`, first its
    /// eligibility (ALIF vectors densely, or the event kernel's start of the
    /// step when `event`), then traces, membranes, spikes.
    fn layer_forward(&self, ls: LayerStep<'_, F>, track: bool, event: bool, d: &Decays) {
        let LayerStep { l, input, st, g, sc, lazy, stepping } = ls;
        *stepping = false;
        if track {
            if let Some(lz) = lazy.filter(|_| event) {
                if Self::begin_event_step(lz, st, g, input) {
                    // this step's events are its active inputs and neurons
                    lz.active(&mut sc.idx_in, &mut sc.idx_rec);
                    *stepping = true;
                }
            }
            if !*stepping {
                self.adapt_eligibility(l, st, d);
            }
        }
        self.forward_layer(l, st, sc, input, *stepping, d);
    }

    /// One layer's part after the output: rate statistics, learning signal,
    /// eligibility and gradient sums.
    /// `(with_target, learn, online_reg)`: see [`Self::run_step`].
    fn layer_learning(
        &self,
        ls: LayerStep<'_, F>,
        err: &[F],
        steps: u64,
        (with_target, learn, online_reg): (bool, bool, bool),
        d: &Decays,
    ) {
        let LayerStep { l, st, g, sc, lazy, stepping, .. } = ls;
        self.update_rate(st, steps, online_reg);
        let with_reg = self.learning_signal(l, st, sc, err, with_target && learn, with_target && online_reg);
        let sum_e = self.sums_e(with_target, online_reg);
        match lazy.filter(|_| *stepping) {
            Some(lz) => lz.end_step(flat(&st.psi), &sc.signal, &sc.reg_signal, (with_reg, sum_e)),
            None => self.eligibility((l, st, g, sc), with_target, sum_e, d),
        }
    }

    /// Start of an event-driven step of one layer: moves the origin first
    /// when it is too far back, then advances the running sums and applies
    /// this step's events (what the layer receives now, its own spikes of
    /// the last step). Returns false when the step must run densely (the
    /// arrays then hold plain values).
    fn begin_event_step(lz: &mut Lazy<F>, st: &mut LayerState<F>, g: &mut LayerGrads<F>, input: &[F]) -> bool {
        if lz.loaded() && !lz.fits(flat(&st.psi)) {
            lz.renormalize(flat(&st.zbar_in), flat(&st.zbar_rec));
        }
        let (inp, rec, [zi, zr, psi, z]) = st.split(g);
        if !lz.fits(psi) {
            lz.settle(inp, rec, zi, zr);
            return false;
        }
        if !lz.loaded() {
            lz.load(&inp, &rec, zi, zr);
        }
        lz.begin_step(psi, input, z);
        true
    }

    /// Whether a call on `inputs` (T, n_inputs) runs the event-driven kernel.
    pub fn event_for(&self, inputs: ArrayView2<f64>) -> bool {
        let cfg = &self.cfg;
        match cfg.kernel {
            Kernel::Dense => false,
            Kernel::Event => cfg.update != Update::Step,
            Kernel::Auto => {
                let period = cfg.update.period().unwrap_or(usize::MAX).min(inputs.nrows());
                period >= AUTO_MIN_PERIOD && sparse_enough(inputs, AUTO_MAX_ACTIVITY)
            }
        }
    }

    /// The forward dynamics alone (prediction): membranes, adaptation, spikes,
    /// presynaptic traces and readout. Eligibility traces are not advanced.
    pub fn forward_only(&self, seq: &mut RsnnSeq<F>, x: &[F]) {
        let d = Decays::of(&mut seq.decays, &self.cfg);
        each_layer(seq, x, |ls| self.layer_forward(ls, false, false, &d));
        seq.state.steps += 1;
        self.readout(&mut seq.state, &d);
    }

    /// ALIF eligibility vectors of layer `l` with psi(t-1) and zbar(t-1):
    /// `eps_a <- psi zbar + (rho - beta psi) eps_a`.
    fn adapt_eligibility(&self, l: usize, st: &mut LayerState<F>, d: &Decays) {
        let cfg = &self.cfg;
        let (rho, beta, first_ad) = (F::of(d.rho), F::of(cfg.beta), cfg.first_adaptive(l));
        let psi_prev = flat(&st.psi);
        for (pre, eps) in
            [(flat(&st.zbar_in), flat_mut(&mut st.eps_a_in)), (flat(&st.zbar_rec), flat_mut(&mut st.eps_a_rec))]
        {
            let cols = pre.len();
            if cols == 0 {
                continue;
            }
            for (row, &pj) in eps.chunks_exact_mut(cols).zip(&psi_prev[first_ad..]) {
                let c = rho - beta * pj;
                for (e, &zb) in row.iter_mut().zip(pre) {
                    *e = flush(pj * zb + c * *e);
                }
            }
        }
    }

    /// Presynaptic traces, adaptation, membrane, spikes and pseudo-derivative
    /// of layer `l` receiving `x`.
    /// `active_known`: the indices of the active inputs and neurons are in
    /// the scratch already (from the event kernel's events of this step).
    #[allow(clippy::too_many_arguments)]
    fn forward_layer(
        &self,
        l: usize,
        st: &mut LayerState<F>,
        sc: &mut Scratch<F>,
        x: &[F],
        active_known: bool,
        d: &Decays,
    ) {
        let cfg = &self.cfg;
        let p = &self.params.layers[l];
        let alpha = F::of(d.alpha);
        for (zb, &xi) in flat_mut(&mut st.zbar_in).iter_mut().zip(x) {
            *zb = flush(alpha * *zb + xi);
        }
        for (zb, &zi) in flat_mut(&mut st.zbar_rec).iter_mut().zip(flat(&st.z)) {
            *zb = flush(alpha * *zb + zi);
        }
        let (sparse_in, sparse_rec) = if active_known {
            (2 * sc.idx_in.len() <= x.len(), 2 * sc.idx_rec.len() <= st.z.len())
        } else {
            (nonzeros(x, &mut sc.idx_in), nonzeros(flat(&st.z), &mut sc.idx_rec))
        };
        // sparse: the columns of the active units (bitwise the sparse row
        // products); otherwise row products with four partial sums
        let transposed = self.params.transposed;
        if sparse_in && transposed {
            matvec_cols(flat(&p.w_in_t), x, &sc.idx_in, &mut sc.current);
        } else {
            matvec(flat(&p.w_in), x, &sc.idx_in, sparse_in, &mut sc.current);
        }
        if sparse_rec && transposed {
            matvec_cols(flat(&p.w_rec_t), flat(&st.z), &sc.idx_rec, &mut sc.rec_current);
        } else {
            matvec(flat(&p.w_rec), flat(&st.z), &sc.idx_rec, sparse_rec, &mut sc.rec_current);
        }
        canonical_update(
            &cfg.neuron::<F>(l, d),
            CanonicalState {
                v: flat_mut(&mut st.v),
                a: flat_mut(&mut st.a),
                z: flat_mut(&mut st.z),
                psi: flat_mut(&mut st.psi),
                refractory: &mut st.refractory,
            },
            &sc.current,
            &sc.rec_current,
        );
    }

    /// Readout of the last layer: zhat is its spike train low-pass filtered
    /// with unit gain, `y = W_out zhat + b`.
    fn readout(&self, st: &mut RsnnState<F>, d: &Decays) {
        let p = &self.params;
        let kappa = F::of(d.kappa);
        let gain = F::ONE - kappa;
        let RsnnState { layers, zhat, y, .. } = st;
        let z = flat(&layers.last().expect("at least one layer").z);
        for (zh, &zj) in flat_mut(zhat).iter_mut().zip(z) {
            *zh = flush(kappa * *zh + gain * zj);
        }
        let (zhat, n) = (flat(zhat), self.cfg.n_last());
        for ((yk, row), &bk) in flat_mut(y).iter_mut().zip(flat(&p.w_out).chunks_exact(n)).zip(flat(&p.b_out)) {
            *yk = crate::kernels::dot(row, zhat) + bk;
        }
    }

    /// Rate statistics of one layer for the regularization: the spike count
    /// since reset (sequence form) or the running rate (online form), after
    /// `steps` steps since reset.
    fn update_rate(&self, st: &mut LayerState<F>, steps: u64, online_reg: bool) {
        let cfg = &self.cfg;
        if cfg.reg_rate <= 0.0 {
            return;
        }
        let z = flat(&st.z);
        if online_reg {
            let w = F::of(1.0 / (steps as f64).min(cfg.reg_window()));
            for (r, &zj) in flat_mut(&mut st.rate).iter_mut().zip(z) {
                *r = flush(*r + w * (zj - *r));
            }
        } else {
            for (c, &zj) in flat_mut(&mut st.spike_count).iter_mut().zip(z) {
                *c += zj.f64();
            }
        }
    }

    /// Learning signal of layer `l`, `L = B err` (`signal`: with a target,
    /// learning), with B = W_out^T for the last layer under symmetric
    /// feedback and the layer's own matrix otherwise, and, online
    /// (`reg_signal`), the regularization signal `r_j = reg (rate_j - f0) dt / tau_reg`.
    /// Returns whether it wrote a regularization signal (else it is zero).
    fn learning_signal(
        &self,
        l: usize,
        st: &LayerState<F>,
        sc: &mut Scratch<F>,
        err: &[F],
        signal: bool,
        reg: bool,
    ) -> bool {
        let cfg = &self.cfg;
        if signal {
            let last = l + 1 == cfg.layers.len();
            match cfg.feedback {
                Feedback::Symmetric if last => transposed_signal(flat(&self.params.w_out), err, &mut sc.signal),
                _ => feedback_signal(flat(&self.params.layers[l].feedback), err, &mut sc.signal),
            }
        } else {
            sc.signal.fill(F::ZERO);
        }
        sc.reg_signal.fill(F::ZERO);
        let with_reg = cfg.reg_rate > 0.0 && reg;
        if with_reg {
            let f0 = F::of(cfg.rate_per_step());
            let scale = F::of(cfg.reg_rate / cfg.reg_window());
            for (r, &f) in sc.reg_signal.iter_mut().zip(flat(&st.rate)) {
                *r = scale * (f - f0);
            }
        }
        with_reg
    }

    /// Whether a step sums its e for the end-of-sequence regularization.
    fn sums_e(&self, with_target: bool, online_reg: bool) -> bool {
        self.cfg.reg_rate > 0.0 && with_target && !online_reg
    }

    /// Eligibility, filtered eligibility and gradient sums of layer `l`
    /// (one pass per row).
    fn eligibility(
        &self,
        (l, st, g, sc): (usize, &mut LayerState<F>, &mut LayerGrads<F>, &Scratch<F>),
        accumulate: bool,
        sum_e: bool,
        d: &Decays,
    ) {
        let cfg = &self.cfg;
        let kappa = F::of(d.kappa);
        let consts = (cfg.first_adaptive(l), F::of(cfg.beta), kappa, F::ONE - kappa);
        let flags = (accumulate, sum_e);
        let rows = (flat(&st.psi), &sc.signal[..], &sc.reg_signal[..]);
        elig_rows(
            flat(&st.zbar_in),
            flat(&st.eps_a_in),
            flat_mut(&mut st.ebar_in),
            flat_mut(&mut g.w_in),
            flat_mut(&mut st.e_sum_in),
            rows,
            consts,
            flags,
        );
        elig_rows(
            flat(&st.zbar_rec),
            flat(&st.eps_a_rec),
            flat_mut(&mut st.ebar_rec),
            flat_mut(&mut g.w_rec),
            flat_mut(&mut st.e_sum_rec),
            rows,
            consts,
            flags,
        );
    }

    /// Readout gradients `err zhat^T` and `err`.
    fn readout_gradients(&self, seq: &mut RsnnSeq<F>) {
        let n = self.cfg.n_last();
        let st = &mut seq.state;
        let zhat = flat(&st.zhat);
        for (row, &e) in flat_mut(&mut st.grads.w_out).chunks_exact_mut(n).zip(&seq.err) {
            for (g, &zh) in row.iter_mut().zip(zhat) {
                *g += e * zh;
            }
        }
        for (g, &e) in flat_mut(&mut st.grads.b_out).iter_mut().zip(&seq.err) {
            *g += e;
        }
    }

    /// Adds the end-of-sequence rate regularization gradient
    /// `reg (f_j - f0) mean_t e_ji(t)` to the gradient sums of every layer.
    pub fn finish_sequence(&self, seq: &mut RsnnSeq<F>) {
        seq.settle();
        let cfg = &self.cfg;
        let st = &mut seq.state;
        if cfg.reg_rate <= 0.0 || st.steps == 0 {
            return;
        }
        // counts and steps in f64 (exact to 2^53 in any dtype)
        let t = st.steps as f64;
        let f0 = cfg.rate_per_step();
        let reg = cfg.reg_rate;
        for (ls, lg) in st.layers.iter_mut().zip(st.grads.layers.iter_mut()) {
            for (grad, esum) in [(&mut lg.w_in, &ls.e_sum_in), (&mut lg.w_rec, &ls.e_sum_rec)] {
                let cols = grad.ncols();
                if cols == 0 {
                    continue;
                }
                let counts = flat(&ls.spike_count);
                for ((g, es), &c) in
                    flat_mut(grad).chunks_exact_mut(cols).zip(flat(esum).chunks_exact(cols)).zip(counts)
                {
                    let r = F::of(reg * (c / t - f0) / t);
                    for (gi, &e) in g.iter_mut().zip(es) {
                        *gi += r * e;
                    }
                }
            }
            ls.e_sum_in.fill(F::ZERO);
            ls.e_sum_rec.fill(F::ZERO);
        }
    }

    /// Folds the rate regularization of the steps since reset into the
    /// pending gradient sums (`update="sequence"`): the regularization of a
    /// sequence is complete once the sequence ends, whether by an update, a
    /// reset or a prediction.
    pub fn fold_regularization(&self, seq: &mut RsnnSeq<F>) {
        if self.cfg.update == Update::Sequence && seq.state.pending > 0 {
            self.finish_sequence(seq);
        }
    }

    /// Applies the mean of the gradient sums of `seqs` with the optimizer,
    /// then zeroes the sums.
    pub fn apply(&mut self, seqs: &mut [RsnnSeq<F>]) {
        for sq in seqs.iter_mut() {
            sq.settle();
        }
        match seqs {
            [] => return,
            // one sequence (every online update): its sums are the mean, bitwise
            // (`batch_mean` copies and divides by 1), without a copy
            [one] => {
                one.state.grads.zero_diagonals();
                self.apply_gradient(&one.state.grads);
            }
            _ => {
                let changes: Vec<Vec<&[F]>> = seqs.iter().map(|s| s.state.grads.parts()).collect();
                self.apply_mean_of(&changes);
            }
        }
        for sq in seqs.iter_mut() {
            sq.clear_grads();
        }
    }

    /// One optimizer step with gradient `g`. W_rec's diagonals stay zero;
    /// adaptive feedback (the last layer's) follows W_out's change (Kolen-Pollack).
    pub fn apply_gradient(&mut self, g: &Grads<F>) {
        let old_w_out = (self.cfg.feedback == Feedback::Adaptive).then(|| self.params.w_out.clone());
        optimizer_update(self.cfg.optimizer, F::of(self.cfg.lr), &mut self.optim, self.params.parts_mut(), g.parts());
        for p in self.params.layers.iter_mut() {
            zero_diagonal(&mut p.w_rec);
        }
        // a transpose costs about one weight update: worth it only when the
        // weights then stay fixed for a while
        match self.cfg.update.period() {
            Some(k) if k < TRANSPOSE_MIN_PERIOD => self.params.transposed = false,
            _ => self.params.sync(),
        }
        if let Some(old) = old_w_out {
            let n = self.cfg.n_last();
            let last = self.params.layers.last_mut().expect("at least one layer");
            kolen_pollack(
                flat_mut(&mut self.params.w_out),
                flat(&old),
                flat_mut(&mut last.feedback),
                n,
                F::of(self.cfg.feedback_decay),
            );
        }
    }

    /// Bytes of weights, feedback matrices and optimizer state.
    pub fn bytes(&self) -> usize {
        self.params.bytes() + self.optim.bytes()
    }
}
impl<F: Real> FixedWeights for RsnnNet<F> {
    type F = F;
    type Seq = RsnnSeq<F>;
    type Acc = ();

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs
    }
    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs
    }
    fn new_seq(&self) -> RsnnSeq<F> {
        RsnnSeq::new(&self.cfg)
    }
    fn seq_bytes(&self) -> usize {
        RsnnSeq::<F>::new(&self.cfg).bytes()
    }
    fn new_acc(&self) {}
    fn acc_bytes(&self) -> usize {
        0
    }
    fn fixed_step(&self, seq: &mut RsnnSeq<F>, x: &[F], target: &[F], learn: bool) -> f64 {
        self.run_step(seq, x, Some(target), learn, self.cfg.online())
    }
    fn begin_rows(&self, seq: &mut RsnnSeq<F>, inputs: ArrayView2<f64>) {
        seq.set_event(self.event_for(inputs));
    }
    fn end_rows(&self, seq: &mut RsnnSeq<F>) {
        seq.set_event(false);
    }
    fn accumulate(&self, _seq: &mut RsnnSeq<F>, _acc: &mut ()) {}
    fn finish_seq(&self, seq: &mut RsnnSeq<F>, _acc: &mut ()) {
        if !self.cfg.online() {
            self.finish_sequence(seq);
        }
    }
    fn predict(&self, seq: &mut RsnnSeq<F>, x: &[F], out: &mut [F]) {
        self.forward_only(seq, x);
        out.copy_from_slice(flat(&seq.state.y));
    }
}

impl<F: Real> Model for RsnnNet<F> {
    fn step(&mut self, seq: &mut RsnnSeq<F>, x: &[F], target: Option<&[F]>, learn: bool) -> f64 {
        let loss = self.run_step(seq, x, target, learn, self.cfg.online());
        if let (Some(k), true) = (self.cfg.update.period(), target.is_some()) {
            if seq.state.pending >= k as u64 {
                self.apply(std::slice::from_mut(seq));
            }
        }
        loss
    }

    /// Predictions run the forward dynamics only, so the eligibility traces
    /// (and the rate statistics of the regularization) restart from zero
    /// after one. Pending gradient sums are kept.
    fn infer(&mut self, seq: &mut RsnnSeq<F>, x: &[F]) {
        if !self.params.transposed {
            self.params.sync();
        }
        if seq.tracking {
            self.fold_regularization(seq);
            seq.clear_eligibility();
        }
        self.forward_only(seq, x);
    }

    fn output<'s>(&self, seq: &'s RsnnSeq<F>) -> &'s [F] {
        flat(&seq.state.y)
    }

    fn spikes<'s>(&self, seq: &'s RsnnSeq<F>) -> Option<&'s [F]> {
        Some(flat(&seq.state.last().z))
    }

    /// Zeroes the dynamic state; pending gradient sums (including the
    /// regularization of the steps so far) are kept for the next update.
    fn reset(&mut self, seq: &mut RsnnSeq<F>) {
        self.fold_regularization(seq);
        seq.reset_dynamics();
    }

    /// Applies pending gradient sums now (and the end-of-sequence
    /// regularization in `update="sequence"` mode).
    fn end_of_call(&mut self, seq: &mut RsnnSeq<F>) {
        if seq.state.pending == 0 {
            return;
        }
        if !self.cfg.online() {
            self.finish_sequence(seq);
        }
        self.apply(std::slice::from_mut(seq));
    }

    fn apply_acc_mean(&mut self, seqs: &mut [RsnnSeq<F>], _accs: &mut [()]) {
        self.apply(seqs);
    }

    /// The gradient sums of each trained array, in parameter order.
    fn change_lens(&self) -> Vec<usize> {
        self.cfg.param_shapes().iter().map(|s| s.iter().product()).collect()
    }

    fn change_parts<'a>(&self, seq: &'a RsnnSeq<F>, _acc: &'a ()) -> Vec<&'a [F]> {
        seq.state.grads.parts()
    }

    /// The optimizer step with the mean gradient (W_rec's diagonals zero).
    fn apply_mean_of(&mut self, changes: &[Vec<&[F]>]) {
        let mean = Grads::mean_of(&self.cfg, changes);
        self.apply_gradient(&mean);
    }
}

/// [`RsnnNet<F>`] driven in the sequence form whatever its schedule: what
/// [`gradients`] differentiates.
struct SequenceForm<'a, F: Real>(&'a RsnnNet<F>);

impl<F: Real> FixedWeights for SequenceForm<'_, F> {
    type F = F;
    type Seq = RsnnSeq<F>;
    type Acc = ();

    fn n_inputs(&self) -> usize {
        self.0.cfg.n_inputs
    }
    fn n_outputs(&self) -> usize {
        self.0.cfg.n_outputs
    }
    fn new_seq(&self) -> RsnnSeq<F> {
        self.0.new_seq()
    }
    fn seq_bytes(&self) -> usize {
        self.0.seq_bytes()
    }
    fn new_acc(&self) {}
    fn acc_bytes(&self) -> usize {
        0
    }
    fn fixed_step(&self, seq: &mut RsnnSeq<F>, x: &[F], target: &[F], learn: bool) -> f64 {
        self.0.run_step(seq, x, Some(target), learn, false)
    }
    fn begin_rows(&self, seq: &mut RsnnSeq<F>, inputs: ArrayView2<f64>) {
        self.0.begin_rows(seq, inputs);
    }
    fn end_rows(&self, seq: &mut RsnnSeq<F>) {
        self.0.end_rows(seq);
    }
    fn accumulate(&self, _seq: &mut RsnnSeq<F>, _acc: &mut ()) {}
    fn finish_seq(&self, seq: &mut RsnnSeq<F>, _acc: &mut ()) {
        self.0.finish_sequence(seq);
    }
    fn predict(&self, seq: &mut RsnnSeq<F>, x: &[F], out: &mut [F]) {
        self.0.predict(seq, x, out);
    }
}

/// Gradients of the objective (summed over time, mean over the batch) with
/// the weights fixed, and the mean loss of each sequence over its counted
/// steps. Every sequence starts from reset state; `mask` is (B, T). Must run
/// inside the rayon pool that should do the work.
pub fn gradients<F: Real>(
    net: &RsnnNet<F>,
    inputs: ArrayView3<f64>,
    targets: ArrayView3<f64>,
    mask: Option<ArrayView2<bool>>,
) -> Result<(Grads<F>, Vec<f64>)> {
    let (seqs, _, sums) = run_fixed(&SequenceForm(net), inputs, targets, mask)?;
    let parts: Vec<Vec<&[F]>> = seqs.iter().map(|s| s.state.grads.parts()).collect();
    Ok((Grads::mean_of(&net.cfg, &parts), sums.iter().map(|s| s.mean()).collect()))
}

/// The Python `RecurrentNetwork`: a network and its own sequence.
pub type Rsnn<F = f64> = Trainer<RsnnNet<F>>;

impl<F: Real> Described for Trainer<RsnnNet<F>> {
    type Config = RsnnConfig;

    fn config_mut(&mut self) -> &mut RsnnConfig {
        &mut self.model.cfg
    }

    /// Values kept per sequence in flight (constant in T).
    fn memory_per_step(&self) -> usize {
        self.seq.bytes() / F::BYTES
    }

    fn memory_bytes(&self) -> usize {
        self.model.bytes() + self.seq.bytes()
    }
}

impl<F: Real> Trainer<RsnnNet<F>> {
    /// Applies pending gradient sums now (see [`Model::end_of_call`]).
    pub fn apply_pending(&mut self) {
        self.model.end_of_call(&mut self.seq);
    }

    /// Replaces the array `name` (`W_in`, `W_rec` or `feedback_matrix`) of
    /// every layer, one array per layer (named `name[l]` in messages), all
    /// checked before any is set.
    pub fn set_layers(&mut self, name: &str, arrays: Vec<ArrayD<f64>>) -> Result<()> {
        let nl = self.model.cfg.layers.len();
        if !LAYER_PARAMS.contains(&name) {
            return Err(not_settable(name, &LAYER_PARAMS));
        }
        if arrays.len() != nl {
            return Err(EpropError::param(
                name,
                format!("a list of {nl} arrays (one per layer)"),
                format!("a list of {}", arrays.len()),
            ));
        }
        let mut p = self.model.params.clone();
        for (l, a) in arrays.into_iter().enumerate() {
            set_param(&mut p, &layer_key(name, l), &format!("{name}[{l}]"), a)?;
        }
        self.model.params = p;
        Ok(())
    }
}

/// The weight arrays each layer has.
const LAYER_PARAMS: [&str; 3] = ["W_in", "W_rec", "feedback_matrix"];

/// The dynamic state arrays each layer has (in states and checkpoints).
const LAYER_STATE: [&str; 2] = ["_refractory", "_spike_count"];

/// Replaces the weight array `name` of `p` (W_rec's diagonal zeroed, the
/// transposes made equal); messages name the array `shown`.
fn set_param<F: Real>(p: &mut Params<F>, name: &str, shown: &str, a: ArrayD<f64>) -> Result<()> {
    match name {
        "W_out" => return check::replace(shown, &mut p.w_out, a),
        "b_out" => return check::replace(shown, &mut p.b_out, a),
        _ => {}
    }
    for l in 0..p.layers.len() {
        let lp = &mut p.layers[l];
        if name == layer_key("W_in", l) {
            check::replace(shown, &mut lp.w_in, a)?;
        } else if name == layer_key("W_rec", l) {
            check::replace(shown, &mut lp.w_rec, a)?;
            zero_diagonal(&mut lp.w_rec);
        } else if name == layer_key("feedback_matrix", l) {
            return check::replace(shown, &mut lp.feedback, a);
        } else {
            continue;
        }
        lp.sync();
        return Ok(());
    }
    let mut settable = vec!["W_out".to_string(), "b_out".to_string()];
    for l in 0..p.layers.len() {
        settable.extend(LAYER_PARAMS.map(|k| layer_key(k, l)));
    }
    Err(not_settable(name, &settable.iter().map(String::as_str).collect::<Vec<_>>()))
}

impl<F: Real> Stateful for Trainer<RsnnNet<F>> {
    const CLASS: &'static str = "RecurrentNetwork";
    const VERSION: i64 = 2;
    type F = F;

    fn config(&self) -> StateDict {
        let c = &self.model.cfg;
        let mut d = StateDict::new(Self::CLASS, Self::VERSION);
        d.put_int("n_inputs", c.n_inputs as i64);
        d.put("n_neurons", c.per_layer(|s| s.n_neurons));
        d.put_int("n_outputs", c.n_outputs as i64);
        d.put("n_adaptive", c.per_layer(|s| s.n_adaptive));
        for (k, v) in [
            ("tau_mem", c.tau_mem),
            ("tau_adapt", c.tau_adapt),
            ("beta", c.beta),
            ("threshold", c.threshold),
            ("refractory", c.refractory),
            ("dt", c.dt),
            ("tau_out", c.tau_out),
            ("feedback_decay", c.feedback_decay),
            ("surrogate_height", c.surrogate_height),
            ("reg_rate", c.reg_rate),
            ("target_rate", c.target_rate),
            ("tau_reg", c.tau_reg),
            ("lr", c.lr),
        ] {
            d.put_float(k, v);
        }
        d.put_text("loss", c.loss.name());
        d.put_text("feedback", c.feedback.name());
        d.put_text("optimizer", c.optimizer.name());
        d.put_text("update", &c.update.name());
        d.put_int("seed", c.seed as i64);
        d.put_text("kernel", c.kernel.name());
        d.put_text("dtype", F::DTYPE.name());
        d
    }

    fn put_counters(&self, d: &mut StateDict) {
        let st = &self.seq.state;
        d.put_int("optimizer_t", self.model.optim.t as i64);
        for (l, ls) in st.layers.iter().enumerate() {
            let refr: Vec<f64> = ls.refractory.iter().map(|&r| r as f64).collect();
            d.put_vec(&layer_key(LAYER_STATE[0], l), &refr);
            d.put_vec(&layer_key(LAYER_STATE[1], l), flat(&ls.spike_count));
        }
        d.put_int("_steps", st.steps as i64);
        d.put_int("_pending", st.pending as i64);
    }

    /// The first layer's arrays under their plain names, in the order of a
    /// one-layer network, then those of each further layer (named `.l`).
    fn arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let p = &self.model.params;
        let st = &self.seq.state;
        let weights = |l: usize| {
            let lp = &p.layers[l];
            vec![
                (layer_key("W_in", l), lp.w_in.view().into_dyn()),
                (layer_key("W_rec", l), lp.w_rec.view().into_dyn()),
                (layer_key("feedback_matrix", l), lp.feedback.view().into_dyn()),
            ]
        };
        let dynamics = |l: usize| {
            let ls = &st.layers[l];
            [
                ("_v", ls.v.view().into_dyn()),
                ("_a", ls.a.view().into_dyn()),
                ("_spikes", ls.z.view().into_dyn()),
                ("_psi", ls.psi.view().into_dyn()),
                ("_zbar_in", ls.zbar_in.view().into_dyn()),
                ("_zbar_rec", ls.zbar_rec.view().into_dyn()),
            ]
            .map(|(k, a)| (layer_key(k, l), a))
            .to_vec()
        };
        let eligibility = |l: usize| {
            let (ls, g) = (&st.layers[l], &st.grads.layers[l]);
            [
                ("_rate", ls.rate.view().into_dyn()),
                ("_eps_a_in", ls.eps_a_in.view().into_dyn()),
                ("_eps_a_rec", ls.eps_a_rec.view().into_dyn()),
                ("_ebar_in", ls.ebar_in.view().into_dyn()),
                ("_ebar_rec", ls.ebar_rec.view().into_dyn()),
                ("_e_sum_in", ls.e_sum_in.view().into_dyn()),
                ("_e_sum_rec", ls.e_sum_rec.view().into_dyn()),
                ("grad.W_in", g.w_in.view().into_dyn()),
                ("grad.W_rec", g.w_rec.view().into_dyn()),
            ]
            .map(|(k, a)| (layer_key(k, l), a))
            .to_vec()
        };
        let mut first = weights(0);
        let fb = first.pop().expect("three weight arrays");
        let mut out = first;
        out.push(("W_out".into(), p.w_out.view().into_dyn()));
        out.push(fb);
        out.push(("b_out".into(), p.b_out.view().into_dyn()));
        let (names, shapes) = (self.model.cfg.param_names(), self.model.cfg.param_shapes());
        for (prefix, moments) in [("adam_m", &self.model.optim.m), ("adam_v", &self.model.optim.v)] {
            for ((name, shape), m) in names.iter().zip(&shapes).zip(moments) {
                let view = ArrayViewD::from_shape(IxDyn(shape), m.as_slice()).expect("moment shape");
                out.push((format!("{prefix}.{name}"), view));
            }
        }
        out.extend(dynamics(0));
        out.extend(named(&[("_zhat", st.zhat.view().into_dyn()), ("_y", st.y.view().into_dyn())]));
        let mut elig = eligibility(0);
        let rate = elig.remove(0);
        out.push(rate);
        out.push(("grad.b_out".into(), st.grads.b_out.view().into_dyn()));
        out.extend(elig);
        out.push(("grad.W_out".into(), st.grads.w_out.view().into_dyn()));
        for l in 1..st.layers.len() {
            out.extend(weights(l));
            out.extend(dynamics(l));
            out.extend(eligibility(l));
        }
        out
    }

    fn set_array(&mut self, name: &str, a: ndarray::ArrayD<f64>) -> Result<()> {
        set_param(&mut self.model.params, name, name, a)
    }

    fn config_of_state(d: &StateDict) -> Result<StateDict> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        let mut out = d.subset(&["n_inputs"], &[], &[])?;
        out.put("n_neurons", d.sizes("n_neurons")?);
        out.put_int("n_outputs", d.int("n_outputs")?);
        out.put("n_adaptive", d.sizes("n_adaptive")?);
        let rest = d.subset(
            &[],
            &[
                "tau_mem",
                "tau_adapt",
                "beta",
                "threshold",
                "refractory",
                "dt",
                "tau_out",
                "feedback_decay",
                "surrogate_height",
                "reg_rate",
                "target_rate",
                "tau_reg",
                "lr",
            ],
            &["loss", "feedback", "optimizer"],
        )?;
        for (k, v) in rest.entries() {
            out.put(k, v.clone());
        }
        let update = d.text("update")?;
        match update.parse::<i64>() {
            Ok(k) => out.put_int("update", k),
            Err(_) => out.put_text("update", update),
        }
        out.put_int("seed", d.int("seed")?);
        out.put_text("kernel", Kernel::of_state(d)?.name());
        out.put_text("dtype", Dtype::of_state(d)?.name());
        Ok(out)
    }

    /// Weights, optimizer state and dynamic state of a network with the same
    /// configuration (checked first, a refused state changes nothing); `lr`
    /// is taken from the state.
    fn load_state(&mut self, d: &StateDict) -> Result<()> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        // the kernel does not change what the state means: any loads
        let ours = self.config();
        d.check_same_config(&ours, &["lr", "seed", "kernel", "dtype", "n_neurons", "n_adaptive"])?;
        for k in ["n_neurons", "n_adaptive"] {
            let (theirs, ours) = (d.sizes(k)?, ours.get(k)?);
            if &theirs != ours {
                return Err(EpropError::param(
                    &format!("state_dict['{k}']"),
                    format!("{} (this network's)", ours.kind_short()),
                    theirs.kind_short(),
                ));
            }
        }
        d.check_known_keys(&self.state())?;
        Kernel::of_state(d)?;
        Dtype::check_state(d, F::DTYPE)?;
        let c = self.model.cfg.clone();
        let lr = check::non_negative("lr", d.float("lr")?)?;
        F::DTYPE.check_hypers(&[("lr", lr)])?;
        let (no, nl) = (c.n_outputs, c.layers.len());
        let key = |k: &str, l: usize| layer_key(k, l);
        let mut layers = Vec::with_capacity(nl);
        for l in 0..nl {
            let (ni, n) = (c.layer_inputs(l), c.layers[l].n_neurons);
            layers.push(LayerParams::new(
                d.matrix(&key("W_in", l), n, ni)?,
                d.matrix(&key("W_rec", l), n, n)?,
                d.matrix(&key("feedback_matrix", l), n, no)?,
            ));
        }
        let params = Params::from_parts(layers, d.matrix("W_out", no, c.n_last())?, d.vector("b_out", no)?);
        let lens: Vec<usize> = Grads::<F>::zeros(&c).parts().iter().map(|p| p.len()).collect();
        let mut optim = OptimState::new(c.optimizer, &lens);
        optim.t = d.count("optimizer_t")?;
        let (names, shapes) = (c.param_names(), c.param_shapes());
        if c.optimizer == Optimizer::Adam {
            for (prefix, moments) in [("adam_m", &mut optim.m), ("adam_v", &mut optim.v)] {
                for ((name, shape), m) in names.iter().zip(&shapes).zip(moments.iter_mut()) {
                    *m = d.array(&format!("{prefix}.{name}"), shape)?.into_raw_vec_and_offset().0;
                }
            }
        }
        let mut cfg = c.clone();
        cfg.lr = lr;
        let mut seq = RsnnSeq::<F>::new(&cfg);
        let st = &mut seq.state;
        for l in 0..nl {
            let (ni, n, na) = (c.layer_inputs(l), c.layers[l].n_neurons, c.layers[l].n_adaptive);
            let ls = &mut st.layers[l];
            ls.v = d.vector(&key("_v", l), n)?;
            ls.a = d.vector(&key("_a", l), n)?;
            ls.z = d.vector(&key("_spikes", l), n)?;
            ls.psi = d.vector(&key("_psi", l), n)?;
            ls.zbar_in = d.vector(&key("_zbar_in", l), ni)?;
            ls.zbar_rec = d.vector(&key("_zbar_rec", l), n)?;
            ls.spike_count = d.vector::<f64>(&key(LAYER_STATE[1], l), n)?;
            ls.rate = d.vector(&key("_rate", l), n)?;
            ls.eps_a_in = d.matrix(&key("_eps_a_in", l), na, ni)?;
            ls.eps_a_rec = d.matrix(&key("_eps_a_rec", l), na, n)?;
            ls.ebar_in = d.matrix(&key("_ebar_in", l), n, ni)?;
            ls.ebar_rec = d.matrix(&key("_ebar_rec", l), n, n)?;
            let (ri, rr) = (ls.e_sum_in.dim(), ls.e_sum_rec.dim());
            ls.e_sum_in = d.matrix(&key("_e_sum_in", l), ri.0, ri.1)?;
            ls.e_sum_rec = d.matrix(&key("_e_sum_rec", l), rr.0, rr.1)?;
            ls.refractory = d.counters(&key(LAYER_STATE[0], l), n)?;
            st.grads.layers[l] = LayerGrads {
                w_in: d.matrix(&key("grad.W_in", l), n, ni)?,
                w_rec: d.matrix(&key("grad.W_rec", l), n, n)?,
            };
        }
        st.zhat = d.vector("_zhat", c.n_last())?;
        st.y = d.vector("_y", no)?;
        st.grads.w_out = d.matrix("grad.W_out", no, c.n_last())?;
        st.grads.b_out = d.vector("grad.b_out", no)?;
        st.steps = d.count("_steps")?;
        st.pending = d.count("_pending")?;
        seq.tracking = true;
        *self = Trainer { model: RsnnNet { cfg, params, optim }, seq };
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read like the equations
mod tests {
    use super::*;
    use crate::kernels::testing::values;
    use crate::optim::Optimizer;
    use crate::readout::Loss;

    fn config(update: Update, feedback: Feedback, optimizer: Optimizer, reg: f64) -> RsnnConfig {
        RsnnConfig::new(&RsnnSpec {
            n_inputs: 3,
            n_neurons: vec![5],
            n_outputs: 2,
            n_adaptive: PerLayer::Each(2),
            tau_mem: 20.0,
            tau_adapt: 50.0,
            beta: Some(0.3),
            threshold: 0.5,
            refractory: 3.0,
            dt: 1.0,
            tau_out: 15.0,
            loss: Loss::Mse,
            feedback,
            feedback_decay: 0.01,
            surrogate_height: 0.3,
            reg_rate: reg,
            target_rate: 10.0,
            tau_reg: 40.0,
            optimizer,
            lr: 0.01,
            update,
            seed: 3,
            kernel: Kernel::Dense,
            dtype: Dtype::F64,
        })
        .unwrap()
    }

    /// A network with random weights and a sequence with random state.
    fn setup(cfg: RsnnConfig) -> (RsnnNet, RsnnSeq) {
        let mut net = RsnnNet::new(cfg.clone());
        let (ni, n, no, na) = (cfg.n_inputs, cfg.layers[0].n_neurons, cfg.n_outputs, cfg.layers[0].n_adaptive);
        let arr = |seed, r, c| Array2::from_shape_vec((r, c), values(seed, r * c, 0.0)).unwrap();
        let vec1 = |seed, len, zeros| Array1::from(values(seed, len, zeros));
        // small input and recurrent weights keep the membranes near threshold
        net.params.layers[0].w_in = arr(1, n, ni) * 0.1;
        net.params.layers[0].w_rec = arr(2, n, n) * 0.1;
        net.params.layers[0].w_rec.diag_mut().fill(0.0);
        net.params.sync();
        net.params.w_out = arr(3, no, n);
        net.params.b_out = vec1(4, no, 0.0);
        net.params.layers[0].feedback = arr(5, n, no);
        let mut seq = RsnnSeq::<f64>::new(&cfg);
        seq.state.zhat = vec1(15, n, 0.0).mapv(f64::abs);
        seq.state.steps = 7;
        let st = &mut seq.state.layers[0];
        st.v = Array1::from(vec![1.16, 0.6, 0.84, 0.75, 0.3]);
        st.a = vec1(7, n, 0.0).mapv(f64::abs);
        for j in 0..cfg.first_adaptive(0) {
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
        (net, seq)
    }

    fn close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() <= 1e-13 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    }

    #[test]
    fn one_step_against_the_equations() {
        for feedback in [Feedback::Symmetric, Feedback::Random] {
            let cfg = config(Update::Sequence, feedback, Optimizer::Sgd, 0.0);
            let (net, mut seq) = setup(cfg.clone());
            let old_all = seq.state.clone();
            let old = &old_all.layers[0];
            let p = net.params.clone();
            let lp = &p.layers[0];
            let x = [1.0, 0.0, 0.4];
            let target = [0.3, -0.2];
            let loss = net.run_step(&mut seq, &x, Some(&target), true, false);
            let (ni, n, no) = (cfg.n_inputs, cfg.layers[0].n_neurons, cfg.n_outputs);
            let (alpha, rho, kappa) = (cfg.alpha(), cfg.rho(), cfg.kappa());
            let (thr, beta, gamma) = (cfg.threshold, cfg.beta, cfg.surrogate_height);
            let fa = cfg.first_adaptive(0);
            let st = &seq.state.layers[0];
            let grads = &seq.state.grads;
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
                    cur += lp.w_in[[j, i]] * x[i];
                }
                for i in 0..n {
                    cur += lp.w_rec[[j, i]] * old.z[i];
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
                        (0..ni).map(|i| alpha * old.zbar_in[i] + x[i]).collect::<Vec<_>>(),
                        &mut e_in[j],
                        old.eps_a_in.clone(),
                        st.eps_a_in.clone(),
                    ),
                    (
                        old.zbar_rec.to_vec(),
                        (0..n).map(|i| alpha * old.zbar_rec[i] + old.z[i]).collect::<Vec<_>>(),
                        &mut e_rec[j],
                        old.eps_a_rec.clone(),
                        st.eps_a_rec.clone(),
                    ),
                ] {
                    for i in 0..pre_old.len() {
                        let eps = if ad {
                            let e = old.psi[j] * pre_old[i] + (rho - beta * old.psi[j]) * eps_old[[j - fa, i]];
                            close(eps_new[[j - fa, i]], e, "eps_a");
                            e
                        } else {
                            0.0
                        };
                        e_out[i] = psi[j] * (pre_new_of[i] - beta * eps);
                    }
                }
            }
            assert!(z.iter().any(|&v| v > 0.0) && z.contains(&0.0), "vacuous spikes {z:?}");
            assert!(psi.iter().filter(|&&v| v > 0.0).count() >= 2, "vacuous psi {psi:?}");
            assert!(old.refractory.iter().any(|&r| r > 0));
            for i in 0..ni {
                close(st.zbar_in[i], alpha * old.zbar_in[i] + x[i], "zbar_in");
            }
            let zhat: Vec<f64> = (0..n).map(|j| kappa * old_all.zhat[j] + (1.0 - kappa) * z[j]).collect();
            let mut err = vec![0.0; no];
            let mut want_loss = 0.0;
            for k in 0..no {
                let mut y = p.b_out[k];
                for j in 0..n {
                    y += p.w_out[[k, j]] * zhat[j];
                }
                close(seq.state.y[k], y, "y");
                err[k] = y - target[k];
                want_loss += 0.5 * err[k] * err[k];
            }
            close(loss, want_loss, "loss");
            for j in 0..n {
                let l: f64 = (0..no)
                    .map(|k| {
                        let b = match feedback {
                            Feedback::Symmetric => p.w_out[[k, j]],
                            _ => lp.feedback[[j, k]],
                        };
                        b * err[k]
                    })
                    .sum();
                for i in 0..ni {
                    let eb = kappa * old.ebar_in[[j, i]] + (1.0 - kappa) * e_in[j][i];
                    close(st.ebar_in[[j, i]], eb, "ebar_in");
                    close(grads.layers[0].w_in[[j, i]], l * eb, "grad W_in");
                }
                for i in 0..n {
                    let eb = kappa * old.ebar_rec[[j, i]] + (1.0 - kappa) * e_rec[j][i];
                    close(st.ebar_rec[[j, i]], eb, "ebar_rec");
                    close(grads.layers[0].w_rec[[j, i]], l * eb, "grad W_rec");
                }
                for k in 0..no {
                    close(grads.w_out[[k, j]], err[k] * zhat[j], "grad W_out");
                }
            }
            for k in 0..no {
                close(grads.b_out[k], err[k], "grad b_out");
            }
        }
    }

    #[test]
    fn eligibility_recursion_over_a_sequence() {
        // ebar(t) = sum_s kappa^(t-s) (1 - kappa) e(s) and the gradient sum is
        // sum_t L(t) ebar(t), with e(s) evaluated from the state of each step.
        let cfg = config(Update::Sequence, Feedback::Random, Optimizer::Sgd, 0.0);
        let (net, _) = setup(cfg.clone());
        let mut seq = RsnnSeq::<f64>::new(&cfg);
        let (ni, n) = (cfg.n_inputs, cfg.layers[0].n_neurons);
        let kappa = cfg.kappa();
        let xs: Vec<Vec<f64>> = (0..40).map(|t| values(200 + t, ni, 0.5).iter().map(|v| v.abs()).collect()).collect();
        let mut es: Vec<Vec<f64>> = Vec::new();
        let mut grad = vec![0.0; n * ni];
        let mut ebar = vec![0.0; n * ni];
        for x in &xs {
            let target = [0.1, -0.1];
            net.run_step(&mut seq, x, Some(&target), true, false);
            let st = &seq.state.layers[0];
            let mut e = vec![0.0; n * ni];
            for j in 0..n {
                for i in 0..ni {
                    let fa = cfg.first_adaptive(0);
                    let eps = if j >= fa { st.eps_a_in[[j - fa, i]] } else { 0.0 };
                    e[j * ni + i] = st.psi[j] * (st.zbar_in[i] - cfg.beta * eps);
                }
            }
            es.push(e);
            let l: Vec<f64> =
                (0..n).map(|j| (0..2).map(|k| net.params.layers[0].feedback[[j, k]] * seq.err[k]).sum()).collect();
            let t = es.len() - 1;
            for m in 0..n * ni {
                ebar[m] = (0..=t).map(|s| kappa.powi((t - s) as i32) * (1.0 - kappa) * es[s][m]).sum();
                grad[m] += l[m / ni] * ebar[m];
            }
            for (m, (&a, &b)) in flat(&st.ebar_in).iter().zip(&ebar).enumerate() {
                close(a, b, &format!("ebar {m}"));
            }
        }
        assert!(es.iter().flatten().any(|&e| e != 0.0), "vacuous: no eligibility");
        for (a, b) in flat(&seq.state.grads.layers[0].w_in).iter().zip(&grad) {
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
            let cfg = config(Update::Sequence, feedback, optimizer, 0.0);
            let (mut net, _) = setup(cfg.clone());
            let lr = cfg.lr;
            let mut w = net.params.clone();
            let (mut m, mut v) = (Grads::<f64>::zeros(&cfg), Grads::<f64>::zeros(&cfg));
            for step in 1..=3u64 {
                let mut g = Grads::<f64>::zeros(&cfg);
                for (k, part) in g.parts_mut().into_iter().enumerate() {
                    part.copy_from_slice(&values(300 + 10 * step as u32 + k as u32, part.len(), 0.1));
                }
                g.layers[0].w_rec.diag_mut().fill(0.0);
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
                w.layers[0].w_rec.diag_mut().fill(0.0);
                if feedback == Feedback::Adaptive {
                    let keep = 1.0 - cfg.feedback_decay;
                    let change = &w.w_out - &old_out;
                    w.w_out = &old_out * keep + &change;
                    w.layers[0].feedback = &w.layers[0].feedback * keep + change.t();
                }
                for (a, b) in flat(&net.params.layers[0].w_in).iter().zip(flat(&w.layers[0].w_in)) {
                    close(*a, *b, "W_in");
                }
                for (a, b) in flat(&net.params.w_out).iter().zip(flat(&w.w_out)) {
                    close(*a, *b, "W_out");
                }
                for (a, b) in flat(&net.params.layers[0].feedback).iter().zip(flat(&w.layers[0].feedback)) {
                    close(*a, *b, "B");
                }
                assert!(net.params.layers[0].w_rec.diag().iter().all(|&d| d == 0.0));
            }
        }
    }
}
