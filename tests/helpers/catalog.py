"""Item codes of the catalog and places the tests use."""

from __future__ import annotations

from shared.catalog import get_catalog

N95 = "ppe.mask.n95"
RICE = "food.grain.rice"
PSYCH = "service.psych.support_session"  # a service: matched to partners' capacities
WATER = "water.bottled.small_550ml"
QUILT = "shelter.bedding.quilt"
CONCENTRATOR = "medical_device.oxygen.concentrator_5l"  # checked by the medical_device working group
IBUPROFEN = "medicine.antipyretic.ibuprofen"

# Sites in Pudong and Chaoyang; lots a few kilometres from each.
SHANGHAI = {"region_code": "310115", "lat": 31.22, "lon": 121.54}
BEIJING = {"region_code": "110105", "lat": 39.92, "lon": 116.44}
NEAR_SHANGHAI = {"lat": 31.30, "lon": 121.50, "region_code": "310110"}
NEAR_BEIJING = {"lat": 39.95, "lon": 116.40, "region_code": "110108"}


def substitutable_item() -> tuple[str, str]:
    """An item with a substitute, neither of them checked by a working group: (item, substitute)."""
    catalog = get_catalog()
    for item in catalog.items:
        for sub in item.substitutes:
            other = catalog.get(sub)
            if item.check_by is None and other is not None and other.check_by is None:
                return item.code, sub
    raise AssertionError("the catalog has no unchecked item with an unchecked substitute")
