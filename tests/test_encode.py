"""eprop.encode: normalization fitted on training data, time stretching, rate
and threshold-crossing (delta) spike codes; shapes, statistics, seeding and
bad input."""

import numpy as np
import pytest
from common import import_eprop

eprop = import_eprop()
enc = eprop.encode


def series(T=200, C=3, seed=0, B=None):
    rng = np.random.default_rng(seed)
    shape = (T, C) if B is None else (B, T, C)
    return np.cumsum(rng.normal(size=shape), axis=-2)


def test_scaler_is_fitted_on_training_data_only():
    train, test = series(seed=1), series(seed=2) * 3.0
    s = enc.Scaler.fit(train)
    out = s(train)
    np.testing.assert_allclose(out.min(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(out.max(axis=0), 1.0, rtol=1e-15)
    t = s(test)
    assert t.min() >= 0.0 and t.max() <= 1.0
    # the test data's own range plays no part: a point of the training range maps as in training
    np.testing.assert_allclose(s(train[:5]), out[:5], rtol=0, atol=0)
    z = enc.Scaler.fit(train, "zscore")
    zt = z(train)
    np.testing.assert_allclose(zt.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(zt.std(axis=0), 1.0, rtol=1e-12)
    assert np.abs(z(test)).max() > 1.0  # no clipping for z-scores
    const = np.column_stack([np.ones(10), np.arange(10.0)])
    assert np.array_equal(enc.Scaler.fit(const)(const)[:, 0], np.zeros(10))
    # batches: fitted over every series and step
    b = series(B=4, seed=3)
    sb = enc.Scaler.fit(b)
    np.testing.assert_allclose(sb.offset, b.reshape(-1, 3).min(axis=0))
    assert sb(b).shape == b.shape


def test_stretch_holds_each_sample():
    x = series(T=5, C=2)
    y = enc.stretch(x, 3)
    assert y.shape == (15, 2)
    for t in range(5):
        assert (y[3 * t : 3 * t + 3] == x[t]).all()
    assert enc.stretch(series(T=4, B=2), 2).shape == (2, 8, 3)
    assert np.array_equal(enc.stretch(x, 1), x)


def test_rate_code_fires_at_the_stated_probability():
    T, max_rate = 200_000, 200.0
    x = np.tile([0.0, 0.25, 1.0], (T, 1))
    spikes = enc.rate(x, max_rate=max_rate, seed=5)
    assert set(np.unique(spikes)) <= {0.0, 1.0} and spikes.dtype == np.float64
    p = x[0] * max_rate / 1000.0
    got = spikes.mean(axis=0)
    sigma = np.sqrt(p * (1 - p) / T)
    assert got[0] == 0.0
    assert np.all(np.abs(got[1:] - p[1:]) < 5 * sigma[1:]), (got, p)
    # dt scales the probability per step
    half = enc.rate(x[:50_000], max_rate=max_rate, dt=0.5, seed=5).mean(axis=0)
    assert abs(half[2] - 0.1) < 5 * np.sqrt(0.1 * 0.9 / 50_000)


def test_rate_code_is_seeded():
    x = np.full((100, 4), 0.5)
    assert np.array_equal(enc.rate(x, seed=3), enc.rate(x, seed=3))
    assert not np.array_equal(enc.rate(x, seed=3), enc.rate(x, seed=4))
    rng = np.random.default_rng(3)
    first, second = enc.rate(x, seed=rng), enc.rate(x, seed=rng)
    assert np.array_equal(first, enc.rate(x, seed=3)) and not np.array_equal(first, second)
    assert enc.rate(np.full((2, 10, 4), 0.5)).shape == (2, 10, 4)


def test_delta_code_tracks_the_signal():
    thr = 0.2
    t = np.arange(2000)
    x = np.column_stack([np.sin(t / 100.0), 0.003 * t])  # changes per step < thr
    s = enc.delta(x, thr)
    assert s.shape == (2000, 4)
    up, down = s[:, :2], s[:, 2:]
    assert not (up * down).any()
    # the spikes rebuild the signal to within the threshold (up to rounding:
    # a value exactly one threshold away may round to just below it)
    rebuilt = x[0] + thr * np.cumsum(up - down, axis=0)
    assert np.abs(rebuilt - x).max() <= thr * (1 + 1e-9)
    assert np.abs(rebuilt - x).max() > 0.9 * thr  # the bound is tight, not vacuous
    # a ramp of 6 m crosses 0.2 thirty times, upward only
    assert up[:, 1].sum() == np.floor(x[-1, 1] / thr + 1e-9) and down[:, 1].sum() == 0
    # a jump of several thresholds gives one spike, and the reference follows
    j = np.array([[0.0], [1.0], [1.05], [0.7]])
    assert enc.delta(j, 0.2).tolist() == [[0, 0], [1, 0], [0, 0], [0, 1]]
    # batches: each series on its own
    b = series(T=50, B=3)
    sb = enc.delta(b, 0.5)
    for i in range(3):
        assert np.array_equal(sb[i], enc.delta(b[i], 0.5))


BAD = [
    (lambda: enc.rate(np.full((5, 2), np.nan)), ValueError, "x: expected finite"),
    (lambda: enc.rate(np.full((5, 2), 1.5)), ValueError, r"x: expected values in \[0, 1\]"),
    (lambda: enc.rate(np.full((5, 2), -0.1)), ValueError, "x: expected values"),
    (lambda: enc.rate(np.zeros(5)), ValueError, "x: expected a series"),
    (lambda: enc.rate(np.zeros((1, 2, 3, 4))), ValueError, "x: expected a series"),
    (lambda: enc.rate(np.zeros((0, 3))), ValueError, "x: expected at least one step"),
    (lambda: enc.rate(np.zeros((5, 2)), max_rate=2000.0), ValueError, "max_rate"),
    (lambda: enc.rate(np.zeros((5, 2)), max_rate=-1.0), ValueError, "max_rate"),
    (lambda: enc.rate(np.zeros((5, 2)), dt=0.0), ValueError, "dt"),
    (lambda: enc.rate(np.zeros((5, 2)), seed=-3), ValueError, "seed"),
    (lambda: enc.rate([["a", "b"]]), TypeError, "x: expected a numeric array"),
    (lambda: enc.delta(np.zeros((5, 2)), 0.0), ValueError, "threshold"),
    (lambda: enc.delta(np.array([[0.0], [np.inf]]), 0.1), ValueError, "x: expected finite"),
    (lambda: enc.stretch(np.zeros((5, 2)), 0), ValueError, "k"),
    (lambda: enc.stretch(np.zeros((5, 2)), 2.5), ValueError, "k"),
    (lambda: enc.Scaler.fit(np.zeros((5, 2)), "log"), ValueError, "kind"),
    (lambda: enc.Scaler.fit(np.array([[1.0, np.nan]])), ValueError, "train: expected finite"),
    (lambda: enc.Scaler.fit(np.zeros((5, 2)))(np.zeros((5, 3))), ValueError, "x: expected 2 channels"),
    (lambda: enc.Scaler(np.zeros(2), np.array([1.0, 0.0])), ValueError, "scales > 0"),
    (lambda: enc.Scaler(np.zeros(2), np.ones(3)), ValueError, "offset, scale"),
    (lambda: enc.Scaler(np.zeros(2), np.ones(2), kind="log"), ValueError, "kind"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[m for _, _, m in BAD])
def test_bad_input_is_refused(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_inputs_are_not_modified():
    x = series()
    keep = x.copy()
    enc.Scaler.fit(x)(x)
    enc.delta(x, 0.5)
    enc.stretch(x, 2)
    assert np.array_equal(x, keep)
