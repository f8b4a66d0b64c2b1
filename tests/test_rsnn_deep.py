"""Deep `RecurrentNetwork` (several recurrent layers): the e-prop gradient of
every layer against an autodiff oracle (autograd), written from the rule as
stated in ``rust/eprop-core/src/models/rsnn.rs``, not from its code.

For layer l, with learning signal L_l(t) = B_l err(t) (B of the last layer:
W_out^T for symmetric feedback, else its feedback matrix; lower layers: their
own fixed random matrices), e-prop's gradient of W_in_l and W_rec_l is the
gradient of

    sum_s Ltilde_l(s) . z_l(s),   Ltilde_l(s) = (1 - kappa) sum_{t >= s} kappa^(t-s) L_l(t)

with Ltilde held constant and every path between different neurons cut: the
layer's input (x, or the spikes of the layer below), its recurrence and the
reset see z as a constant; only a neuron's own adaptation carries z(t-1) on.
(1 - kappa) is the gain of the readout filter (zhat has unit gain). The
sequence-form rate regularization adds the gradient of reg/2 sum_j (f_j - f0)^2
over the neurons of every layer, with the same cuts. The readout's gradients
are those of the loss. With one layer and symmetric feedback this is the
oracle of ``test_rsnn_bptt.py`` (checked below).
"""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval
from common import import_eprop
from test_rsnn_bptt import build_case, eprop_grads, hyper, oracle_grads, pseudo_derivative, spike

eprop = import_eprop()

RTOL = 1e-9

pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input:UserWarning")


def sizes_of(net):
    n = net.n_neurons
    na = net.n_adaptive
    return (list(n), list(na)) if isinstance(n, list) else ([n], [na])


def listed(x):
    return x if isinstance(x, list) else [x]


def param_names(n_layers):
    names = ["W_in", "W_rec", "W_out", "b_out"]
    for l in range(1, n_layers):
        names += [f"W_in.{l}", f"W_rec.{l}"]
    return names


def params_of(net):
    """(W_in_0, W_rec_0, ..., W_in_L-1, W_rec_L-1, W_out, b_out) as float64."""
    w_in, w_rec = listed(net.W_in), listed(net.W_rec)
    out = []
    for a, b in zip(w_in, w_rec):
        out += [np.array(a, dtype=float), np.array(b, dtype=float)]
    return out + [np.array(net.W_out, dtype=float), np.array(net.b_out, dtype=float)]


def run(params, X, Yo, mask, hp, ltilde=None, record=None):
    """The deep network over X. Without `ltilde`: a plain forward pass that
    fills `record` (spikes, pseudo-derivatives, outputs per layer). With it:
    the surrogate objective whose gradient is e-prop's (see the module doc)."""
    sizes, adaptive_counts = hp["sizes"], hp["n_adaptive"]
    nl = len(sizes)
    alpha, rho, kappa, beta, thr = hp["alpha"], hp["rho"], hp["kappa"], hp["beta"], hp["thr"]
    w = [(params[2 * l], params[2 * l + 1]) for l in range(nl)]
    w_out, b = params[2 * nl], params[2 * nl + 1]
    adaptive = []
    for n, na in zip(sizes, adaptive_counts):
        m = np.zeros(n)
        m[n - na :] = 1.0
        adaptive.append(m)
    v = [np.zeros(n) for n in sizes]
    a = [np.zeros(n) for n in sizes]
    z = [np.zeros(n) for n in sizes]
    z_sum = [np.zeros(n) for n in sizes]
    refr = [np.zeros(n, dtype=int) for n in sizes]
    zhat = np.zeros(sizes[-1])
    T = len(X)
    E = 0.0
    for t in range(T):
        below = X[t]
        for l in range(nl):
            z_prev = z[l]
            z_const = getval(z_prev)
            a[l] = rho * a[l] + adaptive[l] * z_prev  # the neuron's own adaptation: not cut
            A = thr + beta * a[l]
            v[l] = alpha * v[l] + anp.dot(w[l][0], getval(below)) + anp.dot(w[l][1], z_const) - thr * z_const
            refractory = refr[l] > 0
            z[l] = spike(v[l] - A, refractory, thr, hp["gamma"])
            fired = getval(z[l]) > 0
            refr[l] = np.where(fired, max(hp["n_ref"] - 1, 0), np.where(refractory, refr[l] - 1, 0))
            z_sum[l] = z_sum[l] + z[l]
            if record is not None:
                u = getval(v[l]) - getval(A)
                record.setdefault(("z", l), []).append(getval(z[l]))
                record.setdefault(("psi", l), []).append(pseudo_derivative(u, refractory, thr, hp["gamma"]))
            if ltilde is not None:
                E = E + anp.dot(ltilde[l][t], z[l])
            below = z[l]
        zhat = kappa * zhat + (1.0 - kappa) * getval(z[-1])
        y = anp.dot(w_out, zhat) + b
        if record is not None:
            record.setdefault("y", []).append(getval(y))
        if mask[t]:
            if hp["loss"] == "mse":
                E = E + 0.5 * anp.sum((y - Yo[t]) ** 2)
            else:
                m = anp.max(getval(y))
                E = E - anp.sum(Yo[t] * (y - m - anp.log(anp.sum(anp.exp(y - m)))))
    if hp["reg"] != 0.0:
        for s in z_sum:
            E = E + 0.5 * hp["reg"] * anp.sum((s / T - hp["f0"]) ** 2)
    return E


