"""The image's install, replayed: the Dockerfile's build-stage steps, then its CMD, served for real.

The `build` stage's ENV/WORKDIR/COPY/RUN run here as written (paths under /opt moved into a
scratch root): the wheel is built, a fresh venv gets the hashed runtime lock and the wheel.
The runtime stage's CMD then starts the gateway from that venv, in an empty working directory,
as the image's numeric user where this machine allows it, against the MAAS simulator started
from the same venv; no file of the install may change while it serves.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import REPO
from tests.deploy.dockerfile import (
    DockerIgnore,
    Stage,
    StageRunner,
    expand,
    parse_dockerfile,
    parse_env,
    tree_state,
)

pytestmark = pytest.mark.slow

DOCKERFILE = parse_dockerfile((REPO / "Dockerfile").read_text(encoding="utf-8"))
# A MAAS-shaped admin key (18:18:32 alphanumerics) for the simulator and the gateway.
ADMIN_KEY = "ImageTestConsumer1:ImageTestTokenKey1:ImageTestTokenSecret000000000001"
# The PATH docker's python images start from, before the Dockerfile prepends the venv.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The pages whose assets the Dockerfile's assets stage vendors into app/static/<page>/vendor/.
PAGES = ("graphiql", "swagger-ui")
PROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]


@dataclass(frozen=True)
class Image:
    root: Path
    venv: Path
    cmd: list[str]
    env: dict[str, str]
    workdir: Path
    user: tuple[int, int] | None
    vendored: bool


def python_version_of(stage: Stage) -> str:
    match = re.match(r"python:(\d+\.\d+)\.", stage.base)
    assert match, stage.base
    return match.group(1)


def runnable_by(python: str, uid: int, gid: int) -> bool:
    result = subprocess.run(
        [python, "-c", ""], user=uid, group=gid, extra_groups=[], capture_output=True, check=False
    )
    return result.returncode == 0


def pick_interpreter(version: str, user: tuple[int, int]) -> tuple[str, tuple[int, int] | None]:
    """An interpreter of the image's Python version; the image's user too, when it can run it.

    Running as that uid proves the install needs no write access and no root. That needs root
    here (to switch users) and an interpreter outside root's home (pyenv's is not).
    """
    candidates = [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    candidates.append(getattr(sys, "_base_executable", sys.executable))
    found = []
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            found.append(candidate)
    assert found, f"no Python {version} with venv and ensurepip on this machine"
    if os.geteuid() == 0:
        for candidate in found:
            if runnable_by(candidate, *user):
                return candidate, user
    return found[0], None


def image_user() -> tuple[int, int]:
    uid, gid = DOCKERFILE.stages[-1].one("USER").args.split(":")
    return int(uid), int(gid)


def build_env(shim: Path) -> dict[str, str]:
    """The host environment (pip's index and proxy settings) minus anything of this checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
        and not key.startswith("MAAS_GATEWAY_")
    }
    env["PATH"] = f"{shim}:{IMAGE_PATH}"
    return env


def assets_stage_output(root: Path) -> Path | None:
    """What the assets stage leaves in /out, made of the checkout's vendored files; None when
    some page's are missing (`make assets` fetches them)."""
    vendored = [REPO / "app" / "static" / page / "vendor" for page in PAGES]
    if not all(directory.is_dir() for directory in vendored):
        return None
    out = root / ".assets-stage"
    for page, directory in zip(PAGES, vendored, strict=True):
        shutil.copytree(directory, out / page / "vendor")
    return out


