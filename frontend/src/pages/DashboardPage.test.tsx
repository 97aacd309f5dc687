import { act, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";

const position = (over: Record<string, unknown>) => ({
  user_id: 2,
  symbol: "NSE:INFY",
  product: "CNC",
  quantity: 10,
  average_price: "1495.00",
  realised_pnl: "0.00",
  fees: "0.00",
  net_realised_pnl: "0.00",
  last_price: "1500.05",
  unrealised_pnl: "50.50",
  day_pnl: "120.25",
  margin: "0.00",
  updated_at: "2025-01-31T09:30:00Z",
  ...over,
});

const riskState = {
  user_id: 2,
  global: { scope: "global", kill_switch: false, kill_reason: null, kill_by: null, kill_at: null, halted: false, halt_kind: null, halt_reason: null, halted_at: null },
  account: { scope: "account", kill_switch: false, kill_reason: null, kill_by: null, kill_at: null, halted: false, halt_kind: null, halt_reason: null, halted_at: null },
  trading_allowed: true,
};

function stub(positions: unknown[]) {
  loggedIn();
  return mockApi({
    "GET /api/v1/auth/me": () => user("viewer"),
    "GET /api/v1/wallet": () => ({
      user_id: 2,
      balances: { INR: { available: "90000.00", held: "5000.00", margin: "5000.00", total: "100000.00" } },
    }),
    "GET /api/v1/positions": () => positions,
    "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/risk/state": () => riskState,
  });
}

async function connect() {
  await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
  const ws = FakeWebSocket.last;
  act(() => {
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
  });
  return ws;
}

describe("dashboard summary and alerts", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("shows equity, cash, day and unrealised P&L from the REST data", async () => {
    const { calls } = stub([
      position({}),
      position({ symbol: "NSE:TCS", product: "MIS", quantity: -5, last_price: "3000.00", unrealised_pnl: "-25.75", day_pnl: "-40.10" }),
    ]);
    renderApp("/");
    const strip = await screen.findByRole("region", { name: "Account summary" });
    await waitFor(() => expect(within(strip).getByLabelText("Equity")).toHaveTextContent("₹1,14,974.75"));
    expect(within(strip).getByLabelText("Cash available")).toHaveTextContent("₹90,000.00");
    const day = within(strip).getByLabelText("Day P&L");
    expect(day).toHaveTextContent("₹80.15");
    expect(day).toHaveClass("pos");
    expect(within(strip).getByLabelText("Unrealised P&L")).toHaveTextContent("₹24.75");

    // a live positions frame has day_pnl null: it only makes the page re-read the positions
    const ws = await connect();
    const before = calls.filter((c) => c.path === "/api/v1/positions").length;
    act(() => ws.receive({ type: "position", channel: "positions", data: { type: "position", symbol: "NSE:INFY", day_pnl: null } }));
    await waitFor(() => expect(calls.filter((c) => c.path === "/api/v1/positions").length).toBeGreaterThan(before));
    expect(within(strip).getByLabelText("Day P&L")).toHaveTextContent("₹80.15");
  });

  it("shows — with the reason for equity when a mark is missing", async () => {
    stub([position({}), position({ symbol: "NSE:SBIN", last_price: null, unrealised_pnl: null, day_pnl: null })]);
    renderApp("/");
    const strip = await screen.findByRole("region", { name: "Account summary" });
    const equity = await within(strip).findByLabelText("Equity");
    await waitFor(() => expect(equity).toHaveTextContent("—"));
    expect(within(equity).getByTitle("No mark (last price) yet for NSE:SBIN (CNC)")).toBeInTheDocument();
    expect(within(strip).getByLabelText("Cash available")).toHaveTextContent("₹90,000.00");
  });

  it("lists alerts from the alerts channel, newest first, and toasts the serious ones", async () => {
    stub([]);
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Alerts" });
    expect(within(card).getByText("No alerts this session")).toBeInTheDocument();
    expect(card).toHaveTextContent("not stored on the server");

    const ws = await connect();
    await waitFor(() => expect(ws.sent).toContainEqual({ op: "subscribe", channels: expect.arrayContaining(["alerts"]) }));
    const frame = (severity: string, title: string) => ({
      type: "alert",
      channel: "alerts",
      data: {
        type: "alert",
        kind: "risk_halt",
        severity,
        title,
        body: "Daily loss ₹5,200.00 exceeds the limit ₹5,000.00",
        user_id: 2,
        ts: new Date().toISOString(),
        similar: 0,
        data: {},
      },
    });
    act(() => ws.receive(frame("info", "Limits updated")));
    await within(card).findByText("Limits updated");
    const toasts = document.querySelector(".toasts") as HTMLElement;
    expect(toasts).not.toHaveTextContent("Limits updated"); // info: the card only

    act(() => ws.receive(frame("error", "Trading halted: daily loss")));
    const items = await within(card).findAllByRole("listitem");
    expect(items[0]).toHaveTextContent("Trading halted: daily loss");
    expect(items[0]).toHaveTextContent("error");
    expect(items[0]).toHaveTextContent("just now");
    expect(items[0]).toHaveClass("sev-error");
    expect(items[1]).toHaveTextContent("Limits updated");
    expect(within(toasts).getByText("Alert: Trading halted: daily loss")).toBeInTheDocument();
    expect(within(card).queryByText("No alerts this session")).not.toBeInTheDocument();
  });
});
