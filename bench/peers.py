"""eprop beside its peers on the pattern-generation task, one core, one run.

The task, network and initial weights are those of ``bench/compare_nest.py``
(imported, not copied): 100 inputs firing a frozen 50 Hz Poisson raster for
T = 1000 steps of 1 ms, 100 recurrent LIF neurons (tau_m 30 ms, reset by
subtraction, no refractory period, threshold 0.03 in NEST's units = 0.03 / (1 -
exp(-1/30)) ~= 0.915 with input scaling 1), one leaky readout (tau_out 30 ms,
unit gain, no bias) that must reproduce a sum of four sines; the rate
regularization c_reg 300 toward 10 Hz; NEST's initial weights (numpy seed 1) on
every side, so the first iteration's loss is the same everywhere (a check that
the forward dynamics agree). One iteration = one 1000-step sequence, then one
weight update (batch size 1). The loss is ``E = sum_t 0.5 (y_t - y*_t)^2`` over
the sequence; "loss reached" is the mean E of the last 20 training
iterations (each with the weights frozen during it), for every side: the loss
of a single iteration jumps by 2x from one iteration to the next. Default optimizer on every side: Adam, lr
3e-3 (beta1 0.9, beta2 0.999, eps 1e-8); ``--optimizer sgd`` uses plain
gradient descent at NEST's example eta 1e-4 instead.

Sides (all in this one process except the memory probes, alternating over
``--rounds`` rounds, each round a fresh training run of ``--iterations``
iterations from the same initial weights):

* eprop ``RecurrentNetwork`` (``compare_nest.run_eprop``: ``train_sequence``,
  one update per sequence, readout bias held at 0), ``kernel="dense"`` and
  ``kernel="event"``, each with ``feedback="symmetric"`` (B = W_out^T: the mode
  BrainTrace and BPTT are compared with) and ``feedback="random"`` with NEST's
  feedback weights (the mode NEST is compared with). ``--dtype``.
* NEST 3.10 (``compare_nest.run_nest``): ``eprop_iaf_bsshslm_2020`` +
  ``eprop_readout_bsshslm_2020``, fixed random feedback (its only mode),
  ``eprop_synapse_bsshslm_2020`` with NEST's Adam (or gradient descent with
  ``--optimizer sgd``), weights clipped to [-100, 100],
  ``nest.local_num_threads = 1``. Timed: the one ``nest.Simulate`` call (it
  includes NEST's 4 extra steps of transmission delay and a multimeter on the
  readout). float64.
* BrainTrace (``braintrace.EProp``, its e-prop; ``--braintrace-algorithm``
  picks ``d_rtrl`` or ``pp_prop`` instead): the LIF layer as a
  ``brainstate`` module whose W_in and W_rec go through ``braintrace.matmul``
  (hidden state v; the reset and z(t-1) in the recurrence are
  ``stop_gradient``-ed, e-prop's convention), symmetric feedback (BrainTrace's
  ``feedback='random'`` projects the L2-normalized dL/dh through a square
  n_rec x n_rec matrix, which is not e-prop's B err, so no random-feedback
  row), eligibility low-pass ``kappa_filter_decay = exp(-1/30)`` (the readout's
  kappa). Differences, all forced by BrainTrace 0.2.6: (1) the leaky readout
  (zhat, W_out) runs in the step function outside the learner, because a
  readout ``braintrace.matmul`` fed by the same step's spikes fails inside
  ``EProp``/``D_RTRL``/``pp_prop`` with ``KeyError: Var(...)`` in
  ``_compute_hid2weight_jacobian``; W_out's gradient is then the exact
  ``sum_t err_t zhat_t`` (as eprop's), computed from the step outputs; (2)
  BrainTrace filters every learning signal's trace, including the rate
  regularizer's, and its filter has gain 1/(1 - kappa): the regularizer enters
  each step's loss as ``c_j z_j(t)`` with ``c_j = (1 - kappa) c_reg (f_j -
  f0) / T``, f_j the mean rate of the *previous* sequence (the first sequence
  uses the initial weights' rate, so the first gradient is the e-prop
  objective's): a lag of one update that eprop does not have. The
  ``--check`` lines print how close its first gradient is to eprop's
  ``gradients()``. ``jax.jit`` over one whole iteration (sequence +
  ``optax`` update); W_rec's diagonal gradient is masked to 0.
* plain BPTT through JAX: ``jax.value_and_grad`` of ``E + c_reg/2 sum_j (f_j -
  f0)^2`` (f_j this sequence's mean rate) over a ``jax.lax.scan`` of the same
  LIF network and readout, with the same pseudo-derivative (0.3 / thr) max(0, 1
  - |v - thr| / thr) as surrogate gradient and nothing stopped (the full
  gradient, through the reset and the recurrence), ``optax`` Adam/SGD, one
  ``jax.jit`` per iteration. The same network with e-prop's stop-gradients is
  checked against eprop's ``gradients()`` (``--check``).
* C probe ``canonical_step.c`` (``bench/limits.py``'s build/probe; built with
  ``cc -O3 -march=native`` and with ``-ffast-math``) at (100, 100, 1), 5%
  random inputs, T = iterations x 1000 steps: the dense math of canonical
  e-prop per step (no rate regularization, no weight update), a yardstick of
  what one core does; no loss.

eprop and both JAX sides run float64 by default; ``--dtype float32`` runs
all three in single precision (eprop's ``dtype="float32"``, JAX's default
precision); NEST is float64 either way. Timed: wall clock (``time.perf_counter``) and process CPU
time (``time.process_time``) of the training only; construction, BrainTrace's
graph compilation and XLA's JIT (one warm-up iteration on a copy of the
weights) are reported separately as "setup". Peak memory: the peak RSS of a
child process that imports only that side's library, builds the network and
trains 3 iterations (``--no-memory`` skips), beside that of a child that only
imports numpy.

One core everywhere: the process is pinned to one CPU (``--cpu``, default the
last allowed one) with ``os.sched_setaffinity`` before JAX is imported;
RAYON_NUM_THREADS = OMP/OPENBLAS/MKL_NUM_THREADS = 1,
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false" (the pinning is what makes it one core),
JAX_PLATFORMS=cpu, ``nest.local_num_threads = 1``. OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are removed from this process's environment at the very top,
before numpy is imported (the run prints their former values).

A peer that is not installed, or is skipped with a ``--skip-*`` flag, is
reported as SKIPPED with the reason, in the output and in the JSON.

Versions used to write and run it (one virtualenv, ``/work/venv-peers``)::

    python3 -m venv /work/venv-peers
    /work/venv-peers/bin/pip install eprop-0.2.0-*.whl numpy==2.4.6 matplotlib==3.11.2 \\
        braintrace==0.2.6 brainstate==0.5.4 "jax[cpu]==0.10.2" optax==0.2.8 nest-simulator==3.10.0
    # (the eprop wheel built with maturin from this repository; cc = gcc 12.2)

Usage::

    /work/venv-peers/bin/python bench/peers.py [--iterations 200] [--rounds 3] [--quick]
        [--optimizer adam|sgd] [--dtype float64|float32] [--braintrace-algorithm eprop|d_rtrl|pp_prop]
        [--skip-nest] [--skip-braintrace] [--skip-jax] [--skip-c] [--no-memory] [--no-check]
        [--cpu N] [--out docs/peers.json] [--plot docs/peers.png]
"""

