"""Recorded data with eprop: spoken Japanese vowels (sktime's bundled
JapaneseVowels: 12 cepstrum channels, 9 speakers, 270 train / 370 test
utterances of 7-29 frames) classified by a spiking network trained online.

The pipeline is the one of ``bench/real_data.py`` (which imports it from here
and adds BPTT and a non-spiking baseline): channels min-max scaled on the
training set only (``eprop.encode.Scaler``), every frame held for k = 5 steps
of 1 ms (``eprop.encode.stretch``) and fed as input currents, cross-entropy
on every step of each utterance (the padding after a short one does not
count), accuracy from the readout summed over those steps
(``RecurrentNetwork.evaluate``). ACSF1 (sktime's bundled appliance power
traces, 1460 samples) and GunPoint (hand positions, 150 samples) go through
``eprop.encode.delta`` instead.

Result of the full run (40 epochs of batches of 16, Adam 2e-3, seed 1):
100 LIF neurons 84.3% on the 370 test utterances, two layers of 50 80.5%
(chance 11%). bench/real_data.py chooses each side's learning rate,
regularization and epochs on validation splits instead (docs/tutorials.md).
Run ``python examples/recorded_data.py``
(``--quick``: 3 epochs); needs ``pip install sktime``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from eprop import RecurrentNetwork, encode

# samples at the end of each series whose error counts (None: every sample):
# JapaneseVowels' class is known once the vowel has been heard; ACSF1's
# appliances differ in patterns spread over the whole day, GunPoint's gestures
# over the whole recording
LAST = {"JapaneseVowels": None, "ACSF1": None, "GunPoint": None}
# JapaneseVowels' scaled frames enter as currents; ACSF1's power traces and
# GunPoint's hand positions as threshold crossings (eprop.encode.delta, 0.05
# of the training range: up and down channels), which carry the changes that
# tell the classes apart (as currents, e-prop stayed near chance on both in a
# first check; 0.05 is ACSF1's setting, not tuned for GunPoint)
DELTA = {"JapaneseVowels": None, "ACSF1": 0.05, "GunPoint": 0.05}
THRESHOLD, TAU_MEM, TAU_OUT, DT = 0.6, 20.0, 20.0, 1.0
BATCH = 16


# --------------------------------------------------------------------------- data


def load(name: str):
    """(train inputs, train labels, train lengths, test inputs, test labels,
    test lengths): float arrays (N, T, C) of the raw series from step 0 on
    (zeros after a shorter series' end), int labels from 0, int lengths."""
    import sktime.datasets
    from sktime.datasets import load_from_tsfile

    folder = Path(sktime.datasets.__file__).parent / "data" / name
    out = []
    classes = None
    for split in ("TRAIN", "TEST"):
        X, y = load_from_tsfile(str(folder / f"{name}_{split}.ts"), return_data_type="nested_univ")
        series = [
            np.column_stack([np.asarray(X.iloc[i, c], dtype=float) for c in range(X.shape[1])]) for i in range(len(X))
        ]
        out.append(series)
        classes = _class_order(y) if classes is None else classes
        out.append(np.array([classes.index(v) for v in y]))
    T = max(len(s) for s in out[0] + out[2])
    lengths = [np.array([len(s) for s in out[i]]) for i in (0, 2)]
    C = out[0][0].shape[1]

    def pad(series):
        a = np.zeros((len(series), T, C))
        for i, s in enumerate(series):
            a[i, : len(s)] = s
        return a

    return pad(out[0]), out[1], lengths[0], pad(out[2]), out[3], lengths[1]


def _class_order(labels):
    """The classes of a training set in order: numerically if every label is
    a number (so "10" follows "9"), else as strings (BasicMotions' "badminton")."""
    names = set(labels)
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def prepared(name: str, encoded: bool = True):
    """Scaled (on the training data only) train and test series, as the
    networks receive them (``encoded``: ACSF1 as threshold crossings) or as
    values, with (labels, lengths) and the counted samples."""
    xtr, ytr, ltr, xte, yte, lte = load(name)
    # fitted on the training series' own samples (not the zero padding)
    scaler = encode.Scaler.fit(np.concatenate([s[:n] for s, n in zip(xtr, ltr)])[None])
    xtr, xte = scaler(xtr), scaler(xte)
    if encoded and DELTA[name] is not None:
        xtr, xte = encode.delta(xtr, DELTA[name]), encode.delta(xte, DELTA[name])
    return xtr, (ytr, ltr), xte, (yte, lte), LAST[name]


def batch(x, y, k, last):
    """Inputs (B, k T, C), class targets (B, k T) and the mask of the last
    `last` samples of each series (None: all its samples); y = (labels, lengths)."""
    y, lengths = y
    xs = encode.stretch(x, k)
    T = xs.shape[1]
    steps = np.arange(T)[None, :]
    end = lengths[:, None] * k
    start = 0 if last is None else np.maximum(end - last * k, 0)
    mask = (steps >= start) & (steps < end)
    return xs, np.repeat(y[:, None], T, axis=1), mask


def make_network(n_in, sizes, n_classes, lr=2e-3, seed=1, reg_rate=0.0):
    """The network of the benchmark: LIF, no refractory period, symmetric
    feedback (a lower layer: fixed random), cross-entropy, Adam; with
    `reg_rate` > 0 the firing-rate regularization toward 10 Hz."""
    return RecurrentNetwork(
        n_in,
        sizes,
        n_classes,
        tau_mem=TAU_MEM,
        tau_out=TAU_OUT,
        threshold=THRESHOLD,
        refractory=0.0,
        dt=DT,
        loss="cross_entropy",
        feedback="symmetric",
        optimizer="adam",
        lr=lr,
        seed=seed,
        reg_rate=reg_rate,
    )


def epochs_of_batches(data, k, epochs, seed, max_batches=None):
    """The training batches (inputs, targets, mask) of `epochs` shuffled
    passes (shuffled by `seed`), at most `max_batches` of them."""
    xtr, ytr, _, _, last = data
    rng = np.random.default_rng(seed)
    done = 0
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        for s in range(0, len(order), BATCH):
            idx = order[s : s + BATCH]
            yield batch(xtr[idx], (ytr[0][idx], ytr[1][idx]), k, last)
            done += 1
            if max_batches and done >= max_batches:
                return


def accuracy(evaluate, x, y, k, last):
    """Mean of `evaluate(inputs, targets, mask)` (an accuracy) over the
    series of x, 64 at a time."""
    right = 0.0
    for s in range(0, len(x), 64):
        xb, yb, mb = batch(x[s : s + 64], (y[0][s : s + 64], y[1][s : s + 64]), k, last)
        right += evaluate(xb, yb, mb) * len(xb)
    return right / len(x)


def main(quick: bool = False) -> dict:
    data = prepared("JapaneseVowels")
    xtr, ytr, xte, yte, last = data
    epochs, k = (3 if quick else 40), 5
    results = {}
    for sizes in (100, [50, 50]):
        net = make_network(xtr.shape[2], sizes, int(ytr[0].max()) + 1)
        start = time.perf_counter()
        for xb, yb, mb in epochs_of_batches(data, k, epochs, seed=1):
            net.train_batch(xb, yb, mask=mb)
        acc = accuracy(lambda a, b, m, net=net: net.evaluate(a, b, mask=m)["accuracy"], xte, yte, k, last)
        results[str(sizes)] = acc
        print(
            f"JapaneseVowels, n_neurons={sizes}: test accuracy {acc:.3f} after {epochs} epochs "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 epochs")
    main(quick=ap.parse_args().quick)
