"""Data-parallel training and hyperparameter sweeps on Ray (optional extra:
``pip install "eprop[ray]"``).

:class:`DataParallel` trains one network on batches split by sequence across
Ray actors. Each step, the driver puts the network's state into the object
store once; every worker loads it, runs its shard of the batch on those
weights (rayon threads limited to the worker's CPUs) and returns the summed
change of each of its sequences; the driver stacks the rows in sequence
order and applies their mean with the optimizer, exactly as
``train_batch(update="sequence")`` does in one process. The result is bitwise
that of ``train_batch`` on the whole batch, for any number of workers, because
every sequence's change is computed alone on the same weights and the mean
sums them in the same order.

Workers hold no training state between steps (the driver's network is the
only copy that learns), so a worker that dies is replaced and its shard run
again, and a driver restarted from a checkpoint (``network.save``) resumes
exactly.

:func:`trainable` turns a network builder and a data source into a Ray Tune
function trainable that reports loss (and accuracy) every iteration and
checkpoints with the library's own ``save``/``load``.
"""

from __future__ import annotations

import functools
import json
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from eprop._args import count
from eprop._classes import EpropTrainer, OnlineTrainer, RecurrentNetwork

__all__ = ["DataParallel", "trainable"]

#: the classes whose training splits by sequence
DISTRIBUTABLE = (RecurrentNetwork, EpropTrainer, OnlineTrainer)

_CHECKPOINT_FILE = "network.npz"
_PROGRESS_FILE = "progress.json"


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - the extra is installed in CI
        raise ImportError('eprop.distributed needs Ray: pip install "eprop[ray]"') from e
    return ray


def check_network(network: object) -> None:
    """A network data-parallel training can split: one of
    :data:`DISTRIBUTABLE`, and for ``RecurrentNetwork`` one that updates once
    per batch (``update="sequence"``)."""
    if not isinstance(network, DISTRIBUTABLE):
        names = ", ".join(c.__name__ for c in DISTRIBUTABLE)
        raise ValueError(f"network: expected one of {names}, got {type(network).__name__}")
    if isinstance(network, RecurrentNetwork) and network.update != "sequence":
        raise ValueError(
            "network: expected a RecurrentNetwork with update='sequence' (data-parallel training applies "
            f"one mean change per batch), got update={network.update!r}"
        )


@functools.cache
def _worker_class() -> Any:
    ray = _ray()

    @ray.remote
    class Worker:
        """Holds a copy of the network; computes the changes of its shard on
        the weights it is sent."""

        def __init__(self, state: dict[str, Any], cls_name: str) -> None:
            cls = {c.__name__: c for c in DISTRIBUTABLE}[cls_name]
            self.net = cls.from_state_dict(state)
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
            self.n_threads = max(1, int(cpus))

        def changes(self, state: dict[str, Any], inputs: Any, targets: Any, mask: Any) -> tuple[Any, Any]:
            self.net.load_state_dict(state)
            kw = {} if mask is None else {"mask": mask}
            return self.net._batch_changes(inputs, targets, n_threads=self.n_threads, **kw)

        def stream_changes(self, state: dict[str, Any], sources: list[Callable[[], Iterable[Any]]]) -> Any:
            self.net.load_state_dict(state)
            rows, losses = [], []
            for source in sources:
                row, loss = self.net._sequence_change(source())
                rows.append(row)
                losses.append(loss)
            return np.stack(rows), np.asarray(losses)

        def pid(self) -> int:
            return os.getpid()

    return Worker


