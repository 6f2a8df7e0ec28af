"""describe/, version/, the API version switch, and the routing rules around them."""

from __future__ import annotations

import httpx

from app.cli.server import BackgroundServer

from .helpers import Maas


def test_describe_is_anonymous_exact_json_with_boot_handlers(simulator: BackgroundServer) -> None:
    response = httpx.get(f"{simulator.url}/MAAS/api/2.0/describe/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert set(document) == {"doc", "hash", "resources", "handlers"}
    assert document["doc"] == "MAAS API"
    names = {resource["name"] for resource in document["resources"]}
    assert {
        "BootResourcesHandler",
        "BootResourceHandler",
        "BootSourcesHandler",
        "BootSourceHandler",
        "BootSourceSelectionsHandler",
        "BootSourceSelectionHandler",
    } <= names
    # ≤3.7 hides the upload handler (maas-api.md §1.2).
    assert "BootResourceFileUploadHandler" not in names
    for resource in document["resources"]:
        assert set(resource) == {"name", "anon", "auth"}


def test_describe_handlers_carry_params_path_absolute_uri_and_actions(
    simulator: BackgroundServer,
) -> None:
    response = httpx.get(
        f"{simulator.url}/MAAS/api/2.0/describe/", headers={"Host": "maas.example:5240"}
    )

    by_name = {r["name"]: r for r in response.json()["resources"]}
    selection = by_name["BootSourceSelectionHandler"]["auth"]
    assert by_name["BootSourceSelectionHandler"]["anon"] is None
    assert selection["params"] == ["boot_source_id", "id"]
    assert selection["path"] == "/MAAS/api/2.0/boot-sources/{boot_source_id}/selections/{id}/"
    assert selection["uri"] == (
        "http://maas.example:5240/MAAS/api/2.0/boot-sources/{boot_source_id}/selections/{id}/"
    )
    assert [(a["name"], a["method"], a["op"], a["restful"]) for a in selection["actions"]] == [
        ("delete", "DELETE", None, True),
        ("read", "GET", None, True),
        ("update", "PUT", None, True),
    ]
    resources = by_name["BootResourcesHandler"]["auth"]
    assert {(a["name"], a["method"], a["op"]) for a in resources["actions"]} == {
        ("create", "POST", None),
        ("import", "POST", "import"),
        ("is_importing", "GET", "is_importing"),
        ("read", "GET", None),
        ("stop_import", "POST", "stop_import"),
    }
    version = by_name["VersionHandler"]
    assert version["auth"] is None
    assert version["anon"]["path"] == "/MAAS/api/2.0/version/"


def test_api_responses_carry_the_describe_hash_and_vary(admin: Maas) -> None:
    document = admin.get("describe/").json()

    response = admin.get("boot-resources/")

    assert response.headers["x-maas-api-hash"] == document["hash"]
    assert response.headers["vary"] == "Authorization"


def test_version_is_anonymous_and_lists_capabilities(anon: Maas) -> None:
    response = anon.get("version/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert "authenticate-api" in body["capabilities"]
    assert body["version"].startswith("3.5.")
    assert body["subversion"] == ""


def test_api_version_switch_answers_2_0_as_text(anon: Maas) -> None:
    response = anon.get("/MAAS/api/version/")

    assert response.status_code == 200
    assert response.text == "2.0"
    assert response.headers["content-type"].startswith("text/plain")


def test_api_1_0_is_gone(anon: Maas) -> None:
    response = anon.get("/MAAS/api/1.0/nodes/")

    assert response.status_code == 410
    assert response.text == "The 1.0 API is no longer available. Please use API version 2.0."


def test_missing_trailing_slash_is_unknown_endpoint(admin: Maas) -> None:
    response = admin.get("/MAAS/api/2.0/boot-resources")

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Unknown API endpoint: /MAAS/api/2.0/boot-resources."


def test_unknown_path_under_api_is_unknown_endpoint(anon: Maas) -> None:
    response = anon.get("/MAAS/api/2.0/no-such-thing/")

    assert response.status_code == 404
    assert response.text == "Unknown API endpoint: /MAAS/api/2.0/no-such-thing/."
