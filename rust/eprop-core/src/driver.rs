//! Driving a model over data: one trait every model implements, one
//! sequence/stream driver and one batch driver for every model.
//!
//! A model holds weights and hyperparameters; the state of a sequence in
//! flight is a separate value ([`Model::Seq`]), so that a trainer owns one
//! (the Python object's state) and a batch runs many on the same weights.
//!
//! Sequences and streams: [`begin`], then [`train_rows`] or [`predict_rows`]
//! on the rows of each chunk in order (the running loss sum is carried, so a
//! sequence fed in chunks is bitwise the same as one call), then [`finish`].
//!
//! Batches, with results that do not depend on the number of threads:
//! - [`Update::Step`]: the B sequences advance together; at every step each
//!   sequence computes the change the single-sequence rule would make
//!   (parallel over sequences), then the mean of the B changes is applied
//!   once (parallel over weight rows, each element summed over b in order).
//!   With B = 1 this is bitwise the single-sequence rule.
//! - [`Update::Sequence`]: weights stay fixed; each sequence sums its changes
//!   over all its steps (parallel over sequences), then the mean over the
//!   batch is applied once.
//! - [`Update::Every`]: changes summed over k steps, mean applied every k
//!   steps (and at the end).

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::check;
use crate::error::{fmt_shape, EpropError, Result};
use crate::real::Real;
use crate::state::Stateful;

/// When accumulated changes are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Every step (batches: the mean of the B changes of each step).
    Step,
    /// Once per sequence (batch, stream, call), at its end.
    Sequence,
    /// Every k steps (k >= 2), and at the end.
    Every(usize),
}

impl Update {
    /// The batch modes of the seed trainers: `"step"` or `"sequence"`.
    pub fn parse_batch(s: &str) -> Result<Self> {
        match s {
            "step" => Ok(Update::Step),
            "sequence" => Ok(Update::Sequence),
            other => Err(EpropError::param("update", "'step' or 'sequence'", format!("'{other}'"))),
        }
    }

    const SCHEDULE: &'static str = "'sequence', 'step' or an integer k >= 1";

    /// A schedule given by name: `"sequence"` or `"step"`.
    pub fn parse_schedule(s: &str) -> Result<Self> {
        match s {
            "sequence" => Ok(Update::Sequence),
            "step" => Ok(Update::Step),
            o => Err(EpropError::param("update", Self::SCHEDULE, format!("'{o}'"))),
        }
    }

    /// A schedule given as every k steps (k = 1 is `Step`).
    pub fn every(k: i64) -> Result<Self> {
        match k {
            1 => Ok(Update::Step),
            k if k > 1 => {
                Ok(Update::Every(usize::try_from(k).map_err(|_| EpropError::param("update", Self::SCHEDULE, k))?))
            }
            k => Err(EpropError::param("update", Self::SCHEDULE, k)),
        }
    }

    /// The schedule as the Python attribute shows it: `'sequence'`, `'step'`
    /// or the integer k (as text).
    pub fn name(self) -> String {
        match self {
            Update::Sequence => "sequence".into(),
            Update::Step => "step".into(),
            Update::Every(k) => k.to_string(),
        }
    }

    /// Steps between updates for online schedules.
    pub fn period(self) -> Option<usize> {
        match self {
            Update::Sequence => None,
            Update::Step => Some(1),
            Update::Every(k) => Some(k),
        }
    }
}

