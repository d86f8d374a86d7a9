"""Every query of the supply service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, any_, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.orm import selectinload

from services.supply.models import Donor, FundView, Lot, LotShipment, Offer, OperationView, Payment, Reservation
from services.supply.schemas import OfferKind
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate
from shared.vocabulary import AVAILABLE_LOT_VERIFICATIONS, OfferStatus, ReservationStatus


class DonorRepository(RepositoryBase[Donor]):
    model = Donor

    async def get_many(self, ids: set[uuid.UUID]) -> list[Donor]:
        if not ids:
            return []
        return list((await self.session.execute(select(Donor).where(Donor.id.in_(ids)))).scalars())


class OfferRepository(RepositoryBase[Offer]):
    model = Offer

    def _with_lots(self) -> Select[Offer]:
        return select(Offer).options(selectinload(Offer.lots))

    async def get_with_lots(self, offer_id: uuid.UUID, *, for_update: bool = False) -> Offer | None:
        stmt = self._with_lots().where(Offer.id == offer_id)
        if for_update:
            stmt = stmt.with_for_update(of=Offer)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_procurement(self, procurement_id: uuid.UUID) -> Offer | None:
        return (await self.session.execute(select(Offer).where(Offer.procurement_id == procurement_id))).scalar()

    async def search(
        self,
        params: PageParams,
        *,
        donor_id: uuid.UUID | None,
        status: OfferStatus | None,
        kind: OfferKind | None,
        item_code: str | None,
        region_code: str | None,
        operation_id: uuid.UUID | None = None,
        fund_id: uuid.UUID | None = None,
    ) -> tuple[list[Offer], str | None]:
        stmt = self._with_lots()
        if donor_id:
            stmt = stmt.where(Offer.donor_id == donor_id)
        if operation_id:
            stmt = stmt.where(Offer.operation_id == operation_id)
        if fund_id:
            stmt = stmt.where(Offer.fund_id == fund_id)
        if status:
            stmt = stmt.where(Offer.status == status)
        if kind:
            stmt = stmt.where(Offer.kind == kind)
        if item_code:
            stmt = stmt.where(exists().where(Lot.offer_id == Offer.id, Lot.item_code == item_code))
        if region_code:
            stmt = stmt.where(
                exists().where(Lot.offer_id == Offer.id, Lot.region_code.startswith(region_code, autoescape=True))
            )
        return await paginate(self.session, stmt, Offer.created_at, Offer.id, params)

    async def lots_changed_apart(self, offer_id: uuid.UUID) -> bool:
        """Whether a lot was last written by another transaction than the offer row was. Commit order is not
        known, so such a lot may have changed after the offer's current version was read."""
        offer_xid = select(Offer.change_xid).where(Offer.id == offer_id).scalar_subquery()
        stmt = select(exists().where(Lot.offer_id == offer_id, Lot.change_xid != offer_xid))
        return bool((await self.session.execute(stmt)).scalar())


