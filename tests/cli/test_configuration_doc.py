"""docs/configuration.md: rendered from the Settings class, committed, and checked for drift."""

from __future__ import annotations

from pathlib import Path

from app.cli import export as contracts
from app.cli.configuration_doc import CONFIGURATION_DOC, render_configuration
from app.core.settings import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]


def rows() -> dict[str, list[str]]:
    table = [line for line in render_configuration().splitlines() if line.startswith("| `")]
    return {
        cells[0].strip("` "): [c.strip() for c in cells[1:]]
        for cells in (line.strip("|").split(" | ") for line in table)
    }


def test_configuration_doc_has_one_row_per_setting_in_declaration_order() -> None:
    names = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    assert list(rows()) == names


def test_configuration_doc_shows_type_limits_default_and_meaning() -> None:
    table = rows()
    assert table["MAAS_GATEWAY_MAAS_RETRIES"][:2] == ["integer, ≥ 0, ≤ 10", "`2`"]
    assert table["MAAS_GATEWAY_MAAS_TIMEOUT"][:2] == ["number, > 0", "`30.0`"]
    assert table["MAAS_GATEWAY_MAAS_API_KEY"][:2] == ["secret string (optional)", "unset"]
    assert table["MAAS_GATEWAY_UPLOAD_CHUNK_SIZE"][1] == "`4194304` (4 MiB)"
    assert table["MAAS_GATEWAY_AUTH_MODE"][0] == "one of `service`, `passthrough`"
    assert table["MAAS_GATEWAY_GRAPHIQL"][:2] == ["boolean", "`true`"]
    assert table["MAAS_GATEWAY_SHUTDOWN_TIMEOUT"][2].startswith("Seconds in-flight requests")
    for name, (_, _, meaning) in table.items():
        assert meaning, f"{name} has no description in the Settings class"


def test_committed_configuration_doc_matches_the_settings() -> None:
    committed = (REPO / "docs" / CONFIGURATION_DOC).read_text(encoding="utf-8")
    assert committed == render_configuration(), "run `maas-gateway export`"


def test_export_check_reports_a_stale_configuration_doc(tmp_path: Path) -> None:
    contracts.write(tmp_path, tmp_path)
    assert contracts.check(tmp_path, tmp_path) == []
    doc = tmp_path / CONFIGURATION_DOC
    doc.write_text(doc.read_text().replace("MAAS_GATEWAY_LOG_FORMAT", "MAAS_GATEWAY_LOG_STYLE"))
    assert contracts.check(tmp_path, tmp_path) == [
        f"{doc} differs from the app: run `maas-gateway export`"
    ]
    doc.unlink()
    assert contracts.check(tmp_path, tmp_path) == [f"{doc} is missing: run `maas-gateway export`"]
