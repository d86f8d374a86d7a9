"""HTTP endpoints of the logistics service: shipments, proof of delivery, feedback, procurement, the ledger,
public tracking and the impact report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, StreamingResponse

from services.logistics import (
    exports,
    fund_schemas,
    funds,
    ledger,
    page,
    procurement,
    receipts,
    schemas,
    shipments,
    tracking,
)
from services.logistics.dependencies import (
    Buyer,
    PublicRateLimit,
    Recipient,
    ServiceCaller,
    ShipmentActor,
    Shipper,
    Staff,
    TrackRateLimit,
)
from services.logistics.errors import (
    AcceptedProposalNotFound,
    AlreadyPickedUp,
    DestinationUnavailable,
    FeedbackExists,
    IllegalTransition,
    InvalidReceipt,
    NotReceivedYet,
    NotTheRecipient,
    OperationNotFound,
    PinLocked,
    PledgeInsufficient,
    PledgeUnavailable,
    ProcurementNotFound,
    ProcurementNotInState,
    ProposalNotShippable,
    RestrictionViolated,
    ShipmentNotFound,
    SupplyUnavailable,
    TooManyRequests,
    TrackingCodeNotFound,
    WrongPin,
)
from services.logistics.funds_router import transactions_out
from services.logistics.models import Feedback, LedgerKind, Procurement, ProcurementStatus, Shipment
from services.logistics.shares import attribution
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, Principal, require_in_region
from shared.catalog import UnknownItem
from shared.errors import Forbidden, PreconditionFailed, PreconditionRequired, problem_responses
from shared.etag import if_match_version, set_etag, unchanged_since
from shared.html import html_response
from shared.pagination import Page, PageQuery, SyncPage, SyncPageQuery, sync_page
from shared.vocabulary import RegionPrefix, ShipmentStatus, Timestamp

router = service_router(prefix="/v1", tags=["logistics"])


def shipment_out(shipment: Shipment, principal: Principal, feedback: Feedback | None = None) -> schemas.Shipment:
    out = schemas.Shipment.model_validate(shipment)
    # The PIN proves the handover: only the receiving site's frontline ever sees it (not even coordinators, so
    # that a receipt a coordinator records means the site read the PIN out).
    out.handover_pin = shipment.handover_pin if shipments.is_recipient(principal, shipment) else None
    out.feedback = schemas.Feedback.model_validate(feedback) if feedback else None
    return out


def procurement_out(p: Procurement) -> schemas.Procurement:
    out = schemas.Procurement.model_validate(p)
    out.attribution = [schemas.Attribution.model_validate(a) for a in attribution(p.lines, p.funding)]
    return out


# --- shipments ------------------------------------------------------------------------------------------------


@router.post(
    "/shipments",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(ProposalNotShippable, Forbidden),
)
async def create_shipment(
    data: schemas.ShipmentCreate, principal: Shipper, session: SessionDep, response: Response
) -> schemas.Shipment:
    """Plan a shipment by hand from accepted proposals (accepted proposals are also shipped automatically)."""
    shipment = await shipments.create_shipment(session, principal, data)
    set_etag(response, shipment.version)
    response.headers["Location"] = f"/v1/shipments/{shipment.id}"
    return shipment_out(shipment, principal)


@router.get("/shipments", responses=problem_responses())
async def list_shipments(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: SyncPageQuery,
    status: ShipmentStatus | None = None,
    destination_site_id: uuid.UUID | None = None,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    proposal_id: uuid.UUID | None = None,
    region_code: Annotated[RegionPrefix | None, Query(description="Destination region prefix.")] = None,
) -> SyncPage[schemas.Shipment]:
    """Shipments, newest first, by status, destination site, need, offer, proposal or region prefix; with
    `updated_since`, only those changed after that point, in change order."""
    items, cursor = await shipments.list_shipments(
        session,
        page,
        status=status,
        destination_site_id=destination_site_id,
        need_id=need_id,
        offer_id=offer_id,
        proposal_id=proposal_id,
        region_code=region_code,
    )
    feedback = await shipments.feedback_of(session, items)
    return sync_page([shipment_out(s, principal, feedback.get(s.id)) for s in items], cursor, page)


@router.get(
    "/shipments/{shipment_id}",
    response_model=schemas.Shipment,
    responses={
        **problem_responses(ShipmentNotFound),
        **{304: {"description": "Not modified: If-None-Match names the current ETag."}},
    },
)
async def get_shipment(
    shipment_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, request: Request, response: Response
) -> schemas.Shipment | Response:
    """One shipment with its lines, legs, status history and feedback; the handover PIN for the receiving site's
    frontline."""
    shipment = await shipments.get_shipment(session, shipment_id)
    if (unchanged := unchanged_since(request, shipment.version)) is not None:
        return unchanged
    set_etag(response, shipment.version)
    feedback = await shipments.feedback_of(session, [shipment])
    return shipment_out(shipment, principal, feedback.get(shipment.id))


@router.patch(
    "/shipments/{shipment_id}",
    responses=problem_responses(
        ShipmentNotFound, Forbidden, IllegalTransition, PreconditionFailed, PreconditionRequired
    ),
)
async def update_shipment(
    shipment_id: uuid.UUID,
    data: schemas.ShipmentUpdateRequest,
    request: Request,
    principal: Shipper,
    session: SessionDep,
    response: Response,
) -> schemas.Shipment:
    """Set the carrier, the legs (through regional sub-centers) or the note of a moving shipment (If-Match);
    coordinators assign the carrier's organisation (`carrier_org`)."""
    expected = if_match_version(request)
    shipment = await shipments.update_shipment(session, principal, shipment_id, data, expected)
    set_etag(response, shipment.version)
    return shipment_out(shipment, principal)


