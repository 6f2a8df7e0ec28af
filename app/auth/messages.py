"""What a refused or failed caller is told: one answer for every credential problem, and no
input value quoted back."""

from __future__ import annotations

import re

# One answer for every credential problem: which part was wrong is no business of the caller's.
UNAUTHENTICATED_MESSAGE = "missing or invalid credentials"


WWW_AUTHENTICATE = 'Bearer realm="maas-gateway"'


def unauthenticated_message(error: Exception) -> str:
    """What a caller is told of an UNAUTHENTICATED error: MAAS's own words about a key (which
    part it did not know) are replaced by the gateway's one answer."""
    details = getattr(error, "details", None) or {}
    return UNAUTHENTICATED_MESSAGE if "upstream_status" in details else str(error)


# graphql-core: "Variable '$input' has invalid value at .keyringData: <reason quoting it>".
_VARIABLE_ERROR = re.compile(r"(Variable '\$\w+' has invalid value(?: at [^:]*)?): (.*)\Z", re.S)


_FOUND = re.compile(r",? found: .*\Z", re.S)


def without_input_values(message: str) -> str:
    """A GraphQL input error's message without the value it quotes: a keyring, a key or a
    token sent in the wrong place must not come back in an error or go to the logs."""
    match = _VARIABLE_ERROR.match(message)
    prefix, reason = (match.group(1) + ": ", match.group(2)) if match else ("", message)
    reason = _FOUND.sub(".", reason)
    if " cannot represent " in reason:
        # "String cannot represent a non string value: ['…']"
        reason = reason.split(": ", 1)[0]
    return prefix + reason
