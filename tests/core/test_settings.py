"""Settings the gateway reads at start-up from files: the MAAS API key from a mounted file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli.reporting import describe_settings_error
from app.core.settings import Settings
from tests.conftest import ADMIN_KEY


def settings_error(**values: str) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return describe_settings_error(raised.value)


def test_maas_api_key_is_read_from_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "maas-api-key"
    # As a Secret created with --from-file often holds it: with a trailing newline.
    key_file.write_text(f"{ADMIN_KEY}\n", encoding="utf-8")
    settings = Settings(_env_file=None, maas_api_key_file=str(key_file))
    assert settings.maas_api_key is not None
    assert settings.maas_api_key.get_secret_value() == ADMIN_KEY


def test_maas_api_key_file_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ADMIN_KEY, encoding="utf-8")
    monkeypatch.delenv("MAAS_GATEWAY_MAAS_API_KEY", raising=False)
    monkeypatch.setenv("MAAS_GATEWAY_MAAS_API_KEY_FILE", str(key_file))
    settings = Settings(_env_file=None)
    assert settings.maas_api_key is not None
    assert settings.maas_api_key.get_secret_value() == ADMIN_KEY


def test_a_missing_key_file_is_an_error_naming_the_setting_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    assert settings_error(maas_api_key_file=str(missing)) == (
        f"invalid setting MAAS_GATEWAY_MAAS_API_KEY_FILE: cannot read {missing}: "
        "No such file or directory"
    )


def test_a_key_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    message = settings_error(maas_api_key_file=str(tmp_path))
    assert message.startswith("invalid setting MAAS_GATEWAY_MAAS_API_KEY_FILE: cannot read")


def test_a_key_file_without_a_key_is_an_error_that_never_quotes_it(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("not-a-key-but-secret-anyway\n", encoding="utf-8")
    message = settings_error(maas_api_key_file=str(key_file))
    assert message.startswith(f"invalid setting MAAS_GATEWAY_MAAS_API_KEY_FILE: {key_file} holds")
    assert "not-a-key-but-secret-anyway" not in message


def test_a_key_and_a_key_file_together_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ADMIN_KEY, encoding="utf-8")
    message = settings_error(maas_api_key=ADMIN_KEY, maas_api_key_file=str(key_file))
    assert message == (
        "invalid setting MAAS_GATEWAY_MAAS_API_KEY_FILE: set it or MAAS_GATEWAY_MAAS_API_KEY, "
        "not both"
    )
