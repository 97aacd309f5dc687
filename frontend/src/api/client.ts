/**
 * The typed API client: openapi-fetch over the generated schema, with a fetch that adds the
 * in-memory access token as a bearer header and, on a 401, gets a new one once (a refresh by
 * the HttpOnly cookie, see tokens.ts) and retries the request.
 */
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";
import { ApiError, toApiError } from "./errors";
import { getTokens, refreshTokens } from "./tokens";

export type Schemas = components["schemas"];

const NO_REFRESH = ["/api/v1/auth/login", "/api/v1/auth/refresh"];

export async function authFetch(request: Request): Promise<Response> {
  const retry = request.clone();
  const sent = getTokens()?.access_token;
  const response = await fetch(withToken(request, sent));
  if (response.status !== 401 || !sent || NO_REFRESH.some((p) => request.url.includes(p))) {
    return response;
  }
  const pair = await refreshTokens(sent);
  if (!pair) return response;
  return fetch(withToken(retry, pair.access_token));
}

function withToken(request: Request, token: string | undefined): Request {
  if (token) request.headers.set("Authorization", `Bearer ${token}`);
  return request;
}

export const api = createClient<paths>({
  baseUrl: typeof window !== "undefined" ? window.location.origin : "http://localhost",
  fetch: authFetch,
});

/**
 * Unwrap an openapi-fetch result: the data, or throw the envelope as an ApiError.
 * Usage: `const wallet = await unwrap(api.GET("/api/v1/wallet"))`.
 */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw toApiError(response.status, error);
  if (data === undefined && response.status !== 204) {
    throw new ApiError(response.status, "EMPTY_RESPONSE", "The server sent no data.");
  }
  return data as T;
}
