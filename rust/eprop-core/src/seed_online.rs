//! The seed's feedforward online trainer: `OnlineLIFLayer` and `OnlineTrainer`,
//! reproduced number for number.
//!
//! A layer steps like the seed LIF (see `lif`) and keeps one trace per synapse,
//! `trace <- 0.95 trace + psi (x) x` (the decay 0.95 is fixed, whatever dt and
//! tau are). A learning signal s moves the weights as `W <- W - lr s (.) trace`.
//! The trainer stacks layers; with a target it takes err = z_out - y*,
//! loss = 0.5 |err|^2, and walks down the stack: layer l learns from s_l, then
//! s_{l-1} = W_l^T s_l with the weights just updated.

use ndarray::{Array1, Array2, ArrayView2};

use crate::batch::{apply_mean, BatchModel, Change};
use crate::error::{check_alloc, count_f64};
use crate::error::{
    check_finite, check_non_negative, check_positive, check_size, fmt_shape, EpropError, Result,
};
use crate::kernels::{flat, flat_mut, flush, matvec, nonzeros, simd_dispatch, trace_rows};
use crate::lif::{decay, seed_layer_update};
use crate::rng::LegacyRng;
use crate::seed_eprop::checked_matrix;
use crate::stream::Sequential;

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
    pub fn new(
        n_inputs: i64,
        n_neurons: i64,
        tau_mem: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
    ) -> Result<Self> {
        let cfg = SeedLayerConfig {
            n_inputs: check_size("n_inputs", n_inputs)?,
            n_neurons: check_size("n_neurons", n_neurons)?,
            tau_mem: check_positive("tau_mem", tau_mem)?,
            threshold: check_positive("threshold", threshold)?,
            lr: check_non_negative("lr", lr)?,
            dt: check_positive("dt", dt)?,
        };
        check_alloc("OnlineLIFLayer", cfg.n_f64("OnlineLIFLayer")?)?;
        Ok(cfg)
    }

    /// Float64 values held by one layer (weights, trace, vectors).
    pub fn n_f64(&self, what: &str) -> Result<usize> {
        let (ni, nr) = (self.n_inputs, self.n_neurons);
        count_f64(what, &[(nr, ni), (nr, ni), (5, nr), (1, ni)])
    }
}

/// Dynamic state of one layer for one sequence: `_v`, `_spikes`, `_trace`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedLayerState {
    pub v: Array1<f64>,
    pub z: Array1<f64>,
    pub trace: Array2<f64>,
    /// Pseudo-derivative of the last step (work buffer).
    pub psi: Vec<f64>,
    current: Vec<f64>,
    idx: Vec<usize>,
}

impl SeedLayerState {
    pub fn zeros(cfg: &SeedLayerConfig) -> Self {
        SeedLayerState {
            v: Array1::zeros(cfg.n_neurons),
            z: Array1::zeros(cfg.n_neurons),
            trace: Array2::zeros((cfg.n_neurons, cfg.n_inputs)),
            psi: vec![0.0; cfg.n_neurons],
            current: vec![0.0; cfg.n_neurons],
            idx: Vec::with_capacity(cfg.n_inputs),
        }
    }

    pub fn reset(&mut self) {
        self.v.fill(0.0);
        self.z.fill(0.0);
        self.trace.fill(0.0);
    }

    pub fn bytes(&self) -> usize {
        8 * (self.v.len()
            + self.z.len()
            + self.trace.len()
            + self.psi.capacity()
            + self.current.capacity())
            + std::mem::size_of::<usize>() * self.idx.capacity()
    }
}

/// One LIF layer: hyperparameters, weights `W` (n_neurons, n_inputs) and state.
#[derive(Clone, Debug)]
pub struct SeedLayer {
    pub cfg: SeedLayerConfig,
    pub w: Array2<f64>,
    pub state: SeedLayerState,
}

