"""The check of a destination and items against a gift's or a fund's restrictions: one message per rule broken."""

from __future__ import annotations

import uuid

import pytest

from shared.restrictions import Destination, Restrictions, item_allowed, union, violations

HOME = Destination(site_id=uuid.uuid4(), site_kind="nursing_home", region_code="310104", groups=frozenset({"elderly"}))


def test_a_nursing_home_restriction_allows_a_nursing_home_and_names_the_rule_for_a_hospital() -> None:
    rules = Restrictions(site_kinds=["nursing_home"]).model_dump(mode="json")
    assert violations(rules, HOME, ["food.grain.rice"]) == []
    hospital = Destination(site_id=uuid.uuid4(), site_kind="hospital", region_code="310104")
    assert violations(rules, hospital, ["food.grain.rice"]) == [
        "site_kinds: a hospital site is not one of nursing_home"
    ]


def test_each_broken_rule_is_named_once() -> None:
    rules = {
        "region_codes": ["4201"],
        "item_codes": ["medical."],
        "site_ids": [str(uuid.uuid4())],
        "beneficiary_groups": ["children"],
    }
    found = violations(rules, HOME, ["food.grain.rice", "water.bottled.small_550ml"])
    assert [v.split(":", 1)[0] for v in found] == [
        "region_codes",
        "site_ids",
        "item_codes",
        "item_codes",
        "beneficiary_groups",
    ]


def test_designated_needs_and_item_categories() -> None:
    need = uuid.uuid4()
    rules = {"need_ids": [str(need)]}
    assert violations(rules, Destination(need_ids=frozenset({need})), []) == []
    assert violations(rules, Destination(need_ids=frozenset({uuid.uuid4()})), []) != []
    assert item_allowed(["food."], "food.grain.rice") and not item_allowed(["food."], "water.bottled.small_550ml")
    assert item_allowed([], "anything")


def test_stored_keeps_the_three_original_rules_and_only_the_new_ones_set() -> None:
    site = uuid.uuid4()
    assert Restrictions().stored() == {"region_codes": [], "site_kinds": [], "item_codes": []}
    assert Restrictions(site_ids=[site]).stored() == {
        "region_codes": [],
        "site_kinds": [],
        "item_codes": [],
        "site_ids": [str(site)],
    }


def test_union_keeps_every_sources_rules_and_narrows_shared_ones() -> None:
    shanghai_food = {"region_codes": ["31"], "item_codes": ["food."], "site_kinds": ["nursing_home", "hospital"]}
    pudong_rice = {"region_codes": ["310115"], "item_codes": ["food.grain.rice"], "site_kinds": ["nursing_home"]}
    elderly = {"beneficiary_groups": ["elderly"], "site_kinds": []}
    got = union(shanghai_food, pudong_rice, elderly)
    assert got == {
        "region_codes": ["310115"],
        "item_codes": ["food.grain.rice"],
        "site_kinds": ["nursing_home"],
        "beneficiary_groups": ["elderly"],
    }
    assert union({}, {"site_kinds": []}) == {}
    with pytest.raises(ValueError, match="site_kinds"):
        union({"site_kinds": ["hospital"]}, {"site_kinds": ["nursing_home"]})
    with pytest.raises(ValueError, match="region_codes"):
        union({"region_codes": ["31"]}, {"region_codes": ["11"]})