@router.post(
    "/shipments/{shipment_id}/status",
    responses=problem_responses(ShipmentNotFound, Forbidden, IllegalTransition),
)
async def change_status(
    shipment_id: uuid.UUID,
    data: schemas.StatusRequest,
    principal: ShipmentActor,
    session: SessionDep,
    response: Response,
) -> schemas.Shipment:
    """Move a shipment on: planned → picked_up → in_transit → delivered (or cancelled before pick-up, or
    not_received); 409 for any other move."""
    shipment = await shipments.change_status(session, principal, shipment_id, data)
    set_etag(response, shipment.version)
    return shipment_out(shipment, principal)


@router.post(
    "/shipments/proposals/{proposal_id}/withdraw",
    responses=problem_responses(AcceptedProposalNotFound, Forbidden, AlreadyPickedUp),
)
async def withdraw_proposal(
    proposal_id: uuid.UUID, data: schemas.WithdrawalRequest, principal: ServiceCaller, session: SessionDep
) -> schemas.Withdrawal:
    """Take a declined accepted proposal's goods off its planned shipments (matching calls it when the site
    declines): its lines leave them, a shipment left empty is cancelled; 409 `already-picked-up` after pick-up."""
    return await shipments.withdraw_proposal(session, principal, proposal_id, data.reason)


@router.post(
    "/shipments/{shipment_id}/receipt",
    responses=problem_responses(
        ShipmentNotFound, NotTheRecipient, IllegalTransition, WrongPin, PinLocked, InvalidReceipt
    ),
)
async def record_receipt(
    shipment_id: uuid.UUID,
    data: schemas.ReceiptRequest,
    principal: ShipmentActor,
    request: Request,
    session: SessionDep,
    response: Response,
) -> schemas.Shipment:
    """Proof of delivery: the handover PIN and the quantity received per line, with a reason where short — by
    the receiving site's frontline, the assigned carrier (`carrier_org`) or a coordinator. Shortfalls go back to
    their needs and lots; repeated wrong PINs lock receipt for a while."""
    shipment = await receipts.record_receipt(session, principal, shipment_id, data, request.app.state.settings)
    set_etag(response, shipment.version)
    return shipment_out(shipment, principal)


