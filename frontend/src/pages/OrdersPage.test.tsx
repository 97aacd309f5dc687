import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";

const order = (id: string, status: string, reason: string) => ({
  id: id.repeat(32),
  client_order_id: `c-${id}`,
  user_id: 2,
  symbol: "NSE:INFY",
  side: "BUY",
  order_type: "LIMIT",
  product: "CNC",
  time_in_force: "DAY",
  quantity: 10,
  limit_price: "1440.00",
  stop_price: null,
  filled_quantity: 0,
  average_price: null,
  status,
  reason,
  triggered: false,
  currency: "INR",
  held_amount: "0.00",
  created_at: "2025-01-31T04:00:00Z",
  updated_at: "2025-01-31T04:05:00Z",
});

describe("orders page", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("filters by several statuses at once and shows why an order ended", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      "GET /api/v1/orders": () => ({ items: [order("a", "CANCELLED", "margin shortfall: the fill is not covered by funds")], next_cursor: null }),
    });
    const ui = userEvent.setup();
    renderApp("/orders");
    const cell = await screen.findByText("CANCELLED", { selector: "span" });
    expect(cell).toHaveAttribute("title", "margin shortfall: the fill is not covered by funds");

    await ui.selectOptions(screen.getByLabelText("Status"), "Ended unfilled");
    await waitFor(() =>
      expect(calls.some((c) => c.path === "/api/v1/orders" && c.search.getAll("status").join() === "CANCELLED,EXPIRED,REJECTED")).toBe(true),
    );
    await ui.selectOptions(screen.getByLabelText("Status"), "FILLED");
    await waitFor(() => expect(calls.at(-1)?.search.getAll("status")).toEqual(["FILLED"]));
    await ui.selectOptions(screen.getByLabelText("Status"), "All");
    await waitFor(() => expect(calls.some((c) => c.path === "/api/v1/orders" && !c.search.has("status"))).toBe(true));
  });

  it("toasts an order the platform cancelled, with the reason", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
    });
    renderApp("/orders");
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const ws = FakeWebSocket.last;
    act(() => {
      ws.open();
      ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    });
    act(() =>
      ws.receive({ type: "order", channel: "orders", data: { type: "order", ...order("b", "CANCELLED", "kill switch: desk closed") } }),
    );
    const toasts = document.querySelector(".toasts") as HTMLElement;
    expect(await within(toasts).findByText("Order cancelled: BUY 10 NSE:INFY (kill switch: desk closed)")).toBeInTheDocument();
    act(() =>
      ws.receive({ type: "order", channel: "orders", data: { type: "order", ...order("c", "REJECTED", "RISK_ACCOUNT_HALTED: daily loss") } }),
    );
    expect(await within(toasts).findByText("Order rejected: BUY 10 NSE:INFY (RISK_ACCOUNT_HALTED: daily loss)")).toBeInTheDocument();
  });
});
