"""Traces of silent units decay toward zero; once below the smallest normal
double they are set to zero (subnormal arithmetic is many times slower, and a
long stream would slow down; see bench/long_stream.py)."""

import numpy as np
import pytest
from common import import_eprop

eprop = import_eprop()

TINY = np.finfo(np.float64).tiny


def subnormal(state):
    """Names of the state arrays holding a subnormal value, with the count."""
    out = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            n = int(np.count_nonzero((v != 0) & (np.abs(v) < TINY)))
            if n:
                out[k] = n
    return out


@pytest.mark.parametrize("update", ["sequence", "step"])
def test_recurrent_network_traces_do_not_go_subnormal(update):
    # fast decays (dt / tau = 1 per step): an input burst at the start, then
    # silence; every trace passes through the subnormal range within ~750 steps
    net = eprop.RecurrentNetwork(
        4, 6, 1, n_adaptive=3, tau_mem=1.0, tau_out=1.0, tau_adapt=1.0, reg_rate=1.0, update=update, seed=2
    )
    x = np.zeros((900, 4))
    x[:5] = 1.0
    # what the burst leaves, to make the check non-vacuous: without the flush
    # these values would be subnormal at some point of the silent tail
    net.train_sequence(x[:5], np.zeros((5, 1)))
    assert any(np.abs(net.state_dict()[k]).max() > 1e-3 for k in ("_zbar_in", "_ebar_in"))
    for t in range(6, 900, 7):
        net.train_sequence(x[t : t + 7], np.zeros((len(x[t : t + 7]), 1)), reset=False)
        bad = subnormal(net.state_dict())
        assert not bad, f"step {t}: subnormal values in {bad}"
