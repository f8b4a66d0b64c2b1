"""Per-call overhead of ``step()``: this build against a baseline build.

One ``step()`` on a small network does little arithmetic, so its time is
mostly the cost of the call itself: argument parsing and checks, taking the
lock, building the result dict and its arrays. This script measures it for

* ``EpropTrainer(4, 16, 2)``, with a target;
* ``OnlineTrainer([4, 8, 2])``, with a target;
* ``RecurrentNetwork(4, 16, 2)``, with a target and without;
* ``RecurrentNetwork(100, 100, 1)``, with a target (where the arithmetic
  weighs more than the call),

in two interpreters, each importing its own ``eprop``: ``--baseline-python``
(e.g. a virtualenv with the build before the redesign) and ``--python``
(default: the one running this script). Each round runs one child process per
interpreter, baseline first (A B A B ...); the child builds every network
(seed 0), pre-builds its input (binary spikes, 30% density) and target arrays,
warms up, then times ``--calls`` calls of ``step`` in a loop, timeit-style
(``time.perf_counter_ns``, garbage collection off, the best of ``--repeat``
loops; the cases take turns loop by loop, so that a slow spell of the machine
does not fall on one case only), and reports ns per call. The table gives, per case, the median over
rounds of each side, the ratio of the medians (new / baseline) and the
smallest and largest ratio of one round; target: new at most 10% above the
baseline (ratio <= 1.10). The children run with ``RAYON_NUM_THREADS=1`` (as
in ``bench/predict_vs_train.py``) in a temporary directory (so that the
working directory cannot shadow either ``eprop``).

The numbers only mean something on an otherwise idle machine: the load average
is printed at start and end, with a warning above 1.0. This is a measurement,
not a test: the exit code is 0 whatever the ratios (or when a side fails).
With the same interpreter on both sides it is a sanity run (ratios ~1.0, their
spread the noise of the machine).

Usage::

    python bench/step_overhead.py --baseline-python /path/to/old/venv/bin/python
                                  [--python PATH] [--rounds 5] [--calls 20000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

TARGET = 1.10  # new / baseline, at most

# (label, class, constructor arguments, with a target)
CASES: list[tuple[str, str, list, bool]] = [
    ("EpropTrainer(4, 16, 2) + target", "EpropTrainer", [4, 16, 2], True),
    ("OnlineTrainer([4, 8, 2]) + target", "OnlineTrainer", [[4, 8, 2]], True),
    ("RecurrentNetwork(4, 16, 2) + target", "RecurrentNetwork", [4, 16, 2], True),
    ("RecurrentNetwork(4, 16, 2), no target", "RecurrentNetwork", [4, 16, 2], False),
    ("RecurrentNetwork(100, 100, 1) + target", "RecurrentNetwork", [100, 100, 1], True),
]

# Run by each interpreter with ``-c``; argv[1] is JSON {"cases", "calls", "repeat"};
# prints JSON {"eprop": path, "ns": [ns per call, one per case]}.
CHILD = """
import gc, json, sys, time
import numpy as np
import eprop

args = json.loads(sys.argv[1])
calls, repeat = args["calls"], args["repeat"]


def make_loop(cls, ctor, with_target):
    net = getattr(eprop, cls)(*ctor, seed=0)
    sizes = ctor[0] if isinstance(ctor[0], list) else ctor
    x = (np.random.default_rng(1).random(sizes[0]) < 0.3).astype(np.float64)
    target = np.random.default_rng(2).standard_normal(sizes[-1]) * 0.1
    step = net.step
    if with_target:
        def loop(n):
            for _ in range(n):
                step(x, target)
    else:
        def loop(n):
            for _ in range(n):
                step(x)
    return loop


