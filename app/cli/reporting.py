"""How the command line reports a failure: one line on stderr per problem, and the exit status."""

from __future__ import annotations

import sys

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
