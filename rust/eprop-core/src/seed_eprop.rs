//! The seed's single-layer recurrent e-prop trainer (`EpropTrainer`), reproduced
//! number for number. Per step, with alpha = exp(-dt/tau_mem) and
//! kappa = exp(-dt/tau_trace):
//!
//! ```text
//! I      = W_in x + W_rec z(t-1)                 LIF update: see `lif`
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
//! ([`SeedEpropSeq`]) so that a batch can run many sequences on one network.

use ndarray::{Array1, Array2, ArrayView2};

use crate::batch::{apply_mean, BatchModel, Change};
use crate::error::{check_alloc, count_f64};
use crate::error::{
    check_finite, check_non_negative, check_positive, check_size, fmt_shape, EpropError, Result,
};
use crate::kernels::{flat, flat_mut, matvec, nonzeros, trace_elig_learn_rows, trace_elig_rows};
use crate::lif::{decay, seed_layer_update};
use crate::rng::LegacyRng;
use crate::stream::Sequential;

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
}

impl SeedEpropConfig {
    /// Validates sizes and hyperparameters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n_inputs: i64,
        n_neurons: i64,
        n_outputs: i64,
        tau_mem: f64,
        tau_trace: f64,
        threshold: f64,
        lr: f64,
        dt: f64,
    ) -> Result<Self> {
        let cfg = SeedEpropConfig {
            n_inputs: check_size("n_inputs", n_inputs)?,
            n_neurons: check_size("n_neurons", n_neurons)?,
            n_outputs: check_size("n_outputs", n_outputs)?,
            tau_mem: check_positive("tau_mem", tau_mem)?,
            tau_trace: check_positive("tau_trace", tau_trace)?,
            threshold: check_positive("threshold", threshold)?,
            lr: check_non_negative("lr", lr)?,
            dt: check_positive("dt", dt)?,
        };
        check_alloc("EpropTrainer", cfg.n_f64()?)?;
        Ok(cfg)
    }

    /// Float64 values held by a trainer of this size (weights, one sequence
    /// state, step buffers), for the allocation check.
    pub fn n_f64(&self) -> Result<usize> {
        let (ni, nr, no) = (self.n_inputs, self.n_neurons, self.n_outputs);
        count_f64(
            "EpropTrainer",
            &[
                (nr, ni),
                (nr, ni),
                (nr, ni),
                (nr, nr),
                (nr, nr),
                (nr, nr),
                (no, nr),
                (10, nr),
                (3, no),
            ],
        )
    }
}

/// Dynamic state of one sequence, the seed's `_v`, `_spikes`, `_trace_in`,
/// `_trace_rec`, `_eligibility_in`, `_eligibility_rec`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedEpropState {
    pub v: Array1<f64>,
    pub z: Array1<f64>,
    pub trace_in: Array2<f64>,
    pub trace_rec: Array2<f64>,
    pub elig_in: Array2<f64>,
    pub elig_rec: Array2<f64>,
}

impl SeedEpropState {
    pub fn zeros(cfg: &SeedEpropConfig) -> Self {
        let (ni, nr) = (cfg.n_inputs, cfg.n_neurons);
        SeedEpropState {
            v: Array1::zeros(nr),
            z: Array1::zeros(nr),
            trace_in: Array2::zeros((nr, ni)),
            trace_rec: Array2::zeros((nr, nr)),
            elig_in: Array2::zeros((nr, ni)),
            elig_rec: Array2::zeros((nr, nr)),
        }
    }

    /// Bytes held by the state arrays.
    pub fn bytes(&self) -> usize {
        8 * (self.v.len()
            + self.z.len()
            + self.trace_in.len()
            + self.trace_rec.len()
            + self.elig_in.len()
            + self.elig_rec.len())
    }
}

/// Work buffers of one step (no meaning between steps).
#[derive(Clone, Debug)]
pub struct SeedEpropScratch {
    current: Vec<f64>,
    rec_current: Vec<f64>,
    z_new: Vec<f64>,
    pub psi: Vec<f64>,
    pub output: Vec<f64>,
    pub err: Vec<f64>,
    pub signal: Vec<f64>,
    idx_in: Vec<usize>,
    idx_rec: Vec<usize>,
    idx_out: Vec<usize>,
}

impl SeedEpropScratch {
    fn new(cfg: &SeedEpropConfig) -> Self {
        let nr = cfg.n_neurons;
        SeedEpropScratch {
            current: vec![0.0; nr],
            rec_current: vec![0.0; nr],
            z_new: vec![0.0; nr],
            psi: vec![0.0; nr],
            output: vec![0.0; cfg.n_outputs],
            err: vec![0.0; cfg.n_outputs],
            signal: vec![0.0; nr],
            idx_in: Vec::with_capacity(cfg.n_inputs),
            idx_rec: Vec::with_capacity(nr),
            idx_out: Vec::with_capacity(nr),
        }
    }

