/**
 * The UI against a real `quantdesk serve` (see global-setup.ts): log in, trade on the paper
 * broker, cancel, fund an account, roles and the kill switch. Each test also writes a full-page
 * screenshot into docs/screenshots/.
 */
import { expect, test, type Page } from "@playwright/test";
import { chooseSymbol, login, onTick, shot } from "./helpers";

const SYMBOL = "NSE:INFY";

/** The row of the orders table whose limit price is `price` (formatted like the UI does). */
function orderRow(page: Page, price: string) {
  const shown = Number(price).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return page.getByRole("region", { name: "Orders" }).getByRole("row").filter({ hasText: SYMBOL }).filter({ hasText: shown });
}

test("log in: wrong password is refused in words, the right one opens the dashboard", async ({ page }) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/login/);
  const form = page.getByRole("form", { name: "Log in" });
  await form.getByLabel("Username").fill("trader");
  await form.getByLabel("Password").fill("not-the-password");
  await form.getByRole("button", { name: "Log in" }).click();
  await expect(form.getByRole("alert")).toContainText("[AUTH_");
  await form.getByLabel("Password").fill("");
  await shot(page, "login");
  await login(page, "trader");
  await expect(page.getByRole("form", { name: "Order ticket" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Risk" }).getByRole("status", { name: "Trading status" })).toHaveText(
    "Trading allowed",
  );
});

test("a marketable limit order fills on the paper broker", async ({ page }) => {
  await login(page, "trader");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Orders" }).click();
  const { ticket, tick, last } = await chooseSymbol(page, "INFY", SYMBOL);
  // 1% over the last price: at or above the ask, inside the price band
  const price = onTick(last, 1.01, tick);
  await ticket.getByLabel("Quantity").fill("2");
  await ticket.getByLabel("Limit price").fill(price);
  await ticket.getByRole("button", { name: /^Buy/ }).click();
  const row = orderRow(page, price);
  await expect(row.getByText("FILLED", { exact: true })).toBeVisible({ timeout: 30_000 });
  await shot(page, "orders");

  await page.getByRole("link", { name: "Positions" }).click();
  await expect(page.getByRole("row").filter({ hasText: SYMBOL }).first()).toBeVisible();
  await shot(page, "positions");

  await page.getByRole("link", { name: "Dashboard" }).click();
  await expect(page.getByRole("region", { name: "Latest fills" }).getByText(SYMBOL).first()).toBeVisible();
  await expect(page.getByRole("region", { name: "Open positions" }).getByText(SYMBOL).first()).toBeVisible();
  await shot(page, "dashboard");
});

test("a far-from-market limit order rests and can be cancelled", async ({ page }) => {
  await login(page, "trader");
  await page.getByRole("link", { name: "Orders" }).click();
  const { ticket, tick, last } = await chooseSymbol(page, "INFY", SYMBOL);
  const price = onTick(last, 0.95, tick); // 5% below: rests, inside the 10% band
  await ticket.getByLabel("Quantity").fill("1");
  await ticket.getByLabel("Limit price").fill(price);
  await ticket.getByRole("button", { name: /^Buy/ }).click();
  const row = orderRow(page, price);
  await expect(row.getByText("OPEN", { exact: true })).toBeVisible({ timeout: 30_000 });
  await row.getByRole("button", { name: "Cancel" }).click();
  await expect(row.getByText("CANCELLED", { exact: true })).toBeVisible();
});

test("an admin deposit shows in the trader's wallet and ledger", async ({ page, browser }) => {
  await login(page, "admin");
  await page.getByRole("link", { name: "Admin" }).click();
  const users = page.getByRole("region", { name: "Users" });
  const traderRow = users.getByRole("row").filter({ has: page.getByRole("cell", { name: "trader", exact: true }) });
  await traderRow.getByRole("button", { name: "Funds…" }).click();
  const funds = page.getByRole("region", { name: "Funds" });
  await funds.getByLabel("Amount (INR)").fill("12345.67");
  await funds.getByLabel("Note").fill("e2e top-up");
  await funds.getByRole("button", { name: "Deposit" }).click();
  await expect(page.getByText("Deposited ₹12,345.67 for trader")).toBeVisible();
  await expect(page.getByRole("region", { name: "Risk controls" })).toBeVisible();
  await shot(page, "admin");

  const context = await browser.newContext();
  const trader = await context.newPage();
  await login(trader, "trader");
  await trader.getByRole("link", { name: "Wallet" }).click();
  const ledger = trader.getByRole("region", { name: "Ledger" });
  const entry = ledger.getByRole("row").filter({ hasText: "e2e top-up" });
  await expect(entry).toBeVisible();
  await expect(entry).toContainText("12,345.67");
  await shot(trader, "wallet");
  await context.close();
});

