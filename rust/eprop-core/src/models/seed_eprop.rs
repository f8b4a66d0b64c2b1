//! The seed's single-layer recurrent e-prop trainer (`EpropTrainer`),
//! reproduced number for number. Per step, with alpha = exp(-dt/tau_mem) and
//! kappa = exp(-dt/tau_trace):
//!
//! ```text
//! I      = W_in x + W_rec z(t-1)                 LIF update: see `neuron`
//! trace  <- kappa trace + psi (x) pre            pre = x (input), z(t-1) (recurrent)
//! e      <- kappa e + trace                      (eligibility, filtered twice)
//! y      = W_out z(t)
//! with a target y*: err = y - y*, loss = 0.5 |err|^2, L = W_out^T err,
//!   W_in  <- W_in  - lr L (.) e_in               (row j scaled by L_j)
//!   W_rec <- W_rec - lr L (.) e_rec, diagonal kept at zero
//!   W_out <- W_out - lr err z(t)^T
//! ```
//!
//! Weights ([`SeedEpropNet`]) are separate from the per-sequence state
//! ([`SeedEpropSeq`]) so that a batch runs many sequences on one network.

use ndarray::{Array1, Array2, ArrayD, ArrayViewD};

use crate::check;
use crate::driver::{Described, FixedWeights, Model, Trainer};
use crate::error::Result;
use crate::event::{sparse_enough, Kernel, SeedLazy, SEED_AUTO_MAX_ACTIVITY};
use crate::kernels::{
    add_scaled_rows, batch_mean, flat, flat_mut, matvec, nonzeros, trace_elig_learn_rows, trace_elig_rows, Change,
    MeanInto,
};
use crate::neuron::{decay, seed_update, DecayCache};
use crate::optim::zero_diagonal;
use crate::readout::{error, transposed_signal, Loss};
use crate::real::{Dtype, Real};
use crate::rng::LegacyRng;
use crate::state::{named, not_settable, StateDict, Stateful};

/// Hyperparameters of [`SeedEpropNet`] (times in ms).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedEpropConfig {
    pub n_inputs: usize,
    pub n_neurons: usize,
    pub n_outputs: usize,
    pub tau_mem: f64,
    pub tau_trace: f64,
    pub threshold: f64,
    pub lr: f64,
    pub dt: f64,
    /// Seed of the initial weights (`RandomState(seed)`).
    pub seed: u32,
    /// Eligibility kernel for training calls (`Kernel::Dense` from [`Self::new`]).
    pub kernel: Kernel,
    /// Float type (`Dtype::F64` from [`Self::new`]).
    pub dtype: Dtype,
}

impl SeedEpropConfig {
    /// Validates sizes and hyperparameters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (n_inputs, n_neurons, n_outputs): (i64, i64, i64),
        tau_mem: f64,
        tau_trace: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
        seed: i128,
    ) -> Result<Self> {
        let cfg = SeedEpropConfig {
            n_inputs: check::size("n_inputs", n_inputs)?,
            n_neurons: check::size("n_neurons", n_neurons)?,
            n_outputs: check::size("n_outputs", n_outputs)?,
            tau_mem: check::positive("tau_mem", tau_mem)?,
            tau_trace: check::positive("tau_trace", tau_trace)?,
            threshold: check::positive("threshold", threshold)?,
            lr: check::non_negative("lr", lr)?,
            dt: check::positive("dt", dt)?,
            seed: check::seed(seed)?,
            kernel: Kernel::Dense,
            dtype: Dtype::F64,
        };
        let (ni, nr, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        // weights, one sequence state, step buffers
        let what = format!("EpropTrainer(n_inputs={ni}, n_neurons={nr}, n_outputs={no})");
        let n = check::count_f64(
            &what,
            &[(nr, ni), (nr, ni), (nr, ni), (nr, nr), (nr, nr), (nr, nr), (no, nr), (10, nr), (3, no)],
        )?;
        check::alloc(&what, n)?;
        Ok(cfg)
    }

    /// This configuration in float type `dtype` (its hyperparameters checked
    /// for that type's range).
    pub fn with_dtype(mut self, dtype: Dtype) -> Result<Self> {
        dtype.check_hypers(&[("threshold", self.threshold), ("lr", self.lr)])?;
        self.dtype = dtype;
        Ok(self)
    }

    pub fn alpha(&self) -> f64 {
        decay(self.dt, self.tau_mem)
    }

    pub fn kappa(&self) -> f64 {
        decay(self.dt, self.tau_trace)
    }
}

