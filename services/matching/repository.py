"""Every query of the matching service: the projections here; policies, proposals, decisions and runs in
`proposal_repository` (re-exported below)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    event,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeEngine

from services.matching.models import (
    CapacityView,
    DirtyMember,
    DirtyScope,
    LineExclusion,
    LotView,
    NeedLineView,
    Proposal,
)
from services.matching.schemas import ProposalStatus
from shared import wakeup
from shared.db import RepositoryBase
from shared.vocabulary import CapacityStatus, Verdict

ACTIVE_NEED = ("open", "matched", "in_transit")
AVAILABLE_LOT = ("not_required", "verified", "reclassified")
_LOAD_BATCH = 2000


def _any(values: Iterable[Any], item_type: TypeEngine[Any]) -> Any:
    """`= ANY(:array)`: one parameter however many values (an IN list takes one each, and asyncpg stops at
    32,767)."""
    return any_(bindparam(None, list(values), type_=ARRAY(item_type)))


def _ids(values: Iterable[uuid.UUID]) -> Any:
    return _any(values, UUID(as_uuid=True))


def _codes(values: Iterable[str]) -> Any:
    return _any(values, String())


LINE, LOT, WHOLE = "line", "lot", "item"  # kinds of dirty_member rows
_NIL = uuid.UUID(int=0)


@dataclass(frozen=True)
class DirtyMark:
    """A dirty item as taken from the queue: when it was first marked and how often its group failed; what of it
    changed (need lines and lots by id), unless `whole` (a change that names no line or lot)."""

    item_code: str
    since: datetime
    attempts: int
    not_before: datetime | None = None
    whole: bool = True
    lines: frozenset[uuid.UUID] = frozenset()
    lots: frozenset[uuid.UUID] = frozenset()


def accepted_by_line() -> Any:
    return (
        select(
            Proposal.need_line_id, func.sum(Proposal.accepted_quantity - Proposal.quantity_returned).label("accepted")
        )
        .where(Proposal.status == ProposalStatus.accepted)
        .group_by(Proposal.need_line_id)
        .subquery()
    )


def _accepted_lot_units() -> Any:
    """What an accepted proposal holds of its lot, in the lot's unit (events.lot_units, in SQL)."""
    p, known = Proposal, and_(Proposal.lot_quantity.is_not(None), Proposal.quantity > 0)
    # In bigint: the product of two int4 quantities overflows int4 (60,000 × 60,000).
    held = (cast(p.accepted_quantity, BigInteger) * p.lot_quantity + p.quantity - 1) // p.quantity
    return case((known, held), else_=p.accepted_quantity)


def _unprojected_by_lot() -> Any:
    """Accepted quantity whose reservation event has not reached lot_view yet."""
    return (
        select(Proposal.lot_id, func.sum(_accepted_lot_units()).label("pending"))
        .where(Proposal.status == ProposalStatus.accepted, Proposal.reservation_projected.is_(False))
        .group_by(Proposal.lot_id)
        .subquery()
    )


def _open_proposals(now: datetime) -> ColumnElement[bool]:
    """Proposals still open (undecided, not expired): held fixed by continuous runs."""
    return and_(Proposal.status == ProposalStatus.proposed, Proposal.expires_at > now)


def _held_by_line(now: datetime) -> Any:
    return (
        select(Proposal.need_line_id, func.sum(Proposal.quantity).label("held"))
        .where(_open_proposals(now))
        .group_by(Proposal.need_line_id)
        .subquery()
    )


def _held_by_lot(now: datetime) -> Any:
    return (
        select(Proposal.lot_id, func.sum(Proposal.quantity).label("held"))
        .where(_open_proposals(now))
        .group_by(Proposal.lot_id)
        .subquery()
    )


def line_totals(line_id: Any, now: datetime | None) -> Any:
    """A line's accepted units (less those returned) and, with `now`, what its open proposals hold: a lateral
    subquery over that line's proposals only (the need_line_id index), for a read of a few lines by id, where
    `accepted_by_line` and `_held_by_line` would group every proposal first."""
    p = Proposal
    columns: list[Any] = [
        func.coalesce(
            func.sum(p.accepted_quantity - p.quantity_returned).filter(p.status == ProposalStatus.accepted), 0
        ).label("accepted")
    ]
    if now is not None:
        columns.append(func.coalesce(func.sum(p.quantity).filter(_open_proposals(now)), 0).label("held"))
    return select(*columns).where(p.need_line_id == line_id).lateral()


