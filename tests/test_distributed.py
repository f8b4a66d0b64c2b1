"""Data-parallel training on Ray (eprop.distributed), on a local Ray cluster
started here: bitwise equality with single-process train_batch for 1, 2 and 3
workers, workers killed mid-run, a driver resumed from a checkpoint, streams
split by sequence, the Tune trainable, bad input; and the native methods it
is built on (_batch_changes, _apply_changes, _sequence_change)."""

from __future__ import annotations

import copy
import functools
import sys
import threading

import eprop
import numpy as np
import pytest
import ray
from eprop import distributed, tasks

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    # the sources and builders below travel to the workers by value (the
    # workers cannot import this test module)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def same_state(a, b, own_sequence=True):
    """Bitwise the same state (without the trainer's own sequence state, the
    arrays named `_...`, unless `own_sequence`)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if not own_sequence and k.startswith("_"):
            continue
        if isinstance(sa[k], np.ndarray):
            assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k
        else:
            assert sa[k] == sb[k], k


def ea_batches(n, batch, seed=0):
    rng = np.random.default_rng(seed)
    return [tasks.evidence_accumulation(batch, n_cues=3, t_delay=20, t_recall=10, seed=rng) for _ in range(n)]


NETWORKS = {
    "rsnn-sgd": lambda: eprop.RecurrentNetwork(40, 20, 2, n_adaptive=10, loss="cross_entropy", lr=0.01, seed=3),
    "rsnn-adam-deep-adaptive": lambda: eprop.RecurrentNetwork(
        40, [12, 8], 2, n_adaptive=[4, 4], loss="cross_entropy", optimizer="adam", feedback="adaptive", seed=4
    ),
    "rsnn-f32-event": lambda: eprop.RecurrentNetwork(
        40, 16, 2, loss="cross_entropy", optimizer="adam", dtype="float32", kernel="event", reg_rate=0.1, seed=5
    ),
    "EpropTrainer": lambda: eprop.EpropTrainer(40, 16, 2, seed=6),
    "OnlineTrainer": lambda: eprop.OnlineTrainer([40, 12, 2], seed=7),
}


def batch_args(net, trials):
    """A batch for `net`: the trials for RecurrentNetwork; for the seed
    trainers (whose neurons stay silent on sparse cue spikes) dense inputs
    drawn from the trials' seed and one-hot targets."""
    x, y, m = trials
    if isinstance(net, eprop.RecurrentNetwork):
        return (x, y), {"mask": m}
    rng = np.random.default_rng(int(x.sum()))
    return (rng.random(x.shape) * 2.0, np.eye(2)[y] * m[..., None]), {}


