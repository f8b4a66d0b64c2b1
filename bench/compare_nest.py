"""eprop against NEST 3.10's e-prop on the pattern-generation task, single thread.

Task (Bellec et al. 2020, Fig. 2; NEST's pynest example
``eprop_supervised_regression_sine-waves_bsshslm_2020``): 100 input neurons fire
a frozen 50 Hz Poisson raster for T = 1000 steps of 1 ms; 100 recurrent LIF
e-prop neurons and one leaky readout must reproduce a sum of four sines
(periods 1000, 500, 333 and 200 ms). One iteration = one 1000-step sequence
followed by one weight update (batch size 1). The same input raster and target
arrays go to both libraries.

* NEST: ``eprop_iaf_bsshslm_2020`` (tau_m 30 ms, V_th 0.03 mV, spikes scaled by
  1 - alpha, c_reg 300 toward 10 Hz, piecewise-linear surrogate of height 0.3
  and width 1, both rescaled by V_th as in NEST's example), one
  ``eprop_readout_bsshslm_2020`` (tau_m 30 ms, mean squared error), fixed random
  feedback weights (``eprop_learning_signal_connection_bsshslm_2020``),
  ``eprop_synapse_bsshslm_2020`` with NEST's example optimizer: gradient
  descent, eta = 1e-4, batch size 1, weights clipped to [-100, 100]; initial
  weights and the random stream as in NEST's example (numpy seed 1).
  ``nest.local_num_threads = 1``.
* eprop: ``RecurrentNetwork(100, 100, 1, tau_mem=30, tau_out=30,
  threshold=0.03 / (1 - exp(-1/30)) ~= 0.915, refractory=0, reg_rate=300,
  target_rate=10, surrogate_height=0.3, seed=1)`` -- the same network in
  eprop's convention (input scaling 1 instead of NEST's zeta = 1 - alpha, the
  threshold and the pseudo-derivative's scale converted accordingly; both
  readouts filter with unit gain). With ``--init nest`` (default) it starts
  from NEST's initial weights (W_in, W_rec, W_out and the feedback weights
  unchanged), so the first iteration's loss is the same in both libraries (a
  check that the forward dynamics match); ``--init eprop`` uses eprop's own
  initialization and the demo's threshold 0.9. Feedback: NEST's fixed random
  feedback weights (``--feedback random``, the default), or B = W_out^T
  (``--feedback symmetric``, which NEST's bsshslm model does not offer).
  Trained with ``train_sequence`` (one update per sequence), with Adam (lr
  3e-3) and with plain SGD at NEST's eta (``--sgd-lr``, 1e-4). NEST's readout
  has no bias; eprop's readout bias is held at 0 (reset after every update)
  unless ``--learn-bias`` adds a row in which it learns.
  RAYON_NUM_THREADS=1 (``train_sequence`` is single-threaded anyway).
* ``--nest-adam`` adds NEST with its Adam optimizer (eta 3e-3) as an extra row.
  Speed ratios are given against the first NEST row (NEST's example settings);
  the target check is printed against every NEST row.

The same rule on both sides: ``--check-update`` runs one update of NEST's
gradient descent and compares NEST's weight change with ``-eta`` times
eprop's ``gradients()`` of the same sequence (regularization included):
they agree to 4e-5 relative for W_in and 1e-14 for W_rec and W_out, so
eprop's SGD at NEST's eta is NEST's gradient descent, and eprop's Adam NEST's
Adam. The second iteration's loss is then the same in both libraries to all
printed digits; after that, small differences (such as the 4e-5 in the W_in
change) grow in the spiking network, and after 200 iterations the losses
agree within a few percent rather than exactly.

Measured for each: wall time and process CPU time of the training only
(network construction, imports and the loss read-out excluded; for NEST the one
``nest.Simulate`` call, which includes NEST's 4 extra steps of transmission
delay and a multimeter on the readout), training steps per second
(iterations x 1000 / wall time), and the loss
``E = sum_{t=1..1000} 0.5 (y_t - y*_t)^2`` (summed over the sequence, as in the
paper and NEST's example) of the final iteration. With one update per sequence
the final iteration's loss is that of the weights frozen during it, in both
libraries. For eprop the loss of the trained weights (after the last update)
via ``predict_sequence`` is reported as well. On a loaded machine the wall time
is inflated for both; the CPU-time ratio is the steadier figure, and the target
check uses the lower of the two ratios.

Setup (NEST lives in its own virtualenv, apart from the one the tests use; this
script is not part of the tests or CI)::

    python3 -m venv /work/venv-nest
    /work/venv-nest/bin/pip install nest-simulator==3.10.0 numpy
    /work/venv-nest/bin/pip install --no-deps /tmp/wheels/eprop-*.whl   # or: pip install . (maturin)

Usage::

    /work/venv-nest/bin/python bench/compare_nest.py [--iterations 200] [--sgd-lr LR] [--learn-bias] [--check-update]
        [--init nest|eprop] [--feedback symmetric|random] [--nest-adam]
        [--nest-synapse eprop_synapse_bsshslm_2020[_hpc]] [--skip-nest] [--json PATH]
"""

