"""Schemas of the matching service: policy, candidates, allocation runs, proposals, KPIs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.vocabulary import ItemCode, RegionPrefix


class ProposalStatus(StrEnum):
    proposed = "proposed"
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"


class RunStatus(StrEnum):
    completed = "completed"


class Tier(BaseModel):
    share: float = Field(description="Share of a need line's remaining demand.")
    value: int = Field(description="Value per unit allocated within this tier.")


class PolicyRecord(BaseModel):
    """A stored policy version (the body written with PUT is `services.matching.policy.Policy`)."""

    version: int
    weights: dict[str, float]
    tiers: list[Tier]
    require_verified_need: bool
    speed_kmh: float
    default_distance_km: float
    max_distance_km: float
    max_candidates_per_line: int
    auto_accept_score: float | None
    proposal_ttl_seconds: int
    replace_gain_threshold: float
    created_at: datetime | None = None
    created_by: str | None = None


class Candidate(BaseModel):
    lot_id: uuid.UUID
    offer_id: uuid.UUID
    item_code: str
    substitute: bool
    available: int
    distance_km: float
    score: float
    factors: dict[str, float]


class CandidateList(BaseModel):
    need_line_id: uuid.UUID
    policy_version: int
    remaining: int
    items: list[Candidate]


class RunScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region_code: RegionPrefix | None = Field(None, description="Only need lines whose region starts with this.")
    item_codes: Annotated[list[ItemCode], Field(max_length=500)] | None = Field(
        None, description="Only need lines for these items (their substitutes' lots are still considered)."
    )


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: RunScope = RunScope()


class Proposal(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: uuid.UUID
    need_line_id: uuid.UUID
    need_id: uuid.UUID
    lot_id: uuid.UUID | None = Field(description="The lot given (none when a capacity is).")
    offer_id: uuid.UUID | None
    capacity_id: uuid.UUID | None = Field(None, description="The partner's capacity given (service lines).")
    item_code: str
    lot_item_code: str
    region_code: str
    quantity: int = Field(description="Base units of the need line's item this proposal credits the line.")
    lot_quantity: int | None = Field(
        None,
        description="Base units of the lot's item it takes (more than `quantity` for a substitute in smaller packs).",
    )
    accepted_quantity: int | None
    quantity_returned: int = 0
    score: float
    factors: dict[str, float]
    distance_km: float
    policy_version: int
    status: ProposalStatus
    auto: bool
    reservation_id: uuid.UUID | None
    reason: str | None
    replaced_by: uuid.UUID | None = Field(
        None, description="The proposal a periodic or manual run put in this one's place (on the same line)."
    )
    replaced_reason: str | None = Field(None, description="Why a run replaced this open proposal.")
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    created_at: datetime

    @model_validator(mode="after")
    def _lot_quantity(self) -> Self:
        if self.lot_quantity is None:  # proposed before quantities were converted: in the same unit
            self.lot_quantity = self.quantity
        return self


class DecisionRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    quantity: int | None
    override: bool = Field(description="A person departed from what was proposed (rejection, smaller quantity).")
    reason: str | None
    actor: str
    created_at: datetime


class ProposalDetail(Proposal):
    decisions: list[DecisionRecord] = []


class AllocationRun(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    trigger: str = Field(description="manual, continuous, periodic or retry.")
    scope: RunScope
    policy_version: int
    status: RunStatus
    objective: float
    counts: dict[str, int]
    timings: dict[str, float]
    created_at: datetime
    proposals: list[Proposal] = []


class AcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[int, Field(gt=0, le=1_000_000_000)] | None = Field(
        None, description="Accept less than proposed (recorded as an override)."
    )


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class DeclineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] = Field(
        description="Why the site does not want this lot (its line is matched again without it)."
    )


class RegionKpi(BaseModel):
    region_code: str
    lines: int
    quantity: int
    matched: int
    fill_rate: float
    matched_lines: int
    median_time_to_match_seconds: float | None
    p90_time_to_match_seconds: float | None


class KpiReport(BaseModel):
    level: int = Field(description="Region code digits grouped by: 2 province, 4 city, 6 county.")
    items: list[RegionKpi]
