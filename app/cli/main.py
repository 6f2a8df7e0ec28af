"""The `maas-gateway` command: serve the gateway, run the simulator alone, make tokens, export
contracts, build trusted-document manifests, upload images and apply a declared image state;
a module for each command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from app import __version__
from app.cli import documents, export, images, serve, simulate, tokens, upload


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"maas-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (serve, simulate, upload, images, tokens, export, documents):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result
