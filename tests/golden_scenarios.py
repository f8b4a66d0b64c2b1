"""Fixed scenarios over every public method of every class, recorded as arrays.

``python tests/golden_scenarios.py --write`` records them into
``tests/data/golden.npz``; ``tests/test_golden.py`` replays them and requires
bitwise equality. The file was written by the version that closed the
correctness issue (before the redesign into one module per idea), so the
replay shows that the redesign changed no number.

Not recorded: byte counts of internal state (``memory_bytes``,
``batch_memory_bytes``, RecurrentNetwork's ``memory_per_step``), which count
work buffers that a restructuring may legitimately resize; they are tested by
the memory tests. The seed classes' ``memory_per_step`` (the seed's parameter
count) is recorded.
"""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "golden.npz")


class Recorder:
    def __init__(self):
        self.values: dict[str, np.ndarray] = {}

    def __call__(self, key, value):
        assert key not in self.values, key
        if isinstance(value, dict):
            for k in sorted(value):
                self(f"{key}.{k}", value[k])
            return
        if isinstance(value, str):
            self.values[key] = np.array(value)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
            for i, v in enumerate(value):
                self(f"{key}[{i}]", v)
        else:
            self.values[key] = np.array(value)


def _spikes(rng, shape, p=0.3):
    return (rng.random(shape) < p).astype(float)


def seed_eprop(rec, eprop):
    rng = np.random.default_rng(1)
    for shape in [(3, 7, 2), (6, 12, 3)]:
        tag = f"EpropTrainer{shape}"
        t = eprop.EpropTrainer(*shape, tau_mem=15, lr=0.02)
        rec(f"{tag}.repr", repr(t))
        rec(f"{tag}.init", {k: getattr(t, k) for k in ("W_in", "W_rec", "W_out")})
        rec(f"{tag}.memory_per_step", t.memory_per_step)
        x = _spikes(rng, (60, shape[0])) * 2.0
        y = rng.random((60, shape[2]))
        rec(f"{tag}.step_target", t.step(x[0], y[0]))
        rec(f"{tag}.step_free", t.step(x[1]))
        rec(f"{tag}.train_sequence", t.train_sequence(x, y))
        rec(f"{tag}.train_sequence_cont", t.train_sequence(x[:20], y[:20], reset=False))
        rec(f"{tag}.predict_sequence", t.predict_sequence(x))
        rec(f"{tag}.predict_cont", t.predict_sequence(x[:10], reset=False))
        rec(f"{tag}.train_stream", t.train_stream([(x[:25], y[:25]), (x[25:], y[25:])]))
        rec(f"{tag}.predict_stream", list(t.predict_stream([x[:30], x[30:]])))
        xb = _spikes(rng, (3, 40, shape[0])) * 2.0
        yb = rng.random((3, 40, shape[2]))
        for update in ("step", "sequence"):
            rec(f"{tag}.train_batch.{update}", t.train_batch(xb, yb, update=update, n_threads=2))
        rec(f"{tag}.predict_batch", t.predict_batch(xb))
        t.lr = 0.005
        t.W_rec = np.ones((shape[1], shape[1]))
        rec(f"{tag}.after_setters", t.train_sequence(x, y))
        rec(f"{tag}.state", t.state_dict())
        t.reset()
        rec(f"{tag}.reset_v", t._v)
        u = pickle.loads(pickle.dumps(t))
        rec(f"{tag}.pickled", u.train_sequence(x, y))
    t = eprop.EpropTrainer(4, 9, 2, seed=7)
    rec("EpropTrainer.seed7.repr", repr(t))
    rec("EpropTrainer.seed7.W_in", t.W_in)


def seed_online(rec, eprop):
    rng = np.random.default_rng(2)
    layer = eprop.OnlineLIFLayer(5, 8, tau_mem=10, threshold=0.5, dt=2)
    rec("OnlineLIFLayer.repr", repr(layer))
    rec("OnlineLIFLayer.W", layer.W)
    for k in range(20):
        rec(f"OnlineLIFLayer.step{k}", layer.step(3 * rng.random(5)))
        if k % 5 == 4:
            layer.apply_learning_signal(rng.standard_normal(8))
    rec("OnlineLIFLayer.state", layer.state_dict())
    for sizes in ([4, 10, 3], [6, 12, 8, 2]):
        tag = f"OnlineTrainer{sizes}"
        t = eprop.OnlineTrainer(sizes, threshold=0.5, lr=0.02)
        for lay in t.layers:
            lay.W = 2.0 * np.abs(lay.W)
        rec(f"{tag}.repr", repr(t))
        rec(f"{tag}.memory_per_step", t.memory_per_step)
        x = _spikes(rng, (50, sizes[0])) * 2.0
        y = _spikes(rng, (50, sizes[-1]), 0.2)
        rec(f"{tag}.step_target", t.step(x[0], y[0]))
        rec(f"{tag}.step_free", t.step(x[1]))
        rec(f"{tag}.train_sequence", t.train_sequence(x, y))
        rec(f"{tag}.train_cont", t.train_sequence(x[:10], y[:10], reset=False))
        rec(f"{tag}.predict_sequence", t.predict_sequence(x))
        rec(f"{tag}.train_stream", t.train_stream([(x[:20], y[:20]), (x[20:], y[20:])]))
        rec(f"{tag}.predict_stream", list(t.predict_stream([x[:15], x[15:]])))
        xb = _spikes(rng, (2, 30, sizes[0])) * 2.0
        yb = _spikes(rng, (2, 30, sizes[-1]), 0.2)
        for update in ("step", "sequence"):
            rec(f"{tag}.train_batch.{update}", t.train_batch(xb, yb, update=update))
        rec(f"{tag}.predict_batch", t.predict_batch(xb, n_threads=1))
        t.layers[0].lr = 0.05
        rec(f"{tag}.layer_lr", t.train_sequence(x, y))
        rec(f"{tag}.layer_repr", repr(t.layers[-1]))
        rec(f"{tag}.state", t.state_dict())
        u = pickle.loads(pickle.dumps(t))
        rec(f"{tag}.pickled", u.train_sequence(x, y))


