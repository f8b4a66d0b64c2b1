"""Numerical parity of eprop against the oracle, sc_neurocore.online_learning 3.16.0.

Every comparison is float64 with ``rtol=1e-9, atol=1e-9``; spikes are compared
exactly, initial weights bitwise.

Two kinds of learning runs are checked:

* lockstep: both trainers are stepped side by side with learning for T=500
  steps; every step's returned dict (spikes exact, output and loss close) and
  the weights after every step are compared, then the oracle's weights are
  copied into ours before the next step. Each step is thus checked from the
  same weights, and the final state (membrane, traces, eligibilities) after
  500 steps is compared too. This holds at 1e-9 with a margin of about 1e5
  for every size.
* free running: ``train_sequence`` on both, and everything compared at the
  end. The learning rule is numerically unstable: the oracle against a copy
  of itself whose matrix-vector sums are merely taken in another order (or
  whose W_in is moved by one ulp) drifts past 1e-9 within 500 steps on dense
  rate inputs (for OnlineTrainer([100, 256, 10]) by a factor of about 1e3),
  and on spike inputs too at the larger EpropTrainer sizes. Numbers that
  differ only in the order of a BLAS sum cannot stay within 1e-9 there, so
  free-running runs are 500 steps where the rule is stable enough (spike
  inputs, and the smallest sizes) and 100-200 steps elsewhere (see
  ``EPROP_T_FREE``, ``ONLINE_T_FREE``, ``free_steps``); the full 500 steps
  are covered at every size by the lockstep tests and by
  ``test_train_sequence_is_the_step_loop`` (train_sequence equals our own
  step loop bitwise at T=500). Between phases of one test (train, then
  predict, ...) the weights are re-synchronised the same way (``sync_*``).
  The lengths were checked to hold with a margin over several data seeds.
"""

import eprop
import numpy as np
import pytest
from sc_neurocore.online_learning import EpropTrainer as RefEprop
from sc_neurocore.online_learning import OnlineLIFLayer as RefLayer
from sc_neurocore.online_learning import OnlineTrainer as RefOnline

RTOL = 1e-9
ATOL = 1e-9
T = 500

EPROP_SHAPES = [(1, 1, 1), (4, 16, 2), (40, 100, 3), (100, 256, 10)]
ONLINE_SIZES = [[4, 16, 2], [8, 16, 8, 4], [100, 256, 10]]
LAYER_SHAPES = [(1, 1), (5, 3), (30, 20), (100, 64)]
KINDS = ["spikes", "rates"]

EPROP_WEIGHTS = ("W_in", "W_rec", "W_out")
EPROP_STATE = ("_v", "_trace_in", "_trace_rec", "_eligibility_in", "_eligibility_rec")
LAYER_STATE = ("W", "_v", "_trace")


# --------------------------------------------------------------------------- helpers


def close(ours, theirs, what=""):
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


def exact(ours, theirs, what=""):
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=what)


def make_inputs(kind, steps, n, seed):
    rng = np.random.default_rng(seed)
    if kind == "spikes":
        return (rng.random((steps, n)) < 0.1).astype(np.float64)
    return rng.random((steps, n))


def make_targets(steps, n, seed, binary=False):
    rng = np.random.default_rng(seed + 1000)
    if binary:
        return (rng.random((steps, n)) < 0.2).astype(np.float64)
    return rng.random((steps, n))


def assert_eprop_state(ours, ref, what=""):
    for name in EPROP_WEIGHTS + EPROP_STATE:
        close(getattr(ours, name), getattr(ref, name), f"{what} {name}")
    exact(ours._spikes, ref._spikes, f"{what} _spikes")


def assert_online_state(ours, ref, what=""):
    assert len(ours.layers) == len(ref.layers)
    for i, (lo, lr_) in enumerate(zip(ours.layers, ref.layers)):
        assert_layer_state(lo, lr_, f"{what} layer {i}")


def assert_layer_state(ours, ref, what=""):
    for name in LAYER_STATE:
        close(getattr(ours, name), getattr(ref, name), f"{what} {name}")
    exact(ours._spikes, ref._spikes, f"{what} _spikes")


