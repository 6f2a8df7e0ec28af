"""`maas-gateway token create`: a new gateway token, and its line for the tokens file."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.reporting import fail
from app.core.settings import ENV_PREFIX


def register(commands: Any) -> None:
    token = commands.add_parser("token", help="gateway tokens for service mode")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser(
        "create", help="make a random token; print it once, and its line for the tokens file"
    )
    create.add_argument("--name", required=True, help="who the token is for (logs, metrics)")
    create.add_argument(
        "--scopes", default="read", help="comma-separated: read, write, admin (default: read)"
    )
    create.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.auth.tokens import new_token, token_line
    from app.core.permissions import parse_permissions

    try:
        token = new_token()
        line = token_line(token, args.name, parse_permissions(args.scopes))
    except ValueError as error:
        return fail(str(error))
    print("Token, shown only now (the caller sends 'Authorization: Bearer <token>'):")
    print(token)
    print(f"Line for the tokens file ({ENV_PREFIX}TOKENS_FILE), which holds only the hash:")
    print(line)
    return 0
