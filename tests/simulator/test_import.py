"""Imports that really run: selections decide the synced resources; progress; stop (§5.7)."""

from __future__ import annotations

import time
from typing import Any

from app.cli.server import BackgroundServer

from .helpers import Maas, control


def _speed_up(simulator: BackgroundServer, seconds: float) -> None:
    control(simulator.url, "PUT", "config", {"import_duration_s": seconds}).raise_for_status()


def _importing(admin: Maas) -> bool:
    response = admin.get("boot-resources/", params={"op": "is_importing"})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.json()  # type: ignore[no-any-return]


def _wait_until_idle(admin: Maas, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _importing(admin):
        assert time.monotonic() < deadline, "import did not finish"
        time.sleep(0.05)


def _by_key(admin: Maas) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["name"], r["architecture"]): r for r in admin.get("boot-resources/").json()}


def _newest_set(admin: Maas, resource_id: int) -> dict[str, Any]:
    body = admin.get(f"boot-resources/{resource_id}/").json()
    return body["sets"][max(body["sets"])]  # type: ignore[no-any-return]


def test_import_answers_text_and_is_importing_turns_true(admin: Maas) -> None:
    assert _importing(admin) is False

    response = admin.post("boot-resources/", params={"op": "import"})

    assert (response.status_code, response.text) == (200, "Import of boot resources started")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert _importing(admin) is True


def test_importing_sets_are_incomplete_with_rising_progress(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 2.0)
    jammy = _by_key(admin)[("ubuntu/jammy", "amd64/ga-22.04")]
    admin.post("boot-resources/", params={"op": "import"})

    early = _newest_set(admin, jammy["id"])
    time.sleep(0.3)
    later = _newest_set(admin, jammy["id"])

    assert early["complete"] is False
    assert 0.0 <= early["progress"] < later["progress"] < 100.0
    for rfile in later["files"].values():
        assert rfile["complete"] is False
        assert 0.0 < rfile["progress"] < 100.0
        assert "upload_uri" not in rfile
    body = admin.get(f"boot-resources/{jammy['id']}/").json()
    assert len(body["sets"]) == 2


def test_finished_import_completes_sets_and_drops_older_ones(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 0.3)
    jammy = _by_key(admin)[("ubuntu/jammy", "amd64/ga-22.04")]
    admin.post("boot-resources/", params={"op": "import"})

    _wait_until_idle(admin)

    body = admin.get(f"boot-resources/{jammy['id']}/").json()
    (resource_set,) = body["sets"].values()
    assert resource_set["complete"] is True
    assert all(f["complete"] for f in resource_set["files"].values())


def test_new_selection_brings_its_resources_with_the_next_import(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 0.3)
    created = admin.post(
        "boot-sources/1/selections/",
        fields=[
            ("os", "ubuntu"),
            ("release", "focal"),
            ("arches", "s390x"),
            ("subarches", "*"),
            ("labels", "*"),
        ],
    )
    assert created.status_code == 200
    assert ("ubuntu/focal", "s390x/ga-20.04") not in _by_key(admin)

    admin.post("boot-resources/", params={"op": "import"})
    during = _by_key(admin)
    focal = during[("ubuntu/focal", "s390x/ga-20.04")]
    assert _newest_set(admin, focal["id"])["complete"] is False
    assert {("ubuntu/focal", f"s390x/{s}") for s in ("generic", "ga-20.04", "hwe-20.04")} <= set(
        during
    )

    _wait_until_idle(admin)

    assert _newest_set(admin, focal["id"])["complete"] is True


def test_resources_of_a_removed_selection_go_after_an_import(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 0.3)
    noble = next(
        s for s in admin.get("boot-sources/1/selections/").json() if s["release"] == "noble"
    )
    assert admin.delete(f"boot-sources/1/selections/{noble['id']}/").status_code == 204
    assert ("ubuntu/noble", "amd64/generic") in _by_key(admin)

    admin.post("boot-resources/", params={"op": "import"})
    assert ("ubuntu/noble", "amd64/generic") in _by_key(admin)
    _wait_until_idle(admin)

    remaining = _by_key(admin)
    assert not [key for key in remaining if key[0] == "ubuntu/noble"]
    assert ("ubuntu/jammy", "amd64/generic") in remaining
    assert ("grub-efi-signed/uefi", "amd64/generic") in remaining


def test_stop_import_halts_and_leaves_sets_incomplete(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 5.0)
    jammy = _by_key(admin)[("ubuntu/jammy", "arm64/generic")]
    admin.post("boot-resources/", params={"op": "import"})
    time.sleep(0.1)

    response = admin.post("boot-resources/", params={"op": "stop_import"})
    frozen = _newest_set(admin, jammy["id"])
    time.sleep(0.2)

    assert (response.status_code, response.text) == (
        200,
        "Import of boot resources is being stopped",
    )
    assert _importing(admin) is False
    assert frozen["complete"] is False
    assert _newest_set(admin, jammy["id"]) == frozen


def test_import_after_a_stop_resumes_the_incomplete_sets(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 5.0)
    jammy = _by_key(admin)[("ubuntu/jammy", "arm64/generic")]
    admin.post("boot-resources/", params={"op": "import"})
    time.sleep(0.1)
    admin.post("boot-resources/", params={"op": "stop_import"})
    stopped = _newest_set(admin, jammy["id"])
    _speed_up(simulator, 0.2)

    admin.post("boot-resources/", params={"op": "import"})
    _wait_until_idle(admin)

    finished = _newest_set(admin, jammy["id"])
    assert finished["version"] == stopped["version"]
    assert finished["complete"] is True


def test_import_ops_need_post_and_is_importing_needs_get(admin: Maas) -> None:
    get_import = admin.get("boot-resources/", params={"op": "import"})
    post_status = admin.post("boot-resources/", params={"op": "is_importing"})

    assert (get_import.status_code, get_import.text) == (
        400,
        "Unrecognised signature: method=GET op=import",
    )
    assert post_status.text == "Unrecognised signature: method=POST op=is_importing"


def test_imported_architecture_becomes_usable_for_uploads(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _speed_up(simulator, 0.2)
    fields = [
        ("name", "s390x-image"),
        ("architecture", "s390x/generic"),
        ("size", "1"),
        ("sha256", "f" * 64),
    ]
    assert admin.post("boot-resources/", fields=fields).status_code == 400
    admin.post(
        "boot-sources/1/selections/",
        fields=[
            ("os", "ubuntu"),
            ("release", "focal"),
            ("arches", "s390x"),
            ("subarches", "*"),
            ("labels", "*"),
        ],
    )

    admin.post("boot-resources/", params={"op": "import"})
    assert admin.post("boot-resources/", fields=fields).status_code == 400
    _wait_until_idle(admin)

    assert admin.post("boot-resources/", fields=fields).status_code == 201
