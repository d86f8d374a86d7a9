"""HTTP endpoints of the donor statement and the public accounts: JSON, or a printable page in Chinese or
English for a browser (`Accept: text/html`, or the `.html` path)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import HTMLResponse

from services.logistics import account_schemas, page, public_accounts, statement
from services.logistics.dependencies import PublicRateLimit
from services.logistics.errors import DonorNotFound, TooManyRequests
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal
from shared.errors import Forbidden, problem_responses
from shared.html import html_response

router = service_router(prefix="/v1", tags=["logistics"])

# Chinese unless `?lang=en` asks for English (whatever the browser's Accept-Language: these pages are printed and
# passed on, and read the same for everyone).
PageLanguage = Annotated[str | None, Query(pattern="^(zh|en)$", description="Page language (default Chinese).")]
# A browser (`Accept: text/html`, or `?format=html`) gets the page of the `.html` path on the JSON path too. Left
# out of the document, so that clients generated from it read JSON only.
HiddenLanguage = Annotated[str | None, Query(pattern="^(zh|en)$", include_in_schema=False)]
HiddenFormat = Annotated[str | None, Query(pattern="^(json|html)$", include_in_schema=False)]
OperationFilter = Annotated[uuid.UUID | None, Query(description="Only this relief operation's funds and gifts.")]


def _page(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}}


# --- the donor statement --------------------------------------------------------------------------------------


def _statement_page(result: account_schemas.DonorStatement, lang: str) -> Response:
    return html_response(page.render_statement(result, lang), styles=page.page_styles("statement.html"))


# Before `/donors/{donor_id}/statement`, so that the page's own path is never read as the JSON one.
@router.get(
    "/donors/{donor_id}/statement.html",
    response_class=HTMLResponse,
    responses={**problem_responses(DonorNotFound, Forbidden), **_page("The donor's printable statement.")},
)
async def donor_statement_page(
    donor_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, lang: PageLanguage = None
) -> Response:
    """The donor's statement as a printable page, in Chinese (the default) or English."""
    result = await statement.statement(session, principal, donor_id)
    return _statement_page(result, lang or "zh")


@router.get(
    "/donors/{donor_id}/statement",
    response_model=account_schemas.DonorStatement,
    responses=problem_responses(DonorNotFound, Forbidden),
)
async def donor_statement(
    donor_id: uuid.UUID,
    principal: CurrentPrincipal,
    request: Request,
    session: SessionDep,
    lang: HiddenLanguage = None,
    format: HiddenFormat = None,
) -> Any:
    """For the donor's organisation and coordinators: every gift of the donor, the money received against its
    pledges, and per gift where each yuan and unit went — the purchases it paid (its share), the shipments, the
    sites' receipts and their feedback. A browser gets the printable page (`…/statement.html`)."""
    result = await statement.statement(session, principal, donor_id)
    if page.wants_html(request, format):
        return _statement_page(result, lang or "zh")
    return result


# --- the public accounts --------------------------------------------------------------------------------------


def _accounts_page(result: account_schemas.PublicAccounts, lang: str) -> Response:
    return html_response(page.render_accounts(result, lang), styles=page.page_styles("accounts.html"))


@router.get(
    "/public/accounts.html",
    dependencies=[PublicRateLimit],
    response_class=HTMLResponse,
    responses={**problem_responses(TooManyRequests), **_page("The public accounts as a page.")},
    openapi_extra={"security": []},
)
async def public_accounts_page(
    session: SessionDep, operation_id: OperationFilter = None, lang: PageLanguage = None
) -> Response:
    """Public, no token: the accounts as a page for browsers, in Chinese (the default) or English."""
    result = await public_accounts.public_accounts(session, operation_id)
    return _accounts_page(result, lang or "zh")


@router.get(
    "/public/accounts",
    dependencies=[PublicRateLimit],
    response_model=account_schemas.PublicAccounts,
    responses=problem_responses(TooManyRequests),
    openapi_extra={"security": []},
)
async def public_accounts_get(
    request: Request,
    session: SessionDep,
    operation_id: OperationFilter = None,
    lang: HiddenLanguage = None,
    format: HiddenFormat = None,
) -> Any:
    """Public, no token (公示): per public fund what was raised, received, spent, taken as overhead and is left;
    goods offered, delivered and received by item category and by province, city and county; sites supported;
    people served per beneficiary group; donors that chose a public name. No contact, PIN or address. A browser
    gets the page (`/v1/public/accounts.html`). Rate-limited per client."""
    result = await public_accounts.public_accounts(session, operation_id)
    if page.wants_html(request, format):
        return _accounts_page(result, lang or "zh")
    return result