def compare_step(ours, ref, x, target, what):
    """One step of both, with a target or without; spikes exactly (an
    OnlineTrainer's output is its output layer's spikes), the rest to the
    tolerance."""
    if target is None:
        ro = ours.step(x)
        rr = ref.step(x)
    else:
        ro = ours.step(x, target)
        rr = ref.step(x, target=target)
    assert set(ro) == set(rr), what
    if isinstance(ours, eprop.EpropTrainer):
        exact(ro["spikes"], rr["spikes"], f"{what} spikes")
        close(ro["output"], rr["output"], f"{what} output")
    else:
        exact(ro["output"], rr["output"], f"{what} output")
    if "loss" in rr:
        assert isinstance(ro["loss"], float)
        close(ro["loss"], rr["loss"], f"{what} loss")
    return ro, rr


def sync_eprop(ours, ref):
    """Copy the oracle's weights into ours (after they were compared), so that
    the next phase is checked from identical weights."""
    ours.W_in = ref.W_in
    ours.W_rec = ref.W_rec
    ours.W_out = ref.W_out


def sync_online(ours, ref):
    for lo, lr_ in zip(ours.layers, ref.layers):
        lo.W = lr_.W


def lockstep_eprop(ours, ref, X, Y):
    """Step both with learning; compare every step; resync weights from the oracle."""
    for t in range(len(X)):
        compare_step(ours, ref, X[t], Y[t], f"step {t}")
        for name in EPROP_WEIGHTS:
            close(getattr(ours, name), getattr(ref, name), f"step {t} {name}")
        sync_eprop(ours, ref)
    assert_eprop_state(ours, ref, f"after {len(X)} lockstep steps")


def lockstep_online(ours, ref, X, Y):
    for t in range(len(X)):
        compare_step(ours, ref, X[t], Y[t], f"step {t}")
        for i, (lo, lr_) in enumerate(zip(ours.layers, ref.layers)):
            close(lo.W, lr_.W, f"step {t} layer {i} W")
        sync_online(ours, ref)
    assert_online_state(ours, ref, f"after {len(X)} lockstep steps")


def ref_online_predict(ref, X):
    """The oracle's OnlineTrainer has no predict_sequence: reset, then step without targets."""
    ref.reset()
    return np.array([ref.step(x)["output"] for x in X])


# --------------------------------------------------------------------------- initial weights


@pytest.mark.parametrize("shape", EPROP_SHAPES)
def test_eprop_initial_weights_bitwise(shape):
    ours, ref = eprop.EpropTrainer(*shape), RefEprop(*shape)
    for name in EPROP_WEIGHTS:
        assert getattr(ours, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=name)
    for name in EPROP_STATE + ("_spikes",):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=name)


@pytest.mark.parametrize("sizes", ONLINE_SIZES + [[1, 1], [3, 7, 2, 9, 1]])
def test_online_initial_weights_bitwise(sizes):
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    assert ours.n_layers == ref.n_layers
    for lo, lr_ in zip(ours.layers, ref.layers):
        for name in ("W", "_v", "_spikes", "_trace"):
            np.testing.assert_array_equal(getattr(lo, name), getattr(lr_, name), err_msg=name)


@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_layer_initial_weights_bitwise(shape):
    ours, ref = eprop.OnlineLIFLayer(*shape), RefLayer(*shape)
    for name in ("W", "_v", "_spikes", "_trace"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=name)


@pytest.mark.parametrize("shape", EPROP_SHAPES)
def test_eprop_memory_per_step(shape):
    assert eprop.EpropTrainer(*shape).memory_per_step == RefEprop(*shape).memory_per_step


@pytest.mark.parametrize("sizes", ONLINE_SIZES + [[1, 1], [3, 7, 2, 9, 1]])
def test_online_memory_per_step(sizes):
    assert eprop.OnlineTrainer(sizes).memory_per_step == RefOnline(sizes).memory_per_step


# --------------------------------------------------------------------------- EpropTrainer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", EPROP_SHAPES)
def test_eprop_lockstep_learning(shape, kind):
    n_in, _, n_out = shape
    ours, ref = eprop.EpropTrainer(*shape), RefEprop(*shape)
    X = make_inputs(kind, T, n_in, seed=1)
    Y = make_targets(T, n_out, seed=1)
    lockstep_eprop(ours, ref, X, Y)


