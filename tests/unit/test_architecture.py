"""Architecture rules the import linter cannot see.

- What a fresh interpreter loads: the server's entry modules (and its
  `--help`) never load the terminal UI, rich or the keyring; `grizz ask` and
  the `grizz` CLI never load Textual, up to running a command.
- Every setting is declared once: one `setting()` field per dotted key, the
  `SPECS` tables derived from those fields (no hand-written list beside
  them), no key or name written out a second time in the settings modules,
  and each rebindable key (`TUI_KEYS`) listed once.

The server store's schema rule (a migrated database equals `schema.py`) needs
the PostgreSQL fixtures: it is tests/server/test_schema.py.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import grizz_core.settings as core_settings
import grizz_server.settings as server_settings
import grizz_tui.config as tui_config
from grizz_core.settings import Spec, specs

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
for name in {modules!r}:
    __import__(name)
for argv in {commands!r}:
    sys.argv = argv[:1] + argv[2:]
    main = __import__(argv[1], fromlist=["main"]).main
    try:
        main()
    except SystemExit:
        pass
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({forbidden!r}))
print("\\nLOADED", json.dumps(loaded))
"""


def _loaded(
    modules: list[str], commands: list[list[str]], forbidden: set[str]
) -> list[str]:
    """The `forbidden` top-level packages a fresh interpreter has loaded after
    importing `modules` and running each command ([prog, module, *args])."""
    probe = _PROBE.format(
        modules=modules, commands=commands, forbidden=sorted(forbidden)
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if x.startswith("LOADED ")]
    assert len(lines) == 1, (result.stdout, result.stderr)
    loaded: list[str] = json.loads(lines[0].removeprefix("LOADED "))
    return loaded


def test_the_server_never_loads_the_terminal_ui_rich_or_the_keyring() -> None:
    modules = [
        "grizz_server.cli",
        "grizz_server.gateway.server",
        "grizz_server.worker.runner",
        "grizz_server.launcher",
    ]
    commands = [
        ["grizz-server", "grizz_server.cli", "--help"],
        ["grizz-server", "grizz_server.cli", "users", "--help"],
        ["grizz-server", "grizz_server.cli", "check", "--no-such-flag"],
    ]
    assert _loaded(modules, commands, {"textual", "rich", "keyring"}) == []


def test_grizz_ask_and_the_cli_never_load_textual() -> None:
    commands = [
        ["grizz", "grizz_tui.cli", "ask", "--help"],
        ["grizz", "grizz_tui.cli", "--help"],
        # the ask path itself, up to its error: no provider is set here
        ["grizz", "grizz_tui.cli", "ask", "hello"],
    ]
    assert _loaded(["grizz_tui.ask", "grizz_tui.cli"], commands, {"textual"}) == []


# -- every setting declared once ----------------------------------------------

SETTINGS_CLASSES = [
    core_settings.ProviderSettings,
    tui_config.Settings,
    server_settings.ServerSettings,
]
SETTINGS_MODULES = [core_settings, tui_config, server_settings]


def _setting_fields(cls: type) -> list[dataclasses.Field[object]]:
    return [f for f in dataclasses.fields(cls) if "grizz.setting" in f.metadata]


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__qualname__)
def test_each_setting_field_has_its_own_dotted_key(cls: type) -> None:
    found = specs(cls)
    assert [s.attr for s in found] == [f.name for f in _setting_fields(cls)]
    keys = [s.key for s in found]
    assert len(keys) == len(set(keys)), Counter(keys).most_common(3)
    for spec in found:  # attribute names are keys with `.` -> `_`
        assert spec.attr == spec.key.replace(".", "_"), spec


def _tui_key_specs() -> tuple[Spec, ...]:
    return tuple(
        s for s in tui_config.SPECS if s.key.startswith(tui_config.KEYS_PREFIX)
    )


def test_specs_are_derived_from_the_fields() -> None:
    assert specs(server_settings.ServerSettings) == server_settings.SPECS
    assert specs(tui_config.Settings) + _tui_key_specs() == tui_config.SPECS
    assert [s.key for s in _tui_key_specs()] == [
        tui_config.KEYS_PREFIX + name for name, _, _ in tui_config.TUI_KEYS
    ]
    provider = specs(core_settings.ProviderSettings)  # inherited, not re-declared
    for derived in (tui_config.SPECS, server_settings.SPECS):
        assert derived[: len(provider)] == provider
    for table, by_key in (
        (tui_config.SPECS, tui_config.SPEC_BY_KEY),
        (server_settings.SPECS, server_settings.SPEC_BY_KEY),
    ):
        assert list(by_key) == [s.key for s in table]  # no key twice


def test_each_rebindable_key_is_listed_once() -> None:
    ids = [name for name, _, _ in tui_config.TUI_KEYS]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    assert all(keys and doc for _, keys, doc in tui_config.TUI_KEYS)


def _declared_literals(tree: ast.Module) -> Counter[str]:
    """String literals that declare something: not docstrings, and not the
    names a comparison or a `.get()` looks a setting up by (`name == "port"`)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # a docstring
        for stmt in body if isinstance(body, list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                skip.add(id(stmt.value))  # an attribute docstring
        is_get = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
        )
        if isinstance(node, ast.Compare) or is_get:
            skip.update(id(inner) for inner in ast.walk(node))
    return Counter(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
    )


def test_no_setting_is_written_out_a_second_time() -> None:
    """A setting's name lives in its field; a dotted key once, in `key=`;
    a rebindable key's id once, in `TUI_KEYS`."""
    declared: Counter[str] = Counter()
    for module in SETTINGS_MODULES:
        assert module.__file__ is not None
        declared += _declared_literals(ast.parse(Path(module.__file__).read_text()))
    fields = [f for cls in SETTINGS_CLASSES for f in _setting_fields(cls)]
    attrs = {f.name for f in fields}
    keys = {s.key for cls in SETTINGS_CLASSES for s in specs(cls)} - attrs
    ids = {name for name, _, _ in tui_config.TUI_KEYS}
    assert {a: declared[a] for a in attrs if declared[a]} == {}
    assert {k: declared[k] for k in keys} == dict.fromkeys(keys, 1)
    assert {i: declared[i] for i in ids} == dict.fromkeys(ids, 1)
