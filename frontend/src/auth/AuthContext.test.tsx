import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { csrfToken, getTokens } from "../api/tokens";
import { apiError, FakeWebSocket, loggedIn, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";

const dashboard = {
  "GET /api/v1/auth/me": () => user("trader"),
  "GET /api/v1/wallet": () => wallet("42.00"),
  "GET /api/v1/positions": () => [],
  "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
  "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
};

/** A page load in a browser that holds the session cookies but, like any new page, no token. */
function reloadedWithSessionCookie(csrf = "csrf-9") {
  document.cookie = `qd_csrf=${csrf}; Path=/`;
}

describe("session across reloads", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("a reload with the session cookie gets an access token by cookie and stays logged in", async () => {
    reloadedWithSessionCookie("csrf-9");
    const { calls } = mockApi({
      ...dashboard,
      "POST /api/v1/auth/refresh": (req) => {
        expect(req.body).toBeUndefined();
        expect(req.headers.get("X-CSRF-Token")).toBe("csrf-9");
        return { access_token: "a-restored", refresh_token: null, token_type: "bearer", expires_in: 900 };
      },
    });
    renderApp("/wallet");
    expect(screen.getByText(/Restoring your session/)).toBeInTheDocument();
    expect(await screen.findByRole("navigation", { name: "Main" })).toBeInTheDocument();
    expect(screen.queryByRole("form", { name: "Log in" })).not.toBeInTheDocument();
    expect(calls[0]!.path).toBe("/api/v1/auth/refresh");
    expect(calls.find((c) => c.path === "/api/v1/auth/me")!.auth).toBe("Bearer a-restored");
    expect(localStorage.length).toBe(0);
  });

  it("without a session cookie the login page shows at once, without a request", async () => {
    const { calls } = mockApi({});
    renderApp("/");
    expect(await screen.findByRole("form", { name: "Log in" })).toBeInTheDocument();
    expect(calls).toHaveLength(0);
  });

  it("a cookie the server refuses leads to the login page", async () => {
    reloadedWithSessionCookie();
    mockApi({ "POST /api/v1/auth/refresh": () => apiError(401, "AUTH_REFRESH_REUSED", "Reused.") });
    renderApp("/");
    expect(await screen.findByRole("form", { name: "Log in" })).toBeInTheDocument();
    expect(getTokens()).toBeNull();
  });

  it("drops tokens an earlier version kept in localStorage", async () => {
    localStorage.setItem("quantdesk.tokens", JSON.stringify({ access_token: "old", refresh_token: "old-r" }));
    mockApi({});
    renderApp("/");
    expect(await screen.findByRole("form", { name: "Log in" })).toBeInTheDocument();
    expect(localStorage.getItem("quantdesk.tokens")).toBeNull();
  });

  it("log out ends the session on the server and forgets the token and the CSRF cookie", async () => {
    loggedIn("a1", "csrf-1");
    const { calls } = mockApi({ ...dashboard, "POST /api/v1/auth/logout": () => new Response(null, { status: 204 }) });
    const ui = userEvent.setup();
    renderApp("/");
    await ui.click(await screen.findByRole("button", { name: "Log out" }));
    expect(await screen.findByRole("form", { name: "Log in" })).toBeInTheDocument();
    const logout = calls.find((c) => c.path === "/api/v1/auth/logout")!;
    expect(logout.auth).toBe("Bearer a1");
    await waitFor(() => expect(getTokens()).toBeNull());
    expect(csrfToken()).toBeNull();
  });
});
