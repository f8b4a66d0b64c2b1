"""Bad input: every rejected call raises a clear ValueError or TypeError that
names the argument and what was expected and given, and leaves the trainer
bitwise unchanged."""

import math
import os
import re
import subprocess
import sys
import textwrap

import eprop
import numpy as np
import pytest
from common import NOT_UNDONE, assert_unchanged, esc, rejects, snapshot, state_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import hostile_arrays

N_IN, N_REC, N_OUT = 4, 16, 2


# --------------------------------------------------------------------------- helpers


def warm_eprop():
    """An EpropTrainer in the middle of a sequence, with every state non-zero."""
    t = eprop.EpropTrainer(N_IN, N_REC, N_OUT)
    rng = np.random.default_rng(0)
    for i in range(200):
        t.step(3.0 * rng.random(N_IN), rng.random(N_OUT))
        if i >= 30 and np.any(t._spikes):
            break
    assert np.any(t._spikes) and np.any(t._v) and np.any(t._eligibility_rec)
    return t


def warm_online():
    t = eprop.OnlineTrainer([N_IN, N_REC, N_OUT])
    rng = np.random.default_rng(1)
    for i in range(200):
        t.step(3.0 * rng.random(N_IN), (rng.random(N_OUT) < 0.5).astype(float))
        if i >= 30 and np.any(t.layers[0]._spikes):
            break
    assert np.any(t.layers[0]._spikes) and np.any(t.layers[0]._v) and np.any(t.layers[0]._trace)
    return t


def warm_layer():
    layer = eprop.OnlineLIFLayer(N_IN, N_REC)
    rng = np.random.default_rng(2)
    for i in range(200):
        layer.step(3.0 * rng.random(N_IN))
        layer.apply_learning_signal(rng.normal(size=N_REC))
        if i >= 30 and np.any(layer._spikes):
            break
    assert np.any(layer._spikes) and np.any(layer._v) and np.any(layer._trace)
    return layer


def long_seq(T=500, nan_at=None, inf_at_target=None, n_in=N_IN, n_out=N_OUT):
    rng = np.random.default_rng(3)
    X = rng.random((T, n_in))
    Y = rng.random((T, n_out))
    if nan_at is not None:
        X[nan_at] = np.nan
    if inf_at_target is not None:
        Y[inf_at_target] = np.inf
    return X, Y


# --------------------------------------------------------------------------- shape errors

OK_X = np.ones(N_IN)
OK_Y = np.zeros(N_OUT)

