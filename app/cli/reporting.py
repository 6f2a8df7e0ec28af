"""How the command line reports a failure: one line on stderr per problem, and the exit status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from app.core.settings import ENV_PREFIX


def fail(message: str) -> int:
    print(f"maas-gateway: {message}", file=sys.stderr)
    return 2


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad setting, named as the operator sets it; never the rejected value."""
    lines = []
    for item in error.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in item["loc"]).upper()
        reason = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"invalid setting {name}: {reason}")
    return "\n".join(lines)


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """--token, and --token-file for what `ps` and shell history must not show."""
    parser.add_argument(
        "--token",
        help="a gateway bearer token (visible to ps; prefer MAAS_GATEWAY_TOKEN or --token-file)",
    )
    parser.add_argument("--token-file", help="a file holding the gateway bearer token")


def resolve_token(args: argparse.Namespace) -> str | None:
    """--token, else --token-file's content, else MAAS_GATEWAY_TOKEN; None without one.
    Raises OSError for a token file that cannot be read."""
    if args.token:
        return str(args.token)
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip() or None
    return os.environ.get("MAAS_GATEWAY_TOKEN") or None
