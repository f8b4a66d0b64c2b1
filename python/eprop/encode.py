"""Turning real-valued time series into spike trains for the networks.

Every function takes a NumPy array of one series ``(T, C)`` (T steps, C
channels) or a batch ``(B, T, C)`` and returns float64 arrays of the same
rank; the last axis is channels, the one before it time. NaN or infinite
values, other ranks, empty series and bad parameters are refused with a
``ValueError`` (a ``TypeError`` for what is not numeric) naming the argument.

- :class:`Scaler`: per-channel normalization fitted on training data only
  (``Scaler.fit(train)``), then applied to any data (``scaler(test)``).
- :func:`stretch`: holds each sample for k steps (a series sampled every
  10 ms becomes one of 1 ms steps with k = 10).
- :func:`rate`: Bernoulli (Poisson-like) rate code, seeded: a value in [0, 1]
  fires with probability ``value * max_rate * dt / 1000`` per step.
- :func:`delta`: threshold-crossing (send-on-delta) code with an up and a
  down channel per input channel.

A typical pipeline: ``x = rate(stretch(scaler(series), 10), seed=0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eprop import _args

__all__ = ["Scaler", "delta", "rate", "stretch"]


def _series(name: str, x: object) -> np.ndarray:
    """``x`` as a float64 array (T, C) or (B, T, C), finite, non-empty."""
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything that is not an array
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__}") from e
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name}: expected a numeric array, got an array of dtype {a.dtype}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a series (T, channels) or a batch (B, T, channels), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: expected at least one step and one channel, got shape {a.shape}")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values, got {a[where]} at index {where}")
    return a


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-channel affine normalization ``(x - offset) / scale``, fitted on
    training data with :meth:`fit` and applied with ``scaler(x)``.

    ``kind="minmax"`` maps the training data's range of each channel to
    [0, 1] (values of other data outside it are clipped when ``clip``, the
    input of :func:`rate`); ``kind="zscore"`` to mean 0 and standard
    deviation 1 (no clipping). A channel that is constant in the training
    data gets scale 1 (it maps to 0)."""

    offset: np.ndarray
    scale: np.ndarray
    kind: str = "minmax"
    clip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("minmax", "zscore"):
            raise ValueError(f"kind: expected 'minmax' or 'zscore', got {self.kind!r}")
        offset = np.asarray(self.offset, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if offset.ndim != 1 or offset.shape != scale.shape or offset.size == 0:
            raise ValueError(
                f"offset, scale: expected two 1-d arrays of one value per channel, got shapes "
                f"{offset.shape} and {scale.shape}"
            )
        if not (np.all(np.isfinite(offset)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError("offset, scale: expected finite values and scales > 0")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def fit(cls, train: object, kind: str = "minmax", *, clip: bool = True) -> Scaler:
        """The normalization of each channel of ``train`` (T, C) or (B, T, C),
        over all its steps (and series)."""
        if kind not in ("minmax", "zscore"):
            raise ValueError(f"kind: expected 'minmax' or 'zscore', got {kind!r}")
        a = _series("train", train)
        a = a.reshape(-1, a.shape[-1])
        if kind == "minmax":
            offset, scale = a.min(axis=0), a.max(axis=0) - a.min(axis=0)
        else:
            offset, scale = a.mean(axis=0), a.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(offset, scale, kind, bool(clip))

    @property
    def n_channels(self) -> int:
        return len(self.offset)

    def __call__(self, x: object) -> np.ndarray:
        """``x`` (T, C) or (B, T, C) normalized (a new array)."""
        a = _series("x", x)
        if a.shape[-1] != self.n_channels:
            raise ValueError(
                f"x: expected {self.n_channels} channels (the data the scaler was fitted on), got {a.shape[-1]}"
            )
        out = (a - self.offset) / self.scale
        if self.kind == "minmax" and self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return out


def stretch(x: object, k: int) -> np.ndarray:
    """Each step of ``x`` (T, C) or (B, T, C) held for ``k`` steps: (k T, C)
    or (B, k T, C)."""
    k = _args.count("k", k)
    a = _series("x", x)
    return np.repeat(a, k, axis=-2)


def rate(x: object, *, max_rate: float = 100.0, dt: float = 1.0, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Bernoulli spikes (0/1): a value v in [0, 1] of ``x`` (T, C) or (B, T, C)
    fires with probability ``v * max_rate * dt / 1000`` at its step
    (``max_rate`` in Hz, at most one spike per step). Values outside [0, 1]
    are refused: normalize first (``Scaler.fit(train)``). Draws one
    ``random(x.shape)`` from ``seed`` (an int: the same spikes every time; a
    Generator: fresh spikes at each call)."""
    a = _series("x", x)
    peak = _args.positive("max_rate", max_rate) * _args.positive("dt", dt) / 1000.0
    if peak > 1.0:
        raise ValueError(f"max_rate: expected at most one spike per step (max_rate dt / 1000 <= 1), got {peak:g}")
    if a.min() < 0.0 or a.max() > 1.0:
        raise ValueError(
            f"x: expected values in [0, 1] (normalize first, e.g. with Scaler), got [{a.min():g}, {a.max():g}]"
        )
    rng = _args.rng(seed)
    return (rng.random(a.shape) < a * peak).astype(np.float64)


def delta(x: object, threshold: float) -> np.ndarray:
    """Threshold-crossing (send-on-delta) spikes of ``x`` (T, C) or (B, T, C):
    (T, 2C) or (B, T, 2C), the first C channels "up", the last C "down".
    Each channel keeps a reference level, starting at its first value; at a
    step where the value is at least ``threshold`` above the reference, the
    up channel spikes and the reference rises by the whole multiples of
    ``threshold`` the value crossed (likewise down). One spike per channel
    and step, whatever the size of the change; the reference always stays
    within ``threshold`` of the signal."""
    a = _series("x", x)
    thr = _args.positive("threshold", threshold)
    lead, (T, C) = a.shape[:-2], a.shape[-2:]
    out = np.zeros(lead + (T, 2 * C))
    ref = a[..., 0, :].copy()
    for t in range(1, T):
        d = a[..., t, :] - ref
        steps = np.trunc(d / thr)
        out[..., t, :C] = steps >= 1
        out[..., t, C:] = steps <= -1
        ref += steps * thr
    return out
