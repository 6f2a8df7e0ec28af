"""The committed OpenAPI document passes third-party linters (Spectral's `spectral:oas` and
Redocly's recommended rules, tests/rest/tools, locked) with no finding of any severity, and
refuses what the server refuses."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

TOOLS = Path(__file__).parent / "tools"
DOCUMENT = Path(__file__).parents[2] / "openapi" / "openapi.json"


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("node"), "Node.js is needed for the OpenAPI linters (.ci/run installs it)"
    tool = TOOLS / "node_modules" / ".bin" / name
    assert tool.exists(), "run `make openapi-tools` (make test does) first"
    # No telemetry and no update check: the linters talk to nothing.
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    return subprocess.run(
        [str(tool), *args], cwd=TOOLS, env=env, capture_output=True, text=True, timeout=120
    )


def test_spectral_finds_nothing_in_the_openapi_document(tmp_path: Path) -> None:
    report = tmp_path / "spectral.json"
    args = ["-r", ".spectral.yaml", "-f", "json", "-o", str(report), "--fail-severity", "hint"]
    done = run_tool("spectral", "lint", *args, str(DOCUMENT))
    assert report.exists(), f"spectral wrote no report:\n{done.stdout}{done.stderr}"
    findings: list[dict[str, Any]] = json.loads(report.read_text())
    shown = [f"{'.'.join(map(str, f['path']))}: {f['code']}: {f['message']}" for f in findings]
    assert not shown, "\n".join(shown)
    assert done.returncode == 0, done.stderr


def test_redocly_finds_nothing_in_the_openapi_document() -> None:
    done = run_tool(
        "redocly", "lint", "--config", "redocly.yaml", "--format", "json", str(DOCUMENT)
    )
    report: dict[str, Any] = json.loads(done.stdout)
    shown = [
        f"{p['location'][0]['pointer']}: {p['ruleId']} ({p['severity']}): {p['message']}"
        for p in report["problems"]
    ]
    assert report["totals"]["errors"] == report["totals"]["warnings"] == 0, "\n".join(shown)
    assert done.returncode == 0, done.stderr


def document_accepts(*pointer: str, instance: object) -> bool:
    """Whether `instance` is valid against the schema at `pointer` in the document, whose
    $refs resolve against the document itself."""
    document = json.loads(DOCUMENT.read_text())
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
    validator = Draft202012Validator({"$ref": f"urn:openapi#/{escaped}"}, registry=registry)
    return validator.is_valid(instance)


CREATE_SOURCE = ("paths", "/api/v1/boot-sources", "post", "requestBody", "content")
CREATE_SOURCE_BODY = (*CREATE_SOURCE, "application/json", "schema")


KEYRING = base64.b64encode(b"\x99\x01\x0dkeyring").decode()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"url": "http://a.example.com/", "keyring_filename": "/k.gpg"}, 201),
        ({"url": "http://b.example.com/", "keyring_data": KEYRING}, 201),
        ({"url": "http://c.example.com/", "keyring_filename": "/k.gpg", "keyring_data": ""}, 201),
        ({"url": "http://d.example.com/", "keyring_filename": None, "keyring_data": KEYRING}, 201),
        # MAAS verifies no keyring for a JSON index.
        ({"url": "http://e.example.com/streams/v1/index.json"}, 201),
        ({"url": "http://f.example.com/"}, 400),
        ({"url": "http://g.example.com/", "keyring_filename": "", "keyring_data": None}, 400),
        (
            {"url": "http://h.example.com/", "keyring_filename": "/k.gpg", "keyring_data": KEYRING},
            400,
        ),
        ({"url": "http://i.example.com/", "keyring_data": "not base64!"}, 400),
        ({"url": "http://j.example.com/", "keyring_data": "QUI"}, 400),
        ({"url": "http://k.example.com/", "keyring_data": "QUJD\n"}, 400),
        ({"url": "http://l.example.com/" + "x" * 200, "keyring_filename": "/k.gpg"}, 400),
    ],
)
def test_a_boot_source_the_document_refuses_is_refused(
    api: httpx.Client, body: dict[str, Any], status: int
) -> None:
    assert document_accepts(*CREATE_SOURCE_BODY, instance=body) is (status == 201)
    response = api.post("/boot-sources", json=body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(("token", "status"), [("uploaded", 200), ("all", 200), ("generated", 400)])
def test_a_resource_type_the_document_refuses_is_refused(
    api: httpx.Client, token: str, status: int
) -> None:
    operation = json.loads(DOCUMENT.read_text())["paths"]["/api/v1/boot-resources"]["get"]
    (index,) = [i for i, p in enumerate(operation["parameters"]) if p["name"] == "type"]
    where = ("paths", "/api/v1/boot-resources", "get", "parameters", str(index), "schema")
    assert document_accepts(*where, instance=token) is (status == 200)
    assert api.get("/boot-resources", params={"type": token}).status_code == status