def lot_totals(lot_id: Any, now: datetime | None) -> Any:
    """A lot's accepted units whose reservation is not projected yet and, with `now`, what its open proposals
    hold: a lateral subquery over that lot's proposals only (the lot_id index), as `line_totals`."""
    p = Proposal
    unprojected = and_(p.status == ProposalStatus.accepted, p.reservation_projected.is_(False))
    columns: list[Any] = [func.coalesce(func.sum(_accepted_lot_units()).filter(unprojected), 0).label("pending")]
    if now is not None:
        columns.append(func.coalesce(func.sum(p.quantity).filter(_open_proposals(now)), 0).label("held"))
    return select(*columns).where(p.lot_id == lot_id).lateral()


def _lot_available() -> tuple[Any, ColumnElement[Any]]:
    """Unreserved units of each lot (reservations not projected yet counted as taken)."""
    pending = _unprojected_by_lot()
    return pending, LotView.quantity - LotView.quantity_reserved - func.coalesce(pending.c.pending, 0)


_PUT_BACK = text(
    """
    INSERT INTO matching.dirty_scope AS d (item_code, since, attempts, not_before, last_error)
    SELECT code, since, :attempts, :not_before, :error
    FROM unnest(CAST(:codes AS varchar[]), CAST(:since AS timestamptz[])) AS t (code, since)
    ON CONFLICT (item_code) DO UPDATE SET
        since = LEAST(d.since, excluded.since),
        attempts = GREATEST(d.attempts, excluded.attempts),
        not_before = excluded.not_before,
        last_error = excluded.last_error
    """
)


_PUT_BACK_MEMBERS = text(
    """
    INSERT INTO matching.dirty_member (item_code, kind, member_id)
    SELECT * FROM unnest(CAST(:codes AS varchar[]), CAST(:kinds AS varchar[]), CAST(:ids AS uuid[]))
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING
    """
)

# One statement, one snapshot: the members taken are exactly those of the items taken.
_TAKE = text(
    """
    WITH s AS (
        DELETE FROM matching.dirty_scope WHERE item_code = ANY(CAST(:codes AS varchar[]))
        RETURNING item_code, since, attempts
    ), m AS (
        DELETE FROM matching.dirty_member WHERE item_code IN (SELECT item_code FROM s)
        RETURNING item_code, kind, member_id
    )
    SELECT s.item_code, s.since, s.attempts, m.kind, m.member_id FROM s LEFT JOIN m USING (item_code)
    """
)

_DIRTY_MARKS = "matching.dirty_marks"
_DIRTY_MEMBERS = "matching.dirty_members"
DIRTY_CHANNEL = "matching.dirty"  # shared.wakeup: marks committed, for continuous matching

Member = tuple[str, str, uuid.UUID]  # item code, kind, id


def _write_dirty_marks(session: Session) -> None:
    """`before_commit`: the transaction's dirty marks in one insert of items, then one of members, each in key
    order (the hook runs inside the async session's greenlet, so the sync `execute` is the async connection's).
    A whole-item mark is a member of kind "item"."""
    whole: set[str] = session.info[_DIRTY_MARKS]
    members: set[Member] = session.info[_DIRTY_MEMBERS]
    members |= {(code, WHOLE, _NIL) for code in whole}
    codes = sorted({m[0] for m in members})
    rows = sorted(members)
    whole.clear()
    members.clear()
    if codes:
        wakeup.on_commit(session, DIRTY_CHANNEL)
        # An item newly dirty notifies the continuous matching of other processes (delivered at commit); one
        # already queued is in the queue its dispatcher reads.
        session.execute(
            insert(DirtyScope)
            .values([{"item_code": c} for c in codes])
            .on_conflict_do_nothing()
            .returning(literal_column(wakeup.notify_sql(DIRTY_CHANNEL)))
        )
        session.execute(
            insert(DirtyMember)
            .values([{"item_code": c, "kind": k, "member_id": i} for c, k, i in rows])
            .on_conflict_do_nothing()
        )


def _forget_dirty_marks(session: Session) -> None:
    """`after_rollback`: what the transaction marked is not dirty after all."""
    session.info[_DIRTY_MARKS].clear()
    session.info[_DIRTY_MEMBERS].clear()


