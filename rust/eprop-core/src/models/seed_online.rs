//! The seed's feedforward online trainer: `OnlineLIFLayer` and `OnlineTrainer`,
//! reproduced number for number.
//!
//! A layer steps like the seed LIF (see `neuron`) and keeps one trace per
//! synapse, `trace <- 0.95 trace + psi (x) x` (the decay 0.95 is fixed,
//! whatever dt and tau are). A learning signal s moves the weights as
//! `W <- W - lr s (.) trace`. The trainer stacks layers; with a target it takes
//! err = z_out - y*, loss = 0.5 |err|^2, and walks down the stack: layer l
//! learns from s_l, then s_{l-1} = W_l^T s_l with the weights just updated.

use ndarray::{Array1, Array2, ArrayD, ArrayViewD};

use crate::check;
use crate::driver::{Described, FixedWeights, Model, Trainer};
use crate::error::{EpropError, Result};
use crate::kernels::{
    add_scaled_rows, batch_mean, flat, flat_mut, layer_learn_rows, matvec, nonzeros, trace_rows, Change, MeanInto,
};
use crate::neuron::{seed_update, DecayCache};
use crate::readout::{error, Loss};
use crate::real::{Dtype, Real};
use crate::rng::LegacyRng;
use crate::state::{not_settable, StateDict, Stateful, Value};

/// Decay of the layer trace, fixed by the seed.
pub const LAYER_TRACE_DECAY: f64 = 0.95;

/// Hyperparameters of one layer (times in ms).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedLayerConfig {
    pub n_inputs: usize,
    pub n_neurons: usize,
    pub tau_mem: f64,
    pub threshold: f64,
    pub lr: f64,
    pub dt: f64,
}

impl SeedLayerConfig {
    /// Validates sizes and hyperparameters (`what` names the trainer in a
    /// memory error).
    pub fn new(
        what: &str,
        (n_inputs, n_neurons): (i64, i64),
        tau_mem: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
    ) -> Result<Self> {
        let cfg = SeedLayerConfig {
            n_inputs: check::size("n_inputs", n_inputs)?,
            n_neurons: check::size("n_neurons", n_neurons)?,
            tau_mem: check::positive("tau_mem", tau_mem)?,
            threshold: check::positive("threshold", threshold)?,
            lr: check::non_negative("lr", lr)?,
            dt: check::positive("dt", dt)?,
        };
        let what = format!("{what}(n_inputs={}, n_neurons={})", cfg.n_inputs, cfg.n_neurons);
        check::alloc(&what, cfg.n_f64(&what)?)?;
        Ok(cfg)
    }

    /// Checks the hyperparameters for the range of float type `dtype`.
    pub fn check_dtype(&self, dtype: Dtype) -> Result<()> {
        dtype.check_hypers(&[("threshold", self.threshold), ("lr", self.lr)])
    }

    /// Float64 values held by one layer (weights, trace, vectors).
    pub fn n_f64(&self, what: &str) -> Result<usize> {
        let (ni, nr) = (self.n_inputs, self.n_neurons);
        check::count_f64(what, &[(nr, ni), (nr, ni), (5, nr), (1, ni)])
    }
}

/// Dynamic state of one layer for one sequence: `_v`, `_spikes`, `_trace`
/// (and the step's pseudo-derivatives and buffers).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedLayerState<F: Real = f64> {
    pub v: Array1<F>,
    pub z: Array1<F>,
    pub trace: Array2<F>,
    psi: Vec<F>,
    current: Vec<F>,
    idx: Vec<usize>,
    /// The membrane's decay, as last computed.
    decay: DecayCache<1>,
}

impl<F: Real> SeedLayerState<F> {
    pub fn zeros(cfg: &SeedLayerConfig) -> Self {
        SeedLayerState {
            v: Array1::zeros(cfg.n_neurons),
            z: Array1::zeros(cfg.n_neurons),
            trace: Array2::zeros((cfg.n_neurons, cfg.n_inputs)),
            psi: vec![F::ZERO; cfg.n_neurons],
            current: vec![F::ZERO; cfg.n_neurons],
            idx: Vec::with_capacity(cfg.n_inputs),
            decay: DecayCache::default(),
        }
    }