# --- environment: before numpy / eprop / nest / jax are imported -----------
import os

_OPENBLAS_UNSET = {v: os.environ.pop(v, None) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_v] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
os.environ["JAX_PLATFORMS"] = "cpu"
# ---------------------------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import compare_nest as cn  # noqa: E402
import numpy as np  # noqa: E402
from _timing import alternate  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS = cn.STEPS
ALPHA = KAPPA = float(np.exp(-1.0 / cn.TAU_M))  # membrane and readout decay per 1 ms step
THRESHOLD = cn.V_TH_NEST / (1.0 - ALPHA)  # NEST's threshold in eprop's units (input scaling 1)
RATE0 = cn.F_TARGET / 1000.0  # target rate in spikes per step
OPTIMIZERS = {"adam": ("adam", cn.ADAM_LR), "sgd": ("sgd", cn.NEST_ETA)}  # eprop name, lr
MEMORY_ITERATIONS = 3


def _mib(kib: float) -> float:
    return kib / 1024.0


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("eprop", "numpy", "jax", "jaxlib", "braintrace", "brainstate", "optax", "nest-simulator", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["cc"] = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        out["cc"] = None
    return out


# --------------------------------------------------------------------------- eprop
def eprop_side(task: dict, iterations: int, optimizer: str, feedback: str, kernel: str, dtype: str):
    name, lr = OPTIMIZERS[optimizer]
    t0 = time.perf_counter()
    cn.eprop_network(task, name, lr, feedback, "nest", kernel, dtype)  # construction, timed apart
    setup = time.perf_counter() - t0

    def run() -> dict:
        r = cn.run_eprop(task, iterations, name, lr, feedback, "nest", kernel=kernel, dtype=dtype)
        return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "losses": r["losses"], "setup_s": setup}

    return run


# --------------------------------------------------------------------------- NEST
def nest_side(task: dict, iterations: int, optimizer: str):
    import nest

    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    opt, eta = ("adam", cn.ADAM_LR) if optimizer == "adam" else ("gradient_descent", cn.NEST_ETA)

    def run() -> dict:
        t0 = time.perf_counter()
        r = cn.run_nest(task, iterations, optimizer=opt, eta=eta)
        total = time.perf_counter() - t0
        assert r["threads"] == 1
        return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "losses": r["losses"], "setup_s": total - r["wall_s"]}

    return run


