"""Payload models: lenient across MAAS versions (maas-api.md §5.2, §6.1, §7.1, §9.10, §9.17)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.maas import models


def source(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "id": 1,
        "url": "http://images.maas.io/ephemeral-v3/stable/",
        "keyring_filename": "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg",
        "keyring_data": "",
        "created": "2018-12-04T18:11:31.894",
        "updated": "2018-12-04T18:11:31.894",
        "resource_uri": "/MAAS/api/2.0/boot-sources/1/",
    }
    payload.update(overrides)
    return payload


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-12-04T18:11:31.894", datetime(2018, 12, 4, 18, 11, 31, 894000, tzinfo=UTC)),
        ("2018-12-04T18:11:31.894Z", datetime(2018, 12, 4, 18, 11, 31, 894000, tzinfo=UTC)),
        ("2018-12-04T18:11:31", datetime(2018, 12, 4, 18, 11, 31, tzinfo=UTC)),
        ("2018-12-04T18:11:31Z", datetime(2018, 12, 4, 18, 11, 31, tzinfo=UTC)),
    ],
)
def test_boot_source_timestamps_parse_in_every_maas_format(text: str, expected: datetime) -> None:
    parsed = models.BootSource.model_validate(source(created=text, updated=text))

    assert parsed.created == expected
    assert parsed.updated == expected


def test_boot_source_keeps_3_8_fields_and_unknown_keys() -> None:
    parsed = models.BootSource.model_validate(
        source(name="main", priority=2, enabled=False, skip_keyring_verification=True, future=1)
    )

    assert (parsed.name, parsed.priority, parsed.enabled) == ("main", 2, False)
    assert parsed.skip_keyring_verification is True
    assert parsed.model_extra == {"future": 1}


def test_boot_source_without_3_8_fields_or_timestamps_parses() -> None:
    parsed = models.BootSource.model_validate({"id": 3, "url": "http://x/", "created": ""})

    assert parsed.name is None
    assert parsed.created is None
    assert parsed.keyring_data == ""


def test_keyring_bytes_decodes_the_base64_maas_returns() -> None:
    parsed = models.BootSource.model_validate(source(keyring_data="AAEC/w=="))

    assert parsed.keyring_bytes() == b"\x00\x01\x02\xff"


def test_selection_treats_null_lists_as_empty() -> None:
    parsed = models.BootSourceSelection.model_validate(
        {"id": 1, "boot_source_id": 2, "os": "ubuntu", "release": "jammy", "arches": None}
    )

    assert parsed.arches == []
    assert parsed.subarches == []
    assert parsed.labels == []


def test_resource_list_item_without_sets_and_with_extra_keys_parses() -> None:
    parsed = models.BOOT_RESOURCES.validate_python(
        [
            {
                "id": 7,
                "type": "Synced",
                "name": "ubuntu/jammy",
                "architecture": "amd64/ga-22.04",
                "resource_uri": "/MAAS/api/2.0/boot-resources/7/",
                "subarches": "generic,hwe-p",
                "platform": "generic",
            }
        ]
    )

    assert parsed[0].sets is None
    assert parsed[0].subarches == "generic,hwe-p"
    assert parsed[0].model_extra == {"platform": "generic"}
    assert parsed[0].last_deployed is None


def test_newest_set_is_the_greatest_version_as_a_string() -> None:
    def a_set(version: str) -> dict[str, object]:
        return {"version": version, "label": "uploaded", "size": 1, "complete": True, "files": {}}

    parsed = models.BootResource.model_validate(
        {
            "id": 1,
            "type": "Uploaded",
            "name": "alma9",
            "architecture": "amd64/generic",
            "sets": {v: a_set(v) for v in ("20260101.1", "20251231", "20260101")},
        }
    )

    assert parsed.newest_set is not None
    assert parsed.newest_set.version == "20260101.1"


def test_file_progress_accepts_the_old_integer_zero() -> None:
    parsed = models.BootResourceFile.model_validate(
        {
            "filename": "root-tgz",
            "filetype": "root-tgz",
            "sha256": "0" * 64,
            "size": 5_000_000_000,
            "complete": False,
            "progress": 0,
        }
    )

    assert parsed.progress == 0.0
    assert parsed.size == 5_000_000_000
    assert parsed.upload_uri is None