@router.post(
    "/shipments/{shipment_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(ShipmentNotFound, NotTheRecipient, NotReceivedYet, FeedbackExists),
)
async def give_feedback(
    shipment_id: uuid.UUID, data: schemas.FeedbackCreate, principal: Recipient, session: SessionDep
) -> schemas.Feedback:
    """The recipient's feedback: rating 1–5, comment, beneficiaries served, photo URLs."""
    _, feedback = await receipts.give_feedback(session, principal, shipment_id, data)
    return schemas.Feedback.model_validate(feedback)


# --- procurement and the ledger ------------------------------------------------------------------------------


@router.post(
    "/procurements",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        Forbidden, PledgeUnavailable, PledgeInsufficient, UnknownItem, RestrictionViolated, DestinationUnavailable
    ),
)
async def create_procurement(
    data: schemas.ProcurementCreate, principal: Buyer, session: SessionDep, response: Response
) -> schemas.Procurement:
    """Draft a purchase from a supplier paid from one or more cash pledges (their sum is the order's total)."""
    p = await procurement.create_procurement(session, principal, data)
    set_etag(response, p.version)
    response.headers["Location"] = f"/v1/procurements/{p.id}"
    return procurement_out(p)


@router.get("/procurements", responses=problem_responses(Forbidden))
async def list_procurements(
    principal: Buyer,
    session: SessionDep,
    page: PageQuery,
    status: ProcurementStatus | None = None,
    offer_id: Annotated[uuid.UUID | None, Query(description="Orders paid from this pledge.")] = None,
) -> Page[schemas.Procurement]:
    """Procurement orders, newest first."""
    items, cursor = await procurement.list_procurements(session, page, status=status, offer_id=offer_id)
    return Page(items=[procurement_out(p) for p in items], next_cursor=cursor)


@router.get("/procurements/{procurement_id}", responses=problem_responses(ProcurementNotFound, Forbidden))
async def get_procurement(
    procurement_id: uuid.UUID, principal: Buyer, session: SessionDep, response: Response
) -> schemas.Procurement:
    """One procurement order: supplier, lines and unit prices, funding, status and the goods it became."""
    p = await procurement.get_procurement(session, procurement_id)
    set_etag(response, p.version)
    return procurement_out(p)


@router.post(
    "/procurements/{procurement_id}/order",
    responses=problem_responses(
        ProcurementNotFound,
        Forbidden,
        ProcurementNotInState,
        PledgeInsufficient,
        RestrictionViolated,
        DestinationUnavailable,
    ),
)
async def order_procurement(
    procurement_id: uuid.UUID, principal: Buyer, session: SessionDep, response: Response
) -> schemas.Procurement:
    """Place the order: each pledge's share is spent now; 409 (and nothing spent) if any pledge falls short."""
    p = await procurement.order_procurement(session, principal, procurement_id)
    set_etag(response, p.version)
    return procurement_out(p)


@router.post(
    "/procurements/{procurement_id}/receive",
    responses=problem_responses(
        ProcurementNotFound, Forbidden, ProcurementNotInState, SupplyUnavailable, RestrictionViolated
    ),
)
async def receive_procurement(
    procurement_id: uuid.UUID, principal: Buyer, session: SessionDep, response: Response
) -> schemas.Procurement:
    """The supplier delivered: the goods become an in-kind offer that is matched and shipped like any lot."""
    p = await procurement.receive_procurement(session, principal, procurement_id)
    set_etag(response, p.version)
    return procurement_out(p)


