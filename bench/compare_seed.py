"""Speed of eprop against the reference sc-neurocore (seed classes).

Trains (and runs inference on) the same sequences with ``eprop`` and with
``sc_neurocore.online_learning`` (the reference) and prints steps per second
and the ratio eprop / sc-neurocore, single thread:

* ``EpropTrainer.train_sequence`` at (n_inputs, n_neurons, n_outputs) =
  (4,16,2), (40,100,3), (100,256,10), (200,1024,10)
* ``EpropTrainer.predict_sequence`` at the same four shapes
* ``OnlineTrainer.train_sequence`` at [4,16,2] and [784,512,256,10]

Inputs are binary spikes at 10% density, targets uniform random in [0, 1),
both from a fixed NumPy seed; the same arrays (same T) go to both libraries.
Every repeat builds fresh trainers (construction not timed), so every repeat
does identical work; the best of 3 repeats is reported. T is chosen so that a
reference measurement takes roughly 0.5-2 s on a 2-core x86 box.
The losses/outputs of both libraries are compared as a sanity check.

Usage::

    python bench/compare_seed.py [--quick] [--json PATH] [--repeats N]

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow NumPy down on this machine; if
either is set, the script re-executes itself once with both removed from its
own environment (nothing outside this process is changed).
"""

# --- environment: must run before numpy / eprop are imported ---------------
import os
import sys

_SLOW_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_MARKER = "_EPROP_BENCH_UNSET_VARS"

if any(v in os.environ for v in _SLOW_BLAS_VARS):
    _env = dict(os.environ)
    _removed = [f"{v}={_env.pop(v)}" for v in _SLOW_BLAS_VARS if v in _env]
    _env[_MARKER] = " ".join(_removed)
    _argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    _argv[0] = sys.executable
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, _argv, _env)

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_v] = "1"
# ---------------------------------------------------------------------------

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import eprop  # noqa: E402
import numpy as np  # noqa: E402
import sc_neurocore  # noqa: E402
from sc_neurocore import online_learning as ref  # noqa: E402

SEED = 12345
DENSITY = 0.10

# (method, shape, T_full); T_full picked so the reference takes ~0.5-2 s per call
# (steady state, 2-core AMD EPYC); --quick uses T_full // 10.
CASES = [
    ("EpropTrainer.train_sequence", (4, 16, 2), 12000),
    ("EpropTrainer.train_sequence", (40, 100, 3), 5000),
    ("EpropTrainer.train_sequence", (100, 256, 10), 1600),
    ("EpropTrainer.train_sequence", (200, 1024, 10), 50),
    ("EpropTrainer.predict_sequence", (4, 16, 2), 24000),
    ("EpropTrainer.predict_sequence", (40, 100, 3), 8000),
    ("EpropTrainer.predict_sequence", (100, 256, 10), 3000),
    ("EpropTrainer.predict_sequence", (200, 1024, 10), 80),
    ("OnlineTrainer.train_sequence", (4, 16, 2), 8000),
    ("OnlineTrainer.train_sequence", (784, 512, 256, 10), 200),
]

# Minimum speed-up targets (eprop / sc-neurocore).
TARGETS = {
    ("EpropTrainer.train_sequence", (4, 16, 2)): 50.0,
    ("EpropTrainer.train_sequence", (40, 100, 3)): 8.0,
    ("EpropTrainer.train_sequence", (100, 256, 10)): 4.0,
    ("EpropTrainer.train_sequence", (200, 1024, 10)): 5.0,
}


# --- machine / library information -----------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def n_cpus() -> str:
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return f"{usable}" if usable == total else f"{usable} usable of {total}"


def eprop_module() -> str:
    """Path and build time of the eprop extension actually imported."""
    core = sys.modules.get("eprop._core")
    path = getattr(core, "__file__", None) or eprop.__file__
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(path)))
    return f"{path} (built {stamp})"


def blas_summary() -> str:
    """Which BLAS numpy was built with, plus the runtime core if detectable."""
    parts = []
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        parts.append(f"{blas.get('name')} {blas.get('version')}")
        conf = blas.get("openblas configuration")
        if conf:
            parts.append(f"[{' '.join(conf.split())}]")
    except Exception:  # older numpy: no mode="dicts"
        parts.append("unknown (numpy.show_config() has no dict mode)")
    try:
        from threadpoolctl import threadpool_info  # optional

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                parts.append(
                    f"runtime: {info.get('internal_api')} core={info.get('architecture')} "
                    f"threads={info.get('num_threads')}"
                )
                break
    except ImportError:
        parts.append(_openblas_runtime())
    return " ".join(p for p in parts if p)


def _openblas_runtime() -> str:
    """Ask the loaded OpenBLAS for its core name and thread count (no threadpoolctl)."""
    try:
        with open("/proc/self/maps") as f:
            fields = (ln.split() for ln in f)
            libs = {
                fl[-1]
                for fl in fields
                if len(fl) >= 6 and "openblas" in os.path.basename(fl[-1]).lower() and ".so" in fl[-1]
            }
    except OSError:
        return ""
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            try:
                corename = getattr(lib, f"{prefix}_get_corename{suffix}")
                nthreads = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            corename.restype = ctypes.c_char_p
            nthreads.restype = ctypes.c_int
            return f"runtime: core={corename().decode()} threads={nthreads()}"
    return ""


