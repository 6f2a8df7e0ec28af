"""GraphQL queries against the simulator: shapes, nesting, upstream call counts and caching."""

from __future__ import annotations

import concurrent.futures

import httpx

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gql, maas_call, reset_counts, upstream_counts

API = "/MAAS/api/2.0"

NESTED = """
query Nested($type: BootResourceType) {
  bootResources(filter: {type: $type}) {
    id name os release title type subarches baseImage lastDeployed complete
    architecture { arch subarch }
    latestSet { version }
    sets {
      version label size complete progress
      files { filename filetype size sha256 complete progress }
    }
  }
}
"""


def maas_detail_reads(counts: dict[str, int]) -> int:
    return sum(
        n
        for path, n in counts.items()
        if path.startswith(f"GET {API}/boot-resources/") and path != f"GET {API}/boot-resources/"
    )


def test_boot_resources_resolve_sets_and_files(gateway: BackgroundServer) -> None:
    response = gql(gateway.url, NESTED)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    resources = body["data"]["bootResources"]
    assert resources, "the simulator seeds boot resources"
    synced = [r for r in resources if r["type"] == "SYNCED"]
    uploaded = [r for r in resources if r["type"] == "UPLOADED"]
    assert synced and uploaded
    for resource in resources:
        assert resource["architecture"]["arch"]
        assert resource["sets"], resource["name"]
        versions = [s["version"] for s in resource["sets"]]
        assert versions == sorted(versions, reverse=True), "sets come newest first"
        assert resource["latestSet"]["version"] == versions[0]
        assert resource["complete"] == resource["sets"][0]["complete"]
        for boot_set in resource["sets"]:
            assert boot_set["size"] == sum(f["size"] for f in boot_set["files"])
            for file in boot_set["files"]:
                assert len(file["sha256"]) == 64
    ubuntu = next(r for r in synced if r["name"].startswith("ubuntu/"))
    assert ubuntu["os"] == "ubuntu"
    assert ubuntu["release"] == ubuntu["name"].split("/")[1]


