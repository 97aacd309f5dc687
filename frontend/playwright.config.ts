/**
 * End-to-end tests: the built UI (frontend/dist) served by a real `quantdesk serve` (fresh SQLite
 * data dir, random feed, paper broker), driven in Debian's Chromium. Playwright never downloads a
 * browser here: it launches QUANTDESK_CHROMIUM (default /usr/bin/chromium).
 */
import { defineConfig } from "@playwright/test";

export const CHROMIUM = process.env.QUANTDESK_CHROMIUM || "/usr/bin/chromium";
const CI = !!process.env.CI && process.env.CI !== "false";

export default defineConfig({
  testDir: "./e2e",
  testMatch: "**/*.e2e.ts",
  globalSetup: "./e2e/global-setup.ts",
  // one backend, one account set: the tests run one after the other
  workers: 1,
  fullyParallel: false,
  retries: CI ? 1 : 0,
  forbidOnly: CI,
  // generous for a loaded 2-core machine
  timeout: 60_000,
  globalTimeout: 5 * 60_000,
  expect: { timeout: 15_000 },
  reporter: CI ? [["list"], ["html", { open: "never" }]] : [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: process.env.QUANTDESK_E2E_URL,
    browserName: "chromium",
    headless: true,
    viewport: { width: 1366, height: 900 },
    locale: "en-IN",
    timezoneId: "Asia/Kolkata",
    colorScheme: "light",
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
    trace: CI ? "retain-on-failure" : "off",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    },
  },
});
