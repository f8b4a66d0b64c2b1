"""Safe multithreaded batch training: ``train_batch``, ``predict_batch`` and
``batch_memory_bytes`` of EpropTrainer and OnlineTrainer.

Semantics checked here:
- every sequence of a batch starts from reset state and the trainer's own
  dynamic state is not touched;
- ``update="step"`` with B = 1 is bitwise ``train_sequence``; B identical
  sequences move the weights as one;
- ``update="sequence"`` keeps the weights fixed during the batch and applies
  the mean of the per-sequence summed changes once;
- results are bitwise identical for any thread count (argument or
  RAYON_NUM_THREADS);
- rejected calls raise ValueError and change nothing.
"""

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import eprop
import numpy as np
import pytest
from common import EPROP_STATE, EPROP_WEIGHTS, KINDS, build, dims, random_data, snapshot

pytestmark = pytest.mark.timeout(120)

N_IN, N_REC, N_OUT = 6, 24, 3
ONLINE_SIZES = [N_IN, 16, N_OUT]
SIZES = {"eprop": (N_IN, N_REC, N_OUT), "online": ONLINE_SIZES}
THREADS = [1, 2, 3, 8, None]
MODES = ["step", "sequence"]


# --------------------------------------------------------------------------- helpers


def make(kind, **kw):
    return build(kind, SIZES[kind], **kw)


def set_lr(trainer, lr):
    if isinstance(trainer, eprop.EpropTrainer):
        trainer.lr = lr
    else:
        for layer in trainer.layers:
            layer.lr = lr


def data(b, t, seed=0, p=0.3):
    return random_data((b, t), N_IN, N_OUT, seed, p)


def weights(trainer):
    if isinstance(trainer, eprop.EpropTrainer):
        return [getattr(trainer, n).copy() for n in EPROP_WEIGHTS]
    return [l.W.copy() for l in trainer.layers]


def dyn_state(trainer):
    if isinstance(trainer, eprop.EpropTrainer):
        return [getattr(trainer, n).copy() for n in EPROP_STATE]
    return [getattr(l, n).copy() for l in trainer.layers for n in ("_v", "_spikes", "_trace")]


def assert_arrays_equal(a, b):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"array {i}")
        assert x.tobytes() == y.tobytes(), f"array {i} differs bitwise (e.g. -0.0 vs 0.0)"


def warm(trainer, steps=60, seed=5):
    """Puts the trainer mid-sequence with non-zero state."""
    rng = np.random.default_rng(seed)
    n_in, n_out = dims(trainer)
    for _ in range(steps):
        trainer.step(3.0 * rng.random(n_in), rng.random(n_out))
    assert any(np.any(s != 0) for s in dyn_state(trainer))
    return trainer


# --------------------------------------------------------------------------- B = 1


def test_batch_of_one_step_mode_is_train_sequence_bitwise(kind):
    x, y = data(1, 120, seed=1)
    a, b = make(kind), make(kind)
    losses = a.train_batch(x, y, update="step")
    loss = b.train_sequence(x[0], y[0])
    assert isinstance(losses, np.ndarray) and losses.shape == (1,) and losses.dtype == np.float64
    assert losses[0] == loss and np.float64(losses[0]).tobytes() == np.float64(loss).tobytes()
    assert_arrays_equal(weights(a), weights(b))
    # and a second batch on the moved weights still matches a second sequence
    x2, y2 = data(1, 80, seed=2)
    assert a.train_batch(x2, y2)[0] == b.train_sequence(x2[0], y2[0])
    assert_arrays_equal(weights(a), weights(b))


def test_train_batch_returns_one_mean_loss_per_sequence(kind):
    x, y = data(5, 40, seed=3)
    losses = make(kind).train_batch(x, y)
    assert losses.shape == (5,) and losses.dtype == np.float64
    assert np.all(np.isfinite(losses)) and np.all(losses >= 0)


