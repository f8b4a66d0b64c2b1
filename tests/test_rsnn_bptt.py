"""`eprop.RecurrentNetwork.gradients` against an autodiff oracle (autograd).

The oracle is written from the specification in the module comment of
``rust/eprop-core/src/rsnn.rs`` (not from its code): the forward pass of the
network over a sequence, in ``autograd.numpy``, with the spike nonlinearity as
an autograd primitive whose vjp is the pseudo-derivative

    psi = (gamma / thr) max(0, 1 - |v - A| / thr)   (0 while refractory).

autograd then differentiates the objective

    E = sum_{t in mask} loss(y(t), y*(t)) + reg/2 sum_j (mean_t z_j(t) - f0)^2.

Canonical e-prop with symmetric feedback is the exact gradient of this network
in which z(t-1) is a constant (stop-gradient) where it enters the recurrence
(W_rec z(t-1)) and the reset (-thr z_j(t-1)), but not where it enters the
adaptation a_j(t). "Full BPTT" differentiates everything.

Run with ``pytest -s`` to see the printed cosine report.
"""

import importlib
import time

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive
from autograd.tracer import getval


def _import_eprop():
    # The package may be reinstalled while tests run: retry a failing import.
    last = None
    for _ in range(10):
        try:
            return importlib.import_module("eprop")
        except ImportError as e:  # pragma: no cover - transient
            last = e
            time.sleep(1.0)
    raise last


eprop = _import_eprop()

RTOL = 1e-9


# --------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------


@primitive
def spike(u, refractory, thr, gamma):
    """H(u) (u = v - A), 0 where `refractory` (a constant bool array)."""
    return np.where((u > 0) & ~refractory, 1.0, 0.0)


def pseudo_derivative(u, refractory, thr, gamma):
    return np.where(refractory, 0.0, (gamma / thr) * np.maximum(0.0, 1.0 - np.abs(u) / thr))


defvjp(
    spike,
    lambda ans, u, refractory, thr, gamma: lambda g: g * pseudo_derivative(u, refractory, thr, gamma),
    None,
    None,
    None,
)


def hyper(net):
    """Hyperparameters read from the eprop object."""
    return dict(
        n=net.n_neurons,
        n_adaptive=net.n_adaptive,
        alpha=np.exp(-net.dt / net.tau_mem),
        rho=np.exp(-net.dt / net.tau_adapt),
        kappa=np.exp(-net.dt / net.tau_out),
        beta=net.beta,
        thr=net.threshold,
        n_ref=int(round(net.refractory / net.dt)),
        gamma=net.surrogate_height,
        reg=net.reg_rate,
        f0=net.target_rate * net.dt / 1000.0,
        loss=net.loss,
    )


def objective(params, X, Y, mask, hp, stop_rec=True, stop_reset=True, stop_adapt=False, t_end=None,
              steps=None, offsets=None, record=None):
    """E of the network over X[:t_end].

    params = (W_in, W_rec, W_out, b_out); Y one-hot for cross-entropy; mask (T,)
    bool. stop_rec / stop_reset / stop_adapt: z(t-1) is a constant in the
    recurrence / the reset / the adaptation (the e-prop network: True, True,
    False). steps = a set of steps: only their losses count (and no
    regularization); None = every step, plus the regularization.
    offsets[t] = constant (dW_in, dW_rec, dW_out, db_out) added to the weights
    used at step t (weights that change along the sequence). record: a dict
    that receives the spikes, pseudo-derivatives and readout (values).
    """
    W_in, W_rec, W_out, b_out = params
    T = len(X) if t_end is None else t_end
    n = hp["n"]
    alpha, rho, kappa, beta, thr = hp["alpha"], hp["rho"], hp["kappa"], hp["beta"], hp["thr"]
    adaptive = np.zeros(n)
    adaptive[n - hp["n_adaptive"]:] = 1.0
    v = np.zeros(n)
    a = np.zeros(n)
    z = np.zeros(n)
    zhat = np.zeros(n)
    z_sum = np.zeros(n)
    refr = np.zeros(n, dtype=int)  # refractory steps left: not differentiated
    E = 0.0
    for t in range(T):
        if offsets is not None:
            d = offsets[t]
            w_in, w_rec, w_out, b = W_in + d[0], W_rec + d[1], W_out + d[2], b_out + d[3]
        else:
            w_in, w_rec, w_out, b = W_in, W_rec, W_out, b_out
        z_prev = z
        z_const = getval(z_prev)
        a = rho * a + adaptive * (z_const if stop_adapt else z_prev)  # LIF: a stays 0
        A = thr + beta * a
        v = (alpha * v + anp.dot(w_in, X[t]) + anp.dot(w_rec, z_const if stop_rec else z_prev)
             - thr * (z_const if stop_reset else z_prev))
        refractory = refr > 0
        z = spike(v - A, refractory, thr, hp["gamma"])
        fired = getval(z) > 0
        refr = np.where(fired, hp["n_ref"], np.where(refractory, refr - 1, 0))
        zhat = kappa * zhat + z
        y = anp.dot(w_out, zhat) + b
        z_sum = z_sum + z
        if record is not None:
            u = getval(v) - getval(A)
            record.setdefault("z", []).append(getval(z))
            record.setdefault("psi", []).append(pseudo_derivative(u, refractory, thr, hp["gamma"]))
            record.setdefault("blocked", []).append(refractory & (u > 0))
            record.setdefault("y", []).append(getval(y))
        if mask[t] and (steps is None or t in steps):
            if hp["loss"] == "mse":
                E = E + 0.5 * anp.sum((y - Y[t]) ** 2)
            else:
                m = anp.max(getval(y))
                logsm = y - m - anp.log(anp.sum(anp.exp(y - m)))
                E = E - anp.sum(Y[t] * logsm)
    if steps is None and hp["reg"] != 0.0:
        f = z_sum / T
        E = E + 0.5 * hp["reg"] * anp.sum((f - hp["f0"]) ** 2)
    return E