loops = [make_loop(*case) for case in args["cases"]]
for loop in loops:
    loop(max(calls // 10, 100))  # warm up
best = [float("inf")] * len(loops)
gc.disable()
for _ in range(repeat):  # the cases take turns, so each one's loops spread over the child's life
    for k, loop in enumerate(loops):
        t0 = time.perf_counter_ns()
        loop(calls)
        best[k] = min(best[k], (time.perf_counter_ns() - t0) / calls)
gc.enable()
print(json.dumps({"eprop": eprop.__file__, "ns": best}))
"""


def run_child(python: str, calls: int, repeat: int, cwd: str) -> dict | None:
    """One child: ns per call for every case, or None (the error is printed)."""
    payload = json.dumps({"cases": [c[1:] for c in CASES], "calls": calls, "repeat": repeat})
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = "1"
    try:
        r = subprocess.run(
            [python, "-c", CHILD, payload], capture_output=True, text=True, cwd=cwd, env=env, timeout=1800
        )
    except (OSError, subprocess.SubprocessError) as e:
        print(f"  child {python} failed: {e!r}", file=sys.stderr)
        return None
    if r.returncode != 0:
        print(f"  child {python} failed (exit {r.returncode}):\n{r.stderr}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def load_line(when: str) -> float:
    one, five, fifteen = os.getloadavg()
    print(f"load average ({when}): {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)")
    if one > 1.0:
        print(f"WARNING: 1-min load {one:.2f} > 1.0: the machine is busy, timings are noisy")
    return one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-python", required=True, help="interpreter whose eprop is the baseline")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose eprop is the new build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000, help="step() calls per timed loop")
    ap.add_argument("--repeat", type=int, default=10, help="timed loops per case and child (best kept)")
    ap.add_argument("--show-rounds", action="store_true", help="also print every round's ns/call")
    args = ap.parse_args()
    sides = {"baseline": args.baseline_python, "new": args.python}
    for name, py in sides.items():
        print(f"{name:8s}: {py}")
    load_line("start")
    ns: dict[str, list[list[float]]] = {name: [] for name in sides}
    where: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for i in range(args.rounds):
            for name, py in sides.items():  # A B A B ...
                res = run_child(py, args.calls, args.repeat, cwd)
                if res is None:
                    continue
                where[name] = res["eprop"]
                ns[name].append(res["ns"])
            print(f"  round {i + 1}/{args.rounds} done", flush=True)
    for name in sides:
        print(f"{name:8s} eprop: {where.get(name, 'n/a (every child failed)')}")
    rounds = min(len(ns["baseline"]), len(ns["new"]))
    print(f"\nstep() ns/call, best of {args.repeat} x {args.calls} calls per child, median over {rounds} rounds")
    header = f"{'case':42s} {'baseline':>10s} {'new':>10s} {'new/base':>9s} {'min':>6s} {'max':>6s}"
    print(header)
    print("-" * len(header))
    above = []
    for k, case in enumerate(CASES):
        label = case[0]
        if rounds == 0:
            print(f"{label:42s} {'n/a':>10s}")
            continue
        base = [r[k] for r in ns["baseline"][:rounds]]
        new = [r[k] for r in ns["new"][:rounds]]
        per_round = [n / b for n, b in zip(new, base)]
        ratio = statistics.median(new) / statistics.median(base)
        flag = "" if ratio <= TARGET else "  ABOVE"
        if flag:
            above.append(f"{label}: +{(ratio - 1) * 100:.1f}%")
        print(
            f"{label:42s} {statistics.median(base):10.0f} {statistics.median(new):10.0f} "
            f"{ratio:9.3f} {min(per_round):6.3f} {max(per_round):6.3f}{flag}"
        )
        if args.show_rounds:
            print(f"{'':4s}baseline: {' '.join(f'{v:.0f}' for v in base)}; new: {' '.join(f'{v:.0f}' for v in new)}")
    if rounds:
        verdict = "met" if not above else "NOT met (" + "; ".join(above) + ")"
        print(f"target: new at most {(TARGET - 1) * 100:.0f}% above baseline: {verdict}")
    load_line("end")


if __name__ == "__main__":
    main()
    sys.exit(0)
