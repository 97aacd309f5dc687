import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
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

type Stored = { id: number; title: string; read_at: string | null; severity?: string; created_at?: string };

/** A stand-in for the server's alert inbox: lists, and marks read, what the test put in. */
function inboxOf(alerts: Stored[]) {
  const full = (a: Stored) => ({
    user_id: 2,
    kind: "risk_halt",
    body: "",
    similar: 0,
    severity: "warning",
    created_at: new Date(Date.now() - (100 - a.id) * 60_000).toISOString(),
    ...a,
  });
  const unread = () => alerts.filter((a) => a.read_at === null).length;
  return {
    "GET /api/v1/alerts": () => ({
      items: [...alerts].sort((a, b) => b.id - a.id).map(full),
      next_cursor: null,
      unread_count: unread(),
    }),
    "POST /api/v1/alerts/read-all": (req: { body: unknown }) => {
      const maxId = (req.body as { max_id?: number } | undefined)?.max_id ?? Infinity;
      const hit = alerts.filter((a) => a.read_at === null && a.id <= maxId);
      hit.forEach((a) => (a.read_at = "2025-01-31T12:00:00Z"));
      return { marked: hit.length, unread_count: unread() };
    },
    ...Object.fromEntries(
      alerts.map((a) => [
        `POST /api/v1/alerts/${a.id}/read`,
        () => {
          a.read_at ??= "2025-01-31T12:00:00Z";
          return full(a);
        },
      ]),
    ),
  };
}

function stub(positions: unknown[], alerts: Stored[] = []) {
  loggedIn();
  return mockApi({
    ...inboxOf(alerts),
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

    // a live positions frame makes the page re-read the positions (the strip never reads the frame)
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
    expect(await within(card).findByText("No alerts")).toBeInTheDocument();
    expect(card).toHaveTextContent("stored on the server");

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
    expect(within(card).queryByText("No alerts")).not.toBeInTheDocument();
  });

  it("loads the stored alerts on mount, with their read state and the unread count", async () => {
    stub([], [
      { id: 11, title: "Order rejected: margin", read_at: null },
      { id: 10, title: "Kill switch engaged", read_at: "2025-01-31T10:00:00Z", severity: "critical" },
    ]);
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Alerts" });
    const items = await within(card).findAllByRole("listitem");
    expect(items.map((li) => li.querySelector("strong")?.textContent)).toEqual(["Order rejected: margin", "Kill switch engaged"]);
    expect(items[0]).toHaveClass("unread");
    expect(items[1]).toHaveClass("read");
    expect(within(items[1]!).queryByRole("button", { name: /Mark read/ })).not.toBeInTheDocument();
    expect(within(card).getByLabelText("1 unread")).toBeInTheDocument();
  });

  it("marks one alert read on the server and shows it read", async () => {
    const { calls } = stub([], [
      { id: 21, title: "Second", read_at: null },
      { id: 20, title: "First", read_at: null },
    ]);
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Alerts" });
    expect(await within(card).findByLabelText("2 unread")).toBeInTheDocument();
    await userEvent.click(within(card).getByRole("button", { name: "Mark read: First" }));

    await waitFor(() => expect(within(card).getByLabelText("1 unread")).toBeInTheDocument());
    expect(calls.filter((c) => c.method === "POST").map((c) => c.path)).toEqual(["/api/v1/alerts/20/read"]);
    const items = within(card).getAllByRole("listitem");
    await waitFor(() => expect(items[1]).toHaveClass("read"));
    expect(items[0]).toHaveClass("unread");
  });

  it("merges a live alert into the stored ones by its id, and marks all read up to the newest shown", async () => {
    const server: Stored[] = [{ id: 30, title: "Stored one", read_at: null }];
    const { calls } = stub([], server);
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Alerts" });
    await within(card).findByText("Stored one");

    const ws = await connect();
    // the server stored it (id 31) and published it live
    server.push({ id: 31, title: "Live one", read_at: null });
    act(() =>
      ws.receive({
        type: "alert",
        channel: "alerts",
        data: { type: "alert", id: 31, kind: "drawdown", severity: "info", title: "Live one", body: "", user_id: 2, ts: new Date().toISOString(), similar: 0, data: {} },
      }),
    );
    await within(card).findByText("Live one");
    expect(within(card).getByLabelText("2 unread")).toBeInTheDocument();

    await userEvent.click(within(card).getByRole("button", { name: "Mark all read" }));
    await waitFor(() => expect(within(card).queryByLabelText(/unread/)).not.toBeInTheDocument());
    const readAll = calls.find((c) => c.path === "/api/v1/alerts/read-all");
    expect(readAll?.body).toEqual({ max_id: 31 });
    // after the re-read the live alert is the stored one: listed once, read
    await waitFor(() => expect(within(card).getAllByRole("listitem")).toHaveLength(2));
    expect(within(card).getAllByRole("listitem").every((li) => li.classList.contains("read"))).toBe(true);
    expect(within(card).getByRole("button", { name: "Mark all read" })).toBeDisabled();
  });
});
