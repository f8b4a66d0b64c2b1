"""RecurrentNetwork's conventions, each checked against something that is not
eprop's own code: the NumPy reference of ``reference_eprop.py`` (random and
adaptive feedback, Adam, online updates), closed forms (Kolen-Pollack,
refractory intervals), and the sequence form of the regularization.
"""

from __future__ import annotations

import itertools

import eprop
import numpy as np
import pytest
from common import RSNN_WEIGHTS
from reference_eprop import Reference

RN = eprop.RecurrentNetwork


def _spikes(rng, t, n, p=0.3):
    return (rng.random((t, n)) < p).astype(float)


def _targets(rng, net, t):
    if net.loss == "mse":
        return rng.standard_normal((t, net.n_outputs))
    return np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, t)]


def _excitable(net, seed=0):
    """Weights that make a small network fire at moderate rates."""
    rng = np.random.default_rng(seed)
    net.W_in = 0.1 + 0.4 * rng.standard_normal((net.n_neurons, net.n_inputs))
    net.W_rec = 0.3 * rng.standard_normal((net.n_neurons, net.n_neurons))
    net.W_out = rng.standard_normal((net.n_outputs, net.n_neurons))
    return net


# --------------------------------------------------------------------------- NumPy reference


CASES = [
    dict(feedback=fb, optimizer=opt, update=upd, loss=loss, n_adaptive=na, reg_rate=reg)
    for fb, opt, upd, loss, na, reg in itertools.product(
        ["random", "adaptive"], ["sgd", "adam"], ["sequence", "step", 3], ["mse", "cross_entropy"], [0, 3], [0.0, 2.0]
    )
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_training_equals_the_numpy_reference(kw):
    lr = 0.02 if kw["optimizer"] == "sgd" else 0.01
    net = RN(
        4,
        7,
        3,
        threshold=0.5,
        refractory=2.0,
        tau_adapt=40.0,
        beta=0.3,
        tau_reg=30.0,
        lr=lr,
        feedback_decay=0.05,
        seed=4,
        **kw,
    )
    _excitable(net)
    ref = Reference(net)
    rng = np.random.default_rng(11)
    moved = False
    for seq in range(3):
        X = _spikes(rng, 40, 4)
        Y = _targets(rng, net, 40)
        mask = rng.random(40) < 0.7 if seq == 1 else None
        before = net.W_in
        loss = net.train_sequence(X, Y, mask=mask)
        ref_loss = ref.train_sequence(X, Y, mask=mask)
        moved |= bool(np.any(net.W_in != before))
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
        for k in RSNN_WEIGHTS:
            np.testing.assert_allclose(getattr(net, k), ref.W[k], rtol=1e-10, atol=1e-12, err_msg=f"{k} seq {seq}")
        np.testing.assert_allclose(net.feedback_matrix, ref.B, rtol=1e-10, atol=1e-12, err_msg="B")
    assert moved
    # the reference really fired and used its eligibilities
    assert ref.W["W_in"].std() > 0


# --------------------------------------------------------------------------- Kolen-Pollack

KP_UPDATES = 5000  # at feedback_decay = 1e-3: (1 - 1e-3)**5000 = 0.0067


def test_adaptive_feedback_converges_to_the_readout_transpose():
    """From independent random B and W_out (the default initialization),
    W_out - B^T shrinks by (1 - feedback_decay) per update exactly, and B
    becomes aligned with W_out^T: cos >= 0.99 after KP_UPDATES updates (one per
    50-step sequence, the default update="sequence")."""
    net = RN(20, 30, 2, feedback="adaptive", lr=3e-3, seed=2)
    w0, b0 = net.W_out, net.feedback_matrix
    cos0 = float(np.sum(w0.T * b0) / (np.linalg.norm(w0) * np.linalg.norm(b0)))
    assert abs(cos0) < 0.5  # independent to begin with
    rng = np.random.default_rng(0)
    x = _spikes(rng, 50, 20, p=0.05)
    t = np.arange(50)
    y = np.stack([np.sin(2 * np.pi * t / 50), np.cos(2 * np.pi * t / 25)], axis=1)
    first = net.evaluate(x, y)["loss"]
    for _ in range(KP_UPDATES):
        net.train_sequence(x, y)
    assert net.state_dict()["optimizer_t"] == KP_UPDATES
    w, b = net.W_out, net.feedback_matrix
    keep = (1 - net.feedback_decay) ** KP_UPDATES
    np.testing.assert_allclose(w - b.T, keep * (w0 - b0.T), rtol=1e-6, atol=1e-12)
    cos = float(np.sum(w.T * b) / (np.linalg.norm(w) * np.linalg.norm(b)))
    assert cos >= 0.99, cos
    # and the network learned with this feedback (not merely decayed)
    assert net.evaluate(x, y)["loss"] < 0.2 * first
    assert np.linalg.norm(w) > 0.5 * np.linalg.norm(w0)


# --------------------------------------------------------------------------- online regularization


def _reg_only_net(**kw):
    """Driven neurons (about 170 Hz, refractory 5 ms), W_out = 0 and
    zero targets: the task error is zero, only the rate regularization acts."""
    net = RN(10, 8, 1, optimizer="sgd", reg_rate=50.0, target_rate=10.0, seed=1, **kw)
    net.W_in = np.full((8, 10), 0.04) + 0.02 * np.random.default_rng(0).standard_normal((8, 10))
    net.W_rec = np.zeros((8, 8))
    net.W_out = np.zeros((1, 8))
    return net


def test_online_regularization_does_not_fade_on_a_stream():
    """A 20,000-step stationary stream: the regularization's update per
    100-step block stays within 2x of its early value (it used to shrink like
    1/t)."""
    net = _reg_only_net(update="step", lr=1e-9, tau_reg=1000.0)
    rng = np.random.default_rng(1)
    x = _spikes(rng, 20000, 10, p=0.3)
    y = np.zeros((20000, 1))
    changes, rates = [], []
    w = net.W_in
    for block in range(200):
        sl = slice(100 * block, 100 * (block + 1))
        net.train_sequence(x[sl], y[sl], reset=(block == 0))
        w_new = net.W_in
        changes.append(float(np.abs(w_new - w).sum()))
        rates.append(float(net.state_dict()["_rate"].mean()) * 1000)
        w = w_new
    assert 120 < rates[-1] < 220, rates[-1]  # held far above the 10 Hz target
    early = changes[1]
    assert early > 0
    ratios = np.array(changes[1:]) / early
    assert ratios.min() > 0.5 and ratios.max() < 2.0, (ratios.min(), ratios.max())


# relative difference between the online total over one window and the
# sequence form on the same window (stationary firing; measured ~3%)
WINDOW_RTOL = 0.15


@pytest.mark.parametrize("tau_reg", [100.0, 400.0])
def test_online_regularization_over_one_window_matches_the_sequence_form(tau_reg):
    window = int(tau_reg)
    lr = 1e-9  # the weights barely move: the online total is a sum of gradients
    net = _reg_only_net(update="step", lr=lr, tau_reg=tau_reg)
    rng = np.random.default_rng(2)
    x = _spikes(rng, window, 10, p=0.3)
    y = np.zeros((window, 1))
    g = net.gradients(x, y)  # the sequence form of the same objective
    before = net.W_in
    net.train_sequence(x, y)
    online = (before - net.W_in) / lr
    assert np.max(np.abs(g["W_in"])) > 0
    rel = np.linalg.norm(online - g["W_in"]) / np.linalg.norm(g["W_in"])
    assert rel < WINDOW_RTOL, rel


def test_reset_keeps_the_pending_regularization():
    """update="sequence": step through A, reset, step through B, apply: the
    change is -lr (gradients(A) + gradients(B)), each with its own rate."""
    lr = 1e-4
    net = _excitable(RN(4, 6, 2, optimizer="sgd", lr=lr, reg_rate=50.0, update="sequence", seed=3))
    rng = np.random.default_rng(5)
    xa, xb = _spikes(rng, 30, 4), _spikes(rng, 25, 4)
    ya, yb = rng.standard_normal((30, 2)), rng.standard_normal((25, 2))
    ga, gb = net.gradients(xa, ya), net.gradients(xb, yb)
    reg_free = _excitable(RN(4, 6, 2, optimizer="sgd", lr=lr, update="sequence", seed=3))
    # not vacuous: the regularization is a large part of the gradient
    assert np.linalg.norm(ga["W_in"] - reg_free.gradients(xa, ya)["W_in"]) > 0.1 * np.linalg.norm(ga["W_in"])
    before = {k: getattr(net, k) for k in RSNN_WEIGHTS}
    for t in range(30):
        net.step(xa[t], ya[t])
    net.reset()
    for t in range(25):
        net.step(xb[t], yb[t])
    net.apply_updates()
    for k in RSNN_WEIGHTS:
        want = before[k] - lr * (ga[k] + gb[k])
        np.testing.assert_allclose(getattr(net, k), want, rtol=1e-10, atol=1e-14, err_msg=k)


# --------------------------------------------------------------------------- cross-entropy targets


def _ce_net():
    return _excitable(RN(4, 6, 3, loss="cross_entropy", seed=2))


BAD_ROWS = {
    "all_zero": [0.0, 0.0, 0.0],
    "all_one": [1.0, 1.0, 1.0],
    "negative": [1.5, -0.5, 0.0],
    "sum_above": [0.5, 0.5, 0.1],
}


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_cross_entropy_targets_must_be_distributions(bad):
    net = _ce_net()
    rng = np.random.default_rng(0)
    x = _spikes(rng, 20, 4)
    y = np.eye(3)[rng.integers(0, 3, 20)]
    y[7] = BAD_ROWS[bad]
    before = net.state_dict()

    def unchanged():
        after = net.state_dict()
        for k, v in before.items():
            assert np.array_equal(np.asarray(after[k]), np.asarray(v)), k

    calls = {
        "targets": [
            lambda: net.train_sequence(x, y),
            lambda: net.gradients(x, y),
            lambda: net.evaluate(x, y),
            lambda: net.train_batch(np.stack([x, x]), np.stack([y, y])),
            lambda: net.train_stream([(x[:10], y[:10]), (x[10:], y[10:])]),
        ],
        "target": [lambda: net.step(x[7], y[7])],
    }
    for arg, fns in calls.items():
        for fn in fns:
            with pytest.raises(ValueError, match=rf"^(chunks\[\d\] )?{arg}: expected class probabilities"):
                fn()
            unchanged()
    # the same row outside the mask is not used and is accepted
    mask = np.ones(20, bool)
    mask[7] = False
    net.gradients(x, y, mask=mask)
    net.step(x[7], y[7], mask=False)
    # soft labels are fine
    soft = np.full((20, 3), 1 / 3)
    assert np.isfinite(net.gradients(x, soft)["loss"])


# --------------------------------------------------------------------------- refractory period


@pytest.mark.parametrize("refractory,dt,interval", [(5.0, 1.0, 5), (2.0, 0.5, 4), (1.0, 1.0, 1), (0.0, 1.0, 1)])
def test_refractory_is_the_minimum_interval_between_spikes(refractory, dt, interval):
    net = RN(2, 3, 1, refractory=refractory, dt=dt, threshold=0.5, seed=0)
    net.W_in = np.full((3, 2), 5.0)  # driven hard: fires whenever allowed
    net.W_rec = np.zeros((3, 3))
    z = np.array([net.step(np.ones(2))["spikes"] for _ in range(60)])
    for j in range(3):
        times = np.flatnonzero(z[:, j])
        assert len(times) > 5
        assert np.all(np.diff(times) == interval), np.diff(times)


# --------------------------------------------------------------------------- prediction


def test_prediction_runs_the_forward_dynamics_only():
    net = _excitable(RN(4, 6, 2, n_adaptive=2, seed=1))
    rng = np.random.default_rng(3)
    x = _spikes(rng, 50, 4)
    y = rng.standard_normal((50, 2))
    # outputs equal those of learning steps that apply nothing (lr = 0)
    frozen = _excitable(RN(4, 6, 2, n_adaptive=2, seed=1, optimizer="sgd", lr=0.0))
    ys = np.array([frozen.step(x[t], y[t])["output"] for t in range(50)])
    np.testing.assert_array_equal(net.predict_sequence(x), ys)
    np.testing.assert_array_equal(net.predict_batch(x[None])[0], ys)
    # the eligibility traces are not tracked by a prediction: they restart at zero
    net.train_sequence(x, y)
    d = net.state_dict()
    assert np.any(d["_ebar_in"] != 0)
    net.predict_sequence(x[:5], reset=False)
    d = net.state_dict()
    for k in ("_ebar_in", "_ebar_rec", "_eps_a_in", "_eps_a_rec"):
        assert not np.any(d[k]), k
    assert np.any(d["_v"] != 0)
