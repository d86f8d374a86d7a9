"""The item catalog: what can be needed and given, its base unit and packs, its substitutes (with conversion
factors and the site kinds they are not for), its grade, who must check it.

`items.json` is the seed. The needs service owns the living catalog (a table, changed through its API) and
publishes every change as an event; each service applies those events with `apply_items`, so `get_catalog()`
answers with the current catalog without a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import InvalidRequest


class UnknownItem(InvalidRequest):
    slug, title = "unknown-item", "Item code not in the catalog"


class UnknownUnit(InvalidRequest):
    slug, title = "unknown-unit", "Unit not known for the item"


Grade = Literal["medical", "general"]


class ItemName(BaseModel):
    zh: str
    en: str


class Pack(BaseModel):
    model_config = ConfigDict(frozen=True)

    unit: Annotated[str, Field(min_length=1, max_length=20)]
    base_units: Annotated[int, Field(gt=0, le=1_000_000, description="How many base units one pack holds.")]


class SubstituteRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    factor: Annotated[
        float,
        Field(
            gt=0,
            le=1_000_000,
            description="Base units of the requested item one base unit of the substitute counts for.",
        ),
    ] = 1.0
    not_for_site_kinds: list[str] = Field(default_factory=list)


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: ItemName
    category: str
    unit: str
    base_unit: str = ""
    packs: list[Pack] = Field(default_factory=list)
    grade: Grade = "general"
    unit_value_fen: int
    perishable: bool
    substitutes: list[str] = Field(default_factory=list)
    substitute_rules: list[SubstituteRule] = Field(default_factory=list)
    check_by: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, raw: Any) -> Any:
        """`base_unit` defaults to `unit`; rules and the plain list of substitute codes complete each other."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        raw["base_unit"] = raw.get("base_unit") or raw.get("unit")
        rules = [r if isinstance(r, dict) else r.model_dump() for r in raw.get("substitute_rules") or []]
        codes = list(raw.get("substitutes") or [])
        known = {r["code"] for r in rules}
        rules += [{"code": c, "factor": 1.0, "not_for_site_kinds": []} for c in codes if c not in known]
        raw["substitute_rules"] = rules
        raw["substitutes"] = list(dict.fromkeys([*codes, *(r["code"] for r in rules)]))
        return raw

    def units(self) -> list[str]:
        """The units a quantity of this item may be given in: its base unit, then its packs."""
        return list(dict.fromkeys([self.base_unit, self.unit, *(p.unit for p in self.packs)]))

    def base_units_per(self, unit: str | None) -> int | None:
        """Base units in one `unit` (None or the base unit: 1); None when the unit is not the item's."""
        if unit is None or unit in (self.base_unit, self.unit):
            return 1
        return next((p.base_units for p in self.packs if p.unit == unit), None)

    def rule_for(self, code: str) -> SubstituteRule | None:
        return next((r for r in self.substitute_rules if r.code == code), None)


class Catalog:
    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self._by_code = {i.code: i for i in items}

    def get(self, code: str) -> Item | None:
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def categories(self) -> list[str]:
        return sorted({i.category for i in self.items})

    def check_groups(self) -> list[str]:
        return sorted({i.check_by for i in self.items if i.check_by})

    def search(self, *, category: str | None = None, q: str | None = None) -> list[Item]:
        out = self.items
        if category:
            out = [i for i in out if i.category == category]
        if q:
            needle = q.strip().lower()
            out = [i for i in out if needle in i.code or needle in i.name.en.lower() or needle in i.name.zh]
        return out

    def substitute_rule(self, line_item: str, lot_item: str) -> SubstituteRule | None:
        """How a lot of `lot_item` may serve a line of `line_item`: factor 1 for the item itself, the item's
        rule for an allowed substitute, None otherwise."""
        if line_item == lot_item:
            return SubstituteRule(code=lot_item)
        item = self.get(line_item)
        return item.rule_for(lot_item) if item else None

    def with_items(self, items: Iterable[Item]) -> Catalog:
        """A new catalog with these items added (or replacing those of the same code), the order kept."""
        changed = {i.code: i for i in items}
        kept = [changed.pop(i.code, i) for i in self.items]
        return Catalog([*kept, *changed.values()])


def seed_items() -> list[dict[str, Any]]:
    """The catalog the project ships with (`items.json`), as plain dicts."""
    raw = json.loads(resources.files("shared.catalog").joinpath("items.json").read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = raw["items"]
    return items


_current: Catalog | None = None
_lock = threading.Lock()


def get_catalog() -> Catalog:
    """The current catalog: the seed, plus every change this process has applied since."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Catalog([Item.model_validate(i) for i in seed_items()])
    return _current


def apply_items(items: Iterable[Item | dict[str, Any]]) -> Catalog:
    """Add or replace items in this process's catalog (from the catalog's events or table); the new catalog.

    The catalog object is replaced whole, so a reader holding the previous one (a matching run in a thread)
    keeps a consistent view."""
    global _current
    parsed = [i if isinstance(i, Item) else Item.model_validate(i) for i in items]
    with _lock:
        base = _current if _current is not None else Catalog([Item.model_validate(i) for i in seed_items()])
        _current = base.with_items(parsed)
        return _current


def require_known(entries: Iterable[tuple[Sequence[str | int], str]]) -> None:
    """Refuse item codes the catalog does not hold: one 422 naming every unknown code and where it was.

    ``entries`` are ``(loc, item_code)`` pairs, ``loc`` as in the problem's ``errors`` (``["body", "lines",
    0, "item_code"]``)."""
    catalog = get_catalog()
    unknown = [(list(loc), code) for loc, code in entries if code not in catalog]
    if unknown:
        raise UnknownItem(
            f"Not in the item catalog: {', '.join(sorted({code for _, code in unknown}))}.",
            errors=[{"loc": loc, "msg": "unknown item code"} for loc, _ in unknown],
        )


def to_base_units(entries: Iterable[tuple[Sequence[str | int], str, int, str | None]]) -> list[tuple[int, str]]:
    """Each ``(loc, item_code, quantity, unit)`` as ``(quantity in base units, base unit)``; one 422 naming the
    allowed units of every entry whose unit is neither the item's unit nor one of its packs.

    ``loc`` points at the unit (``["body", "lines", 0, "unit"]``); the item codes must be known already."""
    catalog = get_catalog()
    out: list[tuple[int, str]] = []
    wrong: list[tuple[list[str | int], str, Item]] = []
    for loc, code, quantity, unit in entries:
        item = catalog.get(code)
        if item is None:
            raise UnknownItem(f"Not in the item catalog: {code}.", errors=[{"loc": list(loc), "msg": "unknown item"}])
        per = item.base_units_per(unit)
        if per is None:
            wrong.append((list(loc), str(unit), item))
            continue
        out.append((quantity * per, item.base_unit))
    if wrong:
        raise UnknownUnit(
            "; ".join(f"{item.code} is counted in {', '.join(item.units())}, not {unit!r}" for _, unit, item in wrong)
            + ".",
            errors=[{"loc": loc, "msg": f"unit must be one of: {', '.join(item.units())}"} for loc, _, item in wrong],
        )
    return out
