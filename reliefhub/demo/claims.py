"""The demo's claim: a partner (the volunteer carriers' alliance) covers part of a need line itself; the hub's
coordinator confirms; logistics plans the partner's own shipment with it as carrier; the site receives it with
the PIN and rates it; the claim is fulfilled."""

from __future__ import annotations

from reliefhub.demo.client import Api, wait_for
from reliefhub.demo.data import JSON
from reliefhub.demo.summary import Summary
from shared.auth import Role

CLAIMANT = "partner-3"  # 浦江志愿者货运联盟 (PARTNERS in reliefhub.demo.partners)
LOOKED_AT = 60  # needs read to find a line with something open
MAX_CLAIMED = 50


def _open(line: JSON) -> int:
    covered = max(int(line["quantity_matched"]), int(line["quantity_delivered"])) + int(line["quantity_claimed"])
    return max(int(line["quantity"]) - covered, 0)


async def _open_line(api: Api, need_ids: set[str], coordinator: dict[str, str]) -> tuple[JSON, JSON] | None:
    for need_id in sorted(need_ids)[:LOOKED_AT]:
        need = await api.json("GET", f"/v1/needs/{need_id}", coordinator)
        if need["status"] not in ("open", "matched", "in_transit"):
            continue
        for line in need["lines"]:
            if _open(line) > 0:
                return need, line
    return None


async def partner_claim(
    api: Api, summary: Summary, coordinator: dict[str, str], need_ids: set[str], wait_seconds: float
) -> None:
    found = await _open_line(api, need_ids, coordinator)
    if found is None:
        return
    need, line = found
    partner = api.auth(Role.logistics, api.org(CLAIMANT))
    body: JSON = {
        "lines": [{"line_id": line["id"], "quantity": min(_open(line), MAX_CLAIMED)}],
        "note": "我们自己运送这批物资 / we bring these ourselves",
    }
    claim = await api.json("POST", f"/v1/needs/{need['id']}/claims", partner, key="claim", json=body)
    await api.call("POST", f"/v1/claims/{claim['id']}/confirm", coordinator, key="claim-confirm", allow=(409,))
    summary.claims += 1

    async def planned() -> JSON | None:
        page = await api.json("GET", "/v1/shipments", coordinator, params={"need_id": need["id"], "limit": 100})
        return next((s for s in page["items"] if s.get("claim_id") == claim["id"]), None)

    shipment = await wait_for(lambda: "the partner's shipment of the claim", planned, wait_seconds)
    site = api.auth(Role.frontline, need["org"])
    sid = shipment["id"]
    for status in ("picked_up", "in_transit", "delivered"):
        await api.call("POST", f"/v1/shipments/{sid}/status", partner, key=f"claim-{status}", json={"status": status})
    pin = (await api.json("GET", f"/v1/shipments/{sid}", site))["handover_pin"]
    lines = [{"line_id": x["id"], "quantity_received": x["quantity"]} for x in shipment["lines"]]
    await api.call("POST", f"/v1/shipments/{sid}/receipt", site, key="claim-receipt", json={"pin": pin, "lines": lines})
    feedback: JSON = {"rating": 5, "comment": "志愿者车队准时送达"}
    await api.call("POST", f"/v1/shipments/{sid}/feedback", site, key="claim-feedback", json=feedback, allow=(409,))

    async def fulfilled() -> JSON | None:
        got = await api.json("GET", f"/v1/claims/{claim['id']}", coordinator)
        return got if got["status"] == "fulfilled" else None

    await wait_for(lambda: "the claim to be fulfilled by its receipt", fulfilled, wait_seconds)
    summary.claims_fulfilled += 1
    summary.claimed_quantity += int(body["lines"][0]["quantity"])