# --------------------------------------------------------------------------- JAX (shared by BPTT and BrainTrace)
class JaxModel:
    """The task's LIF network written once in JAX: the pseudo-derivative, one LIF
    step (with a choice of matrix product, so BrainTrace's ETP op can stand in
    for jnp.matmul) and the readout. Weights are (inputs, outputs) oriented."""

    def __init__(self, dtype: str, with_brainstate: bool):
        import jax

        if with_brainstate:
            import brainstate  # before the precision switch: it sets JAX's x64 flag itself

            brainstate.environ.set(precision=64 if dtype == "float64" else 32)
        jax.config.update("jax_enable_x64", dtype == "float64")
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.dtype = jnp.float64 if dtype == "float64" else jnp.float32
        scale = cn.SURR_HEIGHT / THRESHOLD

        @jax.custom_jvp
        def spike(d):
            return (d >= 0).astype(d.dtype)

        @spike.defjvp
        def _spike_jvp(primals, tangents):
            (d,), (dd,) = primals, tangents
            return spike(d), scale * jnp.maximum(0.0, 1.0 - jnp.abs(d) / THRESHOLD) * dd

        self.spike = spike

    def params(self, task: dict) -> dict:
        """NEST's initial weights, (in, out) oriented."""
        jnp = self.jnp
        return {
            "w_in": jnp.asarray(task["in_rec"].T, self.dtype),
            "w_rec": jnp.asarray(task["rec_rec"].T, self.dtype),
            "w_out": jnp.asarray(task["rec_out"].T, self.dtype),
        }

    def lif_step(self, v_prev, x, w_in, w_rec, matmul, eprop_stops: bool):
        """v(t) = alpha v(t-1) + W_in x(t) + W_rec z(t-1) - thr z(t-1); z(t) = H(v(t) - thr).
        With ``eprop_stops`` z(t-1) is a constant in the recurrence and the reset (e-prop)."""
        z_prev = self.spike(v_prev - THRESHOLD)
        if eprop_stops:
            z_prev = self.jax.lax.stop_gradient(z_prev)
        v = ALPHA * v_prev + matmul(x, w_in) + matmul(z_prev, w_rec) - THRESHOLD * z_prev
        return v, self.spike(v - THRESHOLD)

    def sequence_loss(self, params, xs, ys, eprop_stops: bool):
        """E + c_reg/2 sum_j (f_j - f0)^2 over one sequence; aux: (E, rates)."""
        jax, jnp = self.jax, self.jnp
        n = params["w_rec"].shape[0]
        w_rec = params["w_rec"] * (1.0 - jnp.eye(n, dtype=self.dtype))  # no self-connections

        def step(carry, xt):
            v, zhat = carry
            v, z = self.lif_step(v, xt, params["w_in"], w_rec, jnp.matmul, eprop_stops)
            zhat = KAPPA * zhat + (1.0 - KAPPA) * z
            return (v, zhat), (zhat @ params["w_out"], z)

        zeros = jnp.zeros(n, self.dtype)
        _, (y, z) = jax.lax.scan(step, (zeros, zeros), xs)
        task_loss = 0.5 * jnp.sum((y - ys) ** 2)
        rates = jnp.mean(z, axis=0)
        return task_loss + 0.5 * cn.C_REG * jnp.sum((rates - RATE0) ** 2), (task_loss, rates)

    def optimizer(self, optimizer: str):
        import optax

        return optax.adam(cn.ADAM_LR) if optimizer == "adam" else optax.sgd(cn.NEST_ETA)

    def no_diagonal(self, grads: dict) -> dict:
        n = grads["w_rec"].shape[0]
        return {**grads, "w_rec": grads["w_rec"] * (1.0 - self.jnp.eye(n, dtype=self.dtype))}


def bptt_side(model: JaxModel, task: dict, iterations: int, optimizer: str):
    jax = model.jax
    x, y = cn.sequence(task)
    xs, ys = model.jnp.asarray(x, model.dtype), model.jnp.asarray(y, model.dtype)
    opt = model.optimizer(optimizer)
    grad_fn = jax.value_and_grad(model.sequence_loss, has_aux=True)

    @jax.jit
    def train_iteration(params, opt_state):
        (_, (task_loss, _)), grads = grad_fn(params, xs, ys, False)
        updates, opt_state = opt.update(model.no_diagonal(grads), opt_state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return params, opt_state, task_loss

    t0 = time.perf_counter()
    p0 = model.params(task)
    jax.block_until_ready(train_iteration(p0, opt.init(p0)))  # XLA compile + one warm-up iteration
    setup = time.perf_counter() - t0

    def run() -> dict:
        params = model.params(task)
        state = opt.init(params)
        losses = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(iterations):
            params, state, loss = train_iteration(params, state)
            losses.append(float(loss))  # waits for the iteration, as eprop's train_sequence returns
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"wall_s": wall, "cpu_s": cpu, "losses": losses, "setup_s": setup}

    return run


