"""Business rules of the supply service: donors, offers, verification by working groups, reservations."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.supply import events, funding, schemas
from services.supply.errors import (
    DonorNotFound,
    LotNotFound,
    LotUnavailable,
    NothingToVerify,
    NotYourCheck,
    NotYourDonor,
    OfferNotFound,
    OfferNotOpen,
    OverAllocation,
    ProcurementRegistered,
    ProposalReference,
    ReferenceReused,
    ReferenceTaken,
    ReservationForProposal,
    ReservationNotFound,
)
from services.supply.models import Donor, Lot, Offer, Reservation
from services.supply.repository import (
    DonorRepository,
    LotRepository,
    OfferRepository,
    ReservationRepository,
)
from shared.auth import Principal, Role
from shared.catalog import get_catalog, require_known, to_base_units
from shared.db import utcnow
from shared.errors import Forbidden
from shared.etag import IfMatch, check_version
from shared.events import publish
from shared.http import service_identity
from shared.pagination import PageParams
from shared.settings import Settings
from shared.tabular import (
    ImportRejected,
    ImportReport,
    RowErrors,
    end_of_day,
    group_rows,
    split_list,
    unknown_items,
)
from shared.vocabulary import AVAILABLE_LOT_VERIFICATIONS, LotVerification, OfferStatus, ReservationStatus

DOMESTIC = "CN"


def tracking_ref(code: str) -> str:
    """What is stored and published of a tracking code: its SHA-256, never the code."""
    return hashlib.sha256(code.encode()).hexdigest()


def may_see_contact(principal: Principal, org: str) -> bool:
    return principal.is_staff or principal.owns(org)


def _require_owner(principal: Principal, org: str) -> None:
    if not (principal.is_staff or principal.owns(org)):
        raise NotYourDonor()


# --- donors ------------------------------------------------------------------------------------------


async def create_donor(session: AsyncSession, principal: Principal, data: schemas.DonorCreate) -> Donor:
    if data.org and data.org != principal.org and not principal.is_staff:
        raise NotYourDonor("Only coordinators may register a donor for another organisation.")
    donor = Donor(
        id=uuid.uuid4(),
        org=data.org if (data.org and principal.is_staff) else principal.org,
        name=data.name,
        kind=data.kind.value,
        public_name=data.public_name,
        version=1,
        contact=data.contact.model_dump(exclude_none=True) if data.contact else None,
    )
    DonorRepository(session).add(donor)
    await session.flush()
    await session.refresh(donor)
    await publish(
        session,
        events.DONOR_CREATED,
        events.DonorData.model_validate(donor, from_attributes=True),
        subject=str(donor.id),
    )
    return donor


async def get_donor(session: AsyncSession, donor_id: uuid.UUID) -> Donor:
    donor = await DonorRepository(session).get(donor_id)
    if donor is None:
        raise DonorNotFound(f"No donor {donor_id}.")
    return donor


# --- offers ------------------------------------------------------------------------------------------


def _lot_units(numbers: list[int], offer: schemas.OfferCreate) -> list[tuple[int, str, str | None]]:
    """(row, item code, unit) of each lot of an imported offer."""
    return [(n, lot.item_code, lot.unit) for n, lot in zip(numbers, offer.lots or [], strict=False)]


def _check_items(codes: list[str], loc: list[Any]) -> None:
    require_known(([*loc, i, "item_code"] if loc[-1] == "lots" else [*loc, i], c) for i, c in enumerate(codes))


def _check_restriction_items(codes: list[str]) -> None:
    """Restrictions name items by code, or a category as a code prefix ending in '.' (e.g. `food.`) that at
    least one catalog item has."""
    known = [i.code for i in get_catalog().items]
    require_known(
        (["body", "restrictions", "item_codes", i], c)
        for i, c in enumerate(codes)
        if not (c.endswith(".") and any(k.startswith(c) for k in known))
    )


async def create_offer(session: AsyncSession, principal: Principal, data: schemas.OfferCreate) -> tuple[Offer, str]:
    """Register an offer; returns it with its tracking code (shown to the donor this once)."""
    donor = await get_donor(session, data.donor_id)
    _require_owner(principal, donor.org)
    if data.procurement_id is not None:
        if not principal.is_staff:
            raise Forbidden("Only coordinators and services register procured goods.")
        if await OfferRepository(session).by_procurement(data.procurement_id) is not None:
            raise ProcurementRegistered(f"The goods of procurement {data.procurement_id} are already registered.")
    operation_id = await funding.offer_operation(session, data)
    lots_in = data.lots or []
    _check_items([lot.item_code for lot in lots_in], ["body", "lots"])
    _check_restriction_items(data.restrictions.item_codes)
    catalog = get_catalog()
    based = to_base_units(
        (["body", "lots", i, "unit"], lot.item_code, lot.quantity, lot.unit) for i, lot in enumerate(lots_in)
    )
    code = secrets.token_urlsafe(18)
    now = utcnow()
    from_abroad = data.origin_country not in (None, DOMESTIC)
    lots = []
    for i, (lot, (quantity, unit)) in enumerate(zip(lots_in, based, strict=True)):
        item = catalog.get(lot.item_code)
        assert item is not None
        lots.append(
            Lot(
                id=uuid.uuid4(),
                position=i,
                item_code=lot.item_code,
                quantity=quantity,
                unit=unit,
                lat=lot.lat,
                lon=lot.lon,
                region_code=lot.region_code,
                available_from=lot.available_from,
                expires_at=lot.expires_at,
                condition=lot.condition.value,
                quantity_reserved=0,
                quantity_shipped=0,
                quantity_delivered=0,
                check_by=item.check_by,
                version=1,
                verification=(
                    LotVerification.awaiting_customs
                    if from_abroad
                    else LotVerification.pending
                    if item.check_by
                    else LotVerification.not_required
                ),
            )
        )
    offer = Offer(
        id=uuid.uuid4(),
        donor_id=donor.id,
        org=donor.org,
        kind=data.kind.value,
        amount=data.amount,
        currency=data.currency,
        restrictions=data.restrictions.stored(),
        note=data.note,
        status=OfferStatus.open,
        tracking_ref=tracking_ref(code),
        procurement_id=data.procurement_id,
        origin_country=data.origin_country,
        operation_id=operation_id,
        fund_id=data.fund_id,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
        lots=lots,
    )
    OfferRepository(session).add(offer)
    await session.flush()
    await publish(session, events.OFFER_CREATED, events.offer_data(offer), subject=str(offer.id))
    return offer, code


async def get_offer(session: AsyncSession, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer:
    offer = await OfferRepository(session).get_with_lots(offer_id, for_update=for_update)
    if offer is None:
        raise OfferNotFound(f"No offer {offer_id}.")
    return offer


async def lots_changed_apart(session: AsyncSession, offer_id: uuid.UUID) -> bool:
    """Whether a lot of the offer changed on its own (a reservation, a shipment, a verification): the offer's
    version, its ETag, says nothing of that."""
    return await OfferRepository(session).lots_changed_apart(offer_id)


async def list_offers(
    session: AsyncSession,
    params: PageParams,
    *,
    donor_id: uuid.UUID | None = None,
    status: OfferStatus | None = None,
    kind: schemas.OfferKind | None = None,
    item_code: str | None = None,
    region_code: str | None = None,
    operation_id: uuid.UUID | None = None,
    fund_id: uuid.UUID | None = None,
) -> tuple[list[Offer], str | None]:
    """Offers, newest first; every filter given narrows the list (region_code: a prefix of a lot's region)."""
    return await OfferRepository(session).search(
        params,
        donor_id=donor_id,
        status=status,
        kind=kind,
        item_code=item_code,
        region_code=region_code,
        operation_id=operation_id,
        fund_id=fund_id,
    )


async def update_offer(
    session: AsyncSession,
    principal: Principal,
    offer_id: uuid.UUID,
    data: schemas.OfferUpdate,
    expected_version: IfMatch,
) -> Offer:
    offer = await get_offer(session, offer_id, for_update=True)
    _require_owner(principal, offer.org)
    check_version(expected_version, offer.version)
    if offer.status != OfferStatus.open:
        raise OfferNotOpen(f"The offer is {offer.status}.")
    if data.restrictions is not None:
        _check_restriction_items(data.restrictions.item_codes)
        offer.restrictions = data.restrictions.stored()
    if "note" in data.model_fields_set:
        offer.note = data.note
    if "operation_id" in data.model_fields_set:
        offer.operation_id = await funding.moved_operation(session, offer, data.operation_id)
    offer.version += 1
    offer.updated_at = utcnow()
    await session.flush()
    await publish(session, events.OFFER_UPDATED, events.offer_data(offer), subject=str(offer.id))
    return offer


async def withdraw_offer(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, data: schemas.WithdrawRequest
) -> Offer:
    """Withdraw an open offer: no new reservations; holds already made stay until released or used."""
    offer = await get_offer(session, offer_id, for_update=True)
    _require_owner(principal, offer.org)
    if offer.status != OfferStatus.open:
        raise OfferNotOpen(f"The offer is already {offer.status}.")
    offer.status = OfferStatus.withdrawn
    offer.withdraw_reason = data.reason
    offer.version += 1
    offer.updated_at = utcnow()
    await session.flush()
    await publish(session, events.OFFER_WITHDRAWN, events.offer_data(offer, data.reason), subject=str(offer.id))
    return offer


async def record_verification(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, data: schemas.VerificationRequest
) -> Offer:
    """A working group's verdict on the lots of an offer that it must check."""
    offer = await get_offer(session, offer_id, for_update=True)
    if principal.has(Role.admin):
        groups = {lot.check_by for lot in offer.lots if lot.check_by}
    elif principal.group:
        groups = {principal.group}
    else:
        raise NotYourCheck("Your token names no working group.")
    if not any(lot.check_by in groups for lot in offer.lots):
        raise NotYourCheck(f"No lot of this offer is checked by {', '.join(sorted(groups)) or 'your group'}.")
    pending = [lot for lot in offer.lots if lot.check_by in groups and lot.verification == LotVerification.pending]
    if not pending:
        raise NothingToVerify()
    now = utcnow()
    for lot in pending:
        lot.verification = LotVerification(data.verdict)
        lot.verification_notes = data.notes
        lot.verified_by = principal.sub
        lot.verified_at = now
        lot.version += 1
    offer.version += 1
    offer.updated_at = now
    await session.flush()
    for group in sorted({lot.check_by for lot in pending if lot.check_by}):
        await publish(
            session,
            events.LOTS_VERIFIED,
            events.LotVerifiedData(
                offer_id=offer.id,
                group=group,
                verdict=data.verdict.value,
                notes=data.notes,
                lots=[
                    events.LotData.model_validate(lot, from_attributes=True) for lot in pending if lot.check_by == group
                ],
            ),
            orgs=[offer.org],
            subject=str(offer.id),
        )
    return offer


async def verify_lot(
    session: AsyncSession, principal: Principal, lot_id: uuid.UUID, data: schemas.LotVerificationRequest
) -> tuple[Lot, Offer]:
    """One lot's verdict by the working group its item names: verified, rejected, or reclassified as another
    catalog item — matched from then on as that item (or waiting for the group that checks the new item)."""
    lot, _ = await get_lot(session, lot_id)
    offer = await get_offer(session, lot.offer_id, for_update=True)
    lot = next(each for each in offer.lots if each.id == lot_id)
    if not (principal.has(Role.admin) or (principal.group and principal.group == lot.check_by)):
        raise NotYourCheck(f"This lot is checked by {lot.check_by or 'no working group'}.")
    if lot.verification != LotVerification.pending:
        raise NothingToVerify(f"The lot's verification is {lot.verification}.")
    group = lot.check_by
    if data.verdict == schemas.LotVerdict.reclassified:
        assert data.item_code is not None  # the request's validator
        require_known([(["body", "item_code"], data.item_code)])
        item = get_catalog().get(data.item_code)
        assert item is not None
        lot.item_code = data.item_code
        pending_elsewhere = item.check_by is not None and item.check_by != group
        lot.verification = LotVerification.pending if pending_elsewhere else LotVerification.reclassified
        lot.check_by = item.check_by if pending_elsewhere else lot.check_by
    else:
        lot.verification = LotVerification(data.verdict.value)
    now = utcnow()
    lot.verification_notes, lot.verified_by, lot.verified_at = data.notes, principal.sub, now
    lot.version += 1
    offer.version += 1
    offer.updated_at = now
    await session.flush()
    await publish(
        session,
        events.LOTS_VERIFIED,
        events.LotVerifiedData(
            offer_id=offer.id,
            group=group or "",
            verdict=data.verdict.value,
            notes=data.notes,
            lots=[events.LotData.model_validate(lot, from_attributes=True)],
        ),
        subject=str(offer.id),
    )
    return lot, offer


# --- lots and reservations ---------------------------------------------------------------------------


async def get_lot(session: AsyncSession, lot_id: uuid.UUID) -> tuple[Lot, Offer]:
    found = await LotRepository(session).get_with_offer(lot_id)
    if found is None:
        raise LotNotFound(f"No lot {lot_id}.")
    return found


MATCHING = service_identity("matching")


def names_a_proposal(reference: str) -> bool:
    """Matching reserves with the proposal's id as the reference, and reads any UUID reference as one."""
    try:
        uuid.UUID(reference)
    except ValueError:
        return False
    return True


def _is_matching(principal: Principal) -> bool:
    return principal.identity == MATCHING and principal.has(Role.admin)


def _maker(res: Reservation) -> tuple[str | None, str]:
    return (res.created_by_org, res.created_by)


async def reserve(
    session: AsyncSession, principal: Principal, lot_id: uuid.UUID, data: schemas.ReservationCreate
) -> tuple[Reservation, bool]:
    """Reserve quantity of a lot, never beyond what is unreserved. Returns (reservation, created_now);
    repeating a reference returns the reservation it already names, to whoever made it and nobody else."""
    if names_a_proposal(data.reference) and not _is_matching(principal):
        raise ProposalReference(
            "A UUID reference names a matching proposal; accept the proposal instead "
            "(POST /v1/proposals/{id}/accept), or hold stock under a reference of your own."
        )
    lot, offer = await get_lot(session, lot_id)
    reservations = ReservationRepository(session)
    now = utcnow()
    new_id = await reservations.insert_if_new(
        {
            "id": uuid.uuid4(),
            "lot_id": lot_id,
            "quantity": data.quantity,
            "reference": data.reference,
            "status": ReservationStatus.active,
            "created_by": principal.sub,
            "created_by_org": principal.org,
            "created_at": now,
            "expires_at": now + timedelta(seconds=data.hold_seconds) if data.hold_seconds else None,
        }
    )
    if new_id is None:
        existing = await reservations.by_reference(data.reference)
        assert existing is not None
        if _maker(existing) != principal.identity:
            raise ReferenceTaken(f"Reference {data.reference!r} names a reservation someone else made.")
        if existing.lot_id != lot_id or existing.quantity != data.quantity:
            raise ReferenceReused(
                f"Reference {data.reference!r} already reserves {existing.quantity} of lot {existing.lot_id}."
            )
        return existing, False
    updated = await LotRepository(session).reserve(lot_id, data.quantity, now)
    if updated is None:
        await session.refresh(lot)
        if offer.status != OfferStatus.open:
            raise LotUnavailable(f"The offer is {offer.status}.")
        if lot.verification not in AVAILABLE_LOT_VERIFICATIONS:
            raise LotUnavailable(
                f"The lot's verification is {lot.verification}; it awaits the {lot.check_by} group's verdict."
                if lot.verification == LotVerification.pending
                else f"The lot's verification is {lot.verification}."
            )
        if lot.expires_at is not None and lot.expires_at <= now:
            raise LotUnavailable("The lot has expired.")
        raise OverAllocation(
            f"Only {lot.quantity - lot.quantity_reserved - lot.quantity_written_off} of {lot.quantity} are unreserved; "
            f"{data.quantity} were asked for."
        )
    reservation = await reservations.get(new_id)
    assert reservation is not None
    await publish(
        session, events.RESERVATION_CREATED, events.reservation_data(reservation, updated), subject=str(reservation.id)
    )
    return reservation, True


async def release(session: AsyncSession, principal: Principal, reservation_id: uuid.UUID) -> Reservation:
    """Release an active reservation (its maker, or a coordinator); releasing one already released changes
    nothing. A proposal's reservation holds goods that may be on their way: only its shipment gives it back."""
    existing = await ReservationRepository(session).get(reservation_id)
    if existing is None:
        raise ReservationNotFound(f"No reservation {reservation_id}.")
    mine = _maker(existing) == principal.identity
    if names_a_proposal(existing.reference) and not mine:
        raise ReservationForProposal(
            f"Reservation {reservation_id} holds the goods of proposal {existing.reference}; they come back when "
            "its shipment is cancelled or what did not arrive is recorded, not by releasing the reservation."
        )
    if not (mine or principal.is_staff):
        raise Forbidden("Only whoever made a reservation, or a coordinator, may release it.")
    return await _release(session, existing, ReservationStatus.released)


async def _release(session: AsyncSession, existing: Reservation, status: ReservationStatus) -> Reservation:
    reservations = ReservationRepository(session)
    marked = await reservations.mark(existing.id, ReservationStatus.active, status, utcnow())
    if marked is None:
        return existing
    lot = await LotRepository(session).unreserve(marked.lot_id, marked.quantity)
    event = events.RESERVATION_EXPIRED if status == ReservationStatus.expired else events.RESERVATION_RELEASED
    await publish(session, event, events.reservation_data(marked, lot), subject=str(marked.id))
    return marked


async def expire_reservations(session: AsyncSession, settings: Settings) -> int:
    """Release holds whose time ran out."""
    reservations = ReservationRepository(session)
    ids = await reservations.expired_ids(utcnow(), 500)
    for reservation_id in ids:
        existing = await reservations.get(reservation_id)
        assert existing is not None
        await _release(session, existing, ReservationStatus.expired)
    return len(ids)


# --- bulk import -------------------------------------------------------------------------------------

IMPORT_COLUMNS = ("donor_id",)


def parse_import(rows: list[dict[str, str]], errors: RowErrors) -> list[tuple[list[int], schemas.OfferCreate]]:
    """Group rows into offers (by `offer_ref`, else one offer per row) and validate them."""
    parsed: list[tuple[list[int], schemas.OfferCreate]] = []
    for group in group_rows(rows, "offer_ref", IMPORT_COLUMNS, errors):
        numbers = [n for n, _ in group]
        first = group[0][1]
        kind = first.get("kind") or ("cash" if first.get("amount") else "in_kind")
        raw: dict[str, Any] = {
            "donor_id": first.get("donor_id"),
            "kind": kind,
            "note": first.get("note") or None,
            "restrictions": {
                "region_codes": split_list(first.get("restrict_regions")),
                "site_kinds": split_list(first.get("restrict_site_kinds")),
                "item_codes": split_list(first.get("restrict_items")),
            },
        }
        if kind == "cash":
            raw |= {"amount": first.get("amount") or None, "currency": first.get("currency") or "CNY"}
        else:
            raw["lots"] = [
                {
                    "item_code": r.get("item_code", ""),
                    "quantity": r.get("quantity", ""),
                    "unit": r.get("unit") or None,
                    "lat": r.get("lat") or None,
                    "lon": r.get("lon") or None,
                    "region_code": r.get("region_code") or None,
                    "available_from": end_of_day(r.get("available_from")),
                    "expires_at": end_of_day(r.get("expires_at")),
                    "condition": r.get("condition") or "new",
                }
                for _, r in group
            ]
        try:
            offer = schemas.OfferCreate.model_validate(raw)
        except ValidationError as exc:
            errors.add_validation(exc, numbers, "lots")
            continue
        codes = [*zip(numbers, (lot.item_code for lot in offer.lots or []), strict=False)]
        codes += [(numbers[0], c) for c in offer.restrictions.item_codes]
        if not unknown_items(errors, codes, _lot_units(numbers, offer)):
            parsed.append((numbers, offer))
    return parsed


async def import_offers(
    session: AsyncSession,
    principal: Principal,
    rows: list[dict[str, str]],
    progress: Callable[[int], None] | None = None,
) -> tuple[ImportReport, dict[str, str]]:
    """All or nothing. Returns the report and each created offer's tracking code (shown this once)."""
    errors = RowErrors()
    parsed = await asyncio.to_thread(parse_import, rows, errors)  # 20,000 rows: CPU work
    donors = {d.id: d for d in await DonorRepository(session).get_many({o.donor_id for _, o in parsed})}
    for numbers, offer in parsed:
        donor = donors.get(offer.donor_id)
        if donor is None:
            errors.add(numbers[0], f"donor_id: no donor {offer.donor_id}")
        elif not (principal.is_staff or principal.owns(donor.org)):
            errors.add(numbers[0], "donor_id: the donor belongs to another organisation")
    if errors:
        raise ImportRejected.from_report(errors.report(len(rows)))
    codes: dict[str, str] = {}
    for numbers, data in parsed:
        created, code = await create_offer(session, principal, data)
        codes[str(created.id)] = code
        if progress is not None:
            progress(len(numbers))
    report = ImportReport(
        rows_total=len(rows),
        rows_accepted=len(rows),
        rows_rejected=[],
        created=[uuid.UUID(k) for k in codes],
        imported=True,
    )
    return report, codes
