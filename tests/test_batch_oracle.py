"""``train_batch`` of every trainer against an oracle that is not eprop's code.

Drop-in classes (EpropTrainer, OnlineTrainer): the oracle is sc-neurocore's own
``step``. Each sequence b of the batch has its own sc-neurocore object (its own
membrane, traces and eligibilities). At each step every object's weights are
set to the shared weights, the object is stepped with its input and target,
and the difference of its weights is its change for that step.

* ``update="step"``: the mean of the B changes is added to the shared weights
  after every step.
* ``update="sequence"``: the shared weights stay fixed; each sequence's changes
  are summed over its steps, and the mean over the batch of those sums is
  added at the end.

RecurrentNetwork with SGD and ``update="sequence"``: the change equals -lr
times the batch mean of ``gradients()`` of each sequence (whose own oracle is
the autodiff one in ``test_rsnn_bptt.py``).
"""

import eprop
import numpy as np
import pytest
from common import excitable, random_data
from sc_neurocore.online_learning import EpropTrainer as RefEprop
from sc_neurocore.online_learning import OnlineTrainer as RefOnline

RTOL = 1e-9


def _eprop_weights(obj):
    return [np.array(obj.W_in, dtype=float), np.array(obj.W_rec, dtype=float), np.array(obj.W_out, dtype=float)]


def _set_eprop_weights(obj, w):
    obj.W_in, obj.W_rec, obj.W_out = (np.array(m, dtype=float) for m in w)


def _online_weights(obj):
    return [np.array(layer.W, dtype=float) for layer in obj.layers]


def _set_online_weights(obj, w):
    for layer, m in zip(obj.layers, w):
        layer.W = np.array(m, dtype=float)


def oracle_batch(make_ref, get_w, set_w, w0, x, y, update):
    """Weights after a batch and the mean loss of each sequence, by the rule
    in the module docstring, from sc-neurocore's step."""
    b, t, _ = x.shape
    refs = [make_ref() for _ in range(b)]
    shared = [m.copy() for m in w0]
    sums = [[np.zeros_like(m) for m in w0] for _ in range(b)]
    losses = np.zeros(b)
    for s in range(t):
        changes = []
        for k, ref in enumerate(refs):
            set_w(ref, shared)
            out = ref.step(x[k, s], y[k, s])
            losses[k] += out["loss"]
            change = [after - before for after, before in zip(get_w(ref), shared)]
            changes.append(change)
            for acc, c in zip(sums[k], change):
                acc += c
        if update == "step":
            shared = [m + sum(c[i] for c in changes) / b for i, m in enumerate(shared)]
    if update == "sequence":
        shared = [m + sum(acc[i] for acc in sums) / b for i, m in enumerate(shared)]
    return shared, losses / t


def _assert_weights_close(ours, ref, label):
    for i, (a, r) in enumerate(zip(ours, ref)):
        scale = np.max(np.abs(r))
        np.testing.assert_allclose(a, r, rtol=RTOL, atol=RTOL * scale, err_msg=f"{label} matrix {i}")


# (n_inputs, n_neurons, n_outputs), B, T, lr: the shape of the report that found
# the sequence-mode W_out defect, and others
EPROP_CASES = [((5, 12, 3), 4, 120, 0.01), ((3, 7, 1), 3, 60, 0.02), ((8, 20, 5), 2, 80, 0.005)]


@pytest.mark.parametrize("update", ["step", "sequence"])
@pytest.mark.parametrize("shape,b,t,lr", EPROP_CASES)
def test_epropTrainer_train_batch_against_sc_neurocore(update, shape, b, t, lr):
    n_in, n_rec, n_out = shape
    ours = eprop.EpropTrainer(n_in, n_rec, n_out, lr=lr)
    ref0 = RefEprop(n_in, n_rec, n_out, lr=lr)
    w0 = _eprop_weights(ref0)
    for a, r in zip(_eprop_weights(ours), w0):
        np.testing.assert_array_equal(a, r)  # same initial weights (seed 42)
    x, y = random_data((b, t), n_in, n_out, seed=sum(shape) + b)
    ref_w, ref_losses = oracle_batch(
        lambda: RefEprop(n_in, n_rec, n_out, lr=lr), _eprop_weights, _set_eprop_weights, w0, x, y, update
    )
    # not vacuous: every matrix moves, W_out too
    for m, m0 in zip(ref_w, w0):
        assert np.max(np.abs(m - m0)) > 1e-6
    losses = ours.train_batch(x, y, update=update)
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL, atol=1e-12)
    _assert_weights_close(_eprop_weights(ours), ref_w, f"EpropTrainer {update}")


ONLINE_CASES = [([4, 10, 3], 3, 80, 0.02), ([6, 12, 8, 2], 2, 60, 0.01)]


@pytest.mark.parametrize("update", ["step", "sequence"])
@pytest.mark.parametrize("sizes,b,t,lr", ONLINE_CASES)
def test_onlineTrainer_train_batch_against_sc_neurocore(update, sizes, b, t, lr):
    ours = excitable(eprop.OnlineTrainer(sizes, threshold=0.5, lr=lr))
    w0 = _online_weights(ours)
    x, y = random_data((b, t), sizes[0], sizes[-1], seed=len(sizes) + b)

    def make_ref():
        ref = RefOnline(sizes, threshold=0.5, lr=lr)
        _set_online_weights(ref, w0)
        return ref

    ref_w, ref_losses = oracle_batch(make_ref, _online_weights, _set_online_weights, w0, x, y, update)
    for m, m0 in zip(ref_w, w0):
        assert np.max(np.abs(m - m0)) > 1e-6
    losses = ours.train_batch(x, y, update=update)
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL, atol=1e-12)
    _assert_weights_close(_online_weights(ours), ref_w, f"OnlineTrainer {update}")


NAMES = ("W_in", "W_rec", "W_out", "b_out")


@pytest.mark.parametrize(
    "kw",
    [
        dict(loss="mse"),
        dict(loss="cross_entropy", n_adaptive=3, refractory=2.0, reg_rate=5.0),
        dict(loss="mse", feedback="random", reg_rate=1.0),
    ],
    ids=["mse", "ce-alif-reg", "random-reg"],
)
def test_recurrentNetwork_sequence_batch_is_mean_of_gradients(kw):
    lr = 1e-3
    net = eprop.RecurrentNetwork(4, 9, 3, optimizer="sgd", lr=lr, update="sequence", seed=5, threshold=0.3, **kw)
    rng = np.random.default_rng(3)
    b, t = 3, 50
    x = (rng.random((b, t, 4)) < 0.3).astype(float)
    if kw["loss"] == "mse":
        y = rng.standard_normal((b, t, 3))
    else:
        y = rng.integers(0, 3, (b, t)).astype(float)
    grads = [net.gradients(x[k], y[k]) for k in range(b)]
    before = {k: np.array(getattr(net, k)) for k in NAMES}
    net.train_batch(x, y)
    for k in NAMES:
        mean = sum(g[k] for g in grads) / b
        assert np.max(np.abs(mean)) > 0, k
        want = before[k] - lr * mean
        if k == "W_rec":
            np.fill_diagonal(want, 0.0)
        np.testing.assert_allclose(getattr(net, k), want, rtol=1e-12, atol=1e-15, err_msg=k)
