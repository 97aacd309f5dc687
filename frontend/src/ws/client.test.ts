import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket } from "../test/http";
import { StreamClient, type StreamState } from "./client";

function makeClient(extra: Partial<ConstructorParameters<typeof StreamClient>[0]> = {}) {
  let token = "t1";
  const client = new StreamClient({
    url: () => `ws://localhost/api/v1/ws?token=${token}`,
    WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
    initialDelayMs: 100,
    maxDelayMs: 1000,
    jitter: 0,
    ...extra,
  });
  return { client, setToken: (t: string) => (token = t) };
}

describe("StreamClient", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it("subscribes after welcome, reconnects with backoff and resubscribes", () => {
    const onResync = vi.fn();
    const { client, setToken } = makeClient({ onResync });
    const states: StreamState[] = [];
    client.onState((s) => states.push(s));
    const quotes: unknown[] = [];
    client.subscribe("quotes:NSE:INFY", (f) => quotes.push(f.data));
    client.subscribe("orders", () => {});
    client.start();

    const first = FakeWebSocket.last;
    expect(first.url).toBe("ws://localhost/api/v1/ws?token=t1");
    first.open();
    first.receive({ type: "welcome", user_id: 7, heartbeat_seconds: 15 });
    expect(first.sent).toEqual([{ op: "subscribe", channels: ["quotes:NSE:INFY", "orders"] }]);
    expect(client.state).toBe("live");
    first.receive({ type: "quote", channel: "quotes:NSE:INFY", data: { last: "1500.05" } });
    expect(quotes).toEqual([{ last: "1500.05" }]);

    // The connection drops: stale, then retries at 100 ms, 200 ms, ... with a fresh token.
    first.drop(1006);
    expect(client.state).toBe("down");
    setToken("t2");
    vi.advanceTimersByTime(99);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.drop(1006); // the server is still away
    vi.advanceTimersByTime(199);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);

    const third = FakeWebSocket.last;
    expect(third.url).toContain("token=t2");
    third.open();
    third.receive({ type: "welcome", user_id: 7, heartbeat_seconds: 15 });
    expect(third.sent).toEqual([{ op: "subscribe", channels: ["quotes:NSE:INFY", "orders"] }]);
    expect(onResync).toHaveBeenCalledTimes(1); // events were missed: re-read over REST
    expect(states).toEqual(["connecting", "live", "down", "connecting", "down", "connecting", "live"]);
    client.stop();
  });

  it("treats a silent connection as dead after 2.5 heartbeats", () => {
    const { client } = makeClient();
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive({ type: "welcome", user_id: 7, heartbeat_seconds: 1 });
    vi.advanceTimersByTime(2400);
    expect(client.state).toBe("live");
    vi.advanceTimersByTime(150); // 2.5 x 1 s of silence
    expect(client.state).toBe("down");
    vi.advanceTimersByTime(100); // then the first retry
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });

  it("refreshes on 4401 before reconnecting, and unsubscribes unused channels", async () => {
    const onAuthError = vi.fn(async () => true);
    const { client } = makeClient({ onAuthError });
    const off = client.subscribe("wallet", () => {});
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 7, heartbeat_seconds: 15 });
    off();
    expect(ws.sent.at(-1)).toEqual({ op: "unsubscribe", channels: ["wallet"] });
    client.reauthenticate("fresh");
    expect(ws.sent.at(-1)).toEqual({ op: "auth", token: "fresh" });

    ws.drop(4401);
    await vi.advanceTimersByTimeAsync(0);
    expect(onAuthError).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });
});
