/**
 * Starts a real backend for the e2e run: `quantdesk serve` from the repository's .venv on a free
 * port, with a fresh temporary data dir (SQLite) and known demo passwords; creates a viewer and
 * funds the trader through the admin API. Returns the teardown, which stops the server.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CHROMIUM } from "../playwright.config";
import { ACCOUNTS, TRADER_FUNDS } from "./accounts";

const FRONTEND = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPO = resolve(FRONTEND, "..");

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => ok(port));
    });
  });
}

async function api(base: string, method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`e2e setup: ${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}

export default async function globalSetup() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `e2e: no Chromium at ${CHROMIUM}. Install Debian's: apt-get install -y --no-install-recommends chromium ` +
        "(or point QUANTDESK_CHROMIUM at a Chromium binary). Playwright's own browser downloads are not used.",
    );
  }
  const quantdesk = process.env.QUANTDESK_BIN || join(REPO, ".venv", "bin", "quantdesk");
  if (!existsSync(quantdesk)) {
    throw new Error(`e2e: ${quantdesk} is missing: create the venv first (scripts/test or scripts/start do).`);
  }
  if (!existsSync(join(FRONTEND, "dist", "index.html"))) {
    console.log("e2e: frontend/dist is missing; building it");
    const build = spawnSync("npm", ["run", "build"], { cwd: FRONTEND, stdio: "inherit" });
    if (build.status !== 0) throw new Error("e2e: npm run build failed");
  }

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), "quantdesk-e2e-"));
  const logPath = join(dataDir, "serve.log");
  // the server sees only our settings: nothing from the caller's QUANTDESK_* environment
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("QUANTDESK_")),
  );
  Object.assign(env, {
    QUANTDESK_DATA_DIR: dataDir,
    QUANTDESK_DEMO_ADMIN_PASSWORD: ACCOUNTS.admin.password,
    QUANTDESK_DEMO_TRADER_PASSWORD: ACCOUNTS.trader.password,
    QUANTDESK_FEED: "random",
    QUANTDESK_FEED_INTERVAL_SECONDS: "0.5",
    QUANTDESK_PAPER_SESSION: "always",
    QUANTDESK_UI_DIR: join(FRONTEND, "dist"),
    QUANTDESK_BCRYPT_ROUNDS: "4",
    QUANTDESK_LOG_LEVEL: "WARNING",
  });
  const log = openSync(logPath, "a");
  const child = spawn(quantdesk, ["serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: dataDir,
    env,
    stdio: ["ignore", log, log],
  });
  const teardown = async () => {
    await stop(child);
    if (process.env.QUANTDESK_E2E_KEEP) console.log(`e2e: kept ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 120_000; // first start seeds the demo data (~10 s, slower when loaded)
    for (;;) {
      if (child.exitCode !== null) throw new Error(`quantdesk serve exited with ${child.exitCode}`);
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("quantdesk serve was not ready within 120 s");
      await new Promise((r) => setTimeout(r, 300));
    }
    const admin = await api(base, "POST", "/auth/login", null, ACCOUNTS.admin);
    await api(base, "POST", "/admin/users", admin.access_token, { ...ACCOUNTS.viewer, role: "viewer" });
    const users = await api(base, "GET", "/admin/users?limit=200", admin.access_token);
    const trader = users.items.find((u: { username: string }) => u.username === ACCOUNTS.trader.username);
    await api(base, "POST", `/admin/users/${trader.id}/deposits`, admin.access_token, {
      amount: TRADER_FUNDS,
      currency: "INR",
      note: "e2e: starting funds",
    });
  } catch (error) {
    await stop(child);
    const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").slice(-4000) : "";
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`e2e setup failed: ${(error as Error).message}\n--- quantdesk serve log (tail) ---\n${tail}`);
  }

  process.env.QUANTDESK_E2E_URL = base; // read by playwright.config.ts in the workers
  console.log(`e2e: quantdesk serve on ${base} (data ${dataDir})`);
  return teardown;
}
