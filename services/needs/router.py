"""HTTP endpoints of the needs service: the item catalog, sites, needs, verification, imports."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Path, Query, Request, Response, status

from services.needs import schemas, service
from services.needs.dependencies import Coordinator, SiteWriter
from services.needs.errors import ItemExists, ItemNotFound, NeedNotFound, SiteNotFound
from services.needs.models import Need, Site
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, Principal, require_national
from shared.catalog import UnknownItem, get_catalog
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    problem_responses,
)
from shared.etag import if_match_version, set_etag, unchanged_since
from shared.pagination import Page, PageQuery, SyncPage, SyncPageQuery, sync_page
from shared.tabular import ImportRejected, ImportReport, UploadedRows
from shared.vocabulary import NeedStatus, RegionPrefix, SiteKind, Urgency

router = service_router(prefix="/v1", tags=["needs"])

RegionQuery = Annotated[RegionPrefix | None, Query(description="Region code prefix.")]


def site_out(site: Site, principal: Principal) -> schemas.Site:
    out = schemas.Site.model_validate(site)
    if not service.may_see_contact(principal, site.org):
        out.contact_name = out.contact_phone = None
    return out


def need_out(need: Need) -> schemas.Need:
    return schemas.Need.model_validate(need)


@router.get("/items", responses=problem_responses())
async def list_items(
    principal: CurrentPrincipal,
    category: Annotated[str | None, Query(max_length=50)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> schemas.ItemList:
    """The item catalog: codes, names (zh, en), units, substitutes and the working group that checks it."""
    items = get_catalog().search(category=category, q=q)
    return schemas.ItemList(items=[schemas.CatalogItem.model_validate(i.model_dump()) for i in items])


@router.post("/items", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden, ItemExists))
async def create_item(
    data: schemas.ItemCreate, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.CatalogItem:
    """Add an item to the catalog (national coordinators): needs and lots may name it at once, every service
    follows."""
    require_national(principal, what="The item catalog")
    item = await service.add_item(session, data)
    response.headers["Location"] = f"/v1/items/{item.code}"
    return schemas.CatalogItem.model_validate(item.model_dump())


@router.get("/items/{item_code}", responses=problem_responses(ItemNotFound))
async def get_item(item_code: Annotated[str, Path(max_length=100)], principal: CurrentPrincipal) -> schemas.CatalogItem:
    """One item of the catalog."""
    item = get_catalog().get(item_code)
    if item is None:
        raise ItemNotFound(f"No item {item_code} in the catalog.")
    return schemas.CatalogItem.model_validate(item.model_dump())


@router.post("/sites", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden))
async def create_site(
    data: schemas.SiteCreate, principal: SiteWriter, session: SessionDep, response: Response
) -> schemas.Site:
    """Register a recipient site (hospital, community, shelter…) of your organisation."""
    site = await service.create_site(session, principal, data)
    set_etag(response, site.version)
    response.headers["Location"] = f"/v1/sites/{site.id}"
    return site_out(site, principal)


@router.get("/sites", responses=problem_responses())
async def list_sites(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageQuery,
    region_code: RegionQuery = None,
    kind: SiteKind | None = None,
    org: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[schemas.Site]:
    """Sites, newest first; filter by region code prefix, kind or organisation."""
    items, cursor = await service.list_sites(session, page, org=org, kind=kind, region_code=region_code)
    return Page(items=[site_out(s, principal) for s in items], next_cursor=cursor)


@router.get("/sites/{site_id}", responses=problem_responses(SiteNotFound))
async def get_site(
    site_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Site:
    """One site; contact details only for its organisation and coordinators."""
    site = await service.get_site(session, site_id)
    set_etag(response, site.version)
    return site_out(site, principal)


@router.patch(
    "/sites/{site_id}", responses=problem_responses(SiteNotFound, Forbidden, PreconditionFailed, PreconditionRequired)
)
async def update_site(
    site_id: uuid.UUID,
    data: schemas.SiteUpdate,
    request: Request,
    principal: SiteWriter,
    session: SessionDep,
    response: Response,
) -> schemas.Site:
    """Change a site's details (send If-Match)."""
    expected = if_match_version(request)
    site = await service.update_site(session, principal, site_id, data, expected)
    set_etag(response, site.version)
    return site_out(site, principal)


