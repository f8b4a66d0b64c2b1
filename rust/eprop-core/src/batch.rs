//! Batch driver: many sequences on one network, in parallel with rayon, with
//! results that do not depend on the number of threads.
//!
//! Two update modes:
//! - [`Update::Step`]: the B sequences advance together; at every step each
//!   sequence computes the change the single-sequence rule would make (phase A,
//!   parallel over sequences), then the mean of the B changes is applied once
//!   (phase B, parallel over weight rows, each element summed over b = 0..B in
//!   order). With B = 1 this is bitwise the single-sequence rule.
//! - [`Update::Sequence`]: weights stay fixed; each sequence sums its changes
//!   over all its steps (parallel over sequences), then the mean over the batch
//!   is applied once.
//!
//! No floating-point reduction depends on how rayon splits the work, so the
//! numbers are bitwise identical for any thread count.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::error::{fmt_shape, EpropError, Result};

/// How a batch moves the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Mean of the B changes of each step, applied at every step.
    Step,
    /// Changes summed over each whole sequence, mean over B applied at the end.
    Sequence,
    /// Changes summed over k steps, mean over B applied every k steps (and at the end).
    Every(usize),
}

impl Update {
    /// Parses `"step"` or `"sequence"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "step" => Ok(Update::Step),
            "sequence" => Ok(Update::Sequence),
            other => Err(EpropError::param(
                "update",
                "'step' or 'sequence'",
                format!("'{other}'"),
            )),
        }
    }
}

/// What a trainer provides to be driven in batches.
pub trait BatchModel: Send + Sync {
    /// State and step buffers of one sequence in flight.
    type Seq: Send + Sync;
    /// Summed weight changes of one sequence (where the model keeps them
    /// outside [`Self::Seq`]).
    type Acc: Send + Sync;
    /// Whether [`Self::apply_step_mean`] is implemented; otherwise
    /// [`Update::Step`] runs as `Update::Every(1)`.
    const STEP_MEAN: bool = false;

    fn n_inputs(&self) -> usize;
    fn n_outputs(&self) -> usize;
    /// A sequence state at reset.
    fn new_seq(&self) -> Self::Seq;
    /// Bytes of one [`Self::Seq`].
    fn seq_bytes(&self) -> usize;
    /// A zero accumulator.
    fn new_acc(&self) -> Self::Acc;
    /// Bytes of one [`Self::Acc`].
    fn acc_bytes(&self) -> usize;
    /// One step of one sequence on the current weights: dynamics, traces and the
    /// quantities its weight change is made of (kept in `seq`); returns the loss.
    /// `learn` is false for steps outside the learning window (mask). The
    /// weights are not touched.
    fn seq_step(&self, seq: &mut Self::Seq, x: &[f64], target: &[f64], learn: bool) -> f64;
    /// Adds the change of the step just taken by `seq` to `acc`.
    fn accumulate(&self, seq: &mut Self::Seq, acc: &mut Self::Acc);
    /// Called once at the end of each sequence (before the last update).
    fn finish_seq(&self, _seq: &mut Self::Seq, _acc: &mut Self::Acc) {}
    /// Applies the mean of the changes of the step just taken by every sequence
    /// (only called when [`Self::STEP_MEAN`]).
    fn apply_step_mean(&mut self, _seqs: &[Self::Seq]) {}
    /// Applies the mean of the accumulated changes and zeroes the accumulators.
    fn apply_acc_mean(&mut self, seqs: &mut [Self::Seq], accs: &mut [Self::Acc]);
    /// One step without learning; writes the output.
    fn predict_step(&self, seq: &mut Self::Seq, x: &[f64], out: &mut [f64]);
}

/// Bytes a batch of `b` sequences holds besides the weights and the inputs.
pub fn batch_state_bytes<M: BatchModel>(model: &M, b: usize, update: Update) -> usize {
    let acc = match update {
        Update::Step if M::STEP_MEAN => 0,
        _ => model.acc_bytes(),
    };
    b * (model.seq_bytes() + acc + 8 * (model.n_inputs() + model.n_outputs()))
}

fn check_batch<M: BatchModel>(
    model: &M,
    inputs: &ArrayView3<f64>,
    targets: Option<&ArrayView3<f64>>,
) -> Result<()> {
    let (b, t, w) = inputs.dim();
    if w != model.n_inputs() || b == 0 || t == 0 {
        return Err(EpropError::shape(
            "inputs",
            format!("(B, T, {}) with B >= 1 and T >= 1", model.n_inputs()),
            fmt_shape(inputs.shape()),
        ));
    }
    if let Some(y) = targets {
        if y.dim() != (b, t, model.n_outputs()) {
            return Err(EpropError::shape(
                "targets",
                fmt_shape(&[b, t, model.n_outputs()]),
                fmt_shape(y.shape()),
            ));
        }
    }
    Ok(())
}