impl SeedLayer {
    /// Weights `RandomState(seed).randn(n_neurons, n_inputs) * sqrt(2 / n_inputs)`.
    pub fn new(cfg: SeedLayerConfig, seed: u32) -> Self {
        let mut rng = LegacyRng::new(seed);
        let w = rng.normal_matrix(
            cfg.n_neurons,
            cfg.n_inputs,
            (2.0 / cfg.n_inputs as f64).sqrt(),
        );
        let state = SeedLayerState::zeros(&cfg);
        SeedLayer { cfg, w, state }
    }

    pub fn set_w(&mut self, m: ArrayView2<f64>) -> Result<()> {
        self.w = checked_matrix("W", m, self.cfg.n_neurons, self.cfg.n_inputs)?;
        Ok(())
    }

    pub fn check_input(&self, arg: &str, x: &[f64]) -> Result<()> {
        check_vector(arg, x, self.cfg.n_inputs)
    }

    /// Membrane, spikes and pseudo-derivative for input `x`; the trace is not touched.
    pub fn forward(&mut self, x: &[f64]) {
        forward_state(&self.cfg, &self.w, &mut self.state, x);
    }

    /// Trace update for the input `x` of the step just taken.
    pub fn update_trace(&mut self, x: &[f64]) {
        update_trace_state(&self.cfg, &mut self.state, x);
    }

    /// The seed's `step`: forward, then trace. Spikes are in `state.z`.
    pub fn step(&mut self, x: &[f64]) {
        self.forward(x);
        self.update_trace(x);
    }

    /// The seed's `apply_learning_signal`: `W <- W - lr signal (.) trace`.
    pub fn apply_learning_signal(&mut self, signal: &[f64]) {
        let (ni, lr) = (self.cfg.n_inputs, self.cfg.lr);
        let tr = flat(&self.state.trace);
        for ((w, t), &s) in flat_mut(&mut self.w)
            .chunks_exact_mut(ni)
            .zip(tr.chunks_exact(ni))
            .zip(signal)
        {
            for (wi, &ti) in w.iter_mut().zip(t) {
                *wi -= lr * (s * ti);
            }
        }
    }
}

/// Forward step of a layer's state on weights `w` (shared with batch code).
pub fn forward_state(cfg: &SeedLayerConfig, w: &Array2<f64>, st: &mut SeedLayerState, x: &[f64]) {
    let sparse = nonzeros(x, &mut st.idx);
    matvec(flat(w), x, &st.idx, sparse, &mut st.current);
    seed_layer_update(
        flat_mut(&mut st.v),
        &st.current,
        flat_mut(&mut st.z),
        &mut st.psi,
        decay(cfg.dt, cfg.tau_mem),
        cfg.threshold,
    );
}

/// Trace update of a layer's state for input `x` (shared with batch code).
pub fn update_trace_state(cfg: &SeedLayerConfig, st: &mut SeedLayerState, x: &[f64]) {
    debug_assert_eq!(x.len(), cfg.n_inputs);
    trace_rows(flat_mut(&mut st.trace), x, &st.psi, LAYER_TRACE_DECAY);
}

