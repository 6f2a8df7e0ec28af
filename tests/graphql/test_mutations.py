"""GraphQL mutations against the simulator: results, typed errors and exact cache invalidation."""

from __future__ import annotations

import base64
import time

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gql, maas_call

SOURCES = "{ bootSources { id url keyringFilename keyringData selections { id os release } } }"

CREATE_SOURCE = """
mutation($input: CreateBootSourceInput!) {
  createBootSource(input: $input) {
    bootSource { id url keyringFilename keyringData }
    errors { code field message }
  }
}
"""


def data(response_json: dict) -> dict:
    assert "errors" not in response_json, response_json
    return response_json["data"]


def sources(url: str) -> list[dict]:
    return data(gql(url, SOURCES).json())["bootSources"]


def test_create_boot_source_with_keyring_bytes_shows_up_at_once(gateway: BackgroundServer) -> None:
    before = sources(gateway.url)  # now cached, entity and response
    keyring = b"\x99\x01\rfake-gpg-keyring\x00\xff"
    result = data(
        gql(
            gateway.url,
            CREATE_SOURCE,
            {
                "input": {
                    "url": "http://mirror.example.com/images/",
                    "keyringData": base64.b64encode(keyring).decode(),
                }
            },
        ).json()
    )["createBootSource"]
    assert result["errors"] == []
    created = result["bootSource"]
    assert base64.b64decode(created["keyringData"]) == keyring
    after = sources(gateway.url)
    assert len(after) == len(before) + 1
    assert created["id"] in {s["id"] for s in after}


def test_create_boot_source_validation_comes_back_per_field(gateway: BackgroundServer) -> None:
    url = sources(gateway.url)[0]["url"]
    duplicate = data(
        gql(
            gateway.url,
            CREATE_SOURCE,
            {"input": {"url": url, "keyringFilename": "/usr/share/keyrings/k.gpg"}},
        ).json()
    )["createBootSource"]
    assert duplicate["bootSource"] is None
    assert duplicate["errors"][0]["code"] == "VALIDATION"
    assert duplicate["errors"][0]["field"] == "url"
    neither = data(
        gql(gateway.url, CREATE_SOURCE, {"input": {"url": "http://x.example.com/"}}).json()
    )["createBootSource"]
    assert neither["errors"][0]["field"] is None
    assert "keyring" in neither["errors"][0]["message"]


def test_invalid_base64_keyring_is_rejected_before_maas(gateway: BackgroundServer) -> None:
    result = data(
        gql(
            gateway.url,
            CREATE_SOURCE,
            {"input": {"url": "http://y.example.com/", "keyringData": "not base64!"}},
        ).json()
    )["createBootSource"]
    assert result["errors"] == [
        {"code": "VALIDATION", "field": "keyringData", "message": "must be base64"}
    ]


def test_update_and_delete_boot_source_invalidate_reads(gateway: BackgroundServer) -> None:
    created = data(
        gql(
            gateway.url,
            CREATE_SOURCE,
            {"input": {"url": "http://z.example.com/", "keyringFilename": "/k.gpg"}},
        ).json()
    )["createBootSource"]["bootSource"]
    one = "query($id: ID!) { bootSource(id: $id) { url keyringFilename } }"
    variables = {"id": str(created["id"])}
    assert data(gql(gateway.url, one, variables).json())["bootSource"]["url"] == created["url"]
    updated = data(
        gql(
            gateway.url,
            """mutation($id: ID!) { updateBootSource(id: $id, input: {url: "http://w.example.com/"})
                 { bootSource { url keyringFilename } errors { message } } }""",
            variables,
        ).json()
    )["updateBootSource"]
    assert updated["bootSource"] == {"url": "http://w.example.com/", "keyringFilename": "/k.gpg"}
    assert data(gql(gateway.url, one, variables).json())["bootSource"]["url"] == (
        "http://w.example.com/"
    )
    deleted = data(
        gql(
            gateway.url,
            "mutation($id: ID!) { deleteBootSource(id: $id) { deletedId errors { code } } }",
            variables,
        ).json()
    )["deleteBootSource"]
    assert deleted == {"deletedId": created["id"], "errors": []}
    assert data(gql(gateway.url, one, variables).json())["bootSource"] is None
    assert created["id"] not in {s["id"] for s in sources(gateway.url)}
    again = data(
        gql(
            gateway.url,
            "mutation($id: ID!) { deleteBootSource(id: $id) { deletedId errors { code } } }",
            variables,
        ).json()
    )["deleteBootSource"]
    assert again == {"deletedId": None, "errors": [{"code": "NOT_FOUND"}]}


