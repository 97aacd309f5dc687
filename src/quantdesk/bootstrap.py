"""First-start work shared by the CLI and tests: schema, demo users, demo market data."""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import anyio

from quantdesk.auth import users
from quantdesk.auth.roles import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability.audit import Actor
from quantdesk.settings import Settings

if TYPE_CHECKING:  # the market modules pull in pandas and friends: imported when used
    from quantdesk.market.demo import DemoHistory, HistoryProgress
    from quantdesk.market.store import BarStore


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        who = "unknown"
    return Actor(None, f"cli:{who}"[:64], None, None)


@dataclass(frozen=True)
class DemoCredential:
    username: str
    password: str
    role: Role
    generated: bool


async def ensure_demo_users(settings: Settings) -> list[DemoCredential]:
    """Create a demo admin and trader when the installation has no user at all.

    Passwords come from QUANTDESK_DEMO_ADMIN_PASSWORD / QUANTDESK_DEMO_TRADER_PASSWORD, or are
    generated. Returns what was created (empty when users already existed), so the caller can
    show generated passwords exactly once: they are stored only as bcrypt hashes.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            if await users.count_users(db) > 0:
                return []
            created = []
            trader_id = None
            for name, role, given in (
                ("admin", Role.ADMIN, settings.demo_admin_password),
                ("trader", Role.TRADER, settings.demo_trader_password),
            ):
                password = given.get_secret_value() if given else _generate_password()
                user = await users.create_user(
                    db,
                    cli_actor(),
                    username=name,
                    password=password,
                    role=role,
                    bcrypt_rounds=settings.bcrypt_rounds,
                )
                if role is Role.TRADER:
                    trader_id = user.id
                created.append(DemoCredential(name, password, role, given is None))
            if trader_id is not None:
                # Paper cash, so the demo trader can place an order and run a strategy at once.
                from quantdesk.wallet import service as wallet_service

                await wallet_service.deposit(
                    db, cli_actor(), trader_id, DEMO_CASH, note="demo paper cash"
                )
            return created
    finally:
        await engine.dispose()


DEMO_CASH = "1000000"
"""Paper cash deposited for the demo trader on the first start (INR 10,00,000)."""


def _generate_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class DemoData:
    """What :func:`ensure_demo_data` did: ``history`` is None when it left the store alone
    (``existing_symbols`` then says how many symbols already had bars)."""

    instruments_added: int
    existing_symbols: int
    history: DemoHistory | None


def bar_store(settings: Settings) -> BarStore:
    """The installation's Parquet bar store."""
    from quantdesk.market.store import BarStore

    return BarStore(settings.data_dir / "bars")


async def ensure_demo_data(
    settings: Settings,
    *,
    sessions: int | None = None,
    daily_sessions: int | None = None,
    seed: int | None = None,
    force: bool = False,
    today: date | None = None,
    progress: HistoryProgress | None = None,
) -> DemoData:
    """Give an installation without any stored bars the demo universe and its synthetic
    history (see :mod:`quantdesk.market.demo`); an installation with bars is left alone.

    ``force`` seeds even when bars exist: the demo symbols' stored bars are deleted first (so
    no bars of an earlier seed remain), other symbols are untouched. ``today`` defaults to the
    exchange-local date now; the history ends at the last session before it. Unset sizes and
    seed take the defaults of :mod:`quantdesk.market.demo`.
    """
    from quantdesk.market import demo
    from quantdesk.market.calendars import exchange_of, get_calendar
    from quantdesk.market.instruments import seed_demo_universe

    store = bar_store(settings)
    existing = store.symbols()
    if existing and not force:
        return DemoData(0, len(existing), None)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            added = (await seed_demo_universe(db, cli_actor())).inserted
            universe = await demo.load_demo_instruments(db)
    finally:
        await engine.dispose()
    if today is None:
        calendar = get_calendar(exchange_of(universe[0].symbol))
        today = calendar.local_date(datetime.now(UTC))

    def work() -> DemoHistory:
        for inst in universe if force else ():
            store.delete(inst.symbol)
        return demo.seed_history(
            store,
            universe,
            sessions=demo.DEFAULT_SESSIONS if sessions is None else sessions,
            daily_sessions=demo.DEFAULT_DAILY_SESSIONS
            if daily_sessions is None
            else daily_sessions,
            seed=demo.DEFAULT_SEED if seed is None else seed,
            today=today,
            progress=progress,
        )

    history = await anyio.to_thread.run_sync(work)
    return DemoData(added, len(existing), history)


DEMO_BACKTEST_SYMBOL = "NSE:INFY"


async def queue_demo_backtest(settings: Settings) -> str | None:
    """Queue one ``sma_cross`` backtest for the demo trader over the demo daily history, so the
    Backtests page has a report on the first start (the server's job runner runs it). Returns
    the run id; None when there is no demo trader or no daily bars to test."""
    from sqlalchemy import select

    from quantdesk.auth.models import User
    from quantdesk.backtest.runner import BacktestRequest
    from quantdesk.backtest.service import create_run

    coverage = bar_store(settings).coverage(DEMO_BACKTEST_SYMBOL).get("1d")
    if coverage is None:
        return None
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            trader = (
                await db.execute(select(User).where(User.username == "trader"))
            ).scalar_one_or_none()
            if trader is None:
                return None
            request = BacktestRequest(
                strategy="sma_cross",
                symbols=[DEMO_BACKTEST_SYMBOL],
                interval="1d",
                start=coverage.first.date(),
                end=coverage.last.date(),
                params={"fast": 10, "slow": 50},
                cash=DEMO_CASH,
                costs=_demo_costs(coverage.first.date()),
            )
            row = await create_run(db, trader.id, request, cli_actor())
            return row.id
    finally:
        await engine.dispose()


def _demo_costs(first: date) -> str:
    """Indian charges when the shipped schedule covers the history, else 3 bps."""
    from quantdesk.core.charges import ChargesError, default_calculator

    calc = default_calculator()
    try:
        calc.schedule.rates_on(first)
        calc.tariff.rates_on(first)
    except ChargesError:
        return "bps:3"
    return "india"
