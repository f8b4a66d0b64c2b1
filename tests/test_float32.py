"""dtype="float32" on RecurrentNetwork and EpropTrainer: single precision for
real (the results differ from float64 by single-precision rounding, not by
nothing), within the documented tolerance of float64 while the spike trains
agree, arrays in and out in float32, the same checks and refusals as float64,
and checkpoints that keep the dtype. The paper's tasks learning in float32 are
in test_rsnn_tasks.py."""

from __future__ import annotations

import eprop
import numpy as np
import pytest

RSNN_CASES = [
    {},
    {"n_adaptive": 20},
    {"loss": "cross_entropy", "n_outputs": 3},
    {"feedback": "random", "reg_rate": 50.0},
    {"feedback": "adaptive", "optimizer": "sgd"},
]


def _data(seed, t, n_in, n_out, classes=False, rate=0.2):
    rng = np.random.default_rng(seed)
    x = (rng.random((t, n_in)) < rate).astype(float)
    y = rng.integers(0, n_out, t) if classes else 0.3 * rng.standard_normal((t, n_out))
    return x, y


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def test_default_is_float64_and_named():
    for net in (eprop.RecurrentNetwork(3, 5, 2), eprop.EpropTrainer(3, 5, 2)):
        assert net.dtype == "float64" and net.W_in.dtype == np.float64
        assert "dtype" not in repr(net)
    for net in (eprop.RecurrentNetwork(3, 5, 2, dtype="float32"), eprop.EpropTrainer(3, 5, 2, dtype="float32")):
        assert net.dtype == "float32" and net.config.dtype == "float32"
        assert "dtype='float32'" in repr(net)


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
@pytest.mark.parametrize("bad", ["float16", "f32", "double", "", "FLOAT32"])
def test_bad_dtype_is_a_value_error_naming_it(cls, bad):
    with pytest.raises(ValueError, match=r"dtype: expected 'float64' or 'float32', got '" + bad + "'"):
        cls(3, 5, 2, dtype=bad)


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_dtype_not_text_is_a_type_error(cls):
    with pytest.raises(TypeError, match="dtype"):
        cls(3, 5, 2, dtype=np.float32)


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_initial_weights_are_the_float64_ones_rounded(cls):
    a, b = cls(7, 11, 3, seed=5), cls(7, 11, 3, seed=5, dtype="float32")
    for name in ("W_in", "W_rec", "W_out"):
        got, want = getattr(b, name), getattr(a, name)
        assert got.dtype == np.float32
        assert got.tobytes() == want.astype(np.float32).tobytes(), name


