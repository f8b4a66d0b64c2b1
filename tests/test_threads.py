"""Thread safety: the GIL is released during long calls, one trainer shared by
many threads stays consistent, and batch pools survive ``fork``.

No assertion here is about speed: the GIL test checks that Python code runs
*while* a call is in progress (a correctness property), not how fast.
"""

import copy
import os
import subprocess
import sys
import textwrap
import threading
import time

import eprop
import numpy as np
import pytest
from common import EPROP_STATE, arrays, hammer, spikes, state_bits

pytestmark = pytest.mark.timeout(120)

# --------------------------------------------------------------------------- GIL


def _run_with_counter(target):
    """Runs `target` in a thread; the main thread samples the clock meanwhile.
    Returns (call start, call end, sample times)."""
    times = {}
    started = threading.Event()
    errors = []

    def work():
        started.set()
        try:
            times["t0"] = time.perf_counter()
            target()
            times["t1"] = time.perf_counter()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=work)
    samples = []
    th.start()
    started.wait()
    while th.is_alive():
        samples.append(time.perf_counter())
    th.join()
    assert not errors, errors
    return times["t0"], times["t1"], np.array(samples)


def _assert_python_ran_during(t0, t1, samples, min_samples=1000):
    # only the middle half of the call counts: a call that kept the GIL would
    # leave no sample there whatever happens at its start and end
    lo, hi = t0 + 0.25 * (t1 - t0), t1 - 0.25 * (t1 - t0)
    inside = int(np.count_nonzero((samples > lo) & (samples < hi)))
    assert inside > min_samples, (
        f"the main thread ran {inside} loop iterations during the middle half of a "
        f"{t1 - t0:.3f} s call: the GIL was not released"
    )


def _long_call_steps(make, call, target_s=0.6):
    """Number of steps that makes `call` last about `target_s` seconds here."""
    n = 500
    while True:
        start = time.perf_counter()
        call(make(), n)
        took = time.perf_counter() - start
        if took > 0.05 or n >= 200_000:
            return int(min(400_000, max(n, n * target_s / max(took, 1e-6))))
        n *= 4


def test_train_sequence_releases_the_gil():
    n_in, n_out = 100, 10

    def call(t, T):
        t.train_sequence(spikes((T, n_in), 1), np.random.default_rng(2).random((T, n_out)))

    make = lambda: eprop.EpropTrainer(n_in, 256, n_out, lr=1e-4)
    T = _long_call_steps(make, call)
    x, y = spikes((T, n_in), 1), np.random.default_rng(2).random((T, n_out))
    t = make()
    t0, t1, samples = _run_with_counter(lambda: t.train_sequence(x, y))
    _assert_python_ran_during(t0, t1, samples)


@pytest.mark.parametrize("method", ["predict_sequence", "train_batch", "predict_batch", "online_train_sequence"])
def test_other_long_calls_release_the_gil(method):
    if method == "online_train_sequence":
        make = lambda: eprop.OnlineTrainer([100, 256, 10], lr=1e-4)
    else:
        make = lambda: eprop.EpropTrainer(100, 256, 10, lr=1e-4)

    def call(t, T):
        x = spikes((T, 100), 3)
        y = np.random.default_rng(4).random((T, 10))
        if method == "predict_sequence":
            t.predict_sequence(x)
        elif method == "train_batch":
            t.train_batch(x[None], y[None], n_threads=1)
        elif method == "predict_batch":
            t.predict_batch(x[None], n_threads=1)
        else:
            t.train_sequence(x, y)

    T = _long_call_steps(make, call, target_s=0.4)
    t = make()
    t0, t1, samples = _run_with_counter(lambda: call(t, T))
    _assert_python_ran_during(t0, t1, samples)


def test_two_threads_on_two_trainers_give_the_sequential_results():
    n_in, n_rec, n_out, T = 100, 256, 10, 3000
    xs = [spikes((T, n_in), s) for s in (10, 11)]
    ys = [np.random.default_rng(s).random((T, n_out)) for s in (12, 13)]
    trainers = [eprop.EpropTrainer(n_in, n_rec, n_out, lr=1e-4, seed=s) for s in (1, 2)]
    refs = [copy.deepcopy(t) for t in trainers]
    expected = [r.train_sequence(x, y) for r, x, y in zip(refs, xs, ys)]
    got = [None, None]
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        got[i] = trainers[i].train_sequence(xs[i], ys[i])

    ths = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
        assert not th.is_alive()
    assert got == expected
    for t, r in zip(trainers, refs):
        for k, v in arrays(r).items():
            np.testing.assert_array_equal(getattr(t, k), v, err_msg=k)