test("admin: the limits editor shows the API's 422 in words, then saves an override", async ({ page }) => {
  await login(page, "admin");
  await page.getByRole("link", { name: "Admin" }).click();
  const risk = page.getByRole("region", { name: "Risk controls" });
  // the viewer's account: nothing else in this run depends on its limits
  await risk.getByRole("combobox", { name: "Limits for" }).selectOption({ label: "viewer (#3, viewer)" });
  const form = risk.getByRole("form", { name: "Risk limits" });
  await form.getByLabel("Max order quantity").fill("100");
  await form.getByLabel("Max order value (INR)").fill("250000.50");
  await form.getByLabel("Max drawdown (%)").fill("150");
  await form.getByRole("checkbox", { name: "NSE" }).check();
  await form.getByRole("button", { name: "Save limits" }).click();
  await expect(form.getByRole("alert")).toContainText(/drawdown.*\[[A-Z_]+\]/i);
  await form.getByLabel("Max drawdown (%)").fill("12.5");
  await form.getByRole("button", { name: "Save limits" }).click();
  await expect(page.getByText("Saved the limits of account 3")).toBeVisible();
  await expect(form.getByLabel("Effective limits")).toContainText("Max order quantity 100");
  await expect(form.getByLabel("Effective limits")).toContainText("Max drawdown (%) 12.5");
  await expect(form.getByRole("alert")).toHaveCount(0);
});

test("a viewer cannot trade: no ticket, no order actions, no kill switch", async ({ page }) => {
  await login(page, "viewer");
  await expect(page.getByRole("region", { name: "Open orders" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Risk" })).toBeVisible();
  await expect(page.getByRole("form", { name: "Order ticket" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: /kill switch/i })).toHaveCount(0);
  await page.getByRole("link", { name: "Orders" }).click();
  await expect(page.getByRole("region", { name: "Orders" })).toBeVisible();
  await expect(page.getByRole("form", { name: "Order ticket" })).toHaveCount(0);
  await expect(page.getByRole("link", { name: "Admin" })).toHaveCount(0);
});

test("an engaged kill switch blocks the ticket until released", async ({ page }) => {
  await login(page, "trader");
  const risk = page.getByRole("region", { name: "Risk" });
  await risk.getByRole("button", { name: "Engage my kill switch…" }).click();
  const dialog = page.getByRole("dialog", { name: "Engage your account's kill switch?" });
  await dialog.getByLabel("Reason").fill("e2e: stop everything");
  await dialog.getByRole("button", { name: "Engage" }).click();
  const ticket = page.getByRole("form", { name: "Order ticket" });
  await expect(ticket.getByRole("alert", { name: "Trading blocked" })).toContainText(
    "Your account's kill switch is engaged: e2e: stop everything",
  );
  await expect(ticket.getByRole("button", { name: /^Buy/ })).toBeDisabled();
  await expect(risk.getByRole("status", { name: "Trading status" })).toHaveText("Trading blocked");
  await shot(page, "dashboard-kill-switch");

  await risk.getByRole("button", { name: "Release my kill switch…" }).click();
  const release = page.getByRole("dialog", { name: "Release your account's kill switch?" });
  await release.getByLabel("Reason").fill("e2e: done");
  await release.getByRole("button", { name: "Release" }).click();
  await expect(risk.getByRole("status", { name: "Trading status" })).toHaveText("Trading allowed");
  await expect(ticket.getByRole("alert", { name: "Trading blocked" })).toHaveCount(0);
  await expect(ticket.getByRole("button", { name: /^Buy/ })).toBeEnabled();

  // The kill switch raised an alert: live at once, stored, so still there after a reload.
  const engagedAlert = (p: Page) =>
    p.getByRole("region", { name: "Alerts" }).getByRole("listitem").filter({ hasText: "Kill switch engaged" }).first();
  await expect(engagedAlert(page)).toBeVisible();
  await page.reload();
  const stored = engagedAlert(page);
  await expect(stored).toHaveClass(/\bunread\b/);
  await stored.getByRole("button", { name: /^Mark read/ }).click();
  await expect(stored).toHaveClass(/\bread\b/);
});

test("charts: candles for a symbol with the live last price", async ({ page }) => {
  await login(page, "trader");
  await page.goto(`/charts/${SYMBOL}`);
  const chart = page.getByRole("region", { name: "Chart" });
  await expect(chart.locator("canvas").first()).toBeVisible();
  await expect(chart.getByLabel("Last price")).toHaveText(/\d/);
  await shot(page, "charts");
});

test.describe("at a tablet width (768 × 1024)", () => {
  test.use({ viewport: { width: 768, height: 1024 } });

  test("dashboard, orders and wallet fit the width, and the ticket is usable", async ({ page }) => {
    const noOverflow = async (what: string) => {
      const { scrollWidth, clientWidth } = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
      }));
      expect(scrollWidth, `${what}: horizontal overflow`).toBeLessThanOrEqual(clientWidth);
    };
    await login(page, "trader");
    const nav = page.getByRole("navigation", { name: "Main" });
    await expect(page.getByRole("region", { name: "Account summary" }).getByLabel("Equity")).toBeVisible();
    await expect(page.getByRole("region", { name: "Open orders" })).toBeVisible();
    await noOverflow("dashboard");

    // the ticket (above the tables under 1024 px) picks a symbol, checks and previews
    const { ticket } = await chooseSymbol(page, "INFY", SYMBOL);
    await ticket.getByLabel("Quantity").fill("1");
    await expect(ticket.getByLabel("Limit price")).toBeVisible();
    await expect(ticket.getByRole("button", { name: /^Buy/ })).toBeEnabled();
    await ticket.getByLabel("Quantity").fill("");
    await noOverflow("dashboard with the ticket filled");

    await nav.getByRole("link", { name: "Orders" }).click();
    await expect(page.getByRole("region", { name: "Orders" })).toBeVisible();
    await expect(page.getByRole("form", { name: "Order ticket" })).toBeVisible();
    await noOverflow("orders");

    await nav.getByRole("link", { name: "Wallet" }).click();
    await expect(page.getByRole("region", { name: "Ledger" }).getByRole("row").nth(1)).toBeVisible();
    await noOverflow("wallet");
  });
});

