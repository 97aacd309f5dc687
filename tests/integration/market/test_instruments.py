"""The instruments master on SQLite and PostgreSQL: Kite CSV import (upsert, skipped derivatives,
bad rows rejected with row numbers and nothing written), search ranking, the HTTP API and the
command line, and the shipped demo universe."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from quantdesk.cli import app as cli_app
from quantdesk.core.instruments import InstrumentRef, is_valid_isin
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.errors import NotFound
from quantdesk.market import instruments
from quantdesk.market.models import Instrument
from quantdesk.observability.audit import Actor, AuditLog
from quantdesk.settings import Settings
from tests.conftest import JWT_SECRET, AuthedUser

HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange"
)
# Rows as Kite's GET /instruments publishes them; {ex} is replaced by a per-test exchange (the
# database is shared by the whole run) and tokens are offset per test for the same reason.
KITE_ROWS = [
    "408065,1594,INFY,INFOSYS,0,,0,0.1,1,EQ,NSE,{ex}",
    "738561,2885,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.1,1,EQ,NSE,{ex}",
    "779521,3045,SBIN,STATE BANK OF INDIA,872.45,,0,0.05,1,EQ,NSE,{ex}",
    "519937,2031,M&M,MAHINDRA & MAHINDRA,0,,0,0.1,1,EQ,NSE,{ex}",
    "4267265,16669,BAJAJ-AUTO,BAJAJ AUTO,0,,0,0.5,1,EQ,NSE,{ex}",
    "256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,{ex}",
    "260105,1016,NIFTY BANK,NIFTY BANK,0,,0,0,0,EQ,INDICES,{ex}",
    "13874690,54198,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.1,75,FUT,NFO-FUT,NFO",
    "16035586,62639,INFY26DEC1500CE,INFY,0,2026-12-29,1500,0.05,400,CE,NFO-OPT,NFO",
    "16035842,62640,INFY26DEC1500PE,INFY,0,2026-12-29,1500,0.05,400,PE,NFO-OPT,NFO",
]
NSE_TICKS = [  # NSE equity tick sizes by price since 2025-04-15: (upper price bound, tick)
    (Decimal(250), Decimal("0.01")),
    (Decimal(1000), Decimal("0.05")),
    (Decimal(5000), Decimal("0.10")),
    (Decimal(10000), Decimal("0.50")),
    (Decimal(20000), Decimal("1.00")),
]
ACTOR = Actor(None, "test", None, None)


def kite_csv(ex: str, rows: list[str] | None = None, token_offset: int = 0) -> str:
    out = [HEADER]
    for row in KITE_ROWS if rows is None else rows:
        cells = next(csv.reader([row.format(ex=ex)]))
        if token_offset and cells[0].isdigit():
            cells[0] = str(int(cells[0]) + token_offset)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(cells)
        out.append(buf.getvalue())
    return "\n".join(out) + "\n"


@pytest.fixture
def ex() -> str:
    """An exchange code of this test's own, so tests never see each other's rows."""
    return "T" + secrets.token_hex(4).upper()


@pytest.fixture
def offset() -> int:
    return secrets.randbelow(10**9) * 100


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def count(db: AsyncSession, ex: str) -> int:
    stmt = select(func.count()).select_from(Instrument).where(Instrument.exchange == ex)
    return (await db.execute(stmt)).scalar_one()


# --- import -----------------------------------------------------------------------------------


async def test_kite_import_stores_equities_and_indices_and_counts_skipped_derivatives(
    db: AsyncSession, ex: str, offset: int
) -> None:
    report = await instruments.import_kite_csv(db, kite_csv(ex, token_offset=offset).encode())

    assert report.accepted, report.summary()
    assert (report.rows_read, report.inserted, report.updated) == (10, 7, 0)
    assert report.skipped == {"FUT": 1, "CE": 1, "PE": 1}
    assert await count(db, ex) == 7

    sbin = await instruments.get(db, f"{ex}:SBIN")
    assert sbin.tick_size == Decimal("0.05") and isinstance(sbin.tick_size, Decimal)
    assert sbin.last_price == Decimal("872.45")
    assert sbin.price_band_pct == Decimal(20)  # the default for a new equity
    assert (sbin.kite_instrument_token, sbin.kite_exchange_token) == (779521 + offset, 3045)
    assert (sbin.currency, sbin.instrument_type, sbin.is_active) == ("INR", "EQ", True)

    infy = await instruments.get(db, InstrumentRef(ex, "INFY"))
    assert infy.last_price is None  # Kite's 0 means "no price"
    assert infy.spec().is_on_tick(Decimal("1441.80"))
    assert not infy.spec().is_on_tick(Decimal("1441.85"))

    nifty = await instruments.get(db, f"{ex.lower()}:nifty 50")
    assert (nifty.instrument_type, nifty.segment) == ("INDEX", "INDICES")
    assert (nifty.tick_size, nifty.lot_size, nifty.price_band_pct) == (Decimal("0.01"), 1, None)
    assert (await instruments.get(db, f"{ex}:M&M")).name == "MAHINDRA & MAHINDRA"


async def test_reimport_updates_changed_rows_and_keeps_what_the_file_lacks(
    db: AsyncSession, ex: str, offset: int
) -> None:
    await instruments.import_kite_csv(db, kite_csv(ex, token_offset=offset).encode())
    infy = await instruments.get(db, f"{ex}:INFY")
    infy.isin, infy.price_band_pct, infy.last_price = (
        "INE009A01021",
        Decimal(10),
        Decimal("1441.80"),
    )
    await db.commit()
    first_id = infy.id

    again = await instruments.import_kite_csv(db, kite_csv(ex, token_offset=offset).encode())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 7)

    changed = [
        r.replace("0,,0,0.1,1,EQ", "0,,0,0.05,1,EQ") if "INFY" in r else r for r in KITE_ROWS
    ]
    changed.append("1270529,4963,ICICIBANK,ICICI BANK,0,,0,0.1,1,EQ,NSE,{ex}")
    report = await instruments.import_kite_csv(db, kite_csv(ex, changed, offset).encode())
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 6)

    db.expire_all()
    infy = await instruments.get(db, f"{ex}:INFY")
    assert infy.id == first_id
    assert infy.tick_size == Decimal("0.05")
    # Kite's file carries no ISIN or band, and last_price 0 means "not given": all kept.
    assert (infy.isin, infy.price_band_pct, infy.last_price) == (
        "INE009A01021",
        Decimal(10),
        Decimal("1441.80"),
    )
    assert await count(db, ex) == 8


async def test_bad_rows_reject_the_file_with_row_numbers_and_write_nothing(
    db: AsyncSession, ex: str, offset: int
) -> None:
    rows = [
        "408065,1594,INFY,INFOSYS,0,,0,0.1,1,EQ,NSE,{ex}",  # row 1: fine
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,0,,0,abc,1,EQ,NSE,{ex}",  # 2: tick not a number
        "779521,3045,SBIN,STATE BANK OF INDIA,0,,0,0.05,0,EQ,NSE,{ex}",  # 3: lot 0
        "519937,2031,M/M,MAHINDRA,0,,0,0.1,1,EQ,NSE,{ex}",  # 4: bad symbol
        "13874690,54198,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.1,75,FUT,NFO-FUT,NFO",  # 5: skipped
        "408066,1595,INFY,INFOSYS AGAIN,0,,0,0.1,1,EQ,NSE,{ex}",  # 6: duplicate of row 1
        "779522,3046,SBIN2,SBI,-5,,0,0,1,EQ,NSE,{ex}",  # 7: negative price and zero tick
    ]
    report = await instruments.import_kite_csv(db, kite_csv(ex, rows, offset).encode())

    assert not report.accepted
    assert report.inserted == report.updated == 0
    assert await count(db, ex) == 0
    by_row = {(i.row, i.column): i for i in report.issues}
    assert by_row[(2, "tick_size")].code == "NOT_A_NUMBER"
    assert by_row[(3, "lot_size")].code == "BAD_RULE"
    assert by_row[(4, "tradingsymbol")].code == "BAD_SYMBOL"
    assert by_row[(6, "tradingsymbol")].code == "DUPLICATE"
    assert "row 1" in by_row[(6, "tradingsymbol")].message
    assert {c for r, c in by_row if r == 7} == {"last_price", "tick_size"}
    assert by_row[(2, "tick_size")].line == 3  # the header is line 1
    assert report.bad_rows == 5
    assert report.skipped == {"FUT": 1}
    assert "REJECTED" in report.summary()


async def test_drop_bad_writes_the_good_rows_and_still_reports_the_bad(
    db: AsyncSession, ex: str, offset: int
) -> None:
    rows = [KITE_ROWS[0], "738561,2885,RELIANCE,RELIANCE,0,,0,0.1,x,EQ,NSE,{ex}"]
    report = await instruments.import_kite_csv(
        db, kite_csv(ex, rows, offset).encode(), drop_bad=True
    )
    assert report.accepted and report.inserted == 1 and report.bad_rows == 1
    assert report.issues[0].row == 2
    assert await count(db, ex) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"tradingsymbol,exchange\nINFY,NSE\n",
        b"\xff\xfe not utf-8",
    ],
)
async def test_a_file_that_is_not_a_kite_instruments_file_is_rejected(
    db: AsyncSession, body: bytes
) -> None:
    report = await instruments.import_kite_csv(db, body, drop_bad=True)
    assert not report.accepted
    assert report.issues[0].row is None
    assert report.issues[0].code in {"MISSING_COLUMNS", "UNREADABLE_FILE"}


async def test_a_token_moves_with_a_renamed_symbol(db: AsyncSession, ex: str, offset: int) -> None:
    old = ["3465729,13538,TATAMOTORS,TATA MOTORS,0,,0,0.05,1,EQ,NSE,{ex}"]
    await instruments.import_kite_csv(db, kite_csv(ex, old, offset).encode())
    new = ["3465729,13538,TMPV,TATA MOTORS PASSENGER VEHICLES,0,,0,0.05,1,EQ,NSE,{ex}"]
    report = await instruments.import_kite_csv(db, kite_csv(ex, new, offset).encode())
    assert report.inserted == 1
    db.expire_all()
    assert (await instruments.get(db, f"{ex}:TMPV")).kite_instrument_token == 3465729 + offset
    assert (await instruments.get(db, f"{ex}:TATAMOTORS")).kite_instrument_token is None


async def test_an_import_with_an_actor_is_audited(db: AsyncSession, ex: str, offset: int) -> None:
    await instruments.import_kite_csv(
        db, kite_csv(ex, KITE_ROWS[:2], offset).encode(), actor=ACTOR, filename=f"{ex}.csv"
    )
    row = (await db.execute(select(AuditLog).where(AuditLog.target_id == f"{ex}.csv"))).scalar_one()
    assert row.action == "instruments.import"
    assert row.changes is not None and row.changes["inserted"] == 2


# --- queries ----------------------------------------------------------------------------------


async def test_search_ranks_exact_symbol_then_prefix_then_name(
    db: AsyncSession, ex: str, offset: int
) -> None:
    rows = [
        "1,1,BANKBARODA,BANK OF BARODA,0,,0,0.05,1,EQ,NSE,{ex}",
        "2,2,BANK,BANK TEST LTD,0,,0,0.05,1,EQ,NSE,{ex}",
        "3,3,AUBANK,AU SMALL FINANCE BANK,0,,0,0.05,1,EQ,NSE,{ex}",
        "4,4,BANKINDIA,BANK OF INDIA,0,,0,0.05,1,EQ,NSE,{ex}",
        "5,5,INFY,INFOSYS,0,,0,0.1,1,EQ,NSE,{ex}",
        "6,6,A_B,UNDERSCORE CO,0,,0,0.1,1,EQ,NSE,{ex}",
        "7,7,AXB,NOT UNDERSCORE,0,,0,0.1,1,EQ,NSE,{ex}",
    ]
    assert (await instruments.import_kite_csv(db, kite_csv(ex, rows, offset).encode())).accepted

    found = [i.symbol for i in await instruments.search(db, "bank", 10, exchange=ex)]
    assert found == ["BANK", "BANKBARODA", "BANKINDIA", "AUBANK"]
    assert [i.symbol for i in await instruments.search(db, "Infos", 10, exchange=ex)] == ["INFY"]
    assert [i.symbol for i in await instruments.search(db, f"{ex}:inf", 10)] == ["INFY"]
    assert len(await instruments.search(db, "bank", 2, exchange=ex)) == 2
    # LIKE wildcards in the query are literal characters.
    assert [i.symbol for i in await instruments.search(db, "A_", 10, exchange=ex)] == ["A_B"]
    assert await instruments.search(db, "%", 10, exchange=ex) == []
    assert len(await instruments.search(db, "", 50, exchange=ex)) == 7


async def test_get_unknown_instrument_raises_not_found(db: AsyncSession) -> None:
    with pytest.raises(NotFound) as info:
        await instruments.get(db, "NSE:NO_SUCH_THING")
    assert info.value.code == "INSTRUMENT_NOT_FOUND"


async def test_demo_universe_seeds_once_with_real_isins(db: AsyncSession) -> None:
    first = await instruments.seed_demo_universe(db)
    assert first.inserted + first.existing == 52
    again = await instruments.seed_demo_universe(db)
    assert (again.inserted, again.existing) == (0, 52)

    universe = await instruments.search(db, "", 100, exchange="NSE")
    by_symbol = {i.symbol: i for i in universe}
    equities = [i for i in by_symbol.values() if i.instrument_type == "EQ"]
    assert len(equities) == 50
    assert {"NIFTY 50", "NIFTY BANK"} <= {
        s for s, i in by_symbol.items() if i.instrument_type == "INDEX"
    }
    isins = [i.isin for i in equities]
    assert all(isin is not None and is_valid_isin(isin) for isin in isins)
    assert len(set(isins)) == 50
    # ISINs that changed with recent splits are the current ones.
    assert by_symbol["KOTAKBANK"].isin == "INE237A01036"
    assert by_symbol["BAJFINANCE"].isin == "INE296A01032"
    assert by_symbol["SHRIRAMFIN"].isin == "INE721A01047"
    assert by_symbol["RELIANCE"].isin == "INE002A01018"
    for inst in equities:
        assert inst.last_price is not None and inst.spec().is_on_tick(inst.last_price)
        expected = next((t for bound, t in NSE_TICKS if inst.last_price <= bound), Decimal(5))
        assert inst.tick_size == expected, inst.symbol
        assert (inst.lot_size, inst.currency, inst.price_band_pct) == (1, "INR", Decimal(10))


# --- HTTP -------------------------------------------------------------------------------------


async def test_viewer_searches_and_reads_with_decimals_as_strings(
    client: httpx.AsyncClient, viewer: AuthedUser, db: AsyncSession
) -> None:
    await instruments.seed_demo_universe(db)
    r = await client.get("/api/v1/instruments", params={"q": "INFY"}, headers=viewer.headers)
    assert r.status_code == 200, r.text
    first = r.json()["items"][0]
    assert first["ref"] == "NSE:INFY"
    assert (first["tick_size"], first["last_price"], first["price_band_pct"]) == (
        "0.1",
        "1441.80",
        "10",
    )
    assert first["isin"] == "INE009A01021"

    r = await client.get("/api/v1/instruments/NSE:M&M", headers=viewer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Mahindra & Mahindra Ltd."
    r = await client.get("/api/v1/instruments/nse:nifty%2050", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["instrument_type"] == "INDEX"
    assert r.json()["isin"] is None and r.json()["price_band_pct"] is None

    r = await client.get(
        "/api/v1/instruments", params={"q": "nifty", "exchange": "nse"}, headers=viewer.headers
    )
    assert [i["symbol"] for i in r.json()["items"]] == ["NIFTY 50", "NIFTY BANK"]


async def test_unknown_instrument_is_a_404_envelope_and_a_bad_ref_a_422(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.get("/api/v1/instruments/NSE:NOSUCH", headers=trader.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "INSTRUMENT_NOT_FOUND"
    assert r.json()["error"]["details"] == {"ref": "NSE:NOSUCH"}
    r = await client.get("/api/v1/instruments/INFY", headers=trader.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    r = await client.get(f"/api/v1/instruments/NSE:{'A' * 60}", headers=trader.headers)
    assert r.status_code == 404
    r = await client.get("/api/v1/instruments", params={"limit": 0}, headers=trader.headers)
    assert r.status_code == 422


async def test_anonymous_requests_get_401(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/instruments", "/api/v1/instruments/NSE:INFY"):
        r = await client.get(path)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "AUTH_MISSING_TOKEN"


async def test_admin_imports_over_http_and_a_bad_file_is_a_422_with_the_report(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, ex: str, offset: int
) -> None:
    url = "/api/v1/admin/instruments/import"
    csv_headers = {**admin.headers, "Content-Type": "text/csv"}
    body = kite_csv(ex, token_offset=offset)

    r = await client.post(url, content=body, headers={**trader.headers, "Content-Type": "text/csv"})
    assert r.status_code == 403

    r = await client.post(url, content=body, headers=csv_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["inserted"], r.json()["skipped"]) == (7, {"CE": 1, "FUT": 1, "PE": 1})

    bad = body.replace("0,,0,0.1,1,EQ,NSE", "0,,0,0.1,zero,EQ,NSE", 1)
    r = await client.post(url, content=bad, headers=csv_headers)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "INSTRUMENTS_IMPORT_REJECTED"
    assert error["details"]["issues"][0]["row"] == 1
    assert error["details"]["issues"][0]["column"] == "lot_size"

    r = await client.post(url, json={"csv": body}, headers=admin.headers)
    assert r.status_code == 415

    r = await client.get(
        "/api/v1/admin/audit", params={"action": "instruments.import"}, headers=admin.headers
    )
    assert any(item["actor_id"] == admin.id for item in r.json()["items"])


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key, value in {
        "QUANTDESK_DATABASE_URL": db_url,
        "QUANTDESK_JWT_SECRET": JWT_SECRET,
        "QUANTDESK_DATA_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(key, value)
    return CliRunner()


def test_cli_imports_searches_and_rejects_a_bad_file(
    cli_env: CliRunner, tmp_path: Path, ex: str, offset: int
) -> None:
    good = tmp_path / "instruments.csv"
    good.write_text(kite_csv(ex, token_offset=offset))
    result = cli_env.invoke(cli_app, ["instruments", "import", str(good), "--format", "kite"])
    assert result.exit_code == 0, result.output
    assert "7 inserted" in " ".join(result.output.split())  # rich may wrap the line

    result = cli_env.invoke(cli_app, ["instruments", "search", "SBI", "--exchange", ex])
    assert result.exit_code == 0, result.output
    assert f"{ex}:SBIN" in result.output and "872.45" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text(kite_csv(f"{ex}X", ["1,1,INFY,INFOSYS,0,,0,0.1,-1,EQ,NSE,{ex}"], offset))
    result = cli_env.invoke(cli_app, ["instruments", "import", str(bad)])
    assert result.exit_code == 1
    assert "REJECTED" in result.stderr and "lot_size" in result.stderr


def test_cli_seed_demo_is_idempotent(cli_env: CliRunner) -> None:
    cli_env.invoke(cli_app, ["instruments", "seed-demo"])
    result = cli_env.invoke(cli_app, ["instruments", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert "0 instruments added, 52 already present" in result.output