# Free-running lengths: 500 where the rule is numerically stable enough for
# 1e-9 with a wide margin over data seeds, shorter where the oracle itself
# drifts past 1e-9 under a mere reordering of its sums (see module docstring).
EPROP_T_FREE = {
    ((1, 1, 1), "spikes"): 500,
    ((1, 1, 1), "rates"): 500,
    ((4, 16, 2), "spikes"): 500,
    ((4, 16, 2), "rates"): 200,
    ((40, 100, 3), "spikes"): 200,
    ((40, 100, 3), "rates"): 200,
    ((100, 256, 10), "spikes"): 200,
    ((100, 256, 10), "rates"): 200,
}


def free_steps(kind):
    """Free-running length for the small networks (<= ~30 neurons)."""
    return T if kind == "spikes" else 200


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", EPROP_SHAPES)
def test_eprop_train_sequence(shape, kind):
    n_in, _, n_out = shape
    steps = EPROP_T_FREE[(shape, kind)]
    ours, ref = eprop.EpropTrainer(*shape), RefEprop(*shape)
    X = make_inputs(kind, steps, n_in, seed=1)
    Y = make_targets(steps, n_out, seed=1)
    loss_o = ours.train_sequence(X, Y)
    loss_r = ref.train_sequence(X, Y)
    assert isinstance(loss_o, float)
    close(loss_o, loss_r, "mean loss")
    assert_eprop_state(ours, ref, "after train_sequence")
    # a second sequence starts from reset state with the learned weights
    sync_eprop(ours, ref)
    X2 = make_inputs(kind, 50, n_in, seed=2)
    Y2 = make_targets(50, n_out, seed=2)
    close(ours.train_sequence(X2, Y2), ref.train_sequence(X2, Y2), "second mean loss")
    assert_eprop_state(ours, ref, "after second train_sequence")
    sync_eprop(ours, ref)
    close(ours.predict_sequence(X2), ref.predict_sequence(X2), "predict_sequence")
    assert_eprop_state(ours, ref, "after predict_sequence")


@pytest.mark.parametrize("shape", [(4, 16, 2), (100, 256, 10)])
def test_train_sequence_is_the_step_loop(shape):
    """train_sequence (loop in Rust) == reset + step(x, y) loop, bitwise, at T=500."""
    n_in, _, n_out = shape
    X = make_inputs("rates", T, n_in, seed=3)
    Y = make_targets(T, n_out, seed=3)
    a, b = eprop.EpropTrainer(*shape), eprop.EpropTrainer(*shape)
    loss = a.train_sequence(X, Y)
    b.reset()
    total = 0.0
    for t in range(T):
        total += b.step(X[t], Y[t])["loss"]
    assert loss == total / T
    for name in EPROP_WEIGHTS + EPROP_STATE + ("_spikes",):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)

    sizes = [n_in, shape[1], n_out]
    Yb = (Y > 0.8).astype(np.float64)
    a, b = eprop.OnlineTrainer(sizes), eprop.OnlineTrainer(sizes)
    loss = a.train_sequence(X, Yb)
    b.reset()
    total = 0.0
    for t in range(T):
        total += b.step(X[t], Yb[t])["loss"]
    assert loss == total / T
    for la, lb in zip(a.layers, b.layers):
        for name in ("W", "_v", "_spikes", "_trace"):
            np.testing.assert_array_equal(getattr(la, name), getattr(lb, name), err_msg=name)


