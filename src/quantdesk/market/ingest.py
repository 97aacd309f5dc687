"""Read OHLCV bars from CSV or Parquet files, validate them, and store the good ones.

Formats: ``generic`` (timestamp/open/high/low/close/volume, case-insensitive, with common aliases
such as date/datetime/time and o/h/l/c/v, or separate date and time columns), ``kite`` (Kite
Connect historical candles: date, open, high, low, close, volume with +0530 offsets) and
``yahoo`` (Date or Datetime, Open, High, Low, Close, Adj Close, Volume; Adj Close is ignored,
Close is stored).

A file (or every file of a folder, taken as one unit) is validated row by row; each problem is
an :class:`Issue` with the file, the 1-based data row (header not counted) and a reason code.
Default policy: any bad row rejects the whole input and nothing is written; ``drop_bad=True``
keeps the good rows. Problems with the file itself (missing columns, unreadable file, an
interval the store cannot hold) always reject.

Normalised bars: ``timestamp`` UTC, tz-aware, the bar's START (end-labelled input such as the
shared NSE 1-minute data is detected and shifted back one minute; daily bars are stamped with
their session's open); open/high/low/close float64; volume int64.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from quantdesk.market.calendars import ExchangeCalendar, exchange_of, get_calendar
from quantdesk.market.store import BarStore, SourceInterval, WriteResult, normalise_symbol

__all__ = [
    "FORMATS",
    "Format",
    "IngestResult",
    "Issue",
    "Label",
    "ProgressCallback",
    "ingest",
    "load_bars",
]

Format = Literal["generic", "kite", "yahoo"]
Label = Literal["auto", "start", "end"]
FORMATS: tuple[Format, ...] = ("generic", "kite", "yahoo")

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages are "read" (files), "validate" and
"write" (0 of 1, then 1 of 1)."""

PRICE_COLUMNS = ("open", "high", "low", "close")
_FIELDS = ("timestamp", *PRICE_COLUMNS, "volume")
_SUFFIXES = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MINUTE_NS = 60 * 10**9

# Accepted source column names per field, compared case-insensitively after stripping.
_ALIASES: dict[Format, dict[str, tuple[str, ...]]] = {
    "generic": {
        "timestamp": ("timestamp", "datetime", "date_time", "date", "time", "ts", "dt"),
        "open": ("open", "o"),
        "high": ("high", "h"),
        "low": ("low", "l"),
        "close": ("close", "c", "last"),
        "volume": ("volume", "vol", "v"),
    },
    "kite": {
        "timestamp": ("date",),
        **{name: (name,) for name in (*PRICE_COLUMNS, "volume")},
    },
    "yahoo": {
        "timestamp": ("date", "datetime"),
        **{name: (name,) for name in (*PRICE_COLUMNS, "volume")},
    },
}
_SYMBOL_COLUMNS = ("symbol", "tradingsymbol", "ticker")


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation problem. ``row`` is the 1-based data row in ``file`` (None: whole file)."""

    code: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None


@dataclass(slots=True)
class IngestResult:
    """Outcome of reading and validating an input (and, for :func:`ingest`, storing it)."""

    symbol: str
    files: list[str]
    rows_read: int
    bars: pd.DataFrame
    interval: SourceInterval | None = None
    label: Literal["start", "end"] | None = None
    issues: list[Issue] = field(default_factory=list)
    issue_counts: dict[str, int] = field(default_factory=dict)
    rows_bad: int = 0
    accepted: bool = False
    written: WriteResult | None = None

    def summary(self) -> str:
        """One line for a CLI: what was read, what was wrong, what happened."""
        verdict = "accepted" if self.accepted else "REJECTED"
        counts = ", ".join(f"{code}={n}" for code, n in sorted(self.issue_counts.items()))
        return (
            f"{self.symbol}: {verdict}; {self.rows_read} rows read from {len(self.files)} "
            f"file(s), {len(self.bars)} good {self.interval or '?'} bars, "
            f"{self.rows_bad} bad rows" + (f" ({counts})" if counts else "")
        )


class _Report:
    """Collects issues: every one is counted, the first ``limit`` are kept in detail."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.issues: list[Issue] = []
        self.counts: Counter[str] = Counter()
        self.fatal = False

    def file_issue(self, code: str, message: str, file: str | None = None) -> None:
        self.fatal = True
        self.counts[code] += 1
        self.issues.append(Issue(code, message, file))

    def row_issues(
        self,
        code: str,
        mask: np.ndarray,
        raw: _Raw,
        describe: Callable[[int], str],
        column: str | None = None,
    ) -> None:
        hits = np.flatnonzero(mask)
        if len(hits) == 0:
            return
        self.counts[code] += len(hits)
        room = max(self.limit - len(self.issues), 0)
        for i in hits[:room]:
            self.issues.append(
                Issue(code, describe(int(i)), raw.file_of(int(i)), int(raw.row[i]), column)
            )


