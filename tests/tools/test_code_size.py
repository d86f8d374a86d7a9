"""tools/code_size.py: functions over the complexity limit and modules over the line limit are reported,
nested functions and methods included, migrations and code outside the application packages not."""

from __future__ import annotations

from pathlib import Path

from tools.code_size import MAX_COMPLEXITY, MAX_LINES, main, violations


def _branchy(name: str, branches: int, indent: str = "") -> str:
    body = "".join(f"{indent}    if x == {i}:\n{indent}        return {i}\n" for i in range(branches))
    return f"{indent}def {name}(x: int) -> int:\n{body}{indent}    return -1\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_complex_functions_methods_closures_and_long_modules_are_reported(tmp_path: Path) -> None:
    over = MAX_COMPLEXITY  # `branches` ifs and the function itself: one over the limit
    nested = "def outer() -> None:\n" + _branchy("inner", over, indent="    ") + "    return None\n"
    method = "class Policy:\n" + _branchy("check", over, indent="    ")
    root = _tree(
        tmp_path,
        {
            "services/a/service.py": _branchy("at_limit", over - 1) + _branchy("over", over),
            "services/a/scoring.py": method,
            "shared/kit.py": nested,
            "reliefhub/long.py": "x = 1\n" * (MAX_LINES + 1),
            "reliefhub/short.py": "x = 1\n" * MAX_LINES,
            "services/a/migrations/versions/0001_initial.py": _branchy("upgrade", 40) + "x = 1\n" * 800,
            "tests/test_big.py": _branchy("test_many", 40),
        },
    )
    second = 2 * over + 1  # `at_limit` takes its def, its ifs' two lines each, and its last return
    assert sorted(violations(root)) == [
        "reliefhub/long.py:1: 701 lines (at most 700)",
        "services/a/scoring.py:2: Policy.check has complexity 21 (at most 20)",
        f"services/a/service.py:{second}: over has complexity 21 (at most 20)",
        "shared/kit.py:2: inner has complexity 21 (at most 20)",
    ]
    assert main([str(root)]) == 1


def test_code_within_the_limits_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"services/a/service.py": _branchy("fine", MAX_COMPLEXITY - 1), "shared/x.py": ""})
    assert violations(root) == []
    assert main([str(root)]) == 0