EPROP_HYPER = [
    dict(dt=0.5),
    dict(dt=2.0),
    dict(tau_mem=10.0, tau_trace=35.0),
    dict(threshold=0.7),
    dict(lr=0.05),
    dict(tau_mem=15.0, tau_trace=5.0, threshold=0.7, lr=0.003, dt=0.5),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hyper", EPROP_HYPER, ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()))
def test_eprop_hyperparameters(hyper, kind):
    shape = (40, 100, 3)
    ours, ref = eprop.EpropTrainer(*shape, **hyper), RefEprop(*shape, **hyper)
    for k, v in hyper.items():
        assert getattr(ours, k) == v
    X = make_inputs(kind, T, shape[0], seed=4)
    Y = make_targets(T, shape[2], seed=4)
    lockstep_eprop(ours, ref, X, Y)

    shape = (4, 16, 2)
    ours, ref = eprop.EpropTrainer(*shape, **hyper), RefEprop(*shape, **hyper)
    X = make_inputs(kind, free_steps(kind), shape[0], seed=5)
    Y = make_targets(free_steps(kind), shape[2], seed=5)
    close(ours.train_sequence(X, Y), ref.train_sequence(X, Y), "mean loss")
    assert_eprop_state(ours, ref, "after train_sequence")
    close(ours.predict_sequence(X[:100]), ref.predict_sequence(X[:100]), "predict_sequence")


def test_eprop_positional_hyperparameters():
    args = (6, 20, 3, 12.0, 30.0, 0.8, 0.02, 0.7)
    ours, ref = eprop.EpropTrainer(*args), RefEprop(*args)
    X = make_inputs("rates", 200, 6, seed=6)
    Y = make_targets(200, 3, seed=6)
    close(ours.train_sequence(X, Y), ref.train_sequence(X, Y))
    assert_eprop_state(ours, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_eprop_user_weights(kind):
    rng = np.random.default_rng(7)
    for shape in [(4, 16, 2), (40, 100, 3)]:
        n_in, n_rec, n_out = shape
        W_in = rng.normal(0.0, 0.6, (n_rec, n_in))
        W_rec = rng.normal(0.0, 0.2, (n_rec, n_rec))
        np.fill_diagonal(W_rec, 0.0)
        W_out = rng.normal(0.0, 0.3, (n_out, n_rec))
        ours, ref = eprop.EpropTrainer(*shape), RefEprop(*shape)
        for name, w in (("W_in", W_in), ("W_rec", W_rec), ("W_out", W_out)):
            setattr(ours, name, w)
            setattr(ref, name, w.copy())  # the oracle updates its arrays in place
            np.testing.assert_array_equal(getattr(ours, name), w)
        X = make_inputs(kind, T, n_in, seed=8)
        Y = make_targets(T, n_out, seed=8)
        if shape == (4, 16, 2):
            n = free_steps(kind)
            close(ours.train_sequence(X[:n], Y[:n]), ref.train_sequence(X[:n], Y[:n]), "mean loss")
            assert_eprop_state(ours, ref, "after train_sequence")
        else:
            lockstep_eprop(ours, ref, X, Y)
        close(ours.predict_sequence(X[:100]), ref.predict_sequence(X[:100]), "predict")


@pytest.mark.parametrize("kind", KINDS)
def test_eprop_mixed_use(kind):
    shape = (5, 24, 3)
    ours, ref = eprop.EpropTrainer(*shape), RefEprop(*shape)
    rng = np.random.default_rng(9)
    X = make_inputs(kind, 200, 5, seed=9)
    Y = make_targets(200, 3, seed=9)
    learn = rng.random(200) < 0.5
    for t in range(200):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"mixed step {t}")
    assert_eprop_state(ours, ref, "after mixed steps")
    sync_eprop(ours, ref)
    # change hyperparameters on both mid-run
    ours.lr, ref.lr = 0.03, 0.03
    ours.threshold, ref.threshold = 0.8, 0.8
    for t in range(50):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"after change {t}")
    ours.lr, ref.lr = 0.01, 0.01
    ours.threshold, ref.threshold = 1.0, 1.0
    sync_eprop(ours, ref)
    ours.reset()
    ref.reset()
    assert_eprop_state(ours, ref, "after reset")
    n = free_steps(kind)
    X2 = make_inputs(kind, n, 5, seed=10)
    Y2 = make_targets(n, 3, seed=10)
    close(ours.train_sequence(X2, Y2), ref.train_sequence(X2, Y2), "mean loss")
    assert_eprop_state(ours, ref, "after train_sequence")
    sync_eprop(ours, ref)
    pred_o = ours.predict_sequence(X2)
    pred_r = ref.predict_sequence(X2)
    assert pred_o.shape == (n, 3)
    close(pred_o, pred_r, "predict_sequence")
    assert_eprop_state(ours, ref, "after predict_sequence")
    # stepping on after predict_sequence continues from its final state
    for t in range(20):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"post step {t}")


# --------------------------------------------------------------------------- OnlineTrainer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", ONLINE_SIZES, ids=str)
def test_online_lockstep_learning(sizes, kind):
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    X = make_inputs(kind, T, sizes[0], seed=11)
    Y = make_targets(T, sizes[-1], seed=11, binary=True)
    lockstep_online(ours, ref, X, Y)


