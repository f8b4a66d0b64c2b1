"""Constants and helpers shared by the test modules."""

import importlib
import re
import threading
import time

import numpy as np
import pytest


def import_eprop():
    """Imports eprop, retrying a failing import: the package may be reinstalled while tests run."""
    last = None
    for _ in range(10):
        try:
            return importlib.import_module("eprop")
        except ImportError as e:  # pragma: no cover - transient
            last = e
            time.sleep(1.0)
    raise last


eprop = import_eprop()

EPROP_WEIGHTS = ("W_in", "W_rec", "W_out")
EPROP_STATE = ("_v", "_spikes", "_trace_in", "_trace_rec", "_eligibility_in", "_eligibility_rec")
EPROP_ARRAYS = EPROP_WEIGHTS + EPROP_STATE
EPROP_SHAPE = ("n_inputs", "n_neurons", "n_outputs")
EPROP_HYPER = ("tau_mem", "tau_trace", "threshold", "lr", "dt")
LAYER_ARRAYS = ("W", "_v", "_spikes", "_trace")
LAYER_SHAPE = ("n_inputs", "n_neurons")
LAYER_HYPER = ("tau_mem", "threshold", "lr", "dt")
ONLINE_SHAPE = ("layer_sizes", "n_layers")
ONLINE_HYPER = ("tau_mem", "threshold", "lr")
RSNN_WEIGHTS = ("W_in", "W_rec", "W_out", "b_out")
RSNN_ARRAYS = RSNN_WEIGHTS + ("feedback_matrix", "_v", "_a", "_spikes")
RSNN_HYPER = (
    "n_inputs",
    "n_neurons",
    "n_outputs",
    "n_adaptive",
    "tau_mem",
    "tau_adapt",
    "beta",
    "threshold",
    "refractory",
    "dt",
    "tau_out",
    "loss",
    "feedback",
    "feedback_decay",
    "surrogate_height",
    "reg_rate",
    "target_rate",
    "optimizer",
    "lr",
    "update",
    "seed",
)
# the trainers that run sequences, and with them the single layer
KINDS = ("eprop", "online")
ALL_KINDS = (*KINDS, "layer")


# --------------------------------------------------------------------------- building and data


def excitable(t):
    """Doubles the magnitude of every weight of an OnlineTrainer, so that its
    output layer spikes (its loss sees only those spikes)."""
    for layer in t.layers:
        layer.W = 2.0 * np.abs(layer.W)
    return t


def build(kind, sizes, **kw):
    """An EpropTrainer ("eprop"), an excitable OnlineTrainer ("online") or an
    OnlineLIFLayer ("layer") of the given sizes; the last two with threshold
    0.5 unless given."""
    if kind == "eprop":
        return eprop.EpropTrainer(*sizes, **kw)
    kw = {"threshold": 0.5, **kw}
    if kind == "online":
        return excitable(eprop.OnlineTrainer(list(sizes), **kw))
    if kind == "layer":
        return eprop.OnlineLIFLayer(*sizes, **kw)
    raise AssertionError(f"unknown kind {kind!r}")


def dims(t):
    """(inputs, outputs) of a trainer; a layer's outputs are its neurons."""
    if isinstance(t, eprop.EpropTrainer):
        return t.n_inputs, t.n_outputs
    if isinstance(t, eprop.OnlineTrainer):
        return t.layer_sizes[0], t.layer_sizes[-1]
    return t.n_inputs, t.n_neurons


def random_data(lead, n_in, n_out, seed=0, p=0.3):
    """Inputs (spikes of height 2 with probability p) and uniform targets, both
    of leading shape `lead`."""
    rng = np.random.default_rng(seed)
    return (rng.random((*lead, n_in)) < p).astype(np.float64) * 2.0, rng.random((*lead, n_out))


def data(t, T, seed=0, p=0.3):
    """T steps of inputs and targets sized for `t`."""
    return random_data((T,), *dims(t), seed, p)


def spikes(shape, seed, p=0.1, amp=1.0):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float64) * amp


def esc(s):
    return re.escape(s)


# --------------------------------------------------------------------------- state


def bits(a):
    """An array as (dtype, shape, bytes): equal only if bitwise equal (a list
    of arrays, as a deep network's per-layer arrays: a tuple of those)."""
    if isinstance(a, list):
        return tuple(bits(x) for x in a)
    a = np.asarray(a)
    return (a.dtype.str, a.shape, a.tobytes())