def eprop_check_gradient(model: JaxModel, task: dict) -> dict:
    """eprop's gradients() (symmetric feedback, regularization included) against the
    JAX network's e-prop gradient (stop-gradients) and its full BPTT gradient."""
    jax = model.jax
    ref = cn.eprop_network(task, "adam", cn.ADAM_LR, "symmetric", "nest").gradients(*cn.sequence(task))
    x, y = cn.sequence(task)
    xs, ys = model.jnp.asarray(x, model.dtype), model.jnp.asarray(y, model.dtype)
    out = {}
    for label, stops in (("jax_eprop_network", True), ("jax_bptt", False)):
        grads = jax.grad(lambda p, s=stops: model.sequence_loss(p, xs, ys, s)[0])(model.params(task))
        out[label] = compare_gradients(
            {
                "W_in": np.asarray(grads["w_in"]).T,
                "W_rec": np.asarray(grads["w_rec"]).T,
                "W_out": np.asarray(grads["w_out"]).T,
            },
            ref,
        )
    return out


def compare_gradients(ours: dict, ref: dict) -> dict:
    """Relative difference and cosine per matrix (W_rec off the diagonal)."""
    out = {}
    for name in ("W_in", "W_rec", "W_out"):
        a, b = np.array(ours[name], dtype=np.float64), np.array(ref[name], dtype=np.float64)
        if name == "W_rec":
            np.fill_diagonal(a, 0.0)
            np.fill_diagonal(b, 0.0)
        rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        cos = float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        out[name] = {"rel_diff": rel, "cosine": cos}
    return out


