"""Feasibility, the candidate index and the factor scores, against hand-made pairs and a plain-Python reference."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from pydantic import ValidationError

from services.matching.errors import InvalidPolicy
from services.matching.models import PolicyVersion
from services.matching.policy import FACTORS, Policy, stored
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates
from services.matching.search import NearestSearch
from shared.catalog import get_catalog
from tests.helpers.scoring import DAY, NOW, PROPERTY, at, build, check, epoch, instances, line_row, lot_row


def pairs(cand: Candidates) -> set[tuple[int, int]]:
    return set(zip(cand.line.tolist(), cand.lot.tolist(), strict=True))


def expected_values(line: dict[str, Any], lot: dict[str, Any], policy: Policy) -> dict[str, float]:
    c = check(line, lot, policy)
    urgency = {"critical": 1.0, "high": 0.7, "normal": 0.4, "low": 0.1}[line["urgency"]]
    deadline, expires = epoch(line["needed_by"]), epoch(lot["expires_at"])
    # A late pair (only a soft line has one) is as tight as can be.
    slack = 0.2 if deadline is None else 1 - min(max((deadline - c.arrival) / DAY / 30, 0), 1)
    if expires is None:
        pressure = 0.0
    else:
        pressure = (1 - min((expires - c.arrival) / DAY / 90, 1)) * (1.0 if lot["perishable"] else 0.5)
    return {
        "urgency": urgency,
        "deadline_slack": slack,
        "distance": 1 - min(c.distance / policy.max_distance_km, 1),
        "quantity_fit": min(lot["available"], line["remaining"]) / line["remaining"],
        "expiry_pressure": pressure,
        "substitute": 1.0 if lot["item_code"] != line["item_code"] else 0.0,
        "equity": 0.5 * (1 - line["site_fill"]) + 0.5 * (1 - line["county_fill"]),
    }


def lateness(line: dict[str, Any], lot: dict[str, Any], policy: Policy) -> float:
    """Points a soft line's pair loses for each hour its lot arrives after needed_by."""
    deadline = epoch(line["needed_by"])
    if line.get("deadline") != "soft" or deadline is None:
        return 0.0
    return max(0.0, check(line, lot, policy).arrival - deadline) / 3600 * policy.lateness_penalty_per_hour


@PROPERTY
@given(instances())
def test_candidates_are_the_nearest_feasible_pairs_with_the_reference_scores(
    instance: tuple[list[dict[str, Any]], list[dict[str, Any]], Policy],
) -> None:
    lines, lots, policy = instance
    cand = build(lines, lots, policy)
    got = pairs(cand)
    assert len(got) == len(cand), "a pair appears twice"
    checks = {(i, j): check(line, lot, policy) for i, line in enumerate(lines) for j, lot in enumerate(lots)}
    for (i, j), c in checks.items():
        if (i, j) in got and c.margin > 1e-6:
            assert c.feasible, (lines[i], lots[j])
    for i in range(len(lines)):
        feasible = {j for j in range(len(lots)) if checks[i, j].feasible and checks[i, j].margin > 1e-6}
        kept = {j for (li, j) in got if li == i}
        sure = {j for j in kept if checks[i, j].margin > 1e-6}
        if len(feasible) <= policy.max_candidates_per_line:
            assert sure == feasible
        else:
            assert len(kept) == policy.max_candidates_per_line
            farthest_kept = max(checks[i, j].distance for j in kept)
            assert all(checks[i, j].distance >= farthest_kept - 1e-9 for j in feasible - kept)
    for p in range(len(cand)):
        i, j = int(cand.line[p]), int(cand.lot[p])
        values = expected_values(lines[i], lots[j], policy)
        total = 0.0
        for f in FACTORS:
            want = policy.weights[f] * values[f] * (-1 if f == "substitute" else 1)
            assert cand.contributions[f][p] == pytest.approx(want, abs=1e-7), f
            total += want
        assert cand.score[p] == pytest.approx(max(0.0, total - lateness(lines[i], lots[j], policy)), abs=1e-6)
        assert cand.distance_km[p] == pytest.approx(checks[i, j].distance, abs=1e-6)
        assert bool(cand.substitute[p]) == (lots[j]["item_code"] != lines[i]["item_code"])
    assert np.all(np.diff(cand.line) >= 0), "sorted by line"


# ---------------------------------------------------------------- hand-made pairs


