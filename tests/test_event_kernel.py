"""The event-driven kernel of RecurrentNetwork (kernel="event") against the
dense reference (kernel="dense"): equal within 1e-10 relative in float64 on
random networks, inputs, masks and schedules, crossing many moves of its
origin; deterministic; chosen by kernel="auto" only when it gains."""

import numpy as np
import pytest
from common import import_eprop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

eprop = import_eprop()

TOL = 1e-10


# Arrays of one kind (the same quantity for the inputs and for the recurrent
# synapses) share a scale.
KIND = {
    k: g
    for g in (("_ebar_in", "_ebar_rec"), ("_eps_a_in", "_eps_a_rec"), ("_e_sum_in", "_e_sum_rec"))
    + (("grad.W_in", "grad.W_rec"), ("W_in", "W_rec"))
    for k in g
}


def kind(k):
    """The arrays of the kind of array `k` (of its layer: `name.l` for layer l >= 1)."""
    base, dot, layer = k.rpartition(".")
    if dot and layer.isdigit():
        return tuple(f"{m}.{layer}" for m in KIND.get(base, (base,)))
    return KIND.get(k, (k,))


def close(a, b, what, scales=None):
    """max |a - b| <= TOL scale over every float array of two dicts, the
    scale of an array being the largest magnitude it or an array of its kind
    had (``scales``: over the run that led to ``b``; else at the end). The
    value at the end alone would not do: a quantity that is zero, or shrank
    by cancellation, is the difference of terms of its kind's magnitude, and
    keeps their rounding error in any evaluation order."""
    assert a.keys() == b.keys()
    scales = dict(scales or {})
    for k, v in b.items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            scales[k] = max(scales.get(k, 0.0), float(np.abs(v).max(initial=0.0)))
    for k in a:
        x, y = a[k], b[k]
        if isinstance(y, np.ndarray) and y.dtype == np.float64:
            scale = max(scales[m] for m in kind(k))
            err = np.abs(x - y).max(initial=0.0)
            assert err <= TOL * scale, f"{what}: {k}: max diff {err:.3g}, scale {scale:.3g}"
        elif isinstance(y, float):
            assert abs(x - y) <= TOL * max(abs(y), 1e-300), f"{what}: {k}: {x} vs {y}"
        elif not isinstance(y, np.ndarray):
            assert x == y or k == "kernel", f"{what}: {k}: {x} vs {y}"


@st.composite
def cases(draw):
    ni = draw(st.integers(1, 12))
    # one layer (an int) or a stack of up to three
    layers = draw(st.sampled_from([1, 1, 2, 3]))
    ns = [draw(st.integers(1, 12)) for _ in range(layers)]
    n = ns[0] if layers == 1 else ns
    if layers == 1 or draw(st.booleans()):
        n_adaptive = draw(st.integers(0, min(ns)))
    else:
        n_adaptive = [draw(st.integers(0, k)) for k in ns]
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    no = draw(st.integers(2 if loss == "cross_entropy" else 1, 3))
    kw = dict(
        n_adaptive=n_adaptive,
        tau_mem=draw(st.sampled_from([2.0, 20.0, 50.0])),
        tau_out=draw(st.sampled_from([3.0, 20.0])),
        tau_adapt=draw(st.sampled_from([30.0, 2000.0])),
        beta=draw(st.sampled_from([None, 0.5, 5.0])),
        threshold=draw(st.sampled_from([0.05, 0.6])),
        refractory=draw(st.sampled_from([0.0, 3.0])),
        loss=loss,
        feedback=draw(st.sampled_from(["symmetric", "random", "adaptive"])),
        reg_rate=draw(st.sampled_from([0.0, 0.5])),
        update=draw(st.sampled_from(["sequence", 7, 60])),
        optimizer="sgd",
        seed=draw(st.integers(0, 1000)),
    )
    # Online schedules update the weights many times in one call; each update
    # feeds its last-bit differences back into the dynamics, and a network
    # amplifies them whatever the kernel (see test_online_updates_...). Here
    # they run with lr = 0 (their settling, clearing and Kolen-Pollack decay
    # still run); update="sequence" learns.
    kw["lr"] = 1e-3 if kw["update"] == "sequence" else 0.0
    T = draw(st.integers(1, 700))
    p = draw(st.sampled_from([0.02, 0.2, 0.6]))
    masked = draw(st.booleans())
    data_seed = draw(st.integers(0, 1000))
    return (ni, n, no), kw, T, p, masked, data_seed