# --------------------------------------------------------------------------- BrainTrace
def braintrace_side(model: JaxModel, task: dict, iterations: int, optimizer: str, algorithm: str):
    import brainstate
    import braintrace

    jax, jnp = model.jax, model.jnp
    n_rec = cn.N_REC
    p0 = model.params(task)

    class LIFLayer(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w_in = brainstate.ParamState(p0["w_in"])
            self.w_rec = brainstate.ParamState(p0["w_rec"])

        def init_state(self, batch_size=None, **kwargs):
            self.v = brainstate.HiddenState(jnp.zeros(n_rec, model.dtype))

        def reset_state(self, batch_size=None, **kwargs):
            self.v.value = jnp.zeros(n_rec, model.dtype)

        def update(self, x):
            v, z = model.lif_step(self.v.value, x, self.w_in.value, self.w_rec.value, braintrace.matmul, True)
            self.v.value = v
            return z

    x, y = cn.sequence(task)
    xs, ys = jnp.asarray(x, model.dtype), jnp.asarray(y, model.dtype)
    t0 = time.perf_counter()
    layer = LIFLayer()
    options = {
        "eprop": {"feedback": "symmetric", "kappa_filter_decay": KAPPA},
        "d_rtrl": {},
        "pp_prop": {"decay_or_rank": ALPHA},
    }[algorithm]
    learner = braintrace.compile(layer, algorithm, xs[0], **options)
    zhat = brainstate.ShortTermState(jnp.zeros(n_rec, model.dtype))  # the readout, outside the learner
    opt = model.optimizer(optimizer)
    # the regularizer's weight per step and neuron (see the module docs)
    reg_scale = (1.0 - KAPPA if algorithm == "eprop" else 1.0) * cn.C_REG / STEPS

    def gradient(params, prev_rates):
        layer.w_in.value = params["w_in"]
        layer.w_rec.value = params["w_rec"]
        brainstate.nn.reset_all_states(layer)  # v = 0
        learner.reset_state()  # eligibility traces (and their filters) = 0, as eprop per sequence
        zhat.value = jnp.zeros(n_rec, model.dtype)
        c = reg_scale * (prev_rates - RATE0)

        def step_loss(xt, yt):
            z = learner(xt)
            zh = KAPPA * zhat.value + (1.0 - KAPPA) * z
            zhat.value = zh
            err = zh @ params["w_out"] - yt
            return 0.5 * jnp.sum(err**2) + jnp.sum(c * z), (err, jax.lax.stop_gradient(zh), z)

        grads, (err, zh, z) = learner.etrace_grad(xs, ys, step_fn=step_loss, reduction="sum", has_aux=True)
        named = {str(k[-1] if isinstance(k, tuple) else k): g for k, g in grads.items()}
        g = {"w_in": named["w_in"], "w_rec": named["w_rec"], "w_out": zh.T @ err}
        return g, 0.5 * jnp.sum(err**2), jnp.mean(z, axis=0)

    @brainstate.transform.jit
    def train_iteration(params, opt_state, prev_rates):
        g, task_loss, rates = gradient(params, prev_rates)
        updates, opt_state = opt.update(model.no_diagonal(g), opt_state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return params, opt_state, task_loss, rates

    @jax.jit
    def initial_rates(params):
        return model.sequence_loss(params, xs, ys, True)[1][1]

    rates0 = initial_rates(p0)
    jax.block_until_ready(train_iteration(p0, opt.init(p0), rates0))  # graph + XLA compile, one warm-up
    setup = time.perf_counter() - t0

    def run() -> dict:
        params = model.params(task)
        state = opt.init(params)
        rates = initial_rates(params)  # the initial weights' rate: untimed, as the first lag
        jax.block_until_ready(rates)
        losses = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(iterations):
            params, state, loss, rates = train_iteration(params, state, rates)
            losses.append(float(loss))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"wall_s": wall, "cpu_s": cpu, "losses": losses, "setup_s": setup}

    def check() -> dict:
        ref = cn.eprop_network(task, "adam", cn.ADAM_LR, "symmetric", "nest").gradients(*cn.sequence(task))
        g, _, _ = brainstate.transform.jit(gradient)(model.params(task), rates0)
        ours = {"W_in": np.asarray(g["w_in"]).T, "W_rec": np.asarray(g["w_rec"]).T, "W_out": np.asarray(g["w_out"]).T}
        return compare_gradients(ours, ref)

    return run, check


# --------------------------------------------------------------------------- C probes
def c_sides(limits_dir: Path, iterations: int) -> dict:
    import limits

    src = limits_dir / "canonical_step.c"
    tmp = Path(tempfile.mkdtemp(prefix="peers-c-"))
    sides = {}
    for fast in (False, True):
        exe = limits.build(src, tmp / ("canonical_fast" if fast else "canonical"), fast)
        steps = iterations * STEPS

        def run(exe=exe, steps=steps) -> dict:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            rate = limits.probe(exe, [cn.N_IN, cn.N_REC, cn.N_OUT, steps, 0.05])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return {"wall_s": steps / rate, "cpu_s": cpu, "losses": None, "setup_s": 0.0}

        sides["C -O3 -ffast-math" if fast else "C -O3"] = run
    return sides


# --------------------------------------------------------------------------- memory probes
def memory_probe(side: str, args) -> None:
    """Child process: build and train one side for a few iterations, print peak RSS."""
    os.sched_setaffinity(0, {args.cpu})
    task = cn.make_task()
    if side == "baseline":
        pass
    elif side.startswith("eprop"):
        kernel = side.split("-")[1]
        eprop_side(task, MEMORY_ITERATIONS, args.optimizer, "symmetric", kernel, args.dtype)()
    elif side == "nest":
        nest_side(task, MEMORY_ITERATIONS, args.optimizer)()
    elif side == "bptt":
        bptt_side(JaxModel(args.dtype, False), task, MEMORY_ITERATIONS, args.optimizer)()
    elif side == "braintrace":
        run, _ = braintrace_side(
            JaxModel(args.dtype, True), task, MEMORY_ITERATIONS, args.optimizer, args.braintrace_algorithm
        )
        run()
    # VmHWM (this process's own peak RSS): ru_maxrss would carry over the parent's peak through fork
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"maxrss_mib": _mib(hwm)}))


def measure_memory(side: str, args) -> float | None:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_memory-probe",
        side,
        "--cpu",
        str(args.cpu),
        "--optimizer",
        args.optimizer,
        "--dtype",
        args.dtype,
        "--braintrace-algorithm",
        args.braintrace_algorithm,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return float(json.loads(line)["maxrss_mib"])
    print(f"  memory probe {side} failed: {r.stderr.strip().splitlines()[-1:]}")
    return None


# --------------------------------------------------------------------------- report
#: "loss reached" is the mean loss of this many last iterations
LAST = 20


def summarize(name: str, info: dict, results: list[dict]) -> dict:
    steps = [info["iterations"] * STEPS / r["wall_s"] for r in results]
    losses = results[-1]["losses"]
    row = {
        "name": name,
        **info,
        "steps_per_s": steps,
        "steps_per_s_median": statistics.median(steps),
        "wall_s": [r["wall_s"] for r in results],
        "cpu_s": [r["cpu_s"] for r in results],
        "setup_s": results[0]["setup_s"],
        "loss_first": losses[0] if losses else None,
        # the loss of one iteration of a spiking network jumps from iteration
        # to iteration: the mean over the last LAST iterations
        "loss_reached": statistics.fmean(losses[-LAST:]) if losses else None,
        "loss_last": losses[-1] if losses else None,
        "loss_min": min(losses) if losses else None,
        "losses_last_round": losses,
        "loss_reached_each_round": [statistics.fmean(r["losses"][-LAST:]) for r in results] if losses else None,
    }
    return row