# (id, call, exception, message regex) for both EpropTrainer and OnlineTrainer:
# step / train_sequence / predict_sequence share the argument names and shapes.
COMMON_CASES = [
    ("x-short", lambda t: t.step(np.zeros(3)), ValueError, esc("x: expected shape (4,), got shape (3,)")),
    ("x-long", lambda t: t.step(np.zeros(5), OK_Y), ValueError, esc("x: expected shape (4,), got shape (5,)")),
    ("x-empty", lambda t: t.step([]), ValueError, esc("x: expected shape (4,), got shape (0,)")),
    ("x-column", lambda t: t.step(np.zeros((4, 1))), ValueError, esc("x: expected shape (4,), got shape (4, 1)")),
    ("x-row", lambda t: t.step(np.zeros((1, 4)), OK_Y), ValueError, esc("x: expected shape (4,), got shape (1, 4)")),
    ("x-scalar", lambda t: t.step(1.0), ValueError, esc("x: expected shape (4,), got shape ()")),
    ("x-np-scalar", lambda t: t.step(np.float64(1.0)), ValueError, esc("x: expected shape (4,), got shape ()")),
    ("x-ragged", lambda t: t.step([[1, 2], [3]]), ValueError, r"^x: "),
    (
        "target-short",
        lambda t: t.step(OK_X, np.zeros(1)),
        ValueError,
        esc("target: expected shape (2,), got shape (1,)"),
    ),
    (
        "target-long",
        lambda t: t.step(OK_X, np.zeros(3)),
        ValueError,
        esc("target: expected shape (2,), got shape (3,)"),
    ),
    (
        "target-2d",
        lambda t: t.step(OK_X, np.zeros((2, 1))),
        ValueError,
        esc("target: expected shape (2,), got shape (2, 1)"),
    ),
    ("target-scalar", lambda t: t.step(OK_X, 0.5), ValueError, esc("target: expected shape (2,), got shape ()")),
    (
        "inputs-width",
        lambda t: t.train_sequence(np.zeros((5, 3)), np.zeros((5, 2))),
        ValueError,
        esc("inputs: expected shape (T, 4), got shape (5, 3)"),
    ),
    (
        "inputs-rank1",
        lambda t: t.train_sequence(np.zeros(4), np.zeros((5, 2))),
        ValueError,
        esc("inputs: expected shape (T, 4), got shape (4,)"),
    ),
    (
        "inputs-rank3",
        lambda t: t.train_sequence(np.zeros((5, 4, 1)), np.zeros((5, 2))),
        ValueError,
        esc("inputs: expected shape (T, 4), got shape (5, 4, 1)"),
    ),
    (
        "targets-width",
        lambda t: t.train_sequence(np.zeros((5, 4)), np.zeros((5, 3))),
        ValueError,
        esc("targets: expected shape (5, 2), got shape (5, 3)"),
    ),
    (
        "targets-T-longer",
        lambda t: t.train_sequence(np.zeros((5, 4)), np.zeros((6, 2))),
        ValueError,
        esc("targets: expected shape (5, 2), got shape (6, 2)"),
    ),
    (
        "targets-T-shorter",
        lambda t: t.train_sequence(np.zeros((500, 4)), np.zeros((499, 2))),
        ValueError,
        esc("targets: expected shape (500, 2), got shape (499, 2)"),
    ),
    (
        "targets-rank1",
        lambda t: t.train_sequence(np.zeros((5, 4)), np.zeros(2)),
        ValueError,
        esc("targets: expected shape (5, 2), got shape (2,)"),
    ),
    (
        "T-zero",
        lambda t: t.train_sequence(np.zeros((0, 4)), np.zeros((0, 2))),
        ValueError,
        esc("inputs: expected shape (T, 4) with T >= 1, got shape (0, 4)"),
    ),
    (
        "predict-width",
        lambda t: t.predict_sequence(np.zeros((5, 3))),
        ValueError,
        esc("inputs: expected shape (T, 4), got shape (5, 3)"),
    ),
    (
        "predict-rank1",
        lambda t: t.predict_sequence(np.zeros(4)),
        ValueError,
        esc("inputs: expected shape (T, 4), got shape (4,)"),
    ),
    # non-finite values
    (
        "x-nan",
        lambda t: t.step([1.0, 2.0, np.nan, 4.0]),
        ValueError,
        esc("x: expected finite values, got NaN at index 2"),
    ),
    (
        "x-inf",
        lambda t: t.step([np.inf, 0, 0, 0], OK_Y),
        ValueError,
        esc("x: expected finite values, got inf at index 0"),
    ),
    (
        "x-neginf",
        lambda t: t.step([0, 0, 0, -np.inf]),
        ValueError,
        esc("x: expected finite values, got -inf at index 3"),
    ),
    (
        "target-nan",
        lambda t: t.step(OK_X, [0.0, np.nan]),
        ValueError,
        esc("target: expected finite values, got NaN at index 1"),
    ),
    (
        "target-inf",
        lambda t: t.step(OK_X, [-np.inf, 0.0]),
        ValueError,
        esc("target: expected finite values, got -inf at index 0"),
    ),
    (
        "inputs-nan-middle",
        lambda t: t.train_sequence(*long_seq(nan_at=(250, 1))),
        ValueError,
        esc("inputs: expected finite values, got NaN at index (250, 1)"),
    ),
    (
        "inputs-nan-last",
        lambda t: t.train_sequence(*long_seq(nan_at=(499, 3))),
        ValueError,
        esc("inputs: expected finite values, got NaN at index (499, 3)"),
    ),
    (
        "targets-inf-middle",
        lambda t: t.train_sequence(*long_seq(inf_at_target=(321, 0))),
        ValueError,
        esc("targets: expected finite values, got inf at index (321, 0)"),
    ),
    (
        "predict-nan-middle",
        lambda t: t.predict_sequence(long_seq(nan_at=(123, 2))[0]),
        ValueError,
        esc("inputs: expected finite values, got NaN at index (123, 2)"),
    ),
    (
        "inputs-nan-float32",
        lambda t: t.train_sequence(long_seq(nan_at=(7, 0))[0].astype(np.float32), long_seq()[1]),
        ValueError,
        esc("inputs: expected finite values, got NaN at index (7, 0)"),
    ),
    (
        "inputs-nan-strided",
        lambda t: t.train_sequence(np.repeat(long_seq(nan_at=(40, 2))[0], 2, axis=1)[:, ::2], long_seq()[1]),
        ValueError,
        esc("inputs: expected finite values, got NaN at index (40, 2)"),
    ),
    # non-numeric dtypes
    ("x-str", lambda t: t.step(["a", "b", "c", "d"]), TypeError, r"^x: expected a numeric array.*got dtype <U1"),
    ("x-str-scalar", lambda t: t.step("abcd"), TypeError, r"^x: expected a numeric array"),
    ("x-none-array", lambda t: t.step(np.array([None] * 4)), TypeError, r"^x: expected a numeric array.*object"),
    ("x-none", lambda t: t.step(None), TypeError, r"^x: expected a numeric array"),
    ("x-complex", lambda t: t.step(np.zeros(4, complex)), TypeError, r"^x: .*complex128"),
    ("x-datetime", lambda t: t.step(np.zeros(4, "M8[s]")), TypeError, r"^x: .*datetime64"),
    ("x-bytes", lambda t: t.step(np.array([b"a"] * 4)), TypeError, r"^x: expected a numeric array"),
    ("target-str", lambda t: t.step(OK_X, ["a", "b"]), TypeError, r"^target: expected a numeric array"),
    ("target-none-array", lambda t: t.step(OK_X, np.array([None, None])), TypeError, r"^target: .*object"),
    (
        "inputs-str",
        lambda t: t.train_sequence(np.full((5, 4), "x"), np.zeros((5, 2))),
        TypeError,
        r"^inputs: expected a numeric array",
    ),
    (
        "inputs-none",
        lambda t: t.train_sequence(np.full((5, 4), None), np.zeros((5, 2))),
        TypeError,
        r"^inputs: .*object",
    ),
    (
        "targets-none",
        lambda t: t.train_sequence(np.zeros((5, 4)), np.full((5, 2), None)),
        TypeError,
        r"^targets: .*object",
    ),
    ("predict-str", lambda t: t.predict_sequence(np.full((5, 4), "x")), TypeError, r"^inputs: "),
    ("step-no-args", lambda t: t.step(), TypeError, None),
    ("train-one-arg", lambda t: t.train_sequence(np.zeros((5, 4))), TypeError, None),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in COMMON_CASES], ids=[c[0] for c in COMMON_CASES])
