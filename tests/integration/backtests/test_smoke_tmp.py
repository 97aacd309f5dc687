import httpx

from tests.conftest import AuthedUser
from tests.integration.backtests.conftest import BACKTESTS, queue, wait_for


async def test_smoke(client: httpx.AsyncClient, trader: AuthedUser, backend: str) -> None:
    run = await queue(client, trader)
    print(run)
    done = await wait_for(client, trader, run["id"])
    print(done)
    assert done["status"] == "succeeded"
    r = await client.get(f"{BACKTESTS}/{run['id']}/trades", headers=trader.headers)
    print(r.status_code, r.text[:500])
    r = await client.get(f"{BACKTESTS}/{run['id']}/equity?max_points=5", headers=trader.headers)
    print(r.status_code, r.text[:1500])