@dataclass(slots=True)
class _Raw:
    """Input rows with canonical columns (still unparsed) and where each row came from."""

    columns: dict[str, pa.ChunkedArray]
    file_index: np.ndarray
    row: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.row)

    def file_of(self, i: int) -> str:
        return self.files[int(self.file_index[i])]


def load_bars(
    path: str | Path,
    symbol: str,
    *,
    fmt: Format = "generic",
    tz: str | None = None,
    drop_bad: bool = False,
    label: Label = "auto",
    interval: SourceInterval | None = None,
    progress: ProgressCallback | None = None,
    max_issues: int = 1000,
) -> IngestResult:
    """Read and validate bars of ``symbol`` (``EXCHANGE:SYMBOL``) from a file or a folder.

    ``tz`` applies to naive timestamps (default: the exchange's zone). ``interval`` forces
    "1m" or "1d" instead of detecting it; ``label`` says whether intraday timestamps mark the
    bar's start or end ("auto": end if more bars sit on session closes than on opens). If a
    file has a symbol column, only rows of this symbol are read. Nothing is written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    symbol = normalise_symbol(symbol)
    calendar = get_calendar(exchange_of(symbol))
    zone = ZoneInfo(tz) if tz else calendar.tz
    report = _Report(max_issues)
    files = _input_files(Path(path), report)
    raw = _read_all(files, fmt, symbol, report, progress)
    result = IngestResult(
        symbol=symbol, files=[str(f) for f in files], rows_read=len(raw), bars=_empty_bars()
    )
    if not report.fatal:
        _notify(progress, "validate", 0, 1)
        _validate(raw, calendar, zone, interval, label, drop_bad, report, result)
        _notify(progress, "validate", 1, 1)
    result.issues = report.issues
    result.issue_counts = dict(report.counts)
    result.accepted = not report.fatal and (drop_bad or result.rows_bad == 0)
    if not result.accepted:
        result.bars = _empty_bars()
    return result


def ingest(
    path: str | Path,
    symbol: str,
    store: BarStore,
    *,
    fmt: Format = "generic",
    tz: str | None = None,
    drop_bad: bool = False,
    label: Label = "auto",
    interval: SourceInterval | None = None,
    progress: ProgressCallback | None = None,
    max_issues: int = 1000,
) -> IngestResult:
    """:func:`load_bars`, then write the bars to ``store`` if the input was accepted.

    Stored bars in the input's time range are replaced (see :meth:`BarStore.write`).
    """
    result = load_bars(
        path,
        symbol,
        fmt=fmt,
        tz=tz,
        drop_bad=drop_bad,
        label=label,
        interval=interval,
        progress=progress,
        max_issues=max_issues,
    )
    if result.accepted and result.interval is not None and len(result.bars):
        _notify(progress, "write", 0, 1)
        result.written = store.write(result.symbol, result.bars, result.interval)
        _notify(progress, "write", 1, 1)
    return result


def _notify(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _empty_bars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
            **{c: pd.Series([], dtype="float64") for c in PRICE_COLUMNS},
            "volume": pd.Series([], dtype="int64"),
        }
    )


# -- reading ---------------------------------------------------------------------------------


def _input_files(path: Path, report: _Report) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
        if not files:
            report.file_issue("no_files", f"no .csv or .parquet files under {path}", str(path))
        return files
    if not path.is_file():
        report.file_issue("unreadable_file", f"{path} does not exist", str(path))
        return []
    if path.suffix.lower() not in _SUFFIXES:
        report.file_issue("unsupported_file", f"{path.name}: expected .csv or .parquet", str(path))
        return []
    return [path]


def _read_all(
    files: list[Path],
    fmt: Format,
    symbol: str,
    report: _Report,
    progress: ProgressCallback | None,
) -> _Raw:
    parts: list[tuple[dict[str, pa.ChunkedArray], np.ndarray]] = []
    for n, path in enumerate(files):
        _notify(progress, "read", n, len(files))
        table = _read_table(path, report)
        if table is not None:
            mapped = _map_columns(table, fmt, str(path), report)
            selected = (
                None if mapped is None else _only_symbol(table, mapped, symbol, str(path), report)
            )
            if selected is not None:
                parts.append(selected)
    _notify(progress, "read", len(files), len(files))
    return _concat(parts, [str(f) for f in files])


def _read_table(path: Path, report: _Report) -> pa.Table | None:
    try:
        if _SUFFIXES[path.suffix.lower()] == "parquet":
            return pq.read_table(path)
        return _read_csv(path)
    except (OSError, pa.ArrowException, csv.Error, UnicodeDecodeError, StopIteration) as exc:
        report.file_issue("unreadable_file", f"{path.name}: {exc}", str(path))
        return None


def _read_csv(path: Path) -> pa.Table:
    """Every column as text: parsing is done per column so a bad cell is a row issue, not a
    failed read."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle))
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
        ),
    )