def data(sizes, loss, T, p, masked, seed, lead=()):
    ni, _, no = sizes
    rng = np.random.default_rng(seed)
    x = (rng.random((*lead, T, ni)) < p) * rng.uniform(0.5, 1.5, (*lead, T, ni))
    if loss == "cross_entropy":
        y = np.eye(no)[rng.integers(0, no, (*lead, T))]
    else:
        y = rng.normal(size=(*lead, T, no))
    mask = rng.random((*lead, T)) < 0.7 if masked else None
    return x, y, mask


def pair(sizes, kw):
    return [eprop.RecurrentNetwork(*sizes, kernel=k, **kw) for k in ("dense", "event")]


def run_with_scales(net, x, y, mask, scales):
    """Steps `net` through a sequence one call per step, recording the
    largest magnitude of every state array, and of the terms every gradient
    is a sum of (see `signal_floor`); returns the loss sum."""
    total, err = 0.0, 0.0
    for t in range(len(x)):
        counted = mask is None or bool(mask[t])
        out = net.step(x[t], y[t], mask=counted)
        total += out["loss"] if counted else 0.0
        if counted:
            # the readout error: y - y* (mse); softmax - one-hot is within 1
            err = max(err, 1.0 if net.loss == "cross_entropy" else float(np.abs(out["output"] - y[t]).max()))
        for k, v in net.state_dict().items():
            if isinstance(v, np.ndarray) and v.dtype == np.float64:
                scales[k] = max(scales.get(k, 0.0), float(np.abs(v).max(initial=0.0)))
    signal_floor(net, err, scales)
    return total


def signal_floor(net, err, scales):
    """A gradient is a sum over steps of learning signal times filtered
    eligibility, L_j(t) ebar_ji(t) with L = B err; the event form adds and
    takes away such terms (it moves them between its running sums), so a
    gradient that is exactly zero (every counted step before any input) comes
    out as rounding residue of terms of that size. Each layer's gradient
    arrays get at least the scale max|L| max|ebar| (max|L| <= the largest row
    sum of |B| times the largest readout error over counted steps)."""
    state = net.state_dict()
    n_layers = len(net.n_neurons) if isinstance(net.n_neurons, list) else 1
    for layer in range(n_layers):
        sfx = f".{layer}" if layer else ""
        lmax = float(np.abs(state[f"feedback_matrix{sfx}"]).sum(axis=1).max(initial=0.0)) * err
        ebar = max(scales.get(f"_ebar_in{sfx}", 0.0), scales.get(f"_ebar_rec{sfx}", 0.0))
        for k in (f"grad.W_in{sfx}", f"grad.W_rec{sfx}"):
            scales[k] = max(scales.get(k, 0.0), lmax * ebar)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_event_equals_dense_on_sequences_and_streams(case):
    sizes, kw, T, p, masked, seed = case
    x, y, mask = data(sizes, kw["loss"], T, p, masked, seed)
    dense, event = pair(sizes, kw)
    losses = [net.train_sequence(x, y, mask=mask) for net in (dense, event)]
    assert abs(losses[0] - losses[1]) <= TOL * abs(losses[0])
    # the dense run again, step by step, for the scale of every array
    stepped, scales = eprop.RecurrentNetwork(*sizes, kernel="dense", **kw), {}
    run_with_scales(stepped, x, y, mask, scales)
    stepped.apply_updates()
    close(event.state_dict(), dense.state_dict(), "train_sequence", scales)
    # the same again as a stream of uneven chunks (state carried across calls)
    cuts = sorted({0, T, *np.random.default_rng(seed).integers(0, T, 3).tolist()})
    chunks = [(x[a:b], y[a:b]) + ((mask[a:b],) if masked else ()) for a, b in zip(cuts, cuts[1:]) if b > a]
    for net in (dense, event):
        net.train_stream(chunks, reset=False)
    run_with_scales(stepped, x, y, mask, scales)
    close(event.state_dict(), dense.state_dict(), "train_stream", scales)


# found by this test in CI: ALIF with a low threshold and tau_adapt 2000 ms,
# 5e-10 off while the origin could lie 1024x back (now 256x)
HARD_CASE = (
    (10, [1, 1, 1], 2),
    {
        "n_adaptive": [1, 0, 0],
        "tau_mem": 20.0,
        "tau_out": 20.0,
        "tau_adapt": 2000.0,
        "beta": 0.5,
        "threshold": 0.05,
        "refractory": 3.0,
        "loss": "mse",
        "feedback": "symmetric",
        "reg_rate": 0.0,
        "update": "sequence",
        "optimizer": "sgd",
        "seed": 516,
        "lr": 0.001,
    },
    335,
    0.6,
    False,
    1,
)