/// What a model does on fixed weights: run sequences (each in its own
/// state) and accumulate the changes they call for, without applying them.
pub trait FixedWeights: Send + Sync {
    /// The float type the model computes in (inputs and targets arrive as
    /// `f64` and are rounded to it once, by the drivers; losses leave as `f64`).
    type F: Real;
    /// State and step buffers of one sequence in flight.
    type Seq: Send + Sync;
    /// Summed changes of one sequence (where the model keeps them outside
    /// [`Self::Seq`]).
    type Acc: Send + Sync;

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
    /// One step of one sequence on the current weights: dynamics, traces and
    /// the quantities its change is made of (kept in `seq`); returns the loss.
    fn fixed_step(&self, seq: &mut Self::Seq, x: &[Self::F], target: &[Self::F], learn: bool) -> f64;
    /// Adds the change of the step just taken by `seq` to `acc`.
    fn accumulate(&self, seq: &mut Self::Seq, acc: &mut Self::Acc);
    /// Called once at the end of each sequence (before its last update).
    fn finish_seq(&self, _seq: &mut Self::Seq, _acc: &mut Self::Acc) {}
    /// Called before a run of steps of `seq` over `inputs` (T, n_inputs),
    /// so that the model can choose its kernel for the run.
    fn begin_rows(&self, _seq: &mut Self::Seq, _inputs: ArrayView2<f64>) {}
    /// Called after a run of steps: every array of `seq` must then hold its
    /// plain value.
    fn end_rows(&self, _seq: &mut Self::Seq) {}
    /// One step without learning of a batch sequence; writes the output.
    fn predict(&self, seq: &mut Self::Seq, x: &[Self::F], out: &mut [Self::F]);
}

/// What a model provides to be driven over sequences, streams and batches.
pub trait Model: FixedWeights {
    /// Whether [`Self::apply_step_mean`] is implemented; otherwise a batch's
    /// [`Update::Step`] runs as `Update::Every(1)`.
    const STEP_MEAN: bool = false;

    // ----- the trainer's own sequence

    /// One step of the trainer's own sequence. With a target the model
    /// learns by its rule (`learn` false: outside the learning window, the
    /// error does not count); without one the step runs without learning.
    /// Returns the step's loss (0 without a target).
    fn step(&mut self, seq: &mut Self::Seq, x: &[Self::F], target: Option<&[Self::F]>, learn: bool) -> f64;
    /// One step of prediction on the trainer's own sequence; the output is
    /// then [`Self::output`].
    fn infer(&mut self, seq: &mut Self::Seq, x: &[Self::F]);
    /// Output of the last step.
    fn output<'s>(&self, seq: &'s Self::Seq) -> &'s [Self::F];
    /// Spikes of the recurrent layer at the last step, for models that have one.
    fn spikes<'s>(&self, _seq: &'s Self::Seq) -> Option<&'s [Self::F]> {
        None
    }
    /// Resets the trainer's own sequence.
    fn reset(&mut self, seq: &mut Self::Seq);
    /// End of a training call (a sequence or a whole stream): models that
    /// accumulate gradients over a sequence apply them here.
    fn end_of_call(&mut self, _seq: &mut Self::Seq) {}
    /// Before a run of training steps of the trainer's own sequence over
    /// `inputs` (T, n_inputs); by default [`FixedWeights::begin_rows`].
    fn begin_own_rows(&mut self, seq: &mut Self::Seq, inputs: ArrayView2<f64>) {
        self.begin_rows(seq, inputs);
    }
    /// After that run: every array must then hold its plain value; by
    /// default [`FixedWeights::end_rows`].
    fn end_own_rows(&mut self, seq: &mut Self::Seq) {
        self.end_rows(seq);
    }

    // ----- batch updates

    /// Applies the mean of the changes of the step just taken by every
    /// sequence (only called when [`Self::STEP_MEAN`]).
    fn apply_step_mean(&mut self, _seqs: &[Self::Seq]) {}
    /// Applies the mean of the accumulated changes and zeroes them.
    fn apply_acc_mean(&mut self, seqs: &mut [Self::Seq], accs: &mut [Self::Acc]);

    // ----- changes as data (what data-parallel training moves between processes)

    /// Lengths of the parts of one sequence's summed change, in the order of
    /// [`Self::change_parts`]: the layout of a change row.
    fn change_lens(&self) -> Vec<usize>;
    /// The parts of the summed change of a sequence run by [`run_fixed`] (its
    /// arrays hold their plain values).
    fn change_parts<'a>(&self, seq: &'a Self::Seq, acc: &'a Self::Acc) -> Vec<&'a [Self::F]>;
    /// Applies the mean of the changes of several sequences, each given as
    /// its parts, summed in the order given: what [`Self::apply_acc_mean`]
    /// applies for the same sequences, bitwise.
    fn apply_mean_of(&mut self, changes: &[Vec<&[Self::F]>]);
}