# --------------------------------------------------------------------------- one shared trainer


def random_io(n_in, n_out, p=0.2, amp=1.0):
    """Generators of random inputs (spikes of height `amp` with probability
    `p`) and targets: one step (``f(rng)``) or T steps (``f(rng, T)``)."""

    def x_(rng, T=None):
        shape = (n_in,) if T is None else (T, n_in)
        return (rng.random(shape) < p).astype(np.float64) * amp

    def y_(rng, T=None):
        return rng.random((n_out,) if T is None else (T, n_out))

    return x_, y_


def stream_ops(t, x_, y_):
    """train_stream and predict_stream on the shared trainer `t` (chunks run
    one at a time; other threads may use the trainer between them)."""

    def train_stream(rng):
        chunks = []
        for _ in range(int(rng.integers(1, 4))):
            T = int(rng.integers(1, 30))
            chunks.append((x_(rng, T), y_(rng, T)))
        assert np.isfinite(t.train_stream(chunks, reset=bool(rng.integers(2))))

    def predict_stream(rng):
        outs = list(t.predict_stream(x_(rng, int(rng.integers(1, 30))) for _ in range(2)))
        assert all(o.ndim == 2 and np.all(np.isfinite(o)) for o in outs)

    return [train_stream, predict_stream]


def test_shared_eprop_trainer_from_eight_threads():
    n_in, n_rec, n_out = 8, 32, 3
    t = eprop.EpropTrainer(n_in, n_rec, n_out, lr=1e-4)
    base = {n: getattr(t, n).copy() for n in ("W_in", "W_rec", "W_out")}
    snap = t.state_dict()

    x_, y_ = random_io(n_in, n_out)

    def step_target(rng):
        r = t.step(x_(rng), y_(rng))
        assert r["output"].shape == (n_out,) and np.isfinite(r["loss"])

    def step_free(rng):
        r = t.step(x_(rng))
        assert r["spikes"].shape == (n_rec,) and "loss" not in r

    def train_sequence(rng):
        T = int(rng.integers(1, 60))
        assert np.isfinite(t.train_sequence(x_(rng, T), y_(rng, T), reset=bool(rng.integers(2))))

    def predict_sequence(rng):
        T = int(rng.integers(1, 60))
        assert t.predict_sequence(x_(rng, T)).shape == (T, n_out)

    def reset(rng):
        t.reset()

    def get_weights(rng):
        w = t.W_rec
        assert np.all(np.diag(w) == 0), "W_rec read with a non-zero diagonal"
        assert t.W_in.shape == (n_rec, n_in) and t.W_out.shape == (n_out, n_rec)

    def get_state(rng):
        for n in EPROP_STATE:
            assert np.all(np.isfinite(getattr(t, n)))

    def set_weights(rng):
        k = ("W_in", "W_rec", "W_out")[int(rng.integers(3))]
        w = base[k] * (0.9 + 0.2 * rng.random(base[k].shape))
        if k == "W_rec":
            w = w + 0.1  # a non-zero diagonal is zeroed by the setter
        setattr(t, k, w)

    def set_hyper(rng):
        k = int(rng.integers(5))
        if k == 0:
            t.lr = float(rng.uniform(0, 1e-4))
        elif k == 1:
            t.tau_mem = float(rng.uniform(10, 30))
        elif k == 2:
            t.tau_trace = float(rng.uniform(10, 30))
        elif k == 3:
            t.threshold = float(rng.uniform(0.8, 1.2))
        else:
            t.dt = float(rng.uniform(0.5, 1.5))

    def train_batch(rng):
        B, T = int(rng.integers(1, 4)), int(rng.integers(1, 40))
        x = (rng.random((B, T, n_in)) < 0.2).astype(np.float64)
        losses = t.train_batch(
            x, rng.random((B, T, n_out)), update=("step", "sequence")[int(rng.integers(2))], n_threads=2
        )
        assert losses.shape == (B,) and np.all(np.isfinite(losses))

    def predict_batch(rng):
        T = int(rng.integers(1, 40))
        x = x_(rng, T)
        out = t.predict_batch(np.stack([x, x]), n_threads=int(rng.integers(1, 3)))
        # one call is atomic: both rows saw the same weights
        np.testing.assert_array_equal(out[0], out[1])

    def state_roundtrip(rng):
        if rng.integers(2):
            d = t.state_dict()
            assert np.all(np.diag(d["W_rec"]) == 0)
            t.load_state_dict(d)
        else:
            t.load_state_dict(snap)

    ops = [
        *stream_ops(t, x_, y_),
        step_target,
        step_free,
        train_sequence,
        predict_sequence,
        reset,
        get_weights,
        get_state,
        set_weights,
        set_hyper,
        train_batch,
        predict_batch,
        state_roundtrip,
    ]
    errors, calls = hammer(ops)
    assert not errors, errors[:5]
    assert calls == 2400
    _check_consistent(t)
    assert np.all(np.diag(t.W_rec) == 0)


