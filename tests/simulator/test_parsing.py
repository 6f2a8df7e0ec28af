"""Request parsing as tolerant as MAAS's: multipart quirks, urlencoded, JSON, and `op`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.simulator.parsing import (
    MalformedBody,
    parse_body,
    parse_header_params,
    parse_json,
    parse_multipart,
)

from .helpers import FilePart, Maas, multipart


def test_multipart_decodes_libmaas_base64_parts_with_a_quoted_boundary() -> None:
    headers, body = multipart([("os", "ubuntu"), ("arches", "amd64"), ("arches", "arm64")])
    assert '="' in headers["Content-Type"]
    assert b"Content-Transfer-Encoding: base64" in body

    form = parse_body(headers["Content-Type"], body)

    assert form.get("os") == "ubuntu"
    assert form.getlist("arches") == ["amd64", "arm64"]


def test_multipart_skips_the_header_less_empty_part() -> None:
    headers, body = multipart([])
    boundary = parse_header_params(headers["Content-Type"])[1]["boundary"]
    assert body == f"--{boundary}\r\n\r\n--{boundary}--".encode()

    form = parse_body(headers["Content-Type"], body)

    assert form.fields == {}
    assert form.files == {}


def test_multipart_file_part_lands_in_files_with_raw_bytes() -> None:
    headers, body = multipart([("keyring_data", FilePart(b"\x00\x01gpg"))])

    form = parse_body(headers["Content-Type"], body)

    upload = form.file("keyring_data")
    assert upload is not None
    assert upload.data == b"\x00\x01gpg"
    assert upload.filename == "keyring_data"
    assert "keyring_data" not in form


def test_multipart_plain_8bit_parts_and_lf_line_endings() -> None:
    body = (
        b"--XyZ\n"
        b'Content-Disposition: form-data; name="name"\n\n'
        b"plain value\n"
        b"--XyZ\n"
        b'Content-Disposition: form-data;\n name="title"\n\n'
        b"folded header\n"
        b"--XyZ--\n"
    )

    form = parse_multipart(body, "XyZ")

    assert form.get("name") == "plain value"
    assert form.get("title") == "folded header"


def test_multipart_quoted_printable_and_rfc2231_names() -> None:
    body = (
        b"--b\r\n"
        b"Content-Disposition: form-data; name*=utf-8''t%C3%ADtulo\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"caf=C3=A9\r\n"
        b"--b--"
    )

    assert parse_multipart(body, "b").get("título") == "café"


def test_multipart_part_with_empty_filename_is_dropped() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="content"; filename=""\r\n\r\ndata\r\n--b--'
    )

    form = parse_multipart(body, "b")

    assert form.files == {}
    assert form.fields == {}


def test_multipart_without_boundary_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="Invalid boundary in multipart: None"):
        parse_body("multipart/form-data", b"--x--")


def test_multipart_bad_base64_keeps_the_raw_bytes() -> None:
    # Nine base64 characters (the space and `!` are skipped) cannot be decoded. `%%%` would
    # not test this: every byte is skipped, so it decodes to "" without an error.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="x"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"not base64!\r\n--b--"
    )

    assert parse_multipart(body, "b").get("x") == "not base64!"


def test_json_lists_become_repeated_values_and_scalars_strings() -> None:
    form = parse_json(b'{"arches": ["amd64", "arm64"], "size": 10, "keep_old": true, "x": null}')

    assert form.getlist("arches") == ["amd64", "arm64"]
    assert form.get("size") == "10"
    assert form.get("keep_old") == "True"
    assert "x" not in form
    assert form.is_json


def test_invalid_json_is_malformed() -> None:
    with pytest.raises(MalformedBody):
        parse_json(b"{nope")


# -- over the wire ---------------------------------------------------------------------------


def test_op_in_a_multipart_body_is_honoured(admin: Maas) -> None:
    response = admin.post("boot-resources/", fields=[("op", "stop_import")])

    assert response.text == "Import of boot resources is being stopped"


def test_op_in_a_json_body_is_not_seen(admin: Maas) -> None:
    response = admin.post("boot-resources/", json={"op": "stop_import"})

    # A JSON body empties request.POST, so this is a create with no fields.
    assert response.status_code == 400
    assert "name" in response.json()


def test_op_in_the_query_wins_over_the_body(admin: Maas) -> None:
    response = admin.post(
        "boot-resources/", params={"op": "stop_import"}, fields=[("op", "import")]
    )

    assert response.text == "Import of boot resources is being stopped"


def test_op_path_suffix_is_an_op_when_3_3_or_later(admin: Maas) -> None:
    response = admin.get("/MAAS/api/2.0/boot-resources/op-is_importing")

    assert (response.status_code, response.json()) == (200, False)


def test_op_path_suffix_is_unknown_when_before_3_3(
    maas_for: Callable[..., tuple[Maas, Maas]],
) -> None:
    admin, _ = maas_for(maas_version="3.2")

    response = admin.get("/MAAS/api/2.0/boot-resources/op-is_importing")

    assert response.status_code == 404
    assert response.text.startswith("Unknown API endpoint:")


def test_empty_op_falls_back_to_crud(admin: Maas) -> None:
    response = admin.get("boot-resources/", params={"op": ""})

    assert response.status_code == 200
    assert response.json() == admin.get("boot-resources/").json() != []


def test_unknown_op_is_unrecognised_signature(admin: Maas) -> None:
    response = admin.get("boot-resources/", params={"op": "foo"})

    assert (response.status_code, response.text) == (
        400,
        "Unrecognised signature: method=GET op=foo",
    )
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_op_on_a_handler_without_ops_is_unrecognised(admin: Maas) -> None:
    response = admin.get("boot-sources/", params={"op": "anything"})

    assert response.text == "Unrecognised signature: method=GET op=anything"


def test_delete_with_the_empty_multipart_body(admin: Maas) -> None:
    created = admin.post(
        "boot-resources/",
        fields=[
            ("name", "tmp"),
            ("architecture", "amd64/generic"),
            ("size", "1"),
            ("sha256", "1" * 64),
        ],
    ).json()

    response = admin.delete(f"boot-resources/{created['id']}/")

    assert response.status_code == 204
    assert admin.get(f"boot-resources/{created['id']}/").status_code == 404


def test_malformed_json_body_is_a_bad_request(admin: Maas) -> None:
    response = admin.post(
        "boot-resources/", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert (response.status_code, response.text) == (400, "Bad Request")


def test_multipart_without_boundary_is_a_500(admin: Maas) -> None:
    response = admin.post(
        "boot-resources/", content=b"--x--", headers={"Content-Type": "multipart/form-data"}
    )

    assert (response.status_code, response.text) == (500, "Invalid boundary in multipart: None")


def test_body_over_the_nginx_limit_is_413(admin: Maas) -> None:
    response = admin.post(
        "boot-resources/",
        content=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 413
    assert "413 Request Entity Too Large" in response.text
