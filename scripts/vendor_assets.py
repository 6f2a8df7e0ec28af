"""Vendor the browser pages' assets (GraphiQL, Swagger UI) from the npm registry into app/static."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each bundle's registry files go to <static>/<bundle>/vendor/ (not committed); the gateway's
# own boot.js and boot.css sit one level up.
DEFAULT_STATIC = Path(__file__).resolve().parent.parent / "app" / "static"
MANIFEST = "manifest.json"
SCRIPT = "scripts/vendor_assets.py"


@dataclass(frozen=True)
class Package:
    """One pinned npm tarball and the files taken from it (tarball member -> vendored name)."""

    name: str
    version: str
    # The registry's dist.integrity, pinned so a mirror cannot substitute a different tarball.
    integrity: str
    files: dict[str, str]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Bundle:
    """The packages one page loads, vendored together into <static>/<name>/vendor/."""

    name: str
    packages: tuple[Package, ...]

    def dest(self, static: Path) -> Path:
        return static / self.name / "vendor"


# The versions strawberry-graphql 0.341's own GraphiQL page loads from unpkg.
GRAPHIQL = Bundle(
    "graphiql",
    (
        Package(
            "react",
            "18.2.0",
            "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
            {"package/umd/react.production.min.js": "react.production.min.js"},
        ),
        Package(
            "react-dom",
            "18.2.0",
            "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
            {"package/umd/react-dom.production.min.js": "react-dom.production.min.js"},
        ),
        Package(
            "graphiql",
            "3.8.3",
            "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
            {
                "package/graphiql.min.js": "graphiql.min.js",
                "package/graphiql.min.css": "graphiql.min.css",
            },
        ),
        Package(
            "@graphiql/plugin-explorer",
            "1.0.2",
            "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
            {
                "package/dist/index.umd.js": "plugin-explorer.umd.js",
                "package/dist/style.css": "plugin-explorer.css",
            },
        ),
    ),
)

# FastAPI 0.165's own /docs page loads swagger-ui-dist@5 from a CDN; this is a 5.x pinned. The
# licences travel with the code (Apache-2.0 asks for LICENSE and NOTICE; the .txt lists what
# the bundle includes).
SWAGGER_UI = Bundle(
    "swagger-ui",
    (
        Package(
            "swagger-ui-dist",
            "5.36.0",
            "sha512-Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A==",
            {
                "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
                "package/swagger-ui.css": "swagger-ui.css",
                "package/favicon-32x32.png": "favicon-32x32.png",
                "package/LICENSE": "LICENSE",
                "package/NOTICE": "NOTICE",
                "package/swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
            },
        ),
    ),
)

BUNDLES = (GRAPHIQL, SWAGGER_UI)


class VendorError(Exception):
    """The assets could not be fetched, verified or written."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def wanted_packages(packages: tuple[Package, ...]) -> dict[str, dict[str, str]]:
    return {p.name: {"version": p.version, "integrity": p.integrity} for p in packages}


def read_manifest(dest: Path) -> dict[str, object] | None:
    try:
        manifest = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_up_to_date(dest: Path, packages: tuple[Package, ...]) -> bool:
    """True when the manifest pins exactly these packages and every file still matches it."""
    manifest = read_manifest(dest)
    if manifest is None or manifest.get("packages") != wanted_packages(packages):
        return False
    files = manifest.get("files")
    expected_names = {name for p in packages for name in p.files.values()}
    if not isinstance(files, dict) or set(files) != expected_names:
        return False
    for name, digest in files.items():
        path = dest / name
        if not path.is_file() or sha256_of(path) != digest:
            return False
    return True