def test_urgency_orders_scores_and_is_explained() -> None:
    urgencies = ["low", "critical", "normal", "high"]
    cand = build([line_row(id=u, urgency=u) for u in urgencies], [lot_row()])
    by_line = {urgencies[int(i)]: p for p, i in enumerate(cand.line)}
    assert [cand.breakdown(by_line[u])["urgency"] for u in ["critical", "high", "normal", "low"]] == [30, 21, 12, 3]
    scores = [cand.score[by_line[u]] for u in ["critical", "high", "normal", "low"]]
    assert scores == sorted(scores, reverse=True)
    assert set(cand.breakdown(0)) == set(FACTORS)


def test_breakdown_of_a_plain_pair() -> None:
    cand = build(
        [line_row(remaining=200, needed_by=at(10 * 24), site_fill=0.5, county_fill=0.1)],
        [lot_row(km=150, available=50, expires_at=at(45 * 24 + 150 / 40))],
    )
    b = cand.breakdown(0)
    arrival_days = 150 / 40 / 24
    assert b["urgency"] == 12.0
    assert b["deadline_slack"] == pytest.approx(15 * (1 - (10 - arrival_days) / 30), abs=1e-3)
    assert b["distance"] == pytest.approx(15 * (1 - 150 / 1500), abs=2e-3)
    assert b["quantity_fit"] == 2.5
    assert b["expiry_pressure"] == pytest.approx(10 * 0.5 * (1 - 45 / 90), abs=1e-3)
    assert b["substitute"] == 0
    assert b["equity"] == pytest.approx(20 * (0.5 * 0.5 + 0.5 * 0.9))
    assert cand.score[0] == pytest.approx(sum(cand.contributions[f][0] for f in FACTORS))
    assert cand.distance_km[0] == pytest.approx(150, rel=1e-4)


def test_perishables_press_twice_as_hard_and_no_expiry_none() -> None:
    lots = [lot_row(id="p", perishable=True, expires_at=at(24 * 10)), lot_row(id="n", expires_at=at(24 * 10))]
    lots.append(lot_row(id="never"))
    cand = build([line_row()], lots)
    pressure = {int(j): cand.contributions["expiry_pressure"][p] for p, j in enumerate(cand.lot)}
    assert pressure[0] == pytest.approx(2 * pressure[1])
    assert pressure[0] > 8
    assert pressure[2] == 0


def test_substitute_is_penalised_and_flagged() -> None:
    cand = build([line_row(item_code="x.a")], [lot_row(id="same", item_code="x.a"), lot_row(id="sub", item_code="x.b")])
    by_lot = {int(j): p for p, j in enumerate(cand.lot)}
    assert cand.breakdown(by_lot[0])["substitute"] == 0
    assert cand.breakdown(by_lot[1])["substitute"] == -10
    assert not cand.substitute[by_lot[0]]
    assert cand.substitute[by_lot[1]]
    assert cand.score[by_lot[1]] == pytest.approx(cand.score[by_lot[0]] - 10)


def test_score_is_clamped_at_zero() -> None:
    policy = Policy(weights={f: 0.0 for f in FACTORS} | {"substitute": 50.0, "urgency": 1.0})
    cand = build([line_row(item_code="x.a")], [lot_row(item_code="x.b")], policy)
    assert cand.contributions["substitute"][0] == -50
    assert cand.score[0] == 0


def test_substitutes_follow_the_catalog_direction() -> None:
    # "x.a" accepts "x.b" lots; "x.c" accepts nothing else, so a "x.c" line never sees a "x.b" lot even though
    # "x.b" accepts "x.c" lots.
    cand = build([line_row(item_code="x.c"), line_row(item_code="x.b")], [lot_row(item_code="x.b")])
    assert pairs(cand) == {(1, 0)}
    real = build_candidates(
        LineTable.from_rows([line_row(item_code="ppe.mask.kn95"), line_row(item_code="ppe.mask.n95")]),
        LotTable.from_rows([lot_row(item_code="ppe.mask.n95"), lot_row(item_code="water.bottled.small_550ml")]),
        Policy(),
        now=NOW,
        catalog=get_catalog(),
    )
    assert pairs(real) == {(0, 0), (1, 0)}
    assert real.substitute.tolist() == [True, False]


