/**
 * The session's token pair: kept in localStorage (shared by tabs), refreshed once at a time.
 *
 * Refresh tokens rotate and a reused one revokes the whole session, so two tabs must never
 * spend the same refresh token: the refresh runs under a Web Lock (when the browser has them)
 * and re-reads storage inside it; if another tab already rotated the pair, it is used as is.
 */

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  /** epoch ms when the access token expires */
  expires_at: number;
}

const KEY = "quantdesk.tokens";
type Listener = (tokens: TokenPair | null) => void;
const listeners = new Set<Listener>();
let inflight: Promise<TokenPair | null> | null = null;

export function getTokens(): TokenPair | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as TokenPair) : null;
  } catch {
    return null;
  }
}

export function setTokens(tokens: TokenPair | null): void {
  if (tokens) localStorage.setItem(KEY, JSON.stringify(tokens));
  else localStorage.removeItem(KEY);
  listeners.forEach((l) => l(tokens));
}

export function onTokens(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function fromResponse(body: { access_token: string; refresh_token: string; expires_in: number }): TokenPair {
  return {
    access_token: body.access_token,
    refresh_token: body.refresh_token,
    expires_at: Date.now() + body.expires_in * 1000,
  };
}

// Another tab logged in, out or refreshed: follow it.
if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key === KEY) listeners.forEach((l) => l(getTokens()));
  });
}

/**
 * Exchange the refresh token for a new pair (single flight). Resolves to the new pair, or null
 * when the session is over (the tokens are then cleared, which logs the UI out).
 */
export function refreshTokens(spent?: string): Promise<TokenPair | null> {
  inflight ??= withLock(() => doRefresh(spent)).finally(() => {
    inflight = null;
  });
  return inflight;
}

async function doRefresh(spent?: string): Promise<TokenPair | null> {
  const current = getTokens();
  if (!current) return null;
  // Someone else (another tab, or an earlier flight) rotated already: that pair is good.
  if (spent && current.access_token !== spent && current.expires_at > Date.now() + 5_000) {
    return current;
  }
  let response: Response;
  try {
    response = await fetch(new Request(`${window.location.origin}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    }));
  } catch {
    return null; // network down: keep the tokens, the caller shows its own error
  }
  if (!response.ok) {
    if (response.status === 400 || response.status === 401) setTokens(null);
    return null;
  }
  const pair = fromResponse(await response.json());
  setTokens(pair);
  return pair;
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  return locks ? locks.request("quantdesk.refresh", fn) : fn();
}
