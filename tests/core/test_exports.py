"""The lazy public API: `__all__`, `_EXPORTS` and the TYPE_CHECKING imports name the same objects."""

from __future__ import annotations

import ast
import importlib
import inspect
from types import ModuleType

import pytest

PACKAGES = ["sigv4_proxy", "sigv4_proxy.emulate"]


def _type_checking_imports(package: ModuleType) -> dict[str, str]:
    """name -> module for every `from module import name` inside the package's `if TYPE_CHECKING:` block."""
    tree = ast.parse(inspect.getsource(package))
    imports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                imports.update({alias.name: statement.module for alias in statement.names})
    return imports


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_the_lazy_exports(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__all__ == sorted(package._EXPORTS)


@pytest.mark.parametrize("name", PACKAGES)
def test_type_checking_imports_match_the_lazy_exports(name: str) -> None:
    package = importlib.import_module(name)
    assert _type_checking_imports(package) == package._EXPORTS


@pytest.mark.parametrize("name", PACKAGES)
def test_every_export_resolves_from_its_module(name: str) -> None:
    package = importlib.import_module(name)
    for public, module in package._EXPORTS.items():
        assert getattr(package, public) is getattr(importlib.import_module(module), public)
