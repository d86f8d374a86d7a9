"""The one port: route table, merged OpenAPI, docs and health."""

from __future__ import annotations

import httpx

from reliefhub.gateway import Gateway
from reliefhub.registry import route_table, service_of, services, sub_resource_table

# Every path docs/api.md names for the needs and supply services (issue: the merged document must list them).
NEEDS_AND_SUPPLY_PATHS = {
    "/v1/items": {"get"},
    "/v1/sites": {"get", "post"},
    "/v1/sites/{site_id}": {"get", "patch"},
    "/v1/needs": {"get", "post"},
    "/v1/needs/{need_id}": {"get", "patch"},
    "/v1/needs/{need_id}/verify": {"post"},
    "/v1/needs/{need_id}/close": {"post"},
    "/v1/needs/imports": {"post"},
    "/v1/donors": {"post"},
    "/v1/donors/{donor_id}": {"get"},
    "/v1/offers": {"get", "post"},
    "/v1/offers/{offer_id}": {"get", "patch"},
    "/v1/offers/{offer_id}/withdraw": {"post"},
    "/v1/offers/{offer_id}/verification": {"post"},
    "/v1/lots/{lot_id}/reservations": {"post"},
    "/v1/reservations/{reservation_id}": {"delete"},
}


def test_route_table_sends_each_collection_to_its_owner() -> None:
    table = route_table()
    assert table["needs"] == "needs" and table["sites"] == "needs" and table["items"] == "needs"
    assert table["offers"] == "supply" and table["lots"] == "supply" and table["reservations"] == "supply"
    assert table["event-types"] == "webhooks"
    assert set(table.values()) == set(services())


def test_a_sub_resource_goes_to_the_service_that_serves_it_and_the_rest_of_its_collection_to_the_owner() -> None:
    # A donor's statement is read off logistics' books; the donor itself is supply's.
    assert sub_resource_table() == {("donors", "statement"): "logistics"}
    assert service_of("/v1/donors/d1/statement") == service_of("/v1/donors/d1/statement.html") == "logistics"
    assert service_of("/v1/donors/d1") == service_of("/v1/donors") == service_of("/v1/donors/d1/x") == "supply"
    assert service_of("/v1/donors/d1/statements") == "supply"
    assert service_of("/v1/public/accounts") == "logistics" and service_of("/v2/donors/d1/statement") is None
    assert service_of("/healthz") is None


async def test_merged_openapi_lists_the_needs_and_supply_contract(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path, methods in NEEDS_AND_SUPPLY_PATHS.items():
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, set(doc["paths"][path]))
    need = doc["components"]["schemas"]["Need"]["properties"]
    for field in (
        "site_id",
        "title",
        "urgency",
        "needed_by",
        "beneficiaries",
        "lines",
        "status",
        "verification",
        "duplicate_of",
    ):
        assert field in need, field
    line = doc["components"]["schemas"]["NeedLine"]["properties"]
    assert {"item_code", "quantity", "unit", "notes", "quantity_matched", "quantity_delivered"} <= set(line)
    lot = doc["components"]["schemas"]["Lot"]["properties"]
    assert {"quantity_reserved", "quantity_shipped", "verification"} <= set(lot)
    # Every operation that takes a token documents its problem+json 401; a public one documents none.
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if op["security"] == []:
                assert "401" not in op["responses"], (method, path)
                continue
            assert "401" in op["responses"], (method, path)
            assert "application/problem+json" in op["responses"]["401"]["content"], (method, path)


async def test_docs_health_and_unknown_paths(client: httpx.AsyncClient, gateway: Gateway) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and "/openapi.json" in docs.text
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["services"]) == set(gateway.apps)
    assert (await client.get("/healthz")).json()["status"] == "ok"
    missing = await client.get("/v1/no-such-collection")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    metrics = await client.get("/metrics")
    assert "reliefhub_http_request_seconds" in metrics.text