def test_unknown_items_match_only_themselves() -> None:
    cand = build([line_row(item_code="x.z"), line_row(item_code="x.a")], [lot_row(item_code="x.z")])
    assert pairs(cand) == {(0, 0)}


def test_expired_on_arrival_is_excluded() -> None:
    # 100 km at 40 km/h: arrives 2.5 h from now (or from when the lot becomes available).
    lots = [
        lot_row(id="expires-before", expires_at=at(2)),
        lot_row(id="expires-after", expires_at=at(3)),
        lot_row(id="late-start", expires_at=at(5), available_from=at(3)),
        lot_row(id="expired", expires_at=at(-1)),
    ]
    assert pairs(build([line_row()], lots)) == {(0, 1)}
    assert pairs(build([line_row()], lots, Policy(speed_kmh=100))) == {(0, 0), (0, 1), (0, 2)}


def test_deadline_that_cannot_be_met_is_excluded() -> None:
    lines = [
        line_row(id="tight", needed_by=at(2)),
        line_row(id="ok", needed_by=at(3)),
        line_row(id="past", needed_by=at(-1)),
    ]
    lots = [lot_row(), lot_row(id="later", available_from=at(1)), lot_row(id="earlier", available_from=at(-5))]
    # A lot available since yesterday still leaves now, not yesterday.
    assert pairs(build(lines, lots)) == {(1, 0), (1, 2)}


def test_missing_coordinates_use_the_default_distance() -> None:
    cand = build([line_row(lat=None, lon=None, needed_by=at(1.25))], [lot_row()])
    assert cand.distance_km.tolist() == [50.0]
    assert len(build([line_row(lat=None, lon=None, needed_by=at(1.2))], [lot_row()])) == 0


def test_donor_restrictions_are_hard() -> None:
    lines = [
        line_row(id="wuhan-hospital", region_code="420102", site_kind="hospital"),
        line_row(id="wuhan-shelter", region_code="420111", site_kind="shelter"),
        line_row(id="changsha-hospital", region_code="430104", site_kind="hospital"),
        line_row(id="wuhan-hospital-b", item_code="x.b", region_code="420102", site_kind="hospital"),
    ]

    def served(restrictions: dict[str, list[str]]) -> set[int]:
        cand = build(lines, [lot_row(item_code="x.a", restrictions=restrictions)])
        return {i for i, _ in pairs(cand)}

    # The "x.a" lot may serve the "x.b" line as a substitute, unless the donor says otherwise.
    assert served({}) == {0, 1, 2, 3}
    assert served({"region_codes": ["42"]}) == {0, 1, 3}
    assert served({"region_codes": ["420111", "43"]}) == {1, 2}
    assert served({"site_kinds": ["hospital"]}) == {0, 2, 3}
    assert served({"site_kinds": ["shelter", "school"]}) == {1}
    assert served({"region_codes": ["4201"], "site_kinds": ["hospital"]}) == {0, 3}
    assert served({"item_codes": ["x.b"]}) == {3}
    assert served({"item_codes": ["x.a"]}) == {0, 1, 2}
    assert served({"item_codes": ["x.a"], "region_codes": ["43"]}) == {2}


def test_designated_gifts_go_only_where_designated() -> None:
    lines = [
        line_row(id="a-elderly", site_id="site-a", need_id="need-a", beneficiary_groups={"elderly": 40}),
        line_row(id="a-children", site_id="site-a", need_id="need-b", beneficiary_groups={"children": 12}),
        line_row(id="b-both", site_id="site-b", need_id="need-c", beneficiary_groups={"elderly": 3, "children": 5}),
        # A group counted as none served is not served.
        line_row(id="c-none", site_id="site-c", need_id="need-d", beneficiary_groups={"elderly": 0}),
        line_row(id="x.b-at-a", item_code="x.b", site_id="site-a", need_id="need-a"),
    ]

    def served(restrictions: dict[str, list[str]]) -> set[int]:
        cand = build(lines, [lot_row(item_code="x.a", restrictions=restrictions)])
        return {i for i, _ in pairs(cand)}

    assert served({}) == {0, 1, 2, 3, 4}
    assert served({"site_ids": ["site-a"]}) == {0, 1, 4}
    assert served({"site_ids": ["site-b", "site-c"]}) == {2, 3}
    assert served({"need_ids": ["need-a"]}) == {0, 4}
    assert served({"need_ids": ["need-b", "need-c"]}) == {1, 2}
    assert served({"beneficiary_groups": ["elderly"]}) == {0, 2}
    assert served({"beneficiary_groups": ["children", "patients"]}) == {1, 2}
    assert served({"beneficiary_groups": ["patients"]}) == set()
    assert served({"site_ids": ["site-a"], "beneficiary_groups": ["elderly"]}) == {0}
    assert served({"site_ids": ["site-a"], "need_ids": ["need-b"]}) == {1}
    assert served({"site_ids": ["site-b"], "need_ids": ["need-a"]}) == set()
    assert served({"need_ids": ["need-a"], "item_codes": ["x.b"]}) == {4}


