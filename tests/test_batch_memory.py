"""Peak memory of ``RecurrentNetwork.train_batch`` on a large input: the batch
is read once (one copy of the inputs and of the targets, the documented cost)
and the per-sequence state is ``batch_memory_bytes(B)``; nothing may grow with
the input beyond that.

The measurement runs in a child process (``sys.executable -c``), so that the
pytest process's own allocations do not pollute it: the child reports its
``ru_maxrss`` (a high-water mark) just before and just after one call, and the
parent checks the growth against the allowance.
"""

import json
import subprocess
import sys
import textwrap

import pytest

# Input (B, T, n_inputs) float64: 8 * 12_500 * 200 * 8 bytes = 160 MB.
B, T, N_INPUTS, N_NEURONS, N_OUTPUTS = 8, 12_500, 200, 32, 2

# The losses returned are B floats; the slack covers what is not data: the
# allocator (glibc rounds large blocks to pages and gives each of the 2 pool
# threads its own arena, whose touched pages count), the pool threads' stacks,
# PyO3/NumPy temporaries and the pages touched by freeing, none of which scales
# with the input. 16 MiB is ~10% of the input here, far below one extra copy.
SLACK = 16 * 1024 * 1024

CHILD = textwrap.dedent(
    f"""
    import json, resource, sys
    import numpy as np
    import eprop

    B, T, N_INPUTS, N_NEURONS, N_OUTPUTS = {B}, {T}, {N_INPUTS}, {N_NEURONS}, {N_OUTPUTS}

    def maxrss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    net = eprop.RecurrentNetwork(n_inputs=N_INPUTS, n_neurons=N_NEURONS, n_outputs=N_OUTPUTS, seed=0)
    rng = np.random.default_rng(0)
    # Random spikes (every page touched, unlike np.zeros), written 1000 steps
    # at a time so that no large temporary raises the high-water mark first.
    x = np.empty((B, T, N_INPUTS))
    for b in range(B):
        for t0 in range(0, T, 1000):
            x[b, t0 : t0 + 1000] = rng.random((min(1000, T - t0), N_INPUTS)) < 0.05
    y = rng.standard_normal((B, T, N_OUTPUTS))
    # Warm-up on a tiny batch: code, thread pool and allocator arenas in place.
    net.train_batch(np.ascontiguousarray(x[:2, :50]), np.ascontiguousarray(y[:2, :50]), n_threads=2)
    rss_before, before = rss(), maxrss()
    losses = net.train_batch(x, y, n_threads=2)
    after = maxrss()
    assert losses.shape == (B,) and np.isfinite(losses).all(), losses
    print(json.dumps(dict(
        before=before, after=after, rss_before=rss_before, input_bytes=x.nbytes, target_bytes=y.nbytes,
        state_bytes=net.batch_memory_bytes(B) + net.memory_bytes,
    )))
    """
)


@pytest.mark.timeout(300)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB and /proc: Linux")
def test_train_batch_peak_memory_is_one_copy_of_the_input():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    # The high-water mark before the call is at most a little above the RSS
    # then (the input was built without large temporaries), else the growth
    # measured would hide part of what the call allocates.
    assert m["before"] - m["rss_before"] < SLACK, m
    growth = m["after"] - m["before"]
    # One copy of the inputs (+20% for the margin), one of the targets, the
    # network and its per-sequence batch state, and the slack.
    allowance = 1.2 * m["input_bytes"] + m["target_bytes"] + m["state_bytes"] + SLACK
    ratio = growth / m["input_bytes"]
    assert growth < allowance, f"peak grew {growth} bytes ({ratio:.2f} x input), allowed {allowance:.0f}: {m}"
