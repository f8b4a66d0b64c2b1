"""How often to update, with Adam: RecurrentNetwork(20, 60, 2) trained online on
a stream of 200 repetitions of one 500-step sequence (two sines from a frozen
20-channel, 40 Hz raster) with several `update` schedules and learning rates.

Adam's step size per update is about `lr` whatever the gradient's size, so a
schedule with more updates needs a smaller `lr`. Prints the normalized MSE of
the trained network (frozen weights) on one sequence run from reset state, and
on the third of three repetitions run on without reset (as in the stream).

Run: ``python bench/update_schedule.py`` (about 30 s; deterministic).
"""

import numpy as np
from eprop import RecurrentNetwork


def main() -> None:
    rng = np.random.default_rng(11)
    steps = 500
    x = (rng.random((steps, 20)) < 0.04).astype(float)
    t = np.arange(steps)
    y = np.stack([np.sin(2 * np.pi * t / 250), 0.7 * np.cos(2 * np.pi * t / 125)], 1)
    var = np.var(y)
    print("update  lr       NMSE from reset  NMSE running on")
    for update, lr in (("step", 1e-3), ("step", 1e-4), ("step", 1e-5), (10, 1e-3), (100, 1e-3), (500, 1e-3)):
        net = RecurrentNetwork(20, 60, 2, update=update, lr=lr)
        net.train_stream((x, y) for _ in range(200))
        from_reset = net.predict_sequence(x)
        running = np.concatenate(list(net.predict_stream(x for _ in range(3))))[-steps:]
        print(
            f"{update!s:6}  {lr:<7g}  {np.mean((from_reset - y) ** 2) / var:15.4f}"
            f"  {np.mean((running - y) ** 2) / var:15.4f}"
        )


if __name__ == "__main__":
    main()