    fn bytes(&self) -> usize {
        8 * (self.current.capacity()
            + self.rec_current.capacity()
            + self.z_new.capacity()
            + self.psi.capacity()
            + self.output.capacity()
            + self.err.capacity()
            + self.signal.capacity()
            + self.idx_in.capacity()
            + self.idx_rec.capacity()
            + self.idx_out.capacity())
    }
}

/// One sequence in flight: its state and its step buffers.
#[derive(Clone, Debug)]
pub struct SeedEpropSeq {
    pub state: SeedEpropState,
    pub scratch: SeedEpropScratch,
}

impl SeedEpropSeq {
    pub fn new(cfg: &SeedEpropConfig) -> Self {
        SeedEpropSeq {
            state: SeedEpropState::zeros(cfg),
            scratch: SeedEpropScratch::new(cfg),
        }
    }

    /// Zeroes the state (the seed's `reset()`).
    pub fn reset(&mut self) {
        let s = &mut self.state;
        for a in [&mut s.v, &mut s.z] {
            a.fill(0.0);
        }
        for a in [
            &mut s.trace_in,
            &mut s.trace_rec,
            &mut s.elig_in,
            &mut s.elig_rec,
        ] {
            a.fill(0.0);
        }
    }

    pub fn bytes(&self) -> usize {
        self.state.bytes() + self.scratch.bytes()
    }

    /// Output of the last step.
    pub fn output(&self) -> &[f64] {
        &self.scratch.output
    }
}

/// The weights of the seed e-prop network and its hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedEpropNet {
    pub cfg: SeedEpropConfig,
    pub w_in: Array2<f64>,
    pub w_rec: Array2<f64>,
    pub w_out: Array2<f64>,
}

/// Copies a user-supplied matrix after checking its shape and finiteness.
pub fn checked_matrix(
    arg: &str,
    m: ArrayView2<f64>,
    rows: usize,
    cols: usize,
) -> Result<Array2<f64>> {
    if m.dim() != (rows, cols) {
        return Err(EpropError::shape(
            arg,
            fmt_shape(&[rows, cols]),
            fmt_shape(m.shape()),
        ));
    }
    let owned = m.as_standard_layout().to_owned();
    check_finite(arg, flat(&owned), &[rows, cols])?;
    Ok(owned)
}

/// Checks `(T, width)` sequence arrays: shapes and finiteness.
pub fn check_sequence(arg: &str, a: ArrayView2<f64>, width: usize, t: Option<usize>) -> Result<()> {
    let (rows, cols) = a.dim();
    let bad_t = t.is_some_and(|t| t != rows);
    if cols != width || bad_t {
        let t_str = t.map_or("T".to_string(), |t| t.to_string());
        return Err(EpropError::shape(
            arg,
            format!("({t_str}, {width})"),
            fmt_shape(a.shape()),
        ));
    }
    if let Some(((r, c), v)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(EpropError::NonFinite {
            arg: arg.to_string(),
            index: format!("({r}, {c})"),
            value: *v,
        });
    }
    Ok(())
}

impl SeedEpropNet {
    /// Draws the weights as the seed does: one `RandomState(seed)` stream giving
    /// W_in, then W_rec (diagonal zeroed afterwards), then W_out, each
    /// `randn * sqrt(2 / fan_in)`.
    pub fn new(cfg: SeedEpropConfig, seed: u32) -> Self {
        let mut rng = LegacyRng::new(seed);
        let (ni, nr, no) = (cfg.n_inputs, cfg.n_neurons, cfg.n_outputs);
        let w_in = rng.normal_matrix(nr, ni, (2.0 / ni as f64).sqrt());
        let mut w_rec = rng.normal_matrix(nr, nr, (2.0 / nr as f64).sqrt());
        w_rec.diag_mut().fill(0.0);
        let w_out = rng.normal_matrix(no, nr, (2.0 / nr as f64).sqrt());
        SeedEpropNet {
            cfg,
            w_in,
            w_rec,
            w_out,
        }
    }

    pub fn alpha(&self) -> f64 {
        decay(self.cfg.dt, self.cfg.tau_mem)
    }

    pub fn kappa(&self) -> f64 {
        decay(self.cfg.dt, self.cfg.tau_trace)
    }

