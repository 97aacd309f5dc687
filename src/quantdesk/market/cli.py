"""``quantdesk data ...`` (ingest bar files, coverage, candles) and ``quantdesk demo seed``.

Heavy modules (pandas, pyarrow, DuckDB, exchange calendars) are imported inside the commands so
that ``quantdesk --help`` and unrelated commands start fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from quantdesk.core.instruments import InstrumentRef, InstrumentSpec, InvalidInstrumentRef

if TYPE_CHECKING:
    import pandas as pd

    from quantdesk.bootstrap import DemoData
    from quantdesk.market.calendars import ExchangeCalendar
    from quantdesk.market.ingest import IngestResult
    from quantdesk.market.store import SourceInterval
    from quantdesk.settings import Settings

data_app = typer.Typer(
    help="Market data: ingest bar files, see what is stored, read candles.", no_args_is_help=True
)
demo_app = typer.Typer(help="Demo data for trying the platform out.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

T = TypeVar("T")
StageProgress = Callable[[str, int, int], None]

DEFAULT_NEW_TICK = "0.05"
_CURRENCY = {"NSE": "INR", "BSE": "INR", "NYSE": "USD"}


class BarFormat(StrEnum):
    GENERIC = "generic"
    KITE = "kite"
    YAHOO = "yahoo"


class SourceChoice(StrEnum):
    AUTO = "auto"
    MINUTE = "1m"
    DAY = "1d"


_SOURCE: dict[SourceChoice, SourceInterval] = {SourceChoice.MINUTE: "1m", SourceChoice.DAY: "1d"}


class LabelChoice(StrEnum):
    AUTO = "auto"
    START = "start"
    END = "end"


# -- shared helpers ----------------------------------------------------------------------------


def _settings() -> Settings:
    from quantdesk.cli import _settings

    return _settings()


def _usage_error(message: str) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}")
    return typer.Exit(2)


def _parse_symbol(text: str) -> tuple[str, ExchangeCalendar]:
    """``EXCHANGE:SYMBOL`` normalised, and its exchange calendar; exit 2 if either is wrong."""
    from quantdesk.market.calendars import available_calendars, get_calendar

    try:
        ref = InstrumentRef.parse(text)
    except InvalidInstrumentRef as exc:
        raise _usage_error(f"bad symbol {text!r}: {exc}") from exc
    if ref.exchange not in available_calendars():
        known = ", ".join(available_calendars())
        raise _usage_error(f"no calendar for exchange {ref.exchange!r} (known: {known})")
    return str(ref), get_calendar(ref.exchange)


def _local(ts: datetime, calendar: ExchangeCalendar, *, daily: bool = False) -> str:
    return ts.astimezone(calendar.tz).strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


@contextmanager
def stage_progress(out: Console) -> Iterator[StageProgress]:
    """A rich progress display with one bar per stage, fed as ``progress(stage, done, total)``.
    In a terminal it disappears when done; elsewhere (logs) its final state is printed once."""
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=out.is_terminal,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def _database(work: Callable[[], T]) -> T:
    """Run database work; a missing schema or unreachable server is a usage error (exit 2)."""
    from sqlalchemy.exc import DBAPIError

    try:
        return work()
    except DBAPIError as exc:
        raise _usage_error(
            f"cannot use the database ({exc.orig}). Is it set up? Run `quantdesk db upgrade`."
        ) from exc


async def _find_instrument(settings: Settings, symbol: str) -> tuple[bool, list[str]]:
    """Whether the master has ``symbol``; if not, up to five instruments with similar names."""
    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.errors import NotFound
    from quantdesk.market import instruments

    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            try:
                await instruments.get(db, symbol)
            except NotFound:
                exchange, _, ticker = symbol.partition(":")
                similar = await instruments.search(db, ticker[:3], 5, exchange=exchange)
                return False, [str(i.ref) for i in similar]
            return True, []
    finally:
        await engine.dispose()


async def _create_instrument(settings: Settings, symbol: str, spec: InstrumentSpec) -> None:
    """Add a minimal equity row (name = symbol, no price band) for an ingested symbol."""
    from quantdesk.bootstrap import cli_actor
    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.market.instruments import ImportReport, InstrumentRow, upsert_rows
    from quantdesk.observability import audit

    ref = InstrumentRef.parse(symbol)
    row = InstrumentRow(ref, ref.symbol, ref.exchange, "EQ", spec)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            await upsert_rows(db, [row], ImportReport(), insert_only=True)
            audit.record(
                db,
                cli_actor(),
                "instruments.create",
                target_type="instrument",
                target_id=symbol,
                changes={"tick_size": str(spec.tick_size), "lot_size": 1, "via": "data ingest"},
            )
            await db.commit()
    finally:
        await engine.dispose()


def _new_spec(exchange: str, tick_text: str) -> InstrumentSpec:
    try:
        return InstrumentSpec(Decimal(tick_text), 1, None, _CURRENCY.get(exchange, "INR"))
    except (InvalidOperation, ValueError) as exc:
        raise _usage_error(f"bad --tick-size {tick_text!r}: {exc}") from exc


# -- data ingest -------------------------------------------------------------------------------


@data_app.command("ingest")
def ingest_command(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, help="A .csv/.parquet file, or a folder of them (read as one input)."
        ),
    ],
    symbol: Annotated[
        str,
        typer.Option(
            "--symbol",
            "-s",
            help="The instrument, EXCHANGE:SYMBOL (e.g. NSE:INFY).",
            show_default=False,
        ),
    ],
    file_format: Annotated[
        BarFormat,
        typer.Option(
            "--format",
            help="generic: timestamp/open/high/low/close/volume (or aliases); kite: Kite "
            "historical candles; yahoo: Yahoo Finance download (Close stored, Adj Close ignored).",
        ),
    ] = BarFormat.GENERIC,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="Zone of timestamps without an offset. [default: the exchange's zone]"
        ),
    ] = None,
    drop_bad: Annotated[
        bool,
        typer.Option("--drop-bad", help="Store the good rows even if some are bad (reported)."),
    ] = False,
    interval: Annotated[
        SourceChoice,
        typer.Option("--interval", help="Bar size; auto: daily if most stamps are midnight."),
    ] = SourceChoice.AUTO,
    label: Annotated[
        LabelChoice,
        typer.Option(
            "--label",
            help="Do 1-minute timestamps mark the bar's start or end? auto: end when more bars "
            "sit on session closes than on opens.",
        ),
    ] = LabelChoice.AUTO,
    create_instrument: Annotated[
        bool,
        typer.Option(
            "--create-instrument",
            help="If SYMBOL is not in the instruments master, add it (equity, lot 1, no price "
            "band, tick --tick-size) once the file is accepted.",
        ),
    ] = False,
    tick_size: Annotated[
        str, typer.Option("--tick-size", help="Tick size for --create-instrument.")
    ] = DEFAULT_NEW_TICK,
    show: Annotated[
        int, typer.Option("--show", min=0, help="Problems listed one by one (all are counted).")
    ] = 20,
) -> None:
    """Validate a bar file and store it (1-minute or daily bars of one instrument).

    Any bad row (unparsable value, high < low, high below open/close, low above open/close,
    negative volume, a bar outside the exchange's sessions, a duplicate bar time) rejects the
    whole input: nothing is written and the problems are listed by row. With --drop-bad the
    good rows are stored and the bad ones reported. Stored bars in the input's time range are
    replaced, so re-ingesting an overlapping file never duplicates bars.

    SYMBOL must be in the instruments master (`quantdesk instruments import` or `seed-demo`),
    so that a typo cannot store bars no chart will ever show; --create-instrument adds it.

    Exit codes: 0 stored; 1 rejected (nothing written); 2 usage error (bad symbol, unknown
    exchange or zone, missing file, database not set up, SYMBOL not in the master).
    """
    from quantdesk.bootstrap import bar_store
    from quantdesk.market.ingest import ingest

    symbol, calendar = _parse_symbol(symbol)
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _usage_error(f"unknown time zone {tz!r}") from exc
    spec = _new_spec(calendar.name, tick_size) if create_instrument else None
    settings = _settings()
    known, similar = _database(lambda: asyncio.run(_find_instrument(settings, symbol)))
    if not known and spec is None:
        hint = f" Similar: {', '.join(similar)}." if similar else ""
        raise _usage_error(
            f"{symbol} is not in the instruments master.{hint} Add it with `quantdesk "
            "instruments import` (or `instruments seed-demo`), or pass --create-instrument."
        )

    with stage_progress(err) as progress:
        result = ingest(
            path,
            symbol,
            bar_store(settings),
            fmt=file_format.value,
            tz=tz,
            drop_bad=drop_bad,
            label=label.value,
            interval=None if interval == SourceChoice.AUTO else _SOURCE[interval],
            progress=progress,
        )
    stored = result.written is not None and result.written.rows_written > 0
    out = console if stored else err
    _show_issues(result, out, show)
    _show_summary(result, calendar, out)
    if not stored:
        if result.accepted:
            out.print("[bold red]Nothing to store:[/] no good rows.")
        raise typer.Exit(1)
    if not known and spec is not None:
        _database(lambda: asyncio.run(_create_instrument(settings, symbol, spec)))
        console.print(
            f"Added {symbol} to the instruments master (tick {spec.tick_size}, lot 1, no price "
            "band); refresh its rules with `quantdesk instruments import` from your broker."
        )


def _show_issues(result: IngestResult, out: Console, show: int) -> None:
    if not result.issues:
        return
    several_files = len(result.files) > 1
    table = Table(title="Problems", title_justify="left")
    if several_files:
        table.add_column("file")
    for name in ("row", "column", "code", "problem"):
        table.add_column(name)
    for issue in result.issues[:show]:
        cells = [
            "" if issue.row is None else str(issue.row),
            issue.column or "",
            issue.code,
            issue.message,
        ]
        table.add_row(
            *([Path(issue.file).name if issue.file else ""] if several_files else []), *cells
        )
    if show:
        out.print(table)
    total = sum(result.issue_counts.values())
    if total > min(show, len(result.issues)):
        out.print(f"... {total - min(show, len(result.issues))} more problems not listed.")
    counts = Table("code", "count", title="Problems by code", title_justify="left")
    for code, n in sorted(result.issue_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        counts.add_row(code, str(n))
    out.print(counts)


def _show_summary(result: IngestResult, calendar: ExchangeCalendar, out: Console) -> None:
    stored = result.written is not None and result.written.rows_written > 0
    verdict = "[bold green]stored[/]" if stored else "[bold red]REJECTED, nothing written[/]"
    out.print(f"{result.symbol}: {verdict}")
    out.print(
        f"  rows read    {result.rows_read} from {len(result.files)} file(s)\n"
        f"  good bars    {len(result.bars)} ({result.interval or 'interval unknown'}"
        + (f", timestamps labelled at bar {result.label}" if result.label else "")
        + ")\n"
        f"  bad rows     {result.rows_bad}" + (" (dropped)" if stored and result.rows_bad else "")
    )
    if len(result.bars):
        daily = result.interval == "1d"
        first = result.bars["timestamp"].iloc[0].to_pydatetime()
        last = result.bars["timestamp"].iloc[-1].to_pydatetime()
        span = f"{_local(first, calendar, daily=daily)} .. {_local(last, calendar, daily=daily)}"
        out.print(f"  range        {span} ({calendar.tz})")
        if result.written is not None:
            w = result.written
            out.print(
                f"  written      {w.rows_written} {w.interval} bars in {w.partitions} "
                f"partition(s); replaced {w.rows_replaced} stored bars in {span}"
            )


# -- data coverage -----------------------------------------------------------------------------


@data_app.command("coverage")
def coverage_command(
    symbol: Annotated[
        str | None, typer.Argument(help="EXCHANGE:SYMBOL; default: every stored symbol.")
    ] = None,
) -> None:
    """Show what is stored: first and last bar, sessions and bars per source interval."""
    from quantdesk.bootstrap import bar_store
    from quantdesk.market.calendars import exchange_of, get_calendar

    store = bar_store(_settings())
    symbols = [_parse_symbol(symbol)[0]] if symbol else store.symbols()
    table = Table("instrument", "interval", "first", "last", "sessions", "bars")
    for name in symbols:
        calendar = get_calendar(exchange_of(name))
        for interval, cov in store.coverage(name).items():
            daily = interval == "1d"
            table.add_row(
                name,
                interval,
                _local(cov.first, calendar, daily=daily),
                _local(cov.last, calendar, daily=daily),
                str(cov.sessions),
                str(cov.rows),
            )
    if table.row_count == 0:
        console.print(f"No bars stored{f' for {symbols[0]}' if symbol else ''} in {store.root}.")
        return
    table.title = f"Stored bars in {store.root} (exchange-local times)"
    console.print(table)


# -- data candles ------------------------------------------------------------------------------


def _when(text: str | None, calendar: ExchangeCalendar, *, end: bool) -> datetime | None:
    """A date (a whole exchange-local day; as an end, inclusive) or a date-time (without an
    offset: exchange-local), as an aware instant."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1 if end else 0), time(), calendar.tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        option = "--end" if end else "--start"
        raise _usage_error(
            f"{option}: expected YYYY-MM-DD or an ISO date-time, got {text!r}"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=calendar.tz)


@data_app.command("candles")
def candles_command(
    symbol: Annotated[str, typer.Argument(help="EXCHANGE:SYMBOL")],
    interval: Annotated[
        str, typer.Option("--interval", "-i", help="1m, 5m, 15m, 30m, 1h, 1d or 1w.")
    ] = "1d",
    start: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD or ISO date-time; without an offset, exchange-local."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Exclusive instant, or YYYY-MM-DD for through that whole day."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Only the last N candles (0: all).")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Candles from the stored bars, resampled on the exchange's sessions (as the API serves
    them: 1-minute bars where a session has them, daily bars elsewhere)."""
    from quantdesk.bootstrap import bar_store
    from quantdesk.market.candles import INTERVALS, candles

    symbol, calendar = _parse_symbol(symbol)
    if interval not in INTERVALS:
        raise _usage_error(f"--interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    lo, hi = _when(start, calendar, end=False), _when(end, calendar, end=True)
    if lo is not None and hi is not None and lo >= hi:
        raise _usage_error("--start must be before --end")
    frame = candles(bar_store(_settings()), symbol, interval, lo, hi)
    if limit:
        frame = frame.tail(limit)
    if as_json:
        typer.echo(json.dumps(_candles_json(symbol, interval, calendar, frame)))
        return
    daily = interval in ("1d", "1w")
    table = Table(
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        title=f"{symbol} {interval}: {len(frame)} candles ({calendar.tz})",
    )
    for row in frame.itertuples(index=False):
        table.add_row(
            _local(row.time.to_pydatetime(), calendar, daily=daily),
            *(_price(v) for v in (row.open, row.high, row.low, row.close)),
            str(row.volume),
        )
    console.print(table)


def _price(value: float) -> str:
    # Shortest round-trip text of the stored float64: 1523.45, never 1523.4500000000001.
    return repr(float(value))


def _candles_json(
    symbol: str, interval: str, calendar: ExchangeCalendar, frame: pd.DataFrame
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "interval": interval,
        "timezone": str(calendar.tz),
        "candles": [
            {
                "time": row.time.isoformat(),
                **{k: _price(getattr(row, k)) for k in ("open", "high", "low", "close")},
                "volume": int(row.volume),
            }
            for row in frame.itertuples(index=False)
        ],
    }


# -- demo seed ---------------------------------------------------------------------------------


def seed_demo_data(
    settings: Settings,
    out: Console,
    *,
    sessions: int | None = None,
    daily_sessions: int | None = None,
    seed: int | None = None,
    force: bool = False,
) -> DemoData:
    """Run :func:`quantdesk.bootstrap.ensure_demo_data` with a progress bar on ``out``; print
    one line when it seeded (nothing when the store already had bars)."""
    from quantdesk.bootstrap import bar_store, ensure_demo_data

    if bar_store(settings).symbols() and not force:
        return asyncio.run(ensure_demo_data(settings))  # leaves the store alone
    out.print("Seeding demo market data (synthetic bars for the demo universe)...")
    with stage_progress(out) as progress:
        result = asyncio.run(
            ensure_demo_data(
                settings,
                sessions=sessions,
                daily_sessions=daily_sessions,
                seed=seed,
                force=force,
                progress=lambda _symbol, done, total: progress("instruments", done, total),
            )
        )
    history = result.history
    if history is not None:
        out.print(
            f"Demo data: {history.symbols} instruments ({result.instruments_added} added to the "
            f"master), {history.minute_bars:,} 1-minute bars over "
            f"{history.first_minute_session}..{history.last_session} and "
            f"{history.daily_bars:,} daily bars from {history.first_daily_session}, "
            f"in {history.seconds:.1f} s."
        )
    return result


# Defaults as in quantdesk.market.demo (not imported here: it pulls in pandas at start-up).
@demo_app.command("seed")
def demo_seed_command(
    sessions: Annotated[
        int, typer.Option("--sessions", min=1, max=500, help="Sessions of 1-minute bars.")
    ] = 60,
    daily_sessions: Annotated[
        int,
        typer.Option(
            "--daily-sessions", min=1, max=2500, help="Sessions of daily bars (about 2 years)."
        ),
    ] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bars).")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Seed even if bars are stored (re-seeds the demo symbols only)."
        ),
    ] = False,
) -> None:
    """Load the demo universe (NIFTY 50 stocks, NIFTY 50 and NIFTY BANK) and fill synthetic
    history: 1-minute bars for the last SESSIONS sessions before today and daily bars for the
    last DAILY-SESSIONS (at least SESSIONS), all from one price path per instrument on its tick
    size, ending at its last price in the master. The same seed on the same day gives the same
    bars.

    Runs only on an installation without stored bars (as `serve --demo` does on its first
    start); with --force the demo symbols' bars are deleted and seeded again. Applies database
    migrations first unless QUANTDESK_AUTO_MIGRATE=false.
    """
    from quantdesk.datadir import prepare_data_dir
    from quantdesk.db.migrate import upgrade

    settings = _settings()
    prepare_data_dir(settings)
    if settings.auto_migrate:
        upgrade(settings.resolved_database_url)
    result = _database(
        lambda: seed_demo_data(
            settings,
            console,
            sessions=sessions,
            daily_sessions=daily_sessions,
            seed=seed,
            force=force,
        )
    )
    if result.history is None:
        console.print(
            f"Bars are already stored for {result.existing_symbols} instrument(s) in "
            f"{settings.data_dir / 'bars'}: nothing seeded. Use --force to re-seed the demo "
            "instruments."
        )