def oracle_grads(params, X, Y, mask, hp, **kw):
    g = autograd.grad(objective)(tuple(params), X, Y, mask, hp, **kw)
    g = [np.array(x, dtype=float) for x in g]
    g[1] = g[1].copy()
    np.fill_diagonal(g[1], 0.0)
    return g


# --------------------------------------------------------------------------
# Networks and data
# --------------------------------------------------------------------------

NAMES = ("W_in", "W_rec", "W_out", "b_out")


def make_net(ni=4, n=6, no=2, *, seed=0, w_in=(0.25, 0.35), w_rec=0.3, w_out=1.0, rec=True, **kw):
    kw.setdefault("optimizer", "sgd")
    net = eprop.RecurrentNetwork(ni, n, no, **kw)
    rng = np.random.default_rng(seed)
    net.W_in = w_in[0] + w_in[1] * rng.standard_normal((n, ni))
    net.W_rec = (w_rec * rng.standard_normal((n, n))) if rec else np.zeros((n, n))
    net.W_out = w_out * rng.standard_normal((no, n))
    net.b_out = 0.1 * rng.standard_normal(no)
    return net


def params_of(net):
    return [np.array(getattr(net, k), dtype=float) for k in NAMES]


def make_data(net, T, *, seed=1, kind="spikes", targets="float", mask=None):
    rng = np.random.default_rng(seed)
    ni, no = net.n_inputs, net.n_outputs
    if kind == "spikes":
        X = (rng.random((T, ni)) < 0.3).astype(float)
    else:
        X = 0.4 * rng.random((T, ni))
    if targets == "float":
        Y = rng.standard_normal((T, no))
        Y_oracle = Y
    else:
        cls = rng.integers(0, no, T)
        Y_oracle = np.eye(no)[cls]
        Y = cls.astype(float) if targets == "index" else Y_oracle
    if mask is None:
        m = np.ones(T, dtype=bool)
    elif mask == "last_third":
        m = np.zeros(T, dtype=bool)
        m[T - T // 3:] = True
    else:
        m = np.asarray(mask, dtype=bool)
    return X, Y, Y_oracle, m


def eprop_grads(net, X, Y, mask, use_mask=True):
    d = net.gradients(X, Y, mask=mask) if use_mask else net.gradients(X, Y)
    g = [np.array(d[k], dtype=float) for k in NAMES]
    g[1] = g[1].copy()
    np.fill_diagonal(g[1], 0.0)
    return g, d


def assert_grads_close(ours, ref, label=""):
    for name, a, b in zip(NAMES, ours, ref):
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12 * scale, err_msg=f"{label} {name}")


def check_not_vacuous(rec, hp):
    z = np.array(rec["z"])
    psi = np.array(rec["psi"])
    assert z.sum() >= 3, "too few spikes: the test would be vacuous"
    assert z.mean() < 0.6, "neurons fire nearly always"
    assert (psi > 0).sum() >= 10, "pseudo-derivatives all zero: the test would be vacuous"
    return z, psi