def test_designated_sites_match_uuids_however_spelled() -> None:
    site = uuid.uuid4()
    lines = [line_row(id="here", site_id=site, need_id=uuid.uuid4()), line_row(id="there", site_id=uuid.uuid4())]
    lots = [lot_row(restrictions={"site_ids": [str(site).upper()]})]
    assert pairs(build(lines, lots)) == {(0, 0)}


def test_item_categories_allow_every_item_of_the_category() -> None:
    lines = [line_row(id="a", item_code="x.a"), line_row(id="b", item_code="x.b"), line_row(id="c", item_code="x.c")]
    lots = [
        lot_row(id="category", item_code="x.a", restrictions={"item_codes": ["x."]}),
        lot_row(id="other-category", item_code="x.a", restrictions={"item_codes": ["food."]}),
        lot_row(id="codes", item_code="x.c", restrictions={"item_codes": ["x.c", "food."]}),
        # "x" is a code, not a category: "x.c" is not in it.
        lot_row(id="no-dot", item_code="x.c", restrictions={"item_codes": ["x"]}),
    ]
    # The rule is on what the line asks for: the "codes" lot may stand in for "x.b", but its donor gave it for
    # "x.c" (or food) only.
    assert pairs(build(lines, lots)) == {(0, 0), (1, 0), (2, 2)}


@pytest.mark.parametrize("n, m, tree", [(30, 40, False), (300, 400, True)])
def test_designated_gifts_in_the_dense_and_the_tree_search(monkeypatch, n: int, m: int, tree: bool) -> None:
    """Few lines and lots are scanned densely, many are searched in a tree: both keep to the designations."""
    searched: list[str] = []
    for path in ("_dense", "_tree"):
        original = getattr(NearestSearch, path)

        def counted(self: NearestSearch, *args: Any, _path: str = path, _original: Any = original) -> None:
            searched.append(_path)
            _original(self, *args)

        monkeypatch.setattr(NearestSearch, path, counted)
    rng = np.random.default_rng(n)
    rules: list[dict[str, list[str]]] = [
        {},
        {"site_ids": ["s1"]},
        {"need_ids": ["n1", "n2"]},
        {"beneficiary_groups": ["elderly"]},
        {"site_ids": ["s2", "s3"], "beneficiary_groups": ["children", "patients"]},
    ]
    lines = [
        line_row(
            id=f"l{i}",
            lat=30 + rng.random(),
            site_id=str(rng.choice(["s1", "s2", "s3"])),
            need_id=str(rng.choice(["n1", "n2", "n3", "n4"])),
            beneficiary_groups={str(g): 1 for g in rng.choice(["elderly", "children", "patients"], rng.integers(3))},
        )
        for i in range(n)
    ]
    lots = [
        lot_row(km=float(rng.uniform(0, 300)), id=f"o{j}", restrictions=rules[int(rng.integers(len(rules)))])
        for j in range(m)
    ]
    policy = Policy(max_candidates_per_line=5)
    cand = build(lines, lots, policy)
    restricted = 0
    for i, line in enumerate(lines):
        checks = [(check(line, lot, policy), j) for j, lot in enumerate(lots)]
        feasible = sorted((c.distance, j) for c, j in checks if c.feasible)
        got = cand.lot[cand.line == i].tolist()
        assert got == [j for _, j in feasible[:5]]
        restricted += sum(1 for j in got if lots[j]["restrictions"])
    assert restricted > n  # designated lots were among those proposed, not only unrestricted ones
    assert ("_tree" in searched) is tree and (tree or set(searched) == {"_dense"})