fn check_batch_alloc<M: BatchModel>(model: &M, b: usize, update: Update) -> Result<()> {
    let per = batch_state_bytes(model, 1, update) / 8 + 1;
    let n = crate::error::count_f64("batch", &[(b, per)])?;
    crate::error::check_alloc("batch", n)
}

/// Copies row `t` of sequence `b` into a contiguous buffer.
fn row_into(dst: &mut [f64], a: &ArrayView3<f64>, b: usize, t: usize) {
    let r = a.index_axis(Axis(0), b);
    crate::seed_eprop::copy_row(dst, r.index_axis(Axis(0), t));
}

/// Per-sequence input and target buffers of the driver.
struct Io {
    x: Vec<f64>,
    y: Vec<f64>,
    loss: f64,
    counted: usize,
}

impl Io {
    /// Loads step `step` of sequence `k` and runs it.
    #[allow(clippy::too_many_arguments)]
    fn run<M: BatchModel>(
        &mut self,
        m: &M,
        seq: &mut M::Seq,
        inputs: &ArrayView3<f64>,
        targets: &ArrayView3<f64>,
        mask: Option<&ArrayView2<bool>>,
        k: usize,
        step: usize,
    ) {
        row_into(&mut self.x, inputs, k, step);
        row_into(&mut self.y, targets, k, step);
        let learn = mask.is_none_or(|mk| mk[[k, step]]);
        self.loss += m.seq_step(seq, &self.x, &self.y, learn);
        self.counted += usize::from(learn);
    }
}

/// Trains on a batch; returns the mean loss of each sequence over its counted
/// steps (those where `mask`, (B, T), is true; all when `None`). Every sequence
/// starts from reset state. Must run inside the rayon pool that should do the
/// work (see [`crate::pool`]).
pub fn train_batch<M: BatchModel>(
    model: &mut M,
    inputs: ArrayView3<f64>,
    targets: ArrayView3<f64>,
    mask: Option<ArrayView2<bool>>,
    update: Update,
) -> Result<Vec<f64>> {
    check_batch(model, &inputs, Some(&targets))?;
    let (b, t, _) = inputs.dim();
    if let Some(mk) = &mask {
        if mk.dim() != (b, t) {
            return Err(EpropError::shape(
                "mask",
                fmt_shape(&[b, t]),
                fmt_shape(mk.shape()),
            ));
        }
    }
    let update = match update {
        Update::Step if !M::STEP_MEAN => Update::Every(1),
        Update::Every(0) => return Err(EpropError::param("update", "an integer k >= 1", 0)),
        u => u,
    };
    check_batch_alloc(model, b, update)?;
    let mask = mask.as_ref();
    let mut seqs: Vec<M::Seq> = (0..b).map(|_| model.new_seq()).collect();
    let mut io: Vec<Io> = (0..b)
        .map(|_| Io {
            x: vec![0.0; model.n_inputs()],
            y: vec![0.0; model.n_outputs()],
            loss: 0.0,
            counted: 0,
        })
        .collect();
    match update {
        Update::Step => {
            for step in 0..t {
                let m: &M = model;
                seqs.par_iter_mut()
                    .zip(io.par_iter_mut())
                    .enumerate()
                    .for_each(|(k, (seq, io))| {
                        io.run(m, seq, &inputs, &targets, mask, k, step);
                    });
                model.apply_step_mean(&seqs);
            }
        }
        Update::Sequence => {
            let m: &M = model;
            let mut accs: Vec<M::Acc> = seqs
                .par_iter_mut()
                .zip(io.par_iter_mut())
                .enumerate()
                .map(|(k, (seq, io))| {
                    let mut acc = m.new_acc();
                    for step in 0..t {
                        io.run(m, seq, &inputs, &targets, mask, k, step);
                        m.accumulate(seq, &mut acc);
                    }
                    m.finish_seq(seq, &mut acc);
                    acc
                })
                .collect();
            model.apply_acc_mean(&mut seqs, &mut accs);
        }
        Update::Every(every) => {
            let mut accs: Vec<M::Acc> = (0..b).map(|_| model.new_acc()).collect();
            for step in 0..t {
                let last = step + 1 == t;
                let m: &M = model;
                seqs.par_iter_mut()
                    .zip(io.par_iter_mut())
                    .zip(accs.par_iter_mut())
                    .enumerate()
                    .for_each(|(k, ((seq, io), acc))| {
                        io.run(m, seq, &inputs, &targets, mask, k, step);
                        m.accumulate(seq, acc);
                        if last {
                            m.finish_seq(seq, acc);
                        }
                    });
                if (step + 1) % every == 0 || last {
                    model.apply_acc_mean(&mut seqs, &mut accs);
                }
            }
        }
    }
    Ok(io
        .iter()
        .map(|io| io.loss / io.counted.max(1) as f64)
        .collect())
}

