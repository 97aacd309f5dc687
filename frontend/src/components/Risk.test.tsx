import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { apiError, FakeWebSocket, loggedIn, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";

const scope = (name: string, over: Record<string, unknown> = {}) => ({
  scope: name,
  kill_switch: false,
  kill_reason: null,
  kill_by: null,
  kill_at: null,
  halted: false,
  halt_kind: null,
  halt_reason: null,
  halted_at: null,
  ...over,
});

const riskState = (account: Record<string, unknown> = {}, global: Record<string, unknown> = {}) => {
  const a = scope("account", account);
  const g = scope("global", global);
  return { user_id: 2, global: g, account: a, trading_allowed: !(a.kill_switch || a.halted || g.kill_switch || g.halted) };
};

const noLimits = {
  max_order_quantity: null,
  max_order_value: null,
  max_position_value: null,
  max_gross_exposure: null,
  max_open_orders: null,
  allowed_exchanges: null,
  allowed_products: null,
  fat_finger_pct: null,
  max_orders_per_minute: null,
  daily_loss_limit: null,
  max_drawdown_pct: null,
  square_off_on_halt: null,
};

function stub(role: "admin" | "trader" | "viewer", extra: Record<string, Parameters<typeof mockApi>[0][string]> = {}) {
  loggedIn();
  return mockApi({
    "GET /api/v1/auth/me": () => user(role),
    "GET /api/v1/wallet": () => wallet(),
    "GET /api/v1/positions": () => [],
    "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/risk/state": () => riskState(),
    "GET /api/v1/admin/users": () => ({ items: [user("trader", 2), user("admin", 1)], next_cursor: null }),
    "GET /api/v1/admin/audit": () => ({ items: [], next_cursor: null }),
    "GET /api/v1/risk/limits": () => ({ user_id: null, effective: noLimits, defaults: noLimits, override: null }),
    ...extra,
  });
}

describe("risk in the UI", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("disables the ticket under a kill switch and says why", async () => {
    const { calls } = stub("trader", {
      "GET /api/v1/risk/state": () => riskState({ kill_switch: true, kill_reason: "runaway strategy", kill_by: 2 }),
    });
    const ui = userEvent.setup();
    renderApp("/");
    const ticket = await screen.findByRole("form", { name: "Order ticket" });
    const banner = await within(ticket).findByRole("alert", { name: "Trading blocked" });
    expect(banner).toHaveTextContent("Your account's kill switch is engaged: runaway strategy");
    expect(within(ticket).getByRole("button", { name: /^Buy/ })).toBeDisabled();
    expect(within(ticket).getByLabelText("Quantity")).toBeDisabled();
    await ui.click(within(ticket).getByRole("button", { name: /^Buy/ }));
    expect(calls.some((c) => c.method === "POST" && c.path === "/api/v1/orders")).toBe(false);
    // the dashboard card shows it too, and offers the release
    const card = screen.getByRole("region", { name: "Risk" });
    expect(within(card).getByRole("status", { name: "Trading status" })).toHaveTextContent("Trading blocked");
    expect(within(card).getByRole("button", { name: "Release my kill switch…" })).toBeInTheDocument();
  });

  it("says so when the global switch or a halt blocks trading", async () => {
    stub("trader", {
      "GET /api/v1/risk/state": () => riskState({ halted: true, halt_kind: "daily_loss", halt_reason: "session P&L -5200.00 below -5000.00" }),
    });
    renderApp("/");
    const ticket = await screen.findByRole("form", { name: "Order ticket" });
    expect(await within(ticket).findByRole("alert", { name: "Trading blocked" })).toHaveTextContent(
      "Your account is halted (daily loss): session P&L -5200.00 below -5000.00",
    );
  });

  it("a trader engages their own kill switch after confirming with a reason", async () => {
    let engaged = false;
    const { calls } = stub("trader", {
      "GET /api/v1/risk/state": () => riskState(engaged ? { kill_switch: true, kill_reason: "going to lunch" } : {}),
      "POST /api/v1/risk/kill-switch": () => {
        engaged = true;
        return { state: riskState({ kill_switch: true }).account, cancelled_orders: 2, square_off_orders: 0 };
      },
    });
    const ui = userEvent.setup();
    renderApp("/");
    await ui.click(await screen.findByRole("button", { name: "Engage my kill switch…" }));
    const dialog = screen.getByRole("dialog", { name: "Engage your account's kill switch?" });
    expect(within(dialog).getByRole("button", { name: "Engage" })).toBeDisabled(); // a reason is required
    await ui.type(within(dialog).getByLabelText("Reason"), "going to lunch");
    await ui.click(within(dialog).getByRole("button", { name: "Engage" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.path === "/api/v1/risk/kill-switch")).toBe(true));
    expect(calls.find((c) => c.path === "/api/v1/risk/kill-switch")!.body).toEqual({
      scope: "account",
      engaged: true,
      reason: "going to lunch",
      square_off: false,
    });
    const ticket = screen.getByRole("form", { name: "Order ticket" });
    expect(await within(ticket).findByRole("alert", { name: "Trading blocked" })).toHaveTextContent("going to lunch");
  });

  it("a viewer sees the risk state but no kill-switch control", async () => {
    stub("viewer", {
      "GET /api/v1/risk/state": () => riskState({}, { kill_switch: true, kill_reason: "exchange outage" }),
    });
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Risk" });
    expect(await within(card).findByText("Trading is stopped platform-wide by the global kill switch: exchange outage")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /kill switch/i })).not.toBeInTheDocument();
    expect(screen.queryByRole("form", { name: "Order ticket" })).not.toBeInTheDocument();
  });

  it("the limits editor sends the right body and shows the API's 422 message", async () => {
    let attempt = 0;
    const { calls } = stub("admin", {
      "PUT /api/v1/risk/limits": () => {
        attempt += 1;
        if (attempt === 1) {
          return apiError(422, "VALIDATION_ERROR", "Request validation failed.", [
            { loc: ["body", "max_drawdown_pct"], msg: "Value error, must be at most 100" },
          ]);
        }
        return { user_id: 2, effective: noLimits, defaults: noLimits, override: noLimits };
      },
    });
    const ui = userEvent.setup();
    renderApp("/admin");
    const section = await screen.findByRole("region", { name: "Risk controls" });
    await within(section).findByRole("option", { name: /trader \(#2/ });
    await ui.selectOptions(within(section).getByRole("combobox", { name: "Limits for" }), "2");
    const form = await within(section).findByRole("form", { name: "Risk limits" });
    await ui.type(within(form).getByLabelText("Max order quantity"), "500");
    await ui.type(within(form).getByLabelText("Max order value (INR)"), "250000.50");
    await ui.type(within(form).getByLabelText("Max drawdown (%)"), "150");
    await ui.click(within(form).getByLabelText("NSE"));
    await ui.click(within(form).getByRole("button", { name: "Save limits" }));

    expect(await within(form).findByRole("alert")).toHaveTextContent(
      "Request validation failed. (max_drawdown_pct: Value error, must be at most 100) [VALIDATION_ERROR]",
    );
    const put = calls.find((c) => c.method === "PUT")!;
    expect(put.search.get("user_id")).toBe("2");
    expect(put.body).toEqual({
      max_order_quantity: 500,
      max_order_value: "250000.50",
      max_drawdown_pct: "150",
      allowed_exchanges: ["NSE"],
    });

    await ui.clear(within(form).getByLabelText("Max drawdown (%)"));
    await ui.type(within(form).getByLabelText("Max drawdown (%)"), "12.5");
    await ui.click(within(form).getByRole("button", { name: "Save limits" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "PUT")).toHaveLength(2));
    expect(calls.filter((c) => c.method === "PUT")[1]!.body).toMatchObject({ max_drawdown_pct: "12.5" });
    await waitFor(() => expect(within(form).queryByRole("alert")).not.toBeInTheDocument());
  });

  it("an admin engages the global kill switch", async () => {
    const { calls } = stub("admin", {
      "POST /api/v1/risk/kill-switch": () => ({ state: riskState().global, cancelled_orders: 0, square_off_orders: 0 }),
    });
    const ui = userEvent.setup();
    renderApp("/admin");
    await ui.click(await screen.findByRole("button", { name: "Engage global kill switch…" }));
    const dialog = screen.getByRole("dialog", { name: "Engage the global kill switch?" });
    await ui.type(within(dialog).getByLabelText("Reason"), "exchange outage");
    await ui.click(within(dialog).getByLabelText(/close every position/));
    await ui.click(within(dialog).getByRole("button", { name: "Engage" }));
    await waitFor(() => expect(calls.some((c) => c.path === "/api/v1/risk/kill-switch")).toBe(true));
    expect(calls.find((c) => c.path === "/api/v1/risk/kill-switch")!.body).toEqual({
      scope: "global",
      engaged: true,
      reason: "exchange outage",
      square_off: true,
    });
  });
});