def _normal_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _map_columns(
    table: pa.Table, fmt: Format, file: str, report: _Report
) -> dict[str, pa.ChunkedArray] | None:
    by_name = {_normal_name(n): table.column(i) for i, n in enumerate(table.column_names)}
    mapped: dict[str, pa.ChunkedArray] = {}
    missing = []
    for target, aliases in _ALIASES[fmt].items():
        found = next((a for a in aliases if a in by_name), None)
        if found is None:
            missing.append(f"{target} (one of: {', '.join(aliases)})")
        else:
            mapped[target] = by_name[found]
    if (
        fmt == "generic"
        and "date" in by_name
        and "time" in by_name
        and not ({"timestamp", "datetime", "date_time"} & by_name.keys())
    ):
        # Separate date and time columns, as some exports write them.
        mapped["timestamp"] = pc.binary_join_element_wise(
            pc.cast(by_name["date"], pa.string()), pc.cast(by_name["time"], pa.string()), " "
        )
    if missing:
        report.file_issue(
            "missing_column",
            f"{Path(file).name}: missing column(s) for {fmt} format: {'; '.join(missing)}; "
            f"found {table.column_names}",
            file,
        )
        return None
    return mapped


def _only_symbol(
    table: pa.Table,
    mapped: dict[str, pa.ChunkedArray],
    symbol: str,
    file: str,
    report: _Report,
) -> tuple[dict[str, pa.ChunkedArray], np.ndarray] | None:
    """Rows of ``symbol`` if the file names symbols; with their 1-based row numbers."""
    rows = np.arange(1, table.num_rows + 1)
    names = {_normal_name(n): n for n in table.column_names}
    column = next((names[c] for c in _SYMBOL_COLUMNS if c in names), None)
    if column is None:
        return mapped, rows
    values = pc.utf8_upper(pc.cast(table.column(column), pa.string()))
    ticker = symbol.partition(":")[2]
    keep = pc.fill_null(pc.is_in(values, pa.array([ticker, symbol])), False)
    if not pc.any(keep).as_py():
        present = pc.unique(values).to_pylist()[:10]
        report.file_issue(
            "symbol_not_in_file", f"{Path(file).name}: no rows for {symbol}; found {present}", file
        )
        return None
    mask = keep.to_numpy(zero_copy_only=False)
    return {k: v.filter(keep) for k, v in mapped.items()}, rows[mask]


def _concat(parts: list[tuple[dict[str, pa.ChunkedArray], np.ndarray]], files: list[str]) -> _Raw:
    if not parts:
        return _Raw({}, np.empty(0, np.int64), np.empty(0, np.int64), files)
    columns = {
        name: pa.chunked_array(
            [chunk for cols, _ in parts for chunk in _unify(cols[name], parts, name).chunks],
            type=_unify(parts[0][0][name], parts, name).type,
        )
        for name in _FIELDS
    }
    file_index = np.concatenate([np.full(len(rows), i) for i, (_, rows) in enumerate(parts)])
    return _Raw(columns, file_index, np.concatenate([rows for _, rows in parts]), files)