test("keyboard only: search, pick, tab through the ticket, Enter places; then cancel", async ({ page }) => {
  await login(page, "trader");
  const ticket = page.getByRole("form", { name: "Order ticket" });
  const combo = ticket.getByRole("combobox", { name: "Symbol" });
  await combo.focus();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("INFY");
  const option = page.getByRole("option", { name: new RegExp(SYMBOL) }).first();
  await expect(option).toBeVisible();
  // walk the list with the arrows (down past the first, back up if it was the only one) to NSE:INFY
  const options = page.getByRole("option");
  const index = (await options.allTextContents()).findIndex((t) => t.startsWith(SYMBOL));
  expect(index).toBeGreaterThanOrEqual(0);
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowUp");
  for (let i = 0; i < index; i++) await page.keyboard.press("ArrowDown");
  await expect(options.nth(index)).toHaveAttribute("aria-selected", "true");
  await page.keyboard.press("Enter");
  await expect(combo).toHaveValue(SYMBOL);
  const info = ticket.getByText(/tick [\d.]+ · lot \d+ · last [\d,.]+/);
  await expect(info).toBeVisible();
  const m = /tick ([\d.]+) · lot (\d+) · last ([\d,.]+)/.exec((await info.textContent()) ?? "")!;
  const price = onTick(Number(m[3]!.replace(/,/g, "")), 0.93, m[1]!); // 7% below: rests, inside the band

  // Tab from the symbol through side, type, product and validity to the quantity
  const quantity = ticket.getByLabel("Quantity");
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    if (await quantity.evaluate((el) => el === document.activeElement)) break;
  }
  await expect(quantity).toBeFocused();
  await page.keyboard.type("1");
  await page.keyboard.press("Tab");
  await expect(ticket.getByLabel("Limit price")).toBeFocused();
  await page.keyboard.type(price);
  await page.keyboard.press("Enter");

  const open = page.getByRole("region", { name: "Open orders" });
  const shown = Number(price).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const row = open.getByRole("row").filter({ hasText: SYMBOL }).filter({ hasText: shown });
  await expect(row.getByText("OPEN", { exact: true })).toBeVisible({ timeout: 30_000 });
  await row.getByRole("button", { name: "Cancel" }).click();
  await expect(row).toHaveCount(0);
});
