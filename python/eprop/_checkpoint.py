"""Checkpoint files and pickling for every eprop trainer.

A checkpoint is one ``.npz`` file (NumPy's zip of arrays) holding the trainer's
``state_dict()``: hyperparameters as 0-d arrays, weights and the full dynamic
state as float64 arrays, the class name and a format version. It is read with
``allow_pickle=False``, so loading a file never runs code. Files are written
atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any

import numpy as np

# Versions of the state layouts this release reads (each class checks its own).
FORMAT_VERSIONS = (1, 2)


def save(trainer: Any, path: str | os.PathLike[str]) -> None:
    state = trainer.state_dict()
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".eprop-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _scalar(value: np.ndarray) -> Any:
    if value.ndim == 0:
        return value.item()
    if value.dtype.kind in "iu" and value.ndim == 1 and value.dtype != np.float64:
        return [int(v) for v in value]
    return value


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state dict stored in a checkpoint file (no code is executed)."""
    target = os.fspath(path)

    def corrupt(detail: object) -> ValueError:
        return ValueError(
            f"path: expected an eprop checkpoint (.npz), got a truncated or corrupt file {target!r} ({detail})"
        )

    try:
        loaded = np.load(target, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise corrupt(e) from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise corrupt(f"a single {type(loaded).__name__}, not an npz archive")
    try:
        with loaded as f:
            raw = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise corrupt(e) from e
    bad = [k for k, v in raw.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise corrupt(f"entries that are not arrays: {bad}")
    state = {k: _scalar(v) for k, v in raw.items()}
    version = state.get("format_version")
    if version not in FORMAT_VERSIONS:
        raise ValueError(f"format_version: expected one of {FORMAT_VERSIONS}, got {version!r} in {target!r}")
    return state


def load(cls: Any, path: str | os.PathLike[str]) -> Any:
    return cls.from_state_dict(read(path))


def restore(class_name: str, state: dict[str, Any]) -> Any:
    """Rebuilds a trainer from ``(class name, state_dict)`` (used by pickle)."""
    import eprop

    cls = getattr(eprop, class_name, None)
    if cls is None:
        raise ValueError(f"class: expected an eprop trainer class name, got {class_name!r}")
    return cls.from_state_dict(state)