@router.post(
    "/procurements/{procurement_id}/cancel",
    responses=problem_responses(ProcurementNotFound, Forbidden, ProcurementNotInState),
)
async def cancel_procurement(
    procurement_id: uuid.UUID,
    principal: Buyer,
    session: SessionDep,
    response: Response,
    data: schemas.CancelRequest | None = None,
) -> schemas.Procurement:
    """Cancel a draft or an order not yet received; an ordered one gives its amounts back to the pledges."""
    p = await procurement.cancel_procurement(
        session, principal, procurement_id, (data or schemas.CancelRequest()).reason
    )
    set_etag(response, p.version)
    return procurement_out(p)


@router.get("/ledger", responses=problem_responses(Forbidden))
async def list_ledger(
    principal: Staff,
    session: SessionDep,
    page: PageQuery,
    kind: LedgerKind | None = None,
    offer_id: uuid.UUID | None = None,
    procurement_id: uuid.UUID | None = None,
    shipment_id: uuid.UUID | None = None,
    region_code: RegionPrefix | None = None,
) -> Page[fund_schemas.LedgerTransaction]:
    """The ledger, newest first: money pledged, received, spent and refunded, in-kind value offered and delivered
    (fen), each transaction with its balanced `entries` between accounts. A hub's coordinator (a token with
    `regions`) reads it by a `region_code` inside its regions."""
    require_in_region(principal, region_code, what="The ledger asked for")
    items, cursor = await ledger.list_ledger(
        session,
        page,
        kind=kind,
        offer_id=offer_id,
        procurement_id=procurement_id,
        shipment_id=shipment_id,
        region_code=region_code,
    )
    return Page(items=await transactions_out(session, items), next_cursor=cursor)


# --- public tracking and the impact report -------------------------------------------------------------------


TrackingCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
PageLanguage = Annotated[str | None, Query(pattern="^(zh|en)$", description="Page language; else Accept-Language.")]


# Before `/track/{code}`, whose parameter would take `….html` too.
@router.get(
    "/track/{code}.html",
    dependencies=[TrackRateLimit],
    response_class=HTMLResponse,
    responses={
        **problem_responses(TrackingCodeNotFound, TooManyRequests),
        200: {"description": "The gift's page.", "content": {"text/html": {"schema": {"type": "string"}}}},
    },
    openapi_extra={"security": []},
)
async def track_page(code: TrackingCode, request: Request, session: SessionDep, lang: PageLanguage = None) -> Response:
    """Public, no token: a gift's timeline as a page for browsers, in Chinese or English. Rate-limited per
    client."""
    result = await tracking.track(session, code)
    html = page.render_tracking(result, page.language(request, lang))
    return html_response(html, styles=page.tracking_page_styles())


@router.get(
    "/track/{code}",
    dependencies=[TrackRateLimit],
    response_model=schemas.Tracking,
    responses=problem_responses(TrackingCodeNotFound, TooManyRequests),
    openapi_extra={"security": []},
)
async def track(
    code: TrackingCode,
    request: Request,
    session: SessionDep,
    # A browser (`Accept: text/html`, or `?format=html`) gets the page of `/track/{code}.html` here too: the
    # link given to donors. Left out of the document, so that clients generated from it read JSON only.
    lang: Annotated[str | None, Query(pattern="^(zh|en)$", include_in_schema=False)] = None,
    format: Annotated[str | None, Query(pattern="^(json|html)$", include_in_schema=False)] = None,
) -> Any:
    """Public, no token: a gift's timeline from offer to receipt and feedback, with no personal data (the same
    as a page: `/v1/track/{code}.html`). Rate-limited per client."""
    result = await tracking.track(session, code)
    if page.wants_html(request, format):
        html = page.render_tracking(result, page.language(request, lang))
        return html_response(html, styles=page.tracking_page_styles())
    return result