/// What a trainer tells about itself: its hyperparameters and its memory.
pub trait Described {
    /// The hyperparameters (some of which may be changed in place).
    type Config;
    fn config_mut(&mut self) -> &mut Self::Config;
    /// Values stored per step of a sequence in flight (constant in T).
    fn memory_per_step(&self) -> usize;
    /// True bytes of all state: weights, optimizer state, dynamic state,
    /// traces and step buffers.
    fn memory_bytes(&self) -> usize;
}

/// A model and the state of its own sequence: what a Python trainer object holds.
pub struct Trainer<M: Model> {
    pub model: M,
    pub seq: M::Seq,
}

impl<M: Model + Clone> Clone for Trainer<M>
where
    M::Seq: Clone,
{
    fn clone(&self) -> Self {
        Trainer { model: self.model.clone(), seq: self.seq.clone() }
    }
}

impl<M: Model> Trainer<M> {
    pub fn new(model: M) -> Self {
        let seq = model.new_seq();
        Trainer { model, seq }
    }

    /// One step of the own sequence (see [`Model::step`]).
    pub fn step(&mut self, x: &[M::F], target: Option<&[M::F]>, learn: bool) -> f64 {
        self.model.step(&mut self.seq, x, target, learn)
    }

    pub fn reset(&mut self) {
        self.model.reset(&mut self.seq);
    }

    pub fn output(&self) -> &[M::F] {
        self.model.output(&self.seq)
    }
}

/// Whether every value is finite (neither NaN nor infinity).
pub fn all_finite<'a, F: Real>(values: impl IntoIterator<Item = &'a F>) -> bool {
    values.into_iter().all(|v| v.is_finite())
}

/// The name of the first array of `s`'s state that holds NaN or infinity.
pub fn non_finite<S: Stateful>(s: &S) -> Option<String> {
    // a branch-free pass over contiguous memory (vectorized), else element by element
    let bad = |a: &ndarray::ArrayViewD<'_, S::F>| match a.as_slice_memory_order() {
        Some(v) => v.iter().fold(false, |acc, x| acc | !x.is_finite()),
        None => a.iter().any(|x| !x.is_finite()),
    };
    s.arrays().into_iter().find(|(_, a)| bad(a)).map(|(name, _)| name)
}

/// Runs `f` on `t` as one transaction: when `f` succeeds but leaves NaN or
/// infinity in the state or (per `finite`) in its result, `t` is put back
/// from a copy taken before, and the error names `args`, the arguments
/// whose values drove it there (finite values can still overflow: inputs
/// of 1e300, a huge lr, training that diverges). `f`'s own errors are
/// passed on; `f` checks its arguments before it changes anything, and
/// should it still fail after a change, the copy is put back. Costs one
/// copy of the state per call. The copy put back has the same state;
/// its step buffers may hold less spare capacity (`memory_bytes` can drop
/// by a few bytes after an undone call).
pub fn atomic<T, R, E>(
    t: &mut T,
    args: &str,
    f: impl FnOnce(&mut T) -> std::result::Result<R, E>,
    finite: impl FnOnce(&R) -> bool,
) -> std::result::Result<R, E>
where
    T: Stateful + Clone,
    E: From<EpropError>,
{
    let before = t.clone();
    let r = match f(t) {
        Ok(r) => r,
        Err(e) => {
            // f checks its arguments first; should it fail later (a block of a
            // memmap changed by another thread meanwhile), nothing stays changed
            if !same_state(t, &before) {
                *t = before;
            }
            return Err(e);
        }
    };
    let bad = match finite(&r) {
        false => Some("its results".to_string()),
        true => non_finite(t).map(|name| format!("the state ({name})")),
    };
    match bad {
        None => Ok(r),
        Some(what) => {
            *t = before;
            // only a step() that overflowed leaves a non-finite state (it says so)
            Err(match non_finite(t) {
                Some(name) => EpropError::param(
                    "state",
                    "a finite state to run on",
                    format!("{name} holding infinity or NaN after a step() that overflowed: reset() or load_state_dict() first"),
                ),
                None => overflow(args, &what),
            }
            .into())
        }
    }
}