def _unwrap(err: BaseException) -> BaseException:
    """The user-facing error inside a Ray task error (a ValueError raised by a
    worker's checks comes back as that ValueError)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


class DataParallel:
    """Data-parallel training of ``network`` on ``n_workers`` Ray actors.

    ``network``: a ``RecurrentNetwork`` (with ``update="sequence"``), an
    ``EpropTrainer`` or an ``OnlineTrainer``. It stays the driver's object and
    is the one that learns: read, save or evaluate it between steps.
    ``n_workers`` >= 1 actors are started, each reserving ``cpus_per_worker``
    CPUs and running its rayon pool on that many threads. Ray is started with
    ``ray.init()`` when it is not running (call ``ray.init(address=...)``
    first to use a cluster). A worker that dies is replaced (at most
    ``max_restarts`` times per step) and its shard run again.

    Use as a context manager, or call :meth:`close`, to stop the actors.
    """

    def __init__(self, network: Any, n_workers: int = 2, *, cpus_per_worker: float = 1, max_restarts: int = 3) -> None:
        check_network(network)
        self.n_workers = count("n_workers", n_workers)
        if (
            isinstance(cpus_per_worker, bool)
            or not isinstance(cpus_per_worker, numbers.Real)
            or not (0 < cpus_per_worker < float("inf"))
        ):
            raise ValueError(f"cpus_per_worker: expected a finite number > 0, got {cpus_per_worker!r}")
        self.cpus_per_worker = float(cpus_per_worker)
        self.max_restarts = count("max_restarts", max_restarts, low=0)
        self.network = network
        #: workers replaced since the start (after a crash)
        self.restarts = 0
        ray = _ray()
        if not ray.is_initialized():
            ray.init()
        self._worker = _worker_class().options(num_cpus=self.cpus_per_worker)
        state = ray.put(network.state_dict())
        self._workers = [self._start(state) for _ in range(self.n_workers)]

    def _start(self, state: Any) -> Any:
        return self._worker.remote(state, type(self.network).__name__)

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stops the workers (the network stays)."""
        ray = _ray()
        for w in self._workers:
            ray.kill(w)
        self._workers = []

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workers(self) -> list[Any]:
        """The actor handles, in shard order (shard k runs on worker k)."""
        return list(self._workers)

    def __repr__(self) -> str:
        return f"DataParallel({self.network!r}, n_workers={self.n_workers}, cpus_per_worker={self.cpus_per_worker:g})"

    # ------------------------------------------------------------- training

    def _shards(self, b: int) -> list[tuple[int, int]]:
        """Contiguous ranges of sequences, one per worker (as even as
        possible; workers beyond B get none)."""
        bounds = np.linspace(0, b, min(self.n_workers, b) + 1).round().astype(int)
        return [(int(i), int(j)) for i, j in zip(bounds[:-1], bounds[1:])]

    def _run(self, submit: Callable[[Any, Any, int], Any], n_shards: int) -> list[Any]:
        """Runs shard k on worker k (``submit(worker, state, k)``) on the
        network's current state; replaces a worker that died and runs its
        shard again. Returns the results in shard order."""
        ray = _ray()
        if not self._workers:
            raise ValueError("DataParallel: the workers were closed")
        state = ray.put(self.network.state_dict())
        futures = {k: submit(self._workers[k], state, k) for k in range(n_shards)}
        results: dict[int, Any] = {}
        restarts = 0
        while futures:
            k, fut = next(iter(futures.items()))
            try:
                results[k] = ray.get(fut)
                del futures[k]
            except ray.exceptions.RayActorError:
                restarts += 1
                if restarts > self.max_restarts:
                    raise
                self._workers[k] = self._start(state)
                self.restarts += 1
                futures[k] = submit(self._workers[k], state, k)
            except ray.exceptions.RayTaskError as e:
                raise _unwrap(e) from None
        return [results[k] for k in range(n_shards)]

    def _apply(self, parts: list[tuple[Any, Any]]) -> np.ndarray:
        changes = np.concatenate([c for c, _ in parts])
        losses = np.concatenate([np.asarray(loss) for _, loss in parts])
        self.network._apply_changes(changes, n_threads=max(1, int(self.cpus_per_worker)))
        return losses

    def train_batch(self, inputs: Any, targets: Any, *, mask: Any = None) -> np.ndarray:
        """One update on a batch (B sequences, split across the workers by
        sequence); returns the mean loss of each sequence (B,). Bitwise the
        same as ``network.train_batch(inputs, targets, mask=mask)`` (for the
        seed trainers ``update="sequence"``). ``mask`` is for
        ``RecurrentNetwork`` only. A refused batch changes nothing."""
        x = np.asarray(inputs)
        if x.ndim != 3 or x.shape[0] < 1:
            raise ValueError(f"inputs: expected an array (B >= 1, T, n_inputs), got shape {x.shape}")
        y = np.asarray(targets)
        if y.ndim < 2 or y.shape[0] != x.shape[0]:
            raise ValueError(f"targets: expected {x.shape[0]} sequences like inputs, got shape {y.shape}")
        if mask is not None:
            if not isinstance(self.network, RecurrentNetwork):
                raise ValueError(f"mask: {type(self.network).__name__} takes no mask")
            mask = np.asarray(mask)
            if mask.ndim == 2 and mask.shape[0] != x.shape[0]:
                raise ValueError(f"mask: expected (B, T) = {x.shape[:2]} or (T,), got shape {mask.shape}")
        shards = self._shards(x.shape[0])

        def submit(worker: Any, state: Any, k: int) -> Any:
            i, j = shards[k]
            m = mask if mask is None or mask.ndim == 1 else mask[i:j]
            return worker.changes.remote(state, x[i:j], y[i:j], m)

        return self._apply(self._run(submit, len(shards)))

    def train_streams(self, sources: Sequence[Callable[[], Iterable[Any]]]) -> np.ndarray:
        """One update on a batch of long sequences given as streams: each of
        the B ``sources`` is a picklable callable returning an iterable of
        ``(inputs, targets[, mask])`` chunks of one sequence (reading a file,
        a memory map, a generator). Sequences are split across workers (never
        in time); each worker streams its own in constant memory. Returns
        the mean loss of each sequence (B,); bitwise ``train_batch`` on the
        whole sequences (with ``kernel="dense"`` or ``"event"``; ``"auto"``
        chooses per block of rows)."""
        sources = list(sources)
        if not sources or not all(callable(s) for s in sources):
            raise ValueError("sources: expected a non-empty sequence of callables returning chunk iterables")
        shards = self._shards(len(sources))

        def submit(worker: Any, state: Any, k: int) -> Any:
            i, j = shards[k]
            return worker.stream_changes.remote(state, sources[i:j])

        return self._apply(self._run(submit, len(shards)))


