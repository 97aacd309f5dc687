import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";
import { deployment } from "../test/backtests";

const D = "d".repeat(32);

const activity = {
  deployment_id: D,
  orders: 2,
  fills: [
    { order_id: "o1", client_order_id: `dep-${D.slice(0, 16)}-1`, symbol: "NSE:TCS", side: "BUY", product: "CNC", quantity: 5, price: "3500.05", fees: "1.25", at: "2025-01-31T04:05:00Z" },
    { order_id: "o2", client_order_id: `dep-${D.slice(0, 16)}-2`, symbol: "NSE:TCS", side: "SELL", product: "CNC", quantity: 2, price: "3510.10", fees: "0.75", at: "2025-01-31T04:09:00Z" },
  ],
  charges: "2.00",
  realised_pnl: "20.10",
  unrealised_pnl: "-4.50",
  pnl: "13.60",
  positions: { "NSE:TCS": 3 },
};

function stub(role: "trader" | "viewer" | "admin", owner = 2) {
  loggedIn();
  let current = deployment({ user_id: owner });
  return mockApi({
    "GET /api/v1/auth/me": () => user(role, 2),
    "GET /api/v1/deployments": () => ({ items: [current] }),
    [`GET /api/v1/deployments/${D}`]: () => current,
    [`GET /api/v1/deployments/${D}/activity`]: () => activity,
    [`POST /api/v1/deployments/${D}/pause`]: () => (current = { ...current, status: "paused" }),
    [`POST /api/v1/deployments/${D}/stop`]: () => (current = { ...current, status: "stopped" }),
    "GET /api/v1/orders": () => ({
      items: [
        {
          id: "o1",
          client_order_id: `dep-${D.slice(0, 16)}-1`,
          user_id: 2,
          symbol: "NSE:TCS",
          side: "BUY",
          order_type: "MARKET",
          product: "CNC",
          time_in_force: "DAY",
          quantity: 5,
          limit_price: null,
          stop_price: null,
          filled_quantity: 5,
          average_price: "3500.05",
          status: "FILLED",
          triggered: false,
          currency: "INR",
          held_amount: "0.00",
          created_at: "2025-01-31T04:05:00Z",
          updated_at: "2025-01-31T04:05:00Z",
        },
      ],
      next_cursor: null,
    }),
  });
}

describe("DeploymentsPage", () => {
  beforeEach(() => FakeWebSocket.reset());
  afterEach(() => vi.restoreAllMocks());

  it("shows a deployment's fills, charges, P&L and positions, and refreshes on a trades frame", async () => {
    const { calls } = stub("trader");
    renderApp(`/deployments/${D}`);
    const pnl = await screen.findByLabelText("Deployment P&L");
    expect(pnl).toHaveTextContent("Total P&L₹13.60");
    expect(pnl).toHaveTextContent("Realised₹20.10");
    expect(pnl).toHaveTextContent("Unrealised-₹4.50");
    expect(pnl).toHaveTextContent("Charges₹2.00");
    expect(within(pnl).getByText("-₹4.50")).toHaveClass("neg");
    const fills = screen.getByRole("region", { name: "Deployment fills" });
    const rows = within(fills).getAllByRole("row");
    expect(rows).toHaveLength(3);
    expect(rows[1]).toHaveTextContent("SELL"); // newest first
    expect(rows[1]).toHaveTextContent("3,510.10");
    expect(screen.getByRole("region", { name: "Deployment positions" })).toHaveTextContent("NSE:TCS3");

    const before = calls.filter((c) => c.path.endsWith("/activity")).length;
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    ws.receive({ type: "trade", channel: "trades", data: { symbol: "NSE:TCS", side: "BUY", quantity: 1, price: "3500.00" } });
    await waitFor(() => expect(calls.filter((c) => c.path.endsWith("/activity")).length).toBeGreaterThan(before));
  });

  it("the owner pauses and stops (after a confirm)", async () => {
    const { calls } = stub("trader");
    const ui = userEvent.setup();
    renderApp("/deployments");
    const list = await screen.findByRole("region", { name: "Deployments" });
    await ui.click(await within(list).findByRole("button", { name: /^Pause sma_cross/ }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.path.endsWith("/pause"))).toBe(true));
    expect(await within(list).findByRole("button", { name: /^Resume sma_cross/ })).toBeInTheDocument();
    vi.spyOn(window, "confirm").mockReturnValue(true);
    await ui.click(within(list).getByRole("button", { name: /^Stop sma_cross/ }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.path.endsWith("/stop"))).toBe(true));
    await waitFor(() => expect(within(list).queryByRole("button")).not.toBeInTheDocument());
    expect(list).toHaveTextContent("stopped");
  });

  it.each(["viewer", "trader"] as const)("a %s looking at someone else's deployment gets no controls", async (role) => {
    stub(role, 7);
    renderApp("/deployments");
    const list = await screen.findByRole("region", { name: "Deployments" });
    expect(await within(list).findByText("running")).toBeInTheDocument();
    expect(within(list).getByRole("columnheader", { name: "Owner" })).toBeInTheDocument();
    expect(within(list).queryByRole("button")).not.toBeInTheDocument();
  });

  it("an admin gets the controls of anyone's deployment", async () => {
    stub("admin", 7);
    renderApp("/deployments");
    const list = await screen.findByRole("region", { name: "Deployments" });
    expect(await within(list).findByRole("button", { name: /^Pause sma_cross/ })).toBeInTheDocument();
  });

  it("an order a deployment sent links to it from the orders page, by the prefix its client_order_id carries", async () => {
    stub("trader");
    const ui = userEvent.setup();
    renderApp("/orders");
    const link = await screen.findByRole("link", { name: "strategy" });
    expect(link).toHaveAttribute("href", `/deployments/${D.slice(0, 16)}`);
    await ui.click(link);
    expect(await screen.findByRole("heading", { name: /sma_cross on NSE:TCS/ })).toBeInTheDocument();
  });
});
