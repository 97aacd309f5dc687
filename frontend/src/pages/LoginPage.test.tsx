import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { getTokens } from "../api/tokens";
import { apiError, FakeWebSocket, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";

describe("login", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("shows the API's error message on a failed login", async () => {
    mockApi({ "POST /api/v1/auth/login": () => apiError(401, "AUTH_INVALID_CREDENTIALS", "Wrong username or password.") });
    const ui = userEvent.setup();
    renderApp("/");
    await ui.type(await screen.findByLabelText("Username"), "trader");
    await ui.type(screen.getByLabelText("Password"), "nope");
    await ui.click(screen.getByRole("button", { name: "Log in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong username or password. [AUTH_INVALID_CREDENTIALS]");
  });

  it("keeps the access token in memory only and opens the dashboard", async () => {
    const { calls } = mockApi({
      "POST /api/v1/auth/login": () => ({ access_token: "a1", refresh_token: null, token_type: "bearer", expires_in: 900 }),
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/wallet": () => wallet("42.00"),
      "GET /api/v1/positions": () => [],
      "GET /api/v1/orders": () => ({ items: [], next_cursor: null }),
      "GET /api/v1/trades": () => ({ items: [], next_cursor: null }),
    });
    const ui = userEvent.setup();
    renderApp("/");
    await ui.type(await screen.findByLabelText("Username"), "trader");
    await ui.type(screen.getByLabelText("Password"), "secret-password");
    await ui.keyboard("{Enter}");
    const walletCard = await screen.findByRole("region", { name: "Wallet" });
    expect(await within(walletCard).findAllByText("₹42.00")).toHaveLength(2); // available and total
    // the refresh token stays in the HttpOnly cookie
    expect(calls[0]!.body).toEqual({ username: "trader", password: "secret-password", refresh_token_in_body: false });
    expect(getTokens()).toMatchObject({ access_token: "a1" });
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
    expect(FakeWebSocket.last.url).toMatch(/\/api\/v1\/ws\?token=a1$/);
  });
});
