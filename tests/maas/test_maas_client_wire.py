"""Exact request shapes, retries and error edges of MaasClient, checked with respx.

Everything a real MAAS peer can produce is tested against the simulator instead
(test_maas_client_simulator.py); these cover what a peer cannot be made to do on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
import respx
from maas_support import API, MAAS_URL, USER_KEY, mock_client, mock_router, parse_form

from app.core.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)
from app.core.settings import Settings
from app.maas import MaasClient, MaasCredentials, normalize_base_url
from app.observability.context import REQUEST_ID_HEADER, RequestRecord, current_request

pytestmark = pytest.mark.anyio

RESOURCE = {
    "id": 7,
    "type": "Uploaded",
    "name": "alma9",
    "architecture": "amd64/generic",
    "resource_uri": "/MAAS/api/2.0/boot-resources/7/",
}
SOURCE = {"id": 3, "url": "http://images.test/", "keyring_filename": "", "keyring_data": ""}
SELECTION = {"id": 4, "boot_source_id": 3, "os": "ubuntu", "release": "jammy"}


@pytest.fixture
def router() -> respx.Router:
    return mock_router()


@pytest.fixture
async def client(router: respx.Router) -> Any:
    async with mock_client(router) as maas:
        yield maas


# Construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://maas.test:5240/MAAS",
        "http://maas.test:5240/MAAS/",
        "http://maas.test:5240/MAAS/api/2.0",
        "http://maas.test:5240/MAAS/api/2.0/",
        " http://maas.test:5240/MAAS// ",
    ],
)
def test_base_url_is_normalized_to_the_api_root(url: str) -> None:
    assert normalize_base_url(url) == "http://maas.test:5240/MAAS/api/2.0/"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://maas.test/MAAS",
        "maas.test:5240/MAAS",
        "http:///MAAS",
        "http://m/MAAS?x=1",
        "http://admin:pw@m/MAAS",
    ],
)
def test_base_url_that_is_not_an_http_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="MAAS URL"):
        normalize_base_url(url)


def test_tls_verification_cannot_be_switched_off() -> None:
    with pytest.raises(ValueError, match="cannot be turned off"):
        MaasClient(MAAS_URL, verify=False)  # type: ignore[arg-type]


def test_missing_ca_bundle_fails_at_construction() -> None:
    with pytest.raises(FileNotFoundError):
        MaasClient("https://maas.test/MAAS", verify="/nonexistent/ca.pem")


@pytest.mark.parametrize("chunk_size", [0, 10 * 1024 * 1024 + 1])
def test_chunk_size_beyond_nginx_limit_is_rejected(chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        MaasClient(MAAS_URL, chunk_size=chunk_size)


# Request shapes (maas-api.md §3, §11) ----------------------------------------------------------

Call = Callable[[MaasClient], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "method", "path", "query", "reply"),
    [
        (lambda c: c.list_boot_resources(), "GET", "boot-resources/", "", [RESOURCE]),
        (
            lambda c: c.list_boot_resources("uploaded"),
            "GET",
            "boot-resources/",
            "type=uploaded",
            [],
        ),
        (lambda c: c.get_boot_resource(7), "GET", "boot-resources/7/", "", RESOURCE),
        (lambda c: c.delete_boot_resource(7), "DELETE", "boot-resources/7/", "", None),
        (lambda c: c.start_import(), "POST", "boot-resources/", "op=import", None),
        (lambda c: c.stop_import(), "POST", "boot-resources/", "op=stop_import", None),
        (lambda c: c.is_importing(), "GET", "boot-resources/", "op=is_importing", False),
        (lambda c: c.list_boot_sources(), "GET", "boot-sources/", "", [SOURCE]),
        (lambda c: c.get_boot_source(3), "GET", "boot-sources/3/", "", SOURCE),
        (lambda c: c.delete_boot_source(3), "DELETE", "boot-sources/3/", "", None),
        (
            lambda c: c.list_boot_source_selections(3),
            "GET",
            "boot-sources/3/selections/",
            "",
            [SELECTION],
        ),
        (
            lambda c: c.get_boot_source_selection(3, 4),
            "GET",
            "boot-sources/3/selections/4/",
            "",
            SELECTION,
        ),
        (
            lambda c: c.delete_boot_source_selection(3, 4),
            "DELETE",
            "boot-sources/3/selections/4/",
            "",
            None,
        ),
        (lambda c: c.version(), "GET", "version/", "", {"version": "3.5.4", "capabilities": []}),
        (lambda c: c.describe(), "GET", "describe/", "", {"doc": "MAAS API", "resources": []}),
    ],
)
async def test_operation_sends_its_method_path_and_query(
    client: MaasClient,
    router: respx.Router,
    call: Call,
    method: str,
    path: str,
    query: str,
    reply: object,
) -> None:
    status = 204 if method == "DELETE" else 200
    route = router.route().mock(
        return_value=httpx.Response(status) if reply is None else httpx.Response(status, json=reply)
    )

    await call(client)

    request = route.calls.last.request
    assert request.method == method
    assert str(request.url) == API + path + (f"?{query}" if query else "")
    assert request.url.path.endswith("/")
    if method in ("GET", "DELETE") or query.startswith("op="):
        assert request.content == b""


async def test_create_boot_resource_sends_multipart_strings(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.post("boot-resources/").mock(return_value=httpx.Response(201, json=RESOURCE))

    await client.create_boot_resource(
        "alma9", "amd64/generic", "a" * 64, 1234, title="Alma 9", keep_old=False
    )

    parts = parse_form(route.calls.last.request)
    assert [(p.name, p.value) for p in parts] == [
        ("name", b"alma9"),
        ("architecture", b"amd64/generic"),
        ("sha256", b"a" * 64),
        ("size", b"1234"),
        ("title", b"Alma 9"),
        ("filetype", b"tgz"),
        ("keep_old", b"false"),
    ]
    assert all(p.filename is None for p in parts)


async def test_create_boot_source_sends_keyring_data_as_a_raw_file_part(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.post("boot-sources/").mock(return_value=httpx.Response(201, json=SOURCE))
    keyring = bytes(range(256))

    await client.create_boot_source("http://images.test/", keyring_data=keyring)

    url, data = parse_form(route.calls.last.request)
    assert (url.name, url.value) == ("url", b"http://images.test/")
    assert data.name == "keyring_data"
    assert data.filename == "keyring_data"
    assert data.content_type == "application/octet-stream"
    assert data.value == keyring


async def test_update_boot_source_sends_only_the_given_fields(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.put("boot-sources/3/").mock(return_value=httpx.Response(200, json=SOURCE))

    await client.update_boot_source(3, keyring_filename="")

    assert [(p.name, p.value) for p in parse_form(route.calls.last.request)] == [
        ("keyring_filename", b"")
    ]


async def test_selection_lists_go_as_repeated_parts(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.post("boot-sources/3/selections/").mock(
        return_value=httpx.Response(200, json=SELECTION)
    )

    await client.create_boot_source_selection(
        3, os="ubuntu", release="jammy", arches=["amd64", "arm64"], labels=["*"]
    )

    assert [(p.name, p.value) for p in parse_form(route.calls.last.request)] == [
        ("os", b"ubuntu"),
        ("release", b"jammy"),
        ("arches", b"amd64"),
        ("arches", b"arm64"),
        ("labels", b"*"),
    ]


async def test_update_selection_sends_only_the_given_fields(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.put("boot-sources/3/selections/4/").mock(
        return_value=httpx.Response(200, json=SELECTION)
    )

    await client.update_boot_source_selection(3, 4, subarches=["generic"])

    assert [(p.name, p.value) for p in parse_form(route.calls.last.request)] == [
        ("subarches", b"generic")
    ]


@pytest.mark.parametrize("bad", ["7", -1, True, 1.5, None])
async def test_non_integer_id_is_rejected_before_any_request(
    client: MaasClient, router: respx.Router, bad: Any
) -> None:
    route = router.route().mock(return_value=httpx.Response(200, json=RESOURCE))

    with pytest.raises(ValidationFailed) as caught:
        await client.get_boot_resource(bad)
    with pytest.raises(ValidationFailed):
        await client.get_boot_source_selection(3, bad)

    assert caught.value.fields == {"id": ["must be an integer"]}
    assert not route.called


async def test_request_id_is_sent_upstream_when_set(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.get("boot-sources/").mock(return_value=httpx.Response(200, json=[]))

    token = current_request.set(RequestRecord("req-123"))
    try:
        await client.list_boot_sources()
    finally:
        current_request.reset(token)
    await client.list_boot_sources()

    first, second = route.calls
    assert first.request.headers[REQUEST_ID_HEADER] == "req-123"
    assert REQUEST_ID_HEADER not in second.request.headers


async def test_no_credentials_sends_no_authorization(router: respx.Router) -> None:
    route = router.get("version/").mock(return_value=httpx.Response(200, json={"version": "3.5.4"}))

    async with MaasClient(MAAS_URL, transport=httpx.MockTransport(router.async_handler)) as c:
        await c.version()

    assert "Authorization" not in route.calls.last.request.headers


async def test_bind_signs_with_other_credentials_on_the_same_pool(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.get("boot-sources/").mock(return_value=httpx.Response(200, json=[]))
    user = MaasCredentials.from_key(USER_KEY)

    view = client.bind(user)
    await view.list_boot_sources()
    await view.aclose()  # a view never closes the shared pool
    await client.list_boot_sources()

    as_user, as_admin = (call.request.headers["Authorization"] for call in route.calls)
    assert f'oauth_token="{user.token_key}"' in as_user
    assert client.credentials is not None
    assert f'oauth_token="{client.credentials.token_key}"' in as_admin
    assert view.credentials == user


# Retries ---------------------------------------------------------------------------------------


async def test_get_is_retried_on_503_with_a_fresh_signature(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.get("boot-resources/").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, json=[])]
    )

    assert await client.list_boot_resources() == []

    nonces = {
        call.request.headers["Authorization"].split("oauth_nonce=")[1] for call in route.calls
    }
    assert route.call_count == 3
    assert len(nonces) == 3


async def test_get_gives_up_after_the_configured_retries(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.get("boot-resources/").mock(return_value=httpx.Response(503, text="down"))

    with pytest.raises(UpstreamUnavailable, match=r"boot-resources read failed \(HTTP 503\)"):
        await client.list_boot_resources()

    assert route.call_count == 3


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadError("reset"), httpx.ConnectTimeout("")]
)
async def test_get_is_retried_on_a_failed_or_dropped_connection(
    client: MaasClient, router: respx.Router, failure: Exception
) -> None:
    route = router.get("boot-sources/").mock(side_effect=[failure, httpx.Response(200, json=[])])

    assert await client.list_boot_sources() == []
    assert route.call_count == 2


async def test_get_is_not_retried_on_a_read_timeout(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.get("boot-sources/").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(UpstreamTimeout):
        await client.list_boot_sources()

    assert route.call_count == 1


async def test_post_is_not_retried_on_503(client: MaasClient, router: respx.Router) -> None:
    route = router.post("boot-sources/").mock(return_value=httpx.Response(503))

    with pytest.raises(UpstreamUnavailable):
        await client.create_boot_source("http://images.test/", keyring_filename="/k.gpg")

    assert route.call_count == 1


async def test_post_is_retried_when_the_connection_never_opened(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.post("boot-sources/").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=SOURCE)]
    )

    created = await client.create_boot_source("http://images.test/", keyring_filename="/k.gpg")

    assert created.id == 3
    assert route.call_count == 2
    assert route.calls[0].request.content == route.calls[1].request.content


@pytest.mark.parametrize(
    "failure", [httpx.ReadError("reset"), httpx.RemoteProtocolError("gone"), httpx.ReadTimeout("")]
)
async def test_post_is_not_retried_once_the_request_may_have_been_sent(
    client: MaasClient, router: respx.Router, failure: Exception
) -> None:
    route = router.post("boot-resources/").mock(side_effect=failure)

    with pytest.raises((UpstreamBadResponse, UpstreamTimeout)):
        await client.start_import()

    assert route.call_count == 1


async def test_upload_chunk_is_never_retried(client: MaasClient, router: respx.Router) -> None:
    route = router.put("boot-resources/7/upload/9/").mock(side_effect=httpx.ConnectError("no"))

    with pytest.raises(UpstreamUnavailable):
        await client.upload_chunk("/MAAS/api/2.0/boot-resources/7/upload/9/", b"data")

    assert route.call_count == 1


# Error edges a real peer will not produce on demand ---------------------------------------------


async def test_409_html_maps_to_conflict_with_retry_after(
    client: MaasClient, router: respx.Router
) -> None:
    router.post("boot-sources/3/selections/").mock(
        return_value=httpx.Response(
            409,
            html="<html><body>Conflict</body></html>",
            headers={"Retry-After": "5"},
        )
    )

    with pytest.raises(Conflict) as caught:
        await client.create_boot_source_selection(3, os="ubuntu", release="jammy")

    assert caught.value.retry_after == 5.0
    assert caught.value.message == ("MAAS boot-source-selections create failed (HTTP 409)")


async def test_413_maps_to_payload_too_large(client: MaasClient, router: respx.Router) -> None:
    router.put("boot-resources/7/upload/9/").mock(
        return_value=httpx.Response(413, html="<html>413 Request Entity Too Large</html>")
    )

    with pytest.raises(PayloadTooLarge):
        await client.upload_chunk("/MAAS/api/2.0/boot-resources/7/upload/9/", b"x")


async def test_504_maps_to_upstream_timeout_without_retry_on_a_write(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.post("boot-resources/").mock(return_value=httpx.Response(504))

    with pytest.raises(UpstreamTimeout):
        await client.stop_import()

    assert route.call_count == 1


async def test_json_list_error_body_becomes_the_message(
    client: MaasClient, router: respx.Router
) -> None:
    router.delete("boot-sources/3/selections/4/").mock(
        return_value=httpx.Response(400, json=["Unable to delete ubuntu jammy."])
    )

    with pytest.raises(ValidationFailed, match=r"\(HTTP 400\): Unable to delete ubuntu jammy\.$"):
        await client.delete_boot_source_selection(3, 4)


async def test_delete_of_a_missing_resource_500_maps_to_not_found(
    client: MaasClient, router: respx.Router
) -> None:
    # MAAS's DELETE uses objects.get(), so a missing id is a 500 (maas-api.md §5.6).
    router.delete("boot-resources/99/").mock(
        return_value=httpx.Response(500, text="BootResource matching query does not exist.")
    )

    with pytest.raises(NotFound, match="boot-resource delete failed"):
        await client.delete_boot_resource(99)


async def test_other_500_on_delete_stays_a_bad_response(
    client: MaasClient, router: respx.Router
) -> None:
    router.delete("boot-resources/9/").mock(return_value=httpx.Response(500, text="boom"))

    with pytest.raises(UpstreamBadResponse, match="boom"):
        await client.delete_boot_resource(9)


async def test_redirect_is_not_followed(client: MaasClient, router: respx.Router) -> None:
    route = router.get("boot-sources/").mock(
        return_value=httpx.Response(302, headers={"Location": "http://evil.test/"})
    )

    with pytest.raises(UpstreamBadResponse):
        await client.list_boot_sources()

    assert route.call_count == 1


async def test_malformed_json_success_body_is_a_bad_response(
    client: MaasClient, router: respx.Router
) -> None:
    router.get("boot-resources/7/").mock(
        return_value=httpx.Response(
            200, content=b'{"id": 7, "na', headers={"Content-Type": "application/json"}
        )
    )

    with pytest.raises(UpstreamBadResponse, match="malformed response body"):
        await client.get_boot_resource(7)


async def test_is_importing_that_is_not_a_boolean_is_a_bad_response(
    client: MaasClient, router: respx.Router
) -> None:
    router.get("boot-resources/").mock(return_value=httpx.Response(200, json="yes"))

    with pytest.raises(UpstreamBadResponse):
        await client.is_importing()


async def test_error_message_names_the_operation_not_the_url(
    client: MaasClient, router: respx.Router
) -> None:
    router.get("boot-resources/5/").mock(
        return_value=httpx.Response(404, text="No BootResource matches the given query.")
    )

    with pytest.raises(NotFound) as caught:
        await client.get_boot_resource(5)

    assert caught.value.message == (
        "MAAS boot-resource read failed (HTTP 404): No BootResource matches the given query."
    )
    assert "maas.test" not in str(caught.value)


async def test_credentials_echoed_by_maas_are_redacted(
    client: MaasClient, router: respx.Router
) -> None:
    assert client.credentials is not None
    token = client.credentials.token_key
    router.get("boot-sources/").mock(
        return_value=httpx.Response(
            401, text=f"Authorization Error: 'Invalid access token: {token}'"
        )
    )

    with pytest.raises(Unauthenticated) as caught:
        await client.list_boot_sources()

    assert token not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_upload_uri_on_another_host_is_refused_without_sending(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.route().mock(return_value=httpx.Response(200, text="OK"))

    for uri in ("http://evil.test/MAAS/api/2.0/x/", "//evil.test/x/", "relative/x/"):
        with pytest.raises(UpstreamBadResponse, match="unusable upload_uri"):
            await client.upload_chunk(uri, b"data")

    assert not route.called


async def test_upload_uri_as_an_absolute_url_on_the_same_origin_is_accepted(
    client: MaasClient, router: respx.Router
) -> None:
    route = router.put("boot-resources/7/upload/9/").mock(return_value=httpx.Response(200))

    await client.upload_chunk(f"{MAAS_URL}/api/2.0/boot-resources/7/upload/9/", b"data")

    assert route.called


# Concurrency bound -----------------------------------------------------------------------------


async def test_requests_in_flight_never_exceed_max_concurrency(router: respx.Router) -> None:
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=RESOURCE)

    router.get(path__regex=r"boot-resources/\d+/$").mock(side_effect=slow)

    async with mock_client(router, max_concurrency=3) as maas:
        results = await asyncio.gather(*(maas.get_boot_resource(7) for _ in range(12)))
        view = maas.bind(MaasCredentials.from_key(USER_KEY))
        await asyncio.gather(
            *(view.get_boot_resource(7) for _ in range(6)), maas.get_boot_resource(7)
        )

    assert len(results) == 12
    assert peak == 3


async def test_cancelled_caller_releases_its_concurrency_slot(router: respx.Router) -> None:
    release = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=[])

    router.get("boot-sources/").mock(side_effect=hang)
    router.get("version/").mock(return_value=httpx.Response(200, json={"version": "3"}))

    async with mock_client(router, max_concurrency=1) as maas:
        with anyio.move_on_after(0.05):
            await maas.list_boot_sources()
        with anyio.fail_after(1):
            assert (await maas.version()).version == "3"


# Settings --------------------------------------------------------------------------------------


async def test_from_settings_uses_the_configured_url_key_and_chunk_size(
    router: respx.Router,
) -> None:
    settings = Settings(
        _env_file=None,
        maas_url=f"{MAAS_URL}/",
        maas_api_key=USER_KEY,
        upload_chunk_size=128 * 1024,
        maas_retries=0,
    )
    route = router.get("boot-sources/").mock(return_value=httpx.Response(503))
    transport = httpx.MockTransport(router.async_handler)

    async with MaasClient.from_settings(settings, transport=transport) as maas:
        with pytest.raises(UpstreamUnavailable):
            await maas.list_boot_sources()

    assert maas.api_root == API
    assert maas.credentials == MaasCredentials.from_key(USER_KEY)
    assert route.call_count == 1


def test_from_settings_without_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="maas_url"):
        MaasClient.from_settings(Settings(_env_file=None, maas_url=None))


def test_from_settings_verifies_with_the_configured_ca_bundle() -> None:
    settings = Settings(
        _env_file=None, maas_url="https://maas.test/MAAS", maas_ca_bundle="/nonexistent/ca.pem"
    )

    with pytest.raises(FileNotFoundError):
        MaasClient.from_settings(settings)
