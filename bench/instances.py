"""Seeded synthetic allocation instances shaped like a real disaster: a few items dominate (a Zipf mix), demand
concentrates in the struck province, supply comes from everywhere and falls short."""

from __future__ import annotations

import numpy as np

from services.matching.scoring import LineTable, LotTable
from shared.catalog import get_catalog

NOW = 1_800_000_000.0
DAY = 86400.0
# The struck province: Henan (41), roughly its bounding box; the rest of the demand and all supply spread over
# mainland China's.
STRUCK_PROVINCE = 41
STRUCK_LAT, STRUCK_LON = (31.4, 36.4), (110.3, 116.6)
CHINA_LAT, CHINA_LON = (20.0, 45.0), (100.0, 125.0)
PROVINCES = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 61]


def realistic(
    n_lines: int, n_lots: int, *, seed: int, zipf: float = 1.1, struck_share: float = 0.7
) -> tuple[LineTable, LotTable]:
    """Need lines and lots over the catalog's items without substitutes, item popularity Zipf(`zipf`);
    `struck_share` of the lines in one province, the rest nationwide; lots nationwide; quantities 10–500."""
    rng = np.random.default_rng(seed)
    codes = np.array([i.code for i in get_catalog().items if not i.substitutes], dtype=object)
    weights = 1.0 / np.arange(1, len(codes) + 1) ** zipf
    weights /= weights.sum()
    line_items = codes[rng.choice(len(codes), n_lines, p=weights)]
    lot_items = codes[rng.choice(len(codes), n_lots, p=weights)]

    struck = rng.random(n_lines) < struck_share
    lat = np.where(struck, rng.uniform(*STRUCK_LAT, n_lines), rng.uniform(*CHINA_LAT, n_lines))
    lon = np.where(struck, rng.uniform(*STRUCK_LON, n_lines), rng.uniform(*CHINA_LON, n_lines))
    province = np.where(struck, STRUCK_PROVINCE, rng.choice(PROVINCES, n_lines))
    county = rng.integers(1, 30, n_lines)
    region = [f"{p:02d}{c:02d}{c % 7 + 1:02d}" for p, c in zip(province.tolist(), county.tolist(), strict=True)]
    urgency = np.array(["critical", "high", "normal", "low"], dtype=object)[rng.integers(0, 4, n_lines)]
    no_deadline = rng.random(n_lines) < 0.3
    needed_by = np.where(no_deadline, np.nan, NOW + rng.uniform(2, 30, n_lines) * DAY)
    lines = LineTable(
        ids=[f"l{i}" for i in range(n_lines)],
        item=line_items,
        remaining=rng.integers(10, 501, n_lines).astype(np.int64),
        urgency=urgency,
        needed_by=needed_by,
        lat=lat,
        lon=lon,
        region=np.array(region, dtype=object),
        site_kind=np.array(["hospital"] * n_lines, dtype=object),
        verified=np.ones(n_lines, dtype=np.bool_),
        site_fill=rng.random(n_lines),
        county_fill=rng.random(n_lines),
    )
    expires = np.where(rng.random(n_lots) < 0.7, np.nan, NOW + rng.uniform(5, 200, n_lots) * DAY)
    lots = LotTable(
        ids=[f"t{j}" for j in range(n_lots)],
        item=lot_items,
        available=rng.integers(10, 501, n_lots).astype(np.int64),
        lat=rng.uniform(*CHINA_LAT, n_lots),
        lon=rng.uniform(*CHINA_LON, n_lots),
        available_from=np.full(n_lots, np.nan),
        expires_at=expires,
        perishable=np.zeros(n_lots, dtype=np.bool_),
        restrict_regions=[()] * n_lots,
        restrict_kinds=[()] * n_lots,
        restrict_items=[()] * n_lots,
    )
    return lines, lots