/// Whether two states hold bitwise the same arrays.
fn same_state<S: Stateful>(a: &S, b: &S) -> bool {
    let (a, b) = (a.arrays(), b.arrays());
    a.len() == b.len()
        && a.iter().zip(&b).all(|((na, xa), (nb, xb))| {
            na == nb
                && xa.shape() == xb.shape()
                && xa.iter().zip(xb.iter()).all(|(p, q)| p.f64().to_bits() == q.f64().to_bits())
        })
}

/// The error of a step-level call (`step`, `apply_learning_signal`) whose
/// finite arguments `args` made its output, loss or state infinite or NaN.
/// Unlike the other calls it is not undone: a copy of the state costs
/// several steps (see `atomic`).
pub fn overflow_in_step(args: &str) -> EpropError {
    EpropError::param(
        args,
        "values that keep the network finite",
        "values that made the step's results or state infinite or NaN; this call does not copy the state to \
         undo itself, so the trainer now holds these values: reset() or load_state_dict() recovers it \
         (sequence calls and each chunk of a stream undo such a call)",
    )
}

/// The error of a call whose finite arguments `args` made `what` infinite
/// or NaN (nothing was changed).
pub fn overflow(args: &str, what: &str) -> EpropError {
    EpropError::param(
        args,
        "values that keep the network finite",
        format!(
            "values that made {what} infinite or NaN; the call was undone (the trainer is as it was before it; in \
             a stream, as after the chunk before): scale them or the weights down, or lower lr"
        ),
    )
}

/// Copies one row of a (possibly strided) view into a contiguous buffer,
/// rounded to the model's float type (the one rounding of the inputs).
#[inline]
pub fn copy_row<F: Real>(dst: &mut [F], src: ArrayView1<f64>) {
    match src.as_slice() {
        Some(s) => crate::real::cast_slice(s, dst),
        None => {
            for (d, &s) in dst.iter_mut().zip(src.iter()) {
                *d = F::of(s);
            }
        }
    }
}

/// Running sums of a training call: loss and counted (masked-in) steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSum {
    pub total: f64,
    pub counted: usize,
}

impl LossSum {
    /// Mean loss per counted step (0 when none counted).
    pub fn mean(&self) -> f64 {
        self.total / self.counted.max(1) as f64
    }
}

/// Start of a call on the trainer's own sequence: reset when asked.
pub fn begin<M: Model>(t: &mut Trainer<M>, reset: bool) {
    if reset {
        t.reset();
    }
}

/// Learns on every row, adding each step's loss to `sum` in order; `mask`
/// (T,) marks the steps whose error counts (all when `None`). The arguments
/// must have been checked.
pub fn train_rows<M: Model>(
    t: &mut Trainer<M>,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    mask: Option<ArrayView1<bool>>,
    sum: &mut LossSum,
) {
    let mut x = vec![M::F::ZERO; t.model.n_inputs()];
    let mut y = vec![M::F::ZERO; t.model.n_outputs()];
    t.model.begin_own_rows(&mut t.seq, inputs);
    for (s, (xr, yr)) in inputs.outer_iter().zip(targets.outer_iter()).enumerate() {
        copy_row(&mut x, xr);
        copy_row(&mut y, yr);
        let learn = mask.as_ref().is_none_or(|m| m[s]);
        sum.total += t.model.step(&mut t.seq, &x, Some(&y), learn);
        sum.counted += usize::from(learn);
    }
    t.model.end_own_rows(&mut t.seq);
}

/// Runs every row without learning, writing outputs to `out` (T, n_outputs).
pub fn predict_rows<M: Model>(t: &mut Trainer<M>, inputs: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
    let mut x = vec![M::F::ZERO; t.model.n_inputs()];
    for (xr, mut orow) in inputs.outer_iter().zip(out.outer_iter_mut()) {
        copy_row(&mut x, xr);
        t.model.infer(&mut t.seq, &x);
        for (o, &v) in orow.iter_mut().zip(t.model.output(&t.seq)) {
            *o = v.f64();
        }
    }
}