def test_shared_online_trainer_from_eight_threads():
    sizes = [8, 24, 16, 3]
    t = eprop.OnlineTrainer(sizes, lr=1e-4)
    base = [l.W.copy() for l in t.layers]
    snap = t.state_dict()

    x_, y_ = random_io(sizes[0], sizes[-1], p=0.3, amp=2.0)

    def step_target(rng):
        assert np.isfinite(t.step(x_(rng), y_(rng))["loss"])

    def step_free(rng):
        assert t.step(x_(rng))["output"].shape == (sizes[-1],)

    def train_sequence(rng):
        T = int(rng.integers(1, 60))
        assert np.isfinite(t.train_sequence(x_(rng, T), y_(rng, T), reset=bool(rng.integers(2))))

    def predict_sequence(rng):
        T = int(rng.integers(1, 60))
        assert t.predict_sequence(x_(rng, T)).shape == (T, sizes[-1])

    def reset(rng):
        t.reset()

    def layer_reads(rng):
        i = int(rng.integers(len(base)))
        layer = t.layers[i]
        assert layer.W.shape == base[i].shape
        assert np.all(np.isfinite(layer._v)) and np.all(np.isfinite(layer._trace))

    def layer_writes(rng):
        i = int(rng.integers(len(base)))
        t.layers[i].W = base[i] * (0.9 + 0.2 * rng.random(base[i].shape))

    def layer_hyper(rng):
        layer = t.layers[int(rng.integers(len(base)))]
        k = int(rng.integers(4))
        if k == 0:
            layer.lr = float(rng.uniform(0, 1e-4))
        elif k == 1:
            layer.tau_mem = float(rng.uniform(10, 30))
        elif k == 2:
            layer.threshold = float(rng.uniform(0.8, 1.2))
        else:
            layer.dt = float(rng.uniform(0.5, 1.5))

    def layer_step(rng):
        # a live layer view can be stepped on its own
        layer = t.layers[0]
        assert layer.step(x_(rng)).shape == (sizes[1],)
        layer.apply_learning_signal(1e-3 * rng.standard_normal(sizes[1]))

    def train_batch(rng):
        B, T = int(rng.integers(1, 4)), int(rng.integers(1, 40))
        x = (rng.random((B, T, sizes[0])) < 0.3).astype(np.float64) * 2.0
        losses = t.train_batch(
            x, rng.random((B, T, sizes[-1])), update=("step", "sequence")[int(rng.integers(2))], n_threads=2
        )
        assert losses.shape == (B,) and np.all(np.isfinite(losses))

    def predict_batch(rng):
        x = x_(rng, int(rng.integers(1, 40)))
        out = t.predict_batch(np.stack([x, x]), n_threads=int(rng.integers(1, 3)))
        np.testing.assert_array_equal(out[0], out[1])

    def state_roundtrip(rng):
        if rng.integers(2):
            t.load_state_dict(t.state_dict())
        else:
            t.load_state_dict(snap)

    ops = [
        *stream_ops(t, x_, y_),
        step_target,
        step_free,
        train_sequence,
        predict_sequence,
        reset,
        layer_reads,
        layer_writes,
        layer_hyper,
        layer_step,
        train_batch,
        predict_batch,
        state_roundtrip,
    ]
    errors, calls = hammer(ops)
    assert not errors, errors[:5]
    assert calls == 2400
    _check_consistent(t)