# also found in CI: the only counted step is the first, where every
# eligibility is zero, so the W_in and W_rec gradients are exactly zero; the
# event form leaves residue of 1e-17 (of terms of 0.04: see signal_floor)
ZERO_CASE = (
    (7, [8, 1], 1),
    dict(HARD_CASE[1], n_adaptive=[0, 0], tau_mem=2.0, tau_out=3.0, tau_adapt=30.0, beta=None, refractory=0.0, seed=1),
    3,
    0.2,
    True,
    499,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(1, 4))
@example(HARD_CASE, 1)
@example(ZERO_CASE, 1)
def test_event_equals_dense_on_batches_and_gradients(case, B):
    sizes, kw, T, p, masked, seed = case
    kw["optimizer"] = "adam"  # gradients do not depend on the optimizer
    x, y, mask = data(sizes, kw["loss"], T, p, masked, seed, lead=(B,))
    dense, event = pair(sizes, kw)
    g = [net.gradients(x, y, mask=mask, n_threads=2) for net in (dense, event)]
    # the size of the terms each gradient sums (and of its running sum), from
    # the dense run of each sequence step by step, as in the test above
    floor = {}
    for b in range(B):
        stepped, scales = eprop.RecurrentNetwork(*sizes, kernel="dense", **kw), {}
        run_with_scales(stepped, x[b], y[b], None if mask is None else mask[b], scales)
        for k in g[0]:
            if k.startswith(("W_in", "W_rec")):
                floor[k] = max(floor.get(k, 0.0), scales[f"grad.{k}"])
    close(g[1], g[0], "gradients", floor)
    kw["optimizer"] = "sgd"
    dense, event = pair(sizes, kw)
    for net in (dense, event):
        net.train_batch(x, y, mask=mask, n_threads=2)
    close(event.state_dict(), dense.state_dict(), "train_batch")


@pytest.mark.parametrize("update", [7, 60])
@pytest.mark.parametrize("n_adaptive", [0, 4])
def test_online_updates_learning_for_a_few_updates(update, n_adaptive):
    rng = np.random.default_rng(update + n_adaptive)
    x = (rng.random((3 * update, 6)) < 0.1).astype(float)
    y = rng.normal(size=(3 * update, 2))
    kw = dict(n_adaptive=n_adaptive, update=update, optimizer="sgd", lr=1e-3, reg_rate=0.5, seed=3)
    dense, event = pair((6, 8, 2), kw)
    for net in (dense, event):
        net.train_sequence(x, y)
    w0 = eprop.RecurrentNetwork(6, 8, 2, **kw).W_in
    assert np.abs(dense.W_in - w0).max() > 1e-6, "vacuous: the weights did not move"
    close(event.state_dict(), dense.state_dict(), "three online updates")


def test_event_is_deterministic_and_thread_count_invariant():
    rng = np.random.default_rng(4)
    x = (rng.random((5, 400, 20)) < 0.05).astype(float)
    y = rng.normal(size=(5, 400, 2))
    outs = []
    for threads in (1, 2, 3):
        net = eprop.RecurrentNetwork(20, 30, 2, n_adaptive=10, reg_rate=0.3, kernel="event", seed=1)
        net.train_batch(x, y, n_threads=threads)
        net.train_sequence(x[0], y[0])
        outs.append(net.state_dict())
    for o in outs[1:]:
        for k, v in outs[0].items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, o[k]), k


def test_long_stream_stays_exact():
    # 20,000 steps (hundreds of origin moves) at tau 20: still within TOL
    rng = np.random.default_rng(6)
    x = (rng.random((20_000, 10)) < 0.05).astype(float)
    y = np.sin(np.arange(20_000) / 50.0)[:, None]
    kw = dict(n_adaptive=5, reg_rate=0.3, update=5000, optimizer="sgd", lr=1e-4, seed=2)
    dense, event = pair((10, 15, 1), kw)
    for net in (dense, event):
        net.train_sequence(x, y)
    close(event.state_dict(), dense.state_dict(), "stream of 20k steps")