/// Checks a vector argument's length and finiteness.
pub fn check_vector(arg: &str, x: &[f64], n: usize) -> Result<()> {
    if x.len() != n {
        return Err(EpropError::shape(
            arg,
            fmt_shape(&[n]),
            fmt_shape(&[x.len()]),
        ));
    }
    check_finite(arg, x, &[n])
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn learn_rows_imp(
    w: &mut [f64],
    tr: &mut [f64],
    x: &[f64],
    psi: &[f64],
    signal: &[f64],
    lr: f64,
    down: &mut [f64],
    project: bool,
) {
    let ni = x.len().max(1);
    down.fill(0.0);
    let rows = w.chunks_exact_mut(ni).zip(tr.chunks_exact_mut(ni));
    for ((wr, tr), (&p, &s)) in rows.zip(psi.iter().zip(signal)) {
        if project {
            for (((wi, ti), &xi), di) in
                wr.iter_mut().zip(tr.iter_mut()).zip(x).zip(down.iter_mut())
            {
                let tn = flush(LAYER_TRACE_DECAY * *ti + p * xi);
                let wn = *wi - lr * (s * tn);
                *ti = tn;
                *wi = wn;
                *di += wn * s;
            }
        } else {
            for ((wi, ti), &xi) in wr.iter_mut().zip(tr.iter_mut()).zip(x) {
                let tn = flush(LAYER_TRACE_DECAY * *ti + p * xi);
                *ti = tn;
                *wi -= lr * (s * tn);
            }
        }
    }
}

simd_dispatch! {
    /// One learning step of a layer in one pass: `tr <- 0.95 tr + psi (x) x`,
    /// `W <- W - lr s (.) tr` and, when `project`, `down <- W^T s` (new W).
    pub fn learn_rows / learn_rows_avx2(
        w: &mut [f64],
        tr: &mut [f64],
        x: &[f64],
        psi: &[f64],
        signal: &[f64],
        lr: f64,
        down: &mut [f64],
        project: bool,
    ) => learn_rows_imp
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn learn_rows_state_imp(
    w: &[f64],
    tr: &mut [f64],
    x: &[f64],
    psi: &[f64],
    signal: &[f64],
    lr: f64,
    down: &mut [f64],
    project: bool,
) {
    let ni = x.len().max(1);
    down.fill(0.0);
    let rows = w.chunks_exact(ni).zip(tr.chunks_exact_mut(ni));
    for ((wr, tr), (&p, &s)) in rows.zip(psi.iter().zip(signal)) {
        if project {
            for (((&wi, ti), &xi), di) in wr.iter().zip(tr.iter_mut()).zip(x).zip(down.iter_mut()) {
                let tn = flush(LAYER_TRACE_DECAY * *ti + p * xi);
                *ti = tn;
                *di += (wi - lr * (s * tn)) * s;
            }
        } else {
            for (ti, &xi) in tr.iter_mut().zip(x) {
                *ti = flush(LAYER_TRACE_DECAY * *ti + p * xi);
            }
        }
    }
}

simd_dispatch! {
    /// [`learn_rows`] on read-only weights (batch phase A): the trace advances
    /// and `down` receives what `learn_rows` would project.
    pub fn learn_rows_state / learn_rows_state_avx2(
        w: &[f64],
        tr: &mut [f64],
        x: &[f64],
        psi: &[f64],
        signal: &[f64],
        lr: f64,
        down: &mut [f64],
        project: bool,
    ) => learn_rows_state_imp
}

/// Trace update, weight change and down-projection of a layer in one pass
/// (see [`learn_rows`]); `down` is skipped when `None` (bottom layer).
pub fn learn_layer(
    cfg: &SeedLayerConfig,
    w: &mut Array2<f64>,
    st: &mut SeedLayerState,
    x: &[f64],
    signal: &[f64],
    down: Option<&mut [f64]>,
) {
    let project = down.is_some();
    let down = down.unwrap_or(&mut []);
    learn_rows(
        flat_mut(w),
        flat_mut(&mut st.trace),
        x,
        &st.psi,
        signal,
        cfg.lr,
        down,
        project,
    );
}

/// The same step on read-only weights (see [`learn_rows_state`]).
pub fn learn_layer_state(
    cfg: &SeedLayerConfig,
    w: &Array2<f64>,
    st: &mut SeedLayerState,
    x: &[f64],
    signal: &[f64],
    down: Option<&mut [f64]>,
) {
    let project = down.is_some();
    let down = down.unwrap_or(&mut []);
    let wd = flat(w);
    learn_rows_state(
        wd,
        flat_mut(&mut st.trace),
        x,
        &st.psi,
        signal,
        cfg.lr,
        down,
        project,
    );
}

/// Hyperparameters of the stack.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedOnlineConfig {
    pub layer_sizes: Vec<usize>,
    pub tau_mem: f64,
    pub threshold: f64,
    pub lr: f64,
}

impl SeedOnlineConfig {
    pub fn new(layer_sizes: &[i64], tau_mem: f64, threshold: f64, lr: f64) -> Result<Self> {
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
            .map(|(i, &n)| check_size(&format!("layer_sizes[{i}]"), n))
            .collect::<Result<Vec<_>>>()?;
        let cfg = SeedOnlineConfig {
            layer_sizes: sizes,
            tau_mem: check_positive("tau_mem", tau_mem)?,
            threshold: check_positive("threshold", threshold)?,
            lr: check_non_negative("lr", lr)?,
        };
        let mut total = 0usize;
        for layer in cfg.layer_configs() {
            total = count_f64(
                "OnlineTrainer",
                &[(1, total), (1, layer.n_f64("OnlineTrainer")?)],
            )?;
        }
        check_alloc("OnlineTrainer", total)?;
        Ok(cfg)
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

/// Work buffers of the stack (no meaning between steps).
#[derive(Clone, Debug)]
pub struct SeedOnlineScratch {
    x: Vec<f64>,
    pub err: Vec<f64>,
    signal: Vec<f64>,
    down: Vec<f64>,
}

impl SeedOnlineScratch {
    pub fn new(cfg: &SeedOnlineConfig) -> Self {
        let widest = cfg.layer_sizes.iter().copied().max().unwrap_or(1);
        SeedOnlineScratch {
            x: vec![0.0; cfg.n_inputs()],
            err: vec![0.0; cfg.n_outputs()],
            signal: Vec::with_capacity(widest),
            down: Vec::with_capacity(widest),
        }
    }

    pub fn bytes(&self) -> usize {
        8 * (self.x.capacity()
            + self.err.capacity()
            + self.signal.capacity()
            + self.down.capacity())
    }
}

/// The stacked trainer (`OnlineTrainer`).
#[derive(Clone, Debug)]
pub struct SeedOnline {
    pub cfg: SeedOnlineConfig,
    pub layers: Vec<SeedLayer>,
    pub scratch: SeedOnlineScratch,
}

impl SeedOnline {
    /// Every layer draws its weights from a fresh `RandomState(seed)`, as the seed does.
    pub fn new(cfg: SeedOnlineConfig, seed: u32) -> Self {
        let layers = cfg
            .layer_configs()
            .into_iter()
            .map(|c| SeedLayer::new(c, seed))
            .collect();
        let scratch = SeedOnlineScratch::new(&cfg);
        SeedOnline {
            cfg,
            layers,
            scratch,
        }
    }

    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.state.reset();
        }
    }

    /// The seed's `memory_per_step` (parameter count).
    pub fn memory_per_step(&self) -> usize {
        self.layers
            .iter()
            .map(|l| 2 * l.cfg.n_neurons + l.cfg.n_neurons * l.cfg.n_inputs)
            .sum()
    }

    /// Bytes of all per-trainer state (weights, layer states, buffers).
    pub fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| 8 * l.w.len() + l.state.bytes())
            .sum::<usize>()
            + self.scratch.bytes()
    }

    pub fn check_step(&self, x: &[f64], target: Option<&[f64]>) -> Result<()> {
        check_vector("x", x, self.cfg.n_inputs())?;
        if let Some(t) = target {
            check_vector("target", t, self.cfg.n_outputs())?;
        }
        Ok(())
    }

    /// Output (spikes of the last layer) of the last step.
    pub fn output(&self) -> &[f64] {
        let last = self.layers.len() - 1;
        flat(&self.layers[last].state.z)
    }

    /// One step of the stack; returns the loss when a target is given.
    pub fn step(&mut self, x: &[f64], target: Option<&[f64]>) -> Option<f64> {
        let sc = &mut self.scratch;
        sc.x.copy_from_slice(x);
        for l in 0..self.layers.len() {
            let (below, rest) = self.layers.split_at_mut(l);
            let input = match below.last() {
                Some(b) => flat(&b.state.z),
                None => &sc.x,
            };
            rest[0].forward(input);
        }
        let Some(target) = target else {
            for l in 0..self.layers.len() {
                let (below, rest) = self.layers.split_at_mut(l);
                let input = match below.last() {
                    Some(b) => flat(&b.state.z),
                    None => &sc.x,
                };
                rest[0].update_trace(input);
            }
            return None;
        };
        let mut loss = 0.0;
        let out_z = &self.layers[self.layers.len() - 1].state.z;
        for ((e, &y), &t) in sc.err.iter_mut().zip(out_z.iter()).zip(target) {
            *e = y - t;
            loss += *e * *e;
        }
        sc.signal.clear();
        sc.signal.extend_from_slice(&sc.err);
        for l in (0..self.layers.len()).rev() {
            let (below, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let input = match below.last() {
                Some(b) => flat(&b.state.z),
                None => &sc.x,
            };
            let down = if l > 0 {
                sc.down.resize(layer.cfg.n_inputs, 0.0);
                Some(&mut sc.down[..])
            } else {
                None
            };
            learn_layer(
                &layer.cfg,
                &mut layer.w,
                &mut layer.state,
                input,
                &sc.signal,
                down,
            );
            if l > 0 {
                std::mem::swap(&mut sc.signal, &mut sc.down);
            }
        }
        Some(0.5 * loss)
    }
}