# ---------------------------------------------------------------- Ray Tune


def trainable(
    build: Callable[[dict[str, Any]], Any],
    batches: Callable[[dict[str, Any], int], tuple[Any, ...]],
    *,
    iterations: int,
    validation: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None,
    report_every: int = 1,
) -> Callable[[dict[str, Any]], None]:
    """A Ray Tune function trainable (``tune.Tuner(trainable(...), ...)``).

    ``build(config)`` makes the network of a trial, ``batches(config, i)`` the
    ``(inputs, targets[, mask])`` batch of iteration i (seed it by i so that a
    resumed trial sees the same data), ``validation(config)`` an optional fixed
    batch the network is evaluated on. Each iteration trains one batch
    (``train_batch``; ``update="sequence"`` for the seed trainers); every
    ``report_every`` iterations and at the end it reports ``train_loss``,
    ``iteration`` and, with ``validation`` and a ``RecurrentNetwork``, its
    ``loss`` (and ``accuracy`` for cross-entropy), with a checkpoint written
    by the network's ``save``. A restored trial loads its checkpoint and goes
    on from the iteration after it. Training in a trial uses one thread per
    CPU Tune gives it.
    """
    iterations = count("iterations", iterations)
    report_every = count("report_every", report_every)

    def run(config: dict[str, Any]) -> None:
        from ray import tune

        net = build(config)
        check_network(net)
        start = 0
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                net = type(net).load(os.path.join(d, _CHECKPOINT_FILE))
                with open(os.path.join(d, _PROGRESS_FILE)) as f:
                    start = int(json.load(f)["iteration"])
        val = validation(config) if validation is not None else None
        cpus = _ray().get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        threads = max(1, int(cpus))
        seed_kw = {} if isinstance(net, RecurrentNetwork) else {"update": "sequence"}
        for i in range(start, iterations):
            batch = batches(config, i)
            kw = dict(seed_kw)
            if len(batch) == 3:
                kw["mask"] = batch[2]
            train_loss = float(np.mean(net.train_batch(batch[0], batch[1], n_threads=threads, **kw)))
            if (i + 1) % report_every and i + 1 != iterations:
                continue
            metrics: dict[str, Any] = {"train_loss": train_loss, "iteration": i + 1}
            if val is not None and isinstance(net, RecurrentNetwork):
                vkw = {"mask": val[2]} if len(val) == 3 else {}
                metrics.update(net.evaluate(val[0], val[1], n_threads=threads, **vkw))
            with tempfile.TemporaryDirectory() as d:
                net.save(os.path.join(d, _CHECKPOINT_FILE))
                with open(os.path.join(d, _PROGRESS_FILE), "w") as f:
                    json.dump({"iteration": i + 1}, f)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    return run
