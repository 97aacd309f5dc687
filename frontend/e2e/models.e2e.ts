/**
 * The Models page against the real server: the trader trains a small XGBoost model on three demo
 * symbols' daily bars (3 walk-forward folds, costs bps:3) from the form, follows the run to its
 * page until it succeeded (folds, checks, feature importance, the signal backtest's equity
 * chart); an admin sees the run and the registered model and promotes its version to champion,
 * which the API grants or refuses with ML_CHECKS_FAILED (the demo data is random: either is
 * right, and the UI must show which); a viewer reads models without Train or Promote.
 *
 * The backend needs the `ml` extra (CI installs `.[dev]`, which includes it) and a training
 * worker (QUANTDESK_ML_WORKERS, default 1). The first training run of a fresh data dir also
 * creates the MLflow store: allow it a minute.
 */
import { expect, test, type Page } from "@playwright/test";
import { login, shot } from "./helpers";

const SYMBOLS = ["NSE:INFY", "NSE:TCS", "NSE:HDFCBANK"];
const MODEL = `e2e-xgb-${Date.now().toString(36)}`;

/** YYYY-MM-DD in India, `days` from today. */
function day(days: number): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Kolkata" }).format(new Date(Date.now() + days * 86_400_000));
}

async function dismissToasts(page: Page) {
  const buttons = page.getByRole("button", { name: "Dismiss" });
  for (let i = 0; i < 10 && (await buttons.count()) > 0; i++) await buttons.first().click({ timeout: 1_000 }).catch(() => {});
}

async function openModels(page: Page) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models" }).click();
  await expect(page).toHaveURL(/\/models$/);
}

test("a trader trains a model and reads its run; an admin promotes it (or sees why not)", async ({ page }) => {
  test.setTimeout(150_000);
  await login(page, "trader");
  await openModels(page);
  const form = page.getByRole("form", { name: "Train" });
  for (const ref of SYMBOLS) {
    await form.getByRole("combobox", { name: "Add symbol" }).fill(ref.split(":")[1]!);
    await page.getByRole("option", { name: new RegExp(`^${ref}\\b`) }).first().click();
  }
  await expect(form.getByRole("list", { name: "Symbols" })).toContainText(SYMBOLS.join("×"));
  await form.getByLabel("Model").selectOption("xgboost");
  await form.getByLabel("Interval").selectOption("1d");
  await form.getByLabel("Start").fill(day(-800)); // before the first daily bar: the data's start
  await form.getByLabel("End").fill(day(0));
  await form.getByLabel("Label").fill("forward:5");
  await form.getByLabel("Folds").fill("3");
  await form.getByLabel("Trials").fill("0");
  await form.getByLabel("Costs", { exact: true }).selectOption("bps");
  await form.getByLabel("Costs (bps)").fill("3");
  await form.getByLabel("Name").fill(MODEL);
  await expect(form.getByRole("alert")).toHaveCount(0);
  await form.getByRole("button", { name: "Train" }).click();

  await expect(page).toHaveURL(/\/models\/runs\/[0-9a-f]{32}$/);
  const header = page.getByRole("region", { name: "Training run" });
  await expect(header.getByRole("heading", { name: new RegExp(`${MODEL} · xgboost on NSE:INFY, NSE:TCS, NSE:HDFCBANK`) })).toBeVisible();
  // queued -> running (a progress bar) -> succeeded, from the jobs channel and a poll
  await expect(header.getByRole("progressbar").or(header.getByText("succeeded", { exact: true }))).toBeVisible();
  await expect(header.getByText("succeeded", { exact: true })).toBeVisible({ timeout: 90_000 });

  await expect(header.getByLabel("Out-of-sample summary")).toContainText(`${MODEL} v1`);
  await expect(header.getByLabel("Out-of-sample summary")).toContainText(/OOS AUC\s*0\.\d{3}/);
  const folds = page.getByRole("table", { name: "Folds" });
  await expect(folds.getByRole("row")).toHaveCount(5); // header, 3 folds, pooled
  await expect(folds.getByRole("row").nth(1)).toContainText(/0\.\d{3}/);
  await expect(page.getByRole("table", { name: "Checks" }).getByRole("row", { name: /edge/ })).toContainText(/passed|failed/);
  await expect(page.getByRole("list", { name: "Feature importance chart" }).getByRole("listitem").first()).toBeVisible();
  await expect(page.getByRole("region", { name: "Signal backtest" }).getByRole("img", { name: "Signal backtest equity chart" }).locator("canvas").first()).toBeVisible();
  await expect(page.getByRole("region", { name: "Run record" })).toContainText("bps:3");
  await dismissToasts(page);
  await shot(page, "model-run");

  // the admin: everyone's runs, the registered model, Promote
  await page.getByRole("button", { name: "Log out" }).click();
  await login(page, "admin");
  await openModels(page);
  await expect(page.getByRole("table", { name: "Training runs" }).getByRole("row", { name: new RegExp(MODEL) })).toContainText("succeeded");
  const model = page.getByRole("group", { name: `Model ${MODEL}` });
  await expect(model.getByRole("table", { name: `Versions of ${MODEL}` }).getByRole("row", { name: /^v1/ })).toContainText(/passed|failed/);
  const promote = model.getByRole("form", { name: `Promote ${MODEL}` });
  await promote.getByLabel("Version").selectOption("1");
  await promote.getByLabel("Alias").selectOption("champion");
  await promote.getByRole("button", { name: "Promote" }).click();
  const granted = model.getByRole("table", { name: `Versions of ${MODEL}` }).getByRole("cell", { name: "champion", exact: true });
  const refused = promote.getByRole("alert").filter({ hasText: "ML_CHECKS_FAILED" });
  await expect(granted.or(refused)).toBeVisible();
  if (await granted.isVisible()) await expect(model).toContainText("champion → v1");
  await dismissToasts(page);
  await shot(page, "models");
});

test("a viewer reads the Models page without Train or Promote", async ({ page }) => {
  await login(page, "viewer");
  await openModels(page);
  await expect(page.getByRole("region", { name: "Registered models" })).toBeVisible();
  await expect(page.getByRole("region", { name: "Training runs" })).toBeVisible();
  await expect(page.getByRole("form", { name: "Train" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Promote" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Cancel" })).toHaveCount(0);
});
