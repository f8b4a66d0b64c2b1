"""Prediction against training for RecurrentNetwork, one thread.

Prediction (``predict_sequence``, ``predict_batch``, ``evaluate``) runs the
forward dynamics only; training also carries the eligibility traces (O(n_syn)
per step). Measured at (100, 100, 1) on the pattern-generation input (100
inputs at 50 Hz, T = 1000), the default network (refractory 5 ms) trained
with one update per sequence. The two sides alternate, ``--rounds`` rounds,
and the best time of each is reported with the ratio; target: predict >= 3x
faster than train.

Usage::

    python bench/predict_vs_train.py [--rounds 7] [--steps 1000] [--reps 20]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from eprop import RecurrentNetwork  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20, help="calls per timing")
    ap.add_argument("--reg", type=float, default=0.0, help="reg_rate of the trained network")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.random((args.steps, 100)) < 0.05).astype(float)
    y = np.sin(np.arange(args.steps) / 50.0)[:, None]
    net = RecurrentNetwork(100, 100, 1, reg_rate=args.reg, seed=0)
    for _ in range(3):  # warm up (and leave the network in a trained state)
        net.train_sequence(x, y)
    sides = {
        "train_sequence": lambda: net.train_sequence(x, y),
        "predict_sequence": lambda: net.predict_sequence(x),
        "predict_batch (B=1)": lambda: net.predict_batch(x[None]),
        "evaluate": lambda: net.evaluate(x, y),
    }
    best = {k: float("inf") for k in sides}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            for _ in range(args.reps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / args.reps)
    load = os.getloadavg()[0]
    print(f"RecurrentNetwork(100, 100, 1), T = {args.steps}, best of {args.rounds} rounds, load {load:.2f}")
    train = best["train_sequence"]
    for name, t in best.items():
        ratio = train / t
        print(f"  {name:22s} {args.steps / t:12,.0f} steps/s   {ratio:5.2f}x train")
    worst = min(train / best[k] for k in sides if k != "train_sequence")
    verdict = "met" if worst >= 3 else "NOT met"
    print(f"slowest prediction path: {worst:.2f}x faster than training (target >= 3x): {verdict}")


if __name__ == "__main__":
    main()
