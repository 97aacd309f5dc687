import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, apiError, instrument, loggedIn, mockApi, user } from "../test/http";
import { renderApp } from "../test/render";
import { MOMENTUM, SMA_CROSS, backtestRun, deployment } from "../test/backtests";

vi.mock("lightweight-charts", async () => (await import("../test/chartMock")).chartModule);

function stub(role: "trader" | "viewer", routes: Parameters<typeof mockApi>[0] = {}) {
  loggedIn();
  return mockApi({
    "GET /api/v1/auth/me": () => user(role),
    "GET /api/v1/strategies": () => ({
      strategies: [MOMENTUM, SMA_CROSS],
      errors: [{ file: "broken.py", line: 12, message: "SyntaxError: invalid syntax" }],
    }),
    "GET /api/v1/instruments": () => ({ items: [instrument()] }),
    ...routes,
  });
}

async function addSymbol(ui: ReturnType<typeof userEvent.setup>, form: HTMLElement) {
  await ui.type(within(form).getByRole("combobox", { name: "Add symbol" }), "INFY");
  await ui.click(await screen.findByRole("option", { name: /NSE:INFY/ }));
  await waitFor(() => expect(within(form).getByRole("list", { name: "Symbols" })).toHaveTextContent("NSE:INFY"));
}

