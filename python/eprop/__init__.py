"""eprop: online e-prop training of spiking neural networks in constant memory.

The classes of ``sc_neurocore.online_learning`` (``EpropTrainer``,
``OnlineLIFLayer``, ``OnlineTrainer``) are reimplemented in Rust with the same
constructors, members and numbers. ``RecurrentNetwork`` is canonical e-prop
(Bellec et al. 2020): LIF and ALIF neurons, leaky readout, symmetric, random or
adaptive feedback, rate regularization, SGD or Adam. Times are in milliseconds.
Each class takes its hyperparameters from a frozen dataclass (``.Config``,
``.config``).
"""

from eprop import encode, tasks
from eprop._classes import EpropTrainer, OnlineLIFLayer, OnlineTrainer, RecurrentNetwork
from eprop._config import EpropTrainerConfig, OnlineLIFLayerConfig, OnlineTrainerConfig, RecurrentNetworkConfig
from eprop._core import __version__

__all__ = [
    "EpropTrainer",
    "EpropTrainerConfig",
    "OnlineLIFLayer",
    "OnlineLIFLayerConfig",
    "OnlineTrainer",
    "OnlineTrainerConfig",
    "RecurrentNetwork",
    "RecurrentNetworkConfig",
    "__version__",
    "encode",
    "tasks",
]
