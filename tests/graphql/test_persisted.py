"""Persisted documents: Apollo's automatic persisted queries, trusted documents from a manifest,
and the CLI that builds one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli.main import main
from app.graphql.persisted import ManifestError, load_manifest
from tests.gateway import GatewayFactory, bearer, write_tokens

DOCUMENT = "query Sources { bootSources { id url } }"
NEW = {"accept": "application/graphql-response+json"}


def persisted(document: str) -> dict[str, Any]:
    sha256 = hashlib.sha256(document.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert "data" not in body, body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=30)


def test_an_unknown_hash_asks_for_the_text_then_the_hash_alone_runs(
    start_gateway: GatewayFactory,
) -> None:
    url = start_gateway().url
    extensions = persisted(DOCUMENT)
    unknown = post(url, {"extensions": extensions})
    assert unknown.status_code == 200 and code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    assert post(url, {"extensions": extensions}, NEW).status_code == 400
    both = post(url, {"query": DOCUMENT, "extensions": extensions})
    assert both.json()["data"]["bootSources"]
    for _ in range(2):  # the second is a stored answer
        alone = post(url, {"extensions": extensions})
        assert alone.json() == both.json()
    by_get = httpx.get(f"{url}/graphql", params={"extensions": json.dumps(extensions)})
    assert by_get.status_code == 200 and by_get.json() == both.json()
    assert by_get.headers["x-cache"] == "HIT"


def test_a_text_whose_hash_does_not_match_is_refused_and_not_kept(
    start_gateway: GatewayFactory,
) -> None:
    url = start_gateway().url
    extensions = persisted(DOCUMENT)
    wrong = post(url, {"query": "{ bootSources { id } }", "extensions": extensions})
    assert code_of(wrong) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert code_of(post(url, {"extensions": extensions})) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": "abc"},
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "not hex"}},
        {"persistedQuery": {"version": 1}},
    ],
)
def test_a_malformed_persisted_query_is_a_request_error(
    start_gateway: GatewayFactory, extensions: dict[str, Any]
) -> None:
    response = post(start_gateway().url, {"extensions": extensions})
    assert response.status_code == 400 and code_of(response) == "BAD_REQUEST"


def test_persisted_queries_can_be_turned_off(start_gateway: GatewayFactory) -> None:
    url = start_gateway(graphql_persisted_documents="off").url
    response = post(url, {"query": DOCUMENT, "extensions": persisted(DOCUMENT)})
    assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert post(url, {"query": DOCUMENT}).json()["data"]["bootSources"]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    folder = tmp_path / "documents"
    (folder / "nested").mkdir(parents=True)
    (folder / "sources.graphql").write_text(DOCUMENT)
    (folder / "nested" / "resources.graphql").write_text(
        "query Resources { bootResources { ...Named } }\n"
        "fragment Named on BootResource { id name }\n"
    )
    path = tmp_path / "manifest.json"
    assert main(["documents", str(folder), "-o", str(path)]) == 0
    return path


def test_the_cli_builds_a_manifest_apollo_and_the_gateway_read(manifest: Path) -> None:
    built = json.loads(manifest.read_text())
    assert built["format"] == "apollo-persisted-query-manifest" and built["version"] == 1
    by_name = {op["name"]: op for op in built["operations"]}
    assert set(by_name) == {"Sources", "Resources"}
    assert "fragment Named on BootResource" in by_name["Resources"]["body"]
    for op in built["operations"]:
        assert op["id"] == hashlib.sha256(op["body"].encode()).hexdigest()
        assert op["type"] == "query"
    assert set(load_manifest(manifest)) == {op["id"] for op in built["operations"]}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("query Broken { bootSources { id ", "Expected Name"),
        ("query Unknown { noSuchField }", "noSuchField"),
        ("{ bootSources { id } }", "needs a name"),
    ],
)
def test_the_cli_refuses_documents_the_gateway_would_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, complaint: str
) -> None:
    (tmp_path / "bad.graphql").write_text(text)
    assert main(["documents", str(tmp_path), "-o", str(tmp_path / "m.json")]) == 1
    assert complaint in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_a_tampered_manifest_stops_the_gateway_from_starting(manifest: Path) -> None:
    built = json.loads(manifest.read_text())
    built["operations"][0]["body"] += " "
    manifest.write_text(json.dumps(built))
    with pytest.raises(ManifestError, match="not the sha256 of its body"):
        load_manifest(manifest)


def test_trusted_mode_runs_only_the_manifest_unless_admin(
    start_gateway: GatewayFactory, manifest: Path, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", reader="read", boss="read,admin")
    url = start_gateway(
        tokens_file=str(tmp_path / "tokens"),
        graphql_persisted_documents="trusted",
        graphql_trusted_documents=str(manifest),
    ).url
    reader, boss = bearer(tokens["reader"]), bearer(tokens["boss"])
    body = json.loads(manifest.read_text())["operations"][0]["body"]
    by_hash = post(url, {"extensions": persisted(body)}, reader)
    assert by_hash.json()["data"], by_hash.text
    assert post(url, {"query": body}, reader).json()["data"]  # a trusted text is trusted
    free = post(url, {"query": "{ importStatus { importing } }"}, {**reader, **NEW})
    assert free.status_code == 403 and code_of(free) == "TRUSTED_DOCUMENT_REQUIRED"
    registering = "{ importStatus { importing } }"
    sneaky = post(url, {"query": registering, "extensions": persisted(registering)}, reader)
    assert code_of(sneaky) == "TRUSTED_DOCUMENT_REQUIRED"  # no registering in trusted mode
    assert post(url, {"query": registering}, boss).json()["data"]  # the admin scope may