@pytest.mark.parametrize("kw", RSNN_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_recurrent_network_follows_float64_to_single_precision(kw):
    kw = dict(kw)
    n_out = kw.pop("n_outputs", 2)
    x, y = _data(1, 200, 20, n_out, classes=kw.get("loss") == "cross_entropy")
    a = eprop.RecurrentNetwork(20, 30, n_out, seed=3, **kw)
    b = eprop.RecurrentNetwork(20, 30, n_out, seed=3, dtype="float32", **kw)
    # the same spike trains (compared step by step)
    sa = np.array([a.step(r)["spikes"] for r in x])
    sb = np.array([b.step(r)["spikes"] for r in x])
    assert sb.dtype == np.float32 and 0.02 < sa.mean() < 0.5
    assert np.array_equal(sa, sb)
    # gradients and outputs within the documented tolerance, and not equal:
    # the arithmetic is single precision, not float64 stored as float32
    ga, gb = a.gradients(x, y), b.gradients(x, y)
    for k in ("W_in", "W_rec", "W_out", "b_out"):
        assert gb[k].dtype == np.float32, k
        assert 1e-9 < _rel(ga[k], gb[k]) < 1e-5, (k, _rel(ga[k], gb[k]))
    assert abs(ga["loss"] - gb["loss"]) < 1e-5 * abs(ga["loss"])
    pa, pb = a.predict_sequence(x), b.predict_sequence(x)
    assert pb.dtype == np.float32 and 1e-9 < _rel(pa, pb) < 1e-5
    # and one update of both: the weight changes (not the weights, which a
    # wrong update would move by too little to see) agree
    before = {k: (getattr(a, k).copy(), getattr(b, k).astype(float)) for k in ("W_in", "W_rec", "W_out")}
    la, lb = a.train_sequence(x, y), b.train_sequence(x, y)
    assert abs(la - lb) < 1e-5 * abs(la)
    for k, (wa, wb) in before.items():
        da, db = getattr(a, k) - wa, getattr(b, k).astype(float) - wb
        assert np.abs(da).max() > 0, k
        assert 1e-9 < _rel(da, db) < 1e-4, (k, _rel(da, db))


def test_eprop_trainer_follows_float64_to_single_precision():
    x, y = _data(2, 100, 20, 2, rate=0.3)
    y = np.abs(y)
    a, b = eprop.EpropTrainer(20, 30, 2), eprop.EpropTrainer(20, 30, 2, dtype="float32")
    w0 = {name: getattr(a, name).copy() for name in ("W_in", "W_rec", "W_out")}
    la = [a.step(xr, yr)["loss"] for xr, yr in zip(x, y)]
    outs = [b.step(xr, yr) for xr, yr in zip(x, y)]
    assert outs[-1]["output"].dtype == np.float32 and outs[-1]["spikes"].dtype == np.float32
    lb = [o["loss"] for o in outs]
    assert 1e-10 < max(abs(p - q) / max(abs(p), 1e-12) for p, q in zip(la, lb)) < 1e-5
    for name in ("W_in", "W_rec", "W_out"):
        da, db = getattr(a, name) - w0[name], getattr(b, name).astype(float) - w0[name]
        assert 1e-9 < _rel(da, db) < 1e-4, name


@pytest.mark.parametrize("kw", [{}, {"n_adaptive": 15, "reg_rate": 20.0}])
def test_event_kernel_follows_dense_in_float32(kw):
    x, y = _data(3, 400, 20, 2, rate=0.05)
    a = eprop.RecurrentNetwork(20, 30, 2, seed=3, dtype="float32", **kw)
    b = eprop.RecurrentNetwork(20, 30, 2, seed=3, dtype="float32", kernel="event", **kw)
    ga, gb = a.gradients(x, y), b.gradients(x, y)
    for k in ("W_in", "W_rec"):
        assert _rel(ga[k], gb[k]) < 2e-5, (k, _rel(ga[k], gb[k]))
    # the seed rule learns at every step and amplifies last-bit differences:
    # its event form in float32 stays as close to the dense float32 kernel
    # as float32 is to float64 (in float64 the two kernels agree to ~1e-14)
    x, y = _data(4, 300, 20, 2, rate=0.1)
    w = {}
    for dtype in ("float64", "float32"):
        for kernel in ("dense", "event"):
            t = eprop.EpropTrainer(20, 30, 2, dtype=dtype, kernel=kernel)
            t.train_sequence(x, np.abs(y))
            w[dtype, kernel] = t.W_in
    single = _rel(w["float64", "dense"], w["float32", "dense"])
    assert _rel(w["float64", "dense"], w["float64", "event"]) < 1e-12
    assert _rel(w["float32", "dense"], w["float32", "event"]) < min(2 * single, 1e-4), single


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_float32_batches_do_not_depend_on_threads(cls):
    rng = np.random.default_rng(5)
    x = (rng.random((6, 50, 7)) < 0.2).astype(float)
    y = 0.2 * rng.random((6, 50, 3))
    runs = []
    for n in (1, 2, 3):
        net = cls(7, 11, 3, dtype="float32")
        losses = net.train_batch(x, y, n_threads=n)
        runs.append((losses.tobytes(), net.W_in.tobytes(), net.W_rec.tobytes(), net.predict_batch(x).tobytes()))
    assert runs[0] == runs[1] == runs[2]
    assert np.frombuffer(runs[0][3], np.float32).size == 6 * 50 * 3


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_values_beyond_float32_range_are_refused_and_change_nothing(cls):
    net = cls(4, 6, 2, dtype="float32")
    x, y = _data(6, 30, 4, 2)
    net.train_sequence(x, np.abs(y))
    before = net.state_dict()
    big = x.copy()
    big[3, 1] = 1e39
    msg = r"inputs: expected values within the float32 range .* got 1e\+39"
    with pytest.raises(ValueError, match=msg):
        net.train_sequence(big, np.abs(y))
    with pytest.raises(ValueError, match=msg):
        net.predict_sequence(big)
    with pytest.raises(ValueError, match=msg):
        net.train_batch(big[None], np.abs(y)[None])
    with pytest.raises(ValueError, match=r"x: expected values within the float32 range"):
        net.step(big[3])
    with pytest.raises(ValueError, match=r"targets: expected values within the float32 range"):
        net.train_sequence(x, np.full_like(y, -1e300))
    with pytest.raises(ValueError, match=r"W_in: expected values within the float32 range"):
        net.W_in = np.full(net.W_in.shape, 4e38)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert np.array_equal(before[k], after[k]), k
    # the same values are fine in float64
    cls(4, 6, 2).predict_sequence(big)


def test_setters_round_to_float32():
    net = eprop.RecurrentNetwork(4, 6, 2, dtype="float32")
    w = np.random.default_rng(0).standard_normal((6, 4))
    net.W_in = w
    assert net.W_in.dtype == np.float32 and net.W_in.tobytes() == w.astype(np.float32).tobytes()


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_checkpoint_keeps_float32_and_resumes_exactly(cls, tmp_path):
    x, y = _data(7, 60, 5, 2)
    y = np.abs(y)
    a = cls(5, 9, 2, dtype="float32")
    a.train_sequence(x, y)
    a.save(tmp_path / "c.npz")
    d = a.state_dict()
    assert d["dtype"] == "float32" and d["W_in"].dtype == np.float32
    b = cls.load(tmp_path / "c.npz")
    c = cls.from_state_dict(d)
    for other in (b, c):
        assert type(other) is cls and other.dtype == "float32"
    la = a.train_sequence(x, y, reset=False)
    for other in (b, c):
        assert other.train_sequence(x, y, reset=False) == la
        assert other.W_rec.tobytes() == a.W_rec.tobytes()


@pytest.mark.parametrize("cls", [eprop.RecurrentNetwork, eprop.EpropTrainer])
def test_a_state_of_the_other_dtype_is_refused_not_converted(cls):
    f32, f64 = cls(5, 9, 2, dtype="float32"), cls(5, 9, 2)
    with pytest.raises(ValueError, match=r"state_dict\['dtype'\]: expected 'float64'.*got 'float32'"):
        f64.load_state_dict(f32.state_dict())
    with pytest.raises(ValueError, match=r"state_dict\['dtype'\]: expected 'float32'.*got 'float64'"):
        f32.load_state_dict(f64.state_dict())
    # a float64 state relabelled as float32: its values are not float32
    d = f64.state_dict()
    d["dtype"] = "float32"
    with pytest.raises(ValueError, match=r"float32 values .*cannot hold exactly"):
        f32.load_state_dict(d)
    with pytest.raises(ValueError, match=r"cannot hold exactly"):
        cls.from_state_dict(d)
    # converted explicitly, it loads
    for k, v in d.items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            d[k] = v.astype(np.float32)
    f32.load_state_dict(d)
    assert f32.W_in.tobytes() == f64.W_in.astype(np.float32).tobytes()


def test_memory_halves_in_float32():
    for cls, size in ((eprop.RecurrentNetwork, (50, 200, 5)), (eprop.EpropTrainer, (50, 200, 5))):
        a, b = cls(*size), cls(*size, dtype="float32")
        assert 0.45 < b.memory_bytes / a.memory_bytes < 0.55
    # RecurrentNetwork counts values per step (the counters and index buffers are not floats)
    a, b = eprop.RecurrentNetwork(50, 200, 5), eprop.RecurrentNetwork(50, 200, 5, dtype="float32")
    assert abs(b.memory_per_step / a.memory_per_step - 1) < 0.01


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: eprop.RecurrentNetwork(3, 5, 2, dtype="float32", **kw),
        lambda **kw: eprop.EpropTrainer(3, 5, 2, dtype="float32", **kw),
        lambda **kw: eprop.OnlineTrainer([3, 5, 2], dtype="float32", **kw),
        lambda **kw: eprop.OnlineLIFLayer(3, 5, dtype="float32", **kw),
    ],
)
@pytest.mark.parametrize("name,value", [("threshold", 1e39), ("lr", 1e-46), ("lr", 5e38)])
def test_hyperparameters_beyond_float32_are_refused(make, name, value):
    msg = name + r": expected 0 or a magnitude in \[.*\] for a float32 network"
    with pytest.raises(ValueError, match=msg):
        make(**{name: value})
    net = make()
    if name == "lr" and not isinstance(net, eprop.OnlineTrainer):  # lr setters (OnlineTrainer's are per layer)
        with pytest.raises(ValueError, match=msg):
            net.lr = value
        assert net.lr == make().lr