/// Dynamic state of one sequence, the seed's `_v`, `_spikes`, `_trace_in`,
/// `_trace_rec`, `_eligibility_in`, `_eligibility_rec`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedEpropState<F: Real = f64> {
    pub v: Array1<F>,
    pub z: Array1<F>,
    pub trace_in: Array2<F>,
    pub trace_rec: Array2<F>,
    pub elig_in: Array2<F>,
    pub elig_rec: Array2<F>,
}

/// Work buffers of one step (no meaning between steps).
#[derive(Clone, Debug)]
pub struct SeedEpropScratch<F: Real = f64> {
    current: Vec<F>,
    rec_current: Vec<F>,
    z_new: Vec<F>,
    psi: Vec<F>,
    output: Vec<F>,
    err: Vec<F>,
    signal: Vec<F>,
    idx_in: Vec<usize>,
    idx_rec: Vec<usize>,
    idx_out: Vec<usize>,
    /// alpha (membrane) and kappa (traces), as last computed.
    decays: DecayCache<2>,
}

/// One sequence in flight: its state and its step buffers.
#[derive(Clone, Debug)]
pub struct SeedEpropSeq<F: Real = f64> {
    pub state: SeedEpropState<F>,
    scratch: SeedEpropScratch<F>,
}

impl<F: Real> SeedEpropSeq<F> {
    pub fn new(cfg: &SeedEpropConfig) -> Self {
        let (ni, nr, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        SeedEpropSeq {
            state: SeedEpropState {
                v: Array1::zeros(nr),
                z: Array1::zeros(nr),
                trace_in: Array2::zeros((nr, ni)),
                trace_rec: Array2::zeros((nr, nr)),
                elig_in: Array2::zeros((nr, ni)),
                elig_rec: Array2::zeros((nr, nr)),
            },
            scratch: SeedEpropScratch {
                current: vec![F::ZERO; nr],
                rec_current: vec![F::ZERO; nr],
                z_new: vec![F::ZERO; nr],
                psi: vec![F::ZERO; nr],
                output: vec![F::ZERO; no],
                err: vec![F::ZERO; no],
                signal: vec![F::ZERO; nr],
                idx_in: Vec::with_capacity(ni),
                idx_rec: Vec::with_capacity(nr),
                idx_out: Vec::with_capacity(nr),
                decays: DecayCache::default(),
            },
        }
    }

    /// Zeroes the state (the seed's `reset()`).
    pub fn reset(&mut self) {
        let s = &mut self.state;
        for a in [&mut s.v, &mut s.z] {
            a.fill(F::ZERO);
        }
        for a in [&mut s.trace_in, &mut s.trace_rec, &mut s.elig_in, &mut s.elig_rec] {
            a.fill(F::ZERO);
        }
    }

    pub fn bytes(&self) -> usize {
        let s = &self.state;
        let sc = &self.scratch;
        F::BYTES * (s.v.len() + s.z.len() + s.trace_in.len() + s.trace_rec.len() + s.elig_in.len() + s.elig_rec.len())
            + F::BYTES
                * (sc.current.capacity()
                    + sc.rec_current.capacity()
                    + sc.z_new.capacity()
                    + sc.psi.capacity()
                    + sc.output.capacity()
                    + sc.err.capacity()
                    + sc.signal.capacity())
            + std::mem::size_of::<usize>() * (sc.idx_in.capacity() + sc.idx_rec.capacity() + sc.idx_out.capacity())
    }
}

/// The weights of the seed e-prop network and its hyperparameters.
#[derive(Clone, Debug)]
pub struct SeedEpropNet<F: Real = f64> {
    pub cfg: SeedEpropConfig,
    pub w_in: Array2<F>,
    pub w_rec: Array2<F>,
    pub w_out: Array2<F>,
    /// The event-driven form, loaded only inside a training call of the
    /// trainer's own sequence (outside one, the arrays hold plain values).
    lazy: Option<Box<SeedLazy<F>>>,
}

impl<F: Real> SeedEpropNet<F> {
    /// Draws the weights as the seed does: one `RandomState(seed)` stream giving
    /// W_in, then W_rec (diagonal zeroed afterwards), then W_out, each
    /// `randn * sqrt(2 / fan_in)`.
    pub fn new(cfg: SeedEpropConfig) -> Self {
        let mut rng = LegacyRng::new(cfg.seed);
        let (ni, nr, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        // drawn in F (the same numbers for every dtype), then rounded
        let w_in = rng.normal_matrix(nr, ni, (2.0 / ni as f64).sqrt()).mapv(F::of);
        let mut w_rec = rng.normal_matrix(nr, nr, (2.0 / nr as f64).sqrt()).mapv(F::of);
        zero_diagonal(&mut w_rec);
        let w_out = rng.normal_matrix(no, nr, (2.0 / nr as f64).sqrt()).mapv(F::of);
        SeedEpropNet::from_parts(cfg, w_in, w_rec, w_out)
    }

    /// A network from its configuration and weights.
    pub fn from_parts(cfg: SeedEpropConfig, w_in: Array2<F>, w_rec: Array2<F>, w_out: Array2<F>) -> Self {
        SeedEpropNet { cfg, w_in, w_rec, w_out, lazy: None }
    }

    /// Whether a training call on `inputs` (T, n_inputs) runs event-driven.
    fn event_for(&self, inputs: ndarray::ArrayView2<f64>) -> bool {
        match self.cfg.kernel {
            Kernel::Dense => false,
            Kernel::Event => true,
            Kernel::Auto => sparse_enough(inputs, SEED_AUTO_MAX_ACTIVITY),
        }
    }

    /// One training step in the event-driven form (see [`SeedLazy`]).
    fn event_step(&mut self, seq: &mut SeedEpropSeq<F>, x: &[F], target: &[F]) -> f64 {
        let lz = self.lazy.as_mut().expect("loaded by begin_own_rows");
        {
            let (sc, st) = (&mut seq.scratch, &seq.state);
            lz.begin_step(x, flat(&st.z), &mut sc.current, &mut sc.rec_current);
        }
        self.neurons_and_output(seq);
        let loss = self.learning_signal(seq, target);
        let sc = &seq.scratch;
        self.lazy.as_mut().expect("loaded").end_step(&sc.psi, &sc.signal);
        add_scaled_rows(flat_mut(&mut self.w_out), -F::of(self.cfg.lr), &sc.err, &sc.z_new, self.cfg.n_neurons, 0);
        flat_mut(&mut seq.state.z).copy_from_slice(&sc.z_new);
        loss
    }

    /// Bytes of the weight matrices.
    pub fn weight_bytes(&self) -> usize {
        F::BYTES * (self.w_in.len() + self.w_rec.len() + self.w_out.len())
    }

    /// The seed's `memory_per_step`: a parameter count, not bytes.
    pub fn memory_per_step(&self) -> usize {
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        nr + nr + nr * ni * 2 + nr * nr * 2
    }

    /// Membrane, spikes, pseudo-derivatives and readout of one step; the
    /// traces are left for [`Self::traces`] or [`Self::traces_and_learn`].
    /// After it, the scratch holds z(t) and the state still z(t-1).
    fn forward(&self, seq: &mut SeedEpropSeq<F>, x: &[F]) {
        let sc = &mut seq.scratch;
        let st = &mut seq.state;
        let sparse_in = nonzeros(x, &mut sc.idx_in);
        let z_prev = flat(&st.z);
        let sparse_rec = nonzeros(z_prev, &mut sc.idx_rec);
        matvec(flat(&self.w_in), x, &sc.idx_in, sparse_in, &mut sc.current);
        matvec(flat(&self.w_rec), z_prev, &sc.idx_rec, sparse_rec, &mut sc.rec_current);
        self.neurons_and_output(seq);
    }

    /// alpha and kappa of the configuration (see [`DecayCache`]).
    fn decays(&self, sc: &mut SeedEpropScratch<F>) -> [f64; 2] {
        sc.decays.of(self.cfg.dt, [self.cfg.tau_mem, self.cfg.tau_trace])
    }

    /// From the input and recurrent currents in the scratch: membrane,
    /// spikes, pseudo-derivatives and readout.
    fn neurons_and_output(&self, seq: &mut SeedEpropSeq<F>) {
        let sc = &mut seq.scratch;
        let [alpha, _] = self.decays(sc);
        let st = &mut seq.state;
        for (c, r) in sc.current.iter_mut().zip(&sc.rec_current) {
            *c += *r;
        }
        seed_update(
            flat_mut(&mut st.v),
            &sc.current,
            &mut sc.z_new,
            &mut sc.psi,
            F::of(alpha),
            F::of(self.cfg.threshold),
        );
        let sparse_out = nonzeros(&sc.z_new, &mut sc.idx_out);
        matvec(flat(&self.w_out), &sc.z_new, &sc.idx_out, sparse_out, &mut sc.output);
    }

    /// Error, loss and learning signal `L = W_out^T err` of the current step.
    fn learning_signal(&self, seq: &mut SeedEpropSeq<F>, target: &[F]) -> f64 {
        let sc = &mut seq.scratch;
        let loss = error(Loss::Mse, &sc.output, target, &mut sc.err);
        transposed_signal(flat(&self.w_out), &sc.err, &mut sc.signal);
        loss.f64()
    }

    /// Trace and eligibility update without learning; commits z(t).
    fn traces(&self, seq: &mut SeedEpropSeq<F>, x: &[F]) {
        let kappa = F::of(self.decays(&mut seq.scratch)[1]);
        let st = &mut seq.state;
        let psi = &seq.scratch.psi;
        trace_elig_rows(flat_mut(&mut st.trace_in), flat_mut(&mut st.elig_in), x, psi, kappa);
        trace_elig_rows(flat_mut(&mut st.trace_rec), flat_mut(&mut st.elig_rec), flat(&st.z), psi, kappa);
        flat_mut(&mut st.z).copy_from_slice(&seq.scratch.z_new);
    }

    /// Trace, eligibility and weight update in one pass over each matrix; commits z(t).
    fn traces_and_learn(&mut self, seq: &mut SeedEpropSeq<F>, x: &[F]) {
        let (kappa, lr) = (F::of(self.decays(&mut seq.scratch)[1]), F::of(self.cfg.lr));
        let st = &mut seq.state;
        let sc = &seq.scratch;
        let (tr_in, el_in) = (flat_mut(&mut st.trace_in), flat_mut(&mut st.elig_in));
        trace_elig_learn_rows(flat_mut(&mut self.w_in), tr_in, el_in, x, &sc.psi, &sc.signal, kappa, lr);
        let (tr_rec, el_rec) = (flat_mut(&mut st.trace_rec), flat_mut(&mut st.elig_rec));
        let z_prev = flat(&st.z);
        trace_elig_learn_rows(flat_mut(&mut self.w_rec), tr_rec, el_rec, z_prev, &sc.psi, &sc.signal, kappa, lr);
        zero_diagonal(&mut self.w_rec);
        add_scaled_rows(flat_mut(&mut self.w_out), -lr, &sc.err, &sc.z_new, self.cfg.n_neurons, 0);
        flat_mut(&mut st.z).copy_from_slice(&sc.z_new);
    }
}

/// Networks are equal when their configurations and weights are (the
/// event-driven buffers hold nothing between calls).
impl<F: Real> PartialEq for SeedEpropNet<F> {
    fn eq(&self, o: &Self) -> bool {
        self.cfg == o.cfg && self.w_in == o.w_in && self.w_rec == o.w_rec && self.w_out == o.w_out
    }
}

/// Summed weight changes of one sequence (batch `update="sequence"`).
#[derive(Clone, Debug)]
pub struct SeedEpropAcc<F: Real = f64> {
    d_in: Vec<F>,
    d_rec: Vec<F>,
    d_out: Vec<F>,
}

impl<F: Real> FixedWeights for SeedEpropNet<F> {
    type F = F;
    type Seq = SeedEpropSeq<F>;

