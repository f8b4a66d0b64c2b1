"""The task generators (eprop.tasks) and reduced versions of the example
tasks (examples/*.py): RecurrentNetwork
must learn clearly beyond baselines measured in the same test on the same
data: predicting zero (pattern generation), and for evidence accumulation an
observer that remembers only the first cue, or only the last one (in
float64 and in float32, with the same bars). The
examples' own functions are used, so the tests exercise the same task
generators and settings; a missing example is a failure."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from common import import_eprop
from eprop import tasks

eprop = import_eprop()

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    path = EXAMPLES / f"{name}.py"
    assert path.exists(), f"{path} not found: the examples are part of the package's tests"
    spec = importlib.util.spec_from_file_location(f"_eprop_example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def pg():
    return _load("pattern_generation")


@pytest.fixture(scope="module")
def ea():
    return _load("evidence_accumulation")


@pytest.fixture(scope="module")
def sr():
    return _load("store_recall")


def test_pattern_generation_task_shape():
    x, y, m = tasks.pattern_generation(seed=0, steps=1000)
    assert x.shape == (1000, 100) and y.shape == (1000, 1) and m.shape == (1000,) and m.all()
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert 0.04 < x.mean() < 0.06
    assert y[0, 0] == 0.0 and np.isclose(np.abs(y).max(), 1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pattern_generation_learns(pg, dtype):
    x, y, _ = tasks.pattern_generation(seed=0, steps=300)
    net = pg.make_network(lr=1e-2, seed=1, dtype=dtype)
    untrained = pg.nmse(net.predict_sequence(x), y)
    zero = pg.nmse(np.zeros_like(y), y)
    pg.train(net, x, y, 150)
    trained = pg.nmse(net.predict_sequence(x), y)
    assert np.isfinite(trained)
    assert trained < 0.1 * zero, (trained, zero, untrained)


def test_pattern_generation_learns_with_update_step(pg):
    x, y, _ = tasks.pattern_generation(seed=0, steps=300)
    # one Adam step per time step: a much smaller learning rate than per sequence
    net = pg.make_network(lr=3e-5, seed=1, update="step")
    assert net.update == "step"
    untrained = pg.nmse(net.predict_sequence(x), y)
    zero = pg.nmse(np.zeros_like(y), y)
    pg.train(net, x, y, 60)
    trained = pg.nmse(net.predict_sequence(x), y)
    assert np.isfinite(trained)
    assert trained < 0.1 * zero, (trained, zero, untrained)


# 3 cues of 50 ms, a 100 ms delay, 50 ms recall (T = 375)
EA_TASK = dict(n_cues=3, t_cue=50, t_silence=25, t_delay=100, t_recall=50)


def test_evidence_accumulation_trials():
    x, y, m = tasks.evidence_accumulation(256, seed=0)
    labels = y[:, -1]
    T = 7 * 150 + 1050 + 150
    assert x.shape == (256, T, 40) and y.shape == (256, T) and m.shape == (256, T)
    assert (y == labels[:, None]).all()
    assert (m.sum(axis=1) == 150).all() and m[:, -150:].all()
    left = x[:, :1050, :10].sum(axis=(1, 2))
    right = x[:, :1050, 10:20].sum(axis=(1, 2))
    # the label is the side with more cue spikes in the vast majority of trials
    assert np.mean((right > left) == (labels == 1)) > 0.9
    assert x[:, :-150, 20:30].sum() == 0 and x[:, -150:, 20:30].mean() > 0.02
    assert 0.005 < x[:, :, 30:].mean() < 0.015
    assert 0.3 < labels.mean() < 0.7


def cue_sides(x, n_cues, t_cue, t_silence, **_):
    """Side (0 left, 1 right) of each cue of each trial, read from the input
    spikes in the cue's window: what an observer of that one cue knows."""
    sides = []
    for k in range(n_cues):
        start = k * (t_silence + t_cue) + t_silence
        left = x[:, start : start + t_cue, :10].sum(axis=(1, 2))
        right = x[:, start : start + t_cue, 10:20].sum(axis=(1, 2))
        sides.append((right > left).astype(int))
    return sides


_EA_TRAINED: dict = {}


def ea_accuracy(ea, n_neurons=100, n_adaptive=50, dtype="float64"):
    """Accuracy on 512 fresh trials of a network of the example's settings
    trained on 300 batches of 32 trials (computed once per configuration)."""
    key = (repr(n_neurons), repr(n_adaptive), dtype)
    if key not in _EA_TRAINED:
        net = ea.make_network(n_neurons=n_neurons, n_adaptive=n_adaptive, seed=1, dtype=dtype)
        ea.train(net, np.random.default_rng(1), iterations=300, batch=32, stop_at=None, verbose=False, **EA_TASK)
        x, y, m = tasks.evidence_accumulation(512, seed=8, **EA_TASK)
        _EA_TRAINED[key] = net.evaluate(x, y, mask=m)["accuracy"]
    return _EA_TRAINED[key]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evidence_accumulation_learns(ea, dtype):
    trained = ea_accuracy(ea, dtype=dtype)
    x, y, m = tasks.evidence_accumulation(512, seed=8, **EA_TASK)
    labels = y[:, -1]
    sides = cue_sides(x, **EA_TASK)
    first_cue = float(np.mean(sides[0] == labels))
    last_cue = float(np.mean(sides[-1] == labels))
    assert 0.7 < first_cue < 0.9 and 0.7 < last_cue < 0.9  # one cue is informative, not decisive
    assert trained > max(first_cue, last_cue) + 0.05, (trained, first_cue, last_cue)


