"""A minimal line-plot PNG writer (no dependencies beyond zlib), so that the
demo can save a picture without matplotlib."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

Color = tuple[int, int, int]


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path: str, pixels: np.ndarray) -> None:
    """Writes an (H, W, 3) uint8 RGB image."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(h))
    data = b"\x89PNG\r\n\x1a\n"
    data += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += _chunk(b"IDAT", zlib.compress(raw, 9))
    data += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def line_plot(path: str, series: Sequence[tuple[np.ndarray, Color]], width: int = 900, height: int = 300) -> None:
    """Plots each 1-D series (same length) as a line on a white canvas with a
    grey zero line and a 10-pixel margin, and saves it as PNG."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    values = np.concatenate([np.asarray(s, dtype=float) for s, _ in series])
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        hi = lo + 1.0
    margin = 10

    def to_row(v: np.ndarray) -> np.ndarray:
        frac = (v - lo) / (hi - lo)
        return np.clip(np.round((1 - frac) * (height - 2 * margin - 1)).astype(int) + margin, 0, height - 1)

    if lo < 0 < hi:
        img[to_row(np.array([0.0]))[0], margin : width - margin] = (200, 200, 200)
    for s, color in series:
        s = np.asarray(s, dtype=float)
        cols = np.round(np.linspace(margin, width - margin - 1, len(s))).astype(int)
        rows = to_row(s)
        for k in range(len(s) - 1):
            r0, r1 = sorted((rows[k], rows[k + 1]))
            c0, c1 = cols[k], cols[k + 1]
            img[r0 : r1 + 1, c0 : c1 + 1] = color
            img[max(r0 - 1, 0) : r0 + 1, c0 : c1 + 1] = color
    write_png(path, img)