# --- environment: before numpy / eprop / nest are imported -----------------
import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_v] = "1"
# ---------------------------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

N_IN, N_REC, N_OUT = 100, 100, 1
STEPS = 1000  # steps (ms) per sequence
TAU_M = 30.0  # ms, recurrent and readout membrane time constants
V_TH_NEST = 0.03  # NEST / TensorFlow threshold (input scaled by 1 - alpha)
THRESHOLD_EPROP = 0.9  # the demo's threshold, used with --init eprop
C_REG = 300.0
F_TARGET = 10.0  # Hz
SURR_HEIGHT = 0.3
SURR_WIDTH = 1.0
NEST_ETA = 1e-4  # NEST example: gradient descent learning rate
ADAM_LR = 3e-3  # eprop demo's Adam learning rate


# --------------------------------------------------------------------------- task
def make_task(seed: int = 1) -> dict[str, np.ndarray]:
    """Initial NEST weights, the frozen input raster (STEPS, N_IN) and the target
    (STEPS,), drawn from numpy's legacy RandomState(1) (= np.random.seed(1)) in the order NEST's example
    draws them, so NEST starts exactly as its example does."""
    rs = np.random.RandomState(seed)
    w = {
        "in_rec": (rs.randn(N_IN, N_REC).T / np.sqrt(N_IN)).astype(np.float32),
        "rec_rec": (rs.randn(N_REC, N_REC).T / np.sqrt(N_REC)).astype(np.float32),
        "rec_out": (rs.randn(N_REC, N_OUT).T / np.sqrt(N_REC)).astype(np.float32),
        "out_rec": (rs.randn(N_REC, N_OUT) / np.sqrt(N_REC)).astype(np.float32),
    }
    np.fill_diagonal(w["rec_rec"], 0.0)
    raster = rs.rand(STEPS, N_IN) < 0.05  # 50 Hz at dt = 1 ms
    raster[0, :] = False  # NEST's example drops spikes in step 0 of a sequence
    periods = (1000, 500, 333, 200)
    amps = rs.uniform(0.5, 2.0, size=len(periods))
    phases = rs.uniform(0.0, 2.0 * np.pi, size=len(periods))
    target = np.zeros(STEPS)
    for a, phi, period in zip(amps, phases, periods, strict=True):
        # STEPS // period whole cycles over the sequence (as NEST's example)
        target += a * np.sin(np.linspace(phi, phi + 2.0 * np.pi * (STEPS // period), STEPS))
    target -= target[0]
    target /= max(np.abs(target).max(), 1e-6)
    return {"inputs": raster.astype(np.float64), "target": target, **w}


# --------------------------------------------------------------------------- NEST
def run_nest(
    task: dict[str, np.ndarray],
    iterations: int,
    optimizer: str = "gradient_descent",
    eta: float = NEST_ETA,
    synapse: str = "eprop_synapse_bsshslm_2020",
) -> dict:
    import nest

    dt = 1.0
    offset_gen, delays = 1, 3  # generator signals start at step 1; in->rec, rec->out, out->rec delays
    total_offset = offset_gen + delays
    task_ms = iterations * STEPS * dt
    sim_ms = task_ms + total_offset + 1  # +1 closes Simulate's right-open interval

    nest.ResetKernel()
    nest.set(
        resolution=dt,
        local_num_threads=1,
        print_time=False,
        eprop_learning_window=STEPS * dt,
        eprop_update_interval=STEPS * dt,
        eprop_reset_neurons_on_update=True,
    )
    rec_params = {
        "C_m": 1.0,
        "c_reg": C_REG,
        "E_L": 0.0,
        "f_target": F_TARGET,
        "flush_event_send_interval": STEPS * dt,
        "I_e": 0.0,
        "regular_spike_arrival": False,
        "surrogate_gradient_function": "piecewise_linear",
        # NEST folds the 1 / V_th of the paper's pseudo-derivative into these two
        "surrogate_gradient_height": SURR_HEIGHT / V_TH_NEST,
        "surrogate_gradient_width": SURR_WIDTH * abs(V_TH_NEST),
        "t_ref": 0.0,
        "tau_m": TAU_M,
        "V_m": 0.0,
        "V_th": V_TH_NEST,
    }
    out_params = {
        "C_m": 1.0,
        "E_L": 0.0,
        "I_e": 0.0,
        "loss": "mean_squared_error",
        "regular_spike_arrival": False,
        "tau_m": TAU_M,
        "V_m": 0.0,
    }
    spike_gens = nest.Create("spike_generator", N_IN)
    parrots = nest.Create("parrot_neuron", N_IN)  # devices cannot have plastic synapses
    rec = nest.Create("eprop_iaf_bsshslm_2020", N_REC, rec_params)
    out = nest.Create("eprop_readout_bsshslm_2020", N_OUT, out_params)
    target_gen = nest.Create("step_rate_generator", N_OUT)
    # Only the readout is recorded (1 neuron, 2 values per step), to get the loss.
    mm = nest.Create(
        "multimeter",
        {
            "interval": dt,
            "record_from": ["readout_signal", "target_signal"],
            "start": float(total_offset),
            "stop": total_offset + task_ms,
        },
    )

    # NEST's example: gradient descent; or NEST's Adam with its default moments
    opt = {"type": optimizer, "batch_size": 1, "eta": eta, "Wmin": -100.0, "Wmax": 100.0}
    nest.SetDefaults(synapse, {"optimizer": opt, "average_gradient": False})
    syn = {"synapse_model": synapse, "delay": dt, "tau_m_readout": TAU_M}
    all_to_all = {"rule": "all_to_all", "allow_autapses": False}
    one_to_one = {"rule": "one_to_one"}
    static = {"synapse_model": "static_synapse", "delay": dt}

    nest.Connect(spike_gens, parrots, one_to_one, static)
    nest.Connect(parrots, rec, all_to_all, {**syn, "weight": task["in_rec"]})
    nest.Connect(rec, rec, all_to_all, {**syn, "weight": task["rec_rec"]})
    nest.Connect(rec, out, all_to_all, {**syn, "weight": task["rec_out"]})
    nest.Connect(
        out,
        rec,
        all_to_all,
        {"synapse_model": "eprop_learning_signal_connection_bsshslm_2020", "delay": dt, "weight": task["out_rec"]},
    )
    nest.Connect(
        target_gen, out, one_to_one, {"synapse_model": "rate_connection_delayed", "delay": dt, "receptor_type": 2}
    )
    nest.Connect(mm, out, all_to_all, static)

    # The frozen raster, repeated every sequence.
    starts = np.arange(iterations) * STEPS * dt + offset_gen
    step_times = np.arange(STEPS) * dt
    spike_gens.set(
        [
            {
                "spike_times": (step_times[task["inputs"][:, i] > 0][None, :] + starts[:, None])
                .ravel()
                .astype(np.float32)
            }
            for i in range(N_IN)
        ]
    )
    target_gen.set(
        {
            "amplitude_times": np.arange(iterations * STEPS) * dt + total_offset,
            "amplitude_values": np.tile(task["target"], iterations),
        }
    )

    cpu0 = time.process_time()
    start = time.perf_counter()
    nest.Simulate(sim_ms)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0

    ev = mm.get("events")
    y = np.asarray(ev["readout_signal"]).reshape(iterations, STEPS)
    y_star = np.asarray(ev["target_signal"]).reshape(iterations, STEPS)
    losses = 0.5 * np.sum((y - y_star) ** 2, axis=1)
    return {
        "library": f"NEST {nest.__version__}",
        "optimizer": f"GD eta={eta:g} (example)" if optimizer == "gradient_descent" else f"Adam eta={eta:g}",
        "iterations": iterations,
        "wall_s": elapsed,
        "cpu_s": cpu,
        "steps_per_s": iterations * STEPS / elapsed,
        "loss_first": float(losses[0]),
        "loss_final": float(losses[-1]),
        "loss_frozen": None,
        "losses": losses.tolist(),
        "threads": nest.local_num_threads,
        "synapse": synapse,
    }


# --------------------------------------------------------------------------- eprop
def eprop_network(
    task: dict[str, np.ndarray],
    optimizer: str,
    lr: float,
    feedback: str,
    init: str,
    kernel: str = "dense",
    dtype: str = "float64",
):
    """eprop's network for the task (see the module docs)."""
    import eprop

    zeta = 1.0 - np.exp(-1.0 / TAU_M)  # NEST's input scaling 1 - alpha (= 1 - kappa, tau_out = tau_m)
    net = eprop.RecurrentNetwork(
        N_IN,
        N_REC,
        N_OUT,
        tau_mem=TAU_M,
        tau_out=TAU_M,
        # the same threshold as NEST's in eprop's units, or the demo's round 0.9
        threshold=V_TH_NEST / zeta if init == "nest" else THRESHOLD_EPROP,
        refractory=0.0,  # as NEST's t_ref = 0
        surrogate_height=SURR_HEIGHT,
        reg_rate=C_REG,
        target_rate=F_TARGET,
        feedback=feedback,
        optimizer=optimizer,
        lr=lr,
        seed=1,
        kernel=kernel,
        dtype=dtype,
    )
    if init == "nest":
        # NEST's initial weights in eprop's units: v_eprop = v_nest / zeta, so W_in and
        # W_rec carry over unchanged; both readouts are y <- kappa y + (1 - kappa) W_out z.
        net.W_in = task["in_rec"].astype(np.float64)
        net.W_rec = task["rec_rec"].astype(np.float64)
        net.W_out = task["rec_out"].astype(np.float64)
        if feedback == "random":  # NEST's fixed feedback weights
            net.feedback_matrix = task["out_rec"].astype(np.float64)
    return net


def sequence(task: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The task's (inputs, targets) as eprop takes them."""
    return np.ascontiguousarray(task["inputs"]), np.ascontiguousarray(task["target"][:, None])


def run_eprop(
    task: dict[str, np.ndarray],
    iterations: int,
    optimizer: str,
    lr: float,
    feedback: str,
    init: str,
    learn_bias: bool = False,
    kernel: str = "dense",
    dtype: str = "float64",
) -> dict:
    import eprop

    net = eprop_network(task, optimizer, lr, feedback, init, kernel, dtype)
    inputs, targets = sequence(task)
    no_bias = np.zeros(N_OUT)
    losses = np.empty(iterations)
    cpu0 = time.process_time()
    start = time.perf_counter()
    for it in range(iterations):
        losses[it] = net.train_sequence(inputs, targets)  # mean over steps of 0.5 (y - y*)^2
        if not learn_bias:
            net.b_out = no_bias  # NEST's readout has no bias
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    losses *= STEPS  # summed over the sequence
    y = net.predict_sequence(inputs)
    frozen = float(0.5 * np.sum((y - targets) ** 2))
    return {
        "library": f"eprop {eprop.__version__}"
        + ("" if kernel == "dense" else f" ({kernel})")
        + ("" if dtype == "float64" else f" {dtype}"),
        "optimizer": f"{'Adam' if optimizer == 'adam' else 'SGD'} lr={lr:g}" + (", bias learns" if learn_bias else ""),
        "iterations": iterations,
        "wall_s": elapsed,
        "cpu_s": cpu,
        "steps_per_s": iterations * STEPS / elapsed,
        "loss_first": float(losses[0]),
        "loss_final": float(losses[-1]),
        "loss_frozen": frozen,
        "losses": losses.tolist(),
    }


def check_update(task: dict[str, np.ndarray], synapse: str) -> None:
    """One update of NEST's gradient descent against -eta times eprop's gradients() (NEST's initial
    and feedback weights on both sides)."""
    import nest

    run_nest(task, 2, synapse=synapse)  # the first update is applied at the start of the second sequence
    conns = nest.GetConnections(synapse_model=synapse).get(["source", "target", "weight"])
    ids = {"parrot": 1 + N_IN, "rec": 1 + 2 * N_IN, "out": 1 + 2 * N_IN + N_REC}  # creation order in run_nest
    after = {"W_in": np.zeros((N_REC, N_IN)), "W_rec": np.zeros((N_REC, N_REC)), "W_out": np.zeros((N_OUT, N_REC))}
    for s, t, w in zip(conns["source"], conns["target"], conns["weight"]):
        if s < ids["rec"]:
            after["W_in"][t - ids["rec"], s - ids["parrot"]] = w
        elif t < ids["out"]:
            after["W_rec"][t - ids["rec"], s - ids["rec"]] = w
        else:
            after["W_out"][t - ids["out"], s - ids["rec"]] = w
    before = {"W_in": task["in_rec"], "W_rec": task["rec_rec"], "W_out": task["rec_out"]}
    grads = eprop_network(task, "sgd", NEST_ETA, "random", "nest").gradients(*sequence(task))
    print(f"one update of NEST's gradient descent (eta {NEST_ETA:g}) against -eta x eprop's gradients():")
    for name in ("W_in", "W_rec", "W_out"):
        nest_change = after[name] - before[name]
        ours = -NEST_ETA * grads[name]
        rel = np.linalg.norm(nest_change - ours) / np.linalg.norm(ours)
        print(f"  {name}: |NEST change| {np.linalg.norm(nest_change):.4g}, relative difference {rel:.2g}")


# --------------------------------------------------------------------------- report
def table(rows: list[dict], nest: dict | None) -> str:
    lines = [
        "| library | optimizer | iterations | wall time (s) | CPU time (s) | steps/s | final loss "
        "| frozen-weight loss | speed ratio vs NEST (wall / CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{nest['wall_s'] / r['wall_s']:.1f}x / {nest['cpu_s'] / r['cpu_s']:.1f}x" if nest else "n/a"
        frozen = f"{r['loss_frozen']:.4g}" if r["loss_frozen"] is not None else "-"
        lines.append(
            f"| {r['library']} | {r['optimizer']} | {r['iterations']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
            f"{r['steps_per_s']:,.0f} | {r['loss_final']:.4g} | {frozen} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=200, help="training iterations (sequences), both libraries")
    ap.add_argument("--sgd-lr", type=float, default=NEST_ETA, help="eprop's plain-SGD learning rate (NEST's eta)")
    ap.add_argument("--learn-bias", action="store_true", help="add an eprop Adam row whose readout bias learns")
    ap.add_argument("--check-update", action="store_true", help="compare one NEST update with eprop's gradient")
    ap.add_argument(
        "--feedback", default="random", choices=("symmetric", "random"), help="eprop's feedback (NEST's: random)"
    )
    ap.add_argument(
        "--init",
        default="nest",
        choices=("nest", "eprop"),
        help="eprop's initial weights: NEST's (converted, default) or eprop's own from seed=1",
    )
    ap.add_argument("--nest-adam", action="store_true", help="also run NEST with its Adam, eta 3e-3 (an extra row)")
    ap.add_argument(
        "--nest-synapse",
        default="eprop_synapse_bsshslm_2020",
        choices=("eprop_synapse_bsshslm_2020", "eprop_synapse_bsshslm_2020_hpc"),
        help="NEST's e-prop synapse model (its example uses the first)",
    )
    ap.add_argument("--skip-nest", action="store_true", help="run eprop only")
    ap.add_argument(
        "--kernel",
        default="dense",
        choices=("dense", "event", "auto"),
        help="eprop's eligibility kernel; 'event' adds rows with the event-driven kernel",
    )
    ap.add_argument("--json", help="write the results (with loss curves) to this file")
    args = ap.parse_args()

    try:
        load = load_before = os.getloadavg()
    except OSError:
        load = load_before = (float("nan"),) * 3
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    task = make_task()
    zero = float(0.5 * np.sum(task["target"] ** 2))
    print(
        f"pattern generation: {N_IN} inputs, {N_REC} LIF, {N_OUT} readout, T = {STEPS} ms, "
        f"{args.iterations} iterations; loss of predicting zero: {zero:.3f}"
    )

    sgd_lr = args.sgd_lr
    if args.check_update:
        check_update(task, args.nest_synapse)

    rows = []
    if not args.skip_nest:
        print("NEST (gradient descent, its example's settings) ...", flush=True)
        rows.append(run_nest(task, args.iterations, synapse=args.nest_synapse))
        if args.nest_adam:
            print("NEST (Adam) ...", flush=True)
            rows.append(run_nest(task, args.iterations, optimizer="adam", eta=ADAM_LR, synapse=args.nest_synapse))
    print("eprop (Adam) ...", flush=True)
    rows.append(run_eprop(task, args.iterations, "adam", ADAM_LR, args.feedback, args.init))
    print("eprop (SGD) ...", flush=True)
    rows.append(run_eprop(task, args.iterations, "sgd", sgd_lr, args.feedback, args.init))
    if args.kernel != "dense":
        for opt, lr in (("adam", ADAM_LR), ("sgd", sgd_lr)):
            print(f"eprop ({opt}, kernel={args.kernel}) ...", flush=True)
            rows.append(run_eprop(task, args.iterations, opt, lr, args.feedback, args.init, kernel=args.kernel))
    if args.learn_bias:
        print("eprop (Adam, readout bias learning) ...", flush=True)
        rows.append(run_eprop(task, args.iterations, "adam", ADAM_LR, args.feedback, args.init, learn_bias=True))

    try:
        load = os.getloadavg()
        print(f"load average after the runs: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    nest_row = rows[0] if not args.skip_nest else None
    print()
    print(table(rows, nest_row))
    print()
    print("loss = sum over the 1000 steps of 0.5 (y - y*)^2; 'final loss' is the last training iteration's,")
    print(f"'frozen-weight loss' eprop's predict_sequence after training; predicting zero gives {zero:.3f}.")
    for r in rows:
        print(
            f"  {r['library']} {r['optimizer']}: first iteration {r['loss_first']:.4g} -> "
            f"final {r['loss_final']:.4g} (min {min(r['losses']):.4g})"
        )
    if nest_row:
        nest_rows = [r for r in rows if r["library"].startswith("NEST")]
        for r in rows:
            if not r["library"].startswith("eprop"):
                continue
            for n in nest_rows:
                # the conservative speed-up: the lower of the wall-time and the CPU-time ratio
                speed = min(n["wall_s"] / r["wall_s"], n["cpu_s"] / r["cpu_s"])
                ok = speed >= 10 and r["loss_final"] <= n["loss_final"]
                print(
                    f"  target (>= 10x faster at <= the loss), eprop {r['optimizer']} vs NEST {n['optimizer']}: "
                    f"{speed:.1f}x, loss {r['loss_final']:.4g} vs {n['loss_final']:.4g} -> {'met' if ok else 'NOT met'}"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "load_before": load_before,
                    "load_after": load,
                    "args": vars(args),
                    "zero_loss": zero,
                    "sgd_lr": sgd_lr,
                    "rows": rows,
                },
                f,
                indent=1,
            )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
