"""HTTP endpoints of the supply service: donors, offers, verification, lots and reservations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from services.supply import customs, payments, schemas, service
from services.supply.dependencies import DonorWriter, PaymentRecorder, Reserver, WorkingGroup
from services.supply.errors import (
    DonorNotFound,
    LotNotFound,
    LotUnavailable,
    NotAPledge,
    NotCustomsGroup,
    NotFundraiser,
    NothingToClear,
    NothingToVerify,
    OfferNotFound,
    OfferNotOpen,
    OverAllocation,
    PaymentReferenceReused,
    ProcurementRegistered,
    ProposalReference,
    ReferenceReused,
    ReferenceTaken,
    ReservationForProposal,
    ReservationNotFound,
)
from services.supply.models import Donor, Offer
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, Principal, settings_of
from shared.catalog import UnknownItem
from shared.errors import Conflict, Forbidden, PreconditionFailed, PreconditionRequired, problem_responses
from shared.etag import if_match_version, send_body, set_etag, unchanged_since
from shared.pagination import Page, PageQuery, SyncPage, SyncPageQuery, sync_page
from shared.settings import Settings
from shared.tabular import ImportRejected, UploadedRows
from shared.vocabulary import OfferStatus, RegionPrefix

router = service_router(prefix="/v1", tags=["supply"])


def donor_out(donor: Donor, principal: Principal) -> schemas.Donor:
    out = schemas.Donor.model_validate(donor)
    if not service.may_see_contact(principal, donor.org):
        out.contact = None
    return out


_DERIVED = ("lots", "tracking_code", "amount_received", "overpaid")


def offer_out(offer: Offer, tracking_code: str | None = None, received: int | None = None) -> schemas.Offer:
    """The offer; `received`: what a cash pledge has received (None: in-kind)."""
    return schemas.Offer.model_validate(
        {
            **{k: getattr(offer, k) for k in schemas.Offer.model_fields if k not in _DERIVED},
            "lots": [schemas.lot_out(lot, offer.status) for lot in offer.lots],
            "tracking_code": tracking_code,
            "amount_received": received,
            "overpaid": received is not None and offer.amount is not None and received > offer.amount,
        }
    )


async def offers_out(session: SessionDep, offers: list[Offer]) -> list[schemas.Offer]:
    """Offers with what each cash pledge has received (one query for all)."""
    sums = await payments.received(session, offers)
    return [offer_out(o, received=sums.get(o.id)) for o in offers]


@router.post("/donors", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden))
async def create_donor(
    data: schemas.DonorCreate, principal: DonorWriter, session: SessionDep, response: Response
) -> schemas.Donor:
    """Register a donor (company, foundation, individual…) of your organisation."""
    donor = await service.create_donor(session, principal, data)
    set_etag(response, donor.version)
    response.headers["Location"] = f"/v1/donors/{donor.id}"
    return donor_out(donor, principal)


@router.get("/donors/{donor_id}", responses=problem_responses(DonorNotFound))
async def get_donor(
    donor_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Donor:
    """One donor; contact details only for its organisation and coordinators."""
    donor = await service.get_donor(session, donor_id)
    set_etag(response, donor.version)
    return donor_out(donor, principal)


@router.post(
    "/offers",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(DonorNotFound, Forbidden, UnknownItem, ProcurementRegistered),
)
async def create_offer(
    data: schemas.OfferCreate, principal: DonorWriter, session: SessionDep, response: Response
) -> schemas.Offer:
    """Offer in-kind lots or a cash pledge, with the donor's restrictions; returns the tracking code once."""
    offer, code = await service.create_offer(session, principal, data)
    set_etag(response, offer.version)
    response.headers["Location"] = f"/v1/offers/{offer.id}"
    return offer_out(offer, code, 0 if offer.kind == schemas.OfferKind.cash else None)


@router.post(
    "/offers/imports", status_code=status.HTTP_201_CREATED, responses=problem_responses(ImportRejected, Forbidden)
)
async def import_offers(rows: UploadedRows, principal: DonorWriter, session: SessionDep) -> schemas.OfferImportReport:
    """Import offers from a CSV or XLSX file (multipart field `file`); all rows or none, with a per-row report.

    Columns: `donor_id`, and for in-kind lots `item_code`, `quantity` with optionally `unit`, `lat`, `lon`,
    `region_code`, `available_from`, `expires_at`, `condition`; for cash `kind`=cash, `amount` (fen),
    `currency`. Optional `offer_ref` (rows sharing it form one offer), `restrict_regions`,
    `restrict_site_kinds`, `restrict_items` (separated by `;`), `note`.
    """
    report, codes = await service.import_offers(session, principal, rows)
    return schemas.OfferImportReport(**report.model_dump(), tracking_codes=codes)


