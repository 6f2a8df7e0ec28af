"""Python's gql client against a real gateway: a query over aiohttp, a multipart upload, and a
subscription over graphql-transport-ws (and the legacy graphql-ws subprotocol)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from gql import Client, FileVar, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from gql.transport.websockets_protocol import WebsocketsProtocolTransportBase as Protocols

from tests.gateway import GatewayFactory, bearer, write_tokens

pytestmark = pytest.mark.anyio


@pytest.fixture
def gateway_and_token(start_gateway: GatewayFactory, tmp_path: Path) -> tuple[str, str]:
    tokens = write_tokens(tmp_path / "tokens", writer="read,write")
    return start_gateway(tokens_file=str(tmp_path / "tokens")).url, tokens["writer"]


async def test_gql_queries_over_http(gateway_and_token: tuple[str, str]) -> None:
    url, token = gateway_and_token
    transport = AIOHTTPTransport(url=f"{url}/graphql", headers=bearer(token))
    async with Client(transport=transport) as session:
        result = await session.execute(gql("{ bootSources { id url selections { id } } }"))
    assert result["bootSources"][0]["id"] == "1"
    assert result["bootSources"][0]["selections"]


async def test_gql_uploads_a_custom_image(
    gateway_and_token: tuple[str, str], tmp_path: Path
) -> None:
    url, token = gateway_and_token
    image = tmp_path / "root.tgz"
    image.write_bytes(bytes(range(256)) * 64)
    headers = {**bearer(token), "Apollo-Require-Preflight": "true"}
    transport = AIOHTTPTransport(url=f"{url}/graphql", headers=headers)
    upload = gql(
        """mutation ($file: Upload!, $input: UploadBootResourceInput!) {
          uploadBootResource(file: $file, input: $input) {
            bootResource { name sets { files { size sha256 complete } } } errors { message }
          } }"""
    )
    with image.open("rb") as content:
        upload.variable_values = {
            "file": FileVar(content, filename="root.tgz"),
            "input": {"name": "custom/gql", "architecture": "amd64/generic"},
        }
        async with Client(transport=transport) as session:
            result = await session.execute(upload, upload_files=True)
    payload = result["uploadBootResource"]
    assert payload["errors"] == []
    [file] = payload["bootResource"]["sets"][0]["files"]
    assert file == {
        "size": image.stat().st_size,
        "sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
        "complete": True,
    }


@pytest.mark.parametrize(
    "subprotocol", [Protocols.GRAPHQLWS_SUBPROTOCOL, Protocols.APOLLO_SUBPROTOCOL]
)
async def test_gql_subscribes_to_import_progress(
    gateway_and_token: tuple[str, str], subprotocol: str
) -> None:
    url, token = gateway_and_token
    transport = WebsocketsTransport(
        url=url.replace("http://", "ws://") + "/graphql",
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[subprotocol],
    )
    progress = gql("subscription { importProgress(untilImportEnds: true) { importing } }")
    async with Client(transport=transport) as session:
        snapshots = [s async for s in session.subscribe(progress)]
        query = await session.execute(gql("{ importStatus { importing } }"))
    assert snapshots == [{"importProgress": {"importing": False}}]
    assert query == {"importStatus": {"importing": False}}
