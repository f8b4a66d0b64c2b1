"""Command line: ``python -m eprop demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eprop", description="eprop command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a spiking network on a built-in task and report what it learned")
    demo.add_argument("--iterations", type=int, default=300, help="training iterations (default 300)")
    demo.add_argument("--png", default="eprop_demo.png", help="where to save the plot ('' for none)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from eprop._demo import run

        if args.iterations < 1:
            parser.error(f"--iterations: expected an integer >= 1, got {args.iterations}")
        run(iterations=args.iterations, png=args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