    /// Replaces W_in (shape (n_neurons, n_inputs), finite).
    pub fn set_w_in(&mut self, m: ArrayView2<f64>) -> Result<()> {
        self.w_in = checked_matrix("W_in", m, self.cfg.n_neurons, self.cfg.n_inputs)?;
        Ok(())
    }

    /// Replaces W_rec (shape (n_neurons, n_neurons), finite); the diagonal is
    /// then set to zero (no self-connections).
    pub fn set_w_rec(&mut self, m: ArrayView2<f64>) -> Result<()> {
        let mut w = checked_matrix("W_rec", m, self.cfg.n_neurons, self.cfg.n_neurons)?;
        w.diag_mut().fill(0.0);
        self.w_rec = w;
        Ok(())
    }

    /// Replaces W_out (shape (n_outputs, n_neurons), finite).
    pub fn set_w_out(&mut self, m: ArrayView2<f64>) -> Result<()> {
        self.w_out = checked_matrix("W_out", m, self.cfg.n_outputs, self.cfg.n_neurons)?;
        Ok(())
    }

    /// Bytes of the weight matrices.
    pub fn weight_bytes(&self) -> usize {
        8 * (self.w_in.len() + self.w_rec.len() + self.w_out.len())
    }

    /// The seed's `memory_per_step`: a parameter count, not bytes.
    pub fn memory_per_step(&self) -> usize {
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        nr + nr + nr * ni * 2 + nr * nr * 2
    }

    /// Membrane, spikes, pseudo-derivatives and readout of one step; the
    /// traces are left for [`Self::traces`] or [`Self::traces_and_learn`].
    /// After it, `seq.scratch` holds z(t) in `z_new` and `seq.state.z` still z(t-1).
    fn forward(&self, seq: &mut SeedEpropSeq, x: &[f64]) {
        let sc = &mut seq.scratch;
        let st = &mut seq.state;
        let sparse_in = nonzeros(x, &mut sc.idx_in);
        let z_prev = flat(&st.z);
        let sparse_rec = nonzeros(z_prev, &mut sc.idx_rec);
        matvec(flat(&self.w_in), x, &sc.idx_in, sparse_in, &mut sc.current);
        matvec(
            flat(&self.w_rec),
            z_prev,
            &sc.idx_rec,
            sparse_rec,
            &mut sc.rec_current,
        );
        for (c, r) in sc.current.iter_mut().zip(&sc.rec_current) {
            *c += r;
        }
        seed_layer_update(
            flat_mut(&mut st.v),
            &sc.current,
            &mut sc.z_new,
            &mut sc.psi,
            self.alpha(),
            self.cfg.threshold,
        );
        let sparse_out = nonzeros(&sc.z_new, &mut sc.idx_out);
        matvec(
            flat(&self.w_out),
            &sc.z_new,
            &sc.idx_out,
            sparse_out,
            &mut sc.output,
        );
    }

    /// Error, loss and learning signal `L = W_out^T err` of the current step.
    fn learning_signal(&self, seq: &mut SeedEpropSeq, target: &[f64]) -> f64 {
        let sc = &mut seq.scratch;
        let mut loss = 0.0;
        for ((e, &y), &t) in sc.err.iter_mut().zip(&sc.output).zip(target) {
            *e = y - t;
            loss += *e * *e;
        }
        sc.signal.fill(0.0);
        let nr = self.cfg.n_neurons;
        for (row, &e) in flat(&self.w_out).chunks_exact(nr).zip(&sc.err) {
            for (s, &w) in sc.signal.iter_mut().zip(row) {
                *s += w * e;
            }
        }
        0.5 * loss
    }

    /// Trace and eligibility update without learning; commits z(t).
    fn traces(&self, seq: &mut SeedEpropSeq, x: &[f64]) {
        self.traces_only(seq, x);
        flat_mut(&mut seq.state.z).copy_from_slice(&seq.scratch.z_new);
    }

    /// Trace and eligibility update, z(t) not yet committed.
    fn traces_only(&self, seq: &mut SeedEpropSeq, x: &[f64]) {
        let kappa = self.kappa();
        let st = &mut seq.state;
        let psi = &seq.scratch.psi;
        let z_prev = flat(&st.z);
        trace_elig_rows(
            flat_mut(&mut st.trace_in),
            flat_mut(&mut st.elig_in),
            x,
            psi,
            kappa,
        );
        trace_elig_rows(
            flat_mut(&mut st.trace_rec),
            flat_mut(&mut st.elig_rec),
            z_prev,
            psi,
            kappa,
        );
    }

