import { describe, expect, it } from "vitest";
import { apiError, loggedIn, mockApi, wallet } from "../test/http";
import { api, unwrap } from "./client";
import { ApiError, errorMessage } from "./errors";
import { getTokens } from "./tokens";

describe("authFetch", () => {
  it("refreshes the token pair on a 401 and retries the request once", async () => {
    loggedIn("old-access", "old-refresh");
    const { calls } = mockApi({
      "GET /api/v1/wallet": (req) =>
        req.auth === "Bearer new-access" ? wallet("500.00") : apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
      "POST /api/v1/auth/refresh": (req) => {
        expect(req.body).toEqual({ refresh_token: "old-refresh" });
        return { access_token: "new-access", refresh_token: "new-refresh", token_type: "bearer", expires_in: 900 };
      },
    });

    const data = await unwrap(api.GET("/api/v1/wallet"));

    expect(data.balances.INR?.available).toBe("500.00");
    expect(calls.map((c) => `${c.method} ${c.path} ${c.auth ?? ""}`)).toEqual([
      "GET /api/v1/wallet Bearer old-access",
      "POST /api/v1/auth/refresh ",
      "GET /api/v1/wallet Bearer new-access",
    ]);
    expect(getTokens()).toMatchObject({ access_token: "new-access", refresh_token: "new-refresh" });
  });

  it("refreshes once for concurrent 401s (a rotated refresh token works only once)", async () => {
    loggedIn("old-access", "old-refresh");
    const { calls } = mockApi({
      "GET /api/v1/wallet": (req) =>
        req.auth === "Bearer new-access" ? wallet() : apiError(401, "AUTH_INVALID_TOKEN", "Token expired."),
      "POST /api/v1/auth/refresh": () => ({ access_token: "new-access", refresh_token: "r2", token_type: "bearer", expires_in: 900 }),
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
});
