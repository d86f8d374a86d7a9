"""Queries behind the donor statement and the public accounts: donors as projected, a donor's gifts and the
purchases they paid, and the public sums of goods, sites, people served and named donors."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, column, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import selectinload

from services.logistics.models import (
    DonorView,
    Feedback,
    Fund,
    LedgerEntry,
    LedgerKind,
    OfferView,
    Procurement,
    ProcurementFunding,
    Shipment,
    ShipmentLine,
)
from shared.db import RepositoryBase
from shared.vocabulary import OfferStatus, ShipmentStatus

RECEIVED = (ShipmentStatus.received, ShipmentStatus.received_with_problem)
AT_SITE = (ShipmentStatus.delivered, *RECEIVED)


class DonorRepository(RepositoryBase[DonorView]):
    model = DonorView

    async def upsert_donor(self, values: dict[str, Any]) -> None:
        stmt = insert(DonorView).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[DonorView.donor_id],
                set_={k: stmt.excluded[k] for k in values if k != "donor_id"},
                where=DonorView.version <= stmt.excluded.version,
            )
        )

    async def donor(self, donor_id: uuid.UUID) -> DonorView | None:
        return await self.session.get(DonorView, donor_id)

    async def gifts(self, donor_id: uuid.UUID) -> list[OfferView]:
        """The donor's own offers, oldest first (goods bought with pledges are the purchases', not gifts)."""
        stmt = (
            select(OfferView)
            .where(OfferView.donor_id == donor_id, OfferView.procurement_id.is_(None))
            .order_by(OfferView.offer_created_at, OfferView.offer_id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def received(self, offer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Money received against each pledge (ledger `payment_received`), in fen."""
        if not offer_ids:
            return {}
        stmt = (
            select(LedgerEntry.offer_id, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.kind == LedgerKind.payment_received, LedgerEntry.offer_id.in_(list(offer_ids)))
            .group_by(LedgerEntry.offer_id)
        )
        return {o: int(a) for o, a in (await self.session.execute(stmt)).all() if o is not None}

    async def purchases(self, offer_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, Procurement]]:
        """(paying pledge, purchase with all its funding) for every purchase these pledges paid part of."""
        if not offer_ids:
            return []
        stmt = (
            select(ProcurementFunding.offer_id, Procurement)
            .join(Procurement, Procurement.id == ProcurementFunding.procurement_id)
            .options(selectinload(Procurement.funding))
            .where(ProcurementFunding.offer_id.in_(list(offer_ids)))
            .order_by(Procurement.created_at, Procurement.id)
        )
        return [(o, p) for o, p in (await self.session.execute(stmt)).all() if o is not None]


def _of_operation(operation_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    """Shipment lines of the operation's gifts (all of them without one)."""
    if operation_id is None:
        return []
    return [ShipmentLine.offer_id.in_(select(OfferView.offer_id).where(OfferView.operation_id == operation_id))]


class PublicAccountsRepository(RepositoryBase[OfferView]):
    """Sums anyone may read: never a name, contact, PIN or address (sites only counted, donors by public name)."""

    model = OfferView

    async def public_funds(self, operation_id: uuid.UUID | None) -> list[Fund]:
        stmt = select(Fund).where(Fund.public.is_(True)).order_by(Fund.created_at, Fund.id)
        if operation_id is not None:
            stmt = stmt.where(Fund.operation_id == operation_id)
        return list((await self.session.execute(stmt)).scalars())

    async def goods_offered(self, operation_id: uuid.UUID | None) -> list[tuple[str, str | None, int]]:
        """(item code, the lot's region, units) over every in-kind offer not withdrawn."""
        lots = func.jsonb_array_elements(OfferView.lots).table_valued(column("value", JSONB)).render_derived()
        item, region = lots.c.value["item_code"].astext, lots.c.value["region_code"].astext
        conditions = [OfferView.kind != "cash", OfferView.status != OfferStatus.withdrawn]
        if operation_id is not None:
            conditions.append(OfferView.operation_id == operation_id)
        stmt = (
            select(item, region, func.sum(lots.c.value["quantity"].astext.cast(BigInteger)))
            .select_from(OfferView)
            .join(lots, literal(True))
            .where(and_(*conditions))
            .group_by(item, region)
        )
        return [(i, r, int(q)) for i, r, q in (await self.session.execute(stmt)).all()]

    async def goods_at_sites(self, operation_id: uuid.UUID | None) -> list[tuple[str, str, int, int]]:
        """(item code, the site's region, units delivered, units confirmed received) over shipments at sites."""
        delivered = case(
            (Shipment.status == ShipmentStatus.delivered, ShipmentLine.quantity),
            else_=func.coalesce(ShipmentLine.quantity_received, 0),
        )
        stmt = (
            select(
                ShipmentLine.item_code,
                Shipment.region_code,
                func.sum(delivered),
                func.sum(func.coalesce(ShipmentLine.quantity_received, 0)),
            )
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .where(Shipment.status.in_(AT_SITE), *_of_operation(operation_id))
            .group_by(ShipmentLine.item_code, Shipment.region_code)
        )
        return [(i, r, int(d), int(q)) for i, r, d, q in (await self.session.execute(stmt)).all()]

    def _received_shipments(self, operation_id: uuid.UUID | None) -> Select[uuid.UUID]:
        return (
            select(ShipmentLine.shipment_id)
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .where(Shipment.status.in_(RECEIVED), *_of_operation(operation_id))
        )

    async def sites_supported(self, operation_id: uuid.UUID | None) -> int:
        stmt = select(func.count(func.distinct(Shipment.destination_site_id))).where(
            Shipment.id.in_(self._received_shipments(operation_id))
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def people_served(self, operation_id: uuid.UUID | None) -> dict[str, int]:
        groups = func.jsonb_each_text(Feedback.served_by_group).table_valued("key", "value").render_derived()
        stmt = (
            select(groups.c.key, func.sum(groups.c.value.cast(BigInteger)))
            .select_from(Feedback)
            .join(groups, literal(True))
            .where(Feedback.shipment_id.in_(self._received_shipments(operation_id)))
            .group_by(groups.c.key)
            .order_by(groups.c.key)
        )
        return {k: int(n) for k, n in (await self.session.execute(stmt)).all()}

    async def named_donors(self, operation_id: uuid.UUID | None) -> list[tuple[str, int]]:
        """(public name, gifts not withdrawn) of the donors that chose a public name, most gifts first."""
        conditions = [
            DonorView.public_name.is_not(None),
            OfferView.procurement_id.is_(None),
            OfferView.status != OfferStatus.withdrawn,
        ]
        if operation_id is not None:
            conditions.append(OfferView.operation_id == operation_id)
        gifts = func.count(OfferView.offer_id)
        stmt = (
            select(DonorView.public_name, gifts)
            .join(OfferView, OfferView.donor_id == DonorView.donor_id)
            .where(and_(*conditions))
            .group_by(DonorView.public_name)
            .order_by(gifts.desc(), DonorView.public_name)
        )
        return [(str(n), int(g)) for n, g in (await self.session.execute(stmt)).all()]
