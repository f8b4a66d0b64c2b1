"""What a call costs besides its steps: the same stream trained in chunks of
different sizes.

Every call that runs a sequence (each chunk of ``train_stream`` among them)
copies the state once, to undo the call should finite values overflow, and
checks the state for NaN and infinity after it; plus the fixed cost of a
call from Python. This script trains one stream of ``--steps`` steps (5%
input spikes, a sine target) with ``train_stream`` in chunks of 10, 100,
1,000 and 10,000 steps (fresh network each time, one thread, rounds
alternated) and prints steps/s per chunk size and the ratio to the largest
chunks, for two networks: ``RecurrentNetwork(100, 100, 1)`` and
``EpropTrainer(100, 256, 10)``. Only eprop is timed (no NumPy), so the
OpenBLAS variables are left alone.

    python bench/chunk_cost.py [--steps 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import eprop  # noqa: E402
import numpy as np  # noqa: E402

NETS = {
    "RecurrentNetwork(100, 100, 1)": (lambda: eprop.RecurrentNetwork(100, 100, 1, seed=1), 100, 1),
    "EpropTrainer(100, 256, 10)": (lambda: eprop.EpropTrainer(100, 256, 10, lr=1e-4), 100, 10),
}
CHUNKS = (10, 100, 1_000, 10_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for name, (make, n_in, n_out) in NETS.items():
        rng = np.random.default_rng(0)
        x = (rng.random((args.steps, n_in)) < 0.05).astype(np.float64)
        y = 0.5 * np.sin(np.arange(args.steps) / 50.0)[:, None] * np.ones((1, n_out))
        best = {c: 0.0 for c in CHUNKS}
        for r in range(args.rounds):
            order = CHUNKS if r % 2 == 0 else CHUNKS[::-1]
            for c in order:
                net = make()
                chunks = [(x[i : i + c], y[i : i + c]) for i in range(0, args.steps, c)]
                t0 = time.perf_counter()
                net.train_stream(chunks)
                best[c] = max(best[c], args.steps / (time.perf_counter() - t0))
        print(f"{name}, {args.steps:,} steps, best of {args.rounds} rounds:")
        for c in CHUNKS:
            print(f"  chunks of {c:>6,}: {best[c]:>11,.0f} steps/s  ({best[c] / best[CHUNKS[-1]]:.2f}x the largest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
