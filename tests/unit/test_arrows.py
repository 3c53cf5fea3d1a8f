"""Arrows point one way: the product (every module of streams, schemas, matchers, gateway and
dashboard) never imports the load generator or the tests, checked by importing all of it in a
fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("streams", "schemas", "matchers", "gateway", "dashboard")

_IMPORT_ALL = f"""
import importlib, json, pkgutil, sys
for name in {PRODUCT!r}:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_product_never_imports_loadtest_or_the_tests() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, check=True
    )
    modules = json.loads(result.stdout)
    assert "streams.cli" in modules and "gateway.app" in modules  # it did import them
    assert [m for m in modules if m.split(".")[0] in ("loadtest", "tests")] == []


def test_no_product_source_imports_loadtest_or_the_tests_even_lazily() -> None:
    """Imports inside functions too (an import run only by one command is an arrow all the
    same)."""
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] in ("loadtest", "tests")
                ]
    assert found == []
