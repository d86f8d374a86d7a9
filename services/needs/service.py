"""Business rules of the needs service: sites, needs, verification, duplicates, staleness, imports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from services.needs import events, operations, schemas
from services.needs.errors import (
    ItemExists,
    NeedAlreadyMatched,
    NeedNotFound,
    NeedNotOpen,
    NotYourSite,
    SiteNotFound,
)
from services.needs.models import Need, NeedLine, Site
from services.needs.pending import resolve_lines
from services.needs.repository import NeedRepository, SiteRef, SiteRepository, add_catalog_item
from shared.auth import Principal, may_act_in, require_in_region
from shared.catalog import Item, apply_items, get_catalog, require_known, to_base_units
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import publish
from shared.events.outbox import outbox_row
from shared.pagination import PageParams
from shared.settings import Settings
from shared.tabular import ImportRejected, ImportReport, RowErrors, end_of_day, group_rows, unknown_items
from shared.vocabulary import ACTIVE_NEED_STATUSES, NeedLineStatus, NeedStatus, SiteKind, Urgency, Verification

DuplicatePolicy = Literal["flag", "merge"]


def may_see_contact(principal: Principal, org: str) -> bool:
    return principal.is_staff or principal.owns(org)


def _require_owner(principal: Principal, org: str) -> None:
    if not (principal.is_staff or principal.owns(org)):
        raise NotYourSite()


# --- sites -------------------------------------------------------------------------------------------


async def create_site(session: AsyncSession, principal: Principal, data: schemas.SiteCreate) -> Site:
    org = data.org if (data.org and principal.is_staff) else principal.org
    if data.org and data.org != principal.org and not principal.is_staff:
        raise NotYourSite("Only coordinators may register a site for another organisation.")
    require_in_region(principal, data.region_code, what="The site")
    site = Site(id=uuid.uuid4(), org=org, version=1, **data.model_dump(exclude={"org"}))
    SiteRepository(session).add(site)
    await session.flush()
    await session.refresh(site)
    await publish(session, events.SITE_CREATED, events.site_data(site), subject=str(site.id))
    return site


async def get_site(session: AsyncSession, site_id: uuid.UUID, *, for_update: bool = False) -> Site:
    site = await SiteRepository(session).get(site_id, for_update=for_update)
    if site is None:
        raise SiteNotFound(f"No site {site_id}.")
    return site


async def list_sites(
    session: AsyncSession,
    params: PageParams,
    *,
    org: str | None = None,
    kind: SiteKind | None = None,
    region_code: str | None = None,
) -> tuple[list[Site], str | None]:
    return await SiteRepository(session).search(params, org=org, kind=kind, region_code=region_code)


async def update_site(
    session: AsyncSession,
    principal: Principal,
    site_id: uuid.UUID,
    data: schemas.SiteUpdate,
    expected_version: IfMatch,
) -> Site:
    site = await get_site(session, site_id, for_update=True)
    _require_owner(principal, site.org)
    require_in_region(principal, site.region_code, what="The site")
    check_version(expected_version, site.version)
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "kind", "region_code"):
        if key in changes and changes[key] is None:
            changes.pop(key)
    if "region_code" in changes:
        require_in_region(principal, changes["region_code"], what="The site's new region")
    region_moved = "region_code" in changes and changes["region_code"] != site.region_code
    for key, value in changes.items():
        setattr(site, key, value)
    site.version += 1
    site.updated_at = utcnow()
    await session.flush()
    await publish(session, events.SITE_UPDATED, events.site_data(site), subject=str(site.id))
    if region_moved:
        # Needs keep a copy of their site's region for filtering and roll-ups; active ones move with it.
        for need in await NeedRepository(session).active_of_site(site.id, ACTIVE_NEED_STATUSES):
            need.region_code = site.region_code
            _bump(need)
            await session.flush()
            await events.publish_need(session, events.NEED_UPDATED, need, site)
    return site


# --- needs -------------------------------------------------------------------------------------------


def _line_rows(
    data: list[schemas.NeedLineCreate], need_id: uuid.UUID | None = None, start: int = 0
) -> list[dict[str, Any]]:
    """Rows of the lines, in base units; a line naming a pending item request (no item code) waits as
    `pending_item`, in the unit it was asked in."""
    known = [(i, line, line.item_code) for i, line in enumerate(data) if line.item_code is not None]
    require_known((["body", "lines", i, "item_code"], code) for i, _, code in known)
    based = dict(
        zip(
            [i for i, _, _ in known],
            to_base_units((["body", "lines", i, "unit"], code, line.quantity, line.unit) for i, line, code in known),
            strict=True,
        )
    )
    rows = []
    for i, line in enumerate(data):
        quantity, unit = based.get(i, (line.quantity, line.unit or ""))
        row = {
            "id": uuid.uuid4(),
            "position": start + i,
            "item_code": line.item_code,
            "quantity": quantity,
            "unit": unit,
            "notes": line.notes,
            "deadline": line.deadline,
            "status": NeedLineStatus.open.value if line.item_code else NeedLineStatus.pending_item.value,
            "item_request_id": line.item_request_id,
            "pending_reason": None,
            "quantity_matched": 0,
            "quantity_delivered": 0,
            "quantity_in_transit": 0,
            "quantity_claimed": 0,
        }
        if need_id is not None:
            row["need_id"] = need_id
        rows.append(row)
    return rows


def _lines(data: list[schemas.NeedLineCreate], start: int = 0) -> list[NeedLine]:
    return [NeedLine(**row) for row in _line_rows(data, start=start)]


async def create_need(
    session: AsyncSession,
    principal: Principal,
    data: schemas.NeedCreate,
    *,
    on_duplicate: DuplicatePolicy = "flag",
    site: Site | None = None,
) -> tuple[schemas.Need, bool]:
    """Create a need, or merge it into an open twin of the same site. Returns (need, merged).

    The intake hot path: one query for the site and its twin, Core inserts, no unit of work."""
    repo = NeedRepository(session)
    data = data.model_copy(update={"lines": await resolve_lines(session, data.lines)})
    codes = {line.item_code for line in data.lines if line.item_code is not None}
    ref: Site | SiteRef | None = site
    if site is None:
        ref, twin_id = await repo.site_with_twin_id(data.site_id, codes, ACTIVE_NEED_STATUSES)
        if ref is None:
            raise SiteNotFound(f"No site {data.site_id}.")
    else:
        twin_id = await repo.find_open_twin_id(site.id, codes, ACTIVE_NEED_STATUSES)
    assert ref is not None
    _require_owner(principal, ref.org)
    require_in_region(principal, ref.region_code, what="The site")
    await operations.check_operation(session, data.operation_id)
    need_id = uuid.uuid4()
    line_rows = _line_rows(data.lines, need_id)
    if on_duplicate == "merge" and twin_id is not None:
        twin = await repo.find_open_twin(ref.id, codes, ACTIVE_NEED_STATUSES, for_update=True)
        if twin is not None:
            merged = await _merge_into(session, twin, ref, data, _lines(data.lines))
            return schemas.Need.model_validate(merged), True
    now = utcnow()
    row: dict[str, Any] = {
        "id": need_id,
        "site_id": ref.id,
        "org": ref.org,
        "region_code": ref.region_code,
        "title": data.title,
        "urgency": data.urgency.value,
        "needed_by": data.needed_by,
        "beneficiaries": data.beneficiaries,
        "beneficiary_groups": {g.value: n for g, n in data.beneficiary_groups.items()},
        "status": NeedStatus.open.value,
        "verification": Verification.unverified.value,
        "duplicate_of": twin_id,
        "confirmed_at": now,
        "created_at": now,
        "updated_at": now,
        "created_by": principal.sub,
        "version": 1,
        "operation_id": data.operation_id,
    }
    need = schemas.Need.model_construct(
        **{
            **row,
            "urgency": data.urgency,
            "status": NeedStatus.open,
            "verification": Verification.unverified,
        },
        verification_reason=None,
        close_reason=None,
        lines=[
            schemas.NeedLine.model_construct(**{**line, "status": NeedLineStatus(line["status"])}) for line in line_rows
        ],
    )
    _, outbox = outbox_row(session, events.NEED_CREATED, events.need_data(need, ref), subject=str(need_id))
    await repo.insert_new(row, line_rows, outbox)
    return need, False


_URGENCY_RANK = {Urgency.critical: 0, Urgency.high: 1, Urgency.normal: 2, Urgency.low: 3}


async def _merge_into(
    session: AsyncSession, twin: Need, site: Site | SiteRef, data: schemas.NeedCreate, lines: list[NeedLine]
) -> Need:
    # A line adds to the twin's line of its item, unit and deadline (a soft and a hard line bind differently).
    by_item = {(line.item_code, line.unit, line.deadline): line for line in twin.lines}
    position = max((line.position for line in twin.lines), default=-1) + 1
    for line in lines:
        existing = by_item.get((line.item_code, line.unit, line.deadline)) if line.item_code is not None else None
        if existing is not None:
            existing.quantity += line.quantity
        else:
            line.position = position
            position += 1
            twin.lines.append(line)
    if _URGENCY_RANK[data.urgency] < _URGENCY_RANK[twin.urgency]:
        twin.urgency = data.urgency
    if data.needed_by and (twin.needed_by is None or data.needed_by < twin.needed_by):
        twin.needed_by = data.needed_by
    if data.beneficiaries is not None:
        twin.beneficiaries = max(twin.beneficiaries or 0, data.beneficiaries)
    twin.confirmed_at = utcnow()
    twin.version += 1
    twin.updated_at = utcnow()
    await session.flush()
    await events.publish_need(session, events.NEED_MERGED, twin, site)
    return twin


async def get_need(session: AsyncSession, need_id: uuid.UUID, *, for_update: bool = False) -> Need:
    need = await NeedRepository(session).get_with_lines(need_id, for_update=for_update)
    if need is None:
        raise NeedNotFound(f"No need {need_id}.")
    return need


async def list_needs(
    session: AsyncSession,
    params: PageParams,
    *,
    status: NeedStatus | None = None,
    site_id: uuid.UUID | None = None,
    region_code: str | None = None,
    item_code: str | None = None,
    urgency: Urgency | None = None,
    operation_id: uuid.UUID | None = None,
) -> tuple[list[Need], str | None]:
    """Needs, newest first; every filter given narrows the list."""
    return await NeedRepository(session).search(
        params,
        status=status,
        site_id=site_id,
        region_code=region_code,
        item_code=item_code,
        urgency=urgency,
        operation_id=operation_id,
    )


async def _get_for_change(
    session: AsyncSession, principal: Principal, need_id: uuid.UUID, expected_version: IfMatch
) -> Need:
    need = await get_need(session, need_id, for_update=True)
    _require_owner(principal, need.org)
    require_in_region(principal, need.region_code, what="The need")
    check_version(expected_version, need.version)
    return need


def _bump(need: Need) -> None:
    need.version += 1
    need.updated_at = utcnow()


async def update_need(
    session: AsyncSession,
    principal: Principal,
    need_id: uuid.UUID,
    data: schemas.NeedUpdate,
    expected_version: IfMatch,
) -> Need:
    need = await _get_for_change(session, principal, need_id, expected_version)
    if need.status not in ACTIVE_NEED_STATUSES:
        raise NeedNotOpen(f"The need is {need.status}; it can no longer be edited.")
    changes = data.model_dump(exclude_unset=True, exclude={"lines"})
    for key in ("title", "urgency"):
        if key in changes and changes[key] is None:
            changes.pop(key)
    if "beneficiary_groups" in changes and changes["beneficiary_groups"] is None:
        changes["beneficiary_groups"] = {}  # null: the need names no group any more
    if changes.get("operation_id") not in (None, need.operation_id):
        await operations.check_operation(session, changes["operation_id"])
    for key, value in changes.items():
        setattr(need, key, value)
    if data.lines is not None:
        if any(line.quantity_matched or line.quantity_delivered for line in need.lines):
            raise NeedAlreadyMatched()
        need.lines.clear()
        await session.flush()
        need.lines.extend(_lines(await resolve_lines(session, data.lines)))
    need.confirmed_at = utcnow()
    _bump(need)
    await session.flush()
    await events.publish_need(session, events.NEED_UPDATED, need)
    return need


async def verify_need(
    session: AsyncSession, principal: Principal, need_id: uuid.UUID, data: schemas.VerifyRequest
) -> Need:
    need = await get_need(session, need_id, for_update=True)
    require_in_region(principal, need.region_code, what="The need")
    if need.status not in ACTIVE_NEED_STATUSES:
        raise NeedNotOpen(f"The need is {need.status}; there is nothing to verify.")
    need.verification = Verification(data.verdict)
    need.verification_reason = data.reason
    need.verified_by = principal.sub
    need.verified_at = utcnow()
    _bump(need)
    await session.flush()
    await events.publish_need(session, events.NEED_VERIFIED, need, reason=data.reason)
    return need


async def close_need(
    session: AsyncSession, principal: Principal, need_id: uuid.UUID, data: schemas.CloseRequest
) -> Need:
    need = await _get_for_change(session, principal, need_id, None)
    if need.status not in ACTIVE_NEED_STATUSES:
        raise NeedNotOpen(f"The need is already {need.status}.")
    need.status = NeedStatus.closed
    need.close_reason = data.reason
    need.closed_at = utcnow()
    _bump(need)
    await session.flush()
    await events.publish_need(session, events.NEED_CLOSED, need, reason=data.reason)
    return need


async def confirm_need(session: AsyncSession, principal: Principal, need_id: uuid.UUID) -> Need:
    need = await _get_for_change(session, principal, need_id, None)
    if need.status not in ACTIVE_NEED_STATUSES:
        raise NeedNotOpen(f"The need is {need.status}; it cannot be re-confirmed.")
    need.confirmed_at = utcnow()
    _bump(need)
    await session.flush()
    await events.publish_need(session, events.NEED_CONFIRMED, need)
    return need


async def expire_stale_needs(session: AsyncSession, settings: Settings) -> int:
    """Expire open needs past `needed_by` or not re-confirmed within `need_confirm_days`."""
    now = utcnow()
    ids = await NeedRepository(session).expire_stale(now, now - timedelta(days=settings.need_confirm_days), 500)
    for need_id in ids:
        need = await get_need(session, need_id)
        await session.refresh(need)
        await events.publish_need(session, events.NEED_EXPIRED, need, reason="past needed_by or not re-confirmed")
    return len(ids)


# --- bulk import -------------------------------------------------------------------------------------

IMPORT_COLUMNS = ("site_id", "title", "item_code", "quantity")


def parse_import(rows: list[dict[str, str]], errors: RowErrors) -> list[tuple[list[int], schemas.NeedCreate]]:
    """Group rows into needs (by `need_ref`, else one need per row) and validate them."""
    parsed: list[tuple[list[int], schemas.NeedCreate]] = []
    for group in group_rows(rows, "need_ref", IMPORT_COLUMNS, errors):
        numbers = [n for n, _ in group]
        first = group[0][1]
        clashes = [n for n, r in group[1:] if r.get("site_id") and r.get("site_id") != first.get("site_id")]
        for n in clashes:
            errors.add(n, f"site_id: rows of one need_ref must name one site (row {numbers[0]} names another)")
        if clashes:
            continue
        raw: dict[str, Any] = {
            "site_id": first.get("site_id"),
            "title": first.get("title"),
            "urgency": first.get("urgency") or "normal",
            "needed_by": end_of_day(first.get("needed_by")),
            "beneficiaries": first.get("beneficiaries") or None,
            "lines": [
                {
                    "item_code": r.get("item_code", ""),
                    "quantity": r.get("quantity", ""),
                    "unit": r.get("unit") or None,
                    "notes": r.get("notes") or None,
                    "deadline": r.get("deadline") or "hard",
                }
                for _, r in group
            ],
        }
        try:
            need = schemas.NeedCreate.model_validate(raw)
        except ValidationError as exc:
            errors.add_validation(exc, numbers, "lines")
            continue
        units = [(n, line.item_code or "", line.unit) for n, line in zip(numbers, need.lines, strict=True)]
        if not unknown_items(errors, [(n, code) for n, code, _ in units], units):
            parsed.append((numbers, need))
    return parsed


async def import_needs(
    session: AsyncSession,
    principal: Principal,
    rows: list[dict[str, str]],
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """All or nothing: any rejected row rejects the file, with the reason for every row."""
    errors = RowErrors()
    parsed = await asyncio.to_thread(parse_import, rows, errors)  # 20,000 rows: CPU work
    sites = await SiteRepository(session).get_many({need.site_id for _, need in parsed})
    for numbers, need in parsed:
        site = sites.get(need.site_id)
        if site is None:
            errors.add(numbers[0], f"site_id: no site {need.site_id}")
        elif not (principal.is_staff or principal.owns(site.org)):
            errors.add(numbers[0], "site_id: the site belongs to another organisation")
        elif not may_act_in(principal, site.region_code):
            errors.add(numbers[0], f"site_id: the site is in region {site.region_code}, outside your token's regions")
    if errors:
        raise ImportRejected.from_report(errors.report(len(rows)))
    created: list[uuid.UUID] = []
    for numbers, data in parsed:
        made, _ = await create_need(session, principal, data, site=sites[data.site_id])
        created.append(made.id)
        if progress is not None:
            progress(len(numbers))
    return ImportReport(rows_total=len(rows), rows_accepted=len(rows), rows_rejected=[], created=created, imported=True)


# --- the living catalog -------------------------------------------------------------------------------------


async def add_item(session: AsyncSession, data: schemas.ItemCreate) -> Item:
    """Add an item to the catalog: stored, published to every service, in this process's catalog once the
    transaction commits. Its category is the first part of its code."""
    catalog = get_catalog()
    if data.code in catalog:
        raise ItemExists(f"The catalog already holds {data.code}.")
    require_known((["body", "substitute_rules", i, "code"], r.code) for i, r in enumerate(data.substitute_rules))
    units = [data.unit, *(p.unit for p in data.packs)]
    clashes = [i for i, p in enumerate(data.packs) if units.count(p.unit) > 1]
    if clashes:
        raise InvalidRequest(
            "Each pack needs a unit of its own, other than the base unit.",
            errors=[{"loc": ["body", "packs", i, "unit"], "msg": "unit used twice"} for i in clashes],
        )
    if data.check_by is not None and data.check_by not in catalog.check_groups():
        raise InvalidRequest(
            f"No working group {data.check_by!r} checks items; known: {', '.join(catalog.check_groups())}.",
            errors=[{"loc": ["body", "check_by"], "msg": "unknown working group"}],
        )
    item = Item(
        code=data.code,
        name=data.name,
        category=data.code.split(".")[0],
        unit=data.unit,
        base_unit=data.unit,
        packs=data.packs,
        grade=data.grade,
        unit_value_fen=data.unit_value_fen,
        perishable=data.perishable,
        substitutes=[r.code for r in data.substitute_rules],
        substitute_rules=data.substitute_rules,
        check_by=data.check_by,
    )
    if not await add_catalog_item(session, item.code, item.model_dump(mode="json")):
        raise ItemExists(f"The catalog already holds {data.code}.")
    await events.publish_item(session, item)
    sa_event.listen(session.sync_session, "after_commit", lambda _: apply_items([item]), once=True)
    return item
