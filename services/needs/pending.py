"""Need lines that name an item request instead of an item: how a posted line is resolved against its request."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.needs import schemas
from services.needs.models import ItemRequest
from shared.errors import InvalidRequest
from shared.vocabulary import ItemRequestStatus


async def resolve_lines(session: AsyncSession, lines: Sequence[schemas.NeedLineCreate]) -> list[schemas.NeedLineCreate]:
    """Lines as `_line_rows` takes them: a line naming a request already approved or mapped names its item; one
    naming a pending request keeps it (and the request's unit by default). Unknown or refused requests are a 422."""
    ids = {line.item_request_id for line in lines if line.item_request_id is not None}
    if not ids:
        return list(lines)
    found = {r.id: r for r in (await session.execute(select(ItemRequest).where(ItemRequest.id.in_(ids)))).scalars()}
    bad = [
        i
        for i, line in enumerate(lines)
        if line.item_request_id is not None
        and (line.item_request_id not in found or found[line.item_request_id].status == ItemRequestStatus.refused)
    ]
    if bad:
        raise InvalidRequest(
            "A line names an item request that does not exist or was refused.",
            errors=[{"loc": ["body", "lines", i, "item_request_id"], "msg": "no such open item request"} for i in bad],
        )
    out = []
    for line in lines:
        request = found.get(line.item_request_id) if line.item_request_id is not None else None
        if request is None:
            out.append(line)
        elif request.item_code is not None:
            out.append(
                line.model_copy(
                    update={"item_code": request.item_code, "item_request_id": None, "unit": line.unit or request.unit}
                )
            )
        else:
            out.append(line.model_copy(update={"unit": line.unit or request.unit}))
    return out
