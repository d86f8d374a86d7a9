"""Reading Prometheus samples as a scraper does: from `GET /metrics`, in the text exposition format."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def sample(client: httpx.AsyncClient, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with these labels, or None when /metrics shows none."""
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None