    /// Trace, eligibility and weight update in one pass over each matrix; commits z(t).
    fn traces_and_learn(&mut self, seq: &mut SeedEpropSeq, x: &[f64]) {
        let (kappa, lr) = (self.kappa(), self.cfg.lr);
        let st = &mut seq.state;
        let sc = &seq.scratch;
        let (w_in, w_rec) = (flat_mut(&mut self.w_in), flat_mut(&mut self.w_rec));
        let (tr_in, el_in) = (flat_mut(&mut st.trace_in), flat_mut(&mut st.elig_in));
        trace_elig_learn_rows(w_in, tr_in, el_in, x, &sc.psi, &sc.signal, kappa, lr);
        let z_prev = flat(&st.z);
        let (tr_rec, el_rec) = (flat_mut(&mut st.trace_rec), flat_mut(&mut st.elig_rec));
        trace_elig_learn_rows(
            w_rec, tr_rec, el_rec, z_prev, &sc.psi, &sc.signal, kappa, lr,
        );
        self.w_rec.diag_mut().fill(0.0);
        let nr = self.cfg.n_neurons;
        for (row, &e) in flat_mut(&mut self.w_out).chunks_exact_mut(nr).zip(&sc.err) {
            for (w, &z) in row.iter_mut().zip(&sc.z_new) {
                *w -= lr * (e * z);
            }
        }
        flat_mut(&mut st.z).copy_from_slice(&sc.z_new);
    }

    /// One step of the seed rule. Without a target nothing is learned (traces
    /// still advance). Returns the loss when a target is given. Shapes are the
    /// caller's to check (`x`: n_inputs, `target`: n_outputs).
    pub fn step(
        &mut self,
        seq: &mut SeedEpropSeq,
        x: &[f64],
        target: Option<&[f64]>,
    ) -> Option<f64> {
        self.forward(seq, x);
        match target {
            Some(t) => {
                let loss = self.learning_signal(seq, t);
                self.traces_and_learn(seq, x);
                Some(loss)
            }
            None => {
                self.traces(seq, x);
                None
            }
        }
    }

    /// Checks the shape and finiteness of one step's arguments.
    pub fn check_step(&self, x: &[f64], target: Option<&[f64]>) -> Result<()> {
        if x.len() != self.cfg.n_inputs {
            return Err(EpropError::shape(
                "x",
                fmt_shape(&[self.cfg.n_inputs]),
                fmt_shape(&[x.len()]),
            ));
        }
        check_finite("x", x, &[x.len()])?;
        if let Some(t) = target {
            if t.len() != self.cfg.n_outputs {
                return Err(EpropError::shape(
                    "target",
                    fmt_shape(&[self.cfg.n_outputs]),
                    fmt_shape(&[t.len()]),
                ));
            }
            check_finite("target", t, &[t.len()])?;
        }
        Ok(())
    }
}

/// Copies one row of a (possibly strided) view into a contiguous buffer.
#[inline]
pub fn copy_row(dst: &mut [f64], src: ndarray::ArrayView1<f64>) {
    match src.as_slice() {
        Some(s) => dst.copy_from_slice(s),
        None => {
            for (d, &s) in dst.iter_mut().zip(src.iter()) {
                *d = s;
            }
        }
    }
}

/// Convenience owner of a network and one sequence state (the Python class).
#[derive(Clone, Debug)]
pub struct SeedEprop {
    pub net: SeedEpropNet,
    pub seq: SeedEpropSeq,
}

impl SeedEprop {
    pub fn new(cfg: SeedEpropConfig, seed: u32) -> Self {
        let seq = SeedEpropSeq::new(&cfg);
        SeedEprop {
            net: SeedEpropNet::new(cfg, seed),
            seq,
        }
    }

    /// Bytes of all per-trainer state: weights, dynamic state, step buffers.
    pub fn memory_bytes(&self) -> usize {
        self.net.weight_bytes() + self.seq.bytes()
    }
}

impl Sequential for SeedEprop {
    fn n_inputs(&self) -> usize {
        self.net.cfg.n_inputs
    }

    fn n_outputs(&self) -> usize {
        self.net.cfg.n_outputs
    }

    fn reset_state(&mut self) {
        self.seq.reset();
    }

    fn learn_step(&mut self, x: &[f64], target: &[f64], _learn: bool) -> f64 {
        self.net.step(&mut self.seq, x, Some(target)).unwrap_or(0.0)
    }

    fn infer_step(&mut self, x: &[f64]) -> &[f64] {
        self.net.step(&mut self.seq, x, None);
        self.seq.output()
    }
}