impl Sequential for SeedOnline {
    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs()
    }

    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs()
    }

    fn reset_state(&mut self) {
        self.reset();
    }

    fn learn_step(&mut self, x: &[f64], target: &[f64], _learn: bool) -> f64 {
        self.step(x, Some(target)).unwrap_or(0.0)
    }

    fn infer_step(&mut self, x: &[f64]) -> &[f64] {
        self.step(x, None);
        self.output()
    }
}

/// One sequence of a batch on a [`SeedOnline`] stack.
#[derive(Clone, Debug)]
pub struct SeedOnlineSeq {
    states: Vec<SeedLayerState>,
    x: Vec<f64>,
    err: Vec<f64>,
    /// Learning signal of each layer at the last step.
    signals: Vec<Vec<f64>>,
}

impl SeedOnlineSeq {
    fn bytes(&self) -> usize {
        self.states.iter().map(|s| s.bytes()).sum::<usize>()
            + 8 * (self.x.capacity()
                + self.err.capacity()
                + self.signals.iter().map(|v| v.capacity()).sum::<usize>())
    }
}

impl SeedOnline {
    /// Forward pass of one sequence's states through the stack.
    fn forward_seq(&self, seq: &mut SeedOnlineSeq, x: &[f64]) {
        seq.x.copy_from_slice(x);
        for (l, layer) in self.layers.iter().enumerate() {
            let (below, rest) = seq.states.split_at_mut(l);
            let input = match below.last() {
                Some(b) => flat(&b.z),
                None => &seq.x,
            };
            forward_state(&layer.cfg, &layer.w, &mut rest[0], input);
        }
    }
}