    pub fn reset(&mut self) {
        self.v.fill(F::ZERO);
        self.z.fill(F::ZERO);
        self.trace.fill(F::ZERO);
    }

    pub fn bytes(&self) -> usize {
        F::BYTES * (self.v.len() + self.z.len() + self.trace.len() + self.psi.capacity() + self.current.capacity())
            + std::mem::size_of::<usize>() * self.idx.capacity()
    }
}

/// One LIF layer's hyperparameters and weights `W` (n_neurons, n_inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedLayer<F: Real = f64> {
    pub cfg: SeedLayerConfig,
    pub w: Array2<F>,
}

impl<F: Real> SeedLayer<F> {
    /// Weights `RandomState(seed).randn(n_neurons, n_inputs) * sqrt(2 / n_inputs)`.
    pub fn new(cfg: SeedLayerConfig, seed: u32) -> Self {
        let mut rng = LegacyRng::new(seed);
        let w = rng.normal_matrix(cfg.n_neurons, cfg.n_inputs, (2.0 / cfg.n_inputs as f64).sqrt()).mapv(F::of);
        SeedLayer { cfg, w }
    }

    /// Membrane, spikes and pseudo-derivative for input `x`; the trace is not touched.
    pub fn forward(&self, st: &mut SeedLayerState<F>, x: &[F]) {
        let sparse = nonzeros(x, &mut st.idx);
        matvec(flat(&self.w), x, &st.idx, sparse, &mut st.current);
        let [alpha] = st.decay.of(self.cfg.dt, [self.cfg.tau_mem]);
        seed_update(
            flat_mut(&mut st.v),
            &st.current,
            flat_mut(&mut st.z),
            &mut st.psi,
            F::of(alpha),
            F::of(self.cfg.threshold),
        );
    }

    /// Trace update for the input `x` of the step just taken.
    pub fn update_trace(&self, st: &mut SeedLayerState<F>, x: &[F]) {
        trace_rows(flat_mut(&mut st.trace), x, &st.psi, F::of(LAYER_TRACE_DECAY));
    }

    /// The seed's `step`: forward, then trace. Spikes are in `st.z`.
    pub fn step(&self, st: &mut SeedLayerState<F>, x: &[F]) {
        self.forward(st, x);
        self.update_trace(st, x);
    }

    /// The seed's `apply_learning_signal`: `W <- W - lr signal (.) trace`.
    pub fn apply_learning_signal(&mut self, st: &SeedLayerState<F>, signal: &[F]) {
        let ni = self.cfg.n_inputs;
        add_scaled_rows(flat_mut(&mut self.w), -F::of(self.cfg.lr), signal, flat(&st.trace), ni, ni);
    }

    /// Trace update and weight change in one pass, projecting the signal down
    /// (`down <- W^T signal` with the new W) when `down` is given.
    fn learn(&mut self, st: &mut SeedLayerState<F>, x: &[F], signal: &[F], down: Option<&mut [F]>) {
        let project = down.is_some();
        let down = down.unwrap_or(&mut []);
        down.fill(F::ZERO);
        let consts = (F::of(LAYER_TRACE_DECAY), F::of(self.cfg.lr));
        layer_learn_rows(flat_mut(&mut self.w), flat_mut(&mut st.trace), x, (&st.psi, signal), consts, down, project);
    }

    /// The same step on fixed weights (a batch): the trace advances and
    /// `down` receives what [`Self::learn`] would project. Each row of W is
    /// copied into `row` and updated there, so the arithmetic is the same.
    fn learn_fixed(&self, st: &mut SeedLayerState<F>, x: &[F], signal: &[F], down: Option<&mut [F]>, row: &mut Vec<F>) {
        let ni = self.cfg.n_inputs;
        let project = down.is_some();
        let down = down.unwrap_or(&mut []);
        down.fill(F::ZERO);
        let consts = (F::of(LAYER_TRACE_DECAY), F::of(self.cfg.lr));
        let tr = flat_mut(&mut st.trace);
        for (j, w_row) in flat(&self.w).chunks_exact(ni).enumerate() {
            row.clear();
            row.extend_from_slice(w_row);
            let rows = (&st.psi[j..j + 1], &signal[j..j + 1]);
            layer_learn_rows(row, &mut tr[j * ni..(j + 1) * ni], x, rows, consts, down, project);
        }
    }
}

