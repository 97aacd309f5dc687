/**
 * Candlesticks + volume (lightweight-charts), SMA/EMA/Bollinger overlays, the user's fills as
 * markers, a model's signals as markers (optional), and the last bar moving with
 * `quotes:<symbol>` frames.
 */
import { useEffect, useRef } from "react";
import {
  CandlestickSeries,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { applyQuote, barTimeFor, type Bar } from "../lib/candles";
import { bollinger, ema, sma, type Point } from "../lib/indicators";
import type { SignalMark } from "../lib/ml";
import { useStream, type Quote } from "../ws/StreamProvider";

export interface Overlays {
  sma: boolean;
  ema: boolean;
  bollinger: boolean;
}

/** A fill to mark: the user's trades, or a backtest's fills. */
export interface FillMark {
  side: string;
  quantity: number;
  price: string;
  /** ISO time of the fill */
  at: string;
}

interface Props {
  symbol: string;
  interval: string;
  bars: Bar[];
  offset: number;
  trades: FillMark[];
  overlays: Overlays;
  /** follow `quotes:<symbol>` (false for a historical range, such as a backtest's) */
  live?: boolean;
  /** marker labels: "B 3 @ 100.05", or just "B"/"S" (many fills over a long range) */
  markerText?: "full" | "side";
  /** a model's signals (where they turn +1 / −1): none leaves the chart as it was */
  signals?: SignalMark[];
}

const NO_SIGNALS: SignalMark[] = [];

function css(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function PriceChart({ symbol, interval, bars, offset, trades, overlays, live = true, markerText = "full", signals = NO_SIGNALS }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const candles = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const volume = useRef<ISeriesApi<"Histogram"> | null>(null);
  const lines = useRef<ISeriesApi<"Line">[]>([]);
  const markers = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const data = useRef<Bar[]>([]);

  const at = (t: number) => (t + offset) as UTCTimestamp;
  const volumeBar = (b: Bar) => ({
    time: at(b.time),
    value: b.volume,
    color: b.close >= b.open ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
  });

  // The chart itself, once; colours follow the theme.
  useEffect(() => {
    if (!el.current) return;
    const c = createChart(el.current, { autoSize: true, timeScale: { timeVisible: true, secondsVisible: false } });
    const paint = () =>
      c.applyOptions({
        layout: { background: { color: css("--surface", "#fff") }, textColor: css("--text", "#222") },
        grid: { vertLines: { color: css("--grid", "#eee") }, horzLines: { color: css("--grid", "#eee") } },
      });
    paint();
    const observer = new MutationObserver(paint);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    candles.current = c.addSeries(CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
      borderVisible: false,
    });
    volume.current = c.addSeries(HistogramSeries, { priceScaleId: "", priceFormat: { type: "volume" } });
    volume.current.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    candles.current.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
    markers.current = createSeriesMarkers(candles.current, []);
    chart.current = c;
    return () => {
      observer.disconnect();
      c.remove();
      chart.current = null;
      candles.current = null;
      volume.current = null;
      markers.current = null;
      lines.current = [];
    };
  }, []);

  // Data and overlays.
  useEffect(() => {
    const c = chart.current;
    if (!c || !candles.current || !volume.current) return;
    data.current = bars.map((b) => ({ ...b }));
    candles.current.setData(data.current.map((b) => ({ ...b, time: at(b.time) })));
    volume.current.setData(data.current.map(volumeBar));
    lines.current.forEach((s) => c.removeSeries(s));
    lines.current = [];
    const times = data.current.map((b) => b.time);
    const closes = data.current.map((b) => b.close);
    const line = (points: Point[], color: string, title: string) => {
      const s = c.addSeries(LineSeries, { color, lineWidth: 1, title, priceLineVisible: false, lastValueVisible: false });
      s.setData(points.map((p) => ({ time: at(p.time), value: p.value })));
      lines.current.push(s);
    };
    if (overlays.sma) line(sma(times, closes, 20), "#f59f00", "SMA 20");
    if (overlays.ema) line(ema(times, closes, 50), "#7048e8", "EMA 50");
    if (overlays.bollinger) {
      const bb = bollinger(times, closes, 20, 2);
      line(bb.upper, "#1c7ed6", "BB upper");
      line(bb.middle, "#74c0fc", "BB mid");
      line(bb.lower, "#1c7ed6", "BB lower");
    }
    c.timeScale().fitContent();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `at` only depends on offset
  }, [bars, overlays, offset]);

  // The user's fills as markers on the bars that hold them, and the model's signals.
  useEffect(() => {
    const ms: SeriesMarker<Time>[] = [];
    for (const t of trades) {
      const time = barTimeFor(data.current, Math.floor(Date.parse(t.at) / 1000));
      if (time === null) continue;
      const buy = t.side === "BUY";
      ms.push({
        time: at(time),
        position: buy ? "belowBar" : "aboveBar",
        shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? "#2b8a3e" : "#c92a2a",
        text: markerText === "side" ? (buy ? "B" : "S") : `${buy ? "B" : "S"} ${t.quantity} @ ${t.price}`,
      });
    }
    // A signal is known at its bar's end: mark the bar that closed then (the one holding end − 1 s).
    for (const s of signals) {
      const time = barTimeFor(data.current, Math.floor(Date.parse(s.at) / 1000) - 1);
      if (time === null) continue;
      const up = s.signal > 0;
      ms.push({
        time: at(time),
        position: up ? "belowBar" : "aboveBar",
        shape: up ? "arrowUp" : "arrowDown",
        color: up ? "#1c7ed6" : "#e8590c",
        text: s.value !== null ? `ML ${s.value.toFixed(2)}` : up ? "ML +1" : "ML −1",
      });
    }
    ms.sort((a, b) => (a.time as number) - (b.time as number));
    markers.current?.setMarkers(ms);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [trades, signals, bars, offset, markerText]);

  // Live quotes move the last bar.
  const stream = useStream();
  useEffect(() => {
    if (!stream || !live) return;
    let previousVolume: number | null = null;
    return stream.subscribe(`quotes:${symbol}`, (frame) => {
      const quote = frame.data as Quote | undefined;
      if (frame.type !== "quote" || !quote) return;
      const bar = applyQuote(data.current, quote, interval, previousVolume);
      previousVolume = quote.volume;
      if (!bar) return;
      candles.current?.update({ ...bar, time: at(bar.time) });
      volume.current?.update(volumeBar(bar));
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stream, symbol, interval, offset, live]);

  return <div ref={el} className="chart" role="img" aria-label={`${symbol} ${interval} candlestick chart`} />;
}