impl BatchModel for SeedOnline {
    type Seq = SeedOnlineSeq;
    type Acc = Vec<Vec<f64>>;
    const STEP_MEAN: bool = true;

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs()
    }

    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs()
    }

    fn new_seq(&self) -> SeedOnlineSeq {
        SeedOnlineSeq {
            states: self
                .layers
                .iter()
                .map(|l| SeedLayerState::zeros(&l.cfg))
                .collect(),
            x: vec![0.0; self.cfg.n_inputs()],
            err: vec![0.0; self.cfg.n_outputs()],
            signals: self
                .layers
                .iter()
                .map(|l| vec![0.0; l.cfg.n_neurons])
                .collect(),
        }
    }

    fn seq_bytes(&self) -> usize {
        self.new_seq().bytes()
    }

    fn new_acc(&self) -> Vec<Vec<f64>> {
        self.layers.iter().map(|l| vec![0.0; l.w.len()]).collect()
    }

    fn acc_bytes(&self) -> usize {
        self.layers.iter().map(|l| 8 * l.w.len()).sum()
    }

    fn seq_step(&self, seq: &mut SeedOnlineSeq, x: &[f64], target: &[f64], _learn: bool) -> f64 {
        self.forward_seq(seq, x);
        let top = self.layers.len() - 1;
        let mut loss = 0.0;
        for ((e, &y), &t) in seq.err.iter_mut().zip(seq.states[top].z.iter()).zip(target) {
            *e = y - t;
            loss += *e * *e;
        }
        seq.signals[top].copy_from_slice(&seq.err);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (below, rest) = seq.states.split_at_mut(l);
            let input = match below.last() {
                Some(b) => flat(&b.z),
                None => &seq.x,
            };
            let (sig_below, sig_rest) = seq.signals.split_at_mut(l);
            let down = sig_below.last_mut().map(|d| &mut d[..]);
            learn_layer_state(
                &layer.cfg,
                &layer.w,
                &mut rest[0],
                input,
                &sig_rest[0],
                down,
            );
        }
        0.5 * loss
    }

    fn accumulate(&self, seq: &mut SeedOnlineSeq, acc: &mut Vec<Vec<f64>>) {
        for ((layer, st), (a, sig)) in self
            .layers
            .iter()
            .zip(&seq.states)
            .zip(acc.iter_mut().zip(&seq.signals))
        {
            let (ni, lr) = (layer.cfg.n_inputs, layer.cfg.lr);
            let tr = flat(&st.trace);
            for ((ar, tr), &s) in a.chunks_exact_mut(ni).zip(tr.chunks_exact(ni)).zip(sig) {
                for (ai, &ti) in ar.iter_mut().zip(tr) {
                    *ai += lr * (s * ti);
                }
            }
        }
    }

    fn apply_step_mean(&mut self, seqs: &[SeedOnlineSeq]) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let ni = layer.cfg.n_inputs;
            let changes: Vec<Change> = seqs
                .iter()
                .map(|s| Change::scaled(&s.signals[l], flat(&s.states[l].trace), ni))
                .collect();
            apply_mean(&mut layer.w, layer.cfg.lr, &changes);
        }
    }

    fn apply_acc_mean(&mut self, _seqs: &mut [SeedOnlineSeq], accs: &mut [Vec<Vec<f64>>]) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let ni = layer.cfg.n_inputs;
            let changes: Vec<Change> = accs
                .iter()
                .map(|a| Change {
                    scale: None,
                    m: &a[l],
                    row_stride: ni,
                })
                .collect();
            apply_mean(&mut layer.w, 1.0, &changes);
        }
        for acc in accs.iter_mut().flat_map(|a| a.iter_mut()) {
            acc.fill(0.0);
        }
    }

    fn predict_step(&self, seq: &mut SeedOnlineSeq, x: &[f64], out: &mut [f64]) {
        self.forward_seq(seq, x);
        out.copy_from_slice(flat(&seq.states[self.layers.len() - 1].z));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{avx2, same, values, SHAPES};

    #[test]
    fn learn_rows_against_a_plain_loop() {
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
                        let t = flush(LAYER_TRACE_DECAY * tr_w[j * cols + i] + psi[j] * x[i]);
                        tr_w[j * cols + i] = t;
                        let wn = w_w[j * cols + i] - lr * (signal[j] * t);
                        w_w[j * cols + i] = wn;
                        if project {
                            down_w[i] += wn * signal[j];
                            down_state_w[i] +=
                                (w0[j * cols + i] - lr * (signal[j] * t)) * signal[j];
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
                    if use_avx {
                        // SAFETY: avx2() checked the CPU.
                        unsafe {
                            learn_rows_avx2(
                                &mut w, &mut tr, &x, &psi, &signal, lr, &mut down, project,
                            );
                            learn_rows_state_avx2(
                                &w0, &mut tr2, &x, &psi, &signal, lr, &mut down2, project,
                            );
                        }
                    } else {
                        learn_rows_imp(&mut w, &mut tr, &x, &psi, &signal, lr, &mut down, project);
                        learn_rows_state_imp(
                            &w0, &mut tr2, &x, &psi, &signal, lr, &mut down2, project,
                        );
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