@pytest.mark.parametrize("update", MODES)
def test_train_batch_does_not_touch_trainer_state(kind, update):
    t = warm(make(kind))
    before = dyn_state(t)
    w_before = weights(t)
    x, y = data(3, 30, seed=4)
    t.train_batch(x, y, update=update)
    assert_arrays_equal(dyn_state(t), before)
    assert any(not np.array_equal(a, b) for a, b in zip(weights(t), w_before)), "weights did not move"


@pytest.mark.parametrize("update", MODES)
def test_each_sequence_starts_from_reset_state(kind, update):
    """A warm trainer and a reset copy give the same batch result."""
    x, y = data(3, 50, seed=6)
    a = warm(make(kind))
    b = copy.deepcopy(a)
    b.reset()
    assert_arrays_equal(a.train_batch(x, y, update=update), b.train_batch(x, y, update=update))
    assert_arrays_equal(weights(a), weights(b))


# --------------------------------------------------------------------------- thread counts


@pytest.mark.parametrize("update", MODES)
def test_bitwise_identical_for_any_thread_count(kind, update):
    x, y = data(7, 60, seed=7)
    results = {}
    for n in THREADS:
        t = make(kind)
        losses = t.train_batch(x, y, update=update, n_threads=n)
        # a second batch on the moved weights, too
        losses2 = t.train_batch(x[::-1], y[::-1], update=update, n_threads=n)
        results[n] = (losses, losses2, weights(t))
    ref = results[1]
    for n in THREADS[1:]:
        assert_arrays_equal(results[n][0], ref[0])
        assert_arrays_equal(results[n][1], ref[1])
        assert_arrays_equal(results[n][2], ref[2])


def test_predict_batch_bitwise_identical_for_any_thread_count(kind):
    x, _ = data(7, 60, seed=8)
    t = make(kind)
    ref = t.predict_batch(x, n_threads=1)
    for n in THREADS[1:]:
        assert_arrays_equal([t.predict_batch(x, n_threads=n)], [ref])


