/**
 * The session in a real browser: the refresh token in an HttpOnly cookie (Secure cookies are
 * accepted on http://127.0.0.1, a secure context for Chromium), the access token in memory
 * only, a reload that stays logged in, and a logout that clears the cookies.
 */
import { expect, test } from "@playwright/test";
import { login } from "./helpers";

test("the session survives a reload with no token in web storage", async ({ page, context }) => {
  const loginResponse = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/login") && r.ok());
  await login(page, "trader");
  const { access_token, refresh_token } = await (await loginResponse).json();
  expect(refresh_token).toBeNull(); // the UI asks for the cookie-only form

  const cookies = Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
  expect(cookies.qd_refresh).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/api/v1/auth" });
  expect(cookies.qd_csrf).toMatchObject({ httpOnly: false, secure: true, sameSite: "Strict", path: "/" });
  // page scripts cannot read the refresh token
  expect(await page.evaluate(() => document.cookie)).not.toContain("qd_refresh");

  const storage = () => page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage } }));
  expect(await storage()).not.toContain(access_token);
  expect(await storage()).not.toContain("quantdesk.tokens");

  const refreshed = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/refresh"));
  await page.reload();
  expect((await refreshed).status()).toBe(200);
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await expect(page.getByText("● Live")).toBeVisible();
  await expect(page).not.toHaveURL(/\/login/);

  // a typed URL is a page load too
  await page.goto("/wallet");
  await expect(page.getByRole("region", { name: "Ledger" })).toBeVisible();
  expect(await storage()).not.toMatch(/access_token|refresh_token/);

  // the rotated cookie is still HttpOnly and still works after another reload
  const rotated = (await context.cookies()).find((c) => c.name === "qd_refresh");
  expect(rotated?.value).not.toBe(cookies.qd_refresh!.value);
  await page.reload();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
});

test("log out clears the cookies: a reload stays on the login page", async ({ page, context }) => {
  await login(page, "viewer");
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.getByRole("form", { name: "Log in" })).toBeVisible();
  expect((await context.cookies()).map((c) => c.name)).toEqual([]);
  await page.reload();
  await expect(page.getByRole("form", { name: "Log in" })).toBeVisible();
});

test("tokens an earlier version stored in localStorage are removed on load", async ({ page }) => {
  await page.addInitScript(() => {
    if (!sessionStorage.getItem("seeded")) {
      sessionStorage.setItem("seeded", "1");
      localStorage.setItem("quantdesk.tokens", JSON.stringify({ access_token: "old", refresh_token: "old" }));
    }
  });
  await page.goto("/");
  await expect(page.getByRole("form", { name: "Log in" })).toBeVisible();
  expect(await page.evaluate(() => localStorage.getItem("quantdesk.tokens"))).toBeNull();
});