/// Writes one layer's settable hyperparameters under `prefix`.
fn put_layer_floats<F: Real>(d: &mut StateDict, prefix: &str, layer: &SeedLayer<F>) {
    let c = &layer.cfg;
    for (k, v) in [("tau_mem", c.tau_mem), ("threshold", c.threshold), ("lr", c.lr), ("dt", c.dt)] {
        d.put_float(&format!("{prefix}{k}"), v);
    }
}

/// The named arrays of one layer, under `prefix`.
fn layer_arrays<'a, F: Real>(
    prefix: &str,
    layer: &'a SeedLayer<F>,
    st: &'a SeedLayerState<F>,
) -> Vec<(String, ArrayViewD<'a, F>)> {
    [("W", layer.w.view().into_dyn()), ("_v", st.v.view().into_dyn())]
        .into_iter()
        .chain([("_spikes", st.z.view().into_dyn()), ("_trace", st.trace.view().into_dyn())])
        .map(|(k, a)| (format!("{prefix}{k}"), a))
        .collect()
}

/// One named array (`W`, `_v`, `_spikes`, `_trace`) of layer `i` of a stack, copied.
pub fn layer_array<F: Real>(t: &Trainer<SeedOnline<F>>, i: usize, name: &str) -> Option<ndarray::ArrayD<f64>> {
    layer_arrays("", &t.model.layers[i], &t.seq.states[i])
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, a)| a.mapv(F::f64))
}

/// Replaces the weights `W` of layer `i` of a stack (same shape, finite).
pub fn layer_set_array<F: Real>(t: &mut Trainer<SeedOnline<F>>, i: usize, name: &str, a: ArrayD<f64>) -> Result<()> {
    match name {
        "W" => check::replace(name, &mut t.model.layers[i].w, a),
        _ => Err(not_settable(name, &["W"])),
    }
}

/// Reads and checks one layer of sizes `(n_inputs, n_neurons)` under `prefix`.
fn load_layer<F: Real>(
    d: &StateDict,
    what: &str,
    prefix: &str,
    (ni, nr): (usize, usize),
) -> Result<(SeedLayer<F>, SeedLayerState<F>)> {
    let key = |k: &str| format!("{prefix}{k}");
    let cfg = SeedLayerConfig::new(
        what,
        (ni as i64, nr as i64),
        d.float(&key("tau_mem"))?,
        d.float(&key("threshold"))?,
        d.float(&key("lr"))?,
        d.float(&key("dt"))?,
    )
    .map_err(|e| EpropError::param(&format!("state_dict['{prefix}...']"), "valid layer hyperparameters", e))?;
    cfg.check_dtype(F::DTYPE)?;
    let mut st = SeedLayerState::zeros(&cfg);
    st.v = d.vector(&key("_v"), nr)?;
    st.z = d.vector(&key("_spikes"), nr)?;
    st.trace = d.matrix(&key("_trace"), nr, ni)?;
    let w = d.matrix(&key("W"), nr, ni)?;
    Ok((SeedLayer { cfg, w }, st))
}

/// The state of layer `i` of a stack as a standalone `OnlineLIFLayer`'s
/// (what `OnlineLIFLayer.state_dict()` returns, for a layer of its own or a
/// view of a trainer's layer).
pub fn layer_state<F: Real>(t: &Trainer<SeedOnline<F>>, i: usize) -> StateDict {
    let mut d = layer_config(t, i);
    d.put_arrays(layer_arrays("", &t.model.layers[i], &t.seq.states[i]));
    d
}

/// The constructor arguments of layer `i` as an `OnlineLIFLayer` (a layer of
/// a stack reports its stack's seed).
pub fn layer_config<F: Real>(t: &Trainer<SeedOnline<F>>, i: usize) -> StateDict {
    let layer = &t.model.layers[i];
    let mut d = StateDict::new(LAYER_CLASS, 1);
    d.put_int("n_inputs", layer.cfg.n_inputs as i64);
    d.put_int("n_neurons", layer.cfg.n_neurons as i64);
    d.put_int("seed", t.model.cfg.seed as i64);
    d.put_text("dtype", F::DTYPE.name());
    put_layer_floats(&mut d, "", layer);
    d
}

