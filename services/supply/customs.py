"""Customs clearance of in-kind offers from abroad: their lots await the customs group's decision before
anything else (a working group's check, matching) can happen to them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.supply import events, schemas
from services.supply.errors import NotCustomsGroup, NothingToClear, OfferNotOpen
from services.supply.events import offer_data
from services.supply.models import Offer
from services.supply.service import get_offer
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.events import publish
from shared.vocabulary import LotVerification


async def decide_customs(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, data: schemas.CustomsDecision, customs_group: str
) -> Offer:
    """Cleared: each lot goes on to its working group's check, or becomes available. Refused: rejected."""
    if not (principal.is_staff or (principal.has(Role.working_group) and principal.group == customs_group)):
        raise NotCustomsGroup(f"Customs decisions are the {customs_group} group's.")
    offer = await get_offer(session, offer_id, for_update=True)
    if offer.status != "open":
        raise OfferNotOpen(f"The offer is {offer.status}.")
    waiting = [lot for lot in offer.lots if lot.verification == LotVerification.awaiting_customs]
    if not waiting:
        raise NothingToClear(f"No lot of offer {offer_id} awaits customs.")
    if data.outcome == schemas.CustomsOutcome.cleared:
        missing = sorted({lot.item_code for lot in waiting} - set(data.hs_codes))
        if missing:
            raise InvalidRequest(
                f"Name the HS code of {', '.join(missing)}.",
                errors=[{"loc": ["body", "hs_codes", code], "msg": "HS code missing"} for code in missing],
            )
    now = utcnow()
    for lot in waiting:
        if data.outcome == schemas.CustomsOutcome.refused:
            lot.verification, lot.verification_notes = LotVerification.rejected, data.notes or "refused by customs"
        else:
            lot.verification = LotVerification.pending if lot.check_by else LotVerification.not_required
        lot.version += 1
    offer.customs = {
        **data.model_dump(mode="json", exclude_none=True),
        "decided_by": principal.sub,
        "decided_by_org": principal.org,
        "decided_at": now.isoformat(),
    }
    offer.version += 1
    offer.updated_at = now
    await session.flush()
    await publish(session, events.OFFER_CUSTOMS_DECIDED, offer_data(offer), subject=str(offer.id))
    return offer