def test_auto_runs_event_only_on_sparse_inputs():
    rng = np.random.default_rng(8)
    cases = (
        (0.05, "sequence", "event"),
        (0.4, 40, "event"),
        (0.8, "sequence", "dense"),  # inputs too dense
        (0.05, 16, "dense"),  # updates too close
    )
    for p, update, same_as in cases:
        kw = dict(n_adaptive=3, optimizer="sgd", seed=5, update=update)
        x = (rng.random((300, 8)) < p).astype(float)
        y = rng.normal(size=(300, 1))
        states = {}
        for kernel in ("auto", "dense", "event"):
            net = eprop.RecurrentNetwork(8, 10, 1, kernel=kernel, **kw)
            net.train_sequence(x, y)
            states[kernel] = net.state_dict()
        # the two kernels differ in the last bits, so this tells which one ran
        differ = any(not np.array_equal(v, states["event"][k]) for k, v in states["dense"].items() if k != "kernel")
        assert differ, "vacuous: dense and event bitwise equal"
        for k, v in states[same_as].items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, states["auto"][k]), (p, update, k)


def test_kernel_is_checked_recorded_and_free_across_checkpoints(tmp_path):
    with pytest.raises(ValueError, match=r"kernel.*'dense', 'event' or 'auto'.*'sparse'"):
        eprop.RecurrentNetwork(3, 4, 1, kernel="sparse")
    net = eprop.RecurrentNetwork(3, 4, 1, kernel="event", seed=1)
    assert net.kernel == "event" and net.config.kernel == "event"
    net.train_sequence(np.eye(3)[np.arange(50) % 3], np.zeros((50, 1)))
    net.save(tmp_path / "a.npz")
    back = eprop.RecurrentNetwork.load(tmp_path / "a.npz")
    assert back.kernel == "event"
    other = eprop.RecurrentNetwork(3, 4, 1, kernel="dense", seed=1)
    other.load_state_dict(net.state_dict())  # the state means the same under any kernel
    for k, v in net.state_dict().items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(v, other.state_dict()[k]), k


@pytest.mark.parametrize("update", ["step", 5, 40, "sequence"])
def test_forward_reads_current_weights_after_every_kind_of_change(update):
    # the forward pass reads kept transposes of W_in / W_rec: after online
    # updates, setters and loads, predictions must equal those of a network
    # built from the same state
    rng = np.random.default_rng(3)
    x = (rng.random((200, 6)) < 0.1).astype(float)
    y = rng.normal(size=(200, 2))
    net = eprop.RecurrentNetwork(6, 9, 2, n_adaptive=3, update=update, optimizer="sgd", lr=0.05, seed=4)
    w0 = net.W_in
    net.train_sequence(x, y)
    assert np.abs(net.W_in - w0).max() > 1e-6, "vacuous: weights did not move"
    for change in ("trained", "setter"):
        if change == "setter":
            net.W_rec = rng.normal(size=(9, 9)) * 0.5
            net.W_in = rng.normal(size=(9, 6))
        fresh = eprop.RecurrentNetwork.from_state_dict(net.state_dict())
        b = fresh.predict_batch(x[None], n_threads=1)
        a = net.predict_batch(x[None], n_threads=1)
        assert np.array_equal(a, b), change
        assert np.array_equal(net.predict_sequence(x), fresh.predict_sequence(x)), change


def test_event_runs_densely_where_it_cannot_gain():
    # a decay of e^-10 per step would move the origin every step: dense,
    # bitwise; so are single steps and update="step"
    rng = np.random.default_rng(9)
    x = (rng.random((120, 5)) < 0.1).astype(float)
    y = rng.normal(size=(120, 1))
    for kw, how in ((dict(tau_out=0.1), "sequence"), (dict(update="step", optimizer="sgd"), "sequence"), ({}, "step")):
        nets = [eprop.RecurrentNetwork(5, 7, 1, n_adaptive=2, kernel=k, seed=2, **kw) for k in ("dense", "event")]
        for net in nets:
            if how == "sequence":
                net.train_sequence(x, y)
            else:
                for t in range(len(x)):
                    net.step(x[t], y[t])
                net.apply_updates()
        a, b = (n.state_dict() for n in nets)
        for k, v in a.items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, b[k]), (kw, how, k)


# --------------------------------------------------------------------------- the seed rule