    type Acc = SeedEpropAcc<F>;

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs
    }

    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs
    }

    fn new_seq(&self) -> SeedEpropSeq<F> {
        SeedEpropSeq::new(&self.cfg)
    }

    fn seq_bytes(&self) -> usize {
        SeedEpropSeq::<F>::new(&self.cfg).bytes()
    }

    fn new_acc(&self) -> SeedEpropAcc<F> {
        SeedEpropAcc {
            d_in: vec![F::ZERO; self.w_in.len()],
            d_rec: vec![F::ZERO; self.w_rec.len()],
            d_out: vec![F::ZERO; self.w_out.len()],
        }
    }

    fn acc_bytes(&self) -> usize {
        self.weight_bytes()
    }

    fn fixed_step(&self, seq: &mut SeedEpropSeq<F>, x: &[F], target: &[F], _learn: bool) -> f64 {
        self.forward(seq, x);
        let loss = self.learning_signal(seq, target);
        self.traces(seq, x);
        loss
    }

    fn accumulate(&self, seq: &mut SeedEpropSeq<F>, acc: &mut SeedEpropAcc<F>) {
        let lr = F::of(self.cfg.lr);
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let (st, sc) = (&seq.state, &seq.scratch);
        add_scaled_rows(&mut acc.d_in, lr, &sc.signal, flat(&st.elig_in), ni, ni);
        add_scaled_rows(&mut acc.d_rec, lr, &sc.signal, flat(&st.elig_rec), nr, nr);
        add_scaled_rows(&mut acc.d_out, lr, &sc.err, &sc.z_new, nr, 0);
    }