def test_verified_need_required_by_policy() -> None:
    lines = [line_row(id="v", verified=True), line_row(id="u", verified=False)]
    assert pairs(build(lines, [lot_row()])) == {(0, 0), (1, 0)}
    assert pairs(build(lines, [lot_row()], Policy(require_verified_need=True))) == {(0, 0)}


def test_max_candidates_per_line_keeps_the_nearest() -> None:
    distances = [70, 10, 250, 30, 5, 900, 45, 20, 120, 60]
    lots = [lot_row(km=km, id=f"lot-{km}") for km in distances]
    # The nearest lot cannot arrive in time; the cut is over feasible lots only.
    lots[4]["available_from"] = at(1000)
    cand = build([line_row(needed_by=at(24 * 5))], lots, Policy(max_candidates_per_line=3))
    assert [distances[j] for j in cand.lot] == [10, 20, 30]
    assert cand.distance_km == pytest.approx([10, 20, 30], rel=1e-4)
    assert len(build([line_row()], lots, Policy(max_candidates_per_line=100))) == 10


def test_candidates_per_line_cut_is_per_line_across_many_lines() -> None:
    rng = np.random.default_rng(7)
    lines = [line_row(id=f"l{i}", item_code=str(rng.choice(["x.a", "x.b"])), lat=30 + rng.random()) for i in range(40)]
    lots = [
        lot_row(km=float(rng.uniform(0, 400)), id=f"o{j}", item_code=str(rng.choice(["x.a", "x.b", "x.c"])))
        for j in range(60)
    ]
    policy = Policy(max_candidates_per_line=4)
    cand = build(lines, lots, policy)
    for i, line in enumerate(lines):
        feasible = sorted(
            (check(line, lot, policy).distance, j) for j, lot in enumerate(lots) if check(line, lot, policy).feasible
        )
        assert cand.lot[cand.line == i].tolist() == [j for _, j in feasible[:4]]


def test_empty_inputs() -> None:
    assert len(build([], [])) == 0
    assert len(build([line_row()], [])) == 0
    assert len(build([], [lot_row()])) == 0
    assert len(build([line_row(item_code="x.c")], [lot_row(item_code="x.a")])) == 0


def test_rows_convert_datetimes_and_fill_perishable_from_the_catalog() -> None:
    lines = LineTable.from_rows([line_row(needed_by=datetime(2025, 6, 1, tzinfo=UTC), lat=None, lon=None)])
    assert lines.needed_by[0] == datetime(2025, 6, 1, tzinfo=UTC).timestamp()
    assert np.isnan(lines.lat[0])
    assert lines.remaining.dtype == np.int64
    lots = LotTable.from_rows(
        [
            lot_row(item_code="food.milk.fresh", perishable=None, restrictions=None),
            lot_row(item_code="ppe.mask.n95", perishable=None, restrictions={"region_codes": ["42"]}),
        ]
    )
    assert lots.perishable.tolist() == [True, False]
    assert lots.restrict_regions == [(), ("42",)]
    assert lots.restrict_kinds == [(), ()]
    designated = LotTable.from_rows(
        [lot_row(restrictions={"site_ids": ["b", "a"], "need_ids": [], "beneficiary_groups": ["elderly"]})]
    )
    assert designated.restrict_sites == [("a", "b")] and designated.restrict_needs == [()]
    assert designated.restrict_groups == [("elderly",)]
    assert np.isnan(lots.expires_at).all()


# ---------------------------------------------------------------- policy


def test_policy_json_round_trip() -> None:
    policy = Policy(
        version=3,
        weights={f: float(i) for i, f in enumerate(FACTORS)},
        tiers=((0.5, 300), (0.5, 20)),
        require_verified_need=True,
        speed_kmh=60.0,
        max_candidates_per_line=20,
        auto_accept_score=90.0,
        proposal_ttl_seconds=600,
    )
    data = json.loads(policy.model_dump_json())
    assert Policy.model_validate(data) == policy
    assert Policy.model_validate(Policy().model_dump(mode="json")) == Policy()
    assert Policy.model_validate({"version": 7}) == Policy(version=7)
    # A stored version's row number wins over the version in its body.
    row = PolicyVersion(version=7, body={"version": 1}, created_by="coord")
    assert stored(row).version == 7