def test_eprop_rejects(call, exc, match):
    rejects(warm_eprop(), call, exc, match)


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in COMMON_CASES], ids=[c[0] for c in COMMON_CASES])
def test_online_rejects(call, exc, match):
    rejects(warm_online(), call, exc, match)


# --------------------------------------------------------------------------- weights


def with_value(shape, index, value, base=0.5):
    a = np.full(shape, base)
    a[index] = value
    return a


EPROP_WEIGHT_CASES = [
    ("W_in", np.zeros((4, 16)), ValueError, esc("W_in: expected shape (16, 4), got shape (4, 16)")),
    ("W_in", np.zeros(64), ValueError, esc("W_in: expected shape (16, 4), got shape (64,)")),
    ("W_in", np.zeros((16, 4, 1)), ValueError, esc("W_in: expected shape (16, 4), got shape (16, 4, 1)")),
    ("W_rec", np.zeros((16, 15)), ValueError, esc("W_rec: expected shape (16, 16), got shape (16, 15)")),
    ("W_rec", np.zeros((15, 16)), ValueError, esc("W_rec: expected shape (16, 16), got shape (15, 16)")),
    ("W_out", np.zeros((16, 2)), ValueError, esc("W_out: expected shape (2, 16), got shape (16, 2)")),
    ("W_out", 0.0, ValueError, esc("W_out: expected shape (2, 16), got shape ()")),
    ("W_in", np.full((16, 4), np.nan), ValueError, esc("W_in: expected finite values, got NaN at index (0, 0)")),
    (
        "W_in",
        with_value((16, 4), (15, 3), np.nan),
        ValueError,
        esc("W_in: expected finite values, got NaN at index (15, 3)"),
    ),
    (
        "W_rec",
        with_value((16, 16), (2, 7), np.inf),
        ValueError,
        esc("W_rec: expected finite values, got inf at index (2, 7)"),
    ),
    # a NaN on the diagonal is still rejected, although the diagonal would be zeroed
    (
        "W_rec",
        with_value((16, 16), (5, 5), np.nan),
        ValueError,
        esc("W_rec: expected finite values, got NaN at index (5, 5)"),
    ),
    (
        "W_out",
        with_value((2, 16), (1, 3), -np.inf),
        ValueError,
        esc("W_out: expected finite values, got -inf at index (1, 3)"),
    ),
    ("W_rec", None, TypeError, r"^W_rec: expected a numeric array"),
    ("W_out", "abc", TypeError, r"^W_out: expected a numeric array"),
    ("W_in", np.full((16, 4), None), TypeError, r"^W_in: .*object"),
    ("W_in", np.full((16, 4), "1.0"), TypeError, r"^W_in: expected a numeric array"),
]


@pytest.mark.parametrize("name,value,exc,match", EPROP_WEIGHT_CASES)
def test_eprop_rejects_weights(name, value, exc, match):
    rejects(warm_eprop(), lambda t: setattr(t, name, value), exc, match)


LAYER_WEIGHT_CASES = [
    (np.zeros((4, 16)), ValueError, esc("W: expected shape (16, 4), got shape (4, 16)")),
    (np.zeros(64), ValueError, esc("W: expected shape (16, 4), got shape (64,)")),
    (with_value((16, 4), (3, 1), np.nan), ValueError, esc("W: expected finite values, got NaN at index (3, 1)")),
    (with_value((16, 4), (0, 0), np.inf), ValueError, esc("W: expected finite values, got inf at index (0, 0)")),
    (np.full((16, 4), None), TypeError, r"^W: .*object"),
    ("W", TypeError, r"^W: expected a numeric array"),
]


@pytest.mark.parametrize("value,exc,match", LAYER_WEIGHT_CASES)
def test_layer_rejects_weights(value, exc, match):
    rejects(warm_layer(), lambda l: setattr(l, "W", value), exc, match)


@pytest.mark.parametrize("value,exc,match", LAYER_WEIGHT_CASES)
def test_trainer_layer_rejects_weights(value, exc, match):
    t = warm_online()
    rejects(t, lambda t: setattr(t.layers[0], "W", value), exc, match)
    second = [
        (np.zeros((16, 2)), ValueError, esc("W: expected shape (2, 16), got shape (16, 2)")),
        (with_value((2, 16), (1, 15), np.nan), ValueError, esc("W: expected finite values, got NaN at index (1, 15)")),
    ]
    for v, e, m in second:
        rejects(t, lambda t, v=v: setattr(t.layers[1], "W", v), e, m)


# --------------------------------------------------------------------------- OnlineLIFLayer calls

