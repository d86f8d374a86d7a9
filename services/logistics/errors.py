"""Domain errors of the logistics service."""

from __future__ import annotations

from shared.errors import Conflict, DomainError, Forbidden, InvalidRequest, NotFound


class ShipmentNotFound(NotFound):
    slug, title = "shipment-not-found", "Shipment not found"


class ProcurementNotFound(NotFound):
    slug, title = "procurement-not-found", "Procurement order not found"


class TrackingCodeNotFound(NotFound):
    slug, title = "tracking-code-not-found", "No gift has this tracking code"


class ProposalNotShippable(Conflict):
    slug, title = "proposal-not-shippable", "The proposal cannot be shipped (not accepted, or already planned)"


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "The shipment cannot move to that status from its current one"


class WrongPin(Forbidden):
    slug, title = "wrong-pin", "The handover PIN is wrong"
    keeps_changes = True  # the failed attempt counts towards the lockout


class PinLocked(DomainError):
    status, slug, title = 429, "pin-locked", "Too many wrong PINs; receipt is locked for a while"
    keeps_changes = True


class InvalidReceipt(InvalidRequest):
    slug, title = "invalid-receipt", "The receipt does not fit the shipment's lines"


class FeedbackExists(Conflict):
    slug, title = "feedback-exists", "This shipment already has feedback"


class NotReceivedYet(Conflict):
    slug, title = "not-received-yet", "Feedback follows receipt"


class NotTheRecipient(Forbidden):
    slug, title = "not-the-recipient", "Only the receiving site's organisation or a coordinator may do this"


class PledgeUnavailable(Conflict):
    slug, title = "pledge-unavailable", "A pledge cannot fund this order"


class PledgeInsufficient(Conflict):
    slug, title = "pledge-insufficient", "A pledge does not hold enough for this order"


class ProcurementNotInState(Conflict):
    slug, title = "procurement-state", "The procurement order is not in a state that allows this"


class SupplyUnavailable(DomainError):
    status, slug, title = 503, "supply-unavailable", "The supply service could not register the goods; retry"


class TooManyRequests(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests; slow down"


class RestrictionViolated(Conflict):
    slug, title = "restriction-violated", "A funding pledge's restrictions exclude this destination or item"


class DestinationUnavailable(Conflict):
    slug, title = "destination-unavailable", "The purchase's destination is not known to logistics (yet)"


class OperationNotFound(NotFound):
    slug, title = "operation-not-found", "Relief operation not found"


class FundNotFound(NotFound):
    slug, title = "fund-not-found", "Special fund not found"


class FundUnavailable(Conflict):
    slug, title = "fund-unavailable", "The fund cannot pay for this order"


class DonorNotFound(NotFound):
    """The same problem as supply's: logistics has no record of the donor (or not yet: it learns donors from
    supply's events)."""

    slug, title = "donor-not-found", "Donor not found"