def test_selection_mutations_show_in_the_source_at_once(gateway: BackgroundServer) -> None:
    source = next(s for s in sources(gateway.url) if "images.maas.io" in s["url"])
    existing = {(s["os"], s["release"]) for s in source["selections"]}
    release = next(r for r in ("focal", "noble", "jammy") if ("ubuntu", r) not in existing)
    created = data(
        gql(
            gateway.url,
            """mutation($sid: ID!, $release: String!) {
                 createBootSourceSelection(bootSourceId: $sid,
                   input: {os: "ubuntu", release: $release, arches: ["amd64", "arm64"]}) {
                   bootSourceSelection { id os release arches labels bootSource { id } }
                   errors { code field message } } }""",
            {"sid": str(source["id"]), "release": release},
        ).json()
    )["createBootSourceSelection"]
    assert created["errors"] == []
    selection = created["bootSourceSelection"]
    assert selection["arches"] == ["amd64", "arm64"]
    assert selection["bootSource"]["id"] == source["id"]
    listed = next(s for s in sources(gateway.url) if s["id"] == source["id"])["selections"]
    assert selection["id"] in {s["id"] for s in listed}

    updated = data(
        gql(
            gateway.url,
            """mutation($sid: ID!, $id: ID!) {
                 updateBootSourceSelection(
                   bootSourceId: $sid, id: $id, input: {arches: ["amd64"]}) {
                   bootSourceSelection { arches release } errors { message } } }""",
            {"sid": str(source["id"]), "id": str(selection["id"])},
        ).json()
    )["updateBootSourceSelection"]
    assert updated["bootSourceSelection"] == {"arches": ["amd64"], "release": release}

    invalid = data(
        gql(
            gateway.url,
            """mutation($sid: ID!) {
                 createBootSourceSelection(bootSourceId: $sid,
                   input: {os: "ubuntu", release: "warty"}) {
                   bootSourceSelection { id } errors { code field message } } }""",
            {"sid": str(source["id"])},
        ).json()
    )["createBootSourceSelection"]
    assert invalid["bootSourceSelection"] is None
    assert invalid["errors"][0]["field"] == "os"
    assert "no available images" in invalid["errors"][0]["message"]

    deleted = data(
        gql(
            gateway.url,
            """mutation($sid: ID!, $id: ID!) {
                 deleteBootSourceSelection(bootSourceId: $sid, id: $id) { deletedId } }""",
            {"sid": str(source["id"]), "id": str(selection["id"])},
        ).json()
    )["deleteBootSourceSelection"]
    assert deleted["deletedId"] == selection["id"]
    listed = next(s for s in sources(gateway.url) if s["id"] == source["id"])["selections"]
    assert selection["id"] not in {s["id"] for s in listed}


def test_delete_boot_resource_removes_it_from_lists(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    query = "{ bootResources(filter: {type: UPLOADED}) { id name sets { version } } }"
    uploaded = data(gql(gateway.url, query).json())["bootResources"]
    victim = uploaded[0]
    deleted = data(
        gql(
            gateway.url,
            "mutation($id: ID!) { deleteBootResource(id: $id) { deletedId errors { code } } }",
            {"id": str(victim["id"])},
        ).json()
    )["deleteBootResource"]
    assert deleted == {"deletedId": victim["id"], "errors": []}
    remaining = data(gql(gateway.url, query).json())["bootResources"]
    assert victim["id"] not in {r["id"] for r in remaining}
    upstream = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    assert victim["id"] not in {r.id for r in upstream}
    missing = data(
        gql(
            gateway.url,
            "mutation($id: ID!) { deleteBootResource(id: $id) { deletedId errors { code } } }",
            {"id": str(victim["id"])},
        ).json()
    )["deleteBootResource"]
    assert missing == {"deletedId": None, "errors": [{"code": "NOT_FOUND"}]}


def test_start_and_stop_import_change_the_import_status(gateway: BackgroundServer) -> None:
    status = "{ importStatus { importing incomplete { name } } }"
    assert data(gql(gateway.url, status).json())["importStatus"]["importing"] is False
    started = data(
        gql(gateway.url, "mutation { startImport { importing errors { code } } }").json()
    )["startImport"]
    assert started == {"importing": True, "errors": []}
    during = data(gql(gateway.url, status).json())["importStatus"]
    assert during["importing"] is True
    assert during["incomplete"], "an import makes the newest synced sets incomplete"
    stopped = data(
        gql(gateway.url, "mutation { stopImport { importing errors { code } } }").json()
    )["stopImport"]
    assert stopped == {"importing": False, "errors": []}
    assert data(gql(gateway.url, status).json())["importStatus"]["importing"] is False


def test_import_completes_and_the_status_follows(gateway: BackgroundServer) -> None:
    gql(gateway.url, "mutation { startImport { importing } }")
    deadline = time.monotonic() + 15
    status: dict = {}
    while time.monotonic() < deadline:
        status = data(
            gql(gateway.url, "{ importStatus { importing incomplete { name } } }").json()
        )["importStatus"]
        if not status["importing"]:
            break
        time.sleep(0.3)
    assert status == {"importing": False, "incomplete": []}


def test_a_selection_created_without_lists_selects_everything_in_maas(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    """MAAS stores a list left out as [] (a selection that imports nothing): the gateway sends
    ["*"], as python-libmaas does. The simulator's own record is the proof."""
    source = next(s for s in sources(gateway.url) if "images.maas.io" in s["url"])
    existing = {(s["os"], s["release"]) for s in source["selections"]}
    release = next(r for r in ("focal", "noble", "jammy") if ("ubuntu", r) not in existing)
    created = data(
        gql(
            gateway.url,
            """mutation($sid: ID!, $release: String!) {
                 createBootSourceSelection(bootSourceId: $sid,
                   input: {os: "ubuntu", release: $release}) {
                   bootSourceSelection { id arches subarches labels } errors { message } } }""",
            {"sid": source["id"], "release": release},
        ).json()
    )["createBootSourceSelection"]
    assert created["errors"] == []
    every = {"arches": ["*"], "subarches": ["*"], "labels": ["*"]}
    assert {k: created["bootSourceSelection"][k] for k in every} == every
    upstream = maas_call(
        simulator.url,
        ADMIN_KEY,
        lambda maas: maas.get_boot_source_selection(
            int(source["id"]), int(created["bootSourceSelection"]["id"])
        ),
    )
    assert (upstream.arches, upstream.subarches, upstream.labels) == (["*"], ["*"], ["*"])
