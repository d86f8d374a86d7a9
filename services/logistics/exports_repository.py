"""Queries behind the exports: one keyset page of needs, offers, deliveries or ledger entries after a position,
under a region prefix, a time window and a relief operation; and the received deliveries the public 3W counts.

A need belongs to an operation by its own `operation_id`, an offer by its own (supply gives an offer pledged into
an operation's fund that operation), a delivery line by its need's, a ledger entry by its offer's or by a posting
on a fund of the operation (a purchase a fund paid names no offer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, or_, select, tuple_

from services.logistics.models import Fund, LedgerEntry, LedgerPosting, NeedView, OfferView, Shipment, ShipmentLine
from shared.db import RepositoryBase
from shared.vocabulary import ShipmentStatus

PAGE_SIZE = 1000
RECEIVED = (ShipmentStatus.received, ShipmentStatus.received_with_problem)

Position = tuple[Any, ...] | None


@dataclass(frozen=True)
class Filters:
    region_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    operation_id: uuid.UUID | None = None


def _window(column: Any, f: Filters) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.since is not None:
        out.append(column >= f.since)
    if f.until is not None:
        out.append(column < f.until)
    return out


def _after(keys: Sequence[Any], position: Position) -> list[ColumnElement[bool]]:
    return [] if position is None else [tuple_(*keys) > tuple_(*(literal(v) for v in position))]


def _page(stmt: Select[Any], keys: Sequence[Any], where: list[ColumnElement[bool]]) -> Select[Any]:
    return stmt.where(*where).order_by(*keys).limit(PAGE_SIZE)


class ExportRepository(RepositoryBase[NeedView]):
    model = NeedView

    async def needs(self, f: Filters, position: Position) -> list[NeedView]:
        keys = (NeedView.need_created_at, NeedView.need_id)
        where = [*_window(NeedView.need_created_at, f), *_after(keys, position)]
        if f.region_code:
            where.append(NeedView.region_code.startswith(f.region_code, autoescape=True))
        if f.operation_id is not None:
            where.append(NeedView.operation_id == f.operation_id)
        return list((await self.session.execute(_page(select(NeedView), keys, where))).scalars())

    async def offers(self, f: Filters, position: Position) -> list[OfferView]:
        """Offers in the window; the region filter is applied to their lots (money has none)."""
        keys = (OfferView.offer_created_at, OfferView.offer_id)
        where = [*_window(OfferView.offer_created_at, f), *_after(keys, position)]
        if f.operation_id is not None:
            where.append(OfferView.operation_id == f.operation_id)
        return list((await self.session.execute(_page(select(OfferView), keys, where))).scalars())

    async def deliveries(self, f: Filters, position: Position) -> list[tuple[ShipmentLine, Shipment]]:
        keys = (Shipment.created_at, ShipmentLine.id)
        where = [*_window(Shipment.created_at, f), *_after(keys, position)]
        if f.region_code:
            where.append(Shipment.region_code.startswith(f.region_code, autoescape=True))
        if f.operation_id is not None:
            of_operation = select(NeedView.need_id).where(NeedView.operation_id == f.operation_id)
            where.append(ShipmentLine.need_id.in_(of_operation))
        stmt = select(ShipmentLine, Shipment).join(Shipment, Shipment.id == ShipmentLine.shipment_id)
        rows = await self.session.execute(stmt.where(*where).order_by(*keys).limit(PAGE_SIZE))
        return [(line, s) for line, s in rows.all()]

    async def ledger(self, f: Filters, position: Position) -> list[LedgerEntry]:
        keys = (LedgerEntry.created_at, LedgerEntry.id)
        where = [*_window(LedgerEntry.created_at, f), *_after(keys, position)]
        if f.region_code:
            where.append(LedgerEntry.region_code.startswith(f.region_code, autoescape=True))
        if f.operation_id is not None:
            offers = select(OfferView.offer_id).where(OfferView.operation_id == f.operation_id)
            funds = select(Fund.id).where(Fund.operation_id == f.operation_id)
            on_fund = select(LedgerPosting.entry_id).where(LedgerPosting.fund_id.in_(funds))
            where.append(or_(LedgerEntry.offer_id.in_(offers), LedgerEntry.id.in_(on_fund)))
        return list((await self.session.execute(_page(select(LedgerEntry), keys, where))).scalars())

    async def received_by_region_item_month(self) -> list[tuple[str, str, str, list[Any], list[Any], int]]:
        """Received shipments grouped by county, item code and month (China time): (region, item code, month,
        shipment ids, destination site ids, quantity received)."""
        month = func.to_char(func.timezone("Asia/Shanghai", Shipment.received_at), "YYYY-MM")
        stmt = (
            select(
                Shipment.region_code,
                ShipmentLine.item_code,
                month.label("month"),
                func.array_agg(func.distinct(Shipment.id)),
                func.array_agg(func.distinct(Shipment.destination_site_id)),
                func.coalesce(func.sum(ShipmentLine.quantity_received), 0),
            )
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .where(Shipment.status.in_(RECEIVED), Shipment.received_at.is_not(None))
            .group_by(Shipment.region_code, ShipmentLine.item_code, month)
        )
        return [(r, i, m, list(s), list(t), int(q)) for r, i, m, s, t, q in (await self.session.execute(stmt)).all()]


__all__ = ["PAGE_SIZE", "ExportRepository", "Filters", "Position"]
