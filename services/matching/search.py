"""The nearest feasible lots of each need line: a spatial index (SciPy's cKDTree on unit-sphere coordinates)
queried for more lots than a line keeps, filtered by the time constraints, and widened where too few survive.

Memory stays bounded: lines are queried in blocks, and a line that finds almost nothing feasible nearby is
scanned against every lot in blocks of bounded size instead of by ever wider queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

EARTH_RADIUS_KM = 6371.0088

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

# At most this many (line × lot) cells are computed at once, whether from a tree query or a dense block.
BLOCK_CELLS = 1 << 18
# Below this many lots (or lines) a dense block costs less than building and querying a tree.
DENSE_LOTS = 64
# A line still short of feasible lots after a query this wide is scanned against every lot instead.
MAX_QUERY_WIDTH = 2048


def unit_vectors(lat: F64, lon: F64) -> F64:
    """Points on the unit sphere; the chord between two is 2·sin(d/2R), monotone in the great-circle distance."""
    phi, lam = np.radians(lat), np.radians(lon)
    cos_phi = np.cos(phi)
    return np.column_stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)])


def chord_to_km(chord: F64) -> F64:
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0.0, 1.0)), dtype=np.float64)


@dataclass
class Found:
    """Feasible (line, lot) pairs of one search, each line's in increasing distance."""

    line: list[I64] = field(default_factory=list)
    lot: list[I64] = field(default_factory=list)
    distance: list[F64] = field(default_factory=list)
    arrival: list[F64] = field(default_factory=list)

    def add(self, line: I64, lot: I64, distance: F64, arrival: F64) -> None:
        if len(line):
            self.line.append(line)
            self.lot.append(lot)
            self.distance.append(distance)
            self.arrival.append(arrival)

    def __len__(self) -> int:
        return sum(len(x) for x in self.line)

    def arrays(self) -> tuple[I64, I64, F64, F64]:
        if not self.line:
            empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
            return empty_i, empty_i.copy(), empty_f, empty_f.copy()
        return (
            np.concatenate(self.line),
            np.concatenate(self.lot),
            np.concatenate(self.distance),
            np.concatenate(self.arrival),
        )


@dataclass(frozen=True)
class TimeLimits:
    """What decides feasibility besides the item and restrictions: a lot departs at `depart` (seconds), travels
    at `seconds_per_km`, and must arrive by the line's `deadline` and before the lot `expires` (NaN: never)."""

    deadline: F64  # per line
    depart: F64  # per lot
    expires: F64  # per lot
    seconds_per_km: float
    default_km: float  # the distance assumed where either end has no coordinates

    def arrival_and_ok(self, rows: I64, cols: npt.NDArray[np.int64], distance: F64) -> tuple[F64, Bool]:
        """`cols` has one row of lot indices per line of `rows` (or is broadcast against them)."""
        arrival = self.depart[cols] + distance * self.seconds_per_km
        ok = ~(arrival > self.deadline[rows][:, None])  # NaN deadline compares False: no deadline
        ok &= ~(self.expires[cols] <= arrival)  # NaN expiry compares False: never expires
        return arrival, ok