/// End of a training call (see [`Model::end_of_call`]).
pub fn finish<M: Model>(t: &mut Trainer<M>) {
    t.model.end_of_call(&mut t.seq);
}

/// A whole training call on one in-memory sequence: checks, then trains
/// (from reset state when `reset`); returns the mean loss per counted step.
pub fn train_sequence<M: Model>(
    t: &mut Trainer<M>,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    mask: Option<ArrayView1<bool>>,
    reset: bool,
) -> Result<f64> {
    check_rows(&t.model, inputs, targets, mask)?;
    begin(t, reset);
    let mut sum = LossSum::default();
    train_rows(t, inputs, targets, mask, &mut sum);
    finish(t);
    Ok(sum.mean())
}

/// A whole prediction call on one in-memory sequence (from reset state
/// when `reset`), writing outputs to `out` (T, n_outputs).
pub fn predict_sequence<M: Model>(
    t: &mut Trainer<M>,
    inputs: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
    reset: bool,
) -> Result<()> {
    check::sequence("inputs", inputs, t.model.n_inputs(), None)?;
    if out.dim() != (inputs.nrows(), t.model.n_outputs()) {
        return Err(EpropError::shape(
            "out",
            fmt_shape(&[inputs.nrows(), t.model.n_outputs()]),
            fmt_shape(out.shape()),
        ));
    }
    begin(t, reset);
    predict_rows(t, inputs, out);
    Ok(())
}

// ------------------------------------------------------------------ batches

/// Bytes a batch of `b` sequences holds besides the weights and the inputs.
pub fn batch_state_bytes<M: FixedWeights>(model: &M, b: usize, update: Update, step_mean: bool) -> usize {
    let acc = match update {
        Update::Step if step_mean => 0,
        _ => model.acc_bytes(),
    };
    b * (model.seq_bytes() + acc + M::F::BYTES * (model.n_inputs() + model.n_outputs()))
}

/// [`batch_state_bytes`] of a model's batch.
pub fn batch_bytes<M: Model>(model: &M, b: usize, update: Update) -> usize {
    batch_state_bytes(model, b, update, M::STEP_MEAN)
}

fn check_batch_alloc<M: FixedWeights>(model: &M, b: usize, update: Update, step_mean: bool) -> Result<()> {
    let per = batch_state_bytes(model, 1, update, step_mean) / 8 + 1;
    let what = format!("inputs (a batch of {b} sequences)");
    let n = check::count_f64(&what, &[(b, per)])?;
    check::alloc(&what, n)
}

/// Inputs, targets and mask of a batch, checked.
fn check_batch<M: FixedWeights>(
    model: &M,
    inputs: &ArrayView3<f64>,
    targets: &ArrayView3<f64>,
    mask: Option<&ArrayView2<bool>>,
) -> Result<()> {
    check::runnable_batch("inputs", inputs, model.n_inputs())?;
    let (b, t, _) = inputs.dim();
    if targets.dim() != (b, t, model.n_outputs()) {
        return Err(EpropError::shape("targets", fmt_shape(&[b, t, model.n_outputs()]), fmt_shape(targets.shape())));
    }
    if let Some(m) = mask {
        if m.dim() != (b, t) {
            return Err(EpropError::shape("mask", fmt_shape(&[b, t]), fmt_shape(m.shape())));
        }
    }
    Ok(())
}

/// Per-sequence input and target buffers and loss sums of the batch driver.
struct Io<F: Real> {
    x: Vec<F>,
    y: Vec<F>,
    sum: LossSum,
}

impl<F: Real> Io<F> {
    fn new(ni: usize, no: usize) -> Self {
        Io { x: vec![F::ZERO; ni], y: vec![F::ZERO; no], sum: LossSum::default() }
    }

    /// Loads one step (an input row and a target row) and runs it on fixed
    /// weights; `learn`: whether its error counts.
    fn run_row<M: FixedWeights<F = F>>(
        &mut self,
        m: &M,
        seq: &mut M::Seq,
        x: ArrayView1<f64>,
        y: ArrayView1<f64>,
        learn: bool,
    ) {
        copy_row(&mut self.x, x);
        copy_row(&mut self.y, y);
        self.sum.total += m.fixed_step(seq, &self.x, &self.y, learn);
        self.sum.counted += usize::from(learn);
    }

