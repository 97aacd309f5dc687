"""Exchange-time calendar features of many timestamps at once, without converting each one.

A zone's UTC offset changes a couple of times a year at most, so it is found on a daily grid
(to the second, by bisection, where it changes). The sorted timestamps then split into runs of
one exchange-local day and one offset; each run needs one subtraction for the minute of day and
shares one weekday. The minutes are exact: ``(wall-clock time - session open) / 1 minute``,
computed from integers in the index's unit, so the stream (in nanoseconds) gets the same float.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["DAY", "calendar_features", "wall_clock"]

DAY = 86_400
_MAGIC = np.int64(0x4338000000000000)  # the bits of 1.5 * 2**52
_MAGIC_FLOAT = 1.5 * 2.0**52
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _offset(second: int, zone: ZoneInfo) -> int:
    delta = datetime.fromtimestamp(second, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _offsets(first: int, last: int, zone: str) -> tuple[list[int], list[int]]:
    """(starts, offsets) in seconds: ``offsets[j]`` holds from UTC second ``starts[j]``
    (``starts[0]`` is ``first``) to the next start. Assumes at most one change a day, as in
    every tzdata zone (changes are months apart)."""
    grid = np.arange(first - first % DAY, last + DAY, DAY, dtype=np.int64)
    stamps = pd.DatetimeIndex(grid * 10**9, tz="UTC").tz_convert(zone).tz_localize(None)
    offsets = stamps.asi8 // 10**9 - grid
    starts, values = [first], [int(offsets[0])]
    info = ZoneInfo(zone)
    for i in np.flatnonzero(offsets[1:] != offsets[:-1]):
        lo, hi = int(grid[i]), int(grid[i + 1])  # offset(lo) is the old one, offset(hi) new
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _offset(mid, info) == offsets[i] else (lo, mid)
        starts.append(hi)
        values.append(int(offsets[i + 1]))
    return starts, values


def wall_clock(utc_ns: int, zone: ZoneInfo, open_second: int) -> tuple[float, int]:
    """One timestamp's (minutes since the session open, weekday), as :func:`calendar_features`
    computes them for many."""
    second, rest = divmod(utc_ns, 10**9)
    local = datetime.fromtimestamp(second, zone)
    of_day = local.hour * 3600 + local.minute * 60 + local.second
    return ((of_day - open_second) * 10**9 + rest) / (60 * 10**9), local.weekday()


def calendar_features(
    index: pd.DatetimeIndex, zone: str, open_second: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(minutes since the session open, weekday with Monday = 0) in exchange time of a sorted
    tz-aware index."""
    units = index.asi8
    if not units.size:
        return np.empty(0), np.empty(0)
    per_second = _PER_SECOND[index.unit]
    first, last = int(units[0] // per_second), int(units[-1] // per_second)
    starts, offsets = _offsets(first, last, zone)
    # Runs: local midnights (in UTC seconds, under each offset) and offset changes.
    bounds, bases, weekdays = [], [], []
    ends = [*starts[1:], last + 1]
    for start, end, offset in zip(starts, ends, offsets, strict=True):
        days = np.arange((start + offset) // DAY, (end - 1 + offset) // DAY + 1, dtype=np.int64)
        run_starts = np.maximum(days * DAY - offset, start)
        bounds.append(run_starts)
        bases.append((days * DAY + open_second - offset) * per_second)  # the open, in UTC
        weekdays.append((days + 3) % 7)  # 1970-01-01 was a Thursday
    cuts = np.searchsorted(units, np.concatenate(bounds) * per_second)
    counts = np.diff(np.r_[cuts, units.size])
    weekday = np.repeat(np.concatenate(weekdays).astype(np.float64), counts)
    # (stamp - open) / one minute. The integer difference (exact) becomes a float by adding
    # it to the bits of 1.5 * 2**52 (whose ulp is 1) and subtracting that float: exact for
    # differences below 2**51 units (a day is far less), and vector-wide, unlike numpy's
    # int64 -> float64 conversion. (Wrap-around in the int64 steps cancels out.)
    work = np.repeat(np.concatenate(bases) - _MAGIC, counts)  # each stamp's open - magic
    np.subtract(units, work, out=work)
    minutes = work.view(np.float64)
    minutes -= _MAGIC_FLOAT
    minutes /= 60 * per_second
    return minutes, weekday