def _unify(
    column: pa.ChunkedArray,
    parts: list[tuple[dict[str, pa.ChunkedArray], np.ndarray]],
    name: str,
) -> pa.ChunkedArray:
    """Cast to text when files disagree on a column's type (e.g. a CSV and a Parquet file);
    the parsers accept text for every field."""
    types = {cols[name].type for cols, _ in parts}
    return column if len(types) == 1 else pc.cast(column, pa.string())


# -- parsing ---------------------------------------------------------------------------------


def _parse_timestamps(column: pa.ChunkedArray, zone: ZoneInfo) -> pd.Series:
    """UTC instants (NaT where unparsable). Naive values are wall-clock times in ``zone``."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        values = pd.Series(column.to_pandas())
        return _localise(values, zone)
    if pa.types.is_date(kind):
        values = pd.Series(pd.to_datetime(column.to_pandas()))
        return _localise(values, zone)
    if pa.types.is_integer(kind):
        return _from_epoch(column.to_numpy().astype(np.int64))
    text = pd.Series(pc.utf8_trim_whitespace(pc.cast(column, pa.string())).to_pandas())
    aware = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).to_numpy()
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    if aware.any():
        parsed = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
        result[aware] = parsed.astype("datetime64[us, UTC]")
    if (~aware).any():
        naive = pd.to_datetime(text[~aware], format="ISO8601", errors="coerce")
        result[~aware] = _localise(naive, zone)
    return result


def _localise(values: pd.Series, zone: ZoneInfo) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _from_epoch(values: np.ndarray) -> pd.Series:
    """Epoch numbers in s, ms, us or ns, told apart by magnitude (a 2001+ date in seconds is
    below 1e11)."""
    magnitude = np.abs(values).max(initial=0)
    unit = (
        "s"
        if magnitude < 1e11
        else "ms"
        if magnitude < 1e14
        else "us"
        if magnitude < 1e17
        else "ns"
    )
    return pd.Series(pd.to_datetime(values, unit=unit, utc=True)).astype("datetime64[us, UTC]")


def _parse_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values; NaN where missing or not a number."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.array(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), float)
    try:
        cast = pc.cast(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), pa.float64())
        return np.array(cast.to_numpy(zero_copy_only=False), float)
    except pa.ArrowInvalid:
        # Some cell is not a number: fall back to a per-cell parse that marks it NaN.
        text = pd.Series(column.to_pandas(), dtype="string").str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        return np.asarray(numbers.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)


# -- validation ------------------------------------------------------------------------------


def _validate(
    raw: _Raw,
    calendar: ExchangeCalendar,
    zone: ZoneInfo,
    interval: SourceInterval | None,
    label: Label,
    drop_bad: bool,
    report: _Report,
    result: IngestResult,
) -> None:
    if len(raw) == 0:
        report.file_issue("no_rows", "the input has no data rows")
        return
    stamps = _parse_timestamps(raw.columns["timestamp"], zone)
    prices = {c: _parse_numbers(raw.columns[c]) for c in PRICE_COLUMNS}
    volume = _parse_numbers(raw.columns["volume"])
    bad = _check_values(raw, stamps, prices, volume, report)

    detected = interval or _detect_interval(stamps, zone)
    result.interval = detected
    if detected == "1d":
        starts, outside = _daily_starts(stamps, calendar, zone)
        _report_outside(raw, outside & ~bad, stamps, calendar, "not a session date", report)
    else:
        if not _is_minute_data(stamps):
            report.file_issue(
                "unsupported_interval",
                "only 1-minute and daily bars can be stored; these bars are neither",
            )
            return
        result.label = _detect_label(stamps, calendar) if label == "auto" else label
        shift = _MINUTE_NS if result.label == "end" else 0
        starts = stamps - pd.Timedelta(shift, "ns")
        outside = _outside_hours(starts, calendar)
        _report_outside(raw, outside & ~bad, stamps, calendar, "outside session hours", report)
    bad |= outside
    bad |= _check_duplicates(raw, starts, bad, report)

    result.rows_bad = int(bad.sum())
    good = ~bad
    bars = pd.DataFrame(
        {
            "timestamp": starts[good].array,
            **{c: prices[c][good] for c in PRICE_COLUMNS},
            "volume": volume[good].astype(np.int64),
        }
    )
    result.bars = bars.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _check_values(
    raw: _Raw,
    stamps: pd.Series,
    prices: dict[str, np.ndarray],
    volume: np.ndarray,
    report: _Report,
) -> np.ndarray:
    """Row-level content checks; returns the mask of rows with any problem."""
    text = {name: raw.columns[name] for name in _FIELDS}

    def cell(name: str, i: int) -> str:
        return repr(text[name][i].as_py())

    bad_time = stamps.isna().to_numpy()
    report.row_issues(
        "bad_timestamp",
        bad_time,
        raw,
        lambda i: f"unparsable timestamp {cell('timestamp', i)}",
        "timestamp",
    )
    bad = bad_time.copy()
    for name in PRICE_COLUMNS:
        values = prices[name]
        missing = ~np.isfinite(values)
        not_positive = np.isfinite(values) & (values <= 0)
        report.row_issues("bad_price", missing, raw, _not_a_number(name, cell), name)
        report.row_issues(
            "non_positive_price", not_positive, raw, _not_positive(name, values), name
        )
        bad |= missing | not_positive
    bad |= _check_ohlc(raw, prices, bad.copy(), report)
    bad |= _check_volume(raw, volume, report, cell)
    return np.asarray(bad, dtype=bool)


def _not_a_number(name: str, cell: Callable[[str, int], str]) -> Callable[[int], str]:
    return lambda i: f"{name} is not a number: {cell(name, i)}"


def _not_positive(name: str, values: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"{name} must be positive, got {values[i]}"


def _check_ohlc(
    raw: _Raw, prices: dict[str, np.ndarray], unusable: np.ndarray, report: _Report
) -> np.ndarray:
    o, h, lo, c = (prices[n] for n in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        checks = (
            (
                "high_below_open_close",
                h < np.fmax(o, c),
                lambda i: f"high {h[i]} < max(open {o[i]}, close {c[i]})",
            ),
            (
                "low_above_open_close",
                lo > np.fmin(o, c),
                lambda i: f"low {lo[i]} > min(open {o[i]}, close {c[i]})",
            ),
            ("high_below_low", h < lo, lambda i: f"high {h[i]} < low {lo[i]}"),
        )
    bad = np.zeros(len(raw), dtype=bool)
    for code, mask, describe in checks:
        mask = mask & ~unusable
        report.row_issues(code, mask, raw, describe)
        bad |= mask
    return bad


def _check_volume(
    raw: _Raw, volume: np.ndarray, report: _Report, cell: Callable[[str, int], str]
) -> np.ndarray:
    finite = np.isfinite(volume)
    not_number = ~finite | (finite & (volume != np.round(volume)))
    negative = finite & (volume < 0)
    report.row_issues(
        "bad_volume",
        not_number,
        raw,
        lambda i: f"volume is not a whole number: {cell('volume', i)}",
        "volume",
    )
    report.row_issues(
        "negative_volume", negative, raw, lambda i: f"volume {volume[i]:.0f} < 0", "volume"
    )
    volume[~finite] = 0  # keep the int64 cast of bad rows harmless; they are dropped
    return np.asarray(not_number | negative, dtype=bool)


def _epoch_ns(stamps: pd.Series) -> np.ndarray:
    """UTC epoch nanoseconds of tz-aware stamps without going through Python objects (NaT
    becomes int64 min)."""
    return np.asarray(stamps.astype("datetime64[ns, UTC]").array.asi8, dtype=np.int64)


def _detect_interval(stamps: pd.Series, zone: ZoneInfo) -> SourceInterval:
    """Daily if most timestamps sit on midnight (local, or UTC for UTC-stamped dates)."""
    valid = stamps.dropna()
    if valid.empty:
        return "1m"
    local = valid.dt.tz_convert(zone)
    at_local_midnight = (local - local.dt.normalize()) == pd.Timedelta(0)
    at_utc_midnight = (valid - valid.dt.normalize()) == pd.Timedelta(0)
    share = max(at_local_midnight.mean(), at_utc_midnight.mean())
    return "1d" if share > 0.5 else "1m"


def _is_minute_data(stamps: pd.Series) -> bool:
    """The most common gap between consecutive bars is one minute."""
    values = np.sort(_epoch_ns(stamps.dropna()))
    steps = np.diff(values)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return True
    gaps, counts = np.unique(steps, return_counts=True)
    return bool(gaps[np.argmax(counts)] == _MINUTE_NS)


def _daily_starts(
    stamps: pd.Series, calendar: ExchangeCalendar, zone: ZoneInfo
) -> tuple[pd.Series, np.ndarray]:
    """Session open for each daily bar, and the mask of bars not on a session date."""
    local = stamps.dt.tz_convert(zone)
    midnight_local = (local - local.dt.normalize()) == pd.Timedelta(0)
    # A date stamped at UTC midnight names the UTC date; otherwise take the local date.
    dates = (
        local.dt.normalize()
        .dt.tz_localize(None)
        .where(midnight_local, stamps.dt.normalize().dt.tz_localize(None))
    )
    arrays = calendar.session_arrays()
    day = dates.to_numpy(dtype="datetime64[D]")
    index = np.searchsorted(arrays["date"], day)
    clipped = np.minimum(index, len(arrays["date"]) - 1)
    valid = ~np.isnat(day)
    on_session = valid & (index < len(arrays["date"])) & (arrays["date"][clipped] == day)
    opens = pd.to_datetime(np.where(on_session, arrays["open"][clipped], 0), utc=True)
    starts = pd.Series(opens, index=stamps.index).astype("datetime64[us, UTC]")
    starts[~on_session] = pd.NaT
    return starts, valid & ~on_session


def _outside_hours(starts: pd.Series, calendar: ExchangeCalendar) -> np.ndarray:
    """Bars (by start time) not within [open, close) of their session, or inside a break."""
    valid = starts.notna().to_numpy()
    ns = _epoch_ns(starts)
    index = np.full(len(starts), -1)
    if valid.any():
        index[valid] = calendar.locate(pd.DatetimeIndex(starts[valid]))
    arrays = calendar.session_arrays()
    at = np.maximum(index, 0)
    inside = (arrays["open"][at] <= ns) & (ns < arrays["close"][at])
    in_break = (arrays["break_start"][at] <= ns) & (ns < arrays["break_end"][at])
    return np.asarray(valid & ((index < 0) | ~inside | in_break), dtype=bool)


def _detect_label(stamps: pd.Series, calendar: ExchangeCalendar) -> Literal["start", "end"]:
    """End-labelled data has bars stamped at the close (15:30) and none at the open (09:15)."""
    valid = stamps.dropna()
    if valid.empty:
        return "start"
    index = calendar.locate(pd.DatetimeIndex(valid))
    found = index >= 0
    arrays = calendar.session_arrays()
    ns = _epoch_ns(valid)[found]
    at_open = int((ns == arrays["open"][index[found]]).sum())
    at_close = int((ns == arrays["close"][index[found]]).sum())
    return "end" if at_close > at_open else "start"


def _report_outside(
    raw: _Raw,
    mask: np.ndarray,
    stamps: pd.Series,
    calendar: ExchangeCalendar,
    why: str,
    report: _Report,
) -> None:
    def describe(i: int) -> str:
        local = stamps.iat[i].tz_convert(calendar.tz)
        return f"{local.isoformat()} is {why} of {calendar.name}"

    report.row_issues("outside_session", mask, raw, describe, "timestamp")


def _check_duplicates(raw: _Raw, starts: pd.Series, bad: np.ndarray, report: _Report) -> np.ndarray:
    """Later rows repeating an earlier row's bar time (among otherwise good rows)."""
    instants = _epoch_ns(starts)
    candidates = pd.Series(instants, index=np.arange(len(starts)))[~bad]
    repeated = candidates.duplicated(keep="first")
    mask = np.zeros(len(starts), dtype=bool)
    mask[candidates.index[repeated.to_numpy()]] = True
    if mask.any():
        # Row number of the first bar with each repeated time, for the message.
        first_at = pd.Series(candidates.index, index=candidates.to_numpy())
        first_at = first_at[~first_at.index.duplicated(keep="first")]

        def describe(i: int) -> str:
            first = int(raw.row[int(first_at[instants[i]])])
            return f"duplicate bar time {starts.iat[i].isoformat()} (first at row {first})"

        report.row_issues("duplicate_timestamp", mask, raw, describe, "timestamp")
    return mask
