"""Stable proposals as arithmetic: open proposals are held fixed (they take their units off their line's demand
and their lot's supply), an incremental allocation fills only what is left around them, and a global run weighs
keeping them against a from-scratch optimum, replacing them only when the gain passes the policy's threshold.

Pure functions over the solver's arrays (no database), so that the property tests can check them against the
linear program directly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.matching.allocation import Allocation, allocate, objective_of
from services.matching.policy import Policy
from services.matching.scoring import Candidates

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Held:
    """Open proposals held fixed: each one's line and lot (indices into the run's tables), quantity and score."""

    line: I64
    lot: I64
    quantity: I64
    score: F64
    # What each takes of its lot, in the lot's base unit (more than `quantity` for a converted substitute).
    lot_quantity: I64 | None = None

    @classmethod
    def of(
        cls,
        line: list[int],
        lot: list[int],
        quantity: list[int],
        score: list[float],
        lot_quantity: list[int] | None = None,
    ) -> Held:
        return cls(
            np.asarray(line, dtype=np.int64),
            np.asarray(lot, dtype=np.int64),
            np.asarray(quantity, dtype=np.int64),
            np.asarray(score, dtype=np.float64),
            None if lot_quantity is None else np.asarray(lot_quantity, dtype=np.int64),
        )

    @classmethod
    def none(cls) -> Held:
        return cls.of([], [], [], [])

    def __len__(self) -> int:
        return len(self.line)


def residual(remaining: npt.NDArray[np.integer], available: npt.NDArray[np.integer], held: Held) -> tuple[I64, I64]:
    """Each line's demand and each lot's supply left once the held proposals are taken off (never below 0)."""
    rem = np.asarray(remaining, dtype=np.int64)
    avail = np.asarray(available, dtype=np.int64)
    rem = rem - np.bincount(held.line, weights=held.quantity, minlength=len(rem)).astype(np.int64)
    taken = held.quantity if held.lot_quantity is None else held.lot_quantity
    avail = avail - np.bincount(held.lot, weights=taken, minlength=len(avail)).astype(np.int64)
    return np.maximum(rem, 0), np.maximum(avail, 0)


def _pair_fields(cand: Candidates) -> dict[str, Any]:
    return {f.name: getattr(cand, f.name) for f in dataclasses.fields(cand)}


def subset(cand: Candidates, keep: npt.NDArray[np.bool_]) -> Candidates:
    """The candidate pairs where `keep` is true (every per-pair array of the candidates cut alike)."""
    out: dict[str, Any] = {}
    for name, value in _pair_fields(cand).items():
        if isinstance(value, dict):
            out[name] = {k: v[keep] for k, v in value.items()}
        elif isinstance(value, np.ndarray) and len(value) == len(cand):
            out[name] = value[keep]
        else:
            out[name] = value
    return dataclasses.replace(cand, **out)


def _appended(cand: Candidates, line: I64, lot: I64, score: F64) -> Candidates:
    """`cand` and more pairs, known by their line, lot and score only (nothing else of them is read)."""
    n = len(line)
    out: dict[str, Any] = {}
    for name, value in _pair_fields(cand).items():
        if isinstance(value, dict):
            out[name] = {k: np.concatenate([v, np.zeros(n, dtype=v.dtype)]) for k, v in value.items()}
        elif isinstance(value, np.ndarray) and len(value) == len(cand):
            fill = np.ones(n, dtype=value.dtype) if name == "factor" else np.zeros(n, dtype=value.dtype)
            out[name] = np.concatenate([value, fill])
        else:
            out[name] = value
    out.update(
        line=np.concatenate([cand.line, line]),
        lot=np.concatenate([cand.lot, lot]),
        score=np.concatenate([cand.score, score]),
    )
    return dataclasses.replace(cand, **out)


@dataclass
class StableAllocation:
    """The held proposals plus an incremental allocation around them, as one flow over `cand` (extended by the
    held pairs that are not among its candidates any more, e.g. beyond the per-line candidate limit)."""

    cand: Candidates  # the run's candidates, then one pair per held proposal not among them
    flow: I64  # new units per pair of `cand` (the incremental allocation)
    held_flow: I64  # held units per pair of `cand`
    objective: float  # of held + new, on the whole problem (the lines' full remaining demand)
    touched_lines: int  # lines with demand left around the held proposals and at least one candidate left
    touched_lots: int


def _with_held_pairs(cand: Candidates, held: Held) -> tuple[Candidates, I64]:
    """`cand` extended by the held pairs it lacks, and each held proposal's pair index in the result."""
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(cand.line.tolist(), cand.lot.tolist(), strict=True))}
    at = np.empty(len(held), dtype=np.int64)
    extra: list[int] = []
    for h in range(len(held)):
        key = (int(held.line[h]), int(held.lot[h]))
        if key not in index:
            index[key] = len(cand) + len(extra)
            extra.append(h)
        at[h] = index[key]
    if not extra:
        return cand, at
    more = np.asarray(extra, dtype=np.int64)
    return _appended(cand, held.line[more], held.lot[more], held.score[more]), at


