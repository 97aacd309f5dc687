/**
 * The session's access token: in memory only (never localStorage or sessionStorage), refreshed
 * once at a time.
 *
 * The refresh token lives in the HttpOnly `qd_refresh` cookie, which page scripts cannot read:
 * a refresh is `POST /api/v1/auth/refresh` with no body, the cookie, and the `X-CSRF-Token`
 * header echoing the (readable) `qd_csrf` cookie. A page load starts logged out and asks for an
 * access token that way, so a reload keeps the session.
 *
 * Refresh tokens rotate and a reused one revokes the whole session; all tabs share the cookie,
 * so two tabs must never present it at once: the refresh runs under a Web Lock (when the
 * browser has them). Logins and logouts are announced to the other tabs on a BroadcastChannel.
 */

export interface AccessToken {
  access_token: string;
  /** epoch ms when the access token expires */
  expires_at: number;
}

export const CSRF_COOKIE = "qd_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
const REFRESH_URL = "/api/v1/auth/refresh";
/** Where versions before the cookie session kept the token pair. */
const LEGACY_KEY = "quantdesk.tokens";

type Listener = (tokens: AccessToken | null) => void;
const listeners = new Set<Listener>();
let current: AccessToken | null = null;
let inflight: Promise<AccessToken | null> | null = null;

export function getTokens(): AccessToken | null {
  return current;
}

export function setTokens(tokens: AccessToken | null): void {
  current = tokens;
  listeners.forEach((l) => l(tokens));
}

export function onTokens(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function fromResponse(body: { access_token: string; expires_in: number }): AccessToken {
  return { access_token: body.access_token, expires_at: Date.now() + body.expires_in * 1000 };
}

/** The session's CSRF token (the `qd_csrf` cookie), or null when there is no cookie session. */
export function csrfToken(): string | null {
  if (typeof document === "undefined") return null;
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("=")) || null;
  }
  return null;
}

/** Whether the browser holds a session cookie a refresh could use (e.g. after a reload). */
export function hasSessionCookie(): boolean {
  return csrfToken() !== null;
}

/**
 * Drop the readable CSRF cookie (logout does this server-side too; this covers a logout whose
 * request failed): without it the page never presents the refresh cookie again, so a reload
 * stays logged out.
 */
export function forgetSessionCookie(): void {
  if (typeof document === "undefined") return;
  document.cookie = `${CSRF_COOKIE}=; Max-Age=0; Path=/; Secure; SameSite=Strict`;
}

/** Forget tokens an earlier version stored in localStorage; the cookie session replaces them. */
export function clearLegacyStorage(): void {
  try {
    localStorage.removeItem(LEGACY_KEY);
    sessionStorage.removeItem(LEGACY_KEY);
  } catch {
    // storage disabled: nothing was stored either
  }
}

/**
 * Ask for a new access token with the refresh cookie (single flight). Resolves to it, or to
 * null when the session is over (the token is then cleared, which logs the UI out).
 * `spent`: the access token the caller saw refused; if this tab already replaced it, the
 * replacement is returned without another refresh.
 */
export function refreshTokens(spent?: string): Promise<AccessToken | null> {
  inflight ??= withLock(() => doRefresh(spent)).finally(() => {
    inflight = null;
  });
  return inflight;
}

async function doRefresh(spent?: string): Promise<AccessToken | null> {
  const mine = current;
  if (spent && mine && mine.access_token !== spent && mine.expires_at > Date.now() + 5_000) {
    return mine;
  }
  // Read inside the lock: another tab's refresh may have just rotated the cookies.
  const csrf = csrfToken();
  if (!csrf) {
    setTokens(null); // no cookie session (never logged in, logged out, or cookies refused)
    return null;
  }
  let response: Response;
  try {
    response = await fetch(
      new Request(`${window.location.origin}${REFRESH_URL}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { [CSRF_HEADER]: csrf },
      }),
    );
  } catch {
    return null; // network down: keep the token, the caller shows its own error
  }
  if (!response.ok) {
    if (response.status >= 400 && response.status < 500) setTokens(null);
    return null;
  }
  const token = fromResponse(await response.json());
  setTokens(token);
  return token;
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  return locks ? locks.request("quantdesk.refresh", fn) : fn();
}

// --- other tabs -----------------------------------------------------------------------------

type TabMessage = { type: "login" } | { type: "logout" };
let channel: BroadcastChannel | null | undefined;

function tabs(): BroadcastChannel | null {
  if (channel === undefined) {
    channel = typeof BroadcastChannel !== "undefined" ? new BroadcastChannel("quantdesk.auth") : null;
    // Node's (in tests) would keep the process alive.
    (channel as unknown as { unref?: () => void } | null)?.unref?.();
    if (channel) channel.onmessage = (event: MessageEvent<TabMessage>) => onTabMessage(event.data);
  }
  return channel;
}

function onTabMessage(message: TabMessage): void {
  if (message.type === "logout") setTokens(null);
  else if (message.type === "login" && !current) void refreshTokens();
}

/** Tell the other tabs: they log out too, or pick up the new session with the shared cookie. */
export function announce(type: TabMessage["type"]): void {
  tabs()?.postMessage({ type } satisfies TabMessage);
}

/** Listen to the other tabs (called once by the AuthProvider). */
export function followOtherTabs(): void {
  tabs();
}