_DIGEST_CODE = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import eprop
    N_IN, N_REC, N_OUT = {N_IN}, {N_REC}, {N_OUT}
    rng = np.random.default_rng(7)
    x = (rng.random((7, 60, N_IN)) < 0.3).astype(np.float64) * 2.0
    y = rng.random((7, 60, N_OUT))
    out = {{}}
    for kind in ("eprop", "online"):
        for update in ("step", "sequence"):
            if kind == "eprop":
                t = eprop.EpropTrainer(N_IN, N_REC, N_OUT)
                w = lambda: [t.W_in, t.W_rec, t.W_out]
            else:
                t = eprop.OnlineTrainer({ONLINE_SIZES}, threshold=0.5)
                for layer in t.layers:
                    layer.W = 2.0 * np.abs(layer.W)
                w = lambda: [l.W for l in t.layers]
            h = hashlib.sha256()
            h.update(t.train_batch(x, y, update=update).tobytes())
            h.update(t.predict_batch(x).tobytes())
            for a in w():
                h.update(np.ascontiguousarray(a).tobytes())
            out[kind + "/" + update] = h.hexdigest()
    print(json.dumps(out))
    """
).format(N_IN=N_IN, N_REC=N_REC, N_OUT=N_OUT, ONLINE_SIZES=ONLINE_SIZES)


def _digest_here():
    x, y = data(7, 60, seed=7)
    out = {}
    for kind in KINDS:
        for update in MODES:
            t = make(kind)
            h = hashlib.sha256()
            h.update(t.train_batch(x, y, update=update, n_threads=1).tobytes())
            h.update(t.predict_batch(x, n_threads=1).tobytes())
            for a in weights(t):
                h.update(np.ascontiguousarray(a).tobytes())
            out[kind + "/" + update] = h.hexdigest()
    return out


@pytest.mark.parametrize("env_threads", ["1", "3"])
def test_bitwise_identical_under_rayon_num_threads(env_threads):
    env = dict(os.environ, RAYON_NUM_THREADS=env_threads)
    r = subprocess.run([sys.executable, "-c", _DIGEST_CODE], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == _digest_here()


# --------------------------------------------------------------------------- update semantics


@pytest.mark.parametrize("update", MODES)
def test_lr_zero_gives_train_sequence_losses_and_keeps_weights(kind, update):
    x, y = data(4, 70, seed=9)
    t = make(kind, lr=0.0)
    w0 = weights(t)
    losses = t.train_batch(x, y, update=update)
    assert_arrays_equal(weights(t), w0)
    ref = make(kind, lr=0.0)
    expected = np.array([ref.train_sequence(x[b], y[b]) for b in range(len(x))])
    assert_arrays_equal([losses], [expected])
    assert_arrays_equal(weights(ref), w0)


def test_sequence_mode_uses_fixed_weights_during_the_batch(kind):
    x, y = data(4, 70, seed=10)
    t = make(kind, lr=0.01)
    frozen = copy.deepcopy(t)
    set_lr(frozen, 0.0)
    w0 = weights(t)
    losses = t.train_batch(x, y, update="sequence")
    expected = np.array([frozen.train_sequence(x[b], y[b]) for b in range(len(x))])
    assert_arrays_equal([losses], [expected])
    assert all(not np.array_equal(a, b) for a, b in zip(weights(t), w0)), "every weight matrix must move"
    if kind == "eprop":
        # step mode, by contrast, learns during the batch: its losses differ from
        # frozen weights (OnlineTrainer's loss only sees binary output spikes,
        # which small changes may leave as they are)
        s = make(kind, lr=0.01)
        assert not np.array_equal(s.train_batch(x, y, update="step"), expected)


def test_sequence_mode_applies_the_mean_of_per_sequence_changes(kind):
    """dW(batch [a, b]) == (dW([a]) + dW([b])) / 2 since the weights stay fixed."""
    x, y = data(2, 60, seed=11)
    w0 = weights(make(kind))
    both = make(kind)
    both.train_batch(x, y, update="sequence")
    deltas = []
    for b in range(2):
        one = make(kind)
        one.train_batch(x[b : b + 1], y[b : b + 1], update="sequence")
        deltas.append([w1 - w for w1, w in zip(weights(one), w0)])
    for i, (wb, w) in enumerate(zip(weights(both), w0)):
        expected = (deltas[0][i] + deltas[1][i]) / 2
        np.testing.assert_allclose(wb - w, expected, rtol=1e-9, atol=1e-15, err_msg=f"matrix {i}")


def test_sequence_mode_change_is_linear_in_lr(kind):
    """With fixed weights during the batch, the total change scales with lr.

    (OnlineTrainer: only the top layer; the seed rule sends the learning signal
    down through the top layer's weights *after* that step's change, so lower
    layers' changes carry an lr**2 term.)"""
    x, y = data(3, 60, seed=12)
    w0 = weights(make(kind))
    a, b = make(kind, lr=1e-3), make(kind, lr=2e-3)
    la = a.train_batch(x, y, update="sequence")
    lb = b.train_batch(x, y, update="sequence")
    assert_arrays_equal([la], [lb])  # the forward pass does not depend on lr
    pairs = list(zip(weights(a), weights(b), w0))
    if kind == "online":
        pairs = pairs[-1:]
    for i, (wa, wb, w) in enumerate(pairs):
        assert np.any(wa != w)
        np.testing.assert_allclose(wb - w, 2 * (wa - w), rtol=1e-9, atol=1e-15, err_msg=f"matrix {i}")


@pytest.mark.parametrize("update", MODES)
def test_single_step_batch_applies_the_mean_of_the_changes(kind, update):
    """T = 1: each sequence's change is that of one train_sequence step on the
    same weights, and the batch applies their mean."""
    x, y = data(3, 1, seed=24, p=0.6)
    x *= 2.0
    w0 = weights(make(kind))
    deltas = []
    for b in range(3):
        one = make(kind)
        one.train_sequence(x[b], y[b])
        deltas.append([w1 - w for w1, w in zip(weights(one), w0)])
    t = make(kind)
    t.train_batch(x, y, update=update)
    moved = False
    for i, (wt, w) in enumerate(zip(weights(t), w0)):
        expected = sum(d[i] for d in deltas) / 3
        moved |= bool(np.any(expected != 0))
        np.testing.assert_allclose(wt - w, expected, rtol=1e-9, atol=1e-15, err_msg=f"matrix {i}")
    assert moved


def test_step_mode_two_identical_sequences_equal_one_bitwise(kind):
    """(d + d) / 2 == d exactly, so B = 2 copies move the weights like one."""
    x, y = data(1, 80, seed=13)
    a, b = make(kind), make(kind)
    losses = a.train_batch(np.repeat(x, 2, axis=0), np.repeat(y, 2, axis=0), update="step")
    loss = b.train_sequence(x[0], y[0])
    assert losses[0] == loss and losses[1] == loss
    assert_arrays_equal(weights(a), weights(b))


@pytest.mark.parametrize("B", [3, 5])
def test_step_mode_identical_sequences_equal_one(kind, B):
    x, y = data(1, 50, seed=14)
    a, b = make(kind), make(kind)
    losses = a.train_batch(np.repeat(x, B, axis=0), np.repeat(y, B, axis=0), update="step")
    loss = b.train_sequence(x[0], y[0])
    np.testing.assert_allclose(losses, np.full(B, loss), rtol=1e-12)
    assert np.all(losses == losses[0])  # identical sequences see identical weights
    for wa, wb in zip(weights(a), weights(b)):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)


