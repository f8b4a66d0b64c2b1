"""`eprop.RecurrentNetwork` behaves like the other trainers: constructor and
attributes, bad input (a clear error naming the argument, state unchanged),
update semantics, batches, streams, checkpoints, threads and memory.

The gradient itself is checked against autodiff in test_rsnn_bptt.py and
learning in test_rsnn_tasks.py; here only the API contract is checked."""

import copy
import math
import pickle
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from common import (
    RSNN_ARRAYS,
    RSNN_HYPER,
    RSNN_WEIGHTS,
    bits,
    esc,
    hammer,
    import_eprop,
    rejects,
    snapshot,
    spikes,
    state_bits,
)

eprop = import_eprop()
RN = eprop.RecurrentNetwork

pytestmark = pytest.mark.timeout(120)

N_IN, N_REC, N_OUT, N_AD = 5, 10, 3, 4
# state_dict keys that belong to the network (not to the sequence in flight)
NET_KEYS = ("W_in", "W_rec", "W_out", "b_out", "feedback_matrix", "optimizer_t")


# --------------------------------------------------------------------------- helpers


def make(**kw):
    """A small spiking network: 5 inputs, 10 neurons (4 ALIF), 3 outputs."""
    args = dict(n_adaptive=N_AD, threshold=0.4, tau_adapt=200.0, seed=3)
    args.update(kw)
    n_out = args.pop("n_outputs", N_OUT)
    return RN(N_IN, N_REC, n_out, **args)


def ys(net, shape, seed):
    """Targets of leading shape `shape`: floats (…, n_outputs) for MSE, class
    indices (…) for cross-entropy."""
    rng = np.random.default_rng(seed + 10_000)
    if net.loss == "cross_entropy":
        return rng.integers(0, net.n_outputs, size=shape)
    return rng.normal(scale=0.5, size=tuple(shape) + (net.n_outputs,))


def one_hot(idx, n):
    return np.eye(n)[idx]


def data(net, T, seed, B=None):
    shape = (T,) if B is None else (B, T)
    return spikes(shape + (net.n_inputs,), seed, p=0.3), ys(net, shape, seed)


def net_bits(net):
    d = state_bits(net)
    return {k: v for k, v in d.items() if k in NET_KEYS or k.startswith("adam_")}


def assert_same_state(a, b):
    sa, sb = state_bits(a), state_bits(b)
    assert sa.keys() == sb.keys()
    diff = [k for k in sa if sa[k] != sb[k]]
    assert not diff, f"state differs in {diff}"


def warm(net, seed=0, steps=25):
    """Train one sequence, then stop `steps` steps into another: every piece of
    state is non-zero and (for update='sequence') gradients are pending."""
    x, y = data(net, 80, seed)
    net.train_sequence(x, y)
    x, y = data(net, steps, seed + 1)
    for t in range(steps):
        net.step(x[t], y[t])
    assert np.any(net._spikes) or np.any(net.state_dict()["_zhat"])
    assert np.any(net._v)
    if net.n_adaptive:
        assert np.any(net._a[-net.n_adaptive :])
    return net


# --------------------------------------------------------------------------- constructor


def test_defaults_are_attributes():
    n = RN(5, 10, 3)
    expected = dict(
        n_inputs=5,
        n_neurons=10,
        n_outputs=3,
        n_adaptive=0,
        tau_mem=20.0,
        tau_adapt=2000.0,
        threshold=0.6,
        refractory=5.0,
        dt=1.0,
        tau_out=20.0,
        loss="mse",
        feedback="symmetric",
        feedback_decay=1e-3,
        surrogate_height=0.3,
        reg_rate=0.0,
        target_rate=10.0,
        tau_reg=1000.0,
        optimizer="adam",
        lr=1e-3,
        update="sequence",
        seed=0,
    )
    for k, v in expected.items():
        got = getattr(n, k)
        assert got == v and type(got) is type(v), (k, got)
    assert isinstance(n.beta, float)
    assert n.W_in.shape == (10, 5) and n.W_rec.shape == (10, 10) and n.W_out.shape == (3, 10)
    assert n.b_out.shape == (3,) and n.feedback_matrix.shape == (10, 3)
    assert np.all(n.b_out == 0)
    for a in ("_v", "_a", "_spikes"):
        assert getattr(n, a).shape == (10,) and np.all(getattr(n, a) == 0)


def test_sizes_are_positional_and_the_rest_keyword_only():
    with pytest.raises(TypeError):
        RN(5, 10, 3, 2)  # n_adaptive is keyword-only
    n = RN(n_inputs=2, n_neurons=3, n_outputs=2)
    assert (n.n_inputs, n.n_neurons, n.n_outputs) == (2, 3, 2)


@pytest.mark.parametrize("dt,tau_mem,tau_adapt", [(1.0, 20.0, 2000.0), (0.5, 30.0, 700.0), (2.0, 5.0, 50.0)])
def test_default_beta(dt, tau_mem, tau_adapt):
    n = RN(5, 10, 3, dt=dt, tau_mem=tau_mem, tau_adapt=tau_adapt, beta=None)
    want = 1.7 * (1 - math.exp(-dt / tau_adapt)) / (1 - math.exp(-dt / tau_mem))
    assert n.beta == pytest.approx(want, rel=1e-14)
    assert RN(5, 10, 3, dt=dt, tau_mem=tau_mem, tau_adapt=tau_adapt).beta == n.beta
    assert RN(5, 10, 3, beta=0.25).beta == 0.25
    assert RN(5, 10, 3, beta=0).beta == 0.0


REPR_CONFIGS = [
    {},
    dict(n_adaptive=4, threshold=0.4, loss="cross_entropy", update=3, seed=7),
    dict(
        n_adaptive=10,
        tau_mem=15.5,
        tau_adapt=321.0,
        beta=0.07,
        threshold=0.5,
        refractory=2.0,
        dt=0.5,
        tau_out=12.0,
        feedback="random",
        surrogate_height=0.5,
        reg_rate=0.2,
        target_rate=25.0,
        optimizer="sgd",
        lr=0.05,
        update="step",
        seed=2**32 - 1,
    ),
    # feedback_decay is a hyperparameter like any other
    dict(n_adaptive=2, feedback="adaptive", feedback_decay=0.05, update=1, lr=0.002),
]


@pytest.mark.parametrize("kw", REPR_CONFIGS)
def test_repr_round_trips_the_hyperparameters(kw):
    n = RN(5, 10, 3, **kw)
    r = repr(n)
    assert r.startswith("RecurrentNetwork(")
    m = eval(r, {"RecurrentNetwork": RN})  # noqa: S307 - our own repr
    for k in RSNN_HYPER:
        assert getattr(m, k) == getattr(n, k), f"{k} lost by repr: {r}"
    assert repr(m) == r
    assert snapshot(m) == snapshot(n)


def test_repr_follows_lr():
    n = make()
    n.lr = 0.25
    assert "lr=0.25" in repr(n)
    assert eval(repr(n), {"RecurrentNetwork": RN}).lr == 0.25  # noqa: S307


@pytest.mark.parametrize("feedback", ["symmetric", "random", "adaptive"])
def test_seed_determines_the_weights(feedback):
    a, b = make(feedback=feedback, seed=11), make(feedback=feedback, seed=11)
    c = make(feedback=feedback, seed=12)
    for k in RSNN_WEIGHTS + ("feedback_matrix",):
        assert bits(getattr(a, k)) == bits(getattr(b, k)), k
    for k in ("W_in", "W_rec", "W_out", "feedback_matrix"):
        assert not np.array_equal(getattr(a, k), getattr(c, k)), k
    assert RN(5, 10, 3).seed == 0
    assert bits(RN(5, 10, 3).W_in) == bits(RN(5, 10, 3, seed=0).W_in)
    assert bits(RN(5, 10, 3, seed=np.uint32(5)).W_in) == bits(RN(5, 10, 3, seed=5).W_in)


@pytest.mark.parametrize("seed", [0, 1, 123, 2**32 - 1])
def test_w_rec_diagonal_is_zero(seed):
    n = make(seed=seed, optimizer="sgd", lr=0.5, update="step", reg_rate=1.0)
    assert np.all(np.diag(n.W_rec) == 0)
    assert np.count_nonzero(n.W_rec) == N_REC * (N_REC - 1)
    x, y = data(n, 100, seed)
    n.train_sequence(x, y)
    n.train_batch(np.stack([x, x[::-1]]), np.stack([y, y[::-1]]))
    assert np.all(np.diag(n.W_rec) == 0)
    assert np.all(np.diag(n.state_dict()["W_rec"]) == 0)


def test_lif_neurons_have_no_adaptation():
    n = warm(make(n_adaptive=N_AD))
    assert np.all(n._a[: N_REC - N_AD] == 0)
    assert n.state_dict()["_eps_a_in"].shape == (N_AD, N_IN)
    m = warm(make(n_adaptive=0))
    assert np.all(m._a == 0)


@pytest.mark.parametrize("name", RSNN_ARRAYS)
def test_arrays_are_read_only_copies(name):
    n = warm(make())
    before = snapshot(n)
    a = getattr(n, name)
    assert a.dtype == np.float64 and not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 123.0
    with pytest.raises(ValueError):
        a += 1.0
    c = a.copy()
    c[...] = 7.0
    assert snapshot(n) == before
    assert getattr(n, name) is not a