    /// Loads step `step` of sequence `k` of a batch and runs it on fixed weights.
    #[allow(clippy::too_many_arguments)]
    fn run<M: FixedWeights<F = F>>(
        &mut self,
        m: &M,
        seq: &mut M::Seq,
        inputs: &ArrayView3<f64>,
        targets: &ArrayView3<f64>,
        mask: Option<&ArrayView2<bool>>,
        k: usize,
        step: usize,
    ) {
        let learn = mask.is_none_or(|mk| mk[[k, step]]);
        let x = inputs.index_axis(Axis(0), k);
        let y = targets.index_axis(Axis(0), k);
        self.run_row(m, seq, x.index_axis(Axis(0), step), y.index_axis(Axis(0), step), learn);
    }
}

/// One sequence run on fixed weights from reset state, fed in runs of rows
/// (a whole sequence, or the chunks of a stream in order): its state, its
/// summed change and its loss sum. The model is not changed.
pub struct FixedRun<M: FixedWeights> {
    seq: M::Seq,
    acc: M::Acc,
    io: Io<M::F>,
}

impl<M: FixedWeights> FixedRun<M> {
    pub fn new(model: &M) -> Self {
        FixedRun { seq: model.new_seq(), acc: model.new_acc(), io: Io::new(model.n_inputs(), model.n_outputs()) }
    }

    /// Runs the next rows: `inputs` (t, n_inputs), `targets` (t, n_outputs),
    /// `mask` (t,) (all counted when `None`); shapes checked by the caller.
    pub fn rows(
        &mut self,
        model: &M,
        inputs: ArrayView2<f64>,
        targets: ArrayView2<f64>,
        mask: Option<ArrayView1<bool>>,
    ) {
        model.begin_rows(&mut self.seq, inputs);
        for (s, (x, y)) in inputs.outer_iter().zip(targets.outer_iter()).enumerate() {
            let learn = mask.as_ref().is_none_or(|m| m[s]);
            self.io.run_row(model, &mut self.seq, x, y, learn);
            model.accumulate(&mut self.seq, &mut self.acc);
        }
        model.end_rows(&mut self.seq);
    }

    /// Steps run so far that counted.
    pub fn counted(&self) -> usize {
        self.io.sum.counted
    }

    /// Ends the sequence: its state, its summed change and its loss sum.
    pub fn finish(mut self, model: &M) -> (M::Seq, M::Acc, LossSum) {
        model.finish_seq(&mut self.seq, &mut self.acc);
        (self.seq, self.acc, self.io.sum)
    }
}

/// Checks one run of rows of a sequence fed to [`FixedRun::rows`] (at least one row).
pub fn check_rows<M: FixedWeights>(
    model: &M,
    inputs: ArrayView2<f64>,
    targets: ArrayView2<f64>,
    mask: Option<ArrayView1<bool>>,
) -> Result<()> {
    check::sequence("inputs", inputs, model.n_inputs(), None)?;
    check::some_steps("inputs", inputs.nrows(), model.n_inputs())?;
    check::sequence("targets", targets, model.n_outputs(), Some(inputs.nrows()))?;
    if let Some(m) = &mask {
        if m.len() != inputs.nrows() {
            return Err(EpropError::shape("mask", fmt_shape(&[inputs.nrows()]), fmt_shape(m.shape())));
        }
    }
    Ok(())
}

/// The sequences of a batch after [`run_fixed`]: their states, accumulators
/// and loss sums.
pub type Runs<M> = (Vec<<M as FixedWeights>::Seq>, Vec<<M as FixedWeights>::Acc>, Vec<LossSum>);