def test_policy_is_immutable_and_hashable() -> None:
    policy = Policy(speed_kmh=40, weights={"urgency": 30})
    assert policy == Policy()
    assert hash(policy) == hash(Policy())
    assert hash(Policy(version=2)) != hash(Policy())
    with pytest.raises(TypeError):
        policy.weights["urgency"] = 99  # type: ignore[index]
    with pytest.raises(ValidationError):
        policy.speed_kmh = 80  # type: ignore[misc]


def test_policy_names_only_what_it_changes() -> None:
    policy = Policy.model_validate({"weights": {"urgency": 50}, "version": 2})
    assert policy.weights["urgency"] == 50
    assert policy.weights["equity"] == 20
    assert set(policy.weights) == set(FACTORS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": {"urgency": -1}}, "must not be negative"),
        ({"weights": {"urgency": "a lot"}}, "finite number"),
        ({"weights": [1, 2]}, "weights must be an object"),
        ({"tiers": [[1.0, 0]]}, "positive"),
        ({"tiers": [[1.0, 40.5]]}, "integer value"),
        ({"tiers": []}, "must not be empty"),
        ({"tiers": [[1.0]]}, "share, value"),
        ({"speed_kmh": 0}, "speed_kmh must be a positive"),
        ({"speed_kmh": -5}, "speed_kmh must be a positive"),
        ({"max_candidates_per_line": 0}, "max_candidates_per_line"),
        ({"max_candidates_per_line": 2.5}, "max_candidates_per_line"),
        ({"max_candidates_per_line": True}, "max_candidates_per_line"),
        ({"require_verified_need": "yes"}, "require_verified_need"),
        ({"max_distance_km": float("inf")}, "max_distance_km"),
        ({"default_distance_km": -1}, "default_distance_km"),
        ({"proposal_ttl_seconds": 0}, "proposal_ttl_seconds"),
        ({"auto_accept_score": -1}, "auto_accept_score"),
        ({"colour": "blue"}, "unknown policy field"),
    ],
)
def test_policy_validation(data: dict[str, Any], message: str) -> None:
    """A malformed or out-of-range field (in a request body: 422 invalid-request)."""
    with pytest.raises(ValueError, match=message):
        Policy.model_validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": {"urgncy": 1}}, "unknown factor"),
        ({"tiers": [[0.5, 400], [0.4, 40]]}, "sum to 1"),
        ({"tiers": [[0.5, 40], [0.5, 400]]}, "strictly decreasing"),
        ({"tiers": [[0.5, 40], [0.5, 40]]}, "strictly decreasing"),
    ],
)
def test_policy_rules(data: dict[str, Any], message: str) -> None:
    """Fields fine each, but not a policy (in a request body: 422 invalid-policy)."""
    with pytest.raises(InvalidPolicy, match=message):
        Policy.model_validate(data)


def test_tier_shares_may_carry_float_noise() -> None:
    shares = [0.2, 0.7, 0.1]
    assert sum(shares) != 1.0
    policy = Policy.model_validate({"tiers": [[s, v] for s, v in zip(shares, [3, 2, 1], strict=True)]})
    assert policy.tiers == ((0.2, 3), (0.7, 2), (0.1, 1))


def test_tiers_may_be_written_as_the_api_shows_them() -> None:
    policy = Policy.model_validate({"tiers": [{"share": 0.75, "value": 300}, {"share": 0.25, "value": 20}]})
    assert policy.tiers == ((0.75, 300), (0.25, 20))
    assert policy.model_dump(mode="json")["tiers"] == [[0.75, 300], [0.25, 20]]  # stored as before


def test_a_soft_line_takes_a_late_lot_at_a_penalty_and_a_hard_line_does_not() -> None:
    # Needed in 2 hours; the lot is 100 km away at 40 km/h: 30 minutes late.
    lines = [line_row(id="hard", needed_by=at(2)), line_row(id="soft", needed_by=at(2), deadline="soft")]
    cand = build(lines, [lot_row(km=100)], Policy(lateness_penalty_per_hour=4.0))
    (p,) = range(len(cand))
    assert lines[int(cand.line[p])]["id"] == "soft"
    on_time = build([line_row(needed_by=at(2.5 + 1e-9), deadline="soft")], [lot_row(km=100)])
    # The same factors as a lot just in time, less 4 points an hour for half an hour.
    assert cand.breakdown(p) == on_time.breakdown(0)
    assert cand.score[p] == pytest.approx(on_time.score[0] - 2.0, abs=1e-4)