LAYER_CASES = [
    ("x-short", lambda l: l.step(np.zeros(3)), ValueError, esc("x: expected shape (4,), got shape (3,)")),
    ("x-2d", lambda l: l.step(np.zeros((4, 1))), ValueError, esc("x: expected shape (4,), got shape (4, 1)")),
    ("x-nan", lambda l: l.step([0, np.nan, 0, 0]), ValueError, esc("x: expected finite values, got NaN at index 1")),
    ("x-inf", lambda l: l.step([0, 0, 0, np.inf]), ValueError, esc("x: expected finite values, got inf at index 3")),
    ("x-str", lambda l: l.step(["a"] * 4), TypeError, r"^x: expected a numeric array"),
    ("x-none", lambda l: l.step(np.array([None] * 4)), TypeError, r"^x: .*object"),
    (
        "signal-short",
        lambda l: l.apply_learning_signal(np.zeros(15)),
        ValueError,
        esc("signal: expected shape (16,), got shape (15,)"),
    ),
    (
        "signal-inputs-sized",
        lambda l: l.apply_learning_signal(np.zeros(4)),
        ValueError,
        esc("signal: expected shape (16,), got shape (4,)"),
    ),
    (
        "signal-2d",
        lambda l: l.apply_learning_signal(np.zeros((16, 1))),
        ValueError,
        esc("signal: expected shape (16,), got shape (16, 1)"),
    ),
    (
        "signal-scalar",
        lambda l: l.apply_learning_signal(1.0),
        ValueError,
        esc("signal: expected shape (16,), got shape ()"),
    ),
    (
        "signal-nan",
        lambda l: l.apply_learning_signal(with_value(16, 9, np.nan)),
        ValueError,
        esc("signal: expected finite values, got NaN at index 9"),
    ),
    (
        "signal-inf",
        lambda l: l.apply_learning_signal(with_value(16, 0, -np.inf)),
        ValueError,
        esc("signal: expected finite values, got -inf at index 0"),
    ),
    ("signal-str", lambda l: l.apply_learning_signal(["s"] * 16), TypeError, r"^signal: expected a numeric array"),
    ("signal-none", lambda l: l.apply_learning_signal(None), TypeError, r"^signal: expected a numeric array"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_layer_rejects(call, exc, match):
    rejects(warm_layer(), call, exc, match)


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_trainer_layer_view_rejects(call, exc, match):
    t = warm_online()
    rejects(t, lambda t: call(t.layers[0]), exc, match)


# --------------------------------------------------------------------------- hyperparameter setters

BAD_HYPER = [
    ("lr", -1, esc("lr: expected a finite value >= 0, got -1")),
    ("lr", math.nan, esc("lr: expected a finite value >= 0, got NaN")),
    ("lr", math.inf, esc("lr: expected a finite value >= 0, got inf")),
    ("tau_mem", 0, esc("tau_mem: expected a finite value > 0, got 0")),
    ("tau_mem", -20.0, esc("tau_mem: expected a finite value > 0, got -20")),
    ("tau_mem", math.nan, esc("tau_mem: expected a finite value > 0, got NaN")),
    ("tau_mem", math.inf, esc("tau_mem: expected a finite value > 0, got inf")),
    ("threshold", 0.0, esc("threshold: expected a finite value > 0, got 0")),
    ("threshold", -0.5, esc("threshold: expected a finite value > 0, got -0.5")),
    ("threshold", math.nan, esc("threshold: expected a finite value > 0, got NaN")),
    ("dt", 0, esc("dt: expected a finite value > 0, got 0")),
    ("dt", -1.0, esc("dt: expected a finite value > 0, got -1")),
    ("dt", -math.inf, esc("dt: expected a finite value > 0, got -inf")),
]
EPROP_ONLY_HYPER = [
    ("tau_trace", 0, esc("tau_trace: expected a finite value > 0, got 0")),
    ("tau_trace", -3.0, esc("tau_trace: expected a finite value > 0, got -3")),
    ("tau_trace", math.nan, esc("tau_trace: expected a finite value > 0, got NaN")),
]


@pytest.mark.parametrize("name,value,match", BAD_HYPER + EPROP_ONLY_HYPER)
def test_eprop_rejects_hyperparameter(name, value, match):
    t = warm_eprop()
    rejects(t, lambda t: setattr(t, name, value), ValueError, match)
    # and the trainer still works with its old value
    t.step(OK_X, OK_Y)


@pytest.mark.parametrize("value", [-1e-12, -2.5e-7, -1.0e10, -123.456])
@pytest.mark.parametrize("name", ["lr", "tau_mem", "threshold", "dt"])
def test_hyperparameter_message_holds_the_value(name, value):
    """The message gives the rejected value (in whatever float notation): the
    text after 'got ' parses back to it."""
    t = warm_eprop()
    info = rejects(t, lambda t: setattr(t, name, value), ValueError, rf"^{name}: expected a finite value")
    got = str(info.value).rsplit("got ", 1)[1]
    assert float(got) == value


@pytest.mark.parametrize("name,value,match", BAD_HYPER)
def test_layer_rejects_hyperparameter(name, value, match):
    rejects(warm_layer(), lambda l: setattr(l, name, value), ValueError, match)
    t = warm_online()
    rejects(t, lambda t: setattr(t.layers[-1], name, value), ValueError, match)


@pytest.mark.parametrize("name,value", [("lr", -1), ("tau_mem", 0), ("threshold", math.nan)])
def test_online_trainer_hyperparameter_assignment_rejected(name, value):
    """OnlineTrainer's own hyperparameters are fixed after construction (its
    layers' are settable): assigning one raises and changes nothing."""
    rejects(warm_online(), lambda t: setattr(t, name, value), (ValueError, AttributeError))


@pytest.mark.parametrize("value", ["x", None, [0.1], np.array([0.1, 0.2]), object()])
@pytest.mark.parametrize("name", ["lr", "tau_mem", "tau_trace", "threshold", "dt"])
def test_eprop_rejects_non_numeric_hyperparameter(name, value):
    rejects(warm_eprop(), lambda t: setattr(t, name, value), TypeError)


@pytest.mark.parametrize("name", ["lr", "tau_mem", "threshold", "dt"])
def test_setter_type_error_names_the_attribute(name):
    t = eprop.EpropTrainer(2, 3, 1)
    layer = eprop.OnlineLIFLayer(2, 3)
    for obj in (t, layer):
        with pytest.raises(TypeError) as info:
            setattr(obj, name, "x")
        text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
        assert name in text, f"TypeError for {name} = 'x' does not name it: {text!r}"


@pytest.mark.parametrize(
    "name", ["W_in", "W_rec", "W_out", "_v", "_spikes", "_trace_in", "n_inputs", "memory_per_step"]
)
def test_eprop_cannot_delete_or_set_read_only(name):
    t = warm_eprop()
    before = snapshot(t)
    with pytest.raises((AttributeError, TypeError)):
        delattr(t, name)
    if name.startswith("_") or name in ("n_inputs", "memory_per_step"):
        with pytest.raises(AttributeError):
            setattr(t, name, np.zeros(3))
    assert_unchanged(before, t)


def test_unknown_attribute_rejected():
    t = warm_eprop()
    before = snapshot(t)
    with pytest.raises(AttributeError):
        t.learning_rate = 0.5
    assert_unchanged(before, t)


# --------------------------------------------------------------------------- constructors

CTOR_CASES = [
    (lambda: eprop.EpropTrainer(0, 16, 2), ValueError, esc("n_inputs: expected an integer >= 1, got 0")),
    (lambda: eprop.EpropTrainer(-3, 16, 2), ValueError, esc("n_inputs: expected an integer >= 1, got -3")),
    (lambda: eprop.EpropTrainer(4, 0, 2), ValueError, esc("n_neurons: expected an integer >= 1, got 0")),
    (lambda: eprop.EpropTrainer(4, -3, 2), ValueError, esc("n_neurons: expected an integer >= 1, got -3")),
    (lambda: eprop.EpropTrainer(4, 16, 0), ValueError, esc("n_outputs: expected an integer >= 1, got 0")),
    (lambda: eprop.EpropTrainer(4, 16, -3), ValueError, esc("n_outputs: expected an integer >= 1, got -3")),
    (lambda: eprop.EpropTrainer(4, 16, 2, tau_mem=0), ValueError, esc("tau_mem: expected a finite value > 0, got 0")),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, tau_mem=-1.0),
        ValueError,
        esc("tau_mem: expected a finite value > 0, got -1"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, tau_mem=math.nan),
        ValueError,
        esc("tau_mem: expected a finite value > 0, got NaN"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, tau_mem=math.inf),
        ValueError,
        esc("tau_mem: expected a finite value > 0, got inf"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, tau_trace=0.0),
        ValueError,
        esc("tau_trace: expected a finite value > 0, got 0"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, tau_trace=-5),
        ValueError,
        esc("tau_trace: expected a finite value > 0, got -5"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, 20.0, math.nan),
        ValueError,
        esc("tau_trace: expected a finite value > 0, got NaN"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, threshold=0),
        ValueError,
        esc("threshold: expected a finite value > 0, got 0"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, threshold=-1),
        ValueError,
        esc("threshold: expected a finite value > 0, got -1"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, threshold=math.nan),
        ValueError,
        esc("threshold: expected a finite value > 0, got NaN"),
    ),
    (lambda: eprop.EpropTrainer(4, 16, 2, lr=-0.01), ValueError, esc("lr: expected a finite value >= 0, got -0.01")),
    (lambda: eprop.EpropTrainer(4, 16, 2, lr=math.nan), ValueError, esc("lr: expected a finite value >= 0, got NaN")),
    (lambda: eprop.EpropTrainer(4, 16, 2, lr=math.inf), ValueError, esc("lr: expected a finite value >= 0, got inf")),
    (lambda: eprop.EpropTrainer(4, 16, 2, dt=0), ValueError, esc("dt: expected a finite value > 0, got 0")),
    (lambda: eprop.EpropTrainer(4, 16, 2, dt=-0.5), ValueError, esc("dt: expected a finite value > 0, got -0.5")),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, 20.0, 20.0, 1.0, 0.01, math.nan),
        ValueError,
        esc("dt: expected a finite value > 0, got NaN"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, seed=-1),
        ValueError,
        esc("seed: expected an integer in [0, 2**32 - 1], got -1"),
    ),
    (
        lambda: eprop.EpropTrainer(4, 16, 2, seed=2**32),
        ValueError,
        esc("seed: expected an integer in [0, 2**32 - 1], got 4294967296"),
    ),
    (lambda: eprop.OnlineTrainer([3]), ValueError, r"^layer_sizes: expected at least 2 sizes.*got 1 size"),
    (lambda: eprop.OnlineTrainer([]), ValueError, r"^layer_sizes: expected at least 2 sizes.*got 0 size"),
    (lambda: eprop.OnlineTrainer([0, 3]), ValueError, esc("layer_sizes[0]: expected an integer >= 1, got 0")),
    (lambda: eprop.OnlineTrainer([3, 0, 2]), ValueError, esc("layer_sizes[1]: expected an integer >= 1, got 0")),
    (lambda: eprop.OnlineTrainer([3, 4, -3]), ValueError, esc("layer_sizes[2]: expected an integer >= 1, got -3")),
    (lambda: eprop.OnlineTrainer([3, 2], tau_mem=0), ValueError, esc("tau_mem: expected a finite value > 0, got 0")),
    (
        lambda: eprop.OnlineTrainer([3, 2], tau_mem=math.nan),
        ValueError,
        esc("tau_mem: expected a finite value > 0, got NaN"),
    ),
    (
        lambda: eprop.OnlineTrainer([3, 2], threshold=-1.0),
        ValueError,
        esc("threshold: expected a finite value > 0, got -1"),
    ),
    (lambda: eprop.OnlineTrainer([3, 2], lr=-1), ValueError, esc("lr: expected a finite value >= 0, got -1")),
    (lambda: eprop.OnlineTrainer([3, 2], lr=math.nan), ValueError, esc("lr: expected a finite value >= 0, got NaN")),
    (
        lambda: eprop.OnlineTrainer([3, 2], seed=-1),
        ValueError,
        esc("seed: expected an integer in [0, 2**32 - 1], got -1"),
    ),
    (lambda: eprop.OnlineLIFLayer(0, 3), ValueError, esc("n_inputs: expected an integer >= 1, got 0")),
    (lambda: eprop.OnlineLIFLayer(3, -3), ValueError, esc("n_neurons: expected an integer >= 1, got -3")),
    (lambda: eprop.OnlineLIFLayer(3, 2, tau_mem=-1), ValueError, esc("tau_mem: expected a finite value > 0, got -1")),
    (lambda: eprop.OnlineLIFLayer(3, 2, threshold=0), ValueError, esc("threshold: expected a finite value > 0, got 0")),
    (lambda: eprop.OnlineLIFLayer(3, 2, lr=-0.5), ValueError, esc("lr: expected a finite value >= 0, got -0.5")),
    (lambda: eprop.OnlineLIFLayer(3, 2, dt=0), ValueError, esc("dt: expected a finite value > 0, got 0")),
    (lambda: eprop.OnlineLIFLayer(3, 2, dt=math.nan), ValueError, esc("dt: expected a finite value > 0, got NaN")),
    (
        lambda: eprop.OnlineLIFLayer(3, 2, seed=-1),
        ValueError,
        esc("seed: expected an integer in [0, 2**32 - 1], got -1"),
    ),
    # wrong types
    (lambda: eprop.EpropTrainer("4", 16, 2), TypeError, None),
    (lambda: eprop.EpropTrainer(4.5, 16, 2), TypeError, None),
    (lambda: eprop.EpropTrainer(4, 16, None), TypeError, None),
    (lambda: eprop.EpropTrainer(4, 16, 2, tau_mem="x"), TypeError, None),
    (lambda: eprop.EpropTrainer(4, 16, 2, seed=1.5), TypeError, None),
    (lambda: eprop.EpropTrainer(4, 16), TypeError, None),
    (lambda: eprop.EpropTrainer(4, 16, 2, bogus=1), TypeError, None),
    (lambda: eprop.OnlineTrainer(5), TypeError, None),
    (lambda: eprop.OnlineTrainer(["a", 2]), TypeError, None),
    (lambda: eprop.OnlineTrainer([3.5, 2]), TypeError, None),
    (lambda: eprop.OnlineLIFLayer(3, "2"), TypeError, None),
]