def allocate_around(
    remaining: npt.NDArray[np.integer],
    available: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    held: Held,
    **solver: object,
) -> StableAllocation:
    """The incremental allocation: only the demand and supply the held proposals leave, on the pairs that still
    have both; the held proposals stay as they are."""
    rem, avail = residual(remaining, available, held)
    live = (rem[cand.line] > 0) & (avail[cand.lot] > 0)
    sub = subset(cand, live)
    result: Allocation = allocate(rem, avail, sub, policy, **solver)  # type: ignore[arg-type]
    whole, at = _with_held_pairs(cand, held)
    flow = np.zeros(len(whole), dtype=np.int64)
    assert result.credited is not None
    flow[np.flatnonzero(live)] = result.credited
    held_flow = np.zeros(len(whole), dtype=np.int64)
    np.add.at(held_flow, at, held.quantity)
    return StableAllocation(
        cand=whole,
        flow=flow,
        held_flow=held_flow,
        objective=objective_of(flow + held_flow, remaining, whole, policy),
        touched_lines=len(np.unique(sub.line)),
        touched_lots=len(np.unique(sub.lot)),
    )


def worth_replacing(stable_objective: float, fresh_objective: float, policy: Policy) -> bool:
    """Whether a from-scratch allocation gains enough over keeping the open proposals to replace them."""
    return fresh_objective > stable_objective * (1.0 + policy.replace_gain_threshold) + 1e-9


def gain(stable_objective: float, fresh_objective: float) -> float:
    return (fresh_objective - stable_objective) / stable_objective if stable_objective > 0 else float("inf")


# Score points per unit a global run's replacement adds to the pairs of open proposals: enough to break near-ties
# in their favour, far below the tiers' values (hundreds), so that the optimum is hardly changed.
STICKY_BONUS = 10.0


def sticky(
    remaining: npt.NDArray[np.integer],
    available: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    held: Held,
    bonus: float,
    **solver: object,
) -> tuple[I64, float]:
    """A from-scratch allocation that prefers the held pairs: each unit on one is worth `bonus` more to the
    solver, so that among allocations of about the same value the one changing fewest proposals wins. Its
    flow, and its objective as the policy values it (without the bonus)."""
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(cand.line.tolist(), cand.lot.tolist(), strict=True))}
    at = [index[key] for key in zip(held.line.tolist(), held.lot.tolist(), strict=True) if key in index]
    boosted = dataclasses.replace(cand, score=cand.score.copy())
    boosted.score[np.asarray(at, dtype=np.int64)] += bonus
    result: Allocation = allocate(remaining, available, boosted, policy, **solver)  # type: ignore[arg-type]
    assert result.credited is not None
    return result.credited, objective_of(result.credited, remaining, cand, policy)