def learning_signals(net, params, Yo, mask, hp, rec):
    """Ltilde_l(s) of every layer, from the errors of a forward pass."""
    y = np.array(rec["y"])
    if hp["loss"] == "mse":
        err = y - Yo
    else:
        p = np.exp(y - y.max(axis=1, keepdims=True))
        err = p / p.sum(axis=1, keepdims=True) - Yo
    err = err * mask[:, None]
    nl = len(hp["sizes"])
    feedback = listed(net.feedback_matrix)
    kappa = hp["kappa"]
    out = []
    for l in range(nl):
        B = params[2 * nl].T if (l == nl - 1 and net.feedback == "symmetric") else np.array(feedback[l], dtype=float)
        L = err @ B.T
        G = np.zeros_like(L)
        acc = np.zeros(L.shape[1])
        for t in range(len(L) - 1, -1, -1):
            acc = L[t] + kappa * acc
            G[t] = acc
        out.append((1.0 - kappa) * G)
    return out


def deep_hyper(net):
    sizes, na = sizes_of(net)
    return dict(hyper(net), sizes=sizes, n_adaptive=na)


def deep_oracle(net, X, Yo, mask):
    hp = deep_hyper(net)
    p = params_of(net)
    rec = {}
    run(p, X, Yo, mask, hp, record=rec)
    ltilde = learning_signals(net, p, Yo, mask, hp, rec)
    g = autograd.grad(run)(tuple(p), X, Yo, mask, hp, ltilde=ltilde)
    g = [np.array(x, dtype=float) for x in g]
    nl = len(hp["sizes"])
    for l in range(nl):
        np.fill_diagonal(g[2 * l + 1], 0.0)
    # in the order of param_names: W_in, W_rec, W_out, b_out, W_in.1, W_rec.1, ...
    ordered = [g[0], g[1], g[2 * nl], g[2 * nl + 1]]
    for l in range(1, nl):
        ordered += [g[2 * l], g[2 * l + 1]]
    return dict(zip(param_names(nl), ordered)), rec


def make_deep(sizes, ni=4, no=2, *, seed=0, n_adaptive=0, **kw):
    kw.setdefault("optimizer", "sgd")
    kw.setdefault("refractory", 0.0)
    net = eprop.RecurrentNetwork(ni, sizes, no, n_adaptive=n_adaptive, **kw)
    rng = np.random.default_rng(seed)
    fan = [ni] + list(sizes[:-1])
    # the first layer gets spike inputs at 30%; deeper layers get the sparser
    # spikes of the layer below, hence larger weights
    net.W_in = [
        (0.05 if l == 0 else 0.25) + (0.3 if l == 0 else 0.5) * rng.standard_normal((n, f))
        for l, (n, f) in enumerate(zip(sizes, fan))
    ]
    net.W_rec = [0.3 * rng.standard_normal((n, n)) for n in sizes]
    net.W_out = rng.standard_normal((no, sizes[-1]))
    net.b_out = 0.1 * rng.standard_normal(no)
    return net


def make_data(net, T, *, seed, targets):
    rng = np.random.default_rng(seed)
    X = (rng.random((T, net.n_inputs)) < 0.3).astype(float)
    no = net.n_outputs
    if targets == "float":
        Y = rng.standard_normal((T, no))
        return X, Y, Y
    cls = rng.integers(0, no, T)
    return X, cls, np.eye(no)[cls]


