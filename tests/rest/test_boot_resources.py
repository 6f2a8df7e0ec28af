"""REST boot-resource reads, deletes and import control against the simulator."""

from __future__ import annotations

import time

import httpx

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import maas_call, reset_counts, upstream_counts
from tests.rest.conftest import envelope

RESOURCE_KEYS = {
    "id",
    "type",
    "name",
    "os",
    "release",
    "architecture",
    "subarches",
    "title",
    "base_image",
    "last_deployed",
    "complete",
}


def test_list_boot_resources_returns_clean_shallow_resources(api: httpx.Client) -> None:
    response = api.get("/boot-resources")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    resources = response.json()
    assert resources
    for resource in resources:
        assert set(resource) == RESOURCE_KEYS, resource
        assert resource["type"] in {"synced", "uploaded", "generated"}
        assert "/" in resource["architecture"]
        assert resource["complete"] is None
    assert "resource_uri" not in response.text
    assert "upload_uri" not in response.text


def test_list_boot_resources_matches_maas(api: httpx.Client, simulator: BackgroundServer) -> None:
    upstream = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    listed = api.get("/boot-resources").json()
    assert sorted(r["id"] for r in listed) == sorted(r.id for r in upstream)


def test_list_boot_resources_filters_by_type_case_insensitively(api: httpx.Client) -> None:
    for value in ("uploaded", "UPLOADED", "Uploaded"):
        resources = api.get("/boot-resources", params={"type": value}).json()
        assert resources
        assert {r["type"] for r in resources} == {"uploaded"}
    synced = api.get("/boot-resources", params={"type": "Synced"}).json()
    assert synced and {r["type"] for r in synced} == {"synced"}
    everything = api.get("/boot-resources", params={"type": "all"}).json()
    assert len(everything) == len(api.get("/boot-resources").json())


def test_list_boot_resources_filters_by_os_release_architecture_and_name(
    api: httpx.Client,
) -> None:
    everything = api.get("/boot-resources").json()
    synced = next(r for r in everything if r["type"] == "synced" and r["os"] == "ubuntu")
    by_os = api.get("/boot-resources", params={"os": "ubuntu"}).json()
    assert by_os and {r["os"] for r in by_os} == {"ubuntu"}
    by_release = api.get(
        "/boot-resources", params={"os": "ubuntu", "release": synced["release"]}
    ).json()
    assert {r["release"] for r in by_release} == {synced["release"]}
    arch = synced["architecture"].split("/")[0]
    by_arch = api.get("/boot-resources", params={"architecture": arch}).json()
    assert by_arch and all(r["architecture"].startswith(f"{arch}/") for r in by_arch)
    exact = api.get("/boot-resources", params={"architecture": synced["architecture"]}).json()
    assert {r["architecture"] for r in exact} == {synced["architecture"]}
    by_name = api.get("/boot-resources", params={"name": synced["name"]}).json()
    assert by_name and {r["name"] for r in by_name} == {synced["name"]}


