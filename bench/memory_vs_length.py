"""Peak memory of online e-prop vs. a NumPy BPTT reference, against sequence length.

For T = 10^3 ... 10^7 steps (``--max-t``, default 10^7; ``--quick`` stops at
10^5) this script measures, each in a *fresh child process* (this same script
run with ``--child ...``), the peak resident set size (``ru_maxrss``, MiB) of:

* **eprop**: ``eprop.EpropTrainer(100, 256, 10, seed=42)`` trained with
  ``train_stream(generator)`` on a stream of T steps. The generator makes the
  data chunk by chunk (1000-step chunks; inputs: binary spikes at 10% density
  from a seeded ``numpy.random.Generator``; targets: one sine per output,
  periods 50, 100, ..., 500 steps), so the whole sequence never exists at once.
  The child also reports its RSS right after imports and trainer construction
  (the *baseline*, before any training), steps/s (end to end, data generation
  included; generation time is reported separately) and
  ``trainer.memory_bytes``.
* **BPTT** (reference, plain NumPy, see ``bptt_train`` below): the same network
  sizes, trained with one full-sequence backpropagation-through-time step on
  the same kind of stream. BPTT must keep the forward states of every step
  until the backward pass, so its memory grows linearly with T; it is run only
  where the estimated memory (stored states
  ``T * (n_in + 3*n_rec + n_out) * 8`` bytes plus temporaries and the
  interpreter) is below ``--bptt-max-gib`` (default 8 GiB); larger T are
  reported as "n/a (estimated X GiB)".

Each child reports its own ``ru_maxrss``; the parent cross-checks it with the
kernel's rusage of that child (``os.wait4``). Results go to a Markdown table
on stdout, ``bench/out/memory_vs_length.json`` (rewritten after every
measurement, so a partial run keeps what it measured) and, if matplotlib is
installed (the ``plot`` extra), ``bench/out/memory_vs_length.png``.

Environment: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (which slow NumPy on some of
these machines) are removed from the children's environment, and the children
run with OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, MKL_NUM_THREADS=1 and
RAYON_NUM_THREADS=1. The parent itself never imports eprop, and imports NumPy
only (through matplotlib) to draw the plot at the end.

Before the measurements a tiny-network gradient check runs (in a child): the
BPTT code, with the Heaviside spike replaced by a sigmoid and the surrogate by
its exact derivative, is compared against central finite differences.

Usage::

    python bench/memory_vs_length.py [--quick] [--max-t N] [--bptt-max-gib G]
                                     [--chunk 1000] [--out-dir bench/out]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

N_IN, N_REC, N_OUT = 100, 256, 10
DENSITY = 0.10
DATA_SEED = 2024
WEIGHT_SEED = 7
SLOW_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB


# =============================================================================
# helpers shared by parent and children
# =============================================================================
def maxrss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    """ru_maxrss in bytes (KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(who).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def current_rss_bytes() -> int | None:
    """Current VmRSS from /proc (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def bptt_estimate_bytes(t: int, chunk: int) -> int:
    """Estimated peak RSS of the BPTT child: stored states + temporaries + interpreter."""
    store = t * (N_IN + 3 * N_REC + N_OUT) * 8
    # block buffers of the forward/backward passes (a few (chunk, width) arrays)
    temporaries = 4 * chunk * (N_IN + 4 * N_REC + 2 * N_OUT) * 8
    interpreter = 40 * 1024 * 1024  # python + numpy, measured ~30-40 MiB
    weights = 4 * 8 * (N_REC * N_IN + N_REC * N_REC + N_OUT * N_REC)
    return store + temporaries + interpreter + weights


# =============================================================================
# child side (imports numpy / eprop only here)
# =============================================================================
def make_chunks(np, t_total: int, chunk: int, n_in: int, n_out: int, seed: int, timer=None):
    """Yield (inputs (t, n_in), targets (t, n_out)) float64 chunks covering t_total steps.

    Inputs: binary spikes, density 10%, from ``np.random.default_rng(seed)``.
    Targets: ``sin(2*pi*t / (50*(k+1)))`` for output k (t = global step index).
    ``timer`` (a one-element list) accumulates the time spent generating.
    """
    rng = np.random.default_rng(seed)
    periods = 50.0 * np.arange(1, n_out + 1)
    start = 0
    while start < t_total:
        t0 = time.perf_counter()
        n = min(chunk, t_total - start)
        x = (rng.random((n, n_in)) < DENSITY).astype(np.float64)
        steps = np.arange(start, start + n, dtype=np.float64)[:, None]
        y = np.sin(2.0 * np.pi * steps / periods[None, :])
        if timer is not None:
            timer[0] += time.perf_counter() - t0
        yield x, y
        start += n


def with_progress(chunks, t_total: int, label: str, every_s: float = 60.0):
    """Pass chunks through, printing a progress line to stderr every ``every_s`` s."""
    t_start = time.perf_counter()
    last = t_start
    done = 0
    for x, y in chunks:
        yield x, y
        done += len(x)
        now = time.perf_counter()
        if now - last >= every_s and done < t_total:
            last = now
            rate = done / (now - t_start)
            eta = (t_total - done) / rate if rate > 0 else float("nan")
            print(
                f"    [{label}] {done:,}/{t_total:,} steps, {rate:,.0f} steps/s, "
                f"RSS {current_rss_bytes() / MIB:.1f} MiB, ETA {eta / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )


def import_eprop(retries: int = 10, wait_s: float = 3.0):
    """Import eprop, retrying: the package may be being reinstalled meanwhile."""
    last = None
    for _ in range(retries):
        try:
            import eprop  # noqa: PLC0415

            return eprop
        except Exception as e:  # noqa: BLE001 - transient ImportError/OSError
            last = e
            for name in [m for m in sys.modules if m == "eprop" or m.startswith("eprop.")]:
                del sys.modules[name]
            time.sleep(wait_s)
    raise RuntimeError(f"could not import eprop after {retries} tries: {last!r}")


def child_eprop(t_total: int, chunk: int) -> dict:
    import numpy as np  # noqa: PLC0415

    eprop = import_eprop()
    trainer = eprop.EpropTrainer(N_IN, N_REC, N_OUT, seed=42)
    base_peak = maxrss_bytes()
    base_now = current_rss_bytes()
    gen_time = [0.0]
    chunks = make_chunks(np, t_total, chunk, N_IN, N_OUT, DATA_SEED, timer=gen_time)
    t0 = time.perf_counter()
    loss = trainer.train_stream(with_progress(chunks, t_total, f"eprop T={t_total:.0e}"))
    elapsed = time.perf_counter() - t0
    peak = maxrss_bytes()
    return {
        "kind": "eprop",
        "T": t_total,
        "baseline_peak_rss_bytes": base_peak,
        "baseline_current_rss_bytes": base_now,
        "peak_rss_bytes": peak,
        "end_current_rss_bytes": current_rss_bytes(),
        "elapsed_s": elapsed,
        "generation_s": gen_time[0],
        "steps_per_s": t_total / elapsed,
        "steps_per_s_excluding_generation": t_total / max(elapsed - gen_time[0], 1e-12),
        "memory_bytes": int(trainer.memory_bytes),
        "mean_loss": float(loss),
        "eprop_file": getattr(eprop, "__file__", None),
    }


def bptt_train(
    np,
    w_in,
    w_rec,
    w_out,
    chunks,
    t_total: int,
    *,
    tau_mem: float = 20.0,
    threshold: float = 1.0,
    dt: float = 1.0,
    gamma: float = 0.3,
    lr: float = 0.0,
    smooth_beta: float | None = None,
    block: int = 1000,
    progress_label: str | None = None,
):
    """One step of full-sequence BPTT with a surrogate gradient (plain NumPy).

    Network (the e-prop LIF network of Bellec et al. 2020, row index = time):
    ``alpha = exp(-dt/tau_mem)``, ``v_0 = z_0 = 0``, for t = 1..T::

        v_t = alpha * v_{t-1} + W_in x_t + (W_rec - thr*I) z_{t-1}   (reset by subtraction)
        z_t = H(v_t - thr)                                          (spikes)
        y_t = W_out z_t                                             (linear readout)
        L   = 1/(T * n_out) * sum_t ||y_t - y*_t||^2                (MSE)

    ``diag(W_rec) = 0``. H has no useful derivative, so dz_t/dv_t is replaced by
    the pseudo-derivative ``psi_t = gamma/thr * max(0, 1 - |v_t - thr|/thr)``.
    With ``smooth_beta`` set, H is replaced by ``sigmoid((v - thr)/beta)`` and
    psi by its exact derivative: the gradient is then exact (used by the
    finite-difference check).

    Forward pass: runs step by step over the stream and STORES, for every step,
    x_t (n_in), v_t, z_t, psi_t (3*n_rec) and y*_t (n_out) in float64 arrays of
    T rows -- what BPTT has to keep (psi could be recomputed from v; autograd
    frameworks keep it). That is ``T * (n_in + 3*n_rec + n_out) * 8`` bytes.

    Backward pass through time, with ``delta_t = dL/dv_t`` (total derivative),
    ``e_t = dL/dy_t = 2 (y_t - y*_t) / (T n_out)`` and ``delta_{T+1} = 0``::

        dL/dz_t  = W_out^T e_t + (W_rec - thr*I)^T delta_{t+1}
        delta_t  = psi_t * dL/dz_t + alpha * delta_{t+1}
        dL/dW_in  = sum_t delta_t x_t^T
        dL/dW_rec = sum_t delta_t z_{t-1}^T      (diagonal masked to 0)
        dL/dW_out = sum_t e_t z_t^T

    It runs backwards in blocks of ``block`` steps (the recursion is step by
    step; the weight-gradient sums are block matrix products), so temporaries
    are O(block), not O(T). Then one SGD update ``W -= lr * dL/dW``.

    Returns a dict with the loss, the gradients, the updated weights, the
    stored bytes and the forward/backward times.
    """
    n_rec, n_in = w_in.shape
    n_out = w_out.shape[0]
    alpha = math.exp(-dt / tau_mem)
    thr = threshold
    m = w_rec - thr * np.eye(n_rec)
    m_t = np.ascontiguousarray(m.T)  # row-vector form: (M z)^T = z^T M^T

    # ---- forward pass, storing the states of every step ----------------------
    t_fwd = time.perf_counter()
    xs = np.empty((t_total, n_in))
    vs = np.empty((t_total, n_rec))
    zs = np.empty((t_total, n_rec))
    psis = np.empty((t_total, n_rec))
    ys_target = np.empty((t_total, n_out))
    stored_bytes = sum(a.nbytes for a in (xs, vs, zs, psis, ys_target))
    v = np.zeros(n_rec)
    z = np.zeros(n_rec)
    pos = 0
    last_print = time.perf_counter()
    for x_chunk, y_chunk in chunks:
        n = len(x_chunk)
        xs[pos : pos + n] = x_chunk
        ys_target[pos : pos + n] = y_chunk
        i_in = x_chunk @ w_in.T  # (n, n_rec) input currents
        for i in range(n):
            v = alpha * v + i_in[i] + z @ m_t
            if smooth_beta is None:
                z = (v > thr).astype(np.float64)
            else:
                z = 1.0 / (1.0 + np.exp(-(v - thr) / smooth_beta))
            vs[pos + i] = v
            zs[pos + i] = z
        vb = vs[pos : pos + n]
        if smooth_beta is None:
            psis[pos : pos + n] = gamma / thr * np.maximum(0.0, 1.0 - np.abs(vb - thr) / thr)
        else:
            zb = zs[pos : pos + n]
            psis[pos : pos + n] = zb * (1.0 - zb) / smooth_beta
        pos += n
        if progress_label and time.perf_counter() - last_print >= 60.0:
            last_print = time.perf_counter()
            print(
                f"    [{progress_label}] forward {pos:,}/{t_total:,} steps, RSS {current_rss_bytes() / MIB:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
    if pos != t_total:
        raise ValueError(f"stream had {pos} steps, expected {t_total}")
    t_fwd = time.perf_counter() - t_fwd

    # ---- backward pass through time, block by block (last block first) -------
    t_bwd = time.perf_counter()
    g_in = np.zeros_like(w_in)
    g_rec = np.zeros_like(w_rec)
    g_out = np.zeros_like(w_out)
    loss_sum = 0.0
    scale = 2.0 / (t_total * n_out)
    delta_next = np.zeros(n_rec)
    deltas = np.empty((block, n_rec))
    starts = list(range(0, t_total, block))
    for s in reversed(starts):
        e_ = min(s + block, t_total)
        n = e_ - s
        zb = zs[s:e_]
        err = zb @ w_out.T - ys_target[s:e_]  # (n, n_out) y_t - y*_t
        loss_sum += float(np.sum(err * err))
        e_grad = scale * err  # dL/dy_t
        dz_direct = e_grad @ w_out  # (n, n_rec): W_out^T e_t
        pb = psis[s:e_]
        for i in range(n - 1, -1, -1):
            dz = dz_direct[i] + delta_next @ m  # (M^T delta)^T = delta^T M
            delta_next = pb[i] * dz + alpha * delta_next
            deltas[i] = delta_next
        d = deltas[:n]
        g_in += d.T @ xs[s:e_]
        if s > 0:
            g_rec += d.T @ zs[s - 1 : e_ - 1]
        else:  # z_0 = 0
            g_rec += d[1:].T @ zs[0 : e_ - 1]
        g_out += e_grad.T @ zb
        if progress_label and time.perf_counter() - last_print >= 60.0:
            last_print = time.perf_counter()
            print(
                f"    [{progress_label}] backward at step {s:,}, RSS {current_rss_bytes() / MIB:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
    np.fill_diagonal(g_rec, 0.0)
    t_bwd = time.perf_counter() - t_bwd

    # ---- one SGD update --------------------------------------------------------
    new_in = w_in - lr * g_in
    new_rec = w_rec - lr * g_rec
    np.fill_diagonal(new_rec, 0.0)
    new_out = w_out - lr * g_out
    return {
        "loss": loss_sum / (t_total * n_out),
        "g_in": g_in,
        "g_rec": g_rec,
        "g_out": g_out,
        "w_in": new_in,
        "w_rec": new_rec,
        "w_out": new_out,
        "stored_bytes": stored_bytes,
        "spike_rate": float(zs.mean()) if smooth_beta is None else float("nan"),
        "forward_s": t_fwd,
        "backward_s": t_bwd,
    }


def init_weights(np, n_in: int, n_rec: int, n_out: int, seed: int):
    rng = np.random.default_rng(seed)
    w_in = rng.normal(0.0, 1.0 / math.sqrt(n_in), (n_rec, n_in))
    w_rec = rng.normal(0.0, 1.0 / math.sqrt(n_rec), (n_rec, n_rec))
    np.fill_diagonal(w_rec, 0.0)
    w_out = rng.normal(0.0, 1.0 / math.sqrt(n_rec), (n_out, n_rec))
    return w_in, w_rec, w_out


def child_bptt(t_total: int, chunk: int) -> dict:
    import numpy as np  # noqa: PLC0415

    w_in, w_rec, w_out = init_weights(np, N_IN, N_REC, N_OUT, WEIGHT_SEED)
    base_peak = maxrss_bytes()
    base_now = current_rss_bytes()
    chunks = make_chunks(np, t_total, chunk, N_IN, N_OUT, DATA_SEED)
    t0 = time.perf_counter()
    r = bptt_train(
        np,
        w_in,
        w_rec,
        w_out,
        chunks,
        t_total,
        lr=0.01,
        block=chunk,
        progress_label=f"bptt T={t_total:.0e}",
    )
    elapsed = time.perf_counter() - t0
    return {
        "kind": "bptt",
        "T": t_total,
        "baseline_peak_rss_bytes": base_peak,
        "baseline_current_rss_bytes": base_now,
        "peak_rss_bytes": maxrss_bytes(),
        "stored_bytes": r["stored_bytes"],
        "estimated_bytes": bptt_estimate_bytes(t_total, chunk),
        "elapsed_s": elapsed,
        "forward_s": r["forward_s"],
        "backward_s": r["backward_s"],
        "steps_per_s": t_total / elapsed,
        "loss": r["loss"],
        "spike_rate": r["spike_rate"],
        "grad_norms": {
            "W_in": float(np.linalg.norm(r["g_in"])),
            "W_rec": float(np.linalg.norm(r["g_rec"])),
            "W_out": float(np.linalg.norm(r["g_out"])),
        },
    }


def child_gradcheck() -> dict:
    """Smooth (sigmoid) version of the BPTT code vs central finite differences."""
    import numpy as np  # noqa: PLC0415

    n_in, n_rec, n_out, t_total, chunk = 3, 5, 2, 40, 7
    beta = 0.5
    w_in, w_rec, w_out = init_weights(np, n_in, n_rec, n_out, 3)
    w_in *= 3.0  # drive the membranes near threshold
    kw = dict(tau_mem=5.0, threshold=1.0, smooth_beta=beta, block=6)

    def run(a, b, c):
        return bptt_train(np, a, b, c, make_chunks(np, t_total, chunk, n_in, n_out, 5), t_total, **kw)

    r = run(w_in, w_rec, w_out)
    worst = {}
    eps = 1e-6
    for name, idx in (("W_in", 0), ("W_rec", 1), ("W_out", 2)):
        ws = [w_in.copy(), w_rec.copy(), w_out.copy()]
        g = r[["g_in", "g_rec", "g_out"][idx]]
        num = np.zeros_like(g)
        for k in np.ndindex(g.shape):
            if idx == 1 and k[0] == k[1]:
                continue  # diagonal is fixed at 0
            wp = [w.copy() for w in ws]
            wm = [w.copy() for w in ws]
            wp[idx][k] += eps
            wm[idx][k] -= eps
            num[k] = (run(*wp)["loss"] - run(*wm)["loss"]) / (2 * eps)
        rel = np.max(np.abs(g - num)) / max(np.max(np.abs(num)), 1e-300)
        worst[name] = float(rel)
    return {"kind": "gradcheck", "max_rel_err": worst, "ok": max(worst.values()) < 1e-5}


def child_main(args) -> None:
    if args.child == "eprop":
        out = child_eprop(args.t, args.chunk)
    elif args.child == "bptt":
        out = child_bptt(args.t, args.chunk)
    else:
        out = child_gradcheck()
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


# =============================================================================
# parent side
# =============================================================================
def child_env() -> tuple[dict, list[str]]:
    env = dict(os.environ)
    removed = [f"{v}={env.pop(v)}" for v in SLOW_BLAS_VARS if v in env]
    for v in THREAD_VARS:
        env[v] = "1"
    return env, removed


def run_child(env: dict, kind: str, t: int, chunk: int) -> dict:
    """Run ``--child kind`` in a fresh process; return its RESULT dict (or an error)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--t", str(t), "--chunk", str(chunk)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    kernel_peak = int(ru.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    result = None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    if p.returncode != 0 or result is None:
        return {
            "kind": kind,
            "T": t,
            "error": f"child exited with {p.returncode}",
            "wall_s": wall,
            "kernel_peak_rss_bytes": kernel_peak,
        }
    result["kernel_peak_rss_bytes"] = kernel_peak
    result["wall_s"] = wall
    return result


def fmt_mib(b) -> str:
    return f"{b / MIB:.1f}" if b is not None else "n/a"


def t_label(t: int) -> str:
    k = math.log10(t)
    return f"10^{int(round(k))}" if abs(k - round(k)) < 1e-9 else f"{t:,}"


def build_rows(ts, eprop_res, bptt_res):
    rows = []
    for t in ts:
        e = eprop_res.get(t)
        b = bptt_res.get(t)
        row = {"T": t}
        if e is not None and "error" not in e:
            row.update(
                eprop_peak_rss_mib=e["peak_rss_bytes"] / MIB,
                eprop_kernel_peak_rss_mib=e["kernel_peak_rss_bytes"] / MIB,
                eprop_baseline_rss_mib=e["baseline_peak_rss_bytes"] / MIB,
                eprop_baseline_current_rss_mib=(e["baseline_current_rss_bytes"] or 0) / MIB,
                eprop_training_rss_above_baseline_mib=(e["peak_rss_bytes"] - e["baseline_peak_rss_bytes"]) / MIB,
                eprop_steps_per_s=e["steps_per_s"],
                eprop_steps_per_s_excluding_generation=e["steps_per_s_excluding_generation"],
                eprop_elapsed_s=e["elapsed_s"],
                eprop_memory_bytes=e["memory_bytes"],
                eprop_mean_loss=e["mean_loss"],
            )
        elif e is not None:
            row["eprop_error"] = e["error"]
        if b is None:
            pass
        elif "skipped" in b:
            row["bptt_peak_rss_mib"] = None
            row["bptt_note"] = b["skipped"]
            row["bptt_estimated_gib"] = b["estimated_bytes"] / GIB
        elif "error" in b:
            row["bptt_peak_rss_mib"] = None
            row["bptt_note"] = b["error"]
            row["bptt_estimated_gib"] = bptt_estimate_bytes(t, 1000) / GIB
        else:
            row.update(
                bptt_peak_rss_mib=b["peak_rss_bytes"] / MIB,
                bptt_kernel_peak_rss_mib=b["kernel_peak_rss_bytes"] / MIB,
                bptt_baseline_rss_mib=b["baseline_peak_rss_bytes"] / MIB,
                bptt_stored_mib=b["stored_bytes"] / MIB,
                bptt_estimated_gib=b["estimated_bytes"] / GIB,
                bptt_steps_per_s=b["steps_per_s"],
                bptt_forward_s=b["forward_s"],
                bptt_backward_s=b["backward_s"],
                bptt_loss=b["loss"],
                bptt_spike_rate=b["spike_rate"],
            )
        rows.append(row)
    return rows


def flatness(rows):
    vals = [r["eprop_peak_rss_mib"] for r in rows if "eprop_peak_rss_mib" in r]
    if len(vals) < 2:
        return None
    return (max(vals) - min(vals)) / min(vals), min(vals), max(vals)


def render_tables(rows) -> str:
    lines = [
        "| T | eprop peak RSS (MiB) | eprop training RSS above baseline (MiB) | BPTT peak RSS (MiB) | steps/s eprop |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ep = f"{r['eprop_peak_rss_mib']:.1f}" if "eprop_peak_rss_mib" in r else r.get("eprop_error", "not run")
        ab = f"{r['eprop_training_rss_above_baseline_mib']:+.1f}" if "eprop_peak_rss_mib" in r else "n/a"
        if r.get("bptt_peak_rss_mib") is not None:
            bp = f"{r['bptt_peak_rss_mib']:.1f}"
        elif "bptt_note" in r:
            bp = r["bptt_note"]
        else:
            bp = "not run"
        sp = f"{r['eprop_steps_per_s']:,.0f}" if "eprop_steps_per_s" in r else "n/a"
        lines.append(f"| {t_label(r['T'])} | {ep} | {ab} | {bp} | {sp} |")
    lines += [
        "",
        "Details:",
        "",
        "| T | eprop baseline RSS (MiB) | eprop memory_bytes | eprop time (s) | eprop steps/s excl. data gen"
        " | BPTT stored states (MiB) | BPTT est. (GiB) | BPTT fwd+bwd (s) | BPTT steps/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        eb = f"{r['eprop_baseline_rss_mib']:.1f}" if "eprop_baseline_rss_mib" in r else "n/a"
        mb = f"{r['eprop_memory_bytes']:,}" if "eprop_memory_bytes" in r else "n/a"
        et = f"{r['eprop_elapsed_s']:.1f}" if "eprop_elapsed_s" in r else "n/a"
        ex = f"{r['eprop_steps_per_s_excluding_generation']:,.0f}" if "eprop_elapsed_s" in r else "n/a"
        bs = f"{r['bptt_stored_mib']:.1f}" if "bptt_stored_mib" in r else "n/a"
        be = f"{r['bptt_estimated_gib']:.2f}" if "bptt_estimated_gib" in r else "n/a"
        bt = f"{r['bptt_forward_s']:.1f}+{r['bptt_backward_s']:.1f}" if "bptt_forward_s" in r else "n/a"
        bsp = f"{r['bptt_steps_per_s']:,.0f}" if "bptt_steps_per_s" in r else "n/a"
        lines.append(f"| {t_label(r['T'])} | {eb} | {mb} | {et} | {ex} | {bs} | {be} | {bt} | {bsp} |")
    return "\n".join(lines)


def save_json(path, meta, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    os.replace(tmp, path)


def save_plot(path, rows) -> str:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "matplotlib not installed (pip install 'eprop[plot]' or matplotlib): plot skipped"
    ep = [(r["T"], r["eprop_peak_rss_mib"]) for r in rows if "eprop_peak_rss_mib" in r]
    eb = [(r["T"], r["eprop_baseline_rss_mib"]) for r in rows if "eprop_baseline_rss_mib" in r]
    bp = [(r["T"], r["bptt_peak_rss_mib"]) for r in rows if r.get("bptt_peak_rss_mib") is not None]
    be = [
        (r["T"], r["bptt_estimated_gib"] * 1024)
        for r in rows
        if r.get("bptt_peak_rss_mib") is None and "bptt_estimated_gib" in r
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, logy in ((axes[0], True), (axes[1], False)):
        if ep:
            ax.plot(*zip(*ep), "o-", color="C0", label="eprop train_stream: peak RSS")
        if eb:
            ax.plot(*zip(*eb), "--", color="C0", alpha=0.5, label="eprop: baseline (imports + trainer)")
        if logy:
            if bp:
                ax.plot(*zip(*bp), "s-", color="C3", label="NumPy BPTT: peak RSS")
            if be:
                last = [bp[-1]] if bp else []
                ax.plot(*zip(*(last + be)), "s:", color="C3", mfc="none", label="NumPy BPTT: estimated (not run)")
            ax.set_yscale("log")
            ax.set_title("Peak RSS vs sequence length (log-log)")
        else:
            ax.set_title("eprop only (linear y)")
            vals = [v for _, v in ep + eb]
            if vals:
                ax.set_ylim(0, max(vals) * 1.3)
        ax.set_xscale("log")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("peak resident memory (MiB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Recurrent SNN {N_IN}-{N_REC}-{N_OUT}: online e-prop vs BPTT (fresh process per point)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot saved to {path}"


def parent_main(args) -> None:
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "memory_vs_length.json")
    png_path = os.path.join(args.out_dir, "memory_vs_length.png")
    max_t = min(args.max_t, 10**5) if args.quick else args.max_t
    ts = [10**k for k in range(3, 8) if 10**k <= max_t]
    if max_t not in ts and max_t >= 1:
        ts.append(max_t)
    ts.sort()

    env, removed = child_env()
    if removed:
        print(f"Removed from the children's environment (they slow NumPy): {', '.join(removed)}")
    else:
        print("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are not set (nothing to remove for the children).")
    print("Children run with " + ", ".join(f"{v}=1" for v in THREAD_VARS) + ".")
    print(f"Network {N_IN}-{N_REC}-{N_OUT}, chunks of {args.chunk} steps, T = {', '.join(t_label(t) for t in ts)}")
    print(f"Python: {sys.executable}")

    meta = {
        "network": [N_IN, N_REC, N_OUT],
        "chunk": args.chunk,
        "density": DENSITY,
        "data_seed": DATA_SEED,
        "ts": ts,
        "bptt_max_gib": args.bptt_max_gib,
        "removed_env": removed,
        "child_env_threads": {v: "1" for v in THREAD_VARS},
        "python": sys.executable,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rss_note": "peak RSS = ru_maxrss of a fresh child process (self-reported; kernel_peak via os.wait4)",
    }

    print("\nGradient check of the BPTT code (tiny smooth network vs finite differences) ...", flush=True)
    gc = run_child(env, "gradcheck", 0, args.chunk)
    if "error" in gc:
        print(f"  gradient check FAILED to run: {gc['error']}")
    else:
        errs = ", ".join(f"{k} {v:.1e}" for k, v in gc["max_rel_err"].items())
        print(f"  max relative error: {errs} -> {'OK' if gc['ok'] else 'MISMATCH'}")
    meta["gradcheck"] = gc

    eprop_res: dict[int, dict] = {}
    bptt_res: dict[int, dict] = {}
    for t in ts:
        print(f"\n[T = {t_label(t)}] eprop train_stream ...", flush=True)
        e = run_child(env, "eprop", t, args.chunk)
        eprop_res[t] = e
        if "error" in e:
            print(f"  eprop: {e['error']}")
        else:
            meta.setdefault("eprop_file", e.get("eprop_file"))
            print(
                f"  eprop: peak {fmt_mib(e['peak_rss_bytes'])} MiB (kernel {fmt_mib(e['kernel_peak_rss_bytes'])}),"
                f" baseline {fmt_mib(e['baseline_peak_rss_bytes'])} MiB, {e['steps_per_s']:,.0f} steps/s,"
                f" {e['elapsed_s']:.1f} s, memory_bytes {e['memory_bytes']:,}, loss {e['mean_loss']:.4g}"
            )
        est = bptt_estimate_bytes(t, args.chunk)
        if est / GIB > args.bptt_max_gib:
            note = f"n/a (estimated {est / GIB:.1f} GiB)"
            bptt_res[t] = {"skipped": note, "estimated_bytes": est}
            print(f"  BPTT: {note} > {args.bptt_max_gib:g} GiB limit, skipped")
        else:
            print(f"  BPTT (estimated {est / GIB:.2f} GiB) ...", flush=True)
            b = run_child(env, "bptt", t, args.chunk)
            bptt_res[t] = b
            if "error" in b:
                print(f"  BPTT: {b['error']}")
            else:
                print(
                    f"  BPTT: peak {fmt_mib(b['peak_rss_bytes'])} MiB (kernel {fmt_mib(b['kernel_peak_rss_bytes'])}),"
                    f" stored states {fmt_mib(b['stored_bytes'])} MiB, {b['steps_per_s']:,.0f} steps/s"
                    f" (fwd {b['forward_s']:.1f} s + bwd {b['backward_s']:.1f} s), loss {b['loss']:.4g},"
                    f" spike rate {b['spike_rate']:.3f}"
                )
        meta["finished"] = None
        save_json(json_path, meta, build_rows(ts, eprop_res, bptt_res))

    rows = build_rows(ts, eprop_res, bptt_res)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    fl = flatness(rows)
    if fl is not None:
        meta["eprop_peak_rss_flatness"] = fl[0]
    save_json(json_path, meta, rows)

    print("\n" + render_tables(rows) + "\n")
    if fl is not None:
        rel, lo, hi = fl
        verdict = "within 5%" if rel <= 0.05 else "NOT within 5%"
        print(
            f"Flatness of eprop peak RSS over T = {t_label(ts[0])}..{t_label(ts[-1])}: "
            f"(max - min) / min = ({hi:.1f} - {lo:.1f}) / {lo:.1f} = {100 * rel:.2f}% -> {verdict}"
        )
    print(f"JSON written to {json_path}")
    print(save_plot(png_path, rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-t", type=int, default=10**7, help="largest T (default 10^7)")
    ap.add_argument("--quick", action="store_true", help="max T 10^5")
    ap.add_argument(
        "--bptt-max-gib",
        type=float,
        default=8.0,
        help="run BPTT only if its estimated memory is below this (GiB, default 8)",
    )
    ap.add_argument("--chunk", type=int, default=1000, help="steps per generated chunk (default 1000)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    ap.add_argument("--child", choices=("eprop", "bptt", "gradcheck"), help=argparse.SUPPRESS)
    ap.add_argument("--t", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
