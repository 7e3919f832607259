"""`gsnn-edges` command line entry point.

Each verb group lives in its own module exposing ``register(subparsers)``; the module
adds its sub-commands and sets ``func`` (called with the parsed namespace, returns an
exit code). Heavy imports (torch, fastapi, celery) happen inside ``func`` so that
``gsnn-edges --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from gsnn_edges.cli import client_verbs, demo, server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsnn-edges",
        description="Discover missing function -> function edges with Graph Structured "
        "Neural Networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (demo, server, client_verbs):  # the order of --help
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