@pytest.mark.parametrize("make,exc,match", CTOR_CASES)
def test_constructor_rejects(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def run_isolated(expr):
    """Evaluates ``expr`` (building a trainer) in a child interpreter whose
    address space is limited to 4 GB, so that nothing big is really allocated
    and a crash cannot take the test session down. Returns (returncode, stdout,
    stderr); stdout says ``raised <Type>`` or ``constructed``."""
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
        import eprop
        try:
            {expr}
        except Exception as e:
            print("raised", type(e).__name__, e)
        except BaseException as e:
            print("BASE", type(e).__module__ + "." + type(e).__name__, e)
        else:
            print("constructed")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize(
    "expr",
    [
        "eprop.EpropTrainer(2**62, 2**62, 1)",
        "eprop.EpropTrainer(1, 2**40, 1)",
        "eprop.EpropTrainer(100000, 100000, 1)",
        "eprop.OnlineTrainer([2**40, 2**40])",
        "eprop.OnlineTrainer([2, 2**33, 2])",
        "eprop.OnlineLIFLayer(2**31, 2**31)",
        "eprop.OnlineLIFLayer(100000, 100000)",
    ],
)
def test_impossible_sizes_raise_an_exception(expr):
    """Sizes whose arrays cannot exist (or not in 4 GB) are bad input too: for
    the oracle NumPy raises MemoryError or ValueError. The call must raise
    ValueError or MemoryError (OverflowError accepted); neither a pyo3
    PanicException (a BaseException) nor an abort of the interpreter."""
    rc, out, err = run_isolated(expr)
    assert rc == 0, f"interpreter died with return code {rc}: {err.strip().splitlines()[:1]}"
    assert re.match(r"raised (ValueError|MemoryError|OverflowError)", out), out.strip()


def test_huge_python_ints_are_rejected_cleanly():
    for make in (
        lambda: eprop.EpropTrainer(2**70, 2, 1),
        lambda: eprop.EpropTrainer(2, 2, 1, seed=2**200),
        lambda: eprop.OnlineTrainer([2, 2**70]),
    ):
        with pytest.raises((ValueError, OverflowError)):
            make()


# --------------------------------------------------------------------------- hypothesis


def call_checked(trainer, call, check_success):
    before = snapshot(trainer)
    try:
        result = call()
    except (ValueError, TypeError) as e:
        if NOT_UNDONE not in str(e):  # a step that overflowed is not undone (documented)
            assert_unchanged(before, trainer)
        return
    except BaseException as e:  # noqa: BLE001 - anything else is the failure we look for
        if isinstance(e, KeyboardInterrupt):
            raise
        pytest.fail(f"raised {type(e).__module__}.{type(e).__name__}: {e}")
    # a check either asserts itself (returns None) or returns whether it holds
    verdict = check_success(result)
    assert verdict is None or verdict is True, f"unexpected result {result!r}"


def step_ok(n_rec, n_out, with_loss, spikes_key=True):
    def check(r):
        assert isinstance(r, dict)
        if spikes_key:
            assert r["spikes"].shape == (n_rec,)
        assert r["output"].shape == (n_out,)
        assert ("loss" in r) == with_loss
        if with_loss:
            assert isinstance(r["loss"], float)

    return check


settings_ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings_
@given(data=st.data())
def test_hypothesis_eprop_step_and_train(data):
    t = eprop.EpropTrainer(3, 5, 2)
    x = data.draw(hostile_arrays((3,)), label="x")
    y = data.draw(st.one_of(st.none(), hostile_arrays((2,))), label="target")
    call_checked(t, lambda: t.step(x) if y is None else t.step(x, y), step_ok(5, 2, y is not None))
    T = data.draw(st.integers(0, 4), label="T")
    X = data.draw(hostile_arrays((T, 3)), label="inputs")
    Y = data.draw(hostile_arrays((T, 2)), label="targets")
    call_checked(t, lambda: t.train_sequence(X, Y), lambda loss: isinstance(loss, float))
    call_checked(t, lambda: t.predict_sequence(X), lambda p: p.shape == (np.asarray(X).shape[0], 2))
    W = data.draw(hostile_arrays((5, 3)), label="W_in")
    call_checked(t, lambda: setattr(t, "W_in", W), lambda r: None)


@settings_
@given(data=st.data())
def test_hypothesis_online_step_and_train(data):
    t = eprop.OnlineTrainer([3, 5, 2])
    x = data.draw(hostile_arrays((3,)), label="x")
    y = data.draw(st.one_of(st.none(), hostile_arrays((2,))), label="target")
    call_checked(t, lambda: t.step(x) if y is None else t.step(x, y), step_ok(5, 2, y is not None, spikes_key=False))
    T = data.draw(st.integers(0, 4), label="T")
    X = data.draw(hostile_arrays((T, 3)), label="inputs")
    Y = data.draw(hostile_arrays((T, 2)), label="targets")
    call_checked(t, lambda: t.train_sequence(X, Y), lambda loss: isinstance(loss, float))
    call_checked(t, lambda: t.predict_sequence(X), lambda p: p.shape == (np.asarray(X).shape[0], 2))
    s = data.draw(hostile_arrays((5,)), label="signal")
    call_checked(t, lambda: t.layers[0].apply_learning_signal(s), lambda r: r is None)
    z = data.draw(hostile_arrays((3,)), label="layer x")
    call_checked(t, lambda: t.layers[0].step(z), lambda r: r.shape == (5,))


@settings(max_examples=150, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.sampled_from([None, "1.0", [1.0], True]),
    ),
    name=st.sampled_from(["lr", "tau_mem", "tau_trace", "threshold", "dt"]),
)
def test_hypothesis_hyperparameter_setters(value, name):
    t = warm_eprop()
    before = snapshot(t)
    try:
        setattr(t, name, value)
    except (ValueError, TypeError, OverflowError):
        assert_unchanged(before, t)
        return
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"raised {type(e).__module__}.{type(e).__name__}: {e}")
    v = float(value)
    assert math.isfinite(v) and (v >= 0 if name == "lr" else v > 0)
    assert getattr(t, name) == v