@router.get("/offers", responses=problem_responses())
async def list_offers(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: SyncPageQuery,
    donor_id: uuid.UUID | None = None,
    status: OfferStatus | None = None,
    kind: schemas.OfferKind | None = None,
    item_code: Annotated[str | None, Query(max_length=100)] = None,
    region_code: Annotated[RegionPrefix | None, Query(description="Lot region prefix.")] = None,
    operation_id: Annotated[uuid.UUID | None, Query(description="The relief operation.")] = None,
    fund_id: Annotated[uuid.UUID | None, Query(description="The special fund (cash pledges).")] = None,
) -> SyncPage[schemas.Offer]:
    """Offers, newest first, filtered by donor, status, kind, item, lot region prefix, relief operation or
    fund; with `updated_since`, only those changed (the offer or one of its lots) after that point, in change
    order."""
    items, cursor = await service.list_offers(
        session,
        page,
        donor_id=donor_id,
        status=status,
        kind=kind,
        item_code=item_code,
        region_code=region_code,
        operation_id=operation_id,
        fund_id=fund_id,
    )
    return sync_page(await offers_out(session, items), cursor, page)


@router.get(
    "/offers/{offer_id}",
    response_model=schemas.Offer,
    responses={
        **problem_responses(OfferNotFound),
        **{304: {"description": "Not modified: If-None-Match names the current ETag."}},
    },
)
async def get_offer(
    offer_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, request: Request, response: Response
) -> schemas.Offer | Response:
    """One offer with its lots' reserved, shipped and available quantities and verification."""
    offer = await service.get_offer(session, offer_id)
    # Lots change without the offer's version (reservations, shipments): 304 only while none has on its own.
    unchanged = unchanged_since(request, offer.version)
    if unchanged is not None:
        if not await service.lots_changed_apart(session, offer.id):
            return unchanged
        send_body(request)
    set_etag(response, offer.version)
    return (await offers_out(session, [offer]))[0]


@router.patch(
    "/offers/{offer_id}",
    responses=problem_responses(
        OfferNotFound, Forbidden, OfferNotOpen, UnknownItem, PreconditionFailed, PreconditionRequired
    ),
)
async def update_offer(
    offer_id: uuid.UUID,
    data: schemas.OfferUpdate,
    request: Request,
    principal: DonorWriter,
    session: SessionDep,
    response: Response,
) -> schemas.Offer:
    """Change an offer's restrictions, note or relief operation (send If-Match)."""
    expected = if_match_version(request)
    offer = await service.update_offer(session, principal, offer_id, data, expected)
    set_etag(response, offer.version)
    return (await offers_out(session, [offer]))[0]


@router.post("/offers/{offer_id}/withdraw", responses=problem_responses(OfferNotFound, Forbidden, OfferNotOpen))
async def withdraw_offer(
    offer_id: uuid.UUID,
    principal: DonorWriter,
    session: SessionDep,
    response: Response,
    data: schemas.WithdrawRequest | None = None,
) -> schemas.Offer:
    """Withdraw an offer: its lots take no new reservations."""
    offer = await service.withdraw_offer(session, principal, offer_id, data or schemas.WithdrawRequest())
    set_etag(response, offer.version)
    return (await offers_out(session, [offer]))[0]