    fn predict(&self, seq: &mut SeedEpropSeq<F>, x: &[F], out: &mut [F]) {
        self.forward(seq, x);
        flat_mut(&mut seq.state.z).copy_from_slice(&seq.scratch.z_new);
        out.copy_from_slice(&seq.scratch.output);
    }
}

impl<F: Real> Model for SeedEpropNet<F> {
    const STEP_MEAN: bool = true;

    fn step(&mut self, seq: &mut SeedEpropSeq<F>, x: &[F], target: Option<&[F]>, _learn: bool) -> f64 {
        if let (Some(t), true) = (target, self.lazy.as_ref().is_some_and(|l| l.loaded())) {
            return self.event_step(seq, x, t);
        }
        self.forward(seq, x);
        match target {
            Some(t) => {
                let loss = self.learning_signal(seq, t);
                self.traces_and_learn(seq, x);
                loss
            }
            None => {
                self.traces(seq, x);
                0.0
            }
        }
    }

    /// The seed's `predict_sequence` steps without a target: the traces advance.
    fn infer(&mut self, seq: &mut SeedEpropSeq<F>, x: &[F]) {
        self.step(seq, x, None, false);
    }

    fn output<'s>(&self, seq: &'s SeedEpropSeq<F>) -> &'s [F] {
        &seq.scratch.output
    }

    fn spikes<'s>(&self, seq: &'s SeedEpropSeq<F>) -> Option<&'s [F]> {
        Some(flat(&seq.state.z))
    }

    fn reset(&mut self, seq: &mut SeedEpropSeq<F>) {
        seq.reset();
    }

    fn begin_own_rows(&mut self, seq: &mut SeedEpropSeq<F>, inputs: ndarray::ArrayView2<f64>) {
        if !self.event_for(inputs) {
            return;
        }
        let (ni, nr, kappa) = (self.cfg.n_inputs, self.cfg.n_neurons, F::of(self.cfg.kappa()));
        // (re)made when missing or when the trace decay was changed (a setter)
        if self.lazy.as_ref().is_none_or(|l| l.kappa_differs(kappa)) {
            self.lazy = SeedLazy::new(ni, nr, kappa).map(Box::new);
        }
        let Some(lz) = self.lazy.as_mut() else { return };
        let st = &seq.state;
        lz.load(
            [flat(&self.w_in), flat(&self.w_rec)],
            [flat(&st.trace_in), flat(&st.trace_rec)],
            [flat(&st.elig_in), flat(&st.elig_rec)],
            F::of(self.cfg.lr),
        );
    }

    fn end_own_rows(&mut self, seq: &mut SeedEpropSeq<F>) {
        if let Some(lz) = self.lazy.as_mut() {
            let st = &mut seq.state;
            lz.store(
                [flat_mut(&mut self.w_in), flat_mut(&mut self.w_rec)],
                [flat_mut(&mut st.trace_in), flat_mut(&mut st.trace_rec)],
                [flat_mut(&mut st.elig_in), flat_mut(&mut st.elig_rec)],
            );
        }
    }

    fn apply_step_mean(&mut self, seqs: &[SeedEpropSeq<F>]) {
        let lr = F::of(self.cfg.lr);
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let c_in: Vec<Change<F>> =
            seqs.iter().map(|s| Change::scaled(&s.scratch.signal, flat(&s.state.elig_in), ni)).collect();
        let c_rec: Vec<Change<F>> =
            seqs.iter().map(|s| Change::scaled(&s.scratch.signal, flat(&s.state.elig_rec), nr)).collect();
        let c_out: Vec<Change<F>> = seqs.iter().map(|s| Change::scaled(&s.scratch.err, &s.scratch.z_new, 0)).collect();
        batch_mean(flat_mut(&mut self.w_in), ni, lr, &c_in, MeanInto::Subtract);
        batch_mean(flat_mut(&mut self.w_rec), nr, lr, &c_rec, MeanInto::Subtract);
        zero_diagonal(&mut self.w_rec);
        batch_mean(flat_mut(&mut self.w_out), nr, lr, &c_out, MeanInto::Subtract);
    }

    fn apply_acc_mean(&mut self, seqs: &mut [SeedEpropSeq<F>], accs: &mut [SeedEpropAcc<F>]) {
        let changes: Vec<Vec<&[F]>> = seqs.iter().zip(accs.iter()).map(|(s, a)| self.change_parts(s, a)).collect();
        self.apply_mean_of(&changes);
        for acc in accs.iter_mut() {
            for d in [&mut acc.d_in, &mut acc.d_rec, &mut acc.d_out] {
                d.fill(F::ZERO);
            }
        }
    }

    fn change_lens(&self) -> Vec<usize> {
        vec![self.w_in.len(), self.w_rec.len(), self.w_out.len()]
    }

    fn change_parts<'a>(&self, _seq: &'a SeedEpropSeq<F>, acc: &'a SeedEpropAcc<F>) -> Vec<&'a [F]> {
        vec![&acc.d_in, &acc.d_rec, &acc.d_out]
    }

    fn apply_mean_of(&mut self, changes: &[Vec<&[F]>]) {
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let part = |k: usize, cols| -> Vec<Change<F>> { changes.iter().map(|c| Change::plain(c[k], cols)).collect() };
        batch_mean(flat_mut(&mut self.w_in), ni, F::ONE, &part(0, ni), MeanInto::Subtract);
        batch_mean(flat_mut(&mut self.w_rec), nr, F::ONE, &part(1, nr), MeanInto::Subtract);
        zero_diagonal(&mut self.w_rec);
        batch_mean(flat_mut(&mut self.w_out), nr, F::ONE, &part(2, nr), MeanInto::Subtract);
    }
}

