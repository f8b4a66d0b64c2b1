"""Soak with crashes: a long stream trained with checkpoints, the process
killed with SIGKILL at random moments (some while a checkpoint is being
written), each restart resuming from the last complete checkpoint; at the
end the weights must equal, bitwise, those of a run that was never killed.

The network: ``RecurrentNetwork(4, 16, 2, n_adaptive=4, update="step",
optimizer="sgd", lr=1e-3)`` (update="step": nothing is pending at a
checkpoint, so the stream cut into segments of ``--every`` steps, each a
``train_stream(reset=False)`` call, is one computation whether or not the
process dies in between). Segment k's data (5% input spikes, a sine target)
come from a generator seeded with k, so a restarted process feeds the same
numbers.

A *worker* trains segment after segment, saving ``ckpt-<step>.npz`` after
each (``save`` writes a temporary file, syncs it, renames it over the
target) and logging its resident memory. The *supervisor* starts workers and
kills them: either after a random time, or (half of the runs) the worker
kills itself with SIGKILL from a second thread at a random moment within
the time its n-th save takes (``save`` runs without the GIL). A kill that
left a temporary file behind landed during a save. Then one worker runs the
whole stream in a fresh folder without kills, and the two final states are
compared bitwise. Not run in CI (minutes); the README reports a run.

    python bench/soak.py [--steps 100000000] [--every 1000000] [--dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")

CHUNK = 100_000


def build():
    import eprop

    return eprop.RecurrentNetwork(4, 16, 2, n_adaptive=4, update="step", optimizer="sgd", lr=1e-3, seed=1)


def segment(k: int, every: int):
    """The chunks of segment k (deterministic in k)."""
    import numpy as np

    rng = np.random.default_rng(1000 + k)
    for start in range(0, every, CHUNK):
        n = min(CHUNK, every - start)
        x = (rng.random((n, 4)) < 0.05).astype(np.float64)
        t = (k * every + start + np.arange(n)) / 200.0
        y = 0.5 * np.stack([np.sin(t), np.cos(t)], axis=1)
        yield x, y


def checkpoints(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "ckpt-*.npz")))


def rss_kb() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, in KiB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, v = line.split(":")
                vals[key] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


def kill_during(seconds: float) -> None:
    """SIGKILLs this process after `seconds`, from a second thread (which
    runs while `save` holds no GIL)."""

    def fire():
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=fire, daemon=True).start()


def worker(args) -> int:
    import eprop

    folder = args.dir
    done = checkpoints(folder)
    if done:
        net = eprop.RecurrentNetwork.load(done[-1])
        start = int(os.path.basename(done[-1])[5:-4]) // args.every
    else:
        net = build()
        start = 0
    n_segments = args.steps // args.every
    rnd = random.Random(os.getpid())
    saves, save_time = 0, 0.002
    with open(os.path.join(folder, "rss.log"), "a") as log:
        for k in range(start, n_segments):
            net.train_stream(segment(k, args.every), reset=(k == 0))
            step = (k + 1) * args.every
            saves += 1
            if saves == args.kill_in_save:  # a kill at a random moment of this save
                kill_during(rnd.uniform(0.0, 1.2 * save_time))
            t0 = time.perf_counter()
            net.save(os.path.join(folder, f"ckpt-{step:012d}.npz"))
            save_time = time.perf_counter() - t0
            for old in checkpoints(folder)[:-2]:
                os.remove(old)
            rss, hwm = rss_kb()
            log.write(f"{os.getpid()} {step} {rss} {hwm}\n")
            log.flush()
    net.save(os.path.join(folder, "final.npz"))
    return 0


def run_worker(args, folder: str, kill_in_save: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", "--dir", folder, "--steps", str(args.steps)]
    return subprocess.Popen(cmd + ["--every", str(args.every), "--kill-in-save", str(kill_in_save)])


def rss_rows(folder: str) -> list[tuple[int, int, int, int]]:
    with open(os.path.join(folder, "rss.log")) as f:
        return [tuple(int(v) for v in line.split()) for line in f if line.strip()]


def supervise(args) -> int:
    import eprop
    import numpy as np

    rnd = random.Random(args.seed)
    root = args.dir or tempfile.mkdtemp(prefix="eprop-soak-")
    soak, ref = os.path.join(root, "soak"), os.path.join(root, "reference")
    for d in (soak, ref):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    kills = kills_in_save = runs = 0
    t0 = time.time()
    while True:
        runs += 1
        at_save = rnd.random() < 0.5
        p = run_worker(args, soak, kill_in_save=rnd.randint(2, 20) if at_save else 0)
        if not at_save:
            try:
                p.wait(timeout=rnd.uniform(0.5, args.max_wait))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
        rc = p.wait()
        if rc == 0 and os.path.exists(os.path.join(soak, "final.npz")):
            break
        if rc != -signal.SIGKILL:
            print(f"worker exited with {rc}", file=sys.stderr)
            return 1
        kills += 1
        # (the temporary files of save are hidden: .eprop-*.npz.tmp, which glob skips)
        left = [e.path for e in os.scandir(soak) if e.name.endswith(".npz.tmp")]
        if left:
            kills_in_save += 1
            for f in left:  # a partial file: never read, removed here to keep the folder small
                os.remove(f)
        last = checkpoints(soak)
        where = os.path.basename(last[-1]) if last else "no checkpoint yet"
        print(f"kill {kills}: {'during save' if left else 'at a random time'}; resuming from {where}", flush=True)
    soak_time = time.time() - t0
    t1 = time.time()
    p = run_worker(args, ref)
    if p.wait() != 0:
        print("reference run failed", file=sys.stderr)
        return 1
    ref_time = time.time() - t1
    a = eprop.RecurrentNetwork.load(os.path.join(soak, "final.npz")).state_dict()
    b = eprop.RecurrentNetwork.load(os.path.join(ref, "final.npz")).state_dict()
    equal = a.keys() == b.keys() and all(
        (np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes()) if isinstance(a[k], np.ndarray) else a[k] == b[k]
        for k in a
    )
    rows = rss_rows(ref)
    n = len(rows)
    early = rows[: max(1, n // 10)]
    late = rows[-max(1, n // 10) :]
    report = {
        "steps": args.steps,
        "checkpoint_every": args.every,
        "worker_runs": runs,
        "kills": kills,
        "kills_during_save": kills_in_save,
        "resumes": kills,
        "final_state_equal_to_uninterrupted_run": equal,
        "soak_seconds": round(soak_time, 1),
        "reference_seconds": round(ref_time, 1),
        "reference_rss_kib_first_tenth": max(r[2] for r in early),
        "reference_rss_kib_last_tenth": max(r[2] for r in late),
        "reference_peak_rss_kib": max(r[3] for r in rows),
        "soak_peak_rss_kib": max(r[3] for r in rss_rows(soak)),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if equal else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100_000_000)
    ap.add_argument("--every", type=int, default=1_000_000, help="steps per checkpoint")
    ap.add_argument("--dir", default=None, help="working folder (default: a temporary one, removed after)")
    ap.add_argument("--json", default=None, help="write the report here")
    ap.add_argument("--seed", type=int, default=0, help="of the kill schedule")
    ap.add_argument("--max-wait", type=float, default=8.0, help="longest time before a random kill (s)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kill-in-save", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps % args.every:
        ap.error("--steps must be a multiple of --every")
    return worker(args) if args.worker else supervise(args)


if __name__ == "__main__":
    sys.exit(main())
