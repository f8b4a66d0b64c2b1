"""Command line: ``python -m eprop demo`` trains a network and reports what it
learned; ``python -m eprop info`` says how this installation runs."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys

#: optional extras: (extra, distribution it needs, what it gives)
EXTRAS = (
    ("plot", "matplotlib", "figures of the demo and the examples"),
    ("progress", "tqdm", "progress bars (train_stream(progress=True), the examples)"),
    ("ray", "ray", "eprop.distributed: data-parallel training and sweeps"),
)


def info() -> str:
    """What ``python -m eprop info`` prints."""
    import numpy as np

    import eprop
    from eprop import _core

    b = _core._build_info()
    lines = [
        f"eprop {eprop.__version__} ({b['profile']} build, {b['target']})",
        f"  hot loops: {b['simd']} (chosen at run time; avx2 and portable give the same numbers)",
        f"  float types: {', '.join(b['dtypes'])} (dtype=..., float64 by default)",
        f"  threads: {b['threads']} in the default pool (RAYON_NUM_THREADS, else the CPUs); n_threads=k per call",
        f"  python {platform.python_version()}, numpy {np.__version__}",
        "  optional extras:",
    ]
    for extra, dist, what in EXTRAS:
        try:
            found = f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            found = f'not installed (pip install "eprop[{extra}]")'
        lines.append(f"    {extra:9s} {found}: {what}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eprop", description="eprop: online e-prop training of SNNs")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train a spiking network on a built-in task and report what it learned")
    demo.add_argument("--iterations", type=int, default=300, help="training iterations (default 300)")
    demo.add_argument(
        "--png", default="eprop_demo.png", help="where to save the figure (default eprop_demo.png; '' for none)"
    )
    sub.add_parser("info", help="version, build, threads and optional extras of this installation")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "info":
        print(info())
    elif args.command == "demo":
        from eprop._demo import run

        if args.iterations < 1:
            parser.error(f"--iterations: expected an integer >= 1, got {args.iterations}")
        run(iterations=args.iterations, png=args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
