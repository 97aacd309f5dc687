/**
 * Line (or area) series on one lightweight-charts chart: a backtest's equity vs its benchmark,
 * its drawdown, or several runs' normalised curves overlaid. Colours follow the theme.
 */
import { useEffect, useRef } from "react";
import { AreaSeries, LineSeries, createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import type { LinePoint } from "../lib/backtests";

export interface ChartSeries {
  name: string;
  color: string;
  points: LinePoint[];
  area?: boolean;
  dashed?: boolean;
}

export type ValueFormat = "inr" | "pct" | "growth";

const inr = new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR", maximumFractionDigits: 0 });

function formatter(format: ValueFormat): (v: number) => string {
  if (format === "pct") return (v) => `${v.toFixed(1)}%`;
  if (format === "growth") return (v) => `${v.toFixed(3)}×`;
  return (v) => inr.format(v);
}

function css(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Colours for up to 4 compared runs (and the benchmark). */
export const PALETTE = ["#1f6feb", "#e8590c", "#2b8a3e", "#9c36b5", "#868e96"];

export function LineChart({
  series,
  offset,
  format,
  label,
  className = "chart chart-small",
}: {
  series: ChartSeries[];
  /** seconds added to UTC so the axis reads exchange time */
  offset: number;
  format: ValueFormat;
  label: string;
  className?: string;
}) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const drawn = useRef<ISeriesApi<"Line" | "Area">[]>([]);

  useEffect(() => {
    if (!el.current) return;
    const c = createChart(el.current, {
      autoSize: true,
      timeScale: { timeVisible: false },
      localization: { priceFormatter: formatter(format) },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.08 } },
    });
    const paint = () =>
      c.applyOptions({
        layout: { background: { color: css("--surface", "#fff") }, textColor: css("--text", "#222") },
        grid: { vertLines: { color: css("--grid", "#eee") }, horzLines: { color: css("--grid", "#eee") } },
      });
    paint();
    const observer = new MutationObserver(paint);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    chart.current = c;
    return () => {
      observer.disconnect();
      c.remove();
      chart.current = null;
      drawn.current = [];
    };
  }, [format]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    drawn.current.forEach((s) => c.removeSeries(s));
    drawn.current = [];
    for (const s of series) {
      const common = { title: "", priceLineVisible: false, lastValueVisible: true, lineWidth: 2 as const };
      const drawnSeries = s.area
        ? c.addSeries(AreaSeries, {
            ...common,
            lineColor: s.color,
            topColor: `${s.color}10`,
            bottomColor: `${s.color}55`,
            invertFilledArea: true,
          })
        : c.addSeries(LineSeries, { ...common, color: s.color, lineStyle: s.dashed ? 2 : 0 });
      drawnSeries.setData(s.points.map((p) => ({ time: (p.time + offset) as UTCTimestamp, value: p.value })));
      drawn.current.push(drawnSeries);
    }
    c.timeScale().fitContent();
  }, [series, offset, format]);

  return (
    <figure className="chart-figure">
      <div ref={el} className={className} role="img" aria-label={label} />
      <figcaption className="legend">
        {series.map((s) => (
          <span key={s.name} className="legend-item">
            <span className="swatch" style={{ background: s.color }} aria-hidden="true" />
            {s.name}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
