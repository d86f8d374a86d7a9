"""The item catalog: enough items, consistent codes and substitutes, the working groups that check them."""

from __future__ import annotations

import re

from shared.catalog import get_catalog

CATALOG = get_catalog()


def test_the_catalog_is_big_enough_and_codes_are_unique() -> None:
    codes = [i.code for i in CATALOG.items]
    assert len(codes) >= 60
    assert len(set(codes)) == len(codes)


def test_categories_cover_what_a_disaster_needs() -> None:
    required = {"ppe", "medical_device", "food", "water", "shelter", "hygiene", "infant", "service"}
    assert required <= set(CATALOG.categories())
    for category in required:
        assert CATALOG.search(category=category), category


def test_every_item_is_well_formed() -> None:
    problems = []
    for item in CATALOG.items:
        if not re.fullmatch(r"[a-z_]+(\.[a-z0-9_]+)+", item.code) or not item.code.startswith(item.category + "."):
            problems.append(f"{item.code}: code is not <category>.<...> in lower case")
        if not re.search(r"[\u4e00-\u9fff]", item.name.zh) or not item.name.en.strip():
            problems.append(f"{item.code}: needs a Chinese and an English name")
        if not item.unit or item.unit_value_fen < 0:
            problems.append(f"{item.code}: unit {item.unit!r}, value {item.unit_value_fen}")
        for code in item.substitutes:
            if code not in CATALOG or code == item.code:
                problems.append(f"{item.code}: substitute {code} is not another catalog item")
        if len(set(item.substitutes)) != len(item.substitutes):
            problems.append(f"{item.code}: repeated substitutes")
    assert not problems, "\n".join(problems)


def test_check_by_groups_are_the_known_working_groups() -> None:
    groups = CATALOG.check_groups()
    assert "medical_device" in groups
    assert set(groups) <= {"medical_device", "pharmacy", "food_safety"}
    for group in groups:
        assert re.fullmatch(r"[a-z_]+", group)
    devices = CATALOG.search(category="medical_device")
    assert devices and all(i.check_by == "medical_device" for i in devices)
    assert any(i.check_by is None for i in CATALOG.items)  # most goods need no check
    n95 = CATALOG.get("ppe.mask.n95")
    assert n95 is not None and n95.check_by == "medical_device"


def test_lookup_and_search() -> None:
    assert CATALOG.get("no.such.item") is None and "no.such.item" not in CATALOG
    assert [i.code for i in CATALOG.search(q="N95")] == [
        i.code for i in CATALOG.items if "n95" in i.code or "n95" in i.name.en.lower()
    ]
    assert any(i.code == "ppe.mask.n95" for i in CATALOG.search(q="口罩"))
    assert CATALOG.search(category="ppe", q="口罩")
    assert all(i.category == "ppe" for i in CATALOG.search(category="ppe", q="口罩"))
    assert CATALOG.search(category="nothing") == []
    assert CATALOG.search() == CATALOG.items