# --------------------------------------------------------------------------- what test_fuzz.py found


def _nets():
    return [
        eprop.EpropTrainer(3, 6, 2),
        eprop.OnlineTrainer([3, 6, 2], threshold=0.3),
        eprop.RecurrentNetwork(3, 6, 2),
        eprop.RecurrentNetwork(3, [6, 4], 2, n_adaptive=[2, 1], kernel="event", dtype="float32"),
    ]


@pytest.mark.parametrize("k", range(4))
def test_an_overflowing_sequence_call_is_undone(k):
    """Finite targets whose squared error overflows: the call is refused
    naming its data and the state is bitwise as before; a stream chunk too."""
    t = _nets()[k]
    x = (np.random.default_rng(0).random((20, 3)) < 0.5) * 2.0
    t.train_sequence(x, np.zeros((20, 2)), reset=False)  # mid-sequence, non-zero state
    big = np.full((20, 2), 1e300 if t.dtype == "float64" else 3e38)
    for call in (
        lambda t: t.train_sequence(x, big, reset=False),
        lambda t: t.train_batch(np.stack([x, x]), np.stack([big, big])),
        lambda t: t.train_stream([(x, big)], reset=False),
    ):
        # the state dict and everything else bitwise as before (memory_bytes may
        # drop by a few bytes of step-buffer capacity: documented)
        before = (state_bits(t), repr(t))
        with pytest.raises(ValueError, match=r"^(chunks\[0\] )?inputs, (chunks\[0\] )?targets: .*undone"):
            call(t)
        assert (state_bits(t), repr(t)) == before
    # and it still trains afterwards
    assert math.isfinite(t.train_sequence(x, np.zeros((20, 2))))


