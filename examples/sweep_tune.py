"""A hyperparameter sweep with Ray Tune: learning rate x adaptation time
constant on evidence accumulation (a shortened version of the paper's task:
3 cues, a 100 ms delay), each trial a ``RecurrentNetwork`` trained by
``eprop.distributed.trainable``.

    pip install ".[ray,plot]"
    python examples/sweep_tune.py [--iterations 60] [--out docs/sweep_tune.png]

Every trial trains on the same seeded batches (32 trials each), reports its
loss and accuracy on a fixed validation set of 256 trials every 10 iterations,
and checkpoints with the network's own ``save``. Prints the grid, the best
configuration, its accuracy on 512 fresh test trials (loaded from its
checkpoint) against the best single cue's accuracy (what a network that
remembers only one cue would reach), and saves a heat map of the validation
accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys

import eprop
import numpy as np
import ray
from eprop import distributed, tasks
from eprop._plotting import pyplot
from ray import tune

TASK = dict(n_cues=3, t_cue=50, t_silence=25, t_delay=100, t_recall=50)
LRS = [1e-3, 5e-3, 2e-2]
TAU_ADAPTS = [20.0, 200.0, 2000.0]


def build(config: dict) -> eprop.RecurrentNetwork:
    return eprop.RecurrentNetwork(
        40,
        100,
        2,
        n_adaptive=50,
        tau_adapt=config["tau_adapt"],
        threshold=0.6,
        refractory=5.0,
        loss="cross_entropy",
        feedback="random",
        reg_rate=1.0,
        optimizer="adam",
        lr=config["lr"],
        update="sequence",
        seed=1,
    )


def batches(config: dict, i: int) -> tasks.Trials:
    return tasks.evidence_accumulation(32, seed=1000 + i, **TASK)


def validation(config: dict) -> tasks.Trials:
    return tasks.evidence_accumulation(256, seed=7, **TASK)


def best_cue(trials: tasks.Trials) -> float:
    """Accuracy of the best single cue: the side with more spikes in one
    cue's window, the best cue of the task."""
    x, y, _ = trials
    label = y[:, -1]
    accs = []
    for k in range(TASK["n_cues"]):
        start = k * (TASK["t_silence"] + TASK["t_cue"]) + TASK["t_silence"]
        w = x[:, start : start + TASK["t_cue"]]
        accs.append(np.mean((w[..., 10:20].sum(axis=(1, 2)) > w[..., :10].sum(axis=(1, 2))) == label))
    return float(max(accs))


def plot(path: str, grid: np.ndarray) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    im = ax.imshow(grid, cmap="viridis", vmin=0.5, vmax=1.0, origin="lower")
    ax.set_xticks(range(len(TAU_ADAPTS)), [f"{t:g}" for t in TAU_ADAPTS])
    ax.set_yticks(range(len(LRS)), [f"{lr:g}" for lr in LRS])
    ax.set_xlabel("tau_adapt (ms)")
    ax.set_ylabel("learning rate (Adam)")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w" if grid[i, j] < 0.8 else "k")
    fig.colorbar(im, label="validation accuracy")
    ax.set_title("Evidence accumulation: e-prop sweep (Ray Tune)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"saved {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--out", default="docs/sweep_tune.png")
    ap.add_argument("--storage", default=os.path.abspath("ray_results"))
    args = ap.parse_args()
    ray.init(include_dashboard=False, log_to_driver=False)
    trainable = distributed.trainable(
        build, batches, iterations=args.iterations, validation=validation, report_every=10
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.grid_search(LRS), "tau_adapt": tune.grid_search(TAU_ADAPTS)},
        tune_config=tune.TuneConfig(metric="accuracy", mode="max"),
        run_config=tune.RunConfig(storage_path=args.storage, name="sweep_tune", verbose=0),
    )
    results = tuner.fit()
    if results.errors:
        print(f"{len(results.errors)} trials failed: {results.errors[0]}", file=sys.stderr)
        sys.exit(1)
    grid = np.full((len(LRS), len(TAU_ADAPTS)), np.nan)
    print(f"{'lr':>8s} {'tau_adapt':>10s} {'val loss':>9s} {'val acc':>8s}")
    for r in results:
        i, j = LRS.index(r.config["lr"]), TAU_ADAPTS.index(r.config["tau_adapt"])
        grid[i, j] = r.metrics["accuracy"]
        print(f"{r.config['lr']:8g} {r.config['tau_adapt']:10g} {r.metrics['loss']:9.4f} {r.metrics['accuracy']:8.3f}")
    best = results.get_best_result()
    with best.checkpoint.as_directory() as d:
        net = eprop.RecurrentNetwork.load(os.path.join(d, "network.npz"))
    test = tasks.evidence_accumulation(512, seed=8, **TASK)
    acc = net.evaluate(test.inputs, test.targets, mask=test.mask)["accuracy"]
    print(f"best: lr={best.config['lr']:g}, tau_adapt={best.config['tau_adapt']:g} ms")
    print(f"  its accuracy on 512 fresh trials: {acc:.3f}; the best single cue: {best_cue(test):.3f}; chance 0.5")
    plot(args.out, grid)
    ray.shutdown()


if __name__ == "__main__":
    main()
