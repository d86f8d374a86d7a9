import json
from tests.logistics.scenario import ship_a_gift

async def test_smoke(client, auth, workers):
    gift = await ship_a_gift(client, auth)
    print(json.dumps(gift.shipment, indent=1, ensure_ascii=False))
    r = await client.get(f"/v1/track/{gift.tracking_code}")
    print(r.status_code, r.text[:3000])