def fmt(x, spec=".4g", none="-"):
    return none if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    lines = [
        "| library | settings | steps/s median (min-max) | wall s | CPU s | setup s | first loss | loss reached "
        "| peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["steps_per_s"]
        lines.append(
            f"| {r['name']} | {r['settings']} | {r['steps_per_s_median']:,.0f} ({min(s):,.0f}-{max(s):,.0f}) | "
            f"{statistics.median(r['wall_s']):.2f} | {statistics.median(r['cpu_s']):.2f} | {r['setup_s']:.2f} | "
            f"{fmt(r['loss_first'], '.9g')} | {fmt(r['loss_reached'])} | {fmt(r.get('peak_rss_mib'), '.0f')} |"
        )
    return "\n".join(lines)


def ratios(rows: dict, pairs: list[tuple[str, str]]) -> list[dict]:
    out = []
    for ours, peer in pairs:
        if ours not in rows or peer not in rows:
            continue
        a, b = rows[ours], rows[peer]
        # round by round: steps per wall second, eprop / peer
        sps = [sa / sb for sa, sb in zip(a["steps_per_s"], b["steps_per_s"])]
        out.append(
            {
                "eprop": ours,
                "peer": peer,
                "steps_per_s_ratio_median": statistics.median(sps),
                "steps_per_s_ratio_range": (min(sps), max(sps)),
                "cpu_ratio_median": statistics.median(
                    [(cb / b["iterations"]) / (ca / a["iterations"]) for ca, cb in zip(a["cpu_s"], b["cpu_s"])]
                ),
            }
        )
    return out


def plot(rows: list[dict], zero_loss: float, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    med = [r["steps_per_s_median"] for r in rows]
    lo = [m - min(r["steps_per_s"]) for m, r in zip(med, rows)]
    hi = [max(r["steps_per_s"]) - m for m, r in zip(med, rows)]
    colors = [
        "tab:blue" if n.startswith("eprop") else "tab:gray" if n.startswith("C ") else "tab:orange" for n in names
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 2.2), sharey=True)
    pos = np.arange(len(rows))
    ax1.barh(pos, med, xerr=[lo, hi], color=colors)
    ax1.set_xscale("log")
    ax1.set_yticks(pos, names)
    ax1.invert_yaxis()
    ax1.set_xlabel("training steps per second (median over rounds; bars: min-max), one core")
    for p, m in zip(pos, med):
        ax1.text(m, p, f" {m:,.0f}", va="center", fontsize=8)
    loss = [r["loss_reached"] if r["loss_reached"] is not None else np.nan for r in rows]
    ax2.barh(pos, loss, color=colors)
    ax2.axvline(zero_loss, color="k", ls="--", lw=1, label=f"zero output ({zero_loss:.1f})")
    ax2.set_xscale("log")
    floor = np.nanmin(loss + [zero_loss]) / 3
    ax2.set_xlim(left=floor)
    for p, v in zip(pos, loss):
        ax2.text(floor if np.isnan(v) else v, p, " n/a" if np.isnan(v) else f" {v:.3g}", va="center", fontsize=8)
    ax2.set_xlabel(f"loss reached: E = sum_t 0.5 (y - y*)^2, mean of the last {LAST} iterations (log)")
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=None, help="training iterations per round and side (200)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds, the sides alternating in each (3)")
    ap.add_argument("--quick", action="store_true", help="smoke setting: 20 iterations, 2 rounds by default")
    ap.add_argument(
        "--optimizer", choices=("adam", "sgd"), default="adam", help="adam lr 3e-3 or sgd lr 1e-4, all sides"
    )
    ap.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="eprop, BrainTrace and BPTT (NEST: float64)"
    )
    ap.add_argument("--braintrace-algorithm", choices=("eprop", "d_rtrl", "pp_prop"), default="eprop")
    ap.add_argument("--skip-nest", action="store_true")
    ap.add_argument("--skip-braintrace", action="store_true")
    ap.add_argument("--skip-jax", action="store_true", help="skip plain BPTT through JAX")
    ap.add_argument("--skip-c", action="store_true", help="skip the C probes")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--no-check", action="store_true", help="skip the gradient checks against eprop's gradients()")
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the one CPU to pin to")
    ap.add_argument("--limits", default=None, help="folder of the C probes (default ../shared/limits)")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "peers.json"))
    ap.add_argument("--plot", default=None, help="PNG path (default: --out with .png)")
    ap.add_argument("--_memory-probe", dest="memory_probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    default_iterations, default_rounds = (20, 2) if args.quick else (200, 3)
    args.iterations = args.iterations or default_iterations
    args.rounds = args.rounds or default_rounds
    return args


def available(module: str) -> str | None:
    """None if ``module`` imports, else the reason it does not."""
    try:
        __import__(module)
    except Exception as e:  # noqa: BLE001 - any import failure makes the peer unavailable
        return f"import {module} failed: {type(e).__name__}: {e}"
    return None


def main() -> int:
    args = parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, args)
        return 0
    os.sched_setaffinity(0, {args.cpu})  # before JAX is imported
    start = time.perf_counter()
    load_before = os.getloadavg()
    versions = _versions()
    print(
        f"python {versions['python']} on {platform.machine()}, {os.cpu_count()} CPUs, pinned to CPU {args.cpu}; "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    print(
        "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for this process (were: "
        + ", ".join(f"{k}={v!r}" for k, v in _OPENBLAS_UNSET.items())
        + "); RAYON/OMP/OPENBLAS/MKL_NUM_THREADS=1; XLA_FLAGS="
        + os.environ["XLA_FLAGS"]
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    task = cn.make_task()
    zero = float(0.5 * np.sum(task["target"] ** 2))
    opt_label = "Adam lr 3e-3" if args.optimizer == "adam" else "SGD lr 1e-4"
    print(
        f"pattern generation: {cn.N_IN} inputs, {cn.N_REC} LIF, {cn.N_OUT} readout, T = {STEPS}, "
        f"{args.iterations} iterations x {args.rounds} rounds, {opt_label}; loss of a zero output {zero:.3f}"
    )

    skipped: dict[str, str] = {}
    sides: dict = {}
    info: dict = {}
    checks: dict = {}
    iters = args.iterations
    bits = "f64" if args.dtype == "float64" else "f32"

    for kernel in ("dense", "event"):
        for fb in ("symmetric", "random"):
            name = f"eprop {kernel} ({fb})"
            sides[name] = eprop_side(task, iters, args.optimizer, fb, kernel, args.dtype)
            info[name] = {"settings": f"{fb} feedback, {opt_label}, {bits}", "iterations": iters}

    reason = "--skip-nest" if args.skip_nest else available("nest")
    if reason:
        skipped["NEST"] = reason
    else:
        sides["NEST 3.10"] = nest_side(task, iters, args.optimizer)
        info["NEST 3.10"] = {
            "settings": f"random feedback (its only mode), NEST {'Adam' if args.optimizer == 'adam' else 'GD'}, f64",
            "iterations": iters,
        }

    jax_model = None
    bt_name = {"eprop": "BrainTrace EProp", "d_rtrl": "BrainTrace D_RTRL", "pp_prop": "BrainTrace pp_prop"}[
        args.braintrace_algorithm
    ]
    need_jax = not args.skip_braintrace or not args.skip_jax
    jax_reason = available("jax") if need_jax else None
    bt_reason = "--skip-braintrace" if args.skip_braintrace else (jax_reason or available("braintrace"))
    if not bt_reason:
        bt_reason = available("optax")
    if bt_reason:
        skipped[bt_name] = bt_reason
    if not bt_reason or not (args.skip_jax or jax_reason):
        jax_model = JaxModel(args.dtype, with_brainstate=not bt_reason)
    if not bt_reason:
        print(f"{bt_name}: building the graph and compiling ...", flush=True)
        try:
            run, check = braintrace_side(jax_model, task, iters, args.optimizer, args.braintrace_algorithm)
            sides[bt_name] = run
            info[bt_name] = {"settings": f"symmetric feedback, {opt_label} (optax), {bits}", "iterations": iters}
            if not args.no_check:
                checks[bt_name] = check()
        except Exception as e:  # noqa: BLE001 - report any failure of the peer, do not hide it
            skipped[bt_name] = f"failed: {type(e).__name__}: {e}"
    jax_name = "JAX BPTT"
    reason = "--skip-jax" if args.skip_jax else (jax_reason or available("optax"))
    if reason:
        skipped[jax_name] = reason
    else:
        print("JAX BPTT: compiling ...", flush=True)
        sides[jax_name] = bptt_side(jax_model, task, iters, args.optimizer)
        info[jax_name] = {"settings": f"exact gradient, {opt_label} (optax), {bits}", "iterations": iters}
        if not args.no_check:
            checks.update(eprop_check_gradient(jax_model, task))

    if args.skip_c:
        skipped["C probes"] = "--skip-c"
    elif args.dtype != "float64":
        skipped["C probes"] = "the probes compute in float64 (not like for like with --dtype float32)"
    else:
        limits_dir = Path(args.limits) if args.limits else HERE.parent.parent / "shared" / "limits"
        if not (limits_dir / "canonical_step.c").exists():
            limits_dir = Path("/work/shared/limits")
        try:
            for name, run in c_sides(limits_dir, iters).items():
                sides[name] = run
                info[name] = {"settings": "canonical_step.c, dense, no reg/update, 5% inputs", "iterations": iters}
        except Exception as e:  # noqa: BLE001
            skipped["C probes"] = f"failed: {type(e).__name__}: {e}"

    for name, why in skipped.items():
        print(f"SKIPPED: {name} -- {why}")

    if checks:
        print("gradient checks at the initial weights against eprop's gradients() (symmetric, regularization in):")
        for name, res in checks.items():
            print(
                f"  {name:22s} "
                + "  ".join(f"{m}: rel diff {v['rel_diff']:.2g}, cos {v['cosine']:.4f}" for m, v in res.items())
            )

    print(f"timing {len(sides)} sides, {args.rounds} rounds ...", flush=True)

    def announce(name, fn):
        def run():
            r = fn()
            print(f"  {name}: {iters * STEPS / r['wall_s']:,.0f} steps/s", flush=True)
            return r

        return run

    results = alternate(args.rounds, {n: announce(n, f) for n, f in sides.items()})
    rows = {n: summarize(n, info[n], results[n]) for n in sides}

    if not args.no_memory:
        print("peak memory (child processes) ...", flush=True)
        base = measure_memory("baseline", args)
        probes = {
            "eprop dense": "eprop-dense",
            "eprop event": "eprop-event",
            "NEST 3.10": "nest",
            jax_name: "bptt",
            bt_name: "braintrace",
        }
        for prefix, side in probes.items():
            targets = [n for n in rows if n.startswith(prefix)]
            if not targets:
                continue
            rss = measure_memory(side, args)
            for n in targets:
                rows[n]["peak_rss_mib"] = rss
        memory_note = f"baseline (python + numpy + the task) {fmt(base, '.0f')} MiB"
    else:
        base, memory_note = None, "not measured (--no-memory)"

    load_after = os.getloadavg()
    ordered = list(rows.values())
    print()
    print(table(ordered))
    print()
    print(f"peak RSS: a child process per library that builds the network and trains {MEMORY_ITERATIONS} iterations;")
    print(f"  {memory_note}. C probes: n/a.")
    print(
        f"loss: E = sum_t 0.5 (y - y*)^2, mean of the last {LAST} iterations (last round); "
        f"zero output gives {zero:.3f}."
    )
    for r in ordered:
        if r["loss_reached_each_round"] and len(set(np.round(r["loss_reached_each_round"], 9))) > 1:
            print(f"  {r['name']}: loss reached differs between rounds: {r['loss_reached_each_round']}")
    pairs = []
    for kernel in ("dense", "event"):
        sym, rnd = f"eprop {kernel} (symmetric)", f"eprop {kernel} (random)"
        pairs += [(rnd, "NEST 3.10"), (sym, bt_name), (sym, jax_name), (sym, "C -O3"), (sym, "C -O3 -ffast-math")]
    ratio_rows = ratios(rows, pairs)
    print("speed ratios, eprop steps/s over the peer's, measured in the same rounds (median, range over rounds;")
    print("CPU: ratio of CPU time per iteration):")
    for q in ratio_rows:
        lo, hi = q["steps_per_s_ratio_range"]
        print(
            f"  {q['eprop']:26s} / {q['peer']:20s} {q['steps_per_s_ratio_median']:6.2f}x ({lo:.2f}-{hi:.2f})"
            f"  CPU {q['cpu_ratio_median']:.2f}x"
        )
    print("loss reached per library: " + "; ".join(f"{r['name']} {fmt(r['loss_reached'])}" for r in ordered))
    elapsed = time.perf_counter() - start
    print(
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; total run time {elapsed:.0f} s"
    )

    out = {
        "args": {k: v for k, v in vars(args).items() if k != "memory_probe"},
        "versions": versions,
        "openblas_unset": _OPENBLAS_UNSET,
        "xla_flags": os.environ["XLA_FLAGS"],
        "load_before": load_before,
        "load_after": load_after,
        "zero_loss": zero,
        "skipped": skipped,
        "gradient_checks": checks,
        "baseline_rss_mib": base,
        "rows": ordered,
        "ratios": ratio_rows,
        "run_time_s": elapsed,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    png = args.plot or str(Path(args.out).with_suffix(".png"))
    plot(
        ordered,
        zero,
        png,
        f"pattern generation (100-100-1, T=1000), {args.iterations} iterations x {args.rounds} rounds, "
        f"{opt_label}, one core; load {load_before[0]:.1f}->{load_after[0]:.1f}",
    )
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
