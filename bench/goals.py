"""The goals of national-scale matching, each with the figure measured for it: read from the tables the other
benchmarks wrote to bench/results/ (`<name>.json` beside each `<name>.md`, or the .md itself), printed and
written to bench/results/goals.md. Run last by `make bench`; alone, `python -m bench.goals` reports the latest
results on disk. The figures are the medians the benchmarks report; a goal without a result is "not measured".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import RESULTS, table, tables_of, write_result

Rows = list[dict[str, str]]


@dataclass(frozen=True)
class Goal:
    goal: str
    source: str  # the benchmark (results file) and command that measures it
    read: Callable[[dict[str, Rows]], float | None]  # the figure, from the benchmark's rows
    limit: float
    at_least: bool = False  # the figure must reach the limit (else stay at or under it)
    unit: str = ""


def number(cell: str) -> float | None:
    """The first number in a table cell ("1,543", "0.804", "peak RSS 3,216 MB", "59%"), or None."""
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell)
    return float(m.group().replace(",", "")) if m else None


def load_results(directory: Path = RESULTS) -> dict[str, Rows]:
    """Every result's rows (all its tables joined), by benchmark name."""
    found: dict[str, Rows] = {}
    for md in sorted(directory.glob("*.md")):
        if md.stem == "goals":
            continue
        side = md.with_suffix(".json")
        tables = json.loads(side.read_text("utf-8"))["tables"] if side.exists() else tables_of(md.read_text("utf-8"))
        found[md.stem] = [row for t in tables for row in t]
    return found


def cell(name: str, column: str, **match: str) -> Callable[[dict[str, Rows]], float | None]:
    """The number in `column` of the first row of result `name` whose cells start with each `match` value."""

    def read(results: dict[str, Rows]) -> float | None:
        for row in results.get(name, []):
            if all(row.get(k, "").startswith(v) for k, v in match.items()) and column in row:
                return number(row[column])
        return None

    return read


def newest(name: str, column: str, **match: str) -> Callable[[dict[str, Rows]], float | None]:
    """`cell`, of the last such row: results that keep a row per run (bench/demo.py), newest last."""

    def read(results: dict[str, Rows]) -> float | None:
        return cell(name, column, **match)({name: results.get(name, [])[::-1]})

    return read


def total(name: str, column: str) -> Callable[[dict[str, Rows]], float | None]:
    """The sum of `column` over every row of result `name` that has it."""

    def read(results: dict[str, Rows]) -> float | None:
        values = [number(r[column]) for r in results.get(name, []) if column in r]
        return sum(v for v in values if v is not None) if values else None

    return read


def lag_p95(results: dict[str, Rows]) -> float | None:
    """The worst consumer group's projection lag p95 under the mixed load (ms)."""
    values = [number(r["lag p95 ms"]) for r in results.get("lag", []) if "lag p95 ms" in r]
    found = [v for v in values if v is not None]
    return max(found) if found else None


REALISTIC_100K = "100,000 × 100,000 (realistic)"
REALISTIC_1M = "1,000,000 × 1,000,000 (realistic)"
GOALS = [
    Goal(
        "allocation, realistic 100k × 100k, candidates + solve",
        "allocation (`python -m bench.allocation`)",
        cell("allocation", "total s", **{"lines × lots": REALISTIC_100K}),
        6,
        unit="s",
    ),
    Goal(
        "allocation, realistic 1M × 1M, candidates + solve",
        "allocation (`python -m bench.allocation`)",
        cell("allocation", "total s", **{"lines × lots": REALISTIC_1M}),
        60,
        unit="s",
    ),
    Goal(
        "allocation, realistic 1M × 1M, peak memory",
        "allocation (`python -m bench.allocation`)",
        cell("allocation", "networkx min_cost_flow", **{"lines × lots": REALISTIC_1M}),
        8000,
        unit="MB",
    ),
    Goal(
        "time to proposal at 50 needs/s, empty backlog, p95",
        "time_to_proposal (`python -m bench.time_to_proposal`)",
        cell("time_to_proposal", "p95 s", backlog="empty backlog"),
        1,
        unit="s",
    ),
    Goal(
        "time to proposal, 10,000 open proposals on the same items, p95",
        "time_to_proposal (`python -m bench.time_to_proposal`)",
        cell("time_to_proposal", "p95 s", backlog="10,000 open proposals"),
        1.2,
        unit="s",
    ),
    Goal(
        "time to proposal, 40,000 open lines on other items, every new need (max)",
        "time_to_proposal (`python -m bench.time_to_proposal`)",
        cell("time_to_proposal", "max s", backlog="40,000 open lines"),
        2,
        unit="s",
    ),
    Goal(
        "unrelated need's proposal beside a busy 40,000-line group (max)",
        "continuous (`python -m bench.continuous`)",
        cell("continuous", "max wait s"),
        2,
        unit="s",
    ),
    Goal(
        "mixed load: accept p95",
        "load (`python -m bench.load`)",
        cell("load", "p95 ms", endpoint="POST /v1/proposals/{id}/accept"),
        300,
        unit="ms",
    ),
    Goal(
        "mixed load: proposal reads p95",
        "load (`python -m bench.load`)",
        cell("load", "p95 ms", endpoint="GET /v1/proposals"),
        150,
        unit="ms",
    ),
    Goal("mixed load: errors", "load (`python -m bench.load`)", total("load", "errors"), 0),
    Goal(
        "projection lag p95 under the mixed load, worst consumer group",
        "lag (`python -m bench.lag`)",
        lag_p95,
        500,
        unit="ms",
    ),
    Goal(
        "one matching worker drains a backlog",
        "projection (`python -m bench.projection`)",
        cell("projection", "events/s"),
        2000,
        at_least=True,
        unit="events/s",
    ),
    Goal(
        "default demo (300 sites) completes",
        "demo (`python -m bench.demo`)",
        newest("demo", "seconds", sites="300"),
        240,
        unit="s",
    ),
    Goal(
        "intake (stretch): share of the bare FastAPI + asyncpg ceiling",
        "intake (`python -m bench.intake`)",
        cell("intake", "of ceiling", endpoint="needs service"),
        75,
        at_least=True,
        unit="%",
    ),
]


def verdict(goal: Goal, value: float | None) -> str:
    if value is None:
        return "not measured"
    met = value >= goal.limit if goal.at_least else value <= goal.limit
    return "met" if met else "missed"


def goals_table(results: dict[str, Rows]) -> list[list[str]]:
    rows = []
    for g in GOALS:
        value = g.read(results)
        shown = "—" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")
        target = f"{'≥' if g.at_least else '≤'} {g.limit:,g} {g.unit}".strip()
        rows.append(
            [g.goal, target, f"{shown} {g.unit}".strip() if value is not None else shown, verdict(g, value), g.source]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    rows = goals_table(load_results())
    text = "## Goals of national-scale matching: measured (medians as each benchmark reports them)\n\n" + table(
        ["goal", "target", "measured", "verdict", "measured by"], rows
    )
    text += "\n\nEach figure is read from bench/results/ as the benchmark named last wrote it (this 2-core machine)."
    print(text)
    print(f"\nwritten to {write_result('goals', text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
