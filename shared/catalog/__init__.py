"""The item catalog: what can be needed and given, its unit, its substitutes, who must check it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from shared.errors import InvalidRequest


class UnknownItem(InvalidRequest):
    slug, title = "unknown-item", "Item code not in the catalog"


class ItemName(BaseModel):
    zh: str
    en: str


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: ItemName
    category: str
    unit: str
    unit_value_fen: int
    perishable: bool
    substitutes: list[str]
    check_by: str | None


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


@lru_cache
def get_catalog() -> Catalog:
    raw = json.loads(resources.files("shared.catalog").joinpath("items.json").read_text(encoding="utf-8"))
    return Catalog([Item.model_validate(i) for i in raw["items"]])


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