def check_not_vacuous(rec, nl):
    for l in range(nl):
        z = np.array(rec[("z", l)])
        psi = np.array(rec[("psi", l)])
        assert z.sum() >= 3, f"layer {l}: too few spikes, the test would be vacuous"
        assert z.mean() < 0.6, f"layer {l}: neurons fire nearly always"
        assert (psi > 0).sum() >= 10, f"layer {l}: pseudo-derivatives all zero"


def compare(ours, ref, label):
    assert set(ref) <= set(ours), sorted(ours)
    for name, b in ref.items():
        a = np.array(ours[name], dtype=float)
        if name.startswith("W_rec"):
            a = a.copy()
            np.fill_diagonal(a, 0.0)
        scale = np.max(np.abs(b))
        assert scale > 0, f"{label} {name}: zero gradient, the comparison would be vacuous"
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12 * scale, err_msg=f"{label} {name}")


DEEP = [
    pytest.param(
        sizes,
        neuron,
        loss,
        feedback,
        reg,
        masked,
        id=f"{len(sizes)}x-{neuron}-{loss}-{feedback}-reg{reg:g}-m{masked:d}",
    )
    for sizes in ([6, 5], [5, 6, 4])
    for neuron in ("lif", "alif")
    for loss in ("mse", "cross_entropy")
    for feedback in ("symmetric", "random", "adaptive")
    for reg, masked in ((0.0, False), (5.0, True))
]