def _marks_of(rows: Iterable[Any]) -> list[DirtyMark]:
    """Taken queue rows (one per member, or one with no member) as one mark per item."""
    found: dict[str, tuple[datetime, int, bool, set[uuid.UUID], set[uuid.UUID]]] = {}
    for code, since, attempts, kind, member in rows:
        mark = found.setdefault(code, (since, attempts, kind is None, set(), set()))
        if kind == LINE:
            mark[3].add(member)
        elif kind == LOT:
            mark[4].add(member)
        elif kind == WHOLE:
            found[code] = (since, attempts, True, mark[3], mark[4])
    return [
        DirtyMark(code, since, attempts, whole=whole, lines=frozenset(lines), lots=frozenset(lots))
        for code, (since, attempts, whole, lines, lots) in found.items()
    ]


_LOT_UPSERT = text(
    """
    INSERT INTO matching.lot_view AS v (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
        quantity_reserved, lat, lon, region_code, available_from, expires_at, verification, verification_version,
        offer_status, restrictions, updated_at)
    VALUES (:lot_id, :offer_id, :lot_version, :offer_version, :org, :item_code, :quantity, :quantity_reserved,
        :lat, :lon, :region_code, :available_from, :expires_at, :verification, :lot_version, :offer_status,
        CAST(:restrictions AS jsonb), now())
    ON CONFLICT (lot_id) DO UPDATE SET
        offer_status = CASE WHEN excluded.offer_version > v.offer_version THEN excluded.offer_status
                            ELSE v.offer_status END,
        restrictions = CASE WHEN excluded.offer_version > v.offer_version THEN excluded.restrictions
                            ELSE v.restrictions END,
        offer_version = GREATEST(v.offer_version, excluded.offer_version),
        verification = CASE WHEN excluded.lot_version > v.verification_version THEN excluded.verification
                            ELSE v.verification END,
        verification_version = GREATEST(v.verification_version, excluded.lot_version),
        quantity_reserved = CASE WHEN excluded.lot_version > v.lot_version THEN excluded.quantity_reserved
                                 ELSE v.quantity_reserved END,
        quantity = CASE WHEN excluded.lot_version > v.lot_version THEN excluded.quantity ELSE v.quantity END,
        lot_version = GREATEST(v.lot_version, excluded.lot_version),
        updated_at = now()
    """
)


