"""matplotlib, when it is installed: the one place the examples and
benchmarks get it from (plots are optional; ``pip install "eprop[plot]"``)."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` drawing to files (the Agg backend), or ``None``
    after saying that no plot is made when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('  matplotlib is not installed (pip install "eprop[plot]"): no plot')
        return None
    return plt
