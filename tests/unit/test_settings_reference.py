"""docs/configuration.md is generated from the one declaration of every
setting; this fails when someone changes a setting and not the reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _render() -> str:
    spec = importlib.util.spec_from_file_location(
        "settings_reference", ROOT / "scripts" / "settings_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.render()
    return text


def test_the_configuration_reference_matches_the_declarations() -> None:
    on_disk = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert on_disk == _render(), (
        "docs/configuration.md is stale: run "
        "`python scripts/settings_reference.py > docs/configuration.md`"
    )


def test_every_server_setting_is_in_the_reference() -> None:
    from grizz_server.settings import SPECS, env_name

    text = _render()
    for spec in SPECS:
        assert f"`{env_name(spec)}`" in text