def test_a_float64_file_relabelled_float32_is_refused(tmp_path):
    eprop.RecurrentNetwork(3, 5, 2).save(tmp_path / "c.npz")
    z = dict(np.load(tmp_path / "c.npz"))
    assert str(z["dtype"]) == "float64"
    z["dtype"] = np.array("float32")
    np.savez(tmp_path / "r.npz", **z)
    with pytest.raises(ValueError, match=r"W_in.*float32 values.*cannot hold exactly"):
        eprop.RecurrentNetwork.load(tmp_path / "r.npz")


def test_online_trainer_follows_float64_to_single_precision():
    rng = np.random.default_rng(9)
    x = (rng.random((80, 6)) < 0.3).astype(float) * 3.0
    y = (rng.random((80, 2)) < 0.2).astype(float)
    a, b = eprop.OnlineTrainer([6, 10, 2]), eprop.OnlineTrainer([6, 10, 2], dtype="float32")
    assert b.dtype == "float32" and all(layer.dtype == "float32" for layer in b.layers)
    w0 = [layer.W.copy() for layer in a.layers]
    la = a.train_sequence(x, y)
    lb = b.train_sequence(x, y)
    assert abs(la - lb) <= 1e-5 * abs(la)
    for la_, lb_, w in zip(a.layers, b.layers, w0):
        assert lb_.W.dtype == np.float32 and lb_._trace.dtype == np.float32
        assert np.abs(la_.W - w).max() > 0
        assert 1e-9 < _rel(la_.W - w, lb_.W.astype(float) - w) < 1e-4
    assert b.predict_sequence(x).dtype == np.float32
    assert b.step(x[0])["output"].dtype == np.float32