def arrays(t):
    """Copies of every weight and state array of a trainer or layer, by name."""
    if isinstance(t, eprop.EpropTrainer):
        return {n: getattr(t, n).copy() for n in EPROP_ARRAYS}
    if isinstance(t, eprop.OnlineTrainer):
        return {f"layers.{i}.{n}": getattr(l, n).copy() for i, l in enumerate(t.layers) for n in LAYER_ARRAYS}
    return {n: getattr(t, n).copy() for n in LAYER_ARRAYS}


def state_bits(net):
    """A state_dict with its arrays as bits (comparable bitwise)."""
    return {k: (bits(v) if isinstance(v, np.ndarray) else v) for k, v in net.state_dict().items()}


def _layer_snapshot(layer):
    return (
        {n: bits(getattr(layer, n)) for n in LAYER_ARRAYS},
        {n: getattr(layer, n) for n in LAYER_SHAPE + LAYER_HYPER},
    )


def snapshot(t, fixed=True):
    """Everything observable about a trainer, layer or network, bitwise: arrays,
    sizes and hyperparameters (and every layer's for OnlineTrainer).

    ``fixed=False`` leaves out what load_state_dict keeps as constructed: the
    seed and an OnlineTrainer's own hyperparameters."""
    if isinstance(t, eprop.EpropTrainer):
        names = EPROP_SHAPE + EPROP_HYPER + (("seed",) if fixed else ())
        values = {n: bits(getattr(t, n)) for n in EPROP_ARRAYS}
        return ("EpropTrainer", values, {n: getattr(t, n) for n in names}, t.memory_per_step)
    if isinstance(t, eprop.OnlineTrainer):
        names = ONLINE_SHAPE + ((*ONLINE_HYPER, "seed") if fixed else ())
        return ("OnlineTrainer", [_layer_snapshot(l) for l in t.layers], {n: getattr(t, n) for n in names})
    if isinstance(t, eprop.OnlineLIFLayer):
        return ("OnlineLIFLayer", _layer_snapshot(t))
    if isinstance(t, eprop.RecurrentNetwork):
        values = {n: bits(getattr(t, n)) for n in RSNN_ARRAYS}
        hyper = {n: getattr(t, n) for n in RSNN_HYPER}
        return ("RecurrentNetwork", values, hyper, state_bits(t), repr(t), t.memory_bytes)
    raise AssertionError(f"unknown trainer {t!r}")


def nonzero_state(t):
    """Whether membrane, traces (and eligibilities) are non-zero, in every layer."""
    if isinstance(t, eprop.EpropTrainer):
        return all(np.any(getattr(t, n) != 0) for n in ("_v", "_trace_in", "_eligibility_rec"))
    layers = t.layers if isinstance(t, eprop.OnlineTrainer) else [t]
    return all(np.any(l._v != 0) and np.any(l._trace != 0) for l in layers)


# What a step-level call (step, apply_learning_signal) says when finite
# values overflowed: it is not undone (documented), unlike every other call.
NOT_UNDONE = "this call does not copy the state"


def assert_unchanged(before, t):
    assert snapshot(t) == before, "a rejected call changed the state"


def rejects(t, call, exc, match=None):
    """Calls ``call(t)``, expects ``exc`` matching ``match`` (any message if
    empty or None), and checks that ``t`` is bitwise unchanged."""
    before = snapshot(t)
    with pytest.raises(exc, match=match or None) as info:
        call(t)
    assert_unchanged(before, t)
    return info


# --------------------------------------------------------------------------- threads


def hammer(ops, n_threads=8, n_ops=2400, seed=1000, timeout=240.0):
    """Runs `n_ops` random `ops` (n_ops / n_threads per thread) from
    `n_threads` threads at once; returns the unexpected exceptions and the
    number of calls made (n_ops when none was raised)."""
    per_thread = n_ops // n_threads
    errors = []
    counts = [0] * n_threads
    barrier = threading.Barrier(n_threads)

    def work(k):
        rng = np.random.default_rng(seed + k)
        barrier.wait()
        for _ in range(per_thread):
            op = ops[int(rng.integers(len(ops)))]
            try:
                op(rng)
            except Exception as e:  # noqa: BLE001 - every exception is unexpected here
                errors.append((op.__name__, repr(e)))
                return
            counts[k] += 1

    ths = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(n_threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(timeout)
        assert not th.is_alive(), "a thread hung"
    return errors, sum(counts)
