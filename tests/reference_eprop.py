"""An independent NumPy implementation of canonical e-prop, written from the
equations in the module documentation of ``rust/eprop-core/src/rsnn.rs`` (not
from its code), used as an oracle by the tests: it covers what the autodiff
oracle cannot (random and adaptive feedback, Adam, online updates with the
running-rate regularization).

Deliberately plain: one neuron, one synapse at a time where that makes the
equation readable, full matrices everywhere else, no reuse of eprop's buffers.
"""

from __future__ import annotations

import numpy as np

ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


class Reference:
    """State, weights and optimizer of one network, stepped by hand.

    ``hp`` holds the hyperparameters as eprop's attributes name them;
    ``params`` the weights W_in, W_rec, W_out, b_out and the feedback matrix B.
    """

    def __init__(self, net):
        self.n = net.n_neurons
        self.ni = net.n_inputs
        self.no = net.n_outputs
        self.first_ad = net.n_neurons - net.n_adaptive
        self.alpha = np.exp(-net.dt / net.tau_mem)
        self.rho = np.exp(-net.dt / net.tau_adapt)
        self.kappa = np.exp(-net.dt / net.tau_out)
        self.beta = net.beta
        self.thr = net.threshold
        self.gamma = net.surrogate_height
        self.n_ref = int(round(net.refractory / net.dt))
        self.reg = net.reg_rate
        self.f0 = net.target_rate * net.dt / 1000.0
        self.window = net.tau_reg / net.dt
        self.loss = net.loss
        self.feedback = net.feedback
        self.decay = net.feedback_decay
        self.optimizer = net.optimizer
        self.lr = net.lr
        self.update = net.update
        self.W = {k: np.array(getattr(net, k), dtype=float) for k in ("W_in", "W_rec", "W_out", "b_out")}
        self.B = np.array(net.feedback_matrix, dtype=float)
        self.m = {k: np.zeros_like(v) for k, v in self.W.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.W.items()}
        self.t_opt = 0
        self.reset()
        self.clear_grads()

    # ------------------------------------------------------------------ state
    def reset(self):
        n, ni = self.n, self.ni
        self.v = np.zeros(n)
        self.a = np.zeros(n)
        self.z = np.zeros(n)
        self.refr = np.zeros(n, dtype=int)
        self.psi = np.zeros(n)
        self.zbar_in = np.zeros(ni)
        self.zbar_rec = np.zeros(n)
        self.eps_in = np.zeros((n, ni))  # ALIF rows only are used
        self.eps_rec = np.zeros((n, n))
        self.ebar_in = np.zeros((n, ni))
        self.ebar_rec = np.zeros((n, n))
        self.esum_in = np.zeros((n, ni))
        self.esum_rec = np.zeros((n, n))
        self.zhat = np.zeros(n)
        self.count = np.zeros(n)
        self.rate = np.zeros(n)
        self.steps = 0

    def clear_grads(self):
        self.g = {k: np.zeros_like(v) for k, v in self.W.items()}
        self.pending = 0

    # ------------------------------------------------------------------ one step
    def step(self, x, target, learn=True):
        """One step with a target (MSE: a vector; cross-entropy: one-hot or
        probabilities); ``learn`` False runs it outside the mask."""
        online = self.update != "sequence"
        adaptive = np.arange(self.n) >= self.first_ad
        # ALIF eligibility vectors with psi(t-1), zbar(t-1)
        for j in range(self.n):
            if adaptive[j]:
                c = self.rho - self.beta * self.psi[j]
                self.eps_in[j] = self.psi[j] * self.zbar_in + c * self.eps_in[j]
                self.eps_rec[j] = self.psi[j] * self.zbar_rec + c * self.eps_rec[j]
        z_prev = self.z.copy()
        self.zbar_in = self.alpha * self.zbar_in + x
        self.zbar_rec = self.alpha * self.zbar_rec + z_prev
        self.a = np.where(adaptive, self.rho * self.a + z_prev, 0.0)
        A = self.thr + self.beta * self.a
        self.v = self.alpha * self.v + self.W["W_in"] @ x + self.W["W_rec"] @ z_prev - self.thr * z_prev
        z = np.zeros(self.n)
        psi = np.zeros(self.n)
        for j in range(self.n):
            if self.refr[j] > 0:
                self.refr[j] -= 1
                continue
            u = self.v[j] - A[j]
            psi[j] = self.gamma / self.thr * max(0.0, 1.0 - abs(u) / self.thr)
            if u >= 0:
                z[j] = 1.0
                self.refr[j] = max(self.n_ref - 1, 0)
        self.z, self.psi = z, psi
        self.steps += 1
        self.zhat = self.kappa * self.zhat + (1 - self.kappa) * z
        y = self.W["W_out"] @ self.zhat + self.W["b_out"]
        if self.reg > 0:
            if online:
                self.rate += (z - self.rate) / min(self.steps, self.window)
            else:
                self.count += z
        # error and learning signal
        err = np.zeros(self.no)
        loss = 0.0
        if learn:
            if self.loss == "mse":
                err = y - target
                loss = 0.5 * float(err @ err)
            else:
                p = np.exp(y - y.max())
                p /= p.sum()
                loss = -float(sum(t * np.log(q) for t, q in zip(target, p) if t != 0))
                err = p - target
        B = self.W["W_out"].T if self.feedback == "symmetric" else self.B
        L = B @ err
        r = np.zeros(self.n)
        if self.reg > 0 and online:
            r = self.reg * (self.rate - self.f0) / self.window
        # eligibility, filtered eligibility, gradient sums
        for pre, eps, ebar, esum, g in (
            (self.zbar_in, self.eps_in, self.ebar_in, self.esum_in, self.g["W_in"]),
            (self.zbar_rec, self.eps_rec, self.ebar_rec, self.esum_rec, self.g["W_rec"]),
        ):
            for j in range(self.n):
                e = psi[j] * (pre - (self.beta * eps[j] if adaptive[j] else 0.0))
                ebar[j] = self.kappa * ebar[j] + (1 - self.kappa) * e
                g[j] += L[j] * ebar[j] + r[j] * e
                if self.reg > 0 and not online:
                    esum[j] += e
        if learn:
            self.g["W_out"] += np.outer(err, self.zhat)
            self.g["b_out"] += err
        self.pending += 1
        if online and self.pending >= (1 if self.update == "step" else self.update):
            self.apply()
        return loss, y

    # ------------------------------------------------------------------ updates
    def finish_sequence(self):
        """Adds reg (f_j - f0) mean_t e_ji(t) (update="sequence")."""
        if self.reg > 0 and self.steps > 0 and self.update == "sequence":
            f = self.count / self.steps
            coef = self.reg * (f - self.f0) / self.steps
            self.g["W_in"] += coef[:, None] * self.esum_in
            self.g["W_rec"] += coef[:, None] * self.esum_rec
        self.esum_in[:] = 0.0
        self.esum_rec[:] = 0.0

    def apply(self):
        g = {k: v.copy() for k, v in self.g.items()}
        np.fill_diagonal(g["W_rec"], 0.0)
        self.t_opt += 1
        old_out = self.W["W_out"].copy()
        for k in self.W:
            if self.optimizer == "adam":
                self.m[k] = ADAM_BETA1 * self.m[k] + (1 - ADAM_BETA1) * g[k]
                self.v2[k] = ADAM_BETA2 * self.v2[k] + (1 - ADAM_BETA2) * g[k] * g[k]
                mhat = self.m[k] / (1 - ADAM_BETA1**self.t_opt)
                vhat = self.v2[k] / (1 - ADAM_BETA2**self.t_opt)
                self.W[k] = self.W[k] - self.lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
            else:
                self.W[k] = self.W[k] - self.lr * g[k]
        np.fill_diagonal(self.W["W_rec"], 0.0)
        if self.feedback == "adaptive":
            step = self.W["W_out"] - old_out
            keep = 1 - self.decay
            self.W["W_out"] = keep * old_out + step
            self.B = keep * self.B + step.T
        self.clear_grads()

    def train_sequence(self, X, Y, mask=None):
        """From reset, every step, then the pending update (as train_sequence)."""
        self.finish_pending_reg_on_reset()
        self.reset()
        total, counted = 0.0, 0
        for t in range(len(X)):
            learn = True if mask is None else bool(mask[t])
            loss, _ = self.step(X[t], Y[t], learn)
            total += loss
            counted += int(learn)
        if self.pending:
            self.finish_sequence()
            self.apply()
        return total / max(counted, 1)

    def finish_pending_reg_on_reset(self):
        if self.update == "sequence" and self.pending:
            self.finish_sequence()