@router.get("/reports/impact", responses=problem_responses(Forbidden))
async def impact_report(
    principal: CurrentPrincipal,
    session: SessionDep,
    region_code: Annotated[RegionPrefix | None, Query(description="Region code prefix.")] = None,
    level: schemas.ReportLevel = schemas.ReportLevel.county,
    since: Annotated[Timestamp | None, Query(alias="from", description="From this time (inclusive).")] = None,
    until: Annotated[Timestamp | None, Query(alias="to", description="Until this time (exclusive).")] = None,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "CNY",
) -> schemas.Impact:
    """Money raised and spent, goods value, sites supported, beneficiaries, fill rate, time to match and to
    delivery — by province, city or county under a region prefix, over a time window."""
    return await tracking.impact(
        session, region_code=region_code, level=level, since=since, until=until, currency=currency
    )


# --- exports --------------------------------------------------------------------------------------------------


def _file_response(body: Any, fmt: exports.ExportFormat | exports.PublicFormat, dataset: str) -> StreamingResponse:
    media = exports.MEDIA_TYPES[exports.ExportFormat(fmt.value)]
    disposition = f'attachment; filename="{exports.filename(dataset, fmt)}"'
    return StreamingResponse(body, media_type=media, headers={"Content-Disposition": disposition})


_CSV = {"text/csv": {"schema": {"type": "string"}}}
_CSV_FILE = {"description": "The file, streamed: CSV (the HXL form with its hashtag row).", "content": _CSV}
_FILE = {
    "description": "The file, streamed: CSV (also the HXL form, with its hashtag row) or an XLSX workbook.",
    "content": {
        **_CSV,
        exports.MEDIA_TYPES[exports.ExportFormat.xlsx]: {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.get(
    "/exports/{dataset}",
    response_class=StreamingResponse,
    responses={**problem_responses(Forbidden, OperationNotFound), 200: _FILE},
)
async def exports_get(
    dataset: exports.Dataset,
    principal: Staff,
    request: Request,
    session: SessionDep,
    format: exports.ExportFormat = exports.ExportFormat.csv,
    operation_id: Annotated[uuid.UUID | None, Query(description="Only this relief operation's rows.")] = None,
    region_code: Annotated[RegionPrefix | None, Query(description="Region code prefix.")] = None,
    since: Annotated[Timestamp | None, Query(alias="from", description="From this time (inclusive).")] = None,
    until: Annotated[Timestamp | None, Query(alias="to", description="Until this time (exclusive).")] = None,
) -> StreamingResponse:
    """Coordinators: needs (a row per line), offers (a row per lot), deliveries (a row per shipment line) or
    the ledger (a row per entry) as CSV, XLSX or HXL-tagged CSV (a second header row of hashtags), streamed.
    Text cells a spreadsheet would run as formulas are escaped with a leading apostrophe. With `operation_id`
    only that relief operation's needs and offers, the deliveries to its needs and the ledger entries of its
    offers and funds; an operation that does not exist is a 404, one with nothing yet an export of headers."""
    require_in_region(principal, region_code, what="The export")
    if operation_id is not None:
        await funds.get_operation(session, operation_id)
    filters = exports.Filters(region_code=region_code, since=since, until=until, operation_id=operation_id)
    body = exports.stream(request.app.state.runtime.sessionmaker, dataset, format, filters)
    return _file_response(body, format, dataset.value)


@router.get(
    "/public/exports/deliveries",
    dependencies=[PublicRateLimit],
    response_class=StreamingResponse,
    responses={**problem_responses(TooManyRequests), 200: _CSV_FILE},
    openapi_extra={"security": []},
)
async def public_exports_deliveries(
    session: SessionDep, format: exports.PublicFormat = exports.PublicFormat.hxl
) -> StreamingResponse:
    """Public, no token: the 3W of deliveries — shipments received, sites supported and quantities received
    by county, item category and month (China time), as HXL-tagged CSV or plain CSV. No personal data, no
    organisations. Rate-limited per client."""
    chunks = [chunk async for chunk in exports.public_deliveries(session, format)]
    return _file_response(iter(chunks), format, "deliveries-3w")
