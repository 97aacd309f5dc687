import { expect, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ACCOUNTS, type Who } from "./accounts";

export const SHOTS = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "screenshots");

/** Log in through the login page and wait for the live stream. */
export async function login(page: Page, who: Who) {
  await page.goto("/login");
  const form = page.getByRole("form", { name: "Log in" });
  await form.getByLabel("Username").fill(ACCOUNTS[who].username);
  await form.getByLabel("Password").fill(ACCOUNTS[who].password);
  await form.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await expect(page.getByText("● Live")).toBeVisible();
}

/** A full-page screenshot into docs/screenshots/<name>.png. */
export async function shot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  // let the toasts and the live numbers settle a moment
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, animations: "disabled" });
}

/** Pick a symbol in the order ticket and return its tick size and live last price. */
export async function chooseSymbol(page: Page, query: string, ref: string) {
  const ticket = page.getByRole("form", { name: "Order ticket" });
  const combo = ticket.getByRole("combobox", { name: "Symbol" });
  await combo.fill(query);
  await page.getByRole("option", { name: new RegExp(ref) }).first().click();
  const info = ticket.getByText(/tick [\d.]+ · lot \d+ · last [\d,.]+/);
  await expect(info).toBeVisible();
  const m = /tick ([\d.]+) · lot (\d+) · last ([\d,.]+)/.exec((await info.textContent()) ?? "")!;
  return { ticket, tick: m[1]!, lot: Number(m[2]), last: Number(m[3]!.replace(/,/g, "")) };
}

/** A price `factor` x last, on the tick grid (rounded up), as a decimal string. */
export function onTick(last: number, factor: number, tick: string) {
  const t = Number(tick);
  const decimals = (tick.split(".")[1] ?? "").length;
  return (Math.ceil((last * factor) / t - 1e-9) * t).toFixed(decimals);
}
