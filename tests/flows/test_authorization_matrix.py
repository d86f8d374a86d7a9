"""Who may do what: every operation of the merged OpenAPI document × every role, against real resources.

`EXPECTED` is the allow/deny table, written out by hand from API.md and ARCHITECTURE.md ("a unit may only touch
its own records"): for each operation the roles a token of the resource's own organisation (or, for
group-owned work, its working group) may use it with, and — where the operation touches an owned resource —
the roles another organisation's token may use it with. An operation of the surface without a row fails
`test_every_operation_has_a_row`, so a new endpoint must be added here.

For each operation the resources it acts on are created through the API (a site and need of org A, a donor and
its in-kind and cash offers of org B, a lot and a reservation, proposals, a shipment, a procurement draft, a
working group's webhook endpoint and a delivery), then:

* every denied (role, organisation) gets a 403 problem+json, and the owning service's tables and outbox are
  exactly as they were (no row written, changed or deleted, no event published);
* every allowed (role, organisation) gets past authorization: 2xx, or a 409 where an earlier allowed call
  already moved the resource on (close, withdraw, verification, order, receipt, feedback…: each of these
  services checks who is asking before the state, so the 409 comes after the check). A 401, 403 or 404 — or any
  other answer — fails: the caller was refused, or the resource hidden from it.

Denied calls run first, on the resource in a settled state (with the workers running, once the owning service's
tables stop changing); allowed calls follow, on a fresh resource each where the call destroys it. Operations
that cannot disturb each other share one set of resources (`SHARED`: all the reads, GET and PATCH of one
shipment…) to keep the file fast; every other operation gets its own.

Hubs scope coordinators: every operation a coordinator may call is also called by a coordinator whose token names
`regions` — once covering the resources' region (310101, under "31"), once not ("4101", "3201"). Out of region,
`REGIONAL` operations (those on something that lies in a region: sites, needs, proposals, runs, shipments,
procurements, the ledger) are refused like any other denial, changing nothing; the others pass as for a national
coordinator. `NATIONAL` operations (what holds for every region) refuse a token with `regions` wherever it is.

No operation hides a resource from an unauthorized caller behind a 404: every refusal is a 403 problem, except
the imports', where another organisation's site or donor in a row is rejected in the per-row report (422
`import-rejected`, nothing imported; `Row.other_denial`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.registry import service_of
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, PSYCH, RICE
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.needs import create_need, create_site
from tests.helpers.problems import assert_problem
from tests.helpers.receiver import serve_receiver
from tests.helpers.scenario import Gift, ship_a_gift
from tests.helpers.supply import create_donor, create_offer, create_pledge
from tests.helpers.surface import EXAMPLES, OPERATIONS, PUBLIC, SITE_ID, Operation
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.usefixtures("redis")
T = TypeVar("T")

C, F, D, L, W, A = "coordinator", "frontline", "donor", "logistics", "working_group", "admin"
ROLES = (C, F, D, L, W, A)
ANY = frozenset(ROLES)


def only(*roles: str) -> frozenset[str]:
    return frozenset(roles)


STAFF = only(C, A)  # coordinators and admins act for every organisation
MATCHING_READERS = only(C, L, W, A)

# The organisations (and working groups) that own the resources, and the stranger.
HUB_ORG = "org-hub"
SITE_ORG = "org-a"  # the site, its needs, the shipments to it
DONOR_ORG = "org-b"  # the donor and its offers
GROUP_ORG = "org-g"  # the medical-device working group; owns the webhook endpoint
CARRIER_ORG = "org-l"  # a logistics unit: the carrier assigned to the shipment being received
OTHER_ORG = "org-x"
CHECK_GROUP = "medical_device"  # checks ppe.mask.n95 (the catalog's check_by)
CUSTOMS_GROUP = "customs"
PARTNER_ORG = "org-p"  # a county NGO in the registry, under the hub
BUY_GROUP = "procurement"
FUND_GROUP = "fundraising"
OTHER_GROUP = "translation"
# The organisation each role's token speaks for where the resource has no owner.
HOME = {C: HUB_ORG, F: SITE_ORG, D: DONOR_ORG, L: CARRIER_ORG, W: GROUP_ORG, A: HUB_ORG}


@dataclass(frozen=True)
class Row:
    """`allowed`: the roles that may call it with a token of the resource's own organisation (or working group),
    or with their own organisation's token where nothing is owned. `other`: for an operation on an owned
    resource, the roles that may call it with another organisation's (another group's) token; None when
    nothing is owned. `other_denial`: the status another organisation gets when its role alone would pass."""

    allowed: frozenset[str]
    other: frozenset[str] | None = None
    other_denial: int = 403


EXPECTED: dict[tuple[str, str], Row] = {
    # --- needs: anyone reads; sites and needs are written by their organisation's frontline or coordinators
    ("GET", "/v1/items"): Row(ANY),
    ("POST", "/v1/items"): Row(STAFF),  # the catalog is the whole hub's: coordinators add to it
    ("GET", "/v1/items/{item_code}"): Row(ANY),
    ("POST", "/v1/items/requests"): Row(ANY),  # anyone may ask for an item the catalog lacks
    ("GET", "/v1/items/requests"): Row(STAFF),
    ("GET", "/v1/items/requests/{request_id}"): Row(ANY),
    ("POST", "/v1/items/requests/{request_id}/approve"): Row(STAFF),
    ("POST", "/v1/items/requests/{request_id}/map"): Row(STAFF),
    ("POST", "/v1/items/requests/{request_id}/refuse"): Row(STAFF),
    ("POST", "/v1/needs/{need_id}/lines/{line_id}/substitution-override"): Row(STAFF, other=STAFF),
    ("GET", "/v1/sites"): Row(ANY),
    ("POST", "/v1/sites"): Row(only(C, F, A)),  # for the caller's own organisation (see EXTRAS)
    ("GET", "/v1/sites/{site_id}"): Row(ANY, other=ANY),  # contact details hidden from others
    ("PATCH", "/v1/sites/{site_id}"): Row(only(C, F, A), other=STAFF),
    ("GET", "/v1/needs"): Row(ANY),
    ("POST", "/v1/needs"): Row(only(C, F, A), other=STAFF),  # owned: the site named in the body
    ("GET", "/v1/needs/{need_id}"): Row(ANY, other=ANY),
    ("PATCH", "/v1/needs/{need_id}"): Row(only(C, F, A), other=STAFF),
    ("POST", "/v1/needs/{need_id}/verify"): Row(STAFF, other=STAFF),  # coordinators only
    ("POST", "/v1/needs/{need_id}/close"): Row(only(C, F, A), other=STAFF),  # the owning site or a coordinator
    ("POST", "/v1/needs/{need_id}/confirm"): Row(only(C, F, A), other=STAFF),
    # another organisation's site in a row: the per-row report (422 import-rejected), nothing imported
    ("POST", "/v1/needs/imports"): Row(only(C, F, A), other=STAFF, other_denial=422),
    # --- supply: donors and offers are their organisation's; the checking working group gives its verdict
    ("POST", "/v1/donors"): Row(only(C, D, A)),  # for the caller's own organisation (see EXTRAS)
    ("GET", "/v1/donors/{donor_id}"): Row(ANY, other=ANY),  # contact hidden from others
    ("GET", "/v1/offers"): Row(ANY),
    ("POST", "/v1/offers"): Row(only(C, D, A), other=STAFF),  # owned: the donor named in the body
    ("POST", "/v1/offers/imports"): Row(only(C, D, A), other=STAFF, other_denial=422),
    ("GET", "/v1/offers/{offer_id}"): Row(ANY, other=ANY),
    ("PATCH", "/v1/offers/{offer_id}"): Row(only(C, D, A), other=STAFF),
    ("POST", "/v1/offers/{offer_id}/withdraw"): Row(only(C, D, A), other=STAFF),
    # owned by the working group that checks the item class (medical_device for N95 masks), whatever its org
    ("POST", "/v1/offers/{offer_id}/verification"): Row(only(W, A), other=only(A)),
    # money received against a cash pledge: coordinators and the fundraising group (of any organisation, see
    # EXTRAS) record it; the donor's organisation reads it with them ("other" is another working group)
    ("POST", "/v1/offers/{offer_id}/payments"): Row(only(C, W, A), other=STAFF),
    ("GET", "/v1/offers/{offer_id}/payments"): Row(ANY, other=STAFF),
    ("POST", "/v1/lots/{lot_id}/verification"): Row(only(W, A), other=only(A)),
    ("GET", "/v1/lots/{lot_id}"): Row(ANY, other=ANY),
    # matching (its admin service token) for accepted proposals; coordinators hold stock by hand
    ("POST", "/v1/lots/{lot_id}/reservations"): Row(only(C, A)),
    # owned by whoever made the hold (org and sub); coordinators release any hold (a proposal's reservation is
    # given back by its shipment, not released: tests/flows/test_double_commitment.py)
    ("DELETE", "/v1/reservations/{reservation_id}"): Row(only(C, A), other=STAFF),
    # --- matching: hub staff and the working groups read; coordinators decide
    ("GET", "/v1/candidates"): Row(MATCHING_READERS),
    ("GET", "/v1/allocation-runs"): Row(MATCHING_READERS),
    ("POST", "/v1/allocation-runs"): Row(STAFF),
    ("GET", "/v1/allocation-runs/{run_id}"): Row(MATCHING_READERS),
    ("GET", "/v1/proposals"): Row(MATCHING_READERS | only(F)),  # frontline: their own sites' needs only
    ("GET", "/v1/proposals/{proposal_id}"): Row(MATCHING_READERS),
    ("POST", "/v1/proposals/{proposal_id}/accept"): Row(STAFF),
    ("POST", "/v1/proposals/{proposal_id}/reject"): Row(STAFF),
    # the need's site organisation declines (its frontline), or a coordinator for it
    ("POST", "/v1/proposals/{proposal_id}/decline"): Row(only(C, F, A), other=STAFF),
    ("GET", "/v1/policy"): Row(MATCHING_READERS),
    ("PUT", "/v1/policy"): Row(STAFF),
    ("GET", "/v1/matching-kpis"): Row(MATCHING_READERS),
    # --- logistics: carriers and the logistics group move shipments; the receiving organisation receives
    ("GET", "/v1/shipments"): Row(ANY),  # the handover PIN only for the receiving site's frontline
    ("POST", "/v1/shipments"): Row(only(C, L, A)),
    ("GET", "/v1/shipments/{shipment_id}"): Row(ANY, other=ANY),
    ("PATCH", "/v1/shipments/{shipment_id}"): Row(only(C, L, A), other=only(C, L, A)),
    # the receiving frontline may only report `not_received` (see EXTRAS), never move it on
    ("POST", "/v1/shipments/{shipment_id}/status"): Row(only(C, L, A), other=only(C, L, A)),
    # "the recipient confirms with a handover PIN": the receiving site's frontline, or the assigned carrier at the
    # handover entering the PIN the site gives them (its logistics tokens, see EXTRAS), or a coordinator
    ("POST", "/v1/shipments/{shipment_id}/receipt"): Row(only(C, F, A), other=STAFF),
    # matching's own (admin) service token, when the site declines an accepted proposal: nobody else
    ("POST", "/v1/shipments/proposals/{proposal_id}/withdraw"): Row(only(A), other=only(A)),
    ("POST", "/v1/shipments/{shipment_id}/feedback"): Row(only(C, F, A), other=STAFF),
    # procurement: coordinators and the `procurement` working group (of any organisation, see EXTRAS); "other"
    # is a token of another working group
    ("GET", "/v1/procurements"): Row(only(C, W, A), other=STAFF),
    ("POST", "/v1/procurements"): Row(only(C, W, A), other=STAFF),
    ("GET", "/v1/procurements/{procurement_id}"): Row(only(C, W, A), other=STAFF),
    ("POST", "/v1/procurements/{procurement_id}/order"): Row(only(C, W, A), other=STAFF),
    ("POST", "/v1/procurements/{procurement_id}/receive"): Row(only(C, W, A), other=STAFF),
    ("POST", "/v1/procurements/{procurement_id}/cancel"): Row(only(C, W, A), other=STAFF),
    ("GET", "/v1/ledger"): Row(STAFF),
    # relief operations and special funds: the hub's coordinators set them up and read them
    ("POST", "/v1/operations"): Row(STAFF),
    ("GET", "/v1/operations"): Row(STAFF),
    ("GET", "/v1/operations/{operation_id}"): Row(STAFF),
    ("PATCH", "/v1/operations/{operation_id}"): Row(STAFF),
    ("POST", "/v1/funds"): Row(STAFF),
    ("GET", "/v1/funds"): Row(STAFF),
    ("GET", "/v1/funds/{fund_id}"): Row(STAFF),
    ("PATCH", "/v1/funds/{fund_id}"): Row(STAFF),
    ("GET", "/v1/funds/{fund_id}/ledger"): Row(STAFF),
    ("GET", "/v1/track/{code}"): Row(ANY),  # public: no token needed either (see test_public_tracking…)
    ("GET", "/v1/track/{code}.html"): Row(ANY),  # the same, as a page
    ("GET", "/v1/reports/impact"): Row(ANY),
    ("GET", "/v1/exports/{dataset}"): Row(STAFF),
    ("GET", "/v1/public/exports/deliveries"): Row(ANY),  # public: no token needed either
    ("GET", "/v1/public/accounts"): Row(ANY),  # public: no token needed either
    ("GET", "/v1/public/accounts.html"): Row(ANY),  # the same, as a page
    # A donor's statement: every role of the donor's own organisation, and coordinators.
    ("GET", "/v1/donors/{donor_id}/statement"): Row(ANY, other=STAFF),
    ("GET", "/v1/donors/{donor_id}/statement.html"): Row(ANY, other=STAFF),
    # --- webhooks: endpoints belong to the organisation that made them (any role: donor and frontline
    # organisations register endpoints scoped to their own records)
    ("GET", "/v1/event-types"): Row(ANY),
    ("GET", "/v1/webhook-endpoints"): Row(ANY),  # each sees its own organisation's
    ("POST", "/v1/webhook-endpoints"): Row(ANY),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Row(ANY, other=STAFF),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Row(ANY, other=STAFF),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Row(ANY, other=STAFF),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Row(ANY, other=STAFF),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): Row(ANY, other=STAFF),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): Row(ANY, other=STAFF),
    ("GET", "/v1/webhook-deliveries/{delivery_id}"): Row(ANY, other=STAFF),
    ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"): Row(ANY, other=STAFF),
    # customs decisions are the customs group's (whatever its org) and the coordinators'
    ("POST", "/v1/offers/{offer_id}/customs-clearance"): Row(only(C, W, A), other=STAFF),
    # --- partners: any token registers (its own organisation) and reads the registry; a registration is
    # changed by the organisation itself; approval and suspension by a coordinator of an approved hub covering
    # it (see EXTRAS), never by the organisation itself
    ("GET", "/v1/organizations"): Row(ANY),
    ("POST", "/v1/organizations"): Row(ANY),
    ("GET", "/v1/organizations/{org}"): Row(ANY, other=ANY),  # contact hidden from others
    ("PATCH", "/v1/organizations/{org}"): Row(ANY, other=only(A)),
    ("POST", "/v1/organizations/{org}/approve"): Row(only(A), other=only(A)),
    ("POST", "/v1/organizations/{org}/suspend"): Row(only(A), other=only(A)),
    # capacities: an organisation declares, changes and withdraws its own (an admin any); everyone reads them
    ("GET", "/v1/capacities"): Row(ANY),
    ("POST", "/v1/capacities"): Row(ANY),  # for the caller's own organisation (see EXTRAS)
    ("GET", "/v1/capacities/{capacity_id}"): Row(ANY, other=ANY),
    ("PATCH", "/v1/capacities/{capacity_id}"): Row(ANY, other=only(A)),
    ("POST", "/v1/capacities/{capacity_id}/withdraw"): Row(ANY, other=only(A)),
    # claims: any organisation claims need lines for itself; a coordinator of the need's region confirms; the
    # claimant or a coordinator withdraws
    ("POST", "/v1/needs/{need_id}/claims"): Row(ANY),  # for the caller's own organisation
    ("GET", "/v1/claims"): Row(ANY),
    ("GET", "/v1/claims/{claim_id}"): Row(ANY, other=ANY),
    ("POST", "/v1/claims/{claim_id}/confirm"): Row(STAFF, other=STAFF),
    ("POST", "/v1/claims/{claim_id}/withdraw"): Row(ANY, other=STAFF),
    # assignments: everyone reads them; the partner confirms and reports (coordinators for it, in region)
    ("GET", "/v1/assignments"): Row(ANY),
    ("GET", "/v1/assignments/{assignment_id}"): Row(ANY, other=ANY),
    ("POST", "/v1/assignments/{assignment_id}/confirm"): Row(ANY, other=STAFF),
    ("POST", "/v1/assignments/{assignment_id}/report"): Row(ANY, other=STAFF),
    # task queues: a working group's members work on its tasks; coordinators see every queue and open tasks
    ("GET", "/v1/tasks"): Row(only(C, W, A)),
    ("POST", "/v1/tasks"): Row(STAFF),
    ("GET", "/v1/tasks/{task_id}"): Row(only(C, W, A), other=STAFF),
    ("POST", "/v1/tasks/{task_id}/claim"): Row(only(W, A), other=only(A)),
    ("POST", "/v1/tasks/{task_id}/complete"): Row(only(W, A), other=only(A)),
}


# The regions of a hub's coordinator whose hub covers the resources (all in 310101), and of one whose does not.
IN_REGION = ("4101", "31")
OUT_OF_REGION = ("4101", "3201")

# Operations on something in a region, and the status a coordinator of other regions gets (the needs import
# rejects the row in its per-row report, like another organisation's site).
REGIONAL: dict[tuple[str, str], int] = {
    ("POST", "/v1/sites"): 403,  # the region of the site in the body
    ("PATCH", "/v1/sites/{site_id}"): 403,
    ("POST", "/v1/needs"): 403,
    ("PATCH", "/v1/needs/{need_id}"): 403,
    ("POST", "/v1/needs/{need_id}/verify"): 403,
    ("POST", "/v1/needs/{need_id}/close"): 403,
    ("POST", "/v1/needs/{need_id}/confirm"): 403,
    ("POST", "/v1/needs/imports"): 422,
    ("GET", "/v1/exports/{dataset}"): 403,  # the region_code asked for (none: every region)
    ("POST", "/v1/allocation-runs"): 403,  # the run's scope.region_code
    ("POST", "/v1/proposals/{proposal_id}/accept"): 403,  # the need's region
    ("POST", "/v1/proposals/{proposal_id}/reject"): 403,
    ("POST", "/v1/proposals/{proposal_id}/decline"): 403,
    ("PUT", "/v1/policy"): 403,
    ("POST", "/v1/claims/{claim_id}/confirm"): 403,  # the need's region
    ("POST", "/v1/claims/{claim_id}/withdraw"): 403,
    ("POST", "/v1/items"): 403,  # the catalog holds for every region
    ("POST", "/v1/items/requests/{request_id}/approve"): 403,
    ("POST", "/v1/items/requests/{request_id}/map"): 403,
    ("POST", "/v1/items/requests/{request_id}/refuse"): 403,
    ("POST", "/v1/needs/{need_id}/lines/{line_id}/substitution-override"): 403,  # the need's region
    ("POST", "/v1/shipments"): 403,  # the destination's region
    ("PATCH", "/v1/shipments/{shipment_id}"): 403,
    ("POST", "/v1/shipments/{shipment_id}/status"): 403,
    ("POST", "/v1/shipments/{shipment_id}/receipt"): 403,
    ("POST", "/v1/shipments/{shipment_id}/feedback"): 403,
    ("POST", "/v1/procurements"): 403,  # the destination (the region of its sites)
    ("POST", "/v1/procurements/{procurement_id}/order"): 403,
    ("POST", "/v1/procurements/{procurement_id}/receive"): 403,
    ("POST", "/v1/procurements/{procurement_id}/cancel"): 403,
    ("GET", "/v1/ledger"): 403,  # the region_code asked for
    ("POST", "/v1/operations"): 403,  # operations and funds hold for every region
    ("PATCH", "/v1/operations/{operation_id}"): 403,
    ("POST", "/v1/funds"): 403,
    ("PATCH", "/v1/funds/{fund_id}"): 403,
    ("GET", "/v1/funds/{fund_id}/ledger"): 403,
    ("POST", "/v1/assignments/{assignment_id}/confirm"): 403,  # the need's region
    ("POST", "/v1/assignments/{assignment_id}/report"): 403,
}
# What holds for every region: a coordinator with `regions` is refused in region too.
NATIONAL = frozenset(
    {
        ("PUT", "/v1/policy"),
        ("POST", "/v1/items"),
        ("POST", "/v1/items/requests/{request_id}/approve"),
        ("POST", "/v1/items/requests/{request_id}/map"),
        ("POST", "/v1/items/requests/{request_id}/refuse"),
        # operations and funds span regions; a fund's money is the whole fund's
        ("POST", "/v1/operations"),
        ("PATCH", "/v1/operations/{operation_id}"),
        ("POST", "/v1/funds"),
        ("PATCH", "/v1/funds/{fund_id}"),
        ("GET", "/v1/funds/{fund_id}/ledger"),
    }
)


@dataclass(frozen=True)
class Extra:
    """A case beyond role × organisation: a token (org "owner" = the resource's) and optionally another body."""

    label: str
    role: str
    org: str
    group: str | None
    allowed: bool
    body: Any = None


EXTRAS: dict[tuple[str, str], list[Extra]] = {
    ("POST", "/v1/sites"): [
        Extra("frontline registers a site for another org", F, SITE_ORG, None, False, {"org": OTHER_ORG}),
        Extra("coordinator registers a site for another org", C, HUB_ORG, None, True, {"org": OTHER_ORG}),
    ],
    ("POST", "/v1/donors"): [
        Extra("donor registers a donor for another org", D, DONOR_ORG, None, False, {"org": OTHER_ORG}),
        Extra("coordinator registers a donor for another org", C, HUB_ORG, None, True, {"org": OTHER_ORG}),
    ],
    ("POST", "/v1/shipments"): [
        Extra("logistics assigns a carrier org", L, CARRIER_ORG, None, False, {"carrier_org": CARRIER_ORG}),
        Extra("a coordinator assigns the carrier org", C, HUB_ORG, None, True, {"carrier_org": CARRIER_ORG}),
    ],
    ("PATCH", "/v1/shipments/{shipment_id}"): [
        Extra("a carrier assigns its own org", L, CARRIER_ORG, None, False, {"carrier_org": CARRIER_ORG}),
        Extra("a coordinator assigns the carrier org", C, HUB_ORG, None, True, {"carrier_org": CARRIER_ORG}),
    ],
    ("POST", "/v1/shipments/{shipment_id}/receipt"): [
        Extra("the assigned carrier", L, CARRIER_ORG, None, True),
        Extra("the assigned carrier's frontline token", F, CARRIER_ORG, None, False),
    ],
    ("POST", "/v1/shipments/{shipment_id}/status"): [
        Extra("another org's frontline reports not_received", F, OTHER_ORG, None, False, {"status": "not_received"}),
        Extra("the receiving frontline reports not_received", F, "owner", None, True, {"status": "not_received"}),
    ],
    **{
        key: [
            Extra("the procurement group of another org", W, OTHER_ORG, BUY_GROUP, True),
            Extra("a working_group token naming no group", W, "owner", None, False),
        ]
        for key in EXPECTED
        if key[1].startswith("/v1/procurements")
    },
    **{
        key: [
            Extra("a working_group token naming no group", W, "owner", None, False),
            Extra("the medical_device group of another org", W, OTHER_ORG, CHECK_GROUP, True),
        ]
        for key in (("POST", "/v1/offers/{offer_id}/verification"), ("POST", "/v1/lots/{lot_id}/verification"))
    },
    ("POST", "/v1/offers/{offer_id}/payments"): [
        Extra("the fundraising group of another org", W, OTHER_ORG, FUND_GROUP, True),
        Extra("a working_group token naming no group", W, "owner", None, False),
    ],
    ("GET", "/v1/offers/{offer_id}/payments"): [
        Extra("the fundraising group of another org", W, OTHER_ORG, FUND_GROUP, True),
    ],
    ("POST", "/v1/offers/{offer_id}/customs-clearance"): [
        Extra("a working_group token naming no group", W, "owner", None, False),
        Extra("the customs group of another org", W, OTHER_ORG, CUSTOMS_GROUP, True),
    ],
    ("POST", "/v1/organizations"): [
        Extra("frontline registers another org", F, SITE_ORG, None, False, {"id": OTHER_ORG}),
        Extra("a coordinator registers another org", C, HUB_ORG, None, True, {"id": OTHER_ORG}),
    ],
    ("POST", "/v1/capacities"): [
        Extra("frontline declares for another org", F, SITE_ORG, None, False, {"org": OTHER_ORG}),
        Extra("a coordinator declares for another org", C, HUB_ORG, None, False, {"org": OTHER_ORG}),
        Extra("an admin declares for another org", A, HUB_ORG, None, True, {"org": OTHER_ORG}),
    ],
    **{
        key: [Extra("a coordinator of the approved hub covering it", C, HUB_ORG, None, True)]
        for key in (
            ("PATCH", "/v1/organizations/{org}"),
            ("POST", "/v1/organizations/{org}/approve"),
            ("POST", "/v1/organizations/{org}/suspend"),
        )
    },
    **{
        key: [
            Extra("the group's member in another org", W, OTHER_ORG, BUY_GROUP, True),
            Extra("a working_group token naming no group", W, "owner", None, False),
        ]
        for key in (("POST", "/v1/tasks/{task_id}/claim"), ("POST", "/v1/tasks/{task_id}/complete"))
    },
}

# Allowed calls that destroy their resource get a fresh one each, so the next allowed call finds it.
FRESH = {("DELETE", "/v1/webhook-endpoints/{endpoint_id}")}

# The tables each service owns (not its projections of others' streams), fingerprinted with its outbox.
OWNED_TABLES = {
    "needs": ("site", "need", "need_line", "item_request", "catalog_item"),
    "supply": ("donor", "offer", "lot", "reservation", "payment"),
    "matching": ("policy_version", "allocation_run", "proposal", "decision"),
    "logistics": (
        "shipment",
        "shipment_line",
        "shipment_update",
        "feedback",
        "procurement",
        "procurement_funding",
        "ledger_entry",
        "ledger_posting",
        "operation",
        "fund",
    ),
    "webhooks": ("endpoint", "delivery", "attempt"),
    "partners": ("organization", "capacity", "assignment", "task"),
}


# --- the resources ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    """What one operation is called on: the URL with real ids, a valid body, and the resource's owner."""

    url: str
    body: Any = None  # JSON, or bytes for a multipart file
    owner_org: str | None = None
    owner_group: str | None = None
    fresh: Callable[[], Awaitable[Target]] | None = None


def example(key: tuple[str, str], placeholder: str | None = None) -> Any:
    """EXAMPLES' valid body for `key`, with its placeholder id replaced by a real one."""
    body = EXAMPLES[key]
    if isinstance(body, bytes):
        return body.replace(SITE_ID.encode(), placeholder.encode()) if placeholder else body
    text_ = json.dumps(body, ensure_ascii=False)
    return json.loads(text_.replace(SITE_ID, placeholder) if placeholder else text_)


class World:
    """Builds each resource once per test, through the API."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        auth: TokenFactory,
        engine: AsyncEngine,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
        stack: AsyncExitStack,
        with_workers: bool,
    ) -> None:
        self.client, self.auth, self.engine, self.settings = client, auth, engine, settings
        self.monkeypatch, self.stack, self.with_workers = monkeypatch, stack, with_workers
        self.coordinator = auth(C, org=HUB_ORG)
        self.admin = auth(A, org=HUB_ORG)
        self.recipient = auth(F, org=SITE_ORG)
        self.giver = auth(D, org=DONOR_ORG)
        self.checker = auth(W, org=GROUP_ORG, group=CHECK_GROUP)
        self._made: dict[str, Any] = {}

    async def _once(self, name: str, make: Callable[[], Awaitable[T]]) -> T:
        if name not in self._made:
            self._made[name] = await make()
        made: T = self._made[name]
        return made

    async def post(self, url: str, headers: dict[str, str], status: int = 201, **kwargs: Any) -> dict[str, Any]:
        r = await self.client.post(url, headers=headers, **kwargs)
        assert r.status_code == status, f"setup POST {url}: {r.status_code} {r.text}"
        body: dict[str, Any] = r.json()
        return body

    # needs
    async def site(self) -> dict[str, Any]:
        contact = {"contact_name": "李四", "contact_phone": "13900000000"}
        return await self._once("site", lambda: create_site(self.client, self.recipient, **contact))

    async def need(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            site = await self.site()
            line = {"item_code": RICE, "quantity": 100}
            return await create_need(
                self.client, self.recipient, site["id"], line, title="大米", urgency="high", beneficiaries=200
            )

        return await self._once("need", make)

    async def item_request(self) -> dict[str, Any]:
        """A frontline unit's request for an item the catalog lacks."""

        async def make() -> dict[str, Any]:
            body = example(("POST", "/v1/items/requests"))
            return await self.post("/v1/items/requests", self.recipient, json=body)

        return await self._once("item_request", make)

    # supply
    async def donor(self) -> dict[str, Any]:
        contact = {"name": "王五", "phone": "13700000000"}
        return await self._once(
            "donor", lambda: create_donor(self.client, self.giver, name="粮油公司", contact=contact)
        )

    async def in_kind(self) -> dict[str, Any]:
        """Rice (nothing to check) and N95 masks (checked by the medical_device group)."""

        async def make() -> dict[str, Any]:
            donor = await self.donor()
            lots = [
                {"item_code": RICE, "quantity": 100, "lat": 31.3, "lon": 121.5},
                {"item_code": N95, "quantity": 500, "lat": 31.3, "lon": 121.5},
            ]
            return await create_offer(self.client, self.giver, donor["id"], lots=lots)

        return await self._once("in_kind", make)

    async def rice_lot(self) -> dict[str, Any]:
        return next(lot for lot in (await self.in_kind())["lots"] if lot["item_code"] == RICE)

    async def cash(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            donor = await self.donor()
            return await create_pledge(self.client, self.giver, donor["id"], 1_000_000)

        return await self._once("cash", make)

    async def paid_cash(self) -> dict[str, Any]:
        """The cash pledge, with all of it received: a pledge outside any fund spends only money received."""

        async def make() -> dict[str, Any]:
            cash = await self.cash()
            body = {"amount": cash["amount"], "received_at": "2022-04-02T10:00:00+08:00", "reference": "matrix-paid"}
            await self.post(f"/v1/offers/{cash['id']}/payments", self.coordinator, json=body)
            return cash

        return await self._once("paid_cash", make)

    async def reservation(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            lot = await self.rice_lot()
            body = {"quantity": 3, "reference": "hub-hold"}
            return await self.post(f"/v1/lots/{lot['id']}/reservations", self.coordinator, json=body)

        return await self._once("reservation", make)

    # matching (needs the workers: the projection is fed by the streams)
    async def need_line_known(self) -> str:
        need = await self.need()
        await self.in_kind()
        line_id = need["lines"][0]["id"]

        async def known() -> bool:
            r = await self.client.get(f"/v1/candidates?need_line_id={line_id}", headers=self.coordinator)
            return r.status_code == 200 and bool(r.json()["items"])

        await eventually(known, seconds=30)
        return str(line_id)

    async def proposal(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            need = await self.need()
            await self.in_kind()

            async def proposed() -> Any:
                url = f"/v1/proposals?need_id={need['id']}&status=proposed"
                items = (await self.client.get(url, headers=self.coordinator)).json()["items"]
                return items[0] if items else None

            found: dict[str, Any] = await eventually(proposed, seconds=30)
            return found

        return await self._once("proposal", make)

    async def run(self) -> dict[str, Any]:
        body = example(("POST", "/v1/allocation-runs"))
        return await self._once("run", lambda: self.post("/v1/allocation-runs", self.coordinator, json=body))

    # logistics
    async def gift(self) -> Gift:
        async def make() -> Gift:
            return await ship_a_gift(
                self.client,
                self.auth,
                lines=((RICE, 10),),
                region_code="310101",
                org=SITE_ORG,
                donor_org=DONOR_ORG,
            )

        return await self._once("gift", make)

    async def shipment(self, gift: Gift) -> dict[str, Any]:
        r = await self.client.get(f"/v1/shipments/{gift.shipment['id']}", headers=gift.recipient)
        assert r.status_code == 200, r.text
        shipment: dict[str, Any] = r.json()
        return shipment

    async def accepted_unplanned(self) -> str:
        """An accepted proposal that logistics knows and has not planned (automatic shipments off)."""
        self.monkeypatch.setattr(self.settings, "logistics_auto_shipments", False)
        proposal = await self.proposal()
        await self.post(f"/v1/proposals/{proposal['id']}/accept", self.coordinator, status=200)
        probe = {"lines": [{"proposal_id": proposal["id"], "quantity": 10**6}]}

        async def known() -> bool:  # too much to plan: a 409 that changes nothing, once logistics knows it
            r = await self.client.post("/v1/shipments", headers=self.coordinator, json=probe)
            return r.status_code == 409 and "at most" in r.text

        await eventually(known, seconds=30)
        return str(proposal["id"])

    async def procurement(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            cash, site = await self.paid_cash(), await self.site()
            body = {**example(("POST", "/v1/procurements"), cash["id"]), "destination": {"site_id": site["id"]}}

            async def drafted() -> Any:  # 409 until logistics has seen the pledge, its payment and the site
                r = await self.client.post("/v1/procurements", headers=self.coordinator, json=body)
                return r.json() if r.status_code == 201 else None

            found: dict[str, Any] = await eventually(drafted, seconds=30)
            return found

        return await self._once("procurement", make)

    # webhooks
    async def endpoint(self, url: str = "http://127.0.0.1:9/hooks/md") -> dict[str, Any]:
        body = {"url": url, "event_types": ["reliefhub.supply.*"], "description": "医疗器械组"}
        return await self.post("/v1/webhook-endpoints", self.checker, json=body)

    async def delivery(self) -> dict[str, Any]:
        """A delivery to the working group's endpoint, made (and answered 200) by a local receiver."""

        async def make() -> dict[str, Any]:
            receiver = await self.stack.enter_async_context(serve_receiver())
            endpoint = await self.endpoint(receiver.url("/md"))
            await self.donor()  # reliefhub.supply.donor.created

            async def delivered() -> Any:
                url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=succeeded"
                items = (await self.client.get(url, headers=self.checker)).json()["items"]
                return items[0] if items else None

            found: dict[str, Any] = await eventually(delivered, seconds=30)
            return found

        return await self._once("delivery", make)

    # supply: an offer from abroad, awaiting customs
    async def from_abroad(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            donor = await self.donor()
            lots = [{"item_code": RICE, "quantity": 100, "lat": 31.3, "lon": 121.5}]
            body = {"donor_id": donor["id"], "kind": "in_kind", "origin_country": "DE", "lots": lots}
            return await self.post("/v1/offers", self.giver, json=body)

        return await self._once("from_abroad", make)

    # partners: the hub (approved by an operator) and an NGO it covers (pending)
    async def partner(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            hub = {"name": "上海枢纽", "kind": "hub", "region_codes": ["31"]}
            await self.post("/v1/organizations", self.coordinator, json=hub)
            await self.post(f"/v1/organizations/{HUB_ORG}/approve", self.admin, status=200)
            body = {"name": "黄浦社工站", "kind": "ngo", "region_codes": ["310101"], "contact": {"name": "赵六"}}
            return await self.post("/v1/organizations", self.auth(F, org=PARTNER_ORG), json=body)

        return await self._once("partner", make)

    async def capacity(self) -> dict[str, Any]:
        """The partner's capacity (psychological support sessions in 310101)."""

        async def make() -> dict[str, Any]:
            await self.partner()
            body = example(("POST", "/v1/capacities"))
            return await self.post("/v1/capacities", self.auth(F, org=PARTNER_ORG), json=body)

        return await self._once("capacity", make)

    async def claim(self) -> dict[str, Any]:
        """The partner's pending claim on the need's rice line."""

        async def make() -> dict[str, Any]:
            need = await self.need()
            body = example(("POST", "/v1/needs/{need_id}/claims"), need["lines"][0]["id"])
            return await self.post(f"/v1/needs/{need['id']}/claims", self.auth(L, org=PARTNER_ORG), json=body)

        return await self._once("claim", make)

    async def assignment(self) -> dict[str, Any]:
        """The partner's assignment: a service need of the site matched to its capacity, accepted."""

        async def make() -> dict[str, Any]:
            await self.capacity()
            site = await self.site()
            line = {"item_code": PSYCH, "quantity": 10}
            need = await create_need(self.client, self.recipient, site["id"], line, title="心理疏导", urgency="high")

            async def proposed() -> Any:
                url = f"/v1/proposals?need_id={need['id']}&status=proposed"
                items = (await self.client.get(url, headers=self.coordinator)).json()["items"]
                return items[0] if items else None

            proposal = await eventually(proposed, seconds=30)
            await self.post(f"/v1/proposals/{proposal['id']}/accept", self.coordinator, status=200)

            async def assigned() -> Any:
                url = f"/v1/assignments?need_id={need['id']}"
                items = (await self.client.get(url, headers=self.coordinator)).json()["items"]
                return items[0] if items else None

            found: dict[str, Any] = await eventually(assigned, seconds=30)
            return found

        return await self._once("assignment", make)

    async def task(self) -> dict[str, Any]:
        """A procurement group's task, opened by a coordinator."""
        body = example(("POST", "/v1/tasks"))
        return await self._once("task", lambda: self.post("/v1/tasks", self.coordinator, json=body))

    async def track_code(self) -> str:
        code = str((await self.in_kind())["tracking_code"])
        for _ in range(40):  # the page is rate-limited (60 a minute): poll gently
            if (await self.client.get(f"/v1/track/{code}")).status_code == 200:
                return code
            await asyncio.sleep(0.25)
        raise AssertionError("the tracking code never became known to logistics")

    # the owning service's state
    async def fingerprint(self, service: str) -> list[Any]:
        out: list[Any] = []
        async with self.engine.connect() as conn:
            for table in OWNED_TABLES[service]:
                row = await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        f'FROM "{service}"."{table}" AS t'
                    )
                )
                out.append((table, *row.one()))
            events = await conn.execute(text(f'SELECT count(*) FROM "{service}".outbox_event'))
            out.append(("outbox_event", events.scalar_one()))
        return out

    async def settled(self, service: str) -> list[Any]:
        """The fingerprint once the workers have left it alone for a while (at once without workers)."""
        previous = await self.fingerprint(service)
        if not self.with_workers:
            return previous
        quiet = 0
        for _ in range(60):
            await asyncio.sleep(0.25)
            current = await self.fingerprint(service)
            quiet = quiet + 1 if current == previous else 0
            if quiet == 2:
                return current
            previous = current
        raise AssertionError(f"{service} never settled")


Prepare = Callable[[World], Awaitable[Target]]


def _site_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        site = await w.site()
        return Target(f"/v1/sites/{site['id']}{suffix}", example(key) if key else None, owner_org=SITE_ORG)

    return prepare


def _need_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        need = await w.need()
        return Target(f"/v1/needs/{need['id']}{suffix}", example(key) if key else None, owner_org=SITE_ORG)

    return prepare


def _offer_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        offer = await w.in_kind()
        return Target(f"/v1/offers/{offer['id']}{suffix}", example(key) if key else None, owner_org=DONOR_ORG)

    return prepare


def _payments_target(key: tuple[str, str] | None = None) -> Prepare:
    """The payments of org B's cash pledge (recorded by the fundraising group)."""

    async def prepare(w: World) -> Target:
        offer = await w.cash()
        body = example(key) if key else None
        return Target(f"/v1/offers/{offer['id']}/payments", body, owner_org=DONOR_ORG, owner_group=FUND_GROUP)

    return prepare


def _proposal_target(suffix: str = "", key: tuple[str, str] | None = None, owner_org: str | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        proposal = await w.proposal()
        return Target(f"/v1/proposals/{proposal['id']}{suffix}", example(key) if key else None, owner_org=owner_org)

    return prepare


def _shipment_target(suffix: str = "", body: Any = None) -> Prepare:
    """The planned shipment to org A's site."""

    async def prepare(w: World) -> Target:
        gift = await w.gift()
        return Target(f"/v1/shipments/{gift.shipment['id']}{suffix}", body, owner_org=SITE_ORG)

    return prepare


async def _receipt_target(w: World) -> Target:
    gift = await w.gift()
    url = f"/v1/shipments/{gift.shipment['id']}"
    etag = (await w.client.get(url, headers=w.coordinator)).headers["etag"]
    r = await w.client.patch(url, headers={**w.coordinator, "If-Match": etag}, json={"carrier_org": CARRIER_ORG})
    assert r.status_code == 200, r.text
    await advance(w.client, gift.carrier, gift.shipment["id"], "picked_up", "delivered")
    shipment = await w.shipment(gift)
    body = full_receipt(shipment, shipment["handover_pin"])
    return Target(f"/v1/shipments/{shipment['id']}/receipt", body, owner_org=SITE_ORG)


async def _feedback_target(w: World) -> Target:
    received = await _receipt_target(w)
    await w.post(received.url, w.recipient, status=200, json=received.body)
    url = received.url.replace("/receipt", "/feedback")
    return Target(url, example(("POST", "/v1/shipments/{shipment_id}/feedback")), owner_org=SITE_ORG)


def _procurement_target(suffix: str = "", key: tuple[str, str] | None = None, ordered: bool = False) -> Prepare:
    async def prepare(w: World) -> Target:
        p = await w.procurement()
        if ordered:
            await w.post(f"/v1/procurements/{p['id']}/order", w.coordinator, status=200)
        body = example(key) if key else None
        return Target(f"/v1/procurements/{p['id']}{suffix}", body, owner_org=GROUP_ORG, owner_group=BUY_GROUP)

    return prepare


def _endpoint_target(suffix: str = "", body: Any = None) -> Prepare:
    async def prepare(w: World) -> Target:
        endpoint = await w.endpoint()
        return Target(
            f"/v1/webhook-endpoints/{endpoint['id']}{suffix}", body, owner_org=GROUP_ORG, fresh=lambda: prepare(w)
        )

    return prepare


def _delivery_target(suffix: str = "") -> Prepare:
    async def prepare(w: World) -> Target:
        delivery = await w.delivery()
        return Target(f"/v1/webhook-deliveries/{delivery['id']}{suffix}", None, owner_org=GROUP_ORG)

    return prepare


def _operation_target(key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        operation = await w.post("/v1/operations", w.coordinator, json=example(("POST", "/v1/operations")))
        return Target(f"/v1/operations/{operation['id']}", example(key) if key else None)

    return prepare


def _fund_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        fund = await w.post("/v1/funds", w.coordinator, json=example(("POST", "/v1/funds")))
        return Target(f"/v1/funds/{fund['id']}{suffix}", example(key) if key else None)

    return prepare


def _plain(
    url: str, key: tuple[str, str] | None = None, before: Callable[[World], Awaitable[Any]] | None = None
) -> Prepare:
    async def prepare(w: World) -> Target:
        if before is not None:
            await before(w)
        return Target(url, example(key) if key else None)

    return prepare


def _item_request_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        request = await w.item_request()
        return Target(f"/v1/items/requests/{request['id']}{suffix}", example(key) if key else None)

    return prepare


async def _override_target(w: World) -> Target:
    need = await w.need()
    key = ("POST", "/v1/needs/{need_id}/lines/{line_id}/substitution-override")
    url = f"/v1/needs/{need['id']}/lines/{need['lines'][0]['id']}/substitution-override"
    return Target(url, example(key), owner_org=SITE_ORG)


async def _create_need(w: World) -> Target:
    site = await w.site()
    return Target("/v1/needs", example(("POST", "/v1/needs"), site["id"]), owner_org=SITE_ORG)


async def _import_needs(w: World) -> Target:
    site = await w.site()
    return Target("/v1/needs/imports", example(("POST", "/v1/needs/imports"), site["id"]), owner_org=SITE_ORG)


async def _get_donor(w: World) -> Target:
    donor = await w.donor()
    return Target(f"/v1/donors/{donor['id']}", owner_org=DONOR_ORG)


async def _create_offer(w: World) -> Target:
    donor = await w.donor()
    return Target("/v1/offers", example(("POST", "/v1/offers"), donor["id"]), owner_org=DONOR_ORG)


async def _import_offers(w: World) -> Target:
    donor = await w.donor()
    return Target("/v1/offers/imports", example(("POST", "/v1/offers/imports"), donor["id"]), owner_org=DONOR_ORG)


async def _verification(w: World) -> Target:
    offer = await w.in_kind()
    body = example(("POST", "/v1/offers/{offer_id}/verification"))
    return Target(f"/v1/offers/{offer['id']}/verification", body, owner_org=GROUP_ORG, owner_group=CHECK_GROUP)


async def _lot_verification(w: World) -> Target:
    offer = await w.in_kind()
    lot = next(lot for lot in offer["lots"] if lot["verification"] == "pending")
    body = example(("POST", "/v1/lots/{lot_id}/verification"))
    return Target(f"/v1/lots/{lot['id']}/verification", body, owner_org=GROUP_ORG, owner_group=CHECK_GROUP)


async def _get_lot(w: World) -> Target:
    return Target(f"/v1/lots/{(await w.rice_lot())['id']}", owner_org=DONOR_ORG)


async def _reserve(w: World) -> Target:
    lot = await w.rice_lot()
    return Target(f"/v1/lots/{lot['id']}/reservations", example(("POST", "/v1/lots/{lot_id}/reservations")))


async def _release(w: World) -> Target:
    reservation = await w.reservation()
    return Target(f"/v1/reservations/{reservation['id']}", owner_org=HUB_ORG)


async def _candidates(w: World) -> Target:
    return Target(f"/v1/candidates?need_line_id={await w.need_line_known()}")


async def _get_run(w: World) -> Target:
    return Target(f"/v1/allocation-runs/{(await w.run())['id']}")


async def _create_shipment(w: World) -> Target:
    proposal_id = await w.accepted_unplanned()
    return Target("/v1/shipments", example(("POST", "/v1/shipments"), proposal_id))


async def _withdraw_target(w: World) -> Target:
    proposal_id = await w.accepted_unplanned()
    body = example(("POST", "/v1/shipments/proposals/{proposal_id}/withdraw"))
    return Target(f"/v1/shipments/proposals/{proposal_id}/withdraw", body, owner_org=SITE_ORG)


async def _create_procurement(w: World) -> Target:
    await w.procurement()  # the pledge and its payment are known to logistics
    cash, site = await w.paid_cash(), await w.site()
    body = {**example(("POST", "/v1/procurements"), cash["id"]), "destination": {"site_id": site["id"]}}  # Huangpu
    return Target("/v1/procurements", body, owner_org=GROUP_ORG, owner_group=BUY_GROUP)


async def _list_procurements(w: World) -> Target:
    return Target("/v1/procurements", owner_org=GROUP_ORG, owner_group=BUY_GROUP)


async def _create_endpoint(w: World) -> Target:
    # EXAMPLES (test_error_matrix) has no bodies for the webhook surface yet: the bodies are written here.
    return Target("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hooks/new", "event_types": ["reliefhub.*"]})


async def _customs(w: World) -> Target:
    offer = await w.from_abroad()
    body = example(("POST", "/v1/offers/{offer_id}/customs-clearance"))
    return Target(f"/v1/offers/{offer['id']}/customs-clearance", body, owner_org=GROUP_ORG, owner_group=CUSTOMS_GROUP)


def _organization_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        partner = await w.partner()
        return Target(f"/v1/organizations/{partner['id']}{suffix}", example(key) if key else None, PARTNER_ORG)

    return prepare


def _assignment_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        assignment = await w.assignment()
        return Target(f"/v1/assignments/{assignment['id']}{suffix}", example(key) if key else None, PARTNER_ORG)

    return prepare


def _capacity_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        capacity = await w.capacity()
        return Target(f"/v1/capacities/{capacity['id']}{suffix}", example(key) if key else None, PARTNER_ORG)

    return prepare


async def _create_claim(w: World) -> Target:
    need = await w.need()
    body = example(("POST", "/v1/needs/{need_id}/claims"), need["lines"][0]["id"])
    return Target(f"/v1/needs/{need['id']}/claims", body)


def _claim_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        claim = await w.claim()
        return Target(f"/v1/claims/{claim['id']}{suffix}", example(key) if key else None, PARTNER_ORG)

    return prepare


def _task_target(suffix: str = "", key: tuple[str, str] | None = None) -> Prepare:
    async def prepare(w: World) -> Target:
        task = await w.task()
        body = example(key) if key else None
        return Target(f"/v1/tasks/{task['id']}{suffix}", body, owner_org=GROUP_ORG, owner_group=BUY_GROUP)

    return prepare


def _statement(suffix: str = "") -> Prepare:
    async def prepare(w: World) -> Target:
        donor = await w.donor()
        url = f"/v1/donors/{donor['id']}/statement{suffix}"

        async def known() -> bool | None:  # logistics learns donors from supply's events
            return (await w.client.get(url, headers=w.coordinator)).status_code == 200 or None

        await eventually(known)
        return Target(url, owner_org=DONOR_ORG)

    return prepare


async def _track(w: World) -> Target:
    return Target(f"/v1/track/{await w.track_code()}")


async def _track_page(w: World) -> Target:
    return Target(f"/v1/track/{await w.track_code()}.html")


# How to reach each operation, and whether it needs the event flow (workers) to set up.
PREPARE: dict[tuple[str, str], tuple[Prepare, bool]] = {
    ("GET", "/v1/items"): (_plain("/v1/items?q=口罩"), False),
    ("POST", "/v1/items"): (_plain("/v1/items", ("POST", "/v1/items")), False),
    ("GET", "/v1/items/{item_code}"): (_plain("/v1/items/ppe.mask.gb19083"), False),
    ("POST", "/v1/items/requests"): (_plain("/v1/items/requests", ("POST", "/v1/items/requests")), False),
    ("GET", "/v1/items/requests"): (_plain("/v1/items/requests", before=World.item_request), False),
    ("GET", "/v1/items/requests/{request_id}"): (_item_request_target(), False),
    ("POST", "/v1/items/requests/{request_id}/approve"): (
        _item_request_target("/approve", ("POST", "/v1/items/requests/{request_id}/approve")),
        False,
    ),
    ("POST", "/v1/items/requests/{request_id}/map"): (
        _item_request_target("/map", ("POST", "/v1/items/requests/{request_id}/map")),
        False,
    ),
    ("POST", "/v1/items/requests/{request_id}/refuse"): (
        _item_request_target("/refuse", ("POST", "/v1/items/requests/{request_id}/refuse")),
        False,
    ),
    ("POST", "/v1/needs/{need_id}/lines/{line_id}/substitution-override"): (_override_target, False),
    ("GET", "/v1/sites"): (_plain("/v1/sites", before=World.site), False),
    ("POST", "/v1/sites"): (_plain("/v1/sites", ("POST", "/v1/sites")), False),
    ("GET", "/v1/sites/{site_id}"): (_site_target(), False),
    ("PATCH", "/v1/sites/{site_id}"): (_site_target("", ("PATCH", "/v1/sites/{site_id}")), False),
    ("GET", "/v1/needs"): (_plain("/v1/needs", before=World.need), False),
    ("POST", "/v1/needs"): (_create_need, False),
    ("GET", "/v1/needs/{need_id}"): (_need_target(), False),
    ("PATCH", "/v1/needs/{need_id}"): (_need_target("", ("PATCH", "/v1/needs/{need_id}")), False),
    ("POST", "/v1/needs/{need_id}/verify"): (_need_target("/verify", ("POST", "/v1/needs/{need_id}/verify")), False),
    ("POST", "/v1/needs/{need_id}/close"): (_need_target("/close", ("POST", "/v1/needs/{need_id}/close")), False),
    ("POST", "/v1/needs/{need_id}/confirm"): (_need_target("/confirm"), False),
    ("POST", "/v1/needs/imports"): (_import_needs, False),
    ("POST", "/v1/donors"): (_plain("/v1/donors", ("POST", "/v1/donors")), False),
    ("GET", "/v1/donors/{donor_id}"): (_get_donor, False),
    ("GET", "/v1/offers"): (_plain("/v1/offers", before=World.in_kind), False),
    ("POST", "/v1/offers"): (_create_offer, False),
    ("POST", "/v1/offers/imports"): (_import_offers, False),
    ("GET", "/v1/offers/{offer_id}"): (_offer_target(), False),
    ("PATCH", "/v1/offers/{offer_id}"): (_offer_target("", ("PATCH", "/v1/offers/{offer_id}")), False),
    ("POST", "/v1/offers/{offer_id}/withdraw"): (
        _offer_target("/withdraw", ("POST", "/v1/offers/{offer_id}/withdraw")),
        False,
    ),
    ("POST", "/v1/offers/{offer_id}/verification"): (_verification, False),
    ("POST", "/v1/offers/{offer_id}/payments"): (_payments_target(("POST", "/v1/offers/{offer_id}/payments")), False),
    ("GET", "/v1/offers/{offer_id}/payments"): (_payments_target(), False),
    ("POST", "/v1/lots/{lot_id}/verification"): (_lot_verification, False),
    ("GET", "/v1/lots/{lot_id}"): (_get_lot, False),
    ("POST", "/v1/lots/{lot_id}/reservations"): (_reserve, False),
    ("DELETE", "/v1/reservations/{reservation_id}"): (_release, False),
    ("GET", "/v1/candidates"): (_candidates, True),
    ("GET", "/v1/allocation-runs"): (_plain("/v1/allocation-runs", before=World.run), False),
    ("POST", "/v1/allocation-runs"): (_plain("/v1/allocation-runs", ("POST", "/v1/allocation-runs")), False),
    ("GET", "/v1/allocation-runs/{run_id}"): (_get_run, False),
    ("GET", "/v1/proposals"): (_plain("/v1/proposals"), False),
    ("GET", "/v1/proposals/{proposal_id}"): (_proposal_target(), True),
    ("POST", "/v1/proposals/{proposal_id}/accept"): (
        _proposal_target("/accept", ("POST", "/v1/proposals/{proposal_id}/accept")),
        True,
    ),
    ("POST", "/v1/proposals/{proposal_id}/reject"): (
        _proposal_target("/reject", ("POST", "/v1/proposals/{proposal_id}/reject")),
        True,
    ),
    ("POST", "/v1/proposals/{proposal_id}/decline"): (
        _proposal_target("/decline", ("POST", "/v1/proposals/{proposal_id}/decline"), SITE_ORG),
        True,
    ),
    ("GET", "/v1/policy"): (_plain("/v1/policy"), False),
    ("PUT", "/v1/policy"): (_plain("/v1/policy", ("PUT", "/v1/policy")), False),
    ("GET", "/v1/matching-kpis"): (_plain("/v1/matching-kpis"), False),
    ("GET", "/v1/shipments"): (_plain("/v1/shipments"), False),
    ("POST", "/v1/shipments"): (_create_shipment, True),
    ("GET", "/v1/shipments/{shipment_id}"): (_shipment_target(), True),
    ("PATCH", "/v1/shipments/{shipment_id}"): (
        _shipment_target("", example(("PATCH", "/v1/shipments/{shipment_id}"))),
        True,
    ),
    ("POST", "/v1/shipments/{shipment_id}/status"): (
        _shipment_target("/status", example(("POST", "/v1/shipments/{shipment_id}/status"))),
        True,
    ),
    ("POST", "/v1/shipments/{shipment_id}/receipt"): (_receipt_target, True),
    ("POST", "/v1/shipments/proposals/{proposal_id}/withdraw"): (_withdraw_target, True),
    ("POST", "/v1/shipments/{shipment_id}/feedback"): (_feedback_target, True),
    ("GET", "/v1/procurements"): (_list_procurements, False),
    ("POST", "/v1/procurements"): (_create_procurement, True),
    ("GET", "/v1/procurements/{procurement_id}"): (_procurement_target(), True),
    ("POST", "/v1/procurements/{procurement_id}/order"): (_procurement_target("/order"), True),
    ("POST", "/v1/procurements/{procurement_id}/receive"): (_procurement_target("/receive", ordered=True), True),
    ("POST", "/v1/procurements/{procurement_id}/cancel"): (
        _procurement_target("/cancel", ("POST", "/v1/procurements/{procurement_id}/cancel")),
        True,
    ),
    ("GET", "/v1/ledger"): (_plain("/v1/ledger?region_code=31"), False),
    ("GET", "/v1/track/{code}"): (_track, True),
    ("GET", "/v1/track/{code}.html"): (_track_page, True),
    ("GET", "/v1/reports/impact"): (_plain("/v1/reports/impact?region_code=31"), False),
    ("GET", "/v1/exports/{dataset}"): (_plain("/v1/exports/needs?region_code=31"), False),
    ("GET", "/v1/public/exports/deliveries"): (_plain("/v1/public/exports/deliveries"), False),
    ("GET", "/v1/public/accounts"): (_plain("/v1/public/accounts"), False),
    ("GET", "/v1/public/accounts.html"): (_plain("/v1/public/accounts.html"), False),
    ("GET", "/v1/donors/{donor_id}/statement"): (_statement(), True),
    ("GET", "/v1/donors/{donor_id}/statement.html"): (_statement(".html"), True),
    ("GET", "/v1/event-types"): (_plain("/v1/event-types"), False),
    ("GET", "/v1/webhook-endpoints"): (_plain("/v1/webhook-endpoints", before=World.endpoint), False),
    ("POST", "/v1/webhook-endpoints"): (_create_endpoint, False),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): (_endpoint_target(), False),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): (
        _endpoint_target("", {"description": "医疗器械组（夜班）"}),
        False,
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): (_endpoint_target(), False),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): (
        _endpoint_target("/rotate-secret", {"grace_seconds": 60}),
        False,
    ),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): (
        _endpoint_target("/replay", {"since": "2020-01-01T00:00:00Z"}),
        False,
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): (_endpoint_target("/deliveries"), False),
    ("POST", "/v1/offers/{offer_id}/customs-clearance"): (_customs, False),
    ("GET", "/v1/organizations"): (_plain("/v1/organizations", before=World.partner), False),
    ("POST", "/v1/organizations"): (_plain("/v1/organizations", ("POST", "/v1/organizations")), False),
    ("GET", "/v1/organizations/{org}"): (_organization_target(), False),
    ("PATCH", "/v1/organizations/{org}"): (
        _organization_target("", ("PATCH", "/v1/organizations/{org}")),
        False,
    ),
    ("POST", "/v1/organizations/{org}/approve"): (
        _organization_target("/approve", ("POST", "/v1/organizations/{org}/approve")),
        False,
    ),
    ("POST", "/v1/organizations/{org}/suspend"): (
        _organization_target("/suspend", ("POST", "/v1/organizations/{org}/suspend")),
        False,
    ),
    ("GET", "/v1/capacities"): (_plain("/v1/capacities", before=World.capacity), False),
    ("POST", "/v1/operations"): (_plain("/v1/operations", ("POST", "/v1/operations")), False),
    ("GET", "/v1/operations"): (_plain("/v1/operations"), False),
    ("GET", "/v1/operations/{operation_id}"): (_operation_target(), False),
    ("PATCH", "/v1/operations/{operation_id}"): (_operation_target(("PATCH", "/v1/operations/{operation_id}")), False),
    ("POST", "/v1/funds"): (_plain("/v1/funds", ("POST", "/v1/funds")), False),
    ("GET", "/v1/funds"): (_plain("/v1/funds"), False),
    ("GET", "/v1/funds/{fund_id}"): (_fund_target(), False),
    ("PATCH", "/v1/funds/{fund_id}"): (_fund_target("", ("PATCH", "/v1/funds/{fund_id}")), False),
    ("GET", "/v1/funds/{fund_id}/ledger"): (_fund_target("/ledger"), False),
    ("POST", "/v1/needs/{need_id}/claims"): (_create_claim, False),
    ("GET", "/v1/claims"): (_plain("/v1/claims", before=World.claim), False),
    ("GET", "/v1/claims/{claim_id}"): (_claim_target(), False),
    ("POST", "/v1/claims/{claim_id}/confirm"): (_claim_target("/confirm"), False),
    ("POST", "/v1/claims/{claim_id}/withdraw"): (
        _claim_target("/withdraw", ("POST", "/v1/claims/{claim_id}/withdraw")),
        False,
    ),
    ("POST", "/v1/capacities"): (_plain("/v1/capacities", ("POST", "/v1/capacities")), False),
    ("GET", "/v1/capacities/{capacity_id}"): (_capacity_target(), False),
    ("PATCH", "/v1/capacities/{capacity_id}"): (
        _capacity_target("", ("PATCH", "/v1/capacities/{capacity_id}")),
        False,
    ),
    ("POST", "/v1/capacities/{capacity_id}/withdraw"): (
        _capacity_target("/withdraw", ("POST", "/v1/capacities/{capacity_id}/withdraw")),
        False,
    ),
    ("GET", "/v1/assignments"): (_plain("/v1/assignments", before=World.assignment), True),
    ("GET", "/v1/assignments/{assignment_id}"): (_assignment_target(), True),
    ("POST", "/v1/assignments/{assignment_id}/confirm"): (_assignment_target("/confirm"), True),
    ("POST", "/v1/assignments/{assignment_id}/report"): (
        _assignment_target("/report", ("POST", "/v1/assignments/{assignment_id}/report")),
        True,
    ),
    ("GET", "/v1/tasks"): (_plain("/v1/tasks", before=World.task), False),
    ("POST", "/v1/tasks"): (_plain("/v1/tasks", ("POST", "/v1/tasks")), False),
    ("GET", "/v1/tasks/{task_id}"): (_task_target(), False),
    ("POST", "/v1/tasks/{task_id}/claim"): (_task_target("/claim"), False),
    ("POST", "/v1/tasks/{task_id}/complete"): (
        _task_target("/complete", ("POST", "/v1/tasks/{task_id}/complete")),
        False,
    ),
    ("GET", "/v1/webhook-deliveries/{delivery_id}"): (_delivery_target(), True),
    ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"): (_delivery_target("/retry"), True),
}


# --- the cases -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    role: str
    org: str
    group: str | None
    allowed: bool
    deny_status: int = 403
    body: Any = None
    regions: tuple[str, ...] | None = None

    def __str__(self) -> str:
        regions = f", regions={','.join(self.regions)}" if self.regions is not None else ""
        return f"{self.label} ({self.role}, org={self.org}, group={self.group}{regions})"


def cases_of(key: tuple[str, str], target: Target) -> list[Case]:
    row = EXPECTED[key]
    out: list[Case] = []
    if row.other is None:
        for role in ROLES:
            group = CHECK_GROUP if role == W else None
            out.append(Case(f"{role}", role, HOME[role], group, role in row.allowed))
    else:
        owner_org = target.owner_org or HUB_ORG
        for role in ROLES:
            group = (target.owner_group or CHECK_GROUP) if role == W else None
            out.append(Case(f"{role} of the owner", role, owner_org, group, role in row.allowed))
        for role in ROLES:
            group = OTHER_GROUP if role == W else None
            allowed = role in row.other
            # another org's token whose role alone would pass gets the row's denial status
            status = row.other_denial if role in row.allowed else 403
            out.append(Case(f"{role} of another org", role, OTHER_ORG, group, allowed, status))
    for extra in EXTRAS.get(key, []):
        org = (target.owner_org or HUB_ORG) if extra.org == "owner" else extra.org
        body = {**target.body, **extra.body} if isinstance(target.body, dict) and extra.body else extra.body
        out.append(Case(extra.label, extra.role, org, extra.group, extra.allowed, body=body))
    return out + regional_cases(key)


def regional_cases(key: tuple[str, str]) -> list[Case]:
    """A hub's coordinator in region and out of it, wherever a coordinator may act (on an owned resource, as
    another organisation's coordinator: by its staff powers, which the regions bound)."""
    row = EXPECTED[key]
    if row.other is not None and C in row.other:
        org = OTHER_ORG
    elif row.other is None and C in row.allowed:
        org = HOME[C]
    else:
        return []
    status = REGIONAL.get(key, 403)
    return [
        Case("a hub's coordinator in region", C, org, None, key not in NATIONAL, status, regions=IN_REGION),
        Case("a hub's coordinator out of region", C, org, None, key not in REGIONAL, status, regions=OUT_OF_REGION),
    ]


async def send(w: World, op: Operation, target: Target, case: Case) -> httpx.Response:
    regions = list(case.regions) if case.regions is not None else None
    headers = w.auth(case.role, org=case.org, group=case.group, regions=regions)
    if op.method in ("PATCH", "PUT"):
        current = await w.client.get(target.url, headers=w.admin)
        assert current.status_code == 200, current.text
        headers["If-Match"] = current.headers["etag"]
    body = target.body if case.body is None else case.body
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["files"] = {"file": ("import.csv", body, "text/csv")}
    elif body is not None:
        kwargs["json"] = body
    return await w.client.request(op.method, target.url, headers=headers, **kwargs)


async def check(w: World, op: Operation, target: Target, cases: list[Case]) -> list[str]:
    """Run denied cases first (each must be a 403/… problem that changes nothing), then allowed ones."""
    service = service_of(op.path)
    assert service is not None, op.path
    failures: list[str] = []
    before = await w.settled(service)
    for case in [c for c in cases if not c.allowed]:
        r = await send(w, op, target, case)
        try:
            assert_problem(r, case.deny_status, context=f"{op} as {case}")
        except AssertionError as exc:
            failures.append(f"DENY expected: {exc}")
        after = await w.fingerprint(service)
        if after != before:
            changed = [b[0] for b, a in zip(before, after, strict=True) if a != b]
            failures.append(f"DENY {op} as {case}: answered {r.status_code}, and changed {service}: {changed}")
            before = await w.settled(service)  # judge the next case on its own
    for case in [c for c in cases if c.allowed]:
        t = await target.fresh() if op.key in FRESH and target.fresh else target
        r = await send(w, op, t, case)
        if r.status_code in (401, 403, 404) or not (r.is_success or r.status_code == 409):
            failures.append(f"ALLOW {op} as {case}: {r.status_code} {r.text[:300]}")
    return failures


# --- the tests -------------------------------------------------------------------------------------------------


def test_every_operation_has_a_row() -> None:
    served = {op.key for op in OPERATIONS}
    missing, stale = served - set(EXPECTED), set(EXPECTED) - served
    assert not missing, f"add the allowed roles of these operations to EXPECTED: {sorted(missing)}"
    assert not stale, f"EXPECTED names operations that no longer exist: {sorted(stale)}"
    assert set(PREPARE) == served, f"say how to reach: {sorted(served - set(PREPARE))}"
    shared = [key for keys in SHARED.values() for key in keys]
    assert len(shared) == len(set(shared)) and set(shared) <= served, "each operation in one SHARED group at most"
    for name, keys in SHARED.items():
        assert len({PREPARE[k][1] for k in keys}) == 1, f"{name}: all with the event flow or all without"
    for key, row in EXPECTED.items():
        assert row.allowed <= ANY and (row.other is None or row.other <= row.allowed | STAFF), key
        assert A in row.allowed, f"{key}: admins pass every role check"
        assert key not in REGIONAL or regional_cases(key), f"{key}: regional, yet no coordinator may call it"
    assert set(REGIONAL) <= set(EXPECTED) and set(REGIONAL) >= NATIONAL, "REGIONAL names unknown operations"


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    client: httpx.AsyncClient,
    auth: TokenFactory,
    engine: AsyncEngine,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    async with AsyncExitStack() as stack:
        yield World(client, auth, engine, migrated, monkeypatch, stack, "workers" in request.fixturenames)


async def _matrix(w: World, op: Operation) -> list[str]:
    prepare, _ = PREPARE[op.key]
    target = await prepare(w)
    failures = await check(w, op, target, cases_of(op.key, target))
    if op.key in PUBLIC:  # no token at all: the page of a real code, a 404 problem for an unknown one
        r = await w.client.get(target.url)
        if r.status_code != 200:
            failures.append(f"PUBLIC {op} without a token: {r.status_code} {r.text[:300]}")
        if "{code}" not in op.key[1]:
            return failures
        missing = await w.client.get(target.url.rsplit("/", 1)[0] + "/NoSuchCode12345")
        try:
            assert_problem(missing, 404, context=f"{op} without a token, unknown code")
        except AssertionError as exc:
            failures.append(str(exc))
    return failures


# Operations that share one set of resources (one test), run in this order: none of them changes what a later
# one checks. Every other operation gets a test, and resources, of its own.
SHARED: dict[str, tuple[tuple[str, str], ...]] = {
    "reads": tuple(key for key, (_, flow) in PREPARE.items() if key[0] == "GET" and not flow),
    "a planned shipment": (("GET", "/v1/shipments/{shipment_id}"), ("PATCH", "/v1/shipments/{shipment_id}")),
    "a proposal": (
        ("GET", "/v1/candidates"),
        ("GET", "/v1/proposals/{proposal_id}"),
        ("GET", "/v1/track/{code}"),
        ("GET", "/v1/track/{code}.html"),
    ),
    "a procurement draft": (("GET", "/v1/procurements/{procurement_id}"), ("POST", "/v1/procurements")),
    "a donor's statement": (
        ("GET", "/v1/donors/{donor_id}/statement"),
        ("GET", "/v1/donors/{donor_id}/statement.html"),
    ),
    "an assignment": (
        ("GET", "/v1/assignments"),
        ("GET", "/v1/assignments/{assignment_id}"),
        ("POST", "/v1/assignments/{assignment_id}/confirm"),
        ("POST", "/v1/assignments/{assignment_id}/report"),
    ),
    "a webhook delivery": (
        ("GET", "/v1/webhook-deliveries/{delivery_id}"),
        ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"),
    ),
}


def _groups(flow: bool) -> list[Any]:
    by_key = {op.key: op for op in OPERATIONS}
    shared = {key for keys in SHARED.values() for key in keys}
    groups = [
        pytest.param([by_key[k] for k in keys if k in by_key], id=f"{name}: {len(keys)} operations")
        for name, keys in SHARED.items()
        if PREPARE[keys[0]][1] == flow
    ]
    singles = [op for op in OPERATIONS if op.key in PREPARE and op.key not in shared and PREPARE[op.key][1] == flow]
    return groups + [pytest.param([op], id=str(op)) for op in singles]


@pytest.mark.parametrize("ops", _groups(flow=False))
async def test_authorization(world: World, ops: list[Operation]) -> None:
    failures = [f for op in ops for f in await _matrix(world, op)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("ops", _groups(flow=True))
async def test_authorization_through_the_event_flow(workers: None, world: World, ops: list[Operation]) -> None:
    failures = [f for op in ops for f in await _matrix(world, op)]
    assert not failures, "\n".join(failures)
