"""Reduced versions of the example tasks (examples/*.py): RecurrentNetwork
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


def test_pattern_generation_task_shape(pg):
    x, y = pg.make_task(seed=0, steps=1000)
    assert x.shape == (1000, 100) and y.shape == (1000, 1)
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert 0.04 < x.mean() < 0.06
    assert y[0, 0] == 0.0 and np.isclose(np.abs(y).max(), 1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pattern_generation_learns(pg, dtype):
    x, y = pg.make_task(seed=0, steps=300)
    net = pg.make_network(lr=1e-2, seed=1, dtype=dtype)
    untrained = pg.nmse(net.predict_sequence(x), y)
    zero = pg.nmse(np.zeros_like(y), y)
    pg.train(net, x, y, 150)
    trained = pg.nmse(net.predict_sequence(x), y)
    assert np.isfinite(trained)
    assert trained < 0.1 * zero, (trained, zero, untrained)


def test_pattern_generation_learns_with_update_step(pg):
    x, y = pg.make_task(seed=0, steps=300)
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


def test_evidence_accumulation_trials(ea):
    rng = np.random.default_rng(0)
    x, y, m, labels = ea.make_batch(rng, 256)
    T = ea.trial_length()
    assert T == 2250 and x.shape == (256, T, 40) and y.shape == (256, T) and m.shape == (T,)
    assert m.sum() == 150 and m[-150:].all()
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evidence_accumulation_learns(ea, dtype):
    net = ea.make_network(n_adaptive=50, seed=1, dtype=dtype)
    ea.train(net, np.random.default_rng(1), iterations=300, batch=32, stop_at=None, verbose=False, **EA_TASK)
    x, y, m, labels = ea.make_batch(np.random.default_rng(8), 512, **EA_TASK)
    trained = net.evaluate(x, y, mask=m)["accuracy"]
    sides = cue_sides(x, **EA_TASK)
    first_cue = float(np.mean(sides[0] == labels))
    last_cue = float(np.mean(sides[-1] == labels))
    assert 0.7 < first_cue < 0.9 and 0.7 < last_cue < 0.9  # one cue is informative, not decisive
    assert trained > max(first_cue, last_cue) + 0.05, (trained, first_cue, last_cue)


def test_store_recall_trials(sr):
    d = sr.make_batch(np.random.default_rng(0), 128)
    x, ev, bits = d["inputs"], d["events"], d["bits"]
    assert x.shape == (128, 2400, 100) and d["mask"].shape == (128, 2400)
    for b in range(64):
        last = -1
        for k in range(12):
            seg = x[b, k * 200 : (k + 1) * 200]
            if ev[b, k] == 1:
                last = bits[b, k]
                assert seg[:, 50:75].sum() > 0 and seg[:, last * 25 : last * 25 + 25].sum() > 0
                assert seg[:, (1 - last) * 25 : (2 - last) * 25].sum() == 0
            elif ev[b, k] == 2:
                assert last >= 0 and bits[b, k] == last
                assert (d["targets"][b, k * 200 : (k + 1) * 200] == last).all() and d["mask"][b, k * 200].all()
                assert seg[:, 75:].sum() > 0 and seg[:, :75].sum() == 0
            else:
                assert seg.sum() == 0 and not d["mask"][b, k * 200 : (k + 1) * 200].any()
    assert 0.1 < np.mean(ev == 1) < 0.18


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