RN_CASES = {
    "lif-mse-sym-adam-seq": dict(),
    "alif-ce-random-sgd-step": dict(
        n_adaptive=3, loss="cross_entropy", feedback="random", optimizer="sgd", lr=0.05, update="step", reg_rate=2.0
    ),
    "alif-mse-adaptive-adam-k3": dict(
        n_adaptive=4, feedback="adaptive", feedback_decay=0.01, update=3, reg_rate=5.0, tau_reg=20.0, refractory=2.0
    ),
    "lif-ce-sym-sgd-seq-reg": dict(loss="cross_entropy", optimizer="sgd", lr=0.1, reg_rate=3.0, refractory=0.0),
    "dt-half": dict(dt=0.5, tau_mem=10.0, tau_out=8.0, n_adaptive=2, refractory=2.0, reg_rate=1.0, target_rate=30.0),
}


def rsnn(rec, eprop):
    for name, kw in RN_CASES.items():
        rng = np.random.default_rng(len(name))
        tag = f"RecurrentNetwork.{name}"
        net = eprop.RecurrentNetwork(5, 9, 3, threshold=0.4, seed=3, **kw)
        rec(f"{tag}.repr", repr(net))
        rec(f"{tag}.init", {k: getattr(net, k) for k in ("W_in", "W_rec", "W_out", "b_out", "feedback_matrix")})
        ce = net.loss == "cross_entropy"
        x = _spikes(rng, (50, 5))
        y = rng.integers(0, 3, 50).astype(float) if ce else rng.standard_normal((50, 3))
        y1 = np.eye(3)[rng.integers(0, 3, 50)] if ce else rng.standard_normal((50, 3))
        mask = rng.random(50) < 0.6
        rec(f"{tag}.step_target", net.step(x[0], y1[0]))
        rec(f"{tag}.step_free", net.step(x[1]))
        rec(f"{tag}.step_masked", net.step(x[2], y1[2], mask=False))
        net.apply_updates()
        rec(f"{tag}.train_sequence", net.train_sequence(x, y))
        rec(f"{tag}.train_masked", net.train_sequence(x, y1, mask=mask))
        rec(f"{tag}.train_cont", net.train_sequence(x[:20], y[:20], reset=False))
        rec(f"{tag}.state_mid", net.state_dict())
        rec(f"{tag}.predict_sequence", net.predict_sequence(x))
        rec(f"{tag}.predict_cont", net.predict_sequence(x[:7], reset=False))
        rec(f"{tag}.train_stream", net.train_stream([(x[:30], y[:30]), (x[30:], y[30:], mask[30:])]))
        rec(f"{tag}.predict_stream", list(net.predict_stream([x[:12], x[12:]])))
        xb = _spikes(rng, (3, 40, 5))
        yb = rng.integers(0, 3, (3, 40)).astype(float) if ce else rng.standard_normal((3, 40, 3))
        mb = rng.random((3, 40)) < 0.7
        rec(f"{tag}.train_batch", net.train_batch(xb, yb, n_threads=2))
        rec(f"{tag}.train_batch_mask", net.train_batch(xb, yb, mask=mb[0]))
        rec(f"{tag}.train_batch_mask2", net.train_batch(xb, yb, mask=mb))
        rec(f"{tag}.predict_batch", net.predict_batch(xb))
        rec(f"{tag}.gradients1", net.gradients(x, y, mask=mask))
        rec(f"{tag}.gradients3", net.gradients(xb, yb, mask=mb))
        rec(f"{tag}.evaluate", net.evaluate(xb, yb, mask=mb))
        rec(f"{tag}.evaluate1", net.evaluate(x, y))
        net.lr = net.lr / 2
        net.W_rec = np.full((9, 9), 0.05)
        net.b_out = np.full(3, 0.1)
        if net.feedback != "symmetric":
            net.feedback_matrix = np.full((9, 3), 0.2)
        rec(f"{tag}.after_setters", net.train_sequence(x, y))
        net.reset()
        rec(f"{tag}.state_end", net.state_dict())
        u = pickle.loads(pickle.dumps(net))
        rec(f"{tag}.pickled", u.train_sequence(x, y))
        rec(f"{tag}.pickled_repr", repr(u))
    net = eprop.RecurrentNetwork(100, 100, 1, seed=0)
    rng = np.random.default_rng(0)
    x = _spikes(rng, (200, 100), 0.05)
    y = np.sin(np.arange(200) / 20.0)[:, None]
    for _ in range(3):
        net.train_sequence(x, y)
    rec("RecurrentNetwork.default100", {"out": net.predict_sequence(x), "W_out": net.W_out})


def record(eprop) -> dict[str, np.ndarray]:
    rec = Recorder()
    seed_eprop(rec, eprop)
    seed_online(rec, eprop)
    rsnn(rec, eprop)
    return rec.values


if __name__ == "__main__":
    import eprop as _eprop

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/golden_scenarios.py --write  (records tests/data/golden.npz)")
    values = record(_eprop)
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    np.savez_compressed(GOLDEN, **values)
    print(f"wrote {len(values)} arrays to {GOLDEN} ({os.path.getsize(GOLDEN)} bytes), eprop {_eprop.__version__}")
