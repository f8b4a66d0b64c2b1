"""The reference tasks of Bellec et al. 2020 as seeded generators.

Each returns a :class:`Trials`, which unpacks as ``(inputs, targets, mask)``
in the shapes the networks take: inputs ``(T, n_inputs)`` or ``(B, T,
n_inputs)`` of spikes (0/1, float64), targets ``(T, n_outputs)`` floats (MSE)
or ``(B, T)`` class indices (cross-entropy), and a boolean mask of the steps
whose error counts, ``(T,)`` or ``(B, T)``. Times in ms, one step = ``dt``.

``seed`` is an int or a ``numpy.random.Generator``: a Generator is drawn from
(so that a training loop gets fresh trials at every call), an int makes the
same trials every time. The generators are the ones the examples, the demo
and the tests use; their draws are documented with each, so the trials can
be rebuilt elsewhere.

- :func:`pattern_generation`: a frozen Poisson raster and a sum of sines to
  reproduce (regression, Fig. 2).
- :func:`evidence_accumulation`: left/right cues, a delay and a recall cue;
  report the side with more cues (classification, Fig. 3).
- :func:`store_recall`: store a bit on a store cue and report it on a later
  recall cue (classification, working memory).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from eprop import _args

__all__ = ["Trials", "evidence_accumulation", "pattern_generation", "store_recall"]


class Trials(NamedTuple):
    """Inputs, targets and mask of one or a batch of trials."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def _probability(name: str, value: object, per_step: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    if not ok:
        what = "a rate giving at most one spike per step" if per_step else "a probability in [0, 1]"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return float(value)