/// The Python `EpropTrainer`: a network and its own sequence.
pub type SeedEprop<F = f64> = Trainer<SeedEpropNet<F>>;

impl<F: Real> Described for Trainer<SeedEpropNet<F>> {
    type Config = SeedEpropConfig;

    fn config_mut(&mut self) -> &mut SeedEpropConfig {
        &mut self.model.cfg
    }

    /// The seed's `memory_per_step`: a parameter count, not bytes.
    fn memory_per_step(&self) -> usize {
        self.model.memory_per_step()
    }

    fn memory_bytes(&self) -> usize {
        self.model.weight_bytes() + self.seq.bytes() + self.model.lazy.as_ref().map_or(0, |l| l.bytes())
    }
}

impl<F: Real> Stateful for Trainer<SeedEpropNet<F>> {
    const CLASS: &'static str = "EpropTrainer";
    const VERSION: i64 = 1;
    type F = F;

    fn config(&self) -> StateDict {
        let c = &self.model.cfg;
        let mut d = StateDict::new(Self::CLASS, Self::VERSION);
        d.put_int("n_inputs", c.n_inputs as i64);
        d.put_int("n_neurons", c.n_neurons as i64);
        d.put_int("n_outputs", c.n_outputs as i64);
        for (k, v) in
            [("tau_mem", c.tau_mem), ("tau_trace", c.tau_trace), ("threshold", c.threshold), ("lr", c.lr), ("dt", c.dt)]
        {
            d.put_float(k, v);
        }
        d.put_int("seed", c.seed as i64);
        d.put_text("kernel", c.kernel.name());
        d.put_text("dtype", F::DTYPE.name());
        d
    }

