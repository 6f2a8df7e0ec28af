"""scripts/vendor_assets.py: pinned tarballs verified, each page's files and manifest written,
nothing fetched when current. `npm pack` is stood in for: the registry cannot be made to serve
a tampered tarball. The real fetch runs in the browser tests (tests/browser.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.openapi.docs import get_swagger_ui_html

from tests.browser import load_vendor_module

vendor_assets = load_vendor_module()


def make_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@dataclass
class FakeRegistry:
    """Stands in for `npm pack`: serves local tarballs by package name and counts downloads."""

    tarballs: dict[str, Path]
    downloads: int = 0

    def pack(self, packages: tuple[Any, ...], workdir: Path) -> dict[str, Path]:
        self.downloads += 1
        return {package.name: self.tarballs[package.name] for package in packages}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """Two pages of one package each: `one` (app.js) and `two` (page.css)."""
    tarballs = {
        "pkg-one": make_tarball(tmp_path / "one.tgz", {"package/dist/app.js": b"window.App=1;\n"}),
        "pkg-two": make_tarball(tmp_path / "two.tgz", {"package/page.css": b"body{margin:0}\n"}),
    }
    bundles = (
        vendor_assets.Bundle(
            "one",
            (
                vendor_assets.Package(
                    "pkg-one",
                    "1.0.0",
                    sri(tarballs["pkg-one"]),
                    {"package/dist/app.js": "app.js"},
                ),
            ),
        ),
        vendor_assets.Bundle(
            "two",
            (
                vendor_assets.Package(
                    "pkg-two", "2.0.0", sri(tarballs["pkg-two"]), {"package/page.css": "page.css"}
                ),
            ),
        ),
    )
    fake = FakeRegistry(tarballs)
    monkeypatch.setattr(vendor_assets, "npm_pack", fake.pack)
    monkeypatch.setattr(vendor_assets, "BUNDLES", bundles)
    return fake


def test_vendoring_writes_each_pages_files_and_a_manifest_that_verifies(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    static = tmp_path / "static"

    assert vendor_assets.main(["--static", str(static)]) == 0

    assert (static / "one" / "vendor" / "app.js").read_bytes() == b"window.App=1;\n"
    assert (static / "two" / "vendor" / "page.css").read_bytes() == b"body{margin:0}\n"
    manifest = json.loads((static / "one" / "vendor" / "manifest.json").read_text())
    assert manifest["packages"] == {
        "pkg-one": {"version": "1.0.0", "integrity": sri(registry.tarballs["pkg-one"])}
    }
    assert vendor_assets.main(["--static", str(static), "--check"]) == 0


def test_vendoring_is_a_no_op_when_up_to_date(tmp_path: Path, registry: FakeRegistry) -> None:
    static = tmp_path / "static"
    vendor_assets.main(["--static", str(static)])

    assert vendor_assets.main(["--static", str(static)]) == 0

    assert registry.downloads == 2  # one per page, the first time only


def test_vendoring_fetches_only_the_page_whose_vendored_file_was_altered(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    static = tmp_path / "static"
    vendor_assets.main(["--static", str(static)])
    (static / "two" / "vendor" / "page.css").write_text("tampered")

    assert vendor_assets.main(["--static", str(static), "--check"]) == 1
    assert vendor_assets.main(["--static", str(static)]) == 0

    assert (static / "two" / "vendor" / "page.css").read_bytes() == b"body{margin:0}\n"
    assert registry.downloads == 3


def test_vendoring_refuses_a_tarball_when_it_differs_from_the_pinned_integrity(
    tmp_path: Path, registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    static = tmp_path / "static"
    registry.tarballs["pkg-one"] = make_tarball(
        tmp_path / "evil.tgz", {"package/dist/app.js": b"evil()"}
    )

    assert vendor_assets.main(["--static", str(static)]) == 1

    assert "does not match the pinned" in capsys.readouterr().err
    assert not (static / "one" / "vendor" / "app.js").exists()
    assert not (static / "one" / "vendor" / "manifest.json").exists()
    # The other page is vendored all the same: one report says everything that is wrong.
    assert (static / "two" / "vendor" / "manifest.json").is_file()


def test_swagger_ui_is_the_major_version_fastapis_own_docs_page_loads() -> None:
    # FastAPI tests its /docs page against this major; moving off it is a choice to make.
    default = get_swagger_ui_html(openapi_url="/openapi.json", title="t").body.decode()
    [major] = set(re.findall(r"swagger-ui-dist@(\d+)/", default))
    [package] = vendor_assets.SWAGGER_UI.packages

    assert package.name == "swagger-ui-dist"
    assert package.version.split(".")[0] == major