describe("StrategiesPage", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("lists the strategies, warns about files that failed to load, and generates the form from the schema", async () => {
    stub("trader");
    renderApp("/strategies/sma_cross");
    const list = await screen.findByRole("region", { name: "Strategies" });
    expect(await within(list).findByRole("link", { name: "sma_cross" })).toBeInTheDocument();
    expect(within(list).getByRole("row", { name: /momentum_rotation/ })).toHaveTextContent("builtin");
    expect(screen.getByRole("alert")).toHaveTextContent("Could not load broken.py:12 SyntaxError: invalid syntax");

    const form = await screen.findByRole("form", { name: "Backtest" });
    const fast = within(form).getByLabelText("Fast");
    expect(fast).toHaveValue(10);
    expect(fast).toHaveAttribute("min", "1");
    expect(fast).toHaveAttribute("max", "5000");
    expect(fast).toHaveAttribute("step", "1");
    expect(fast).toHaveAccessibleDescription(/Bars in the fast moving average\. \(whole number, ≥ 1, ≤ 5000; default 10\)/);
    expect(within(form).getByLabelText("Slow")).toHaveValue(50);
    // sma_cross is vectorized: both engines; the buttons are there for a trader
    expect(within(form).getByRole("option", { name: "vector" })).toBeInTheDocument();
    expect(within(form).getByRole("button", { name: "Run backtest" })).toBeEnabled();
    expect(within(form).getByRole("button", { name: "Deploy on paper" })).toBeEnabled();
  });

  it("checks the schema's bounds in the browser, then POSTs the exact body and opens the run", async () => {
    const created = backtestRun({ id: "f".repeat(32) });
    const { calls } = stub("trader", {
      "POST /api/v1/backtests": () => new Response(JSON.stringify(created), { status: 202, headers: { "Content-Type": "application/json" } }),
      "GET /api/v1/backtests/ffffffffffffffffffffffffffffffff": () => created,
    });
    const ui = userEvent.setup();
    renderApp("/strategies/sma_cross");
    const form = await screen.findByRole("form", { name: "Backtest" });
    await ui.clear(within(form).getByLabelText("Fast"));
    await ui.type(within(form).getByLabelText("Fast"), "0");
    await ui.clear(within(form).getByLabelText("Slow"));
    await ui.type(within(form).getByLabelText("Slow"), "2.5");
    await ui.click(within(form).getByRole("button", { name: "Run backtest" }));
    expect(within(form).getByText("Must be at least 1.")).toBeInTheDocument();
    expect(within(form).getByText("Must be a whole number.")).toBeInTheDocument();
    expect(within(form).getByText("Choose at least one symbol.")).toBeInTheDocument();
    expect(within(form).getByLabelText("Fast")).toHaveAttribute("aria-invalid", "true");
    expect(calls.some((c) => c.method === "POST")).toBe(false);

    await ui.clear(within(form).getByLabelText("Fast"));
    await ui.type(within(form).getByLabelText("Fast"), "5");
    await ui.clear(within(form).getByLabelText("Slow"));
    await ui.type(within(form).getByLabelText("Slow"), "20");
    expect(within(form).queryByText("Must be at least 1.")).not.toBeInTheDocument();
    await addSymbol(ui, form);
    await ui.clear(within(form).getByLabelText("Start"));
    await ui.type(within(form).getByLabelText("Start"), "2024-01-01");
    await ui.clear(within(form).getByLabelText("End"));
    await ui.type(within(form).getByLabelText("End"), "2024-12-31");
    await ui.clear(within(form).getByLabelText("Cash (INR)"));
    await ui.type(within(form).getByLabelText("Cash (INR)"), "2500000.50");
    await ui.selectOptions(within(form).getByLabelText("Costs"), "bps");
    await ui.type(within(form).getByLabelText("Costs (bps)"), "3");
    await ui.type(within(form).getByLabelText("Slippage (bps)"), "1.5");
    await ui.selectOptions(within(form).getByLabelText("Engine"), "vector");
    await ui.click(within(form).getByRole("button", { name: "Run backtest" }));

    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.path).toBe("/api/v1/backtests");
    expect(post.body).toEqual({
      strategy: "sma_cross",
      symbols: ["NSE:INFY"],
      interval: "1d",
      start: "2024-01-01",
      end: "2024-12-31",
      params: { fast: 5, slow: 20 },
      cash: "2500000.50",
      costs: "bps:3",
      slippage_bps: "1.5",
      engine: "vector",
      seed: 0,
    });
    // the run's page
    expect(await screen.findByRole("heading", { name: /sma_cross on NSE:INFY/ })).toBeInTheDocument();
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "0");
  });

  it("shows the API's refusal next to the field it names", async () => {
    stub("trader", {
      "POST /api/v1/backtests": () =>
        apiError(422, "STRATEGY_BAD_PARAMS", "bad parameters for sma_cross: slow: must be more than fast", {
          errors: [{ loc: ["slow"], msg: "Value error, slow must be more than fast", type: "value_error" }],
        }),
    });
    const ui = userEvent.setup();
    renderApp("/strategies/sma_cross");
    const form = await screen.findByRole("form", { name: "Backtest" });
    await addSymbol(ui, form);
    await ui.click(within(form).getByRole("button", { name: "Run backtest" }));
    const slowError = await within(form).findByText("Value error, slow must be more than fast");
    expect(within(form).getByLabelText("Slow")).toHaveAccessibleDescription(/slow must be more than fast/);
    expect(slowError).toHaveAttribute("role", "alert");
    expect(within(form).getAllByRole("alert").some((a) => a.textContent?.includes("[STRATEGY_BAD_PARAMS]"))).toBe(true);
    // editing the field clears the API's message for it
    await ui.type(within(form).getByLabelText("Slow"), "0");
    expect(within(form).queryByText("Value error, slow must be more than fast")).not.toBeInTheDocument();
  });

  it("deploys on paper after a confirm, with symbols, interval and params only", async () => {
    const { calls } = stub("trader", {
      "POST /api/v1/strategies/sma_cross/deployments": () =>
        new Response(JSON.stringify(deployment()), { status: 201, headers: { "Content-Type": "application/json" } }),
      "GET /api/v1/deployments": () => ({ items: [deployment()] }),
      ["GET /api/v1/deployments/" + "d".repeat(32)]: () => deployment(),
      ["GET /api/v1/deployments/" + "d".repeat(32) + "/activity"]: () => ({
        deployment_id: "d".repeat(32),
        orders: 0,
        fills: [],
        charges: "0.00",
        realised_pnl: "0.00",
        unrealised_pnl: "0.00",
        pnl: "0.00",
        positions: {},
      }),
    });
    const ui = userEvent.setup();
    renderApp("/strategies/sma_cross");
    const form = await screen.findByRole("form", { name: "Backtest" });
    await addSymbol(ui, form);
    await ui.selectOptions(within(form).getByLabelText("Interval"), "5m");
    await ui.click(within(form).getByRole("button", { name: "Deploy on paper" }));
    const confirm = within(form).getByRole("group", { name: "Confirm deployment" });
    expect(confirm).toHaveTextContent("Deploy sma_cross on NSE:INFY at 5m");
    await ui.click(within(confirm).getByRole("button", { name: "Confirm deploy" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({ symbols: ["NSE:INFY"], interval: "5m", params: { fast: 10, slow: 50 } });
    expect(await screen.findByRole("heading", { name: /sma_cross on NSE:TCS/ })).toBeInTheDocument();
  });

  it("offers only the event engine for a strategy without a vectorized form", async () => {
    stub("trader");
    renderApp("/strategies/momentum_rotation");
    const form = await screen.findByRole("form", { name: "Backtest" });
    const engine = within(form).getByLabelText("Engine");
    expect(within(engine).getAllByRole("option").map((o) => o.textContent)).toEqual(["event"]);
  });

  it("a viewer gets the form read-only, without buttons", async () => {
    stub("viewer");
    renderApp("/strategies/sma_cross");
    const form = await screen.findByRole("form", { name: "Backtest" });
    expect(within(form).getByLabelText("Fast")).toBeDisabled();
    expect(within(form).getByLabelText("Cash (INR)")).toBeDisabled();
    expect(within(form).queryByRole("button", { name: "Run backtest" })).not.toBeInTheDocument();
    expect(within(form).queryByRole("button", { name: "Deploy on paper" })).not.toBeInTheDocument();
  });
});
