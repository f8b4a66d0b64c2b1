"""The public classes: each is its native class (``eprop._core``, which holds
the trainer and runs every method in Rust) plus what this module adds once for
all: the dataclass-style constructor from its configuration class, ``config``,
``repr``, ``from_config``, ``from_state_dict``, ``load`` and pickling.

The hot methods (``step``, ``train_sequence``, ...) are the native ones,
inherited: calling them runs no Python code.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from eprop import _core
from eprop._config import EpropTrainerConfig, OnlineLIFLayerConfig, OnlineTrainerConfig, RecurrentNetworkConfig
from eprop._progress import Progress


def _same(given: Any, current: Any) -> bool:
    """Whether a value as given still is the current one (so that it is shown
    as given: ``tau_mem=10`` stays ``10``)."""
    if isinstance(current, float) and isinstance(given, (int, float)) and not isinstance(given, bool):
        return struct.pack("<d", float(given)) == struct.pack("<d", current)
    if isinstance(given, (list, tuple)) and isinstance(current, list):
        return list(given) == current
    return type(given) is type(current) and given == current


class _Public:
    """What every public class adds to its native class."""

    __slots__ = ()
    _given: Any
    Config: ClassVar[Any]
    _native: ClassVar[Any]
    #: repr shows the current values (True) or the values as given while they hold
    _REPR_CURRENT: ClassVar[bool] = False
    #: fields left out of the repr when they have these values
    _REPR_DEFAULTS: ClassVar[dict[str, Any]] = {"seed": 42, "kernel": "dense", "dtype": "float64"}
    #: fields never in the repr
    _REPR_OMIT: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.from_config(cls.Config(*args, **kwargs))

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """A new instance from a configuration (e.g. ``dataclasses.replace`` of
        another's ``config``)."""
        if not isinstance(config, cls.Config):
            raise TypeError(f"config: expected a {cls.Config.__name__}, got {type(config).__name__}")
        obj = cls._native.__new__(cls, config)
        object.__setattr__(obj, "_given", config)
        return obj

    @property
    def config(self) -> Any:
        """The hyperparameters now (a frozen dataclass; values changed since
        construction, e.g. ``lr`` or by ``load_state_dict``, included)."""
        given = self._given
        changes = {}
        for f in dataclasses.fields(given):
            g, cur = getattr(given, f.name), getattr(self, f.name)
            if not _same(g, cur):
                changes[f.name] = cur
        return dataclasses.replace(given, **changes) if changes else given

    def __repr__(self) -> str:
        source = self if self._REPR_CURRENT else self.config
        parts = []
        for f in dataclasses.fields(self.Config):
            if f.name in self._REPR_OMIT:
                continue
            v = getattr(source, f.name)
            if f.name in self._REPR_DEFAULTS and v == self._REPR_DEFAULTS[f.name]:
                continue
            parts.append(f"{f.name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        """A new instance from a ``state_dict()`` (checked before anything is built)."""
        config = cls._native._config_of_state(state)
        try:
            obj = cls.from_config(cls.Config(**config))
        except (ValueError, TypeError, MemoryError) as e:
            # the configuration came from the state: say so ("state_dict: dt: expected ...",
            # or sizes too large to allocate from a damaged file)
            raise type(e)(f"state_dict: {e}") from None
        obj.load_state_dict(state)
        return obj

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Read a checkpoint file written by ``save`` (no pickle, no code runs)."""
        return cls.from_state_dict(_core.read_checkpoint(path))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_state_dict, (self.state_dict(),))  # type: ignore[attr-defined]


class _Streams:
    """Streams of chunks, for the classes that train on sequences. Each chunk
    runs natively (``_train_chunk``, GIL released); only the loop over the
    chunks is Python."""

    __slots__ = ()

    def train_stream(self, chunks: Iterable[Any], *, reset: bool = True, progress: bool = False) -> float:
        """Train on a stream of ``(inputs, targets)`` or ``(inputs, targets,
        mask)`` chunks (any iterable; chunk k has t_k >= 1 rows); returns the
        mean loss over all counted steps. Bitwise the same as one
        ``train_sequence`` on the concatenation (one sequence: an update per
        sequence happens at the stream's end). Each chunk is checked before it
        is used: on a bad chunk a ValueError is raised and the trainer keeps the
        state it had after the last complete chunk. Memory does not grow with
        the stream's length. ``progress=True`` shows steps, steps/s and the
        running mean loss on stderr: a tqdm bar on a terminal (with an ETA
        when ``chunks`` is a list or tuple), plain lines every 10 s otherwise. Other threads may use the trainer between
        chunks."""
        total, counted, steps = 0.0, 0, 0
        bar = Progress("train_stream", _total_steps(chunks)) if progress else None
        try:
            for k, item in enumerate(chunks):
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise ValueError(
                        f"chunks[{k}]: expected an (inputs, targets) or (inputs, targets, mask) tuple, "
                        f"got {type(item).__name__}"
                    )
                mask = item[2] if len(item) == 3 else None
                args = (item[0], item[1], mask, f"chunks[{k}] ", k == 0, reset, total, counted)
                total, counted, t = self._train_chunk(*args)  # type: ignore[attr-defined]
                steps += t
                if bar is not None:
                    bar.update(t, total / max(counted, 1))
            if steps == 0:
                raise ValueError("chunks: expected at least one chunk, got an empty iterable")
            self._end_of_call()  # type: ignore[attr-defined]
        finally:
            if bar is not None:
                bar.close()
        return total / max(counted, 1)

    def predict_stream(self, chunks: Iterable[Any], *, reset: bool = True) -> Iterator[Any]:
        """Iterator over the outputs (t_k, n_outputs) of each input chunk
        (t_k, n_inputs) of ``chunks``, without learning. Lazy: nothing runs
        until it is iterated; the state is reset at the first chunk unless
        ``reset=False``. A bad chunk raises ValueError or TypeError naming it
        (``chunks[k]``); the trainer then keeps the state it had after the
        chunk before it."""
        it = iter(chunks)

        def outputs() -> Iterator[Any]:
            first = reset
            for k, chunk in enumerate(it):
                try:
                    out = self.predict_sequence(chunk, reset=first)  # type: ignore[attr-defined]
                except (ValueError, TypeError) as e:
                    # name the chunk, as train_stream does; the state is that after chunk k - 1
                    raise type(e)(f"chunks[{k}] {e}") from None
                first = False
                yield out

        return outputs()


def _total_steps(chunks: Iterable[Any]) -> int | None:
    """The steps of a stream given as a list or tuple of chunks (for the
    progress bar's ETA); None for an iterator or when it cannot tell."""
    if not isinstance(chunks, (list, tuple)):
        return None
    try:
        return int(sum(len(c[0]) for c in chunks))
    except Exception:  # noqa: BLE001 - a malformed chunk is reported by the loop
        return None


class EpropTrainer(_Public, _Streams, _core.EpropTrainer):
    __slots__ = ("_given",)
    Config = EpropTrainerConfig
    _native = _core.EpropTrainer
    __signature__ = inspect.signature(EpropTrainerConfig)
    __doc__ = """E-prop online trainer for a single-layer recurrent SNN, a drop-in
    replacement of ``sc_neurocore.online_learning.EpropTrainer`` (same
    constructor, members and numbers; the rule is sc-neurocore's simplified
    variant, kept unchanged).

    ``EpropTrainer(n_inputs, n_neurons, n_outputs, tau_mem=20.0,
    tau_trace=20.0, threshold=1.0, lr=0.01, dt=1.0, *, seed=42,
    kernel="dense", dtype="float64")``: sizes are ints >= 1; tau_mem and tau_trace (ms, > 0);
    threshold (> 0); lr (>= 0); dt (ms, > 0); seed 42 gives the seed package's
    initial weights. ``kernel="event"`` trains ``train_sequence`` and
    ``train_stream`` event-driven: a synapse's traces and weight are settled
    only when its presynaptic input or neuron is active (its traces only
    decay in between, and the weight change follows from two running sums
    per neuron); the same numbers to ~1e-13 per step, not bitwise (this rule
    amplifies last-bit differences over long runs at large lr, in either
    kernel). ``"auto"``: event-driven when at most a quarter of a call's
    inputs are non-zero. Other methods (``step``, batches, predictions) run densely.
    ``dtype="float32"`` keeps weights and state and computes in single
    precision (see ``RecurrentNetwork``); parity with sc-neurocore holds in
    the default float64.

    Weights and state read as read-only NumPy copies; assign a whole array to
    change a weight matrix (shape and finiteness are checked; W_rec's diagonal
    is kept at zero). Every method is atomic: the trainer may be shared between
    threads, calls are serialized, and the work runs with the GIL released.
    """


class OnlineLIFLayer(_Public, _core.OnlineLIFLayer):
    __slots__ = ("_given",)
    Config = OnlineLIFLayerConfig
    _native = _core.OnlineLIFLayer
    __signature__ = inspect.signature(OnlineLIFLayerConfig)
    _REPR_OMIT = ("seed",)
    __doc__ = """Single LIF layer with online (eligibility-based) learning, a drop-in
    replacement of ``sc_neurocore.online_learning.OnlineLIFLayer``.

    ``OnlineLIFLayer(n_inputs, n_neurons, tau_mem=20.0, threshold=1.0,
    lr=0.01, dt=1.0, *, seed=42, dtype="float64")`` (``dtype="float32"``:
    single precision, see ``RecurrentNetwork``). The trace decays by the seed's fixed 0.95
    per step. ``W`` and the state read as read-only copies; assign a whole
    array to ``W``. The layers of an ``OnlineTrainer`` (``trainer.layers``) are
    live views of the trainer's layers.
    """

    @classmethod
    def _view(cls, trainer: OnlineTrainer, index: int) -> OnlineLIFLayer:
        obj = _core.OnlineLIFLayer.__new__(cls, None, trainer, index)
        g = trainer._given
        sizes = trainer.layer_sizes
        given = OnlineLIFLayerConfig(
            sizes[index], sizes[index + 1], g.tau_mem, g.threshold, g.lr, 1.0, seed=g.seed, dtype=g.dtype
        )
        object.__setattr__(obj, "_given", given)
        return obj


class OnlineTrainer(_Public, _Streams, _core.OnlineTrainer):
    __slots__ = ("_given", "_layers")
    _layers: tuple[OnlineLIFLayer, ...]
    Config = OnlineTrainerConfig
    _native = _core.OnlineTrainer
    __signature__ = inspect.signature(OnlineTrainerConfig)
    __doc__ = """Feedforward online trainer stacking ``OnlineLIFLayer``s, a drop-in
    replacement of ``sc_neurocore.online_learning.OnlineTrainer``.

    ``OnlineTrainer(layer_sizes, tau_mem=20.0, threshold=1.0, lr=0.01, *,
    seed=42, dtype="float64")`` (``dtype="float32"``: single precision, see
    ``RecurrentNetwork``): layer_sizes [n_input, n_hidden..., n_output] (>= 2 sizes, each
    >= 1). Every layer restarts the random stream of ``seed``, as the seed
    package does. The trainer's hyperparameters are fixed at construction
    (each layer's ``lr``, ``tau_mem``, ``threshold`` and ``dt`` can be changed
    through ``layers``).
    """

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """A trainer built from an ``OnlineTrainerConfig`` (with its layers' views)."""
        obj = super().from_config(config)
        object.__setattr__(obj, "_layers", tuple(OnlineLIFLayer._view(obj, i) for i in range(obj.n_layers)))
        return obj

    @property
    def layers(self) -> list[OnlineLIFLayer]:
        """The layers, live views into this trainer's state (the same objects each time)."""
        return list(self._layers)


class RecurrentNetwork(_Public, _Streams, _core.RecurrentNetwork):
    __slots__ = ("_given",)
    Config = RecurrentNetworkConfig
    _native = _core.RecurrentNetwork
    __signature__ = inspect.signature(RecurrentNetworkConfig)
    _REPR_CURRENT = True
    _REPR_DEFAULTS: ClassVar[dict[str, Any]] = {"kernel": "dense", "dtype": "float64"}
    __doc__ = """A recurrent spiking network trained with canonical e-prop (Bellec et al.
    2020, Nat. Commun. 11:3625).

    Neurons: ``n_neurons`` LIF, the last ``n_adaptive`` of them adaptive (ALIF),
    reset by subtraction, no self-connections, refractory period (two spikes
    at least ``refractory`` ms apart). Readout: ``y = W_out zhat + b`` with zhat
    the spikes low-pass filtered by tau_out with unit gain (a rate in spikes
    per step).

    Layers: ``n_neurons=[n1, n2, ...]`` stacks recurrent layers (``n_adaptive``
    an int for every layer or a list, one per layer). Layer 1 receives the
    inputs, layer l the spikes of layer l-1 at the same step; each has its own
    recurrence; the readout reads the last. Each layer learns from the output
    error through its own feedback matrix: the last layer as ``feedback``
    says, every lower layer through a fixed random matrix (``N(0, 1/n_l)``
    from ``seed``; "adaptive" adapts only the last layer's). Eligibility
    traces stay local to each layer (a layer's input is a constant in its
    eligibility). ``W_in``, ``W_rec``, ``feedback_matrix``, ``_v``, ``_a`` and
    ``_spikes`` are then lists with one array per layer (assign a whole
    list); ``state_dict`` and ``gradients`` name layer l >= 1's arrays
    ``W_in.l``, ``W_rec.l``, ... A one-layer network (an int, or a list of
    one) is exactly the network without layers. Loss ``"mse"`` (0.5 squared error; targets (T, n_outputs)) or
    ``"cross_entropy"`` (softmax; targets as class indices (T,) or class
    probabilities (T, n_outputs), rows non-negative and summing to 1 where
    they count); an optional ``mask`` (T,) selects the steps whose error counts.

    Parameters (times in ms, rates in Hz): tau_mem 20; tau_adapt 2000; beta
    (threshold increase per unit of adaptation; default ``1.7 (1 - rho) / (1 -
    alpha)``, the paper's scaling); threshold 0.6 (input scaling s = 1);
    refractory 5 ms (the paper's); dt 1 ms; tau_out 20; feedback ``"symmetric"``
    (W_out^T), ``"random"`` (fixed, from ``seed``) or ``"adaptive"``
    (Kolen-Pollack: B^T and W_out get the same change and both decay by
    ``feedback_decay`` per update, so B converges to W_out^T); surrogate_height
    0.3; reg_rate (strength of the rate regularization, 0 = off) toward
    target_rate, with tau_reg the time constant of the running rate in online
    updates (the regularizer counts once per tau_reg there); optimizer
    ``"adam"`` or ``"sgd"`` with lr; update ``"sequence"`` (apply once per
    sequence, batch or stream; also what ``None`` gives), ``"step"`` (every
    step) or an int k (every k steps); with Adam, ``lr`` is the size of each
    update, so frequent updates (``"step"``) need a smaller ``lr`` than the
    default.

    ``kernel`` chooses how eligibility traces are computed: ``"dense"`` (the
    reference: every synapse at every step), ``"event"`` (event-driven and
    exact: a synapse is touched only when its presynaptic input or neuron is
    active, each neuron keeping running sums; the same results to ~1e-12
    relative, not bitwise) or ``"auto"`` (event-driven for the calls whose
    inputs are at most 50% non-zero and whose updates are at least 32 steps
    apart, dense otherwise). The event kernel pays off on sparse inputs and
    updates far apart; it runs densely for single ``step()`` calls and for
    ``update="step"`` (a per-step update touches every weight anyway), and
    settles every synapse at each update and at the end of each call, so a
    sequence split into chunks differs from one call in the last bits.

    ``dtype`` (``"float64"``, default, or ``"float32"``) is the float type of
    the weights, the state and the arithmetic. Inputs and targets are given
    as any numeric arrays and rounded once to it (finite values beyond
    float32's range are refused); outputs, weights and ``state_dict`` arrays
    come back in it; losses are Python floats. The initial weights are the
    float64 ones rounded. A float32 network follows the float64 one to about
    1e-6 relative over a few steps and drifts apart like any two spiking
    networks whose last bits differ; checkpoints record the dtype, and a
    state of the other dtype is refused, never converted silently.

    The objective is the loss summed over time (mean over a batch's
    sequences); reported losses are means per counted step. Predictions run
    the forward dynamics only (eligibility traces restart from zero after
    one). Every method is atomic and runs with the GIL released; arrays read
    out are read-only copies.
    """
