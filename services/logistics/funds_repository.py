"""Queries of relief operations, special funds and the balances of ledger accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from services.logistics.models import Fund, LedgerEntry, LedgerKind, LedgerPosting, Operation
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate
from shared.vocabulary import OperationStatus


def account_kind(account: str) -> str:
    """The kind of an account: its name before the colon (`fund cash:<id>` → `fund cash`)."""
    return account.split(":", 1)[0]


class OperationRepository(RepositoryBase[Operation]):
    model = Operation

    async def search(
        self, params: PageParams, *, status: OperationStatus | None = None, region_code: str | None = None
    ) -> tuple[list[Operation], str | None]:
        stmt = select(Operation)
        if status is not None:
            stmt = stmt.where(Operation.status == status)
        if region_code is not None:
            stmt = stmt.where(Operation.region_code.startswith(region_code, autoescape=True))
        return await paginate(self.session, stmt, Operation.created_at, Operation.id, params)


class FundRepository(RepositoryBase[Fund]):
    model = Fund

    async def search(
        self, params: PageParams, *, operation_id: uuid.UUID | None = None, public: bool | None = None
    ) -> tuple[list[Fund], str | None]:
        stmt = select(Fund)
        if operation_id is not None:
            stmt = stmt.where(Fund.operation_id == operation_id)
        if public is not None:
            stmt = stmt.where(Fund.public.is_(public))
        return await paginate(self.session, stmt, Fund.created_at, Fund.id, params)

    async def many(self, fund_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Fund]:
        if not fund_ids:
            return {}
        rows = await self.session.execute(select(Fund).where(Fund.id.in_(list(set(fund_ids)))))
        return {f.id: f for f in rows.scalars()}


class AccountRepository(RepositoryBase[LedgerPosting]):
    """Balances are sums of postings: per fund (or pledge), per kind of account and kind of transaction."""

    model = LedgerPosting

    async def _sums(self, column: object, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[tuple[str, str], int]]:
        kind = func.split_part(LedgerPosting.account, ":", 1)
        stmt = (
            select(column, kind, LedgerEntry.kind, func.sum(LedgerPosting.amount))  # type: ignore[call-overload]
            .join(LedgerEntry, LedgerEntry.id == LedgerPosting.entry_id)
            .where(column.in_(list(set(ids))))  # type: ignore[attr-defined]
            .group_by(column, kind, LedgerEntry.kind)
        )
        out: dict[uuid.UUID, dict[tuple[str, str], int]] = {i: {} for i in ids}
        for owner, account, entry_kind, total in (await self.session.execute(stmt)).all():
            out[owner][(account, LedgerKind(entry_kind).value)] = int(total)
        return out

    async def by_fund(self, fund_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[tuple[str, str], int]]:
        """Per fund: the sum of its postings by (account kind, transaction kind)."""
        return await self._sums(LedgerPosting.fund_id, fund_ids) if fund_ids else {}

    async def by_offer(self, offer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[tuple[str, str], int]]:
        """Per pledge: the sum of its postings by (account kind, transaction kind)."""
        return await self._sums(LedgerPosting.offer_id, offer_ids) if offer_ids else {}

    async def lock_fund(self, fund_id: uuid.UUID) -> None:
        """Serialise spenders of one fund, so concurrent orders never overspend it."""
        await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"fund:{fund_id}", 0))))

    async def lock_pledge(self, offer_id: uuid.UUID) -> None:
        """Serialise spenders of one pledge outside any fund, so concurrent orders never spend more of it than
        was received."""
        await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"pledge:{offer_id}", 0))))
