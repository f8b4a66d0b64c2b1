"""Checks of the arguments of the NumPy-side helpers (``tasks``, ``encode``):
one rule each, with messages that name the argument, what was expected and
what was given."""

from __future__ import annotations

import numbers

import numpy as np


def rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A Generator as given, or a new one seeded by an integer >= 0."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0 or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def count(name: str, value: object, low: int = 1) -> int:
    """An integer >= ``low`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def positive(name: str, value: object) -> float:
    """A finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)
