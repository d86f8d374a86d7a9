"""Component-bounded continuous runs: a new need line beside a backlog of its item is matched by a run that reads
and writes only the line's component (its nearest lots with units left, and the lines that could take those),
not the backlog; a change that names no line or lot still runs the whole item group."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.matching.component_repository import EARTH_RADIUS_KM, ComponentRepository, Point
from services.matching.policy import Policy
from services.matching.repository import ProjectionRepository
from shared.db import utcnow
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.db import rows
from tests.helpers.matching import open_proposals, runs_of, seed_held_backlog
from tests.helpers.needs import shelter_need
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually

BACKLOG, FREE = 3000, 2000


async def _run(client: httpx.AsyncClient, auth: TokenFactory, run_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/allocation-runs/{run_id}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _held_backlog(engine: AsyncEngine) -> int:
    found = await rows(
        engine,
        "SELECT count(*) AS n FROM matching.proposal p JOIN matching.need_line_view v ON v.line_id = p.need_line_id "
        "WHERE v.org = 'org-backlog' AND p.status = 'proposed'",
    )
    return int(found[0]["n"])


async def test_a_new_need_line_is_matched_reading_and_writing_only_its_component(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, workers: None
) -> None:
    # 3,000 open rice lines held by as many undecided proposals, and 2,000 rice lots with nothing proposed.
    await seed_held_backlog(engine, RICE, lines=BACKLOG, free_lots=FREE)
    offer = await donor_offer(client, auth, {"item_code": RICE, "quantity": 30})
    lot_id = offer["lots"][0]["id"]
    await eventually(lambda: rows(engine, "SELECT 1 FROM matching.lot_view WHERE lot_id = :l", l=lot_id), seconds=30)

    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30})
    (proposal,) = await eventually(lambda: open_proposals(client, auth, need), seconds=60)
    assert proposal["lot_id"] == lot_id and proposal["quantity"] == 30

    run = await _run(client, auth, proposal["run_id"])
    counts = run["counts"]
    assert run["trigger"] == "continuous" and counts["global"] == 0
    # Read: the new line, and its nearest lots with units left (the new lot first) — not the backlog's lines, nor
    # the 2,001 lots a run of the whole item would read.
    k = Policy().max_candidates_per_line
    assert counts["component_lines"] == 1 and counts["lines"] == 1
    assert counts["lots"] <= counts["component_lots"] <= k < FREE
    assert counts["component_rows"] <= 2 * k + 2 and counts["component_hops"] <= 2
    # Wrote: the one proposal of that line; the backlog's proposals are as they were.
    assert counts["proposals"] == 1 and counts["superseded"] == 0 and counts["units"] == 30
    assert [p["need_line_id"] for p in run["proposals"]] == [need["lines"][0]["id"]]
    assert await _held_backlog(engine) == BACKLOG
    assert await rows(engine, "SELECT item_code FROM matching.dirty_scope WHERE attempts > 0") == []


async def test_a_change_that_names_no_line_runs_the_whole_item_group(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, workers: None
) -> None:
    await seed_held_backlog(engine, RICE, lines=50, free_lots=20)
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 500})
    await eventually(lambda: open_proposals(client, auth, need), seconds=60)
    before = {r["id"] for r in await runs_of(client, auth, "continuous")}
    # An item-level mark (as a policy, catalog or capacity change makes): no component, the group's open lines.
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO matching.dirty_scope (item_code, since) VALUES (:i, now() - interval '1 minute')"),
            {"i": RICE},
        )

    async def whole_run() -> list[dict[str, Any]]:
        return [r for r in await runs_of(client, auth, "continuous") if r["id"] not in before]

    (run,) = await eventually(whole_run, seconds=60)
    assert "component_lines" not in run["counts"]
    assert run["counts"]["lines"] == 1  # the new line still wants more; the backlog's are held in full


async def test_lines_read_by_id_have_the_fill_ratios_of_their_whole_site_and_county(engine: AsyncEngine) -> None:
    # The windows of a read by id run over the lines' sites and counties only: the same ratios as over all lines.
    await seed_held_backlog(engine, RICE, lines=200, free_lots=0)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE matching.proposal SET status = 'accepted', accepted_quantity = quantity - 3 "
                "WHERE need_line_id IN (SELECT line_id FROM matching.need_line_view WHERE quantity % 3 = 0)"
            )
        )
        await conn.execute(text("UPDATE matching.need_line_view SET site_id = need_id WHERE quantity % 7 = 0"))
    async with async_sessionmaker(engine)() as session:
        repo = ProjectionRepository(session)
        every = {row["id"]: row for row in await repo.open_lines(item_codes=[RICE])}
        some = sorted(every)[::17]
        by_id = await repo.open_lines(line_ids=[uuid.UUID(i) for i in some])
    assert {row["id"] for row in by_id} == set(some)
    assert any(row["county_fill"] > 0 for row in by_id)
    for row in by_id:
        assert (row["site_fill"], row["county_fill"]) == (
            every[row["id"]]["site_fill"],
            every[row["id"]]["county_fill"],
        )


_EDGE_LOTS = """
INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
    quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