def test_an_overflowing_step_says_it_was_not_undone_and_the_next_call_refuses():
    t = eprop.RecurrentNetwork(3, 6, 2)
    with pytest.raises(ValueError, match=re.escape(NOT_UNDONE)):
        t.step(np.ones(3), np.full(2, 1e300))
    # inputs of 1e308 leave infinity in the membrane without touching the output:
    # the steps return, and the next sequence call refuses to run on that state
    t = eprop.EpropTrainer(3, 6, 2, lr=1.0)
    for _ in range(3):
        t.step(np.full(3, 1e308), np.zeros(2))
    assert not np.isfinite(t._v).all()
    before = state_bits(t)
    with pytest.raises(ValueError, match=r"^state: expected a finite state to run on, got _v holding infinity"):
        t.train_sequence(np.ones((3, 3)), np.zeros((3, 2)), reset=False)
    assert state_bits(t) == before
    t.reset()
    t.load_state_dict(eprop.EpropTrainer(3, 6, 2).state_dict())
    assert math.isfinite(t.train_sequence(np.ones((3, 3)), np.zeros((3, 2))))


@pytest.mark.parametrize("value", [2**70, -(2**70), 0, 1025])
def test_huge_thread_counts_and_batch_sizes_are_value_errors(value):
    t = eprop.RecurrentNetwork(3, 6, 2)
    x, y = np.zeros((1, 4, 3)), np.zeros((1, 4, 2))
    rejects(
        t,
        lambda t: t.train_batch(x, y, n_threads=value),
        ValueError,
        r"^n_threads: expected None or an integer in \[1, 1024\]",
    )
    if value <= 0 or value > 2**63:
        rejects(t, lambda t: t.batch_memory_bytes(value), ValueError, r"^batch_size: ")