/// Runs every sequence of a batch through on the model's current weights
/// (parallel over sequences, each from reset state), accumulating its
/// changes and finishing it; returns the sequences, their accumulators and
/// their loss sums. The model is not changed. Must run inside the rayon pool
/// that should do the work (see [`crate::pool`]).
pub fn run_fixed<M: FixedWeights>(
    model: &M,
    inputs: ArrayView3<f64>,
    targets: ArrayView3<f64>,
    mask: Option<ArrayView2<bool>>,
) -> Result<Runs<M>> {
    check_batch(model, &inputs, &targets, mask.as_ref())?;
    let b = inputs.dim().0;
    check_batch_alloc(model, b, Update::Sequence, false)?;
    let runs: Vec<(M::Seq, M::Acc, LossSum)> = (0..b)
        .into_par_iter()
        .map(|k| {
            let mut run = FixedRun::new(model);
            let m = mask.map(|m| m.index_axis_move(Axis(0), k));
            run.rows(model, inputs.index_axis(Axis(0), k), targets.index_axis(Axis(0), k), m);
            run.finish(model)
        })
        .collect();
    let mut seqs = Vec::with_capacity(b);
    let mut accs = Vec::with_capacity(b);
    let mut sums = Vec::with_capacity(b);
    for (s, a, l) in runs {
        seqs.push(s);
        accs.push(a);
        sums.push(l);
    }
    Ok((seqs, accs, sums))
}

/// Trains on a batch; returns the mean loss of each sequence over its
/// counted steps (those where `mask`, (B, T), is true; all when `None`).
/// Every sequence starts from reset state; the trainer's own sequence is not
/// touched. Must run inside the rayon pool that should do the work.
pub fn train_batch<M: Model>(
    model: &mut M,
    inputs: ArrayView3<f64>,
    targets: ArrayView3<f64>,
    mask: Option<ArrayView2<bool>>,
    update: Update,
) -> Result<Vec<f64>> {
    let update = match update {
        Update::Step if !M::STEP_MEAN => Update::Every(1),
        Update::Every(0) => return Err(EpropError::param("update", "an integer k >= 1", 0)),
        u => u,
    };
    if update == Update::Sequence {
        let (mut seqs, mut accs, sums) = run_fixed(model, inputs, targets, mask)?;
        model.apply_acc_mean(&mut seqs, &mut accs);
        return Ok(sums.iter().map(LossSum::mean).collect());
    }
    check_batch(model, &inputs, &targets, mask.as_ref())?;
    let (b, t, _) = inputs.dim();
    check_batch_alloc(model, b, update, M::STEP_MEAN)?;
    let mask = mask.as_ref();
    let mut seqs: Vec<M::Seq> = (0..b).map(|_| model.new_seq()).collect();
    let mut io: Vec<Io<M::F>> = (0..b).map(|_| Io::new(model.n_inputs(), model.n_outputs())).collect();
    if let Update::Every(every) = update {
        let mut accs: Vec<M::Acc> = (0..b).map(|_| model.new_acc()).collect();
        for (k, seq) in seqs.iter_mut().enumerate() {
            model.begin_rows(seq, inputs.index_axis(Axis(0), k));
        }
        for step in 0..t {
            let last = step + 1 == t;
            let m: &M = model;
            seqs.par_iter_mut().zip(io.par_iter_mut()).zip(accs.par_iter_mut()).enumerate().for_each(
                |(k, ((seq, io), acc))| {
                    io.run(m, seq, &inputs, &targets, mask, k, step);
                    m.accumulate(seq, acc);
                    if last {
                        m.end_rows(seq);
                        m.finish_seq(seq, acc);
                    }
                },
            );
            if (step + 1) % every == 0 || last {
                model.apply_acc_mean(&mut seqs, &mut accs);
            }
        }
    } else {
        for step in 0..t {
            let m: &M = model;
            seqs.par_iter_mut()
                .zip(io.par_iter_mut())
                .enumerate()
                .for_each(|(k, (seq, io))| io.run(m, seq, &inputs, &targets, mask, k, step));
            model.apply_step_mean(&seqs);
        }
    }
    Ok(io.iter().map(|io| io.sum.mean()).collect())
}

// ------------------------------------------------- changes as data

/// Values in one sequence's change row.
pub fn change_len<M: Model>(model: &M) -> usize {
    model.change_lens().iter().sum()
}

