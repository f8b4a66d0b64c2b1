"""Parallel speed-up of batch training and of Python threads (issue: safe
multithreaded batch training).

    python bench/threads.py [--repeats 5]

1. ``EpropTrainer(40, 100, 3).train_batch`` on B = 8 sequences of T = 1000
   steps (spikes at 10% density), both update modes: sequence-steps per
   second with ``n_threads=1`` and ``n_threads=2``, and the ratio.
2. Two Python threads each calling ``train_sequence`` on their own trainer
   (8 sequences each) against one thread doing both trainers' work.
Best of ``--repeats`` runs; the ratios are measured in the same run. The
numbers only mean something on an otherwise idle machine: the script prints
the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import threading

import eprop
import numpy as np
from _timing import best_of

SHAPE = (40, 100, 3)
B, T = 8, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.random((B, T, SHAPE[0])) < 0.1).astype(np.float64)
    y = rng.standard_normal((B, T, SHAPE[2]))
    print(f"load average before: {os.getloadavg()}")
    print(f"eprop {eprop.__version__}, {os.cpu_count()} CPUs; EpropTrainer{SHAPE}, B={B}, T={T}")
    rows = []
    for update in ("step", "sequence"):
        rates = {}
        for n in (1, 2):
            secs = best_of(
                args.repeats, lambda n=n, u=update: eprop.EpropTrainer(*SHAPE).train_batch(x, y, update=u, n_threads=n)
            )
            rates[n] = B * T / secs
        rows.append((f"train_batch update={update!r}", rates[1], rates[2]))

    def one_trainer() -> None:
        t = eprop.EpropTrainer(*SHAPE)
        for b in range(B):
            t.train_sequence(x[b], y[b])

    def sequential() -> None:
        one_trainer()
        one_trainer()

    def two_threads() -> None:
        threads = [threading.Thread(target=one_trainer) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    seq = best_of(args.repeats, sequential)
    par = best_of(args.repeats, two_threads)
    rows.append(("2 trainers: 1 Python thread vs 2", 2 * B * T / seq, 2 * B * T / par))
    print()
    print("| workload | 1 thread (seq-steps/s) | 2 threads (seq-steps/s) | speed-up | target |")
    print("|---|---:|---:|---:|---|")
    for name, one, two in rows:
        print(f"| {name} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x | >= 1.7x |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