@st.composite
def seed_cases(draw):
    sizes = (draw(st.integers(1, 12)), draw(st.integers(1, 16)), draw(st.integers(1, 3)))
    kw = dict(
        tau_mem=draw(st.sampled_from([5.0, 20.0])),
        tau_trace=draw(st.sampled_from([3.0, 20.0, 60.0])),
        threshold=draw(st.sampled_from([0.3, 1.0])),
        lr=draw(st.sampled_from([0.0, 1e-4, 1e-3])),
        seed=draw(st.integers(0, 1000)),
    )
    return sizes, kw, draw(st.integers(1, 400)), draw(st.sampled_from([0.05, 0.3])), draw(st.integers(0, 1000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_cases())
def test_seed_rule_event_equals_dense(case):
    # EpropTrainer updates its weights at every step; its doubly filtered
    # traces make it amplify any last-bit difference (a 1e-13 change of the
    # eligibility grows to ~1e-7 over 700 steps at lr = 0.01 in the dense
    # kernel itself), so runs learn with lr <= 1e-3 over <= 400 steps here
    sizes, kw, T, p, seed = case
    rng = np.random.default_rng(seed)
    x = (rng.random((T, sizes[0])) < p) * rng.uniform(0.5, 1.5, (T, sizes[0]))
    y = rng.random((T, sizes[2]))
    nets = [eprop.EpropTrainer(*sizes, kernel=k, **kw) for k in ("dense", "event")]
    losses = [net.train_sequence(x, y) for net in nets]
    assert abs(losses[0] - losses[1]) <= TOL * max(abs(losses[0]), 1e-300)
    stepped, scales = eprop.EpropTrainer(*sizes, **kw), {}
    for t in range(T):
        stepped.step(x[t], y[t])
        for k, v in stepped.state_dict().items():
            if isinstance(v, np.ndarray) and v.dtype == np.float64:
                scales[k] = max(scales.get(k, 0.0), float(np.abs(v).max(initial=0.0)))
    close(nets[1].state_dict(), nets[0].state_dict(), "EpropTrainer", scales)


def test_seed_rule_event_long_stream_with_fixed_weights():
    # lr = 0: nothing feeds back, so 10,000 steps (hundreds of origin moves)
    # must stay exact
    rng = np.random.default_rng(2)
    x = (rng.random((10_000, 20)) < 0.05).astype(float)
    y = rng.random((10_000, 2))
    nets = [eprop.EpropTrainer(20, 40, 2, lr=0.0, kernel=k) for k in ("dense", "event")]
    for net in nets:
        net.train_stream([(x[a : a + 2500], y[a : a + 2500]) for a in range(0, 10_000, 2500)])
    close(nets[1].state_dict(), nets[0].state_dict(), "EpropTrainer lr=0 stream")


def test_seed_rule_kernel_option():
    with pytest.raises(ValueError, match=r"kernel.*'dense', 'event' or 'auto'"):
        eprop.EpropTrainer(3, 4, 1, kernel="fast")
    t = eprop.EpropTrainer(3, 4, 1, kernel="event")
    assert t.kernel == "event" and "kernel='event'" in repr(t)
    assert "kernel" not in repr(eprop.EpropTrainer(3, 4, 1))
    back = eprop.EpropTrainer.from_state_dict(t.state_dict())
    assert back.kernel == "event"


def test_seed_rule_auto_runs_event_only_on_sparse_inputs():
    rng = np.random.default_rng(12)
    for p, same_as in ((0.05, "event"), (0.6, "dense")):
        x = (rng.random((300, 8)) < p).astype(float)
        y = rng.random((300, 2))
        states = {}
        for kernel in ("auto", "dense", "event"):
            t = eprop.EpropTrainer(8, 12, 2, kernel=kernel)
            t.train_sequence(x, y)
            states[kernel] = t.state_dict()
        assert any(
            not np.array_equal(v, states["event"][k]) for k, v in states["dense"].items() if isinstance(v, np.ndarray)
        ), "vacuous: dense and event bitwise equal"
        for k, v in states[same_as].items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, states["auto"][k]), (p, k)


@pytest.mark.parametrize("n_adaptive", [0, 3])
def test_online_regularization_enters_the_event_kernel(n_adaptive):
    """An online schedule (update=k) adds the running-rate regularization at
    every step; one update at the call's end (T < k) shows the gradient whole,
    without updates feeding differences back. The regularization must move
    the weights far more than the kernels differ."""
    rng = np.random.default_rng(11)
    x = (rng.random((400, 6)) < 0.1).astype(float)
    y = rng.normal(size=(400, 2))
    kw = dict(n_adaptive=n_adaptive, update=1000, optimizer="sgd", lr=1e-2, seed=3)
    w = {}
    for reg in (0.0, 20.0):
        for k in ("dense", "event"):
            net = eprop.RecurrentNetwork(6, 8, 2, kernel=k, reg_rate=reg, **kw)
            w0 = net.W_in
            net.train_sequence(x, y)
            w[reg, k] = net.W_in - w0
    scale = np.abs(w[20.0, "dense"]).max()
    assert np.abs(w[20.0, "dense"] - w[0.0, "dense"]).max() > 1e-3 * scale, "vacuous: no regularization"
    assert np.abs(w[20.0, "event"] - w[20.0, "dense"]).max() <= TOL * scale
