"""Units and safe substitution in the allocation model: converted substitutes never give a line less than it
is credited nor take more than a lot has, medical lines at hospitals get no general-grade substitute without an
override, and the optimum is the integer programme's, found independently by HiGHS (scipy.optimize.linprog)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog

from services.matching.allocation import allocate, objective_of, pair_values, tier_capacities, tier_values
from services.matching.policy import Policy
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates, substitution_allowed
from shared.catalog import Catalog, Item, ItemName, SubstituteRule
from tests.helpers.scoring import NOW, PROPERTY, line_row, lot_row


def _item(code: str, grade: str, rules: list[SubstituteRule]) -> Item:
    return Item(
        code=code,
        name=ItemName(zh=code, en=code),
        category="x",
        unit="piece",
        grade=grade,
        unit_value_fen=100,
        perishable=False,
        substitutes=[r.code for r in rules],
        substitute_rules=rules,
        check_by=None,
    )


# "m.barrel" (18.9 L) may take "m.bottle" (5 L) at 5/18.9 a unit; "m.medical" (a medical-grade mask) may take
# "m.general" (a general-grade one) but not at hospitals, and "m.bottle" never at schools.
UNITS = Catalog(
    [
        _item("m.barrel", "general", [SubstituteRule(code="m.bottle", factor=5 / 18.9)]),
        _item(
            "m.bottle",
            "general",
            [SubstituteRule(code="m.barrel", factor=3.78), SubstituteRule(code="m.carton", factor=2.64)],
        ),
        _item("m.carton", "general", [SubstituteRule(code="m.bottle", factor=0.25, not_for_site_kinds=["school"])]),
        _item("m.medical", "medical", [SubstituteRule(code="m.general", factor=1.0)]),
        _item("m.general", "general", [SubstituteRule(code="m.medical", factor=2.0)]),
    ]
)
CODES = ["m.barrel", "m.bottle", "m.carton", "m.medical", "m.general"]


def _factor(line_item: str, lot_item: str) -> float:
    rule = UNITS.substitute_rule(line_item, lot_item)
    assert rule is not None
    return rule.factor


@st.composite
def unit_instances(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n_lines, n_lots = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    lines = [
        line_row(
            id=f"line-{i}",
            item_code=draw(st.sampled_from(CODES)),
            remaining=draw(st.integers(1, 40)),
            site_kind=draw(st.sampled_from(["hospital", "shelter", "school"])),
            substitution_override=draw(st.booleans()),
            urgency=draw(st.sampled_from(["critical", "normal", "low"])),
        )
        for i in range(n_lines)
    ]
    lots = [
        lot_row(
            km=draw(st.floats(1, 200)),
            id=f"lot-{j}",
            item_code=draw(st.sampled_from(CODES)),
            available=draw(st.integers(0, 60)),
        )
        for j in range(n_lots)
    ]
    return lines, lots


def _solve(lines: list[dict[str, Any]], lots: list[dict[str, Any]]) -> tuple[Candidates, Any, np.ndarray, np.ndarray]:
    policy = Policy()
    line_t, lot_t = LineTable.from_rows(lines), LotTable.from_rows(lots)
    cand = build_candidates(line_t, lot_t, policy, now=NOW, catalog=UNITS)
    return cand, allocate(line_t.remaining, lot_t.available, cand, policy), line_t.remaining, lot_t.available


def integer_programme(remaining: np.ndarray, available: np.ndarray, cand: Candidates, policy: Policy) -> float:
    """The model written out again as a dense integer programme: given x and credited c per pair, tier units y;
    c <= factor·x, Σ x per lot <= available, Σ c per line = Σ y per line; maximise Σ score·c + Σ value·y."""
    m, n = len(cand), len(remaining)
    caps = tier_capacities(remaining, policy)
    k = caps.shape[1]
    values = tier_values(policy) / 100
    scores = pair_values(cand) / 100
    size = 2 * m + n * k
    a_ub, b_ub = [], []
    for j in range(len(available)):
        row = np.zeros(size)
        row[:m][cand.lot == j] = 1
        a_ub.append(row)
        b_ub.append(available[j])
    for p in range(m):
        row = np.zeros(size)
        row[p], row[m + p] = -cand.factor[p], 1
        a_ub.append(row)
        b_ub.append(0)
    a_eq = np.zeros((n, size))
    for p in range(m):
        a_eq[cand.line[p], m + p] = 1
    for i in range(n):
        a_eq[i, 2 * m + i * k : 2 * m + (i + 1) * k] = -1
    c = -np.concatenate([np.zeros(m), scores, np.tile(values, n)])
    bounds = [(0, None)] * (2 * m) + [(0, int(u)) for u in caps.ravel()]
    res = linprog(
        c,
        A_ub=np.array(a_ub),
        b_ub=np.array(b_ub),
        A_eq=a_eq,
        b_eq=np.zeros(n),
        bounds=bounds,
        integrality=np.ones(size),
        method="highs",
    )
    assert res.status == 0, res.message
    return float(-res.fun)


@PROPERTY
@given(unit_instances())
def test_converted_allocations_respect_units_safety_and_the_optimum(instance: Any) -> None:
    lines, lots = instance
    cand, result, remaining, available = _solve(lines, lots)
    given_, credited = result.flow, result.credited
    assert credited is not None
    # Base units given never exceed what a lot has, and are never less than what the line is credited.
    assert (np.bincount(cand.lot, weights=given_, minlength=len(lots)) <= available).all()
    assert (np.bincount(cand.line, weights=credited, minlength=len(lines)) <= remaining).all()
    for p in np.flatnonzero(given_ | credited):
        line, lot = lines[cand.line[p]], lots[cand.lot[p]]
        factor = _factor(line["item_code"], lot["item_code"])
        assert cand.factor[p] == pytest.approx(factor)
        assert credited[p] <= math.floor(given_[p] * factor + 1e-9), (line, lot, given_[p], credited[p])
        # No more given than the credit needs: one lot unit less would not cover it.
        assert (given_[p] - 1) * factor < credited[p] or credited[p] == 0
        # Safe substitution: a medical line at a hospital takes a general-grade lot only with an override.
        if line["item_code"] == "m.medical" and lot["item_code"] == "m.general" and line["site_kind"] == "hospital":
            assert line["substitution_override"], (line, lot)
        assert substitution_allowed(
            line["item_code"],
            lot["item_code"],
            line["site_kind"],
            override=line["substitution_override"],
            catalog=UNITS,
        )
    policy = Policy()
    assert objective_of(credited, remaining, cand, policy) == pytest.approx(result.objective, abs=1e-6)
    assert result.objective == pytest.approx(integer_programme(remaining, available, cand, policy), abs=1e-6)


def test_a_barrel_line_is_filled_by_enough_bottles_never_fewer_litres() -> None:
    """2 barrels of 18.9 L asked, 5 L bottles offered: 8 bottles (40 L) go, 2 barrels are credited."""
    lines = [line_row(id="barrels", item_code="m.barrel", remaining=2, site_kind="shelter")]
    lots = [lot_row(km=10, id="bottles", item_code="m.bottle", available=100)]
    _, result, _, _ = _solve(lines, lots)
    assert result.flow.tolist() == [8] and result.credited is not None and result.credited.tolist() == [2]


def test_one_lot_unit_worth_several_line_units() -> None:
    """A barrel stands for 3.78 bottles: 10 bottles asked take 3 barrels (11.34 bottles' worth), credit 10."""
    lines = [line_row(id="bottles", item_code="m.bottle", remaining=10, site_kind="shelter")]
    lots = [lot_row(km=10, id="barrels", item_code="m.barrel", available=5)]
    _, result, _, _ = _solve(lines, lots)
    assert result.flow.tolist() == [3] and result.credited is not None and result.credited.tolist() == [10]


def test_medical_lines_at_hospitals_take_no_general_substitute_unless_overridden() -> None:
    lots = [lot_row(km=10, id="general", item_code="m.general", available=50)]
    hospital = line_row(id="h", item_code="m.medical", remaining=10, site_kind="hospital")
    assert len(_solve([hospital], lots)[0]) == 0
    overridden = {**hospital, "substitution_override": True}
    assert _solve([overridden], lots)[1].flow.tolist() == [10]
    shelter = line_row(id="s", item_code="m.medical", remaining=10, site_kind="shelter")
    assert _solve([shelter], lots)[1].flow.tolist() == [10]
    # A rule's excluded site kinds hold whatever the override.
    school = line_row(id="k", item_code="m.carton", remaining=4, site_kind="school", substitution_override=True)
    assert len(_solve([school], [lot_row(km=5, id="b", item_code="m.bottle", available=9)])[0]) == 0
