"""Replays ``golden_scenarios.py`` and requires every recorded number, bitwise
(see that module for what was recorded and by which version)."""

from __future__ import annotations

import eprop
import numpy as np
import pytest
from golden_scenarios import GOLDEN, record


@pytest.fixture(scope="module")
def replay():
    return record(eprop)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_same_scenarios(replay, golden):
    # added since the recording: the states name their kernel (RecurrentNetwork,
    # EpropTrainer) and dtype (every class); every scenario runs the dense
    # reference in float64
    added = {k: str(v) for k, v in replay.items() if k.endswith((".kernel", ".dtype"))}
    assert added and set(added.values()) == {"dense", "float64"}
    assert {v for k, v in added.items() if k.endswith(".dtype")} == {"float64"}
    assert sorted(k for k in replay if k not in added) == sorted(golden)


def test_every_value_bitwise(replay, golden):
    different = []
    for key, want in golden.items():
        got = replay.get(key)
        if got is None:
            continue
        if got.dtype.kind in "US":
            same = got.dtype.kind == want.dtype.kind and str(got) == str(want)
        else:
            same = got.shape == want.shape and got.astype(want.dtype).tobytes() == want.tobytes()
        if not same:
            different.append(key)
    assert not different, f"{len(different)} recorded values differ, e.g. {different[:10]}"
