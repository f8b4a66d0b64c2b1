"""Data-parallel training and hyperparameter sweeps on Ray (optional extra:
``pip install "eprop[ray]"``).

:class:`DataParallel` trains one network on batches split by sequence across
Ray actors. Each step, the driver puts the network's state into the object
store once and cuts the batch into contiguous pieces of sequences (a few per
worker); a worker that is done with a piece gets the next, so a faster worker
takes more. A worker loads the step's weights once, runs each piece it gets
on them (rayon threads limited to the worker's CPUs) and returns the summed
change of each of its sequences; the driver stacks the rows in sequence
order and applies their mean with the optimizer, exactly as
``train_batch(update="sequence")`` does in one process. The result is bitwise
that of ``train_batch`` on the whole batch, for any number of workers and
whichever worker ran which piece, because every sequence's change is
computed alone on the same weights and the mean sums them in the same order.

Workers hold no training state between steps (the driver's network is the
only copy that learns), so a worker that dies is replaced and its piece run
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
import time
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
        """Holds a copy of the network; computes the changes of the pieces it gets on
        the weights it is sent."""

        def __init__(self, state: dict[str, Any], cls_name: str) -> None:
            cls = {c.__name__: c for c in DISTRIBUTABLE}[cls_name]
            self.net = cls.from_state_dict(state)
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
            self.n_threads = max(1, int(cpus))
            self.step = -1
            self.seconds = 0.0

        def _load(self, state: dict[str, Any], step: int) -> None:
            """Loads the weights of the driver's step (once per step)."""
            if step != self.step:
                self.net.load_state_dict(state)
                self.step, self.seconds = step, 0.0

        def changes(self, state: dict[str, Any], step: int, inputs: Any, targets: Any, mask: Any) -> tuple[Any, Any]:
            self._load(state, step)
            kw = {} if mask is None else {"mask": mask}
            start = time.perf_counter()
            out = self.net._batch_changes(inputs, targets, n_threads=self.n_threads, **kw)
            self.seconds += time.perf_counter() - start
            return out

        def stream_changes(self, state: dict[str, Any], step: int, sources: list[Callable[[], Iterable[Any]]]) -> Any:
            self._load(state, step)
            start = time.perf_counter()
            rows, losses = [], []
            for source in sources:
                row, loss = self.net._sequence_change(source())
                rows.append(row)
                losses.append(loss)
            self.seconds += time.perf_counter() - start
            return np.stack(rows), np.asarray(losses)

        def compute_seconds(self) -> float:
            """Seconds this worker spent computing in the last step (for
            benchmarks: the rest of a step is Ray's and the driver's)."""
            return self.seconds

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
    ``max_restarts`` times per step) and its piece run again. Each batch is
    cut into ``chunks_per_worker`` pieces per worker, handed out as workers
    finish (more pieces balance uneven workers; fewer cost fewer round
    trips). The workers
    must all start within ``start_timeout`` seconds (``None``: wait for as
    long as it takes, e.g. on a cluster that adds nodes on demand); when the
    cluster cannot place them in time, none is kept and a ``RuntimeError``
    says how many CPUs were asked for and how many the cluster has.

    Use as a context manager, or call :meth:`close`, to stop the actors.
    """

    def __init__(
        self,
        network: Any,
        n_workers: int = 2,
        *,
        cpus_per_worker: float = 1,
        max_restarts: int = 3,
        start_timeout: float | None = 60.0,
        chunks_per_worker: int = 4,
    ) -> None:
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
        self.chunks_per_worker = count("chunks_per_worker", chunks_per_worker)
        self._step = 0
        if start_timeout is not None and (
            isinstance(start_timeout, bool)
            or not isinstance(start_timeout, numbers.Real)
            or not (0 < start_timeout < float("inf"))
        ):
            raise ValueError(f"start_timeout: expected a finite number of seconds > 0 or None, got {start_timeout!r}")
        self.network = network
        #: workers replaced since the start (after a crash)
        self.restarts = 0
        ray = _ray()
        if not ray.is_initialized():
            ray.init()
        self._worker = _worker_class().options(num_cpus=self.cpus_per_worker)
        state = ray.put(network.state_dict())
        self._workers = [self._start(state) for _ in range(self.n_workers)]
        self._wait_started(ray, start_timeout)

    def _wait_started(self, ray: Any, timeout: float | None) -> None:
        """Waits until every worker runs; stops them all if one cannot be
        placed in time (an actor asking for CPUs the cluster does not have
        would otherwise wait forever, and the first step with it)."""
        probes = [w.pid.remote() for w in self._workers]
        _, pending = ray.wait(probes, num_returns=len(probes), timeout=timeout)
        if pending:
            self.close()
            total = ray.cluster_resources().get("CPU", 0.0)
            raise RuntimeError(
                f"n_workers: {len(pending)} of {self.n_workers} workers ({self.cpus_per_worker:g} CPUs each, "
                f"{self.n_workers * self.cpus_per_worker:g} CPUs in all) did not start within {timeout:g} s; "
                f"the Ray cluster has {total:g} CPUs. Ask for fewer workers or CPUs per worker, or pass "
                "start_timeout=None to wait for nodes"
            )
        for probe in probes:  # a worker that failed to start raises here
            try:
                ray.get(probe)
            except ray.exceptions.RayError as e:
                self.close()
                raise _unwrap(e) from None

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
        """The actor handles (a replaced worker takes the place of the one
        that died)."""
        return list(self._workers)

    def __repr__(self) -> str:
        return f"DataParallel({self.network!r}, n_workers={self.n_workers}, cpus_per_worker={self.cpus_per_worker:g})"

    # ------------------------------------------------------------- training

    def _pieces(self, b: int) -> list[tuple[int, int]]:
        """Contiguous ranges of sequences, ``chunks_per_worker`` per worker
        (as even as possible; never more pieces than sequences)."""
        bounds = np.linspace(0, b, min(self.n_workers * self.chunks_per_worker, b) + 1).round().astype(int)
        return [(int(i), int(j)) for i, j in zip(bounds[:-1], bounds[1:])]

    def _run(self, submit: Callable[[Any, Any, int, int], Any], n_pieces: int) -> list[Any]:
        """Runs every piece (``submit(worker, state, step, k)``) on the
        network's current state, one piece in flight per worker, the next
        piece going to the first worker that is done; replaces a worker that
        died and runs its piece again. Returns the results in piece order,
        whichever worker ran them."""
        ray = _ray()
        if not self._workers:
            raise ValueError("DataParallel: the workers were closed")
        state = ray.put(self.network.state_dict())
        self._step += 1
        todo = list(range(n_pieces - 1, -1, -1))  # popped from the end: piece 0 first
        running: dict[Any, tuple[int, int]] = {}  # future -> (worker index, piece)

        def give(w: int) -> None:
            k = todo.pop()
            running[submit(self._workers[w], state, self._step, k)] = (w, k)

        for w in range(min(len(self._workers), n_pieces)):
            give(w)
        results: dict[int, Any] = {}
        restarts = 0
        try:
            while running:
                [fut], _ = ray.wait(list(running), num_returns=1)
                w, k = running.pop(fut)
                try:
                    results[k] = ray.get(fut)
                except ray.exceptions.RayActorError:
                    restarts += 1
                    if restarts > self.max_restarts:
                        raise
                    self._workers[w] = self._start(state)
                    self.restarts += 1
                    todo.append(k)
                except ray.exceptions.RayTaskError as e:
                    raise _unwrap(e) from None
                if todo:
                    give(w)
        finally:
            for fut in running:  # after an error: drop what is still queued
                try:
                    ray.cancel(fut)
                except Exception:  # noqa: BLE001 - already done or gone; nothing to drop
                    pass
        return [results[k] for k in range(n_pieces)]

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
        pieces = self._pieces(x.shape[0])

        def submit(worker: Any, state: Any, step: int, k: int) -> Any:
            i, j = pieces[k]
            m = mask if mask is None or mask.ndim == 1 else mask[i:j]
            return worker.changes.remote(state, step, x[i:j], y[i:j], m)

        return self._apply(self._run(submit, len(pieces)))

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
        pieces = self._pieces(len(sources))

        def submit(worker: Any, state: Any, step: int, k: int) -> Any:
            i, j = pieces[k]
            return worker.stream_changes.remote(state, step, sources[i:j])

        return self._apply(self._run(submit, len(pieces)))


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