def test_list_boot_resources_rejects_an_unknown_type_without_calling_maas(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    response = api.get("/boot-resources", params={"type": "bogus"})
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "type" in error["details"]["fields"]
    assert upstream_counts(simulator.url) == {}


def test_list_boot_resources_with_expand_sets_includes_sets_and_files(api: httpx.Client) -> None:
    resources = api.get("/boot-resources", params={"expand": "sets", "type": "uploaded"}).json()
    assert resources
    for resource in resources:
        assert resource["sets"], resource
        versions = [s["version"] for s in resource["sets"]]
        assert versions == sorted(versions, reverse=True), "newest set first"
        assert resource["complete"] is resource["sets"][0]["complete"]
        for item in resource["sets"]:
            assert set(item) == {"id", "version", "label", "size", "complete", "progress", "files"}
            assert item["id"] == f"{resource['id']}/{item['version']}"
            for file in item["files"]:
                assert set(file) == {
                    "id",
                    "filename",
                    "filetype",
                    "size",
                    "sha256",
                    "complete",
                    "progress",
                }


def test_list_with_expand_sets_is_refused_when_it_exceeds_the_fanout_limit(
    start_gateway, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(max_fanout=2)
    response = httpx.get(f"{gateway.url}/api/v1/boot-resources", params={"expand": "sets"})
    assert response.status_code == 413
    error = envelope(response)
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert error["details"]["limit"] == 2
    narrowed = httpx.get(
        f"{gateway.url}/api/v1/boot-resources",
        params={"expand": "sets", "name": "alma9"},
    )
    assert narrowed.status_code == 200


def test_get_boot_resource_includes_sets_and_files(api: httpx.Client) -> None:
    listed = api.get("/boot-resources", params={"type": "uploaded"}).json()
    response = api.get(f"/boot-resources/{listed[0]['id']}")
    assert response.status_code == 200
    resource = response.json()
    assert set(resource) == RESOURCE_KEYS | {"sets"}
    assert resource["id"] == listed[0]["id"]
    assert resource["sets"][0]["files"][0]["sha256"]
    assert "upload_uri" not in response.text and "resource_uri" not in response.text


def test_get_boot_resource_of_an_unknown_id_is_not_found(api: httpx.Client) -> None:
    response = api.get("/boot-resources/987654")
    assert response.status_code == 404
    assert envelope(response)["code"] == "NOT_FOUND"


def test_bad_resource_ids_are_rejected_without_calling_maas(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    for bad_id in ("abc", "0", "-3", "1.5", "99999999999999999999999"):
        for method in ("GET", "DELETE"):
            response = api.request(method, f"/boot-resources/{bad_id}")
            assert response.status_code == 400, (bad_id, method, response.text)
            error = envelope(response)
            assert error["code"] == "VALIDATION"
            assert "resource_id" in error["details"]["fields"]
    assert upstream_counts(simulator.url) == {}


def test_delete_boot_resource_removes_it(api: httpx.Client, simulator: BackgroundServer) -> None:
    victim = api.get("/boot-resources", params={"type": "uploaded"}).json()[0]
    api.get(f"/boot-resources/{victim['id']}")  # cached now
    response = api.delete(f"/boot-resources/{victim['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert victim["id"] not in {r["id"] for r in api.get("/boot-resources").json()}
    assert api.get(f"/boot-resources/{victim['id']}").status_code == 404
    upstream = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    assert victim["id"] not in {r.id for r in upstream}
    again = api.delete(f"/boot-resources/{victim['id']}")
    assert again.status_code == 404
    assert envelope(again)["code"] == "NOT_FOUND"


def test_import_routes_are_not_taken_for_resource_ids(api: httpx.Client) -> None:
    status = api.get("/boot-resources/import")
    assert status.status_code == 200
    assert set(status.json()) == {"importing", "incomplete"}


def test_start_and_stop_import_change_the_import_status(api: httpx.Client) -> None:
    assert api.get("/boot-resources/import").json()["importing"] is False
    started = api.post("/boot-resources/import")
    assert (started.status_code, started.json()) == (202, {"importing": True})
    during = api.get("/boot-resources/import").json()
    assert during["importing"] is True
    assert during["incomplete"], "an import makes the newest synced sets incomplete"
    assert all(r["sets"] and r["complete"] is False for r in during["incomplete"])
    stopped = api.delete("/boot-resources/import")
    assert (stopped.status_code, stopped.json()) == (202, {"importing": False})
    assert api.get("/boot-resources/import").json()["importing"] is False


def test_stop_import_also_answers_post(api: httpx.Client) -> None:
    api.post("/boot-resources/import")
    stopped = api.post("/boot-resources/import/stop")
    assert (stopped.status_code, stopped.json()) == (202, {"importing": False})
    assert api.get("/boot-resources/import").json()["importing"] is False


def test_import_completes_and_the_status_follows(start_gateway) -> None:
    # Short TTLs all round: resource entries read during the import must not outlive it.
    gateway = start_gateway(
        cache_ttl_import_status=0.2,
        cache_ttl_while_importing=0.2,
        cache_ttl_boot_resources=0.2,
        cache_ttl_boot_resource=0.2,
    )
    with httpx.Client(base_url=f"{gateway.url}/api/v1") as api:
        api.post("/boot-resources/import")
        deadline = time.monotonic() + 15
        status: dict = {}
        while time.monotonic() < deadline:
            status = api.get("/boot-resources/import").json()
            if not status["importing"]:
                break
            time.sleep(0.2)
    assert status == {"importing": False, "incomplete": []}