/// Appends the summed change of a sequence run by [`FixedRun`] or
/// [`run_fixed`] to `out`, as one row in the layout of [`Model::change_lens`].
pub fn push_change<M: Model>(model: &M, seq: &M::Seq, acc: &M::Acc, out: &mut Vec<M::F>) {
    for part in model.change_parts(seq, acc) {
        out.extend_from_slice(part);
    }
}

/// The summed change of every sequence of a batch on the model's current
/// weights (rows of [`change_len`] values, one per sequence, in order) and
/// the mean loss of each over its counted steps: what
/// `train_batch(update=Sequence)` computes before it applies their mean.
/// The model is not changed. Must run inside the rayon pool that should do
/// the work.
pub fn batch_changes<M: Model>(
    model: &M,
    inputs: ArrayView3<f64>,
    targets: ArrayView3<f64>,
    mask: Option<ArrayView2<bool>>,
) -> Result<(Vec<M::F>, Vec<f64>)> {
    let b = inputs.dim().0;
    check::alloc("changes", check::count_f64("changes", &[(b, change_len(model))])?)?;
    let (seqs, accs, sums) = run_fixed(model, inputs, targets, mask)?;
    let mut rows = Vec::with_capacity(b * change_len(model));
    for (seq, acc) in seqs.iter().zip(&accs) {
        push_change(model, seq, acc, &mut rows);
    }
    Ok((rows, sums.iter().map(LossSum::mean).collect()))
}

/// Applies the mean of the changes given as rows: `changes` (B >= 1,
/// [`change_len`]) row-major, one row per sequence, summed over the rows in
/// order: bitwise what `train_batch(update=Sequence)` applies for those
/// sequences. Checked first (shape, finite, values the model's float type
/// holds exactly): a refused argument changes nothing. Must run inside the
/// rayon pool that should do the work.
pub fn apply_changes<M: Model>(model: &mut M, shape: &[usize], changes: &[f64]) -> Result<()> {
    let lens = model.change_lens();
    let p: usize = lens.iter().sum();
    match shape {
        [b, w] if *b >= 1 && *w == p => {}
        _ => return Err(EpropError::shape("changes", format!("(B >= 1, {p})"), fmt_shape(shape))),
    }
    check::finite("changes", changes, shape)?;
    M::F::DTYPE.check_exact("changes", changes)?;
    let rows: Vec<M::F> = crate::real::rounded(changes);
    let per_seq: Vec<Vec<&[M::F]>> = rows
        .chunks_exact(p)
        .map(|row| {
            let mut rest = row;
            lens.iter()
                .map(|&n| {
                    let (part, tail) = rest.split_at(n);
                    rest = tail;
                    part
                })
                .collect()
        })
        .collect();
    model.apply_mean_of(&per_seq);
    Ok(())
}

/// Runs a batch without learning; writes outputs (B, T, n_outputs) into `out`.
pub fn predict_batch<M: FixedWeights>(model: &M, inputs: ArrayView3<f64>, mut out: ArrayViewMut3<f64>) -> Result<()> {
    check::runnable_batch("inputs", &inputs, model.n_inputs())?;
    let (b, t, _) = inputs.dim();
    check_batch_alloc(model, b.min(rayon::current_num_threads()), Update::Step, true)?;
    if out.dim() != (b, t, model.n_outputs()) {
        return Err(EpropError::shape("out", fmt_shape(&[b, t, model.n_outputs()]), fmt_shape(out.shape())));
    }
    let width = t * model.n_outputs();
    let data = out.as_slice_mut().ok_or_else(|| EpropError::shape("out", "a contiguous array", "a strided view"))?;
    if width == 0 {
        return Ok(());
    }
    data.par_chunks_mut(width).enumerate().for_each(|(k, ob)| {
        let mut seq = model.new_seq();
        let mut x = vec![M::F::ZERO; model.n_inputs()];
        let mut y = vec![M::F::ZERO; model.n_outputs()];
        let xs = inputs.index_axis(Axis(0), k);
        for (step, o) in ob.chunks_exact_mut(model.n_outputs()).enumerate() {
            copy_row(&mut x, xs.index_axis(Axis(0), step));
            model.predict(&mut seq, &x, &mut y);
            crate::real::widen_slice(&y, o);
        }
    });
    Ok(())
}