/// Replaces layer `i`'s hyperparameters, weights and state by those of an
/// `OnlineLIFLayer` state (sizes must match; checked first).
pub fn load_layer_state<F: Real>(t: &mut Trainer<SeedOnline<F>>, i: usize, d: &StateDict) -> Result<()> {
    d.check_header(LAYER_CLASS, 1)?;
    Dtype::check_state(d, F::DTYPE)?;
    let dims = (t.model.layers[i].cfg.n_inputs, t.model.layers[i].cfg.n_neurons);
    d.check_size("n_inputs", dims.0)?;
    d.check_size("n_neurons", dims.1)?;
    d.check_known_keys(&layer_state(t, i))?;
    let (layer, state) = load_layer(d, LAYER_CLASS, "", dims)?;
    t.model.layers[i] = layer;
    t.seq.states[i] = state;
    Ok(())
}

/// The constructor arguments stored in an `OnlineLIFLayer` state.
pub fn layer_config_of_state(d: &StateDict) -> Result<StateDict> {
    d.check_header(LAYER_CLASS, 1)?;
    let mut out = d.subset(&["n_inputs", "n_neurons", "seed"], &["tau_mem", "threshold", "lr", "dt"], &[])?;
    out.put_text("dtype", Dtype::of_state(d)?.name());
    Ok(out)
}

/// The Python class name of a standalone layer's state.
pub const LAYER_CLASS: &str = "OnlineLIFLayer";

/// Hyperparameters of the stack.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedOnlineConfig {
    pub layer_sizes: Vec<usize>,
    pub tau_mem: f64,
    pub threshold: f64,
    pub lr: f64,
    pub seed: u32,
    /// Float type of weights, state and arithmetic.
    pub dtype: Dtype,
}

impl SeedOnlineConfig {
    pub fn new(layer_sizes: &[i64], tau_mem: f64, threshold: f64, lr: f64, seed: i128) -> Result<Self> {
        if layer_sizes.len() < 2 {
            return Err(EpropError::param(
                "layer_sizes",
                "at least 2 sizes [n_input, ..., n_output]",
                format!("{} size(s)", layer_sizes.len()),
            ));
        }
        let sizes = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| check::size(&format!("layer_sizes[{i}]"), n))
            .collect::<Result<Vec<_>>>()?;
        let cfg = SeedOnlineConfig {
            layer_sizes: sizes,
            tau_mem: check::positive("tau_mem", tau_mem)?,
            threshold: check::positive("threshold", threshold)?,
            lr: check::non_negative("lr", lr)?,
            seed: check::seed(seed)?,
            dtype: Dtype::F64,
        };
        let what = format!("OnlineTrainer(layer_sizes={:?})", cfg.layer_sizes);
        let mut total = 0usize;
        for layer in cfg.layer_configs() {
            total = check::count_f64(&what, &[(1, total), (1, layer.n_f64(&what)?)])?;
        }
        check::alloc(&what, total)?;
        Ok(cfg)
    }

    /// This configuration in float type `dtype` (its hyperparameters checked
    /// for that type's range).
    pub fn with_dtype(mut self, dtype: Dtype) -> Result<Self> {
        dtype.check_hypers(&[("threshold", self.threshold), ("lr", self.lr)])?;
        self.dtype = dtype;
        Ok(self)
    }

    pub fn n_inputs(&self) -> usize {
        self.layer_sizes[0]
    }

    pub fn n_outputs(&self) -> usize {
        *self.layer_sizes.last().expect("at least two sizes")
    }

    /// Layer configs; every layer has dt = 1 ms, as the seed builds them.
    pub fn layer_configs(&self) -> Vec<SeedLayerConfig> {
        self.layer_sizes
            .windows(2)
            .map(|p| SeedLayerConfig {
                n_inputs: p[0],
                n_neurons: p[1],
                tau_mem: self.tau_mem,
                threshold: self.threshold,
                lr: self.lr,
                dt: 1.0,
            })
            .collect()
    }
}