@router.post(
    "/offers/{offer_id}/payments",
    status_code=status.HTTP_201_CREATED,
    responses={
        **problem_responses(OfferNotFound, NotFundraiser, NotAPledge, PaymentReferenceReused),
        200: {"model": schemas.Payment, "description": "The payment this reference already recorded"},
    },
)
async def create_payment(
    offer_id: uuid.UUID,
    data: schemas.PaymentCreate,
    principal: PaymentRecorder,
    settings: Annotated[Settings, Depends(settings_of)],
    session: SessionDep,
    response: Response,
) -> schemas.Payment:
    """Record money received against a cash pledge (coordinators and the fundraising group). Idempotent by
    `reference` per pledge (200 with the payment already recorded); more than pledged is recorded and the
    offer flagged `overpaid`. The offer's `amount_received` is the sum of its payments."""
    payments.require_fundraiser(principal, settings.fundraising_group)
    payment, offer, created = await payments.record_payment(session, principal, offer_id, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/offers/{offer.id}/payments"
    return payments.payment_out(payment, offer)


@router.get("/offers/{offer_id}/payments", responses=problem_responses(OfferNotFound, NotFundraiser))
async def list_payments(
    offer_id: uuid.UUID,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(settings_of)],
    session: SessionDep,
    page: PageQuery,
) -> Page[schemas.Payment]:
    """The payments received against a cash pledge, newest first: for the donor's organisation, coordinators
    and the fundraising group."""
    offer, items, cursor = await payments.list_payments(session, principal, offer_id, page, settings.fundraising_group)
    return Page(items=[payments.payment_out(p, offer) for p in items], next_cursor=cursor)


@router.post("/offers/{offer_id}/verification", responses=problem_responses(OfferNotFound, Forbidden, NothingToVerify))
async def verify_offer(
    offer_id: uuid.UUID,
    data: schemas.VerificationRequest,
    principal: WorkingGroup,
    session: SessionDep,
    response: Response,
) -> schemas.Offer:
    """The checking working group's verdict on the offer's lots it must check; verified lots become available."""
    offer = await service.record_verification(session, principal, offer_id, data)
    set_etag(response, offer.version)
    return offer_out(offer)


@router.post(
    "/lots/{lot_id}/verification", responses=problem_responses(LotNotFound, Forbidden, NothingToVerify, UnknownItem)
)
async def verify_lot(
    lot_id: uuid.UUID,
    data: schemas.LotVerificationRequest,
    principal: WorkingGroup,
    session: SessionDep,
    response: Response,
) -> schemas.Lot:
    """The checking working group's verdict on one lot: verified, rejected, or reclassified as another catalog
    item (`item_code`), which matching then proposes as that item."""
    lot, offer = await service.verify_lot(session, principal, lot_id, data)
    set_etag(response, lot.version)
    return schemas.lot_out(lot, offer.status)


@router.post(
    "/offers/{offer_id}/customs-clearance",
    responses=problem_responses(OfferNotFound, NotCustomsGroup, OfferNotOpen, NothingToClear),
)
async def clear_customs(
    offer_id: uuid.UUID,
    data: schemas.CustomsDecision,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(settings_of)],
    session: SessionDep,
    response: Response,
) -> schemas.Offer:
    """The customs group's decision on an offer from abroad (its lots are `awaiting_customs` until then): cleared
    with the HS codes, consignee foundation and exemption reference, or refused."""
    offer = await customs.decide_customs(session, principal, offer_id, data, settings.customs_group)
    set_etag(response, offer.version)
    return offer_out(offer)


@router.get("/lots/{lot_id}", responses=problem_responses(LotNotFound))
async def get_lot(
    lot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Lot:
    """One lot with its reserved, shipped and available quantities."""
    lot, offer = await service.get_lot(session, lot_id)
    set_etag(response, lot.version)
    return schemas.lot_out(lot, offer.status)


@router.post(
    "/lots/{lot_id}/reservations",
    status_code=status.HTTP_201_CREATED,
    responses={
        **problem_responses(
            LotNotFound,
            Forbidden,
            ProposalReference,
            OverAllocation,
            LotUnavailable,
            ReferenceReused,
            ReferenceTaken,
            Conflict,
        ),
        200: {"model": schemas.Reservation, "description": "The reservation this reference made"},
    },
)
async def create_reservation(
    lot_id: uuid.UUID, data: schemas.ReservationCreate, principal: Reserver, session: SessionDep, response: Response
) -> schemas.Reservation:
    """Reserve quantity of a lot (coordinators by hand; matching for accepted proposals); 409 when it would
    over-allocate. Idempotent by `reference`, for the caller that made it."""
    reservation, created = await service.reserve(session, principal, lot_id, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/reservations/{reservation.id}"
    return schemas.Reservation.model_validate(reservation)


@router.delete(
    "/reservations/{reservation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(ReservationNotFound, Forbidden, ReservationForProposal),
)
async def release_reservation(reservation_id: uuid.UUID, principal: Reserver, session: SessionDep) -> Response:
    """Release a hold; its quantity becomes available again. Releasing twice is harmless. A proposal's
    reservation is given back by its shipment instead (409)."""
    await service.release(session, principal, reservation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