def test_returned_results_are_independent():
    n = warm(make())
    x = spikes((20, N_IN), 3, p=0.3)
    r = n.step(x[0], ys(n, (), 3))
    out = n.predict_sequence(x, reset=False)
    outs = n.predict_batch(x[None])
    g = n.gradients(x, ys(n, (20,), 3))
    d = n.state_dict()
    e = n.evaluate(x, ys(n, (20,), 4))
    before = snapshot(n)
    returned = list(r.values()) + [out, outs] + list(g.values()) + list(d.values()) + list(e.values())
    for v in returned:
        if isinstance(v, np.ndarray) and v.flags.writeable and v.size:
            v[...] = 9.0
    d["W_in"] = None
    g.clear()
    assert snapshot(n) == before


SHAPES = {
    "W_in": (N_REC, N_IN),
    "W_rec": (N_REC, N_REC),
    "W_out": (N_OUT, N_REC),
    "b_out": (N_OUT,),
    "feedback_matrix": (N_REC, N_OUT),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_setters_copy_and_validate(name):
    n = warm(make(feedback="random"))
    shape = SHAPES[name]
    rng = np.random.default_rng(5)
    v = rng.normal(size=shape)
    setattr(n, name, v)
    want = v.copy()
    if name == "W_rec":
        np.fill_diagonal(want, 0.0)
    assert bits(getattr(n, name)) == bits(want)
    v[...] = 99.0  # the network keeps its own copy
    assert bits(getattr(n, name)) == bits(want)
    # other layouts and dtypes are accepted
    setattr(n, name, np.asfortranarray(want.astype(np.float32)) if want.ndim == 2 else want.astype(np.float32))
    assert np.array_equal(getattr(n, name), want.astype(np.float32).astype(np.float64))
    setattr(n, name, want.tolist())
    assert bits(getattr(n, name)) == bits(want)

    bad_shape = shape[:-1] + (shape[-1] + 1,)
    rejects(n, lambda t: setattr(t, name, np.zeros(bad_shape)), ValueError, esc(name + ": expected shape"))
    rejects(n, lambda t: setattr(t, name, np.zeros(shape + (1,))), ValueError, esc(name + ": expected shape"))
    if len(shape) == 2:
        rejects(
            n, lambda t: setattr(t, name, np.zeros(shape[0] * shape[1])), ValueError, esc(name + ": expected shape")
        )
    for bad in (np.nan, np.inf, -np.inf):
        w = np.zeros(shape)
        w[(0,) * len(shape)] = bad
        rejects(n, lambda t, w=w: setattr(t, name, w), ValueError, esc(name + ": expected finite values"))
    rejects(n, lambda t: setattr(t, name, np.full(shape, "a")), TypeError, esc(name + ": expected a numeric array"))
    rejects(n, lambda t: setattr(t, name, np.zeros(shape, dtype=complex)), TypeError, esc(name))
    rejects(n, lambda t: setattr(t, name, None), (TypeError, ValueError), esc(name))


def test_w_rec_setter_zeroes_the_diagonal_without_touching_the_argument():
    n = make()
    w = np.ones((N_REC, N_REC))
    n.W_rec = w
    assert np.all(np.diag(n.W_rec) == 0) and np.all(n.W_rec[~np.eye(N_REC, dtype=bool)] == 1)
    assert np.all(w == 1)
    assert np.all(np.diag(n.state_dict()["W_rec"]) == 0)


def test_lr_setter():
    n = make()
    n.lr = 0.5
    assert n.lr == 0.5 and n.state_dict()["lr"] == 0.5
    n.lr = 1  # ints accepted
    assert n.lr == 1.0 and isinstance(n.lr, float)
    n.lr = 0.0
    for bad in (-1.0, np.nan, np.inf):
        rejects(n, lambda t, b=bad: setattr(t, "lr", b), ValueError, "lr")
    rejects(n, lambda t: setattr(t, "lr", "fast"), TypeError, "lr")


@pytest.mark.parametrize("name", [h for h in RSNN_HYPER if h != "lr"])
def test_hyperparameters_are_read_only(name):
    n = make()
    with pytest.raises(AttributeError):
        setattr(n, name, getattr(n, name))


# --------------------------------------------------------------------------- constructor errors

CTOR_ERRORS = [
    (dict(loss="l1"), ValueError, "loss: expected 'mse' or 'cross_entropy', got 'l1'"),
    (dict(loss="MSE"), ValueError, "loss:"),
    (dict(feedback="feedback_alignment"), ValueError, "feedback: expected 'symmetric', 'random' or 'adaptive'"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer: expected 'sgd' or 'adam', got 'rmsprop'"),
    (dict(update="online"), ValueError, "update: expected 'sequence', 'step' or an integer k >= 1, got 'online'"),
    (dict(update=0), ValueError, "update: expected 'sequence', 'step' or an integer k >= 1, got 0"),
    (dict(update=-1), ValueError, "update: expected 'sequence', 'step' or an integer k >= 1, got -1"),
    (dict(update=2.5), TypeError, "update:"),
    (dict(update=[1]), TypeError, "update:"),
    (dict(n_adaptive=11), ValueError, "n_adaptive: expected an integer in [0, n_neurons=10], got 11"),
    (dict(n_adaptive=-1), ValueError, "n_adaptive: expected an integer in [0, n_neurons=10], got -1"),
    (dict(tau_mem=-1.0), ValueError, "tau_mem: expected a finite value > 0, got -1"),
    (dict(tau_mem=0.0), ValueError, "tau_mem:"),
    (dict(tau_adapt=-5.0), ValueError, "tau_adapt:"),
    (dict(tau_out=-1.0), ValueError, "tau_out:"),
    (dict(threshold=-0.1), ValueError, "threshold: expected a finite value > 0, got -0.1"),
    (dict(threshold=0.0), ValueError, "threshold:"),
    (dict(dt=-1.0), ValueError, "dt: expected a finite value > 0, got -1"),
    (dict(refractory=-1.0), ValueError, "refractory: expected a finite value >= 0, got -1"),
    (dict(beta=-0.5), ValueError, "beta:"),
    (dict(feedback_decay=-0.1), ValueError, "feedback_decay:"),
    (dict(feedback_decay=1.5), ValueError, "feedback_decay:"),
    (dict(surrogate_height=-1.0), ValueError, "surrogate_height:"),
    (dict(reg_rate=-1.0), ValueError, "reg_rate:"),
    (dict(target_rate=-1.0), ValueError, "target_rate:"),
    (dict(lr=-1e-3), ValueError, "lr:"),
    (dict(seed=-1), ValueError, "seed:"),
    (dict(seed=2**32), ValueError, "seed:"),
    (
        dict(n_outputs=1, loss="cross_entropy"),
        ValueError,
        "n_outputs: expected at least 2 classes for loss='cross_entropy', got 1",
    ),
    (dict(n_outputs=0), ValueError, "n_outputs:"),
    (dict(tau_mem="fast"), TypeError, "tau_mem"),
    (dict(loss=3), TypeError, "loss"),
]
for _name in (
    "tau_mem",
    "tau_adapt",
    "threshold",
    "dt",
    "tau_out",
    "beta",
    "refractory",
    "lr",
    "reg_rate",
    "target_rate",
):
    for _bad in (math.nan, math.inf):
        CTOR_ERRORS.append((dict([(_name, _bad)]), ValueError, _name + ":"))


@pytest.mark.parametrize("kw,exc,msg", CTOR_ERRORS, ids=[repr(c[0]) for c in CTOR_ERRORS])
def test_constructor_rejects(kw, exc, msg):
    kw = dict(kw)
    n_out = kw.pop("n_outputs", N_OUT)
    with pytest.raises(exc, match=esc(msg)):
        RN(N_IN, N_REC, n_out, **kw)


def test_constructor_sizes_rejected():
    for args, name in [
        ((0, 10, 3), "n_inputs"),
        ((5, 0, 3), "n_neurons"),
        ((5, 10, 0), "n_outputs"),
        ((-1, 10, 3), "n_inputs"),
    ]:
        with pytest.raises(ValueError, match=name):
            RN(*args)


def test_update_accepts_the_three_forms():
    assert make().update == "sequence"
    assert make(update="sequence").update == "sequence"
    assert make(update="step").update == "step"
    assert make(update=1).update == "step"
    k = make(update=np.int64(4))
    assert k.update == 4 and type(k.update) is int


# --------------------------------------------------------------------------- bad input, state unchanged

T_BAD = 30


def _bad_calls(loss):
    """(id, call, exception, message) for a warm network with `loss`."""
    T = T_BAD
    x = spikes((T, N_IN), 1, p=0.3)
    ce = loss == "cross_entropy"
    y = np.random.default_rng(1).integers(0, N_OUT, T) if ce else np.random.default_rng(1).normal(size=(T, N_OUT))
    yb = np.stack([y, y])
    xb = np.stack([x, x])
    calls = []

    def add(id_, call, exc, msg):
        calls.append((id_, call, exc, msg))

    def with_value(a, idx, v):
        a = np.array(a, dtype=float)
        a[idx] = v
        return a

    # inputs: shape, rank, NaN/inf, dtype, empty
    for meth in ("train_sequence", "gradients", "evaluate"):
        add(f"{meth}-inputs-width", lambda t, m=meth: getattr(t, m)(x[:, :4], y), ValueError, "inputs: expected shape")
        add(f"{meth}-inputs-1d", lambda t, m=meth: getattr(t, m)(x[0], y), ValueError, "inputs: expected shape")
        add(
            f"{meth}-inputs-nan",
            lambda t, m=meth: getattr(t, m)(with_value(x, (7, 2), np.nan), y),
            ValueError,
            "inputs: expected finite values, got NaN",
        )
        add(
            f"{meth}-inputs-inf",
            lambda t, m=meth: getattr(t, m)(with_value(x, (T - 1, 0), np.inf), y),
            ValueError,
            "inputs: expected finite values, got inf",
        )
        add(
            f"{meth}-inputs-str",
            lambda t, m=meth: getattr(t, m)(x.astype(str), y),
            TypeError,
            "inputs: expected a numeric array",
        )
        add(
            f"{meth}-inputs-object",
            lambda t, m=meth: getattr(t, m)(x.astype(object), y),
            TypeError,
            "inputs: expected a numeric array",
        )
        add(
            f"{meth}-inputs-complex",
            lambda t, m=meth: getattr(t, m)(x.astype(complex), y),
            TypeError,
            "inputs: expected a numeric array",
        )
        add(f"{meth}-inputs-none", lambda t, m=meth: getattr(t, m)(None, y), (TypeError, ValueError), "inputs")
        add(
            f"{meth}-inputs-empty",
            lambda t, m=meth: getattr(t, m)(np.zeros((0, N_IN)), y[:0]),
            ValueError,
            "inputs: expected shape",
        )
        add(f"{meth}-targets-short", lambda t, m=meth: getattr(t, m)(x, y[:-1]), ValueError, "targets: expected")
        add(
            f"{meth}-targets-str",
            lambda t, m=meth: getattr(t, m)(x, np.asarray(y).astype(str)),
            TypeError,
            "targets: expected a numeric array",
        )
        add(
            f"{meth}-mask-short",
            lambda t, m=meth: getattr(t, m)(x, y, mask=np.ones(T - 1, bool)),
            ValueError,
            "mask: expected shape",
        )
        add(
            f"{meth}-mask-2d",
            lambda t, m=meth: getattr(t, m)(x, y, mask=np.ones((T, 1), bool)),
            ValueError,
            "mask: expected shape",
        )
        add(
            f"{meth}-mask-2",
            lambda t, m=meth: getattr(t, m)(x, y, mask=with_value(np.ones(T), 4, 2)),
            ValueError,
            "mask: expected booleans (0 or 1), got 2",
        )
        add(
            f"{meth}-mask-half",
            lambda t, m=meth: getattr(t, m)(x, y, mask=with_value(np.ones(T), 0, 0.5)),
            ValueError,
            "mask: expected booleans",
        )
        add(
            f"{meth}-mask-nan",
            lambda t, m=meth: getattr(t, m)(x, y, mask=with_value(np.ones(T), 3, np.nan)),
            ValueError,
            "mask: expected booleans",
        )
        add(
            f"{meth}-mask-str",
            lambda t, m=meth: getattr(t, m)(x, y, mask=np.full(T, "x")),
            TypeError,
            "mask: expected a numeric array",
        )
    for meth in ("gradients", "evaluate"):
        add(
            f"{meth}-n_threads-0",
            lambda t, m=meth: getattr(t, m)(x, y, n_threads=0),
            ValueError,
            "n_threads: expected None or an integer in [1, 1024], got 0",
        )
        add(f"{meth}-n_threads--1", lambda t, m=meth: getattr(t, m)(x, y, n_threads=-1), ValueError, "n_threads")
        add(
            f"{meth}-batch-empty",
            lambda t, m=meth: getattr(t, m)(np.zeros((0, T, N_IN)), yb[:0]),
            ValueError,
            "inputs: expected shape",
        )
        add(
            f"{meth}-batch-T0",
            lambda t, m=meth: getattr(t, m)(np.zeros((2, 0, N_IN)), yb[:, :0]),
            ValueError,
            "inputs: expected shape",
        )
    add("predict_sequence-width", lambda t: t.predict_sequence(x[:, :4]), ValueError, "inputs: expected shape")
    add(
        "predict_sequence-nan",
        lambda t: t.predict_sequence(with_value(x, (3, 3), np.nan)),
        ValueError,
        "inputs: expected finite values",
    )
    add("predict_sequence-3d", lambda t: t.predict_sequence(xb), ValueError, "inputs: expected shape")
    add(
        "predict_sequence-str",
        lambda t: t.predict_sequence(x.astype(str)),
        TypeError,
        "inputs: expected a numeric array",
    )
    # targets: MSE shapes and values, or class indices
    if ce:
        for bad in (N_OUT, -1, 0.5, np.nan, np.inf, 1e300):
            add(
                f"train_sequence-class-{bad}",
                lambda t, b=bad: t.train_sequence(x, with_value(y, 5, b)),
                ValueError,
                "targets: expected class indices in [0, 2], got",
            )
            add(
                f"train_batch-class-{bad}",
                lambda t, b=bad: t.train_batch(xb, with_value(yb, (1, 5), b)),
                ValueError,
                "targets: expected class indices in [0, 2], got",
            )
            add(
                f"gradients-class-{bad}",
                lambda t, b=bad: t.gradients(x, with_value(y, 0, b)),
                ValueError,
                "targets: expected class indices in [0, 2], got",
            )
            add(
                f"evaluate-class-{bad}",
                lambda t, b=bad: t.evaluate(xb, with_value(yb, (0, T - 1), b)),
                ValueError,
                "targets: expected class indices in [0, 2], got",
            )
            add(
                f"step-class-{bad}",
                lambda t, b=bad: t.step(x[0], b),
                ValueError,
                "target: expected a class index in [0, 2], got",
            )
        add(
            "train_sequence-onehot-width",
            lambda t: t.train_sequence(x, one_hot(y, N_OUT)[:, :2]),
            ValueError,
            "targets: expected",
        )
        add(
            "train_sequence-onehot-nan",
            lambda t: t.train_sequence(x, with_value(one_hot(y, N_OUT), (2, 1), np.nan)),
            ValueError,
            "targets: expected finite values",
        )
        add(
            "train_batch-classes-shape",
            lambda t: t.train_batch(xb, yb[:, :-1]),
            ValueError,
            "targets: expected class indices of shape (2, 30)",
        )
        add(
            "train_sequence-classes-2d-wrong",
            lambda t: t.train_sequence(x, np.zeros((T, 2))),
            ValueError,
            "targets: expected shape",
        )
    else:
        add(
            "train_sequence-targets-width",
            lambda t: t.train_sequence(x, y[:, :2]),
            ValueError,
            "targets: expected shape",
        )
        add("train_sequence-targets-1d", lambda t: t.train_sequence(x, y[:, 0]), ValueError, "targets: expected shape")
        add("train_sequence-targets-3d", lambda t: t.train_sequence(x, y[None]), ValueError, "targets: expected shape")
        for bad in (np.nan, np.inf, -np.inf):
            add(
                f"train_sequence-targets-{bad}",
                lambda t, b=bad: t.train_sequence(x, with_value(y, (T - 1, 2), b)),
                ValueError,
                "targets: expected finite values",
            )
            add(
                f"train_batch-targets-{bad}",
                lambda t, b=bad: t.train_batch(xb, with_value(yb, (1, T - 1, 2), b)),
                ValueError,
                "targets: expected finite values",
            )
            add(
                f"gradients-targets-{bad}",
                lambda t, b=bad: t.gradients(xb, with_value(yb, (1, 0, 0), b)),
                ValueError,
                "targets: expected finite values",
            )
            add(
                f"step-target-{bad}",
                lambda t, b=bad: t.step(x[0], with_value(y[0], 1, b)),
                ValueError,
                "target: expected finite values",
            )
        add(
            "train_batch-targets-width", lambda t: t.train_batch(xb, yb[..., :2]), ValueError, "targets: expected shape"
        )
        add("train_batch-targets-2d", lambda t: t.train_batch(xb, yb[..., 0]), ValueError, "targets: expected shape")
        add("step-target-width", lambda t: t.step(x[0], y[0, :2]), ValueError, "target: expected shape")
        add("step-target-scalar", lambda t: t.step(x[0], 1.0), ValueError, "target: expected shape")
    # step
    add("step-x-width", lambda t: t.step(np.zeros(N_IN + 1)), ValueError, "x: expected shape (5,), got shape (6,)")
    add("step-x-2d", lambda t: t.step(np.zeros((1, N_IN))), ValueError, "x: expected shape (5,)")
    add("step-x-empty", lambda t: t.step([]), ValueError, "x: expected shape (5,), got shape (0,)")
    add(
        "step-x-nan",
        lambda t: t.step(with_value(np.zeros(N_IN), 2, np.nan)),
        ValueError,
        "x: expected finite values, got NaN at index 2",
    )
    add("step-x-inf", lambda t: t.step(with_value(np.zeros(N_IN), 0, -np.inf)), ValueError, "x: expected finite values")
    add("step-x-str", lambda t: t.step(np.full(N_IN, "a")), TypeError, "x: expected a numeric array")
    add("step-target-str", lambda t: t.step(x[0], "a"), TypeError, "target: expected a numeric array")
    # train_batch: shapes, ranks, NaN, masks, threads, empty
    add("train_batch-2d-inputs", lambda t: t.train_batch(x, y), ValueError, "inputs: expected shape")
    add("train_batch-width", lambda t: t.train_batch(xb[..., :4], yb), ValueError, "inputs: expected shape")
    add("train_batch-B-mismatch", lambda t: t.train_batch(xb, yb[:1]), ValueError, "targets: expected")
    add("train_batch-T-mismatch", lambda t: t.train_batch(xb, yb[:, :-1]), ValueError, "targets: expected")
    add(
        "train_batch-nan",
        lambda t: t.train_batch(with_value(xb, (1, 5, 2), np.nan), yb),
        ValueError,
        "inputs: expected finite values",
    )
    add(
        "train_batch-inf",
        lambda t: t.train_batch(with_value(xb, (0, 0, 0), np.inf), yb),
        ValueError,
        "inputs: expected finite values",
    )
    add("train_batch-str", lambda t: t.train_batch(xb.astype(str), yb), TypeError, "inputs: expected a numeric array")
    add(
        "train_batch-empty-B",
        lambda t: t.train_batch(np.zeros((0, T, N_IN)), yb[:0]),
        ValueError,
        "inputs: expected shape",
    )
    add(
        "train_batch-empty-T",
        lambda t: t.train_batch(np.zeros((2, 0, N_IN)), yb[:, :0]),
        ValueError,
        "inputs: expected shape",
    )
    add(
        "train_batch-mask-T",
        lambda t: t.train_batch(xb, yb, mask=np.ones(T + 1, bool)),
        ValueError,
        "mask: expected shape (30,) or (2, 30)",
    )
    add(
        "train_batch-mask-B",
        lambda t: t.train_batch(xb, yb, mask=np.ones((3, T), bool)),
        ValueError,
        "mask: expected shape (30,) or (2, 30)",
    )
    add(
        "train_batch-mask-3d",
        lambda t: t.train_batch(xb, yb, mask=np.ones((2, T, 1), bool)),
        ValueError,
        "mask: expected shape",
    )
    add(
        "train_batch-mask-2",
        lambda t: t.train_batch(xb, yb, mask=with_value(np.ones((2, T)), (1, 3), 2)),
        ValueError,
        "mask: expected booleans (0 or 1), got 2",
    )
    add(
        "train_batch-mask-neg",
        lambda t: t.train_batch(xb, yb, mask=with_value(np.ones(T), 3, -1)),
        ValueError,
        "mask: expected booleans",
    )
    add(
        "train_batch-mask-str",
        lambda t: t.train_batch(xb, yb, mask=np.full(T, "x")),
        TypeError,
        "mask: expected a numeric array",
    )
    add(
        "train_batch-n_threads-0",
        lambda t: t.train_batch(xb, yb, n_threads=0),
        ValueError,
        "n_threads: expected None or an integer in [1, 1024], got 0",
    )
    add("train_batch-n_threads-str", lambda t: t.train_batch(xb, yb, n_threads="2"), TypeError, "")
    add("predict_batch-2d", lambda t: t.predict_batch(x), ValueError, "inputs: expected shape")
    add(
        "predict_batch-nan",
        lambda t: t.predict_batch(with_value(xb, (1, 1, 1), np.nan)),
        ValueError,
        "inputs: expected finite values",
    )
    add("predict_batch-empty", lambda t: t.predict_batch(np.zeros((0, T, N_IN))), ValueError, "inputs: expected shape")
    add(
        "predict_batch-n_threads-0",
        lambda t: t.predict_batch(xb, n_threads=0),
        ValueError,
        "n_threads: expected None or an integer in [1, 1024], got 0",
    )
    add(
        "batch_memory_bytes-0",
        lambda t: t.batch_memory_bytes(0),
        ValueError,
        "batch_size: expected an integer >= 1, got 0",
    )
    add("batch_memory_bytes--3", lambda t: t.batch_memory_bytes(-3), ValueError, "batch_size:")
    # streams: a bad first chunk changes nothing
    add(
        "train_stream-empty",
        lambda t: t.train_stream([]),
        ValueError,
        "chunks: expected at least one chunk, got an empty iterable",
    )
    add(
        "train_stream-not-pair",
        lambda t: t.train_stream([x]),
        ValueError,
        "chunks[0]: expected an (inputs, targets) or (inputs, targets, mask) tuple",
    )
    add(
        "train_stream-nan",
        lambda t: t.train_stream([(with_value(x, (1, 1), np.nan), y)]),
        ValueError,
        "chunks[0] inputs: expected finite values",
    )
    add("train_stream-targets", lambda t: t.train_stream([(x, y[:-1])]), ValueError, "chunks[0] targets: expected")
    add(
        "train_stream-mask",
        lambda t: t.train_stream([(x, y, np.full(T, 2))]),
        ValueError,
        "chunks[0] mask: expected booleans (0 or 1), got 2",
    )
    add(
        "train_stream-mask-len",
        lambda t: t.train_stream([(x, y, np.ones(T - 1))]),
        ValueError,
        "chunks[0] mask: expected shape",
    )
    add(
        "train_stream-empty-chunk",
        lambda t: t.train_stream([(np.zeros((0, N_IN)), y[:0])]),
        ValueError,
        "chunks[0] inputs: expected shape",
    )
    add("train_stream-not-iterable", lambda t: t.train_stream(3), TypeError, "")
    add(
        "predict_stream-nan",
        lambda t: list(t.predict_stream([with_value(x, (0, 0), np.nan)])),
        ValueError,
        "inputs: expected finite values",
    )
    add("predict_stream-width", lambda t: list(t.predict_stream([x[:, :2]])), ValueError, "inputs: expected shape")
    # checkpoints
    add("load_state_dict-not-dict", lambda t: t.load_state_dict([1, 2]), TypeError, "")
    return calls


BAD_MSE = _bad_calls("mse")
BAD_CE = _bad_calls("cross_entropy")


def _bad_net(loss, update):
    return warm(make(loss=loss, update=update, reg_rate=0.3, refractory=2.0, feedback="adaptive"))


_NETS = {}


def _cached_net(loss, update):
    # Building and warming is cheap, but share one prototype per config and
    # test on deep copies so every case starts from the same state.
    key = (loss, update)
    if key not in _NETS:
        _NETS[key] = _bad_net(loss, update)
    return copy.deepcopy(_NETS[key])


@pytest.mark.parametrize("update", ["sequence", 3])
@pytest.mark.parametrize("case", BAD_MSE, ids=[c[0] for c in BAD_MSE])
def test_bad_input_mse(case, update):
    _, call, exc, msg = case
    rejects(_cached_net("mse", update), call, exc, esc(msg))


@pytest.mark.parametrize("case", BAD_CE, ids=[c[0] for c in BAD_CE])
def test_bad_input_cross_entropy(case):
    _, call, exc, msg = case
    rejects(_cached_net("cross_entropy", "step"), call, exc, esc(msg))


def test_step_mask_must_be_a_bool():
    n = _cached_net("mse", "sequence")
    x, y = np.zeros(N_IN), np.zeros(N_OUT)
    for bad in (2, 0.5, "yes", None, np.array([True, False])):
        rejects(n, lambda t, b=bad: t.step(x, y, mask=b), (TypeError, ValueError), "mask")
    for ok in (True, False, np.bool_(True)):
        copy.deepcopy(n).step(x, y, mask=ok)


def test_reset_flag_must_be_a_bool():
    n = _cached_net("mse", "sequence")
    x, y = data(n, 10, 0)
    for bad in (2, "no", None):
        rejects(n, lambda t, b=bad: t.train_sequence(x, y, reset=b), TypeError, "")
        rejects(n, lambda t, b=bad: t.predict_sequence(x, reset=b), TypeError, "")


def test_a_bad_later_chunk_keeps_the_complete_chunks():
    """train_stream documents: on a bad chunk, ValueError and the state after
    the last complete chunk (no end-of-sequence update)."""
    n = make(reg_rate=0.2)
    ref = copy.deepcopy(n)
    x, y = data(n, 60, 4)
    bad = x[40:].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=esc("chunks[1] inputs: expected finite values")):
        n.train_stream([(x[:40], y[:40]), (bad, y[40:])])
    ref.reset()
    for t in range(40):
        ref.step(x[t], y[t])
    assert state_bits(n)["_pending"] == 40
    assert_same_state(n, ref)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_load_state_dict_with_bad_values_changes_nothing(loss):
    n = warm(make(loss=loss, reg_rate=0.1))
    good = n.state_dict()
    other = warm(make(loss=loss, reg_rate=0.1), seed=9)

    def broken(key, value):
        d = dict(good)
        d[key] = value
        return d

    cases = [
        (broken("W_in", np.full((N_REC, N_IN), np.nan)), "state_dict['W_in']: expected finite values"),
        (broken("W_rec", np.zeros((N_REC, N_REC + 1))), "state_dict['W_rec']: expected shape"),
        (broken("_pending", -1), "state_dict['_pending']: expected an integer >= 0"),
        (broken("_refractory", np.full(N_REC, 0.5)), "state_dict['_refractory']"),
        (broken("optimizer_t", -2), "state_dict['optimizer_t']"),
        (broken("lr", -1.0), "lr"),
        (broken("adam_v.W_out", np.zeros((1, 1))), "state_dict['adam_v.W_out']"),
        (broken("_e_sum_rec", np.zeros((1, 1))), "state_dict['_e_sum_rec']"),
        (broken("class", "EpropTrainer"), "class"),
        ({k: v for k, v in good.items() if k != "grad.b_out"}, "grad.b_out"),
    ]
    for d, msg in cases:
        rejects(other, lambda t, d=d: t.load_state_dict(d), (ValueError, KeyError, TypeError), esc(msg))


# --------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("feedback", ["symmetric", "random", "adaptive"])
@pytest.mark.parametrize("reg_rate", [0.0, 0.5])
def test_sequence_sgd_applies_minus_lr_times_the_gradient(loss, feedback, reg_rate):
    n = make(loss=loss, feedback=feedback, reg_rate=reg_rate, optimizer="sgd", lr=1e-5, update="sequence")
    x, y = data(n, 120, 5)
    mask = np.random.default_rng(2).random(120) < 0.7
    for m in (None, mask, None):
        before = {k: getattr(n, k) for k in RSNN_WEIGHTS + ("feedback_matrix",)}
        g = n.gradients(x, y, mask=m)
        assert all(np.any(g[k] != 0) for k in RSNN_WEIGHTS)
        loss_ = n.train_sequence(x, y, mask=m)
        assert loss_ == g["loss"]
        keep = 1 - n.feedback_decay
        for k in RSNN_WEIGHTS:
            want = before[k] - n.lr * g[k]
            if feedback == "adaptive" and k == "W_out":
                # Kolen-Pollack: W_out decays like B
                want = keep * before[k] - n.lr * g[k]
            np.testing.assert_allclose(getattr(n, k), want, rtol=1e-12, atol=0, err_msg=k)
            assert not np.array_equal(getattr(n, k), before[k]), k
        assert np.all(np.diag(g["W_rec"]) == 0)
        if feedback == "adaptive":
            # B receives W_out's change (the same optimizer step) and the same decay
            want = keep * before["feedback_matrix"] - n.lr * g["W_out"].T
            np.testing.assert_allclose(n.feedback_matrix, want, rtol=1e-12, atol=1e-15)
        else:
            assert bits(n.feedback_matrix) == bits(before["feedback_matrix"])


@pytest.mark.parametrize("update", ["step", 1, 4])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_online_updates_change_weights_during_the_sequence(update, loss):
    n = make(loss=loss, update=update, optimizer="sgd", lr=0.2)
    x, y = data(n, 150, 6)
    frozen = n.evaluate(x, y)["loss"]
    assert frozen == pytest.approx(n.gradients(x, y)["loss"], rel=1e-12)
    got = n.train_sequence(x, y)
    assert got != pytest.approx(frozen, rel=1e-9)
    assert n.state_dict()["optimizer_t"] == -(-150 // (1 if update in ("step", 1) else update))


def test_sequence_update_loss_equals_the_frozen_loss():
    for loss in ("mse", "cross_entropy"):
        n = make(loss=loss, lr=0.1)
        x, y = data(n, 150, 6)
        frozen = n.evaluate(x, y)["loss"]
        assert n.train_sequence(x, y) == pytest.approx(frozen, rel=1e-12, abs=0)
        assert n.state_dict()["optimizer_t"] == 1


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("feedback", ["symmetric", "random", "adaptive"])
def test_all_false_mask(loss, feedback):
    n = warm(make(loss=loss, feedback=feedback, reg_rate=0.0))
    x, y = data(n, 100, 7)
    y2 = ys(n, (100,), 99)
    none = np.zeros(100, bool)
    g = n.gradients(x, y, mask=none)
    assert g["loss"] == 0.0
    for k in RSNN_WEIGHTS:
        assert np.all(g[k] == 0), k
    # with regularization only the rate term remains: W_out, b_out zero,
    # W_in/W_rec independent of the targets
    r = warm(make(loss=loss, feedback=feedback, reg_rate=0.5))
    g1 = r.gradients(x, y, mask=none)
    g2 = r.gradients(x, y2, mask=none)
    assert np.all(g1["W_out"] == 0) and np.all(g1["b_out"] == 0)
    assert np.any(g1["W_in"] != 0) and np.any(g1["W_rec"] != 0)
    for k in RSNN_WEIGHTS:
        assert bits(g1[k]) == bits(g2[k]), k
    # training with nothing counted and no regularization leaves the weights
    s = make(loss=loss, feedback=feedback, optimizer="sgd", lr=0.5)
    before = {k: bits(getattr(s, k)) for k in RSNN_WEIGHTS + ("feedback_matrix",)}
    for update_net in (s,):
        assert update_net.train_sequence(x, y, mask=none) == 0.0
        assert update_net.train_batch(np.stack([x, x]), np.stack([y, y2]), mask=none).tolist() == [0.0, 0.0]
    after = {k: bits(getattr(s, k)) for k in RSNN_WEIGHTS}
    if feedback == "adaptive":
        # two updates with a zero gradient: W_out (and B) only decay, twice
        keep = 1 - s.feedback_decay
        w_out0 = np.frombuffer(before["W_out"][2]).reshape(before["W_out"][1])
        assert after.pop("W_out") == bits(keep * (keep * w_out0))
        before.pop("W_out")
    assert after == {k: before[k] for k in after}


@pytest.mark.parametrize("update", ["sequence", "step", 3])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_manual_steps_then_apply_updates_equal_train_sequence(update, optimizer, loss):
    base = make(loss=loss, update=update, optimizer=optimizer, lr=0.01, reg_rate=0.3, feedback="adaptive")
    warm(base)
    base.apply_updates()
    x, y = data(base, 100, 8)
    mask = np.random.default_rng(3).random(100) < 0.8
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    la = a.train_sequence(x, y, mask=mask)
    b.reset()
    w0 = bits(b.W_in)
    total, counted = 0.0, 0
    for t in range(100):
        r = b.step(x[t], y[t], mask=bool(mask[t]))
        total += r["loss"]
        counted += int(mask[t])
    if update == "sequence":
        assert bits(b.W_in) == w0, "update='sequence' must wait for apply_updates"
        assert b.state_dict()["_pending"] == 100
    b.apply_updates()
    assert total / counted == la
    assert_same_state(a, b)
    # nothing pending: a no-op
    before = snapshot(b)
    b.apply_updates()
    assert snapshot(b) == before


def test_reset_keeps_pending_gradients():
    a = make(optimizer="sgd", lr=0.05)
    x, y = data(a, 60, 9)
    b = copy.deepcopy(a)
    for t in range(30):
        a.step(x[t], y[t])
        b.step(x[t], y[t])
    a.reset()
    assert np.all(a._v == 0) and np.all(a._a == 0) and np.all(a._spikes == 0)
    da = a.state_dict()
    assert da["_pending"] == 30 and da["_steps"] == 0
    assert bits(da["grad.W_in"]) == bits(b.state_dict()["grad.W_in"])
    a.apply_updates()
    b.apply_updates()
    for k in RSNN_WEIGHTS:
        assert bits(getattr(a, k)) == bits(getattr(b, k))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_step_returns(loss):
    n = warm(make(loss=loss))
    x, y = data(n, 3, 10)
    r = n.step(x[0], y[0])
    assert set(r) == {"spikes", "output", "loss"}
    assert r["spikes"].shape == (N_REC,) and r["spikes"].dtype == np.float64
    assert set(np.unique(r["spikes"])) <= {0.0, 1.0}
    assert r["output"].shape == (N_OUT,) and r["output"].dtype == np.float64
    assert isinstance(r["loss"], float) and r["loss"] >= 0
    assert bits(r["spikes"]) == bits(n._spikes)
    assert bits(r["output"]) == bits(n.state_dict()["_y"])
    r = n.step(x[1])
    assert set(r) == {"spikes", "output"}
    r = n.step(x[2], y[2], mask=False)
    assert set(r) == {"spikes", "output", "loss"} and r["loss"] == 0.0
    # the output of a step is the output of predict_sequence at that step
    xx = spikes((40, N_IN), 11, p=0.3)
    m = copy.deepcopy(n)
    m.reset()
    outs = np.array([m.step(xx[t])["output"] for t in range(40)])
    assert outs.tobytes() == n.predict_sequence(xx).tobytes()
    if loss == "cross_entropy":
        a, b = copy.deepcopy(n), copy.deepcopy(n)
        ra = a.step(x[0], int(y[0]))
        rb = b.step(x[0], one_hot(y[0], N_OUT))
        assert ra["loss"] == rb["loss"]
        assert_same_state(a, b)
        c = copy.deepcopy(n)
        assert c.step(x[0], np.int64(y[0]))["loss"] == ra["loss"]
        c = copy.deepcopy(n)
        assert c.step(x[0], float(y[0]))["loss"] == ra["loss"]


def test_step_without_target_does_not_learn():
    n = make(update="step", optimizer="sgd", lr=1.0)
    before = {k: bits(getattr(n, k)) for k in RSNN_WEIGHTS}
    for x in spikes((50, N_IN), 12, p=0.3):
        n.step(x)
    n.apply_updates()
    assert {k: bits(getattr(n, k)) for k in RSNN_WEIGHTS} == before
    assert n.state_dict()["_pending"] == 0 and n.state_dict()["optimizer_t"] == 0


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_evaluate(loss):
    n = warm(make(loss=loss))
    before = snapshot(n)
    B, T = 4, 60
    x, y = data(n, T, 13, B=B)
    mask = np.random.default_rng(4).random((B, T)) < 0.6
    r = n.evaluate(x, y, mask=mask)
    assert snapshot(n) == before
    keys = {"loss", "accuracy", "step_accuracy"} if loss == "cross_entropy" else {"loss"}
    assert set(r) == keys
    out = n.predict_batch(x)
    if loss == "mse":
        want = np.sum(0.5 * (out - y) ** 2, axis=-1)[mask].mean()
        assert r["loss"] == pytest.approx(want, rel=1e-12)
    else:
        logp = out - out.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        want = -np.take_along_axis(logp, y[..., None], -1)[..., 0][mask].mean()
        assert r["loss"] == pytest.approx(want, rel=1e-10)
        step_acc = (out.argmax(-1) == y)[mask].mean()
        assert r["step_accuracy"] == pytest.approx(step_acc, rel=1e-15)
        seq = [
            np.argmax((out[b] * mask[b][:, None]).sum(0)) == np.argmax(one_hot(y[b], N_OUT)[mask[b]].sum(0))
            for b in range(B)
        ]
        assert r["accuracy"] == pytest.approx(np.mean(seq), rel=1e-15)
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["step_accuracy"] <= 1
    # one sequence (2-D) equals a batch of one; the batch mean is the mean over counted steps
    r0 = n.evaluate(x[0], y[0], mask=mask[0])
    assert r0["loss"] == n.evaluate(x[:1], y[:1], mask=mask[:1])["loss"]
    assert n.evaluate(x, y, n_threads=1) == n.evaluate(x, y, n_threads=3)
    assert snapshot(n) == before


def test_predict_sequence_reset_flag():
    n = warm(make())
    x = spikes((50, N_IN), 14, p=0.3)
    a = copy.deepcopy(n)
    out_cont = a.predict_sequence(x, reset=False)
    b = copy.deepcopy(n)
    b.reset()
    out_reset = b.predict_sequence(x, reset=False)
    assert out_reset.tobytes() == copy.deepcopy(n).predict_sequence(x).tobytes()
    assert out_cont.tobytes() != out_reset.tobytes()
    # predicting does not learn
    for k in RSNN_WEIGHTS:
        assert bits(getattr(a, k)) == bits(getattr(n, k))
    assert bits(a.state_dict()["grad.W_in"]) == bits(n.state_dict()["grad.W_in"])


# --------------------------------------------------------------------------- train_batch


UPDATES = ["sequence", "step", 3]


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_batch_of_one_equals_train_sequence(update, loss, optimizer):
    n = make(update=update, loss=loss, optimizer=optimizer, lr=0.02, reg_rate=0.3, feedback="adaptive")
    x, y = data(n, 97, 15)
    mask = np.random.default_rng(5).random(97) < 0.75
    a, b = copy.deepcopy(n), copy.deepcopy(n)
    for _ in range(2):
        la = a.train_sequence(x, y, mask=mask)
        lb = b.train_batch(x[None], y[None], mask=mask[None])
        assert lb.shape == (1,) and lb.dtype == np.float64
        assert lb[0] == la
        assert net_bits(a) == net_bits(b)
    assert net_bits(a) != net_bits(n)


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_batch_is_bitwise_independent_of_n_threads(update, loss):
    n = make(update=update, loss=loss, lr=0.01, reg_rate=0.2, feedback="random")
    x, y = data(n, 80, 16, B=5)
    mask = np.random.default_rng(6).random((5, 80)) < 0.7
    results = []
    for th in (1, 2, 3, None):
        c = copy.deepcopy(n)
        losses = c.train_batch(x, y, mask=mask, n_threads=th)
        losses2 = c.train_batch(x[::-1], y[::-1], n_threads=th)
        results.append((losses.tobytes(), losses2.tobytes(), net_bits(c), c.predict_batch(x, n_threads=th).tobytes()))
    assert all(r == results[0] for r in results[1:])


@pytest.mark.parametrize("update", UPDATES)
def test_batch_mask_and_target_forms_agree(update):
    B, T = 3, 70
    n = make(update=update, loss="cross_entropy", lr=0.01)
    x, y = data(n, T, 17, B=B)
    m1 = np.random.default_rng(7).random(T) < 0.6
    results = []
    for targets in (y, one_hot(y, N_OUT), y.astype(np.float64), y.tolist()):
        for mask in (m1, np.tile(m1, (B, 1)), m1.astype(int), m1.astype(float)):
            c = copy.deepcopy(n)
            losses = c.train_batch(x, targets, mask=mask)
            results.append((losses.tobytes(), net_bits(c)))
    assert all(r == results[0] for r in results[1:])
    # an all-True mask is no mask
    a, b = copy.deepcopy(n), copy.deepcopy(n)
    assert a.train_batch(x, y).tobytes() == b.train_batch(x, y, mask=np.ones(T, bool)).tobytes()
    assert net_bits(a) == net_bits(b)


def test_batch_losses_are_the_per_sequence_frozen_losses():
    n = make(update="sequence", loss="mse")
    x, y = data(n, 60, 18, B=4)
    mask = np.random.default_rng(8).random((4, 60)) < 0.5
    frozen = [n.evaluate(x[b], y[b], mask=mask[b])["loss"] for b in range(4)]
    got = copy.deepcopy(n).train_batch(x, y, mask=mask)
    np.testing.assert_allclose(got, frozen, rtol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_predict_batch_rows_equal_predict_sequence(loss):
    n = warm(make(loss=loss))
    before = snapshot(n)
    x = spikes((4, 90, N_IN), 19, p=0.3)
    for th in (1, 2, None):
        out = n.predict_batch(x, n_threads=th)
        assert out.shape == (4, 90, N_OUT) and out.dtype == np.float64
        for b in range(4):
            assert out[b].tobytes() == copy.deepcopy(n).predict_sequence(x[b]).tobytes()
    assert snapshot(n) == before


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("reg_rate", [0.0, 0.4])
def test_batch_gradient_is_the_mean_of_sequence_gradients(loss, reg_rate):
    n = warm(make(loss=loss, reg_rate=reg_rate, feedback="random"))
    before = snapshot(n)
    B, T = 4, 70
    x, y = data(n, T, 20, B=B)
    mask = np.random.default_rng(9).random((B, T)) < 0.7
    g = n.gradients(x, y, mask=mask)
    singles = [n.gradients(x[b], y[b], mask=mask[b]) for b in range(B)]
    for k in RSNN_WEIGHTS:
        acc = singles[0][k].copy()
        for s in singles[1:]:
            acc = acc + s[k]
        want = acc / B
        scale = max(np.abs(want).max(), 1e-300)
        np.testing.assert_allclose(g[k], want, rtol=1e-12, atol=1e-14 * scale, err_msg=k)
    assert g["loss"] == pytest.approx(np.mean([s["loss"] for s in singles]), rel=1e-12)
    # threads do not change it
    g1 = n.gradients(x, y, mask=mask, n_threads=1)
    g3 = n.gradients(x, y, mask=mask, n_threads=3)
    for k in RSNN_WEIGHTS:
        assert bits(g1[k]) == bits(g3[k]) == bits(g[k])
    assert snapshot(n) == before


def test_gradients_accept_class_indices_and_one_hot():
    n = make(loss="cross_entropy")
    x, y = data(n, 50, 21, B=2)
    a = n.gradients(x, y)
    b = n.gradients(x, one_hot(y, N_OUT))
    for k in RSNN_WEIGHTS:
        assert bits(a[k]) == bits(b[k])
    assert set(a) == {"W_in", "W_rec", "W_out", "b_out", "loss"}


# --------------------------------------------------------------------------- streams


def _chunks(T, bounds):
    edges = [0] + list(bounds) + [T]
    return list(zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("update", ["step", 1, 3, 5])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_chunked_train_sequence_equals_one_call(update, loss):
    n = warm(make(update=update, loss=loss, reg_rate=0.2, optimizer="adam", lr=0.01, feedback="adaptive"))
    n.apply_updates()
    T = 300
    x, y = data(n, T, 22)
    k = 1 if update == "step" else update
    # chunk boundaries on multiples of k: a call applies what is left pending
    # at its end, like an update at the end of a sequence
    bounds = [b for b in (1, 30, 31, 90, 150, 151, 240, 299) if b % k == 0]
    a, b = copy.deepcopy(n), copy.deepcopy(n)
    whole = a.train_sequence(x, y)
    total = 0.0
    for i, (s, e) in enumerate(_chunks(T, bounds)):
        total += b.train_sequence(x[s:e], y[s:e], reset=(i == 0)) * (e - s)
    assert total / T == pytest.approx(whole, rel=1e-12)
    assert_same_state(a, b)


@pytest.mark.parametrize("update", ["sequence", "step", 3])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_train_stream_equals_one_train_sequence(update, loss, with_mask):
    n = warm(make(update=update, loss=loss, reg_rate=0.2, feedback="adaptive", lr=0.01))
    T = 250
    x, y = data(n, T, 23)
    mask = np.random.default_rng(10).random(T) < 0.7
    bounds = [1, 2, 50, 51, 133, 200]
    a, b = copy.deepcopy(n), copy.deepcopy(n)
    if with_mask:
        la = a.train_sequence(x, y, mask=mask)
        chunks = [(x[s:e], y[s:e], mask[s:e]) for s, e in _chunks(T, bounds)]
    else:
        la = a.train_sequence(x, y)
        chunks = [(x[s:e], y[s:e]) for s, e in _chunks(T, bounds)]
    lb = b.train_stream(iter(chunks))
    assert lb == la
    assert_same_state(a, b)
    # reset=False continues from the current state, like train_sequence(reset=False)
    x2, y2 = data(n, 40, 24)
    la = a.train_sequence(x2, y2, reset=False)
    lb = b.train_stream(((x2[s:e], y2[s:e]) for s, e in _chunks(40, [7])), reset=False)
    assert la == lb
    assert_same_state(a, b)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_stream_mixes_chunk_forms(loss):
    n = make(loss=loss, update="sequence")
    T = 120
    x, y = data(n, T, 25)
    mask = np.ones(T, bool)
    mask[::4] = False
    a, b = copy.deepcopy(n), copy.deepcopy(n)
    la = a.train_sequence(x, y, mask=mask)
    yy = one_hot(y, N_OUT) if loss == "cross_entropy" else y
    chunks = [
        (x[:30], y[:30], mask[:30]),
        (x[30:60].tolist(), yy[30:60], mask[30:60].astype(int)),
        (x[60:], y[60:], mask[60:]),
    ]
    assert b.train_stream(chunks) == la
    assert_same_state(a, b)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_predict_stream_equals_predict_sequence(loss):
    n = warm(make(loss=loss))
    before = snapshot(n)
    T = 200
    x = spikes((T, N_IN), 26, p=0.3)
    whole = copy.deepcopy(n).predict_sequence(x)
    parts = list(copy.deepcopy(n).predict_stream(x[s:e] for s, e in _chunks(T, [1, 2, 77, 150])))
    assert [p.shape[0] for p in parts] == [1, 1, 75, 73, 50]
    assert np.concatenate(parts).tobytes() == whole.tobytes()
    # reset=False continues the network's current state
    cont = copy.deepcopy(n).predict_sequence(x, reset=False)
    parts = list(copy.deepcopy(n).predict_stream(iter([x[:10], x[10:]]), reset=False))
    assert np.concatenate(parts).tobytes() == cont.tobytes()
    # the stream works on the network itself, lazily
    m = copy.deepcopy(n)
    it = m.predict_stream([x[:5], x[5:9]])
    first = next(it)
    assert first.tobytes() == whole[:5].tobytes()
    assert np.all(m._v == copy.deepcopy(m)._v)
    assert snapshot(n) == before


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_net(update="sequence", optimizer="adam", loss="cross_entropy"):
    n = make(
        update=update,
        optimizer=optimizer,
        loss=loss,
        lr=0.01,
        reg_rate=0.3,
        refractory=2.0,
        feedback="adaptive",
        feedback_decay=0.02,
    )
    return warm(n, steps=37)


def _continue(net, seed):
    x, y = data(net, 90, seed)
    out = [net.train_sequence(x[:50], y[:50], reset=False)]
    out.append(net.train_sequence(x, y))
    for t in range(13):
        out.append(net.step(x[t], y[t])["loss"])
    out.append(net.train_batch(np.stack([x, x[::-1]]), np.stack([y, y[::-1]]), n_threads=2).tolist())
    out.append(net.predict_sequence(x[:30], reset=False).tobytes())
    return out


@pytest.mark.parametrize("update", ["sequence", "step", 4])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_save_load_pickle_deepcopy_continue_bitwise(update, optimizer, tmp_path):
    n = _checkpoint_net(update=update, optimizer=optimizer)
    d = n.state_dict()
    if update == "sequence":
        assert d["_pending"] > 0
    assert np.any(d["_refractory"] > 0) or np.any(d["_spike_count"] > 0) or np.any(d["_rate"] > 0)
    if optimizer == "adam":
        assert np.any(d["adam_v.W_rec"] != 0)
    path = tmp_path / "net.npz"
    n.save(path)
    n.save(str(tmp_path / "net_str.npz"))
    copies = [
        RN.load(path),
        RN.load(str(tmp_path / "net_str.npz")),
        pickle.loads(pickle.dumps(n)),
        copy.deepcopy(n),
        copy.copy(n),
        RN.from_state_dict(n.state_dict()),
    ]
    fresh = make(
        update=update,
        optimizer=optimizer,
        loss="cross_entropy",
        lr=0.5,
        reg_rate=0.3,
        refractory=2.0,
        feedback="adaptive",
        feedback_decay=0.02,
    )
    fresh.load_state_dict(n.state_dict())
    copies.append(fresh)
    for c in copies:
        assert type(c) is RN
        assert snapshot(c) == snapshot(n)
    ref = _continue(n, 27)
    for c in copies:
        assert _continue(c, 27) == ref
        assert snapshot(c) == snapshot(n)


def test_copies_are_independent():
    n = _checkpoint_net()
    c = copy.deepcopy(n)
    p = pickle.loads(pickle.dumps(n))
    before = snapshot(n)
    c.W_in = np.zeros((N_REC, N_IN))
    x, y = data(c, 30, 28)
    c.train_sequence(x, y)
    p.train_sequence(x, y)
    assert snapshot(n) == before


def test_state_dict_is_complete():
    n = _checkpoint_net()
    d = n.state_dict()
    assert d["class"] == "RecurrentNetwork"
    for k in RSNN_HYPER:
        assert k in d, k
        if k != "update":
            assert d[k] == getattr(n, k), k
    for k in RSNN_ARRAYS:
        assert bits(d[k]) == bits(getattr(n, k)), k
    sgd = make(optimizer="sgd")
    assert not any(k.startswith("adam_") for k in sgd.state_dict())
    assert make(update=7).state_dict()["update"] == "7"


MISMATCH = [
    dict(n_adaptive=N_AD - 1),
    dict(loss="mse"),
    dict(optimizer="sgd"),
    dict(update="step"),
    dict(update=2),
    dict(update="sequence"),
    dict(tau_mem=21.0),
    dict(tau_adapt=201.0),
    dict(tau_out=19.0),
    dict(threshold=0.41),
    dict(beta=0.5),
    dict(dt=0.5),
    dict(refractory=0.0),
    dict(feedback="random"),
    dict(feedback_decay=0.03),
    dict(surrogate_height=0.31),
    dict(reg_rate=0.0),
    dict(target_rate=11.0),
    dict(seed=4),
]


@pytest.mark.parametrize("diff", MISMATCH, ids=[repr(d) for d in MISMATCH])
def test_load_state_dict_rejects_another_configuration(diff):
    base = dict(
        update=3,
        optimizer="adam",
        loss="cross_entropy",
        lr=0.01,
        reg_rate=0.3,
        refractory=2.0,
        feedback="adaptive",
        feedback_decay=0.02,
        beta=0.2,
    )
    src = warm(make(**base))
    kw = dict(base)
    kw.update(diff)
    dst = warm(make(**kw), seed=5)
    if "seed" in diff:
        # the seed only draws the initial weights: a checkpoint of another
        # seed loads (and replaces every weight)
        dst.load_state_dict(src.state_dict())
        assert net_bits(dst) == net_bits(src)
        return
    key = next(iter(diff))
    rejects(dst, lambda t: t.load_state_dict(src.state_dict()), ValueError, esc(f"state_dict['{key}']"))
    # and the other way round
    rejects(src, lambda t: t.load_state_dict(dst.state_dict()), ValueError, esc(f"state_dict['{key}']"))


def test_load_state_dict_rejects_other_sizes_and_classes():
    src = _checkpoint_net()
    for n_in, n_rec, n_out in [(N_IN + 1, N_REC, N_OUT), (N_IN, N_REC + 1, N_OUT), (N_IN, N_REC, N_OUT + 1)]:
        dst = RN(n_in, n_rec, n_out, n_adaptive=N_AD, loss="cross_entropy", update="sequence")
        rejects(dst, lambda t: t.load_state_dict(src.state_dict()), ValueError, "state_dict")
    e = eprop.EpropTrainer(N_IN, N_REC, N_OUT)
    rejects(src, lambda t: t.load_state_dict(e.state_dict()), ValueError, "class")
    with pytest.raises(ValueError):
        e.load_state_dict(src.state_dict())


_RESUME_CODE = textwrap.dedent(
    """
    import sys, time, importlib
    import numpy as np
    for _ in range(10):
        try:
            eprop = importlib.import_module("eprop")
            break
        except ImportError:
            time.sleep(1.0)
    folder, start = sys.argv[1], int(sys.argv[2])
    t = eprop.RecurrentNetwork.load(folder + "/mid.npz")
    x = np.load(folder + "/x.npy")
    y = np.load(folder + "/y.npy")
    bounds = np.load(folder + "/bounds.npy")
    losses = []
    for a, b in zip(bounds[start:-1], bounds[start + 1:]):
        losses.append(t.train_sequence(x[a:b], y[a:b], reset=False))
    losses.append(t.train_sequence(x[:100], y[:100]))
    np.save(folder + "/losses.npy", np.array(losses))
    t.save(folder + "/final.npz")
    """
)


@pytest.mark.parametrize("update", ["sequence", "step", 5])
def test_resume_in_a_new_process(update, tmp_path):
    n = make(
        update=update,
        optimizer="adam",
        loss="cross_entropy",
        lr=0.01,
        reg_rate=0.2,
        refractory=1.0,
        feedback="adaptive",
    )
    T = 400
    x, y = data(n, T, 29)
    bounds = np.array([0, 1, 135, 140, 265, 330, 400])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "bounds.npy", bounds)
    stop = 3

    ref = copy.deepcopy(n)
    ref_losses = [
        ref.train_sequence(x[a:b], y[a:b], reset=(k == 0)) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]
    ref_losses.append(ref.train_sequence(x[:100], y[:100]))

    part = copy.deepcopy(n)
    first = [
        part.train_sequence(x[a:b], y[a:b], reset=(k == 0))
        for k, (a, b) in enumerate(zip(bounds[:stop], bounds[1 : stop + 1]))
    ]
    assert np.any(part._v != 0) and part.state_dict()["_steps"] == bounds[stop]
    part.save(tmp_path / "mid.npz")
    del part
    r = subprocess.run(
        [sys.executable, "-c", _RESUME_CODE, str(tmp_path), str(stop)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    got = first + list(np.load(tmp_path / "losses.npy"))
    assert np.array(got).tobytes() == np.array(ref_losses).tobytes()
    final = RN.load(tmp_path / "final.npz")
    assert_same_state(final, ref)
    assert snapshot(final) == snapshot(ref)


def test_pickle_across_a_process():
    n = _checkpoint_net()
    blob = pickle.dumps(n)
    code = textwrap.dedent(
        """
        import pickle, sys
        import numpy as np
        t = pickle.loads(sys.stdin.buffer.read())
        x = (np.random.default_rng(0).random((40, t.n_inputs)) < 0.3).astype(float)
        sys.stdout.write(t.predict_sequence(x, reset=False).tobytes().hex())
        """
    )
    r = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode()
    x = (np.random.default_rng(0).random((40, N_IN)) < 0.3).astype(float)
    assert r.stdout.decode() == n.predict_sequence(x, reset=False).tobytes().hex()


# --------------------------------------------------------------------------- threads


@pytest.mark.timeout(90)
def test_shared_network_from_eight_threads():
    t = make(loss="cross_entropy", update="sequence", lr=1e-3, reg_rate=0.1, refractory=1.0, feedback="adaptive")
    base = {k: getattr(t, k).copy() for k in ("W_in", "W_rec", "W_out", "b_out", "feedback_matrix")}
    snap = t.state_dict()

    def x_(rng, T=None):
        shape = (N_IN,) if T is None else (T, N_IN)
        return (rng.random(shape) < 0.3).astype(np.float64)

    def y_(rng, T=None):
        return rng.integers(0, N_OUT, size=() if T is None else (T,))

    def step_target(rng):
        r = t.step(x_(rng), int(y_(rng)), mask=bool(rng.integers(2)))
        assert r["output"].shape == (N_OUT,) and np.isfinite(r["loss"])

    def step_free(rng):
        r = t.step(x_(rng))
        assert r["spikes"].shape == (N_REC,) and "loss" not in r

    def train_sequence(rng):
        T = int(rng.integers(1, 50))
        m = rng.random(T) < 0.8
        assert np.isfinite(t.train_sequence(x_(rng, T), y_(rng, T), mask=m, reset=bool(rng.integers(2))))

    def predict_sequence(rng):
        T = int(rng.integers(1, 50))
        assert t.predict_sequence(x_(rng, T), reset=bool(rng.integers(2))).shape == (T, N_OUT)

    def train_batch(rng):
        B, T = int(rng.integers(1, 4)), int(rng.integers(1, 40))
        x = (rng.random((B, T, N_IN)) < 0.3).astype(np.float64)
        losses = t.train_batch(x, rng.integers(0, N_OUT, (B, T)), n_threads=2)
        assert losses.shape == (B,) and np.all(np.isfinite(losses))

    def predict_batch(rng):
        x = x_(rng, int(rng.integers(1, 40)))
        out = t.predict_batch(np.stack([x, x]), n_threads=2)
        np.testing.assert_array_equal(out[0], out[1])  # one call is atomic

    def gradients(rng):
        T = int(rng.integers(1, 30))
        g = t.gradients(x_(rng, T), y_(rng, T))
        assert np.all(np.diag(g["W_rec"]) == 0)

    def evaluate(rng):
        T = int(rng.integers(1, 30))
        assert 0 <= t.evaluate(x_(rng, T), y_(rng, T))["accuracy"] <= 1

    def getters(rng):
        assert np.all(np.diag(t.W_rec) == 0), "W_rec read with a non-zero diagonal"
        for k in RSNN_ARRAYS:
            assert np.all(np.isfinite(getattr(t, k)))
        assert t.memory_bytes > 0
        repr(t)

    def setters(rng):
        k = ("W_in", "W_rec", "W_out", "b_out", "feedback_matrix")[int(rng.integers(5))]
        w = base[k] * (0.9 + 0.2 * rng.random(base[k].shape))
        if k == "W_rec":
            w = w + 0.1  # the setter zeroes the diagonal
        setattr(t, k, w)
        if rng.integers(4) == 0:
            t.lr = float(rng.uniform(0, 2e-3))

    def state_roundtrip(rng):
        if rng.integers(2):
            d = t.state_dict()
            assert np.all(np.diag(d["W_rec"]) == 0)
            t.load_state_dict(d)
        else:
            t.load_state_dict(snap)

    def reset(rng):
        t.reset()

    def apply_updates(rng):
        t.apply_updates()

    ops = [
        step_target,
        step_free,
        train_sequence,
        predict_sequence,
        train_batch,
        predict_batch,
        gradients,
        evaluate,
        getters,
        setters,
        state_roundtrip,
        reset,
        apply_updates,
    ]
    errors, calls = hammer(ops, seed=2000)
    assert not errors, errors[:5]
    assert calls == 2400
    d = t.state_dict()
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            assert np.all(np.isfinite(v)), k
    assert np.all(np.diag(t.W_rec) == 0)
    c = copy.deepcopy(t)
    x = (np.random.default_rng(0).random((60, N_IN)) < 0.3).astype(float)
    assert c.predict_sequence(x, reset=False).tobytes() == t.predict_sequence(x, reset=False).tobytes()
    assert c.predict_sequence(x).tobytes() == t.predict_sequence(x).tobytes()
    assert_same_state(c, t)


def test_two_threads_on_two_networks_give_the_sequential_results():
    nets = [make(update=u, lr=0.01) for u in ("step", "sequence")]
    refs = [copy.deepcopy(n) for n in nets]
    x, y = data(nets[0], 300, 30)

    def work(n):
        for _ in range(5):
            n.train_sequence(x, y)
            n.train_batch(np.stack([x, x]), np.stack([y, y]), n_threads=2)

    for r in refs:
        work(r)
    ths = [threading.Thread(target=work, args=(n,)) for n in nets]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
        assert not th.is_alive()
    for n, r in zip(nets, refs):
        assert_same_state(n, r)


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("update", ["sequence", "step", 7])
@pytest.mark.parametrize("reg_rate", [0.0, 0.3])
def test_memory_is_constant_in_sequence_length(update, reg_rate):
    a = make(update=update, reg_rate=reg_rate, loss="cross_entropy")
    b = copy.deepcopy(a)
    m0, s0 = a.memory_bytes, a.memory_per_step
    assert isinstance(m0, int) and m0 > 0 and isinstance(s0, int) and s0 > 0
    xa, ya = data(a, 10, 31)
    xb, yb = data(b, 10_000, 32)
    a.train_sequence(xa, ya)
    b.train_sequence(xb, yb)
    b.train_stream((xb[i : i + 1000], yb[i : i + 1000]) for i in range(0, 10_000, 1000))
    list(b.predict_stream(xb[i : i + 2500] for i in range(0, 10_000, 2500)))
    b.predict_sequence(xb)
    assert a.memory_bytes == b.memory_bytes == m0
    assert a.memory_per_step == b.memory_per_step == s0
    # weights, Adam moments and at least the per-synapse eligibilities are counted
    n_syn = N_REC * (N_IN + N_REC)
    assert m0 >= 8 * (3 * n_syn + 2 * n_syn)


def test_memory_counts_adam_and_regularization():
    sgd, adam = make(optimizer="sgd"), make(optimizer="adam")
    n_par = N_REC * N_IN + N_REC * N_REC + N_OUT * N_REC + N_OUT
    assert adam.memory_bytes - sgd.memory_bytes == 2 * 8 * n_par
    plain, reg = make(reg_rate=0.0), make(reg_rate=0.1)
    assert reg.memory_bytes - plain.memory_bytes == 8 * N_REC * (N_IN + N_REC)


@pytest.mark.parametrize("update", ["sequence", "step", 3])
def test_batch_memory_is_linear_in_batch_size(update):
    n = make(update=update, reg_rate=0.2)
    sizes = [1, 2, 3, 4, 8, 16, 100]
    mem = [n.batch_memory_bytes(b) for b in sizes]
    assert all(isinstance(m, int) for m in mem)
    per = mem[1] - mem[0]
    assert per > 0
    for b, m in zip(sizes, mem):
        assert m == mem[0] + per * (b - 1), (b, m)
    # a sequence in flight costs at least its eligibility traces
    assert per >= 8 * N_REC * (N_IN + N_REC)
    assert n.batch_memory_bytes(np.int64(5)) == mem[0] + 4 * per
    # independent of training
    x, y = data(n, 500, 33, B=2)
    n.train_batch(x, y)
    assert [n.batch_memory_bytes(b) for b in sizes] == mem