def test_memory_errors_name_the_sizes():
    with pytest.raises(MemoryError, match=r"EpropTrainer\(n_inputs=1, n_neurons=4294967296, n_outputs=1\)"):
        eprop.EpropTrainer(1, 2**32, 1)
    with pytest.raises(MemoryError, match=r"RecurrentNetwork\(n_inputs=1, n_neurons=\[2, 4294967296\], n_outputs=1\)"):
        eprop.RecurrentNetwork(1, [2, 2**32], 1)


def test_save_paths(tmp_path):
    t = eprop.EpropTrainer(2, 3, 1)
    with pytest.raises(TypeError, match=r"^path: expected a str, bytes or os.PathLike object, got int"):
        t.save(12)
    with pytest.raises(ValueError, match=r"^path: .*NUL"):
        t.save(str(tmp_path / "a\x00b.npz"))
    raw = bytes(tmp_path) + b"/\xff-not-utf8.npz"  # a byte name is used as given
    t.save(raw)
    assert os.path.exists(raw)
    assert state_bits(eprop.EpropTrainer.load(raw)) == state_bits(t)


def test_state_entries_are_named_as_entries():
    d = eprop.OnlineLIFLayer(2, 3, dtype="float32").state_dict()
    d["lr"] = 1e308
    with pytest.raises(ValueError, match=re.escape("state_dict['lr']")):
        eprop.OnlineLIFLayer(2, 3, dtype="float32").load_state_dict(d)
    d = eprop.EpropTrainer(2, 3, 1).state_dict()
    d["dtype"] = "x"
    with pytest.raises(ValueError, match=re.escape("state_dict['dtype']")):
        eprop.EpropTrainer.from_state_dict(d)


def test_predict_stream_names_the_bad_chunk():
    t = eprop.EpropTrainer(2, 3, 1)
    out = t.predict_stream([np.zeros((3, 2)), np.full((2, 2), np.nan)])
    next(out)
    with pytest.raises(ValueError, match=r"^chunks\[1\] inputs: expected finite values"):
        next(out)


@pytest.mark.parametrize("make", [lambda: eprop.EpropTrainer(3, 6, 2), lambda: eprop.RecurrentNetwork(3, 6, 2)])
def test_a_huge_lr_is_refused_by_the_call_that_overflows(make):
    """lr = 1e300 is a finite hyperparameter; the training call whose update
    overflows is undone and refused (the first for EpropTrainer, which learns at
    every step; the second for RecurrentNetwork, whose first update is finite)."""
    t = make()
    t.lr = 1e300
    x = (np.random.default_rng(0).random((50, 3)) < 0.5) * 2.0
    y = np.random.default_rng(1).random((50, 2))
    for _ in range(3):
        before = state_bits(t)
        try:
            assert math.isfinite(t.train_sequence(x, y))
        except ValueError as e:
            assert "undone" in str(e) and state_bits(t) == before
            break
    else:
        pytest.fail("lr = 1e300 trained three sequences without overflowing")


@pytest.mark.parametrize("cls", [eprop.OnlineLIFLayer, eprop.EpropTrainer, eprop.RecurrentNetwork])
def test_a_state_asking_for_impossible_sizes_names_the_state(cls):
    """A damaged state (or file) whose sizes cannot be allocated: MemoryError
    naming state_dict (found by the fuzzer: it named only the class)."""
    small = {eprop.OnlineLIFLayer: (2, 3), eprop.EpropTrainer: (2, 3, 1), eprop.RecurrentNetwork: (2, 3, 1)}[cls]
    d = cls(*small).state_dict()
    d["n_neurons"] = 2**45
    with pytest.raises(MemoryError, match=r"^state_dict: "):
        cls.from_state_dict(d)
