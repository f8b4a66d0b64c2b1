"""Command line: ``python -m eprop demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eprop", description="eprop command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a spiking network on a built-in task and report what it learned")
    demo.add_argument("--epochs", type=int, default=200, help="training passes over the task (default 200)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from eprop._demo import run

        if args.epochs < 1:
            parser.error(f"--epochs: expected an integer >= 1, got {args.epochs}")
        run(epochs=args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
