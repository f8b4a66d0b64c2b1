"""float32 against float64, one thread, the same network, data and kernel on
both sides.

Rows: ``EpropTrainer.train_sequence`` at the four shapes of the C probes
(``bench/limits.py``; inputs active with probability ``--p-seed``, default
0.3, targets uniform in [0, 0.1)), dense and event kernels;
``RecurrentNetwork.train_sequence`` (``update="sequence"``, pattern-generation
shaped target, inputs active with probability ``--p``, default 0.05), dense
and event kernels; ``OnlineTrainer.train_sequence`` on a [100, 256, 10] stack.
Each round times both dtypes (alternating which goes first, best of
``--reps`` calls); the table shows the median steps/s over ``--rounds``
rounds and the median over rounds of the per-round ratio float32/float64.
Only eprop is timed (no NumPy in the timed part), so OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are left alone.

    python bench/float32.py [--rounds 5] [--json docs/float32.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import eprop  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternate, best_of  # noqa: E402
from event_kernel import task as rsnn_data  # noqa: E402  (the pattern-generation shaped task)

SEED_SHAPES = [(4, 16, 2), (40, 100, 3), (100, 256, 10), (200, 1024, 10)]
RSNN_SHAPES = [(100, 100, 1), (100, 256, 10), (200, 1024, 10)]


def steps_for(sizes, budget):
    """Steps per call: about ``budget`` synapse-steps, at least 200."""
    ni, n, _ = sizes
    return max(200, min(20000, int(budget / (n * (ni + n)))))


def seed_data(sizes, steps, p, seed=0):
    ni, _, no = sizes
    rng = np.random.default_rng(seed)
    return (rng.random((steps, ni)) < p).astype(np.float64), 0.1 * rng.random((steps, no))


def cases(args):
    groups = [
        (eprop.EpropTrainer, SEED_SHAPES, seed_data, args.p_seed),
        (eprop.RecurrentNetwork, RSNN_SHAPES, rsnn_data, args.p),
    ]
    for cls, shapes, data, p in groups:
        for sizes in shapes:
            steps = steps_for(sizes, args.budget)
            x, y = data(sizes, steps, p)
            for kernel in ("dense", "event"):
                make = lambda d, c=cls, s=sizes, k=kernel: c(*s, kernel=k, dtype=d)  # noqa: E731
                yield f"{cls.__name__}{sizes} {kernel}", steps, make, x, y
    sizes = [100, 256, 10]
    steps = steps_for((100, 256, 10), args.budget)
    x, y = seed_data((100, 256, 10), steps, args.p_seed)
    yield "OnlineTrainer[100, 256, 10]", steps, (lambda d: eprop.OnlineTrainer(sizes, dtype=d)), x, y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--budget", type=float, default=3e8, help="synapse-steps per timed call")
    ap.add_argument("--p", type=float, default=0.05, help="input activity of RecurrentNetwork rows")
    ap.add_argument("--p-seed", type=float, default=0.3, help="input activity of the seed trainers' rows")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    print(f"eprop {eprop.__version__}, one thread, load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'case':<36} {'T':>6} {'f64 steps/s':>12} {'f32 steps/s':>12} {'f32/f64':>8} (min-max)")
    rows = []
    for name, steps, make, x, y in cases(args):
        nets = {d: make(d) for d in ("float64", "float32")}

        def timed(d, nets=nets, x=x, y=y):
            return best_of(args.reps, lambda: nets[d].train_sequence(x, y))

        res = alternate(args.rounds, {d: (lambda d=d: timed(d)) for d in nets})
        rate = {d: [steps / t for t in res[d]] for d in nets}
        ratios = [a / b for a, b in zip(rate["float32"], rate["float64"])]
        row = {
            "case": name,
            "steps": steps,
            "float64_steps_per_s": statistics.median(rate["float64"]),
            "float32_steps_per_s": statistics.median(rate["float32"]),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        rows.append(row)
        print(
            f"{name:<36} {steps:>6} {row['float64_steps_per_s']:>12,.0f} {row['float32_steps_per_s']:>12,.0f} "
            f"{row['ratio_median']:>7.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        meta = {
            "eprop": eprop.__version__,
            "rounds": args.rounds,
            "reps": args.reps,
            "p": args.p,
            "p_seed": args.p_seed,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
