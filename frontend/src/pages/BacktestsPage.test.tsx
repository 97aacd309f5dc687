import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";
import { SUMMARY, TRADES, backtestRun, equityPoints, succeededRun } from "../test/backtests";
import { chartLog, drawn, resetChartLog } from "../test/chartMock";

vi.mock("lightweight-charts", async () => (await import("../test/chartMock")).chartModule);

const A = "a".repeat(32);
const B = "b".repeat(32);
const C = "c".repeat(32);

function connect() {
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
  return ws;
}

const job = (data: Record<string, unknown>) => ({ type: "job", channel: "jobs", data: { type: "job", kind: "backtest", ...data } });

describe("BacktestsPage", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    resetChartLog();
  });

  it("moves a run's progress bar with the jobs channel, then shows its metrics when it succeeds", async () => {
    loggedIn();
    let finished = false;
    const running = backtestRun({ id: A, status: "running", progress: 0.1, started_at: "2025-01-01T00:00:01Z" });
    const done = succeededRun({ id: A });
    mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/backtests": () => ({ items: [finished ? done : running, succeededRun({ id: B })], next_cursor: null }),
    });
    renderApp("/backtests");
    const list = await screen.findByRole("region", { name: "Backtests" });
    const row = await within(list).findByRole("row", { name: /aaaaaaaa/ });
    const bar = within(row).getByRole("progressbar");
    expect(bar).toHaveAttribute("aria-valuenow", "10");
    expect(within(row).getByRole("button", { name: "Cancel" })).toBeInTheDocument();

    const ws = connect();
    await waitFor(() => expect(ws.sent).toContainEqual({ op: "subscribe", channels: expect.arrayContaining(["jobs"]) }));
    ws.receive(job({ id: A, status: "running", progress: 0.42 }));
    await waitFor(() => expect(within(row).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "42"));
    ws.receive(job({ id: A, status: "running", progress: 0.3 })); // late: never backwards
    expect(within(row).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "42");

    finished = true;
    ws.receive(job({ id: A, status: "succeeded", progress: 1, summary: SUMMARY }));
    await waitFor(() => expect(within(row).queryByRole("progressbar")).not.toBeInTheDocument());
    expect(within(row).getByText("succeeded")).toBeInTheDocument();
    expect(row).toHaveTextContent("-3.90%"); // total return from the event's summary
    expect(row).toHaveTextContent("-31.39%");
    expect(within(row).queryByRole("button", { name: "Cancel" })).not.toBeInTheDocument();
    expect(await screen.findByText("Backtest finished")).toBeInTheDocument();
  });

  it("compares 2–4 finished runs: metrics side by side and curves normalised to 1.0", async () => {
    loggedIn();
    const b = succeededRun({
      id: B,
      request: { ...backtestRun().request, cash: "500000", params: { fast: 10, slow: 40 } },
      summary: { ...SUMMARY, final_equity: "550000.00", metrics: { ...SUMMARY.metrics, sharpe: 1.2 } },
    });
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      "GET /api/v1/backtests": () => ({ items: [succeededRun({ id: A }), b, backtestRun({ id: C, status: "failed", progress: 0.5 })], next_cursor: null }),
      [`GET /api/v1/backtests/${A}`]: () => succeededRun({ id: A }),
      [`GET /api/v1/backtests/${B}`]: () => b,
      [`GET /api/v1/backtests/${A}/equity`]: () => ({ points: equityPoints(["1010000.00", "960965.05"]) }),
      [`GET /api/v1/backtests/${B}/equity`]: () => ({ points: equityPoints(["500000.00", "550000.00"]) }),
    });
    const ui = userEvent.setup();
    renderApp("/backtests");
    const list = await screen.findByRole("region", { name: "Backtests" });
    const compare = within(list).getByRole("button", { name: /^Compare/ });
    expect(compare).toBeDisabled();
    // a failed run has no curve to compare
    expect(await within(list).findByRole("checkbox", { name: /cccccccc/ })).toBeDisabled();
    await ui.click(within(list).getByRole("checkbox", { name: /aaaaaaaa/ }));
    expect(compare).toBeDisabled();
    await ui.click(within(list).getByRole("checkbox", { name: /bbbbbbbb/ }));
    await ui.click(within(list).getByRole("button", { name: "Compare (2)" }));

    const table = await screen.findByRole("table", { name: "Metrics side by side" });
    const sharpe = within(table).getByRole("row", { name: /^Sharpe/ });
    expect(within(sharpe).getAllByRole("cell").map((c) => c.textContent)).toEqual(["-0.02", "1.20"]);
    expect(within(sharpe).getAllByRole("cell")[1]).toHaveClass("best");
    expect(within(table).getByRole("row", { name: /^Final equity/ })).toHaveTextContent("₹9,60,965.05₹5,50,000.00");
    expect(within(table).getByRole("row", { name: /^Parameters/ })).toHaveTextContent("fast=10, slow=40");
    expect(calls.filter((c) => c.path.endsWith("/equity")).map((c) => c.search.get("max_points"))).toEqual(["2000", "2000"]);

    await waitFor(() => expect(drawn("Line").filter((s) => s.data.length === 2)).toHaveLength(2));
    const [ca, cb] = drawn("Line");
    expect(ca!.data[0]!.value).toBeCloseTo(1.01, 12);
    expect(ca!.data[1]!.value).toBeCloseTo(0.96096505, 12);
    expect(cb!.data.map((p) => p.value)).toEqual([1, 1.1]);
    expect(ca!.data[0]!.time).toBe(Date.parse("2024-01-01T10:00:00Z") / 1000 + 19800);
    expect(chartLog.charts).toBe(1);
  });
});