SELECT CAST(md5('edge-lot' || g) AS uuid), gen_random_uuid(), 1, 1, 'org-edge', CASE WHEN g % 4 = 0 THEN :other
    ELSE :item END, 10, CASE WHEN g % 7 = 0 THEN 10 ELSE 0 END,
    CASE WHEN g % 23 = 0 THEN NULL ELSE -80 + (g * 37 % 1700) / 10.0 END,
    CASE WHEN g % 29 = 0 THEN NULL ELSE -179.5 + (g * 53 % 3590) / 10.0 END, '510104', 'verified', 'open', '{}'
FROM generate_series(1, 400) AS g
"""
_EDGE_PROPOSALS = """
INSERT INTO matching.proposal (id, run_id, need_line_id, need_id, lot_id, offer_id, item_code, lot_item_code,
    region_code, quantity, lot_quantity, accepted_quantity, quantity_returned, score, factors, distance_km,
    policy_version, status, auto, reservation_projected, expires_at, version)
SELECT gen_random_uuid(), :run, gen_random_uuid(), gen_random_uuid(), CAST(md5('edge-lot' || g) AS uuid),
    gen_random_uuid(), :item, :item, '510104', CASE WHEN g % 3 = 0 THEN 10 ELSE 8 END, NULL,
    CASE WHEN g % 5 = 0 THEN 6 ELSE NULL END, 0, 1, '{}', 1, 1,
    CASE WHEN g % 5 = 0 THEN 'accepted' ELSE 'proposed' END, false, g % 10 = 0,
    now() + CASE WHEN g % 11 = 0 THEN interval '-1 hour' ELSE interval '6 hours' END, 1
FROM generate_series(1, 400) AS g WHERE g % 3 = 0 OR g % 5 = 0
"""


def _km(a: tuple[float | None, float | None], b: tuple[float | None, float | None], default_km: float) -> float:
    if None in a or None in b:  # least() skips the NULL: half the circumference, as before
        return math.pi * EARTH_RADIUS_KM
    la1, lo1, la2, lo2 = (math.radians(x) for x in (*a, *b))  # type: ignore[arg-type]
    half = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(half, 1.0)))


async def test_the_component_reads_agree_with_the_item_wide_read_at_the_edges(engine: AsyncEngine) -> None:
    # Lots of a substitute item, lots and points without coordinates (half the circumference
    # away, least() skipping the NULL), near a pole and across the
    # antimeridian, reservations accepted but not projected yet, open and expired proposals: each line's nearest
    # lots with units left, and the lots read by id, are those of the item-wide read of lots with units left.
    other = "food.grain.other"
    run = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO matching.allocation_run (id, trigger, scope, policy_version, status, objective, counts,"
                " timings, created_by) VALUES (:id, 'manual', '{}', 1, 'completed', 0, '{}', '{}', 'seed')"
            ),
            {"id": run},
        )
        await conn.execute(text(_EDGE_LOTS), {"item": RICE, "other": other})
        await conn.execute(text(_EDGE_PROPOSALS), {"item": RICE, "run": run})
    now = utcnow()
    points = [
        Point(uuid.uuid4(), RICE, lat, lon)
        for lat, lon in [(30.6, 104.0), (89.7, 10.0), (-10.0, 179.95), (5.0, -179.9), (None, None), (12.0, None)]
    ]
    async with async_sessionmaker(engine)() as session:
        every = await ProjectionRepository(session).available_lots({RICE, other}, around_open=now)
        places = {uuid.UUID(lot["id"]): (lot["lat"], lot["lon"]) for lot in every}
        repo = ComponentRepository(session)
        for k in (1, 7, 60):
            for p in points:
                want = sorted(places, key=lambda i: (_km((p.lat, p.lon), places[i], 50.0), i))[:k]
                got = await repo.nearest_lots([RICE, other], [p], now, k=k, default_km=50.0)
                assert sorted(i for i, _ in got) == sorted(want), (k, p)
        together = await repo.nearest_lots([RICE, other], points, now, k=7, default_km=50.0)
        assert {i for i, _ in together} == {
            i for p in points for i in sorted(places, key=lambda i: (_km((p.lat, p.lon), places[i], 50.0), i))[:7]
        }
        ids = [uuid.UUID(int=n) for n in range(3)] + [lot.lot_id for lot in await _edge_lots(session)]
        by_id = await repo.residual_lots([RICE, other], ids, now)
        assert {i for i, _ in by_id} == set(places)
        read = await ProjectionRepository(session).available_lots({RICE, other}, around_open=now, lot_ids=ids)
        assert sorted(read, key=lambda lot: lot["id"]) == sorted(every, key=lambda lot: lot["id"])
        assert len(every) < 400 and any(lot["available"] < 10 for lot in every)


async def _edge_lots(session: Any) -> list[Any]:
    return list((await session.execute(text("SELECT lot_id FROM matching.lot_view WHERE org = 'org-edge'"))).all())
