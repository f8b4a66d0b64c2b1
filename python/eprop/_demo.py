"""``python -m eprop demo``: train a recurrent spiking network online and report,
honestly, what it learned.

Task (pattern generation): 50 input neurons fire a fixed Poisson raster at
50 Hz for 1000 ms; the network (100 recurrent LIF neurons, 1 readout) must
reproduce a sum of three sines from it. The trainer is ``EpropTrainer`` (the
seed-compatible rule, which learns online at every step). The report gives the
loss during training, the loss of the trained network with its weights frozen
(``predict_sequence``, the number that says what the network has learned), and
the loss of always predicting zero, the baseline to beat.
"""

from __future__ import annotations

import time

import numpy as np

from eprop import EpropTrainer


def make_task(seed: int = 0, steps: int = 1000, n_inputs: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Frozen 50 Hz Poisson input raster (dt = 1 ms) and a sum-of-sines target."""
    rng = np.random.default_rng(seed)
    inputs = (rng.random((steps, n_inputs)) < 0.05).astype(np.float64)
    t = np.arange(steps)
    target = (
        np.sin(2 * np.pi * t / 1000) + 0.5 * np.sin(2 * np.pi * t / 500 + 1.0) + 0.3 * np.sin(2 * np.pi * t / 200 + 2.0)
    )
    target = target / np.max(np.abs(target))
    return inputs, target[:, None]


def mean_loss(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over steps of 0.5 |y - y*|^2, the loss the trainers report."""
    return float(0.5 * np.mean(np.sum((outputs - targets) ** 2, axis=1)))


def run(epochs: int = 200, report_every: int = 20) -> dict[str, float]:
    inputs, targets = make_task()
    trainer = EpropTrainer(inputs.shape[1], 100, 1, lr=1e-3)
    zero = mean_loss(np.zeros_like(targets), targets)
    print("eprop demo: pattern generation with EpropTrainer (50 inputs, 100 LIF, 1 readout)")
    print(f"  one sequence = {len(inputs)} steps of 1 ms; {epochs} training passes")
    print(f"  baseline, predicting zero:        loss {zero:.4f}")
    start = time.perf_counter()
    first = last = float("nan")
    for epoch in range(1, epochs + 1):
        last = trainer.train_sequence(inputs, targets)
        if epoch == 1:
            first = last
        if epoch % report_every == 0 or epoch == 1:
            frozen = mean_loss(trainer.predict_sequence(inputs), targets)
            print(f"  pass {epoch:4d}: loss while learning {last:.4f} | frozen weights {frozen:.4f}")
    elapsed = time.perf_counter() - start
    frozen = mean_loss(trainer.predict_sequence(inputs), targets)
    steps = epochs * len(inputs)
    print(f"  trained {steps} steps in {elapsed:.2f} s ({steps / elapsed:,.0f} steps/s)")
    print("result:")
    print(f"  loss while learning: first pass {first:.4f}, last pass {last:.4f}")
    print(f"  trained network, frozen weights:  {frozen:.4f}")
    print(f"  predicting zero:                  {zero:.4f}")
    verdict = "better" if frozen < zero else "NOT better"
    print(f"  the frozen network is {verdict} than predicting zero ({frozen / zero:.2f}x the zero loss)")
    return {"first": first, "last": last, "frozen": frozen, "zero": zero}
