"""eprop: online e-prop training of spiking neural networks in constant memory.

The classes of ``sc_neurocore.online_learning`` (``EpropTrainer``,
``OnlineLIFLayer``, ``OnlineTrainer``) are reimplemented in Rust with the same
constructors, members and numbers. Times are in milliseconds.
"""

from eprop._core import EpropTrainer, OnlineLIFLayer, OnlineTrainer, __version__

__all__ = ["EpropTrainer", "OnlineLIFLayer", "OnlineTrainer", "__version__"]