class ProjectionRepository(RepositoryBase[NeedLineView]):
    model = NeedLineView

    async def open_lines(
        self,
        *,
        region_code: str | None = None,
        item_codes: Sequence[str] | None = None,
        line_ids: Sequence[uuid.UUID] | None = None,
        on_batch: Callable[[], None] | None = None,
        around_open: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Open need lines with remaining demand, with the fill ratios of their site and county. `on_batch` is
        called after each batch of rows (it may raise to give up). With `around_open` (now), the demand open
        proposals hold is taken off too, and only lines with demand left around them are read."""
        accepted = accepted_by_line()
        v = NeedLineView
        matched = func.coalesce(accepted.c.accepted, 0)
        held = _held_by_line(around_open) if around_open is not None else None
        taken = func.coalesce(held.c.held, 0) if held is not None else literal(0)
        # Fill ratios over every active line of the site / county, not only those in scope: the windows run over
        # all active lines and the scope filters their result. (A self-join on line_id instead is planned as a
        # nested loop while the table's statistics still describe it as empty: minutes for 40,000 fresh lines.)
        query: Any = (
            select(
                v.line_id,
                v.need_id,
                v.site_id,
                v.item_code,
                v.quantity,
                v.urgency,
                v.needed_by,
                v.deadline,
                v.lat,
                v.lon,
                v.region_code,
                v.site_kind,
                v.verification,
                v.substitution_override,
                v.beneficiary_groups,
                matched.label("matched"),
                taken.label("held"),
                (
                    func.sum(matched).over(partition_by=v.site_id)
                    / func.nullif(func.sum(v.quantity).over(partition_by=v.site_id), 0)
                ).label("site_fill"),
                (
                    func.sum(matched).over(partition_by=v.region_code)
                    / func.nullif(func.sum(v.quantity).over(partition_by=v.region_code), 0)
                ).label("county_fill"),
            )
            .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
            .where(v.need_status.in_(ACTIVE_NEED))
        )
        if line_ids is not None:
            # The windows need only the sites and counties of these lines: their partitions in full, no other.
            of = aliased(NeedLineView)
            query = query.where(
                v.region_code.in_(select(of.region_code).where(of.line_id == _ids(line_ids)))
                | v.site_id.in_(select(of.site_id).where(of.line_id == _ids(line_ids)))
            )
        if held is not None:
            query = query.outerjoin(held, held.c.need_line_id == v.line_id)
        active = query.subquery()
        a = active.c
        conditions: list[ColumnElement[bool]] = [
            a.verification != Verdict.rejected,
            a.quantity - a.matched - a.held > 0,
        ]
        if region_code:
            conditions.append(a.region_code.startswith(region_code, autoescape=True))
        if item_codes:
            conditions.append(a.item_code == _codes(item_codes))
        if line_ids is not None:
            conditions.append(a.line_id == _ids(line_ids))
        stmt = select(active).where(and_(*conditions)).execution_options(yield_per=_LOAD_BATCH)
        out: list[dict[str, Any]] = []
        # In batches from a cursor: tens of thousands of rows at once would keep the event loop busy for most of
        # a second (its other requests, and a worker's stop signal, wait meanwhile).
        async for batch in (await self.session.stream(stmt)).partitions():
            out.extend(
                {
                    "id": str(row.line_id),
                    "need_id": row.need_id,
                    "site_id": row.site_id,
                    "item_code": row.item_code,
                    "remaining": row.quantity - int(row.matched) - int(row.held),
                    "urgency": row.urgency,
                    "needed_by": row.needed_by,
                    "deadline": row.deadline,
                    "lat": row.lat,
                    "lon": row.lon,
                    "region_code": row.region_code,
                    "site_kind": row.site_kind,
                    "verified": row.verification == "verified",
                    "site_fill": float(row.site_fill or 0),
                    "county_fill": float(row.county_fill or 0),
                    "substitution_override": bool(row.substitution_override),
                    "beneficiary_groups": row.beneficiary_groups or {},
                }
                for row in batch
            )
            if on_batch is not None:
                on_batch()
        return out

    async def available_lots(
        self,
        item_codes: set[str],
        *,
        around_open: datetime | None = None,
        lot_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[dict[str, Any]]:
        """Lots of these items (of `lot_ids` only, when given) with units to give; with `around_open` (now), less
        what open proposals hold."""
        stmt: Any
        if lot_ids is not None:  # a few lots: their own proposals summed, not every lot's grouped
            totals = lot_totals(LotView.lot_id, around_open)
            stmt = select(LotView).join(totals, true())
            available = LotView.quantity - LotView.quantity_reserved - totals.c.pending
            if around_open is not None:
                available = available - totals.c.held
        else:
            pending, available = _lot_available()
            stmt = select(LotView).outerjoin(pending, pending.c.lot_id == LotView.lot_id)
            if around_open is not None:
                held = _held_by_lot(around_open)
                stmt = stmt.outerjoin(held, held.c.lot_id == LotView.lot_id)
                available = available - func.coalesce(held.c.held, 0)
        stmt = stmt.add_columns(available.label("available")).where(
            LotView.item_code == _codes(sorted(item_codes)),
            LotView.offer_status == "open",
            LotView.verification.in_(AVAILABLE_LOT),
            available > 0,
        )
        if lot_ids is not None:
            stmt = stmt.where(LotView.lot_id == _ids(lot_ids))
        return [
            {
                "id": str(lot.lot_id),
                "offer_id": lot.offer_id,
                "item_code": lot.item_code,
                "available": int(avail),
                "lat": lot.lat,
                "lon": lot.lon,
                "available_from": lot.available_from,
                "expires_at": lot.expires_at,
                "restrictions": lot.restrictions or {},
            }
            for lot, avail in (await self.session.execute(stmt)).all()
        ]

    async def refresh_lot(self, lot_id: uuid.UUID, lot_version: int, **values: Any) -> None:
        if "verification" in values:
            values["verification_version"] = lot_version
        await self.session.execute(
            update(LotView)
            .where(LotView.lot_id == lot_id, LotView.lot_version < lot_version)
            .values(lot_version=lot_version, **values)
        )

    async def load_views(self, line_ids: Iterable[uuid.UUID], lot_ids: Iterable[uuid.UUID]) -> None:
        """These lines and lots into the session (later `session.get`s of them need no query)."""
        lines, lots = list(line_ids), list(lot_ids)
        if lines:
            await self.session.execute(select(NeedLineView).where(NeedLineView.line_id == _ids(lines)))
        if lots:
            await self.session.execute(select(LotView).where(LotView.lot_id == _ids(lots)))

    async def line(self, line_id: uuid.UUID) -> NeedLineView | None:
        return await self.session.get(NeedLineView, line_id)

    async def lot(self, lot_id: uuid.UUID) -> LotView | None:
        return await self.session.get(LotView, lot_id)

    async def lock_need(self, need_id: uuid.UUID) -> None:
        """Until the transaction ends, no other transaction projects a version of this need."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"need-lines:{need_id}", 0)))
        )

    async def newest_need_version(self, need_id: uuid.UUID) -> int | None:
        stmt = select(func.max(NeedLineView.need_version)).where(NeedLineView.need_id == need_id)
        return await self.session.scalar(stmt)

    async def upsert_lines(self, rows: list[dict[str, Any]]) -> None:
        """Need lines in, each replacing its row only when from a newer need version."""
        if not rows:
            return
        t = NeedLineView.__table__
        assert isinstance(t, Table)
        # Parameters as a list (SQLAlchemy's batched "insertmanyvalues"): one statement compiled once and cached,
        # where a multi-row VALUES would compile anew for every batch size.
        stmt = insert(t)
        updatable = [c for c in rows[0] if c not in ("line_id",)]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.c.line_id],
                set_={**{c: stmt.excluded[c] for c in updatable}, "updated_at": func.now()},
                where=t.c.need_version < stmt.excluded.need_version,
            ),
            rows,
        )

    async def drop_older_lines(self, need_id: uuid.UUID, version: int, *, keep: Sequence[uuid.UUID]) -> None:
        """The need's lines from versions before `version`, except those in `keep`, leave the projection."""
        await self.session.execute(
            delete(NeedLineView).where(
                NeedLineView.need_id == need_id,
                NeedLineView.need_version < version,
                NeedLineView.line_id.notin_(keep),
            )
        )

    async def upsert_lot(self, row: dict[str, Any]) -> None:
        """A lot from an offer event: the offer's fields from the newest offer version, the lot's from the newest
        lot version."""
        await self.session.execute(_LOT_UPSERT, {**row, "restrictions": json.dumps(row["restrictions"])})

    async def mark_dirty(self, item_codes: set[str]) -> None:
        """Queue the items for a debounced continuous run, when the transaction commits: the marks of a whole
        transaction are written in one statement, in item order, just before its commit. Written as they came
        (one handler's items, then the next one's), two transactions marking the same items in different orders
        would each wait on the other's uncommitted row."""
        if item_codes:
            self._marks()[0].update(item_codes)

    async def mark_changed(
        self,
        *,
        lines: Iterable[tuple[str, uuid.UUID]] = (),
        lots: Iterable[tuple[str, uuid.UUID]] = (),
    ) -> None:
        """Queue the items of these need lines and lots (item code, id) like `mark_dirty`, naming what changed:
        their continuous run reads only the component of those lines and lots (services.matching.component)."""
        members = self._marks()[1]
        members.update((code, LINE, line_id) for code, line_id in lines)
        members.update((code, LOT, lot_id) for code, lot_id in lots)

    def _marks(self) -> tuple[set[str], set[Member]]:
        info = self.session.info
        if _DIRTY_MARKS not in info:  # the session's first mark: its hooks, once
            info[_DIRTY_MARKS], info[_DIRTY_MEMBERS] = set(), set()
            event.listen(self.session.sync_session, "before_commit", _write_dirty_marks)
            event.listen(self.session.sync_session, "after_rollback", _forget_dirty_marks)
        return info[_DIRTY_MARKS], info[_DIRTY_MEMBERS]

    async def exclusions(self, line_ids: Sequence[str]) -> set[tuple[str, str]]:
        """(line id, lot id) pairs never to be proposed again: a site declined them."""
        if not line_ids:
            return set()
        stmt = select(LineExclusion.need_line_id, LineExclusion.lot_id).where(
            LineExclusion.need_line_id == _ids([uuid.UUID(i) for i in line_ids])
        )
        return {(str(a), str(b)) for a, b in (await self.session.execute(stmt)).all()}

    async def exclude(
        self, line_id: uuid.UUID, lot_id: uuid.UUID, proposal_id: uuid.UUID, reason: str, actor: str
    ) -> None:
        await self.session.execute(
            insert(LineExclusion)
            .values(need_line_id=line_id, lot_id=lot_id, proposal_id=proposal_id, reason=reason, created_by=actor)
            .on_conflict_do_nothing()
        )

    async def mark_first_matched(self, line_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(NeedLineView)
            .where(NeedLineView.line_id == line_id, NeedLineView.first_matched_at.is_(None))
            .values(first_matched_at=at)
        )

    async def dirty(self) -> list[DirtyMark]:
        """The whole queue: one row per dirty item code, so never more rows than items."""
        stmt = select(DirtyScope.item_code, DirtyScope.since, DirtyScope.attempts, DirtyScope.not_before)
        return [DirtyMark(*row) for row in (await self.session.execute(stmt)).all()]

    async def take_dirty(self, item_codes: Iterable[str]) -> list[DirtyMark]:
        """Remove these items and their members from the queue; the marks actually removed (another worker may
        have been first)."""
        rows = await self.session.execute(_TAKE, {"codes": list(item_codes)})
        return _marks_of(rows.all())

    async def put_back_dirty(
        self, marks: Sequence[DirtyMark], *, attempts: int, not_before: datetime | None, error: str | None
    ) -> None:
        """Queue taken marks again (a mark that arrived meanwhile keeps the earlier `since`), with the group's
        attempts and backoff."""
        members = sorted(
            [(m.item_code, WHOLE, _NIL) for m in marks if m.whole]
            + [(m.item_code, LINE, i) for m in marks for i in m.lines]
            + [(m.item_code, LOT, i) for m in marks for i in m.lots]
        )
        await self.session.execute(
            _PUT_BACK,
            {
                "codes": [m.item_code for m in marks],
                "since": [m.since for m in marks],
                "attempts": attempts,
                "not_before": not_before,
                "error": error,
            },
        )
        await self.session.execute(
            _PUT_BACK_MEMBERS,
            {"codes": [m[0] for m in members], "kinds": [m[1] for m in members], "ids": [m[2] for m in members]},
        )

    async def active_item_codes(self) -> list[str]:
        stmt = select(NeedLineView.item_code).where(NeedLineView.need_status.in_(ACTIVE_NEED)).distinct()
        return list((await self.session.execute(stmt)).scalars())

    async def try_lock(self, key: str, *, lock_timeout: float | None = None) -> bool:
        """A transaction-scoped advisory lock on `key`, if no other transaction holds it; with `lock_timeout`
        (seconds) the transaction's lock timeout is set in the same round trip."""
        got = func.pg_try_advisory_xact_lock(func.hashtext(key))
        if lock_timeout is None:
            return bool(await self.session.scalar(select(got)))
        timeout = func.set_config("lock_timeout", f"{max(1, round(lock_timeout * 1000))}ms", True)
        return bool((await self.session.execute(select(got, timeout))).one()[0])