def test_step_mode_order_of_sequences_does_not_matter_for_losses(kind):
    """Per-sequence losses follow their sequence when the batch is permuted."""
    x, y = data(4, 40, seed=15)
    perm = [2, 0, 3, 1]
    la = make(kind).train_batch(x, y, update="sequence")
    lb = make(kind).train_batch(x[perm], y[perm], update="sequence")
    assert_arrays_equal([la[perm]], [lb])


# --------------------------------------------------------------------------- predict_batch


def test_predict_batch_rows_equal_predict_sequence_bitwise(kind):
    x, y = data(5, 70, seed=16, p=0.5)
    t = make(kind)
    t.train_batch(*data(3, 30, seed=17))  # non-initial weights
    warm(t)
    before = snapshot(t)
    out = t.predict_batch(x)
    assert out.shape == (5, 70, N_OUT) and out.dtype == np.float64
    assert snapshot(t) == before, "predict_batch changed the trainer"
    ref = copy.deepcopy(t)
    for b in range(len(x)):
        assert_arrays_equal([out[b]], [ref.predict_sequence(x[b])])
    assert np.any(out != 0)


def test_predict_batch_accepts_non_contiguous_and_other_dtypes(kind):
    x, _ = data(4, 30, seed=18)
    t = make(kind)
    ref = t.predict_batch(x)
    assert_arrays_equal([t.predict_batch(np.asfortranarray(x))], [ref])
    assert_arrays_equal([t.predict_batch(x.astype(np.float32))], [ref])  # 0/2 exact in float32
    big = np.zeros((8, 30, N_IN))
    big[::2] = x
    assert_arrays_equal([t.predict_batch(big[::2])], [ref])


# --------------------------------------------------------------------------- memory


def test_batch_memory_bytes(kind):
    t = make(kind)
    for update in MODES:
        m1 = t.batch_memory_bytes(1, update)
        assert isinstance(m1, int) and m1 > 0
        for b in (2, 3, 16, 1000):
            assert t.batch_memory_bytes(b, update) == b * m1
        assert t.batch_memory_bytes(5, update=update) == 5 * m1
    assert t.batch_memory_bytes(4) == t.batch_memory_bytes(4, "step")
    for b in (1, 7):
        assert t.batch_memory_bytes(b, "sequence") > t.batch_memory_bytes(b, "step")
    # the sequence-mode accumulator is one copy of the weights per sequence
    wbytes = sum(w.nbytes for w in weights(t))
    assert t.batch_memory_bytes(3, "sequence") - t.batch_memory_bytes(3, "step") == 3 * wbytes
    # independent of T: the call takes no length, and training a long batch does not change it
    before = t.batch_memory_bytes(2, "step")
    t.train_batch(*data(2, 500, seed=19))
    assert t.batch_memory_bytes(2, "step") == before