# --- benchmark ---------------------------------------------------------------
def make_data(shape, T):
    rng = np.random.RandomState(SEED)
    n_in, n_out = shape[0], shape[-1]
    inputs = (rng.rand(T, n_in) < DENSITY).astype(np.float64)
    targets = rng.rand(T, n_out)
    return inputs, targets


def make_trainer(lib, method, shape):
    if method.startswith("EpropTrainer"):
        return lib.EpropTrainer(*shape)
    return lib.OnlineTrainer(list(shape))


def run_once(lib, method, shape, inputs, targets):
    """Fresh trainer, time one call; returns (seconds, result)."""
    trainer = make_trainer(lib, method, shape)
    if method.endswith("predict_sequence"):
        t0 = time.perf_counter()
        out = trainer.predict_sequence(inputs)
        dt = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        out = trainer.train_sequence(inputs, targets)
        dt = time.perf_counter() - t0
    return dt, np.asarray(out, dtype=np.float64)


def bench_case(method, shape, T, repeats):
    inputs, targets = make_data(shape, T)
    times = {"eprop": [], "ref": []}
    results = {}
    for _ in range(repeats):
        # interleave the libraries so a burst of load hits both alike
        for key, lib in (("eprop", eprop), ("ref", ref)):
            dt, out = run_once(lib, method, shape, inputs, targets)
            times[key].append(dt)
            results[key] = out
    best_e, best_r = min(times["eprop"]), min(times["ref"])
    diff = float(np.max(np.abs(results["eprop"] - results["ref"]))) if results["ref"].size else 0.0
    target = TARGETS.get((method, shape))
    return {
        "method": method,
        "shape": list(shape),
        "T": T,
        "repeats": repeats,
        "eprop_best_s": best_e,
        "ref_best_s": best_r,
        "eprop_times_s": times["eprop"],
        "ref_times_s": times["ref"],
        "eprop_steps_per_s": T / best_e,
        "ref_steps_per_s": T / best_r,
        "ratio": best_r / best_e,
        "target_ratio": target,
        "target_met": None if target is None else bool(best_r / best_e >= target),
        "max_abs_diff": diff,
    }


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_shape(method, shape) -> str:
    inner = ",".join(str(s) for s in shape)
    return f"[{inner}]" if method.startswith("OnlineTrainer") else f"({inner})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T / 10 per case (smoke run)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement (best is kept)")
    args = ap.parse_args()

    unset = os.environ.pop(_MARKER, None)
    if unset:
        print(f"note: unset for this run only (slow NumPy): {unset}")
    threads = " ".join(
        f"{v}={os.environ[v]}"
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
    )
    load_before = os.getloadavg()
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "eprop": eprop.__version__,
        "sc_neurocore": getattr(sc_neurocore, "__version__", "unknown"),
        "blas": blas_summary(),
        "eprop_module": eprop_module(),
        "nproc": n_cpus(),
        "cpu": cpu_model(),
        "threads": threads,
        "unset_env": unset or "",
        "mode": "quick" if args.quick else "full",
        "seed": SEED,
        "density": DENSITY,
        "loadavg_before": list(load_before),
    }
    print(f"machine: {platform.machine()}, nproc={meta['nproc']}, CPU: {meta['cpu']}")
    print(f"python {meta['python']}, numpy {meta['numpy']}, eprop {meta['eprop']}, sc-neurocore {meta['sc_neurocore']}")
    print(f"numpy BLAS: {meta['blas']}")
    print(f"eprop module: {meta['eprop_module']}")
    print(f"single thread: {threads}")
    print(f"mode: {meta['mode']}, best of {args.repeats}, seed {SEED}, input density {DENSITY:.0%}")
    print("load average before: " + " ".join(f"{x:.2f}" for x in load_before))
    print()

    rows = []
    for method, shape, T_full in CASES:
        T = max(10, T_full // 10) if args.quick else T_full
        r = bench_case(method, shape, T, args.repeats)
        rows.append(r)
        print(
            f"  {method:30s} {fmt_shape(method, shape):20s} T={T:6d}  "
            f"eprop {r['eprop_best_s']:.3f} s  sc-neurocore {r['ref_best_s']:.3f} s  "
            f"x{r['ratio']:.1f}  max|diff|={r['max_abs_diff']:.2e}",
            flush=True,
        )

    load_after = os.getloadavg()
    meta["loadavg_after"] = list(load_after)
    print("load average after: " + " ".join(f"{x:.2f}" for x in load_after))
    print()

    print("| method | shape | eprop steps/s | sc-neurocore steps/s | ratio | target |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        if r["target_ratio"] is None:
            tgt = "-"
        else:
            tgt = f">= {r['target_ratio']:g}x ({'met' if r['target_met'] else 'MISSED'})"
        print(
            f"| {r['method']} | {fmt_shape(r['method'], tuple(r['shape']))} | "
            f"{fmt_rate(r['eprop_steps_per_s'])} | {fmt_rate(r['ref_steps_per_s'])} | "
            f"{r['ratio']:.1f}x | {tgt} |"
        )

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
