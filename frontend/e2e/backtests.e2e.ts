/**
 * Strategies, backtests and deployments against the real server: the trader runs sma_cross on a
 * demo symbol's daily bars from the Strategies page, follows it to its report (metrics, charts,
 * round trips, the HTML tearsheet), compares two runs, deploys on paper and stops it; a viewer
 * gets everything read-only. Screenshots go to docs/screenshots/.
 *
 * The server's first start seeds ~2 years of synthetic daily bars (and 60 sessions of 1-minute
 * bars) for the demo universe, ending the session before today: a 1d backtest over that span
 * runs in well under a second once a worker picks it up.
 */
import { expect, test, type Page } from "@playwright/test";
import { login, shot } from "./helpers";

const SYMBOL = "NSE:INFY";

/** YYYY-MM-DD in India, `days` from today. */
function day(days: number): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Kolkata" }).format(new Date(Date.now() + days * 86_400_000));
}

/** Close the toasts, so they do not cover the screenshots. */
async function dismissToasts(page: Page) {
  const buttons = page.getByRole("button", { name: "Dismiss" });
  // a toast may time out on its own meanwhile: a missed click is fine
  for (let i = 0; i < 10 && (await buttons.count()) > 0; i++) await buttons.first().click({ timeout: 1_000 }).catch(() => {});
}

/** Open sma_cross on the Strategies page and fill its form: a daily run over the demo history. */
async function fillSmaCross(page: Page, fast: string, slow: string) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Strategies" }).click();
  await page.getByRole("region", { name: "Strategies" }).getByRole("link", { name: "sma_cross" }).click();
  const form = page.getByRole("form", { name: "Backtest" });
  await expect(form.getByLabel("Fast", { exact: true })).toHaveValue("10"); // the schema's default
  await form.getByLabel("Fast", { exact: true }).fill(fast);
  await form.getByLabel("Slow", { exact: true }).fill(slow);
  await form.getByRole("combobox", { name: "Add symbol" }).fill("INFY");
  await page.getByRole("option", { name: new RegExp(SYMBOL) }).first().click();
  await expect(form.getByRole("list", { name: "Symbols" })).toContainText(SYMBOL);
  await form.getByLabel("Interval").selectOption("1d");
  await form.getByLabel("Start").fill(day(-800)); // before the first daily bar: the run starts at the data
  await form.getByLabel("End").fill(day(0));
  await form.getByLabel("Costs", { exact: true }).selectOption("bps");
  await form.getByLabel("Costs (bps)").fill("3");
  return form;
}

/** Fill the sma_cross form and press Run backtest; returns the run's id. */
async function runSmaCross(page: Page, fast: string, slow: string): Promise<string> {
  const form = await fillSmaCross(page, fast, slow);
  await form.getByRole("button", { name: "Run backtest" }).click();
  await expect(page).toHaveURL(/\/backtests\/[0-9a-f]{32}$/);
  return page.url().split("/").pop()!;
}

test("a trader runs a backtest from Strategies and reads its report and tearsheet", async ({ page }) => {
  await login(page, "trader");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Strategies" }).click();
  await page.getByRole("region", { name: "Strategies" }).getByRole("link", { name: "sma_cross" }).click();
  const form = page.getByRole("form", { name: "Backtest" });
  // the browser checks the schema's bounds before anything is sent
  await form.getByLabel("Fast", { exact: true }).fill("0");
  await form.getByRole("button", { name: "Run backtest" }).click();
  await expect(form.getByText("Must be at least 1.")).toBeVisible();
  await expect(form.getByText("Choose at least one symbol.")).toBeVisible();
  await form.getByLabel("Fast", { exact: true }).fill("5");
  await expect(form.getByText("Must be at least 1.")).toHaveCount(0);

  await fillSmaCross(page, "5", "20");
  await expect(form.getByRole("alert")).toHaveCount(0);
  await shot(page, "strategies");
  await form.getByRole("button", { name: "Run backtest" }).click();
  await expect(page).toHaveURL(/\/backtests\/[0-9a-f]{32}$/);
  const header = page.getByRole("region", { name: "Backtest" });
  await expect(header.getByRole("heading", { name: /sma_cross on NSE:INFY/ })).toBeVisible();
  // queued -> running (a progress bar) -> succeeded, pushed by the jobs channel
  await expect(header.getByRole("progressbar").or(header.getByText("succeeded", { exact: true }))).toBeVisible();
  await expect(header.getByText("succeeded", { exact: true })).toBeVisible({ timeout: 30_000 });

  const metrics = page.getByRole("region", { name: "Metrics" });
  await expect(metrics.getByRole("row", { name: /Sharpe/ })).toContainText(/-?\d+\.\d\d/);
  await expect(metrics.getByRole("row", { name: /Total return/ })).toContainText("%");
  await expect(header.getByLabel("Summary")).toContainText("Final equity");
  await expect(page.getByRole("region", { name: "Equity" }).getByRole("img", { name: "Equity and benchmark chart" }).locator("canvas").first()).toBeVisible();
  await expect(page.getByRole("img", { name: "Drawdown chart" }).locator("canvas").first()).toBeVisible();
  await expect(page.getByRole("region", { name: "Price and fills" }).locator("canvas").first()).toBeVisible();
  const trips = page.getByRole("table", { name: "Round trips" });
  await expect(trips.getByRole("row").nth(1)).toBeVisible();
  expect(await trips.getByRole("row").count()).toBeGreaterThan(1);
  await expect(page.getByRole("region", { name: "Charges" })).toContainText("₹");
  await expect(page.getByRole("region", { name: "Run record" })).toContainText("bps:3");
  await expect(page.getByRole("region", { name: "Run record" })).toContainText(/Data fingerprint\s*[0-9a-f]{16}/);
  await dismissToasts(page);
  await shot(page, "backtest-report");

  const popup = page.waitForEvent("popup");
  await header.getByRole("button", { name: "Open HTML tearsheet" }).click();
  const tearsheet = await popup;
  await expect(tearsheet).toHaveTitle("sma_cross on NSE:INFY");
  await expect(tearsheet.locator("h1").first()).toContainText("sma_cross");
  await tearsheet.close();
});