@pytest.mark.parametrize("args", [(0, "step"), (-1, "step"), (2, "epoch"), (2, "")])
def test_batch_memory_bytes_rejects(kind, args):
    with pytest.raises(ValueError):
        make(kind).batch_memory_bytes(*args)


# --------------------------------------------------------------------------- bad input


def _bad_train_cases():
    x, y = data(3, 20, seed=20)
    nan_x = x.copy()
    nan_x[1, 7, 2] = np.nan
    inf_y = y.copy()
    inf_y[2, 19, 0] = np.inf
    ninf_x = x.copy()
    ninf_x[0, 0, 0] = -np.inf
    return {
        "inputs rank 2": (x[0], y, {}),
        "targets rank 2": (x, y[0], {}),
        "inputs rank 4": (x[None], y, {}),
        "both rank 2": (x[0], y[0], {}),
        "inputs width": (x[:, :, :-1], y, {}),
        "targets width": (x, y[:, :, :-1], {}),
        "B mismatch": (x, y[:2], {}),
        "T mismatch": (x, y[:, :19], {}),
        "B = 0": (x[:0], y[:0], {}),
        "T = 0": (x[:, :0], y[:, :0], {}),
        "NaN input": (nan_x, y, {}),
        "inf target": (x, inf_y, {}),
        "-inf input": (ninf_x, y, {}),
        "update epoch": (x, y, {"update": "epoch"}),
        "update Step": (x, y, {"update": "Step"}),
        "n_threads 0": (x, y, {"n_threads": 0}),
        "n_threads -1": (x, y, {"n_threads": -1}),
        "n_threads 0 sequence": (x, y, {"n_threads": 0, "update": "sequence"}),
        "NaN input sequence": (nan_x, y, {"update": "sequence"}),
    }


BAD_TRAIN = _bad_train_cases()


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_train_batch_rejects_and_changes_nothing(kind, case):
    x, y, kw = BAD_TRAIN[case]
    t = warm(make(kind))
    before = snapshot(t)
    with pytest.raises(ValueError):
        t.train_batch(x, y, **kw)
    assert snapshot(t) == before
    # still usable afterwards
    gx, gy = data(2, 10, seed=21)
    assert t.train_batch(gx, gy).shape == (2,)


def _bad_predict_cases():
    x, _ = data(3, 20, seed=22)
    nan_x = x.copy()
    nan_x[2, 3, 1] = np.nan
    return {
        "rank 2": (x[0], {}),
        "rank 4": (x[None], {}),
        "rank 1": (x[0, 0], {}),
        "width": (x[:, :, 1:], {}),
        "B = 0": (x[:0], {}),
        "T = 0": (x[:, :0], {}),
        "NaN": (nan_x, {}),
        "inf": (np.where(x > 0, np.inf, 0.0), {}),
        "n_threads 0": (x, {"n_threads": 0}),
        "n_threads -1": (x, {"n_threads": -1}),
    }


BAD_PREDICT = _bad_predict_cases()


@pytest.mark.parametrize("case", list(BAD_PREDICT))
def test_predict_batch_rejects_and_changes_nothing(kind, case):
    x, kw = BAD_PREDICT[case]
    t = warm(make(kind))
    before = snapshot(t)
    with pytest.raises(ValueError):
        t.predict_batch(x, **kw)
    assert snapshot(t) == before


def test_update_and_n_threads_are_keyword_only(kind):
    x, y = data(2, 5, seed=23)
    t = make(kind)
    before = snapshot(t)
    with pytest.raises(TypeError):
        t.train_batch(x, y, "step")
    with pytest.raises(TypeError):
        t.predict_batch(x, 2)
    assert snapshot(t) == before