    fn arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let st = &self.seq.state;
        let m = &self.model;
        named(&[
            ("W_in", m.w_in.view().into_dyn()),
            ("W_rec", m.w_rec.view().into_dyn()),
            ("W_out", m.w_out.view().into_dyn()),
            ("_trace_in", st.trace_in.view().into_dyn()),
            ("_trace_rec", st.trace_rec.view().into_dyn()),
            ("_eligibility_in", st.elig_in.view().into_dyn()),
            ("_eligibility_rec", st.elig_rec.view().into_dyn()),
            ("_v", st.v.view().into_dyn()),
            ("_spikes", st.z.view().into_dyn()),
        ])
    }

    fn set_array(&mut self, name: &str, a: ArrayD<f64>) -> Result<()> {
        let m = &mut self.model;
        match name {
            "W_in" => check::replace(name, &mut m.w_in, a),
            "W_rec" => check::replace(name, &mut m.w_rec, a).map(|_| zero_diagonal(&mut m.w_rec)),
            "W_out" => check::replace(name, &mut m.w_out, a),
            _ => Err(not_settable(name, &["W_in", "W_rec", "W_out"])),
        }
    }

    fn config_of_state(d: &StateDict) -> Result<StateDict> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        let mut out = d.subset(
            &["n_inputs", "n_neurons", "n_outputs", "seed"],
            &["tau_mem", "tau_trace", "threshold", "lr", "dt"],
            &[],
        )?;
        out.put_text("kernel", Kernel::of_state(d)?.name());
        out.put_text("dtype", Dtype::of_state(d)?.name());
        Ok(out)
    }

    /// Hyperparameters come from `d` (validated); sizes must match; the seed is kept.
    fn load_state(&mut self, d: &StateDict) -> Result<()> {
        d.check_header(Self::CLASS, Self::VERSION)?;
        let c = &self.model.cfg;
        let (ni, nr, no) = (c.n_inputs, c.n_neurons, c.n_outputs);
        Kernel::of_state(d)?; // a state of any kernel loads, but not a corrupt entry
        Dtype::check_state(d, F::DTYPE)?;
        d.check_size("n_inputs", ni)?;
        d.check_size("n_neurons", nr)?;
        d.check_size("n_outputs", no)?;
        d.check_known_keys(&self.state())?;
        let cfg = SeedEpropConfig::new(
            (ni as i64, nr as i64, no as i64),
            d.float("tau_mem")?,
            d.float("tau_trace")?,
            d.float("threshold")?,
            d.float("lr")?,
            d.float("dt")?,
            c.seed as i128,
        )?;
        let mut w_rec = d.matrix("W_rec", nr, nr)?;
        zero_diagonal(&mut w_rec);
        let mut cfg = cfg.with_dtype(F::DTYPE)?;
        cfg.kernel = c.kernel;
        let net = SeedEpropNet::from_parts(cfg, d.matrix("W_in", nr, ni)?, w_rec, d.matrix("W_out", no, nr)?);
        let mut seq = SeedEpropSeq::<F>::new(&net.cfg);
        let st = &mut seq.state;
        st.v = d.vector("_v", nr)?;
        st.z = d.vector("_spikes", nr)?;
        st.trace_in = d.matrix("_trace_in", nr, ni)?;
        st.trace_rec = d.matrix("_trace_rec", nr, nr)?;
        st.elig_in = d.matrix("_eligibility_in", nr, ni)?;
        st.elig_rec = d.matrix("_eligibility_rec", nr, nr)?;
        *self = Trainer { model: net, seq };
        Ok(())
    }
}