/// Summed weight changes of one sequence (batch `update="sequence"`).
#[derive(Clone, Debug)]
pub struct SeedEpropAcc {
    d_in: Vec<f64>,
    d_rec: Vec<f64>,
    d_out: Vec<f64>,
}

/// `acc[j, i] += lr (scale[j] m[j, i])` for a row-major `acc` with `cols`
/// columns; `m` has `row_stride` values per row (0: the same vector `m` for
/// every row, which makes the change the outer product `scale m^T`).
fn add_scaled_rows(
    acc: &mut [f64],
    lr: f64,
    scale: &[f64],
    m: &[f64],
    cols: usize,
    row_stride: usize,
) {
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

impl BatchModel for SeedEpropNet {
    type Seq = SeedEpropSeq;
    type Acc = SeedEpropAcc;
    const STEP_MEAN: bool = true;

    fn n_inputs(&self) -> usize {
        self.cfg.n_inputs
    }

    fn n_outputs(&self) -> usize {
        self.cfg.n_outputs
    }

    fn new_seq(&self) -> SeedEpropSeq {
        SeedEpropSeq::new(&self.cfg)
    }

    fn seq_bytes(&self) -> usize {
        SeedEpropSeq::new(&self.cfg).bytes()
    }

    fn new_acc(&self) -> SeedEpropAcc {
        SeedEpropAcc {
            d_in: vec![0.0; self.w_in.len()],
            d_rec: vec![0.0; self.w_rec.len()],
            d_out: vec![0.0; self.w_out.len()],
        }
    }

    fn acc_bytes(&self) -> usize {
        self.weight_bytes()
    }

    fn seq_step(&self, seq: &mut SeedEpropSeq, x: &[f64], target: &[f64], _learn: bool) -> f64 {
        self.forward(seq, x);
        let loss = self.learning_signal(seq, target);
        self.traces(seq, x);
        loss
    }

    fn accumulate(&self, seq: &mut SeedEpropSeq, acc: &mut SeedEpropAcc) {
        let lr = self.cfg.lr;
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let (st, sc) = (&seq.state, &seq.scratch);
        add_scaled_rows(&mut acc.d_in, lr, &sc.signal, flat(&st.elig_in), ni, ni);
        add_scaled_rows(&mut acc.d_rec, lr, &sc.signal, flat(&st.elig_rec), nr, nr);
        add_scaled_rows(&mut acc.d_out, lr, &sc.err, &sc.z_new, nr, 0);
    }

    fn apply_step_mean(&mut self, seqs: &[SeedEpropSeq]) {
        let lr = self.cfg.lr;
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let c_in: Vec<Change> = seqs
            .iter()
            .map(|s| Change::scaled(&s.scratch.signal, flat(&s.state.elig_in), ni))
            .collect();
        let c_rec: Vec<Change> = seqs
            .iter()
            .map(|s| Change::scaled(&s.scratch.signal, flat(&s.state.elig_rec), nr))
            .collect();
        let c_out: Vec<Change> = seqs
            .iter()
            .map(|s| Change::scaled(&s.scratch.err, &s.scratch.z_new, 0))
            .collect();
        apply_mean(&mut self.w_in, lr, &c_in);
        apply_mean(&mut self.w_rec, lr, &c_rec);
        self.w_rec.diag_mut().fill(0.0);
        apply_mean(&mut self.w_out, lr, &c_out);
    }

    fn apply_acc_mean(&mut self, _seqs: &mut [SeedEpropSeq], accs: &mut [SeedEpropAcc]) {
        let (ni, nr) = (self.cfg.n_inputs, self.cfg.n_neurons);
        let c_in: Vec<Change> = accs.iter().map(|a| Change::plain(&a.d_in, ni)).collect();
        let c_rec: Vec<Change> = accs.iter().map(|a| Change::plain(&a.d_rec, nr)).collect();
        let c_out: Vec<Change> = accs.iter().map(|a| Change::plain(&a.d_out, nr)).collect();
        apply_mean(&mut self.w_in, 1.0, &c_in);
        apply_mean(&mut self.w_rec, 1.0, &c_rec);
        self.w_rec.diag_mut().fill(0.0);
        apply_mean(&mut self.w_out, 1.0, &c_out);
        for acc in accs.iter_mut() {
            for d in [&mut acc.d_in, &mut acc.d_rec, &mut acc.d_out] {
                d.fill(0.0);
            }
        }
    }

    fn predict_step(&self, seq: &mut SeedEpropSeq, x: &[f64], out: &mut [f64]) {
        self.forward(seq, x);
        flat_mut(&mut seq.state.z).copy_from_slice(&seq.scratch.z_new);
        out.copy_from_slice(&seq.scratch.output);
    }
}
