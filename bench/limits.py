"""eprop beside C probes of the same dense math (the machine's yardstick).

The probes in ``../shared/limits/`` (``--limits`` to point elsewhere) are
compiled here with the system ``cc`` (``-O3 -march=native``, and again with
``-ffast-math`` for the upper figure) and run in the same benchmark, alternating
with eprop, one thread, several rounds (median, and the range of the ratio):

* seed rule: ``EpropTrainer(ni, nr, no).train_sequence`` (``kernel="dense"``
  and ``"event"``) on 10% spike inputs
  against ``seed_step.c`` (one fused pass over trace, eligibility and weights
  per step) at (4,16,2) / (40,100,3) / (100,256,10) / (200,1024,10);
* canonical e-prop: ``RecurrentNetwork(ni, nr, no)`` (LIF, ``update="sequence"``)
  with ``kernel="dense"`` and ``kernel="event"`` on 5% spike inputs against
  ``canonical_step.c`` (dense) at (100,100,1) and (200,1024,10).

T is chosen per shape so that each timing lasts ~0.2 s or more. Only eprop and C
are timed (no NumPy): the OpenBLAS variables are left alone.

    python bench/limits.py [--rounds 5] [--json bench/out/limits.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import eprop  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED_SHAPES = [((4, 16, 2), 400_000), ((40, 100, 3), 40_000), ((100, 256, 10), 5_000), ((200, 1024, 10), 300)]
CANON_SHAPES = [((100, 100, 1), 20_000), ((200, 1024, 10), 400)]


def build(src: Path, out: Path, fast: bool) -> Path:
    flags = ["-O3", "-march=native"] + (["-ffast-math"] if fast else [])
    subprocess.run(["cc", *flags, str(src), "-lm", "-o", str(out)], check=True)
    return out


def probe(exe: Path, args: list[int | float]) -> float:
    out = subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) steps/s", out).group(1))


def timed(f, steps: int) -> float:
    t0 = time.perf_counter()
    f()
    return steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--limits", default=str(HERE.parent.parent / "shared" / "limits"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    limits = Path(args.limits)
    tmp = Path(tempfile.mkdtemp())
    exes = {
        (name, fast): build(limits / f"{name}.c", tmp / f"{name}{'_fast' if fast else ''}", fast)
        for name in ("seed_step", "canonical_step")
        for fast in (False, True)
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}; one thread; {args.rounds} rounds, medians")
    rows = []
    rng = np.random.default_rng(0)
    for (ni, nr, no), T in SEED_SHAPES:
        x = (rng.random((T, ni)) < 0.1).astype(np.float64)
        y = rng.random((T, no))
        nets = {k: eprop.EpropTrainer(ni, nr, no, kernel=k) for k in ("dense", "event")}
        res = {"dense": [], "event": [], "c": [], "c_fast": []}
        for _ in range(args.rounds):
            for k, t in nets.items():
                res[k].append(timed(lambda t=t, x=x, y=y: t.train_sequence(x, y), T))
            res["c"].append(probe(exes["seed_step", False], [ni, nr, no, T]))
            res["c_fast"].append(probe(exes["seed_step", True], [ni, nr, no, T]))
        rows.append(report("EpropTrainer.train_sequence", (ni, nr, no), res, ["dense", "event"]))
    for (ni, nr, no), T in CANON_SHAPES:
        x = (rng.random((T, ni)) < 0.05).astype(np.float64)
        y = rng.normal(size=(T, no))
        nets = {k: eprop.RecurrentNetwork(ni, nr, no, kernel=k, seed=1) for k in ("dense", "event")}
        res = {"dense": [], "event": [], "c": [], "c_fast": []}
        for _ in range(args.rounds):
            for k, net in nets.items():
                res[k].append(timed(lambda net=net, x=x, y=y: net.train_sequence(x, y), T))
            res["c"].append(probe(exes["canonical_step", False], [ni, nr, no, T, 0.05]))
            res["c_fast"].append(probe(exes["canonical_step", True], [ni, nr, no, T, 0.05]))
        rows.append(report("RecurrentNetwork.train_sequence", (ni, nr, no), res, ["dense", "event"]))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def report(what, shape, res, ours):
    med = {k: statistics.median(v) for k, v in res.items()}
    row = {"what": what, "shape": shape, "steps_per_s": med}
    parts = [f"{what:32s} {str(shape):15s} C {med['c']:>11,.0f}/s  C fast-math {med['c_fast']:>11,.0f}/s"]
    for k in ours:
        ratios = [a / b for a, b in zip(res[k], res["c_fast"])]
        row[f"{k}_vs_c_fast"] = (statistics.median(ratios), min(ratios), max(ratios))
        parts.append(
            f"{k} {med[k]:>11,.0f}/s = {statistics.median(ratios):.2f}x fast-math ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print("  ".join(parts), flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
