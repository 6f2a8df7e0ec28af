"""Runs the third-party GraphQL clients in tests/graphql/clients (Node) against a gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

CLIENTS = Path(__file__).parent / "clients"


def run_client(script: str, *args: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run one client script; every line it prints is a JSON object. A failing script fails
    the test with what it printed."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the client tests (.ci/run installs it)"
    assert (CLIENTS / "node_modules").is_dir(), "run `make clients` (make test does) first"
    done = subprocess.run(
        [node, str(CLIENTS / script), *args],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