def npm_registry(npm: str, env: dict[str, str]) -> str:
    """The registry npm uses here (user/global .npmrc or NPM_CONFIG_REGISTRY), for messages."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [npm, "config", "get", "registry"], env=env, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "the configured npm registry"


def npm_pack(packages: tuple[Package, ...], workdir: Path) -> dict[str, Path]:
    """Download the tarballs with `npm pack`, which honours the machine's npm registry and auth."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH; it is needed to fetch the assets from the registry")
    env = {
        **os.environ,
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    command = [npm, "pack", *(p.spec for p in packages)]
    command += ["--pack-destination", str(workdir), "--ignore-scripts", "--json"]
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command, cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=600
        )
    except subprocess.TimeoutExpired:
        raise VendorError(f"npm pack from {npm_registry(npm, env)} timed out") from None
    if result.returncode != 0:
        raise VendorError(
            f"npm pack from {npm_registry(npm, env)} failed ({result.returncode}):\n"
            f"{result.stderr.strip()}"
        )
    try:
        entries = json.loads(result.stdout)
        tarballs = {e["name"]: workdir / e["filename"] for e in entries}
    except (ValueError, KeyError, TypeError) as error:
        raise VendorError(f"unexpected npm pack output: {result.stdout[:500]!r}") from error
    missing = [p.name for p in packages if p.name not in tarballs]
    if missing:
        raise VendorError(f"npm pack did not return {', '.join(missing)}")
    return tarballs


def extract(package: Package, tarball: Path, staging: Path) -> None:
    """Verify the tarball against the pinned integrity, then copy out only the wanted files."""
    actual = sri_sha512(tarball)
    if actual != package.integrity:
        raise VendorError(
            f"{package.spec}: tarball integrity {actual} does not match the pinned "
            f"{package.integrity}; the registry served a different package"
        )
    with tarfile.open(tarball, "r:gz") as archive:
        for member_name, vendored_name in package.files.items():
            try:
                member = archive.getmember(member_name)
            except KeyError:
                raise VendorError(f"{package.spec} has no {member_name}") from None
            source = archive.extractfile(member) if member.isfile() else None
            if source is None:
                raise VendorError(f"{package.spec}: {member_name} is not a regular file")
            # Written by name rather than extracted, so the archive cannot choose paths.
            with source, (staging / vendored_name).open("wb") as target:
                shutil.copyfileobj(source, target)


def vendor(dest: Path, packages: tuple[Package, ...]) -> None:
    """Fetch, verify and install the assets; each file is replaced atomically, the manifest last."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vendor-assets-") as tmp:
        workdir = Path(tmp)
        staging = workdir / "staging"
        staging.mkdir()
        tarballs = npm_pack(packages, workdir)
        for package in packages:
            extract(package, tarballs[package.name], staging)
        files = {path.name: sha256_of(path) for path in sorted(staging.iterdir())}
        previous = read_manifest(dest) or {}
        for name in files:
            partial = dest / f".{name}.tmp"
            shutil.copyfile(staging / name, partial)
            partial.replace(dest / name)
    # Files an older manifest vendored but this one does not are stale.
    old_files = previous.get("files")
    if isinstance(old_files, dict):
        for name in set(old_files) - set(files):
            (dest / name).unlink(missing_ok=True)
    manifest = {"packages": wanted_packages(packages), "files": files}
    # The manifest is written last: a half-finished run is never taken as "up to date".
    partial = dest / f".{MANIFEST}.tmp"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(dest / MANIFEST)


def vendor_bundle(bundle: Bundle, static: Path, *, check: bool, force: bool) -> bool:
    """Bring one bundle up to date (or, with `check`, only say whether it is); True if it is."""
    dest = bundle.dest(static)
    if not force and is_up_to_date(dest, bundle.packages):
        print(f"{bundle.name} assets in {dest} are up to date")
        return True
    if check:
        print(f"{bundle.name} assets in {dest} are missing or stale; run {SCRIPT}", file=sys.stderr)
        return False
    try:
        vendor(dest, bundle.packages)
    except (VendorError, OSError) as error:
        print(f"vendor_assets: {bundle.name}: {error}", file=sys.stderr)
        return False
    if not is_up_to_date(dest, bundle.packages):
        print(f"vendor_assets: {dest} does not verify after writing", file=sys.stderr)
        return False
    print(f"vendored {', '.join(p.spec for p in bundle.packages)} into {dest}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--static",
        type=Path,
        default=DEFAULT_STATIC,
        help="the static directory; each bundle goes to <static>/<bundle>/vendor/",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report whether the vendored assets are current (exit 1 if not)",
    )
    parser.add_argument(
        "--force", action="store_true", help="fetch again even when the assets are current"
    )
    args = parser.parse_args(argv)
    # Every bundle is tried, so one report names everything that is wrong.
    results = [
        vendor_bundle(bundle, args.static, check=args.check, force=args.force) for bundle in BUNDLES
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
