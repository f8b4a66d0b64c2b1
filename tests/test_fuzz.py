"""Property-based fuzzing of every public method and settable attribute of
every class (and of an OnlineTrainer's layer views).

Each example builds a small trainer of random sizes and options (fresh or in
the middle of a sequence), draws arguments that are valid (in any memory
layout: lists, strided, negative strides, Fortran order, read-only, memmaps,
float32, ints, bools) or hostile (any dtype, shape, value: NaN, infinities,
the largest and subnormal magnitudes; objects that are no arrays), and makes
one call. The call must either

* succeed with a result of the documented type and shape, finite, leave a
  finite state (step-level calls excepted: they check only their results,
  see docs/reliability.md) with no self-connections, and, when
  every argument was valid, give bitwise the results and state of the same
  call on a twin trainer given contiguous float64 copies; or
* raise ValueError, TypeError or MemoryError whose message names one of the
  call's arguments, with the trainer's full state bitwise unchanged.

Examples per test: ``EPROP_FUZZ_EXAMPLES`` (default 100: 5,800 examples in CI); the nightly
profile is ``EPROP_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``
(README, "Reliability").
"""

import dataclasses
import inspect
import math
import os
import re

import eprop
import numpy as np
import pytest
from common import NOT_UNDONE, snapshot, state_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import HOSTILE, LAYOUTS, NOT_ARRAYS, fuzz_array, hostile_arrays, laid_out

