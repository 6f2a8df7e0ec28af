"""`make image-check`: build the Dockerfile with buildah on stand-in bases made from Debian's
packages, run the image against the simulator, and check what an operator relies on.

Docker Hub is out of reach here and in CI, so the Dockerfile's base-image build args get
stand-ins: a debootstrap'ed bookworm with Debian's python3 and, for the asset stage, the same plus
Debian's npm. They are cached in buildah's image store under a tag keyed on their recipe, so only
a changed recipe builds them again. The image then runs with `buildah run` (podman's runtime
cannot set rlimits in this sandbox) in demo mode, which starts the simulator in-process. Stdlib
only, so it needs nothing of the dev venv. The build uses buildah's layer cache, so a run where
only app/ changed is quick; `buildah rmi --prune` reclaims what older runs left.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The image's user: the Dockerfile's USER, the chart's runAsUser.
IMAGE_UID = 10001
VENV = "/opt/venv"
# Both images the stand-ins replace are Debian-based, and Debian keeps its CA bundle here.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# What the slim python image leaves out as well; the stand-ins need none of it.
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
START_TIMEOUT = 120.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CheckFailed(Exception):
    """The image did not build, start or behave as the checks expect."""


@dataclass(frozen=True)
class StandIn:
    """A stand-in for one of the Dockerfile's base images, and how to make it."""

    arg: str
    name: str
    # debootstrap's --include for a base made from scratch; apt-get install on `parent` else.
    packages: tuple[str, ...]
    parent: StandIn | None = None

    @property
    def tag(self) -> str:
        recipe = {
            "suite": SUITE,
            "trim": TRIM,
            "packages": self.packages,
            "parent": self.parent.tag if self.parent else None,
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        return f"localhost/maas-gateway-standin/{self.name}:{key}"


PYTHON = StandIn(
    "PYTHON_IMAGE", "python", ("python3", "python3-venv", "python-is-python3", "ca-certificates")
)
NODE = StandIn("NODE_IMAGE", "node", ("npm",), parent=PYTHON)
STAND_INS = {stand_in.arg: stand_in for stand_in in (PYTHON, NODE)}


@dataclass(frozen=True)
class Tools:
    buildah: str
    debootstrap: str

    @classmethod
    def find(cls) -> Tools:
        found = {name: shutil.which(name) for name in ("buildah", "debootstrap")}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise CheckFailed(f"missing {', '.join(missing)}: apt-get install buildah debootstrap")
        return cls(buildah=str(found["buildah"]), debootstrap=str(found["debootstrap"]))


def run(argv: Sequence[str], *, quiet: bool = False) -> str:
    """Run a command; its output is shown unless quiet, and kept for the error either way."""
    result = subprocess.run(  # noqa: S603 - argv built here, no shell
        argv, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise CheckFailed(f"{' '.join(argv[:4])} ... exited {result.returncode}:\n{output}")
    if not quiet and result.stdout.strip():
        print(result.stdout.rstrip()[-2000:])
    return result.stdout.strip()


def base_image_args(dockerfile: str) -> dict[str, str]:
    """The Dockerfile's global ARGs that name a base image (`*_IMAGE`), with their defaults."""
    args: dict[str, str] = {}
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            break
        if match := re.match(r"ARG (\w+_IMAGE)=(\S+)", line):
            args[match.group(1)] = match.group(2)
    unknown = set(args) - set(STAND_INS)
    if unknown:
        raise CheckFailed(f"no stand-in for the Dockerfile's {', '.join(sorted(unknown))}")
    return args


def image_exists(tools: Tools, tag: str) -> bool:
    result = subprocess.run(  # noqa: S603 - argv built here, no shell
        [tools.buildah, "inspect", "--type", "image", tag], capture_output=True, check=False
    )
    return result.returncode == 0


@contextlib.contextmanager
def working_container(tools: Tools, image: str) -> Iterator[str]:
    container = run([tools.buildah, "from", "--pull=false", "--quiet", image], quiet=True)
    try:
        yield container
    finally:
        subprocess.run(  # noqa: S603 - argv built here, no shell
            [tools.buildah, "rm", container], capture_output=True, check=False
        )


def build_from_scratch(tools: Tools, stand_in: StandIn, mirror: str) -> None:
    with working_container(tools, "scratch") as container:
        root = Path(run([tools.buildah, "mount", container], quiet=True))
        include = ",".join(stand_in.packages)
        debootstrap = [tools.debootstrap, "--variant=minbase", f"--include={include}"]
        run([*debootstrap, SUITE, str(root), mirror], quiet=True)
        for path in TRIM:
            for entry in (root / path).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        run([tools.buildah, "umount", container], quiet=True)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env = ["--env", f"PATH={path}", "--env", "LANG=C.UTF-8"]
        run([tools.buildah, "config", *env, "--cmd", "python3", container], quiet=True)
        run([tools.buildah, "commit", "--quiet", container, stand_in.tag], quiet=True)


def build_on_parent(tools: Tools, stand_in: StandIn, parent: str) -> None:
    install = (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        f"--no-install-recommends {' '.join(stand_in.packages)} >/dev/null && apt-get clean && "
        + " ".join(["rm -rf", *(f"/{path}/*" for path in TRIM)])
    )
    with working_container(tools, parent) as container:
        run([tools.buildah, "run", "--isolation", "chroot", container, "--", "sh", "-c", install])
        run([tools.buildah, "commit", "--quiet", container, stand_in.tag], quiet=True)


def ensure_stand_in(tools: Tools, stand_in: StandIn, mirror: str) -> str:
    """The stand-in's tag, built first (with its parent) unless its recipe's tag is stored."""
    if image_exists(tools, stand_in.tag):
        return stand_in.tag
    started = time.monotonic()
    if stand_in.parent is None:
        build_from_scratch(tools, stand_in, mirror)
    else:
        build_on_parent(tools, stand_in, ensure_stand_in(tools, stand_in.parent, mirror))
    print(f"built stand-in {stand_in.name}: {stand_in.tag} in {time.monotonic() - started:.0f} s")
    return stand_in.tag


def host_ca_volume() -> list[str]:
    """The host's CA bundle over the image's during RUN steps, and only then.

    Where egress goes through a TLS-inspecting proxy, only the host trusts its CA; pip and npm
    in the build need it too. A bind mount leaves no trace in the image's layers.
    """
    cafile = ssl.get_default_verify_paths().openssl_cafile
    if not cafile or not Path(cafile).is_file():
        return []
    return ["--volume", f"{Path(cafile).resolve()}:{CA_BUNDLE}:ro"]


def build_image(tools: Tools, tag: str, bases: dict[str, str], version: str) -> None:
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as make finds it
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    argv = [tools.buildah, "bud", "--isolation", "chroot", "--layers", "--format", "docker"]
    for arg, base in bases.items():
        argv += ["--build-arg", f"{arg}={base}"]
    argv += [
        "--build-arg",
        f"VERSION={version}",
        "--build-arg",
        f"REVISION={revision or 'unknown'}",
    ]
    argv += [*host_ca_volume(), "--tag", tag, str(REPO)]
    run(argv, quiet=True)


@dataclass(frozen=True)
class ImageConfig:
    user: str
    cmd: list[str]
    labels: dict[str, str]
    size: int


def inspect_image(tools: Tools, tag: str) -> ImageConfig:
    info = json.loads(run([tools.buildah, "inspect", "--type", "image", tag], quiet=True))
    config = info["OCIv1"]["config"]
    manifest = json.loads(info["Manifest"])
    return ImageConfig(
        user=config.get("User", ""),
        cmd=list(config.get("Cmd") or []),
        labels=dict(config.get("Labels") or {}),
        size=sum(layer["size"] for layer in manifest["layers"]),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, *, accept: str = "*/*", body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - loopback
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def listening_pid(port: int) -> int:
    """The process listening on 127.0.0.1:port: buildah's chroot shares the host's namespaces."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
    raise CheckFailed(f"no process found listening on port {port}")


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert match, status
    real, effective = int(match.group(1)), int(match.group(2))
    if real != effective:
        raise CheckFailed(f"the gateway runs with uid {real} but effective uid {effective}")
    return real


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    log: Path
    base: str
    pid: int = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_gateway(tools: Tools, container: str, cmd: list[str], log: Path) -> Gateway:
    """The image's CMD as the image's user, on a free loopback port: the chroot shares the
    host's network, where port 8000 may be taken."""
    port = free_port()
    argv = list(cmd)
    if "--host" not in argv or "--port" not in argv:
        raise CheckFailed(f"the image's CMD names no --host and --port: {cmd}")
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            [tools.buildah, "run", "--isolation", "chroot", container, "--", *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(process, log, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailed(f"the image exited {process.returncode}:\n{gateway.output()}")
        with contextlib.suppress(OSError):
            if get(f"{gateway.base}/livez")[0] == 200:
                gateway.pid = listening_pid(port)
                return gateway
        time.sleep(0.2)
    raise CheckFailed(
        f"/livez did not answer 200 within {START_TIMEOUT:.0f} s:\n{gateway.output()}"
    )


def stop_gateway(gateway: Gateway) -> None:
    """SIGTERM to the gateway itself, as Kubernetes sends it to PID 1, and a graceful exit."""
    if gateway.process.poll() is not None:
        raise CheckFailed(f"the image exited {gateway.process.returncode}:\n{gateway.output()}")
    os.kill(gateway.pid, signal.SIGTERM)
    try:
        gateway.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()
        raise CheckFailed(f"the gateway ignored SIGTERM:\n{gateway.output()}") from None
    if "Application shutdown complete" not in gateway.output():
        raise CheckFailed(f"the gateway did not shut down gracefully:\n{gateway.output()}")


def check_graphql(base: str) -> str:
    query = "{ bootSources { id url } bootResources { id name } }"
    status, body = get(
        f"{base}/graphql", accept="application/json", body=json.dumps({"query": query}).encode()
    )
    answer = json.loads(body)
    if status != 200 or "errors" in answer:
        raise CheckFailed(f"GraphQL answered {status}: {body[:1000]!r}")
    sources, resources = answer["data"]["bootSources"], answer["data"]["bootResources"]
    if not sources or not resources:
        raise CheckFailed(f"the simulator's boot sources and resources are missing: {answer}")
    return f"{len(sources)} boot source(s), {len(resources)} boot resource(s)"


def check_page_assets(base: str, page: str) -> str:
    """The page and every asset it loads from /static, vendored ones included, served here."""
    status, body = get(f"{base}{page}", accept="text/html")
    html = body.decode(errors="replace")
    if status != 200:
        raise CheckFailed(f"{page} answered {status}")
    assets = sorted(set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html)))
    if not any("/vendor/" in asset for asset in assets):
        raise CheckFailed(f"{page} loads no vendored asset from /static: {assets}")
    for asset in assets:
        asset_status, content = get(f"{base}{asset}")
        if asset_status != 200 or not content:
            raise CheckFailed(f"{asset} answered {asset_status} with {len(content)} bytes")
    return f"{page}: {len(assets)} assets"


# Run inside the image as its user: whatever under the venv that user may write.
_VENV_PROBE = f"""
import json, os
writable = [os.path.join(d, n) for d, dirs, files in os.walk({VENV!r})
            for n in ['.', *dirs, *files] if os.access(os.path.join(d, n), os.W_OK)]
try:
    open({VENV!r} + '/bin/probe', 'w')
    refused = None
except OSError as error:
    refused = type(error).__name__
print(json.dumps({{"uid": os.getuid(), "writable": writable[:10], "refused": refused}}))
"""


def check_read_only_venv(tools: Tools, container: str) -> str:
    argv = [tools.buildah, "run", "--isolation", "chroot", container, "--", "python", "-c"]
    probe = json.loads(run([*argv, _VENV_PROBE], quiet=True).splitlines()[-1])
    if probe["uid"] != IMAGE_UID or probe["writable"] or probe["refused"] != "PermissionError":
        raise CheckFailed(f"{VENV} is writable by the image's user: {probe}")
    return f"{VENV} not writable by uid {probe['uid']} ({probe['refused']})"


def check_package_version(tools: Tools, container: str, version: str) -> str:
    """The label's version is the installed package's, as `maas-gateway --version` prints it."""
    argv = [tools.buildah, "run", "--isolation", "chroot", container, "--"]
    printed = run([*argv, "maas-gateway", "--version"], quiet=True)
    if printed != f"maas-gateway {version}":
        raise CheckFailed(f"the image's label says {version}, its gateway says {printed!r}")
    return f"`maas-gateway --version` in the image: {printed}"


def check_config(config: ImageConfig, version: str) -> None:
    if config.user != f"{IMAGE_UID}:{IMAGE_UID}":
        raise CheckFailed(f"the image's USER is {config.user!r}, not {IMAGE_UID}:{IMAGE_UID}")
    label = config.labels.get("org.opencontainers.image.version")
    if label != version:
        raise CheckFailed(f"org.opencontainers.image.version is {label!r}, not {version!r}")


def check_running(tools: Tools, tag: str, config: ImageConfig, version: str) -> list[str]:
    """Serve the image's CMD in demo mode and check it; every finding, as one line each."""
    findings = []
    with working_container(tools, tag) as container, tempfile.TemporaryDirectory() as tmp:
        gateway = start_gateway(tools, container, config.cmd, Path(tmp) / "gateway.log")
        try:
            uid = uid_of(gateway.pid)
            if uid != IMAGE_UID:
                raise CheckFailed(f"the gateway runs as uid {uid}, not {IMAGE_UID}")
            findings.append(f"/livez 200; the serving process (pid {gateway.pid}) has uid {uid}")
            findings.append(f"GraphQL: {check_graphql(gateway.base)}")
            findings.append(check_page_assets(gateway.base, "/graphql"))
            findings.append(check_page_assets(gateway.base, "/docs"))
            findings.append(check_read_only_venv(tools, container))
            findings.append(check_package_version(tools, container, version))
            stop_gateway(gateway)
            findings.append("SIGTERM: graceful shutdown")
        finally:
            if gateway.process.poll() is None:
                gateway.process.kill()
                gateway.process.wait()
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="the package version, for the label")
    parser.add_argument("--tag", help="the image's tag (default localhost/maas-gateway:VERSION)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap")
    args = parser.parse_args(argv)
    tag = args.tag or f"localhost/maas-gateway:{args.version}"
    started = time.monotonic()
    try:
        tools = Tools.find()
        wanted = base_image_args((REPO / "Dockerfile").read_text(encoding="utf-8"))
        bases = {arg: ensure_stand_in(tools, STAND_INS[arg], args.mirror) for arg in wanted}
        for arg, base in bases.items():
            print(f"{arg}={base} (for {wanted[arg]})")
        bases_done = time.monotonic()
        build_image(tools, tag, bases, args.version)
        built = time.monotonic()
        print(f"built {tag} in {built - bases_done:.0f} s")
        config = inspect_image(tools, tag)
        check_config(config, args.version)
        findings = check_running(tools, tag, config, args.version)
    except CheckFailed as error:
        print(f"image-check: {error}", file=sys.stderr)
        return 1
    for finding in findings:
        print(f"ok: {finding}")
    print(f"ok: USER {config.user}, org.opencontainers.image.version={args.version}")
    print(
        f"image {tag}: {config.size / 1e6:.0f} MB; stand-in bases {bases_done - started:.0f} s, "
        f"build {built - bases_done:.0f} s, checks {time.monotonic() - built:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
