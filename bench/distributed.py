"""Data-parallel training on Ray: 1 against 2 local workers, and the cost of
going through Ray against single-process ``train_batch``.

    python bench/distributed.py [--rounds 5] [--batch 64] [--json docs/distributed.json]

One update of the evidence-accumulation network of
``examples/evidence_accumulation.py`` (``RecurrentNetwork(40, 100, 2)``, 50
ALIF, Adam, ``update="sequence"``) on a batch of 64 trials of the paper's task
(2250 steps each), four ways, alternated round by round (see
``_timing.alternate``):

- ``train_batch(n_threads=1)`` and ``train_batch(n_threads=2)`` in this process;
- ``DataParallel`` with 1 and with 2 workers of one CPU each (a local Ray
  started here; the idle side's workers wait while the other runs).

Printed: seconds per update (median over rounds), the speed-up of 2 workers
over 1 (the target is >= 1.6x on a 2-core machine), and the overhead per
update of Ray (the wall time of an update less the time its slowest worker
spent computing: putting the state into the object store, shipping the shard
and the change rows, loading the state in the worker, applying the mean),
also as bytes moved. Every update starts from the same
weights (a fresh copy), so all sides do identical work. The numbers only
mean something on an otherwise idle machine: the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import eprop
import numpy as np
import ray
from _timing import alternate
from eprop import distributed, tasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from evidence_accumulation import make_network  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    x, y, m = tasks.evidence_accumulation(args.batch, seed=0)
    start = make_network().state_dict()
    fresh = lambda: eprop.RecurrentNetwork.from_state_dict(start)  # noqa: E731
    # both sides' actors stay alive for the alternation (1 + 2 one-CPU workers),
    # so Ray is told of 3 CPUs; only one side runs at a time, on the 2 cores
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    dps = {n: distributed.DataParallel(fresh(), n, cpus_per_worker=1) for n in (1, 2)}

    compute: dict[int, list[float]] = {1: [], 2: []}

    def via(n: int) -> float:
        dp = dps[n]
        dp.network.load_state_dict(start)
        seconds = timed(lambda: dp.train_batch(x, y, mask=m))
        compute[n].append(max(ray.get([w.compute_seconds.remote() for w in dp.workers])))
        return seconds

    # a first update on every side (worker start-up, imports) is not timed
    for n in dps:
        via(n)
        compute[n].clear()
    sides = {
        "train_batch n_threads=1": lambda: timed(lambda: fresh().train_batch(x, y, mask=m, n_threads=1)),
        "train_batch n_threads=2": lambda: timed(lambda: fresh().train_batch(x, y, mask=m, n_threads=2)),
        "DataParallel 1 worker": lambda: via(1),
        "DataParallel 2 workers": lambda: via(2),
    }
    results = alternate(args.rounds, sides)
    # the same update on every side: check it (bitwise) once
    check = {}
    for n, dp in dps.items():
        dp.network.load_state_dict(start)
        dp.train_batch(x, y, mask=m)
        check[n] = dp.network.state_dict()["W_rec"]
    ref = fresh()
    ref.train_batch(x, y, mask=m)
    assert all(np.array_equal(ref.state_dict()["W_rec"], w) for w in check.values())
    for dp in dps.values():
        dp.close()
    ray.shutdown()

    med = {k: statistics.median(v) for k, v in results.items()}
    steps = args.batch * x.shape[1]
    state_bytes = len(pickle.dumps(start))
    p = sum(v.size for k, v in start.items() if k in ("W_in", "W_rec", "W_out", "b_out"))
    per_step_moved = state_bytes * 2 + x[:, :, :].nbytes + y.nbytes + m.nbytes + args.batch * p * 8
    print(f"eprop {eprop.__version__}, {os.cpu_count()} CPUs, ray {ray.__version__}")
    print(f"RecurrentNetwork(40, 100, 2), B = {args.batch}, T = {x.shape[1]}; median of {args.rounds} rounds")
    for k, v in med.items():
        spread = f"{min(results[k]):.3f}-{max(results[k]):.3f}"
        print(f"  {k:26s} {v:7.3f} s/update  ({spread})  {steps / v / 1e3:7.1f} k sequence-steps/s")
    speedup = med["DataParallel 1 worker"] / med["DataParallel 2 workers"]
    # the overhead of going through Ray, measured within the same process pair:
    # each update's wall time less the time its slowest worker spent computing
    # (separate processes can differ in speed on this machine, so the in-process
    # train_batch is no reference for this)
    label = {1: "DataParallel 1 worker", 2: "DataParallel 2 workers"}
    overhead = {n: statistics.median(w - c for w, c in zip(results[label[n]], compute[n])) for n in dps}
    vs_threads = med["train_batch n_threads=2"] / med["DataParallel 2 workers"]
    paired = [a / b for a, b in zip(results[label[1]], results[label[2]])]
    print(
        f"2 workers / 1 worker: {speedup:.2f}x (target >= 1.6x); round by round: median "
        f"{statistics.median(paired):.2f}x, {min(paired):.2f}-{max(paired):.2f}x"
    )
    print(f"2 workers against train_batch with 2 threads: {vs_threads:.2f}x")
    for n in dps:
        share = overhead[n] / med[label[n]] * 100
        print(
            f"overhead per update with {n} worker(s) (wall time less the slowest worker's compute): "
            f"{overhead[n] * 1e3:.0f} ms ({share:.1f}% of the update)"
        )
    print(f"about {per_step_moved / 2**20:.1f} MiB moved per update (state, batch, change rows)")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "batch": args.batch,
                    "T": int(x.shape[1]),
                    "rounds": args.rounds,
                    "seconds": results,
                    "median": med,
                    "speedup_2_over_1_worker": speedup,
                    "speedup_round_by_round": paired,
                    "worker_compute_seconds": {n: c[: args.rounds] for n, c in compute.items()},
                    "overhead_s_per_update": overhead,
                    "moved_bytes_per_update": per_step_moved,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
