"""Arbitrarily long sequences: ``train_sequence``/``predict_sequence`` with
``reset=False``, ``train_stream``, ``predict_stream``, memmapped inputs read in
blocks, bad chunks in a stream, progress output, and memory that does not grow
with the length."""

import copy
import itertools

import eprop
import numpy as np
import pytest
from common import arrays, build, data, dims, nonzero_state

pytestmark = pytest.mark.timeout(120)

SIZES = {"eprop": (5, 20, 3), "online": (5, 12, 3)}


# --------------------------------------------------------------------------- helpers


def make(kind, **kw):
    return build(kind, SIZES[kind], **kw)


def assert_same_trainer(a, b):
    aa, bb = arrays(a), arrays(b)
    assert aa.keys() == bb.keys()
    for k in aa:
        assert aa[k].tobytes() == bb[k].tobytes(), f"{k} differs"


def assert_bitwise(a, b, msg=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, msg
    assert a.dtype == b.dtype, msg
    assert a.tobytes() == b.tobytes(), msg or "arrays differ bitwise"


def split(T, sizes=(1, 7, 100)):
    """Chunk boundaries: the given sizes, then the rest."""
    bounds = [0]
    for s in sizes:
        bounds.append(min(T, bounds[-1] + s))
    if bounds[-1] < T:
        bounds.append(T)
    return list(zip(bounds[:-1], bounds[1:]))


# --------------------------------------------------------------------------- chunked == whole


@pytest.mark.parametrize("sizes", [(1, 7, 100), (50, 50, 50), (299, 1), (1,) * 20])
def test_train_sequence_in_chunks_equals_one_call(kind, sizes):
    T = 300
    whole = make(kind)
    x, y = data(whole, T, seed=1)
    loss = whole.train_sequence(x, y)
    chunked = make(kind)
    losses, lengths = [], []
    for k, (a, b) in enumerate(split(T, sizes)):
        losses.append(chunked.train_sequence(x[a:b], y[a:b], reset=(k == 0)))
        lengths.append(b - a)
    assert_same_trainer(chunked, whole)
    assert nonzero_state(whole)
    np.testing.assert_allclose(np.dot(losses, lengths) / T, loss, rtol=1e-12)
    # outputs after both agree too
    xp, _ = data(whole, 30, seed=2)
    assert_bitwise(chunked.predict_sequence(xp, reset=False), whole.predict_sequence(xp, reset=False))


def test_reset_false_continues_from_current_state(kind):
    t = make(kind)
    x, y = data(t, 120, seed=3)
    t.train_sequence(x[:60], y[:60])
    warm = copy.deepcopy(t)
    t.train_sequence(x[60:], y[60:], reset=False)
    # reset=True (the default) restarts from zero: differs from continuing
    restarted = copy.deepcopy(warm)
    restarted.train_sequence(x[60:], y[60:])
    fresh = copy.deepcopy(warm)
    fresh.reset()
    fresh.train_sequence(x[60:], y[60:], reset=False)
    assert_same_trainer(restarted, fresh)
    assert any(arrays(t)[k].tobytes() != arrays(restarted)[k].tobytes() for k in arrays(t))


@pytest.mark.parametrize("sizes", [(1, 7, 100), (3,) * 40])
def test_predict_sequence_in_chunks_equals_one_call(kind, sizes):
    T = 300
    t = make(kind)
    x, y = data(t, T, seed=4)
    t.train_sequence(*data(t, 50, seed=5))  # moved weights
    whole = copy.deepcopy(t)
    out = whole.predict_sequence(x)
    chunked = copy.deepcopy(t)
    parts = [chunked.predict_sequence(x[a:b], reset=(k == 0)) for k, (a, b) in enumerate(split(T, sizes))]
    assert_bitwise(np.concatenate(parts), out)
    assert_same_trainer(chunked, whole)
    assert np.any(out != 0)


@pytest.mark.parametrize("container", ["list", "generator", "zip", "tuple"])
def test_train_stream_equals_train_sequence(kind, container):
    T = 300
    whole = make(kind)
    x, y = data(whole, T, seed=6)
    loss = whole.train_sequence(x, y)
    pieces = [(x[a:b], y[a:b]) for a, b in split(T)]
    if container == "list":
        chunks = pieces
    elif container == "tuple":
        chunks = tuple(pieces)
    elif container == "generator":
        chunks = (p for p in pieces)
    else:
        bounds = split(T)
        chunks = zip((x[a:b] for a, b in bounds), (y[a:b] for a, b in bounds))
    s = make(kind)
    got = s.train_stream(chunks)
    assert isinstance(got, float)
    assert np.float64(got).tobytes() == np.float64(loss).tobytes()
    assert_same_trainer(s, whole)


def test_train_stream_reset_flag(kind):
    t = make(kind)
    x, y = data(t, 200, seed=7)
    t.train_sequence(x[:80], y[:80])
    a, b = copy.deepcopy(t), copy.deepcopy(t)
    la = a.train_stream([(x[80:130], y[80:130]), (x[130:], y[130:])], reset=False)
    lb = b.train_sequence(x[80:], y[80:], reset=False)
    assert la == lb
    assert_same_trainer(a, b)
    c, d = copy.deepcopy(t), copy.deepcopy(t)
    assert c.train_stream([(x[80:130], y[80:130]), (x[130:], y[130:])]) == d.train_sequence(x[80:], y[80:])
    assert_same_trainer(c, d)


def test_train_stream_of_single_steps(kind):
    T = 150
    a = make(kind)
    x, y = data(a, T, seed=8)
    la = a.train_stream((x[i : i + 1], y[i : i + 1]) for i in range(T))
    b = make(kind)
    assert la == b.train_sequence(x, y)
    assert_same_trainer(a, b)


def test_predict_stream_equals_predict_sequence(kind):
    T = 300
    t = make(kind)
    t.train_sequence(*data(t, 60, seed=9))
    x, _ = data(t, T, seed=10)
    ref = copy.deepcopy(t)
    out = ref.predict_sequence(x)
    bounds = split(T)
    it = t.predict_stream(x[a:b] for a, b in bounds)
    assert iter(it) is it
    parts = list(it)
    assert [p.shape for p in parts] == [(b - a, dims(t)[1]) for a, b in bounds]
    assert_bitwise(np.concatenate(parts), out)
    assert_same_trainer(t, ref)
    assert np.any(out != 0)
    with pytest.raises(StopIteration):
        next(it)


def test_predict_stream_is_lazy_and_resets_at_first_chunk(kind):
    t = make(kind)
    x, y = data(t, 100, seed=11)
    t.train_sequence(x, y)  # leaves a non-zero state
    before = arrays(t)
    it = t.predict_stream([x[:40], x[40:]])
    for k, v in arrays(t).items():
        assert v.tobytes() == before[k].tobytes(), f"predict_stream ran before iteration ({k})"
    ref = copy.deepcopy(t)
    ref.reset()
    first = next(it)
    # after the first chunk the state is that of a reset trainer fed that chunk
    mid = copy.deepcopy(ref)
    assert_bitwise(first, mid.predict_sequence(x[:40], reset=False))
    assert_same_trainer(t, mid)
    rest = next(it)
    assert_bitwise(np.concatenate([first, rest]), ref.predict_sequence(x, reset=False))
    assert_same_trainer(t, ref)


def test_predict_stream_reset_false_continues(kind):
    t = make(kind)
    x, y = data(t, 100, seed=12)
    t.train_sequence(x, y)
    ref = copy.deepcopy(t)
    out = np.concatenate(list(t.predict_stream(iter([x[:13], x[13:50], x[50:]]), reset=False)))
    assert_bitwise(out, ref.predict_sequence(x, reset=False))
    assert_same_trainer(t, ref)


# --------------------------------------------------------------------------- memmap and layouts


@pytest.fixture
def memmapped(tmp_path):
    """A (T, 100) input and (T, 10) target memmap, larger than one 8 MiB block."""
    T, n_in, n_out = 12_000, 100, 10
    rng = np.random.default_rng(13)
    xp, yp = tmp_path / "x.npy", tmp_path / "y.npy"
    x = np.lib.format.open_memmap(xp, mode="w+", dtype=np.float64, shape=(T, n_in))
    y = np.lib.format.open_memmap(yp, mode="w+", dtype=np.float64, shape=(T, n_out))
    for a in range(0, T, 4000):
        x[a : a + 4000] = (rng.random((min(4000, T - a), n_in)) < 0.05) * 2.0
        y[a : a + 4000] = rng.random((min(4000, T - a), n_out))
    x.flush()
    y.flush()
    del x, y
    return np.load(xp, mmap_mode="r"), np.load(yp, mmap_mode="r")


def make_wide(kind):
    return build(kind, (100, 12, 10), lr=0.001)


def test_memmap_inputs_equal_in_memory(kind, memmapped):
    mx, my = memmapped
    assert isinstance(mx, np.memmap) and not mx.flags.writeable
    x, y = np.array(mx), np.array(my)
    assert x.nbytes > 8 << 20  # spans several blocks
    a, b = make_wide(kind), make_wide(kind)
    assert a.train_sequence(mx, my) == b.train_sequence(x, y)
    assert_same_trainer(a, b)
    assert_bitwise(a.predict_sequence(mx), b.predict_sequence(x))
    assert_same_trainer(a, b)


def test_memmap_block_reading_matches_a_converted_copy(kind, memmapped):
    """A float64 memmap is read block by block; an int8 copy of the same
    values is converted whole. Same numbers."""
    mx, my = memmapped
    a, b = make_wide(kind), make_wide(kind)
    assert a.train_sequence(mx, my) == b.train_sequence(np.array(mx, dtype=np.int8), np.array(my))
    assert_same_trainer(a, b)
    assert_bitwise(a.predict_sequence(mx), b.predict_sequence(np.array(mx, dtype=np.int8)))


def test_memmap_train_stream(kind, memmapped):
    mx, my = memmapped
    T = len(mx)
    bounds = split(T, (1, 7, 100, 5000))
    a, b = make_wide(kind), make_wide(kind)
    la = a.train_stream((mx[s:e], my[s:e]) for s, e in bounds)
    assert la == b.train_sequence(np.array(mx), np.array(my))
    assert_same_trainer(a, b)
    out = np.concatenate(list(a.predict_stream(mx[s:e] for s, e in bounds)))
    assert_bitwise(out, b.predict_sequence(np.array(mx)))


def test_strided_and_fortran_inputs(kind):
    t = make(kind)
    x, y = data(t, 200, seed=14)
    ref = copy.deepcopy(t)
    loss = ref.train_sequence(x, y)
    ref_out = copy.deepcopy(ref).predict_sequence(x)
    big = np.zeros((400, x.shape[1] * 2))
    big[::2, ::2] = x
    for xin, yin in [
        (np.asfortranarray(x), np.asfortranarray(y)),
        (big[::2, ::2], y),
        (x[::-1][::-1], y),
        (x.tolist(), y.tolist()),
    ]:
        c = copy.deepcopy(t)
        assert c.train_sequence(xin, yin) == loss
        assert_same_trainer(c, ref)
        assert_bitwise(c.predict_sequence(xin), ref_out)


# --------------------------------------------------------------------------- bad chunks


def _bad_chunk(kind, case, T=20):
    t = make(kind)
    n_in, n_out = dims(t)
    x, y = data(t, T, seed=15)
    if case == "input width":
        return (np.zeros((T, n_in + 1)), y)
    if case == "target width":
        return (x, np.zeros((T, n_out - 1)))
    if case == "pair lengths":
        return (x, y[:-1])
    if case == "input NaN":
        x = x.copy()
        x[T // 2, 1] = np.nan
        return (x, y)
    if case == "target inf":
        y = y.copy()
        y[-1, 0] = np.inf
        return (x, y)
    if case == "empty chunk":
        return (x[:0], y[:0])
    if case == "1-D input":
        return (x[0], y[:1])
    if case == "not a pair":
        return x
    if case == "triple":
        return (x, y, y)
    raise AssertionError(case)


BAD_CASES = [
    "input width",
    "target width",
    "pair lengths",
    "input NaN",
    "target inf",
    "empty chunk",
    "1-D input",
    "not a pair",
    "triple",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_chunk_in_the_middle_of_a_stream(kind, case):
    t = make(kind)
    x, y = data(t, 250, seed=16)
    good = [(x[:7], y[:7]), (x[7:120], y[7:120])]
    after = [(x[120:], y[120:])]
    bad = _bad_chunk(kind, case)
    with pytest.raises(ValueError) as e:
        t.train_stream(good + [bad] + after)
    assert "chunks[2]" in str(e.value), str(e.value)
    ref = make(kind)
    ref.train_stream(good)
    assert_same_trainer(t, ref)
    # the stream can be resumed where it stopped
    t.train_stream(after, reset=False)
    ref.train_stream(after, reset=False)
    assert_same_trainer(t, ref)


@pytest.mark.parametrize("case", ["input NaN", "pair lengths", "not a pair"])
def test_bad_first_chunk_changes_nothing(kind, case):
    """Not even the reset happens when the first chunk is rejected."""
    t = make(kind)
    t.train_sequence(*data(t, 50, seed=17))
    before = arrays(t)
    assert nonzero_state(t)
    with pytest.raises(ValueError):
        t.train_stream([_bad_chunk(kind, case)])
    after = arrays(t)
    for k in before:
        assert after[k].tobytes() == before[k].tobytes(), k


def test_exception_from_the_iterable_keeps_completed_chunks(kind):
    t = make(kind)
    x, y = data(t, 100, seed=18)

    def gen():
        yield x[:30], y[:30]
        yield x[30:60], y[30:60]
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        t.train_stream(gen())
    ref = make(kind)
    ref.train_sequence(x[:60], y[:60])
    assert_same_trainer(t, ref)


def test_empty_stream_is_rejected(kind):
    t = make(kind)
    t.train_sequence(*data(t, 20, seed=19))
    before = arrays(t)
    with pytest.raises(ValueError):
        t.train_stream([])
    with pytest.raises(ValueError):
        t.train_stream(iter(()))
    with pytest.raises(TypeError):
        t.train_stream(5)
    for k, v in arrays(t).items():
        assert v.tobytes() == before[k].tobytes(), k


def test_bad_chunk_in_predict_stream(kind):
    t = make(kind)
    x, _ = data(t, 100, seed=20)
    ref = copy.deepcopy(t)
    bad = x[:10].copy()
    bad[3, 0] = np.nan
    it = t.predict_stream([x[:50], bad, x[50:]])
    first = next(it)
    with pytest.raises(ValueError):
        next(it)
    assert_bitwise(first, ref.predict_sequence(x[:50]))
    assert_same_trainer(t, ref)


# --------------------------------------------------------------------------- progress


def test_train_stream_progress(kind, capsys):
    t = make(kind)
    x, y = data(t, 300, seed=21)
    loss = t.train_stream([(x[a:b], y[a:b]) for a, b in split(300)], progress=True)
    err = capsys.readouterr().err
    assert "steps" in err and "300" in err
    assert err.endswith("\n")
    # progress changes nothing in the numbers
    ref = make(kind)
    assert ref.train_sequence(x, y) == loss
    t.train_stream([(x, y)])
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- memory


def test_memory_bytes_is_constant_in_the_length(kind):
    t = make(kind)
    m = t.memory_bytes
    assert isinstance(m, int)
    wbytes = sum(v.nbytes for k, v in arrays(t).items() if "W" in k)
    assert m > wbytes
    for T in (10, 10_000):
        t.train_sequence(*data(t, T, seed=T))
        assert t.memory_bytes == m
    x, y = data(t, 3000, seed=22)
    t.train_stream((x[i : i + 100], y[i : i + 100]) for i in range(0, 3000, 100))
    t.predict_sequence(x)
    t.train_batch(np.stack([x, x]), np.stack([y, y]))
    assert t.memory_bytes == m
    # and it accounts for at least the weights and the state
    assert m >= sum(v.nbytes for v in arrays(t).values())


def test_memory_per_step_is_the_seed_formula():
    for ni, nr, no in [(1, 1, 1), (5, 20, 3), (100, 256, 10), (7, 3, 2)]:
        t = eprop.EpropTrainer(ni, nr, no)
        assert t.memory_per_step == nr + nr + nr * ni * 2 + nr * nr * 2
        t.train_sequence(np.ones((10, ni)), np.zeros((10, no)))
        assert t.memory_per_step == nr + nr + nr * ni * 2 + nr * nr * 2
    for sizes in ([3, 4], [5, 12, 3], [10, 20, 30, 2]):
        t = eprop.OnlineTrainer(sizes)
        expected = sum(n + n + n * m for m, n in itertools.pairwise(sizes))
        assert t.memory_per_step == expected


@pytest.fixture(scope="module")
def large_float32_memmap(tmp_path_factory):
    """A (T, 100) float32 input memmap whose float64 copy (72 MB) is above the
    size up to which inputs are copied whole: it is read in blocks."""
    T, n_in = 90_000, 100
    path = tmp_path_factory.mktemp("f32") / "x.npy"
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(T, n_in))
    rng = np.random.default_rng(21)
    for a in range(0, T, 10_000):
        x[a : a + 10_000] = (rng.random((10_000, n_in)) < 0.05) * np.float32(1.5)
    x.flush()
    del x
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_large_float32_memmap_read_in_blocks_equals_in_memory(large_float32_memmap, dtype):
    mx = large_float32_memmap
    assert mx.dtype == np.float32 and 8 * mx.size > 64 << 20
    y = np.random.default_rng(22).random((len(mx), 2))
    a = eprop.RecurrentNetwork(100, 8, 2, dtype=dtype)
    b = eprop.RecurrentNetwork(100, 8, 2, dtype=dtype)
    assert a.train_sequence(mx, y) == b.train_sequence(np.array(mx, dtype=np.float64), y)
    assert a.W_in.tobytes() == b.W_in.tobytes()
    assert_bitwise(a.predict_sequence(mx), b.predict_sequence(np.array(mx, dtype=np.float64)))


def test_large_float32_memmap_is_not_copied_whole(large_float32_memmap):
    """Peak memory of a fresh process predicting over the memmap: its file
    pages (36 MB) and 8 MB blocks, not a 72 MB float64 copy on top."""
    import subprocess
    import sys

    code = (
        "import resource, numpy as np, eprop\n"
        f"x = np.load({str(large_float32_memmap.filename)!r}, mmap_mode='r')\n"
        "net = eprop.RecurrentNetwork(100, 8, 2, dtype='float32')\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "net.predict_sequence(x)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    grown_kib = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    # file pages 36 MB + one 8 MB block + the (90000, 2) output: well under the 72 MB copy
    assert grown_kib < 60 * 1024, grown_kib
