"""`maas-gateway images apply` end to end: a YAML file through a running gateway into the
simulator; plan, dry run, apply with --wait, prune, a second apply with no changes, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli.main import main
from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import maas_call, reset_counts, set_simulator_config, upstream_counts

STABLE = "http://images.maas.io/ephemeral-v3/stable/"
DECLARED = f"""\
boot-sources:
  - url: {STABLE}
    keyring-filename: /usr/share/keyrings/ubuntu-cloudimage-keyring.gpg
    selections:
      - {{os: ubuntu, release: jammy, arches: [amd64, arm64]}}
      - {{os: ubuntu, release: focal, arches: [amd64]}}
"""


def maas_selections(simulator: BackgroundServer) -> set[tuple[str, str, tuple[str, ...]]]:
    async def read(maas: Any) -> list[Any]:
        sources = await maas.list_boot_sources()
        source = next(s for s in sources if s.url == STABLE)
        return list(await maas.list_boot_source_selections(source.id))

    return {(s.os, s.release, tuple(s.arches)) for s in maas_call(simulator.url, ADMIN_KEY, read)}


def writes(simulator: BackgroundServer) -> dict[str, int]:
    return {k: n for k, n in upstream_counts(simulator.url).items() if not k.startswith("GET ")}


def apply(file: Path, gateway: BackgroundServer, *options: str) -> int:
    return main(["images", "apply", str(file), "--gateway", gateway.url, *options])


@pytest.fixture
def declared(tmp_path: Path) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(DECLARED)
    return path


def test_plan_then_apply_with_wait_then_no_changes(
    gateway: BackgroundServer,
    simulator: BackgroundServer,
    declared: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = maas_selections(simulator)
    reset_counts(simulator.url)
    assert apply(declared, gateway, "--dry-run") == 0
    planned = capsys.readouterr().out
    assert "+ create selection ubuntu/focal" in planned
    assert maas_selections(simulator) == before and writes(simulator) == {}

    assert apply(declared, gateway, "--wait") == 0
    applied = capsys.readouterr()
    assert "applied" in applied.out and "images complete" in applied.out
    assert "ubuntu/focal amd64/generic" in applied.err  # its progress bar
    assert ("ubuntu", "focal", ("amd64",)) in maas_selections(simulator)

    reset_counts(simulator.url)
    assert apply(declared, gateway) == 0
    assert capsys.readouterr().out.strip() == "no changes"
    assert writes(simulator) == {}


def test_prune_deletes_what_the_file_leaves_out(
    gateway: BackgroundServer,
    simulator: BackgroundServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # jammy stays: MAAS refuses to delete the commissioning release's selection (maas-api.md §7.2).
    only = tmp_path / "only.yaml"
    only.write_text(
        f"boot-sources:\n  - url: {STABLE}\n    selections:\n"
        "      - {os: ubuntu, release: jammy, arches: [amd64, arm64]}\n"
        "      - {os: ubuntu, release: focal}\n"
    )
    before = maas_selections(simulator)
    assert apply(only, gateway, "--prune") == 0
    out = capsys.readouterr().out
    left_out = {(os, release) for os, release, _ in before} - {("ubuntu", "jammy")}
    assert left_out and all(f"- delete selection {o}/{r}" in out for o, r in left_out)
    assert maas_selections(simulator) == {
        ("ubuntu", "jammy", ("amd64", "arm64")),
        ("ubuntu", "focal", ("*",)),
    }


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "boot-sources:\n  - url: x\n    selections:\n      - {os: ubuntu}\n",
            ":4: boot-sources.0.selections.0.release",
        ),
        ("boot-sources:\n  - url: x\n    colour: red\n", ":3: boot-sources.0.colour"),
        ("boot-sources:\n  - url: [oops\n", ":3: not YAML"),
        ("sources: []\n", ":1: boot-sources"),
        (
            "boot-sources:\n  - url: x\n    selections:\n      - {os: a, release: b}\n"
            "      - {os: a, release: b}\n",
            "declared twice: a/b",
        ),
    ],
)
def test_a_malformed_file_names_its_line_and_changes_nothing(
    gateway: BackgroundServer,
    simulator: BackgroundServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    said: str,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    reset_counts(simulator.url)
    assert apply(bad, gateway) != 0
    assert said in capsys.readouterr().err
    assert upstream_counts(simulator.url) == {}  # not even a read


def test_wait_fails_when_the_images_do_not_complete_in_time(
    gateway: BackgroundServer,
    simulator: BackgroundServer,
    declared: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_simulator_config(simulator.url, import_duration_s=3600)
    assert apply(declared, gateway, "--wait", "--timeout", "0.5") != 0
    assert "not complete after 0.5 s" in capsys.readouterr().err


def test_the_same_plan_is_offered_over_rest_and_graphql(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    document = {
        "boot-sources": [{"url": STABLE, "selections": [{"os": "ubuntu", "release": "focal"}]}]
    }
    rest = httpx.post(
        f"{gateway.url}/api/v1/images/apply", params={"dry_run": "true"}, json=document, timeout=30
    ).json()
    assert rest["applied"] is False and [s["action"] for s in rest["plan"]] == ["create"]
    mutation = """mutation($input: ImagesInput!) { applyImages(input: $input) {
      plan { action selection description } applied importStarted errors { message } } }"""
    variables = {
        "input": {
            "bootSources": [{"url": STABLE, "selections": [{"os": "ubuntu", "release": "focal"}]}]
        }
    }
    answer = httpx.post(
        f"{gateway.url}/graphql", json={"query": mutation, "variables": variables}, timeout=30
    ).json()["data"]["applyImages"]
    assert answer["errors"] == [] and answer["applied"] is True and answer["importStarted"]
    assert [s["selection"] for s in answer["plan"]] == ["ubuntu/focal"]
    assert ("ubuntu", "focal", ("*",)) in maas_selections(simulator)
    again = httpx.post(f"{gateway.url}/api/v1/images/apply", json=document, timeout=30).json()
    assert again == {"plan": [], "applied": False, "import_started": False}