ONLINE_T_FREE = {
    ("[4, 16, 2]", "spikes"): 500,
    ("[4, 16, 2]", "rates"): 500,
    ("[8, 16, 8, 4]", "spikes"): 500,
    ("[8, 16, 8, 4]", "rates"): 200,
    ("[100, 256, 10]", "spikes"): 500,
    ("[100, 256, 10]", "rates"): 100,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", ONLINE_SIZES, ids=str)
def test_online_train_sequence(sizes, kind):
    steps = ONLINE_T_FREE[(str(sizes), kind)]
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    X = make_inputs(kind, steps, sizes[0], seed=1)
    Y = make_targets(steps, sizes[-1], seed=1, binary=True)
    loss_o = ours.train_sequence(X, Y)
    loss_r = ref.train_sequence(X, Y)
    assert isinstance(loss_o, float)
    close(loss_o, loss_r, "mean loss")
    assert_online_state(ours, ref, "after train_sequence")
    sync_online(ours, ref)
    X2 = make_inputs(kind, 50, sizes[0], seed=2)
    pred = ours.predict_sequence(X2)
    assert pred.shape == (50, sizes[-1])
    exact(pred, ref_online_predict(ref, X2), "predict_sequence")
    assert_online_state(ours, ref, "after predict_sequence")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "hyper",
    [dict(tau_mem=10.0), dict(threshold=0.7), dict(lr=0.05), dict(tau_mem=30.0, threshold=0.7, lr=0.002)],
    ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()),
)
def test_online_hyperparameters(hyper, kind):
    sizes = [8, 16, 8, 4]
    ours, ref = eprop.OnlineTrainer(sizes, **hyper), RefOnline(sizes, **hyper)
    for k, v in hyper.items():
        assert getattr(ours, k) == v
        for layer in ours.layers:
            assert getattr(layer, k) == v
    X = make_inputs(kind, T, sizes[0], seed=12)
    Y = make_targets(T, sizes[-1], seed=12, binary=True)
    lockstep_online(ours, ref, X, Y)
    sizes = [4, 16, 2]
    ours, ref = eprop.OnlineTrainer(sizes, **hyper), RefOnline(sizes, **hyper)
    X = make_inputs(kind, T, sizes[0], seed=13)
    Y = make_targets(T, sizes[-1], seed=13, binary=True)
    close(ours.train_sequence(X, Y), ref.train_sequence(X, Y), "mean loss")
    assert_online_state(ours, ref, "after train_sequence")


@pytest.mark.parametrize("dt", [0.5, 2.0])
@pytest.mark.parametrize("kind", KINDS)
def test_online_layer_dt(dt, kind):
    """OnlineTrainer has no dt argument; its layers do (set on both through .layers)."""
    sizes = [8, 16, 8, 4]
    ours, ref = eprop.OnlineTrainer(sizes, threshold=0.7), RefOnline(sizes, threshold=0.7)
    for lo, lr_ in zip(ours.layers, ref.layers):
        lo.dt = dt
        lr_.dt = dt
        assert lo.dt == dt
    X = make_inputs(kind, T, sizes[0], seed=14)
    Y = make_targets(T, sizes[-1], seed=14, binary=True)
    lockstep_online(ours, ref, X, Y)
    n = free_steps(kind)
    close(ours.train_sequence(X[:n], Y[:n]), ref.train_sequence(X[:n], Y[:n]))
    assert_online_state(ours, ref, "after train_sequence")


@pytest.mark.parametrize("kind", KINDS)
def test_online_user_weights(kind):
    rng = np.random.default_rng(15)
    sizes = [8, 16, 8, 4]
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    for lo, lr_ in zip(ours.layers, ref.layers):
        w = rng.normal(0.0, 0.8, (lo.n_neurons, lo.n_inputs))
        lo.W = w
        lr_.W = w.copy()
        np.testing.assert_array_equal(lo.W, w)
    X = make_inputs(kind, T, sizes[0], seed=16)
    Y = make_targets(T, sizes[-1], seed=16, binary=True)
    lockstep_online(ours, ref, X, Y)
    X2 = make_inputs(kind, 100, sizes[0], seed=17)
    exact(ours.predict_sequence(X2), ref_online_predict(ref, X2), "predict_sequence")