def weights_moved(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    names = [k for k in sa if k.startswith("W_") or k.endswith(".W")]
    return names and all(not np.array_equal(sa[k], sb[k]) for k in names)


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_bitwise_the_same_as_train_batch(name, n_workers):
    alone, net = NETWORKS[name](), NETWORKS[name]()
    seq = {} if isinstance(net, eprop.RecurrentNetwork) else {"update": "sequence"}
    with distributed.DataParallel(net, n_workers, cpus_per_worker=1) as dp:
        for trials in ea_batches(3, 7, seed=n_workers):
            args, kw = batch_args(net, trials)
            want = alone.train_batch(*args, **kw, **seq)
            got = dp.train_batch(*args, **kw)
            assert np.array_equal(want, got)
    same_state(alone, net)
    # and it learned something: the weights moved
    assert weights_moved(NETWORKS[name](), net)


@pytest.mark.parametrize("chunks", [1, 3, 50])
def test_bitwise_whatever_the_pieces(chunks):
    # 1 piece per worker, uneven pieces (9 sequences into 6), one sequence per piece
    alone, net = NETWORKS["rsnn-adam-deep-adaptive"](), NETWORKS["rsnn-adam-deep-adaptive"]()
    with distributed.DataParallel(net, 2, chunks_per_worker=chunks) as dp:
        for trials in ea_batches(2, 9, seed=20 + chunks):
            args, kw = batch_args(net, trials)
            assert np.array_equal(alone.train_batch(*args, **kw), dp.train_batch(*args, **kw))
    same_state(alone, net)


def test_a_killed_worker_is_replaced_and_the_run_goes_on():
    make = lambda: eprop.RecurrentNetwork(40, 300, 2, n_adaptive=100, loss="cross_entropy", seed=8)  # noqa: E731
    alone, net = make(), make()
    batches = ea_batches(5, 6, seed=11)
    # a longer batch (about a second per shard), for a kill that lands while the shards run
    batches.insert(3, tasks.evidence_accumulation(6, n_cues=3, t_delay=4000, seed=1))
    running, landed = threading.Event(), []
    with distributed.DataParallel(net, 3) as dp:
        for k, trials in enumerate(batches):
            args, kw = batch_args(net, trials)
            alone.train_batch(*args, **kw)
            if k == 1:  # between steps
                ray.kill(dp.workers[1])
            timer = None
            if k == 3:  # during a step

                def kill(victim=dp.workers[2]):
                    landed.append(running.is_set())
                    ray.kill(victim)

                timer = threading.Timer(0.3, kill)
                timer.start()
            running.set()
            dp.train_batch(*args, **kw)
            running.clear()
            if timer is not None:
                timer.join()
        assert dp.restarts == 2 and landed == [True], (dp.restarts, landed)
    same_state(alone, net)


def test_a_driver_restarted_from_a_checkpoint_resumes_exactly(tmp_path):
    batches = ea_batches(4, 5, seed=12)
    alone = NETWORKS["rsnn-adam-deep-adaptive"]()
    for trials in batches:
        args, kw = batch_args(alone, trials)
        alone.train_batch(*args, **kw)
    net = NETWORKS["rsnn-adam-deep-adaptive"]()
    with distributed.DataParallel(net, 2) as dp:
        for trials in batches[:2]:
            args, kw = batch_args(net, trials)
            dp.train_batch(*args, **kw)
        net.save(tmp_path / "ckpt.npz")
    del net, dp  # the driver is gone
    resumed = eprop.RecurrentNetwork.load(tmp_path / "ckpt.npz")
    with distributed.DataParallel(resumed, 3) as dp:
        for trials in batches[2:]:
            args, kw = batch_args(resumed, trials)
            dp.train_batch(*args, **kw)
    same_state(alone, resumed)


def chunks_of(x, y, m, size):
    """A stream of one sequence in chunks (a picklable source)."""
    for s in range(0, x.shape[0], size):
        yield (x[s : s + size], y[s : s + size], m[s : s + size])


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_streams_split_by_sequence(n_workers):
    x, y, m = tasks.evidence_accumulation(5, n_cues=3, t_delay=200, seed=13)
    alone, net = NETWORKS["rsnn-sgd"](), NETWORKS["rsnn-sgd"]()
    want = alone.train_batch(x, y, mask=m)
    sources = [functools.partial(chunks_of, x[k], y[k], m[k], 37) for k in range(5)]
    with distributed.DataParallel(net, n_workers) as dp:
        got = dp.train_streams(sources)
    assert np.array_equal(want, got)
    same_state(alone, net)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("n_workers", [0, -1, 1.5, True, "2", None])
def test_bad_worker_counts(n_workers):
    with pytest.raises(ValueError, match="n_workers"):
        distributed.DataParallel(NETWORKS["rsnn-sgd"](), n_workers)


@pytest.mark.parametrize("cpus", [0, -1, float("nan"), float("inf"), True])
def test_bad_cpus_per_worker(cpus):
    with pytest.raises(ValueError, match="cpus_per_worker"):
        distributed.DataParallel(NETWORKS["rsnn-sgd"](), 1, cpus_per_worker=cpus)


@pytest.mark.parametrize("chunks", [0, -1, 2.5, True, None])
def test_bad_chunks_per_worker(chunks):
    with pytest.raises(ValueError, match="chunks_per_worker"):
        distributed.DataParallel(NETWORKS["rsnn-sgd"](), 1, chunks_per_worker=chunks)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_start_timeout(timeout):
    with pytest.raises(ValueError, match="start_timeout"):
        distributed.DataParallel(NETWORKS["rsnn-sgd"](), 1, start_timeout=timeout)


def test_more_cpus_than_the_cluster_has_is_refused_and_leaves_no_worker():
    # the local cluster has 3 CPUs: 2 workers of 2 CPUs cannot all be placed
    with pytest.raises(RuntimeError, match=r"n_workers: 1 of 2 workers .* 4 CPUs in all.* has 3 CPUs"):
        distributed.DataParallel(NETWORKS["rsnn-sgd"](), 2, cpus_per_worker=2, start_timeout=3)
    # none of them holds CPUs: three one-CPU workers start and train
    net = NETWORKS["rsnn-sgd"]()
    alone = copy.deepcopy(net)
    x, y, m = tasks.evidence_accumulation(4, n_cues=3, t_delay=20, t_recall=10, seed=15)
    with distributed.DataParallel(net, 3, start_timeout=30) as dp:
        assert np.array_equal(dp.train_batch(x, y, mask=m), alone.train_batch(x, y, mask=m))


@pytest.mark.parametrize(
    "network",
    [eprop.OnlineLIFLayer(3, 4), object(), eprop.RecurrentNetwork(3, 4, 2, update="step")],
    ids=["OnlineLIFLayer", "object", "rsnn-update-step"],
)
def test_networks_that_cannot_be_distributed(network):
    with pytest.raises(ValueError, match="network"):
        distributed.DataParallel(network, 2)


def test_bad_batches_change_nothing():
    net = NETWORKS["rsnn-sgd"]()
    before = copy.deepcopy(net.state_dict())
    x, y, m = tasks.evidence_accumulation(6, n_cues=3, t_delay=20, t_recall=10, seed=14)
    with distributed.DataParallel(net, 3) as dp:
        bad = x.astype(float).copy()
        bad[5, 3, 0] = np.nan  # only the last shard is bad
        with pytest.raises(ValueError, match="inputs"):
            dp.train_batch(bad, y, mask=m)
        with pytest.raises(ValueError, match="targets"):
            dp.train_batch(x, y[:4], mask=m)  # shards would disagree
        with pytest.raises(ValueError, match="inputs"):
            dp.train_batch(x[0], y[0])
        with pytest.raises(ValueError, match="inputs"):
            dp.train_batch(x[:, :, :39], y, mask=m)
        with pytest.raises(ValueError, match="mask"):
            dp.train_batch(x, y, mask=m[:3])
        with pytest.raises(ValueError, match="sources"):
            dp.train_streams([])
        with pytest.raises(ValueError, match="chunk 0: inputs"):
            dp.train_streams([functools.partial(chunks_of, x[0][:, :5], y[0], m[0], 10)])
    same_state(net, eprop.RecurrentNetwork.from_state_dict(before))
    with pytest.raises(ValueError, match="closed"):
        dp.train_batch(x, y, mask=m)
    seed_net = eprop.EpropTrainer(40, 8, 2)
    with distributed.DataParallel(seed_net, 1) as dp, pytest.raises(ValueError, match="mask"):
        dp.train_batch(x, np.eye(2)[y], mask=m)


# ------------------------------------------------- the native methods below it


@pytest.mark.parametrize("name", list(NETWORKS))
def test_changes_in_any_grouping_apply_as_train_batch(name):
    alone, net = NETWORKS[name](), NETWORKS[name]()
    seq = {} if isinstance(net, eprop.RecurrentNetwork) else {"update": "sequence"}
    args, kw = batch_args(net, ea_batches(1, 5, seed=15)[0])
    want = alone.train_batch(*args, **kw, **seq)
    rows = [
        net._batch_changes(*(a[k : k + 1] for a in args), **{n: v[k : k + 1] for n, v in kw.items()}) for k in range(5)
    ]
    changes = np.concatenate([r[0] for r in rows])
    whole, losses = net._batch_changes(*args, **kw, n_threads=1)
    assert np.array_equal(changes, whole) and np.array_equal(losses, want)
    assert whole.dtype == (np.float32 if net.dtype == "float32" else np.float64)
    net._apply_changes(changes)
    same_state(alone, net)


def test_one_change_row_is_one_sequence_update():
    # B = 1: the mean of one row is that row (train_sequence with update="sequence")
    net, alone = NETWORKS["rsnn-sgd"](), NETWORKS["rsnn-sgd"]()
    x, y, m = ea_batches(1, 1, seed=16)[0]
    alone.train_sequence(x[0], y[0], mask=m[0])
    net._apply_changes(net._batch_changes(x, y, mask=m)[0])
    same_state(alone, net, own_sequence=False)


def test_sequence_change_equals_the_batch_row():
    net = NETWORKS["rsnn-adam-deep-adaptive"]()
    x, y, m = tasks.evidence_accumulation(2, n_cues=3, t_delay=100, seed=17)
    rows, losses = net._batch_changes(x, y, mask=m)
    for k in range(2):
        row, loss = net._sequence_change(chunks_of(x[k], y[k], m[k], 29))
        assert np.array_equal(row, rows[k]) and loss == losses[k]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_bad_change_rows_change_nothing(name):
    net = NETWORKS[name]()
    args, kw = batch_args(net, ea_batches(1, 2, seed=18)[0])
    rows, _ = net._batch_changes(*args, **kw)
    before = copy.deepcopy(net.state_dict())
    p = rows.shape[1]
    nan = rows.astype(np.float64)
    nan[1, p - 1] = np.nan
    for bad, what in [
        (rows[:, :-1], rf"\(B >= 1, {p}\)"),
        (rows[0], rf"\(B >= 1, {p}\)"),
        (rows[:0], rf"\(B >= 1, {p}\)"),
        (nan, "finite"),
        ("x", "numeric"),
    ]:
        with pytest.raises((ValueError, TypeError), match=what):
            net._apply_changes(bad)
    if net.dtype == "float32":
        with pytest.raises(ValueError, match="float32"):
            net._apply_changes(rows.astype(np.float64) + 1e-12)
    with pytest.raises(ValueError, match="at least one chunk"):
        net._sequence_change(iter([]))
    with pytest.raises(ValueError, match="chunk 1"):
        net._sequence_change(iter([(args[0][0], args[1][0]), (args[0][0],)]))
    same_state(net, type(net).from_state_dict(before))


# ------------------------------------------------------------------ Ray Tune


def _build(config):
    return eprop.RecurrentNetwork(40, 12, 2, n_adaptive=6, loss="cross_entropy", lr=config["lr"], seed=2)


def _batches(config, i):
    return tasks.evidence_accumulation(4, n_cues=3, t_delay=20, t_recall=10, seed=100 + i)


def _validation(config):
    return tasks.evidence_accumulation(8, n_cues=3, t_delay=20, t_recall=10, seed=99)


def test_tune_trainable_reports_and_checkpoints(tmp_path):
    from ray import tune

    trainable = distributed.trainable(_build, _batches, iterations=4, validation=_validation, report_every=2)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.grid_search([0.003, 0.03])},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="t", verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 2 and not results.errors
    for r in results:
        assert r.metrics["iteration"] == 4 and r.metrics["training_iteration"] == 2
        assert {"loss", "accuracy", "train_loss"} <= r.metrics.keys()
        # the checkpoint is the network trained by the same loop in this process
        local = _build(r.config)
        for i in range(4):
            x, y, m = _batches(r.config, i)
            local.train_batch(x, y, mask=m)
        with r.checkpoint.as_directory() as d:
            same_state(local, eprop.RecurrentNetwork.load(f"{d}/network.npz"))
        vx, vy, vm = _validation(r.config)
        assert r.metrics["loss"] == local.evaluate(vx, vy, mask=vm)["loss"]