def test_online_lif_layer_in_float32():
    a, b = eprop.OnlineLIFLayer(5, 7), eprop.OnlineLIFLayer(5, 7, dtype="float32")
    assert b.dtype == "float32" and "dtype='float32'" in repr(b)
    assert b.W.tobytes() == a.W.astype(np.float32).tobytes()
    x = np.full(5, 2.0)
    for _ in range(5):
        za, zb = a.step(x), b.step(x)
    assert zb.dtype == np.float32 and np.array_equal(za, zb)
    s = np.linspace(-1, 1, 7)
    a.apply_learning_signal(s)
    b.apply_learning_signal(s)
    assert 1e-10 < _rel(a.W, b.W) < 1e-6
    with pytest.raises(ValueError, match=r"x: expected values within the float32 range"):
        b.step(np.full(5, 1e39))
    c = eprop.OnlineLIFLayer.from_state_dict(b.state_dict())
    assert c.dtype == "float32" and c.W.tobytes() == b.W.tobytes()
    with pytest.raises(ValueError, match=r"state_dict\['dtype'\]"):
        a.load_state_dict(b.state_dict())


def test_online_trainer_checkpoint_and_threads_in_float32(tmp_path):
    rng = np.random.default_rng(10)
    x = (rng.random((4, 30, 6)) < 0.3).astype(float) * 3.0
    y = (rng.random((4, 30, 2)) < 0.2).astype(float)
    runs = []
    for n in (1, 2):
        t = eprop.OnlineTrainer([6, 10, 2], dtype="float32")
        t.train_batch(x, y, n_threads=n)
        runs.append(b"".join(layer.W.tobytes() for layer in t.layers))
    assert runs[0] == runs[1]
    t.save(tmp_path / "o.npz")
    u = eprop.OnlineTrainer.load(tmp_path / "o.npz")
    assert u.dtype == "float32"
    assert b"".join(layer.W.tobytes() for layer in u.layers) == runs[0]
    with pytest.raises(ValueError, match=r"state_dict\['dtype'\]"):
        eprop.OnlineTrainer([6, 10, 2]).load_state_dict(t.state_dict())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_first_adam_step_is_lr_in_either_dtype(dtype):
    """Adam's first step is lr * g / (|g| + eps): lr for a large gradient. The
    bias corrections must use the betas as the moments do (rounded to the
    network's type); with float64 betas in a float32 network the step is off
    by ~7e-6 relative. b_out starts at 0, so its change is read exactly."""
    x, _ = _data(11, 200, 6, 2)
    y = np.full((200, 2), 5.0)  # far above the untrained output: |dL/db| ~ 1e3
    net = eprop.RecurrentNetwork(6, 8, 2, dtype=dtype, lr=1e-3)
    g = net.gradients(x, y)["b_out"].astype(float)
    assert np.all(np.abs(g) > 10)
    net.train_sequence(x, y)
    step = net.b_out.astype(float)
    want = -np.float64(np.float32(1e-3) if dtype == "float32" else 1e-3) * np.sign(g)
    assert np.allclose(step, want, rtol=1e-6, atol=0), (step, want)