/// The stack's layers (weights and hyperparameters).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedOnline<F: Real = f64> {
    pub cfg: SeedOnlineConfig,
    pub layers: Vec<SeedLayer<F>>,
}

/// One sequence on the stack: each layer's state and the step's buffers.
#[derive(Clone, Debug)]
pub struct SeedOnlineSeq<F: Real = f64> {
    pub states: Vec<SeedLayerState<F>>,
    x: Vec<F>,
    err: Vec<F>,
    /// Learning signal of each layer at the last step.
    signals: Vec<Vec<F>>,
    /// A row of weights (the fixed-weight update of a batch).
    row: Vec<F>,
}

impl<F: Real> SeedOnlineSeq<F> {
    fn bytes(&self) -> usize {
        self.states.iter().map(|s| s.bytes()).sum::<usize>()
            + F::BYTES
                * (self.x.capacity()
                    + self.err.capacity()
                    + self.row.capacity()
                    + self.signals.iter().map(|v| v.capacity()).sum::<usize>())
    }
}

impl<F: Real> SeedOnline<F> {
    /// Every layer draws its weights from a fresh `RandomState(seed)`, as the seed does.
    pub fn new(cfg: SeedOnlineConfig) -> Self {
        let layers = cfg.layer_configs().into_iter().map(|c| SeedLayer::new(c, cfg.seed)).collect();
        SeedOnline { cfg, layers }
    }

    /// A stack of one layer: what a standalone `OnlineLIFLayer` is.
    pub fn single(layer: SeedLayerConfig, seed: u32, dtype: Dtype) -> Self {
        let cfg = SeedOnlineConfig {
            layer_sizes: vec![layer.n_inputs, layer.n_neurons],
            tau_mem: layer.tau_mem,
            threshold: layer.threshold,
            lr: layer.lr,
            seed,
            dtype,
        };
        SeedOnline { cfg, layers: vec![SeedLayer::new(layer, seed)] }
    }

    /// The seed's `memory_per_step` (parameter count).
    pub fn memory_per_step(&self) -> usize {
        self.layers.iter().map(|l| 2 * l.cfg.n_neurons + l.cfg.n_neurons * l.cfg.n_inputs).sum()
    }

    /// Forward pass of one sequence's states through the stack.
    fn forward(&self, seq: &mut SeedOnlineSeq<F>, x: &[F]) {
        seq.x.copy_from_slice(x);
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, rest) = seq.states.split_at_mut(l);
            let input = below.last().map_or(&seq.x[..], |b| flat(&b.z));
            layer.forward(&mut rest[0], input);
        }
    }

    /// Error and loss of the top layer's spikes; the top signal is the error.
    fn top_error(&self, seq: &mut SeedOnlineSeq<F>, target: &[F]) -> f64 {
        let top = self.layers.len() - 1;
        let loss = error(Loss::Mse, flat(&seq.states[top].z), target, &mut seq.err);
        seq.signals[top].copy_from_slice(&seq.err);
        loss.f64()
    }
}

impl<F: Real> FixedWeights for SeedOnline<F> {
    type F = F;
    type Seq = SeedOnlineSeq<F>;