def pattern_generation(
    *,
    steps: int = 1000,
    n_inputs: int = 100,
    rate: float = 50.0,
    periods: tuple[float, ...] = (1000.0, 500.0, 333.0, 200.0),
    dt: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> Trials:
    """One trial: ``n_inputs`` neurons fire a Poisson raster at ``rate`` Hz
    (spike probability rate dt / 1000 per step); the target, shape (steps, 1),
    is a sum of sines with the given periods (ms), amplitudes U(0.5, 2) and
    phases U(0, 2 pi), shifted to start at 0 and scaled to max |y| = 1. The
    mask counts every step. Draws: the raster (``random((steps,
    n_inputs))``), then per period an amplitude and a phase."""
    steps = _args.count("steps", steps)
    n_inputs = _args.count("n_inputs", n_inputs)
    dt = _args.positive("dt", dt)
    p = _probability("rate", _args.positive("rate", rate) * dt / 1000.0, per_step=True)
    if len(periods) == 0:
        raise ValueError("periods: expected at least one period in ms, got an empty sequence")
    periods = tuple(_args.positive("periods", q) for q in periods)
    rng = _args.rng(seed)
    inputs = (rng.random((steps, n_inputs)) < p).astype(np.float64)
    t = np.arange(steps) * dt
    target = np.zeros(steps)
    for period in periods:
        target += rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    target -= target[0]
    peak = np.max(np.abs(target))
    if peak > 0:
        target /= peak
    return Trials(inputs, target[:, None], np.ones(steps, dtype=bool))


def evidence_accumulation(
    batch: int,
    *,
    n_cues: int = 7,
    t_cue: int = 100,
    t_silence: int = 50,
    t_delay: int = 1050,
    t_recall: int = 150,
    p_majority: float = 0.7,
    f_cue: float = 40.0,
    f_background: float = 10.0,
    n_group: int = 10,
    dt: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> Trials:
    """``batch`` trials of the paper's evidence accumulation: inputs (batch,
    T, 4 n_group), groups left cue, right cue, recall cue, background. A
    trial has ``n_cues`` (odd) cues, each ``t_silence`` steps of silence then
    ``t_cue`` steps of ``f_cue`` Hz from its side's group; each cue lies on
    the trial's majority side with probability ``p_majority``. The background
    fires at ``f_background`` Hz throughout; after ``t_delay`` steps the
    recall group fires at ``f_cue`` Hz for the last ``t_recall`` steps.
    T = n_cues (t_silence + t_cue) + t_delay + t_recall (steps). Targets
    (batch, T): the side with more cues (0 left, 1 right) at every step;
    mask (batch, T): the last ``t_recall`` steps. Draws: majority sides
    ``integers(0, 2, batch)``, cue placements ``random((batch, n_cues))``,
    then the spikes ``random((batch, T, 4 n_group))``."""
    batch = _args.count("batch", batch)
    n_cues = _args.count("n_cues", n_cues)
    if n_cues % 2 == 0:
        raise ValueError(f"n_cues: expected an odd number (one side always has more cues), got {n_cues}")
    t_cue, t_silence = _args.count("t_cue", t_cue), _args.count("t_silence", t_silence, 0)
    t_delay, t_recall = _args.count("t_delay", t_delay, 0), _args.count("t_recall", t_recall)
    n_group = _args.count("n_group", n_group)
    p_majority = _probability("p_majority", p_majority)
    dt = _args.positive("dt", dt)
    p_cue = _probability("f_cue", _args.positive("f_cue", f_cue) * dt / 1000.0, per_step=True)
    if f_background < 0:
        raise ValueError(f"f_background: expected a rate >= 0 Hz, got {f_background!r}")
    p_bg = _probability("f_background", f_background * dt / 1000.0, per_step=True)
    rng = _args.rng(seed)
    T = n_cues * (t_silence + t_cue) + t_delay + t_recall
    majority = rng.integers(0, 2, size=batch)
    on_majority = rng.random((batch, n_cues)) < p_majority
    sides = np.where(on_majority, majority[:, None], 1 - majority[:, None])
    labels = (sides.sum(axis=1) > n_cues // 2).astype(np.int64)
    rate = np.zeros((batch, T, 4 * n_group))
    rate[:, :, 3 * n_group :] = p_bg
    for k in range(n_cues):
        start = k * (t_silence + t_cue) + t_silence
        for side in (0, 1):
            rows = sides[:, k] == side
            rate[rows, start : start + t_cue, side * n_group : (side + 1) * n_group] = p_cue
    rate[:, T - t_recall :, 2 * n_group : 3 * n_group] = p_cue
    inputs = (rng.random(rate.shape) < rate).astype(np.float64)
    mask = np.zeros((batch, T), dtype=bool)
    mask[:, T - t_recall :] = True
    targets = np.repeat(labels[:, None], T, axis=1)
    return Trials(inputs, targets, mask)


def store_recall(
    batch: int,
    *,
    n_periods: int = 12,
    t_period: int = 200,
    p_store: float = 1.0 / 7.0,
    p_recall: float = 1.0 / 7.0,
    f_input: float = 50.0,
    n_group: int = 25,
    dt: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> Trials:
    """``batch`` trials of store-recall: inputs (batch, T, 4 n_group), groups
    value 0, value 1, store, recall, firing at ``f_input`` Hz when active;
    T = n_periods t_period. In each period, with probability ``p_store`` the
    store group fires together with the group of a random bit (the bit to
    store), with probability ``p_recall`` the recall group fires, otherwise
    nothing; a recall before the first store of a trial is dropped. Targets
    (batch, T): in a recall period the last stored bit (0 elsewhere); mask
    (batch, T): the recall periods. Draws: events ``random((batch,
    n_periods))``, bits ``integers(0, 2, (batch, n_periods))``, then the
    spikes, float32 uniforms ``(batch, n_periods, t_period, 4 n_group)``."""
    batch = _args.count("batch", batch)
    n_periods, t_period = _args.count("n_periods", n_periods), _args.count("t_period", t_period)
    n_group = _args.count("n_group", n_group)
    p_store, p_recall = _probability("p_store", p_store), _probability("p_recall", p_recall)
    if p_store + p_recall > 1.0:
        raise ValueError(f"p_recall: expected at most 1 - p_store = {1.0 - p_store}, got {p_recall!r}")
    dt = _args.positive("dt", dt)
    p = _probability("f_input", _args.positive("f_input", f_input) * dt / 1000.0, per_step=True)
    rng = _args.rng(seed)
    n_in = 4 * n_group
    T = n_periods * t_period
    u = rng.random((batch, n_periods))
    events = np.where(u < p_store, 1, np.where(u < p_store + p_recall, 2, 0))
    value = rng.integers(0, 2, size=(batch, n_periods))
    bits = np.full((batch, n_periods), -1)
    last = np.full(batch, -1)
    for k in range(n_periods):
        store = events[:, k] == 1
        last = np.where(store, value[:, k], last)
        bits[store, k] = value[store, k]
        recall = events[:, k] == 2
        dropped = recall & (last < 0)
        events[dropped, k] = 0
        ok = recall & ~dropped
        bits[ok, k] = last[ok]
    rate = np.zeros((batch, n_periods, n_in))
    store = events == 1
    rate[..., 2 * n_group : 3 * n_group][store] = p
    for b in (0, 1):
        rate[..., b * n_group : (b + 1) * n_group][store & (bits == b)] = p
    rate[..., 3 * n_group :][events == 2] = p
    # period by period, in float32 (the largest array of the task)
    u = rng.random((batch, n_periods, t_period, n_in), dtype=np.float32)
    inputs = (u < rate[:, :, None, :].astype(np.float32)).astype(np.float64).reshape(batch, T, n_in)
    del u
    targets = np.repeat(np.where(events == 2, bits, 0), t_period, axis=1)
    mask = np.repeat(events == 2, t_period, axis=1)
    return Trials(inputs, targets, mask)
