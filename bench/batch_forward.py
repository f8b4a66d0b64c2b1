"""What a batched forward pass could gain in ``train_batch``, one thread.

The issue asks for the forward currents of a batch of B >= 8 sequences as one
matrix-matrix product per step, so that per-sequence throughput on one thread
rises (target: B = 16 at least 1.5x the per-sequence throughput of B = 1 at
(100, 256, 10)). This script measures, before building it, what it could
give: per-sequence steps/s of ``train_batch`` at B = 1, 8 and 16 with
``n_threads=1``, and the share of a training step that the forward pass
takes (steps/s of ``predict_batch``, which runs the forward pass only, against
``train_batch``). Removing the forward pass entirely bounds the gain at
1 / (1 - share) (Amdahl); a product over the batch can only shrink it.

Inputs are Bernoulli spikes (``--p``, default 0.3 for the seed rule, 0.05 for
``RecurrentNetwork``), targets random, T = ``--steps``; best of ``--reps``
calls, median over ``--rounds`` rounds. Only eprop is timed.

    python bench/batch_forward.py [--rounds 3] [--json docs/batch_forward.json]
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
from _timing import best_of  # noqa: E402

SIZES = (100, 256, 10)
CASES = [
    ("EpropTrainer, update='step'", lambda: eprop.EpropTrainer(*SIZES), {"update": "step"}, 0.3),
    ("EpropTrainer, update='sequence'", lambda: eprop.EpropTrainer(*SIZES), {"update": "sequence"}, 0.3),
    ("RecurrentNetwork, update='sequence'", lambda: eprop.RecurrentNetwork(*SIZES), {}, 0.05),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"eprop {eprop.__version__}, {SIZES}, one thread, T = {args.steps}, load {os.getloadavg()[0]:.2f}")
    rows = []
    for name, make, kw, p in CASES:
        per_seq = {}
        share = []
        for b in (1, 8, 16):
            x = (rng.random((b, args.steps, SIZES[0])) < p).astype(np.float64)
            y = 0.1 * rng.random((b, args.steps, SIZES[2]))
            rates, fwd = [], []
            for _ in range(args.rounds):
                net = make()
                t_train = best_of(args.reps, lambda net=net, x=x, y=y, kw=kw: net.train_batch(x, y, n_threads=1, **kw))
                t_pred = best_of(args.reps, lambda net=net, x=x: net.predict_batch(x, n_threads=1))
                rates.append(b * args.steps / t_train)
                fwd.append(t_pred / t_train)
            per_seq[b] = statistics.median(rates)
            if b == 16:
                share = fwd
        s = statistics.median(share)
        row = {
            "case": name,
            "per_sequence_steps_per_s": per_seq,
            "b16_over_b1": per_seq[16] / per_seq[1],
            "forward_share_b16": s,
            "amdahl_bound": 1 / (1 - s),
        }
        rows.append(row)
        print(
            f"{name:<38} per-sequence steps/s B=1 {per_seq[1]:>8,.0f}  B=8 {per_seq[8]:>8,.0f}  "
            f"B=16 {per_seq[16]:>8,.0f} ({row['b16_over_b1']:.2f}x)  forward share {s:.1%}  "
            f"bound without any forward {row['amdahl_bound']:.2f}x"
        )
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": SIZES, "steps": args.steps, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