def test_sizes_past_2_gib_come_back_as_long(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    size = 5 * 1024**3
    created = maas_call(
        simulator.url,
        ADMIN_KEY,
        lambda maas: maas.create_boot_resource(
            "big-image", "amd64/generic", sha256="ab" * 32, size=size, title="Big"
        ),
    )
    body = gql(
        gateway.url,
        "query($id: ID!) { bootResource(id: $id) { sets { size complete files { size } } } }",
        {"id": str(created.id)},
    ).json()
    assert "errors" not in body, body
    newest = body["data"]["bootResource"]["sets"][0]
    assert newest["size"] == size
    assert newest["files"][0]["size"] == size
    assert newest["complete"] is False


def test_nested_query_reads_list_once_and_each_detail_once(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    body = gql(gateway.url, NESTED).json()
    resources = body["data"]["bootResources"]
    counts = upstream_counts(simulator.url)
    assert counts.get(f"GET {API}/boot-resources/") == 1
    assert maas_detail_reads(counts) == len(resources)
    for resource in resources:
        assert counts[f"GET {API}/boot-resources/{resource['id']}/"] == 1


def test_repeated_query_is_answered_from_the_response_cache(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    first = gql(gateway.url, NESTED)
    reset_counts(simulator.url)
    second = gql(gateway.url, NESTED)
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["x-cache"] == "MISS"
    assert second.content == first.content
    assert upstream_counts(simulator.url) == {}


def test_other_variables_are_answered_from_entity_caches(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    gql(gateway.url, NESTED)
    reset_counts(simulator.url)
    synced = gql(gateway.url, NESTED, {"type": "SYNCED"})
    assert synced.headers["x-cache"] == "MISS"
    names = {r["name"] for r in synced.json()["data"]["bootResources"]}
    assert names
    counts = upstream_counts(simulator.url)
    # The typed list is a new upstream read; every detail comes from the entity cache.
    assert maas_detail_reads(counts) == 0
    assert counts == {f"GET {API}/boot-resources/": 1}


def test_concurrent_identical_queries_share_upstream_reads(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: gql(gateway.url, NESTED), range(12)))
    bodies = {r.content for r in responses}
    assert len(bodies) == 1
    resources = responses[0].json()["data"]["bootResources"]
    counts = upstream_counts(simulator.url)
    assert counts[f"GET {API}/boot-resources/"] == 1
    assert maas_detail_reads(counts) == len(resources)


def test_boot_resource_by_id_and_filters(gateway: BackgroundServer) -> None:
    resources = gql(gateway.url, "{ bootResources { id name type architecture { arch } } }").json()[
        "data"
    ]["bootResources"]
    target = resources[0]
    one = gql(
        gateway.url,
        "query($id: ID!) { bootResource(id: $id) { id name sets { version } } }",
        {"id": str(target["id"])},
    ).json()["data"]["bootResource"]
    assert one["id"] == target["id"] and one["sets"]
    missing = gql(gateway.url, '{ bootResource(id: "999999") { id } }').json()
    assert missing["data"]["bootResource"] is None
    by_arch = gql(
        gateway.url,
        '{ bootResources(filter: {architecture: "arm64", os: "ubuntu"}) '
        "{ architecture { arch } os } }",
    ).json()["data"]["bootResources"]
    assert by_arch and all(
        r["architecture"]["arch"] == "arm64" and r["os"] == "ubuntu" for r in by_arch
    )
    by_name = gql(
        gateway.url,
        "query($n: String) { bootResources(filter: {name: $n}) { name } }",
        {"n": target["name"]},
    ).json()["data"]["bootResources"]
    assert by_name and {r["name"] for r in by_name} == {target["name"]}


def test_invalid_id_is_a_validation_error_without_an_upstream_call(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    body = gql(gateway.url, '{ bootResource(id: "abc") { id } }').json()
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert upstream_counts(simulator.url) == {}


def test_boot_sources_with_selections_and_back_references(gateway: BackgroundServer) -> None:
    body = gql(
        gateway.url,
        """{ bootSources { id url keyringFilename keyringData created updated
              selections { id os release arches subarches labels bootSource { id url } } } }""",
    ).json()
    assert "errors" not in body, body
    sources = body["data"]["bootSources"]
    default = next(s for s in sources if "images.maas.io" in s["url"])
    assert default["keyringFilename"].endswith(".gpg")
    assert default["created"] is not None
    assert default["selections"]
    for selection in default["selections"]:
        assert selection["bootSource"]["id"] == default["id"]
        assert isinstance(selection["arches"], list)
    one = gql(
        gateway.url,
        "query($id: ID!) { bootSource(id: $id) { id url } }",
        {"id": str(default["id"])},
    ).json()["data"]["bootSource"]
    assert one == {"id": default["id"], "url": default["url"]}


def test_import_status_reports_incomplete_resources(gateway: BackgroundServer) -> None:
    body = gql(gateway.url, "{ importStatus { importing incomplete { name } } }").json()
    assert body["data"]["importStatus"]["importing"] is False
    assert isinstance(body["data"]["importStatus"]["incomplete"], list)


def test_queries_work_over_get(gateway: BackgroundServer) -> None:
    response = httpx.get(f"{gateway.url}/graphql", params={"query": "{ bootSources { id } }"})
    assert response.status_code == 200
    assert response.json()["data"]["bootSources"]
    again = httpx.get(f"{gateway.url}/graphql", params={"query": "{ bootSources { id } }"})
    assert again.headers["x-cache"] == "HIT"


IDENTITIES = """{ bootResources { __typename id sets { __typename id version
  files { __typename id filename } } }
  bootSources { __typename id selections { __typename id } } }"""


def test_every_cacheable_object_has_a_stable_distinct_id(gateway: BackgroundServer) -> None:
    """Normalized client caches key objects by __typename and id: no two may share one."""
    first = gql(gateway.url, IDENTITIES).json()["data"]
    objects = [*first["bootResources"], *first["bootSources"]]
    for resource in first["bootResources"]:
        for resource_set in resource["sets"]:
            assert resource_set["id"] == f"{resource['id']}/{resource_set['version']}"
            objects.append(resource_set)
            for file in resource_set["files"]:
                assert file["id"] == f"{resource_set['id']}/{file['filename']}"
                objects.append(file)
    for source in first["bootSources"]:
        objects.extend(source["selections"])
    keys = [(o["__typename"], o["id"]) for o in objects]
    assert all(isinstance(i, str) for _, i in keys)
    assert len(keys) == len(set(keys)) and {t for t, _ in keys} == {
        "BootResource",
        "BootResourceSet",
        "BootResourceFile",
        "BootSource",
        "BootSourceSelection",
    }
    again = httpx.post(f"{gateway.url}/graphql", json={"query": IDENTITIES}, timeout=30)
    assert again.json()["data"] == first  # the same ids on the next read
