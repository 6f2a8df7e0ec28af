"""One version wherever a release shows it: the package, the CLI, the image's label, the chart."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata

import pytest
import yaml

from app import __version__
from app.cli.main import main
from tests.deploy.conftest import CHART, REPO
from tests.deploy.dockerfile import parse_dockerfile

PROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]


def make(*args: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def cli_version(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    return capsys.readouterr().out.strip().removeprefix("maas-gateway ")


def dockerfile_version_default() -> str:
    runtime = parse_dockerfile((REPO / "Dockerfile").read_text(encoding="utf-8")).stages[-1]
    labels = " ".join(label.args for label in runtime.all("LABEL"))
    # The label takes the build arg, so `make image-check` (and a docker build with the arg) wins.
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    [default] = [
        arg.args.partition("=")[2] for arg in runtime.all("ARG") if arg.args.startswith("VERSION=")
    ]
    return default


def test_every_place_a_release_shows_has_the_project_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    image_check = make("-n", "image-check")
    label_arg = re.search(r"--version (\S+)", image_check)
    assert label_arg, image_check
    versions = {
        "app.__version__": __version__,
        "installed distribution": metadata.version("maas-gateway"),
        "maas-gateway --version": cli_version(capsys),
        "make version": make("-s", "version").strip(),
        "make image-check's label": label_arg.group(1),
        "Dockerfile ARG VERSION default": dockerfile_version_default(),
        "Chart.yaml appVersion": str(chart["appVersion"]),
    }
    differing = {place: v for place, v in versions.items() if v != PROJECT_VERSION}
    assert not differing, f"pyproject.toml says {PROJECT_VERSION}: {differing}"