class NearestSearch:
    """The `k` nearest time-feasible lots of each line among given lots; lines and lots may lack coordinates
    (then their distance is `limits.default_km`)."""

    def __init__(self, line_xyz: F64, lot_xyz: F64, limits: TimeLimits, k: int) -> None:
        self.line_xyz = line_xyz
        self.lot_xyz = lot_xyz
        self.line_geo: Bool = np.asarray(np.isfinite(line_xyz).all(axis=1))
        self.lot_geo: Bool = np.asarray(np.isfinite(lot_xyz).all(axis=1))
        self.limits = limits
        self.k = k

    def run(self, rows: I64, cols: I64, found: Found) -> None:
        """Pairs of `rows` (line indices) with their nearest feasible `cols` (lot indices) into `found`."""
        geo_rows, flat_rows = rows[self.line_geo[rows]], rows[~self.line_geo[rows]]
        geo_cols, flat_cols = cols[self.lot_geo[cols]], cols[~self.lot_geo[cols]]
        if len(flat_cols) == 0 or len(geo_rows) == 0:
            part = found
        else:  # lots without coordinates compete with the located ones: merge both sources per line
            part = Found()
        if len(geo_rows) and len(geo_cols):
            if len(geo_cols) <= DENSE_LOTS or len(geo_rows) <= DENSE_LOTS:
                self._dense(geo_rows, geo_cols, part)
            else:
                self._tree(geo_rows, geo_cols, part)
        if len(geo_rows) and len(flat_cols):
            self._dense(geo_rows, flat_cols, part)
        if part is not found:
            keep_nearest(part, self.k, found)
        if len(flat_rows) and len(cols):
            self._dense(flat_rows, cols, found)

    def _distances(self, rows: I64, cols: npt.NDArray[np.int64]) -> F64:
        a, b = self.line_xyz[rows][:, None, :], self.lot_xyz[cols]
        if b.ndim == 2:
            b = b[None, :, :]
        chord = np.sqrt(np.sum((a - b) ** 2, axis=-1))
        distance = chord_to_km(chord)
        distance[np.isnan(distance)] = self.limits.default_km
        return distance

    def _dense(self, rows: I64, cols: I64, found: Found) -> None:
        """Every (row, col) cell, in blocks; the k nearest feasible per row."""
        k = self.k
        for block in _chunks(len(rows), max(1, BLOCK_CELLS // len(cols))):
            r = rows[block]
            distance = self._distances(r, cols)
            arrival, ok = self.limits.arrival_and_ok(r, cols[None, :], distance)
            ranked = np.where(ok, distance, np.inf)
            if ranked.shape[1] > k:
                kept_cols = np.argpartition(ranked, k - 1, axis=1)[:, :k]
            else:
                kept_cols = np.broadcast_to(np.arange(ranked.shape[1]), ranked.shape)
            kept = np.take_along_axis(ranked, kept_cols, axis=1)
            order = np.argsort(kept, axis=1, kind="stable")
            kept_cols = np.take_along_axis(kept_cols, order, axis=1)
            kept = np.take_along_axis(kept, order, axis=1)
            i, j = np.nonzero(np.isfinite(kept))
            picked = kept_cols[i, j]
            found.add(r[i].astype(np.int64), cols[picked].astype(np.int64), kept[i, j], arrival[i, picked])

    def _tree(self, rows: I64, cols: I64, found: Found) -> None:
        """Query the tree for more lots than kept; rows short of feasible lots are asked again, wider."""
        tree = cKDTree(self.lot_xyz[cols], balanced_tree=False, compact_nodes=False)
        k, m = self.k, len(cols)
        pending, width = rows, min(m, k + max(4, k // 2))
        while len(pending):
            if width > MAX_QUERY_WIDTH and width < m:
                self._dense(pending, cols, found)
                return
            short: list[I64] = []
            for block in _chunks(len(pending), max(1, BLOCK_CELLS // width)):
                r = pending[block]
                chord, local = tree.query(self.line_xyz[r], k=width, workers=-1)
                chord, local = chord.reshape(len(r), width), local.reshape(len(r), width)
                lot = cols[local]
                distance = chord_to_km(chord)
                arrival, ok = self.limits.arrival_and_ok(r, lot, distance)
                rank = np.cumsum(ok, axis=1)
                done = (rank[:, -1] >= k) | (width >= m)
                keep = ok & (rank <= k) & done[:, None]
                i, j = np.nonzero(keep)
                found.add(r[i].astype(np.int64), lot[i, j].astype(np.int64), distance[i, j], arrival[i, j])
                short.append(r[~done])
            pending = np.concatenate(short) if short else rows[:0]
            width = min(m, width * 4)


def keep_nearest(part: Found, k: int, found: Found) -> None:
    """Of pairs from several sources, each line's k nearest, in increasing distance."""
    line, lot, distance, arrival = part.arrays()
    if not len(line):
        return
    order = np.lexsort((distance, line))
    line, lot, distance, arrival = line[order], lot[order], distance[order], arrival[order]
    starts = np.flatnonzero(np.diff(line, prepend=-1))
    rank = np.arange(len(line)) - np.repeat(starts, np.diff(np.append(starts, len(line))))
    keep = rank < k
    found.add(line[keep], lot[keep], distance[keep], arrival[keep])


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
