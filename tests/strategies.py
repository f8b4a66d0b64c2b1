"""Hypothesis strategies for hostile arguments, shared by the bad-input tests
and the API fuzzer: arrays of every dtype, shape and memory layout, with
values from the ordinary to the pathological, and Python values of the wrong
type.

`fuzz_array(shape, ...)` draws either a *valid* array (the right shape,
finite values that convert exactly to float64) in some memory layout, or a
hostile one; it returns (array, valid). A valid array must be accepted and
give bitwise the numbers its contiguous float64 copy gives.
"""

import math
import os
import tempfile

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.longdouble,
    np.int64,
    np.int32,
    np.int8,
    np.uint8,
    np.uint64,
    np.bool_,
    np.complex128,
    np.dtype("U3"),
    np.dtype("S3"),
    np.dtype("M8[s]"),
    np.dtype("m8[s]"),
    np.dtype(">f8"),
    np.dtype([("a", "f8")]),
    object,
]
# NaN, infinities, the largest and smallest magnitudes, subnormals, signed zero
HOSTILE = [
    math.nan,
    math.inf,
    -math.inf,
    1.7976931348623157e308,
    -1e308,
    1e154,
    -1e200,
    1e38,
    3.5e38,
    5e-324,
    -2.2e-310,
    1e-40,
    -0.0,
    0.0,
    1.0,
    3.0,
]
# Layouts of a valid array: all must read as the same values.
LAYOUTS = ["array", "list", "strided", "negative", "fortran", "readonly", "memmap", "float32", "int", "bool"]
# Python values that are not arrays at all.
NOT_ARRAYS = [None, "abc", b"\x00", 1.5, 7, True, {"a": 1}, object(), {1, 2}, (lambda: 0)]

_MEMMAP_DIR = tempfile.mkdtemp(prefix="eprop-fuzz-")
_memmaps = [0]


def memmap_of(arr):
    """A read-write memmap holding `arr` (in a directory removed at exit by the OS's tmp cleaning)."""
    _memmaps[0] += 1
    path = os.path.join(_MEMMAP_DIR, f"m{_memmaps[0] % 64}.dat")
    if arr.size == 0 or arr.ndim == 0:
        return arr  # numpy cannot map an empty file, and maps shape () as (1,)
    m = np.memmap(path, dtype=arr.dtype, mode="w+", shape=arr.shape)
    m[...] = arr
    return m


def laid_out(arr, layout):
    """`arr` in `layout` (see LAYOUTS); the values are unchanged."""
    if layout == "list":
        return arr.tolist()
    if arr.ndim == 0:
        return arr  # (asfortranarray would make it 1-d)
    if layout == "strided":
        return np.repeat(arr, 2, axis=-1)[..., ::2]
    if layout == "negative":
        return np.ascontiguousarray(arr[::-1])[::-1]
    if layout == "fortran":
        return np.asfortranarray(arr)
    if layout == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if layout == "memmap":
        return memmap_of(arr)
    return arr


@st.composite
def valid_array(draw, shape, values=None):
    """A valid array of `shape` (values drawn from `values`, default small
    finite floats that float32 holds exactly) in a random layout. Returns
    (array, layout)."""
    layout = draw(st.sampled_from(LAYOUTS))
    if layout == "bool" and values is None:
        return draw(hnp.arrays(np.bool_, shape)), layout
    if values is None:
        values = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 0.25, -0.75, 3.0, 1.5, 0.0])
    if layout in ("int", "bool"):  # integers: the values rounded toward zero
        arr = draw(hnp.arrays(np.float64, shape, elements=values))
        return arr.astype(np.int64), "int"
    arr = draw(hnp.arrays(np.float64, shape, elements=values))
    if layout == "float32":
        return arr.astype(np.float32), layout
    return laid_out(arr, layout), layout


@st.composite
def hostile_arrays(draw, valid_shape):
    """An array of random dtype, often of the valid shape, with hostile values,
    in a random layout (or a nested list)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(
        st.one_of(
            st.just(valid_shape),
            st.just(valid_shape),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
        )
    )
    if dtype.kind == "f":
        elems = st.one_of(st.sampled_from(HOSTILE), st.floats(allow_nan=True, allow_infinity=True, width=64))
        arr = draw(hnp.arrays(np.float64, shape, elements=elems))
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(dtype)
    elif dtype.kind in "iubcMm":
        arr = draw(hnp.arrays(dtype, shape))
    elif dtype.kind == "U":
        arr = draw(hnp.arrays(dtype, shape, elements=st.text(alphabet="ab1.e-", max_size=3)))
    elif dtype.kind == "S":
        arr = draw(
            hnp.arrays(
                dtype, shape, elements=st.binary(min_size=1, max_size=3).filter(lambda b: not b.endswith(b"\x00"))
            )
        )
    elif dtype.kind == "V":
        arr = np.zeros(shape, dtype=dtype)
    else:
        elems = st.one_of(st.none(), st.sampled_from(HOSTILE), st.text(alphabet="ab1.e-", max_size=2))
        arr = draw(hnp.arrays(object, shape, elements=elems))
    layout = draw(st.sampled_from(["array", "list", "strided", "negative", "fortran", "readonly", "memmap"]))
    if layout == "list" and dtype.kind == "V":
        layout = "array"
    return laid_out(arr, layout)


@st.composite
def fuzz_array(draw, shape, values=None, p_valid=0.6):
    """(array, valid): a valid array of `shape` with probability `p_valid`,
    else a hostile array or a value that is no array."""
    u = draw(st.floats(0, 1))
    if u < p_valid:
        arr, _ = draw(valid_array(shape, values))
        return arr, True
    if u < p_valid + 0.05:
        return draw(st.sampled_from(NOT_ARRAYS)), False
    return draw(hostile_arrays(shape)), False
