"""Checkpoints: ``state_dict``/``load_state_dict``/``from_state_dict``,
``save``/``load`` (npz, atomic, no pickle), pickling and ``copy.deepcopy``,
and resuming a stream in another process bitwise."""

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import eprop
import numpy as np
import pytest
from common import (
    ALL_KINDS,
    EPROP_ARRAYS,
    EPROP_HYPER,
    LAYER_ARRAYS,
    LAYER_HYPER,
    build,
    data,
    nonzero_state,
    snapshot,
)

pytestmark = pytest.mark.timeout(120)

SIZES = {"eprop": (5, 16, 3), "online": (5, 12, 3), "layer": (5, 12)}


# --------------------------------------------------------------------------- helpers


def make(kind, **kw):
    return build(kind, SIZES[kind], **kw)


def train(t, T, seed=0, reset=True):
    """Trains any of the three classes on T steps; returns the losses/outputs."""
    x, y = data(t, T, seed)
    if isinstance(t, eprop.OnlineLIFLayer):
        if reset:
            t.reset()
        outs = []
        for i in range(T):
            z = t.step(x[i])
            t.apply_learning_signal(z - y[i])
            outs.append(z)
        return np.array(outs)
    return np.array([t.train_sequence(x, y, reset=reset)])


def warm(kind, **kw):
    t = make(kind, **kw)
    train(t, 80, seed=1)
    train(t, 37, seed=2, reset=False)
    return t


# --------------------------------------------------------------------------- state_dict


def test_eprop_state_dict_contents():
    t = warm("eprop", lr=0.003, tau_trace=15.0)
    d = t.state_dict()
    assert d["format_version"] == 1
    assert d["class"] == "EpropTrainer"
    assert (d["n_inputs"], d["n_neurons"], d["n_outputs"]) == (5, 16, 3)
    assert d["seed"] == 42
    for n in EPROP_HYPER:
        assert d[n] == getattr(t, n), n
    assert d["lr"] == 0.003 and d["tau_trace"] == 15.0
    for n in EPROP_ARRAYS:
        assert isinstance(d[n], np.ndarray) and d[n].dtype == np.float64, n
        assert d[n].tobytes() == getattr(t, n).tobytes(), n
    assert d["kernel"] == "dense" and d["dtype"] == "float64"
    expected = {"format_version", "class", "n_inputs", "n_neurons", "n_outputs", "seed", "kernel", "dtype"}
    assert set(d) == expected | set(EPROP_HYPER) | set(EPROP_ARRAYS)
    # fresh arrays: writing to them does not touch the trainer
    before = snapshot(t)
    d["W_in"][...] = 0.0
    d["_v"][...] = 7.0
    assert snapshot(t) == before


def test_online_state_dict_contents():
    t = warm("online", lr=0.002)
    t.layers[1].lr = 0.005
    d = t.state_dict()
    assert d["format_version"] == 1 and d["class"] == "OnlineTrainer"
    assert list(d["layer_sizes"]) == [5, 12, 3]
    assert d["seed"] == 42 and d["lr"] == 0.002 and d["tau_mem"] == 20.0 and d["threshold"] == 0.5
    assert d["dtype"] == "float64"
    expected = {"format_version", "class", "layer_sizes", "tau_mem", "threshold", "lr", "seed", "dtype"}
    for i, l in enumerate(t.layers):
        for n in LAYER_HYPER:
            assert d[f"layers.{i}.{n}"] == getattr(l, n)
        for n in LAYER_ARRAYS:
            assert d[f"layers.{i}.{n}"].tobytes() == getattr(l, n).tobytes()
        expected |= {f"layers.{i}.{n}" for n in LAYER_HYPER + LAYER_ARRAYS}
    assert d["layers.1.lr"] == 0.005
    assert set(d) == expected