class CapacityRepository(RepositoryBase[CapacityView]):
    """matching's projection of partners' capacities, and what proposals hold of them."""

    model = CapacityView

    async def upsert(self, row: dict[str, Any]) -> None:
        """A capacity from its event, unless a newer version is already projected."""
        stmt = insert(CapacityView).values(**row)
        fields = {k: stmt.excluded[k] for k in row if k != "capacity_id"}
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[CapacityView.capacity_id],
                set_={**fields, "updated_at": func.now()},
                where=CapacityView.version < stmt.excluded.version,
            )
        )

    async def live_with_held(
        self, codes: Sequence[str], *, today: date, around_open: datetime | None
    ) -> list[tuple[CapacityView, int]]:
        """Active capacities of these services whose window has not ended, each with the units proposals hold
        of it: accepted ones (less what came back), and open ones when `around_open` is given."""
        whens: list[tuple[Any, Any]] = [
            (Proposal.status == ProposalStatus.accepted, Proposal.accepted_quantity - Proposal.quantity_returned)
        ]
        if around_open is not None:
            whens.append(
                (
                    (Proposal.status == ProposalStatus.proposed) & (Proposal.expires_at > around_open),
                    Proposal.quantity,
                )
            )
        held = (
            select(Proposal.capacity_id, func.sum(case(*whens, else_=0)).label("held"))
            .where(Proposal.capacity_id.is_not(None))
            .group_by(Proposal.capacity_id)
            .subquery()
        )
        stmt = (
            select(CapacityView, func.coalesce(held.c.held, 0))
            .outerjoin(held, held.c.capacity_id == CapacityView.capacity_id)
            .where(
                CapacityView.service_code.in_(list(codes)),
                CapacityView.status == CapacityStatus.active.value,
                CapacityView.ends_on >= today,
            )
        )
        return [(cap, int(taken)) for cap, taken in (await self.session.execute(stmt)).all()]


# Policies, proposals, decisions and runs: their queries live beside these, re-exported under this module.
from services.matching.proposal_repository import (  # noqa: E402
    PolicyRepository,
    ProposalRepository,
    RunRepository,
)

__all__ = [
    "CapacityRepository",
    "DirtyMark",
    "PolicyRepository",
    "ProjectionRepository",
    "ProposalRepository",
    "RunRepository",
]
