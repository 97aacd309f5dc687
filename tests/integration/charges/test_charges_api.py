"""GET /api/v1/charges/estimate: the reference's worked examples through HTTP, every bad input
a 422 envelope with a CHARGES_* code, and no access without a token (both database backends)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import AuthedUser

URL = "/api/v1/charges/estimate"
EXAMPLE_1 = {
    "segment": "equity_intraday",
    "exchange": "NSE",
    "buy": "1000.00",
    "sell": "1100.00",
    "quantity": "100",
    "date": "2025-06-02",
}


async def test_worked_example_1_through_the_api_for_a_viewer(
    client: httpx.AsyncClient, viewer: AuthedUser
) -> None:
    r = await client.get(URL, params=EXAMPLE_1, headers=viewer.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "segment": "equity_intraday",
        "exchange": "NSE",
        "trade_date": "2025-06-02",
        "broker": "zerodha",
        "schedule_from": "2024-10-01",
        "quantity": 100,
        "buy_price": "1000.00",
        "sell_price": "1100.00",
        "buy_turnover": "100000.00",
        "sell_turnover": "110000.00",
        "turnover": "210000.00",
        "brokerage": "40.00",
        "stt": "28.00",
        "exchange_charge": "6.45",
        "sebi_fee": "0.21",
        "stamp_duty": "3.00",
        "gst": "8.40",
        "dp_charge": "0.00",
        "total": "86.06",
        "gross_pnl": "10000.00",
        "net_pnl": "9913.94",
        "breakeven_points": "0.86",
    }


async def test_worked_examples_2_and_3_for_a_trader(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    delivery = {**EXAMPLE_1, "segment": "equity_delivery"}
    r = await client.get(URL, params=delivery, headers=trader.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stt"], body["stamp_duty"], body["gst"], body["dp_charge"]) == (
        "210.00",
        "15.00",
        "1.20",
        "15.34",
    )
    assert (body["total"], body["net_pnl"], body["breakeven_points"]) == (
        "248.20",
        "9751.80",
        "2.48",
    )
    bse = {**EXAMPLE_1, "exchange": "BSE", "buy": "250.35", "sell": "248.10", "quantity": "500"}
    body = (await client.get(URL, params=bse, headers=trader.headers)).json()
    assert (body["total"], body["gross_pnl"], body["net_pnl"], body["breakeven_points"]) == (
        "93.53",
        "-1125.00",
        "-1218.53",
        "0.19",
    )


async def test_the_date_defaults_to_today_in_india(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    params = {k: v for k, v in EXAMPLE_1.items() if k != "date"}
    before = datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat()
    r = await client.get(URL, params=params, headers=trader.headers)
    after = datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat()
    assert r.status_code == 200, r.text
    assert r.json()["trade_date"] in {before, after}


# (changed parameters, expected code, the parameter named in details)
DOMAIN_ERRORS = [
    ({"quantity": "0"}, "CHARGES_BAD_QUANTITY", "quantity"),
    ({"quantity": "-5"}, "CHARGES_BAD_QUANTITY", "quantity"),
    ({"quantity": "1000000000000000000000000"}, "CHARGES_BAD_QUANTITY", "quantity"),
    ({"buy": "NaN"}, "CHARGES_BAD_PRICE", "buy"),
    ({"buy": "Infinity"}, "CHARGES_BAD_PRICE", "buy"),
    ({"buy": "-1000"}, "CHARGES_BAD_PRICE", "buy"),
    ({"buy": "1e3"}, "CHARGES_BAD_PRICE", "buy"),
    ({"buy": "abc"}, "CHARGES_BAD_PRICE", "buy"),
    ({"buy": "9" * 40}, "CHARGES_BAD_PRICE", "buy"),
    ({"sell": "0"}, "CHARGES_BAD_PRICE", "sell"),
    ({"sell": "1000000000.01"}, "CHARGES_BAD_PRICE", "sell"),
    ({"sell": "100.12345"}, "CHARGES_BAD_PRICE", "sell"),
    ({"date": "2024-09-30"}, "CHARGES_NO_SCHEDULE", "date"),
    ({"date": "0"}, "CHARGES_BAD_DATE", "date"),
    ({"date": "2025-02-30"}, "CHARGES_BAD_DATE", "date"),
]


async def test_bad_input_is_a_422_with_a_reason_code(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    # One test for the table: each case would otherwise pay for an app and a user.
    wrong = []
    for change, code, parameter in DOMAIN_ERRORS:
        r = await client.get(URL, params={**EXAMPLE_1, **change}, headers=trader.headers)
        got = (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"])
        if got != (422, code, {"parameter": parameter}) or not r.json()["error"]["message"]:
            wrong.append((change, r.text))
    assert not wrong


async def test_values_outside_the_schema_are_request_validation_errors(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    for change in ({"segment": "futures"}, {"exchange": "MCX"}, {"quantity": "ten"}):
        r = await client.get(URL, params={**EXAMPLE_1, **change}, headers=trader.headers)
        assert r.status_code == 422, (change, r.text)
        error = r.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["details"][0]["loc"] == ["query", next(iter(change))]


async def test_a_missing_parameter_is_refused(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    params = {k: v for k, v in EXAMPLE_1.items() if k != "sell"}
    r = await client.get(URL, params=params, headers=trader.headers)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["query", "sell"]


async def test_anonymous_requests_get_401(client: httpx.AsyncClient) -> None:
    r = await client.get(URL, params=EXAMPLE_1)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_MISSING_TOKEN"
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_the_schema_documents_the_endpoint_and_its_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    op = spec["paths"][URL]["get"]
    assert {"200", "401", "422"} <= set(op["responses"])
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"segment", "exchange", "buy", "sell", "quantity", "date"}
    assert params["buy"]["schema"]["type"] == "string"
    assert params["quantity"]["schema"]["minimum"] == 1
