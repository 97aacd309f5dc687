import { describe, expect, it, vi } from "vitest";
import { apiError, loggedIn, mockApi, wallet } from "../test/http";
import { api, unwrap } from "./client";
import { ApiError, errorMessage } from "./errors";
import { clearLegacyStorage, CSRF_COOKIE, getTokens, refreshTokens } from "./tokens";

describe("authFetch", () => {
  it("refreshes by cookie on a 401 and retries the request once", async () => {
    loggedIn("old-access", "csrf-7");
    const { calls } = mockApi({
      "GET /api/v1/wallet": (req) =>
        req.auth === "Bearer new-access" ? wallet("500.00") : apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
      "POST /api/v1/auth/refresh": (req) => {
        // no body: the refresh token is the HttpOnly cookie; the CSRF cookie echoed in a header
        expect(req.body).toBeUndefined();
        expect(req.headers.get("X-CSRF-Token")).toBe("csrf-7");
        return { access_token: "new-access", refresh_token: null, token_type: "bearer", expires_in: 900 };
      },
    });

    const data = await unwrap(api.GET("/api/v1/wallet"));

    expect(data.balances.INR?.available).toBe("500.00");
    expect(calls.map((c) => `${c.method} ${c.path} ${c.auth ?? ""}`)).toEqual([
      "GET /api/v1/wallet Bearer old-access",
      "POST /api/v1/auth/refresh ",
      "GET /api/v1/wallet Bearer new-access",
    ]);
    expect(getTokens()).toMatchObject({ access_token: "new-access" });
    expect(JSON.stringify({ ...localStorage })).not.toContain("new-access");
    expect(JSON.stringify({ ...sessionStorage })).not.toContain("new-access");
  });

  it("refreshes once for concurrent 401s (a rotated refresh token works only once)", async () => {
    loggedIn("old-access");
    const { calls } = mockApi({
      "GET /api/v1/wallet": (req) =>
        req.auth === "Bearer new-access" ? wallet() : apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
      "POST /api/v1/auth/refresh": () => ({ access_token: "new-access", refresh_token: null, token_type: "bearer", expires_in: 900 }),
    });
    await Promise.all([unwrap(api.GET("/api/v1/wallet")), unwrap(api.GET("/api/v1/wallet"))]);
    expect(calls.filter((c) => c.path === "/api/v1/auth/refresh")).toHaveLength(1);
  });

  it("logs out when the refresh token is refused, and surfaces the envelope", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/wallet": () => apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
      "POST /api/v1/auth/refresh": () => apiError(401, "AUTH_SESSION_REVOKED", "The session was revoked."),
    });
    const error = await unwrap(api.GET("/api/v1/wallet")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(errorMessage(error)).toBe("Token expired. [AUTH_INVALID_TOKEN]");
    expect(getTokens()).toBeNull();
  });

  it("logs out without asking the server when there is no session cookie", async () => {
    loggedIn();
    loggedOutCookieOnly();
    const { calls } = mockApi({
      "GET /api/v1/wallet": () => apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
    });
    await unwrap(api.GET("/api/v1/wallet")).catch(() => undefined);
    expect(calls.map((c) => c.path)).toEqual(["/api/v1/wallet"]);
    expect(getTokens()).toBeNull();
  });
});

describe("refresh by cookie", () => {
  it("a refused CSRF check (403) ends the session in the UI", async () => {
    loggedIn();
    mockApi({ "POST /api/v1/auth/refresh": () => apiError(403, "AUTH_CSRF_INVALID", "No.") });
    expect(await refreshTokens()).toBeNull();
    expect(getTokens()).toBeNull();
  });

  it("keeps the token when the network is down", async () => {
    loggedIn("a1");
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("network"))));
    expect(await refreshTokens()).toBeNull();
    expect(getTokens()).toMatchObject({ access_token: "a1" });
  });

  it("clears tokens an earlier version left in localStorage", () => {
    localStorage.setItem("quantdesk.tokens", JSON.stringify({ access_token: "a", refresh_token: "r" }));
    clearLegacyStorage();
    expect(localStorage.getItem("quantdesk.tokens")).toBeNull();
  });
});

function loggedOutCookieOnly() {
  document.cookie = `${CSRF_COOKIE}=; Max-Age=0; Path=/`;
}