@router.post(
    "/needs",
    status_code=status.HTTP_201_CREATED,
    responses={
        **problem_responses(SiteNotFound, Forbidden, UnknownItem),
        200: {"model": schemas.Need, "description": "Merged into an open need of the same site"},
    },
)
async def create_need(
    data: schemas.NeedCreate,
    principal: SiteWriter,
    session: SessionDep,
    response: Response,
    on_duplicate: Annotated[
        Literal["flag", "merge"],
        Query(
            description="When the site already has an open need for one of these items: `flag` creates this one "
            "with `duplicate_of` set; `merge` adds the lines to the open need instead."
        ),
    ] = "flag",
) -> schemas.Need:
    """Post a need with its lines; an open twin of the same site is flagged (or merged into)."""
    need, merged = await service.create_need(session, principal, data, on_duplicate=on_duplicate)
    if merged:
        response.status_code = status.HTTP_200_OK
    set_etag(response, need.version)
    response.headers["Location"] = f"/v1/needs/{need.id}"
    return need


@router.get("/needs", responses=problem_responses())
async def list_needs(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: SyncPageQuery,
    status: NeedStatus | None = None,
    site_id: uuid.UUID | None = None,
    region_code: RegionQuery = None,
    item_code: Annotated[str | None, Query(max_length=100)] = None,
    urgency: Urgency | None = None,
    operation_id: Annotated[uuid.UUID | None, Query(description="The relief operation.")] = None,
) -> SyncPage[schemas.Need]:
    """Needs, newest first, filtered by status, site, region code prefix, item, urgency or relief operation;
    with `updated_since`, only those changed after that point, in change order."""
    items, cursor = await service.list_needs(
        session,
        page,
        status=status,
        site_id=site_id,
        region_code=region_code,
        item_code=item_code,
        urgency=urgency,
        operation_id=operation_id,
    )
    return sync_page([need_out(n) for n in items], cursor, page)


@router.get(
    "/needs/{need_id}",
    response_model=schemas.Need,
    responses={
        **problem_responses(NeedNotFound),
        **{304: {"description": "Not modified: If-None-Match names the current ETag."}},
    },
)
async def get_need(
    need_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, request: Request, response: Response
) -> schemas.Need | Response:
    """One need with its lines and their matched and delivered quantities."""
    need = await service.get_need(session, need_id)
    if (unchanged := unchanged_since(request, need.version)) is not None:
        return unchanged
    set_etag(response, need.version)
    return need_out(need)


@router.patch(
    "/needs/{need_id}",
    responses=problem_responses(
        NeedNotFound, Forbidden, Conflict, UnknownItem, PreconditionFailed, PreconditionRequired
    ),
)
async def update_need(
    need_id: uuid.UUID,
    data: schemas.NeedUpdate,
    request: Request,
    principal: SiteWriter,
    session: SessionDep,
    response: Response,
) -> schemas.Need:
    """Change a need (send If-Match); lines may be replaced only before anything is matched."""
    expected = if_match_version(request)
    need = await service.update_need(session, principal, need_id, data, expected)
    set_etag(response, need.version)
    return need_out(need)


@router.post("/needs/{need_id}/verify", responses=problem_responses(NeedNotFound, Forbidden, Conflict))
async def verify_need(
    need_id: uuid.UUID, data: schemas.VerifyRequest, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.Need:
    """Verify or reject a need (coordinators)."""
    need = await service.verify_need(session, principal, need_id, data)
    set_etag(response, need.version)
    return need_out(need)


@router.post("/needs/{need_id}/close", responses=problem_responses(NeedNotFound, Forbidden, Conflict))
async def close_need(
    need_id: uuid.UUID, data: schemas.CloseRequest, principal: SiteWriter, session: SessionDep, response: Response
) -> schemas.Need:
    """Close a need (its site's organisation or a coordinator)."""
    need = await service.close_need(session, principal, need_id, data)
    set_etag(response, need.version)
    return need_out(need)


@router.post("/needs/{need_id}/confirm", responses=problem_responses(NeedNotFound, Forbidden, Conflict))
async def confirm_need(
    need_id: uuid.UUID, principal: SiteWriter, session: SessionDep, response: Response
) -> schemas.Need:
    """Re-confirm that a need is still current, so it does not expire as stale."""
    need = await service.confirm_need(session, principal, need_id)
    set_etag(response, need.version)
    return need_out(need)


@router.post(
    "/needs/imports",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(ImportRejected, Forbidden, NotFound),
)
async def import_needs(rows: UploadedRows, principal: SiteWriter, session: SessionDep) -> ImportReport:
    """Import needs from a CSV or XLSX file (multipart field `file`); all rows or none, with a per-row report.

    Columns: `site_id`, `title`, `item_code`, `quantity`, and optionally `need_ref` (rows sharing it form one
    need), `urgency`, `needed_by`, `beneficiaries`, `unit`, `notes`, `deadline` (hard or soft).
    """
    return await service.import_needs(session, principal, rows)
