"""Speed of a long stream, early against late (issue: traces of silent
neurons decaying into subnormal numbers slowed streams down ~5x).

``RecurrentNetwork(100, 100, 1, n_adaptive=20, update="step",
optimizer="sgd", lr=1e-5)`` is trained on one stream of ``--steps`` steps
(default 10^6) of 5% Bernoulli input spikes with a zero target, in chunks of
10^4 steps (``train_stream``, one thread). The script prints the speed of
every ``--every``-th chunk, the speed of the first and of the last chunk and
their ratio (bar: the last within 10% of the first), and how many trace
values are subnormal at the end. Only eprop is timed (no NumPy), so the
OpenBLAS variables are left alone.

    python bench/long_stream.py [--steps 1000000] [--kernel dense]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import eprop  # noqa: E402
import numpy as np  # noqa: E402

CHUNK = 10_000
TRACES = ("_zbar_in", "_zbar_rec", "_zhat", "_eps_a_in", "_eps_a_rec", "_ebar_in", "_ebar_rec")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=10, help="print every k-th chunk")
    ap.add_argument("--kernel", default=None, help="RecurrentNetwork kernel= (default: the class default)")
    ap.add_argument("--json", default=None, help="write the per-chunk speeds here")
    args = ap.parse_args()
    kw = {} if args.kernel is None else {"kernel": args.kernel}
    net = eprop.RecurrentNetwork(100, 100, 1, n_adaptive=20, update="step", optimizer="sgd", lr=1e-5, seed=1, **kw)
    rng = np.random.default_rng(0)
    n_chunks = max(1, args.steps // CHUNK)
    target = np.zeros((CHUNK, 1))
    speeds: list[float] = []

    def chunks():
        for k in range(n_chunks):
            x = (rng.random((CHUNK, 100)) < 0.05).astype(np.float64)
            t0 = time.perf_counter()
            yield x, target
            # the chunk has run when the generator is resumed
            speeds.append(CHUNK / (time.perf_counter() - t0))
            if k % args.every == 0 or k == n_chunks - 1:
                print(f"chunk {k:4d} (steps {k * CHUNK:>9,}): {speeds[-1]:>9,.0f} steps/s", flush=True)

    net.train_stream(chunks(), reset=True)
    state = net.state_dict()
    tiny = np.finfo(np.float64).tiny
    sub = sum(int(np.count_nonzero((state[k] != 0) & (np.abs(state[k]) < tiny))) for k in TRACES)
    first, last = speeds[0], speeds[-1]
    print(f"first chunk {first:,.0f} steps/s, last chunk {last:,.0f} steps/s: last/first = {last / first:.2f}")
    print(f"subnormal trace values at the end: {sub}")
    print("bar: last/first >= 0.90 ->", "met" if last / first >= 0.9 else "NOT met")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": n_chunks * CHUNK, "speeds": speeds, "subnormal": sub}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