class LotRepository(RepositoryBase[Lot]):
    model = Lot

    async def get_with_offer(self, lot_id: uuid.UUID) -> tuple[Lot, Offer] | None:
        row = (
            await self.session.execute(select(Lot, Offer).join(Offer, Offer.id == Lot.offer_id).where(Lot.id == lot_id))
        ).first()
        return (row[0], row[1]) if row else None

    async def reserve(self, lot_id: uuid.UUID, quantity: int, now: datetime) -> Lot | None:
        """Add to the reserved quantity only if it stays within the lot and the lot may be reserved.

        One conditional UPDATE: concurrent callers queue on the row lock and each re-checks the condition
        against the committed row, so the lot can never be over-reserved.
        """
        stmt = (
            update(Lot)
            .where(
                Lot.id == lot_id,
                Lot.quantity - Lot.quantity_reserved - Lot.quantity_written_off >= quantity,
                Lot.verification.in_(AVAILABLE_LOT_VERIFICATIONS),
                (Lot.expires_at.is_(None)) | (Lot.expires_at > now),
                exists().where(Offer.id == Lot.offer_id, Offer.status == OfferStatus.open),
            )
            .values(quantity_reserved=Lot.quantity_reserved + quantity, version=Lot.version + 1)
            .returning(Lot)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def unreserve(self, lot_id: uuid.UUID, quantity: int) -> Lot:
        stmt = (
            update(Lot)
            .where(Lot.id == lot_id)
            .values(quantity_reserved=Lot.quantity_reserved - quantity, version=Lot.version + 1)
            .returning(Lot)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one()


class ReservationRepository(RepositoryBase[Reservation]):
    model = Reservation

    async def by_reference(self, reference: str) -> Reservation | None:
        stmt = select(Reservation).where(Reservation.reference == reference)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def insert_if_new(self, values: dict[str, Any]) -> uuid.UUID | None:
        """Insert unless the reference exists (a concurrent twin waits for the first to commit or roll back)."""
        stmt = (
            insert(Reservation)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Reservation.reference])
            .returning(Reservation.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def mark(
        self, reservation_id: uuid.UUID, from_status: ReservationStatus, to_status: ReservationStatus, now: datetime
    ) -> Reservation | None:
        stmt = (
            update(Reservation)
            .where(Reservation.id == reservation_id, Reservation.status == from_status)
            .values(status=to_status, released_at=now)
            .returning(Reservation)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def expired_ids(self, now: datetime, limit: int) -> list[uuid.UUID]:
        stmt = (
            select(Reservation.id)
            .where(Reservation.status == ReservationStatus.active, Reservation.expires_at < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(stmt)).scalars())


class LotShipmentRepository(RepositoryBase[LotShipment]):
    """The latest state supply has seen of each shipment line from its lots, and what it adds up to."""

    model = LotShipment

    async def record(self, rows: list[dict[str, Any]]) -> list[LotShipment]:
        """Upsert, keeping the newer version; returns the rows that changed (locked until commit)."""
        if not rows:
            return []
        stmt = insert(LotShipment).values(rows)
        upsert = stmt.on_conflict_do_update(
            index_elements=[LotShipment.shipment_line_id],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "shipment_line_id"},
            where=LotShipment.version < stmt.excluded.version,
        ).returning(LotShipment)
        result = await self.session.execute(upsert.execution_options(populate_existing=True))
        return list(result.scalars())

    async def totals(self, lot_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int, int]]:
        """(shipped — in transit or delivered —, delivered, written off) per lot. A line's written-off units
        count once its reservation has given them back."""
        stmt = (
            select(
                LotShipment.lot_id,
                func.sum(LotShipment.quantity_in_transit + LotShipment.quantity_delivered),
                func.sum(LotShipment.quantity_delivered),
                func.sum(func.least(LotShipment.quantity_written_off, LotShipment.quantity_given_back)),
            )
            .where(LotShipment.lot_id == any_(bindparam(None, lot_ids, ARRAY(UUID(as_uuid=True)))))
            .group_by(LotShipment.lot_id)
        )
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in (await self.session.execute(stmt)).all()}

    async def lock_reservations(self, references: list[str]) -> dict[str, Reservation]:
        stmt = (
            select(Reservation)
            .where(Reservation.reference == any_(bindparam(None, references, ARRAY(String))))
            .order_by(Reservation.reference)
            .with_for_update()
        )
        return {r.reference: r for r in (await self.session.execute(stmt)).scalars()}

    async def lock_lots(self, lot_ids: list[uuid.UUID]) -> list[Lot]:
        stmt = (
            select(Lot)
            .where(Lot.id == any_(bindparam(None, lot_ids, ARRAY(UUID(as_uuid=True)))))
            .order_by(Lot.id)
            .with_for_update()
        )
        return list((await self.session.execute(stmt.execution_options(populate_existing=True))).scalars())


class PaymentRepository(RepositoryBase[Payment]):
    """Money received against cash pledges."""

    model = Payment

    async def by_reference(self, offer_id: uuid.UUID, reference: str) -> Payment | None:
        stmt = select(Payment).where(Payment.offer_id == offer_id, Payment.reference == reference)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_offer(self, offer_id: uuid.UUID, params: PageParams) -> tuple[list[Payment], str | None]:
        stmt = select(Payment).where(Payment.offer_id == offer_id)
        return await paginate(self.session, stmt, Payment.created_at, Payment.id, params)

    async def received(self, offer_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The sum of the payments of each offer that has any."""
        if not offer_ids:
            return {}
        stmt = (
            select(Payment.offer_id, func.sum(Payment.amount))
            .where(Payment.offer_id == any_(bindparam(None, offer_ids, ARRAY(UUID(as_uuid=True)))))
            .group_by(Payment.offer_id)
        )
        return {r[0]: int(r[1]) for r in (await self.session.execute(stmt)).all()}


class OperationViewRepository(RepositoryBase[OperationView]):
    """supply's copy of logistics' relief operations (shared.operations): `keep_newest` stores each version."""

    model = OperationView


class FundViewRepository(RepositoryBase[FundView]):
    """supply's copy of logistics' special funds: `keep_newest` stores each version."""

    model = FundView