/// Runs a batch without learning; writes outputs (B, T, n_outputs) into `out`.
pub fn predict_batch<M: BatchModel>(
    model: &M,
    inputs: ArrayView3<f64>,
    mut out: ArrayViewMut3<f64>,
) -> Result<()> {
    check_batch(model, &inputs, None)?;
    let (b, t, _) = inputs.dim();
    check_batch_alloc(model, b.min(rayon::current_num_threads()), Update::Step)?;
    if out.dim() != (b, t, model.n_outputs()) {
        return Err(EpropError::shape(
            "out",
            fmt_shape(&[b, t, model.n_outputs()]),
            fmt_shape(out.shape()),
        ));
    }
    let width = t * model.n_outputs();
    let data = out
        .as_slice_mut()
        .ok_or_else(|| EpropError::shape("out", "a contiguous array", "a strided view"))?;
    if width == 0 {
        return Ok(());
    }
    data.par_chunks_mut(width).enumerate().for_each(|(k, ob)| {
        let mut seq = model.new_seq();
        let mut x = vec![0.0; model.n_inputs()];
        for (step, o) in ob.chunks_exact_mut(model.n_outputs()).enumerate() {
            row_into(&mut x, &inputs, k, step);
            model.predict_step(&mut seq, &x, o);
        }
    });
    Ok(())
}

/// Sequence b's change of one row-major matrix (rows x cols): element (j, i)
/// is `lr (scale[j] m[j, i])` when `scale` is given, `m[j, i]` otherwise; `m`
/// has `row_stride` values per row (0: the same vector for every row, for
/// outer products).
#[derive(Clone, Copy)]
pub struct Change<'a> {
    pub scale: Option<&'a [f64]>,
    pub m: &'a [f64],
    pub row_stride: usize,
}

impl<'a> Change<'a> {
    /// `lr (scale[j] m[j, i])`.
    pub fn scaled(scale: &'a [f64], m: &'a [f64], row_stride: usize) -> Self {
        Change {
            scale: Some(scale),
            m,
            row_stride,
        }
    }

    /// `m[j, i]` (already scaled).
    pub fn plain(m: &'a [f64], row_stride: usize) -> Self {
        Change {
            scale: None,
            m,
            row_stride,
        }
    }
}

const CHUNK: usize = 256;

/// `w -= mean_b(change_b)`: parallel over blocks of rows, each element summed
/// over b in order starting from the first term (so B = 1 is bitwise the
/// single update, and no sum depends on the thread count).
pub fn apply_mean(w: &mut Array2<f64>, lr: f64, changes: &[Change<'_>]) {
    let cols = w.ncols();
    let b = changes.len();
    if cols == 0 || b == 0 {
        return;
    }
    let bf = b as f64;
    let rows_per_task = (4096 / cols).max(1);
    let data = crate::kernels::flat_mut(w);
    data.par_chunks_mut(cols * rows_per_task)
        .enumerate()
        .for_each(|(task, block)| {
            let mut acc = [0.0f64; CHUNK];
            for (r, row) in block.chunks_exact_mut(cols).enumerate() {
                let j = task * rows_per_task + r;
                for start in (0..cols).step_by(CHUNK) {
                    let end = (start + CHUNK).min(cols);
                    let acc = &mut acc[..end - start];
                    for (k, c) in changes.iter().enumerate() {
                        let m = &c.m[j * c.row_stride + start..j * c.row_stride + end];
                        match (c.scale, k) {
                            (Some(sc), 0) => acc
                                .iter_mut()
                                .zip(m)
                                .for_each(|(a, &x)| *a = lr * (sc[j] * x)),
                            (Some(sc), _) => acc
                                .iter_mut()
                                .zip(m)
                                .for_each(|(a, &x)| *a += lr * (sc[j] * x)),
                            (None, 0) => acc.copy_from_slice(m),
                            (None, _) => acc.iter_mut().zip(m).for_each(|(a, &x)| *a += x),
                        }
                    }
                    for (wi, &a) in row[start..end].iter_mut().zip(acc.iter()) {
                        *wi -= a / bf;
                    }
                }
            }
        });
}
