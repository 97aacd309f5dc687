/**
 * The one WebSocket of the app (see docs/websocket.md): reconnects with exponential backoff,
 * resubscribes every channel that has listeners, and reports whether the stream is live.
 *
 * Framework-free so it can be tested with a fake WebSocket; React binds it in StreamProvider.
 */

export interface Frame {
  type: string;
  channel?: string;
  data?: unknown;
  code?: string;
  message?: string;
  heartbeat_seconds?: number;
}

export type StreamState = "idle" | "connecting" | "live" | "down";
type FrameListener = (frame: Frame) => void;
type StateListener = (state: StreamState) => void;

export interface StreamOptions {
  /** Builds the URL with the current token, or null when logged out. */
  url: () => string | null;
  WebSocketImpl?: typeof WebSocket;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** 0..1, the random share of each delay (0 in tests for determinism) */
  jitter?: number;
  /** Called on close 4401 (token expired/revoked): refresh, and say whether to reconnect. */
  onAuthError?: () => Promise<boolean>;
  /** Called after a reconnect: events were missed while down, so re-read state over REST. */
  onResync?: () => void;
}

export class StreamClient {
  private ws: WebSocket | null = null;
  private readonly channels = new Map<string, Set<FrameListener>>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly anyListeners = new Set<FrameListener>();
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdog: ReturnType<typeof setTimeout> | null = null;
  private heartbeatMs = 15_000;
  private wasLive = false;
  private stopped = true;
  state: StreamState = "idle";

  constructor(private readonly opts: StreamOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.close(1000, "bye");
    }
    this.wasLive = false;
    this.setState("idle");
  }

  /** Listen to one channel; the subscription lives while it has listeners. */
  subscribe(channel: string, listener: FrameListener): () => void {
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
      if (this.state === "live") this.send({ op: "subscribe", channels: [channel] });
    }
    set.add(listener);
    return () => {
      const current = this.channels.get(channel);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.channels.delete(channel);
        if (this.state === "live") this.send({ op: "unsubscribe", channels: [channel] });
      }
    };
  }

  /** Every frame (errors included), for logging and toasts. */
  onFrame(listener: FrameListener): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  onState(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** A refreshed access token: renew the open connection's authentication in place. */
  reauthenticate(token: string): void {
    if (this.state === "live") this.send({ op: "auth", token });
  }

  private connect(): void {
    const url = this.opts.url();
    if (!url) {
      this.setState("down");
      return;
    }
    this.setState("connecting");
    const Impl = this.opts.WebSocketImpl ?? WebSocket;
    const ws = new Impl(url);
    this.ws = ws;
    ws.onmessage = (event: MessageEvent) => this.handle(event.data);
    ws.onerror = () => {
      // onclose follows and schedules the retry
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      this.setState("down");
      if (this.stopped) return;
      if (event.code === 4401 && this.opts.onAuthError) {
        void this.opts.onAuthError().then((again) => {
          if (again && !this.stopped) this.scheduleRetry();
        });
        return;
      }
      this.scheduleRetry();
    };
  }

  private handle(raw: unknown): void {
    let frame: Frame;
    try {
      frame = JSON.parse(String(raw)) as Frame;
    } catch {
      return;
    }
    this.armWatchdog();
    if (frame.type === "welcome") {
      if (frame.heartbeat_seconds) this.heartbeatMs = frame.heartbeat_seconds * 1000;
      this.attempt = 0;
      const resync = this.wasLive;
      this.wasLive = true;
      this.setState("live");
      const channels = [...this.channels.keys()];
      if (channels.length) this.send({ op: "subscribe", channels });
      if (resync) this.opts.onResync?.();
      this.armWatchdog();
    }
    this.anyListeners.forEach((l) => l(frame));
    if (frame.channel) this.channels.get(frame.channel)?.forEach((l) => l(frame));
  }

  private send(message: object): void {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
  }

  private scheduleRetry(): void {
    const initial = this.opts.initialDelayMs ?? 500;
    const max = this.opts.maxDelayMs ?? 30_000;
    const jitter = this.opts.jitter ?? 0.3;
    const base = Math.min(max, initial * 2 ** this.attempt);
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  /** No frame for ~2.5 heartbeats: the connection is dead even if TCP has not noticed. */
  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      const ws = this.ws;
      if (ws) {
        ws.close(4000, "heartbeat timeout");
        ws.onclose?.(new CloseEvent("close", { code: 4000 }));
      }
    }, this.heartbeatMs * 2.5);
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.retryTimer = null;
    this.watchdog = null;
  }

  private setState(state: StreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.stateListeners.forEach((l) => l(state));
  }
}

/** ws(s)://host/api/v1/ws?token=... for the page's own origin. */
export function streamUrl(token: string): string {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/api/v1/ws?token=${encodeURIComponent(token)}`;
}