    type Acc = Vec<Vec<F>>;

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs()
    }

    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs()
    }

    fn new_seq(&self) -> SeedOnlineSeq<F> {
        let widest = self.cfg.layer_sizes.iter().copied().max().unwrap_or(1);
        SeedOnlineSeq {
            states: self.layers.iter().map(|l| SeedLayerState::zeros(&l.cfg)).collect(),
            x: vec![F::ZERO; self.cfg.n_inputs()],
            err: vec![F::ZERO; self.cfg.n_outputs()],
            signals: self.layers.iter().map(|l| vec![F::ZERO; l.cfg.n_neurons]).collect(),
            row: Vec::with_capacity(widest),
        }
    }

    fn seq_bytes(&self) -> usize {
        self.new_seq().bytes()
    }

    fn new_acc(&self) -> Vec<Vec<F>> {
        self.layers.iter().map(|l| vec![F::ZERO; l.w.len()]).collect()
    }

    fn acc_bytes(&self) -> usize {
        self.layers.iter().map(|l| F::BYTES * l.w.len()).sum()
    }

    fn fixed_step(&self, seq: &mut SeedOnlineSeq<F>, x: &[F], target: &[F], _learn: bool) -> f64 {
        self.forward(seq, x);
        let loss = self.top_error(seq, target);
        for l in (0..self.layers.len()).rev() {
            let (below, rest) = seq.states.split_at_mut(l);
            let input = below.last().map_or(&seq.x[..], |b| flat(&b.z));
            let (sig_below, sig_rest) = seq.signals.split_at_mut(l);
            let down = sig_below.last_mut().map(|d| &mut d[..]);
            self.layers[l].learn_fixed(&mut rest[0], input, &sig_rest[0], down, &mut seq.row);
        }
        loss
    }

    fn accumulate(&self, seq: &mut SeedOnlineSeq<F>, acc: &mut Vec<Vec<F>>) {
        for ((layer, st), (a, sig)) in self.layers.iter().zip(&seq.states).zip(acc.iter_mut().zip(&seq.signals)) {
            let (ni, lr) = (layer.cfg.n_inputs, F::of(layer.cfg.lr));
            add_scaled_rows(a, lr, sig, flat(&st.trace), ni, ni);
        }
    }

    fn predict(&self, seq: &mut SeedOnlineSeq<F>, x: &[F], out: &mut [F]) {
        self.forward(seq, x);
        out.copy_from_slice(flat(&seq.states[self.layers.len() - 1].z));
    }
}

impl<F: Real> Model for SeedOnline<F> {
    const STEP_MEAN: bool = true;

    fn step(&mut self, seq: &mut SeedOnlineSeq<F>, x: &[F], target: Option<&[F]>, _learn: bool) -> f64 {
        self.forward(seq, x);
        let Some(target) = target else {
            for (l, layer) in self.layers.iter().enumerate() {
                let (below, rest) = seq.states.split_at_mut(l);
                let input = below.last().map_or(&seq.x[..], |b| flat(&b.z));
                layer.update_trace(&mut rest[0], input);
            }
            return 0.0;
        };
        let loss = self.top_error(seq, target);
        for l in (0..self.layers.len()).rev() {
            let (below, rest) = seq.states.split_at_mut(l);
            let input = below.last().map_or(&seq.x[..], |b| flat(&b.z));
            let (sig_below, sig_rest) = seq.signals.split_at_mut(l);
            self.layers[l].learn(&mut rest[0], input, &sig_rest[0], sig_below.last_mut().map(|d| &mut d[..]));
        }
        loss
    }

    fn infer(&mut self, seq: &mut SeedOnlineSeq<F>, x: &[F]) {
        self.step(seq, x, None, false);
    }

    fn output<'s>(&self, seq: &'s SeedOnlineSeq<F>) -> &'s [F] {
        flat(&seq.states[self.layers.len() - 1].z)
    }

    fn reset(&mut self, seq: &mut SeedOnlineSeq<F>) {
        seq.states.iter_mut().for_each(SeedLayerState::reset);
    }

    fn apply_step_mean(&mut self, seqs: &[SeedOnlineSeq<F>]) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let ni = layer.cfg.n_inputs;
            let changes: Vec<Change<F>> =
                seqs.iter().map(|s| Change::scaled(&s.signals[l], flat(&s.states[l].trace), ni)).collect();
            batch_mean(flat_mut(&mut layer.w), ni, F::of(layer.cfg.lr), &changes, MeanInto::Subtract);
        }
    }

    fn apply_acc_mean(&mut self, seqs: &mut [SeedOnlineSeq<F>], accs: &mut [Vec<Vec<F>>]) {
        let changes: Vec<Vec<&[F]>> = seqs.iter().zip(accs.iter()).map(|(s, a)| self.change_parts(s, a)).collect();
        self.apply_mean_of(&changes);
        for acc in accs.iter_mut().flat_map(|a| a.iter_mut()) {
            acc.fill(F::ZERO);
        }
    }

    fn change_lens(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.w.len()).collect()
    }

    fn change_parts<'a>(&self, _seq: &'a SeedOnlineSeq<F>, acc: &'a Vec<Vec<F>>) -> Vec<&'a [F]> {
        acc.iter().map(|a| &a[..]).collect()
    }

    fn apply_mean_of(&mut self, changes: &[Vec<&[F]>]) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let ni = layer.cfg.n_inputs;
            let parts: Vec<Change<F>> = changes.iter().map(|c| Change::plain(c[l], ni)).collect();
            batch_mean(flat_mut(&mut layer.w), ni, F::ONE, &parts, MeanInto::Subtract);
        }
    }
}