def test_layer_state_dict_contents():
    t = warm("layer", lr=0.02)
    d = t.state_dict()
    assert d["format_version"] == 1 and d["class"] == "OnlineLIFLayer"
    assert (d["n_inputs"], d["n_neurons"], d["seed"]) == (5, 12, 42)
    for n in LAYER_HYPER:
        assert d[n] == getattr(t, n)
    for n in LAYER_ARRAYS:
        assert d[n].tobytes() == getattr(t, n).tobytes()
    assert d["dtype"] == "float64"
    assert set(d) == {"format_version", "class", "n_inputs", "n_neurons", "seed", "dtype", *LAYER_HYPER, *LAYER_ARRAYS}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_load_state_dict_then_continue_is_bitwise(kind):
    orig = warm(kind, lr=0.004)
    assert nonzero_state(orig)
    d = orig.state_dict()
    other = make(kind, seed=7, lr=0.05)  # other weights and lr: all replaced
    other.load_state_dict(d)
    assert snapshot(other, fixed=False) == snapshot(orig, fixed=False)
    for k in range(3):
        a = train(orig, 40, seed=10 + k, reset=False)
        b = train(other, 40, seed=10 + k, reset=False)
        assert a.tobytes() == b.tobytes()
        assert snapshot(other, fixed=False) == snapshot(orig, fixed=False)
    if not isinstance(orig, eprop.OnlineLIFLayer):
        x, _ = data(orig, 30, seed=20)
        assert orig.predict_sequence(x, reset=False).tobytes() == other.predict_sequence(x, reset=False).tobytes()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_from_state_dict(kind):
    orig = warm(kind, seed=1234)
    cls = type(orig)
    new = cls.from_state_dict(orig.state_dict())
    assert type(new) is cls
    assert snapshot(new) == snapshot(orig)
    assert new.seed == 1234 if hasattr(new, "seed") else True
    assert train(new, 30, seed=3, reset=False).tobytes() == train(orig, 30, seed=3, reset=False).tobytes()
    assert snapshot(new) == snapshot(orig)


def test_online_layers_stay_live_after_load_state_dict():
    t = make("online")
    layers = t.layers
    t.load_state_dict(warm("online").state_dict())
    assert layers[0]._v.tobytes() == t.layers[0]._v.tobytes()
    w = layers[1].W * 0.5
    layers[1].W = w
    assert t.state_dict()["layers.1.W"].tobytes() == w.tobytes()


# --------------------------------------------------------------------------- load_state_dict validation


def _keys_read_by_load(kind, d):
    """Keys load_state_dict must insist on (everything but those it documents
    as fixed at construction)."""
    # the kernel and the dtype are optional: files written before they existed
    # ran the dense kernel in float64
    ignored = {"seed", "kernel", "dtype"}
    if kind == "online":
        ignored |= {"tau_mem", "threshold", "lr"}
    return [k for k in d if k not in ignored]


