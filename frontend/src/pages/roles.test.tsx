import { screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";

const position = {
  user_id: 2,
  symbol: "NSE:INFY",
  product: "CNC",
  quantity: 10,
  average_price: "1500.00",
  realised_pnl: "0",
  fees: "0",
  net_realised_pnl: "0",
  last_price: "1510.00",
  unrealised_pnl: "100.00",
  day_pnl: "50.00",
  margin: "0",
  updated_at: "2025-01-31T04:00:00Z",
};

const order = {
  id: "a".repeat(32),
  client_order_id: "ui-1",
  user_id: 2,
  symbol: "NSE:INFY",
  side: "BUY",
  order_type: "LIMIT",
  product: "CNC",
  time_in_force: "DAY",
  quantity: 5,
  limit_price: "1400.00",
  stop_price: null,
  filled_quantity: 0,
  average_price: null,
  status: "OPEN",
  triggered: false,
  currency: "INR",
  held_amount: "7000.00",
  created_at: "2025-01-31T04:00:00Z",
  updated_at: "2025-01-31T04:00:00Z",
};

function stub(role: "admin" | "trader" | "viewer") {
  loggedIn();
  return mockApi({
    "GET /api/v1/auth/me": () => user(role),
    "GET /api/v1/wallet": () => wallet("123456.78"),
    "GET /api/v1/positions": () => [position],
    "GET /api/v1/orders": (req) => ({ items: req.search.getAll("status").includes("OPEN") ? [order] : [], next_cursor: null }),
    "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
  });
}

describe("roles", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("a viewer sees the account read-only: no ticket, no trading buttons, no admin", async () => {
    stub("viewer");
    renderApp("/");
    const walletCard = await screen.findByRole("region", { name: "Wallet" });
    expect(await within(walletCard).findAllByText("₹1,23,456.78")).toHaveLength(2); // available and total
    expect(await screen.findByText("1,400.00")).toBeInTheDocument(); // the open order is listed
    expect(screen.queryByRole("form", { name: "Order ticket" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Cancel" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Modify" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Square off" })).not.toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "Admin" })).not.toBeInTheDocument();
  });

  it("a trader gets the ticket and the order and position actions", async () => {
    stub("trader");
    renderApp("/");
    expect(await screen.findByRole("form", { name: "Order ticket" })).toBeInTheDocument();
    expect(await screen.findByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(await screen.findByRole("button", { name: "Square off" })).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "Admin" })).not.toBeInTheDocument();
  });

  it("an admin also gets the Admin page", async () => {
    stub("admin");
    renderApp("/");
    expect(await screen.findByRole("link", { name: "Admin" })).toBeInTheDocument();
  });

  it("shows the stale-data indicator until the stream says welcome, and live P&L from quotes", async () => {
    stub("trader");
    renderApp("/");
    expect(await screen.findByText(/Connecting|Stale data/)).toBeInTheDocument();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    expect(await screen.findByText("● Live")).toBeInTheDocument();
    // (1512.35 - 1500.00) x 10 = 123.50, computed exactly from the quote
    const open = screen.getByRole("region", { name: "Open positions" });
    await within(open).findByText("₹100.00");
    ws.receive({ type: "quote", channel: "quotes:NSE:INFY", data: { symbol: "NSE:INFY", last: "1512.35", bid: "1512.30", ask: "1512.40", volume: 1, ts: "2025-01-31T04:01:00Z" } });
    expect(await within(open).findByText("₹123.50")).toBeInTheDocument();
    // the summary strip follows the same live mark and agrees with the table
    const strip = screen.getByRole("region", { name: "Account summary" });
    await within(strip).findByText("₹123.50"); // unrealised
    expect(within(strip).getByLabelText("Unrealised P&L")).toHaveTextContent("₹123.50");
    // day P&L: 50.00 + 10 x (1512.35 - 1510.00) = 73.50, in the strip and in the table
    expect(within(strip).getByLabelText("Day P&L")).toHaveTextContent("₹73.50");
    expect(within(open).getByText("₹73.50")).toBeInTheDocument();
    // equity: 123456.78 + 10 x 1512.35 = 138580.28
    expect(within(strip).getByLabelText("Equity")).toHaveTextContent("₹1,38,580.28");
    ws.drop(1006);
    expect(await screen.findByText(/Stale data/)).toBeInTheDocument();
  });
});
