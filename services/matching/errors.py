"""Domain errors of the matching service."""

from __future__ import annotations

from shared.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable


class NeedLineNotFound(NotFound):
    slug, title = "need-line-not-found", "Need line not found (or not known to matching yet)"


class RunNotFound(NotFound):
    slug, title = "allocation-run-not-found", "Allocation run not found"


class ProposalNotFound(NotFound):
    slug, title = "proposal-not-found", "Proposal not found"


class ProposalNotOpen(Conflict):
    slug, title = "proposal-not-open", "The proposal is no longer open for a decision"


class LotTaken(Conflict):
    slug, title = "lot-taken", "The lot's quantity was taken meanwhile; the need line is being re-matched"
    keeps_changes = True  # the proposal's cancellation and the line's re-run are committed


class AlreadyPickedUp(Conflict):
    slug, title = "already-picked-up", "The proposal's goods were picked up already; it can no longer be declined"


class RestrictionExcludes(Conflict):
    slug, title = "restriction-violated", "The donor's restrictions no longer allow this lot for this need line"
    keeps_changes = True  # the proposal's cancellation and the line's re-run are committed


class InvalidPolicy(InvalidRequest):
    slug, title = "invalid-policy", "The policy is not valid"


class SupplyUnavailable(ServiceUnavailable):
    slug, title = "supply-unavailable", "The supply service did not answer; retry shortly"


class LogisticsUnavailable(ServiceUnavailable):
    slug, title = "logistics-unavailable", "The logistics service did not answer (or has not heard of it yet); retry"
