"""Imports flow one way (DESIGN.md, Layout): checked by parsing every module, not importing it.

learning and storage sit at the bottom, chain beside them, protocol composes them,
and sim, cli and dashboard sit on top. Every ``import`` and ``from ... import``
anywhere in a file counts, including those inside functions and TYPE_CHECKING blocks:
a lazy import is still a dependency.
"""

import ast
import sys
from pathlib import Path

import pytest

import fedchain

PACKAGE = Path(fedchain.__file__).parent
TOP = ("fedchain.sim", "fedchain.cli", "fedchain.dashboard")

# layer -> packages it must not import
FORBIDDEN = {
    "fedchain.learning": ("fedchain.chain", "fedchain.protocol", *TOP),
    "fedchain.storage": ("fedchain.chain", "fedchain.protocol", *TOP),
    "fedchain.chain": ("fedchain.learning", "fedchain.protocol", *TOP),
    "fedchain.protocol": TOP,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved)."""
    names = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            # ``from fedchain import chain`` imports the subpackage fedchain.chain
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(path: Path) -> list[str]:
    module = module_name(path)
    layer = next((lay for lay in FORBIDDEN if within(module, lay)), None)
    if layer is None:
        return []
    imported = imported_modules(path.read_text(), module, path.name == "__init__.py")
    bad = {name for name in imported if any(within(name, banned) for banned in FORBIDDEN[layer])}
    # ``from fedchain.chain.abi import Codec`` yields fedchain.chain.abi and ...abi.Codec: name it once
    bad = {name for name in bad if name.rpartition(".")[0] not in bad}
    return sorted(f"{module} imports {name}" for name in bad)


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_exist_and_are_scanned():
    scanned = {module_name(p) for p in SOURCES}
    for layer in FORBIDDEN:
        assert any(within(m, layer) for m in scanned), f"no modules found under {layer}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    assert violations(path) == []


# ---------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import fedchain.chain.abi", {"fedchain.chain.abi"}),
        ("from fedchain.protocol.journal import Journal", {"fedchain.protocol.journal"}),
        ("from fedchain import chain", {"fedchain.chain"}),
        ("from ..chain import abi", {"fedchain.chain.abi"}),
        ("from .. import protocol", {"fedchain.protocol"}),
        ("from . import fixedpoint", {"fedchain.learning.fixedpoint"}),
        ("def f():\n    from fedchain.sim import network\n", {"fedchain.sim.network"}),
    ],
)
def test_checker_resolves_imports(source, expected):
    found = imported_modules(source, "fedchain.learning.scoring")
    assert expected <= found


def test_checker_flags_a_forbidden_import(tmp_path, monkeypatch):
    fake = tmp_path / "fedchain" / "learning" / "leak.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..chain.abi import Codec\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "fedchain")
    assert violations(fake) == ["fedchain.learning.leak imports fedchain.chain.abi"]
