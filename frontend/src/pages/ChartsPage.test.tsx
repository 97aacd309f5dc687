import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";

// jsdom has no canvas: replace the chart library by a recorder of what the page asks it to draw.
const chartLog = vi.hoisted(() => ({ series: [] as { kind: string; data: unknown[]; updates: unknown[] }[], markers: [] as unknown[] }));
vi.mock("lightweight-charts", () => {
  const makeSeries = (kind: string) => {
    const s = { kind, data: [] as unknown[], updates: [] as unknown[] };
    chartLog.series.push(s);
    return {
      setData: (d: unknown[]) => (s.data = d),
      update: (b: unknown) => s.updates.push(b),
      priceScale: () => ({ applyOptions: () => {} }),
    };
  };
  return {
    CandlestickSeries: "Candlestick",
    HistogramSeries: "Histogram",
    LineSeries: "Line",
    createChart: () => ({
      applyOptions: () => {},
      addSeries: (kind: string) => makeSeries(kind),
      removeSeries: () => {},
      remove: () => {},
      timeScale: () => ({ fitContent: () => {} }),
    }),
    createSeriesMarkers: () => ({ setMarkers: (m: unknown[]) => (chartLog.markers = m) }),
  };
});

const candle = (time: string, close: string) => ({ time, open: close, high: close, low: close, close, volume: 100 });
const IST = 19800;
const ts = (iso: string) => Date.parse(iso) / 1000 + IST;

describe("ChartsPage", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    chartLog.series = [];
    chartLog.markers = [];
  });

  it("draws candles, switches interval, folds live quotes and marks the user's fills", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/instruments": () => ({ items: [] }),
      "GET /api/v1/market/candles": (req) => ({
        symbol: req.search.get("symbol"),
        interval: req.search.get("interval"),
        timezone: "Asia/Kolkata",
        truncated: false,
        candles: [candle("2025-01-31T03:45:00Z", "100.00"), candle("2025-01-31T04:00:00Z", "101.50")],
      }),
      "GET /api/v1/trades": () => ({
        items: [{ id: "t1", order_id: "o1", user_id: 2, symbol: "NSE:TCS", side: "BUY", product: "CNC", quantity: 3, price: "100.05", fees: "1.00", currency: "INR", broker_trade_id: "p1", at: "2025-01-31T03:50:00Z" }],
        next_cursor: null,
      }),
    });
    const ui = userEvent.setup();
    renderApp("/charts/NSE:TCS");

    await waitFor(() => expect(chartLog.series.find((s) => s.kind === "Candlestick")?.data).toHaveLength(2));
    const req = calls.find((c) => c.path === "/api/v1/market/candles")!;
    expect(Object.fromEntries(req.search)).toMatchObject({ symbol: "NSE:TCS", interval: "15m" });
    const candles = chartLog.series.find((s) => s.kind === "Candlestick")!;
    expect(candles.data[1]).toMatchObject({ time: ts("2025-01-31T04:00:00Z"), close: 101.5 });
    expect(chartLog.series.filter((s) => s.kind === "Line")).toHaveLength(1); // SMA 20 on by default
    await waitFor(() =>
      expect(chartLog.markers).toEqual([expect.objectContaining({ time: ts("2025-01-31T03:45:00Z"), shape: "arrowUp", text: "B 3 @ 100.05" })]),
    );

    // a quote inside the last 15-minute bar moves it
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    await waitFor(() => expect(ws.sent).toContainEqual({ op: "subscribe", channels: expect.arrayContaining(["quotes:NSE:TCS"]) }));
    ws.receive({ type: "quote", channel: "quotes:NSE:TCS", data: { symbol: "NSE:TCS", last: "102.00", bid: "101.95", ask: "102.05", volume: 5000, ts: "2025-01-31T04:07:00Z" } });
    expect(candles.updates.at(-1)).toMatchObject({ time: ts("2025-01-31T04:00:00Z"), high: 102, close: 102 });

    await ui.click(screen.getByRole("button", { name: "1h" }));
    await waitFor(() => expect(calls.some((c) => c.path === "/api/v1/market/candles" && c.search.get("interval") === "1h")).toBe(true));
    await ui.click(screen.getByLabelText("Bollinger 20,2"));
    await waitFor(() => expect(chartLog.series.filter((s) => s.kind === "Line").length).toBeGreaterThanOrEqual(4));
  });
});
