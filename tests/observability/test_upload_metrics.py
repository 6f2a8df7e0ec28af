"""Upload metrics: the bytes uploaded, durations in buckets up to an hour, and static files
labelled as such rather than as unrouted."""

from __future__ import annotations

import hashlib

import httpx

from tests.gateway import GatewayFactory


def metric_lines(url: str, name: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith(name)]


def test_uploads_count_their_bytes_and_get_hour_long_buckets(
    start_gateway: GatewayFactory,
) -> None:
    url = start_gateway().url
    data = bytes(range(256)) * 400
    params = {
        "name": "custom/metered",
        "architecture": "amd64/generic",
        "size": str(len(data)),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    response = httpx.post(
        f"{url}/api/v1/boot-resources",
        params=params,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert metric_lines(url, "maas_gateway_upload_bytes_total") == [
        f'maas_gateway_upload_bytes_total{{api="rest"}} {float(len(data))}'
    ]
    buckets = metric_lines(url, "maas_gateway_http_request_duration_seconds_bucket")
    upload = [b for b in buckets if 'operation="upload_boot_resource"' in b]
    assert any('le="3600.0"' in b for b in upload), upload
    other = [b for b in buckets if 'operation="upload_boot_resource"' not in b]
    assert other and not any('le="3600.0"' in b for b in other)


def test_static_files_are_labelled_static(start_gateway: GatewayFactory) -> None:
    url = start_gateway().url
    page = httpx.get(f"{url}/graphql", headers={"accept": "text/html"}, timeout=10).text
    asset = page.split('src="', 1)[1].split('"', 1)[0]
    assert httpx.get(f"{url}{asset}", timeout=10).status_code == 200
    requests = metric_lines(url, "maas_gateway_http_requests_total")
    assert any('operation="static"' in line for line in requests), requests
    assert not any('operation="unrouted"' in line for line in requests), requests