def test_shared_recurrent_network_from_eight_threads():
    """Every method of a deep RecurrentNetwork (ALIF, adaptive feedback,
    Adam, regularization), streams among them, from eight threads."""
    n_in, n_out = 6, 2
    t = eprop.RecurrentNetwork(n_in, [12, 8], n_out, n_adaptive=[4, 2], feedback="adaptive", reg_rate=0.1, lr=1e-3)
    snap = t.state_dict()

    x_, y_ = random_io(n_in, n_out)

    def step(rng):
        r = t.step(x_(rng), y_(rng), mask=bool(rng.integers(2)))
        assert r["output"].shape == (n_out,) and np.isfinite(r["loss"])

    def train_sequence(rng):
        T = int(rng.integers(1, 40))
        m = rng.random(T) < 0.7
        assert np.isfinite(t.train_sequence(x_(rng, T), y_(rng, T), mask=m, reset=bool(rng.integers(2))))

    def predict_sequence(rng):
        T = int(rng.integers(1, 40))
        assert t.predict_sequence(x_(rng, T), reset=bool(rng.integers(2))).shape == (T, n_out)

    def batch(rng):
        B, T = int(rng.integers(1, 4)), int(rng.integers(1, 30))
        x, y = x_(rng, B * T).reshape(B, T, n_in), y_(rng, B * T).reshape(B, T, n_out)
        k = int(rng.integers(4))
        if k == 0:
            assert t.train_batch(x, y, n_threads=int(rng.integers(1, 3))).shape == (B,)
        elif k == 1:
            out = t.predict_batch(np.stack([x[0], x[0]]), n_threads=2)
            np.testing.assert_array_equal(out[0], out[1])  # one call saw one set of weights
        elif k == 2:
            g = t.gradients(x, y)
            assert g["W_in"].shape == (12, n_in) and np.isfinite(g["loss"])
        else:
            assert np.isfinite(t.evaluate(x, y)["loss"])

    def weights(rng):
        w = t.W_rec
        assert all(np.all(np.diag(m) == 0) for m in w)
        if rng.integers(2):
            t.W_out = t.W_out * 0.99
        else:
            t.W_rec = [m + 0.01 for m in w]  # diagonals are zeroed by the setter

    def misc(rng):
        k = int(rng.integers(4))
        if k == 0:
            t.reset()
        elif k == 1:
            t.apply_updates()
        elif k == 2:
            t.lr = float(rng.uniform(1e-4, 1e-3))
        else:
            t.load_state_dict(t.state_dict() if rng.integers(2) else snap)

    ops = [*stream_ops(t, x_, y_), step, train_sequence, predict_sequence, batch, weights, misc]
    errors, calls = hammer(ops)
    assert not errors, errors[:5]
    assert calls == 2400
    d = t.state_dict()
    assert all(np.all(np.isfinite(v)) for v in d.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f")
    assert all(np.all(np.diag(m) == 0) for m in t.W_rec)
    dup = copy.deepcopy(t)
    assert state_bits(dup) == state_bits(t)
    x, y = spikes((60, n_in), 5, p=0.3), np.random.default_rng(6).random((60, n_out))
    np.testing.assert_array_equal(dup.predict_sequence(x), t.predict_sequence(x))
    assert dup.train_sequence(x, y) == t.train_sequence(x, y)


def test_shared_layer_from_eight_threads():
    """A standalone OnlineLIFLayer: step, learning signals, setters, reset,
    state round trips from eight threads."""
    n_in, n = 6, 10
    layer = eprop.OnlineLIFLayer(n_in, n, threshold=0.5, lr=1e-3)
    snap = layer.state_dict()

    def step(rng):
        z = layer.step((rng.random(n_in) < 0.3) * 2.0)
        assert z.shape == (n,) and set(np.unique(z)) <= {0.0, 1.0}

    def signal(rng):
        layer.apply_learning_signal(rng.normal(size=n) * 0.1)

    def setters(rng):
        k = int(rng.integers(3))
        if k == 0:
            layer.W = layer.W * 0.999
        elif k == 1:
            layer.tau_mem = float(rng.uniform(10, 30))
        else:
            layer.threshold = float(rng.uniform(0.4, 0.6))

    def misc(rng):
        k = int(rng.integers(3))
        if k == 0:
            layer.reset()
        elif k == 1:
            layer.load_state_dict(layer.state_dict())
        else:
            layer.load_state_dict(snap)

    errors, calls = hammer([step, step, signal, setters, misc])
    assert not errors, errors[:5]
    assert calls == 2400
    for k, v in layer.state_dict().items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            assert np.all(np.isfinite(v)), k
    dup = copy.deepcopy(layer)
    assert state_bits(dup) == state_bits(layer)
    xs = (np.random.default_rng(3).random((40, n_in)) < 0.3) * 2.0
    assert all(np.array_equal(dup.step(x), layer.step(x)) for x in xs)


def _check_consistent(t):
    for k, v in arrays(t).items():
        assert np.all(np.isfinite(v)), k
    dup = copy.deepcopy(t)
    for k, v in arrays(t).items():
        np.testing.assert_array_equal(arrays(dup)[k], v, err_msg=k)
    n_in = t.n_inputs if isinstance(t, eprop.EpropTrainer) else t.layer_sizes[0]
    x = spikes((80, n_in), 99, p=0.3, amp=2.0)
    np.testing.assert_array_equal(dup.predict_sequence(x), t.predict_sequence(x))
    # and both still train identically
    y = np.random.default_rng(98).random((80, t.n_outputs if isinstance(t, eprop.EpropTrainer) else t.layer_sizes[-1]))
    assert dup.train_sequence(x, y) == t.train_sequence(x, y)


def test_concurrent_batches_on_different_trainers_share_the_default_pool():
    """Several threads run train_batch(n_threads=None) at once on different
    trainers; each result equals the single-threaded one."""
    x = spikes((6, 50, 8), 7, p=0.3, amp=2.0)
    y = np.random.default_rng(8).random((6, 50, 3))
    ref = eprop.EpropTrainer(8, 32, 3).train_batch(x, y, n_threads=1)
    trainers = [eprop.EpropTrainer(8, 32, 3) for _ in range(6)]
    out = [None] * 6
    errors = []

    def work(i):
        try:
            for _ in range(3):
                t = copy.deepcopy(trainers[i])
                out[i] = t.train_batch(x, y, n_threads=None if i % 2 else 2)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ths = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
        assert not th.is_alive()
    assert not errors
    for o in out:
        np.testing.assert_array_equal(o, ref)


# --------------------------------------------------------------------------- fork


_FORK_CODE = textwrap.dedent(
    """
    import copy, multiprocessing as mp, sys, threading
    import numpy as np
    import eprop

    rng = np.random.default_rng(0)
    x = (rng.random((6, 40, 8)) < 0.3).astype(np.float64) * 2.0
    y = rng.random((6, 40, 3))
    KIND = sys.argv[1]
    BUSY = sys.argv[2] == "busy"

    def make():
        if KIND == "eprop":
            return eprop.EpropTrainer(8, 32, 3)
        return eprop.OnlineTrainer([8, 16, 3])

    def weights(t):
        if isinstance(t, eprop.EpropTrainer):
            return [t.W_in, t.W_rec, t.W_out]
        return [l.W for l in t.layers]

    fresh = make()
    parent = copy.deepcopy(fresh)
    parent_losses = parent.train_batch(x, y, n_threads=None)  # starts the default pool
    parent.predict_batch(x, n_threads=None)

    def child(conn, n_threads):
        t = copy.deepcopy(fresh)
        losses = t.train_batch(x, y, n_threads=n_threads)
        out = t.predict_batch(x, n_threads=n_threads)
        conn.send((losses, [np.array(w) for w in weights(t)], out))
        conn.close()

    stop = threading.Event()
    if BUSY:
        # the parent's default pool is busy in another thread while we fork
        other = make()
        xb = np.repeat(x, 4, axis=0)
        yb = np.repeat(y, 4, axis=0)

        def spin():
            while not stop.is_set():
                other.train_batch(xb, yb, n_threads=None)

        th = threading.Thread(target=spin, daemon=True)
        th.start()

    ctx = mp.get_context("fork")
    for n_threads in (None, 2, None):
        a, b = ctx.Pipe(duplex=False)
        p = ctx.Process(target=child, args=(b, n_threads))
        p.start()
        b.close()
        if not a.poll(40):
            p.kill()
            print(f"child with n_threads={n_threads} did not answer", file=sys.stderr)
            sys.exit(3)
        losses, ws, out = a.recv()
        p.join(10)
        assert p.exitcode == 0, p.exitcode
        np.testing.assert_array_equal(losses, parent_losses)
        for w, pw in zip(ws, weights(parent)):
            np.testing.assert_array_equal(w, pw)
        np.testing.assert_array_equal(out, parent.predict_batch(x, n_threads=1))
    stop.set()

    # a Pool of forked workers, each calling train_batch with the default pool
    def pool_job(n_threads):
        return copy.deepcopy(fresh).train_batch(x, y, n_threads=n_threads)

    with ctx.Pool(2) as pool:
        for r in pool.map(pool_job, [None, 2, None, 1], chunksize=1):
            np.testing.assert_array_equal(r, parent_losses)
    # the parent's own pool still works after forking
    np.testing.assert_array_equal(copy.deepcopy(fresh).train_batch(x, y, n_threads=None), parent_losses)
    print("ok")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("busy", ["idle", "busy"])
def test_train_batch_in_forked_child(kind, busy):
    r = subprocess.run([sys.executable, "-c", _FORK_CODE, kind, busy], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stdout.strip().endswith("ok")
