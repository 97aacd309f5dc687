/** Candles for the chart: API rows to numeric bars, and folding live quotes into the last bar. */

export interface Bar {
  /** bar start, epoch seconds UTC */
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export const INTERVAL_SECONDS: Record<string, number> = {
  "1m": 60,
  "5m": 300,
  "15m": 900,
  "30m": 1800,
  "1h": 3600,
  "1d": 86_400,
  "1w": 604_800,
};

export function toBars(
  candles: { time: string; open: string; high: string; low: string; close: string; volume: number }[],
): Bar[] {
  return candles.map((c) => ({
    time: Math.floor(Date.parse(c.time) / 1000),
    open: Number(c.open),
    high: Number(c.high),
    low: Number(c.low),
    close: Number(c.close),
    volume: c.volume,
  }));
}

/**
 * Fold a quote into the bars (mutating the array): update the last bar while the quote is inside
 * it, or open the next bar. Bars step from the last bar's start by whole intervals, which keeps
 * NSE's session-aligned buckets (09:15 + k x interval; the overnight gap is a whole number of
 * every intraday interval). Volume grows by the rise of the session's cumulative volume.
 * Returns the bar to draw, or null when the quote is older than the last bar.
 */
export function applyQuote(
  bars: Bar[],
  quote: { last: string; volume: number; ts: string },
  interval: string,
  previousVolume: number | null,
): Bar | null {
  const last = bars[bars.length - 1];
  const step = INTERVAL_SECONDS[interval];
  const t = Math.floor(Date.parse(quote.ts) / 1000);
  const price = Number(quote.last);
  if (!last || !step || Number.isNaN(t) || Number.isNaN(price) || t < last.time) return null;
  const added = previousVolume === null ? 0 : Math.max(0, quote.volume - previousVolume);
  if (t < last.time + step) {
    last.high = Math.max(last.high, price);
    last.low = Math.min(last.low, price);
    last.close = price;
    last.volume += added;
    return last;
  }
  const bar: Bar = {
    time: last.time + Math.floor((t - last.time) / step) * step,
    open: price,
    high: price,
    low: price,
    close: price,
    volume: added,
  };
  bars.push(bar);
  return bar;
}

/** The start of the bar that holds time t (epoch seconds), for placing fill markers. */
export function barTimeFor(bars: Bar[], t: number): number | null {
  let lo = 0;
  let hi = bars.length - 1;
  let found: number | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (bars[mid]!.time <= t) {
      found = bars[mid]!.time;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Seconds to add to UTC so the chart's axis reads exchange-local time (e.g. +19800 for IST). */
export function zoneOffsetSeconds(timeZone: string, at = new Date()): number {
  try {
    const part = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" })
      .formatToParts(at)
      .find((p) => p.type === "timeZoneName")?.value;
    const m = /GMT([+-])(\d{2}):?(\d{2})?/.exec(part ?? "");
    if (!m) return 0;
    const seconds = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60;
    return m[1] === "-" ? -seconds : seconds;
  } catch {
    return 0;
  }
}