/// The Python `OnlineTrainer`: the stack and its own sequence.
pub type SeedOnlineTrainer<F = f64> = Trainer<SeedOnline<F>>;

impl<F: Real> Described for Trainer<SeedOnline<F>> {
    type Config = SeedOnlineConfig;

    fn config_mut(&mut self) -> &mut SeedOnlineConfig {
        &mut self.model.cfg
    }

    /// The seed's `memory_per_step`: a parameter count, not bytes.
    fn memory_per_step(&self) -> usize {
        self.model.memory_per_step()
    }

    fn memory_bytes(&self) -> usize {
        self.model.layers.iter().map(|l| F::BYTES * l.w.len()).sum::<usize>() + self.seq.bytes()
    }
}

impl<F: Real> Trainer<SeedOnline<F>> {
    /// Layer `i`'s weights and own state.
    pub fn layer_mut(&mut self, i: usize) -> (&mut SeedLayer<F>, &mut SeedLayerState<F>) {
        (&mut self.model.layers[i], &mut self.seq.states[i])
    }
}

impl<F: Real> Stateful for Trainer<SeedOnline<F>> {
    type F = F;
    const CLASS: &'static str = "OnlineTrainer";
    const VERSION: i64 = 1;

    fn config(&self) -> StateDict {
        let c = &self.model.cfg;
        let mut d = StateDict::new(Self::CLASS, Self::VERSION);
        d.put("layer_sizes", Value::Ints(c.layer_sizes.iter().map(|&n| n as i64).collect()));
        d.put_float("tau_mem", c.tau_mem);
        d.put_float("threshold", c.threshold);
        d.put_float("lr", c.lr);
        d.put_int("seed", c.seed as i64);
        d.put_text("dtype", F::DTYPE.name());
        for (i, l) in self.model.layers.iter().enumerate() {
            put_layer_floats(&mut d, &format!("layers.{i}."), l);
        }
        d
    }

    fn arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let layers = self.model.layers.iter().zip(&self.seq.states).enumerate();
        layers.flat_map(|(i, (l, st))| layer_arrays(&format!("layers.{i}."), l, st)).collect()
    }

    fn config_of_state(d: &StateDict) -> Result<StateDict> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        let mut out = d.subset(&[], &[], &[])?;
        out.put("layer_sizes", Value::Ints(d.ints("layer_sizes")?));
        for (k, v) in d.subset(&[], &["tau_mem", "threshold", "lr"], &[])?.entries() {
            out.put(k, v.clone());
        }
        out.put_int("seed", d.int("seed")?);
        out.put_text("dtype", Dtype::of_state(d)?.name());
        Ok(out)
    }

    /// Weights are set per layer (`layer_set_array`).
    fn set_array(&mut self, name: &str, _a: ArrayD<f64>) -> Result<()> {
        Err(not_settable(name, &[]))
    }

    /// Every layer's hyperparameters, weights and state (layer sizes must match).
    fn load_state(&mut self, d: &StateDict) -> Result<()> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        Dtype::check_state(d, F::DTYPE)?;
        let sizes = d.ints("layer_sizes")?;
        let ours: Vec<i64> = self.model.cfg.layer_sizes.iter().map(|&n| n as i64).collect();
        if sizes != ours {
            return Err(EpropError::param(
                "state_dict['layer_sizes']",
                format!("{ours:?} (this trainer's sizes)"),
                format!("{sizes:?}"),
            ));
        }
        d.check_known_keys(&self.state())?;
        let mut layers = Vec::new();
        let mut states = Vec::new();
        for (i, p) in self.model.cfg.layer_sizes.windows(2).enumerate() {
            let (l, st) = load_layer(d, Self::CLASS, &format!("layers.{i}."), (p[0], p[1]))?;
            layers.push(l);
            states.push(st);
        }
        self.model.layers = layers;
        self.seq.states = states;
        Ok(())
    }
}