@pytest.mark.parametrize("kind", KINDS)
def test_online_mixed_use(kind):
    sizes = [6, 20, 5]
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    rng = np.random.default_rng(18)
    X = make_inputs(kind, 200, 6, seed=18)
    Y = make_targets(200, 5, seed=18, binary=True)
    learn = rng.random(200) < 0.5
    for t in range(200):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"mixed step {t}")
    assert_online_state(ours, ref, "after mixed steps")
    sync_online(ours, ref)
    # per-layer learning rate changed on both through .layers
    ours.layers[0].lr = 0.04
    ref.layers[0].lr = 0.04
    for t in range(50):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"after change {t}")
    ours.layers[0].lr = 0.01
    ref.layers[0].lr = 0.01
    sync_online(ours, ref)
    n = free_steps(kind)
    X2 = make_inputs(kind, n, 6, seed=19)
    Y2 = make_targets(n, 5, seed=19, binary=True)
    close(ours.train_sequence(X2, Y2), ref.train_sequence(X2, Y2), "mean loss")
    assert_online_state(ours, ref, "after train_sequence")
    sync_online(ours, ref)
    pred = ours.predict_sequence(X2)
    assert pred.shape == (n, 5)
    exact(pred, ref_online_predict(ref, X2), "predict_sequence")
    assert_online_state(ours, ref, "after predict_sequence")
    for t in range(20):
        compare_step(ours, ref, X[t], Y[t] if learn[t] else None, f"post step {t}")


# --------------------------------------------------------------------------- OnlineLIFLayer alone


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape,hyper",
    [
        ((1, 1), {}),
        ((5, 3), {}),
        ((30, 20), dict(dt=0.5, threshold=0.7, lr=0.05)),
        ((100, 64), dict(tau_mem=10.0, dt=2.0)),
        ((100, 64), {}),
    ],
    ids=str,
)
def test_layer_step_and_learning(shape, hyper, kind):
    """step + apply_learning_signal for 500 steps. On spike inputs the two run
    freely; on rate inputs the loop is as sensitive as the trainers (the oracle
    against itself with a reordered W @ x drifts past 1e-9 around step 350), so
    W is compared after every update and then copied from the oracle."""
    resync = kind == "rates"
    n_in, n_rec = shape
    ours, ref = eprop.OnlineLIFLayer(*shape, **hyper), RefLayer(*shape, **hyper)
    X = make_inputs(kind, T, n_in, seed=20)
    Y = make_targets(T, n_rec, seed=20, binary=True)
    noise = np.random.default_rng(21).normal(0.0, 0.5, (T, n_rec))
    for t in range(T):
        so = ours.step(X[t])
        sr = ref.step(X[t])
        exact(so, sr, f"step {t} spikes")
        # state-dependent signal most steps, an unrelated one sometimes, none sometimes
        if t % 7 == 3:
            continue
        signal = noise[t] if t % 5 == 0 else sr - Y[t]
        assert ours.apply_learning_signal(signal) is None
        ref.apply_learning_signal(signal)
        if resync:
            close(ours.W, ref.W, f"step {t} W")
            ours.W = ref.W
        if t % 50 == 0:
            assert_layer_state(ours, ref, f"step {t}")
    assert_layer_state(ours, ref, f"after {T} steps")
    ours.reset()
    ref.reset()
    assert_layer_state(ours, ref, "after reset")


def test_layer_user_weights():
    rng = np.random.default_rng(22)
    ours, ref = eprop.OnlineLIFLayer(12, 9, 15.0, 0.7, 0.02, 0.5), RefLayer(12, 9, 15.0, 0.7, 0.02, 0.5)
    w = rng.normal(0.0, 1.0, (9, 12))
    ours.W = w
    ref.W = w.copy()
    X = make_inputs("rates", T, 12, seed=23)
    for t in range(T):
        exact(ours.step(X[t]), ref.step(X[t]), f"step {t}")
        sig = rng.normal(0.0, 0.3, 9)
        ours.apply_learning_signal(sig)
        ref.apply_learning_signal(sig)
    assert_layer_state(ours, ref)
