"""bench/goals.py reads the tables the benchmarks write (their JSON side files, or the Markdown alone) and
judges each goal: met, missed, or not measured when no benchmark wrote the figure. No timing here."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import table, tables_of
from bench.goals import GOALS, goals_table, load_results, number

LOAD = table(
    ["endpoint", "p95 ms", "errors"],
    [["GET /v1/proposals", "1,543", "0"], ["POST /v1/proposals/{id}/accept", "120", "2"]],
)
PROJECTION = table(["consumer", "events/s"], [["matching-projection, one process", "3876"]])
ALLOCATION = table(
    ["lines × lots", "total s", "networkx min_cost_flow"],
    [["1,000,000 × 1,000,000 (realistic)", "57.14", "peak RSS 9,216 MB"]],
)


def verdicts(tmp: Path) -> dict[str, tuple[str, str]]:
    return {row[0]: (row[2], row[3]) for row in goals_table(load_results(tmp))}


def test_goals_are_judged_from_the_json_beside_each_result_or_from_its_markdown(tmp_path: Path) -> None:
    (tmp_path / "load.md").write_text(f"## Mixed load\n\n{LOAD}\n\nErrors: 2.\n", "utf-8")
    (tmp_path / "projection.md").write_text("stale, the JSON beside it wins\n", "utf-8")
    (tmp_path / "projection.json").write_text(json.dumps({"tables": tables_of(PROJECTION)}), "utf-8")
    (tmp_path / "allocation.md").write_text(ALLOCATION + "\n", "utf-8")
    (tmp_path / "goals.md").write_text(table(["goal"], [["not a result"]]), "utf-8")

    got = verdicts(tmp_path)
    assert len(got) == len(GOALS)
    assert got["mixed load: proposal reads p95"] == ("1,543 ms", "missed")
    assert got["mixed load: accept p95"] == ("120 ms", "met")
    assert got["mixed load: errors"] == ("2", "missed")
    assert got["one matching worker drains a backlog"] == ("3,876 events/s", "met")
    assert got["allocation, realistic 1M × 1M, candidates + solve"] == ("57.14 s", "met")
    assert got["allocation, realistic 1M × 1M, peak memory"] == ("9,216 MB", "missed")
    assert got["allocation, realistic 100k × 100k, candidates + solve"] == ("—", "not measured")
    assert got["default demo (300 sites) completes"] == ("—", "not measured")


def test_a_table_cell_reads_as_its_first_number() -> None:
    assert number("peak RSS 3,216 MB") == 3216
    assert number("59%") == 59
    assert number("0.804") == 0.804
    assert number("not run") is None
    rows = tables_of(f"text\n\n{LOAD}\n\nmore\n\n{PROJECTION}\n")
    assert [len(t) for t in rows] == [2, 1] and rows[1][0]["events/s"] == "3876"
