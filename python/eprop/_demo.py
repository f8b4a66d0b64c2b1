"""``python -m eprop demo``: train a recurrent spiking network with canonical
e-prop and report, honestly, what it learned.

Task (pattern generation, Bellec et al. 2020): 100 input neurons fire a frozen
Poisson raster at 50 Hz for 1000 ms; 100 recurrent LIF neurons and one leaky
readout must reproduce a sum of four sines (periods 1000, 500, 333 and 200 ms)
from it. The report gives the loss during training, the loss and normalized
MSE of the trained network with its weights frozen (``predict_sequence``), and
the same for always predicting zero, the baseline to beat. A figure (with the
``plot`` extra, matplotlib) shows target, trained and untrained output, and the
loss during training against that baseline.
"""

from __future__ import annotations

import os
import time

import numpy as np

from eprop import RecurrentNetwork, tasks
from eprop._plotting import pyplot

#: the demo figure's size in pixels (width, height)
FIGURE_PIXELS = (1000, 700)


def mean_loss(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over steps of 0.5 |y - y*|^2."""
    return float(0.5 * np.mean(np.sum((outputs - targets) ** 2, axis=1)))


def run(iterations: int = 300, report_every: int = 50, png: str = "eprop_demo.png") -> dict[str, float]:
    inputs, targets, _ = tasks.pattern_generation()
    net = RecurrentNetwork(
        inputs.shape[1], 100, 1, tau_mem=30.0, tau_out=30.0, threshold=0.9, reg_rate=300.0, lr=3e-3, seed=1
    )
    variance = float(np.var(targets))
    zero = mean_loss(np.zeros_like(targets), targets)
    print("eprop demo: pattern generation with RecurrentNetwork (canonical e-prop)")
    print("  100 inputs (frozen 50 Hz Poisson), 100 LIF neurons, 1 leaky readout; 1000 steps of 1 ms")
    print(f"  {iterations} training iterations, Adam lr 3e-3, rate regularization toward 10 Hz")
    print(f"  baseline, predicting zero: loss {zero:.4f}, normalized MSE {2 * zero / variance:.3f}")
    untrained = net.predict_sequence(inputs)
    start = time.perf_counter()
    history = []
    for it in range(1, iterations + 1):
        last = net.train_sequence(inputs, targets)
        history.append(last)
        if it % report_every == 0 or it == 1:
            frozen = mean_loss(net.predict_sequence(inputs), targets)
            print(f"  iteration {it:4d}: loss while training {last:.4f} | frozen weights {frozen:.4f}")
    elapsed = time.perf_counter() - start
    outputs = net.predict_sequence(inputs)
    frozen = mean_loss(outputs, targets)
    nmse = float(np.mean((outputs - targets) ** 2) / variance)
    steps = iterations * len(inputs)
    print(f"  trained {steps} steps in {elapsed:.2f} s ({steps / elapsed:,.0f} steps/s)")
    print("result:")
    first = history[0]
    print(f"  loss while training: first iteration {first:.4f}, last {last:.4f}")
    print(f"  trained network, frozen weights: loss {frozen:.4f}, normalized MSE {nmse:.3f}")
    print(f"  predicting zero:                 loss {zero:.4f}, normalized MSE {2 * zero / variance:.3f}")
    verdict = "better" if frozen < zero else "NOT better"
    print(f"  the frozen network is {verdict} than predicting zero ({frozen / zero:.3f}x its loss)")
    if png and figure(png, targets, untrained, outputs, history, zero, nmse):
        print(f"  saved the figure {os.path.abspath(png)}")
    return {"first": first, "last": last, "frozen": frozen, "zero": zero, "nmse": nmse}


def figure(
    path: str,
    targets: np.ndarray,
    untrained: np.ndarray,
    trained: np.ndarray,
    history: list[float],
    zero: float,
    nmse: float,
) -> bool:
    """Saves the demo's figure: the target with the outputs of the network
    before and after training, and the loss per iteration against the loss of
    predicting zero. False (and a message) when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    dpi = 100
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(FIGURE_PIXELS[0] / dpi, FIGURE_PIXELS[1] / dpi), dpi=dpi, height_ratios=(3, 2)
    )
    t = np.arange(len(targets))  # steps of 1 ms
    top.plot(t, targets[:, 0], color="k", lw=2, label="target (sum of four sines)")
    top.plot(t, untrained[:, 0], color="0.6", lw=1, label="untrained network")
    top.plot(t, trained[:, 0], color="C3", lw=1.2, label=f"trained network, frozen weights (NMSE {nmse:.3f})")
    top.set_xlabel("time (ms)")
    top.set_ylabel("readout")
    top.legend(loc="upper right", fontsize=8)
    top.set_title("Pattern generation learned with e-prop: 100 inputs, 100 LIF neurons, 1 readout")
    it = np.arange(1, len(history) + 1)
    bottom.semilogy(it, history, color="C0", label="loss while training")
    bottom.axhline(zero, color="k", ls="--", lw=1, label=f"predicting zero ({zero:.3f})")
    bottom.set_ylim(top=2 * max(zero, max(history)))
    bottom.set_xlabel("training iteration (one 1000 ms sequence each)")
    bottom.set_ylabel("loss, 0.5 squared error per step")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True
