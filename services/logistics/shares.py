"""Each funding pledge's share of a purchase's goods: units of every line in proportion to the fen it paid,
rounded so that the shares of a line add up to the line exactly (largest remainder, ties to the earlier pledge)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol


class _Paid(Protocol):
    @property
    def offer_id(self) -> uuid.UUID | None: ...
    @property
    def fund_id(self) -> uuid.UUID | None: ...
    @property
    def amount(self) -> int: ...


def split(quantity: int, amounts: Sequence[int]) -> list[int]:
    """`quantity` units split in proportion to `amounts`; the parts add up to `quantity`."""
    total = sum(amounts)
    exact = [quantity * a for a in amounts]
    parts = [e // total for e in exact]
    left = quantity - sum(parts)
    by_remainder = sorted(range(len(amounts)), key=lambda i: (-(exact[i] % total), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts


def attribution(lines: Sequence[dict[str, Any]], funding: Sequence[_Paid]) -> list[dict[str, Any]]:
    """Per funding source, a pledge or a fund (in funding order): its fen and its units of each line's item."""
    amounts = [f.amount for f in funding]
    per_line = [split(int(line["quantity"]), amounts) for line in lines]
    return [
        {
            "offer_id": f.offer_id,
            "fund_id": f.fund_id,
            "amount": f.amount,
            "items": [
                {"item_code": line["item_code"], "quantity": parts[i]}
                for line, parts in zip(lines, per_line, strict=True)
                if parts[i]
            ],
        }
        for i, f in enumerate(funding)
    ]
