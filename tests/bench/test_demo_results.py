"""bench/demo.py's record of runs: each run appended to demo.json (with its step timings), demo.md rendered from
every run, bench/goals.py judging the newest run of the default size; and the CPU time it reads from /proc. No
timing of the demo here."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.demo import record, recorded_runs, stack_cpu_seconds, step_seconds
from bench.goals import goals_table, load_results

GOAL = "default demo (300 sites) completes"


def _run(sites: int, seconds: float, commit: str) -> dict[str, Any]:
    return {
        "date": "2026-12-03T12:00:00+00:00",
        "commit": commit,
        "note": "",
        "sites": sites,
        "seconds": seconds,
        "cpu_seconds": seconds / 2,
        "requests": 16_000,
        "superseded_accepted": "0 / 2200",
        "load": 2.0,
        "steps": {"sites and needs": 30.0, "matching: accept rounds": seconds - 30.0},
    }


def test_step_timings_run_from_one_step_s_line_to_the_next_and_notes_within_a_step_count_for_it() -> None:
    lines = [
        (0.5, "creating 300 sites and their needs"),
        (30.0, "matching: waiting for the projection, accepting proposals"),
        (90.0, "  accepted 1130 of 1130 proposals (the others were superseded meanwhile)"),
        (150.0, "2217 proposals accepted; waiting for logistics to plan their shipments"),
        (160.0, "something the table does not know yet"),
    ]
    assert step_seconds(lines, end=200.0) == {
        "sites and needs": 29.5,
        "matching: accept rounds": 120.0,
        "logistics plans the shipments": 10.0,
        "something the table does not know yet": 40.0,
    }


def test_runs_accumulate_and_goals_judge_the_newest_run_of_the_default_size(tmp_path: Path) -> None:
    assert recorded_runs(tmp_path) == []
    assert dict((r[0], r[3]) for r in goals_table(load_results(tmp_path)))[GOAL] == "not measured"
    record(_run(300, 814.0, "aaaaaaa"), tmp_path)
    record(_run(300, 230.4, "bbbbbbb"), tmp_path)
    text = record(_run(20, 40.0, "ccccccc"), tmp_path)  # a small run is recorded but judges nothing

    runs = recorded_runs(tmp_path)
    assert [r["commit"] for r in runs] == ["aaaaaaa", "bbbbbbb", "ccccccc"]
    assert json.loads((tmp_path / "demo.json").read_text("utf-8"))["runs"] == runs
    assert (tmp_path / "demo.md").read_text("utf-8") == text + "\n"
    assert "| matching: accept rounds" in text and "784.0" in text  # the step table, a column per run
    judged = {r[0]: (r[2], r[3]) for r in goals_table(load_results(tmp_path))}
    assert judged[GOAL] == ("230 s", "met")  # whole seconds, as demo.md shows them

    record(_run(300, 300.0, "ddddddd"), tmp_path)
    judged = {r[0]: (r[2], r[3]) for r in goals_table(load_results(tmp_path))}
    assert judged[GOAL] == ("300 s", "missed")


def test_the_projection_lag_goal_reads_the_worst_group_of_lag_json(tmp_path: Path) -> None:
    from bench.common import table, tables_of

    text = table(
        ["consumer group", "events", "lag p50 ms", "lag p95 ms", "goal ms"],
        [["matching-projection", "900", "20", "180", "≤ 500 (met)"], ["needs-rollup", "800", "40", "620", "≤ 500"]],
    )
    (tmp_path / "lag.md").write_text("stale: the JSON beside it wins\n", "utf-8")
    (tmp_path / "lag.json").write_text(json.dumps({"name": "lag", "tables": tables_of(text)}), "utf-8")
    judged = {r[0]: (r[2], r[3]) for r in goals_table(load_results(tmp_path))}
    assert judged["projection lag p95 under the mixed load, worst consumer group"] == ("620 ms", "missed")


def test_the_stack_s_cpu_time_counts_the_processes_under_it() -> None:
    before = stack_cpu_seconds(os.getpid(), "no process names this marker")
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert stack_cpu_seconds(os.getpid(), "no process names this marker") - before >= 0.25
