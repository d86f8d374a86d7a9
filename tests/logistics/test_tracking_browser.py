"""The public tracking page in a real headless Chromium, served by uvicorn on a loopback port: the donor's page
renders the whole journey of a gift, from the offer to the site's receipt, in Chinese throughout, and breaks none
of its own Content-Security-Policy (Chromium reports each violation on its console, which it logs to stderr)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx
import pytest

from reliefhub.gateway import Gateway
from tests.helpers.auth import TokenFactory
from tests.helpers.browser import CSP_VIOLATION, chromium_path, dump_dom, serving
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.scenario import ship_a_gift


@pytest.fixture
def chromium() -> str:
    return chromium_path()


async def test_tracking_page_renders_in_headless_chromium(
    chromium: str, gateway: Gateway, client: httpx.AsyncClient, auth: TokenFactory, workers: None, tmp_path: Path
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up")
    for location in ("浦东新区物资分拨中心", "川沙新镇街道"):
        body = {"status": "in_transit", "location": location, "note": f"已到达{location}"}
        assert (await client.post(f"/v1/shipments/{sid}/status", headers=gift.carrier, json=body)).status_code == 200
    await advance(client, gift.carrier, sid, "delivered")
    shipment = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()
    receipt = await client.post(
        f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json=full_receipt(shipment, shipment["handover_pin"])
    )
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["status"] == "received"

    async with serving(gateway) as base:
        url = f"{base}/v1/track/{gift.tracking_code}"
        # The real server answers browsers with the page, like the in-process client does.
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        # The page follows the browser's Accept-Language; ask for Chinese whatever the machine's locale is.
        dom, log = await dump_dom(chromium, f"{url}?lang=zh", tmp_path / "profile")
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert CSP_VIOLATION not in log, log[-3000:]
    # The same Chromium does report a page that breaks its policy, so the silence above means something.
    breaking = "<meta http-equiv='Content-Security-Policy' content=\"style-src 'none'\"><style>p{}</style><p>x"
    _, control = await dump_dom(chromium, "data:text/html," + urllib.parse.quote(breaking), tmp_path / "control")
    assert CSP_VIOLATION in control, control[-3000:]

    assert 'id="timeline"' in dom and '<html lang="zh-CN">' in dom, dom[:2000]
    for kind in ("offered", "allocated", "planned", "picked_up", "in_transit", "delivered", "received"):
        assert f'data-kind="{kind}"' in dom, f"{kind} step missing: {dom[:3000]}"
    assert dom.count('data-kind="allocated"') == 2
    assert "浦东临时安置点" in dom and "受助方确认收货" in dom and "大米" in dom
    # The Chinese page as the browser shows it: units, statuses and site kinds in Chinese, the carrier's two hops
    # told apart by where it was, times in Beijing time with the zone named.
    assert "大米 × 100 千克" in dom and "× 240 箱" in dom and "状态：进行中" in dom and "（安置点，" in dom
    assert dom.count('data-kind="in_transit"') == 2
    assert "位置：浦东新区物资分拨中心" in dom and "备注：已到达川沙新镇街道" in dom
    assert "中国标准时间 (Asia/Shanghai)" in dom and dom.count("中国标准时间</time>") == dom.count("<time ")
    for english in (" kg", "carton", "shelter", "open", "UTC"):
        assert english not in dom.split("<body>", 1)[1], english
    for secret in ("张三", "13800000000", "121.54"):
        assert secret not in dom
