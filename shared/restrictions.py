"""A donor's (or a fund's) restrictions on where a gift may go, and the check of one destination against them.

The same shape serves offers and special funds: regions (code prefixes), site kinds, item codes or categories
(a code prefix ending in a dot, e.g. `food.`), beneficiary groups, and designated sites or needs (定向捐赠).
Empty lists mean "any"."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from shared.vocabulary import BeneficiaryGroup, ItemCode, RegionPrefix, SiteKind


class Restrictions(BaseModel):
    """The donor's wishes: only these regions (code prefixes), site kinds, items (codes, or categories as a
    prefix ending in '.'), beneficiary groups, designated sites or needs. Empty means any."""

    model_config = ConfigDict(extra="forbid")

    region_codes: Annotated[list[RegionPrefix], Field(max_length=100)] = []
    site_kinds: Annotated[list[SiteKind], Field(max_length=20)] = []
    item_codes: Annotated[list[ItemCode], Field(max_length=200)] = []
    beneficiary_groups: Annotated[list[BeneficiaryGroup], Field(max_length=20)] = []
    site_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = []
    need_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = []

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The regions, site kinds and items always (as offers always showed them), the other rules when set."""
        out: dict[str, Any] = handler(self)
        return {k: v for k, v in out.items() if v or k in ("region_codes", "site_kinds", "item_codes")}

    def stored(self) -> dict[str, Any]:
        """As stored and published (JSON)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Destination:
    """Where goods go, as far as restrictions care: the site (its id, kind, region), the needs served and the
    beneficiary groups those needs name."""

    site_id: uuid.UUID | None = None
    site_kind: str | None = None
    region_code: str | None = None
    need_ids: frozenset[uuid.UUID] = frozenset()
    groups: frozenset[str] = field(default_factory=frozenset)


def item_allowed(allowed: Iterable[str], item_code: str) -> bool:
    codes = list(allowed)
    return not codes or any(item_code == c or (c.endswith(".") and item_code.startswith(c)) for c in codes)


def _place_violations(restrictions: dict[str, Any], where: Destination) -> list[str]:
    out: list[str] = []
    regions = restrictions.get("region_codes") or []
    if regions and not (where.region_code and any(where.region_code.startswith(r) for r in regions)):
        out.append(f"region_codes: {where.region_code} is outside {', '.join(regions)}")
    kinds = restrictions.get("site_kinds") or []
    if kinds and where.site_kind not in kinds:
        out.append(f"site_kinds: a {where.site_kind or 'unknown'} site is not one of {', '.join(kinds)}")
    sites = {str(s) for s in restrictions.get("site_ids") or []}
    if sites and str(where.site_id) not in sites:
        out.append(f"site_ids: site {where.site_id} is not a designated site")
    return out


def _purpose_violations(restrictions: dict[str, Any], where: Destination) -> list[str]:
    out: list[str] = []
    needs = {str(n) for n in restrictions.get("need_ids") or []}
    if needs and not (where.need_ids and {str(n) for n in where.need_ids} <= needs):
        out.append("need_ids: the purchase serves needs the gift is not designated for")
    groups = set(restrictions.get("beneficiary_groups") or [])
    if groups and not (where.groups and where.groups & groups):
        out.append(f"beneficiary_groups: the destination serves none of {', '.join(sorted(groups))}")
    return out


def violations(restrictions: dict[str, Any], where: Destination, item_codes: Iterable[str]) -> list[str]:
    """Each rule of `restrictions` that the destination or one of the items breaks, in words (empty: allowed)."""
    codes = restrictions.get("item_codes") or []
    items = [
        f"item_codes: {code} is not one of {', '.join(codes)}"
        for code in sorted(set(item_codes))
        if not item_allowed(codes, code)
    ]
    return [*_place_violations(restrictions, where), *items, *_purpose_violations(restrictions, where)]


def _covered(key: str, value: str, within: list[str]) -> bool:
    if key == "region_codes":
        return any(value.startswith(w) for w in within)
    if key == "item_codes":
        return item_allowed(within, value)
    return value in within


def union(*all_restrictions: dict[str, Any]) -> dict[str, Any]:
    """The rules goods paid by several restricted sources carry: every source's rules at once. Where several
    sources restrict the same rule, only what all of them allow remains (region prefixes and item categories
    narrow to the most specific entry; other lists intersect). Raises ValueError when two sources leave a rule
    nothing in common (an empty list would mean "any", which neither source allows)."""
    out: dict[str, list[str]] = {}
    for r in all_restrictions:
        for key, values in r.items():
            vals = list(dict.fromkeys(str(v) for v in values or []))
            if not vals:
                continue
            if key not in out:
                out[key] = vals
                continue
            have = out[key]
            narrowed = [v for v in have if _covered(key, v, vals)] + [
                v for v in vals if v not in have and _covered(key, v, have)
            ]
            if not narrowed:
                raise ValueError(f"{key}: the sources allow nothing in common")
            out[key] = narrowed
    return dict(out)
