"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The shortest wall time (s) of ``repeats`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def alternate(rounds: int, sides: dict[str, Callable[[], object]]) -> dict[str, list[object]]:
    """Run every side once per round for ``rounds`` rounds, rotating which side
    goes first each round (so a slow drift of the machine's load is spread over
    all sides), and return each side's results in round order. Sides measured
    in the same round can be compared round by round."""
    names = list(sides)
    results: dict[str, list[object]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            results[name].append(sides[name]())
    return results