def _corruptions(kind):
    """(name, mutate(dict) -> None) pairs that must be rejected."""
    src = warm(kind)
    d0 = src.state_dict()
    array_keys = [k for k, v in d0.items() if isinstance(v, np.ndarray)]
    hyper_keys = [k for k in d0 if k.rsplit(".", 1)[-1] in ("tau_mem", "tau_trace", "threshold", "dt")]
    if kind == "online":
        hyper_keys = [k for k in hyper_keys if k.startswith("layers.")]
    cases = []
    for k in array_keys:
        cases.append((f"{k} wrong shape", lambda d, k=k: d.__setitem__(k, np.zeros(d[k].shape + (1,)))))
        cases.append(
            (f"{k} one too long", lambda d, k=k: d.__setitem__(k, np.zeros(d[k].shape[:-1] + (d[k].shape[-1] + 1,))))
        )
        cases.append((f"{k} scalar", lambda d, k=k: d.__setitem__(k, 0.5)))

        def nan(d, k=k):
            a = d[k].copy()
            a.flat[a.size // 2] = np.nan
            d[k] = a

        def inf(d, k=k):
            a = d[k].copy()
            a.flat[0] = -np.inf
            d[k] = a

        cases.append((f"{k} NaN", nan))
        cases.append((f"{k} inf", inf))
        cases.append((f"{k} string", lambda d, k=k: d.__setitem__(k, "abc")))
    for k in hyper_keys:
        cases.append((f"{k} negative", lambda d, k=k: d.__setitem__(k, -1.0)))
        cases.append((f"{k} NaN", lambda d, k=k: d.__setitem__(k, float("nan"))))
        cases.append((f"{k} zero", lambda d, k=k: d.__setitem__(k, 0.0)))
    lr_key = "layers.0.lr" if kind == "online" else "lr"
    cases.append((f"{lr_key} negative", lambda d: d.__setitem__(lr_key, -0.1)))
    cases.append((f"{lr_key} inf", lambda d: d.__setitem__(lr_key, float("inf"))))
    cases.append((f"{lr_key} text", lambda d: d.__setitem__(lr_key, "fast")))
    cases.append(
        ("wrong class", lambda d: d.__setitem__("class", "EpropTrainer" if kind != "eprop" else "OnlineTrainer"))
    )
    cases.append(("unknown class", lambda d: d.__setitem__("class", "Foo")))
    cases.append(("format_version 2", lambda d: d.__setitem__("format_version", 2)))
    cases.append(("format_version 0", lambda d: d.__setitem__("format_version", 0)))
    cases.append(("format_version text", lambda d: d.__setitem__("format_version", "1")))
    if kind == "online":
        cases.append(("layer_sizes", lambda d: d.__setitem__("layer_sizes", [5, 13, 3])))
        cases.append(("layer_sizes longer", lambda d: d.__setitem__("layer_sizes", [5, 12, 3, 2])))
        cases.append(("layer_sizes text", lambda d: d.__setitem__("layer_sizes", "5,12,3")))
    else:
        cases.append(("n_inputs", lambda d: d.__setitem__("n_inputs", d["n_inputs"] + 1)))
        cases.append(("n_neurons", lambda d: d.__setitem__("n_neurons", d["n_neurons"] - 1)))
        if kind == "eprop":
            cases.append(("n_outputs", lambda d: d.__setitem__("n_outputs", 4)))
        cases.append(("n_inputs float", lambda d: d.__setitem__("n_inputs", 5.5)))
    if "kernel" in d0:
        cases.append(("kernel unknown", lambda d: d.__setitem__("kernel", "sparse")))
        cases.append(("kernel not text", lambda d: d.__setitem__("kernel", 3)))
    if "dtype" in d0:
        cases.append(("dtype unknown", lambda d: d.__setitem__("dtype", "float16")))
        cases.append(("dtype not text", lambda d: d.__setitem__("dtype", 32)))
        # a state of the other float type is refused, never converted silently
        cases.append(("dtype float32", lambda d: d.__setitem__("dtype", "float32")))
    for k in _keys_read_by_load(kind, d0):
        cases.append((f"missing {k}", lambda d, k=k: d.pop(k)))
    return cases


CORRUPTIONS = {kind: dict(_corruptions(kind)) for kind in ALL_KINDS}


@pytest.mark.parametrize("kind,case", [(kind, case) for kind in ALL_KINDS for case in CORRUPTIONS[kind]])
def test_load_state_dict_rejects_and_changes_nothing(kind, case):
    target = warm(kind, seed=3)
    before = snapshot(target)
    d = warm(kind).state_dict()
    CORRUPTIONS[kind][case](d)
    # a non-numeric value may be a TypeError (the package's rule for wrong types)
    expected = (ValueError, TypeError) if case.endswith((" string", " text")) else ValueError
    with pytest.raises(expected):
        target.load_state_dict(d)
    assert snapshot(target) == before
    with pytest.raises(expected):
        type(target).from_state_dict(d)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_load_state_dict_from_a_different_size_is_rejected(kind):
    target = warm(kind)
    before = snapshot(target)
    if kind == "eprop":
        other = eprop.EpropTrainer(5, 17, 3)
    elif kind == "online":
        other = eprop.OnlineTrainer([5, 11, 3])
    else:
        other = eprop.OnlineLIFLayer(6, 12)
    with pytest.raises(ValueError, match="expected"):
        target.load_state_dict(other.state_dict())
    assert snapshot(target) == before


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_from_state_dict_requires_every_key(kind):
    d0 = warm(kind).state_dict()
    for k in d0:
        d = dict(d0)
        del d[k]
        if k in ("kernel", "dtype"):
            # optional: states written before these existed ran dense, in float64
            got = type(warm(kind)).from_state_dict(d)
            assert getattr(got, "kernel", "dense") == "dense" and got.dtype == "float64"
            continue
        with pytest.raises(ValueError, match=k.replace(".", r"\.")):
            type(warm(kind)).from_state_dict(d)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_load_state_dict_rejects_a_non_dict(kind):
    t = warm(kind)
    before = snapshot(t)
    for bad in (None, [("class", "x")], "state"):
        with pytest.raises((TypeError, ValueError)):
            t.load_state_dict(bad)
    assert snapshot(t) == before


# --------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_round_trip(kind, tmp_path):
    t = warm(kind, seed=99, lr=0.007)
    path = tmp_path / "ckpt.npz"
    t.save(path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    loaded = type(t).load(path)
    assert type(loaded) is type(t)
    assert snapshot(loaded) == snapshot(t)
    assert train(loaded, 25, seed=4, reset=False).tobytes() == train(t, 25, seed=4, reset=False).tobytes()
    assert snapshot(loaded) == snapshot(t)
    # str paths work too, and overwriting is fine
    t.save(str(path))
    assert snapshot(type(t).load(str(path))) == snapshot(t)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_checkpoint_is_a_plain_npz(kind, tmp_path):
    t = warm(kind)
    path = tmp_path / "c.npz"
    t.save(path)
    d = t.state_dict()
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == set(d)
        for k in f.files:
            v = f[k]
            assert v.dtype != object, k
            if isinstance(d[k], np.ndarray):
                assert v.tobytes() == d[k].tobytes() and v.dtype == np.float64, k
            elif isinstance(d[k], list):
                assert list(v) == d[k], k
            else:
                assert v.ndim == 0 and v.item() == d[k], k
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith(".npy") for n in z.namelist())


def _zip_with_text_member():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no arrays here")
    return buf.getvalue()


def _npz_without_keys():
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    return buf.getvalue()


def _empty_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


def _npy():
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


CORRUPT_FILES = {
    "truncated half": lambda raw: raw[: len(raw) // 2],
    "truncated tail": lambda raw: raw[:-10],
    "random bytes": lambda raw: np.random.default_rng(0).bytes(4096),
    "empty": lambda raw: b"",
    "text": lambda raw: b"hello, not a checkpoint\n",
    "zip with a text member": lambda raw: _zip_with_text_member(),
    "empty zip": lambda raw: _empty_zip(),
    "npz without the keys": lambda raw: _npz_without_keys(),
    "a .npy file": lambda raw: _npy(),
}


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("case", list(CORRUPT_FILES))
def test_load_rejects_corrupt_files(kind, case, tmp_path):
    t = warm(kind)
    good = tmp_path / "good.npz"
    t.save(good)
    p = tmp_path / "bad.npz"
    p.write_bytes(CORRUPT_FILES[case](good.read_bytes()))
    with pytest.raises(ValueError) as e:
        type(t).load(p)
    msg = str(e.value)
    assert "checkpoint" in msg or "format_version" in msg or "state_dict" in msg, msg
    assert len(msg) < 2000


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_load_rejects_other_versions_and_classes(kind, tmp_path):
    t = warm(kind)
    cls = type(t)
    d = t.state_dict()
    p = tmp_path / "v2.npz"
    np.savez(p, **{**d, "format_version": 2})
    with pytest.raises(ValueError, match="format_version") as e:
        cls.load(p)
    assert "2" in str(e.value) and "1" in str(e.value)
    p = tmp_path / "nover.npz"
    np.savez(p, **{k: v for k, v in d.items() if k != "format_version"})
    with pytest.raises(ValueError, match="format_version"):
        cls.load(p)
    p = tmp_path / "other.npz"
    t.save(p)
    for other in (eprop.EpropTrainer, eprop.OnlineTrainer, eprop.OnlineLIFLayer):
        if other is not cls:
            with pytest.raises(ValueError, match="class"):
                other.load(p)
    # an object array inside (would need pickle) is refused, no code runs
    p = tmp_path / "pickled.npz"
    np.savez(p, **{**d, "class": np.array([object()], dtype=object)})
    with pytest.raises(ValueError):
        cls.load(p)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        eprop.EpropTrainer.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_is_atomic(kind, tmp_path):
    t = warm(kind)
    # success: nothing but the file
    t.save(tmp_path / "a.npz")
    t.save(tmp_path / "b")  # no suffix added
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b"]
    assert snapshot(type(t).load(tmp_path / "b")) == snapshot(t)
    # a folder that does not exist: raises, creates nothing
    missing = tmp_path / "no" / "such"
    with pytest.raises(OSError):
        t.save(missing / "c.npz")
    assert not (tmp_path / "no").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b"]
    # the target is a folder: the rename fails, the temporary file is removed
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(OSError):
        t.save(tmp_path / "d.npz")
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b", "d.npz"]
    assert os.listdir(tmp_path / "d.npz") == []
    # a failed save leaves an existing checkpoint as it was
    old = (tmp_path / "a.npz").read_bytes()
    other = make(kind, seed=5)
    with pytest.raises(OSError):
        other.save(tmp_path / "d.npz")
    assert (tmp_path / "a.npz").read_bytes() == old


# --------------------------------------------------------------------------- pickle and copy


def _mutate(t):
    if isinstance(t, eprop.EpropTrainer):
        t.W_out = t.W_out + 1.0
    elif isinstance(t, eprop.OnlineTrainer):
        t.layers[0].W = t.layers[0].W + 1.0
    else:
        t.W = t.W + 1.0
    train(t, 10, seed=30, reset=False)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_pickle_and_copy(kind, how):
    t = warm(kind, seed=77, lr=0.003)
    if how == "pickle":
        c = pickle.loads(pickle.dumps(t))
        c2 = pickle.loads(pickle.dumps(t, protocol=2))
        assert snapshot(c2) == snapshot(t)
    elif how == "deepcopy":
        c = copy.deepcopy(t)
    else:
        c = copy.copy(t)
    assert type(c) is type(t) and c is not t
    assert snapshot(c) == snapshot(t)
    assert repr(c) == repr(t)
    if hasattr(t, "seed"):
        assert c.seed == t.seed == 77
    # independent: changing one leaves the other
    before = snapshot(t)
    _mutate(c)
    assert snapshot(t) == before
    assert snapshot(c) != before
    # and equal again when both do the same thing
    c = copy.deepcopy(t)
    assert train(c, 20, seed=31, reset=False).tobytes() == train(t, 20, seed=31, reset=False).tobytes()
    assert snapshot(c) == snapshot(t)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copy_of_a_layer_taken_from_a_trainer(how):
    t = warm("online")
    view = t.layers[0]
    c = pickle.loads(pickle.dumps(view)) if how == "pickle" else copy.deepcopy(view)
    assert isinstance(c, eprop.OnlineLIFLayer)
    assert snapshot(c) == snapshot(view)
    assert (c.n_inputs, c.n_neurons) == (view.n_inputs, view.n_neurons)
    trainer_before = snapshot(t)
    _mutate(c)  # the copy is standalone
    assert snapshot(t) == trainer_before
    view_before = snapshot(view)
    train(t, 10, seed=32, reset=False)  # and the trainer moving does not move the copy
    c_before = snapshot(c)
    assert snapshot(view) != view_before
    assert snapshot(c) == c_before


def test_copied_online_trainer_has_its_own_layers():
    t = warm("online")
    for c in (copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert c.layers[0] is not t.layers[0]
        c.layers[1].W = c.layers[1].W * 0.0
        assert np.any(t.layers[1].W != 0)
        assert np.all(c.state_dict()["layers.1.W"] == 0)


# --------------------------------------------------------------------------- across processes


_RESUME_CODE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import eprop
    kind, folder, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cls = {"eprop": eprop.EpropTrainer, "online": eprop.OnlineTrainer}[kind]
    t = cls.load(folder + "/mid.npz")
    x = np.load(folder + "/x.npy")
    y = np.load(folder + "/y.npy")
    bounds = np.load(folder + "/bounds.npy")
    losses = []
    for a, b in zip(bounds[start:-1], bounds[start + 1:]):
        losses.append(t.train_sequence(x[a:b], y[a:b], reset=False))
    np.save(folder + "/losses.npy", np.array(losses))
    t.save(folder + "/final.npz")
    """
)


@pytest.mark.parametrize("stop_chunk", [2, 4])
def test_resume_a_stream_in_a_new_process(kind, stop_chunk, tmp_path):
    t = make(kind, lr=0.005)
    x, y = data(t, 600, seed=40)
    bounds = np.array([0, 1, 137, 138, 301, 455, 600])  # stops at arbitrary steps
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "bounds.npy", bounds)

    ref = copy.deepcopy(t)
    ref_losses = [
        ref.train_sequence(x[a:b], y[a:b], reset=(k == 0)) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]

    part = copy.deepcopy(t)
    first = [
        part.train_sequence(x[a:b], y[a:b], reset=(k == 0))
        for k, (a, b) in enumerate(zip(bounds[:stop_chunk], bounds[1 : stop_chunk + 1]))
    ]
    assert nonzero_state(part)  # stopped mid-sequence, not at a reset point
    part.save(tmp_path / "mid.npz")
    del part
    r = subprocess.run(
        [sys.executable, "-c", _RESUME_CODE, kind, str(tmp_path), str(stop_chunk)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    rest = list(np.load(tmp_path / "losses.npy"))
    got = first + rest
    assert len(got) == len(ref_losses)
    assert np.array(got).tobytes() == np.array(ref_losses).tobytes()
    final = type(t).load(tmp_path / "final.npz")
    assert snapshot(final) == snapshot(ref)
    fd, rd = final.state_dict(), ref.state_dict()
    assert fd.keys() == rd.keys()
    for k in fd:
        if isinstance(fd[k], np.ndarray):
            assert fd[k].tobytes() == rd[k].tobytes(), k
        else:
            assert fd[k] == rd[k], k


def test_pickle_across_a_process():
    t = warm("eprop")
    blob = pickle.dumps(t)
    code = textwrap.dedent(
        """
        import pickle, sys, json
        import numpy as np
        t = pickle.loads(sys.stdin.buffer.read())
        x = np.zeros((20, t.n_inputs)); x[::3] = 2.0
        print(json.dumps(t.predict_sequence(x, reset=False).tobytes().hex()))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    x = np.zeros((20, t.n_inputs))
    x[::3] = 2.0
    assert json.loads(r.stdout.decode()) == t.predict_sequence(x, reset=False).tobytes().hex()


# ------------------------------------------------------------ hostile contents


class _Tripwire:
    """Unpickling this writes a marker file: a reader that unpickles runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _rewritten(good, tmp_path, change):
    """A copy of checkpoint ``good`` with its members changed by ``change``
    (a dict of arrays, written back with NumPy, pickles allowed)."""
    with np.load(good, allow_pickle=False) as f:
        members = {k: f[k] for k in f.files}
    change(members)
    p = tmp_path / "hostile.npz"
    with open(p, "wb") as out:
        np.savez(out, **members)
    return p


def _first_matrix(members):
    return next(k for k, v in members.items() if v.ndim == 2 and not k.startswith(("adam", "_")))


HOSTILE = {
    "a pickled object member": lambda m, marker: m.__setitem__("W_extra", np.array([_Tripwire(marker)], dtype=object)),
    "a weight as a pickled object": lambda m, marker: m.__setitem__(
        _first_matrix(m), np.array([[_Tripwire(marker)]], dtype=object)
    ),
    "a weight as complex numbers": lambda m, marker: m.__setitem__(
        _first_matrix(m), m[_first_matrix(m)].astype(complex)
    ),
    "a weight as text": lambda m, marker: m.__setitem__(_first_matrix(m), m[_first_matrix(m)].astype(str)),
    "a weight of the wrong shape": lambda m, marker: m.__setitem__(_first_matrix(m), m[_first_matrix(m)][:, :-1]),
    "a weight transposed": lambda m, marker: m.__setitem__(
        _first_matrix(m), np.ascontiguousarray(np.vstack([m[_first_matrix(m)]] * 2))
    ),
    "a weight with NaN": lambda m, marker: m[_first_matrix(m)].__setitem__((0, 0), np.nan),
    "an unknown key": lambda m, marker: m.__setitem__("surprise", np.zeros(3)),
    "a missing weight": lambda m, marker: m.pop(_first_matrix(m)),
    "a missing class": lambda m, marker: m.pop("class"),
}


def _trained(kind):
    if kind != "rsnn":
        return warm(kind)
    net = eprop.RecurrentNetwork(6, 8, 2, n_adaptive=3, optimizer="adam", seed=3)
    rng = np.random.default_rng(0)
    net.train_sequence((rng.random((60, 6)) < 0.3) * 1.0, rng.random((60, 2)))
    return net


@pytest.mark.parametrize("kind", [*ALL_KINDS, "rsnn"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_checkpoints_are_refused_and_run_nothing(kind, case, tmp_path):
    t = _trained(kind)
    good = tmp_path / "good.npz"
    t.save(good)
    marker = tmp_path / "code-ran"
    p = _rewritten(good, tmp_path, lambda m: HOSTILE[case](m, marker))
    before = t.state_dict()
    with pytest.raises(ValueError) as e:
        type(t).load(p)
    with pytest.raises(ValueError):  # the state read by the core, then loaded
        t.load_state_dict(eprop._core.read_checkpoint(p))
    assert not marker.exists(), "loading ran code from the file"
    msg = str(e.value)
    assert len(msg) < 2000 and ("checkpoint" in msg or "state_dict" in msg), msg
    after = t.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert np.array_equal(np.asarray(before[k]), np.asarray(after[k])), k