def build_image(root: Path) -> Image:
    build = DOCKERFILE.stage("build")
    runtime = DOCKERFILE.stages[-1]
    user = image_user()
    python, run_as = pick_interpreter(python_version_of(build), user)
    # `python` in the RUN lines is the image's interpreter; here, one of the same version.
    shim = root / ".host-bin"
    shim.mkdir()
    for name in ("python", "python3"):
        (shim / name).symlink_to(python)
    runner = StageRunner(
        context=REPO,
        root=root,
        ignore=DockerIgnore.parse((REPO / ".dockerignore").read_text(encoding="utf-8")),
        base_env=build_env(shim),
        # The assets stage needs the npm registry; the locally vendored assets stand in.
        other_stages={("assets", "/out/"): assets_stage_output(root)},
    )
    runner.run_stage(build)

    [copy] = runtime.all("COPY")
    assert copy.args == "/opt/venv /opt/venv", "the venv must keep its build path"
    env = {"PATH": IMAGE_PATH, "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    for instruction in runtime.all("ENV"):
        env.update(parse_env(instruction.args, env))
    env["PATH"] = ":".join(
        str(root / entry.lstrip("/")) if entry.startswith("/opt/") else entry
        for entry in env["PATH"].split(":")
    )
    workdir = root / expand(runtime.one("WORKDIR").args, env).lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    return Image(
        root=root,
        venv=root / "opt" / "venv",
        cmd=runtime.one("CMD").json_args(),
        env=env,
        workdir=workdir,
        user=run_as,
        vendored=not runner.skipped,
    )


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    # Not pytest's tmp_path: its directories are private to root, and the image's user must
    # be able to reach the install.
    root = Path(tempfile.mkdtemp(prefix="maas-gateway-image-"))
    root.chmod(0o755)
    try:
        yield build_image(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_line(process: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    """The first line of the process's stdout matching pattern, or fail with what it printed."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                continue
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if match := re.search(pattern, line):
                return match
    raise AssertionError(f"no line matching {pattern!r}; printed: {''.join(seen)!r}")


def stop(process: subprocess.Popen[str], timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@pytest.fixture(scope="module")
def image_simulator(image: Image) -> Iterator[str]:
    """The MAAS simulator, run from the image's venv like any other command of it."""
    command = image.venv / "bin" / "maas-gateway"
    process = subprocess.Popen(
        [str(command), "simulate", "--port", "0", "--admin-key", ADMIN_KEY, "--seed", "1"],
        cwd=image.workdir,
        env=image.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = read_line(process, r"(http://127\.0\.0\.1:\d+)/MAAS/", timeout=30).group(1)
        yield f"{url}/MAAS"
    finally:
        stop(process)
        assert process.stdout is not None
        process.stdout.close()


def serve_argv(image: Image, port: int) -> list[str]:
    """The image's CMD, resolved on its PATH, listening on loopback and a free port instead."""
    argv = list(image.cmd)
    executable = shutil.which(argv[0], path=image.env["PATH"])
    assert executable and Path(executable).is_relative_to(image.venv), executable
    argv[0] = executable
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def wait_until_serving(base: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gateway exited {process.returncode}:\n{log.read_text()}"
        try:
            httpx.get(f"{base}/openapi.json", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"gateway did not listen within 30 s:\n{log.read_text()}")


def graphql(base: str, query: str) -> dict[str, object]:
    response = httpx.post(f"{base}/graphql", json={"query": query}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    assert "errors" not in body, body
    return body


def test_image_venv_holds_the_wheel_its_dependencies_and_no_pip(image: Image) -> None:
    assert not (image.venv / "bin" / "pip").exists()
    python = image.venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import app, json; print(json.dumps(app.__file__))"],
        cwd=image.workdir,
        env=image.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Imported from the installed wheel, not from the checkout.
    assert Path(json.loads(result.stdout)).is_relative_to(image.venv)
    check = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('maas-gateway'))"],
        env=image.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == PROJECT_VERSION


def test_image_cmd_serves_graphql_as_the_image_user_without_writing_to_the_install(
    image: Image, image_simulator: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env: Mapping[str, str] = {
        **image.env,
        "MAAS_GATEWAY_MAAS_URL": image_simulator,
        "MAAS_GATEWAY_MAAS_API_KEY": ADMIN_KEY,
        # A real deployment refuses callers without a token; this one lets anonymous ones read.
        "MAAS_GATEWAY_ANONYMOUS_SCOPES": "read",
    }
    before = tree_state(image.root)
    log = tmp_path / "gateway.log"
    with log.open("w") as output:
        extra = {}
        if image.user is not None:
            extra = {"user": image.user[0], "group": image.user[1], "extra_groups": []}
        process = subprocess.Popen(  # type: ignore[call-overload]
            serve_argv(image, port),
            cwd=image.workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            **extra,
        )
    try:
        wait_until_serving(base, process, log)
        data = graphql(base, "{ bootSources { id url } }")["data"]
        assert isinstance(data, dict)
        sources = data["bootSources"]
        assert sources, data
        assert all(str(s["id"]) and s["url"].startswith(("http://", "https://")) for s in sources)

        # The GraphiQL and Swagger UI pages and their assets are package data of the wheel.
        for path, marker in (("/graphql", "graphiql"), ("/docs", "swagger-ui")):
            page = httpx.get(f"{base}{path}", headers={"Accept": "text/html"}, timeout=10)
            assert page.status_code == 200 and marker in page.text
            assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
            assert assets
            for asset in assets:
                if "/vendor/" in asset and not image.vendored:
                    continue
                assert httpx.get(f"{base}{asset}", timeout=10).status_code == 200, asset
    finally:
        code = stop(process)
    # Kubernetes stops a pod with SIGTERM to PID 1: the exec-form CMD must shut down gracefully.
    # uvicorn re-raises the signal once it has, so "killed by SIGTERM" is its normal exit.
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()
    after = tree_state(image.root)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert not changed, f"the gateway wrote into its read-only install: {sorted(changed)[:20]}"
    assert not any(image.workdir.iterdir())
    if os.geteuid() == 0:
        assert image.user is not None, "as root the test must drop to the image's user"