def online_trainer_accuracy(trainer, x, y, m):
    """Accuracy of an OnlineTrainer read like the networks' readout: its two
    output neurons' spikes summed over the counted steps pick the class (a
    tie, e.g. no spike at all, counts as a coin flip: half right)."""
    counts = (trainer.predict_batch(x) * m[..., None]).sum(axis=1)
    labels = y[:, -1]
    right = counts[np.arange(len(labels)), labels] > counts[np.arange(len(labels)), 1 - labels]
    tie = counts[:, 0] == counts[:, 1]
    return float(np.mean(right) + 0.5 * np.mean(tie))


def test_two_layers_learn_evidence_accumulation_as_well_as_one(ea):
    # the same 100 neurons, half of them ALIF, as one layer or as two of 50
    # (25 ALIF each), the same trials and budget; then the seed's multi-layer
    # OnlineTrainer (feedforward, its own rule) on the same trials
    one = ea_accuracy(ea, 100, 50)
    two = ea_accuracy(ea, [50, 50], [25, 25])
    x, y, m = tasks.evidence_accumulation(512, seed=8, **EA_TASK)
    labels = y[:, -1]
    best_cue = max(float(np.mean(s == labels)) for s in cue_sides(x, **EA_TASK))
    rng = np.random.default_rng(1)
    online = eprop.OnlineTrainer([40, 50, 50, 2], seed=1)
    for _ in range(300):
        xb, yb, mb = tasks.evidence_accumulation(32, seed=rng, **EA_TASK)
        online.train_batch(xb, np.eye(2)[yb] * mb[..., None], update="sequence")
    seed_class = online_trainer_accuracy(online, x, y, m)
    print(f"evidence accumulation: one layer {one:.3f}, two layers {two:.3f}, OnlineTrainer {seed_class:.3f}")
    # "at least as well", up to the sampling error of 512 trials (two standard errors ~0.02)
    assert two >= one - 0.02, (two, one)
    assert two > best_cue + 0.05, (two, best_cue)
    assert two > seed_class + 0.2, (two, seed_class)


def test_store_recall_trials():
    x, y, m = tasks.store_recall(128, seed=0)
    assert x.shape == (128, 2400, 100) and y.shape == m.shape == (128, 2400)
    stores = 0
    for b in range(64):
        last = -1
        for k in range(12):
            seg, ys, ms = x[b, k * 200 : (k + 1) * 200], y[b, k * 200 : (k + 1) * 200], m[b, k * 200 : (k + 1) * 200]
            groups = seg.reshape(200, 4, 25).sum(axis=(0, 2))  # value 0, value 1, store, recall
            assert ms.all() or not ms.any()
            if groups[2] > 0:  # a store: the store group and one value group fire
                stores += 1
                assert groups[3] == 0 and (groups[0] > 0) != (groups[1] > 0) and not ms.any()
                last = int(groups[1] > 0)
            elif ms.any():  # a recall: only the recall group; the target is the last stored bit
                assert last >= 0 and groups[3] > 0 and groups[:3].sum() == 0
                assert (ys == last).all()
            else:
                assert seg.sum() == 0
    assert 0.1 < stores / (64 * 12) < 0.18


def test_generators_are_seeded_and_refuse_bad_arguments():
    a = tasks.evidence_accumulation(4, seed=3, n_cues=3, t_delay=10)
    b = tasks.evidence_accumulation(4, seed=3, n_cues=3, t_delay=10)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    rng = np.random.default_rng(3)
    c = tasks.evidence_accumulation(4, seed=rng, n_cues=3, t_delay=10)
    d = tasks.evidence_accumulation(4, seed=rng, n_cues=3, t_delay=10)
    assert np.array_equal(c.inputs, a.inputs) and not np.array_equal(d.inputs, c.inputs)
    for call, match in [
        (lambda: tasks.evidence_accumulation(0), "batch"),
        (lambda: tasks.evidence_accumulation(2, n_cues=4), "n_cues"),
        (lambda: tasks.evidence_accumulation(2, f_cue=2000.0), "f_cue"),
        (lambda: tasks.evidence_accumulation(2, p_majority=1.5), "p_majority"),
        (lambda: tasks.store_recall(2, p_store=0.6, p_recall=0.6), "p_recall"),
        (lambda: tasks.store_recall(2, t_period=0), "t_period"),
        (lambda: tasks.pattern_generation(steps=-1), "steps"),
        (lambda: tasks.pattern_generation(periods=()), "periods"),
        (lambda: tasks.pattern_generation(rate=float("nan")), "rate"),
        (lambda: tasks.pattern_generation(seed=-1), "seed"),
        (lambda: tasks.pattern_generation(seed="a"), "seed"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_store_recall_learns(sr, dtype):
    task = dict(n_periods=6, t_period=100)  # T = 600
    net = sr.make_network(seed=1, dtype=dtype)
    untrained, n0 = sr.accuracy_on_fresh(net, np.random.default_rng(7), 512, **task)
    sr.train(net, np.random.default_rng(1), iterations=40, batch=32, verbose=False, **task)
    trained, n1 = sr.accuracy_on_fresh(net, np.random.default_rng(8), 512, **task)
    assert n0 > 50 and n1 > 50
    assert trained > 0.85, (trained, untrained)
    assert trained > untrained + 0.2, (trained, untrained)
