"""Size limits of application code (shared/, services/, reliefhub/; migrations excepted): no function or method
with a cyclomatic complexity (radon's) above 20, no module over 700 lines. Prints what is over; exit 1 then.

`python -m tools.code_size [ROOT]`; `make lint` runs it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

MAX_COMPLEXITY = 20
MAX_LINES = 700
PACKAGES = ("shared", "services", "reliefhub")


def modules(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                yield path


def _functions(blocks: Iterable[Function | Class]) -> Iterator[Function]:
    """Functions and methods (radon lists a class's methods beside it), and the functions defined inside them."""
    for block in blocks:
        if isinstance(block, Function):
            yield block
            yield from _functions(block.closures)


def violations(root: Path) -> list[str]:
    """One line per function too complex and per module too long, as `path:line: what`."""
    found = []
    for path in modules(root):
        text = path.read_text()
        name = path.relative_to(root).as_posix()
        lines = len(text.splitlines())
        if lines > MAX_LINES:
            found.append(f"{name}:1: {lines} lines (at most {MAX_LINES})")
        for function in _functions(cc_visit(text)):
            if function.complexity > MAX_COMPLEXITY:
                found.append(
                    f"{name}:{function.lineno}: {function.fullname} has complexity {function.complexity} "
                    f"(at most {MAX_COMPLEXITY})"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    found = violations(root)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
