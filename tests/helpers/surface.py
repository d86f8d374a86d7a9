"""The API's surface as the tests see it: every operation of the merged OpenAPI document, read from the services'
routers (without starting anything), and a valid body for every operation that takes one, so that a test can get
exactly one thing wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI

from reliefhub.gateway import merge_openapi
from reliefhub.registry import services

JSON = "application/json"
MULTIPART = "multipart/form-data"
METHODS = ("get", "post", "put", "patch", "delete")
# API.md: no token needed (the gift's timeline, as JSON and as a page)
PUBLIC: set[tuple[str, str]] = {
    ("GET", "/v1/track/{code}"),
    ("GET", "/v1/track/{code}.html"),
    ("GET", "/v1/public/exports/deliveries"),
    ("GET", "/v1/public/accounts"),
    ("GET", "/v1/public/accounts.html"),
}

SITE_ID = "00000000-0000-4000-8000-000000000001"
IMPORT_CSV = f"site_id,title,item_code,quantity\n{SITE_ID},饮用水,water.bottled.small_550ml,10\n".encode()

# A valid body for every operation that takes one, so that only the thing under test is wrong.
EXAMPLES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/items"): {
        "code": "food.grain.millet",
        "name": {"zh": "小米", "en": "Foxtail millet"},
        "unit": "kg",
        "packs": [{"unit": "bag", "base_units": 10}],
        "unit_value_fen": 900,
        "substitute_rules": [{"code": "food.grain.rice", "factor": 1.0, "not_for_site_kinds": []}],
    },
    ("POST", "/v1/sites"): {"name": "瑞金医院", "kind": "hospital", "region_code": "310101", "lat": 31.2, "lon": 121.5},
    ("PATCH", "/v1/sites/{site_id}"): {"name": "瑞金医院北院"},
    ("POST", "/v1/needs"): {
        "site_id": SITE_ID,
        "title": "饮用水",
        "urgency": "high",
        "lines": [{"item_code": "water.bottled.small_550ml", "quantity": 100, "deadline": "soft"}],
    },
    ("PATCH", "/v1/needs/{need_id}"): {"title": "饮用水（更新）"},
    ("POST", "/v1/items/requests"): {
        "name": "高粱米 Sorghum",
        "unit": "kg",
        "category": "food",
        "note": "staple of the northern shelters",
    },
    ("POST", "/v1/items/requests/{request_id}/approve"): {"code": "food.grain.sorghum"},
    ("POST", "/v1/items/requests/{request_id}/map"): {"code": "food.grain.rice"},
    ("POST", "/v1/items/requests/{request_id}/refuse"): {"reason": "sorghum is not sourced by the hub"},
    ("POST", "/v1/needs/{need_id}/lines/{line_id}/substitution-override"): {
        "reason": "no medical-grade stock in the region for three days",
    },
    ("POST", "/v1/needs/{need_id}/verify"): {"verdict": "verified", "reason": "called the site"},
    ("POST", "/v1/needs/{need_id}/close"): {"reason": "received from a neighbour"},
    ("POST", "/v1/needs/imports"): IMPORT_CSV,
    ("POST", "/v1/donors"): {"name": "某基金会", "kind": "foundation"},
    ("POST", "/v1/offers"): {"donor_id": SITE_ID, "kind": "cash", "amount": 100_000, "currency": "CNY"},
    ("POST", "/v1/offers/imports"): f"donor_id,item_code,quantity\n{SITE_ID},food.grain.rice,5\n".encode(),
    ("PATCH", "/v1/offers/{offer_id}"): {"note": "仅限上海"},
    ("POST", "/v1/offers/{offer_id}/withdraw"): {"reason": "sold out"},
    ("POST", "/v1/offers/{offer_id}/verification"): {"verdict": "verified", "notes": "certificates checked"},
    ("POST", "/v1/offers/{offer_id}/payments"): {
        "amount": 50_000,
        "received_at": "2022-04-02T10:00:00+08:00",
        "reference": "ICBC-20220402-001",
    },
    ("POST", "/v1/lots/{lot_id}/verification"): {"verdict": "verified", "notes": "this batch's certificates checked"},
    ("POST", "/v1/lots/{lot_id}/reservations"): {"quantity": 1, "reference": "proposal-1"},
    ("POST", "/v1/allocation-runs"): {"scope": {"region_code": "31", "item_codes": ["food.grain.rice"]}},
    ("POST", "/v1/proposals/{proposal_id}/accept"): {"quantity": 1},
    ("POST", "/v1/proposals/{proposal_id}/reject"): {"reason": "the site already received rice"},
    ("POST", "/v1/proposals/{proposal_id}/decline"): {"reason": "our store room cannot take another pallet"},
    ("POST", "/v1/shipments/proposals/{proposal_id}/withdraw"): {"reason": "declined by the site"},
    ("PUT", "/v1/policy"): {
        "weights": {
            "urgency": 30,
            "deadline_slack": 15,
            "distance": 15,
            "quantity_fit": 10,
            "expiry_pressure": 10,
            "substitute": 10,
            "equity": 20,
        },
        "tiers": [{"share": 0.5, "value": 300}, {"share": 0.5, "value": 50}],
        "lateness_penalty_per_hour": 1.0,
    },
    ("POST", "/v1/shipments"): {"lines": [{"proposal_id": SITE_ID, "quantity": 1}], "carrier": "顺丰"},
    ("PATCH", "/v1/shipments/{shipment_id}"): {"carrier": "京东物流"},
    ("POST", "/v1/shipments/{shipment_id}/status"): {"status": "picked_up", "location": "浦东仓库"},
    ("POST", "/v1/shipments/{shipment_id}/receipt"): {
        "pin": "123456",
        "lines": [{"item_code": "food.grain.rice", "quantity_received": 1}],
    },
    ("POST", "/v1/shipments/{shipment_id}/feedback"): {"rating": 5, "comment": "谢谢", "beneficiaries_served": 10},
    # The authorization matrix sends it with a pledge whose money was received: a pledge spends only that.
    ("POST", "/v1/procurements"): {
        "supplier": {"name": "国药控股"},
        "lines": [{"item_code": "ppe.mask.n95", "quantity": 10, "unit_price": 300}],
        "funding": [{"offer_id": SITE_ID, "amount": 3000}],
        "destination": {"need_ids": ["00000000-0000-4000-8000-000000000002"]},
    },
    ("POST", "/v1/procurements/{procurement_id}/cancel"): {"reason": "supplier out of stock"},
    ("POST", "/v1/webhook-endpoints"): {
        "url": "https://hooks.example.org/reliefhub",
        "event_types": ["reliefhub.supply.*"],
        "filters": {"item_codes": ["medical_device."], "region_codes": ["31"]},
    },
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"description": "器械核验组"},
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {"grace_seconds": 3600},
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): {"since": "2026-11-01T00:00:00Z"},
    ("POST", "/v1/offers/{offer_id}/customs-clearance"): {
        "outcome": "cleared",
        "hs_codes": {"food.grain.rice": "1006300000"},
        "consignee_foundation": "上海慈善基金会",
        "exemption_reference": "沪关免 2022-0417",
    },
    ("POST", "/v1/organizations"): {"name": "金水区邻里互助会", "kind": "community_group", "region_codes": ["310101"]},
    ("PATCH", "/v1/organizations/{org}"): {"public_name": "金水邻里"},
    ("POST", "/v1/organizations/{org}/approve"): {"reason": "资料齐全"},
    ("POST", "/v1/organizations/{org}/suspend"): {"reason": "核查中"},
    ("POST", "/v1/operations"): {
        "name": "上海抗疫专项行动",
        "region_code": "31",
        "starts_at": "2022-03-28T00:00:00+08:00",
        "ends_at": "2022-06-30T00:00:00+08:00",
    },
    ("PATCH", "/v1/operations/{operation_id}"): {"ends_at": "2022-07-31T00:00:00+08:00"},
    ("POST", "/v1/funds"): {"name": "抗疫专项基金", "managed_by": "hub", "currency": "CNY", "overhead_share": 0.05},
    ("PATCH", "/v1/funds/{fund_id}"): {"public": True},
    ("POST", "/v1/capacities"): {
        "service_code": "service.psych.support_session",
        "units_per_day": 30,
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-07",
        "region_codes": ["310101"],
        "note": "线上线下均可",
    },
    ("PATCH", "/v1/capacities/{capacity_id}"): {"units_per_day": 40},
    ("POST", "/v1/capacities/{capacity_id}/withdraw"): {"reason": "人员撤回"},
    ("POST", "/v1/needs/{need_id}/claims"): {
        "lines": [{"line_id": SITE_ID, "quantity": 1}],
        "eta": "2026-12-03T10:00:00+08:00",
        "note": "我们自带大米",
    },
    ("POST", "/v1/claims/{claim_id}/withdraw"): {"reason": "车辆故障"},
    ("POST", "/v1/assignments/{assignment_id}/report"): {
        "units_delivered": 8,
        "people_served": 12,
        "served_by_group": {"elderly": 12},
        "note": "两场团体辅导",
    },
    ("POST", "/v1/tasks"): {
        "kind": "procurement_quote",
        "title": "采购报价",
        "subject": {"type": "need", "id": SITE_ID},
    },
    ("POST", "/v1/tasks/{task_id}/complete"): {"outcome": "declined", "notes": "无供应商报价"},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body: str | None  # the content type of its request body
    parameters: tuple[tuple[str, str], ...]  # (name, in)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def id_params(self) -> list[str]:
        return [n for n, where in self.parameters if where == "path" and n.endswith("_id")]

    def url(self, id_value: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: id_value if m.group(1).endswith("_id") else "unknown", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations_of(doc: dict[str, Any]) -> list[Operation]:
    out = []
    for path, item in doc["paths"].items():
        assert path.startswith("/v1/"), path
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            content = op.get("requestBody", {}).get("content", {})
            body = MULTIPART if MULTIPART in content else JSON if content else None
            # The kit's headers (Idempotency-Key, If-Match, If-None-Match) are references: not the route's own.
            params = tuple((p["name"], p["in"]) for p in op.get("parameters", []) if "$ref" not in p)
            out.append(Operation(method.upper(), path, body, params))
    return out


@cache
def _surface() -> list[Operation]:
    """The merged document of the services' routers, as the gateway builds it (without starting anything)."""
    apps = {}
    for name, spec in services().items():
        app = FastAPI(title=name, description=spec.description)
        for router in spec.routers:
            app.include_router(router)
        apps[name] = app
    return operations_of(merge_openapi(apps))


OPERATIONS = _surface()
