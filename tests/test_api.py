"""The Python surface of eprop matches sc_neurocore.online_learning 3.16.0
(constructors, attributes, repr, return values) plus eprop's own additions
(``seed=``, live ``layers``, read-only arrays, input conversion)."""

import inspect

import eprop
import numpy as np
import pytest
from common import EPROP_ARRAYS, LAYER_ARRAYS, arrays, spikes
from sc_neurocore.online_learning import EpropTrainer as RefEprop
from sc_neurocore.online_learning import OnlineLIFLayer as RefLayer
from sc_neurocore.online_learning import OnlineTrainer as RefOnline

PAIRS = [
    (eprop.EpropTrainer, RefEprop),
    (eprop.OnlineTrainer, RefOnline),
    (eprop.OnlineLIFLayer, RefLayer),
]


def rates(shape, seed):
    return np.random.default_rng(seed).random(shape)


def assert_same(a, b):
    """Equal values, recursing into dicts (by key) and lists."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- constructors


@pytest.mark.parametrize("ours,ref", PAIRS, ids=lambda c: c.__name__)
def test_constructor_signature_matches_oracle(ours, ref):
    theirs = inspect.signature(ref).parameters
    mine = inspect.signature(ours).parameters
    positional = [p for p in mine.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert [p.name for p in positional] == list(theirs)
    for p in positional:
        assert p.default == theirs[p.name].default, p.name
    extra = [p for p in mine.values() if p not in positional]
    kw = inspect.Parameter.KEYWORD_ONLY
    # additions, keyword-only with defaults that keep the oracle's behaviour
    kernel = [("kernel", kw, "dense")] if ours.__name__ == "EpropTrainer" else []
    want = [("seed", kw, 42), *kernel, ("dtype", kw, "float64")]
    assert [(p.name, p.kind, p.default) for p in extra] == want


@pytest.mark.parametrize("ours,ref", PAIRS, ids=lambda c: c.__name__)
def test_class_name(ours, ref):
    assert ours.__name__ == ref.__name__


def test_eprop_positional_arguments_and_attributes():
    args = (3, 5, 2, 11.0, 22.0, 0.5, 0.02, 0.25)
    names = ("n_inputs", "n_neurons", "n_outputs", "tau_mem", "tau_trace", "threshold", "lr", "dt")
    ours, ref = eprop.EpropTrainer(*args), RefEprop(*args)
    for name, value in zip(names, args):
        assert getattr(ours, name) == value == getattr(ref, name)
        assert type(getattr(ours, name)) is type(value)
    assert ours.seed == 42
    # the same call with keywords
    ours_kw = eprop.EpropTrainer(**dict(zip(names, args)))
    assert repr(ours_kw) == repr(ours)


def test_eprop_defaults():
    ours, ref = eprop.EpropTrainer(3, 5, 2), RefEprop(3, 5, 2)
    for name in ("tau_mem", "tau_trace", "threshold", "lr", "dt"):
        assert getattr(ours, name) == getattr(ref, name)
        assert isinstance(getattr(ours, name), float)


def test_layer_positional_arguments_and_attributes():
    args = (7, 4, 13.0, 0.6, 0.05, 0.5)
    names = ("n_inputs", "n_neurons", "tau_mem", "threshold", "lr", "dt")
    ours, ref = eprop.OnlineLIFLayer(*args), RefLayer(*args)
    for name, value in zip(names, args):
        assert getattr(ours, name) == value == getattr(ref, name)
    ours, ref = eprop.OnlineLIFLayer(7, 4), RefLayer(7, 4)
    for name in names[2:]:
        assert getattr(ours, name) == getattr(ref, name)


def test_online_positional_arguments_and_attributes():
    args = ([5, 9, 3], 14.0, 0.8, 0.03)
    ours, ref = eprop.OnlineTrainer(*args), RefOnline(*args)
    assert ours.layer_sizes == [5, 9, 3] == ref.layer_sizes
    for name, value in zip(("tau_mem", "threshold", "lr"), args[1:]):
        assert getattr(ours, name) == value == getattr(ref, name)
    assert ours.n_layers == ref.n_layers == 2
    for lo, lr_ in zip(ours.layers, ref.layers):
        for name in ("n_inputs", "n_neurons", "tau_mem", "threshold", "lr", "dt"):
            assert getattr(lo, name) == getattr(lr_, name), name
    ours, ref = eprop.OnlineTrainer([5, 9, 3]), RefOnline([5, 9, 3])
    for name in ("tau_mem", "threshold", "lr"):
        assert getattr(ours, name) == getattr(ref, name)


@pytest.mark.parametrize("sizes", [[2, 3], [4, 16, 2], [8, 16, 8, 4], [3, 1, 1, 1, 1, 2]])
def test_n_layers(sizes):
    t = eprop.OnlineTrainer(sizes)
    assert t.n_layers == RefOnline(sizes).n_layers == len(sizes) - 1
    assert len(t.layers) == t.n_layers
    for layer, (a, b) in zip(t.layers, zip(sizes, sizes[1:])):
        assert (layer.n_inputs, layer.n_neurons) == (a, b)
        assert layer.W.shape == (b, a)


# --------------------------------------------------------------------------- repr


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((4, 16, 2), {}),
        ((1, 1, 1), {}),
        ((3, 5, 2, 11.0, 22.5, 0.5, 0.02, 0.25), {}),
        ((3, 5, 2), dict(lr=1e-5, dt=0.1 + 0.2, tau_mem=1e20, threshold=7.0)),
        ((3, 5, 2), dict(lr=0.0)),
    ],
)
def test_eprop_repr(args, kwargs):
    assert repr(eprop.EpropTrainer(*args, **kwargs)) == repr(RefEprop(*args, **kwargs))


@pytest.mark.parametrize(
    "args,kwargs",
    [(([4, 16, 2],), {}), (([8, 16, 8, 4], 3.5, 0.7, 1e-4), {}), (([1, 1],), dict(lr=0.0))],
)
def test_online_repr(args, kwargs):
    assert repr(eprop.OnlineTrainer(*args, **kwargs)) == repr(RefOnline(*args, **kwargs))


@pytest.mark.parametrize("args", [(3, 4), (1, 1, 2.5, 0.3, 1e-3, 0.125)])
def test_layer_repr(args):
    assert repr(eprop.OnlineLIFLayer(*args)) == repr(RefLayer(*args))
    t, r = eprop.OnlineTrainer([3, 4, 2]), RefOnline([3, 4, 2])
    for lo, lr_ in zip(t.layers, r.layers):
        assert repr(lo) == repr(lr_)


def test_repr_int_hyperparameters_like_oracle():
    """The oracle is a dataclass: it keeps an int hyperparameter as given, so
    its repr shows ``tau_mem=10``, ``threshold=1``."""
    assert repr(eprop.EpropTrainer(3, 5, 2, tau_mem=10, threshold=1)) == repr(
        RefEprop(3, 5, 2, tau_mem=10, threshold=1)
    )
    assert repr(eprop.OnlineTrainer([3, 5, 2], tau_mem=10)) == repr(RefOnline([3, 5, 2], tau_mem=10))
    assert repr(eprop.OnlineLIFLayer(3, 5, dt=2)) == repr(RefLayer(3, 5, dt=2))


def test_repr_follows_hyperparameter_changes():
    ours, ref = eprop.EpropTrainer(3, 5, 2), RefEprop(3, 5, 2)
    ours.lr = ref.lr = 0.125
    ours.dt = ref.dt = 0.5
    assert repr(ours) == repr(ref)


def test_repr_with_seed_names_it():
    assert "seed=7" in repr(eprop.EpropTrainer(3, 5, 2, seed=7))
    assert "seed=7" in repr(eprop.OnlineTrainer([3, 5, 2], seed=7))
    assert "seed" not in repr(eprop.EpropTrainer(3, 5, 2, seed=42))


# --------------------------------------------------------------------------- seed=


def seed_eprop_weights(seed, n_in, n_rec, n_out):
    rng = np.random.RandomState(seed)
    W_in = rng.randn(n_rec, n_in) * np.sqrt(2.0 / n_in)
    W_rec = rng.randn(n_rec, n_rec) * np.sqrt(2.0 / n_rec)
    np.fill_diagonal(W_rec, 0)
    W_out = rng.randn(n_out, n_rec) * np.sqrt(2.0 / n_rec)
    return W_in, W_rec, W_out


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 123456789, 2**32 - 1])
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 16, 2), (33, 17, 5)])
def test_eprop_seed_weights(seed, shape):
    t = eprop.EpropTrainer(*shape, seed=seed)
    assert t.seed == seed
    for got, want in zip((t.W_in, t.W_rec, t.W_out), seed_eprop_weights(seed, *shape)):
        np.testing.assert_array_equal(got, want)
    # reproducible
    again = eprop.EpropTrainer(*shape, seed=seed)
    for name in ("W_in", "W_rec", "W_out"):
        np.testing.assert_array_equal(getattr(t, name), getattr(again, name))


@pytest.mark.parametrize("seed", [0, 3, 2**32 - 1])
def test_online_seed_weights_restart_per_layer(seed):
    sizes = [6, 10, 4, 3]
    t = eprop.OnlineTrainer(sizes, seed=seed)
    assert t.seed == seed
    for layer, (a, b) in zip(t.layers, zip(sizes, sizes[1:])):
        want = np.random.RandomState(seed).randn(b, a) * np.sqrt(2.0 / a)
        np.testing.assert_array_equal(layer.W, want)
    layer = eprop.OnlineLIFLayer(6, 10, seed=seed)
    np.testing.assert_array_equal(layer.W, np.random.RandomState(seed).randn(10, 6) * np.sqrt(2.0 / 6))


def test_seed_changes_weights_and_default_is_42():
    a, b = eprop.EpropTrainer(4, 16, 2, seed=1), eprop.EpropTrainer(4, 16, 2, seed=2)
    assert not np.array_equal(a.W_in, b.W_in)
    d, s = eprop.EpropTrainer(4, 16, 2), eprop.EpropTrainer(4, 16, 2, seed=42)
    for name in ("W_in", "W_rec", "W_out"):
        np.testing.assert_array_equal(getattr(d, name), getattr(s, name))


def test_seed_is_keyword_only():
    with pytest.raises(TypeError):
        eprop.EpropTrainer(4, 16, 2, 20.0, 20.0, 1.0, 0.01, 1.0, 5)
    with pytest.raises(TypeError):
        eprop.OnlineTrainer([4, 2], 20.0, 1.0, 0.01, 5)
    with pytest.raises(TypeError):
        eprop.OnlineLIFLayer(4, 2, 20.0, 1.0, 0.01, 1.0, 5)


# --------------------------------------------------------------------------- live layers


def test_layers_are_live_after_training():
    sizes = [4, 16, 2]
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    held = ours.layers  # taken before training
    X = 3.0 * rates((300, 4), 1)
    Y = spikes((300, 2), 2, p=0.2)
    ours.train_sequence(X, Y)
    ref.train_sequence(X, Y)
    fresh = eprop.OnlineTrainer(sizes)
    for i in range(2):
        assert not np.array_equal(held[i].W, fresh.layers[i].W)  # every layer learned
    for lo, lr_ in zip(held, ref.layers):
        np.testing.assert_allclose(lo.W, lr_.W, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(lo._v, lr_._v, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(lo._trace, lr_._trace, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(lo._spikes, lr_._spikes)
    assert ours.layers[0] is held[0]


def test_assigning_layer_weights_changes_trainer():
    sizes = [4, 16, 2]
    ours, ref = eprop.OnlineTrainer(sizes), RefOnline(sizes)
    X = rates((100, 4), 3)
    before = ours.predict_sequence(X)
    rng = np.random.default_rng(4)
    w0 = rng.normal(0.0, 3.0, (16, 4))
    w1 = rng.normal(0.0, 3.0, (2, 16))
    ours.layers[0].W = w0
    ours.layers[1].W = w1
    ref.layers[0].W = w0.copy()
    ref.layers[1].W = w1.copy()
    np.testing.assert_array_equal(ours.layers[0].W, w0)
    after = ours.predict_sequence(X)
    assert not np.array_equal(before, after)
    ref.reset()
    expected = np.array([ref.step(x)["output"] for x in X])
    np.testing.assert_array_equal(after, expected)
    # a layer handle and the trainer see the same state
    layer = ours.layers[0]
    ours.step(X[0])
    np.testing.assert_array_equal(layer._v, ours.layers[0]._v)


def test_layer_hyperparameters_through_trainer():
    t = eprop.OnlineTrainer([4, 8, 2])
    t.layers[1].lr = 0.5
    t.layers[0].dt = 2.0
    assert t.layers[1].lr == 0.5 and t.layers[0].lr == 0.01
    assert t.layers[0].dt == 2.0 and t.layers[1].dt == 1.0


# --------------------------------------------------------------------------- read-only arrays


def test_eprop_arrays_are_read_only():
    t = eprop.EpropTrainer(4, 16, 2)
    t.train_sequence(spikes((50, 4), 5), rates((50, 2), 6))
    snap = arrays(t)
    for name in EPROP_ARRAYS:
        arr = getattr(t, name)
        assert arr.dtype == np.float64
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr.flat[0] = 1.0
    with pytest.raises(ValueError):
        t.W_in[0, 0] = 1.0
    with pytest.raises(ValueError):
        t.W_out[...] = 0.0
    with pytest.raises(ValueError):
        t.W_rec += 1.0  # in-place add on the read-only copy fails before any assignment
    assert_same(arrays(t), snap)


def test_layer_arrays_are_read_only():
    t = eprop.OnlineTrainer([4, 16, 2])
    single = eprop.OnlineLIFLayer(4, 16)
    snap = arrays(t)
    w_single = single.W.copy()
    for layer in list(t.layers) + [single]:
        for name in LAYER_ARRAYS:
            arr = getattr(layer, name)
            assert not arr.flags.writeable
            with pytest.raises(ValueError):
                arr.flat[0] = 1.0
        with pytest.raises(ValueError):
            layer.W[0, 0] = 1.0
    assert_same(arrays(t), snap)
    np.testing.assert_array_equal(single.W, w_single)


def test_returned_results_are_independent_copies():
    t = eprop.EpropTrainer(4, 16, 2)
    r = t.step(np.ones(4), np.zeros(2))
    v = t._v
    r["spikes"][:] = 7.0
    r["output"][:] = 7.0
    np.testing.assert_array_equal(t._v, v)
    assert not np.any(t._spikes == 7.0)
    w = t.W_in
    t.step(np.ones(4), np.ones(2))
    assert not np.array_equal(t.W_in, w)  # a weight read earlier is a snapshot


def test_w_rec_diagonal_is_zeroed_on_assignment():
    t = eprop.EpropTrainer(3, 5, 2)
    w = np.arange(25, dtype=np.float64).reshape(5, 5) + 1.0
    t.W_rec = w
    got = t.W_rec
    np.testing.assert_array_equal(np.diag(got), np.zeros(5))
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_array_equal(got[off], w[off])
    assert np.all(np.diag(w) != 0)  # the caller's array is not modified


def test_assigned_weights_are_copied():
    t = eprop.EpropTrainer(3, 5, 2)
    w = np.ones((5, 3))
    t.W_in = w
    w[0, 0] = 99.0
    assert t.W_in[0, 0] == 1.0


# --------------------------------------------------------------------------- return values


def test_eprop_step_keys_and_types():
    t = eprop.EpropTrainer(4, 16, 2)
    r = t.step(np.ones(4))
    assert set(r) == {"spikes", "output"}
    assert r["spikes"].shape == (16,) and r["spikes"].dtype == np.float64
    assert r["output"].shape == (2,) and r["output"].dtype == np.float64
    r = t.step(np.ones(4), np.zeros(2))
    assert set(r) == {"spikes", "output", "loss"}
    assert type(r["loss"]) is float
    r = t.step(np.ones(4), target=None)
    assert set(r) == {"spikes", "output"}
    r = t.step(x=np.ones(4), target=np.zeros(2))
    assert set(r) == {"spikes", "output", "loss"}


def test_online_step_keys_and_types():
    t = eprop.OnlineTrainer([4, 16, 2])
    r = t.step(np.ones(4))
    assert set(r) == {"output"}
    assert r["output"].shape == (2,) and r["output"].dtype == np.float64
    r = t.step(np.ones(4), np.zeros(2))
    assert set(r) == {"output", "loss"}
    assert type(r["loss"]) is float
    r = t.step(x=np.ones(4), target=np.zeros(2))
    assert set(r) == {"output", "loss"}


def test_layer_step_and_signal_return():
    layer = eprop.OnlineLIFLayer(4, 6)
    z = layer.step(np.ones(4))
    assert z.shape == (6,) and z.dtype == np.float64
    assert layer.apply_learning_signal(np.ones(6)) is None
    assert layer.apply_learning_signal(signal=np.ones(6)) is None
    assert layer.reset() is None


def test_sequence_methods_shapes_and_keywords():
    e = eprop.EpropTrainer(4, 16, 3)
    o = eprop.OnlineTrainer([4, 16, 3])
    X = spikes((37, 4), 7)
    Y = rates((37, 3), 8)
    for t in (e, o):
        loss = t.train_sequence(inputs=X, targets=Y)
        assert type(loss) is float
        p = t.predict_sequence(inputs=X)
        assert p.shape == (37, 3) and p.dtype == np.float64
        assert p.flags.writeable
        assert t.predict_sequence(X[:1]).shape == (1, 3)
        assert t.reset() is None
    assert e.predict_sequence(np.zeros((0, 4))).shape == (0, 3)
    assert RefEprop(4, 16, 3).predict_sequence(np.zeros((0, 4))).shape == (0, 3)


def test_memory_per_step_is_constant_int():
    e = eprop.EpropTrainer(4, 16, 3)
    m = e.memory_per_step
    assert type(m) is int
    e.train_sequence(spikes((100, 4), 1), rates((100, 3), 2))
    assert e.memory_per_step == m
    assert type(eprop.OnlineTrainer([4, 16, 3]).memory_per_step) is int


# --------------------------------------------------------------------------- input conversion


def run_eprop(X, Y, x, y):
    """Drive a fresh EpropTrainer with the given (possibly converted) inputs and
    return everything it produced."""
    t = eprop.EpropTrainer(6, 12, 3)
    out = [t.step(x), t.step(x, y)]
    out.append(t.train_sequence(X, Y))
    out.append(arrays(t))
    out.append(t.predict_sequence(X))
    out.append(t.step(x, y))
    return out


def run_online(X, Y, x, y):
    t = eprop.OnlineTrainer([6, 12, 3])
    out = [t.step(x), t.step(x, y)]
    out.append(t.train_sequence(X, Y))
    out.append(arrays(t))
    out.append(t.predict_sequence(X))
    layer = eprop.OnlineLIFLayer(6, 12)
    out.append(layer.step(x))
    layer.apply_learning_signal(np.asarray(X[0], dtype=np.float64).repeat(2))
    out.append(layer.W)
    return out


def conversions(X, Y):
    """(name, X', Y', x', y') variants that hold the same values as X, Y."""
    x, y = X[3], Y[3]
    wide_X = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide_X[:, ::2] = X
    wide_Y = np.zeros((Y.shape[0] * 2, Y.shape[1]))
    wide_Y[::2] = Y
    yield "list", X.tolist(), Y.tolist(), x.tolist(), y.tolist()
    yield "tuple", tuple(map(tuple, X)), tuple(map(tuple, Y)), tuple(x), tuple(y)
    yield "strided", wide_X[:, ::2], wide_Y[::2], wide_X[3, ::2], np.repeat(y, 2)[::2]
    yield "fortran", np.asfortranarray(X), np.asfortranarray(Y), x, y
    yield "transposed-fortran", np.asfortranarray(X.T).T, np.asfortranarray(Y.T).T, x, y
    FX = np.asfortranarray(X.T)  # (n, T) Fortran, its .T is (T, n) C-ordered view
    yield "T-of-fortran", FX.T, np.asfortranarray(Y.T).T, FX.T[3], y
    RX, RY = X[::-1].copy(), Y[::-1].copy()  # views with negative strides holding X, Y
    yield "negative-strides", RX[::-1], RY[::-1], RX[::-1][3], y[::-1].copy()[::-1]
    yield "column-reversed", X[:, ::-1].copy()[:, ::-1], Y[:, ::-1].copy()[:, ::-1], x, y
    yield "big-endian", X.astype(">f8"), Y.astype(">f8"), x.astype(">f8"), y.astype(">f8")
    yield "readonly", _ro(X), _ro(Y), _ro(x), _ro(y)


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("runner", [run_eprop, run_online], ids=["eprop", "online"])
def test_layouts_and_containers_give_the_same_numbers(runner):
    X = spikes((80, 6), 9, p=0.3)
    X[::3] = rates((27, 6), 10)  # mix rates in too
    Y = rates((80, 3), 11)
    if runner is run_online:
        Y = (Y > 0.7).astype(np.float64)
    base = runner(X, Y, X[3], Y[3])
    for name, X2, Y2, x2, y2 in conversions(X, Y):
        try:
            assert_same(runner(X2, Y2, x2, y2), base)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


@pytest.mark.parametrize("runner", [run_eprop, run_online], ids=["eprop", "online"])
def test_broadcast_zero_stride_inputs(runner):
    row = rates(6, 30)
    X = np.broadcast_to(row, (50, 6))
    Y = np.broadcast_to((rates(3, 31) > 0.5).astype(np.float64), (50, 3))
    assert X.strides[0] == 0
    base = runner(np.array(X), np.array(Y), row.copy(), np.array(Y[0]))
    assert_same(runner(X, Y, np.broadcast_to(row, (6,)), Y[0]), base)


@pytest.mark.parametrize("runner", [run_eprop, run_online], ids=["eprop", "online"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64, bool])
def test_integer_and_bool_inputs(runner, dtype):
    rng = np.random.default_rng(12)
    Xi = (rng.random((60, 6)) < 0.25).astype(dtype)
    Yi = (rng.random((60, 3)) < 0.3).astype(dtype)
    base = runner(Xi.astype(np.float64), Yi.astype(np.float64), Xi[3].astype(np.float64), Yi[3].astype(np.float64))
    assert_same(runner(Xi, Yi, Xi[3], Yi[3]), base)
    # Python ints and bools in lists
    assert_same(runner(Xi.tolist(), Yi.tolist(), Xi[3].tolist(), Yi[3].tolist()), base)


def test_integer_values_beyond_0_1():
    X = np.random.default_rng(13).integers(0, 3, (40, 6))
    Y = np.random.default_rng(14).integers(0, 2, (40, 3))
    assert_same(
        run_eprop(X, Y, X[3], Y[3]),
        run_eprop(X.astype(float), Y.astype(float), X[3].astype(float), Y[3].astype(float)),
    )


@pytest.mark.parametrize("runner", [run_eprop, run_online], ids=["eprop", "online"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.longdouble])
def test_other_float_dtypes(runner, dtype):
    X = rates((60, 6), 15).astype(dtype)
    Y = (rates((60, 3), 16) > 0.6).astype(dtype)
    base = runner(X.astype(np.float64), Y.astype(np.float64), X[3].astype(np.float64), Y[3].astype(np.float64))
    assert_same(runner(X, Y, X[3], Y[3]), base)


def test_float32_eprop_matches_oracle_on_same_values():
    X = rates((100, 6), 17).astype(np.float32)
    Y = rates((100, 3), 18).astype(np.float32)
    ours, ref = eprop.EpropTrainer(6, 12, 3), RefEprop(6, 12, 3)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    np.testing.assert_allclose(ours.train_sequence(X, Y), ref.train_sequence(X64, Y64), rtol=1e-9, atol=1e-9)
    for name in EPROP_ARRAYS:
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-9, atol=1e-9)


def test_hyperparameter_setters_accept_ints():
    t = eprop.EpropTrainer(3, 5, 2)
    t.tau_mem = 10
    t.threshold = 2
    assert t.tau_mem == 10.0 and isinstance(t.tau_mem, float)
    assert t.threshold == 2.0


def test_constructor_accepts_numpy_integers_and_sequences():
    t = eprop.EpropTrainer(np.int64(3), np.int32(5), np.uint8(2), np.float32(10.0))
    assert (t.n_inputs, t.n_neurons, t.n_outputs, t.tau_mem) == (3, 5, 2, 10.0)
    for sizes in ([3, 5, 2], (3, 5, 2), np.array([3, 5, 2])):
        o = eprop.OnlineTrainer(sizes)
        assert o.layer_sizes == [3, 5, 2]
        np.testing.assert_array_equal(o.layers[0].W, RefOnline([3, 5, 2]).layers[0].W)


@pytest.mark.parametrize("name", ["tau_mem", "dt", "tau_trace"])
@pytest.mark.parametrize("kernel", ["dense", "event"])
def test_a_time_constant_set_mid_life_is_used_by_the_next_step(name, kernel):
    """Decays are kept between steps (computed again only when dt or a time
    constant changed): after a setter the trainer runs as one built with the
    new value and the same state."""
    from common import state_bits

    rng = np.random.default_rng(5)
    x, y = (rng.random((300, 4)) < 0.2).astype(float), rng.random((300, 2))
    t = eprop.EpropTrainer(4, 12, 2, kernel=kernel, seed=7)
    t.train_sequence(x, y)  # the decays of the old value are in use
    setattr(t, name, getattr(t, name) * 0.37)
    fresh = eprop.EpropTrainer.from_state_dict(t.state_dict())
    for a in (t, fresh):
        a.train_sequence(x, y, reset=False)
    assert state_bits(t) == state_bits(fresh)


@pytest.mark.parametrize("name", ["tau_mem", "dt"])
def test_a_layer_time_constant_set_mid_life_is_used_by_the_next_step(name):
    from common import state_bits

    rng = np.random.default_rng(6)
    layer = eprop.OnlineLIFLayer(4, 6, seed=2)
    for _ in range(20):
        layer.step((rng.random(4) < 0.5).astype(float))
    setattr(layer, name, getattr(layer, name) * 0.37)
    fresh = eprop.OnlineLIFLayer.from_state_dict(layer.state_dict())
    x = (rng.random(4) < 0.5).astype(float)
    for a in (layer, fresh):
        a.step(x)
    assert state_bits(layer) == state_bits(fresh)