describe("BacktestReportPage", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    resetChartLog();
  });
  afterEach(() => vi.restoreAllMocks());

  it("shows the metrics vs the benchmark, the charts, the fills on the candles and the run record", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      [`GET /api/v1/backtests/${A}`]: () => succeededRun({ id: A }),
      [`GET /api/v1/backtests/${A}/equity`]: () => ({
        points: [
          { time: "2024-01-01T10:00:00Z", equity: "1000000.00", benchmark: "1000000.00", drawdown: 0 },
          { time: "2024-01-02T10:00:00Z", equity: "950000.00", benchmark: "1010000.00", drawdown: -0.05 },
        ],
      }),
      [`GET /api/v1/backtests/${A}/trades`]: () => TRADES,
      "GET /api/v1/market/candles": () => ({
        symbol: "NSE:INFY",
        interval: "1d",
        timezone: "Asia/Kolkata",
        truncated: false,
        candles: ["2024-02-01T03:45:00Z", "2024-03-01T03:45:00Z"].map((time) => ({ time, open: "1150", high: "1200", low: "1100", close: "1190", volume: 10 })),
      }),
    });
    renderApp(`/backtests/${A}`);
    const metrics = await screen.findByRole("region", { name: "Metrics" });
    const sharpe = within(metrics).getByRole("row", { name: /^Sharpe/ });
    expect(within(sharpe).getAllByRole("cell").map((c) => c.textContent)).toEqual(["-0.02", "0.56"]);
    expect(within(metrics).getByRole("row", { name: /^Total return/ })).toHaveTextContent("-3.90%25.48%");
    const summary = screen.getByLabelText("Summary");
    expect(summary).toHaveTextContent("Final equity₹9,60,965.05");
    expect(summary).toHaveTextContent("Net P&L-₹39,034.95"); // exact: final − initial in decimals

    // equity + benchmark lines, drawdown area in percent
    await waitFor(() => expect(drawn("Line")).toHaveLength(2));
    expect(drawn("Line")[0]!.data.map((p) => p.value)).toEqual([1000000, 950000]);
    expect(drawn("Area")[0]!.data.map((p) => p.value)).toEqual([0, -5]);

    // candles over the run's range, at its interval, with the fills as buy/sell markers
    const req = await waitFor(() => calls.find((c) => c.path === "/api/v1/market/candles")!);
    expect(Object.fromEntries(req.search)).toMatchObject({
      symbol: "NSE:INFY",
      interval: "1d",
      start: "2023-12-31T18:30:00.000Z",
      end: "2024-12-31T18:30:00.000Z",
    });
    await waitFor(() => expect(chartLog.markers).toHaveLength(2));
    expect(chartLog.markers).toEqual([
      expect.objectContaining({ shape: "arrowUp", text: "B" }),
      expect.objectContaining({ shape: "arrowDown", text: "S" }),
    ]);

    const trips = await screen.findByRole("table", { name: "Round trips" });
    expect(within(trips).getAllByRole("row")).toHaveLength(2);
    expect(trips).toHaveTextContent("₹30,689.71");
    expect(screen.getByRole("region", { name: "Charges" })).toHaveTextContent("Total₹603.29");
    const record = screen.getByRole("region", { name: "Run record" });
    expect(record).toHaveTextContent("Costsbps:3");
    expect(record).toHaveTextContent("Data fingerprintc011b02353093cba");
    expect(record).toHaveTextContent("Source hash68cde075406cb3f6");
    expect(record).toHaveTextContent("Code version0.1.0");
  });

  it("opens the tearsheet with the token, from a blob without scripts", async () => {
    loggedIn("tok-9");
    const html = "<!DOCTYPE html><html><head><title>sma_cross on NSE:INFY</title></head><body><h1>sma_cross</h1></body></html>";
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      [`GET /api/v1/backtests/${A}`]: () => succeededRun({ id: A }),
      [`GET /api/v1/backtests/${A}/equity`]: () => ({ points: [] }),
      [`GET /api/v1/backtests/${A}/trades`]: () => TRADES,
      "GET /api/v1/market/candles": () => ({ symbol: "NSE:INFY", interval: "1d", timezone: "Asia/Kolkata", truncated: false, candles: [] }),
      [`GET /api/v1/backtests/${A}/report`]: () => new Response(html, { status: 200, headers: { "Content-Type": "text/html" } }),
    });
    const win = { opener: {} as unknown, location: { href: "" }, close: vi.fn() };
    vi.spyOn(window, "open").mockReturnValue(win as unknown as Window);
    let blob: Blob | null = null;
    URL.createObjectURL = vi.fn((b: Blob) => {
      blob = b;
      return "blob:tearsheet";
    });
    URL.revokeObjectURL = vi.fn();
    const ui = userEvent.setup();
    renderApp(`/backtests/${A}`);
    await ui.click(await screen.findByRole("button", { name: "Open HTML tearsheet" }));
    expect(await screen.findByText("Opened “sma_cross on NSE:INFY” in a new tab")).toBeInTheDocument();
    expect(window.open).toHaveBeenCalledWith("", "_blank");
    expect(win.location.href).toBe("blob:tearsheet");
    expect(win.opener).toBeNull();
    expect(calls.find((c) => c.path.endsWith("/report"))!.auth).toBe("Bearer tok-9");
    const text = await new Promise<string>((ok) => {
      const reader = new FileReader();
      reader.onload = () => ok(String(reader.result));
      reader.readAsText(blob!);
    });
    expect(text).toContain(`<head><meta http-equiv="Content-Security-Policy" content="default-src 'none';`);
    expect(text).toContain("<h1>sma_cross</h1>");
  });

  it("a failed run shows its error and the traceback in a collapsible block", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      [`GET /api/v1/backtests/${A}`]: () =>
        backtestRun({
          id: A,
          status: "failed",
          progress: 0.3,
          error: { code: "STRATEGY_FAILED", message: "ZeroDivisionError: division by zero", trace: "Traceback (most recent call last):\n  File x" },
        }),
    });
    renderApp(`/backtests/${A}`);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("ZeroDivisionError: division by zero [STRATEGY_FAILED]");
    const details = alert.querySelector("details")!;
    expect(details.open).toBe(false);
    expect(within(alert).getByText("Traceback")).toBeInTheDocument();
    expect(details).toHaveTextContent("Traceback (most recent call last):");
    expect(screen.queryByRole("button", { name: "Open HTML tearsheet" })).not.toBeInTheDocument();
    expect(calls.some((c) => c.path.endsWith("/equity") || c.path.endsWith("/trades"))).toBe(false);
  });
});
