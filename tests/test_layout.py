"""The layout is the architecture: which package may import what, checked by walking every import statement."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FRAMEWORK = {"faust", "aiokafka", "mode"}
WORKER_EXTRA = {"torch", "numpy", "rocksdict", "prometheus_client", "tqdm"}
BASE = {"kafka", "orjson", "pydantic", "pydantic_settings"}


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports (top-level name and full dotted name), wherever the import statement is."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def _violations(paths: list[Path], allowed: set[str] | None, forbidden: set[str]) -> list[str]:
    found = []
    for path in paths:
        for module, line in _imports(path):
            top = module.split(".")[0]
            allowed_here = allowed is None or top in allowed or module.startswith(tuple(allowed))
            if top in forbidden or not allowed_here:
                found.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return found


def _stdlib() -> set[str]:
    import sys

    return set(sys.stdlib_module_names)


@pytest.mark.parametrize(
    "folder", ["models", "state", "streams/contract", "streams/client", "streams/offline", "streams/recommend"]
)
def test_only_the_worker_imports_faust_or_aiokafka(folder: str) -> None:
    assert _violations(_modules(folder), None, FRAMEWORK) == []


def test_the_worker_is_where_faust_is_imported() -> None:
    # The rule above must not hold vacuously: the worker does import the framework.
    imported = {m.split(".")[0] for path in _modules("streams/worker") for m, _ in _imports(path)}
    assert FRAMEWORK & imported


def test_the_contract_needs_only_the_standard_library_and_orjson() -> None:
    allowed = _stdlib() | {"orjson", "streams.contract"}
    assert _violations(_modules("streams/contract"), allowed, set()) == []


def test_the_client_needs_only_the_contract_kafka_python_and_the_settings() -> None:
    allowed = _stdlib() | BASE | {"streams.contract", "streams.client", "streams.settings"}
    assert _violations(_modules("streams/client"), allowed, set()) == []


def test_state_and_models_know_nothing_of_streams_nor_of_faust_files() -> None:
    for folder in ("models", "state"):
        assert _violations(_modules(folder), None, {"streams", *FRAMEWORK}) == []
        for path in _modules(folder):
            text = path.read_text()
            assert "__faust" not in text, f"{path.relative_to(REPO)} knows faust's offset key"
            assert "/tables" not in text and '"tables"' not in text, f"{path.relative_to(REPO)} knows faust's layout"
    assert _violations(_modules("state"), None, {"torch", "models"}) == []
    assert _violations(_modules("models"), None, {"state", "rocksdict"}) == []
