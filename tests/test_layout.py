"""The tests' own layout: fixtures come from conftest files through pytest, shared helpers from tests.helpers; no
module imports a test module or a conftest, and every module under tests/ is a test module, a conftest, a
package marker or a helper in tests/helpers."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.settings import ROOT

CHECKED = ("tests", "bench")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of what `from … import` reads from (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _forbidden(name: str) -> bool:
    """A test module (`test_*`) or a conftest, of the tests package."""
    parts = name.split(".")
    return parts[0] == "tests" and any(p == "conftest" or p.startswith("test_") for p in parts[1:])


def import_violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every import in `source` (at any depth) of a test module or a conftest, as `line: name`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if _forbidden(name)]
    return found


def misplaced(path: Path, root: Path = ROOT) -> bool:
    """A module under tests/ that is neither a test module, a conftest, a package marker nor a helper."""
    rel = path.relative_to(root)
    if rel.parts[0] != "tests" or rel.parts[:2] == ("tests", "helpers"):
        return False
    return not (path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"))


def test_the_rule_catches_every_way_of_importing_a_test_module_or_a_conftest() -> None:
    source = (
        "from tests.conftest import eventually\n"
        "import tests.webhooks.test_delivery\n"
        "from tests.flows import test_error_matrix\n"
        "from .test_scoring import build\n"
        "from . import conftest\n"
        "def later() -> None:\n"
        "    from tests.faults.conftest import scalar\n"
        "from tests.helpers.needs import create_site\n"
        "from tests.helpers import scoring\n"
    )
    found = import_violations(source, "tests.matching.test_allocation")
    assert sorted({int(v.split(":")[0]) for v in found}) == [1, 2, 3, 4, 5, 7], found
    assert misplaced(ROOT / "tests" / "needs" / "helpers.py")
    assert not misplaced(ROOT / "tests" / "helpers" / "needs.py")
    assert not misplaced(ROOT / "tests" / "needs" / "test_needs.py")


def test_no_module_imports_a_test_module_or_a_conftest_and_helpers_live_in_tests_helpers() -> None:
    files = [p for top in CHECKED for p in sorted((ROOT / top).rglob("*.py"))]
    assert len(files) > 50, files
    bad = {
        str(p.relative_to(ROOT)): found
        for p in files
        if (found := import_violations(p.read_text(), module_name(p), is_package=p.name == "__init__.py"))
    }
    assert not bad, f"import plain helpers from tests.helpers, fixtures through pytest: {bad}"
    stray = [str(p.relative_to(ROOT)) for p in files if misplaced(p)]
    assert not stray, f"shared test helpers belong in tests/helpers/: {stray}"
