/** A fetch stub at the network boundary: routes "METHOD /path" to handlers, records requests. */
import { vi } from "vitest";
import { CSRF_COOKIE, setTokens } from "../api/tokens";

export interface Recorded {
  method: string;
  path: string;
  search: URLSearchParams;
  auth: string | null;
  headers: Headers;
  body: unknown;
}

type Handler = (req: Recorded) => Response | unknown | Promise<Response | unknown>;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

export function apiError(status: number, code: string, message: string, details?: unknown): Response {
  return json({ error: { code, message, details } }, status);
}

export function mockApi(routes: Record<string, Handler>) {
  const calls: Recorded[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    const text = request.method === "GET" || request.method === "HEAD" ? "" : await request.text();
    const rec: Recorded = {
      method: request.method,
      path: decodeURIComponent(url.pathname),
      search: url.searchParams,
      auth: request.headers.get("Authorization"),
      headers: request.headers,
      body: text ? JSON.parse(text) : undefined,
    };
    calls.push(rec);
    const handler = routes[`${rec.method} ${rec.path}`];
    if (!handler) return apiError(404, "NOT_FOUND", `no stub for ${rec.method} ${rec.path}`);
    const out = await handler(rec);
    return out instanceof Response ? out : json(out);
  });
  vi.stubGlobal("fetch", fetchMock);
  return { calls, fetchMock };
}

/** A logged-in page: the access token in memory and the session's (readable) CSRF cookie. */
export function loggedIn(access = "access-1", csrf = "csrf-1"): void {
  setTokens({ access_token: access, expires_at: Date.now() + 15 * 60_000 });
  document.cookie = `${CSRF_COOKIE}=${csrf}; Path=/`;
}

/** Back to a fresh page: no access token, no session cookie. */
export function loggedOut(): void {
  setTokens(null);
  if (typeof document !== "undefined") document.cookie = `${CSRF_COOKIE}=; Max-Age=0; Path=/`;
}

export const user = (role: "admin" | "trader" | "viewer", id = 2) => ({
  id,
  username: role,
  role,
  is_active: true,
  created_at: "2025-01-01T00:00:00Z",
  updated_at: "2025-01-01T00:00:00Z",
});

export const instrument = (overrides: Record<string, unknown> = {}) => ({
  ref: "NSE:INFY",
  exchange: "NSE",
  symbol: "INFY",
  name: "Infosys",
  isin: "INE009A01021",
  segment: "NSE",
  instrument_type: "EQ",
  tick_size: "0.05",
  lot_size: 1,
  currency: "INR",
  price_band_pct: "20",
  last_price: "1500.00",
  kite_instrument_token: null,
  kite_exchange_token: null,
  is_active: true,
  updated_at: "2025-01-01T00:00:00Z",
  ...overrides,
});

export const wallet = (available = "100000.00") => ({
  user_id: 2,
  balances: { INR: { available, held: "0.00", margin: "0.00", total: available } },
});

/** A fake WebSocket for the stream: tests drive open/message/close by hand. */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onclose: ((e: CloseEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;

  constructor(public url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close", { code }));
  }
  // test drivers
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  receive(frame: unknown) {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(frame) }));
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close", { code }));
  }
  static reset() {
    FakeWebSocket.instances = [];
  }
  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]!;
  }
}
