"""Event-driven against dense eligibility kernel of RecurrentNetwork, one thread.

For each network, inputs are Bernoulli spikes (``--p``, default 5% per input
and step) and the target a sum of four sines (the pattern-generation task's
shape), T = ``--steps`` (default 1000) per sequence, ``update="sequence"``.
Each round times ``train_sequence`` with ``kernel="dense"`` and with
``kernel="event"`` (alternating, the same data and initial weights, best of
``--reps`` calls) and ``predict_sequence``; the table shows the median over
``--rounds`` rounds and the ratio event/dense in steps per second, with the
measured recurrent activity (fraction of neurons spiking per step) and the
largest difference of the gradients (``gradients()``, W_in and W_rec) the
two kernels compute, relative to the largest gradient (an exactness check,
not a speed figure). Only eprop is timed (no NumPy), so
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left alone; OPENBLAS_NUM_THREADS=1
keeps NumPy's threads from spinning beside the timed thread.

    python bench/event_kernel.py [--rounds 5] [--json bench/out/event_kernel.json]
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

CASES = [
    ("(100, 100, 1) LIF", (100, 100, 1), {}),
    ("(100, 100, 1) 20 ALIF, reg", (100, 100, 1), {"n_adaptive": 20, "reg_rate": 1.0}),
    ("(200, 1024, 10) LIF", (200, 1024, 10), {}),
    ("(200, 1024, 10) 300 ALIF, reg", (200, 1024, 10), {"n_adaptive": 300, "reg_rate": 1.0}),
]


def task(sizes, steps, p, seed=0):
    ni, _, no = sizes
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, ni)) < p).astype(np.float64)
    t = np.arange(steps)
    y = np.zeros((steps, no))
    for k in range(no):
        for period in (1000, 500, 333, 200):
            y[:, k] += rng.uniform(0.5, 2) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return x, y / np.abs(y).max()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--p", type=float, default=0.05)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; one thread; T = {args.steps}; input activity {args.p}")
    rows = []
    for name, sizes, kw in CASES:
        x, y = task(sizes, args.steps, args.p)
        nets = {k: eprop.RecurrentNetwork(*sizes, kernel=k, seed=1, **kw) for k in ("dense", "event")}
        start = {k: net.state_dict() for k, net in nets.items()}
        times = {"dense": [], "event": [], "predict": []}
        for r in range(args.rounds):
            for k in ("dense", "event") if r % 2 == 0 else ("event", "dense"):
                net = nets[k]

                def run(net=net, s=start[k], x=x, y=y):
                    net.load_state_dict(s)
                    net.train_sequence(x, y)

                times[k].append(best_of(args.reps, run))
            times["predict"].append(best_of(args.reps, lambda net=nets["dense"], x=x: net.predict_sequence(x)))
        # exactness: the gradients of one sequence from the same start
        g = {}
        for k in ("dense", "event"):
            nets[k].load_state_dict(start[k])
            out = nets[k].gradients(x[None], y[None], n_threads=1)
            g[k] = np.concatenate([out["W_in"].ravel(), out["W_rec"].ravel()])
        diff = np.abs(g["event"] - g["dense"]).max() / np.abs(g["dense"]).max()
        spikes = []
        probe = eprop.RecurrentNetwork(*sizes, seed=1, **kw)
        for t in range(min(args.steps, 300)):
            spikes.append(probe.step(x[t])["spikes"].mean())
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "case": name,
            "dense_steps_per_s": args.steps / med["dense"],
            "event_steps_per_s": args.steps / med["event"],
            "ratio": med["dense"] / med["event"],
            "ratio_min": min(times["dense"]) / max(times["event"]),
            "ratio_max": max(times["dense"]) / min(times["event"]),
            "predict_steps_per_s": args.steps / med["predict"],
            "recurrent_activity": float(np.mean(spikes)),
            "gradient_rel_diff": float(diff),
        }
        rows.append(row)
        print(
            f"{name:32s} dense {row['dense_steps_per_s']:>9,.0f}/s  event {row['event_steps_per_s']:>9,.0f}/s  "
            f"event/dense {row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})  "
            f"predict {row['predict_steps_per_s']:>10,.0f}/s  rec. activity {row['recurrent_activity']:.3f}  "
            f"max|g_event - g_dense| / max|g_dense| {diff:.1e}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "p": args.p, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
