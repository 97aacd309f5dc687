/**
 * jsdom has no canvas: a stand-in for lightweight-charts that records what the pages ask it to
 * draw. Use with `vi.mock("lightweight-charts", async () => (await import("../test/chartMock")).chartModule)`.
 */
export interface DrawnSeries {
  kind: string;
  options: Record<string, unknown>;
  data: { time: number; value?: number; close?: number }[];
  updates: unknown[];
  removed: boolean;
}

export const chartLog = { series: [] as DrawnSeries[], markers: [] as unknown[], charts: 0 };

export function resetChartLog(): void {
  chartLog.series = [];
  chartLog.markers = [];
  chartLog.charts = 0;
}

/** The series of a kind still on a chart (a redraw removes the old ones). */
export function drawn(kind: string): DrawnSeries[] {
  return chartLog.series.filter((s) => s.kind === kind && !s.removed);
}

function makeSeries(kind: string, options: Record<string, unknown> = {}) {
  const s: DrawnSeries = { kind, options, data: [], updates: [], removed: false };
  chartLog.series.push(s);
  return {
    _log: s,
    setData: (d: DrawnSeries["data"]) => (s.data = d),
    update: (b: unknown) => s.updates.push(b),
    priceScale: () => ({ applyOptions: () => {} }),
  };
}

export const chartModule = {
  CandlestickSeries: "Candlestick",
  HistogramSeries: "Histogram",
  LineSeries: "Line",
  AreaSeries: "Area",
  createChart: () => {
    chartLog.charts += 1;
    return {
      applyOptions: () => {},
      addSeries: (kind: string, options?: Record<string, unknown>) => makeSeries(kind, options),
      removeSeries: (s: { _log: DrawnSeries }) => (s._log.removed = true),
      remove: () => {},
      timeScale: () => ({ fitContent: () => {} }),
    };
  },
  createSeriesMarkers: () => ({ setMarkers: (m: unknown[]) => (chartLog.markers = m) }),
};
