import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { apiError, FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { registeredModel } from "../test/ml";
import { renderApp } from "../test/render";
import { chartLog, drawn, resetChartLog } from "../test/chartMock";

vi.mock("lightweight-charts", async () => (await import("../test/chartMock")).chartModule);

const IST = 19800;
const ts = (iso: string) => Date.parse(iso) / 1000 + IST;
const day = (date: string, close: string) => ({ time: `${date}T03:45:00Z`, open: close, high: close, low: close, close, volume: 100 });
const signal = (date: string, s: number, value: number | null) => ({ time: `${date}T10:00:00Z`, value, signal: s, model_version: 1 });

describe("model signals on the Charts page", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    resetChartLog();
  });

  it("overlays a chosen model's signals as arrows on the bars that produced them; none chosen leaves the chart as it was", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      "GET /api/v1/instruments": () => ({ items: [] }),
      "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
      "GET /api/v1/market/candles": () => ({
        symbol: "NSE:TCS",
        interval: "1d",
        timezone: "Asia/Kolkata",
        truncated: false,
        candles: [day("2026-01-05", "100"), day("2026-01-06", "101"), day("2026-01-07", "102"), day("2026-01-08", "103")],
      }),
      "GET /api/v1/ml/models": () => ({ models: [registeredModel(), registeredModel({ name: "lstm-1d" })] }),
      "GET /api/v1/ml/signals": () => ({
        model: "demo-xgb",
        symbol: "NSE:TCS",
        points: [signal("2026-01-05", 1, 0.61), signal("2026-01-06", 1, 0.64), signal("2026-01-07", -1, 0.31), signal("2026-01-08", 0, 0.5)],
        truncated: false,
      }),
    });
    const ui = userEvent.setup();
    renderApp("/charts/NSE:TCS");
    await waitFor(() => expect(drawn("Candlestick")[0]?.data).toHaveLength(4));
    const select = await screen.findByRole("combobox", { name: "Model" });
    await waitFor(() => expect(select).toBeEnabled());
    expect([...(select as HTMLSelectElement).options].map((o) => o.value)).toEqual(["", "demo-xgb", "lstm-1d"]);
    expect(calls.some((c) => c.path === "/api/v1/ml/signals")).toBe(false);
    expect(chartLog.markers).toEqual([]);

    await ui.selectOptions(select, "demo-xgb");
    await waitFor(() => expect(chartLog.markers).toHaveLength(2));
    const req = calls.find((c) => c.path === "/api/v1/ml/signals")!;
    expect(Object.fromEntries(req.search)).toEqual({ model: "demo-xgb", symbol: "NSE:TCS", start: "2026-01-05", end: "2026-01-08" });
    // known at the bar's close: on that day's bar; one arrow per change of the signal
    expect(chartLog.markers).toEqual([
      expect.objectContaining({ time: ts("2026-01-05T03:45:00Z"), shape: "arrowUp", position: "belowBar", text: "ML 0.61" }),
      expect.objectContaining({ time: ts("2026-01-07T03:45:00Z"), shape: "arrowDown", position: "aboveBar", text: "ML 0.31" }),
    ]);
    expect(await screen.findByText("2 changes in 4 stored signals")).toBeInTheDocument();

    await ui.selectOptions(select, "");
    await waitFor(() => expect(chartLog.markers).toEqual([]));
  });

  it("keeps the chart working without the ML extra", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/instruments": () => ({ items: [] }),
      "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
      "GET /api/v1/market/candles": () => ({ symbol: "NSE:TCS", interval: "15m", timezone: "Asia/Kolkata", truncated: false, candles: [day("2026-01-05", "100")] }),
      "GET /api/v1/ml/models": () => apiError(503, "ML_EXTRA_MISSING", "xgboost not installed: pip install 'quantdesk[ml]'"),
    });
    renderApp("/charts/NSE:TCS");
    await waitFor(() => expect(drawn("Candlestick")[0]?.data).toHaveLength(1));
    const select = await screen.findByRole("combobox", { name: "Model" });
    await waitFor(() => expect(select).toHaveDisplayValue("ML not installed"));
    expect(select).toBeDisabled();
  });
});
