/**
 * The web UI and the API docs under the app's Content-Security-Policy: the headers are on the
 * pages, and nothing the pages do is refused (scripts, styles, the chart, the WebSocket, Swagger
 * UI). A violation shows both as a console message ("Refused to ...") and as a
 * `securitypolicyviolation` event, which an init script (not subject to the page's CSP) reports.
 */
import { expect, test, type Page } from "@playwright/test";
import { login } from "./helpers";

function watchPolicy(page: Page, base: string) {
  const origin = new URL(base).origin;
  const refused: string[] = [];
  const foreign: string[] = [];
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Refused to|Content Security Policy|CSP violation/i.test(text)) refused.push(text);
  });
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (!["blob:", "data:"].includes(url.protocol) && url.origin !== origin) {
      foreign.push(req.url());
    }
  });
  return { refused, foreign };
}

test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
});

test("the UI is served with the security headers and runs without a CSP violation", async ({ page, baseURL }) => {
  const seen = watchPolicy(page, baseURL!);
  const response = await page.goto("/login");
  const headers = response!.headers();
  const csp = headers["content-security-policy"] ?? "";
  expect(csp).toContain("script-src 'self';");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
  expect(headers["x-frame-options"]).toBe("DENY");
  expect(headers["x-content-type-options"]).toBe("nosniff");
  expect(headers["referrer-policy"]).toBe("strict-origin-when-cross-origin");

  // the live stream (WebSocket to the same host) connects under connect-src
  await login(page, "trader");
  // a reload restores the session by the refresh cookie: its Origin check passes
  await page.reload();
  await expect(page.getByText("● Live")).toBeVisible();
  const nav = page.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Charts" }).click();
  await expect(page.getByRole("region", { name: "Chart" }).locator("canvas").first()).toBeVisible();
  await nav.getByRole("link", { name: "Orders" }).click();
  await expect(page.getByRole("form", { name: "Order ticket" })).toBeVisible();
  await nav.getByRole("link", { name: "Backtests" }).click();
  await expect(page.getByRole("region", { name: "Backtests" })).toBeVisible();

  expect(seen.refused).toEqual([]);
  expect(seen.foreign).toEqual([]);
});

test("the API docs load Swagger UI from the app itself without a CSP violation", async ({ page, baseURL }) => {
  const seen = watchPolicy(page, baseURL!);
  const response = await page.goto("/api/v1/docs");
  const csp = response!.headers()["content-security-policy"] ?? "";
  expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+';/);
  // Swagger UI rendered: its initialiser ran (by hash) and fetched the schema
  await expect(page.locator(".swagger-ui .info .title")).toContainText("QuantDesk API");
  await expect(page.locator(".opblock").first()).toBeVisible();
  await page.waitForLoadState("networkidle");

  expect(seen.refused).toEqual([]);
  expect(seen.foreign).toEqual([]);
});