EXAMPLES = int(os.environ.get("EPROP_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.timeout(600)
ERRORS = (ValueError, TypeError, MemoryError)
CLASS_OF = {
    "eprop": eprop.EpropTrainer,
    "online": eprop.OnlineTrainer,
    "layer": eprop.OnlineLIFLayer,
    "rsnn": eprop.RecurrentNetwork,
}

# --------------------------------------------------------------------------- trainers


@dataclasses.dataclass
class Subject:
    """The object called (`obj`), the trainer that owns its state (`owner`:
    the OnlineTrainer of a layer view), and its sizes."""

    kind: str
    obj: object
    owner: object
    n_in: int
    n_out: int
    n_rec: int  # neurons of the (last) recurrent layer; spikes' length
    classes: bool = False  # cross-entropy: targets may be class indices
    index: int = 0  # a view's layer


def warm_up(t, n_in, n_out, rng, classes=False):
    """Runs a few steps so that membranes, traces and optimizer state are non-zero."""
    X = (rng.random((int(rng.integers(1, 12)), n_in)) < 0.5) * 2.0
    if isinstance(t, eprop.OnlineLIFLayer):
        for x in X:
            t.step(x)
            t.apply_learning_signal(rng.normal(size=t.n_neurons))
        return
    Y = rng.integers(0, n_out, len(X)) if classes else rng.random((len(X), n_out))
    t.train_sequence(X, Y, reset=False)


@st.composite
def subjects(draw, kind):
    seed = draw(st.integers(0, 2**32 - 1))
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    lr = draw(st.sampled_from([0.0, 1e-3, 0.05, 1.0]))
    classes, k = False, 0
    if kind == "eprop":
        n = draw(st.integers(1, 5))
        kernel = draw(st.sampled_from(["dense", "event", "auto"]))
        t = eprop.EpropTrainer(n_in, n, n_out, lr=lr, seed=seed, kernel=kernel, dtype=dtype)
        owner, obj = t, t
    elif kind in ("online", "view"):
        hidden = draw(st.lists(st.integers(1, 5), min_size=0, max_size=2))
        sizes = [n_in, *hidden, n_out]
        t = eprop.OnlineTrainer(sizes, threshold=draw(st.sampled_from([0.3, 1.0])), lr=lr, seed=seed, dtype=dtype)
        owner, obj = t, t
        if kind == "view":
            k = draw(st.integers(0, len(t.layers) - 1))
            obj = t.layers[k]
            n_in, n = sizes[k], sizes[k + 1]
            n_out = n
        n = sizes[-2] if kind == "online" else n
    elif kind == "layer":
        n = draw(st.integers(1, 5))
        t = eprop.OnlineLIFLayer(n_in, n, threshold=draw(st.sampled_from([0.3, 1.0])), lr=lr, seed=seed, dtype=dtype)
        owner, obj, n_out = t, t, n
    else:
        layers = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
        n_adaptive = [draw(st.integers(0, m)) for m in layers]
        loss = draw(st.sampled_from(["mse", "cross_entropy"]))
        if loss == "cross_entropy":
            n_out = max(n_out, 2)
        t = eprop.RecurrentNetwork(
            n_in,
            layers if len(layers) > 1 or draw(st.booleans()) else layers[0],
            n_out,
            n_adaptive=n_adaptive if len(layers) > 1 else n_adaptive[0],
            loss=loss,
            feedback=draw(st.sampled_from(["symmetric", "random", "adaptive"])),
            optimizer=draw(st.sampled_from(["adam", "sgd"])),
            update=draw(st.sampled_from(["sequence", "step", 3])),
            reg_rate=draw(st.sampled_from([0.0, 0.5])),
            kernel=draw(st.sampled_from(["dense", "event", "auto"])),
            lr=lr,
            seed=seed,
            dtype=dtype,
        )
        owner, obj, n, classes = t, t, layers[-1], loss == "cross_entropy"
    if draw(st.booleans()):
        warm_up(obj if kind != "view" else owner, *(dims_of(owner)), np.random.default_rng(seed), classes)
    return Subject(kind, obj, owner, n_in, n_out, n, classes, k)


def dims_of(t):
    if isinstance(t, eprop.OnlineTrainer):
        return t.layer_sizes[0], t.layer_sizes[-1]
    if isinstance(t, eprop.OnlineLIFLayer):
        return t.n_inputs, t.n_neurons
    return t.n_inputs, t.n_outputs


def twin_of(s):
    """An independent copy of the subject, bitwise: (owner, object)."""
    owner = type(s.owner).from_state_dict(s.owner.state_dict())
    return owner, (owner.layers[s.index] if s.kind == "view" else owner)


# --------------------------------------------------------------------------- checks


def full_state(t):
    """Everything observable about an owner, bitwise."""
    return snapshot(t), state_bits(t)


def floats_of(value):
    """The float arrays inside a result (dicts, lists, tuples, arrays)."""
    if isinstance(value, dict):
        return [a for v in value.values() for a in floats_of(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in floats_of(v)]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return [value]
    if isinstance(value, float):
        return [np.array(value)]
    return []


def assert_invariants(owner, finite=True):
    """A finite state; no self-connections in any W_rec."""
    for name, a in owner.state_dict().items():
        if finite and isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert np.isfinite(a).all(), f"non-finite values in {name} after a successful call"
    if isinstance(owner, (eprop.EpropTrainer, eprop.RecurrentNetwork)):
        w = owner.W_rec
        for m in w if isinstance(w, list) else [w]:
            assert not np.any(np.diagonal(m)), "a self-connection in W_rec"


def same_result(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_result(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_result(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def contiguous(v):
    """A valid argument as a plain C-contiguous array: float64, or int64 for
    integer arrays (class indices), bool for masks."""
    a = np.array(v)
    dtype = a.dtype if a.dtype == np.bool_ else np.int64 if a.dtype.kind in "iu" else np.float64
    return np.array(a, dtype=dtype, order="C")  # (ascontiguousarray would make a 0-d array 1-d)


def without_memory(full):
    snap, bits = full
    return (snap[:-1] if snap[0] == "RecurrentNetwork" else snap), bits


def differences(a, b):
    """The names of what differs between two full_state()s."""
    (snap_a, bits_a), (snap_b, bits_b) = a, b
    out = [k for k in bits_a.keys() | bits_b.keys() if bits_a.get(k) != bits_b.get(k)]
    return out or [i for i, (x, y) in enumerate(zip(snap_a, snap_b, strict=True)) if x != y]


def names_it(msg, name):
    """Whether `msg` names `name` as a word of its own (not "x" in "expected");
    a state dict's entries are named state_dict[...]."""
    if name == "state" and "state_dict" in msg:
        return True
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg) is not None


def message(e):
    """An exception's message with its notes (PyO3 notes the argument whose
    conversion failed: "while processing 'reset'")."""
    return " ".join([str(e), *getattr(e, "__notes__", [])])


# Step-level calls are not undone when finite values overflow (a copy of the
# state costs several steps): they raise this, and leave the trainer as the
# step made it (documented in the classes' docstrings and README).
STEP_CALLS = {"step", "apply_learning_signal"}


def exercise(s, name, call, args, check, twin_args=None):
    """Calls ``call(obj, **args)`` on the subject and checks the outcome (see
    the module's docstring). ``args`` maps argument names to (value, valid);
    ``twin_args`` converts valid values for the twin call (default:
    `contiguous` for arrays)."""
    owner = s.owner
    before = full_state(owner)
    values = {k: v for k, (v, _) in args.items()}
    all_valid = all(ok for _, ok in args.values())
    twin_owner, twin = twin_of(s) if all_valid else (None, None)
    try:
        result = call(s.obj, **values)
    except ERRORS as e:
        msg = message(e)
        if not (name in STEP_CALLS and NOT_UNDONE in msg):
            after = full_state(owner)
            if "the call was undone" in msg:
                # put back from a copy: the same state, but step buffers may hold
                # less spare capacity, so memory_bytes (last in a network's
                # snapshot) may be a few bytes smaller
                before, after = without_memory(before), without_memory(after)
            assert after == before, (
                f"{name}: a refused call changed {differences(before, after)} ({type(e).__name__}: {e})"
            )
        names = [n.split(".")[0] for n in args] or [name]
        assert any(names_it(msg, n) for n in names), f"{name}: the message does not name any of {names}: {msg!r}"
        assert not all_valid, f"{name}: valid arguments were refused: {type(e).__name__}: {e}"
        return None
    except BaseException as e:  # noqa: BLE001 - anything else is what we look for
        if isinstance(e, KeyboardInterrupt):
            raise
        pytest.fail(f"{name}: raised {type(e).__module__}.{type(e).__name__}: {e}")
    verdict = check(result)  # a check asserts itself (None) or returns whether it holds
    assert verdict is None or verdict is True, f"{name}: unexpected result {result!r}"
    for a in floats_of(result):
        assert np.isfinite(a).all(), f"{name}: a non-finite result {result!r}"
    assert_invariants(owner, finite=name not in STEP_CALLS)
    if all_valid:
        converted = {k: (twin_args or {}).get(k, _default_twin)(v) for k, v in values.items()}
        twin_result = call(twin, **converted)
        assert same_result(result, twin_result), f"{name}: results differ from contiguous float64 arguments"
        assert full_state(twin_owner)[1] == full_state(owner)[1], f"{name}: state differs from the twin's"
    return result


def _default_twin(v):
    if isinstance(v, (np.ndarray, list)):
        return contiguous(v)
    return v


# --------------------------------------------------------------------------- argument strategies

N_THREADS = [None, 1, 2]
BAD_INTS = [0, -1, -(2**63), 2**62, 2**70, 1.5, "2", b"2", [1], np.float64(2.0), math.nan]


@st.composite
def scalar_arg(draw, valid, hostile):
    """(value, valid) from a list of valid values and one of hostile ones."""
    if draw(st.booleans()):
        return draw(st.sampled_from(valid)), True
    return draw(st.sampled_from(hostile)), False


def seq_targets(draw, s, lead):
    """Targets of leading shape `lead`: rows (…, n_out), or class indices for cross-entropy."""
    if s.classes and draw(st.booleans()):
        v, ok = draw(fuzz_array(lead, values=st.integers(0, s.n_out - 1).map(float)))
        if ok:
            v = np.asarray(v, dtype=float).astype(np.int64)
            if draw(st.booleans()):
                v = v.tolist()
        return v, ok
    if s.classes:  # class probabilities: one-hot rows
        v, ok = draw(fuzz_array((*lead, s.n_out)))
        if ok:
            labels = draw(hnp.arrays(np.int64, lead, elements=st.integers(0, s.n_out - 1)))
            v = laid_out(np.eye(s.n_out)[labels], draw(st.sampled_from(LAYOUTS[:7])))
        return v, ok
    return draw(fuzz_array((*lead, s.n_out)))


def float_values():
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.sampled_from(NOT_ARRAYS),
        st.sampled_from([np.float32(0.5), np.array(2.0), np.array([1.0]), "1.0", True]),
    )


# --------------------------------------------------------------------------- the calls


def m_step(draw, s):
    x = draw(fuzz_array((s.n_in,)))
    if s.kind in ("layer", "view"):
        return {"x": x}, lambda r: _shape(r, (s.n_out,))
    args = {"x": x}
    with_target = draw(st.booleans())
    if with_target:
        args["target"] = seq_targets(draw, s, ())
    if s.kind == "rsnn" and draw(st.booleans()):
        args["mask"] = draw(scalar_arg([True, False], [1, 0, "yes", None, np.array([True]), 2.5]))

    def check(r):
        assert isinstance(r, dict)
        _shape(r["output"], (s.n_out,))
        if s.kind != "online":
            _shape(r["spikes"], (s.n_rec,))
        assert ("loss" in r) == (with_target and args["target"][0] is not None)  # target=None: no target

    return args, check


def m_apply_learning_signal(draw, s):
    return {"signal": draw(fuzz_array((s.n_out,)))}, lambda r: r is None or pytest.fail("returned a value")


def _sequence_args(draw, s, with_targets=True, batch=False):
    T = draw(st.integers(0, 6))
    lead = (draw(st.integers(0, 3)), T) if batch else (T,)
    x, ok = draw(fuzz_array((*lead, s.n_in)))
    # sequences need T >= 1 and batches B >= 1 (documented): empty ones may be refused
    args = {"inputs": (x, ok and 0 not in lead)}
    if with_targets:
        args["targets"] = seq_targets(draw, s, lead)
    if s.kind == "rsnn" and with_targets and draw(st.booleans()):
        args["mask"] = draw(fuzz_array(lead, values=st.booleans().map(float)))
        if args["mask"][1]:
            args["mask"] = (np.asarray(args["mask"][0]).astype(bool), True)
    return lead, args


def m_train_sequence(draw, s):
    _, args = _sequence_args(draw, s)
    if draw(st.booleans()):
        args["reset"] = draw(scalar_arg([True, False], [1, None, "no", 0.0]))
    return args, lambda r: isinstance(r, float) or pytest.fail(f"not a float: {r!r}")


def m_predict_sequence(draw, s):
    _, args = _sequence_args(draw, s, with_targets=False)
    if draw(st.booleans()):
        args["reset"] = draw(scalar_arg([True, False], [1, None, "no"]))
    return args, lambda r: _shape(r, (np.shape(args["inputs"][0])[0], s.n_out))


def _threads(draw, args):
    if draw(st.booleans()):
        args["n_threads"] = draw(scalar_arg(N_THREADS, BAD_INTS))


def m_train_batch(draw, s):
    _, args = _sequence_args(draw, s, batch=True)
    _threads(draw, args)
    if s.kind != "rsnn" and draw(st.booleans()):
        args["update"] = draw(scalar_arg(["step", "sequence"], ["bogus", "", 3, None, "Step"]))
    return args, lambda r: _shape(r, np.shape(args["inputs"][0])[:1])


def m_predict_batch(draw, s):
    _, args = _sequence_args(draw, s, with_targets=False, batch=True)
    _threads(draw, args)
    return args, lambda r: _shape(r, (*np.shape(args["inputs"][0])[:2], s.n_out))


def m_gradients(draw, s):
    _, args = _sequence_args(draw, s, batch=True)
    _threads(draw, args)

    def check(r):
        assert isinstance(r, dict) and isinstance(r["loss"], float)
        for k, v in r.items():
            if k != "loss":
                assert v.shape == s.obj.state_dict()[k].shape, k

    return args, check


def m_evaluate(draw, s):
    _, args = _sequence_args(draw, s, batch=True)
    _threads(draw, args)
    return args, lambda r: isinstance(r, dict) and all(isinstance(v, float) for v in r.values()) or pytest.fail(r)


def m_batch_memory_bytes(draw, s):
    args = {"batch_size": draw(scalar_arg([1, 5, 64], BAD_INTS + [-5, None]))}
    if s.kind != "rsnn" and draw(st.booleans()):
        args["update"] = draw(scalar_arg(["step", "sequence"], ["bogus", 3, None]))
    return args, lambda r: (isinstance(r, int) and r >= 0) or pytest.fail(r)


def m_apply_updates(draw, s):
    return {}, lambda r: r is None or pytest.fail(r)


def m_reset(draw, s):
    return {}, lambda r: r is None or pytest.fail(r)


def m_state_dict(draw, s):
    return {}, lambda r: isinstance(r, dict) or pytest.fail(r)


@st.composite
def damaged_state(draw, s):
    """A state dict of the subject, possibly damaged: (dict, valid)."""
    d = dict(s.obj.state_dict())
    how = draw(st.sampled_from(["same", "other", "drop", "extra", "array", "scalar", "not-a-dict"]))
    if how == "same":
        return d, True
    if how == "other":  # a fresh trainer's state of the same configuration
        return dict(type(s.obj).from_config(s.obj.config).state_dict()), True
    keys = sorted(d)
    k = draw(st.sampled_from(keys))
    if how == "drop":
        del d[k]
    elif how == "extra":
        d[draw(st.sampled_from(["bogus", "W_in.7", "_v.x", ""]))] = np.zeros(2)
    elif how == "array":
        d[k] = draw(hostile_arrays(np.shape(d[k])))
    elif how == "scalar":
        d[k] = draw(st.sampled_from([None, "x", 1e308, math.nan, -1, 2**70, [1, 2], {"a": 1}]))
    else:
        return draw(st.sampled_from(NOT_ARRAYS + [list(d.items())])), False
    return d, False


def m_load_state_dict(draw, s):
    return {"state": draw(damaged_state(s))}, lambda r: r is None or pytest.fail(r)


def m_save(draw, s, tmp):
    valid = [os.path.join(tmp, "ok.npz"), os.path.join(tmp, "ok")]
    hostile = [tmp, os.path.join(tmp, "missing", "x.npz"), 12, None, b"\x00bad", "bad\x00name.npz", 1.5]
    return {"path": draw(scalar_arg(valid, hostile))}, lambda r: r is None or pytest.fail(r)


ARRAY_SETTERS = {
    "eprop": {
        "W_in": lambda s: (s.obj.n_neurons, s.n_in),
        "W_rec": lambda s: (s.n_rec, s.n_rec),
        "W_out": lambda s: (s.n_out, s.n_rec),
    },
    "layer": {"W": lambda s: (s.n_out, s.n_in)},
    "view": {"W": lambda s: (s.n_out, s.n_in)},
    "rsnn": {
        "W_in": lambda s: s.obj.W_in,
        "W_rec": lambda s: s.obj.W_rec,
        "W_out": lambda s: s.obj.W_out,
        "b_out": lambda s: s.obj.b_out,
        "feedback_matrix": lambda s: s.obj.feedback_matrix,
    },
    "online": {},
}
FLOAT_SETTERS = {
    "eprop": ["tau_mem", "tau_trace", "threshold", "lr", "dt"],
    "layer": ["tau_mem", "threshold", "lr", "dt"],
    "view": ["tau_mem", "threshold", "lr", "dt"],
    "rsnn": ["lr"],
    "online": [],
}


@st.composite
def array_value(draw, current):
    """A value for an array setter whose current value is `current` (an
    array, or a list of per-layer arrays), or a shape."""
    if isinstance(current, tuple):
        return draw(fuzz_array(current))
    if isinstance(current, list):
        parts = [draw(fuzz_array(a.shape)) for a in current]
        if draw(st.integers(0, 9)) == 0:
            parts = parts[:-1]
        return [v for v, _ in parts], all(ok for _, ok in parts) and len(parts) == len(current)
    return draw(fuzz_array(current.shape))


METHODS = {
    "step": m_step,
    "apply_learning_signal": m_apply_learning_signal,
    "train_sequence": m_train_sequence,
    "predict_sequence": m_predict_sequence,
    "train_batch": m_train_batch,
    "predict_batch": m_predict_batch,
    "gradients": m_gradients,
    "evaluate": m_evaluate,
    "batch_memory_bytes": m_batch_memory_bytes,
    "apply_updates": m_apply_updates,
    "reset": m_reset,
    "state_dict": m_state_dict,
    "load_state_dict": m_load_state_dict,
}
# Fuzzed by tests of their own below.
OWN_TESTS = {"save", "load", "from_state_dict", "from_config", "Config", "train_stream", "predict_stream"}


def _shape(r, shape):
    assert isinstance(r, np.ndarray), f"not an array: {r!r}"
    assert r.shape == shape, f"shape {r.shape}, expected {shape}"


def public_methods(cls):
    out = set()
    for n in dir(cls):
        if n.startswith("_"):
            continue
        a = inspect.getattr_static(cls, n)
        if type(a).__name__ != "getset_descriptor" and not isinstance(a, property) and callable(getattr(cls, n)):
            out.add(n)
    return out


def public_attributes(cls):
    return {n for n in dir(cls) if not n.startswith("_")} - public_methods(cls)


KIND_CLASS = {
    "eprop": eprop.EpropTrainer,
    "online": eprop.OnlineTrainer,
    "layer": eprop.OnlineLIFLayer,
    "view": eprop.OnlineLIFLayer,
    "rsnn": eprop.RecurrentNetwork,
}
CASES = [(k, m) for k, cls in KIND_CLASS.items() for m in sorted(public_methods(cls) - OWN_TESTS) if m in METHODS]


# --------------------------------------------------------------------------- tests


def test_every_public_member_is_fuzzed():
    """A public method or settable attribute added later must be added here."""
    for kind, cls in KIND_CLASS.items():
        missing = public_methods(cls) - OWN_TESTS - set(METHODS)
        assert not missing, f"{cls.__name__}: methods not fuzzed: {missing}"
        settable = set()
        for n in public_attributes(cls):
            a = inspect.getattr_static(cls, n)
            if getattr(a, "__set__", None) is not None and type(a).__name__ == "getset_descriptor":
                settable.add(n)
        settable &= {n for n in public_attributes(cls) if _settable(cls, n)}
        fuzzed = set(ARRAY_SETTERS[kind]) | set(FLOAT_SETTERS[kind])
        assert settable == fuzzed, f"{cls.__name__}: settable {sorted(settable)}, fuzzed {sorted(fuzzed)}"


def _settable(cls, name):
    t = {
        eprop.EpropTrainer: lambda: cls(2, 3, 1),
        eprop.OnlineLIFLayer: lambda: cls(2, 3),
        eprop.OnlineTrainer: lambda: cls([2, 3, 1]),
        eprop.RecurrentNetwork: lambda: cls(2, 3, 1),
    }[cls]()
    try:
        setattr(t, name, getattr(t, name))
    except (AttributeError, TypeError, ValueError):
        return False
    return True


def read_everything(s):
    """Every public attribute reads without error."""
    for n in sorted(public_attributes(KIND_CLASS[s.kind])):
        getattr(s.obj, n)


@pytest.mark.parametrize("kind,method", CASES)
@FUZZ
@given(data=st.data())
def test_fuzz_method(kind, method, data):
    s = data.draw(subjects(kind), label="subject")
    args, check = METHODS[method](data.draw, s)
    exercise(s, method, lambda obj, **kw: getattr(obj, method)(**kw), args, check)
    read_everything(s)


@pytest.mark.parametrize("kind", [k for k in KIND_CLASS if ARRAY_SETTERS[k] or FLOAT_SETTERS[k]])
@FUZZ
@given(data=st.data())
def test_fuzz_setters(kind, data):
    s = data.draw(subjects(kind), label="subject")
    names = sorted(ARRAY_SETTERS[kind]) + FLOAT_SETTERS[kind]
    name = data.draw(st.sampled_from(names), label="attribute")
    if name in ARRAY_SETTERS[kind]:
        value = data.draw(array_value(ARRAY_SETTERS[kind][name](s)), label="value")
    else:
        ok = data.draw(st.booleans())
        value = (data.draw(st.sampled_from([0.5, 1.0, 20.0, 1e-3])), True) if ok else (data.draw(float_values()), False)
        if name == "lr" and ok:
            value = (data.draw(st.sampled_from([0.0, 0.01, 0.5])), True)

    def assign(obj, **kw):
        setattr(obj, name, kw[name])

    twin = {
        name: (
            lambda v: (
                [contiguous(a) for a in v] if isinstance(v, list) and v and not np.isscalar(v[0]) else _default_twin(v)
            )
        )
    }
    exercise(s, name, assign, {name: value}, lambda r: None, twin_args=twin)
    read_everything(s)


def _chunks(draw, s, n):
    chunks, ok = [], True
    for _ in range(n):
        T = draw(st.integers(1, 4))
        x, okx = draw(fuzz_array((T, s.n_in), p_valid=0.8))
        y, oky = seq_targets(draw, s, (T,))
        chunks.append((x, y))
        ok = ok and okx and oky
    return chunks, ok


@pytest.mark.parametrize("kind", ["eprop", "online", "rsnn"])
@FUZZ
@given(data=st.data())
def test_fuzz_train_stream(kind, data):
    """One chunk: an error leaves the state unchanged; several: an error names
    its chunk and leaves a finite state (predict_stream checks that it is the
    state after the chunks before it)."""
    s = data.draw(subjects(kind), label="subject")
    n = data.draw(st.integers(1, 3), label="chunks")
    chunks, ok = _chunks(data.draw, s, n)
    if data.draw(st.integers(0, 9)) == 0:
        chunks, ok = data.draw(st.sampled_from([[], [1, 2], [(1,)], "abc", [None]])), False
    if n == 1:
        exercise(
            s,
            "train_stream",
            lambda obj, chunks: obj.train_stream(chunks),
            {"chunks": (chunks, ok)},
            lambda r: isinstance(r, float),
            twin_args={"chunks": lambda c: [tuple(contiguous(a) for a in ch) for ch in c]},
        )
        return
    try:
        loss = s.obj.train_stream(chunks)
    except ERRORS as e:
        assert "chunks" in str(e), str(e)
        assert not ok, f"valid chunks refused: {e}"
    else:
        assert math.isfinite(loss)
    assert_invariants(s.owner)


@pytest.mark.parametrize("kind", ["eprop", "online", "rsnn"])
@FUZZ
@given(data=st.data())
def test_fuzz_predict_stream(kind, data):
    """As train_stream: one chunk is undone on error; with several, an error
    names its chunk."""
    s = data.draw(subjects(kind), label="subject")
    n = data.draw(st.integers(1, 3), label="chunks")
    chunks, ok = _chunks(data.draw, s, n)
    xs = [c[0] for c in chunks]

    def run(obj, chunks):
        return [o.copy() for o in obj.predict_stream(chunks)]

    if n == 1:
        twin = {"chunks": lambda c: [contiguous(a) for a in c]}
        out = exercise(s, "predict_stream", run, {"chunks": (xs, ok)}, lambda r: None, twin_args=twin)
        if out is not None:
            assert [o.shape for o in out] == [(len(x), s.n_out) for x in xs]
        return
    twin_owner, twin = twin_of(s)
    try:
        out = run(s.obj, xs)
    except ERRORS as e:
        assert "chunks[" in str(e), str(e)
        assert not ok, f"valid chunks refused: {e}"
        k = int(re.match(r"chunks\[(\d+)\]", str(e)).group(1))
        if k > 0:  # the state is that after chunks[:k]
            run(twin, xs[:k])
            assert state_bits(twin_owner) == state_bits(s.owner)
    else:
        assert [o.shape for o in out] == [(len(x), s.n_out) for x in xs]
        assert all(np.isfinite(o).all() for o in out)
    assert_invariants(s.owner)


@pytest.mark.parametrize("kind", ["eprop", "online", "layer", "rsnn"])
@FUZZ
@given(data=st.data())
def test_fuzz_save_and_load(kind, data, tmp_path_factory):
    """save to valid and hostile paths; load and from_state_dict of intact and
    damaged files and dicts give an equal object or a clear error."""
    tmp = str(tmp_path_factory.mktemp("fuzz"))
    s = data.draw(subjects(kind), label="subject")
    args, check = m_save(data.draw, s, tmp)
    before = full_state(s.owner)
    try:
        s.obj.save(args["path"][0])
    except ERRORS + (OSError,) as e:
        assert not args["path"][1] or isinstance(e, OSError), e
        assert full_state(s.owner) == before
        if not isinstance(e, OSError):
            assert "path" in message(e), message(e)
        return
    assert full_state(s.owner) == before
    path = args["path"][0]
    assert os.path.exists(path), f"save({path!r}) wrote no file"
    cls = type(s.obj)
    blob = bytearray(open(path, "rb").read())
    damage = data.draw(st.sampled_from(["none", "flip", "cut", "zero"]), label="damage")
    if damage == "flip" and blob:
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif damage == "cut":
        blob = blob[: data.draw(st.integers(0, max(len(blob) - 1, 0)))]
    elif damage == "zero":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i : i + 8] = bytes(min(8, len(blob) - i))
    open(path, "wb").write(bytes(blob))
    try:
        loaded = cls.load(path)
    except ERRORS as e:
        assert damage != "none", f"an intact file was refused: {e}"
        assert "path" in message(e) or "state" in message(e) or ".npz" in message(e), message(e)
    else:
        if damage == "none":
            assert state_bits(loaded) == state_bits(s.obj)
        assert_invariants(loaded)
    state, ok = data.draw(damaged_state(s), label="state")
    try:
        made = cls.from_state_dict(state)
    except ERRORS as e:
        assert not ok, f"an intact state was refused: {e}"
        assert "state" in message(e), message(e)
    else:
        assert_invariants(made)
        if ok:
            assert state_bits(made) == state_bits(type(s.obj).from_state_dict(state))


CONFIG_ARGS = {
    "eprop": {
        "n_inputs": "size",
        "n_neurons": "size",
        "n_outputs": "size",
        "tau_mem": "pos",
        "tau_trace": "pos",
        "threshold": "pos",
        "lr": "nonneg",
        "dt": "pos",
        "seed": "seed",
        "kernel": ("dense", "event", "auto"),
        "dtype": ("float64", "float32"),
    },
    "layer": {
        "n_inputs": "size",
        "n_neurons": "size",
        "tau_mem": "pos",
        "threshold": "pos",
        "lr": "nonneg",
        "dt": "pos",
        "seed": "seed",
        "dtype": ("float64", "float32"),
    },
    "online": {
        "layer_sizes": "sizes",
        "tau_mem": "pos",
        "threshold": "pos",
        "lr": "nonneg",
        "seed": "seed",
        "dtype": ("float64", "float32"),
    },
    "rsnn": {
        "n_inputs": "size",
        "n_neurons": "size",
        "n_outputs": "size",
        "n_adaptive": "count",
        "tau_mem": "pos",
        "tau_adapt": "pos",
        "threshold": "pos",
        "refractory": "nonneg",
        "dt": "pos",
        "tau_out": "pos",
        "loss": ("mse", "cross_entropy"),
        "feedback": ("symmetric", "random", "adaptive"),
        "feedback_decay": "nonneg",
        "surrogate_height": "nonneg",
        "beta": "beta",
        "reg_rate": "nonneg",
        "target_rate": "nonneg",
        "tau_reg": "pos",
        "optimizer": ("adam", "sgd"),
        "lr": "nonneg",
        "update": ("sequence", "step", 2),
        "seed": "seed",
        "kernel": ("dense", "event", "auto"),
        "dtype": ("float64", "float32"),
    },
}
VALID_OF = {
    "beta": [None, 0.0, 1.7],
    "size": [1, 2, 3],
    "pos": [1.0, 20.0],
    "nonneg": [0.0, 0.1, 1.0],
    "seed": [0, 1, 2**32 - 1],
    "count": [0, 1],
    "sizes": [[1, 2], [2, 3, 1], (2, 1)],
}


@pytest.mark.parametrize("kind", list(CONFIG_ARGS))
@FUZZ
@given(data=st.data())
def test_fuzz_constructors(kind, data):
    """Constructors and Config with one argument hostile: a clear error naming
    it, or a working object."""
    cls = CLASS_OF[kind]
    spec = CONFIG_ARGS[kind]
    assert set(spec) == {f.name for f in dataclasses.fields(cls.Config)}, "a constructor argument is not fuzzed"
    # the class's defaults, sizes 2 (layers [2, 3, 1])
    defaults = {f.name: f.default for f in dataclasses.fields(cls.Config)}
    kwargs = {n: ([2, 3, 1] if what == "sizes" else 2 if what == "size" else defaults[n]) for n, what in spec.items()}
    name = data.draw(st.sampled_from(sorted(spec)), label="argument")
    what = spec[name]
    valid = list(what) if isinstance(what, tuple) else VALID_OF[what]
    # sizes from a fixed list: an arbitrary int could ask for a network of
    # many GiB that the operating system grants (overcommit) and then fills
    odd = [-1, 0, 2**40, 2**64, 2**70, 1.5, "2", None, True, np.int64(3), "x", [0], [2, 0, 1], [], [-1, 2]]
    numbers = st.sampled_from(odd) if what in ("size", "sizes", "count", "seed") else float_values()
    value = data.draw(st.one_of(st.sampled_from(valid), numbers, st.sampled_from(odd)), label="value")
    kwargs[name] = value
    maker = data.draw(st.sampled_from(["class", "config"]), label="via")
    try:
        obj = cls(**kwargs) if maker == "class" else cls.from_config(cls.Config(**kwargs))
    except ERRORS as e:
        # the message names the argument, or one it is checked against (tau_reg >= dt)
        assert any(names_it(message(e), n) for n in spec), f"the message names no argument: {e}"
        assert not any(value is v or (type(value) is type(v) and value == v) for v in valid), (
            f"{name}={value!r} refused: {e}"
        )
        return
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        pytest.fail(f"{name}={value!r}: raised {type(e).__name__}: {e}")
    assert_invariants(obj)
    n_in, n_out = dims_of(obj)
    out = obj.step(np.ones(n_in))
    for a in floats_of(out):
        assert np.isfinite(a).all()