@pytest.mark.parametrize("sizes,neuron,loss,feedback,reg,masked", DEEP)
def test_deep_gradient_equals_the_oracle(sizes, neuron, loss, feedback, reg, masked):
    alif = dict(n_adaptive=[2] * len(sizes), beta=0.5, tau_adapt=50.0) if neuron == "alif" else {}
    refractory = 3.0 if reg else 0.0
    net = make_deep(sizes, seed=len(sizes), loss=loss, feedback=feedback, reg_rate=reg, refractory=refractory, **alif)
    T = 40
    X, Y, Yo = make_data(net, T, seed=7, targets="float" if loss == "mse" else "index")
    mask = np.ones(T, dtype=bool)
    if masked:
        mask[: T // 2] = False
    ref, rec = deep_oracle(net, X, Yo, mask)
    check_not_vacuous(rec, len(sizes))
    np.testing.assert_allclose(net.predict_sequence(X), np.array(rec["y"]), rtol=1e-12, atol=1e-12)
    ours = net.gradients(X, Y, mask=mask)
    compare(ours, ref, f"{sizes} {neuron} {loss} {feedback} reg={reg}")


@pytest.mark.parametrize("loss", ["mse", "ce_index"])
@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_one_layer_is_the_stop_gradient_oracle(neuron, loss):
    # the deep oracle with one layer and symmetric feedback is the one-layer
    # oracle of test_rsnn_bptt (the exact gradient of the stop-gradient network)
    net, X, Y, Yo, m = build_case(neuron, 3.0, loss, 5.0, "last_third")
    ref, _ = deep_oracle(net, X, Yo, m)
    hp = hyper(net)
    bptt = oracle_grads(
        [np.array(getattr(net, k), dtype=float) for k in ("W_in", "W_rec", "W_out", "b_out")], X, Yo, m, hp
    )
    for name, b in zip(("W_in", "W_rec", "W_out", "b_out"), bptt):
        np.testing.assert_allclose(ref[name], b, rtol=1e-10, atol=1e-13 * np.max(np.abs(b)), err_msg=name)
    ours, _ = eprop_grads(net, X, Y, m)
    for name, a in zip(("W_in", "W_rec", "W_out", "b_out"), ours):
        np.testing.assert_allclose(a, ref[name], rtol=RTOL, atol=1e-12 * np.max(np.abs(ref[name])), err_msg=name)


def test_lower_layers_learn_through_their_own_feedback():
    # without regularization a lower layer's gradient is linear in its own
    # feedback matrix: doubling B_0 doubles the gradient of layer 0 and leaves
    # the others as they were
    net = make_deep([6, 5], seed=2, feedback="symmetric")
    X, Y, _ = make_data(net, 40, seed=3, targets="float")
    g1 = net.gradients(X, Y)
    fb = [np.array(b) for b in net.feedback_matrix]
    net.feedback_matrix = [2.0 * fb[0], fb[1]]
    g2 = net.gradients(X, Y)
    for name in ("W_in", "W_rec"):
        assert np.max(np.abs(g1[name])) > 0
        np.testing.assert_allclose(g2[name], 2.0 * g1[name], rtol=1e-12, atol=0)
    for name in ("W_in.1", "W_rec.1", "W_out", "b_out"):
        np.testing.assert_array_equal(g2[name], g1[name])


# --------------------------------------------------------------------------- the API of a deep network


def deep(**kw):
    args = dict(
        n_adaptive=[2, 3],
        threshold=0.4,
        tau_adapt=200.0,
        seed=3,
        reg_rate=0.3,
        refractory=2.0,
        feedback="adaptive",
        feedback_decay=0.02,
        lr=0.01,
        loss="cross_entropy",
    )
    args.update(kw)
    return eprop.RecurrentNetwork(5, [10, 7], 3, **args)


def deep_data(net, T, seed, B=None):
    rng = np.random.default_rng(seed)
    shape = (T,) if B is None else (B, T)
    x = (rng.random(shape + (net.n_inputs,)) < 0.3).astype(float)
    if net.loss == "cross_entropy":
        return x, rng.integers(0, net.n_outputs, size=shape)
    return x, rng.normal(scale=0.5, size=shape + (net.n_outputs,))


def warm_deep(net, seed=0, steps=37):
    x, y = deep_data(net, 80, seed)
    net.train_sequence(x, y)
    x, y = deep_data(net, steps, seed + 1)
    for t in range(steps):
        net.step(x[t], y[t])
    for v in net._v:
        assert np.any(v)
    return net


def test_layers_shapes_and_names():
    net = deep()
    assert net.n_neurons == [10, 7] and net.n_adaptive == [2, 3]
    assert [w.shape for w in net.W_in] == [(10, 5), (7, 10)]
    assert [w.shape for w in net.W_rec] == [(10, 10), (7, 7)]
    assert [b.shape for b in net.feedback_matrix] == [(10, 3), (7, 3)]
    assert net.W_out.shape == (3, 7)
    assert [v.shape for v in net._v] == [(10,), (7,)]
    for w in net.W_rec:
        assert not np.any(np.diag(w))
    d = net.state_dict()
    assert d["n_neurons"] == [10, 7] and d["n_adaptive"] == [2, 3]
    for k in ("W_in.1", "W_rec.1", "feedback_matrix.1", "_v.1", "_ebar_rec.1", "grad.W_in.1", "adam_m.W_rec.1"):
        assert k in d, k
    assert set(net.gradients(*deep_data(net, 10, 1))) == {
        "W_in",
        "W_rec",
        "W_out",
        "b_out",
        "W_in.1",
        "W_rec.1",
        "loss",
    }
    # an int n_adaptive holds for every layer; a list of one size is one layer
    assert eprop.RecurrentNetwork(3, [4, 5], 1, n_adaptive=2).n_adaptive == [2, 2]
    one = eprop.RecurrentNetwork(3, [4], 1, seed=1)
    assert one.n_neurons == 4 and one.W_in.shape == (4, 3)
    assert np.array_equal(one.W_rec, eprop.RecurrentNetwork(3, 4, 1, seed=1).W_rec)


def test_first_layer_draws_what_a_one_layer_network_draws():
    a = eprop.RecurrentNetwork(4, [6, 5], 2, seed=9)
    b = eprop.RecurrentNetwork(4, 6, 2, seed=9)
    assert np.array_equal(a.W_in[0], b.W_in) and np.array_equal(a.W_rec[0], b.W_rec)


@pytest.mark.parametrize("update", ["sequence", "step", 4])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_checkpoints_continue_bitwise(update, optimizer, tmp_path):
    import copy
    import pickle

    from common import snapshot, state_bits

    n = warm_deep(deep(update=update, optimizer=optimizer))
    d = n.state_dict()
    assert np.any(d["_ebar_in.1"]) and np.any(d["_v.1"])
    n.save(tmp_path / "deep.npz")
    copies = [
        eprop.RecurrentNetwork.load(tmp_path / "deep.npz"),
        pickle.loads(pickle.dumps(n)),
        copy.deepcopy(n),
        eprop.RecurrentNetwork.from_state_dict(n.state_dict()),
    ]
    fresh = deep(update=update, optimizer=optimizer, seed=11)
    fresh.load_state_dict(n.state_dict())
    copies.append(fresh)

    def go(net):
        x, y = deep_data(net, 60, 27)
        out = [net.train_sequence(x[:40], y[:40], reset=False), net.train_sequence(x, y)]
        out.append(net.train_batch(np.stack([x, x[::-1]]), np.stack([y, y[::-1]]), n_threads=2).tolist())
        out.append(net.predict_sequence(x[:30]).tobytes())
        return out

    for c in copies[:-1]:
        assert snapshot(c) == snapshot(n)
    # the seed only draws the initial weights: a state of another seed loads
    assert {k: v for k, v in state_bits(fresh).items() if k != "seed"} == {
        k: v for k, v in state_bits(n).items() if k != "seed"
    }
    ref = go(n)
    for c in copies:
        assert go(c) == ref


@pytest.mark.parametrize("other", [[10, 8], [10], [10, 7, 2], 10])
def test_load_refuses_another_stack(other):
    from common import rejects

    src = warm_deep(deep())
    na = [2] * len(other) if isinstance(other, list) else 2
    dst = eprop.RecurrentNetwork(
        5,
        other,
        3,
        n_adaptive=na,
        loss="cross_entropy",
        reg_rate=0.3,
        refractory=2.0,
        feedback="adaptive",
        feedback_decay=0.02,
        tau_adapt=200.0,
        threshold=0.4,
    )
    rejects(dst, lambda t: t.load_state_dict(src.state_dict()), ValueError, r"state_dict\['n_(neurons|adaptive)'\]")


@pytest.mark.parametrize("update", ["sequence", "step", 3])
def test_batches_are_thread_count_invariant_and_a_batch_of_one_is_a_sequence(update):
    from common import state_bits

    nets = [deep(update=update, optimizer="adam") for _ in range(3)]
    x, y = deep_data(nets[0], 50, 5, B=5)
    la = nets[0].train_batch(x, y, n_threads=1)
    lb = nets[1].train_batch(x, y, n_threads=2)
    assert la.tobytes() == lb.tobytes() and state_bits(nets[0]) == state_bits(nets[1])
    one = [deep(update=update), deep(update=update)]
    l1 = one[0].train_batch(x[:1], y[:1])
    l2 = one[1].train_sequence(x[0], y[0])
    assert l1[0] == l2
    assert np.array_equal(one[0].predict_sequence(x[1, :20]), one[1].predict_sequence(x[1, :20]))


@pytest.mark.parametrize("update", ["sequence", "step", 3])
def test_stream_in_chunks_equals_one_sequence(update):
    from common import state_bits

    a, b = deep(update=update), deep(update=update)
    x, y = deep_data(a, 90, 8)
    a.train_sequence(x, y)
    b.train_stream([(x[:17], y[:17]), (x[17:60], y[17:60]), (x[60:], y[60:])])
    assert state_bits(a) == state_bits(b)


def test_memory_is_flat_in_T_and_evaluate_is_the_frozen_loss():
    net = deep(loss="mse")
    m = net.memory_bytes
    for T in (10, 1000):
        net.train_sequence(*deep_data(net, T, T))
        assert net.memory_bytes == m
    x, y = deep_data(net, 50, 3)
    r = net.evaluate(x, y)
    out = net.predict_sequence(x)
    np.testing.assert_allclose(r["loss"], np.mean(0.5 * np.sum((out - y) ** 2, axis=1)), rtol=1e-12)


def test_event_kernel_equals_dense_on_a_deep_network():
    kw = dict(loss="mse", update=40, optimizer="sgd", lr=0.0)
    dense, event = deep(kernel="dense", **kw), deep(kernel="event", **kw)
    x, y = deep_data(dense, 400, 4)
    x = x * (np.random.default_rng(0).random(x.shape) < 0.2)
    for net in (dense, event):
        net.train_sequence(x, y)
    a, b = dense.state_dict(), event.state_dict()
    for k, v in a.items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            scale = max(np.abs(v).max(initial=0.0), 1e-300)
            assert np.abs(b[k] - v).max(initial=0.0) <= 1e-10 * scale, k


def test_float32_deep_network_follows_float64():
    a, b = deep(loss="mse"), deep(loss="mse", dtype="float32")
    x, y = deep_data(a, 15, 6)
    la, lb = a.train_sequence(x, y), b.train_sequence(x, y)
    assert b.W_in[1].dtype == np.float32
    assert abs(la - lb) <= 1e-5 * abs(la)
    np.testing.assert_allclose(b.W_rec[1], a.W_rec[1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad input


BAD_LAYERS = [
    (dict(n_neurons=[]), ValueError, "n_neurons"),
    (dict(n_neurons=[4, 0]), ValueError, r"n_neurons\[1\]"),
    (dict(n_neurons=[4, -2]), ValueError, r"n_neurons\[1\]"),
    (dict(n_neurons=[4, 2.5]), TypeError, "n_neurons"),
    (dict(n_neurons="4"), TypeError, "n_neurons"),
    (dict(n_neurons=[[4, 5]]), TypeError, "n_neurons"),
    (dict(n_neurons=[4, 5], n_adaptive=[1]), ValueError, "n_adaptive"),
    (dict(n_neurons=[4, 5], n_adaptive=[1, 2, 3]), ValueError, "n_adaptive"),
    (dict(n_neurons=[4, 5], n_adaptive=[1, 6]), ValueError, r"n_adaptive\[1\]"),
    (dict(n_neurons=[4, 5], n_adaptive=[-1, 0]), ValueError, r"n_adaptive\[0\]"),
    (dict(n_neurons=[4, 5], n_adaptive=5), ValueError, "n_adaptive"),
    (dict(n_neurons=[4, 5], n_adaptive=[1, None]), TypeError, "n_adaptive"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD_LAYERS, ids=[repr(c[0]) for c in BAD_LAYERS])
def test_bad_layers_are_refused(kw, exc, msg):
    args = dict(n_neurons=[4, 5])
    args.update(kw)
    with pytest.raises(exc, match=msg):
        eprop.RecurrentNetwork(3, args.pop("n_neurons"), 2, **args)


def test_layer_setters_check_everything_before_setting_anything():
    from common import rejects

    net = warm_deep(deep())
    good = [np.ones((10, 5)), np.ones((7, 10))]
    rejects(net, lambda t: setattr(t, "W_in", good[:1]), ValueError, "W_in: expected a list of 2 arrays")
    rejects(net, lambda t: setattr(t, "W_in", [good[0], np.ones((7, 9))]), ValueError, r"W_in\[1\]")
    rejects(net, lambda t: setattr(t, "W_in", [good[0], np.full((7, 10), np.nan)]), ValueError, r"W_in\[1\]")
    rejects(net, lambda t: setattr(t, "W_rec", np.ones((10, 10))), (ValueError, TypeError), "W_rec")
    rejects(net, lambda t: setattr(t, "feedback_matrix", "abc"), TypeError, "feedback_matrix")
    net.W_rec = [np.ones((10, 10)), 2 * np.ones((7, 7))]
    assert np.trace(net.W_rec[1]) == 0 and net.W_rec[1][0, 1] == 2.0
    net.W_in = good
    assert np.array_equal(net.state_dict()["W_in.1"], good[1])


def test_states_read_layer_sizes_as_lists_arrays_or_a_list_of_one():
    # a state's n_neurons may come back as a list, a whole-number array or
    # (one layer) a list of one; every reader takes each the same way
    net = warm_deep(deep())
    for form in ([10, 7], np.array([10.0, 7.0]), (10, 7)):
        s = net.state_dict()
        s["n_neurons"] = form
        fresh = deep(seed=5)
        fresh.load_state_dict(s)
        assert eprop.RecurrentNetwork.from_state_dict(s).n_neurons == [10, 7]
    one = eprop.RecurrentNetwork(3, 4, 2, seed=1)
    s = one.state_dict()
    s["n_neurons"], s["n_adaptive"] = [4], [0]
    assert eprop.RecurrentNetwork.from_state_dict(s).n_neurons == 4
    eprop.RecurrentNetwork(3, 4, 2).load_state_dict(s)
    s["n_neurons"] = [4, 4]
    with pytest.raises(ValueError, match=r"state_dict\['n_neurons'\]"):
        eprop.RecurrentNetwork(3, 4, 2).load_state_dict(s)
    s["n_neurons"] = np.array([4.5])
    with pytest.raises(ValueError, match=r"state_dict\['n_neurons'\]"):
        eprop.RecurrentNetwork.from_state_dict(s)
