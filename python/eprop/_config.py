"""The hyperparameters of each class, as frozen dataclasses.

The defaults are written here and only here; every value is checked by the
core when a configuration is made (the messages name the argument, what was
expected and what was given), so an invalid configuration never exists. The
public classes take their constructors from these (``EpropTrainer(4, 16, 2)``
builds an ``EpropTrainerConfig(4, 16, 2)`` and the native trainer from it), and
``trainer.config`` returns one, which ``dataclasses.replace`` and
``dataclasses.fields`` work on.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from eprop import _core


@dataclass(frozen=True)
class EpropTrainerConfig:
    """Hyperparameters of ``EpropTrainer`` (times in ms). ``seed`` (keyword-only,
    in [0, 2**32)): 42 gives sc-neurocore's initial weights."""

    n_inputs: int
    n_neurons: int
    n_outputs: int
    tau_mem: float = 20.0
    tau_trace: float = 20.0
    threshold: float = 1.0
    lr: float = 0.01
    dt: float = 1.0
    _: KW_ONLY
    seed: int = 42
    kernel: str = "dense"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _core.EpropTrainer._validate(self)


@dataclass(frozen=True)
class OnlineLIFLayerConfig:
    """Hyperparameters of ``OnlineLIFLayer`` (times in ms)."""

    n_inputs: int
    n_neurons: int
    tau_mem: float = 20.0
    threshold: float = 1.0
    lr: float = 0.01
    dt: float = 1.0
    _: KW_ONLY
    seed: int = 42
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _core.OnlineLIFLayer._validate(self)


@dataclass(frozen=True)
class OnlineTrainerConfig:
    """Hyperparameters of ``OnlineTrainer``: ``layer_sizes`` [n_input, n_hidden...,
    n_output] (>= 2 sizes, each >= 1), then those every layer gets."""

    layer_sizes: list[int]
    tau_mem: float = 20.0
    threshold: float = 1.0
    lr: float = 0.01
    _: KW_ONLY
    seed: int = 42
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _core.OnlineTrainer._validate(self)


@dataclass(frozen=True)
class RecurrentNetworkConfig:
    """Hyperparameters of ``RecurrentNetwork`` (times in ms, rates in Hz); see
    that class for their meaning. ``beta=None`` gives the paper's
    ``1.7 (1 - rho) / (1 - alpha)``; ``update=None`` is ``'sequence'``.
    ``n_neurons`` is an int (one recurrent layer) or a list of sizes (a
    stack of layers); ``n_adaptive`` an int (the same count in every layer)
    or a list of one count per layer."""

    n_inputs: int
    n_neurons: int | list[int]
    n_outputs: int
    _: KW_ONLY
    n_adaptive: int | list[int] = 0
    tau_mem: float = 20.0
    tau_adapt: float = 2000.0
    beta: float | None = None
    threshold: float = 0.6
    refractory: float = 5.0
    dt: float = 1.0
    tau_out: float = 20.0
    loss: str = "mse"
    feedback: str = "symmetric"
    feedback_decay: float = 1e-3
    surrogate_height: float = 0.3
    reg_rate: float = 0.0
    target_rate: float = 10.0
    tau_reg: float = 1000.0
    optimizer: str = "adam"
    lr: float = 1e-3
    update: str | int | None = None
    seed: int = 0
    kernel: str = "dense"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _core.RecurrentNetwork._validate(self)