test("two runs compared side by side, with their curves overlaid", async ({ page }) => {
  await login(page, "trader");
  const first = await runSmaCross(page, "5", "20");
  await expect(page.getByRole("region", { name: "Backtest" }).getByText("succeeded", { exact: true })).toBeVisible({ timeout: 30_000 });
  const second = await runSmaCross(page, "10", "40");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Backtests" }).click();
  const list = page.getByRole("region", { name: "Backtests" });
  for (const id of [first, second]) {
    const box = list.getByRole("checkbox", { name: new RegExp(`Compare sma_cross ${id.slice(0, 8)}`) });
    await expect(box).toBeEnabled({ timeout: 30_000 }); // enabled once it succeeded
    await box.check();
  }
  await list.getByRole("button", { name: "Compare (2)" }).click();
  await expect(page).toHaveURL(new RegExp(`compare=${first}&compare=${second}`));
  const comparison = page.getByRole("region", { name: "Comparison" });
  const table = comparison.getByRole("table", { name: "Metrics side by side" });
  await expect(table.getByRole("columnheader")).toHaveCount(3);
  await expect(table.getByRole("row", { name: /Sharpe/ })).toContainText(/\d\.\d\d.*\d\.\d\d/);
  await expect(table.getByRole("row", { name: /Parameters/ })).toContainText("fast=10, slow=40");
  await expect(comparison.getByRole("img", { name: "Equity curves compared" }).locator("canvas").first()).toBeVisible();
  await dismissToasts(page);
  await shot(page, "backtests-compare");
});

test("deploy on paper from Strategies, then stop it", async ({ page }) => {
  await login(page, "trader");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Strategies" }).click();
  await page.getByRole("region", { name: "Strategies" }).getByRole("link", { name: "sma_cross" }).click();
  const form = page.getByRole("form", { name: "Backtest" });
  await form.getByLabel("Fast", { exact: true }).fill("3");
  await form.getByLabel("Slow", { exact: true }).fill("8");
  await form.getByRole("combobox", { name: "Add symbol" }).fill("TCS");
  await page.getByRole("option", { name: /NSE:TCS/ }).first().click();
  await form.getByLabel("Interval").selectOption("1m");
  await form.getByRole("button", { name: "Deploy on paper" }).click();
  await form.getByRole("group", { name: "Confirm deployment" }).getByRole("button", { name: "Confirm deploy" }).click();
  await expect(page).toHaveURL(/\/deployments\/[0-9a-f]{32}$/);
  const card = page.getByRole("region", { name: "Deployment" });
  await expect(card.getByRole("heading", { name: /sma_cross on NSE:TCS/ })).toBeVisible();
  await expect(card.getByText("running", { exact: true })).toBeVisible();
  await expect(card.getByLabel("Deployment P&L")).toContainText("Total P&L");
  await expect(page.getByRole("region", { name: "Deployment fills" })).toBeVisible();

  await page.getByRole("link", { name: "all deployments" }).click();
  const row = page.getByRole("region", { name: "Deployments" }).getByRole("row").filter({ hasText: "NSE:TCS" }).first();
  await expect(row).toContainText("running");
  page.once("dialog", (d) => void d.accept());
  await row.getByRole("button", { name: /^Stop / }).click();
  await expect(row).toContainText("stopped");
  await expect(row.getByRole("button")).toHaveCount(0);
});

test("a viewer sees strategies and backtests read-only", async ({ page }) => {
  await login(page, "viewer");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Strategies" }).click();
  await page.getByRole("region", { name: "Strategies" }).getByRole("link", { name: "sma_cross" }).click();
  const form = page.getByRole("form", { name: "Backtest" });
  await expect(form.getByLabel("Fast", { exact: true })).toBeDisabled();
  await expect(form.getByRole("button", { name: "Run backtest" })).toHaveCount(0);
  await expect(form.getByRole("button", { name: "Deploy on paper" })).toHaveCount(0);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Backtests" }).click();
  // a viewer sees everyone's runs (the trader's from the tests above), without Cancel
  await expect(page.getByRole("region", { name: "Backtests" }).getByRole("link", { name: "sma_cross" }).first()).toBeVisible();
  await expect(page.getByRole("button", { name: "Cancel" })).toHaveCount(0);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Deployments" }).click();
  await expect(page.getByRole("region", { name: "Deployments" })).toBeVisible();
  await expect(page.getByRole("button", { name: /^(Pause|Resume|Stop) / })).toHaveCount(0);
});
