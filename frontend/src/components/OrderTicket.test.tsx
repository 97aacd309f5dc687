import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { apiError, FakeWebSocket, instrument, loggedIn, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";

const estimate = {
  total: "45.67",
  breakeven_points: "0.45",
};

function stubTrader(extra: Record<string, Parameters<typeof mockApi>[0][string]> = {}) {
  loggedIn();
  return mockApi({
    "GET /api/v1/auth/me": () => user("trader"),
    "GET /api/v1/wallet": () => wallet(),
    "GET /api/v1/positions": () => [],
    "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/instruments": () => ({ items: [instrument({ lot_size: 25, ref: "NSE:NIFTYBEES" })] }),
    "GET /api/v1/instruments/NSE:NIFTYBEES": () => instrument({ ref: "NSE:NIFTYBEES", lot_size: 25, tick_size: "0.05" }),
    "GET /api/v1/charges/estimate": () => estimate,
    ...extra,
  });
}

async function chooseSymbol(ui: ReturnType<typeof userEvent.setup>) {
  const ticket = await screen.findByRole("form", { name: "Order ticket" });
  const combo = within(ticket).getByRole("combobox", { name: "Symbol" });
  await ui.type(combo, "NIFTYB");
  await screen.findByRole("option", { name: /NSE:NIFTYBEES/ });
  await ui.keyboard("{Enter}"); // keyboard: the first suggestion
  await within(ticket).findByText(/tick 0\.05 · lot 25/);
  return ticket;
}

describe("OrderTicket", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("checks lot and tick like the API and sends nothing while invalid", async () => {
    const { calls } = stubTrader();
    const ui = userEvent.setup();
    renderApp("/");
    const ticket = await chooseSymbol(ui);

    await ui.clear(within(ticket).getByLabelText("Quantity"));
    await ui.type(within(ticket).getByLabelText("Quantity"), "30");
    await ui.type(within(ticket).getByLabelText("Limit price"), "250.03");
    await ui.click(within(ticket).getByRole("button", { name: /^Buy/ }));

    expect(within(ticket).getByText("Quantity must be a multiple of the lot size 25")).toBeInTheDocument();
    expect(within(ticket).getByText("Limit price must be a multiple of the tick size 0.05")).toBeInTheDocument();
    expect(calls.some((c) => c.method === "POST")).toBe(false);
  });

  it("sends the order body the API expects, and previews charges", async () => {
    const { calls } = stubTrader({
      "POST /api/v1/orders": (req) => new Response(JSON.stringify({ ...(req.body as object), id: "o1", status: "OPEN" }), { status: 201, headers: { "Content-Type": "application/json" } }),
    });
    const ui = userEvent.setup();
    renderApp("/");
    const ticket = await chooseSymbol(ui);

    await ui.click(within(ticket).getByLabelText("Sell"));
    await ui.selectOptions(within(ticket).getByLabelText("Type"), "SL");
    await ui.selectOptions(within(ticket).getByLabelText("Product"), "MIS");
    await ui.selectOptions(within(ticket).getByLabelText("Validity"), "IOC");
    await ui.clear(within(ticket).getByLabelText("Quantity"));
    await ui.type(within(ticket).getByLabelText("Quantity"), "50");
    await ui.type(within(ticket).getByLabelText("Limit price"), "249.95");
    await ui.type(within(ticket).getByLabelText("Trigger price"), "250.00");

    expect(await within(ticket).findByLabelText("Charges preview")).toHaveTextContent("₹45.67");
    const preview = calls.find((c) => c.path === "/api/v1/charges/estimate")!;
    expect(Object.fromEntries(preview.search)).toMatchObject({ segment: "equity_intraday", exchange: "NSE", quantity: "50" });

    await ui.keyboard("{Enter}"); // submit from the keyboard
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.path === "/api/v1/orders")).toBe(true));
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({
      client_order_id: expect.stringMatching(/^ui-[0-9a-f]{24}$/),
      symbol: "NSE:NIFTYBEES",
      side: "SELL",
      quantity: 50,
      order_type: "SL",
      limit_price: "249.95",
      stop_price: "250.00",
      product: "MIS",
      time_in_force: "IOC",
    });
    expect(post.auth).toBe("Bearer access-1");
  });

  it("shows the API's refusal in words", async () => {
    stubTrader({
      "POST /api/v1/orders": () => apiError(409, "ORDER_INSUFFICIENT_FUNDS", "Not enough cash: need 5000.00, have 10.00."),
    });
    const ui = userEvent.setup();
    renderApp("/");
    const ticket = await chooseSymbol(ui);
    await ui.clear(within(ticket).getByLabelText("Quantity"));
    await ui.type(within(ticket).getByLabelText("Quantity"), "25");
    await ui.type(within(ticket).getByLabelText("Limit price"), "200");
    await ui.click(within(ticket).getByRole("button", { name: /^Buy/ }));
    expect(await within(ticket).findByRole("alert")).toHaveTextContent(
      "Not enough cash: need 5000.00, have 10.00. [ORDER_INSUFFICIENT_FUNDS]",
    );
  });
});
