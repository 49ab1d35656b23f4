"""The ``imsdk`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imsdk", description="imsdk: instant-messaging toolkit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="run the all-in-one demo on the embedded defaults")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imsdk`` console script; returns the process exit status."""
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        print("demo: not available yet", file=sys.stderr)
        return 1
    return 2
