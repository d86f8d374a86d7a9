"""Domain errors of the supply service."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, InvalidRequest, NotFound


class DonorNotFound(NotFound):
    slug, title = "donor-not-found", "Donor not found"


class OfferNotFound(NotFound):
    slug, title = "offer-not-found", "Offer not found"


class LotNotFound(NotFound):
    slug, title = "lot-not-found", "Lot not found"


class ReservationNotFound(NotFound):
    slug, title = "reservation-not-found", "Reservation not found"


class NotYourDonor(Forbidden):
    slug, title = "not-your-donor", "This donor belongs to another organisation"


class NotYourCheck(Forbidden):
    slug, title = "not-your-check", "Your working group does not check these items"


class OfferNotOpen(Conflict):
    slug, title = "offer-not-open", "The offer is not open"


class NothingToVerify(Conflict):
    slug, title = "nothing-to-verify", "No lot of this offer awaits your group's verdict"


class LotUnavailable(Conflict):
    slug, title = "lot-unavailable", "The lot cannot be reserved now"


class OverAllocation(Conflict):
    slug, title = "over-allocation", "Not enough unreserved quantity in the lot"


class ReferenceReused(Conflict):
    slug, title = "reference-reused", "This reference already names a different reservation"


class ReferenceTaken(Conflict):
    slug, title = "reference-taken", "This reference names a reservation someone else made"


class ProposalReference(Forbidden):
    slug, title = "proposal-reference", "Only the matching service reserves for a proposal"


class ReservationForProposal(Conflict):
    slug, title = "reservation-for-proposal", "This reservation holds an accepted proposal's goods"


class ProcurementRegistered(Conflict):
    slug, title = "procurement-registered", "The goods of this procurement order are already registered"


class NotCustomsGroup(Forbidden):
    slug, title = "not-customs-group", "Only the customs group and coordinators decide on customs"


class NothingToClear(Conflict):
    slug, title = "nothing-to-clear", "No lot of this offer awaits customs"


class NotAPledge(Conflict):
    slug, title = "not-a-cash-pledge", "Payments are received against cash pledges only"


class PaymentReferenceReused(Conflict):
    slug, title = "payment-reference-reused", "This reference already names a different payment of the pledge"


class NotFundraiser(Forbidden):
    slug, title = "not-fundraiser", "Only coordinators and the fundraising group record payments"


class UnknownFund(InvalidRequest):
    slug, title = "unknown-fund", "No such special fund"


class FundCurrencyMismatch(InvalidRequest):
    slug, title = "fund-currency-mismatch", "The fund keeps another currency"


class FundOperationMismatch(InvalidRequest):
    slug, title = "fund-operation-mismatch", "The fund belongs to another relief operation"
